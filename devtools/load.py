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
