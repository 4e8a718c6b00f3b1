r"""The first tier's wide format: float64 intervals times a power of two, one exponent per point.

The condition numbers' first tier (:mod:`cesym.verify.first_tier`) runs a reference's printed code
on float64 intervals (:mod:`cesym.verify.float_intervals`). Where a term leaves float64's range
(e^x of a logit of 800, 1/p² of a probability of 1e-300) it ran the code again on ``long double``
intervals: NumPy's x87 (software binary128 on aarch64) arithmetic, without compiled loops, a
few hundred points at a time, at about a millisecond per point for a Hessian of a row of 8 —
a tenth of a default ``cesym verify`` — and only to e^±11356.

Here a number is :math:`[lo, hi]\cdot 2^{e}`: ``lo`` and ``hi`` float64, ``e`` an int64 shared by
both ends, normalised after every operation so that the larger end lies in [1/2, 1). Every
operation is one compiled loop (Numba, IEEE semantics, no ``fastmath``) over the points:

* ``+``: both operands brought to the larger exponent, each end scaled toward its side
  (:func:`_ldexp_dir`: exact, or one float outward where the scaling rounded), then the float64
  intervals' outward sum (TwoSum, :mod:`cesym.verify.interval_loops`);
* ``·`` and ``1/x``: the float64 intervals' outward product or quotient of the mantissas, the
  exponents added or negated;
* exp, log, log1p, expm1, sqrt, sinh, cosh, tanh: increasing (cosh in |x|), so each end of the
  result is the function at the end of the argument, rounded outward:

  - where the argument and the result are float64 numbers, the float64 function (Numba's: the
    platform's libm) moved out by :data:`EXP_SLACK` (2^-49 relative, plus 2^-1064), its exact
    points (exp 0 = 1, log 1 = 0, …) kept exact: the first tier's own rule;
  - exp(v) for 708 < |v| <= 2^44 (logits in the billions): :math:`e^v = 2^k e^r`,
    :math:`k = \mathrm{round}(v/\ln 2)`, :math:`r = (((v - p_1) - e_1) - p_2) - (e_2 + k L_3)`
    with :math:`L_1 + L_2 + L_3 = \ln 2` to 2^-160 and :math:`k L_1 = p_1 + e_1`,
    :math:`k L_2 = p_2 + e_2` exact TwoProds (:math:`|k| < 2^{45}`); :math:`v - p_1` is exact by
    Sterbenz's lemma and every later partial result is below 1/2, so the three roundings are at
    most 2^-55 each: :math:`|r - (v - k\ln 2)| < 2^{-53}`, and :math:`e^r` is moved out by
    :data:`EXP_SLACK` of itself, far above that and libm's error; beyond 2^44 the bounds
    2^(±2^44) (or 0 and ∞) hold, known but useless;
  - log1p, expm1, sinh and tanh of |x| < 2^-60: x moved out by the slack, at x's own exponent
    (the float64 function of x rounded into the subnormals would lose it);
  - log of a number past float64's range: :math:`\log m + K \ln 2` (:math:`x = m 2^K`,
    :math:`m \in [1/2, 1)`), each part rounded outward; log1p(x) for x > 2^1000 lies within
    2^-1000 of log x, below half of its ulp: one float up;
  - expm1, sinh and cosh past 708: exp's bounds (halved for sinh and cosh), which differ from
    them by less than the slack (e^-708 against e^708);
* comparisons, ``Piecewise`` and the step functions are three-valued as in
  :mod:`cesym.verify.float_intervals`, on the exponent-aligned ends.

A result is handed back as ``long double`` (:data:`cesym.verify.float_intervals.WIDE`) intervals,
each end converted outward (:func:`to_interval`): the condition numbers' few operations per
output (:func:`cesym.verify.first_tier._grad_kappas`) stay on that format; only the printed
code, thousands of operations, runs here. An exponent of a result beyond that format's range is
its largest number or ∞, or 0 and its least subnormal: never decided by the condition numbers,
which the balls then compute as before.

``tests/test_scaled_intervals.py`` holds every operation to mpmath at 400 bits on random and
adversarial operands, and the condition numbers computed on this format to the balls'.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import mpmath
import numpy as np

from . import float_intervals as fi
from . import interval_loops
from .interval_algebra import IntervalAlgebra, steps

__all__ = ["AVAILABLE", "Scaled", "compile_source", "evaluate", "to_interval", "EXP_SLACK"]

#: Relative slack of every function value computed here: Numba's math functions are the platform's
#: libm (glibc documents at most 2 ulps for exp, log, log1p, expm1, sqrt, sinh, cosh and tanh in
#: its libm-test-ulps, 1 for most: at most 2^-51 relative), and the argument reduction of e^x adds
#: at most 2^-53 (module docstring); 2^-49 (8 to 16 ulps of float64) is 3 times their sum. (The float64 first tier's 2^-40,
#: :data:`cesym.verify.float_intervals.LIBM_SLACK`, covers NumPy's SIMD versions, which measure
#: below 4 ulps.) A term of κ that cancels loses that much less here: σ'(800)'s Hessian entry
#: of BCE from logits at logits of 800 is ±2e-11 at 2^-36, ±3e-15 here: negligible below 2.8e-13.
EXP_SLACK = 2.0**-49
_MAX = float(np.finfo(np.float64).max)
_INF = math.inf


def _ln2_triple() -> tuple[float, float, float]:
    """ln 2 = L1 + L2 + L3 + δ, each the nearest float to what is left, |δ| < 2^-160."""
    with mpmath.workprec(300):
        ln2 = mpmath.log(2)
        l1 = float(ln2)
        l2 = float(ln2 - l1)
        l3 = float(ln2 - l1 - l2)
    return l1, l2, l3


_L1, _L2, _L3 = _ln2_triple()
#: e^v is reduced (:func:`_exp_end`) for |v| up to 2^44 (k < 2^45: k·L1 and k·L2 are exact as
#: TwoProds, and what is left of r stays below 1/2); beyond, only the bounds 2^(±2^44) are known.
_REDUCED = 2.0**44
_INV_LN2 = 1.4426950408889634  # 1/ln 2 to the nearest (only k's choice depends on it)
_LN2_LO, _LN2_HI = float(np.nextafter(math.log(2.0), 0.0)), float(np.nextafter(math.log(2.0), 1.0))  # ln 2 is between them

# the functions of one argument, by code (the loops branch on it)
EXP, LOG, LOG1P, EXPM1, SQRT, SINH, TANH, COSH = range(8)

try:
    import numba
except ImportError:
    numba = None

AVAILABLE = numba is not None and interval_loops.numba is not None
if AVAILABLE:
    try:
        _down, _up, _sum = interval_loops._down, interval_loops._up, interval_loops._sum
        _two_prod = interval_loops._two_prod
        _SLACK, _TINY = EXP_SLACK, 2.0**-1064

        @numba.njit(cache=True)
        def _ldexp_dir(x, k, down):
            """x·2^k rounded toward -inf (``down``) or +inf: exact, or one float outward where
            the scaling rounded (into the subnormals); past the range, the largest float or
            ±inf on the side that stays a bound; 0, ±inf and NaN as they are."""
            if x != x or x == 0.0 or x == _INF or x == -_INF:
                return x
            if k > 2200:
                k = 2200
            elif k < -2200:
                k = -2200
            y = math.ldexp(x, k)
            if y == _INF:
                return _MAX if down else _INF
            if y == -_INF:
                return -_INF if down else -_MAX
            if k < 0:
                z = math.ldexp(y, -k)  # exact: y is x·2^k to the nearest
                if down and z > x:
                    y = _down(y)
                elif not down and z < x:
                    y = _up(y)
            return y

        @numba.njit(cache=True)
        def _norm(lo, hi, e):
            """The larger end's magnitude into [1/2, 1): (lo, hi, e) of the same interval (one
            float outward where an end underflowed); NaN anywhere: NaN; [0, 0]: exponent 0."""
            if lo != lo or hi != hi:
                return np.nan, np.nan, 0
            a = max(abs(lo), abs(hi))
            if a == 0.0:
                return 0.0, 0.0, 0
            if a == _INF:
                return lo, hi, e
            k = math.frexp(a)[1]
            if k == 0:
                return lo, hi, e
            if abs(e + k) > (1 << 52):  # never in practice: nothing is known
                return np.nan, np.nan, 0
            down = k == k  # runtime booleans (see _fun)
            return _ldexp_dir(lo, -k, down), _ldexp_dir(hi, -k, not down), e + k

        @numba.njit(cache=True)
        def _pair(f0, k0, f1, k1):
            """[f0·2^k0, f1·2^k1] on one exponent, normalised (outward)."""
            if f0 != f0 or f1 != f1:
                return np.nan, np.nan, 0
            z0 = f0 == 0.0 or f0 == _INF or f0 == -_INF
            z1 = f1 == 0.0 or f1 == _INF or f1 == -_INF
            if z0 and z1:
                return _norm(f0, f1, k0 - k0)  # (a runtime 0: see _fun on literal arguments)
            if z0:
                e = k1
            elif z1:
                e = k0
            else:
                e = max(k0, k1)
            down = e == e  # runtime booleans (see _fun)
            lo = f0 if z0 else _ldexp_dir(f0, k0 - e, down)
            hi = f1 if z1 else _ldexp_dir(f1, k1 - e, not down)
            return _norm(lo, hi, e)

        @numba.njit(cache=True)
        def _out(f, down):
            """A float64 function's value moved out by :data:`EXP_SLACK` of itself and 2^-1064
            (an infinite end: the largest float on its finite side), as
            :func:`cesym.verify.float_intervals._slack_down` does by its slack."""
            if down:
                if f == _INF:
                    return _MAX
                if f == -_INF or f != f:
                    return f
                return f - (abs(f) * _SLACK + _TINY)
            if f == -_INF:
                return -_MAX
            if f == _INF or f != f:
                return f
            return f + (abs(f) * _SLACK + _TINY)

        @numba.njit(cache=True)
        def _exp_end(v, down):
            """e^v rounded outward, as (mantissa, exponent)."""
            if v != v:
                return np.nan, 0
            if v == -_INF:
                return 0.0, 0
            if v == _INF:
                return _INF, 0
            if v == 0.0:
                return 1.0, 0
            if -708.0 <= v <= 708.0:
                return _out(math.exp(v), down), 0
            if abs(v) <= _REDUCED:
                # k < 2^45: k·ln 2 = p1 + e1 + p2 + e2 + k·L3 (+ below 2^-115), the TwoProds
                # exact; v - p1 is exact (Sterbenz), every later term and partial result is
                # below 1/2, so the three roundings are at most 2^-55 each: |r - (v - k ln 2)| < 2^-53
                k = math.floor(v * _INV_LN2 + 0.5)
                p1, e1 = _two_prod(k, _L1)
                p2, e2 = _two_prod(k, _L2)
                r = (((v - p1) - e1) - p2) - (e2 + k * _L3)
                f = math.exp(r)
                f = f * (1.0 - EXP_SLACK) if down else f * (1.0 + EXP_SLACK)
                return f, np.int64(k)
            if v > 0.0:  # e^v > 2^v > 2^(2^44)
                return (0.5, np.int64(17592186044417)) if down else (_INF, np.int64(0))
            return (0.0, np.int64(0)) if down else (0.5, np.int64(-17592186044415))  # e^v < 2^-(2^44)

        @numba.njit(cache=True)
        def _log_parts(m, e, down):
            """log(m·2^e) for m > 0 past float64's range: log(mantissa) + K·ln 2, outward."""
            mm, ex = math.frexp(m)
            kk = float(e + ex)
            a = _out(math.log(mm), down)
            if down:
                b = _down(_down(kk * (_LN2_LO if kk > 0 else _LN2_HI)))
            else:
                b = _up(_up(kk * (_LN2_HI if kk > 0 else _LN2_LO)))
            return _sum(a, b, down)

        @numba.njit(cache=True)
        def _end(which, m, e, down):
            """Function ``which`` at the end m·2^e, rounded toward -inf (``down``) or +inf:
            (mantissa, exponent). The argument is within float64's range, or handled apart."""
            if (which == LOG1P or which == EXPM1 or which == SINH or which == TANH) and m != 0.0 and m - m == 0.0 \
                    and e + math.frexp(m)[1] < -60:
                # |x| < 2^-60, below float64's range or not: f(x) = x(1 + d), |d| < 2^-59 (log1p's
                # and expm1's x/2·(1 + |x|), sinh's and tanh's x²/3): within _out's slack, and
                # kept at its own exponent (a log1p(e^-6e9) is 2^-8.7e9, not [0, 5e-324])
                return _out(m, down), e
            v = _ldexp_dir(m, e, down)  # an increasing function at a bound of the argument: a bound
            if which == EXP:
                return _exp_end(v, down)
            if which == LOG:
                if m == 0.0:
                    return -_INF, 0
                if m == _INF:
                    return _INF, 0
                if v == 1.0:
                    return 0.0, 0
                if 2.2250738585072014e-308 <= v < _MAX:
                    return _out(math.log(v), down), 0
                return _log_parts(m, e, down), 0
            if which == LOG1P:
                if v == 0.0:
                    return 0.0, 0
                if v == -1.0:
                    return -_INF, 0
                if m == _INF:
                    return _INF, 0
                if abs(v) <= 1e300:
                    return _out(math.log1p(v), down), 0
                f = _log_parts(m, e, down)  # log1p(x) - log(x) < 1/x < 2^-996: below half its ulp
                return (f if down else _up(f)), 0
            if which == EXPM1:
                if v == 0.0:
                    return 0.0, 0
                if v == -_INF:
                    return -1.0, 0
                if v == _INF:
                    return _INF, 0
                if -708.0 <= v <= 708.0:
                    return _out(math.expm1(v), down), 0
                if v > 0.0:  # e^v - 1 within e^v's bounds (their slack is e^v·2^-49, not 1)
                    return _exp_end(v, down)
                return (-1.0 if down else _up(-1.0)), 0  # -1 < e^v - 1 < -1 + 2^-53
            if which == SQRT:
                if m == 0.0:
                    return 0.0, 0
                if m == _INF:
                    return _INF, 0
                mm, k = m, e
                if k % 2 != 0:
                    mm, k = mm * 2.0, k - 1
                if mm == 1.0:
                    return 1.0, k // 2
                return _out(math.sqrt(mm), down), k // 2
            if which == TANH:
                if v == 0.0:
                    return 0.0, 0
                if v == _INF:
                    return 1.0, 0
                if v == -_INF:
                    return -1.0, 0
                return _out(math.tanh(v), down), 0
            if which == SINH:  # odd: sinh(v) = -sinh(-v), the direction turned
                neg = v < 0.0
                a = -v if neg else v
                d = (not down) if neg else down
                if a == 0.0:
                    return 0.0, 0
                if a == _INF:
                    f, k = _INF, np.int64(0)
                elif a <= 708.0:
                    f, k = _out(math.sinh(a), d), np.int64(0)
                else:  # (e^a - e^-a)/2 within e^a/2's bounds
                    f, k = _exp_end(a, d)
                    k = k - 1
                return (-f if neg else f), k
            # COSH, at |x| (``v`` >= 0)
            if v == 0.0:
                return 1.0, 0
            if v == _INF:
                return _INF, 0
            if v <= 708.0:
                f = _out(math.cosh(v), down)
                return (max(f, 1.0) if down else f), 0
            f, k = _exp_end(v, down)
            return f, k - 1

        @numba.njit(cache=True, nogil=True)
        def _fun(which, lo, hi, ee, n):
            """Function ``which`` on the intervals [lo, hi]·2^e: NaN where the interval reaches
            below the domain (log, sqrt: 0; log1p: -1)."""
            olo, ohi, oe = np.empty(n), np.empty(n), np.empty(n, dtype=np.int64)
            s = 1 if lo.shape[0] > 1 else 0
            # the directions as runtime booleans: Numba compiles a function once per literal
            # argument it is called with, and True and False would compile _end twice
            down, up = n >= 0, n < 0
            for i in range(n):
                a, b, e = lo[i * s], hi[i * s], ee[i * s]
                if a != a or b != b:
                    olo[i], ohi[i], oe[i] = np.nan, np.nan, 0
                    continue
                if which == COSH:  # even, increasing in |x|
                    if a >= 0.0:
                        a, b = a, b
                    elif b <= 0.0:
                        a, b = -b, -a
                    else:
                        a, b = 0.0, max(-a, b)
                bad = False
                if which == LOG or which == SQRT:
                    bad = a < 0.0
                elif which == LOG1P:
                    bad = a < 0.0 and (e > 1100 or math.ldexp(a, min(e, 1100)) < -1.0)
                if bad:
                    olo[i], ohi[i], oe[i] = np.nan, np.nan, 0
                    continue
                f0, k0 = _end(which, a, e, down)
                f1, k1 = _end(which, b, e, up)
                olo[i], ohi[i], oe[i] = _pair(f0, k0, f1, k1)
            return olo, ohi, oe

        @numba.njit(cache=True, nogil=True)
        def _add1(a0, a1, ea, b0, b1, eb):
            if a0 == 0.0 and a1 == 0.0:
                return _norm(b0, b1, eb)
            if b0 == 0.0 and b1 == 0.0:
                return _norm(a0, a1, ea)
            e = max(ea, eb)
            down = e == e  # runtime booleans (see _fun)
            l = _sum(_ldexp_dir(a0, ea - e, down), _ldexp_dir(b0, eb - e, down), True)
            h = _sum(_ldexp_dir(a1, ea - e, not down), _ldexp_dir(b1, eb - e, not down), False)
            return _norm(l, h, e)

        @numba.njit(cache=True, nogil=True)
        def _mul1(a0, a1, ea, b0, b1, eb):
            if a0 != a0 or a1 != a1 or b0 != b0 or b1 != b1:  # undefined stays undefined: 0·(0/0)
                return np.nan, np.nan, np.int64(0)
            if (a0 == 0.0 and a1 == 0.0) or (b0 == 0.0 and b1 == 0.0):  # exact: 0·b = 0
                return 0.0, 0.0, np.int64(0)
            p1, p2, p3, p4 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
            if p1 != p1 or p2 != p2 or p3 != p3 or p4 != p4:  # 0·inf
                return np.nan, np.nan, np.int64(0)
            lo, la, lb, hi, ha, hb = p1, a0, b0, p1, a0, b0
            if p2 < lo:
                lo, la, lb = p2, a0, b1
            if p2 > hi:
                hi, ha, hb = p2, a0, b1
            if p3 < lo:
                lo, la, lb = p3, a1, b0
            if p3 > hi:
                hi, ha, hb = p3, a1, b0
            if p4 < lo:
                lo, la, lb = p4, a1, b1
            if p4 > hi:
                hi, ha, hb = p4, a1, b1
            return _norm(_product_end(la, lb, lo, True), _product_end(ha, hb, hi, False), ea + eb)

        @numba.njit(cache=True, inline="always")
        def _product_end(a, b, p, down):
            """A bound of a·b from p = fl(a·b): p itself where TwoProd shows it on the bound's side
            (exact: 2·z, a point times a power of two, stays a point: e^(2z) of a logit of
            2e5 was 2^13 times wider than e^z), else one float outward (and where TwoProd's error
            is not exact: p below 2^-960, or infinite)."""
            if 2.0**-960 < abs(p) < _INF:
                err = _two_prod(a, b)[1]
                if (err >= 0.0) if down else (err <= 0.0):
                    return p
            return _down(p) if down else _up(p)

        @numba.njit(cache=True, nogil=True)
        def _extreme1(a0, a1, ea, b0, b1, eb, take_max):
            """Elementwise max (or min) of the ends, on the larger exponent."""
            e = max(ea, eb)
            down = e == e  # runtime booleans (see _fun)
            x0, x1 = _ldexp_dir(a0, ea - e, down), _ldexp_dir(a1, ea - e, not down)
            y0, y1 = _ldexp_dir(b0, eb - e, down), _ldexp_dir(b1, eb - e, not down)
            if take_max:
                return _norm(max(x0, y0), max(x1, y1), e)
            return _norm(min(x0, y0), min(x1, y1), e)

        ADD, MUL, MAX, MIN = range(4)

        @numba.njit(cache=True, nogil=True)
        def _binary(op, alo, ahi, ae, blo, bhi, be, n):
            """``op`` (ADD, MUL, MAX, MIN) of two columns of intervals, each of n points or of
            one (broadcast); NaN anywhere in a point: NaN."""
            olo, ohi, oe = np.empty(n), np.empty(n), np.empty(n, dtype=np.int64)
            sa = 1 if alo.shape[0] > 1 else 0
            sb = 1 if blo.shape[0] > 1 else 0
            for i in range(n):
                a0, a1, ea = alo[i * sa], ahi[i * sa], ae[i * sa]
                b0, b1, eb = blo[i * sb], bhi[i * sb], be[i * sb]
                if a0 != a0 or a1 != a1 or b0 != b0 or b1 != b1:
                    olo[i], ohi[i], oe[i] = np.nan, np.nan, 0
                elif op == ADD:
                    olo[i], ohi[i], oe[i] = _add1(a0, a1, ea, b0, b1, eb)
                elif op == MUL:
                    olo[i], ohi[i], oe[i] = _mul1(a0, a1, ea, b0, b1, eb)
                else:
                    olo[i], ohi[i], oe[i] = _extreme1(a0, a1, ea, b0, b1, eb, op == MAX)
            return olo, ohi, oe

        @numba.njit(cache=True, nogil=True)
        def _reciprocal(lo, hi, ee, n):
            olo, ohi, oe = np.empty(n), np.empty(n), np.empty(n, dtype=np.int64)
            s = 1 if lo.shape[0] > 1 else 0
            for i in range(n):
                a, b, e = lo[i * s], hi[i * s], ee[i * s]
                if not (a > 0.0 or b < 0.0):  # holds 0 (or NaN): undefined
                    olo[i], ohi[i], oe[i] = np.nan, np.nan, 0
                    continue
                rl = 0.0 if (b == _INF or b == -_INF) else 1.0 / b
                rh = 0.0 if (a == _INF or a == -_INF) else 1.0 / a
                el = rl == 0.0 or abs(math.frexp(b)[0]) == 0.5 and 2.2250738585072014e-308 <= abs(rl) <= _MAX
                eh = rh == 0.0 or abs(math.frexp(a)[0]) == 0.5 and 2.2250738585072014e-308 <= abs(rh) <= _MAX
                olo[i], ohi[i], oe[i] = _norm(rl if el else _down(rl), rh if eh else _up(rh), -e)
            return olo, ohi, oe

        @numba.njit(cache=True, nogil=True)
        def _hull(lo, hi, ee, vlo, vhi, ve, take, first, n):
            """Where ``take``: the hull of [lo, hi]·2^e and the value (just the value where
            ``first``); elsewhere the first as it is. An empty start is (inf, -inf)."""
            olo, ohi, oe = np.empty(n), np.empty(n), np.empty(n, dtype=np.int64)
            s = 1 if lo.shape[0] > 1 else 0
            sv = 1 if vlo.shape[0] > 1 else 0
            st = 1 if take.shape[0] > 1 else 0
            for i in range(n):
                a0, a1, ea = lo[i * s], hi[i * s], ee[i * s]
                b0, b1, eb = vlo[i * sv], vhi[i * sv], ve[i * sv]
                if not take[i * st]:
                    olo[i], ohi[i], oe[i] = a0, a1, ea
                elif first or a0 > a1:  # nothing yet
                    olo[i], ohi[i], oe[i] = b0, b1, eb
                elif a0 != a0 or a1 != a1 or b0 != b0 or b1 != b1:
                    olo[i], ohi[i], oe[i] = np.nan, np.nan, 0
                else:
                    e = max(ea, eb)
                    down = e == e  # runtime booleans (see _fun)
                    l = min(_ldexp_dir(a0, ea - e, down), _ldexp_dir(b0, eb - e, down))
                    h = max(_ldexp_dir(a1, ea - e, not down), _ldexp_dir(b1, eb - e, not down))
                    olo[i], ohi[i], oe[i] = _norm(l, h, e)
            return olo, ohi, oe

        @numba.njit(cache=True, nogil=True)
        def _from_floats(x, n):
            """Each float exactly: its mantissa in [1/2, 1) and exponent (0, ±inf, NaN as they are)."""
            m, oe = np.empty(n), np.empty(n, dtype=np.int64)
            for i in range(n):
                v = x[i]
                if v != v or v == 0.0 or v == _INF or v == -_INF:
                    m[i], oe[i] = v, 0
                else:
                    f, k = math.frexp(v)
                    m[i], oe[i] = f, k
            return m, oe

    except RuntimeError:  # cache=True with no writable cache directory: the long double path runs
        AVAILABLE = False


def _ones(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return np.ascontiguousarray(a.reshape(-1) if a.ndim else a.reshape(1))


class Scaled(IntervalAlgebra):
    """Intervals [lo, hi]·2^e, one per point (1-d arrays of one length, or of 1: broadcast).
    The operators not defined here: :class:`~cesym.verify.interval_algebra.IntervalAlgebra`."""

    __slots__ = ("lo", "hi", "e")

    def __init__(self, lo: np.ndarray, hi: np.ndarray, e: np.ndarray):
        self.lo, self.hi, self.e = lo, hi, e

    @staticmethod
    def exact(x) -> "Scaled":
        """Floats (an array or a number) exactly."""
        a = _ones(x)
        m, e = _from_floats(a, len(a))
        return Scaled(m, m, e)

    def _n(self, other: "Scaled") -> int:
        return max(len(self.lo), len(other.lo))

    def __add__(self, other):
        o = _sv(other)
        return Scaled(*_binary(ADD, self.lo, self.hi, self.e, o.lo, o.hi, o.e, self._n(o)))

    def __neg__(self):
        return Scaled(-self.hi, -self.lo, self.e)

    def __mul__(self, other):
        o = _sv(other)
        return Scaled(*_binary(MUL, self.lo, self.hi, self.e, o.lo, o.hi, o.e, self._n(o)))

    def __abs__(self):
        lo, hi = self.lo, self.hi
        a = np.where(lo >= 0, lo, np.where(hi <= 0, -hi, 0.0))
        b = np.where(lo >= 0, hi, np.where(hi <= 0, -lo, np.maximum(-lo, hi)))
        return Scaled(np.where(np.isnan(lo) | np.isnan(hi), np.nan, a), b, self.e)

    # --- the hooks of IntervalAlgebra ---------------------------------------------------------
    @staticmethod
    def _of(x) -> "Scaled":
        return _sv(x)

    def _reciprocal(self) -> "Scaled":
        return Scaled(*_reciprocal(self.lo, self.hi, self.e, len(self.lo)))

    def _integer(self) -> int | None:
        if len(self.lo) == 1 and self.lo[0] == self.hi[0] and np.isfinite(self.lo[0]):
            k = math.ldexp(float(self.lo[0]), int(self.e[0]))
            if k.is_integer() and abs(k) < 2**31:
                return int(k)
        return None

    def _one(self) -> "Scaled":
        nan = np.isnan(self.lo) | np.isnan(self.hi)
        one = np.where(nan, np.nan, 0.5)
        return Scaled(one, one.copy(), np.where(nan, 0, 1).astype(np.int64))

    def _nonneg(self) -> "Scaled":
        return Scaled(np.maximum(self.lo, 0.0), self.hi, self.e)

    def _exact_zero(self) -> np.ndarray:
        return (self.lo == 0) & (self.hi == 0)

    def _zero_where(self, mask) -> "Scaled":
        return Scaled(np.where(mask, 0.0, self.lo), np.where(mask, 0.0, self.hi), np.where(mask, 0, self.e))

    def _real_pow(self, p: "Scaled") -> "Scaled":
        """x^p = exp(p·log x) for x > 0; 0^p = 0 for p > 0."""
        zero = self._exact_zero() & (p.lo > 0)
        out = exp(p * log(self))
        return out._zero_where(zero) if np.any(zero) else out


def _sv(x) -> Scaled:
    """A constant or an interval as a :class:`Scaled`: as :func:`cesym.verify.float_intervals._iv`
    encloses it (floats exactly; an int exactly where it is a float; else between two floats),
    each end exactly."""
    if isinstance(x, Scaled):
        return x
    iv = fi._iv(x)
    if iv.lo is iv.hi:  # one number
        return Scaled.exact(iv.lo)
    a, b = Scaled.exact(iv.lo), Scaled.exact(iv.hi)
    take = np.ones(1, dtype=bool)
    return Scaled(*_hull(a.lo, a.hi, a.e, b.lo, b.hi, b.e, take, False, max(len(a.lo), len(b.lo))))


def _function(which: int) -> Callable:
    def apply(x) -> Scaled:
        x = _sv(x)
        return Scaled(*_fun(which, x.lo, x.hi, x.e, len(x.lo)))

    return apply


exp, log, log1p, expm1 = _function(EXP), _function(LOG), _function(LOG1P), _function(EXPM1)
sqrt, sinh, tanh, cosh = _function(SQRT), _function(SINH), _function(TANH), _function(COSH)


def ipow(x, k: int) -> Scaled:
    """x^k for an integer k (:meth:`~cesym.verify.interval_algebra.IntervalAlgebra.ipow`)."""
    return _sv(x).ipow(k)


def cmp_(op: str, a, b) -> tuple:
    """Three-valued ``a op b``: (certainly true, certainly false), from the sign of a - b."""
    d = _sv(a) - _sv(b)
    return fi.cmp_(op, fi.Interval(d.lo, d.hi), 0.0)


def pick(*pairs) -> Scaled:
    """A ``Piecewise``: per point, the hull of the values whose conditions may hold, up to the
    first that certainly does."""
    cur = None
    done = np.zeros(1, dtype=bool)
    for c, v in pairs:
        t, f = fi._truth(c)
        v = _sv(v)
        take = np.ascontiguousarray(np.broadcast_to(~done & ~np.asarray(f), np.broadcast_shapes(done.shape, np.shape(f))).reshape(-1))
        if cur is None:
            n = max(len(v.lo), len(take))
            empty = np.full(1, np.inf)
            cur = Scaled(*_hull(empty, -empty, np.zeros(1, dtype=np.int64), v.lo, v.hi, v.e, take, True, n))
        else:
            n = max(len(cur.lo), len(v.lo), len(take))
            cur = Scaled(*_hull(cur.lo, cur.hi, cur.e, v.lo, v.hi, v.e, take, False, n))
        done = np.asarray(done | np.asarray(t)).reshape(-1)
    empty = cur.lo > cur.hi  # no branch may hold: undefined
    return Scaled(np.where(empty, np.nan, cur.lo), np.where(empty, np.nan, cur.hi), cur.e)


heaviside, sign_ = steps(_sv, pick, cmp_)


def _extremes(take_max: bool, a: Sequence) -> Scaled:
    ivs = [_sv(v) for v in a]
    op = MAX if take_max else MIN
    return functools.reduce(lambda u, v: Scaled(*_binary(op, u.lo, u.hi, u.e, v.lo, v.hi, v.e, u._n(v))), ivs)


def max_(*a) -> Scaled:
    return _extremes(True, a)


def min_(*a) -> Scaled:
    return _extremes(False, a)


def xmul(a, b) -> Scaled:
    """a·b with 0·b = 0 for any b (the 0·log 0 = 0 convention) where a is exactly 0."""
    return _sv(a).xmul(b)


class _Module:
    """What the printed code calls ``mpmath``."""

    mpf = staticmethod(_sv)
    log, exp, log1p, expm1 = staticmethod(log), staticmethod(exp), staticmethod(log1p), staticmethod(expm1)
    sqrt, sinh, cosh, tanh = staticmethod(sqrt), staticmethod(sinh), staticmethod(cosh), staticmethod(tanh)
    max_, min_, sign_, heaviside = staticmethod(max_), staticmethod(min_), staticmethod(sign_), staticmethod(heaviside)
    pick, ipow, cmp_ = staticmethod(pick), staticmethod(ipow), staticmethod(cmp_)
    and_, or_, not_ = staticmethod(fi.and_), staticmethod(fi.or_), staticmethod(fi.not_)
    pi = property(lambda self: _sv(fi._enclose_const(mpmath.pi)))  # at 200 bits: not π rounded to a float
    e = property(lambda self: _sv(fi._enclose_const(mpmath.e)))
    inf = property(lambda self: Scaled.exact(_INF))
    nan = property(lambda self: Scaled.exact(float("nan")))  # nothing known (a branch no condition selects)


MODULE = _Module()


def compile_source(fn: Callable) -> Callable | None:
    """The printed reference function ``fn`` rebuilt on :class:`Scaled` intervals (None where
    its source cannot be read, or where Numba is missing)."""
    if not AVAILABLE:
        return None
    return fi.compile_source(fn, {"mpmath": MODULE, "XMul": xmul})


def to_interval(x: Scaled, dtype) -> fi.Interval:
    """``x`` as intervals of ``dtype`` (float64 or long double), each end rounded outward: past
    the format's range an end is its largest number or ±inf on the side that stays a bound,
    below it 0 or the least subnormal."""
    dt = np.dtype(dtype)
    e = np.clip(x.e, -20000, 20000).astype(np.int32)
    big = np.finfo(dt).max
    out = []
    for end, down in ((x.lo, True), (x.hi, False)):
        m = end.astype(dt)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            y = np.ldexp(m, e)
            back = np.ldexp(y, -e)  # exact where y rounded into the subnormals (or to 0)
        fin = np.isfinite(m) & np.isfinite(y)  # (an overflow is inf: handled after the rounding)
        if down:
            y = np.where(fin & (back > m), np.nextafter(y, dt.type(-np.inf)), y)
            y = np.where(np.isfinite(m) & (y == np.inf), big, y)
        else:
            y = np.where(fin & (back < m), np.nextafter(y, dt.type(np.inf)), y)
            y = np.where(np.isfinite(m) & (y == -np.inf), -big, y)
        out.append(y)
    return fi.Interval(*out)


def evaluate(fn: Callable, columns: Sequence[np.ndarray], dtype) -> list[fi.Interval] | None:
    """``fn`` (from :func:`compile_source`) on the points whose inputs are ``columns`` (float64,
    exact), as intervals of ``dtype`` (:func:`to_interval`); None where the code uses what this
    arithmetic does not model."""
    args = [Scaled.exact(np.asarray(c, dtype=np.float64)) for c in columns]
    n = len(columns[0]) if columns else 1
    out = fi.run_printed(fn, args)
    if out is None:
        return None
    res = []
    for o in out:
        o = _sv(o)
        if len(o.lo) != n:
            o = Scaled(*(np.ascontiguousarray(np.broadcast_to(a, (n,))) for a in (o.lo, o.hi, o.e)))
        res.append(to_interval(o, dtype))
    return res
