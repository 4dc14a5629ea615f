"""Which of the project's own files a service (or the batch side) really uses.

Follows imports from an entry file: absolute ones into ``shared/``, the app's
own ``chalicelib/`` and the top-level folders, relative ones inside a package,
and imports made inside functions too. The clients in ``Runtime`` classes are
created lazily, each in a property that imports what it needs, so a runtime
module's property bodies are followed only for the properties the code reaches
(``runtime.<name>`` in a used module, ``self.<name>`` in a used property).

The IAM policy scan (``devtools.release.iam_scan``) and the layout rule (``shared/``
holds only what two or more services use; ``tests/test_layout.py``) both read
the project through this.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("quote", "backtest", "alerts")
# Top-level folders that are imported by name from the repository root.
TOP_LEVEL = ("shared", "batch", "devtools", "tests", *SERVICES)


def _module_file(base: Path) -> Path | None:
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _base(name: str, service: str | None, root: Path) -> Path | None:
    parts = name.split(".")
    if parts[0] == "chalicelib":
        return root / service / Path(*parts) if service else None
    return root.joinpath(*parts) if parts[0] in TOP_LEVEL else None


def resolve(name: str, service: str | None, root: Path = ROOT) -> Path | None:
    """The file of an absolute module name, or None when it is not the project's."""
    base = _base(name, service, root)
    return _module_file(base) if base else None


def _with_packages(name: str, service: str | None, root: Path) -> set[Path]:
    """The module's file and every package ``__init__`` importing it runs."""
    parts = name.split(".")
    found = set()
    for i in range(1, len(parts) + 1):
        target = resolve(".".join(parts[:i]), service, root)
        if target:
            found.add(target)
    return found


def _package_dir(path: Path) -> Path:
    return path.parent


@cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def imported_files(node: ast.AST, path: Path, service: str | None, root: Path = ROOT) -> set[Path]:
    """Project files imported anywhere inside ``node`` (a module, class or function of ``path``)."""
    found: set[Path] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Import):
            for alias in child.names:
                found |= _with_packages(alias.name, service, root)
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = _package_dir(path)
                for _ in range(child.level - 1):
                    base = base.parent
                module_base = base.joinpath(*child.module.split(".")) if child.module else base
                target = _module_file(module_base)
                if target:
                    found.add(target)
                for alias in child.names:
                    sub = _module_file(module_base / alias.name)
                    if sub:
                        found.add(sub)
            elif child.module:
                found |= _with_packages(child.module, service, root)
                for alias in child.names:
                    sub = resolve(f"{child.module}.{alias.name}", service, root)
                    if sub:
                        found.add(sub)
    return found


def _runtime_classes(path: Path) -> list[ast.ClassDef]:
    return [
        node
        for node in _parse(path).body
        if isinstance(node, ast.ClassDef)
        and (node.name == "Runtime" or any(isinstance(b, ast.Name) and b.id == "Runtime" for b in node.bases))
    ]


def is_runtime_module(path: Path) -> bool:
    return bool(_runtime_classes(path))


def _attributes_of(node: ast.AST, owner: str) -> set[str]:
    return {
        a.attr
        for a in ast.walk(node)
        if isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name) and a.value.id == owner
    }


def reachable(
    entries: list[Path], service: str | None, root: Path = ROOT, properties: set[str] | None = None
) -> set[Path]:
    """Every project file the entry files use, runtime properties followed only where used."""
    files: set[Path] = set()
    runtime_files: set[Path] = set()
    # A property counts once code reads it (``runtime.settings``, ``self.settings``):
    # the alerts authorizer reads none of them, so its role needs no SSM access.
    used_properties: set[str] = set(properties or ())
    followed: set[tuple[Path, str]] = set()
    todo = list(entries)
    while True:
        while todo:
            path = todo.pop()
            if path in files:
                continue
            files.add(path)
            tree = _parse(path)
            if is_runtime_module(path):
                runtime_files.add(path)
                # Module-level imports (the base class, config); property bodies wait.
                top = ast.Module(body=[n for n in tree.body if not isinstance(n, ast.ClassDef)], type_ignores=[])
                todo.extend(imported_files(top, path, service, root))
            else:
                todo.extend(imported_files(tree, path, service, root))
                used_properties |= _attributes_of(tree, "runtime")
        grew = False
        for path in sorted(runtime_files):
            for cls in _runtime_classes(path):
                for item in cls.body:
                    if not isinstance(item, ast.FunctionDef) or item.name not in used_properties:
                        continue
                    if (path, item.name) in followed:
                        continue
                    followed.add((path, item.name))
                    grew = True
                    todo.extend(imported_files(item, path, service, root))
                    used_properties |= _attributes_of(item, "self")
        if not grew and not todo:
            return files


def service_files(service: str, root: Path = ROOT) -> set[Path]:
    """What a service's Lambda code uses, from its ``app.py``."""
    return reachable([root / service / "app.py"], service, root)


def batch_files(root: Path = ROOT) -> set[Path]:
    """What the batch side uses, from each of its modules."""
    return reachable(sorted((root / "batch").glob("*.py")), None, root)


def lambda_functions(service: str, root: Path = ROOT) -> dict[str, list[str]]:
    """The app's Lambda functions, as Chalice deploys them, and the Python functions
    each runs: every route in ``api_handler``; each ``@app.schedule(name=...)``,
    ``@app.lambda_function(name=...)``, ``@app.on_sqs_message(name=...)`` and each
    authorizer on its own."""
    out: dict[str, list[str]] = {}
    for node in _parse(root / service / "app.py").body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = call.func if call else decorator
            kind = target.attr if isinstance(target, ast.Attribute) else None
            if kind == "route":
                out.setdefault("api_handler", []).append(node.name)
            elif kind == "schedule":
                named = [k.value.value for k in call.keywords if k.arg == "name" and isinstance(k.value, ast.Constant)]
                out.setdefault(named[0] if named else node.name, []).append(node.name)
            elif kind == "authorizer":
                out.setdefault(node.name, []).append(node.name)
            elif kind in ("lambda_function", "on_sqs_message"):
                named = [k.value.value for k in call.keywords if k.arg == "name" and isinstance(k.value, ast.Constant)]
                out.setdefault(named[0] if named else node.name, []).append(node.name)
    return out


def decorated_functions(service: str, kind: str, root: Path = ROOT) -> set[str]:
    """The app's functions registered with ``@app.<kind>(name=...)`` (``schedule``,
    ``on_sqs_message``), by the name Chalice gives them."""
    out = set()
    for node in _parse(root / service / "app.py").body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", None) == kind:
                named = [
                    k.value.value for k in decorator.keywords if k.arg == "name" and isinstance(k.value, ast.Constant)
                ]
                out.add(named[0] if named else node.name)
    return out


def scheduled_functions(service: str, root: Path = ROOT) -> set[str]:
    """The app's functions that run on a schedule (``@app.schedule(name=...)``)."""
    return decorated_functions(service, "schedule", root)


def function_files(service: str, python_functions: list[str], root: Path = ROOT) -> set[Path]:
    """What one Lambda function's code uses: the names its Python functions (and the
    app's module-level statements, which every function runs) refer to, followed."""
    app = root / service / "app.py"
    tree = _parse(app)
    imported: dict[str, set[Path]] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                local = (alias.asname or alias.name).split(".")[0]
                single = ast.Module(body=[type(node)(**{**node.__dict__, "names": [alias]})], type_ignores=[])
                imported.setdefault(local, set()).update(imported_files(single, app, service, root))
    used: set[str] = set()
    properties: set[str] = set()
    defined = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    bodies = [n for name, n in defined.items() if name in python_functions]
    module_level = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.Import, ast.ImportFrom))]
    # Decorators run at import in every function too (routes' CORS, schedules' Cron).
    decorators = [d for n in tree.body if isinstance(n, ast.FunctionDef) for d in n.decorator_list]
    pending, seen = [*bodies, *module_level, *decorators], set()
    while pending:
        node = pending.pop()
        for child in ast.walk(node):
            if isinstance(child, ast.Name):
                used.add(child.id)
                # A helper of app.py's own that the function calls: its body counts too.
                helper = defined.get(child.id)
                if helper is not None and child.id not in seen and child.id not in python_functions:
                    seen.add(child.id)
                    pending.append(helper)
        properties |= _attributes_of(node, "runtime")
    entries = sorted({path for name in used for path in imported.get(name, ())})
    return reachable(entries, service, root, properties)
