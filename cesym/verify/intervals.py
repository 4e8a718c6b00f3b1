r"""Interval arithmetic in float64, on whole arrays: the first tier of an exhaustive run.

An interval is a pair ``(lo, hi)`` of float64 arrays that encloses the exact value of an
expression at each element. Arb balls (:mod:`cesym.verify.balls`) cost about 10 us a point;
a float32 kernel of one input has 2^32 of them. Here each operation is a few NumPy passes over
millions of points, and the intervals are about 2^-45 wide relative to the value: narrow enough
to fix the correctly rounded float32 result of all but about one input in a million (those
whose value lies that close to a float32 rounding boundary), which go to the ball reference.

How each end is bounded:

* ``+ - * / sqrt``: IEEE operations round to nearest, so the exact result is within half a
  spacing of the rounded one: each end is moved outward by one to three spacings. (An exact
  result, e.g. the square of a float32, is widened too: where it lies exactly halfway between
  two float32 numbers, the point goes to the ball reference, which sees the tie.)
* ``exp, log, log1p, expm1, tanh``: NumPy's float64 functions are not correctly rounded (glibc's
  are within 1-2 ulps, NumPy's own SIMD loops and SVML within 4 ulps, by their documentation).
  Each result is moved outward by :data:`LIBM_RELATIVE` (2^-46: 128 ulps) of itself plus
  :data:`LIBM_ABSOLUTE` (2^-960, for results in or near the subnormals): an allowance 30 times the documented
  bounds, which :func:`libm_check` measures against arb on every exhaustive run.
* Functions of one variable that are monotone (softplus, σ, log cosh on each side of 0, ...) are
  bounded by their values at the two ends, each computed by a stable formula from the rules
  above, so no end overflows where the value does not.
* Comparisons are three-valued: where an interval straddles the boundary the point is undecided
  (NaN ends), never given the value of one branch.

NaN in an end means "not decided here": the caller hands those points to the ball reference.
The rules are written for the primitives of loss kernels of one input (:data:`RULES`); an
expression with any other function raises :class:`NoIntervalRule` naming it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Callable

import numpy as np
import sympy as sp

from ..define import primitives as P
from .exhaustive_loops import STEPS

__all__ = ["LIBM_RELATIVE", "LIBM_ABSOLUTE", "NoIntervalRule", "evaluate", "rounds_to", "libm_check", "RULES", "exact_ends"]

#: Outward allowance of one libm result, relative to it: 2^-46 (128 float64 ulps).
LIBM_RELATIVE = 2.0**-46
#: ... and absolute, for results in or near the subnormals: 2^114 subnormal spacings, so that
#: the ends it makes (an underflowed exp: [-2^-959, 2^-959]) stay normal numbers through the
#: products by labels and weights that follow. A product or a step whose result is subnormal
#: costs a microcode assist on x86 (45 times a normal pass, measured on whole arrays): at
#: 2^-1060, a fifth of a logit kernel's label-0.3 sweep. Any float32 rounding is blind to 2^-959.
LIBM_ABSOLUTE = 2.0**-960
#: Below it, |x|·2^-52 would be subnormal: steps and allowances take |x| at least this.
_NO_UNDERFLOW = 2.0**-970
# A lower bound for a libm result that overflowed: with 128 ulps of error it exceeds this
_HUGE = 2.0**1020
#: Error of the stable float64 formulas below, relative to their value: each is a few libm
#: calls (each within LIBM_RELATIVE) and a few roundings (2^-53), composed without cancellation;
#: the worst, log cosh's, is derived at :func:`_logcosh_value` to within 8 LIBM_RELATIVE.
FORMULA_RELATIVE = 2.0**-42

Interval = tuple[np.ndarray, np.ndarray]


class NoIntervalRule(NotImplementedError):
    """The expression uses a function this module has no interval rule for."""


def _step_of(x):
    """At least the spacing of the floats at x (max(|x|, 2^-970)·2^-52 + the least subnormal),
    and less than three for |x| >= 2^-970 (below, 2^-1022: never a subnormal product, see
    :data:`LIBM_ABSOLUTE`): ``numpy.nextafter`` costs 14 ns a number, this 1."""
    return np.maximum(np.abs(x), _NO_UNDERFLOW) * 2.0**-52 + 5e-324


def _down(x):
    """A float below x by at least one spacing (x - step rounds to at most the float below x):
    a lower end for any number within half a spacing of x. At ±inf: x itself. (One compiled
    pass where :data:`STEPS` is loaded, five NumPy passes otherwise: the same numbers.)"""
    with np.errstate(invalid="ignore"):
        if STEPS is not None:
            return STEPS.down(x)
        return np.fmin(x - _step_of(x), x)


def _up(x):
    with np.errstate(invalid="ignore"):
        if STEPS is not None:
            return STEPS.up(x)
        return np.fmax(x + _step_of(x), x)


def point(x) -> Interval:
    """The exact interval [x, x] of float64 values."""
    x = np.asarray(x, dtype=np.float64)
    return x, x


@functools.lru_cache(maxsize=1024)
def constant(c: sp.Basic) -> Interval:
    """A SymPy number as the tightest float64 interval around it (a point where it is a float).
    Cached: the numbers of an expression come back on every block (their ends are scalars,
    never written to)."""
    import mpmath

    with mpmath.workprec(200):
        v = mpmath.mpf(c) if isinstance(c, (int, float)) else mpmath.mpf(sp.Float(sp.N(c, 70), 70)._mpf_)
        f = float(v)
        if mpmath.mpf(f) == v:
            return point(f)
        lo = f if mpmath.mpf(f) < v else float(np.nextafter(f, -np.inf))
        hi = f if mpmath.mpf(f) > v else float(np.nextafter(f, np.inf))
    return np.float64(lo), np.float64(hi)


def _widen(f, rel: float):
    """[f - r, f + r] with r = (rel + 2^-51)·|f| + 2·abs: the enclosure of a value computed
    within ``rel`` of itself (plus :data:`LIBM_ABSOLUTE` near the subnormals), the extra 2^-51
    covering the roundings of r and of f ± r. An overflowed ``f`` keeps a lower end of 2^1020
    (its true value is beyond any float32), not inf."""
    with np.errstate(invalid="ignore", over="ignore"):
        if STEPS is not None and rel in STEPS.widen:
            lo, hi = STEPS.widen[rel]
            return lo(f), hi(f)
        r = np.maximum(np.abs(f), _NO_UNDERFLOW) * (rel + 2.0**-51) + 2 * LIBM_ABSOLUTE
        lo, hi = f - r, f + r
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        lo = np.where(f == np.inf, _HUGE, np.where(f == -np.inf, -np.inf, lo))
        hi = np.where(f == -np.inf, -_HUGE, np.where(f == np.inf, np.inf, hi))
    return lo, hi


# --- arithmetic -------------------------------------------------------------------------------


#: Exact ends (:func:`exact_ends`): sums and products find their rounding error (TwoSum,
#: Dekker's product) and move an end outward only where that error points outward, so an
#: exact result stays a point (an exact tie is then seen as one). Four to ten times the passes
#: of the plain rule: for the few points the plain rule leaves undecided.
_EXACT: contextvars.ContextVar[bool] = contextvars.ContextVar("cesym_intervals_exact", default=False)


@contextlib.contextmanager
def exact_ends():
    """Within it (this thread or task only), ``+`` and ``*`` keep exact results exact."""
    token = _EXACT.set(True)
    try:
        yield
    finally:
        _EXACT.reset(token)


def _two_sum(a, b):
    """s = fl(a + b) and the exact a + b - s (Knuth's TwoSum; NaN where s is not finite)."""
    with np.errstate(invalid="ignore", over="ignore"):
        s = a + b
        bb = s - a
        return s, (a - (s - bb)) + (b - bb)


def _split(a):
    c = 134217729.0 * a  # 2^27 + 1
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    """p = fl(a·b) and the exact a·b - p (Dekker), NaN where that is not exact: a factor beyond
    2^995 (the split overflows) or a product below 2^-968 (its error underflows), unless a factor is 0."""
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        p = a * b
        ah, al = _split(a)
        bh, bl = _split(b)
        err = ((ah * bh - p) + ah * bl + al * bh) + al * bl
        zero = (a == 0) | (b == 0)
        ok = zero | ((np.abs(a) < 2.0**995) & (np.abs(b) < 2.0**995) & (np.abs(p) >= 2.0**-968))
        return p, np.where(zero, 0.0, np.where(ok, err, np.nan))


def _lower(v, err):
    """A lower end for v + err (the exact value): v itself where err >= 0, else a float below."""
    return np.where(err >= 0, v, _down(v))


def _upper(v, err):
    return np.where(err <= 0, v, _up(v))


def add(x: Interval, y: Interval) -> Interval:
    """[x.lo + y.lo, x.hi + y.hi], each end one float outward (IEEE rounds to nearest); within
    :func:`exact_ends`, only where the sum was rounded that way."""
    if _EXACT.get():
        (s, e), (t, f) = _two_sum(x[0], y[0]), _two_sum(x[1], y[1])
        return _lower(s, e), _upper(t, f)
    if STEPS is not None:  # (a compiled comparison with NaN raises the invalid flag NumPy's does not)
        with np.errstate(invalid="ignore"):
            return STEPS.add_down(x[0], y[0]), STEPS.add_up(x[1], y[1])
    return _down(x[0] + y[0]), _up(x[1] + y[1])


def neg(x: Interval) -> Interval:
    if _is_point(x):  # a point stays one (the same array as both ends)
        n = -x[0]
        return n, n
    return -x[1], -x[0]


def _is_point(x: Interval) -> bool:
    return x[0] is x[1]


def mul(x: Interval, y: Interval) -> Interval:
    """The product interval: the extremes of the end products, one float outward (within
    :func:`exact_ends`: only where a product was rounded that way). 0·inf is NaN (undecided)."""
    if _EXACT.get():
        ends = [_two_prod(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)) for a in (x[0], x[1]) for b in (y[0], y[1])]
        return np.minimum.reduce([_lower(p, e) for p, e in ends]), np.maximum.reduce([_upper(p, e) for p, e in ends])
    if _is_point(x) and np.ndim(x[0]) == 0:  # a constant first (SymPy puts numbers first)
        x, y = y, x
    if _is_point(y) and np.ndim(y[0]) == 0 and float(y[0]) in (1.0, -1.0):  # exact: a point stays one
        return x if float(y[0]) > 0 else neg(x)
    if _is_point(x) and _is_point(y):
        p = x[0] * y[0]
        return _down(p), _up(p)
    if _is_point(y) and np.ndim(y[0]) == 0:  # by a constant: its sign orders the ends
        c = float(y[0])
        with np.errstate(invalid="ignore"):  # 0·inf: NaN, undecided
            a, b = (x[0] * c, x[1] * c) if c >= 0 else (x[1] * c, x[0] * c)
        return _down(a), _up(b)
    if STEPS is not None:
        with np.errstate(invalid="ignore"):
            return STEPS.mul_down(x[0], x[1], y[0], y[1]), STEPS.mul_up(x[0], x[1], y[0], y[1])
    p1, p2, p3, p4 = (a * b for a in (x[0], x[1]) for b in (y[0], y[1]))
    # pairwise, not minimum.reduce of a list (which stacks the four arrays first)
    return _down(np.minimum(np.minimum(p1, p2), np.minimum(p3, p4))), _up(np.maximum(np.maximum(p1, p2), np.maximum(p3, p4)))


def div(x: Interval, y: Interval) -> Interval:
    """x / y for y not containing 0 (else NaN): the extremes of the end quotients, one float
    outward."""
    zero_in = (y[0] <= 0) & (y[1] >= 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        qs = [a / b for a in (x[0], x[1]) for b in (y[0], y[1])]
        lo, hi = _down(np.minimum.reduce(qs)), _up(np.maximum.reduce(qs))
    return np.where(zero_in, np.nan, lo), np.where(zero_in, np.nan, hi)


def absolute(x: Interval) -> Interval:
    lo, hi = x
    a, b = np.abs(lo), np.abs(hi)
    straddles = (lo < 0) & (hi > 0)
    return np.where(straddles, 0.0, np.minimum(a, b)), np.maximum(a, b)


def power(x: Interval, n: int) -> Interval:
    """x^n for a whole n: repeated products (of |x| for an even n), 1/x^-n for n < 0."""
    if n == 0:
        return point(np.ones_like(x[0]))
    if n < 0:
        return div(point(1.0), power(x, -n))
    base = absolute(x) if n % 2 == 0 else x
    if n == 2 and _is_point(x) and not _EXACT.get():
        p = x[0] * x[0]
        return _down(p), _up(p)
    out = base
    for _ in range(n - 1):
        out = mul(out, base)
    return out


# --- libm functions (monotone) ----------------------------------------------------------------


def _increasing_libm(f: Callable) -> Callable[[Interval], Interval]:
    def rule(x: Interval) -> Interval:
        with np.errstate(all="ignore"):
            if _is_point(x):
                return _widen(f(x[0]), LIBM_RELATIVE)
            return _widen(f(x[0]), LIBM_RELATIVE)[0], _widen(f(x[1]), LIBM_RELATIVE)[1]

    return rule


exp = _increasing_libm(np.exp)
expm1 = _increasing_libm(np.expm1)
tanh = _increasing_libm(np.tanh)
_log = _increasing_libm(np.log)
_log1p = _increasing_libm(np.log1p)


def log(x: Interval) -> Interval:
    """log on [0, inf] (log 0 = -inf); NaN (undecided) where the interval reaches below 0."""
    lo, hi = _log(x)
    return np.where(x[0] == 0, -np.inf, lo), hi


def log1p(x: Interval) -> Interval:
    lo, hi = _log1p(x)
    return np.where(x[0] == -1, -np.inf, lo), hi


def sqrt(x: Interval) -> Interval:
    """IEEE square root (correctly rounded): one float outward."""
    with np.errstate(all="ignore"):
        return np.maximum(_down(np.sqrt(x[0])), 0.0), _up(np.sqrt(x[1]))


# --- monotone functions of one variable, from stable formulas at the ends --------------------
#
# Each formula is evaluated in float64 at a float and enclosed by FORMULA_RELATIVE of its value.
# An error bound per formula (A = LIBM_RELATIVE, u = 2^-53), each step's relative error passed on
# without growth: a sum of non-negative terms keeps the largest relative error of its terms, and
# log1p(z(1 + d)) is within |d| of log1p(z) relative to it (z/(1 + z) <= log1p(z)).


def _at_ends(value: Callable[[np.ndarray], np.ndarray], increasing: bool = True) -> Callable[[Interval], Interval]:
    """The rule of a monotone function whose float64 ``value`` is within FORMULA_RELATIVE."""

    def rule(x: Interval) -> Interval:
        with np.errstate(all="ignore"):
            if _is_point(x):
                return _widen(value(x[0]), FORMULA_RELATIVE)
            a, b = (x[0], x[1]) if increasing else (x[1], x[0])
            return _widen(value(a), FORMULA_RELATIVE)[0], _widen(value(b), FORMULA_RELATIVE)[1]

    return rule


def _softplus_value(x):
    """max(x, 0) + log1p(exp(-|x|)): exp within A, log1p passes it on and adds A, the sum of two
    non-negative terms adds u: 2A + u."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid_value(x):
    """1/(1 + e) with e = exp(-x) for x >= 0, e/(1 + e) with e = exp(x) below: e within A, 1 + e
    within A + u (e/(1 + e) <= 1 of its error), the quotient u more: 2A + 3u."""
    e = np.exp(-np.abs(x))
    d = 1.0 + e
    return np.where(x >= 0, 1.0 / d, e / d)


_LOG2 = float(np.log(2.0))  # within u/2 of log 2


def _logcosh_value(u):
    """log cosh u. |u| < 1: log1p(2·sinh²(|u|/2)), sinh v = (e + e/(1 + e))/2 with e = expm1(v),
    all terms non-negative: e within A, e/(1 + e) within 2A + 2u, their sum 2A + 3u, squared
    4A + 7u, log1p adds A: 5A + 7u. |u| >= 1: (|u| - log 2) + log1p(exp(-2|u|)): the difference
    is at least 0.30 with an error of u·|u| + u/2·log 2 (5u relative at |u| = 1), the log1p term
    at most 0.13 of it within 2A: 1A + 6u."""
    a = np.abs(u)
    e = np.expm1(0.5 * a)
    sinh = 0.5 * (e + e / (1.0 + e))
    small = np.log1p(2.0 * sinh * sinh)
    large = (a - _LOG2) + np.log1p(np.exp(-2.0 * a))
    return np.where(a < 1, small, large)


def logcosh(x: Interval) -> Interval:
    """Even, increasing in |u|: from the ends of |x| (0 where x straddles 0)."""
    lo, hi = absolute(x)
    v = _at_ends(_logcosh_value)((lo, hi) if not _is_point(x) else (lo, lo))
    return np.where(lo == 0, 0.0, v[0]), v[1]


def _log1p_diff_value(a, b):
    """log1p(a) - log1p(b) as ±log1p(|a - b|/min(1 + a, 1 + b)): a - b, 1 + a and 1 + b within u
    each (at floats), the quotient 3u, log1p passes it on and adds A: A + 3u."""
    d = a - b
    r = np.log1p(np.abs(d) / np.minimum(1.0 + a, 1.0 + b))
    return np.copysign(r, d)


def _log1p_diff(a: Interval, b: Interval) -> Interval:
    """Increasing in a, decreasing in b: from the ends (a - b is inexact for floats far apart:
    their difference rounds, within u, as assumed above)."""
    with np.errstate(all="ignore"):
        lo = _widen(_log1p_diff_value(a[0], b[1]), FORMULA_RELATIVE)[0]
        hi = _widen(_log1p_diff_value(a[1], b[0]), FORMULA_RELATIVE)[1]
    return lo, hi


def _log_ratio_value(w, v):
    """log(w/v) as ±log1p(|w - v|/min(w, v)) (cesym.kernels._runtime.log_ratio): w - v and the
    quotient within u each (at floats), log1p passes them on damped and adds A: A + 2u."""
    d = w - v
    return np.copysign(np.log1p(np.abs(d) / np.minimum(w, v)), d)


def _log_ratio(w: Interval, v: Interval) -> Interval:
    """Increasing in w, decreasing in v (w, v >= 0): from the ends."""
    with np.errstate(all="ignore"):
        lo = _widen(_log_ratio_value(w[0], v[1]), FORMULA_RELATIVE)[0]
        hi = _widen(_log_ratio_value(w[1], v[0]), FORMULA_RELATIVE)[1]
    return lo, hi


def _max0(x: Interval) -> Interval:
    return np.maximum(x[0], 0.0), np.maximum(x[1], 0.0)


def _step(x: Interval, at0) -> Interval:
    """Heaviside: 0 below 0, ``at0`` at 0, 1 above; NaN where x straddles a change."""
    lo, hi = x
    v = np.where(lo > 0, 1.0, np.where(hi < 0, 0.0, np.where((lo == 0) & (hi == 0), at0, np.nan)))
    return v, v


def _sign(x: Interval) -> Interval:
    lo, hi = x
    v = np.where(lo > 0, 1.0, np.where(hi < 0, -1.0, np.where((lo == 0) & (hi == 0), 0.0, np.nan)))
    return v, v


def _xmul(a: Interval, b: Interval) -> Interval:
    """a·b with 0·b = 0 even for an infinite b."""
    p = mul(a, b)
    zero = (a[0] == 0) & (a[1] == 0)
    return np.where(zero, 0.0, p[0]), np.where(zero, 0.0, p[1])


# --- comparisons (three-valued) and Piecewise ---------------------------------------------------


def _compare(rel: sp.Basic, x: Interval, y: Interval) -> tuple[np.ndarray, np.ndarray]:
    """(surely true, surely false) of ``x rel y``."""
    if isinstance(rel, (sp.GreaterThan, sp.StrictGreaterThan)):
        x, y = y, x  # as x <= y or x < y
    if isinstance(rel, (sp.LessThan, sp.GreaterThan)):
        return x[1] <= y[0], x[0] > y[1]
    if isinstance(rel, (sp.StrictLessThan, sp.StrictGreaterThan)):
        return x[1] < y[0], x[0] >= y[1]
    if isinstance(rel, sp.Eq):
        return (x[0] == x[1]) & (y[0] == y[1]) & (x[0] == y[0]), (x[1] < y[0]) | (x[0] > y[1])
    if isinstance(rel, sp.Ne):
        f, t = _compare(sp.Eq(*rel.args), x, y)
        return t, f
    raise NoIntervalRule(f"no interval rule for the condition {rel}")


def _condition(c: sp.Basic, ev) -> tuple[np.ndarray, np.ndarray]:
    if c is sp.true:
        return np.True_, np.False_
    if c is sp.false:
        return np.False_, np.True_
    if isinstance(c, sp.And):
        parts = [_condition(a, ev) for a in c.args]
        return np.logical_and.reduce([t for t, _ in parts]), np.logical_or.reduce([f for _, f in parts])
    if isinstance(c, sp.Or):
        parts = [_condition(a, ev) for a in c.args]
        return np.logical_or.reduce([t for t, _ in parts]), np.logical_and.reduce([f for _, f in parts])
    if isinstance(c, sp.Not):
        t, f = _condition(c.args[0], ev)
        return f, t
    return _compare(c, ev(c.args[0]), ev(c.args[1]))


def _piecewise(e: sp.Piecewise, ev) -> Interval:
    """The first branch whose condition surely holds, after branches that surely do not; the
    hull of the branches still live where a condition is undecided."""
    lo, hi = np.inf, -np.inf  # no branch yet: an empty interval (lo > hi), NaN at the end
    closed = np.False_  # an earlier branch surely taken
    for expr, cond in e.args:
        t, f = _condition(cond, ev)
        live = ~closed & ~f
        v = ev(expr)
        lo = np.where(live, np.minimum(lo, v[0]), lo)  # minimum keeps a live branch's NaN
        hi = np.where(live, np.maximum(hi, v[1]), hi)
        closed = closed | t
    return lo, hi


# --- the evaluator ----------------------------------------------------------------------------


def _one(fn):
    return lambda e, ev: fn(ev(e.args[0]))


def _nan_or(e: P.NanOr, ev) -> Interval:
    """Two forms of one quantity: the first form's enclosure, and the second's where the first
    decides nothing (NaN ends: 0/0 at a domain's edge). Both enclose the same exact value
    wherever it is defined, so either is an enclosure."""
    a = ev(e.args[0])
    open_ = np.isnan(a[0]) | np.isnan(a[1])
    if not np.any(open_):
        return a
    b = ev(e.args[1])
    return np.where(open_, b[0], a[0]), np.where(open_, b[1], a[1])


def _guarded(e: P.Guarded, ev) -> Interval:
    """A gradient's two forms, the sum as written and the split one (the kernel takes the first
    where its terms cancel by at most a factor four, the second elsewhere): both enclose the same
    exact value, so their intersection does, the tighter at every point whichever the kernel
    took. A NaN end takes the other form's; two enclosures that miss each other (a wrong form)
    decide nothing: NaN, the ball reference's."""
    a, b = ev(e.args[0]), ev(e.args[1])
    lo, hi = np.fmax(a[0], b[0]), np.fmin(a[1], b[1])
    with np.errstate(invalid="ignore"):
        apart = lo > hi
    return np.where(apart, np.nan, lo), np.where(apart, np.nan, hi)


def _sigmoid_diff(e: P.SigmoidDiff, ev) -> Interval:
    """a·σ(u) - b·σ(-u): the intersection of its two forms' enclosures, the two terms and
    ((a - b) + (a + b)·tanh(u/2))/2 (identities at every u, so each encloses the exact value and
    so does their intersection; the second is the tight one near u = 0 where a = b, a·tanh(u/2)
    where the two sigmoids' intervals would leave a difference wider than the value). Where one
    form decides nothing (NaN ends), the other.

    The second form is evaluated only where it can be the tighter one, as the kernel does
    (:func:`cesym.kernels._runtime.sigmoid_diff`): where a and b have one sign and |u| < 1 (the
    two terms cancel only where e^u is near b/a), and where the first has a NaN end. Elsewhere
    the two terms cancel by at most a factor 21 (``sigmoid_diff``'s docstring), which leaves
    their enclosure some 2^-40 of the value wide: the result encloses the exact value either way,
    and hard labels (a or b is 0) never take the tanh pass."""
    a, b, u = (ev(x) for x in e.args)
    terms = ev(e.sum_form())
    shape = np.broadcast_shapes(*(np.shape(x) for x in (*a, *b, *u, *terms)))
    with np.errstate(invalid="ignore"):
        gate = ((np.minimum(a[0], b[0]) > 0) | (np.maximum(a[1], b[1]) < 0)) & (u[0] > -1.0) & (u[1] < 1.0)
        gate = np.broadcast_to(gate | np.isnan(terms[0]) | np.isnan(terms[1]), shape)
    if not gate.any():
        return terms
    every = bool(gate.all())
    if every:
        sub = lambda x: x  # noqa: E731 - every element: no gather
    else:
        sub = lambda x: np.broadcast_to(x, shape)[gate]  # noqa: E731
    a, b, u = ((sub(x[0]), sub(x[1])) for x in (a, b, u))
    half = point(0.5)
    near = mul(add(add(a, neg(b)), mul(add(a, b), tanh(mul(u, half)))), half)
    # fmax/fmin: a NaN end takes the other form's
    lo = np.fmax(sub(terms[0]), near[0])
    hi = np.fmin(sub(terms[1]), near[1])
    if every:
        return lo, hi
    out_lo, out_hi = np.array(np.broadcast_to(terms[0], shape)), np.array(np.broadcast_to(terms[1], shape))
    out_lo[gate], out_hi[gate] = lo, hi
    return out_lo, out_hi


RULES: dict[type, Callable] = {
    P.SigmoidDiff: _sigmoid_diff,
    sp.exp: _one(exp),
    sp.log: _one(log),
    sp.tanh: _one(tanh),
    sp.Abs: _one(absolute),
    sp.sign: _one(_sign),
    P.Sigmoid: _one(_at_ends(_sigmoid_value)),
    P.Softplus: _one(_at_ends(_softplus_value)),
    P.LogCosh: _one(logcosh),
    P.Relu: _one(_max0),
    P.Log1pDiff: lambda e, ev: _log1p_diff(ev(e.args[0]), ev(e.args[1])),
    P.LogRatio: lambda e, ev: _log_ratio(ev(e.args[0]), ev(e.args[1])),
    P.XMul: lambda e, ev: _xmul(ev(e.args[0]), ev(e.args[1])),
    sp.Heaviside: lambda e, ev: _step(ev(e.args[0]), float(e.args[1]) if len(e.args) > 1 else 0.5),
    sp.Piecewise: _piecewise,
    P.NanOr: _nan_or,
    P.Guarded: _guarded,
}


def _codegen_rules() -> dict:
    from sympy.codegen import cfunctions

    return {cfunctions.log1p: _one(log1p), cfunctions.expm1: _one(expm1), cfunctions.log2: None}


def evaluate(expr: sp.Basic, env: dict[sp.Symbol, Interval]) -> Interval:
    """Enclose ``expr`` at every element: ``env`` gives each free symbol's interval (arrays that
    broadcast together). Shared subexpressions are evaluated once."""
    rules = {**RULES, **{k: v for k, v in _codegen_rules().items() if v is not None}}
    memo: dict = {}

    def ev(e: sp.Basic) -> Interval:
        if e in memo:
            return memo[e]
        if e in env:
            out = env[e]
        elif e.is_Number or e in (sp.pi, sp.E) or isinstance(e, sp.NumberSymbol):
            out = constant(e)
        elif isinstance(e, sp.Add):
            out = ev(e.args[0])
            for a in e.args[1:]:
                out = add(out, ev(a))
        elif isinstance(e, sp.Mul):
            out = ev(e.args[0])
            for a in e.args[1:]:
                out = mul(out, ev(a))
        elif isinstance(e, sp.Pow):
            b, n = e.args
            if n.is_Integer:
                out = power(ev(b), int(n))
            elif n == sp.Rational(1, 2):
                out = sqrt(ev(b))
            elif n == -sp.Rational(1, 2):
                out = div(point(1.0), sqrt(ev(b)))
            else:
                raise NoIntervalRule(f"no interval rule for the power {e}")
        elif type(e) in rules:
            out = rules[type(e)](e, ev)
        else:
            raise NoIntervalRule(f"no interval rule for {type(e).__name__} (in {e})")
        memo[e] = out
        return out

    lo, hi = ev(expr)
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    bad = np.isnan(lo) | np.isnan(hi) | (lo > hi)
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def rounds_to(lo: np.ndarray, hi: np.ndarray, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The correctly rounded ``dtype`` value of every number in [lo, hi], and where it is fixed:
    rounding to nearest is monotone, so where both ends round to the same float every number
    between them does (±0 taken as equal). Undecided where the ends differ or are NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        a, b = lo.astype(dtype), hi.astype(dtype)
    return a, (a == b) & ~np.isnan(lo) & ~np.isnan(hi)


def libm_check(samples: int = 4000, seed: int = 0) -> dict[str, float]:
    """The largest error, relative to the exact value (arb), of NumPy's float64 exp, log,
    log1p, expm1 and tanh on ``samples`` points each spread over their ranges, next to the
    allowance :data:`LIBM_RELATIVE` the rules assume. An exhaustive run refuses to start when
    any exceeds 1/16 of it."""
    import flint

    rng = np.random.default_rng(seed)
    mags = rng.choice([-1.0, 1.0], samples) * 10.0 ** rng.uniform(-30, 2.85, samples)  # |x| up to ~700
    positive = 10.0 ** rng.uniform(-300, 300, samples)
    above_minus_one = np.where(rng.random(samples) < 0.3, -rng.random(samples), np.abs(mags) * 1e3)
    cases = {
        "exp": (np.exp, flint.arb.exp, mags),
        "expm1": (np.expm1, flint.arb.expm1, mags),
        "tanh": (np.tanh, flint.arb.tanh, mags),
        "log": (np.log, flint.arb.log, positive),
        "log1p": (np.log1p, flint.arb.log1p, above_minus_one),
    }
    out = {}
    old = flint.ctx.prec
    flint.ctx.prec = 200
    try:
        for name, (f, ref, xs) in cases.items():
            ys = f(xs)
            worst = 0.0
            for x, y in zip(xs.tolist(), ys.tolist()):
                if not math.isfinite(y) or y == 0:
                    continue
                t = ref(flint.arb(x))
                rel = abs(float((flint.arb(y) - t) / t))
                worst = max(worst, rel)
            out[name] = worst
    finally:
        flint.ctx.prec = old
    return out
