r"""Interval arithmetic on Python floats with outward rounding: a bound of a magnitude over a box.

The float32 rounding test (:mod:`._rounding`) needs, for every output, a bound of the scale of
its float64 rounding error (its magnitude, :func:`cesym.generate.exact.magnitude`). Computing
that per element costs as much as the value itself where sums cancel. An upper bound over a
whole block does as well for most outputs, and costs a few dozen scalar operations: the block's
inputs lie in a box ``[min, max]`` per input, and the magnitude over that box is bounded here,
one rule per operation, by the generated ``<kernel>_<kind>_bound`` functions. An output whose
test fails with the block's bound gets its own magnitude (:class:`._rounding._Rounder`).

Each result is widened by one ulp at each end (two for the ``math`` module's exp and log, within
one ulp on glibc), so the interval holds every real value of the operation over its operands'
intervals. Ends may be ±inf; an operation undefined somewhere in the box (log of a negative
number) gives the whole line, which bounds nothing and sends the block to the exact magnitudes.
"""

from __future__ import annotations

import math

__all__ = [
    "I", "num", "add", "mul", "neg", "pow_", "abs_", "log", "exp", "log1p", "expm1", "softplus", "sigmoid",
    "logcosh", "tanh", "relu", "max_", "min_", "heaviside", "sign", "xmul", "xlog", "xabslog", "rowsum", "hull",
    "upper",
]

I = tuple[float, float]
_INF = math.inf
FULL: I = (-_INF, _INF)


def _out(lo: float, hi: float, ulps: int = 1) -> I:
    """``[lo, hi]`` widened by ``ulps`` at each end; NaN ends (inf - inf) give the whole line."""
    if lo != lo or hi != hi:
        return FULL
    for _ in range(ulps):
        lo, hi = math.nextafter(lo, -_INF), math.nextafter(hi, _INF)
    return lo, hi


def num(v: float) -> I:
    """A number given exactly (a float, or a rational the generator rounded: widened)."""
    return (v, v) if float(v).is_integer() else _out(v, v)


def add(*xs: I) -> I:
    out = xs[0]
    for x in xs[1:]:  # one rounding per addition, each widened
        out = _out(out[0] + x[0], out[1] + x[1])
    return out


def neg(x: I) -> I:
    return -x[1], -x[0]


def _prod(a: float, b: float) -> float:
    return 0.0 if a == 0 or b == 0 else a * b  # 0·∞ = 0: an end at ∞ is a limit, never a value


def mul(*xs: I) -> I:
    out = xs[0]
    for x in xs[1:]:
        ps = [_prod(a, b) for a in out for b in x]
        out = _out(min(ps), max(ps))
    return out


def xmul(w: I, x: I) -> I:
    """w·x with 0·x = 0 for every x (the label-weight product)."""
    return mul(w, x)


def _xlog(v: float) -> float:
    return 0.0 if v == 0 else (_INF if v == _INF else v * math.log(v))


def xlog(w: I) -> I:
    """w·log w with 0·log 0 = 0, for w >= 0: decreasing to -1/e at w = 1/e, then increasing
    (the product of w and log w as two intervals would be unbounded at w = 0)."""
    lo, hi = w
    if lo < 0:
        return FULL
    ends = [_xlog(lo), _xlog(hi)]
    low = -math.exp(-1) if lo <= math.exp(-1) <= hi else min(ends)
    return _out(min(low, min(ends)), max(ends), 3)


def xabslog(w: I) -> I:
    """w·|log w| with 0·log 0 = 0, for w >= 0: |xlog|."""
    return abs_(xlog(w))


def _recip(x: I) -> I:
    lo, hi = x
    if lo <= 0 <= hi:
        return FULL
    return _out(1 / hi, 1 / lo)


def pow_(x: I, e: float) -> I:
    """x**e: integer exponents on any base, others on a non-negative base."""
    lo, hi = x
    if float(e).is_integer():
        n = int(e)
        if n == 0:
            return 1.0, 1.0
        if n < 0:
            return pow_(_recip(x), -n)
        ends = [_ipow(lo, n), _ipow(hi, n)]
        if n % 2 == 0 and lo <= 0 <= hi:
            return _out(0.0, max(ends), n)
        return _out(min(ends), max(ends), n)
    if lo < 0:
        return FULL
    ends = [_rpow(lo, e), _rpow(hi, e)]
    return _out(min(ends), max(ends), 2)


def _ipow(v: float, n: int) -> float:
    try:
        return v**n
    except OverflowError:
        return math.copysign(_INF, v) if n % 2 else _INF


def _rpow(v: float, e: float) -> float:
    if v == _INF:
        return _INF if e > 0 else 0.0
    if v == 0:
        return 0.0 if e > 0 else _INF
    try:
        return v**e
    except OverflowError:
        return _INF


def abs_(x: I) -> I:
    lo, hi = x
    if lo >= 0:
        return x
    if hi <= 0:
        return -hi, -lo
    return 0.0, max(-lo, hi)


def _monotone(f, x: I, ulps: int = 2) -> I:
    return _out(f(x[0]), f(x[1]), ulps)


def _log(v: float) -> float:
    return -_INF if v == 0 else (_INF if v == _INF else math.log(v))


def log(x: I) -> I:
    return FULL if x[0] < 0 else _monotone(_log, x)


def _exp(v: float) -> float:
    try:
        return math.exp(v)
    except OverflowError:
        return _INF


def exp(x: I) -> I:
    lo, hi = _monotone(_exp, x)
    return max(lo, 0.0), hi


def log1p(x: I) -> I:
    if x[0] < -1:
        return FULL
    return _monotone(lambda v: -_INF if v == -1 else (_INF if v == _INF else math.log1p(v)), x)


def expm1(x: I) -> I:
    return _monotone(lambda v: -1.0 if v == -_INF else (_INF if v > 709.78 else math.expm1(v)), x)


def _softplus(v: float) -> float:
    if v == _INF or v > 40:
        return v  # log1p(e^-v) < 2^-57·v: the widening covers it
    return math.log1p(math.exp(v))


def softplus(x: I) -> I:
    lo, hi = _monotone(_softplus, x, 3)
    return max(lo, 0.0), hi


def _sigmoid(v: float) -> float:
    if v == _INF:
        return 1.0
    if v == -_INF:
        return 0.0
    return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


def sigmoid(x: I) -> I:
    lo, hi = _monotone(_sigmoid, x, 3)
    return max(lo, 0.0), min(hi, 1.0)


def logcosh(x: I) -> I:
    a = abs_(x)

    def f(v: float) -> float:
        if v > 40:  # |x| - ln 2 + log1p(e^{-2|x|}): the last is below e^-80, far inside the widening
            return v - math.log(2) if v != _INF else _INF
        return math.log(math.cosh(v))

    lo, hi = _monotone(f, a, 3)
    return max(lo, 0.0), hi


def tanh(x: I) -> I:
    lo, hi = _monotone(lambda v: math.copysign(1.0, v) if abs(v) == _INF else math.tanh(v), x, 2)
    return max(lo, -1.0), min(hi, 1.0)


def relu(x: I) -> I:
    return max(x[0], 0.0), max(x[1], 0.0)


def max_(*xs: I) -> I:
    return max(x[0] for x in xs), max(x[1] for x in xs)


def min_(*xs: I) -> I:
    return min(x[0] for x in xs), min(x[1] for x in xs)


def heaviside(x: I) -> I:
    return (0.0, 1.0) if x[0] <= 0 <= x[1] else ((1.0, 1.0) if x[0] > 0 else (0.0, 0.0))


def sign(x: I) -> I:
    return (-1.0 if x[0] < 0 else (0.0 if x[0] == 0 else 1.0), 1.0 if x[1] > 0 else (0.0 if x[1] == 0 else -1.0))


def rowsum(x: I, C: int) -> I:
    """A sum of C terms, each in ``x``."""
    return mul(x, (float(C), float(C)))


def hull(*xs: I) -> I:
    """The union of the branches of a piecewise expression (every branch may be taken)."""
    return min(x[0] for x in xs), max(x[1] for x in xs)


def upper(x: I) -> float:
    """The bound a magnitude's interval gives: its upper end (inf: no bound; NaN never)."""
    hi = x[1]
    return _INF if hi != hi else hi
