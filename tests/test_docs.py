"""The documentation site builds strictly: a broken link, a missing page or anchor, or a
page left out of the navigation fails the suite. Its generated pages come from the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.apps import ROOT


def test_the_site_builds_strictly_with_the_generated_pages(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    configuration = (site / "configuration" / "index.html").read_text()
    assert "ALERTS_MAX_RULES_PER_USER" in configuration and "COGNITO_USER_POOL_ID" in configuration
    for service, route in (("quote", "/api/quote"), ("backtest", "/api/backtest"), ("alerts", "/api/alerts/rules")):
        page = (site / "api" / service / "index.html").read_text()
        assert route in page, service


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "make run" in readme and "make test" in readme
    linked = set(re.findall(r"\]\((docs/[^)#]+)", readme))
    assert linked and all((ROOT / path).exists() for path in linked), linked
