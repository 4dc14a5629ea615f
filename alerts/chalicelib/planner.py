"""The scheduled check's first step: plan it and hand it out.

Every 15 minutes the planner (the ``alerts-check`` function) decides whether the market
is open (NYSE hours, early closes too), reads which symbols have enabled rules (the
registry: eight small queries, however many rules), quotes the symbols whose rules read
the live price (through the shared quote cache: at most one vendor call per 250
symbols), packs the symbols into shards (all of a symbol's rules in one shard; at most
``ALERTS_SHARD_RULES`` rules and 250 symbols each), writes the check's record and sends
one message per shard. Workers do the rest (``shard.py``, ``delivery.py``).

A check the previous one has not finished is reported late (the ``ChecksLate`` metric
and the report's ``late``) and its firings still waiting are delivered now.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from shared.errors import unavailable
from shared.market_calendar import NEW_YORK, latest_due_session, market_status

from .checks import CheckReport, CheckStore
from .work import Delivery, Shard, WorkQueue

log = logging.getLogger(__name__)

MAX_SYMBOLS_PER_SHARD = 250


def pack(registry: dict[str, tuple[int, int]], max_rules: int) -> list[list[str]]:
    """Symbols in shards of at most ``max_rules`` rules (a symbol with more has one of its
    own) and 250 symbols, in name order so a check's shards are the same from run to run."""
    shards: list[list[str]] = []
    current: list[str] = []
    rules = 0
    for symbol in sorted(registry):
        count = registry[symbol][0]
        if current and (rules + count > max_rules or len(current) >= MAX_SYMBOLS_PER_SHARD):
            shards.append(current)
            current, rules = [], 0
        current.append(symbol)
        rules += count
    if current:
        shards.append(current)
    return shards


def quotes_for(quotes, symbols: list[str], settings, report: CheckReport) -> tuple[dict, dict]:
    """(symbol -> the quote a rule reads, symbol -> why there is none), in one vendor call
    per chunk of 250 symbols at most (``QuoteService.get_many``)."""
    usable: dict[str, dict] = {}
    errors: dict[str, str] = {}
    if not symbols:
        return usable, errors
    try:
        results, failures = quotes.get_many(symbols)
    except Exception as exc:  # noqa: BLE001 - no quotes at all: their rules are skipped, the others run
        log.error("check without quotes: %s", exc)
        report.errors.append(f"quotes could not be had: {type(exc).__name__}")
        results, failures = {}, {s: unavailable("upstream_unavailable", "no quote", 5, "vendor") for s in symbols}
    for symbol, result in results.items():
        if result.stale and result.age_s > settings.alerts_max_quote_age_s:
            errors[symbol] = "stale_quote"
        else:
            q = result.quote
            usable[symbol] = {
                "price": q["price"],
                "as_of": q.get("as_of"),
                "change_pct": q.get("change_pct"),
                "stale": result.stale,
                "age_s": round(result.age_s, 1),
            }
    for symbol, error in failures.items():
        errors[symbol] = error.code
    report.counts["quoted"] = len(symbols)
    report.counts["quotes_failed"] = sum(1 for code in errors.values() if code.startswith("upstream_"))
    return usable, errors


def plan_check(store, checks: CheckStore, quotes, work: WorkQueue, settings, now: datetime | None = None):
    """Plan one check and send its shards; the report of what was planned."""
    now = now or datetime.now(UTC)
    report = CheckReport()
    is_open, why = market_status(now)
    if not is_open:
        report.market = why
        if not settings.alerts_ignore_market_hours:
            return report
        report.market += " (ignored: ALERTS_IGNORE_MARKET_HOURS)"
    report.evaluated = True
    try:
        registry = store.symbols_with_rules()
    except Exception as exc:  # noqa: BLE001 - nothing to check: said in the report, tried again next check
        log.error("check stopped, the registry of rules cannot be read: %s", exc)
        report.errors.append(f"the enabled rules could not be read: {getattr(exc, 'message', exc)}")
        return report
    report.counts["rules"] = sum(rules for rules, _ in registry.values())
    report.symbols = len(registry)
    quoted = sorted(s for s, (_, q) in registry.items() if q)
    usable, quote_errors = quotes_for(quotes, quoted, settings, report)

    tick = now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    report.check = f"{tick}~{uuid.uuid4().hex[:8]}"
    groups = pack(registry, settings.alerts_shard_rules)
    report.shards = len(groups)
    day = now.astimezone(NEW_YORK).date().isoformat()
    due = latest_due_session(now, settings.recent_as_of).isoformat()
    buckets = settings.alerts_delivery_buckets
    shards: list[Shard | Delivery] = [
        Shard(
            report.check,
            n,
            day,
            due,
            symbols,
            {s: usable[s] for s in symbols if s in usable},
            {s: quote_errors[s] for s in symbols if s in quote_errors},
            buckets,
        )
        for n, symbols in enumerate(groups)
    ]
    plan = {"market": report.market, "shards": len(shards), "buckets": buckets, "symbols": report.symbols}
    try:
        reasons = dict(report.reasons)
        previous, late = checks.start(report.check, tick, plan, dict(report.counts), reasons, list(report.errors))
        if late:
            report.late = previous
            log.warning("the previous check %s had not completed: its waiting firings are delivered now", previous)
        if previous:
            # Its deliveries once more, late or not (a delivery finds nothing to do in a
            # second): a firing claimed as its deliveries read the pending index, which
            # DynamoDB updates a moment after the claim, still goes out, 15 minutes on.
            work.send([Delivery(previous, b) for b in range(buckets)])
        if not shards:
            record = checks.complete(report.check)
            report.completed = record is not None
            return report
        work.send(shards)
    except Exception as exc:  # noqa: BLE001 - the run fails (and is retried): nothing was lost, a new plan starts over
        log.error("the check could not be handed out: %s: %s", type(exc).__name__, exc)
        report.errors.append(f"the check could not be handed out: {type(exc).__name__}: {getattr(exc, 'message', exc)}")
    return report
