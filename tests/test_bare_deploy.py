"""A bare `chalice deploy` on an AWS stage stops before any AWS call and names the command
to use; `dev` and every other Chalice command go on as before."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shared.startup import bare_deploy_refusal
from tests.apps import ROOT

CHALICE = str(Path(sys.executable).parent / "chalice")


class CountingEndpoint:
    """A TCP port that takes every connection and drops it at once: an AWS endpoint that
    answers nothing, and counts what tried."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def endpoint():
    server = CountingEndpoint()
    yield server
    server.close()


def aws_env(url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # Every AWS service the deployer could call, and no retries to hide an attempt.
    return {
        **env,
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }


@pytest.mark.parametrize("service", ["quote", "backtest", "alerts"])
def test_chalice_deploy_on_an_aws_stage_stops_before_any_aws_call(endpoint, service):
    proc = subprocess.run(
        [CHALICE, "deploy", "--stage", "aws-prod"],
        cwd=ROOT / service,
        env=aws_env(endpoint.url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert lines == [
        f"{service}: 'chalice deploy' would make a broken aws-prod deployment (its functions in the VPC would have "
        "no IPv6 egress, so no vendor and no secrets, and no alarms or logs set up): from the repository root run "
        f"'make deploy-{service} STAGE=aws-prod DEPLOY_BUCKET=...', which deploys the packaged template"
    ]
    assert endpoint.connections == 0


def test_the_counting_endpoint_sees_an_aws_call(endpoint):
    """The zero above is not vacuous: a call to the endpoint is counted."""
    import botocore.session
    from botocore.config import Config

    client = botocore.session.get_session().create_client(
        "lambda",
        region_name="us-east-1",
        endpoint_url=endpoint.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=1),
    )
    with pytest.raises(Exception):  # noqa: B017 - whatever botocore makes of a dropped connection
        client.list_functions()
    assert endpoint.connections >= 1


@pytest.mark.parametrize(
    "argv, refused",
    [
        (["/x/bin/chalice", "deploy", "--stage", "aws-prod"], True),
        (["/x/bin/chalice", "--project-dir", ".", "deploy", "--stage=aws-dev"], True),
        (["/x/bin/chalice", "deploy"], False),  # dev: this machine's own stage
        (["/x/bin/chalice", "deploy", "--stage", "dev"], False),
        (["/x/bin/chalice", "package", "--stage", "aws-prod", "out"], False),
        (["/x/bin/chalice", "local", "--stage", "aws-prod"], False),
        (["/x/bin/chalice", "logs", "--stage", "aws-prod"], False),
        (["/var/runtime/bootstrap.py"], False),  # Lambda
        ([], False),
    ],
)
def test_only_deploy_on_an_aws_stage_is_refused(argv, refused):
    assert (bare_deploy_refusal("quote", argv) is not None) == refused
