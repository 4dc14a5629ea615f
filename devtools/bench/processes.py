"""Load from several processes, as separate Lambda instances would make it."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor


def _cold_worker(env: dict, symbol: str, threads: int, barrier, results) -> None:
    os.environ.update(env)
    from shared.errors import ApiError
    from shared.runtime import Runtime

    quotes = Runtime().quotes

    def one(_):
        try:
            return quotes.get(symbol).status
        except ApiError as exc:
            return f"error:{exc.code}"

    barrier.wait()
    with ThreadPoolExecutor(threads) as pool:
        results.put(list(pool.map(one, range(threads))))


def concurrent_cold_requests(env: dict, symbol: str, processes: int = 4, threads: int = 16) -> list[str]:
    """``processes x threads`` simultaneous quote requests for one symbol; their cache statuses."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_cold_worker, args=(env, symbol, threads, barrier, results)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    statuses = []
    for _ in workers:
        statuses.extend(results.get(timeout=60))
    for worker in workers:
        worker.join(timeout=10)
    return statuses


def _batch_worker(env: dict, symbols: list[str], barrier, results) -> None:
    os.environ.update(env)
    from shared.runtime import Runtime

    quotes = Runtime().quotes
    barrier.wait()
    found, errors = quotes.get_many(symbols)
    results.put({**{s: r.status for s, r in found.items()}, **{s: f"error:{e.code}" for s, e in errors.items()}})


def concurrent_batches(env: dict, batches: list[list[str]]) -> list[dict[str, str]]:
    """Each batch asked at the same moment from its own process; each batch's statuses by symbol."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(batches))
    results = ctx.Queue()
    workers = [ctx.Process(target=_batch_worker, args=(env, batch, barrier, results)) for batch in batches]
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    return answers


# ---------------------------------------------------------------- load: N Lambda instances


def _load_worker(service, env, event, vary, seconds, barrier, results) -> None:
    """One Lambda instance: the app's handler, one request at a time, for ``seconds``."""
    import json
    import time

    os.environ.update(env)
    from tests.apps import load_app

    module = load_app(service)

    class Context:
        function_name = "load"
        aws_request_id = "load"

        def get_remaining_time_in_millis(self):
            return 30000

    context = Context()
    worker = os.getpid()

    def make(i):
        if vary == "symbol":  # a symbol never asked before: every request is a cache miss
            symbol = f"Q{(worker * 7919 + i) % 100000:05d}"
            query = {**event["queryStringParameters"], "symbol": symbol}
            return {**event, "queryStringParameters": query, "multiValueQueryStringParameters": {"symbol": [symbol]}}
        return event

    for i in range(20):  # warm: connections open, modules imported
        module.app(make(-i - 1), context)
    barrier.wait()
    latencies, errors = [], 0
    cpu0 = time.process_time()
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end:
        request = make(i)
        t0 = time.perf_counter()
        answer = module.app(request, context)
        latencies.append(time.perf_counter() - t0)
        if answer["statusCode"] != 200:
            errors += 1
            if errors == 1:
                print(json.dumps(answer)[:300], flush=True)
        i += 1
    results.put((latencies, time.process_time() - cpu0, errors))


def run_load(service: str, env: dict, event: dict, processes: int, seconds: float, vary: str = "") -> dict:
    """``processes`` instances of ``service`` at once; their latencies and CPU."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_load_worker, args=(service, env, event, vary, seconds, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    gathered = [results.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    latencies = sorted(x for got in gathered for x in got[0])
    return {
        "requests": len(latencies),
        "latencies": latencies,
        "handler_cpu_s": sum(got[1] for got in gathered),
        "errors": sum(got[2] for got in gathered),
    }


def process_cpu_s(pids: list[int], with_children: bool = False) -> float:
    """User and system CPU seconds of these processes so far (Linux /proc).

    ``with_children`` adds what their exited children used: PostgreSQL starts a
    backend for each connection, and a backend that ended during a measurement
    is only seen in its postmaster's reaped-children time.
    """
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
        if with_children:
            total += int(fields[13]) + int(fields[14])
    return total / tick


def pids_named(name: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if open(f"/proc/{entry}/comm").read().strip() == name:
                    out.append(int(entry))
            except OSError:
                continue
    return out
