"""The alerts app's clients: the shared ones plus the rule store and the SNS publisher."""

from __future__ import annotations

from functools import cached_property

from shared.runtime import Runtime


class AlertsRuntime(Runtime):
    @cached_property
    def alert_store(self):
        from .store import AlertStore

        return AlertStore(self._aws("resource", "dynamodb").Table(self.settings.alerts_table))

    @cached_property
    def publisher(self):
        from .check import Publisher

        return Publisher(self._aws("client", "sns"), self.settings.alerts_topic_arn)
