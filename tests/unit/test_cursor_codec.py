"""Pagination cursors: signed, opaque, tied to their query, refused when altered."""

from __future__ import annotations

import base64
import json
from datetime import date

import pytest

from backtest.chalicelib.service import CursorCodec, PageCursor
from shared.errors import ApiError

CURSOR = PageCursor(date(2013, 1, 31), date(2013, 3, 1), "AAPL|5d|2013-01-02|None")


def test_a_cursor_comes_back_as_it_went():
    codec = CursorCodec("secret")
    assert codec.decode(codec.encode(CURSOR)) == CURSOR


def test_the_wire_form_is_the_one_cursors_were_issued_in():
    """Short keys a, e, b: a cursor handed out before the record existed still works."""
    codec = CursorCodec("secret")
    payload = codec.encode(CURSOR).split(".")[0]
    state = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert state == {"a": "2013-01-31", "e": "2013-03-01", "b": "AAPL|5d|2013-01-02|None"}


def refused(codec, cursor):
    with pytest.raises(ApiError) as error:
        codec.decode(cursor)
    return error.value.status, error.value.code


def test_another_secret_an_altered_payload_or_garbage_is_refused():
    cursor = CursorCodec("secret").encode(CURSOR)
    assert refused(CursorCodec("another"), cursor) == (400, "invalid_cursor")
    payload, signature = cursor.split(".")
    assert refused(CursorCodec("secret"), payload[:-2] + "AA." + signature) == (400, "invalid_cursor")
    for garbage in ("", ".", "abc", "abc.def", "a" * 500):
        assert refused(CursorCodec("secret"), garbage) == (400, "invalid_cursor")


def test_a_signed_payload_that_is_not_a_cursor_is_refused_not_a_crash():
    codec = CursorCodec("secret")
    for state in ({"a": "2013-01-31"}, {"a": "yesterday", "e": "2013-03-01", "b": "x"}, [1, 2]):
        payload = base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")
        assert refused(codec, f"{payload}.{codec._sign(payload.encode())}") == (400, "invalid_cursor")
