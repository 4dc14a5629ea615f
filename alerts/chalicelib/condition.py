"""The alert condition language, parsed by a grammar (lark), never ``eval``.

    close < sma(50)
    price crosses above ema(20) and volume > 1000000
    (rsi(14) < 30 or change_pct <= -5) and price > 10

Operands: ``price`` (latest quote), ``change_pct`` (latest price vs previous
close, in percent), ``open``, ``high``, ``low``, ``close``, ``volume`` (the last
completed daily bar), ``sma(n)``, ``ema(n)``, ``rsi(n)`` on daily closes with
1 <= n <= 200, and numbers. Comparisons ``<``, ``<=``, ``>``, ``>=``;
``crosses above`` / ``crosses below``; ``and``, ``or``, parentheses. Keywords
are case-insensitive.

``A crosses above B`` is true when ``A <= B`` at the previous point and
``A > B`` at the current one (``crosses below`` mirrors it). The points are the
last two bars: bar operands at the last completed bar and the bar before it;
``price`` at the latest quote and, before it, the last bar's close;
``change_pct`` likewise against the bar before. So the answer needs no memory
of earlier checks and a cold start or a retry cannot change it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from shared.indicators import MAX_PERIOD

GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: atom (_AND atom)*
?atom: comparison
     | "(" or_expr ")"
comparison: operand COMPARATOR operand
          | operand CROSS operand
?operand: NUMBER -> number
        | FIELD -> field
        | INDICATOR "(" INT ")" -> indicator
COMPARATOR: "<=" | ">=" | "<" | ">"
CROSS.2: /crosses\s+(above|below)\b/i
FIELD.1: /(price|change_pct|open|high|low|close|volume)\b/i
INDICATOR.1: /(sma|ema|rsi)\b/i
_AND.1: /and\b/i
_OR.1: /or\b/i
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)/
INT: /\d+/
%import common.WS
%ignore WS
"""


@lru_cache(maxsize=1)
def _parser():
    """The LALR parser and the tree builder, made on the first parse: importing
    lark and building the tables costs ~60 ms that only parsing needs."""
    from lark import Lark, Transformer, v_args

    @v_args(inline=True)
    class ToTree(Transformer):
        def number(self, token):
            return ("num", float(token))

        def field(self, token):
            return ("field", str(token).lower())

        def indicator(self, name, period):
            return ("ind", str(name).lower(), int(period))

        def comparison(self, left, op, right):
            if op.type == "CROSS":
                return ("cross", str(op).split()[-1].lower(), left, right)
            return ("cmp", str(op), left, right)

        def and_expr(self, *parts):
            return ("and", list(parts))

        def or_expr(self, *parts):
            return ("or", list(parts))

    return Lark(GRAMMAR, parser="lalr", maybe_placeholders=False), ToTree()


READABLE = {
    "COMPARATOR": "a comparison (<, <=, >, >=)",
    "CROSS": "'crosses above' or 'crosses below'",
    "FIELD": "an operand (price, change_pct, open, high, low, close, volume)",
    "INDICATOR": "an indicator (sma, ema, rsi)",
    "NUMBER": "a number",
    "INT": "a whole number",
    "LPAR": "'('",
    "RPAR": "')'",
    "_AND": "'and'",
    "_OR": "'or'",
    "$END": "the end of the condition",
}


class ConditionError(ValueError):
    def __init__(self, message: str, position: int | None = None, expected: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.position = position
        self.expected = expected or []


# The tree: ("num", x) | ("field", name) | ("ind", name, n)
#           ("cmp", op, a, b) | ("cross", "above"|"below", a, b) | ("and", [..]) | ("or", [..])


@dataclass(frozen=True)
class Condition:
    text: str
    tree: tuple

    def operands(self) -> list[tuple]:
        """Every distinct non-number operand, in order of appearance."""
        seen: list[tuple] = []

        def walk(node):
            kind = node[0]
            if kind in ("and", "or"):
                for child in node[1]:
                    walk(child)
            elif kind in ("cmp", "cross"):
                walk(node[2])
                walk(node[3])
            elif kind != "num" and node not in seen:
                seen.append(node)

        walk(self.tree)
        return seen

    def needs_quote(self) -> bool:
        return any(op[0] == "field" and op[1] in ("price", "change_pct") for op in self.operands())

    def needs_previous(self) -> bool:
        def walk(node):
            if node[0] in ("and", "or"):
                return any(walk(c) for c in node[1])
            return node[0] == "cross"

        return walk(self.tree)

    def evaluate(self, value) -> bool:
        """``value(operand, point)`` gives an operand at point 0 (now) or 1 (before)."""

        def number(node, point):
            return node[1] if node[0] == "num" else value(node, point)

        def walk(node) -> bool:
            kind = node[0]
            if kind == "and":
                return all(walk(c) for c in node[1])
            if kind == "or":
                return any(walk(c) for c in node[1])
            if kind == "cmp":
                a, b = number(node[2], 0), number(node[3], 0)
                return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[node[1]]
            a0, b0 = number(node[2], 1), number(node[3], 1)
            a1, b1 = number(node[2], 0), number(node[3], 0)
            if node[1] == "above":
                return a0 <= b0 and a1 > b1
            return a0 >= b0 and a1 < b1

        return walk(self.tree)


def label(operand: tuple) -> str:
    if operand[0] == "ind":
        return f"{operand[1]}({operand[2]})"
    return operand[1]


def _check(node) -> None:
    kind = node[0]
    if kind in ("and", "or"):
        for child in node[1]:
            _check(child)
    elif kind in ("cmp", "cross"):
        if node[2][0] == "num" and node[3][0] == "num":
            raise ConditionError("a comparison needs at least one operand that is not a number")
        _check(node[2])
        _check(node[3])
    elif kind == "ind":
        low = 2 if node[1] == "rsi" else 1
        if not low <= node[2] <= MAX_PERIOD:
            raise ConditionError(f"{node[1]}(n) needs {low} <= n <= {MAX_PERIOD}, got {node[2]}")


@lru_cache(maxsize=4096)
def parse(text: str) -> Condition:
    """A checked condition, or ``ConditionError`` saying where and what was expected."""
    if not text or not text.strip():
        raise ConditionError("the condition is empty", 1, ["an operand"])
    from lark.exceptions import UnexpectedInput

    parser, to_tree = _parser()
    try:
        tree = to_tree.transform(parser.parse(text))
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    _check(tree)
    return Condition(text, tree)


def _syntax_error(text: str, exc) -> ConditionError:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    if isinstance(exc, UnexpectedEOF):
        position, found = len(text.rstrip()) + 1, "the end of the condition"
        names: set[str] = {str(name) for name in exc.expected}
    elif isinstance(exc, UnexpectedToken):
        if exc.token.type == "$END":
            position, found = len(text.rstrip()) + 1, "the end of the condition"
        else:
            position, found = exc.column, repr(str(exc.token))
        names = {str(name) for name in exc.expected}
    elif isinstance(exc, UnexpectedCharacters):
        position, found = exc.column, repr(text[exc.pos_in_stream or 0])
        names = set(exc.allowed or ())
    else:  # pragma: no cover - lark raises only the three above
        position, found, names = getattr(exc, "column", 1), "something unexpected", set()
    expected = sorted({READABLE.get(n, n) for n in names if not n.startswith("__")})
    message = f"syntax error at position {position}: found {found}"
    if expected:
        message += f", expected {' or '.join(expected)}"
    return ConditionError(message, position, expected)
