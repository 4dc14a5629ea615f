"""What a user receives when rules fire, and sending it through SNS.

One message per user per check, listing every firing of theirs: SNS turns off an
email subscription that gets more than 10 messages a second, and a person would
rather read one email than forty. The message is published once to the user's
topic with a body per protocol (``MessageStructure=json``): text for email, and
for webhooks a JSON document a program reads, signed with the user's webhook
signing secret:

    {"payload": "<JSON text>", "signature": "t=<unix seconds>,v1=<hex HMAC-SHA256>"}

``v1`` is HMAC-SHA256 over ``"<t>.<payload>"`` with the secret; ``payload`` is
``{"type": "alerts.fired", "version": 1, "user", "sent_at", "firings": [...]}``,
each firing with its ``firing_id``, ``rule_id``, ``symbol``, ``condition``,
``values``, ``bar_date``, ``price_as_of``, ``price_stale`` and ``fired_at``.
``verify`` below is the receiver's side. SNS also signs its own HTTP envelope
(``Signature``, ``SigningCertURL``), which a receiver may check as well; SNS's
HTTP delivery is at least once, so a receiver keeps the ``firing_id``s it has seen.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime

log = logging.getLogger(__name__)

# SNS takes at most 256 KiB a message (every protocol's body together).
MAX_MESSAGE_BYTES = 250_000
SIGNATURE_TOLERANCE_S = 300
PUBLISH_ATTEMPTS = 3


class SignatureError(ValueError):
    pass


def sign(secret: str, payload: str, t: int) -> str:
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, message: str, now: float | None = None, tolerance_s: float = SIGNATURE_TOLERANCE_S) -> dict:
    """A webhook receiver's check: the payload of a genuine, recent message (the SNS
    envelope's ``Message``), or ``SignatureError``."""
    try:
        outer = json.loads(message)
        payload, signature = outer["payload"], outer["signature"]
        fields = dict(part.split("=", 1) for part in signature.split(","))
        t = int(fields["t"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SignatureError("not a signed alerts message") from None
    expected = sign(secret, payload, t).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, fields.get("v1", "")):
        raise SignatureError("the signature does not match: not sent with this secret, or altered")
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        raise SignatureError("the message is older than the tolerance: a replay?")
    return json.loads(payload)


def _ascii(text: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)


def _shown(values: dict, limit: int = 3) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in list(values.items())[:limit])


def subject_for(firings: list[dict]) -> str:
    """A readable email subject: ASCII, one line, at most 100 characters (SNS's limit)."""
    if len(firings) == 1:
        one = firings[0]
        text = f"{one['symbol']}: {one['condition']} ({_shown(one['values'])})"
    else:
        symbols = ", ".join(dict.fromkeys(f["symbol"] for f in firings))
        text = f"{len(firings)} alerts fired: {symbols}"
    text = _ascii(text)
    return text if len(text) <= 100 else text[:97] + "..."


def email_text(firings: list[dict], sent_at: str) -> str:
    lines = [f"{len(firings)} alert(s) fired ({sent_at}):", ""]
    for f in firings:
        lines.append(f"{f['symbol']}: {f['condition']}")
        detail = _shown(f["values"], limit=8)
        if f.get("bar_date"):
            detail += f"; last bar {f['bar_date']}"
        if f.get("price_as_of"):
            detail += f"; price as of {f['price_as_of']}" + (" (stale)" if f.get("price_stale") else "")
        lines.append(f"  {detail}")
    lines += ["", "Manage your rules and where alerts go on the dashboard."]
    return "\n".join(lines)


def messages_for(user: str, firings: list[dict], secret: str | None, now: datetime | None = None) -> list[tuple]:
    """(subject, SNS message, the firings it carries) for one user's firings of one check:
    one message, or several only if one would exceed SNS's size limit."""
    now = now or datetime.now(UTC)
    sent_at = now.isoformat(timespec="seconds").replace("+00:00", "Z")
    # The order rules were scanned in is DynamoDB's, not the user's: sort so one
    # check's message reads the same whatever the scan order.
    out, pending = [], sorted(firings, key=lambda f: (f["symbol"], f.get("rule_id", "")))
    while pending:
        take = len(pending)
        while True:
            part = pending[:take]
            payload = json.dumps(
                {"type": "alerts.fired", "version": 1, "user": user, "sent_at": sent_at, "firings": part},
                separators=(",", ":"),
            )
            text = email_text(part, sent_at)
            webhook = json.dumps({"payload": payload, "signature": sign(secret or "", payload, int(now.timestamp()))})
            body = json.dumps({"default": text, "email": text, "http": webhook, "https": webhook})
            if len(body.encode()) <= MAX_MESSAGE_BYTES or take == 1:
                break
            take = max(1, take // 2)
        out.append((subject_for(part), body, part))
        pending = pending[take:]
    return out


class Publisher:
    """SNS with an honest outcome: ``sent``, ``failed`` (certainly not delivered: safe
    to retry) or ``unknown`` (maybe delivered: never retried)."""

    def __init__(self, sns):
        self.sns = sns

    def publish(self, topic_arn: str, subject: str, message: str) -> tuple[str, str | None]:
        """Retried (with backoff) only when SNS certainly did not take the message: it
        answered with an error, or was never reached. A publish without an answer (a
        read timeout) may have been delivered, so it is never repeated: botocore's own
        retries would repeat it, which is why this client makes one attempt per call."""
        from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

        not_taken = (ClientError, EndpointConnectionError, ConnectTimeoutError)
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(PUBLISH_ATTEMPTS),
                wait=wait_exponential(multiplier=0.2, max=2),
                retry=retry_if_exception_type(not_taken),
                reraise=True,
            ):
                with attempt:
                    response = self.sns.publish(
                        TopicArn=topic_arn, Subject=subject, Message=message, MessageStructure="json"
                    )
        except not_taken as exc:
            log.warning("SNS publish failed, will retry on the next check: %s", exc)
            return "failed", None
        except Exception as exc:  # noqa: BLE001 - a read timeout, a broken answer: maybe sent
            log.error("SNS publish ended without an answer; it may have been delivered, not retried: %s", exc)
            return "unknown", None
        return "sent", response.get("MessageId")
