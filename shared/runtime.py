"""Clients created lazily, once per Lambda container (or per CLI process).

Nothing connects at import time; each app builds one ``Runtime`` and asks it
for what it needs. Tests call ``reset()`` after changing the environment.
"""

from __future__ import annotations

import threading
from functools import cached_property

from shared.config import Settings


class Runtime:
    def __init__(self, env=None):
        self._env = env
        self._lock = threading.RLock()

    def reset(self) -> None:
        with self._lock:
            if "database" in self.__dict__:
                self.__dict__["database"].close()
            for name in [n for n, v in type(self).__dict__.items() if isinstance(v, cached_property)]:
                self.__dict__.pop(name, None)

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_env(self._env)

    @cached_property
    def redis(self):
        from shared.cache import connect

        return connect(self.settings.redis_url, self.settings.redis_timeout_s)

    @cached_property
    def polygon(self):
        from shared.polygon import PolygonGateway, make_client

        return PolygonGateway(make_client(self.settings))

    @cached_property
    def quotes(self):
        from shared.quotes import QuoteService

        return QuoteService(self.settings, self.redis, self.polygon)

    @cached_property
    def database(self):
        from shared.history.postgres import Database

        return Database(self.settings.database_url, self.settings.database_timeout_s)

    @cached_property
    def lake(self):
        from shared.history.lake import Lake, open_store

        s = self.settings
        return Lake(open_store(s.lake_uri, s.s3_endpoint_url, s.aws_region))

    @cached_property
    def history(self):
        from shared.history.service import HistoryService

        return HistoryService(self.settings, self.database, self.lake)
