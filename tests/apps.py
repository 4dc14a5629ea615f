"""Import each Chalice app, with its own ``chalicelib``, under names of its own.

All three apps' modules are called ``app`` and each app has its own package
called ``chalicelib``: in Lambda and under ``chalice local`` only one app is on
``sys.path``, but one pytest process tests all three. So an app is loaded from
its file as ``<service>_app``, and its ``chalicelib`` as ``<service>.chalicelib``
(the repository root is on ``sys.path``; the service folders are namespace
packages). While ``app.py`` runs its imports, ``chalicelib`` and its modules are
aliased to that app's package, then the aliases are removed again. Inside a
``chalicelib`` modules import each other relatively, so the package's name is
never looked up later; ``app.py`` imports only at its top.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_chalicelib(service: str):
    """The app's ``chalicelib`` package with every module in it imported."""
    package = importlib.import_module(f"{service}.chalicelib")
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    return package


def load_app(service: str):
    name = f"{service}_app"
    if name in sys.modules:
        return sys.modules[name]
    aliases = {}
    if (ROOT / service / "chalicelib").is_dir():
        package = load_chalicelib(service)
        aliases["chalicelib"] = package
        for info in pkgutil.iter_modules(package.__path__):
            aliases[f"chalicelib.{info.name}"] = sys.modules[f"{package.__name__}.{info.name}"]
    saved = {key: sys.modules.pop(key) for key in list(sys.modules) if key.split(".")[0] == "chalicelib"}
    sys.modules.update(aliases)
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / service / "app.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    finally:
        for key in aliases:
            sys.modules.pop(key, None)
        sys.modules.update(saved)
    return module
