"""The Lambda zip that ``chalice package`` builds holds shared/ and every runtime dependency."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from devtools.release.lock import read_lock
from devtools.release.packaging import check, lock_problems, ownership_problems, zip_distributions
from tests.apps import ROOT

pytestmark = pytest.mark.slow


def copy_project(tmp_path: Path, service: str) -> Path:
    root = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "deployments", "venv")
    shutil.copytree(ROOT / service, root / service, symlinks=True, ignore=ignore)
    shutil.copytree(ROOT / "shared", root / "shared", ignore=ignore)
    return root


def test_quote_zip_holds_shared_and_every_dependency(tmp_path):
    report = check("quote", tmp_path / "out")
    assert report.problems == []
    with zipfile.ZipFile(report.zip_path) as zf:
        names = set(zf.namelist())
    for module in (
        "app.py",
        "shared/__init__.py",
        "shared/quotes.py",
        "shared/cache.py",
        "shared/polygon.py",
        "massive/__init__.py",
        "redis/__init__.py",
        "tenacity/__init__.py",
        "urllib3/__init__.py",
    ):
        assert module in names
    assert not any(n.startswith(("boto3/", "botocore/", "devtools/", "tests/", "batch/")) for n in names)
    # The quote service's zip carries its own concern and shared/: no alerts or history code.
    assert {n for n in names if n.startswith("chalicelib/") and n.endswith(".py")} == own_modules("quote")
    with zipfile.ZipFile(report.zip_path) as zf:
        ours = [n for n in names if n.startswith("shared/") or n == "app.py"]
        text = "\n".join(zf.read(n).decode() for n in ours if n.endswith(".py"))
    for foreign in ("class AlertStore", "def run_check", "class HistoryService", "class Lake", "def parse_query"):
        assert foreign not in text, f"the quote zip holds {foreign!r}"


def own_modules(service: str) -> set[str]:
    """The service's own modules, as its folder holds them."""
    return {f"chalicelib/{p.name}" for p in (ROOT / service / "chalicelib").glob("*.py")}


def packages_in(zip_path: Path) -> dict[str, str]:
    with zipfile.ZipFile(zip_path) as zf:
        return zip_distributions(zf.namelist(), zf.read)


def test_the_zip_holds_exactly_the_lock_and_two_builds_agree(tmp_path):
    locked = {pin.name: pin.version for pin in read_lock(ROOT / "quote" / "requirements.txt").values()}
    first = check("quote", tmp_path / "first")
    second = check("quote", tmp_path / "second")
    assert first.problems == second.problems == []
    assert packages_in(first.zip_path) == packages_in(second.zip_path) == locked


def test_the_lock_check_reports_missing_extra_and_other_versions():
    locked = {pin.name: pin.version for pin in read_lock(ROOT / "quote" / "requirements.txt").values()}
    assert lock_problems("quote", dict(locked)) == []
    changed = {**locked, "redis": "1.0", "requests": "2.0"}
    del changed["tenacity"]
    problems = lock_problems("quote", changed)
    assert any(p.startswith("redis is 1.0 in the zip") for p in problems), problems
    assert any(p.startswith("requests==2.0 is in the zip but not") for p in problems), problems
    assert any(p.startswith("tenacity==") and "missing from the zip" in p for p in problems), problems
    # What the Lambda runtime provides is neither locked nor expected.
    assert lock_problems("quote", {**locked, "boto3": "1.0"}) == []


def test_the_ownership_check_reports_foreign_and_missing_code():
    shared = ["shared/__init__.py", "shared/config.py"]
    quote = ["app.py", *sorted(own_modules("quote"))]
    assert ownership_problems("quote", [*quote, *shared]) == []
    foreign = ownership_problems("quote", [*quote, *shared, "chalicelib/check.py"])
    assert any("not quote's" in p and "chalicelib/check.py" in p for p in foreign), foreign
    backtest_without_lake = [
        "app.py",
        *shared,
        *(f"chalicelib/{n}" for n in ("__init__.py", "service.py", "formats.py", "runtime.py", "openapi.py")),
    ]
    missing = ownership_problems("backtest", backtest_without_lake)
    assert any("missing" in p and "chalicelib/lake.py" in p for p in missing), missing
    assert any("batch/" in p for p in ownership_problems("alerts", ["batch/ingest.py"]))


def test_a_symlink_outside_vendor_is_reported(tmp_path):
    root = copy_project(tmp_path, "quote")
    (root / "quote" / "vendor" / "shared").unlink()
    # Next to app.py the import still works (chalice local would be green), but
    # chalice leaves the link out of the zip.
    (root / "quote" / "shared").symlink_to("../shared")
    report = check("quote", tmp_path / "out", root=root)
    assert any("shared/ is missing" in p for p in report.problems)


def test_a_dependency_chalice_cannot_install_fails_the_check(tmp_path):
    root = copy_project(tmp_path, "quote")
    # No cp312 wheel, and its C extension needs libsnappy headers: chalice gives up
    # on it, says so, and exits 0. (Pinned without hashes: the lock's would need one.)
    pins = read_lock(root / "quote" / "requirements.txt").values()
    lines = [f"{pin.name}=={pin.version}" for pin in pins] + ["python-snappy==0.6.1"]
    (root / "quote" / "requirements.txt").write_text("\n".join(lines) + "\n")
    report = check("quote", tmp_path / "out", root=root)
    assert any("could not install" in p for p in report.problems), report.problems
    assert any(p.startswith("python-snappy") for p in report.problems), report.problems
