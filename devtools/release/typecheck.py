"""``make lint``'s type check: mypy over each app, then ``shared/`` and ``batch/``.

Each app is checked from its own folder, as Lambda imports it: all three have an
``app`` module and a ``chalicelib`` package, which one mypy run cannot tell apart.
``shared`` is found beside them, as ``vendor/shared`` finds it in a zip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("quote", "backtest", "alerts")


def runs() -> list[tuple[Path, list[str]]]:
    """(folder, what mypy checks there) for each run."""
    apps = [(ROOT / service, ["app.py", "chalicelib"]) for service in SERVICES]
    return [*apps, (ROOT, ["shared", "batch"])]


def main() -> int:
    mypy = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    failed = False
    for folder, targets in runs():
        name = folder.name if folder != ROOT else "shared, batch"
        cache = ROOT / ".mypy_cache" / (folder.name if folder != ROOT else "root")
        env = {**os.environ, "MYPYPATH": str(ROOT)}
        proc = subprocess.run([*mypy, "--cache-dir", str(cache), *targets], cwd=folder, env=env)
        print(f"mypy {name}: {'ok' if proc.returncode == 0 else 'FAILED'}", flush=True)
        failed |= proc.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
