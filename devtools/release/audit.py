"""Known advisories in the runtime locks, as far as PyPI says (``make audit``).

PyPI's JSON API lists the advisories (from the OSV database) that affect a
project's newest release. So each runtime package is reported as: newest and
clean, newest with advisories, or behind the newest (its advisories unknown here,
with the reason it is held back to be looked up). pip-audit asks PyPI for each
exact version, an endpoint this workplace's registry mirror does not serve.
"""

from __future__ import annotations

import json
import sys
import urllib.request

from devtools.release.lock import ROOT, SERVICES, app_lock, read_lock


def newest(name: str) -> tuple[str, list[dict]]:
    with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=30) as response:
        data = json.load(response)
    return data["info"]["version"], data.get("vulnerabilities") or []


def main() -> int:
    pins: dict[str, str] = {}
    for service in SERVICES:
        pins.update({pin.name: pin.version for pin in read_lock(app_lock(service, ROOT)).values()})
    flagged = 0
    for name, version in sorted(pins.items()):
        latest, advisories = newest(name)
        if version != latest:
            print(f"{name}=={version}: behind the newest ({latest}); its advisories are not known here")
        elif advisories:
            flagged += 1
            ids = ", ".join(a.get("id", "?") for a in advisories)
            print(f"{name}=={version}: ADVISORIES {ids}")
        else:
            print(f"{name}=={version}: newest, no known advisory")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
