"""The backtest app's clients: the shared ones plus the lake and the history service."""

from __future__ import annotations

from functools import cached_property

from shared.runtime import Runtime


class BacktestRuntime(Runtime):
    service = "backtest"

    @cached_property
    def lake(self):
        from shared.runtime import aws_credentials

        from .lake import Lake, open_store

        s = self.settings
        timeouts = (s.aws_connect_timeout_s, s.aws_read_timeout_s, s.aws_max_attempts)
        return Lake(open_store(s.lake_uri, s.s3_endpoint_url, s.aws_region, aws_credentials(s), timeouts))

    @cached_property
    def history(self):
        from .service import HistoryService

        return HistoryService(self.settings, self.database, self.lake)

    @cached_property
    def upstream_budget(self):
        """The allowance the quote service spends too (one API key), shared in Redis;
        this process's own while Redis does not answer."""
        from shared.cache import BUDGET_KEY, FallbackBudget, LocalBudget, RedisBudget

        limit = self.settings.polygon_max_calls_per_min
        return FallbackBudget(RedisBudget(self.redis, BUDGET_KEY, limit), LocalBudget(limit))
