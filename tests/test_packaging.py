"""The Lambda zip that ``chalice package`` builds holds shared/ and every runtime dependency."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from devtools.packaging import check, ownership_problems
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
    assert {n for n in names if n.startswith("chalicelib/") and n.endswith(".py")} == {
        "chalicelib/__init__.py",
        "chalicelib/openapi.py",
    }
    with zipfile.ZipFile(report.zip_path) as zf:
        ours = [n for n in names if n.startswith("shared/") or n == "app.py"]
        text = "\n".join(zf.read(n).decode() for n in ours if n.endswith(".py"))
    for foreign in ("class AlertStore", "def run_check", "class HistoryService", "class Lake", "def parse_query"):
        assert foreign not in text, f"the quote zip holds {foreign!r}"


def test_the_ownership_check_reports_foreign_and_missing_code():
    shared = ["shared/__init__.py", "shared/config.py"]
    quote = ["app.py", "chalicelib/__init__.py", "chalicelib/openapi.py"]
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
    # on it, says so, and exits 0.
    with open(root / "quote" / "requirements.txt", "a") as f:
        f.write("python-snappy==0.6.1\n")
    report = check("quote", tmp_path / "out", root=root)
    assert any("could not install" in p for p in report.problems), report.problems
