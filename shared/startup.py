"""What every app does as it starts (``app.py`` calls ``start`` at import).

0. Under ``chalice deploy`` on an AWS stage: stop, in one line that names the command
   to use. Chalice's own deployer cannot express what the packaged template adds
   (``Ipv6AllowedForDualStack`` on the VPC functions, stage throttling, logging,
   alarms, failure destinations, the SQS event sources' partial failures), so its
   deployment could reach neither the vendor nor Secrets Manager. ``chalice deploy``
   imports the app while reading its configuration, before its first AWS call.
1. A setting its stage needs is missing: say so in one line per setting and stop,
   instead of answering 500 to the first request. In Lambda the import fails (the
   line is in the function's log); under ``chalice local`` the worker process is
   ended, because Chalice imports the app in a server thread where a
   ``SystemExit`` would be swallowed and leave a server that never listens.
2. Under ``chalice local`` with autoreload, restart when code under ``shared/``
   changes. Chalice's own watcher walks the project without following symlinks,
   so it never sees ``vendor/shared``; this thread polls the real folder the way
   Chalice's stat watcher polls the project, and asks for the same restart.
3. Outside Lambda, make Chalice's local gateway (``chalice local`` and
   ``chalice.test.Client``) answer an authorizer that fails as API Gateway does:
   401 for the error "Unauthorized" (how a TOKEN authorizer refuses a token), and
   API Gateway's 500 for any other error. Chalice runs built-in authorizers
   locally as they run in Lambda but lets their exceptions escape, so a refused
   token would get no answer at all.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from shared.config import log_level, missing_settings, under_chalice_local
from shared.observability import configure_logging

SHARED = Path(__file__).resolve().parent
_watching = threading.Event()


def start(service: str) -> None:
    refusal = bare_deploy_refusal(service, sys.argv)
    if refusal:
        print(refusal, file=sys.stderr, flush=True)
        raise SystemExit(2)
    configure_logging(log_level())
    problems = missing_settings(service)
    if problems:
        print("\n".join(problems), file=sys.stderr, flush=True)
        if under_chalice_local():
            os._exit(2)
        raise SystemExit(2)
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        local_gateway_answers_authorizer_errors()
    if under_chalice_local() and not _watching.is_set():
        _watching.set()
        threading.Thread(target=_watch, args=(SHARED,), daemon=True, name="shared-reload").start()


def bare_deploy_refusal(service: str, argv: list[str]) -> str | None:
    """The one line that stops ``chalice deploy`` on any stage but ``dev`` (this
    machine), or None: every other command, and a deploy of ``dev``, go on."""
    if not argv or Path(argv[0]).name not in ("chalice", "__main__.py") or "deploy" not in argv[1:]:
        return None
    stage = "dev"
    for i, arg in enumerate(argv):
        if arg == "--stage" and i + 1 < len(argv):
            stage = argv[i + 1]
        elif arg.startswith("--stage="):
            stage = arg.split("=", 1)[1]
    if stage == "dev":
        return None
    return (
        f"{service}: 'chalice deploy' would make a broken {stage} deployment (its functions in the VPC would have "
        f"no IPv6 egress, so no vendor and no secrets, and no alarms or logs set up): from the repository root run "
        f"'make deploy-{service} STAGE={stage} DEPLOY_BUCKET=...', which deploys the packaged template"
    )


def _mtimes(folder: Path) -> dict[Path, float]:
    out = {}
    for path in folder.rglob("*.py"):
        try:
            out[path] = path.stat().st_mtime
        except FileNotFoundError:
            continue
    return out


def _watch(folder: Path, interval_s: float = 1.0) -> None:
    from chalice.cli.filewatch import RESTART_REQUEST_RC

    seen = _mtimes(folder)
    while True:
        time.sleep(interval_s)
        now = _mtimes(folder)
        if now != seen:
            changed = sorted(
                str(p.relative_to(folder.parent))
                for p in set(now) ^ set(seen) | {p for p in now if p in seen and now[p] != seen[p]}
            )
            print(f"{', '.join(changed)} changed: restarting", file=sys.stderr, flush=True)
            # The exit code chalice local's parent process restarts its worker on.
            os._exit(RESTART_REQUEST_RC)


def local_gateway_answers_authorizer_errors() -> None:
    try:
        from chalice import local
    except ImportError:  # a Lambda zip carries Chalice's runtime only
        return
    original = local.LocalGatewayAuthorizer.authorize
    if original.__name__ == "answer_as_api_gateway":
        return

    def answer_as_api_gateway(self, raw_path, lambda_event, lambda_context):
        try:
            return original(self, raw_path, lambda_event, lambda_context)
        except local.LocalGatewayException:
            raise
        except Exception as exc:  # noqa: BLE001 - answered here as API Gateway answers it
            headers = {"x-amzn-RequestId": lambda_context.aws_request_id}
            if str(exc) == "Unauthorized":
                raise local.NotAuthorizedError(
                    {**headers, "x-amzn-ErrorType": "UnauthorizedException"}, b'{"message":"Unauthorized"}'
                ) from None
            raise local.InvalidAuthorizerError(
                {**headers, "x-amzn-ErrorType": "AuthorizerConfigurationException"}, b'{"message":null}'
            ) from exc

    # Patched on purpose, and only outside Lambda (chalice local, chalice.test.Client).
    local.LocalGatewayAuthorizer.authorize = answer_as_api_gateway  # type: ignore[method-assign]
    local_gateway_speaks_our_errors(local)


def local_gateway_speaks_our_errors(local) -> None:
    """What chalice local answers itself in our error shape too, as API Gateway's gateway
    responses do on AWS (``devtools/release/packaging.py``): its own errors ({"message": ...}: a
    refused token, an unknown path) and the HTTP server's (HTML: a 414 for a 100 kB URL)."""
    import json

    from shared.errors import error_body, snake_code

    handler = local.ChaliceRequestHandler
    if getattr(handler, "speaks_our_errors", False):
        return
    send_gateway_error = handler._send_error_response

    def send_error_response(self, error):
        try:
            message = json.loads(error.body or b"{}").get("message")
        except (ValueError, AttributeError):
            message = None
        kind = dict(error.headers or {}).get("x-amzn-ErrorType", type(error).__name__)
        error.body = json.dumps(error_body(snake_code(kind.removesuffix("Exception")), message)).encode()
        error.headers = {**(error.headers or {}), "Content-Type": "application/json"}
        return send_gateway_error(self, error)

    def send_error(self, code, message=None, explain=None):
        short, long = self.responses.get(code, ("Error", ""))
        body = json.dumps(error_body(snake_code(short), message or long)).encode()
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if getattr(self, "command", None) != "HEAD":
            self.wfile.write(body)

    handler._send_error_response = send_error_response
    handler.send_error = send_error
    handler.speaks_our_errors = True
