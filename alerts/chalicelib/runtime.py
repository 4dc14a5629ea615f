"""The alerts app's clients: the shared ones plus the rule store, SNS and the token verifier."""

from __future__ import annotations

from functools import cached_property

from shared.config import Settings
from shared.runtime import Runtime


class AlertsRuntime(Runtime):
    @cached_property
    def alert_store(self):
        from .store import AlertStore

        return AlertStore(self._aws("resource", "dynamodb").Table(self.settings.alerts_table))

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
        )

    @cached_property
    def token_verifier(self):
        """The authorizer's: from the environment alone, for it needs no secret (and so
        its role reads no SSM parameter)."""
        from .auth import TokenVerifier

        return TokenVerifier.from_settings(Settings.from_env(self._env))
