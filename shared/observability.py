"""What production logs and measures, registered once per app (``observe``).

- **Logs are JSON lines.** In Lambda the runtime's own formatter writes them (the
  packaged templates set ``LoggingConfig: {LogFormat: JSON}`` and the application
  log level from the stage's ``LOG_LEVEL``), with the request id and every ``extra``
  field at the top level. Everywhere else (``chalice local``, ``make run``, the
  tests) ``configure_logging`` installs a formatter that writes the same shape, so
  a developer sees what production will log.
- **One line per API request** (``http`` middleware): route, method, status,
  latency, and what the request learnt on its way (``note`` and ``count``: the
  quotes' cache statuses, the upstream calls it made, the backtest tier it read,
  its error code). **One line per scheduled run**: its whole report.
- **Metrics ride on those lines** in CloudWatch's Embedded Metric Format (the
  ``_aws`` block): no API call, no library to import at a cold start. Dimensions
  stay few and fixed (service, stage and, where declared, one more with a closed
  set of values); never a symbol or a user. ``METRICS`` declares every metric, so
  the cost model (``devtools/release/cost.py``) prices exactly what is published.
- **A scheduled run that could not do its job fails its invocation** after writing
  its report and metrics (``RunFailed``): Lambda's retries and the function's
  on-failure destination take it from there, and its ``Errors`` metric moves.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger("market_data")

NAMESPACE = "MarketData"


@dataclass(frozen=True)
class MetricSpec:
    """One metric: who publishes it, its unit, and how often (for the cost model).

    ``dimension``: a dimension beyond service and stage, with the closed set of values
    it takes; each value is a metric of its own to CloudWatch (and to the bill).
    ``published``: "requests" (with the API's traffic, every hour), "market_hours" (the
    alerts check's evaluated runs), "always" (every scheduled run, day and night), "daily".
    """

    service: str
    name: str
    unit: str
    what: str
    published: str = "requests"
    dimension: tuple[str, tuple[str, ...]] | None = None
    layer: str = "serving"


CACHE_STATUSES = ("hit", "miss", "stale", "bypass")
TIERS = ("postgres", "lake", "lake+postgres")

METRICS: tuple[MetricSpec, ...] = (
    *(
        MetricSpec("quote", f"Quotes{status.title()}", "Count", f"quotes answered {status}")
        for status in CACHE_STATUSES
    ),
    MetricSpec("quote", "UpstreamCalls", "Count", "calls to the vendor (each attempt, as the budget counts them)"),
    MetricSpec("quote", "BudgetRefusals", "Count", "calls the shared upstream budget refused"),
    # Its SampleCount is the requests read from each tier.
    MetricSpec("backtest", "Latency", "Milliseconds", "a history request, by the tier(s) read", dimension=("tier", TIERS)),
    MetricSpec("alerts", "ChecksCompleted", "Count", "alerts checks that did their job (the heartbeat)", "always"),
    MetricSpec("alerts", "RulesChecked", "Count", "rules evaluated by a check", "market_hours"),
    MetricSpec("alerts", "RulesFired", "Count", "firings delivered", "market_hours"),
    MetricSpec("alerts", "RulesSkipped", "Count", "rules not evaluated (missing data, expired)", "market_hours"),
    MetricSpec("alerts", "RulesFailed", "Count", "rules that failed (unknown symbol, a write that failed)", "market_hours"),
    MetricSpec("alerts", "DeliveryFailed", "Count", "firings whose delivery failed (retried next check)", "market_hours"),
    MetricSpec("alerts", "CheckSeconds", "Seconds", "from a check's tick to its last firing delivered", "market_hours"),
    MetricSpec("alerts", "ChecksLate", "Count", "checks the next one found unfinished (its firings delivered then)", "market_hours"),
    MetricSpec("backtest", "UpdatesCompleted", "Count", "daily updates that did their job (the heartbeat)", "daily", layer="batch"),
    MetricSpec("backtest", "DaysFilled", "Count", "sessions the daily update stored", "daily", layer="batch"),
    MetricSpec("backtest", "UpdateUpstreamCalls", "Count", "the daily update's calls to the vendor", "daily", layer="batch"),
    MetricSpec("backtest", "SymbolsWritten", "Count", "symbols whose history changed", "daily", layer="batch"),
    MetricSpec("backtest", "UpdateStopped", "Count", "1 when the update stopped with sessions left", "daily", layer="batch"),
)  # fmt: skip
_SPECS = {(m.service, m.name): m for m in METRICS}


# ----------------------------------------------------------------- what a request learns


@dataclass
class Facts:
    """What one request or run learnt on its way, for its summary line."""

    request_id: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


_facts: contextvars.ContextVar[Facts | None] = contextvars.ContextVar("observability_facts", default=None)


def note(**fields: Any) -> None:
    """Say something about the request or run under way (nothing happens outside one)."""
    facts = _facts.get()
    if facts is not None:
        with facts.lock:
            facts.fields.update(fields)


def count(name: str, n: int = 1) -> None:
    facts = _facts.get()
    if facts is not None:
        with facts.lock:
            facts.counts[name] += n


def carry(fn: Callable) -> Callable:
    """``fn`` to run in a pool thread, still counting into the request that made it:
    a thread starts with an empty context, so each call gets a copy of this one."""
    context = contextvars.copy_context()

    def run(*args, **kwargs):
        return context.copy().run(fn, *args, **kwargs)

    return run


@contextlib.contextmanager
def collecting(request_id: str = "") -> Iterator[Facts]:
    """``with collecting(request_id) as facts``: a request's or run's facts, in this context."""
    facts = Facts(request_id)
    token = _facts.set(facts)
    try:
        yield facts
    finally:
        _facts.reset(token)


# ----------------------------------------------------------------- logs


class JsonLines(logging.Formatter):
    """The shape Lambda's JSON log format writes (timestamp, level, message, logger,
    requestId, then every ``extra`` field), for wherever the runtime is not ours."""

    RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

    def format(self, record: logging.LogRecord) -> str:
        facts = _facts.get()
        out: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        if facts is not None and facts.request_id:
            out["requestId"] = facts.request_id
        if record.exc_info:
            out["errorType"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            out["stackTrace"] = self.formatException(record.exc_info).splitlines()
        out.update((k, v) for k, v in vars(record).items() if k not in self.RESERVED and k not in out)
        return json.dumps(out, default=str, separators=(",", ":"))


def configure_logging(level: str, stream=None) -> None:
    """JSON lines at ``level`` on standard error (or ``stream``: the benchmarks keep them
    in a file). In Lambda the runtime has installed its own JSON formatter and set the
    level from the function's LoggingConfig: left alone."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return
    root = logging.getLogger()
    # A plain handler (logging.basicConfig's) would write each line a second time, unformatted.
    for plain in [h for h in root.handlers if type(h) is logging.StreamHandler and not getattr(h, "json_lines", 0)]:
        root.removeHandler(plain)
    ours = [h for h in root.handlers if getattr(h, "json_lines", False)]
    if stream is not None or not ours:
        for old in ours:
            root.removeHandler(old)
        handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StandardError()
        handler.json_lines = True  # type: ignore[attr-defined]
        handler.setFormatter(JsonLines())
        root.addHandler(handler)
    root.setLevel(level.upper())


class _StandardError(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is written, not when the handler
    was made (a test runner swaps it, and closes the one it swapped in)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


# ----------------------------------------------------------------- metrics


def emf(service: str, stage: str, values: dict[str, float], dimensions: dict[str, str] | None = None) -> dict:
    """The Embedded Metric Format fields that make CloudWatch read ``values`` off a log
    line as metrics of ``service`` (each must be declared in ``METRICS``)."""
    dimensions = dimensions or {}
    metrics = []
    for name in values:
        spec = _SPECS[(service, name)]
        declared = spec.dimension[0] if spec.dimension else None
        if set(dimensions) != ({declared} if declared else set()):
            raise ValueError(f"{service}/{name} is declared with dimension {declared}, given {sorted(dimensions)}")
        metrics.append({"Name": name, "Unit": spec.unit})
    if not metrics:
        return {}
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {"Namespace": NAMESPACE, "Dimensions": [["service", "stage", *dimensions]], "Metrics": metrics}
            ],
        },
        "service": service,
        "stage": stage,
        **dimensions,
        **values,
    }


# ----------------------------------------------------------------- registered once per app


class RunReport(Protocol):
    """What a scheduled job returns: its report, its metrics, and whether it failed."""

    def to_dict(self) -> dict: ...

    def metrics(self) -> dict[str, float]: ...

    def failure(self) -> str | None: ...


class RunFailed(Exception):
    """A scheduled run that could not do its job; its report was logged before this."""

    def __init__(self, job: str, why: str, report: dict):
        super().__init__(f"{job} failed: {why}")
        self.report = report


def record_run(service: str, stage: str, job: str, report: RunReport) -> dict:
    """The run's whole report as one line, with its metrics; returns the report as a dict."""
    body = report.to_dict()
    why = report.failure()
    extra = {
        "job": job,
        "outcome": "failed" if why else "done",
        "report": body,
        **emf(service, stage, report.metrics()),
    }
    log.log(logging.ERROR if why else logging.INFO, "%s %s", job, f"failed: {why}" if why else "done", extra=extra)
    return body


def request_metrics(service: str, facts: Facts, latency_ms: float) -> tuple[dict[str, float], dict[str, str]]:
    """A request's metrics: the quote path's cache statuses and upstream calls; the
    backtest tier's latency. The alerts API has none of its own: API Gateway's Count,
    Latency, 4XXError and 5XXError say all there is, at no charge."""
    if service == "quote":
        # Only what happened: every one is summed, so a zero says nothing a missing value
        # does not, and each metric named costs bytes on every line (the log bill).
        counted = {f"Quotes{status.title()}": f"quotes_{status}" for status in CACHE_STATUSES}
        counted.update(UpstreamCalls="upstream_calls", BudgetRefusals="budget_refusals")
        return {name: float(facts.counts[key]) for name, key in counted.items() if facts.counts.get(key)}, {}
    if service == "backtest" and facts.fields.get("tier") in TIERS:
        return {"Latency": round(latency_ms, 2)}, {"tier": facts.fields["tier"]}
    return {}, {}


def observe(app, service: str) -> None:
    """Register the request line and the run line on ``app``, once. The stage is read
    from the environment alone: a request that failed to read its settings (a secret
    store down) must still be logged, not fail again here."""
    from shared.config import stage_name

    stage = stage_name

    @app.middleware("http")
    def summarize_request(event, get_response):
        context = getattr(event, "lambda_context", None)
        with collecting(getattr(context, "aws_request_id", "") or "") as facts:
            started = time.perf_counter()
            response = get_response(event)
            latency_ms = (time.perf_counter() - started) * 1000
        route = (event.context or {}).get("resourcePath", "")
        line = {
            "requestId": facts.request_id,
            "route": route,
            "method": event.method,
            "status": response.status_code,
            "latency_ms": round(latency_ms, 2),
            **facts.fields,
        }
        if facts.counts.get("upstream_calls") and service != "quote":  # the quote's metrics carry it
            line["upstream_calls"] = facts.counts["upstream_calls"]
        values, dimensions = request_metrics(service, facts, latency_ms)
        level = logging.ERROR if response.status_code >= 500 else logging.INFO
        log.log(
            level,
            "%s %s %s",
            event.method,
            route,
            response.status_code,
            extra={**line, **emf(service, stage(), values, dimensions)},
        )
        return response

    @app.middleware("scheduled")
    def summarize_run(event, get_response):
        context = getattr(event, "context", None)
        with collecting(getattr(context, "aws_request_id", "") or ""):
            report = get_response(event)
            job = getattr(report, "job", service)
            body = record_run(service, stage(), job, report)
        why = report.failure()
        if why:
            raise RunFailed(job, why, body)
        return body
