"""The alerts domain's errors: what its code raises when a request cannot be done as
asked. The HTTP layer says how each is answered (``ANSWERS`` in app.py); nothing here
does I/O, so naming them costs a function's role nothing (the IAM scan follows names)."""

from __future__ import annotations


class RuleLimitReached(Exception):
    """The user has as many rules as a user may keep."""


class NotFound(Exception):
    """No such ``what`` ("rule" or "channel") of this user's: the HTTP layer's 404."""

    def __init__(self, what: str, name: str):
        super().__init__(f"no {what} {name}")
        self.what = what
        self.name = name


class ChannelLimitReached(Exception):
    """The user has as many channels as a user may keep."""


class ChannelExists(Exception):
    """The user has a channel to this address or URL already."""
