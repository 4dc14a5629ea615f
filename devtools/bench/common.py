"""What every benchmark shares: percentiles, the verdict line, an API Gateway event."""

from __future__ import annotations

import statistics
import time


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def api_event(path: str, query: dict) -> dict:
    return {
        "resource": path,
        "path": path,
        "httpMethod": "GET",
        "headers": {"Host": "bench"},
        "multiValueHeaders": {},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()},
        "pathParameters": None,
        "stageVariables": None,
        "body": None,
        "isBase64Encoded": False,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": "GET",
            "path": path,
            "stage": "api",
            "identity": {"sourceIp": "127.0.0.1"},
        },
    }


class LambdaContext:
    function_name = "bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self):
        return 30000


def timed(fn, runs: int) -> float:
    """Median seconds of ``runs`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
