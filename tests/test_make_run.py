"""make run on someone else's machine: a busy port named with the variable that moves
it, the printed token command working on any ports, the README's example quote being
what the demo serves."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request

from tests.apps import ROOT


def test_a_busy_port_is_named_with_the_variable_that_moves_it():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        env = {**os.environ, "QUOTE_PORT": str(port)}
        proc = subprocess.run(
            [sys.executable, "-m", "devtools.local.stack"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.close()
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"port {port} (quote) is in use" in out and f"QUOTE_PORT={port + 1000} make run" in out, out
    assert "Traceback" not in out and "Address already in use" not in out, out


def test_the_printed_token_command_works_on_the_stacks_own_ports(stack):
    command = stack.token_command()
    assert f"AWS_ENDPOINT_URL={stack.moto.url}" in command  # the tests' stack is on free ports
    token = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60).stdout.strip()
    request = urllib.request.Request(
        f"{stack.url('alerts')}/api/alerts/rules", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def documented_example(heading: str) -> dict:
    """The JSON body of the quote page's example under ``heading``."""
    text = (ROOT / "docs" / "services" / "quote.md").read_text()
    section = text[text.index(heading) :]
    body = re.search(r"\n\n(\{.*?\})\n```", section, re.S).group(1)
    return json.loads(body)


def test_the_documented_example_quote_is_what_the_demo_serves(stack):
    example = documented_example("## `GET /api/quote?symbol=AAPL`")
    with urllib.request.urlopen(f"{stack.url('quote')}/api/quote?symbol=AAPL", timeout=10) as response:
        served = json.loads(response.read())
    for field in ("symbol", "price", "source", "prev_close", "change", "change_pct", "day", "delayed", "delay_min"):
        assert served[field] == example[field], (field, served[field], example[field])
    assert set(served) == set(example)
