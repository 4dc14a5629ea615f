"""The alerts app's clients: the shared ones plus the rule store, SNS and the token verifier."""

from __future__ import annotations

from functools import cached_property

from shared.config import Settings
from shared.runtime import Runtime


class AlertsRuntime(Runtime):
    service = "alerts"

    @cached_property
    def alert_store(self):
        from .store import AlertStore

        return AlertStore(self._aws("resource", "dynamodb").Table(self.settings.alerts_table))

    @cached_property
    def history_index(self):
        from .history import HistoryIndex

        s = self.settings
        s3 = None
        if s.lake_uri.startswith("s3://"):
            from botocore.config import Config

            from shared.runtime import aws_credentials, botocore_client

            # The lake's own endpoint when it has one (S3_ENDPOINT_URL), as the backtest app reads it.
            s3 = botocore_client(
                "s3",
                endpoint_url=s.s3_endpoint_url or s.aws_endpoints.get("s3") or None,
                region_name=s.aws_region,
                config=Config(
                    connect_timeout=s.aws_connect_timeout_s,
                    read_timeout=s.aws_read_timeout_s,
                    retries={"total_max_attempts": s.aws_max_attempts, "mode": "standard"},
                ),
                **aws_credentials(s),
            )
        return HistoryIndex(s.lake_uri, s3)

    @cached_property
    def checks(self):
        from .checks import CheckStore

        return CheckStore(self.alert_store.table)

    @cached_property
    def work_queue(self):
        from .work import WorkQueue

        return WorkQueue(self._aws("client", "sns"), self.settings.alerts_work_topic_arn)

    @cached_property
    def publisher(self):
        from .notify import Publisher

        # One attempt per call: the publisher retries only what SNS certainly did not take.
        return Publisher(self._aws("client", "sns", attempts=1))

    @cached_property
    def channels(self):
        from .subscriptions import ChannelService

        settings = self.settings
        return ChannelService(
            self.alert_store,
            self._aws("client", "sns"),
            settings.alerts_topic_prefix,
            settings.alerts_max_channels_per_user,
            settings.alerts_max_topics,
        )

    @cached_property
    def token_verifier(self):
        """The authorizer's: from the environment alone, for it needs no secret (and so
        its role reads no SSM parameter)."""
        from .auth import TokenVerifier

        return TokenVerifier.from_settings(Settings.from_env(self._env).view(self.service))
