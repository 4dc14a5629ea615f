"""What the quote cache holds, read and written as the records it is, in the JSON shape
entries have always had in Redis (so a deployment's existing entries stay readable)."""

from __future__ import annotations

from shared.quotes import CacheEntry, FailureMark

QUOTE = {"symbol": "AAPL", "price": 102.5}


def test_an_entry_keeps_its_wire_shape():
    assert CacheEntry(1000.0, QUOTE).to_json() == {"q": QUOTE, "t": 1000.0}
    assert CacheEntry(1000.0, missing=True).to_json() == {"missing": True, "t": 1000.0}
    assert CacheEntry.read({"q": QUOTE, "t": 1000}) == CacheEntry(1000.0, QUOTE)
    assert CacheEntry.read({"missing": True, "t": 5}).missing
    assert CacheEntry.read(None) is None and CacheEntry.read({}) is None


def test_a_failure_mark_answers_the_503_its_kind_says():
    mark = FailureMark("rate_limited", "429 from the vendor", "rate limited", 7.0, 1000.0)
    assert FailureMark.read(mark.to_json()) == mark
    error = mark.error()
    assert (error.status, error.code, error.retry_after_s) == (503, "upstream_rate_limited", 7.0)
    down = FailureMark("unavailable", "500", "HTTP 500", None, 1.0).error()
    assert (down.code, down.details) == ("upstream_unavailable", {"dependency": "vendor"})
