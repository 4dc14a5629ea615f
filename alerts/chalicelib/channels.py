"""Where a user's alerts are delivered: email addresses and webhooks, as users give them.

What a channel is and how it is checked; ``subscriptions.py`` makes each one an
SNS subscription. Every user has an SNS topic of their own (``ALERTS_TOPIC_PREFIX`` + their id), and
each of their channels is one subscription to it. A firing is published to its
owner's topic and so reaches that user's channels and nobody else's, with no
filter policy to get wrong. Why a topic per user and not one topic with a
filter policy per subscription: SNS allows by default 200 filter policies per
topic and 10,000 per account, so one topic would stop at 200 channels and the
account at 10,000; topics are 100,000 per account by default (both are soft
quotas AWS raises on request), and a user's topic costs nothing while idle.
Past 100,000 users: ask for more topics, then shard users over accounts.

SNS asks every email and HTTP(S) endpoint to confirm its subscription (a link in
an email; a ``SubscriptionConfirmation`` POSTed to a webhook, whose
``SubscribeURL`` the receiver must GET). Until then the channel is
``pending_confirmation``; a subscription SNS no longer has (never confirmed
within 3 days, or unsubscribed from an email's link) is ``inactive``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from urllib.parse import urlsplit

from shared.errors import bad_request

CHANNEL_TYPES = ("email", "webhook")
CHANNEL_ID_PATTERN = r"^[0-9a-f]{16}$"
STATUSES = ("pending_confirmation", "confirmed", "inactive")
FIELDS = {"type", "address", "url"}
MAX_URL = 2048
# Plain ASCII addresses: a dot-atom local part and a domain of DNS labels with a
# letter-only top level. Quoted local parts and IP-literal domains are refused.
EMAIL = re.compile(
    r"^(?=.{1,254}$)(?=.{1,64}@)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def validate_email(raw) -> str:
    if not isinstance(raw, str) or not EMAIL.fullmatch(raw):
        raise bad_request("invalid_email", f"{str(raw)[:80]!r} is not an email address such as name@example.com")
    local, domain = raw.rsplit("@", 1)
    return f"{local}@{domain.lower()}"  # the domain is case-blind; the local part may not be


def validate_webhook_url(raw, local_stage: bool) -> str:
    """An ``https://`` URL on a public host; on the local stage also ``http://`` on loopback
    (where tests and ``make run`` receive them). SNS delivers from AWS's network, so a
    private address could never be reached and is refused rather than left pending."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_URL:
        raise bad_request("invalid_url", f"url must be a string of 1 to {MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) > 126 for ch in raw):
        raise bad_request("invalid_url", "the url holds spaces or characters outside printable ASCII")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise bad_request("invalid_url", f"the url cannot be read: {exc}") from None
    if parts.scheme not in ("https", "http"):
        raise bad_request("invalid_url", "a webhook url starts with https://")
    if parts.username is not None or parts.password is not None:
        raise bad_request("invalid_url", "a webhook url must not carry a user name or password")
    if parts.fragment or raw.endswith("#"):
        raise bad_request("invalid_url", "a webhook url has no #fragment")
    host = (parts.hostname or "").lower()
    if not host:
        raise bad_request("invalid_url", "the url names no host")
    if port == 0:
        raise bad_request("invalid_url", "port 0 is not a port")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
        labels = host.split(".")
        if len(host) > 253 or not all(LABEL.fullmatch(label) for label in labels):
            raise bad_request("invalid_url", f"{host!r} is not a host name") from None
        if host != "localhost" and (len(labels) < 2 or labels[-1].isdigit()):
            raise bad_request("invalid_url", f"{host!r} is not a fully qualified host name") from None
    loopback = host in LOOPBACK or (address is not None and address.is_loopback)
    if parts.scheme == "http":
        if local_stage and loopback:
            return raw
        raise bad_request(
            "invalid_url",
            "a webhook url must use https://" + (" (http:// only on a loopback address here)" if local_stage else ""),
        )
    if local_stage:
        return raw
    if loopback or (address is not None and not address.is_global):
        raise bad_request("invalid_url", f"{host} is not a public address: SNS could never reach it")
    return raw


def validate_channel(body, local_stage: bool) -> dict:
    """``{"type": "email", "address"}`` or ``{"type": "webhook", "url"}``, checked strictly."""
    if not isinstance(body, dict):
        raise bad_request("invalid_body", "the body must be a JSON object")
    unknown = set(body) - FIELDS
    if unknown:
        raise bad_request("unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    kind = body.get("type")
    if kind is None:
        raise bad_request("missing_field", "missing field(s): type")
    if kind not in CHANNEL_TYPES:
        raise bad_request("invalid_channel_type", f"type must be one of {', '.join(CHANNEL_TYPES)}")
    wanted, other = ("address", "url") if kind == "email" else ("url", "address")
    if other in body:
        raise bad_request("unknown_field", f"a {kind} channel has no field '{other}'")
    if wanted not in body:
        raise bad_request("missing_field", f"missing field(s): {wanted}")
    if kind == "email":
        return {"type": kind, "address": validate_email(body["address"])}
    return {"type": kind, "url": validate_webhook_url(body["url"], local_stage)}


def target_of(channel: dict) -> str:
    return channel["address"] if channel["type"] == "email" else channel["url"]


def protocol_of(channel: dict) -> str:
    if channel["type"] == "email":
        return "email"
    return "http" if channel["url"].startswith("http:") else "https"


def channel_id(channel: dict) -> str:
    """The same for the same address: SNS keeps one subscription per endpoint and topic,
    so a second channel for it would only be a second name for the first."""
    return hashlib.sha256(f"{channel['type']}\n{target_of(channel)}".encode()).hexdigest()[:16]


PUBLIC_CHANNEL_FIELDS = ("id", "type", "status", "created_at")


def public_channel(item: dict) -> dict:
    out = {k: item.get(k) for k in PUBLIC_CHANNEL_FIELDS}
    if item["type"] == "email":
        out["address"] = item["address"]
    else:
        out["url"] = item["url"]
        # One per user, for all their webhooks: a delivery carries one signature.
        out["signing_secret"] = item.get("signing_secret")
    return out
