"""The backtest app's clients: the shared ones plus the lake and the history service."""

from __future__ import annotations

from functools import cached_property

from shared.runtime import Runtime


class BacktestRuntime(Runtime):
    @cached_property
    def lake(self):
        from shared.runtime import aws_credentials

        from .lake import Lake, open_store

        s = self.settings
        return Lake(open_store(s.lake_uri, s.s3_endpoint_url, s.aws_region, aws_credentials(s)))

    @cached_property
    def history(self):
        from .service import HistoryService

        return HistoryService(self.settings, self.database, self.lake)
