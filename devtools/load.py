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
