"""Every setting of every service, read from environment variables.

This is the only module that reads ``os.environ``. Each setting has a documented
name and a default; the README lists them all.

``STAGE`` says where a service runs. ``dev`` (Chalice's default stage, so what a
plain ``chalice local`` uses) is this machine: settings the environment does not
name take the addresses ``make run`` serves on (``LOCAL_DEFAULTS``). The AWS
stages (``aws-dev``, ``aws-prod``) get everything from their stage configuration
and SSM. Secrets are never defaulted: a service started without one it needs
stops at once with one line naming it (``missing_settings``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


LOCAL_STAGE = "dev"
MOTO_URL = "http://127.0.0.1:8795"
FAKE_POLYGON_URL = "http://127.0.0.1:8790"
# What `make run` serves on, for the settings the environment leaves out on the
# local stage (outside Lambda only). The sample data ends in March 2013, so the
# fake Polygon's demo plays as of then.
LOCAL_DEFAULTS = {
    "POLYGON_BASE_URL": FAKE_POLYGON_URL,
    "AWS_ENDPOINT_URL": MOTO_URL,
    "LAKE_URI": "s3://market-lake/history",
    "S3_ENDPOINT_URL": MOTO_URL,
    # Each user's notifications go to a topic of their own: this prefix and their id.
    "ALERTS_TOPIC_PREFIX": "market-alerts-dev-user-",
    # A check's work: shards and deliveries, through this topic to the queue make run polls.
    "ALERTS_WORK_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:market-alerts-dev-work",
    "ALERTS_WORK_QUEUE_URL": f"{MOTO_URL}/123456789012/market-alerts-dev-work",
    # The user pool make run creates on moto. moto makes these ids from the pool's
    # and client's definitions (MOTO_COGNITO_IDP_*_ID_STRATEGY=HASH), so they are
    # the same at every start; tests/test_accounts.py checks they still are.
    "COGNITO_USER_POOL_ID": "us-east-1_a14d444711800994ae5e3a403642c4d113a2d831edd82",
    "COGNITO_CLIENT_ID": "ead3123de925d36f65f7c16578",
    "RECENT_AS_OF": "2013-03-01",
    # The fake has no rate limit of its own.
    "POLYGON_MAX_CALLS_PER_MIN": "600",
    # The demo's prices are 2013's: today's market hours say nothing about them, and a
    # check run by hand at night would otherwise evaluate nothing.
    "ALERTS_IGNORE_MARKET_HOURS": "1",
}


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
        for name in ("POLYGON_BASE_URL", "RECENT_AS_OF", "POLYGON_MAX_CALLS_PER_MIN", "ALERTS_IGNORE_MARKET_HOURS"):
            defaults.pop(name)
    if env.get("LAKE_URI", "").strip():
        defaults.pop("S3_ENDPOINT_URL")
    for name, value in defaults.items():
        if not out.get(name, "").strip():
            out[name] = value
    return out


# Settings a service cannot start without, by where it runs. Each entry is one
# requirement: any of its names will do (a value, or the SSM parameter holding it).
REQUIRED: dict[str, dict[str, list[tuple[str, ...]]]] = {
    "quote": {"aws": [("POLYGON_RELAY_FUNCTION", "POLYGON_API_KEY_SECRET_ID", "POLYGON_API_KEY"), ("REDIS_URL",)]},
    "backtest": {
        "aws": [
            ("DATABASE_URL",),
            ("LAKE_URI",),
            ("CURSOR_SECRET", "CURSOR_SECRET_SECRET_ID"),
            # The daily update's: the API itself never calls Polygon.
            ("POLYGON_RELAY_FUNCTION", "POLYGON_API_KEY_SECRET_ID", "POLYGON_API_KEY"),
        ]
    },
    "alerts": {
        # Locally the pool make run creates on moto (LOCAL_DEFAULTS).
        "any": [("COGNITO_USER_POOL_ID",), ("COGNITO_CLIENT_ID",)],
        "aws": [
            ("DATABASE_URL",),
            ("REDIS_URL",),
            ("ALERTS_TOPIC_PREFIX",),
            ("ALERTS_WORK_TOPIC_ARN",),
            ("POLYGON_RELAY_FUNCTION", "POLYGON_API_KEY_SECRET_ID", "POLYGON_API_KEY"),
        ],
    },
}
WHY = {
    "COGNITO_USER_POOL_ID": "the Cognito user pool whose tokens the API accepts "
    "(make stage-config writes it from the stateful stack's outputs)",
    "COGNITO_CLIENT_ID": "the pool's app client the dashboard signs in with "
    "(make stage-config writes it from the stateful stack's outputs)",
    "ALERTS_TOPIC_PREFIX": "the name prefix of the users' SNS topics (make stage-config writes it)",
    "ALERTS_WORK_TOPIC_ARN": "the SNS topic a check's shards and deliveries go through to the workers' queue "
    "(make stage-config writes it from the stateful stack's outputs)",
    "POLYGON_RELAY_FUNCTION": "the vendor relay that calls the vendor for this stage's functions (make "
    "stage-config writes it); the relay itself reads the key's Secrets Manager secret (POLYGON_API_KEY_SECRET_ID)",
    "CURSOR_SECRET": "it signs pagination cursors (on AWS, CURSOR_SECRET_SECRET_ID names its Secrets Manager secret)",
}


def missing_settings(service: str, env: Mapping[str, str] | None = None) -> list[str]:
    """What ``service`` needs on its stage and the environment does not give, one line each."""
    env = with_local_defaults(os.environ if env is None else env)
    needs = REQUIRED.get(service, {})
    wanted = list(needs.get("any", []))
    if not is_local(env):
        wanted += needs.get("aws", [])
    lines = []
    for names in wanted:
        if not any(env.get(name, "").strip() for name in names):
            why = WHY.get(names[0], "")
            alternative = f" (or {' or '.join(names[1:])})" if len(names) > 1 else ""
            stage = env.get("STAGE", LOCAL_STAGE)
            lines.append(
                f"{service}: {names[0]}{alternative} is not set on stage {stage}" + (f": {why}" if why else "")
            )
    return lines


def under_chalice_local() -> bool:
    """The worker process of ``chalice local`` with autoreload (Chalice's own marker)."""
    return bool(os.environ.get("CHALICE_WORKER"))


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def _number(env: Mapping[str, str], name: str, default: float, kind=float, minimum=0):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {raw!r}")
    return value


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


def _aws_endpoints(env: Mapping[str, str]) -> dict[str, str]:
    """Each service's endpoint: its own variable, else the one for all (AWS_ENDPOINT_URL), else AWS's."""
    common = _text(env, "AWS_ENDPOINT_URL", "")
    return {service: _text(env, name, common).rstrip("/") for service, name in AWS_SERVICES.items()}


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(env: Mapping[str, str]) -> str:
    level = _text(env, "LOG_LEVEL", "INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return level


def log_level(env: Mapping[str, str] | None = None) -> str:
    """LOG_LEVEL, read at start-up without any other setting."""
    return _log_level(os.environ if env is None else env)


def stage_name(env: Mapping[str, str] | None = None) -> str:
    """The stage this process runs in, without reading any other setting (or secret)."""
    return _text(os.environ if env is None else env, "STAGE", LOCAL_STAGE)


def _date(env: Mapping[str, str], name: str) -> date | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an ISO date (YYYY-MM-DD), got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    stage: str = LOCAL_STAGE
    # This machine: the local stage outside Lambda (see is_local).
    local: bool = False
    # Only for local AWS stand-ins (moto, dynalite); on AWS the role's credentials are used.
    aws_access_key_id: str = ""
    aws_secret_access_key: str = ""

    # --- upstream market data (Polygon, now Massive) ---
    polygon_base_url: str = "https://api.massive.com"
    polygon_api_key: str = ""
    polygon_connect_timeout_s: float = 1.0
    polygon_read_timeout_s: float = 3.0
    # Attempts after the first, for timeouts and 5xx; each one is charged to the budget.
    polygon_retries: int = 1
    polygon_max_calls_per_min: int = 5
    # 15 for plans that only get delayed snapshots (Starter, Developer); 0 for real time.
    polygon_delay_min: int = 0

    # --- Redis cache ---
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = 0.25
    # A cluster-mode server (ElastiCache Serverless always is): redis-py's cluster client.
    redis_cluster: bool = False
    # AWS services called on their dual-stack (IPv6) endpoints (AWS_DUALSTACK_SERVICES, comma-separated).
    aws_dualstack_services: tuple = ()
    quote_ttl_s: float = 60.0
    quote_stale_max_s: float = 86400.0
    quote_not_found_ttl_s: float = 300.0
    quote_wait_s: float = 4.0
    # Tickers per many-ticker snapshot request (see shared/polygon.py for why 250).
    quote_batch_chunk: int = 250
    # A symbol asked for within this long is "hot": its quote is refreshed in the
    # spare room of upstream calls made anyway, once it is this close to expiry.
    quote_hot_s: float = 300.0
    quote_refresh_ahead_s: float = 20.0

    # --- historical bars ---
    database_url: str = "postgresql://postgres@127.0.0.1:5432/market_dev"
    database_timeout_s: float = 5.0
    recent_years: int = 5
    # The date the recent window is counted back from; unset means today.
    recent_as_of: date | None = None
    lake_uri: str = "s3://market-lake/history"
    # Signs pagination cursors so a tampered one is refused; set it in production.
    cursor_secret: str = "dev-only-cursor-secret"
    s3_endpoint_url: str = ""
    aws_region: str = "us-east-1"

    # --- alerts ---
    alerts_table: str = "market-alerts"
    # A user's notifications go to the SNS topic named this prefix and their id.
    alerts_topic_prefix: str = ""
    alerts_max_rules_per_user: int = 100
    alerts_max_channels_per_user: int = 5
    # The users' SNS topics this stage may make (one per user with a channel): under the
    # account's quota (100,000 by default, adjustable), with room for other topics.
    alerts_max_topics: int = 95_000
    # --- accounts: the Cognito user pool whose tokens the alerts API accepts ---
    cognito_user_pool_id: str = ""
    cognito_client_id: str = ""
    # The cognito-idp endpoint (moto's locally); on AWS, the region's own.
    cognito_endpoint_url: str = ""
    alerts_max_condition_len: int = 200
    alerts_local_interval_s: float = 60.0
    # A quote older than this (served stale while Polygon is down) is not used.
    alerts_max_quote_age_s: float = 900.0
    # Firings published at once (each is a few DynamoDB writes and one SNS publish).
    alerts_fire_concurrency: int = 8
    # A symbol whose newest bar is more than this many due sessions old is not
    # evaluated (stale_history): 0 = the last session whose daily update is due.
    alerts_max_history_lag: int = 0
    # A check's fan-out: the SNS topic its shard and delivery messages go through (to the
    # workers' SQS queue), the rules a shard holds at most (a symbol's rules are never
    # split; at most 250 symbols a shard, one vendor call's worth), and how many
    # delivery messages a check's firings are spread over (by user).
    alerts_work_topic_arn: str = ""
    alerts_shard_rules: int = 5000
    alerts_delivery_buckets: int = 16
    # Locally (make run, the CLI): the queue the local poller reads as Lambda's event
    # source would, and how many worker processes it runs.
    alerts_work_queue_url: str = ""
    alerts_local_workers: int = 3

    # --- keeping history current ---
    # Seconds one ingestion run may spend waiting on 429s and the call budget, in all.
    ingest_max_wait_s: float = 300.0
    # The daily update fills at most this many missing sessions; a symbol further
    # behind is re-fetched whole instead.
    daily_update_max_days: int = 30
    # How often make run's loop runs the daily update.
    daily_update_local_interval_s: float = 3600.0
    aws_endpoint_url: str = ""
    # By botocore service name (see AWS_SERVICES); "" is AWS's own endpoint.
    aws_endpoints: dict = field(default_factory=dict)
    # Every AWS call of a request: connect and read timeouts, and attempts in all
    # (botocore's standard retries, with backoff on throttling). Small enough that a
    # hanging service answers a 503 inside the API functions' timeouts.
    aws_connect_timeout_s: float = 1.0
    aws_read_timeout_s: float = 3.0
    aws_max_attempts: int = 3

    # --- secrets at run time (production): SSM SecureString parameter names and
    # the RDS-managed Secrets Manager secret; never the values themselves.
    polygon_api_key_secret_id: str = ""
    cursor_secret_secret_id: str = ""
    database_secret_arn: str = ""
    # Run the check whatever the clock says (for demos on weekends and at night).
    alerts_ignore_market_hours: bool = False
    # The application log level: the JSON lines at or above it are written. On AWS the
    # packaged template gives it to Lambda (LoggingConfig.ApplicationLogLevel); locally
    # shared.observability applies it.
    log_level: str = "INFO"
    # The function that calls the vendor for the functions in the VPC, whose subnets may
    # not reach it (IPv6 only): invoked over Lambda's dual-stack endpoint; empty: direct.
    polygon_relay_function: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = with_local_defaults(os.environ if env is None else env)
        d = cls()
        local_aws = is_local(env) and env.get("AWS_ENDPOINT_URL", "").startswith("http://127.0.0.1")
        return cls(
            stage=_text(env, "STAGE", LOCAL_STAGE),
            local=is_local(env),
            # moto accepts any credentials, but boto3 will not sign without some.
            aws_access_key_id=_text(env, "AWS_ACCESS_KEY_ID", "testing" if local_aws else ""),
            aws_secret_access_key=_text(env, "AWS_SECRET_ACCESS_KEY", "testing" if local_aws else ""),
            polygon_base_url=_text(env, "POLYGON_BASE_URL", d.polygon_base_url).rstrip("/"),
            polygon_api_key=_text(env, "POLYGON_API_KEY", ""),
            polygon_connect_timeout_s=_number(env, "POLYGON_CONNECT_TIMEOUT_S", d.polygon_connect_timeout_s),
            polygon_read_timeout_s=_number(env, "POLYGON_READ_TIMEOUT_S", d.polygon_read_timeout_s),
            polygon_retries=_number(env, "POLYGON_RETRIES", d.polygon_retries, int),
            polygon_max_calls_per_min=_number(env, "POLYGON_MAX_CALLS_PER_MIN", d.polygon_max_calls_per_min, int, 1),
            polygon_delay_min=_number(env, "POLYGON_DELAY_MIN", d.polygon_delay_min, int),
            redis_url=_text(env, "REDIS_URL", d.redis_url),
            redis_timeout_s=_number(env, "REDIS_TIMEOUT_S", d.redis_timeout_s),
            redis_cluster=_text(env, "REDIS_CLUSTER", "0").lower() in ("1", "true", "yes"),
            aws_dualstack_services=tuple(
                x.strip() for x in _text(env, "AWS_DUALSTACK_SERVICES", "").split(",") if x.strip()
            ),
            quote_ttl_s=_number(env, "QUOTE_TTL_S", d.quote_ttl_s, float, 1),
            quote_stale_max_s=_number(env, "QUOTE_STALE_MAX_S", d.quote_stale_max_s),
            quote_not_found_ttl_s=_number(env, "QUOTE_NOT_FOUND_TTL_S", d.quote_not_found_ttl_s, float, 1),
            quote_wait_s=_number(env, "QUOTE_WAIT_S", d.quote_wait_s),
            quote_batch_chunk=min(250, _number(env, "QUOTE_BATCH_CHUNK", d.quote_batch_chunk, int, 1)),
            quote_hot_s=_number(env, "QUOTE_HOT_S", d.quote_hot_s),
            quote_refresh_ahead_s=_number(env, "QUOTE_REFRESH_AHEAD_S", d.quote_refresh_ahead_s),
            database_url=_text(env, "DATABASE_URL", d.database_url),
            database_timeout_s=_number(env, "DATABASE_TIMEOUT_S", d.database_timeout_s),
            recent_years=_number(env, "RECENT_YEARS", d.recent_years, int, 1),
            recent_as_of=_date(env, "RECENT_AS_OF"),
            lake_uri=_text(env, "LAKE_URI", d.lake_uri),
            cursor_secret=_text(env, "CURSOR_SECRET", d.cursor_secret),
            s3_endpoint_url=_text(env, "S3_ENDPOINT_URL", _text(env, "AWS_ENDPOINT_URL_S3", "")),
            aws_region=_text(env, "AWS_REGION", _text(env, "AWS_DEFAULT_REGION", d.aws_region)),
            alerts_table=_text(env, "ALERTS_TABLE", d.alerts_table),
            alerts_topic_prefix=_text(env, "ALERTS_TOPIC_PREFIX", ""),
            alerts_max_rules_per_user=_number(env, "ALERTS_MAX_RULES_PER_USER", d.alerts_max_rules_per_user, int, 1),
            alerts_max_topics=_number(env, "ALERTS_MAX_TOPICS", d.alerts_max_topics, int, 1),
            alerts_max_channels_per_user=_number(
                env, "ALERTS_MAX_CHANNELS_PER_USER", d.alerts_max_channels_per_user, int, 1
            ),
            cognito_user_pool_id=_text(env, "COGNITO_USER_POOL_ID", ""),
            cognito_client_id=_text(env, "COGNITO_CLIENT_ID", ""),
            # The SDK's own per-service variable, else the one endpoint for every AWS service.
            cognito_endpoint_url=_aws_endpoints(env)["cognito-idp"],
            alerts_max_condition_len=_number(env, "ALERTS_MAX_CONDITION_LEN", d.alerts_max_condition_len, int, 1),
            alerts_local_interval_s=_number(env, "ALERTS_LOCAL_INTERVAL_S", d.alerts_local_interval_s, float, 1),
            alerts_max_quote_age_s=_number(env, "ALERTS_MAX_QUOTE_AGE_S", d.alerts_max_quote_age_s),
            aws_endpoint_url=_text(env, "AWS_ENDPOINT_URL", ""),
            aws_endpoints=_aws_endpoints(env),
            aws_connect_timeout_s=_number(env, "AWS_CONNECT_TIMEOUT_S", d.aws_connect_timeout_s),
            aws_read_timeout_s=_number(env, "AWS_READ_TIMEOUT_S", d.aws_read_timeout_s),
            aws_max_attempts=_number(env, "AWS_MAX_ATTEMPTS", d.aws_max_attempts, int, 1),
            polygon_api_key_secret_id=_text(env, "POLYGON_API_KEY_SECRET_ID", ""),
            cursor_secret_secret_id=_text(env, "CURSOR_SECRET_SECRET_ID", ""),
            database_secret_arn=_text(env, "DATABASE_SECRET_ARN", ""),
            alerts_fire_concurrency=_number(env, "ALERTS_FIRE_CONCURRENCY", d.alerts_fire_concurrency, int, 1),
            alerts_max_history_lag=_number(env, "ALERTS_MAX_HISTORY_LAG", d.alerts_max_history_lag, int),
            alerts_work_topic_arn=_text(env, "ALERTS_WORK_TOPIC_ARN", ""),
            alerts_shard_rules=_number(env, "ALERTS_SHARD_RULES", d.alerts_shard_rules, int, 1),
            alerts_delivery_buckets=_number(env, "ALERTS_DELIVERY_BUCKETS", d.alerts_delivery_buckets, int, 1),
            alerts_work_queue_url=_text(env, "ALERTS_WORK_QUEUE_URL", ""),
            alerts_local_workers=_number(env, "ALERTS_LOCAL_WORKERS", d.alerts_local_workers, int, 1),
            ingest_max_wait_s=_number(env, "INGEST_MAX_WAIT_S", d.ingest_max_wait_s),
            daily_update_max_days=_number(env, "DAILY_UPDATE_MAX_DAYS", d.daily_update_max_days, int, 1),
            daily_update_local_interval_s=_number(
                env, "DAILY_UPDATE_LOCAL_INTERVAL_S", d.daily_update_local_interval_s, float, 1
            ),
            alerts_ignore_market_hours=_text(env, "ALERTS_IGNORE_MARKET_HOURS", "0").lower() in ("1", "true", "yes"),
            log_level=_log_level(env),
            polygon_relay_function=_text(env, "POLYGON_RELAY_FUNCTION", ""),
        )

    def redacted(self) -> dict:
        """The settings as a dict that is safe to log."""
        from urllib.parse import urlparse

        secret = {"polygon_api_key", "cursor_secret", "aws_secret_access_key"}
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = ("***" if value else "") if f.name in secret else value
        url = urlparse(self.database_url)
        if url.password:
            out["database_url"] = self.database_url.replace(f":{url.password}@", ":***@")
        return out

    def with_secrets(self, values: dict) -> Settings:
        from dataclasses import replace

        return replace(self, **values)
