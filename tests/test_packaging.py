"""The Lambda zip that ``chalice package`` builds holds shared/ and every runtime dependency."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from devtools.packaging import check
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
        "massive/__init__.py",
        "redis/__init__.py",
        "tenacity/__init__.py",
        "urllib3/__init__.py",
    ):
        assert module in names
    assert not any(n.startswith(("boto3/", "botocore/", "devtools/", "tests/")) for n in names)


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
