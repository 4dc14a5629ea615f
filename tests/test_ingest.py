"""The ingestion CLI: Polygon paging, CSV, validation, idempotence, resuming, pruning."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date

import pytest

from backtest.chalicelib.lake import Lake, open_store
from shared import postgres
from tests.apps import ROOT
from tests.support import ingest


@pytest.fixture
def ingest_env(monkeypatch, database_url, lake_env, history_polygon):
    env = {
        "DATABASE_URL": database_url,
        "RECENT_AS_OF": "2024-12-31",
        "RECENT_YEARS": "5",
        "POLYGON_BASE_URL": history_polygon.url,
        "POLYGON_MAX_CALLS_PER_MIN": "1000",
        **lake_env,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    history_polygon.reset()
    yield env
    history_polygon.reset()


def count_rows(env, symbol: str | None = None) -> int:
    conn = postgres.connect(env["DATABASE_URL"], 5)
    try:
        if symbol:
            return conn.run("SELECT count(*) FROM daily_bars WHERE symbol = :s", s=symbol)[0][0]
        return conn.run("SELECT count(*) FROM daily_bars")[0][0]
    finally:
        conn.close()


def lake(env) -> Lake:
    return Lake(open_store(env["LAKE_URI"], env["S3_ENDPOINT_URL"]))


def test_polygon_ingest_follows_next_url_and_fills_both_tiers(ingest_env, history_polygon, history_bars, capsys):
    assert ingest(["--symbols", "HIST", "--from", "2010-01-01", "--to", "2024-12-31"]) == 0
    # 2500 bars at 700 a page: four requests, all of them followed.
    assert history_polygon.count("HIST", kind="aggs") == 4
    assert lake(ingest_env).read("HIST") == history_bars["HIST"]
    recent = [b for b in history_bars["HIST"] if b.day >= date(2019, 12, 31)]
    assert count_rows(ingest_env, "HIST") == len(recent)


def test_rerun_changes_nothing_and_resumes(ingest_env, history_polygon, capsys):
    args = ["--symbols", "HIST,OLD", "--from", "2000-01-01", "--to", "2024-12-31"]
    assert ingest(args) == 0
    capsys.readouterr()
    assert ingest(args) == 0
    out = capsys.readouterr().out
    assert "HIST: skipped" in out and "OLD: skipped" in out
    assert ingest(args + ["--force"]) == 0
    out = capsys.readouterr().out
    assert "HIST: 2500 rows, 0 rejected, 0 splits, 0 dividends, lake unchanged, 0 recent rows changed" in out


def test_one_failing_symbol_does_not_stop_the_others_and_a_rerun_finishes_it(ingest_env, history_polygon, capsys):
    history_polygon.set_fault("OLD", status=500)
    args = ["--symbols", "OLD,HIST", "--from", "2000-01-01", "--to", "2024-12-31"]
    assert ingest(args) == 1
    out = capsys.readouterr().out
    assert "OLD: FAILED" in out
    assert "HIST: 2500 rows" in out
    history_polygon.clear_faults()
    assert ingest(args) == 0
    out = capsys.readouterr().out
    assert "HIST: skipped" in out
    assert "OLD: 1000 rows" in out


def test_csv_rows_are_validated_and_rejections_reported(ingest_env, tmp_path, capsys):
    csv = tmp_path / "bars.csv"
    csv.write_text(
        "Symbol,Date,Open,High,Low,Close,Volume\n"
        "ACME,2024-01-02,10,11,9,10.5,1000\n"
        "ACME,2024-01-03,10,9.5,9,10.5,1000\n"  # high below close
        "ACME,2024-01-04,10,11,10.2,10.5,1000\n"  # low above open
        "ACME,2024-01-05,10,11,9,10.5,-5\n"  # negative volume
        "ACME,2024-01-02,10,11,9,10.6,1000\n"  # second row for a day
        "ACME,2099-01-02,10,11,9,10.5,1000\n"  # future
        "ACME,2024-01-08,ten,11,9,10.5,1000\n"  # unreadable
        "BETA,2024-01-02,5,6,4,5.5,10\n"
    )
    assert ingest(["--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "Rejected rows (6):" in out
    for line in [
        "ACME 2024-01-03: high is below open or close",
        "ACME 2024-01-04: low is above open or close",
        "ACME 2024-01-05: volume is negative",
        "ACME 2024-01-02: more than one row for this date",
        "ACME 2099-01-02: date is in the future",
        "ACME 2024-01-08: unreadable row",
    ]:
        assert line in out
    assert count_rows(ingest_env, "ACME") == 1
    assert count_rows(ingest_env, "BETA") == 1


def test_recent_tier_is_pruned_to_its_window_as_time_passes(ingest_env, monkeypatch, capsys):
    assert ingest(["--symbols", "HIST", "--from", "2010-01-01", "--to", "2024-12-31"]) == 0
    before = count_rows(ingest_env)
    monkeypatch.setenv("RECENT_AS_OF", "2025-12-31")  # a year later: the window starts 2020-12-31
    assert ingest(["--symbols", "HIST", "--from", "2024-01-01", "--to", "2024-12-31"]) == 0
    out = capsys.readouterr().out
    assert count_rows(ingest_env) < before
    assert "older rows pruned" in out
    conn = postgres.connect(ingest_env["DATABASE_URL"], 5)
    assert conn.run("SELECT min(day) FROM daily_bars")[0][0] >= date(2020, 12, 31)
    conn.close()
    # The lake still has all of it.
    assert lake(ingest_env).read("HIST")[0].day == date(2015, 1, 1)


@pytest.mark.parametrize("lake_env", ["file"], indirect=True)
def test_cli_entry_point_runs_as_a_module(ingest_env):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "batch.ingest",
            "--symbols",
            "OLD",
            "--from",
            "2001-01-01",
            "--to",
            "2004-12-31",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "OLD: 1000 rows" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "batch.ingest"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "give either --symbols" in bad.stderr


def test_a_429_mid_ingestion_is_waited_out_and_every_bar_is_loaded(ingest_env, history_polygon, history_bars, capsys):
    """Polygon answers one page with 429 and Retry-After: 1: the page is asked again after
    the wait, the run ends with all bars, and the retry was charged to the budget."""
    history_polygon.set_fault("HIST", status=429, retry_after=1, times=1)
    started = time.monotonic()
    assert ingest(["--symbols", "HIST", "--from", "2010-01-01", "--to", "2024-12-31"]) == 0
    assert time.monotonic() - started >= 1.0  # the Retry-After was obeyed
    assert lake(ingest_env).read("HIST") == history_bars["HIST"]
    assert history_polygon.count("HIST", kind="aggs") == 5  # four pages and the one asked again
    assert "HIST: 2500 rows" in capsys.readouterr().out


def test_a_symbol_fails_only_when_the_runs_wait_is_spent_and_says_so(ingest_env, history_polygon, capsys):
    history_polygon.set_fault("HIST", status=429, retry_after=2)  # every time
    assert ingest(["--symbols", "HIST,OLD", "--from", "2000-01-01", "--max-wait", "3"]) == 1
    out = capsys.readouterr().out
    assert "HIST: FAILED: UpstreamError: rate limited by the upstream (429, Retry-After 2 s)" in out
    assert "of the 3 s it may wait" in out
    history_polygon.reset()


def test_an_unknown_ticker_is_reported_as_unknown_not_as_zero_rows(ingest_env, history_polygon, capsys):
    assert ingest(["--symbols", "ZZZZ,OLD", "--from", "2000-01-01", "--to", "2004-12-31"]) == 1
    out = capsys.readouterr().out
    assert "ZZZZ: UNKNOWN: Polygon does not know the ticker ZZZZ" in out
    assert "ZZZZ: 0 rows" not in out
    # A known ticker with nothing in the range is not unknown.
    assert ingest(["--symbols", "OLD", "--from", "2010-01-01", "--to", "2010-12-31", "--force"]) == 0
    assert "OLD: 0 rows" in capsys.readouterr().out
