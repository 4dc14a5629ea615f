"""Clients created lazily, once per Lambda container (or per CLI process).

Nothing connects at import time. This builds only the clients that two or more
services use (settings, Redis, Polygon, the quote path, PostgreSQL); each app
subclasses it in its own ``chalicelib/runtime.py`` for its own clients. Tests
call ``reset()`` after changing the environment.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import cast

from shared.config import ConfigError, Settings


class Runtime:
    # The service whose settings these are (each app's subclass names it): it sees only
    # the settings declared as read by it. None (the CLI, tools): all of them.
    service: str | None = None

    def __init__(self, env=None):
        self._env = env
        self._lock = threading.RLock()

    def reset(self) -> None:
        with self._lock:
            if "database" in self.__dict__:
                self.__dict__["database"].close()
            for cls in type(self).__mro__:
                for name, value in vars(cls).items():
                    if isinstance(value, cached_property):
                        self.__dict__.pop(name, None)

    @cached_property
    def settings(self) -> Settings:
        settings = Settings.from_env(self._env)
        if settings.polygon_api_key_secret_id or settings.cursor_secret_secret_id:
            from shared.secrets import resolve_secrets

            try:
                settings = resolve_secrets(settings, self._aws_for(settings, "client", "secretsmanager"))
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - the secret store failed: nothing is cached, the next request asks again
                from shared.errors import aws_unavailable

                raise aws_unavailable(
                    exc, "configuration_unavailable", "the secret store (Secrets Manager)", "secretsmanager"
                ) from exc
        # A view answers every attribute of the settings it allows, as the object would.
        return cast(Settings, settings.view(self.service)) if self.service else settings

    @cached_property
    def redis(self):
        from shared.cache import connect

        return connect(self.settings.redis_url, self.settings.redis_timeout_s, self.settings.redis_cluster)

    @cached_property
    def polygon(self):
        from shared.polygon import PolygonGateway, make_client

        def build():
            relay = self.settings.polygon_relay_function
            if not relay:
                return make_client(self.settings)
            from shared.vendor_relay import RelayPool, invoke_timeout_s

            # One attempt per call: each one is charged to the budget, and retried (or not) by shared.polygon.
            client = self._aws("client", "lambda", attempts=1, read_timeout_s=invoke_timeout_s(self.settings))
            return make_client(self.settings, RelayPool(relay, client))

        return PolygonGateway(make=build)

    @cached_property
    def quotes(self):
        from shared.quotes import QuoteService

        return QuoteService(self.settings, self.redis, self.polygon)

    @cached_property
    def database(self):
        from shared.postgres import Database

        if not self.settings.database_secret_arn:
            return Database(self.settings.database_url, self.settings.database_timeout_s)
        from shared.credentials import database_url_with_secret

        def url_with_password() -> str:
            return database_url_with_secret(
                self.settings.database_url, self.settings.database_secret_arn, self._aws("client", "secretsmanager")
            )

        return Database(url_with_password, self.settings.database_timeout_s)

    def _aws(self, kind: str, service: str, attempts: int | None = None, read_timeout_s: float | None = None):
        return self._aws_for(self.settings, kind, service, attempts, read_timeout_s)

    @staticmethod
    def _aws_for(
        s: Settings, kind: str, service: str, attempts: int | None = None, read_timeout_s: float | None = None
    ):
        from botocore.config import Config

        # The standard retries back off on throttling. A call that must not be repeated
        # blindly (a publish: botocore would repeat one that timed out after SNS took it)
        # asks for one attempt and retries itself.
        config = Config(
            connect_timeout=s.aws_connect_timeout_s,
            read_timeout=read_timeout_s or s.aws_read_timeout_s,
            retries={"total_max_attempts": attempts or s.aws_max_attempts, "mode": "standard"},
            # In the VPC without a NAT gateway, SNS and Secrets Manager are reached over IPv6
            # (their dual-stack endpoints); S3 and DynamoDB through the VPC's gateway endpoints.
            use_dualstack_endpoint=service in s.aws_dualstack_services or None,
        )
        endpoint = s.aws_endpoints.get(service) or s.aws_endpoint_url or None
        options = dict(region_name=s.aws_region, endpoint_url=endpoint, config=config)
        if kind == "resource":
            import boto3

            return boto3.resource(service, **options, **aws_credentials(s))
        return botocore_client(service, **options, **aws_credentials(s))


_botocore_session = None


def botocore_client(service: str, **options):
    """A client straight from botocore: importing boto3 also imports s3transfer
    (~90 ms of a cold start), and only the DynamoDB table resource needs boto3."""
    global _botocore_session
    import botocore.session

    if _botocore_session is None:
        _botocore_session = botocore.session.get_session()
    return _botocore_session.create_client(service, **options)


def aws_credentials(s: Settings) -> dict:
    """Explicit credentials only for local stand-ins; on AWS boto3 finds the role's own."""
    if s.aws_access_key_id:
        return {"aws_access_key_id": s.aws_access_key_id, "aws_secret_access_key": s.aws_secret_access_key}
    return {}
