"""Helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator

from shared.observability import NAMESPACE, JsonLines


@contextlib.contextmanager
def run_lines() -> Iterator[list[dict]]:
    """The JSON lines the code logs meanwhile, as the local formatter writes them
    (the shape Lambda's JSON log format has), parsed; filled in when the block ends."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        lines.extend(json.loads(text) for text in stream.getvalue().splitlines() if text.strip())


def emf_metrics(line: dict) -> dict[str, float]:
    """The metrics CloudWatch would read off a log line in the Embedded Metric Format
    (its ``_aws`` block names them; their values are the line's own fields), checked
    as CloudWatch checks them: each metric's value present and numeric, each dimension a
    string field of the line."""
    directives = line.get("_aws", {}).get("CloudWatchMetrics", [])
    out: dict[str, float] = {}
    for directive in directives:
        assert directive["Namespace"] == NAMESPACE
        for dimension_set in directive["Dimensions"]:
            assert all(isinstance(line.get(d), str) and line[d] for d in dimension_set), (dimension_set, line)
        for metric in directive["Metrics"]:
            value = line[metric["Name"]]
            assert isinstance(value, int | float) and not isinstance(value, bool), (metric, value)
            out[metric["Name"]] = value
    assert not directives or isinstance(line["_aws"]["Timestamp"], int)
    return out


def invoke_scheduled(client, function: str) -> tuple[dict, bool]:
    """Invoke a scheduled function as its EventBridge rule does, through the app's
    middleware: (its report, whether the invocation failed)."""
    from shared.observability import RunFailed

    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[f"arn:aws:events:rule/{function}"]
    )
    try:
        return client.lambda_.invoke(function, event).payload, False
    except RunFailed as failed:
        return failed.report, True


def scheduled_report(client, function: str) -> dict:
    """The report of one scheduled run, whether or not the invocation failed."""
    return invoke_scheduled(client, function)[0]
