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

    @cached_property
    def upstream_budget(self):
        """The allowance the quote service spends too (one API key), shared in Redis;
        this process's own while Redis does not answer."""
        import logging

        from shared.cache import LocalBudget, RedisBudget

        limit = self.settings.polygon_max_calls_per_min
        try:
            self.redis.ping()
        except Exception as exc:  # noqa: BLE001 - any Redis failure: count calls here instead
            logging.getLogger(__name__).warning(
                "Redis unavailable (%s): the upstream budget is this process's own", exc
            )
            return LocalBudget(limit)
        return RedisBudget(self.redis, "polygon:budget", limit)
