"""Each app under a plain ``chalice local`` in its folder, as a Chalice user runs it:
no flags, so Chalice's default stage (``dev``, the local one) and port 8000; the
servers named by the environment."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.apps import ROOT

CHALICE = str(ROOT / ".venv" / "bin" / "chalice") if (ROOT / ".venv/bin/chalice").exists() else "chalice"
URL = "http://127.0.0.1:8000"


class LocalServer:
    """``chalice local`` (no flags) in ``folder``, stopped with its whole process group."""

    def __init__(self, folder: Path, env: dict):
        deadline = time.monotonic() + 10
        while not _port_free(8000):  # the previous test's server may still be letting go
            if time.monotonic() > deadline:
                pytest.fail("port 8000, where a plain chalice local listens, is taken by another program")
            time.sleep(0.2)
        clean = {k: v for k, v in os.environ.items() if k not in ("CHALICE_WORKER", "STAGE")}
        self.proc = subprocess.Popen(
            [CHALICE, "local"],
            cwd=folder,
            env={**clean, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def wait_until_up(self, path: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"chalice local exited: {self.proc.stdout.read()}")
            try:
                urllib.request.urlopen(URL + path, timeout=2).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.2)
        pytest.fail("chalice local did not answer")

    def stop(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            out, _ = self.proc.communicate()
        return out


def _port_free(port: int) -> bool:
    """Nothing listens there (connections of ours in TIME_WAIT do not count: the server reuses the address)."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


def fetch(path: str, headers: dict | None = None):
    request = urllib.request.Request(URL + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_quote_under_plain_chalice_local(redis_url, fake_polygon):
    server = LocalServer(ROOT / "quote", {"REDIS_URL": redis_url, "POLYGON_BASE_URL": fake_polygon.url})
    try:
        server.wait_until_up("/api/quote?symbol=AAPL")
        status, body = fetch("/api/quote?symbol=AAPL")
        assert status == 200 and body["price"] > 0 and body["symbol"] == "AAPL"
    finally:
        server.stop()


def test_errors_chalice_local_answers_itself_have_our_shape(redis_url, fake_polygon):
    """A 100 kB symbol (the HTTP server's 414, HTML before), an unknown path (the local
    gateway's 403): each in the one error shape, as JSON."""
    server = LocalServer(ROOT / "quote", {"REDIS_URL": redis_url, "POLYGON_BASE_URL": fake_polygon.url})
    try:
        server.wait_until_up("/api/quote?symbol=AAPL")
        for path, status in ((f"/api/quote?symbol={'A' * 100_000}", 414), ("/api/nothing-here", 403)):
            got, body = fetch(path)
            assert got == status, path
            assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    finally:
        out = server.stop()
    assert "Traceback" not in out, out


def test_backtest_under_plain_chalice_local(loaded_history):
    server = LocalServer(ROOT / "backtest", loaded_history)
    try:
        server.wait_until_up("/api/backtest?symbol=HIST")
        status, body = fetch("/api/backtest?symbol=HIST&period=all&interval=5d&limit=3")
        assert status == 200 and len(body["bars"]) == 3 and body["next_cursor"]
    finally:
        server.stop()


def test_alerts_under_plain_chalice_local(alerts_world, redis_url, fake_polygon):
    env = {**alerts_world.env(), "REDIS_URL": redis_url, "POLYGON_BASE_URL": fake_polygon.url}
    server = LocalServer(ROOT / "alerts", env)
    try:
        server.wait_until_up("/api/alerts/rules")
        status, body = fetch("/api/alerts/rules", alerts_world.headers("alice"))
        assert status == 200 and body == {"rules": []}
        # Refused as API Gateway refuses (a 401), in the one error shape its gateway responses
        # give on AWS too, without a token or with a wrong one.
        refused = (401, {"error": {"code": "unauthorized", "message": "Unauthorized"}})
        assert fetch("/api/alerts/rules") == refused
        wrong = {"Authorization": alerts_world.headers("alice")["Authorization"][:-4] + "AAAA"}
        assert fetch("/api/alerts/rules", wrong) == refused
    finally:
        out = server.stop()
    assert "Traceback" not in out, out


def test_a_missing_setting_stops_the_app_at_start_in_one_line(alerts_world):
    """On an AWS stage nothing is defaulted: everything but the user pool is given here."""
    env = {
        **alerts_world.env(),
        "STAGE": "aws-dev",
        "COGNITO_CLIENT_ID": "",
        "REDIS_URL": "redis://cache.internal:6379/0",
        "POLYGON_API_KEY": "given",
    }
    server = LocalServer(ROOT / "alerts", env)
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("chalice local kept running without COGNITO_CLIENT_ID")
    out = server.stop()
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines == [line for line in lines if "COGNITO_CLIENT_ID" in line] and len(lines) == 1, out
    assert lines[0].startswith("alerts: COGNITO_CLIENT_ID is not set on stage aws-dev: the pool's app client")


def test_an_aws_stage_names_every_setting_it_lacks():
    from shared.config import missing_settings

    assert missing_settings("quote", {"STAGE": "aws-prod"}) == [
        "quote: POLYGON_RELAY_FUNCTION (or POLYGON_API_KEY_SECRET_ID or POLYGON_API_KEY) is not set on stage "
        "aws-prod: the vendor relay that calls the vendor for this stage's functions (make stage-config writes it); "
        "the relay itself reads the key's Secrets Manager secret (POLYGON_API_KEY_SECRET_ID)",
        "quote: REDIS_URL is not set on stage aws-prod",
    ]
    assert missing_settings("quote", {"STAGE": "dev"}) == []
    assert missing_settings("backtest", {"STAGE": "aws-dev", "DATABASE_URL": "x", "LAKE_URI": "y"}) == [
        # The daily update's (the app's scheduled function): the API itself never calls Polygon.
        "backtest: POLYGON_RELAY_FUNCTION (or POLYGON_API_KEY_SECRET_ID or POLYGON_API_KEY) is not set on stage "
        "aws-dev: the vendor relay that calls the vendor for this stage's functions (make stage-config writes it); "
        "the relay itself reads the key's Secrets Manager secret (POLYGON_API_KEY_SECRET_ID)",
        "backtest: CURSOR_SECRET (or CURSOR_SECRET_SECRET_ID) is not set on stage aws-dev: "
        "it signs pagination cursors (on AWS, CURSOR_SECRET_SECRET_ID names its Secrets Manager secret)",
    ]
    # A dev stage deployed to Lambda by mistake gets no local defaults and no leniency.
    assert missing_settings("quote", {"STAGE": "dev", "AWS_LAMBDA_FUNCTION_NAME": "f"})


def test_chalice_local_reloads_when_shared_changes(tmp_path, redis_url, fake_polygon):
    """On a copy of the project: the change is served without restarting by hand."""
    ignore = shutil.ignore_patterns("__pycache__", "deployments", "venv")
    shutil.copytree(ROOT / "quote", tmp_path / "quote", symlinks=True, ignore=ignore)
    shutil.copytree(ROOT / "shared", tmp_path / "shared", ignore=ignore)
    server = LocalServer(tmp_path / "quote", {"REDIS_URL": redis_url, "POLYGON_BASE_URL": fake_polygon.url})
    try:
        server.wait_until_up("/api/quote?symbol=AAPL")
        status, body = fetch("/api/quote?symbol=a$b")
        assert status == 400 and "is not a ticker symbol" in body["error"]["message"]
        symbols = tmp_path / "shared" / "symbols.py"
        symbols.write_text(symbols.read_text().replace("is not a ticker symbol", "is no ticker symbol"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                status, body = fetch("/api/quote?symbol=a$b")
                if "is no ticker symbol" in body["error"]["message"]:
                    break
            except OSError:
                pass  # restarting
            time.sleep(0.3)
        else:
            pytest.fail("the change under shared/ was not served")
    finally:
        out = server.stop()
    assert "shared/symbols.py changed: restarting" in out
