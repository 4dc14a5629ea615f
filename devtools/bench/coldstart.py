"""Cold starts as Lambda has them: the packaged zip, a bare Python 3.12 with only
boto3 (what the Lambda runtime provides), a fresh process, ``import app``, then the
first request. ``make bench`` runs it against the local stack.

The child reports the time of ``import app`` and of the first answered request,
measured inside it (the interpreter's own start, ~15 ms here, is Lambda's init
and not counted in the goal). Nothing is written beside the code: the Lambda
task directory is read-only, so only bytecode the zip carries is used
(``PYTHONDONTWRITEBYTECODE``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "build" / "cold"

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
import app
t1 = time.perf_counter()

class Context:
    function_name = "cold"
    aws_request_id = "cold"
    def get_remaining_time_in_millis(self):
        return 30000

event = json.loads(os.environ["COLD_EVENT"])
handler = getattr(app, os.environ.get("COLD_HANDLER", "app"))
answer = handler(event, Context())
t2 = time.perf_counter()
status = answer.get("statusCode") if isinstance(answer, dict) else None
if status is None and isinstance(answer, dict):
    if "batchItemFailures" in answer:
        status = "failed records: %d" % len(answer["batchItemFailures"])
    else:
        status = "allow" if answer.get("policyDocument") else "?"
print(json.dumps({"import_s": t1 - t0, "first_s": t2 - t1, "status": status,
                  "modules": len(sys.modules), "body": str(answer.get("body", ""))[:200]}))
"""


def bare_python() -> Path:
    """A virtualenv with only boto3, as the Lambda runtime has it (made once, from PyPI)."""
    venv = WORK / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "boto3"], check=True
        )
    return python


def unpack(zip_path: Path, service: str) -> Path:
    folder = WORK / service
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(folder)
    return folder


def cold_request(python: Path, folder: Path, env: dict, event: dict, handler: str = "app") -> dict:
    child_env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "COLD_EVENT": json.dumps(event),
        "COLD_HANDLER": handler,
        **env,
    }
    proc = subprocess.run(
        [str(python), "-c", CHILD], cwd=folder, env=child_env, capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"cold start in {folder.name} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def authorizer_event(token: str) -> dict:
    return {
        "type": "TOKEN",
        "authorizationToken": f"Bearer {token}",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc/api/GET/api/alerts/rules",
    }


def sqs_event(body: str) -> dict:
    """One message, as Lambda's SQS event source passes it on."""
    return {"Records": [{"messageId": "cold", "receiptHandle": "cold", "body": body, "eventSource": "aws:sqs"}]}


def with_principal(event: dict, user: str) -> dict:
    """An API event as API Gateway passes it on after the authorizer allowed ``user``."""
    event = json.loads(json.dumps(event))
    event["requestContext"]["authorizer"] = {"principalId": user}
    return event


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "LC_", "LANG"))}
