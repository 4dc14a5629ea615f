"""Write shared/nyse_holidays.json: the holidays package's NYSE holidays for
shared.market_calendar.TABLE_YEARS (run after upgrading the package).

    python -m devtools.nyse_holidays
"""

from __future__ import annotations

import json

from shared.market_calendar import _TABLE, TABLE_YEARS, library_holidays


def table() -> dict[str, str]:
    out = {}
    for year in TABLE_YEARS:
        out.update({d.isoformat(): name for d, name in sorted(library_holidays(year).items())})
    return out


if __name__ == "__main__":
    _TABLE.write_text(json.dumps(table(), indent=0, sort_keys=True) + "\n")
    print(f"{_TABLE}: {len(table())} holidays, {TABLE_YEARS.start}-{TABLE_YEARS.stop - 1}")
