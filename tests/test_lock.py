"""The locks: exact, hashed, consistent with their inputs and with each other, installed
as they say, and naming every package the code imports. No server, no network."""

from __future__ import annotations

import ast
import shutil
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import Version

from devtools.release import lock
from devtools.release.imports import ROOT, SERVICES, batch_files, service_files

# What the Lambda runtime provides, and what chalice package adds to every zip itself.
PROVIDED = {"boto3", "botocore", "chalice"}
PROJECT = {"shared", "chalicelib", "batch", "devtools", "tests", *SERVICES}


def test_the_locks_agree_with_their_inputs_and_each_other():
    assert lock.check() == []


def copy_locks(tmp_path: Path) -> Path:
    for name in ("requirements-dev.in", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    for service in SERVICES:
        (tmp_path / service).mkdir()
        for name in ("requirements.in", "requirements.txt"):
            shutil.copy(ROOT / service / name, tmp_path / service / name)
    return tmp_path


def test_the_check_finds_a_lock_out_of_step(tmp_path):
    root = copy_locks(tmp_path)
    app = root / "quote" / "requirements.txt"
    app.write_text(app.read_text().replace("tenacity==", "tenacity==0.0.1+x", 1))
    (root / "quote" / "requirements.in").write_text("tenacity>=8\nurllib3>=99\n")
    dev = root / "requirements-dev.txt"
    text = dev.read_text()
    start = text.index("\nuv==") + 1
    dev.write_text(text[:start] + "uv==0.13.9\n" + text[text.index("\n", text.index("# via", start)) + 1 :])
    problems = lock.check(root)
    assert any("tenacity==0.0.1+x" in p and "the tests run" in p for p in problems), problems
    assert any("urllib3" in p and "outside urllib3>=99" in p for p in problems), problems
    assert any("uv==0.13.9 has no hash" in p for p in problems), problems


def installed() -> dict[str, str]:
    return {lock.normal(d.metadata["Name"]): d.version for d in metadata.distributions()}


def test_this_environment_is_exactly_the_development_lock():
    """make install (what CI runs) installs the lock and nothing else."""
    environment = default_environment()
    wanted = {
        pin.name: pin.version
        for pin in lock.read_lock(ROOT / "requirements-dev.txt").values()
        if not pin.marker or Requirement(f"x; {pin.marker}").marker.evaluate(environment)  # type: ignore[union-attr]
    }
    have = installed()
    assert {n: have.get(n) for n in wanted if have.get(n) != wanted[n]} == {}
    assert sorted(set(have) - set(wanted)) == []


def test_pyjwt_is_past_the_key_set_advisory():
    """GHSA-fhv5-28vv-h8m8: PyJWKClient before 2.13 fetched the key set for every unknown kid."""
    pins = lock.read_lock(ROOT / "alerts" / "requirements.txt")
    assert Version(pins["pyjwt"].version) >= Version("2.13")


def third_party_imports(files: set[Path]) -> dict[str, set[str]]:
    """Top-level modules imported by ``files`` that are neither the standard library nor ours."""
    found: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in PROJECT and top != "__future__":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def declared(input_file: Path) -> set[str]:
    return {lock.normal(Requirement(line).name) for line in lock._input_requirements(input_file)}


@pytest.mark.parametrize("user", [*SERVICES, "batch"])
def test_every_package_the_code_imports_is_declared(user):
    """Directly imported means directly declared: a package that only arrives through
    another (urllib3 through massive) would leave with it."""
    files = batch_files() if user == "batch" else service_files(user)
    input_file = ROOT / "requirements-dev.in" if user == "batch" else ROOT / user / "requirements.in"
    names = declared(input_file)
    distributions = metadata.packages_distributions()
    undeclared = {}
    for module, where in third_party_imports(files).items():
        dists = {lock.normal(d) for d in distributions.get(module, [module])}
        if not dists & (names | PROVIDED):
            undeclared[module] = sorted(where)
    assert undeclared == {}, f"imported but not declared in {input_file.relative_to(ROOT)}: {undeclared}"


def test_the_import_check_sees_an_undeclared_package():
    found = third_party_imports({ROOT / "shared" / "polygon.py"})
    assert "urllib3" in found and "tenacity" in found
