"""Whether a rule fires, decided without a server: frequencies, expiry, missing data,
and the identity a firing is claimed under."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from alerts.chalicelib.evaluation import firing_id
from alerts.chalicelib.records import Rule
from alerts.chalicelib.shard import Decision, ShardRun, Subject, decide, firing_state
from alerts.chalicelib.work import Shard
from backtest.chalicelib.indicator_states import compute
from shared.bars import DailyBar

DAY = date(2013, 3, 1)
NOW = datetime(2013, 3, 1, 15, tzinfo=UTC)


class RecordingStore:
    """The one store call a decision makes: a rule's state, recorded."""

    def __init__(self):
        self.states: list[tuple[str, dict]] = []

    def set_rule_state(self, rule, **changes):
        self.states.append((rule.id, changes))


def rising(count: int = 60, last_day: date = DAY) -> list[DailyBar]:
    """Closes 1, 2, ..., count on consecutive days ending ``last_day``."""
    first = last_day - timedelta(days=count - 1)
    return [DailyBar(first + timedelta(days=i), i + 1.0, i + 1.0, i + 1.0, i + 1.0, 1000) for i in range(count)]


STATE = compute("AAPL", rising(), "")


def a_rule(condition: str = "close > sma(5)", **more) -> Rule:
    return Rule(user="alice", id="r1", symbol="AAPL", condition=condition, enabled=True, **more)


def shard(**more) -> Shard:
    return Shard("check-1", 0, DAY.isoformat(), DAY.isoformat(), ["AAPL"], **more)


def decided(rule, *, state=STATE, no_states=False, stale=None, the_shard=None):
    store, run = RecordingStore(), ShardRun()
    decision = decide(rule, Subject("AAPL", state, no_states, stale), the_shard or shard(), store, NOW, run)
    return decision, store.states, run


def test_a_rule_that_holds_fires_with_its_values_and_its_next_state():
    decision, states, run = decided(a_rule())
    assert isinstance(decision, Decision)
    assert decision.values == {"close": 60.0, "sma(5)": 58.0}
    assert decision.after["last_fired_day"] == DAY.isoformat() and decision.after["last_error"] is None
    assert states == [] and run.counts["checked"] == 1


def test_a_rule_that_does_not_hold_does_not_fire():
    decision, states, run = decided(a_rule("close < sma(5)"))
    assert decision is None and states == [] and run.counts["checked"] == 1


def test_once_per_bar_fires_once_a_day():
    decision, _, _ = decided(a_rule(frequency="once_per_bar", last_fired_day=DAY.isoformat()))
    assert decision is None
    decision, _, _ = decided(a_rule(frequency="once_per_bar", last_fired_day="2013-02-28"))
    assert decision is not None


def test_once_disables_the_rule_when_delivered():
    decision, _, _ = decided(a_rule(frequency="once"))
    assert decision.after["enabled"] is False


def test_on_change_fires_when_it_turns_true_and_rearms_when_it_turns_false():
    store = RecordingStore()
    armed = a_rule(frequency="on_change", armed=True, cycle=3)
    assert firing_state(store, armed, True, DAY)["armed"] is False
    fired = replace(armed, armed=False)
    assert firing_state(store, fired, True, DAY) is None  # still true: once per change
    assert store.states == []
    assert firing_state(store, fired, False, DAY) is None
    assert store.states == [("r1", {"armed": True, "cycle": 4})]


def test_an_expired_rule_is_disabled_and_skipped():
    decision, states, run = decided(a_rule(expires_at="2013-03-01T14:00:00Z"))
    assert decision is None
    assert states == [("r1", {"enabled": False, "last_error": "expired"})]
    assert run.reasons == {"expired": 1}


def test_an_invalid_stored_condition_fails_and_says_so_on_the_rule():
    decision, states, run = decided(a_rule("close <"))
    assert decision is None and run.counts["failed"] == 1 and run.reasons == {"invalid_condition": 1}
    assert states[0][1]["last_error"].startswith("invalid condition: syntax error")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"no_states": True}, "history_unavailable"),
        ({"state": None}, "not_enough_history"),
        ({"the_shard": shard(quote_errors={"AAPL": "upstream_unavailable"})}, "upstream_unavailable"),
    ],
)
def test_missing_data_skips_a_rule_with_the_reason(kwargs, reason):
    decision, _, run = decided(a_rule("price > 1"), **kwargs)
    assert decision is None and run.reasons == {reason: 1} and run.counts["skipped"] == 1


def test_a_stale_history_is_said_on_the_rule_once():
    stale = "the newest bar is 2013-02-20"
    decision, states, run = decided(a_rule(), stale=stale)
    assert decision is None and run.reasons == {"stale_history": 1}
    assert states == [("r1", {"last_error": stale})]
    _, states, _ = decided(a_rule(last_error=stale), stale=stale)
    assert states == []


def test_an_unknown_symbol_is_a_failure_not_a_skip():
    decision, states, run = decided(a_rule("price > 1"), the_shard=shard(quote_errors={"AAPL": "unknown_symbol"}))
    assert decision is None and run.counts["failed"] == 1
    assert states == [("r1", {"last_error": "unknown symbol"})]


def test_a_live_rule_reads_the_quote():
    quote = {"price": 100.0, "as_of": "2013-03-01T15:00:00Z", "change_pct": 66.7}
    decision, _, _ = decided(a_rule("price > 99"), the_shard=shard(quotes={"AAPL": quote}))
    assert decision.values == {"price": 100.0}


def test_a_firing_is_identified_by_its_frequency():
    assert firing_id(a_rule(frequency="once"), DAY) == "r1:once"
    assert firing_id(a_rule(), DAY) == "r1:day:2013-03-01"
    assert firing_id(a_rule(frequency="on_change", cycle=4), DAY) == "r1:cycle:4"


def test_a_rule_read_from_its_item_and_its_firing_snapshot_is_the_same_rule():
    item = {
        "pk": "USER#alice",
        "sk": "RULE#r1",
        "type": "rule",
        "id": "r1",
        "user": "alice",
        "symbol": "AAPL",
        "condition": "close > sma(5)",
        "enabled": True,
        "cycle": 2,
        "gsi1pk": "ENABLED#AAPL",
    }
    rule = Rule.from_item(item)
    assert rule.frequency == "once_per_bar" and rule.armed and rule.cycle == 2
    assert rule.key == {"pk": "USER#alice", "sk": "RULE#r1"}
    again = Rule.from_item({**rule.snapshot(), "user": "alice"})
    assert (again.id, again.symbol, again.condition, again.enabled) == (rule.id, rule.symbol, rule.condition, True)
