"""One shard of a check: the enabled rules of its symbols, evaluated, and their firings
claimed for delivery.

Each symbol's rules are one index query; every symbol's indicator state is **one**
PostgreSQL query for the whole shard (``shared.postgres.read_states``); quotes came
with the message. A firing is claimed with a conditional put of its record before
anything is sent (``store.claim_firing``): a shard run twice (SQS delivers at least
once), two workers on one shard, or a worker killed halfway claim each firing once,
and what one run claimed a later run's delivery still sends. The shard's counts are
added to the check's record once (``checks.CheckStore.shard_done``); whoever counts the
last shard starts the check's deliveries.

One failing symbol or rule never stops the others: the counts say what was checked,
skipped (with the reasons) and failed.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum

from shared import postgres
from shared.indicators import IndicatorState
from shared.market_calendar import sessions_behind

from .checks import CheckStore
from .condition import ConditionError, label, parse
from .evaluation import Evaluation, MissingData, firing_id
from .records import Rule
from .store import AlertStore, now_iso
from .work import Delivery, Shard, WorkQueue

log = logging.getLogger(__name__)


class Claim(StrEnum):
    """What claiming a firing for this check's delivery found."""

    CLAIMED = "claimed"  # this check delivers it
    DELIVERED = "delivered"  # sent (or maybe sent) by an earlier check: the rule's state catches up
    WAITING = "waiting"  # another check's delivery of it is still to come


@dataclass(frozen=True)
class Failed:
    """A firing that could not be claimed: counted as failed, with why."""

    reason: str


@dataclass(frozen=True)
class Decision:
    """A rule that fires now: its trigger state once delivered, its operands' values and
    the evaluation (indicator state and quote) they came from."""

    rule: Rule
    after: dict
    values: dict
    evaluation: Evaluation


@dataclass
class Subject:
    """One symbol of a shard as its rules are decided: its indicator state, whether the
    states could be read at all, why its history is stale (None: it is not), and the
    evaluation its rules share (made on first use)."""

    symbol: str
    state: IndicatorState | None
    no_states: bool
    stale: str | None
    evaluations: dict[str, Evaluation] = field(default_factory=dict)


def bucket_of(user: str, buckets: int) -> int:
    """A user's delivery bucket: all of a user's firings in a check go in one message."""
    return int(hashlib.sha256(user.encode()).hexdigest()[:8], 16) % buckets


class ShardRun:
    """What one run of a shard counts."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.reasons: Counter = Counter()

    def skip(self, reason: str) -> None:
        self.counts["skipped"] += 1
        self.reasons[reason] += 1

    def fail(self, reason: str) -> None:
        self.counts["failed"] += 1
        self.reasons[reason] += 1


def run_shard(shard: Shard, store: AlertStore, checks: CheckStore, database, work: WorkQueue, settings) -> ShardRun:
    run = ShardRun()
    with ThreadPoolExecutor(settings.alerts_fire_concurrency, thread_name_prefix="alerts-shard") as pool:
        rules_by_symbol = dict(zip(shard.symbols, pool.map(store.rules_of, shard.symbols), strict=True))
        try:
            states = database.run(lambda c: postgres.read_states(c, shard.symbols))
        except postgres.DatabaseUnavailable as exc:
            log.error("shard without indicator states, PostgreSQL unavailable: %s", exc)
            states = None
        decisions = evaluate(shard, rules_by_symbol, states, store, settings, run)
        day = date.fromisoformat(shard.day)
        outcomes = pool.map(lambda d: guarded(lambda: claim(store, shard, d, day), d.rule), decisions)
        for outcome in outcomes:
            if isinstance(outcome, Failed):
                run.fail(outcome.reason)
    finish(shard.check, shard.number, run, checks, work)
    return run


def guarded(work, rule) -> Claim | Failed:
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 - counted and logged; the others go on
        log.exception("firing rule %s failed", rule.id)
        return Failed(getattr(exc, "code", None) or type(exc).__name__)


def evaluate(shard: Shard, rules_by_symbol: dict, states, store: AlertStore, settings, run: ShardRun) -> list[Decision]:
    """A decision for each rule that fires now; the others counted."""
    now = datetime.now(UTC)
    due = date.fromisoformat(shard.due)
    evaluations: dict[str, Evaluation] = {}
    decisions: list[Decision] = []
    for symbol, rules in rules_by_symbol.items():
        state = (states or {}).get(symbol)
        stale = None
        if state is not None:
            behind = sessions_behind(state.day, due)
            if behind is not None and behind > settings.alerts_max_history_lag:
                stale = (
                    f"stale_history: the newest stored bar is {state.day}, {behind} session(s) behind "
                    f"{due} (at most {settings.alerts_max_history_lag} allowed)"
                )
        subject = Subject(symbol, state, states is None, stale, evaluations)
        for rule in rules:
            run.counts["rules_seen"] += 1
            try:
                decision = decide(rule, subject, shard, store, now, run)
            except Exception as exc:  # noqa: BLE001 - one rule's failure never stops the others
                log.exception("rule %s failed", rule.id)
                run.fail(getattr(exc, "code", None) or type(exc).__name__)
                continue
            if decision is not None:
                decisions.append(decision)
    return decisions


def decide(
    rule: Rule, subject: Subject, shard: Shard, store: AlertStore, now: datetime, run: ShardRun
) -> Decision | None:
    """Whether ``rule`` fires now (a decision) or not (None, counted in ``run``)."""
    symbol, state, stale, evaluations = subject.symbol, subject.state, subject.stale, subject.evaluations
    expires = rule.expires_at
    if expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) <= now:
        store.set_rule_state(rule, enabled=False, last_error="expired")
        run.skip("expired")
        return None
    try:
        condition = parse(rule.condition)
    except ConditionError as exc:
        store.set_rule_state(rule, last_error=f"invalid condition: {exc.message}")
        run.fail("invalid_condition")
        return None
    live = condition.needs_quote()
    try:
        if subject.no_states:
            raise MissingData("history_unavailable")
        if live and symbol in shard.quote_errors:
            raise MissingData(shard.quote_errors[symbol])
        if stale:
            raise MissingData("stale_history")
        evaluation = evaluations.get(symbol)
        if evaluation is None:
            evaluation = evaluations[symbol] = Evaluation(state, shard.quotes.get(symbol))
        holds = condition.evaluate(lambda op, point: evaluation.value(op, point, live))
        values = {label(op): evaluation.value(op, 0, live) for op in condition.operands()}
    except MissingData as exc:
        reason = str(exc)
        if reason == "unknown_symbol":  # it will not fix itself: a failure to report, not a skip
            run.fail(reason)
            store.set_rule_state(rule, last_error="unknown symbol")
        else:
            run.skip(reason)
            if reason == "stale_history" and rule.last_error != stale:
                store.set_rule_state(rule, last_error=stale)  # said on the rule, once
        return None
    run.counts["checked"] += 1
    after = firing_state(store, rule, holds, date.fromisoformat(shard.day))
    if after is None:
        return None
    return Decision(rule, after, values, evaluation)


def firing_state(store, rule: Rule, holds: bool, trading_day: date) -> dict | None:
    """Apply the rule's frequency: the rule's trigger state once this firing is delivered,
    or None when nothing fires (an ``on_change`` rule that turned false re-arms here)."""
    frequency = rule.frequency
    if frequency == "on_change":
        armed = rule.armed
        if not holds:
            if not armed:  # the condition turned false: re-arm for the next time it turns true
                store.set_rule_state(rule, armed=True, cycle=rule.cycle + 1)
            return None
        if not armed:
            return None
    elif not holds:
        return None
    elif frequency == "once_per_bar" and rule.last_fired_day == trading_day.isoformat():
        return None  # fired today already: no need to even ask the firing record
    state: dict[str, object] = {
        "last_fired_at": now_iso(),
        "last_fired_day": trading_day.isoformat(),
        "last_error": None,
    }
    if frequency == "once":
        state["enabled"] = False
    elif frequency == "on_change":
        state["armed"] = False
    return state


def claim(store: AlertStore, shard: Shard, decision: Decision, trading_day: date) -> Claim:
    """Claim the firing for this check's delivery, or say what became of it before."""
    rule, after, values, evaluation = decision.rule, decision.after, decision.values, decision.evaluation
    fid = firing_id(rule, trading_day)
    fired_at = now_iso()
    quote = evaluation.quote or {}
    bucket = bucket_of(rule.user, shard.buckets)
    entry = {
        "firing_id": fid,
        "rule_id": rule.id,
        "symbol": rule.symbol,
        "condition": rule.condition,
        "frequency": rule.frequency,
        "values": values,
        "bar_date": evaluation.state.day.isoformat() if evaluation.state else None,
        "price_as_of": quote.get("as_of"),
        "price_stale": bool(quote.get("stale")),
        "fired_at": fired_at,
    }
    record = {
        "firing_id": fid,
        "check": shard.check,
        "bucket": bucket,
        "gsi2pk": f"PENDING#{shard.check}#{bucket}",
        "gsi2sk": f"{rule.user}#{fid}",
        "user": rule.user,
        "event_key": f"{fired_at}#{rule.id}",
        "rule": rule.snapshot(),
        "state": after,
        "entry": entry,
    }
    existing = store.claim_firing(record)
    if existing is None:
        return Claim.CLAIMED
    status = existing.get("status")
    if status in ("failed", "pending") and existing.get("check") != shard.check:
        # SNS refused it last time, or its check's delivery never came: this check sends
        # it, as the same event (its first firing time).
        entry["fired_at"] = existing["event_key"].split("#", 1)[0]
        if store.retry_firing(record, was=status):
            return Claim.CLAIMED
    if status in ("sent", "no_channel", "publishing", "unknown"):
        store.set_rule_state(rule, **after)
    return Claim.DELIVERED if status != "pending" else Claim.WAITING


def finish(check: str, number: int, run: ShardRun, checks: CheckStore, work: WorkQueue) -> None:
    """Count the shard once; whoever counts the last one starts the deliveries (again, if
    the one who did died before sending them: a delivery twice sends nothing twice)."""
    counts = {k: v for k, v in run.counts.items() if k != "rules_seen"}
    record = checks.shard_done(check, number, counts, dict(run.reasons))
    if record is None:
        record = checks.get(check)
        if record is None or record.get("status") == "completed":
            return
    if len(record.get("done", ())) >= int(record.get("shards", 0)):
        work.send([Delivery(check, b) for b in range(int(record.get("buckets", 1)))])
