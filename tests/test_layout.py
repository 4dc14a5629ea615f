"""Each app owns its concern: ``shared/`` holds only what two or more services use."""

from __future__ import annotations

import ast
import re

import pytest

from devtools.release.imports import ROOT, SERVICES, batch_files, service_files

SHARED = sorted(p for p in (ROOT / "shared").rglob("*.py") if "__pycache__" not in p.parts)
OUTSIDE_SHARED = ("chalicelib", "batch", "devtools", "tests", *SERVICES)


def users() -> dict:
    out = {service: service_files(service) for service in SERVICES}
    out["batch"] = batch_files()  # counts as a user of the readers it imports
    return out


def test_every_shared_module_is_used_by_at_least_two_services():
    found = users()
    lonely = {}
    for path in SHARED:
        if path.name == "__init__.py":
            continue
        who = sorted(name for name, files in found.items() if path in files)
        if len(who) < 2:
            lonely[str(path.relative_to(ROOT))] = who
    assert not lonely, f"shared/ modules used by fewer than two of quote, backtest, alerts, batch: {lonely}"


@pytest.mark.parametrize("path", SHARED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shared_imports_nothing_from_an_app_or_the_batch_side(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in OUTSIDE_SHARED, f"{path.relative_to(ROOT)} imports {name}"


def test_the_rule_catches_a_module_only_one_service_uses(tmp_path):
    """The check above could pass by finding nothing: show it sees a one-service module."""
    found = users()
    condition = ROOT / "alerts" / "chalicelib" / "condition.py"
    assert [name for name, files in found.items() if condition in files] == ["alerts"]
    history_service = ROOT / "backtest" / "chalicelib" / "service.py"
    assert sorted(name for name, files in found.items() if history_service in files) == ["backtest", "batch"]
    assert ROOT / "shared" / "quotes.py" not in found["backtest"]


def test_app_code_lives_in_its_own_chalicelib():
    for service in SERVICES:
        for path in service_files(service):
            rel = path.relative_to(ROOT)
            assert rel.parts[0] in (service, "shared"), f"{service} uses {rel}"


README_PATH = re.compile(r"`((?:\.?[\w.-]+/)+[\w.-]*)`")


def documentation() -> str:
    """The README and every page of the documentation site."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return "\n".join(page.read_text() for page in pages)


def test_every_path_the_documentation_names_exists():
    named = set()
    for match in README_PATH.finditer(documentation()):
        path = match.group(1)
        if "://" in path or path.startswith(("/", "~")) or "{" in path or "=" in path or "*" in path:
            continue
        first = path.split("/")[0]
        if first in ("daily_bars", "http:", "https:", "s3:", "build"):
            continue  # lake keys, URLs and what the make targets build, not repository paths
        named.add(path.rstrip("/"))
    # ".chalice/config.json" and the like are named relative to each service's folder.
    missing = sorted(p for p in named if not (ROOT / p).exists() and not any((ROOT / s / p).exists() for s in SERVICES))
    assert named and not missing, f"the documentation names paths that do not exist: {missing}"


README_MODULE = re.compile(r"`((?:shared|batch|devtools|alerts|backtest|quote)(?:\.\w+)+)`")


def test_every_module_the_documentation_names_exists():
    from devtools.release.imports import resolve

    named = {m.group(1) for m in README_MODULE.finditer(documentation())}
    missing = []
    for name in sorted(named):
        parts = name.split(".")
        # The longest prefix that is a module; the rest must be defined in it.
        for cut in range(len(parts), 0, -1):
            path = resolve(".".join(parts[:cut]), None)
            if path:
                rest = parts[cut:]
                if rest and not re.search(rf"^(def|class) {rest[0]}\b|^{rest[0]} =", path.read_text(), re.M):
                    missing.append(name)
                break
        else:
            missing.append(name)
    assert named and not missing, f"the documentation names modules that do not exist: {missing}"
