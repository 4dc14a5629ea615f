"""Write shared/nyse_holidays.json: the holidays package's NYSE holidays and early
closes for shared.market_calendar.TABLE_YEARS (run after upgrading the package).

    python -m devtools.release.nyse_holidays
"""

from __future__ import annotations

import json

from shared.market_calendar import _TABLE, TABLE_YEARS, library_days

KINDS = ("holidays", "early_closes")


def table() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
    for kind in KINDS:
        for year in TABLE_YEARS:
            out[kind].update({d.isoformat(): name for d, name in sorted(library_days(kind, year).items())})
    return out


if __name__ == "__main__":
    written = table()
    _TABLE.write_text(json.dumps(written, indent=0, sort_keys=True) + "\n")
    counts = ", ".join(f"{len(written[kind])} {kind.replace('_', ' ')}" for kind in KINDS)
    print(f"{_TABLE}: {counts}, {TABLE_YEARS.start}-{TABLE_YEARS.stop - 1}")
