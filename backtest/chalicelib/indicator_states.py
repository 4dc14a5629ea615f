"""Keeping each symbol's indicator state (``shared.indicators.IndicatorState``) current:
what the alerts check reads instead of a symbol's history.

``refresh`` runs after everything that writes bars (the daily update, ingestion, the
migration to raw bars). For each symbol it either

- steps the stored state by the bars stored since (the daily update's usual case: one
  bar, O(1) whatever the history's length), or
- computes it from the symbol's **whole** stored history, split-adjusted as the chart
  shows it (``HistoryService.whole_history``: the lake and PostgreSQL), when there is no
  state yet, when its split list changed (a new split rescales every earlier price),
  when a split falls after the state's last bar, or when the caller says the history was
  rewritten (ingestion, migration).

The whole-history computation is vectorised with ``pyarrow.compute`` (pyarrow is in this
zip already; numpy is not, since pyarrow 16 no longer requires it): the closed form of
each recursion at its last point, ~50 ms for 20 years (numpy took ~30).
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from itertools import accumulate

import orjson

from shared import postgres
from shared.adjustment import adjust
from shared.bars import DailyBar
from shared.indicators import MAX_PERIOD, NAN, WINDOW, Bar, IndicatorState, pack

log = logging.getLogger(__name__)


@dataclass
class StatesRefreshed:
    """What a refresh did: symbols computed from their whole history, stepped by new
    bars, already current, and those it could not bring current (with why)."""

    computed: list[str] = field(default_factory=list)
    stepped: list[str] = field(default_factory=list)
    current: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "computed": len(self.computed),
            "stepped": len(self.stepped),
            "current": self.current,
            "failed": self.failed,
        }


def splits_key(basis: str, actions_loaded: bool, actions: list) -> str:
    """What a split-adjusted history depends on: its rows' basis and every split."""
    splits = ";".join(f"{a.day}:{a.split_from:g}:{a.split_to:g}" for a in actions if a.kind == "split")
    return f"{basis}|{int(actions_loaded)}|{splits}"


def _smoothed(series, alphas: dict[int, float]) -> dict[int, float]:
    """For each n in ``alphas``: the recursion ``v = alpha * x + (1 - alpha) * v`` over
    ``series`` (a float64 pyarrow array), seeded with the mean of its first n values, at
    its last value (NaN when the series is shorter than n).

    Closed form: ``beta**m * seed + alpha * sum(beta**(m-1-k) * tail[k])`` over the m
    values after the seed. Every n's terms go into one array and are summed by group, so
    the cost is a few vectorised calls per history rather than a few per n."""
    import pyarrow as pa
    import pyarrow.compute as pc

    length = len(series)
    out = {n: NAN for n in alphas if n > length}
    ns = [n for n in alphas if n <= length]
    if not ns:
        return out
    prefix = pc.cumulative_sum(series).to_pylist()
    seeds = {n: prefix[n - 1] / n for n in ns}
    tails = [n for n in ns if n < length]
    sums: dict[int, float] = {}
    if tails:
        # Only the terms whose weight beta**k is above e**-40 (far below a float's
        # precision against the sum) are computed: ~20n of them, not the whole history.
        logs = {n: math.log(1.0 - alphas[n]) if alphas[n] < 1 else 0.0 for n in tails}
        kept = {n: min(length - n, math.ceil(40 / -logs[n]) if logs[n] else 1) for n in tails}
        run_ends = pa.array(list(accumulate(kept[n] for n in tails)), type=pa.int32())
        exponents = pa.array(range(length - 1, -1, -1), type=pa.float64())

        def per_term(values, kind):
            return pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(run_ends, pa.array(values, type=kind)))

        weights = pc.exp(
            pc.multiply(
                pa.concat_arrays([exponents.slice(length - kept[n]) for n in tails]),
                per_term([logs[n] for n in tails], pa.float64()),
            )
        )
        terms = pc.multiply(weights, pa.concat_arrays([series.slice(length - kept[n]) for n in tails]))
        table = pa.table({"n": per_term(tails, pa.int32()), "term": terms})
        grouped = table.group_by("n").aggregate([("term", "sum")]).to_pydict()
        sums = dict(zip(grouped["n"], grouped["term_sum"]))
    for n in ns:
        beta, size = 1.0 - alphas[n], length - n
        out[n] = beta**size * seeds[n] + alphas[n] * sums[n] if size else seeds[n]
    return out


def compute(symbol: str, bars: list[DailyBar], splits: str) -> IndicatorState | None:
    """The state of a whole (adjusted) history: its recursions at the bar before the last."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not bars:
        return None
    closes = pa.array([b.close for b in bars], type=pa.float64())
    before = closes.slice(0, len(closes) - 1)
    moves = pc.subtract(before.slice(1), before.slice(0, max(len(before) - 1, 0)))
    gains, losses = pc.max_element_wise(moves, 0.0), pc.max_element_wise(pc.negate(moves), 0.0)
    periods = range(1, MAX_PERIOD + 1)
    ema = _smoothed(before, {n: 2 / (n + 1) for n in periods})
    # RSI's averages (Wilder's, alpha 1/n) are defined from n = 2.
    wilder = {n: 1 / n for n in periods if n >= 2}
    gain, loss = _smoothed(gains, wilder), _smoothed(losses, wilder)
    ema_values = tuple(ema[n] for n in periods)
    gain_values = tuple(gain.get(n, NAN) for n in periods)
    loss_values = tuple(loss.get(n, NAN) for n in periods)
    return IndicatorState(
        symbol,
        bars[-1].day,
        len(bars),
        tuple(float(b.close) for b in bars[-WINDOW:]),
        tuple(Bar(*b) for b in bars[-2:]),
        ema_values,
        gain_values,
        loss_values,
        splits,
    )


def write_states(conn, states: list[IndicatorState]) -> None:
    for state in states:
        conn.run(
            """
            INSERT INTO indicator_states (symbol, day, bar_count, closes, bars, ema, gain, loss, splits)
            VALUES (:symbol, :day, :count, :closes, :bars, :ema, :gain, :loss, :splits)
            ON CONFLICT (symbol) DO UPDATE SET
                day = EXCLUDED.day, bar_count = EXCLUDED.bar_count, closes = EXCLUDED.closes,
                bars = EXCLUDED.bars, ema = EXCLUDED.ema, gain = EXCLUDED.gain, loss = EXCLUDED.loss,
                splits = EXCLUDED.splits, computed_at = now()
            """,
            symbol=state.symbol,
            day=state.day,
            count=state.count,
            closes=pack(state.closes),
            bars=orjson.dumps(
                [[b.day.isoformat(), b.open, b.high, b.low, b.close, b.volume] for b in state.bars]
            ).decode(),
            ema=pack(state.ema),
            gain=pack(state.gain),
            loss=pack(state.loss),
            splits=state.splits,
        )


def _heads(conn) -> dict[str, tuple[date, str]]:
    return {r[0]: (r[1], r[2]) for r in conn.run("SELECT symbol, day, splits FROM indicator_states")}


def _tracked(conn) -> dict[str, tuple[date, str, bool]]:
    return {r[0]: (r[1], r[2], r[3]) for r in conn.run("SELECT symbol, last_day, basis, actions_loaded FROM symbols")}


def refresh(database, history, symbols=None, rewritten=(), workers: int = 8) -> StatesRefreshed:
    """Bring the states of ``symbols`` (default: every tracked symbol) current; those in
    ``rewritten`` (their history was replaced) are computed from their whole history."""
    done = StatesRefreshed()
    heads, tracked = database.run(lambda c: (_heads(c), _tracked(c)))
    wanted = sorted(tracked if symbols is None else set(symbols) & set(tracked))
    actions = database.run(lambda c: postgres.read_actions(c, wanted))
    whole, step = [], {}
    for symbol in wanted:
        last_day, basis, loaded = tracked[symbol]
        key = splits_key(basis, loaded, actions[symbol])
        head = heads.get(symbol)
        if symbol in rewritten or head is None or head[1] != key:
            whole.append((symbol, key))
        elif any(a.kind == "split" and a.day > head[0] for a in actions[symbol]):
            whole.append((symbol, key))  # a split after the state's bar rescales it: start over
        elif head[0] < last_day:
            step[symbol] = head[0]
        else:
            done.current += 1

    if step:
        stepped = _step(database, step, {s: tracked[s] for s in step}, actions, done)
        database.run(lambda c: write_states(c, stepped))

    def from_whole(item):
        symbol, key = item
        try:
            bars = history.whole_history(symbol)
            return symbol, compute(symbol, bars, key), None
        except Exception as exc:  # noqa: BLE001 - one symbol's failure is reported, the others go on
            return symbol, None, f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"

    if whole:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="indicator-state") as pool:
            results = list(pool.map(from_whole, whole))
        states = []
        for symbol, state, error in results:
            if error:
                log.error("the indicator state of %s was not computed: %s", symbol, error)
                done.failed[symbol] = error
            elif state is not None:
                states.append(state)
                done.computed.append(symbol)
        database.run(lambda c: write_states(c, states))
    return done


def _step(database, after: dict[str, date], tracked, actions, done: StatesRefreshed) -> list[IndicatorState]:
    """The states stepped by every bar stored after them (as stored: no split falls after
    a state's last bar here, so those bars need no adjusting), in two queries."""
    through = max(t[0] for t in tracked.values())
    states, new = database.run(lambda c: (postgres.read_states(c, list(after)), postgres.read_after(c, after, through)))
    out = []
    for symbol, state in states.items():
        bars = adjust(new.get(symbol, []), actions[symbol], "split", tracked[symbol][1])
        for bar in bars:
            state = state.stepped(Bar(*bar))
        out.append(state)
        done.stepped.append(symbol)
    return out
