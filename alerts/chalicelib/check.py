"""One scheduled check of every enabled rule.

Reads all enabled rules (one index query per shard), quotes for the symbols
whose rules use ``price`` or ``change_pct`` (through the shared quote cache:
same Redis, single-flight and upstream budget as the quote service), and the
daily bars of every symbol in **one** PostgreSQL query; evaluates; publishes
each firing exactly once as far as SNS allows (see ``claim``), in one message per
user per check, to that user's own SNS topic (``notify.py``).

One failing symbol or rule never stops the others; the report counts rules
checked, fired, failed and skipped, with the reasons.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from shared import postgres
from shared.errors import unavailable
from shared.indicators import ema, rsi, sma
from shared.market_calendar import NEW_YORK, latest_due_session, market_status, sessions_behind
from shared.observability import CHECK_PHASES

from .condition import ConditionError, label, parse
from .notify import Publisher, messages_for
from .store import AlertStore, now_iso

log = logging.getLogger(__name__)


class MissingData(Exception):
    """Not enough data to evaluate a rule now: it is skipped, not failed."""


@dataclass
class CheckReport:
    job = "alerts-check"
    market: str = "open"
    rules: int = 0
    checked: int = 0
    fired: int = 0
    failed: int = 0
    skipped: int = 0
    delivery_failed: int = 0
    # Firings of users with no confirmed channel: recorded, not sent.
    undelivered: int = 0
    # SNS messages published: one per user with firings (see notify.py).
    messages: int = 0
    reasons: Counter = field(default_factory=Counter)
    # A dependency that stopped a whole phase (the next scheduled check tries again).
    errors: list[str] = field(default_factory=list)
    fired_rules: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    # Whether rules were evaluated (the market open, or its hours ignored).
    evaluated: bool = False
    # Symbols whose rules needed a live price, and how many of them the vendor failed.
    quoted: int = 0
    quotes_failed: int = 0

    def failure(self) -> str | None:
        """Why this check could not do its job, or None. Some rules skipped (missing data,
        an unknown symbol) is a check that did its job."""
        if self.errors:
            return "; ".join(self.errors)
        if self.reasons.get("history_unavailable") and not self.checked:
            return "the daily bars could not be read (PostgreSQL): no rule was evaluated"
        if self.quoted and self.quotes_failed == self.quoted:
            return f"the vendor failed for every one of the {self.quoted} symbols quoted"
        if self.delivery_failed and not self.fired and not self.undelivered:
            return f"every delivery failed ({self.delivery_failed} firings wait for the next check)"
        return None

    def metrics(self) -> dict[str, float]:
        """Its metrics (shared.observability.METRICS): the heartbeat always; what it
        evaluated only when it evaluated (outside market hours there is nothing to say)."""
        values: dict[str, float] = {"ChecksCompleted": 0.0 if self.failure() else 1.0}
        if self.evaluated:
            values.update(
                RulesChecked=self.checked,
                RulesFired=self.fired,
                RulesSkipped=self.skipped,
                RulesFailed=self.failed,
                DeliveryFailed=self.delivery_failed,
            )
            for phase in CHECK_PHASES:
                values[f"Phase{phase.title()}Ms"] = round(self.timings.get(f"{phase}_s", 0.0) * 1000, 1)
        return values

    def to_dict(self) -> dict:
        return {
            "market": self.market,
            "rules": self.rules,
            "checked": self.checked,
            "fired": self.fired,
            "failed": self.failed,
            "skipped": self.skipped,
            "delivery_failed": self.delivery_failed,
            "undelivered": self.undelivered,
            "messages": self.messages,
            "reasons": dict(self.reasons),
            "errors": self.errors,
            "timings": self.timings,
            "quoted": self.quoted,
            "quotes_failed": self.quotes_failed,
        }


class Evaluation:
    """Operand values for one symbol at the current and the previous point."""

    def __init__(self, bars: list, quote: dict | None):
        self.bars = bars
        self.closes = [b.close for b in bars]
        self.quote = quote
        self._memo: dict = {}

    def value(self, operand: tuple, point: int) -> float:
        # Many rules share a symbol and an indicator: compute each once per check.
        key = (operand, point)
        if key not in self._memo:
            try:
                self._memo[key] = self._value(operand, point)
            except MissingData as exc:
                self._memo[key] = exc
        found = self._memo[key]
        if isinstance(found, MissingData):
            raise found
        return found

    def _value(self, operand: tuple, point: int) -> float:
        kind, name = operand[0], operand[1]
        if kind == "field" and name in ("price", "change_pct"):
            if point == 0:
                if self.quote is None:
                    raise MissingData("no_quote")
                result = self.quote["price"] if name == "price" else self.quote.get("change_pct")
            elif name == "price":
                result = self._closes(0)[-1] if self._closes(0) else None
            else:
                closes = self._closes(0)
                result = (closes[-1] / closes[-2] - 1) * 100 if len(closes) >= 2 and closes[-2] else None
        elif kind == "field":
            bars = self.bars[: len(self.bars) - point]
            if not bars:
                raise MissingData("not_enough_history")
            result = getattr(bars[-1], name)
        else:
            period = operand[2]
            result = {"sma": sma, "ema": ema, "rsi": rsi}[name](self._closes(point), period)
        if result is None:
            raise MissingData("not_enough_history")
        return float(result)

    def _closes(self, point: int) -> list[float]:
        return self.closes[: len(self.closes) - point]


def firing_id(rule: dict, trading_day: date) -> str:
    """The identity of this firing: the same for a retry of the same check."""
    frequency = rule.get("frequency", "once_per_bar")
    if frequency == "once":
        return f"{rule['id']}:once"
    if frequency == "once_per_bar":
        return f"{rule['id']}:day:{trading_day.isoformat()}"
    return f"{rule['id']}:cycle:{int(rule.get('cycle', 0))}"


def run_check(store: AlertStore, quotes, database, publisher: Publisher, settings, now: datetime | None = None):
    now = now or datetime.now(UTC)
    report = CheckReport()
    is_open, why = market_status(now)
    if not is_open:
        report.market = why
        if not settings.alerts_ignore_market_hours:
            return report
        report.market += " (ignored: ALERTS_IGNORE_MARKET_HOURS)"
    report.evaluated = True
    trading_day = now.astimezone(NEW_YORK).date()
    timings: dict[str, float] = {}
    mark = [time.perf_counter()]

    def lap(phase: str) -> None:
        now = time.perf_counter()
        timings[phase] = round(now - mark[0], 3)
        mark[0] = now

    try:
        rules = store.enabled_rules()
    except Exception as exc:  # noqa: BLE001 - nothing to check: said in the report, tried again next check
        log.error("check stopped, the rules cannot be read: %s", exc)
        report.errors.append(f"the enabled rules could not be read: {getattr(exc, 'message', exc)}")
        return report
    lap("rules_s")
    report.rules = len(rules)
    parsed = []
    for rule in rules:
        try:
            expires = rule.get("expires_at")
            if expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) <= now:
                store.set_rule_state(rule, enabled=False, last_error="expired")
                report.skipped += 1
                report.reasons["expired"] += 1
                continue
            try:
                parsed.append((rule, parse(rule["condition"])))
            except ConditionError as exc:
                store.set_rule_state(rule, last_error=f"invalid condition: {exc.message}")
                report.failed += 1
                report.reasons["invalid_condition"] += 1
        except Exception as exc:  # noqa: BLE001 - one rule's state not written: counted, the others go on
            report.failed += 1
            report.reasons[getattr(exc, "code", type(exc).__name__)] += 1

    # Quotes only for symbols whose rules need a live price.
    quote_symbols = sorted({r["symbol"] for r, c in parsed if c.needs_quote()})
    quote_for: dict[str, dict] = {}
    quote_error: dict[str, str] = {}
    results, errors = {}, {}
    if quote_symbols:
        try:
            results, errors = quotes.get_many(quote_symbols)
        except Exception as exc:  # noqa: BLE001 - no quotes at all: their rules are skipped, the others run
            log.error("check without quotes: %s", exc)
            report.errors.append(f"quotes could not be had: {type(exc).__name__}")
            errors = {s: unavailable("upstream_unavailable", "no quote", 5, "vendor") for s in quote_symbols}
    if quote_symbols:
        for symbol, result in results.items():
            if result.stale and result.age_s > settings.alerts_max_quote_age_s:
                quote_error[symbol] = "stale_quote"
            else:
                quote_for[symbol] = {**result.quote, "stale": result.stale, "age_s": result.age_s}
        for symbol, error in errors.items():
            quote_error[symbol] = error.code
        report.quoted = len(quote_symbols)
        report.quotes_failed = sum(1 for code in quote_error.values() if code.startswith("upstream_"))

    lap("quotes_s")

    # One query for the daily bars of every symbol, as many as its rules need.
    sessions: dict[str, int] = {}
    for rule, condition in parsed:
        need = condition.sessions_needed() + 1  # +1: the previous point, for crosses and change_pct
        sessions[rule["symbol"]] = max(sessions.get(rule["symbol"], 0), need)
    try:
        bars_for = database.run(lambda c: split_adjusted_latest(c, sessions)) if sessions else {}
    except postgres.DatabaseUnavailable as exc:
        log.error("check without daily bars, PostgreSQL unavailable: %s", exc)
        bars_for = None

    lap("bars_s")

    # History must be current: a rule on bars the daily update has not brought in
    # (it failed, or fell behind) would compare today's world with an old one.
    due = latest_due_session(now, settings.recent_as_of)
    stale: dict[str, str] = {}
    behind_by_last: dict = {}  # most symbols end on the same day: count its sessions once
    for symbol, bars in (bars_for or {}).items():
        last = bars[-1].day if bars else None
        if last not in behind_by_last:
            behind_by_last[last] = sessions_behind(last, due)
        behind = behind_by_last[last]
        if behind is not None and behind > settings.alerts_max_history_lag:
            stale[symbol] = (
                f"stale_history: the newest stored bar is {bars[-1].day}, {behind} session(s) behind "
                f"{due} (at most {settings.alerts_max_history_lag} allowed)"
            )

    evaluations: dict[str, Evaluation] = {}
    decisions = []
    for rule, condition in parsed:
        symbol = rule["symbol"]
        try:
            if bars_for is None:
                raise MissingData("history_unavailable")
            if symbol in stale:
                raise MissingData("stale_history")
            if condition.needs_quote() and symbol in quote_error:
                raise MissingData(quote_error[symbol])
            evaluation = evaluations.get(symbol)
            if evaluation is None:
                evaluation = evaluations[symbol] = Evaluation(bars_for.get(symbol, []), quote_for.get(symbol))
            holds = condition.evaluate(evaluation.value)
            values = {label(op): evaluation.value(op, 0) for op in condition.operands()}
            report.checked += 1
            decisions.append((rule, holds, values, evaluation))
        except MissingData as exc:
            reason = str(exc)
            # An unknown symbol will not fix itself: that is a failure to report, not a skip.
            if reason == "unknown_symbol":
                report.failed += 1
                store.set_rule_state(rule, last_error="unknown symbol")
            else:
                report.skipped += 1
                # Said on the rule, once: the text changes only when the due session does.
                if reason == "stale_history" and rule.get("last_error") != stale[symbol]:
                    store.set_rule_state(rule, last_error=stale[symbol])
            report.reasons[reason] += 1
        except Exception as exc:  # noqa: BLE001 - one rule's failure never stops the others
            log.exception("rule %s failed", rule.get("id"))
            report.failed += 1
            report.reasons[type(exc).__name__] += 1
    lap("evaluate_s")

    # Firing is network-bound (DynamoDB, SNS): rules, and users, are independent, so in parallel.
    # Nothing that can fail stands between claiming a firing and publishing it: what the
    # publish needs (the user's topic and channels) is read first, so a claimed firing
    # is always published, or recorded as failed, or (after a crash) never resent.
    def outcome_of(rule, outcome: str) -> None:
        if outcome in ("sent", "already_sent", "unknown", "no_channel"):
            report.fired += outcome == "sent"
            report.undelivered += outcome == "no_channel"
            report.fired_rules.append({"rule": rule["id"], "symbol": rule["symbol"], "outcome": outcome})
        elif outcome == "failed":
            report.delivery_failed += 1
            report.reasons["delivery_failed"] += 1
        elif outcome.startswith("error:"):
            report.failed += 1
            report.reasons[outcome[len("error:") :]] += 1

    def guarded(work, rule):
        try:
            return work()
        except Exception as exc:  # noqa: BLE001 - counted and logged; the others go on
            log.exception("firing rule %s failed", rule.get("id"))
            return f"error:{type(exc).__name__}"

    with ThreadPoolExecutor(settings.alerts_fire_concurrency, thread_name_prefix="alerts-fire") as pool:
        wanting = []
        states = pool.map(lambda d: guarded(lambda: firing_state(store, d[0], d[1], trading_day), d[0]), decisions)
        for decision, state in zip(decisions, states, strict=True):
            if isinstance(state, str):
                outcome_of(decision[0], state)
            elif state is not None:
                wanting.append((decision, state))
        users = sorted({decision[0]["user"] for decision, _ in wanting})
        delivery = dict(zip(users, pool.map(lambda u: delivery_for(store, publisher, u), users), strict=True))

        def take(item):
            (rule, _, values, evaluation), state = item
            if delivery[rule["user"]] is None:
                return "failed"  # nothing claimed: the next check fires it again
            return guarded(lambda: claim(store, rule, values, evaluation, trading_day, state), rule)

        by_user: dict[str, list[Firing]] = {}
        for (decision, state), claimed in zip(wanting, pool.map(take, wanting), strict=True):
            rule = decision[0]
            if isinstance(claimed, Firing):
                by_user.setdefault(rule["user"], []).append(claimed)
                continue
            if claimed in ("already_sent", "unknown"):
                guarded(lambda rule=rule, state=state: store.set_rule_state(rule, **state), rule)
            outcome_of(rule, claimed)
        sends = [
            send
            for part in pool.map(lambda item: publish(publisher, item[0], delivery[item[0]], item[1]), by_user.items())
            for send in part
        ]
        report.messages = sum(1 for status, _, _ in sends if status in ("sent", "unknown"))
        records = [(status, message_id, firing) for status, message_id, part in sends for firing in part]

        def record(item):
            status, message_id, firing = item
            channels = delivery[firing.rule["user"]]["confirmed"]
            event = {**firing.entry, "delivery": status, "message_id": message_id, "channels": channels}
            rule_state = firing.state if status != "failed" else None
            store.record_firing(firing.firing_id, status, message_id, firing.rule, firing.event_key, event, rule_state)
            return status

        for (_, _, firing), outcome in zip(records, pool.map(lambda r: guarded(lambda: record(r), r[2].rule), records)):
            outcome_of(firing.rule, outcome)
    lap("fire_s")
    report.timings = timings
    return report


@dataclass
class Firing:
    """A firing this check has claimed and must now deliver and record."""

    rule: dict
    firing_id: str
    event_key: str
    entry: dict  # what the message says of it
    state: dict  # the rule's trigger state once it is delivered


def split_adjusted_latest(conn, sessions: dict[str, int]) -> dict[str, list]:
    """The last bars of each symbol, split-adjusted as rules are evaluated (bars are stored
    raw: a split would otherwise look like a crash of the price, and fire ``close < ...``):
    three queries on one connection whatever the number of symbols."""
    from shared.adjustment import adjust

    bars = postgres.read_latest(conn, sessions)
    symbols = sorted(bars)
    actions = postgres.read_actions(conn, symbols)
    bases = postgres.symbol_bases(conn, symbols)
    return {s: adjust(b, actions[s], "split", bases.get(s, ("raw", True))[0]) for s, b in bars.items()}


def firing_state(store, rule, holds: bool, trading_day) -> dict | None:
    """Apply the rule's frequency: the rule's trigger state once this firing is delivered,
    or None when nothing fires (an ``on_change`` rule that turned false re-arms here)."""
    frequency = rule.get("frequency", "once_per_bar")
    if frequency == "on_change":
        armed = bool(rule.get("armed", True))
        if not holds:
            if not armed:  # the condition turned false: re-arm for the next time it turns true
                store.set_rule_state(rule, armed=True, cycle=int(rule.get("cycle", 0)) + 1)
            return None
        if not armed:
            return None
    elif not holds:
        return None
    elif frequency == "once_per_bar" and rule.get("last_fired_day") == trading_day.isoformat():
        return None  # fired today already: no need to even ask the firing record
    state = {"last_fired_at": now_iso(), "last_fired_day": trading_day.isoformat(), "last_error": None}
    if frequency == "once":
        state["enabled"] = False
    elif frequency == "on_change":
        state["armed"] = False
    return state


def delivery_for(store: AlertStore, publisher: Publisher, user: str) -> dict | None:
    """Where a user's firings go: their topic, its confirmed channels and their webhook
    signing secret; None when that cannot be read now (nothing is claimed then)."""
    try:
        meta = store.user_meta(user)
        topic = meta.get("topic_arn")
        confirmed = publisher.confirmed_channels(topic) if topic else None
    except Exception as exc:  # noqa: BLE001 - DynamoDB or SNS unreachable: try again next check
        log.warning("cannot read where a user's alerts go, their firings wait for the next check: %s", exc)
        return None
    return {
        "topic_arn": topic if confirmed else None,
        "confirmed": confirmed or 0,
        "secret": meta.get("webhook_secret"),
    }


def claim(store: AlertStore, rule: dict, values: dict, evaluation: Evaluation, trading_day, state: dict):
    """Take a firing for this check, at most once: a claimed ``Firing``, or the outcome
    of the firing an earlier or concurrent run took.

    The firing record is written with a conditional put *before* anything is
    published. A retried check, a concurrent one, or a run after a crash finds it
    and does not publish again: ``sent``, ``no_channel`` and ``publishing`` (we may
    have crashed after SNS accepted it) are never resent; ``failed`` (SNS
    certainly refused it) is taken back and retried.
    """
    fid = firing_id(rule, trading_day)
    fired_at = now_iso()
    event_key = f"{fired_at}#{rule['id']}"
    existing = store.claim_firing(fid, rule, event_key)
    if existing is not None:
        if existing.get("status") != "failed" or not store.retry_firing(fid):
            return "already_sent" if existing.get("status") in ("sent", "no_channel") else "unknown"
        event_key = existing["event_key"]
        fired_at = event_key.split("#", 1)[0]
    quote = evaluation.quote or {}
    entry = {
        "firing_id": fid,
        "rule_id": rule["id"],
        "symbol": rule["symbol"],
        "condition": rule["condition"],
        "frequency": rule.get("frequency"),
        "values": values,
        "bar_date": evaluation.bars[-1].day.isoformat() if evaluation.bars else None,
        "price_as_of": quote.get("as_of"),
        "price_stale": bool(quote.get("stale")),
        "fired_at": fired_at,
    }
    return Firing(rule, fid, event_key, entry, state)


def publish(publisher: Publisher, user: str, delivery: dict, firings: list[Firing]) -> list[tuple]:
    """One user's claimed firings of this check, as one message to their topic (several
    only past SNS's size limit): (status, message id, the firings it carried) each.
    A user without a confirmed channel gets none: ``no_channel``."""
    if not delivery["topic_arn"]:
        return [("no_channel", None, firings)]
    by_id = {f.firing_id: f for f in firings}
    out = []
    for subject, message, entries in messages_for(user, [f.entry for f in firings], delivery["secret"]):
        status, message_id = publisher.publish(delivery["topic_arn"], subject, message)
        out.append((status, message_id, [by_id[e["firing_id"]] for e in entries]))
    return out
