"""Every setting of every service, each declared once, read from environment variables.

This is the only module that reads ``os.environ``. Each field of ``Settings`` is one
declaration (``setting``): its environment variable, its type and default, its value on
the local stage, what it is for, which services read it, and on which stages a service
cannot start without it. The settings object (``Settings.from_env``), the one-line
missing-setting errors (``missing_settings``), ``LOCAL_DEFAULTS`` and the documentation's
configuration page (``settings_page``) are all made from those declarations.

``STAGE`` says where a service runs. ``dev`` (Chalice's default stage, so what a plain
``chalice local`` uses) is this machine: settings the environment does not name take the
addresses ``make run`` serves on. The AWS stages (``aws-dev``, ``aws-prod``) get
everything from their stage configuration and Secrets Manager. Secrets are never
defaulted outside this machine: a service started without one it needs stops at once
with one line naming it.

A service sees only the settings it reads (``Settings.view``): asking the quote
service's settings for the alerts table is an ``AttributeError`` naming both.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import date
from typing import Any


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


LOCAL_STAGE = "dev"
MOTO_URL = "http://127.0.0.1:8795"
FAKE_POLYGON_URL = "http://127.0.0.1:8790"
SERVICES = ("quote", "backtest", "alerts")
ALL = SERVICES
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# The AWS services the project calls, by botocore's name, and the SDK's own variable
# for each one's endpoint (AWS_ENDPOINT_URL_<service id>): one can then be pointed
# elsewhere, or fail, while the others work.
AWS_SERVICES = {
    "dynamodb": "AWS_ENDPOINT_URL_DYNAMODB",
    "sns": "AWS_ENDPOINT_URL_SNS",
    "s3": "AWS_ENDPOINT_URL_S3",
    "ssm": "AWS_ENDPOINT_URL_SSM",
    "secretsmanager": "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "cognito-idp": "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",
    "sqs": "AWS_ENDPOINT_URL_SQS",
    "lambda": "AWS_ENDPOINT_URL_LAMBDA",
}

VENDOR_KEY_WHY = (
    "the vendor relay that calls the vendor for this stage's functions (make stage-config writes it); "
    "the relay itself reads the key's Secrets Manager secret (POLYGON_API_KEY_SECRET_ID)"
)


def setting(
    env: str | None,
    default: Any,
    doc: str,
    services: tuple[str, ...] = ALL,
    *,
    local: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    fallback: tuple[str, ...] = (),
    choices: tuple[str, ...] = (),
    secret: bool = False,
    required: Mapping[str, str] | None = None,
    alternatives: tuple[str, ...] = (),
    why: str = "",
):
    """One setting's declaration, as a ``Settings`` field.

    ``env``: its variable (None: derived from others in ``from_env``). ``local``: its
    value on the local stage when the environment leaves it out. ``fallback``: variables
    read, in order, when ``env`` is empty. ``maximum``: larger values are clamped.
    ``required``: by service, ``"aws"`` (the AWS stages) or ``"any"`` (every stage), where
    that service cannot start without it (or one of ``alternatives``); ``why`` is said
    when it is missing."""
    meta = {
        "env": env,
        "doc": doc,
        "services": services,
        "local": local,
        "minimum": minimum,
        "maximum": maximum,
        "fallback": fallback,
        "choices": choices,
        "secret": secret,
        "required": dict(required or {}),
        "alternatives": alternatives,
        "why": why,
    }
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    # --- where it runs ---
    stage: str = setting(
        "STAGE", LOCAL_STAGE, "`dev` (this machine), `aws-dev`, `aws-prod`; each stage's `config.json` sets it"
    )
    local: bool = setting(
        None,
        False,
        "this machine: the `dev` stage outside Lambda (derived; a dev stage deployed by mistake is not local)",
    )
    log_level: str = setting(
        "LOG_LEVEL",
        "INFO",
        "the JSON log lines at or above it are written (on AWS the template gives it to Lambda's ApplicationLogLevel)",
        choices=LOG_LEVELS,
    )
    # Only for local AWS stand-ins (moto, dynalite); on AWS the role's credentials are used.
    aws_access_key_id: str = setting(
        "AWS_ACCESS_KEY_ID", "", "credentials for local AWS stand-ins; `testing` when the endpoint is this machine's"
    )
    aws_secret_access_key: str = setting(
        "AWS_SECRET_ACCESS_KEY", "", "its secret; on AWS the function's role is used instead", secret=True
    )
    aws_region: str = setting("AWS_REGION", "us-east-1", "the AWS region", fallback=("AWS_DEFAULT_REGION",))
    aws_endpoint_url: str = setting(
        "AWS_ENDPOINT_URL", "", "one endpoint for every AWS service (moto's locally)", local=MOTO_URL
    )
    aws_endpoints: dict = setting(
        None,
        {},
        "each AWS service's endpoint: the SDK's own `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`, else AWS's",
    )
    # Every AWS call of a request: connect and read timeouts, and attempts in all
    # (botocore's standard retries, with backoff on throttling). Small enough that a
    # hanging service answers a 503 inside the API functions' timeouts.
    aws_connect_timeout_s: float = setting("AWS_CONNECT_TIMEOUT_S", 1.0, "connect timeout of every AWS call", minimum=0)
    aws_read_timeout_s: float = setting("AWS_READ_TIMEOUT_S", 3.0, "read timeout of every AWS call", minimum=0)
    aws_max_attempts: int = setting(
        "AWS_MAX_ATTEMPTS", 3, "attempts in all per AWS call (botocore's standard retries)", minimum=1
    )
    aws_dualstack_services: tuple = setting(
        "AWS_DUALSTACK_SERVICES",
        (),
        "AWS services called on their dual-stack (IPv6) endpoints, comma-separated; on AWS `sns,secretsmanager,lambda`",
    )

    # --- upstream market data (Polygon, now Massive) ---
    polygon_base_url: str = setting(
        "POLYGON_BASE_URL",
        "https://api.massive.com",
        "the vendor's REST base URL (`https://api.polygon.io` works too); locally without a key, the fake",
        local=FAKE_POLYGON_URL,
    )
    polygon_api_key: str = setting(
        "POLYGON_API_KEY", "", "the vendor's API key; without it `make run` uses the fake", secret=True
    )
    polygon_api_key_secret_id: str = setting(
        "POLYGON_API_KEY_SECRET_ID", "", "the Secrets Manager secret holding the key (the vendor relay reads it)"
    )
    polygon_relay_function: str = setting(
        "POLYGON_RELAY_FUNCTION",
        "",
        "the function that calls the vendor for the functions in the VPC (invoked over Lambda's dual-stack endpoint); empty: direct",
        required={"quote": "aws", "backtest": "aws", "alerts": "aws"},
        alternatives=("POLYGON_API_KEY_SECRET_ID", "POLYGON_API_KEY"),
        why=VENDOR_KEY_WHY,
    )
    polygon_connect_timeout_s: float = setting(
        "POLYGON_CONNECT_TIMEOUT_S", 1.0, "connect timeout per vendor attempt", minimum=0
    )
    polygon_read_timeout_s: float = setting("POLYGON_READ_TIMEOUT_S", 3.0, "read timeout per vendor attempt", minimum=0)
    # Each attempt is charged to the budget.
    polygon_retries: int = setting(
        "POLYGON_RETRIES", 1, "extra attempts for 5xx, timeouts and malformed bodies", minimum=0
    )
    polygon_max_calls_per_min: int = setting(
        "POLYGON_MAX_CALLS_PER_MIN",
        5,
        "vendor calls allowed in any 60 s, across all instances (the free plan's 5; the fake has no limit of its own)",
        local="600",
        minimum=1,
    )
    polygon_delay_min: int = setting(
        "POLYGON_DELAY_MIN",
        0,
        "15 on plans with delayed snapshots (Starter, Developer); reported in each quote",
        ("quote", "alerts"),
        minimum=0,
    )

    # --- the quote cache (Redis) ---
    redis_url: str = setting(
        "REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "the cache and the shared call budget (`rediss://` is TLS)",
        required={"quote": "aws", "alerts": "aws"},
    )
    redis_timeout_s: float = setting(
        "REDIS_TIMEOUT_S", 0.25, "Redis connect and socket timeout: how long a request waits on a dead Redis", minimum=0
    )
    redis_cluster: bool = setting(
        "REDIS_CLUSTER", False, "a cluster-mode server (ElastiCache Serverless always is): redis-py's cluster client"
    )
    quote_ttl_s: float = setting("QUOTE_TTL_S", 60.0, "how long a quote is fresh", ("quote", "alerts"), minimum=1)
    quote_stale_max_s: float = setting(
        "QUOTE_STALE_MAX_S",
        86400.0,
        "how long a last known quote may be served as stale",
        ("quote", "alerts"),
        minimum=0,
    )
    quote_not_found_ttl_s: float = setting(
        "QUOTE_NOT_FOUND_TTL_S", 300.0, "how long an unknown symbol is remembered", ("quote", "alerts"), minimum=1
    )
    quote_wait_s: float = setting(
        "QUOTE_WAIT_S",
        4.0,
        "how long a request waits for another process's fetch of the same symbol",
        ("quote", "alerts"),
        minimum=0,
    )
    # See shared/polygon.py for why 250.
    quote_batch_chunk: int = setting(
        "QUOTE_BATCH_CHUNK",
        250,
        "tickers per many-ticker snapshot request (at most 250)",
        ("quote", "alerts"),
        minimum=1,
        maximum=250,
    )
    quote_hot_s: float = setting(
        "QUOTE_HOT_S",
        300.0,
        "a symbol asked for within this long is hot: refreshed in the spare room of vendor calls made anyway",
        ("quote", "alerts"),
        minimum=0,
    )
    quote_refresh_ahead_s: float = setting(
        "QUOTE_REFRESH_AHEAD_S",
        20.0,
        "how close to expiry a hot quote must be to ride along",
        ("quote", "alerts"),
        minimum=0,
    )

    # --- history: PostgreSQL (the recent tier) and the lake ---
    database_url: str = setting(
        "DATABASE_URL",
        "postgresql://postgres@127.0.0.1:5432/market_dev",
        "the recent tier and the indicator states (`?host=/dir` for a Unix socket)",
        ("backtest", "alerts"),
        required={"backtest": "aws", "alerts": "aws"},
    )
    database_timeout_s: float = setting(
        "DATABASE_TIMEOUT_S", 5.0, "PostgreSQL connect and statement timeout", ("backtest", "alerts"), minimum=0
    )
    database_secret_arn: str = setting(
        "DATABASE_SECRET_ARN",
        "",
        "the RDS-managed Secrets Manager secret with the database's password",
        ("backtest", "alerts"),
    )
    recent_years: int = setting(
        "RECENT_YEARS", 5, "years of daily bars kept in PostgreSQL", ("backtest", "alerts"), minimum=1
    )
    recent_as_of: date | None = setting(
        "RECENT_AS_OF",
        None,
        "the date the recent window is counted back from (YYYY-MM-DD); unset: today. The sample data ends in March 2013",
        ("backtest", "alerts"),
        local="2013-03-01",
    )
    lake_uri: str = setting(
        "LAKE_URI",
        "s3://market-lake/history",
        "the Parquet lake (`s3://bucket/prefix` or a local path)",
        ("backtest", "alerts"),
        local="s3://market-lake/history",
        required={"backtest": "aws"},
    )
    s3_endpoint_url: str = setting(
        "S3_ENDPOINT_URL",
        "",
        "the lake's S3 endpoint (moto's locally)",
        ("backtest", "alerts"),
        local=MOTO_URL,
        fallback=("AWS_ENDPOINT_URL_S3",),
    )
    # Signs pagination cursors so a tampered one is refused.
    cursor_secret: str = setting(
        "CURSOR_SECRET",
        "dev-only-cursor-secret",
        "signs pagination cursors; on AWS from its secret",
        ("backtest",),
        secret=True,
        required={"backtest": "aws"},
        alternatives=("CURSOR_SECRET_SECRET_ID",),
        why="it signs pagination cursors (on AWS, CURSOR_SECRET_SECRET_ID names its Secrets Manager secret)",
    )
    cursor_secret_secret_id: str = setting(
        "CURSOR_SECRET_SECRET_ID", "", "the Secrets Manager secret holding the cursor secret", ("backtest",)
    )
    # Seconds one ingestion run may spend waiting on 429s and the call budget, in all.
    ingest_max_wait_s: float = setting(
        "INGEST_MAX_WAIT_S",
        300.0,
        "seconds one ingestion run may wait on 429s and the call budget, in all",
        ("backtest",),
        minimum=0,
    )
    daily_update_max_days: int = setting(
        "DAILY_UPDATE_MAX_DAYS",
        30,
        "missing sessions the daily update fills; a symbol further behind is re-fetched whole",
        ("backtest",),
        minimum=1,
    )
    daily_update_local_interval_s: float = setting(
        "DAILY_UPDATE_LOCAL_INTERVAL_S",
        3600.0,
        "how often `make run`'s loop runs the daily update",
        ("backtest",),
        minimum=1,
    )

    # --- alerts ---
    alerts_table: str = setting(
        "ALERTS_TABLE", "market-alerts", "the DynamoDB table of rules, channels, firings and checks", ("alerts",)
    )
    alerts_topic_prefix: str = setting(
        "ALERTS_TOPIC_PREFIX",
        "",
        "a user's notifications go to the SNS topic named this prefix and their id",
        ("alerts",),
        local="market-alerts-dev-user-",
        required={"alerts": "aws"},
        why="the name prefix of the users' SNS topics (make stage-config writes it)",
    )
    alerts_work_topic_arn: str = setting(
        "ALERTS_WORK_TOPIC_ARN",
        "",
        "the SNS topic a check's shard and delivery messages go through to the workers' SQS queue",
        ("alerts",),
        local="arn:aws:sns:us-east-1:123456789012:market-alerts-dev-work",
        required={"alerts": "aws"},
        why="the SNS topic a check's shards and deliveries go through to the workers' queue "
        "(make stage-config writes it from the stateful stack's outputs)",
    )
    alerts_work_queue_url: str = setting(
        "ALERTS_WORK_QUEUE_URL",
        "",
        "locally: the queue the local poller reads as Lambda's event source would",
        ("alerts",),
        local=f"{MOTO_URL}/123456789012/market-alerts-dev-work",
    )
    alerts_local_workers: int = setting(
        "ALERTS_LOCAL_WORKERS", 3, "locally: the poller's worker processes", ("alerts",), minimum=1
    )
    alerts_max_rules_per_user: int = setting(
        "ALERTS_MAX_RULES_PER_USER", 100, "rules a user may have", ("alerts",), minimum=1
    )
    alerts_max_channels_per_user: int = setting(
        "ALERTS_MAX_CHANNELS_PER_USER", 5, "channels a user may have", ("alerts",), minimum=1
    )
    alerts_max_topics: int = setting(
        "ALERTS_MAX_TOPICS",
        95_000,
        "users' SNS topics this stage may make: under the account's quota (100,000 by default), with room for others",
        ("alerts",),
        minimum=1,
    )
    alerts_max_condition_len: int = setting(
        "ALERTS_MAX_CONDITION_LEN", 200, "characters in a rule's condition", ("alerts",), minimum=1
    )
    alerts_local_interval_s: float = setting(
        "ALERTS_LOCAL_INTERVAL_S", 60.0, "how often `make run`'s loop runs the check", ("alerts",), minimum=1
    )
    alerts_max_quote_age_s: float = setting(
        "ALERTS_MAX_QUOTE_AGE_S",
        900.0,
        "a quote older than this (served stale while the vendor is down) is not used",
        ("alerts",),
        minimum=0,
    )
    alerts_fire_concurrency: int = setting(
        "ALERTS_FIRE_CONCURRENCY",
        8,
        "firings published at once (each a few DynamoDB writes and one SNS publish)",
        ("alerts",),
        minimum=1,
    )
    alerts_max_history_lag: int = setting(
        "ALERTS_MAX_HISTORY_LAG",
        0,
        "a symbol whose newest bar is more than this many due sessions old is not evaluated (`stale_history`)",
        ("alerts",),
        minimum=0,
    )
    alerts_shard_rules: int = setting(
        "ALERTS_SHARD_RULES",
        5000,
        "rules a shard holds at most (a symbol's rules are never split; at most 250 symbols)",
        ("alerts",),
        minimum=1,
    )
    alerts_delivery_buckets: int = setting(
        "ALERTS_DELIVERY_BUCKETS",
        16,
        "delivery messages a check's firings are spread over (by user)",
        ("alerts",),
        minimum=1,
    )
    alerts_ignore_market_hours: bool = setting(
        "ALERTS_IGNORE_MARKET_HOURS",
        False,
        "run the check whatever the clock says (the demo's prices are 2013's)",
        ("alerts",),
        local="1",
    )
    cognito_user_pool_id: str = setting(
        "COGNITO_USER_POOL_ID",
        "",
        "the Cognito user pool whose tokens the alerts API accepts",
        ("alerts",),
        # moto makes the pool's and client's ids from their definitions
        # (MOTO_COGNITO_IDP_*_ID_STRATEGY=HASH): the same at every start (tests/test_accounts.py).
        local="us-east-1_a14d444711800994ae5e3a403642c4d113a2d831edd82",
        required={"alerts": "any"},
        why="the Cognito user pool whose tokens the API accepts (make stage-config writes it from the stateful stack's outputs)",
    )
    cognito_client_id: str = setting(
        "COGNITO_CLIENT_ID",
        "",
        "the pool's app client the dashboard signs in with",
        ("alerts",),
        local="ead3123de925d36f65f7c16578",
        required={"alerts": "any"},
        why="the pool's app client the dashboard signs in with (make stage-config writes it from the stateful stack's outputs)",
    )
    cognito_endpoint_url: str = setting(
        None,
        "",
        "the cognito-idp endpoint (derived from the AWS endpoints: moto's locally, the region's own on AWS)",
        ("alerts",),
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = with_local_defaults(os.environ if env is None else env)
        values: dict[str, Any] = {f.name: _parse(env, f) for f in fields(cls) if f.metadata["env"]}
        local = is_local(env)
        endpoints = {
            service: _text(env, name, values["aws_endpoint_url"]).rstrip("/") for service, name in AWS_SERVICES.items()
        }
        # moto accepts any credentials, but boto3 will not sign without some.
        if local and values["aws_endpoint_url"].startswith("http://127.0.0.1"):
            values["aws_access_key_id"] = values["aws_access_key_id"] or "testing"
            values["aws_secret_access_key"] = values["aws_secret_access_key"] or "testing"
        values["polygon_base_url"] = values["polygon_base_url"].rstrip("/")
        return cls(**values, local=local, aws_endpoints=endpoints, cognito_endpoint_url=endpoints["cognito-idp"])

    def view(self, service: str) -> ServiceSettings:
        """These settings as ``service`` sees them: only those it reads."""
        return _view(self, service)

    def redacted(self) -> dict:
        """The settings as a dict that is safe to log."""
        from urllib.parse import urlparse

        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = ("***" if value else "") if f.metadata["secret"] else value
        url = urlparse(self.database_url)
        if url.password:
            out["database_url"] = self.database_url.replace(f":{url.password}@", ":***@")
        return out

    def with_secrets(self, values: dict) -> Settings:
        return replace(self, **values)


DECLARED = {f.name: f for f in fields(Settings)}


class ServiceSettings:
    """One service's settings: the declared ones it reads, and nothing else.

    Each service's view is a class of its own with a slot per setting it reads (made
    once, ``_view_class``), so reading a setting costs what reading a field does."""

    __slots__ = ()
    service = ""
    names: tuple[str, ...] = ()  # the settings it reads: one slot each

    def __getattr__(self, name: str):
        # Only reached for a name that is not one of this service's slots.
        if name in DECLARED:
            raise AttributeError(f"{self.service} does not read {name} (shared/config.py declares who does)")
        raise AttributeError(name)

    def __setattr__(self, name, value):
        raise AttributeError("settings are read-only")

    def redacted(self) -> dict:
        return {k: ("***" if v else "") if DECLARED[k].metadata["secret"] else v for k, v in self._values().items()}

    def _values(self) -> dict:
        return {name: getattr(self, name) for name in self.names}


@functools.cache
def _view_class(service: str) -> type[ServiceSettings]:
    names = tuple(f.name for f in fields(Settings) if service in f.metadata["services"])
    return type(
        f"{service.title()}Settings", (ServiceSettings,), {"__slots__": names, "service": service, "names": names}
    )


def _view(settings: Settings, service: str) -> ServiceSettings:
    view = object.__new__(_view_class(service))
    for name in view.names:
        object.__setattr__(view, name, getattr(settings, name))
    return view


def _default_of(declared) -> Any:
    if declared.default is not MISSING:
        return declared.default
    factory = declared.default_factory
    return factory() if callable(factory) else None


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def _parse(env: Mapping[str, str], declared) -> Any:
    meta = declared.metadata
    name = meta["env"]
    raw = next((env.get(n, "").strip() for n in (name, *meta["fallback"]) if env.get(n, "").strip()), "")
    default = _default_of(declared)
    if not raw:
        return default
    # The annotations are strings (``from __future__ import annotations``).
    if declared.type == "bool":
        return raw.lower() in ("1", "true", "yes")
    if declared.type == "tuple":
        return tuple(x.strip() for x in raw.split(",") if x.strip())
    if declared.type == "date | None":
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an ISO date (YYYY-MM-DD), got {raw!r}") from None
    kind = {"int": int, "float": float}.get(declared.type, str)
    if meta["choices"]:
        raw = raw.upper()
        if raw not in meta["choices"]:
            raise ConfigError(f"{name} must be one of {', '.join(meta['choices'])}, got {raw!r}")
        return raw
    if kind is str:
        return raw
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    if meta["minimum"] is not None and value < meta["minimum"]:
        raise ConfigError(f"{name} must be >= {meta['minimum']:g}, got {raw!r}")
    if meta["maximum"] is not None:
        value = min(value, kind(meta["maximum"]))
    return value


# What `make run` serves on, for the settings the environment leaves out on the local
# stage (outside Lambda only): from each declaration's ``local``.
LOCAL_DEFAULTS = {f.metadata["env"]: f.metadata["local"] for f in fields(Settings) if f.metadata["local"] is not None}
# With a Polygon key the real vendor is the upstream: the fake's address, its budget and
# the demo's as-of date and hours do not apply.
_NOT_WITH_A_KEY = ("POLYGON_BASE_URL", "RECENT_AS_OF", "POLYGON_MAX_CALLS_PER_MIN", "ALERTS_IGNORE_MARKET_HOURS")


def current_env() -> dict[str, str]:
    return dict(os.environ)


def is_local(env: Mapping[str, str]) -> bool:
    """The local stage, and not inside Lambda (a dev stage deployed by mistake gets no local defaults)."""
    return env.get("STAGE", LOCAL_STAGE) == LOCAL_STAGE and not env.get("AWS_LAMBDA_FUNCTION_NAME")


def with_local_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the local stage's defaults for what it leaves out.

    With a Polygon key the real Polygon is the upstream and the demo's as-of date
    does not apply; with a lake of one's own (``LAKE_URI``) moto's S3 is not assumed.
    """
    out = dict(env)
    if not is_local(env):
        return out
    defaults = dict(LOCAL_DEFAULTS)
    if env.get("POLYGON_API_KEY", "").strip():
        for name in _NOT_WITH_A_KEY:
            defaults.pop(name)
    if env.get("LAKE_URI", "").strip():
        defaults.pop("S3_ENDPOINT_URL")
    for name, value in defaults.items():
        if not out.get(name, "").strip():
            out[name] = value
    return out


def missing_settings(service: str, env: Mapping[str, str] | None = None) -> list[str]:
    """What ``service`` needs on its stage and the environment does not give, one line each:
    the settings required on every stage first, then those of the AWS stages."""
    env = with_local_defaults(os.environ if env is None else env)
    stages = ("any",) if is_local(env) else ("any", "aws")
    wanted = [f for stage in stages for f in fields(Settings) if f.metadata["required"].get(service) == stage]
    lines = []
    for declared in wanted:
        meta = declared.metadata
        names = (meta["env"], *meta["alternatives"])
        if not any(env.get(name, "").strip() for name in names):
            alternative = f" (or {' or '.join(names[1:])})" if len(names) > 1 else ""
            stage = env.get("STAGE", LOCAL_STAGE)
            why = f": {meta['why']}" if meta["why"] else ""
            lines.append(f"{service}: {names[0]}{alternative} is not set on stage {stage}{why}")
    return lines


def under_chalice_local() -> bool:
    """The worker process of ``chalice local`` with autoreload (Chalice's own marker)."""
    return bool(os.environ.get("CHALICE_WORKER"))


def log_level(env: Mapping[str, str] | None = None) -> str:
    """LOG_LEVEL, read at start-up without any other setting."""
    return _parse(os.environ if env is None else env, DECLARED["log_level"])


def stage_name(env: Mapping[str, str] | None = None) -> str:
    """The stage this process runs in, without reading any other setting (or secret)."""
    return _text(os.environ if env is None else env, "STAGE", LOCAL_STAGE)


def settings_page() -> str:
    """The documentation's configuration page, from the declarations."""

    def shown(value) -> str:
        if value in ("", None, (), {}):
            return "(none)"
        if isinstance(value, bool):
            return "`1`" if value else "`0`"
        return f"`{value}`"

    lines = [
        "# Configuration",
        "",
        "*Generated from the declarations in `shared/config.py`: each setting is declared there once,",
        "and the settings object, the missing-setting errors and this page are made from it.*",
        "",
        "Every setting is an environment variable. On the local stage (`dev`, outside Lambda) a setting",
        "the environment leaves out takes its **local** value: what `make run` serves. On the AWS stages",
        "(`aws-dev`, `aws-prod`) the stage's `.chalice/config.json` sets them (`make stage-config` writes",
        "the ones that come from the stateful stack); secrets come from Secrets Manager. A service started",
        "without a **required** setting stops at once with one line naming it. Each service sees only the",
        "settings it reads.",
        "",
        "| variable | default | local | read by | required | what it is for |",
        "|---|---|---|---|---|---|",
    ]
    for declared in fields(Settings):
        meta = declared.metadata
        if not meta["env"]:
            continue
        default = _default_of(declared)
        if meta["secret"] and default:
            default = f"{default} (this machine only; required on AWS)"
        required = ", ".join(
            f"{service} ({'every stage' if where == 'any' else 'AWS'})" for service, where in meta["required"].items()
        )
        if required and meta["alternatives"]:
            required += " — or " + " or ".join(f"`{n}`" for n in meta["alternatives"])
        env = f"`{meta['env']}`" + "".join(f" (or `{n}`)" for n in meta["fallback"])
        local = shown(meta["local"]) if meta["local"] is not None else ""
        lines.append(
            f"| {env} | {shown(default)} | {local} | {', '.join(meta['services'])} | {required} | "
            f"{meta['doc'].replace('|', '\\|')} |"
        )
    derived = [f for f in fields(Settings) if not f.metadata["env"]]
    lines += ["", "Derived, not set directly:", ""]
    lines += [f"- `{f.name}`: {f.metadata['doc']}" for f in derived]
    lines += [
        "",
        "The make targets read a few more of their own: `WEB_PORT` (8080), `QUOTE_PORT` (8001),",
        "`BACKTEST_PORT` (8002), `ALERTS_PORT` (8003), `FAKE_POLYGON_PORT` (8790), `MOTO_PORT` (8795),",
        "and `CHROMIUM` (`/usr/bin/chromium`), the browser the browser tests and `make bench` drive.",
        "",
    ]
    return "\n".join(lines)
