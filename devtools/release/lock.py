"""The lock files: exact versions and hashes, made from the ranges people edit.

| input (ranges, edited by hand) | lock (generated, installed) | resolved for |
|---|---|---|
| ``requirements-dev.in`` | ``requirements-dev.txt`` | CPython 3.12 on any platform (``--universal``) |
| ``<app>/requirements.in`` | ``<app>/requirements.txt`` | Lambda: CPython 3.12, Linux x86_64, glibc 2.34 |

``make install`` installs the development lock with every hash checked, and
``chalice package`` reads each app's ``requirements.txt``, so every zip is built
from its lock, by ``make package`` or by hand. Each app's lock is resolved under
the development lock's versions as constraints: the versions a zip ships are the
versions the tests ran against (``check`` proves it, offline).

    python -m devtools.release.lock                 # re-resolve everything to the newest the ranges allow
    python -m devtools.release.lock moto pyarrow    # move only these (and what they drag along)
    python -m devtools.release.lock --keep          # take an edited .in in, moving nothing else
    python -m devtools.release.lock --check         # the locks agree with the inputs and each other
    python -m devtools.release.lock --bootstrap     # pip-install the locked uv (make install's first step)

Only the standard library at import: ``--bootstrap`` runs before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("quote", "backtest", "alerts")
DEV_INPUT = ROOT / "requirements-dev.in"
DEV_LOCK = ROOT / "requirements-dev.txt"
# What the templates deploy: python3.12 on x86_64 (Chalice's default architecture),
# whose runtime (Amazon Linux 2023) has glibc 2.34.
LAMBDA_PLATFORM = "x86_64-manylinux_2_34"
PYTHON_VERSION = "3.12"
COMPILE_COMMAND = "make lock"


def app_input(service: str, root: Path = ROOT) -> Path:
    return root / service / "requirements.in"


def app_lock(service: str, root: Path = ROOT) -> Path:
    return root / service / "requirements.txt"


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str  # "" when the pin holds everywhere
    hashes: tuple[str, ...]


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def read_lock(path: Path) -> dict[str, Pin]:
    """A lock's pins by normalised name (comments and ``# via`` lines aside)."""
    pins: dict[str, Pin] = {}
    current: list = []

    def close():
        if current:
            name, version, marker, hashes = current
            pins[normal(name)] = Pin(normal(name), version, marker, tuple(hashes))

    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--hash="):
            current[3].append(line.removeprefix("--hash=").rstrip(" \\"))
            continue
        match = _PIN.match(line)
        if not match:
            raise ValueError(f"{path.name}: not a pinned requirement: {line!r}")
        close()
        current = [match.group(1), match.group(3), (match.group(4) or "").strip(), []]
    close()
    return pins


def _input_requirements(path: Path) -> list[str]:
    """The requirement lines of an input file, its ``-r`` includes followed."""
    out = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            out += _input_requirements((path.parent / line[3:].strip()).resolve())
        else:
            out.append(line)
    return out


def check(root: Path = ROOT) -> list[str]:
    """What is wrong with the locks, offline: every pin hashed, every input range met
    by its lock, and each app's versions the development lock's (what the tests ran)."""
    from packaging.requirements import Requirement

    problems = []
    dev = read_lock(root / DEV_LOCK.name)
    locks = {"requirements-dev.txt": (root / DEV_INPUT.name, dev)}
    for service in SERVICES:
        locks[f"{service}/requirements.txt"] = (app_input(service, root), read_lock(app_lock(service, root)))
    for lock_name, (input_path, pins) in locks.items():
        for pin in pins.values():
            if not pin.hashes:
                problems.append(f"{lock_name}: {pin.name}=={pin.version} has no hash")
        for line in _input_requirements(input_path):
            requirement = Requirement(line)
            pin = pins.get(normal(requirement.name))
            if pin is None:
                problems.append(f"{lock_name}: {requirement.name} (from {input_path.name}) is not locked")
            elif not requirement.specifier.contains(pin.version, prereleases=True):
                problems.append(
                    f"{lock_name}: {pin.name}=={pin.version} is outside {requirement} ({input_path.name}): run make lock"
                )
        if lock_name == "requirements-dev.txt":
            continue
        for pin in pins.values():
            tested = dev.get(pin.name)
            if tested is None:
                problems.append(f"{lock_name}: {pin.name} ships but is not in requirements-dev.txt, so no test ran it")
            elif tested.version != pin.version:
                problems.append(
                    f"{lock_name}: {pin.name}=={pin.version} ships, the tests run {tested.version}: run make lock"
                )
    return problems


def _uv() -> str:
    found = Path(sys.executable).parent / "uv"
    return str(found) if found.exists() else "uv"


def _compile(source: Path, output: Path, extra: list[str], upgrade: list[str]) -> None:
    command = [
        _uv(),
        "pip",
        "compile",
        source.name,
        "--output-file",
        output.name,
        "--generate-hashes",
        "--python-version",
        PYTHON_VERSION,
        "--custom-compile-command",
        COMPILE_COMMAND,
        "--quiet",
        *extra,
        *upgrade,
    ]
    # Relative names, run from the file's folder: the lock's header and its "# via"
    # lines then read the same on every machine.
    env = {**os.environ, "UV_NO_CONFIG": "1"}
    subprocess.run(command, cwd=source.parent, check=True, env=env)


def resolve(upgrade: list[str], root: Path = ROOT) -> None:
    """Re-resolve the development lock, then each app's under its versions."""
    # mkdocs requires watchdog, but only `mkdocs serve` uses it, and with watchdog installed
    # `chalice local` switches to a watchdog reloader that restarts without end: the lock
    # leaves it out (make docs builds the site and serves the folder instead).
    _compile(root / DEV_INPUT.name, root / DEV_LOCK.name, ["--universal", "--no-emit-package", "watchdog"], upgrade)
    for service in SERVICES:
        # The development lock as constraints: an app ships the versions the tests ran.
        _compile(
            app_input(service, root),
            app_lock(service, root),
            ["--python-platform", LAMBDA_PLATFORM, "--constraint", f"../{DEV_LOCK.name}"],
            upgrade,
        )


def bootstrap(root: Path = ROOT) -> None:
    """Install the locked uv into this interpreter's environment with pip, hash checked."""
    block, taking = [], False
    for line in (root / DEV_LOCK.name).read_text().splitlines():
        if re.match(r"^uv==", line):
            taking = True
        if taking:
            if line.strip().startswith("#"):
                break
            block.append(line)
            if not line.rstrip().endswith("\\"):
                break
    if not block:
        raise SystemExit(f"{DEV_LOCK.name} does not lock uv")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="uv-") as requirement:
        requirement.write("\n".join(block) + "\n")
        requirement.flush()
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--require-hashes", "--no-deps", "-r", requirement.name], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="*", help="move only these packages (default: all)")
    parser.add_argument("--keep", action="store_true", help="move nothing the inputs do not force")
    parser.add_argument("--check", action="store_true", help="check the locks offline, change nothing")
    parser.add_argument("--bootstrap", action="store_true", help="install the locked uv with pip")
    args = parser.parse_args(argv)
    if args.bootstrap:
        bootstrap()
        return 0
    if not args.check:
        if args.keep:
            upgrade = []
        elif args.packages:
            upgrade = [f"--upgrade-package={name}" for name in args.packages]
        else:
            upgrade = ["--upgrade"]
        resolve(upgrade)
    problems = check()
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems and not args.check:
        print("locked: requirements-dev.txt, " + ", ".join(f"{s}/requirements.txt" for s in SERVICES))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
