"""One scheduled check of every enabled rule.

Reads all enabled rules (one index query per shard), quotes for the symbols
whose rules use ``price`` or ``change_pct`` (through the shared quote cache:
same Redis, single-flight and upstream budget as the quote service), and the
daily bars of every symbol in **one** PostgreSQL query; evaluates; publishes
each firing to SNS exactly once as far as SNS allows (see ``fire``).

One failing symbol or rule never stops the others; the report counts rules
checked, fired, failed and skipped, with the reasons.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from shared import postgres
from shared.indicators import ema, rsi, sma
from shared.market_calendar import NEW_YORK, latest_due_session, market_status, sessions_behind

from .condition import ConditionError, label, parse
from .store import AlertStore, now_iso

log = logging.getLogger(__name__)


class MissingData(Exception):
    """Not enough data to evaluate a rule now: it is skipped, not failed."""


@dataclass
class CheckReport:
    market: str = "open"
    rules: int = 0
    checked: int = 0
    fired: int = 0
    failed: int = 0
    skipped: int = 0
    delivery_failed: int = 0
    reasons: Counter = field(default_factory=Counter)
    fired_rules: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "market": self.market,
            "rules": self.rules,
            "checked": self.checked,
            "fired": self.fired,
            "failed": self.failed,
            "skipped": self.skipped,
            "delivery_failed": self.delivery_failed,
            "reasons": dict(self.reasons),
            "timings": self.timings,
        }


class Publisher:
    """SNS publish with an honest outcome: ``sent``, ``failed`` (certainly not
    delivered: safe to retry) or ``unknown`` (maybe delivered: never retried)."""

    def __init__(self, sns, topic_arn: str):
        self.sns = sns
        self.topic_arn = topic_arn

    def publish(self, subject: str, message: dict, attributes: dict[str, str]) -> tuple[str, str | None]:
        from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

        try:
            response = self.sns.publish(
                TopicArn=self.topic_arn,
                Subject=subject,
                Message=json.dumps(message, separators=(",", ":")),
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
            )
        except (ClientError, EndpointConnectionError, ConnectTimeoutError) as exc:
            log.warning("SNS publish failed, will retry on the next check: %s", exc)
            return "failed", None
        except ReadTimeoutError as exc:
            log.error("SNS publish timed out; it may or may not have been delivered, not retried: %s", exc)
            return "unknown", None
        return "sent", response.get("MessageId")


def subject_for(rule: dict, values: dict) -> str:
    """A readable SNS subject: ASCII, one line, at most 100 characters."""
    shown = ", ".join(f"{k} {v:.4g}" for k, v in list(values.items())[:3])
    text = f"{rule['symbol']}: {rule['condition']} ({shown})"
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return text if len(text) <= 100 else text[:97] + "..."


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


def firing_id(rule: dict, trading_day: date) -> str | None:
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
    trading_day = now.astimezone(NEW_YORK).date()
    timings: dict[str, float] = {}
    mark = [time.perf_counter()]

    def lap(phase: str) -> None:
        now = time.perf_counter()
        timings[phase] = round(now - mark[0], 3)
        mark[0] = now

    rules = store.enabled_rules()
    lap("rules_s")
    report.rules = len(rules)
    parsed = []
    for rule in rules:
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

    # Quotes only for symbols whose rules need a live price.
    quote_symbols = sorted({r["symbol"] for r, c in parsed if c.needs_quote()})
    quote_for: dict[str, dict] = {}
    quote_error: dict[str, str] = {}
    if quote_symbols:
        results, errors = quotes.get_many(quote_symbols)
        for symbol, result in results.items():
            if result.stale and result.age_s > settings.alerts_max_quote_age_s:
                quote_error[symbol] = "stale_quote"
            else:
                quote_for[symbol] = {**result.quote, "stale": result.stale, "age_s": result.age_s}
        for symbol, error in errors.items():
            quote_error[symbol] = error.code

    lap("quotes_s")

    # One query for the daily bars of every symbol, as many as its rules need.
    sessions: dict[str, int] = {}
    for rule, condition in parsed:
        need = condition.sessions_needed() + 1  # +1: the previous point, for crosses and change_pct
        sessions[rule["symbol"]] = max(sessions.get(rule["symbol"], 0), need)
    try:
        bars_for = database.run(lambda c: postgres.read_latest(c, sessions)) if sessions else {}
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

    # Firing is network-bound (DynamoDB, SNS): rules are independent, so in parallel.
    def act(decision):
        rule = decision[0]
        try:
            return rule, decide(store, publisher, *decision, trading_day)
        except Exception as exc:  # noqa: BLE001 - counted and logged below; the others go on
            log.exception("firing rule %s failed", rule.get("id"))
            return rule, f"error:{type(exc).__name__}"

    with ThreadPoolExecutor(settings.alerts_fire_concurrency, thread_name_prefix="alerts-fire") as pool:
        for rule, outcome in pool.map(act, decisions):
            if outcome in ("sent", "already_sent", "unknown"):
                report.fired += outcome == "sent"
                report.fired_rules.append({"rule": rule["id"], "symbol": rule["symbol"], "outcome": outcome})
            elif outcome == "failed":
                report.delivery_failed += 1
                report.reasons["delivery_failed"] += 1
            elif outcome and outcome.startswith("error:"):
                report.failed += 1
                report.reasons[outcome[len("error:") :]] += 1
    lap("fire_s")
    report.timings = timings
    log.info("alerts check: %s", json.dumps(report.to_dict()))
    return report


def decide(store, publisher, rule, holds: bool, values: dict, evaluation: Evaluation, trading_day) -> str | None:
    """Apply the rule's frequency; returns the firing's outcome, or None when nothing fires."""
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
    outcome = fire(store, publisher, rule, values, evaluation, trading_day, state)
    if outcome in ("already_sent", "unknown"):
        store.set_rule_state(rule, **state)  # catch up with a firing an earlier run made
    return outcome


def fire(
    store: AlertStore, publisher: Publisher, rule: dict, values: dict, evaluation: Evaluation, trading_day, state: dict
) -> str:
    """Publish one firing at most once.

    The firing record is written with a conditional put *before* publishing. A
    retried check, or a run after a crash, finds it and does not publish again:
    ``sent`` and ``publishing`` (we may have crashed after SNS accepted it) are
    never resent; ``failed`` (SNS certainly refused it) is retried.
    """
    fid = firing_id(rule, trading_day)
    fired_at = now_iso()
    event_key = f"{fired_at}#{rule['id']}"
    existing = store.claim_firing(fid, rule, event_key)
    if existing is not None:
        if existing.get("status") != "failed" or not store.retry_firing(fid):
            return "already_sent" if existing.get("status") == "sent" else "unknown"
        event_key = existing["event_key"]
        fired_at = event_key.split("#", 1)[0]
    quote = evaluation.quote or {}
    message = {
        "rule_id": rule["id"],
        "user": rule["user"],
        "symbol": rule["symbol"],
        "condition": rule["condition"],
        "frequency": rule.get("frequency"),
        "values": values,
        "bar_date": evaluation.bars[-1].day.isoformat() if evaluation.bars else None,
        "price_as_of": quote.get("as_of"),
        "price_stale": bool(quote.get("stale")),
        "fired_at": fired_at,
        "firing_id": fid,
    }
    status, message_id = publisher.publish(
        subject_for(rule, values), message, {"user": rule["user"], "symbol": rule["symbol"]}
    )
    event = {**message, "delivery": status, "message_id": message_id}
    store.record_firing(fid, status, message_id, rule, event_key, event, state if status != "failed" else None)
    return status
