"""Import each Chalice app under its own module name.

All three apps' modules are called ``app``; importing them by file path under
distinct names lets one pytest process test them all.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_app(service: str):
    name = f"{service}_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / service / "app.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
