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

The whole-history computation is vectorised (numpy, which pyarrow brings along): the
closed form of each recursion at its last point, every n at once, ~10 ms for 20 years.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

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


def _smoothed(series, n: int, alpha: float) -> float:
    """The recursion ``v = alpha * x + (1 - alpha) * v`` over ``series``, seeded with the
    mean of its first n values, at its last value (NaN when shorter than n)."""
    import numpy as np

    if len(series) < n:
        return NAN
    seed = float(series[:n].mean())
    tail = series[n:]
    if not len(tail):
        return seed
    beta = 1.0 - alpha
    weights = beta ** np.arange(len(tail) - 1, -1, -1, dtype=np.float64)
    return float(beta ** len(tail) * seed + alpha * np.dot(weights, tail))


def compute(symbol: str, bars: list[DailyBar], splits: str) -> IndicatorState | None:
    """The state of a whole (adjusted) history: its recursions at the bar before the last."""
    import numpy as np

    if not bars:
        return None
    closes = np.array([b.close for b in bars], dtype=np.float64)
    before = closes[:-1]
    moves = np.diff(before)
    gains, losses = np.maximum(moves, 0.0), np.maximum(-moves, 0.0)
    ema, gain, loss = [], [], []
    for n in range(1, MAX_PERIOD + 1):
        ema.append(_smoothed(before, n, 2 / (n + 1)))
        rsi_defined = n >= 2
        gain.append(_smoothed(gains, n, 1 / n) if rsi_defined else NAN)
        loss.append(_smoothed(losses, n, 1 / n) if rsi_defined else NAN)
    return IndicatorState(
        symbol,
        bars[-1].day,
        len(bars),
        tuple(float(c) for c in closes[-WINDOW:]),
        tuple(Bar(*b) for b in bars[-2:]),
        tuple(ema),
        tuple(gain),
        tuple(loss),
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
