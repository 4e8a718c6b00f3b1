r"""The first tier's precise format: intervals whose ends are double-doubles, in compiled loops.

Float64 intervals (:mod:`cesym.verify.float_intervals`) pin a float32 value, whose spacing is
2^29 of theirs, but a float64 value only where the interval is a single number: a float64
interval is a few float64 ulps wide, and the reference pins to 2^-8 of one. Those values, and
the condition numbers whose terms cancel below float64's 2^-53, went to the balls one point at
a time (about a hundred Python calls a point): a third of a default ``cesym verify``.

Here each end of an interval is a double-double :math:`h + l` (two float64, 106 bits), and every
operation is one loop compiled by Numba (IEEE semantics, no ``fastmath``) over the points. An
end is computed with error-free transformations (TwoSum; Dekker's TwoProduct with Veltkamp's
split, exact for operands below 2^995 and products above 2^-968) and a rigorous bound ε of
what they leave out, then moved out by ε (:func:`_lo`, :func:`_hi`: ``l ∓ ε`` rounded one float
outward, renormalised by an exact TwoSum). Each bound is the sum of the magnitudes of the
rounded intermediate results times 2^-52 (a rounding to nearest errs by at most 2^-53 of its
result; the factor 2 covers the few roundings of ε itself) plus 2^-1060 (what gradual
underflow can lose in one operation, at most a few 2^-1075):

* ``a + b``: :math:`s + e_1 = a_h + b_h`, :math:`t + e_2 = a_l + b_l` exactly, then
  :math:`u = \mathrm{fl}(e_1 + t)`, an exact TwoSum, :math:`w = \mathrm{fl}(v + e_2)`, an exact
  TwoSum: :math:`\varepsilon = 2^{-52}(|u| + |w|)`;
* ``a · b``: :math:`p + e = a_h b_h` exactly, :math:`t_1 = a_h b_l`, :math:`t_2 = a_l b_h`,
  :math:`t_3 = t_1 + t_2`, :math:`c = t_3 + e`, an exact TwoSum of p and c:
  :math:`\varepsilon = 2^{-52}(|t_1| + |t_2| + |t_3| + |c|) + 2|a_l||b_l|`; by sign cases, the
  general case the extremes of four products;
* ``1/b``: :math:`q = \mathrm{fl}(1/b_h)`, :math:`r = 1 - qb` (:math:`1 - p` exact by
  Sterbenz's lemma, two roundings and :math:`q b_l`'s), :math:`1/b = q(1 + r + r^2/(1 - r))`:
  :math:`q + \mathrm{fl}(qr)` within :math:`|q|(2^{-52}(|d| + |m| + |r|) + 2\bar r^2) + 2^{-52}|qr|`
  (:math:`\bar r` a bound of the exact :math:`|r|`);
* the functions, at each end of the argument (they are monotone; cosh in |x|), computed by
  these interval operations themselves, so that their enclosures need no further argument:

  - :math:`e^x = 2^k(1 + \mathrm{expm1}(r))`, :math:`r = x - k\ln 2` with ln 2 enclosed in
    double-doubles; :math:`\mathrm{expm1}(r) ` from :math:`s = r/16`: the Taylor polynomial of
    degree 14 by Horner (the coefficients 1/j! enclosed), its remainder bounded by
    :math:`2|s|^{15}/15!` (:math:`|s| < 0.022`), then four doublings
    :math:`E \mapsto E(E + 2)`; expm1 near 0 without the reduction (relative accuracy kept);
  - :math:`\log x = y_0 + \mathrm{log1p}(d)` with :math:`y_0` libm's log of :math:`x_h` (any
    float: only the enclosure of :math:`d = x e^{-y_0} - 1` enters), and
    :math:`\mathrm{log1p}(d) \in d - d^2/2 \pm |d|^3` for :math:`|d| \le 2^{-20}` (libm is within
    a few ulps: :math:`|d| \approx 2^{-52}`); near :math:`x = 1`, :math:`\mathrm{log1p}(x - 1)`;
    :math:`\mathrm{log1p}(u)` near 0 the same with :math:`d = u + F + Fu`,
    :math:`F = \mathrm{expm1}(-y_0)` (relative accuracy kept);
  - :math:`\sqrt x = y_0\sqrt{1 + t}`, :math:`t = (x - y_0^2)/y_0^2`,
    :math:`\sqrt{1 + t} \in 1 + t/2 - t^2/8 \pm |t|^3`;
  - sinh from expm1 (:math:`(E + E/(E + 1))/2`), cosh from exp, tanh as :math:`E/(E + 2)`
    (:math:`E = \mathrm{expm1}(2x)`) below 0.34 and :math:`1 - 2/(e^{2x} + 1)` above.

What leaves the format (an overflow, a split of an operand past 2^995, a reciprocal of a
number past 2^±1020) makes that end unbounded (±inf on its side), never wrong: such a point is
simply not decided here. Comparisons, ``Piecewise`` and the steps are three-valued, as in
:mod:`cesym.verify.float_intervals`, on the ends rounded outward to float64.

``tests/test_dd_intervals.py`` holds every operation to mpmath at 400 bits, on random and
adversarial operands, and the first tier's values and condition numbers from this format to
the balls'.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import mpmath
import numpy as np

from . import float_intervals as fi
from .interval_algebra import IntervalAlgebra, steps

__all__ = ["AVAILABLE", "DD", "compile_source", "evaluate", "to_interval", "pinned", "middles"]

_INF = math.inf
_MAX = float(np.finfo(np.float64).max)

try:
    import numba
except ImportError:
    numba = None


def _nudge(x: float, up: bool) -> float:
    return float(np.nextafter(x, np.inf if up else -np.inf))


def _enclose(c) -> tuple[float, float, float, float]:
    """A constant (an int, a float, a decimal string, a Fraction, an mpmath number or constant)
    between two double-doubles (lo_h, lo_l, hi_h, hi_l): exactly where it is one; an mpmath
    constant (π, e, ln 2) from 400 bits, the low part one float out each way (2^-400 is far
    below that float's spacing)."""
    if isinstance(c, type(mpmath.pi)):
        with mpmath.workprec(400):
            v = +c
            h = float(v)
            low = float(v - h)
        return h, _nudge(low, False), h, _nudge(low, True)
    if isinstance(c, mpmath.mpf):
        if not mpmath.isfinite(c):
            h = float(c)
            return h, 0.0, h, 0.0
        sign, man, ex, _ = c._mpf_
        f = Fraction((-1) ** sign * int(man)) * Fraction(2) ** int(ex)
    else:
        f = c if isinstance(c, Fraction) else Fraction(c)
    try:
        h = float(f)
    except OverflowError:
        return (_MAX, 0.0, _INF, 0.0) if f > 0 else (-_INF, 0.0, -_MAX, 0.0)
    if math.isinf(h):
        return (_MAX, 0.0, _INF, 0.0) if h > 0 else (-_INF, 0.0, -_MAX, 0.0)
    r = f - Fraction(h)
    lo_l = hi_l = float(r)
    if Fraction(lo_l) > r:
        lo_l = _nudge(lo_l, False)
    if Fraction(hi_l) < r:
        hi_l = _nudge(hi_l, True)
    return h, lo_l, h, hi_l


_LN2 = _enclose(mpmath.ln2)
_N_TAYLOR = 14
_FACT = [_enclose(Fraction(1, math.factorial(j))) for j in range(_N_TAYLOR + 1)]
_FACT_ARR = np.array(_FACT, dtype=np.float64)  # (15, 4): 1/j! enclosed
_LN2_ARR = np.array(_LN2, dtype=np.float64)
_REM = 2.0 / math.factorial(_N_TAYLOR + 1)  # the Taylor remainder's factor (an upper bound)

AVAILABLE = numba is not None
if AVAILABLE:
    try:
        from .interval_loops import _down, _two_prod, _up

        _U = 2.0**-52
        _TINY = 2.0**-1060
        _BIG = 2.0**995

        @numba.njit(cache=True, inline="always")
        def _two_sum(a, b):
            s = a + b
            bb = s - a
            return s, (a - (s - bb)) + (b - bb)

        @numba.njit(cache=True)
        def _lo(h, l, err):
            """h + l - err rounded down, as a normalised double-double (unbounded: -inf)."""
            if h != h:
                return np.nan, 0.0
            if h - h != 0.0 or err - err != 0.0 or l - l != 0.0:
                return -_INF, 0.0
            s, e = _two_sum(h, l if err == 0.0 else _down(l - err))
            if s - s != 0.0:
                return -_INF, 0.0
            return s, e

        @numba.njit(cache=True)
        def _hi(h, l, err):
            """h + l + err rounded up, as a normalised double-double (unbounded: +inf)."""
            if h != h:
                return np.nan, 0.0
            if h - h != 0.0 or err - err != 0.0 or l - l != 0.0:
                return _INF, 0.0
            s, e = _two_sum(h, l if err == 0.0 else _up(l + err))
            if s - s != 0.0:
                return _INF, 0.0
            return s, e

        @numba.njit(cache=True)
        def _dd_add(ah, al, bh, bl):
            s, e1 = _two_sum(ah, bh)
            t, e2 = _two_sum(al, bl)
            u = e1 + t
            s, v = _two_sum(s, u)
            w = v + e2
            s, z = _two_sum(s, w)
            # a sum that falls in the subnormals is exact, and adding 0 is: no slack for those
            eu = 0.0 if (e1 == 0.0 or t == 0.0) else abs(u)
            ew = 0.0 if (v == 0.0 or e2 == 0.0) else abs(w)
            return s, z, (eu + ew) * _U

        @numba.njit(cache=True)
        def _iadd(a0, a1, a2, a3, b0, b1, b2, b3):
            if a0 == -_INF or b0 == -_INF:
                l0, l1 = -_INF, 0.0
            elif a0 == _INF or b0 == _INF:
                l0, l1 = _INF, 0.0
            else:
                h, l, e = _dd_add(a0, a1, b0, b1)
                l0, l1 = _lo(h, l, e)
            if a2 == _INF or b2 == _INF:
                u0, u1 = _INF, 0.0
            elif a2 == -_INF or b2 == -_INF:
                u0, u1 = -_INF, 0.0
            else:
                h, l, e = _dd_add(a2, a3, b2, b3)
                u0, u1 = _hi(h, l, e)
            if a0 != a0 or b0 != b0 or a2 != a2 or b2 != b2:
                return np.nan, 0.0, np.nan, 0.0
            return l0, l1, u0, u1

        @numba.njit(cache=True)
        def _dd_mul(ah, al, bh, bl):
            """(h, l, err); err = inf where the product leaves the format."""
            if ah == 0.0 or bh == 0.0:
                return 0.0, 0.0, 0.0
            if not (abs(ah) < _BIG and abs(bh) < _BIG):
                return 0.0, 0.0, _INF
            p, e = _two_prod(ah, bh)
            if not abs(p) < 2.0**1000:
                return 0.0, 0.0, _INF
            t1 = ah * bl
            t2 = al * bh
            t3 = t1 + t2
            c = t3 + e
            s, z = _two_sum(p, c)
            if al == 0.0 and bl == 0.0:  # c = e: exact, but where TwoProduct met the subnormals
                return s, z, (0.0 if abs(p) >= 2.0**-968 else _TINY)
            return s, z, (abs(t1) + abs(t2) + abs(t3) + abs(c)) * _U + abs(al) * abs(bl) * 2.0 + _TINY

        @numba.njit(cache=True)
        def _mlo(ah, al, bh, bl):
            h, l, e = _dd_mul(ah, al, bh, bl)
            return _lo(h, l, e)

        @numba.njit(cache=True)
        def _mhi(ah, al, bh, bl):
            h, l, e = _dd_mul(ah, al, bh, bl)
            return _hi(h, l, e)

        @numba.njit(cache=True, inline="always")
        def _dd_less(ah, al, bh, bl):
            return ah < bh or (ah == bh and al < bl)

        @numba.njit(cache=True)
        def _imul(a0, a1, a2, a3, b0, b1, b2, b3):
            if a0 != a0 or b0 != b0 or a2 != a2 or b2 != b2:
                return np.nan, 0.0, np.nan, 0.0
            if a0 >= 0.0 and b0 >= 0.0:
                l0, l1 = _mlo(a0, a1, b0, b1)
                u0, u1 = _mhi(a2, a3, b2, b3)
            elif a2 <= 0.0 and b2 <= 0.0:
                l0, l1 = _mlo(a2, a3, b2, b3)
                u0, u1 = _mhi(a0, a1, b0, b1)
            elif a0 >= 0.0 and b2 <= 0.0:
                l0, l1 = _mlo(a2, a3, b0, b1)
                u0, u1 = _mhi(a0, a1, b2, b3)
            elif a2 <= 0.0 and b0 >= 0.0:
                l0, l1 = _mlo(a0, a1, b2, b3)
                u0, u1 = _mhi(a2, a3, b0, b1)
            else:  # the general case: the extremes of the four products
                l0, l1 = _mlo(a0, a1, b0, b1)
                u0, u1 = _mhi(a0, a1, b0, b1)
                for k in range(3):
                    if k == 0:
                        xh, xl, yh, yl = a0, a1, b2, b3
                    elif k == 1:
                        xh, xl, yh, yl = a2, a3, b0, b1
                    else:
                        xh, xl, yh, yl = a2, a3, b2, b3
                    c0, c1 = _mlo(xh, xl, yh, yl)
                    if _dd_less(c0, c1, l0, l1):
                        l0, l1 = c0, c1
                    c0, c1 = _mhi(xh, xl, yh, yl)
                    if _dd_less(u0, u1, c0, c1):
                        u0, u1 = c0, c1
            return l0, l1, u0, u1

        @numba.njit(cache=True)
        def _dd_recip(bh, bl):
            """(h, l, err) of 1/b; err = inf out of the format's range."""
            if bh == _INF or bh == -_INF:
                return 0.0, 0.0, 0.0
            a = abs(bh)
            # TwoProduct splits q and b: both below 2^995 (1/b = f/(b f), f a power of 2)
            f = 2.0**-64 if a > 2.0**990 else (2.0**64 if a < 2.0**-990 else 1.0)
            bh, bl = bh * f, bl * f
            if not (2.0**-1000 < abs(bh) < 2.0**995) or bl - bl != 0.0:
                return 0.0, 0.0, _INF
            q = 1.0 / bh
            p, e = _two_prod(q, bh)
            d = (1.0 - p) - e
            m = q * bl
            r = d - m
            y = q * r
            if bl == 0.0 and d == 0.0:  # q·b = 1 exactly (b a power of 2)
                s, z, err = q, 0.0, 0.0
            else:
                s, z = _two_sum(q, y)
                g = (abs(d) + abs(m) + abs(r)) * _U
                rb = abs(r) + g
                if rb > 0.25:
                    return 0.0, 0.0, _INF
                err = abs(q) * (g + 2.0 * rb * rb) + abs(y) * _U + _TINY
            if f == 1.0:
                return s, z, err
            s2, z2 = s * f, z * f  # exact, or within 2^-1074 each below the normal range
            return s2, z2, err * f + _TINY

        @numba.njit(cache=True)
        def _irecip(b0, b1, b2, b3):
            if b0 != b0 or b2 != b2:
                return np.nan, 0.0, np.nan, 0.0
            if b0 > 0.0 or b2 < 0.0:
                h, l, e = _dd_recip(b2, b3)
                l0, l1 = _lo(h, l, e)
                h, l, e = _dd_recip(b0, b1)
                u0, u1 = _hi(h, l, e)
                return l0, l1, u0, u1
            # holds 0: undefined where it is 0 (1/0), so nothing is known; not the whole line,
            # which an exact 0 would then multiply to 0 (0·(0/0) taken for 0)
            return np.nan, 0.0, np.nan, 0.0

        @numba.njit(cache=True)
        def _iscale(a0, a1, a2, a3, k):
            """The interval times 2^k (k an integer-valued float): exact, or moved out by 2^-1074
            where a part fell into the subnormals; past the range, unbounded on that side."""
            kk = int(k)
            x0, x1 = math.ldexp(a0, kk), math.ldexp(a1, kk)
            y0, y1 = math.ldexp(a2, kk), math.ldexp(a3, kk)
            ex = 0.0
            if kk < 0:  # exact unless a part lost bits below the normal range
                if math.ldexp(x0, -kk) != a0 or math.ldexp(x1, -kk) != a1 or math.ldexp(y0, -kk) != a2 or math.ldexp(y1, -kk) != a3:
                    ex = _TINY
            l0, l1 = _lo(x0, x1, ex)
            u0, u1 = _hi(y0, y1, ex)
            if x0 == _INF:  # the lower end overflowed: the value is past the largest float
                l0, l1 = _MAX, 0.0
            return l0, l1, u0, u1

        @numba.njit(cache=True)
        def _mag(a0, a1, a2, a3):
            """An upper bound of |x| over the interval, as a float."""
            return _up(max(abs(a0) + abs(a1), abs(a2) + abs(a3)) * (1.0 + 2.0**-50))

        @numba.njit(cache=True)
        def _expm1_small(x0, x1, x2, x3, fact):
            """expm1 on an interval within |x| <= 0.35: Taylor at x/16, four doublings."""
            s0, s1, s2, s3 = _iscale(x0, x1, x2, x3, -4.0)
            n = fact.shape[0] - 1
            p0, p1, p2, p3 = fact[n, 0], fact[n, 1], fact[n, 2], fact[n, 3]
            for j in range(n - 1, 0, -1):
                p0, p1, p2, p3 = _imul(p0, p1, p2, p3, s0, s1, s2, s3)
                p0, p1, p2, p3 = _iadd(p0, p1, p2, p3, fact[j, 0], fact[j, 1], fact[j, 2], fact[j, 3])
            e0, e1, e2, e3 = _imul(p0, p1, p2, p3, s0, s1, s2, s3)
            sm = _mag(s0, s1, s2, s3)
            rem = _up(_up(sm**15) * _REM) + _TINY
            e0, e1, e2, e3 = _iadd(e0, e1, e2, e3, -rem, 0.0, rem, 0.0)
            for _ in range(4):
                t0, t1, t2, t3 = _iadd(e0, e1, e2, e3, 2.0, 0.0, 2.0, 0.0)
                e0, e1, e2, e3 = _imul(e0, e1, e2, e3, t0, t1, t2, t3)
            return e0, e1, e2, e3

        @numba.njit(cache=True)
        def _exp_point(h, l, fact, ln2, minus_one):
            """An enclosure of e^(h+l) (``minus_one``: of e^(h+l) - 1)."""
            if h != h:
                return np.nan, 0.0, np.nan, 0.0
            if h == 0.0 and l == 0.0:
                return (0.0, 0.0, 0.0, 0.0) if minus_one else (1.0, 0.0, 1.0, 0.0)
            if h > 709.79:
                return _MAX, 0.0, _INF, 0.0
            if abs(h) <= 0.34:
                e0, e1, e2, e3 = _expm1_small(h, l, h, l, fact)
                if minus_one:
                    return e0, e1, e2, e3
                return _iadd(e0, e1, e2, e3, 1.0, 0.0, 1.0, 0.0)
            if h < -745.2:
                r0, r1, r2, r3 = 0.0, 0.0, 5e-324, 0.0
            else:
                k = math.floor(h * 1.4426950408889634 + 0.5)
                c0, c1, c2, c3 = _imul(k, 0.0, k, 0.0, ln2[0], ln2[1], ln2[2], ln2[3])
                r0, r1, r2, r3 = _iadd(h, l, h, l, -c2, -c3, -c0, -c1)
                if not (abs(r0) <= 0.35 and abs(r2) <= 0.35):
                    return -_INF, 0.0, _INF, 0.0
                e0, e1, e2, e3 = _expm1_small(r0, r1, r2, r3, fact)
                e0, e1, e2, e3 = _iadd(e0, e1, e2, e3, 1.0, 0.0, 1.0, 0.0)
                r0, r1, r2, r3 = _iscale(e0, e1, e2, e3, k)
                if r0 < 0.0:
                    r0, r1 = 0.0, 0.0
            if minus_one:
                return _iadd(r0, r1, r2, r3, -1.0, 0.0, -1.0, 0.0)
            return r0, r1, r2, r3

        @numba.njit(cache=True)
        def _log1p_series(d0, d1, d2, d3):
            """log1p(d) for |d| <= 2^-20: d - d^2/2 ± |d|^3 (unbounded past that)."""
            dm = _mag(d0, d1, d2, d3)
            if not dm <= 2.0**-20:
                return -_INF, 0.0, _INF, 0.0
            q0, q1, q2, q3 = _imul(d0, d1, d2, d3, -0.5, 0.0, -0.5, 0.0)
            q0, q1, q2, q3 = _iadd(q0, q1, q2, q3, 1.0, 0.0, 1.0, 0.0)
            q0, q1, q2, q3 = _imul(q0, q1, q2, q3, d0, d1, d2, d3)
            c = _up(_up(dm * dm) * dm) + _TINY
            return _iadd(q0, q1, q2, q3, -c, 0.0, c, 0.0)

        @numba.njit(cache=True)
        def _log1p_near0(u0, u1, u2, u3, fact, ln2):
            """log1p on a thin interval within (-0.5, 1]: y0 + log1p(u + F + F·u), F = expm1(-y0)."""
            y0 = math.log1p(u0)
            f0, f1, f2, f3 = _exp_point(-y0, 0.0, fact, ln2, True)
            g0, g1, g2, g3 = _imul(f0, f1, f2, f3, u0, u1, u2, u3)
            d0, d1, d2, d3 = _iadd(u0, u1, u2, u3, f0, f1, f2, f3)
            d0, d1, d2, d3 = _iadd(d0, d1, d2, d3, g0, g1, g2, g3)
            s0, s1, s2, s3 = _log1p_series(d0, d1, d2, d3)
            return _iadd(s0, s1, s2, s3, y0, 0.0, y0, 0.0)

        @numba.njit(cache=True)
        def _log_point(h, l, fact, ln2):
            """An enclosure of log(h + l)."""
            if h != h or h < 0.0:
                return np.nan, 0.0, np.nan, 0.0
            if h == 0.0:
                return -_INF, 0.0, -_INF, 0.0
            if h == _INF:
                return _INF, 0.0, _INF, 0.0
            if 0.5 <= h <= 2.0:
                u0, u1, u2, u3 = _iadd(h, l, h, l, -1.0, 0.0, -1.0, 0.0)
                return _log1p_near0(u0, u1, u2, u3, fact, ln2)
            # x = m·2^K, m in [1/2, 1): log x = log1p(m - 1) + K ln 2 (the scaling exact where
            # the parts stay normal; else moved out by _iscale)
            kk = float(math.frexp(h)[1])
            m0, m1, m2, m3 = _iscale(h, l, h, l, -kk)
            if not (0.25 <= m0 and m2 <= 2.0):
                return -_INF, 0.0, _INF, 0.0
            u0, u1, u2, u3 = _iadd(m0, m1, m2, m3, -1.0, 0.0, -1.0, 0.0)
            g0, g1, g2, g3 = _log1p_near0(u0, u1, u2, u3, fact, ln2)
            c0, c1, c2, c3 = _imul(kk, 0.0, kk, 0.0, ln2[0], ln2[1], ln2[2], ln2[3])
            return _iadd(g0, g1, g2, g3, c0, c1, c2, c3)

        @numba.njit(cache=True)
        def _log1p_point(h, l, fact, ln2):
            if h != h or h < -1.0:
                return np.nan, 0.0, np.nan, 0.0
            if -0.5 <= h <= 1.0:
                return _log1p_near0(h, l, h, l, fact, ln2)
            x0, x1, x2, x3 = _iadd(h, l, h, l, 1.0, 0.0, 1.0, 0.0)
            if x0 < 0.0:
                return np.nan, 0.0, np.nan, 0.0
            a0, a1, _, _ = _log_point(x0, x1, fact, ln2)
            _, _, b2, b3 = _log_point(x2, x3, fact, ln2)
            return a0, a1, b2, b3

        @numba.njit(cache=True)
        def _sqrt_point(h, l):
            if h != h or h < 0.0:
                return np.nan, 0.0, np.nan, 0.0
            if h == 0.0:
                return 0.0, 0.0, 0.0, 0.0
            if h == _INF:
                return _INF, 0.0, _INF, 0.0
            if not (2.0**-960 < h < 2.0**990):
                return 0.0, 0.0, _INF, 0.0
            y0 = math.sqrt(h)
            p, e = _two_prod(y0, y0)  # exact in this range
            d0, d1, d2, d3 = _iadd(h, l, h, l, -p, -e, -p, -e)
            r0, r1, r2, r3 = _irecip(p, e, p, e)
            t0, t1, t2, t3 = _imul(d0, d1, d2, d3, r0, r1, r2, r3)
            tm = _mag(t0, t1, t2, t3)
            if not tm <= 2.0**-20:
                return 0.0, 0.0, _INF, 0.0
            q0, q1, q2, q3 = _imul(t0, t1, t2, t3, -0.125, 0.0, -0.125, 0.0)
            q0, q1, q2, q3 = _iadd(q0, q1, q2, q3, 0.5, 0.0, 0.5, 0.0)
            q0, q1, q2, q3 = _imul(q0, q1, q2, q3, t0, t1, t2, t3)
            c = _up(_up(tm * tm) * tm) + _TINY
            q0, q1, q2, q3 = _iadd(q0, q1, q2, q3, 1.0, -c, 1.0, c)
            return _imul(q0, q1, q2, q3, y0, 0.0, y0, 0.0)

        @numba.njit(cache=True)
        def _sinh_pos(h, l, fact, ln2):
            """sinh at x >= 0: (E + E/(E + 1))/2, E = expm1(x)."""
            e0, e1, e2, e3 = _exp_point(h, l, fact, ln2, True)
            t0, t1, t2, t3 = _iadd(e0, e1, e2, e3, 1.0, 0.0, 1.0, 0.0)
            t0, t1, t2, t3 = _irecip(t0, t1, t2, t3)
            t0, t1, t2, t3 = _imul(t0, t1, t2, t3, e0, e1, e2, e3)
            t0, t1, t2, t3 = _iadd(t0, t1, t2, t3, e0, e1, e2, e3)
            return _iscale(t0, t1, t2, t3, -1.0)

        @numba.njit(cache=True)
        def _tanh_pos(h, l, fact, ln2):
            """tanh at x >= 0: E/(E + 2) (E = expm1(2x)) below 0.34, 1 - 2/(e^2x + 1) above."""
            if h <= 0.34:
                e0, e1, e2, e3 = _exp_point(2.0 * h, 2.0 * l, fact, ln2, True)
                t0, t1, t2, t3 = _iadd(e0, e1, e2, e3, 2.0, 0.0, 2.0, 0.0)
                t0, t1, t2, t3 = _irecip(t0, t1, t2, t3)
                return _imul(t0, t1, t2, t3, e0, e1, e2, e3)
            if h > 40.0:  # 1 - 2/(e^2x + 1) within (1 - 2^-115, 1)
                return 1.0, -(2.0**-110), 1.0, 0.0
            e0, e1, e2, e3 = _exp_point(2.0 * h, 2.0 * l, fact, ln2, False)
            t0, t1, t2, t3 = _iadd(e0, e1, e2, e3, 1.0, 0.0, 1.0, 0.0)
            t0, t1, t2, t3 = _irecip(t0, t1, t2, t3)
            t0, t1, t2, t3 = _iscale(t0, t1, t2, t3, 1.0)
            return _iadd(1.0, 0.0, 1.0, 0.0, -t2, -t3, -t0, -t1)

        @numba.njit(cache=True)
        def _cosh_pos(h, l, fact, ln2):
            e0, e1, e2, e3 = _exp_point(h, l, fact, ln2, False)
            t0, t1, t2, t3 = _irecip(e0, e1, e2, e3)
            t0, t1, t2, t3 = _iadd(t0, t1, t2, t3, e0, e1, e2, e3)
            return _iscale(t0, t1, t2, t3, -1.0)

        EXP, LOG, LOG1P, EXPM1, SQRT, SINH, TANH, COSH = range(8)

        @numba.njit(cache=True)
        def _point(which, h, l, fact, ln2):
            """An enclosure of function ``which`` at the double-double h + l."""
            if l == 0.0 and (h == 0.0 or h == 1.0):  # the exact points: e^0, log 1, sqrt 1, ...
                if h == 0.0:
                    if which == EXP or which == COSH:
                        return 1.0, 0.0, 1.0, 0.0
                    if which != LOG:
                        return 0.0, 0.0, 0.0, 0.0
                elif which == LOG:
                    return 0.0, 0.0, 0.0, 0.0
                elif which == SQRT:
                    return 1.0, 0.0, 1.0, 0.0
            if which == EXP:
                return _exp_point(h, l, fact, ln2, False)
            if which == EXPM1:
                return _exp_point(h, l, fact, ln2, True)
            if which == LOG:
                return _log_point(h, l, fact, ln2)
            if which == LOG1P:
                return _log1p_point(h, l, fact, ln2)
            if which == SQRT:
                return _sqrt_point(h, l)
            neg = h < 0.0
            a, b = (-h, -l) if neg else (h, l)
            if which == COSH:
                return _cosh_pos(a, b, fact, ln2)
            if a == 0.0:
                return 0.0, 0.0, 0.0, 0.0
            if which == SINH:
                r0, r1, r2, r3 = _sinh_pos(a, b, fact, ln2)
            else:
                r0, r1, r2, r3 = _tanh_pos(a, b, fact, ln2)
            if neg:
                return -r2, -r3, -r0, -r1
            return r0, r1, r2, r3

        @numba.njit(cache=True)
        def _hi4(r, d):
            """The enclosure ``r`` with its upper end moved up by ``d``."""
            h, l = _hi(r[2], r[3], d)
            return r[0], r[1], h, l

        @numba.njit(cache=True)
        def _thin_step(which, a0, a1, a2, a3, g0, g1, f0, f1):
            """For a thin argument [a, b] (b - a <= 2^-30 |a|) of an increasing function enclosed
            at a by [g0 + g1, f0 + f1]: a float d >= f(b) - f(a) (the width times a bound
            of f' on [a, b]), or -1 where there is none this cheap (then f is evaluated at b):
            exp and expm1 (f' = e^x <= (f(a) + [1])(1 + 2w)), log (1/a), log1p (1/(1 + a)),
            sqrt (1/(2 sqrt a)), tanh (1). Used where d is below 2^-60 of f(a): else b's own
            enclosure is tighter."""
            w = _up(_up(abs(a2 - a0)) + _up(abs(a3 - a1)) + 2.0**-1070)  # >= b - a
            if not (w <= abs(a0) * 2.0**-30) or f0 - f0 != 0.0:
                return -1.0
            g = 1.0 + 4.0 * w  # covers e^w and the roundings below
            if which == EXP:
                return _up(w * _up((abs(f0) + abs(f1)) * g))
            if which == EXPM1:
                return _up(w * _up((abs(f0) + abs(f1) + 1.0) * g))
            if which == LOG:
                return _up(w / (a0 * (1.0 - 2.0**-50) - abs(a1))) if a0 > 0.0 else -1.0
            if which == LOG1P:
                den = (1.0 + a0) * (1.0 - 2.0**-50) - abs(a1)
                return _up(w / den) if den > 0.0 else -1.0
            if which == SQRT:
                den = 2.0 * (g0 * (1.0 - 2.0**-50) - 2.0 * abs(g1))
                return _up(w / den) if den > 0.0 else -1.0
            if which == TANH:
                return w
            return -1.0

        @numba.njit(cache=True)
        def _fun_loop(which, x, n, fact, ln2):
            out = np.empty((4, n))
            one = x.shape[1] == 1
            for i in range(n):
                j = 0 if one else i
                a0, a1, a2, a3 = x[0, j], x[1, j], x[2, j], x[3, j]
                if a0 != a0 or a2 != a2:
                    out[0, i], out[1, i], out[2, i], out[3, i] = np.nan, 0.0, np.nan, 0.0
                    continue
                if which == COSH:  # decreasing below 0
                    if a0 >= 0.0:
                        lo = _point(which, a0, a1, fact, ln2)
                        hi = _point(which, a2, a3, fact, ln2)
                        r0, r1, r2, r3 = lo[0], lo[1], hi[2], hi[3]
                    elif a2 <= 0.0:
                        lo = _point(which, a2, a3, fact, ln2)
                        hi = _point(which, a0, a1, fact, ln2)
                        r0, r1, r2, r3 = lo[0], lo[1], hi[2], hi[3]
                    else:
                        p = _point(which, a0, a1, fact, ln2)
                        q = _point(which, a2, a3, fact, ln2)
                        r0, r1 = 1.0, 0.0
                        r2, r3 = (q[2], q[3]) if _dd_less(p[2], p[3], q[2], q[3]) else (p[2], p[3])
                else:
                    lo = _point(which, a0, a1, fact, ln2)
                    if a0 == a2 and a1 == a3:
                        hi = lo
                    else:
                        d = _thin_step(which, a0, a1, a2, a3, lo[0], lo[1], lo[2], lo[3])
                        hi = _point(which, a2, a3, fact, ln2) if not (0.0 <= d <= abs(lo[2]) * 2.0**-60) else _hi4(lo, d)
                    r0, r1, r2, r3 = lo[0], lo[1], hi[2], hi[3]
                    if r0 != r0 or r2 != r2:
                        r0, r1, r2, r3 = np.nan, 0.0, np.nan, 0.0
                out[0, i], out[1, i], out[2, i], out[3, i] = r0, r1, r2, r3
            return out

        @numba.njit(cache=True)
        def _bin_loop(op, x, y, n):
            """op 0: x + y; 1: x·y; 2: 1/x (y unused)."""
            out = np.empty((4, n))
            ox, oy = x.shape[1] == 1, y.shape[1] == 1
            for i in range(n):
                j = 0 if ox else i
                k = 0 if oy else i
                if op == 0:
                    r = _iadd(x[0, j], x[1, j], x[2, j], x[3, j], y[0, k], y[1, k], y[2, k], y[3, k])
                elif op == 1:
                    r = _imul(x[0, j], x[1, j], x[2, j], x[3, j], y[0, k], y[1, k], y[2, k], y[3, k])
                else:
                    r = _irecip(x[0, j], x[1, j], x[2, j], x[3, j])
                out[0, i], out[1, i], out[2, i], out[3, i] = r[0], r[1], r[2], r[3]
            return out

    except RuntimeError:  # cache=True with no writable cache directory
        AVAILABLE = False


class DD(IntervalAlgebra):
    """Intervals with double-double ends, one per point: ``v`` of shape (4, n) (or (4, 1),
    broadcast): the lower end ``v[0] + v[1]``, the upper ``v[2] + v[3]``. The operators not
    defined here: :class:`~cesym.verify.interval_algebra.IntervalAlgebra`."""

    __slots__ = ("v",)

    def __init__(self, v: np.ndarray):
        self.v = v

    @staticmethod
    def exact(x) -> "DD":
        a = np.asarray(x, dtype=np.float64).reshape(-1)
        z = np.zeros_like(a)
        return DD(np.ascontiguousarray(np.stack([a, z, a, z])))

    def _n(self, other: "DD") -> int:
        return max(self.v.shape[1], other.v.shape[1])

    def __add__(self, other):
        o = _dv(other)
        return DD(_bin_loop(0, self.v, o.v, self._n(o)))

    def __neg__(self):
        return DD(np.ascontiguousarray(-self.v[[2, 3, 0, 1]]))

    def __mul__(self, other):
        o = _dv(other)
        return DD(_bin_loop(1, self.v, o.v, self._n(o)))

    def __abs__(self):
        v = self.v
        pos, neg = v[0] >= 0, v[2] <= 0
        lo = np.where(pos, v[[0, 1]], np.where(neg, -v[[2, 3]], 0.0))
        big = np.where(_less(-v[0], -v[1], v[2], v[3]), v[[2, 3]], -v[[0, 1]])
        hi = np.where(pos, v[[2, 3]], np.where(neg, -v[[0, 1]], big))
        out = np.concatenate([lo, hi])
        return DD(np.ascontiguousarray(np.where(np.isnan(v[0]) | np.isnan(v[2]), np.nan, out)))

    # --- the hooks of IntervalAlgebra ---------------------------------------------------------
    @staticmethod
    def _of(x) -> "DD":
        return _dv(x)

    def _reciprocal(self) -> "DD":
        return DD(_bin_loop(2, self.v, self.v, self.v.shape[1]))

    def _integer(self) -> int | None:
        v = self.v
        if v.shape[1] == 1 and v[0, 0] == v[2, 0] and v[1, 0] == 0 == v[3, 0]:
            k = float(v[0, 0])
            if k.is_integer() and abs(k) < 2**31:
                return int(k)
        return None

    def _one(self) -> "DD":
        one = np.where(np.isnan(self.v[0]) | np.isnan(self.v[2]), np.nan, 1.0)
        z = np.zeros_like(one)
        return DD(np.ascontiguousarray(np.stack([one, z, one, z])))

    def _nonneg(self) -> "DD":
        v = self.v
        below = v[0] < 0
        if not below.any():
            return self
        return DD(np.ascontiguousarray(np.concatenate([np.where(below, 0.0, v[[0, 1]]), v[[2, 3]]])))

    def _exact_zero(self) -> np.ndarray:
        return (self.v[0] == 0) & (self.v[2] == 0)

    def _zero_where(self, mask) -> "DD":
        n = max(self.v.shape[1], np.shape(mask)[0])
        return DD(np.ascontiguousarray(np.where(mask, 0.0, np.broadcast_to(self.v, (4, n)))))

    def _real_pow(self, p: "DD") -> "DD":
        """x^p = exp(p·log x) for x > 0; 0^p = 0 for p > 0."""
        zero = self._exact_zero() & (p.v[0] > 0)
        out = exp(p * log(self))
        return out._zero_where(zero) if np.any(zero) else out


def _less(ah, al, bh, bl):
    """a < b for double-doubles (NumPy arrays)."""
    return (ah < bh) | ((ah == bh) & (al < bl))


@functools.lru_cache(maxsize=256)
def _constant(c) -> DD:
    return DD(np.array(_enclose(c), dtype=np.float64).reshape(4, 1))


def _dv(x) -> DD:
    """A constant or an interval as a :class:`DD`: floats and ints exactly where they are
    floats, other numbers between two double-doubles (:func:`_enclose`)."""
    if isinstance(x, DD):
        return x
    if isinstance(x, (bool, np.bool_)):
        x = float(x)
    if isinstance(x, (float, np.floating)):
        return DD.exact(float(x))
    if isinstance(x, np.ndarray):
        return DD.exact(x)
    if isinstance(x, (int, np.integer)):
        return _constant(int(x)) if float(x) != int(x) else DD.exact(float(x))
    if isinstance(x, (mpmath.mpf, type(mpmath.pi))):
        return _constant(x)
    if isinstance(x, str):
        return _constant(Fraction(x))
    raise TypeError(f"cannot enclose {type(x).__name__} in double-double intervals")


def _function(which: int) -> Callable:
    def apply(x) -> DD:
        x = _dv(x)
        return DD(_fun_loop(which, x.v, x.v.shape[1], _FACT_ARR, _LN2_ARR))

    return apply


if AVAILABLE:
    exp, log, log1p, expm1 = _function(EXP), _function(LOG), _function(LOG1P), _function(EXPM1)
    sqrt, sinh, tanh, cosh = _function(SQRT), _function(SINH), _function(TANH), _function(COSH)


def ipow(x, k: int) -> DD:
    """x^k for an integer k (:meth:`~cesym.verify.interval_algebra.IntervalAlgebra.ipow`)."""
    return _dv(x).ipow(k)


def to_interval(x: DD) -> fi.Interval:
    """Float64 intervals holding ``x``: each end rounded outward (h, one float out where the low
    part points outward)."""
    v = x.v
    lo = np.where(v[1] < 0, fi._down(v[0]), v[0])
    hi = np.where(v[3] > 0, fi._up(v[2]), v[2])
    return fi.Interval(lo, hi)


def cmp_(op: str, a, b) -> tuple:
    """Three-valued ``a op b`` from the sign of a - b (its ends rounded outward to float64)."""
    return fi.cmp_(op, to_interval(_dv(a) - _dv(b)), 0.0)


def _hull(u: DD, w: DD, take: np.ndarray) -> DD:
    """Per point, ``u`` widened to hold ``w`` where ``take``."""
    n = max(u.v.shape[1], w.v.shape[1], take.shape[0])
    a, b = np.broadcast_to(u.v, (4, n)), np.broadcast_to(w.v, (4, n))
    take = np.broadcast_to(take, (n,))
    low = _less(b[0], b[1], a[0], a[1]) | np.isnan(b[0])
    high = _less(a[2], a[3], b[2], b[3]) | np.isnan(b[2])
    lo = np.where(take & low, b[[0, 1]], a[[0, 1]])
    hi = np.where(take & high, b[[2, 3]], a[[2, 3]])
    return DD(np.ascontiguousarray(np.concatenate([lo, hi])))


def pick(*pairs) -> DD:
    """A ``Piecewise``: per point, the hull of the values whose conditions may hold, up to the
    first that certainly does (no branch that may hold: NaN)."""
    cur = DD(np.array([[np.inf], [0.0], [-np.inf], [0.0]]))
    done = np.zeros(1, dtype=bool)
    for c, v in pairs:
        t, f = fi._truth(c)
        take = np.asarray(~done & ~np.asarray(f)).reshape(-1)
        cur = _hull(cur, _dv(v), take)
        done = np.asarray(done | np.asarray(t)).reshape(-1)
    empty = cur.v[0] > cur.v[2]
    return DD(np.ascontiguousarray(np.where(empty, np.nan, cur.v)))


heaviside, sign_ = steps(_dv, pick, cmp_)


def _extreme(take_max: bool, u: DD, w: DD) -> DD:
    n = max(u.v.shape[1], w.v.shape[1])
    a, b = np.broadcast_to(u.v, (4, n)), np.broadcast_to(w.v, (4, n))
    if take_max:
        lo = np.where(_less(a[0], a[1], b[0], b[1]), b[[0, 1]], a[[0, 1]])
        hi = np.where(_less(a[2], a[3], b[2], b[3]), b[[2, 3]], a[[2, 3]])
    else:
        lo = np.where(_less(b[0], b[1], a[0], a[1]), b[[0, 1]], a[[0, 1]])
        hi = np.where(_less(b[2], b[3], a[2], a[3]), b[[2, 3]], a[[2, 3]])
    nan = np.isnan(a[0]) | np.isnan(a[2]) | np.isnan(b[0]) | np.isnan(b[2])
    return DD(np.ascontiguousarray(np.where(nan, np.nan, np.concatenate([lo, hi]))))


def max_(*a) -> DD:
    return functools.reduce(lambda u, w: _extreme(True, u, w), [_dv(v) for v in a])


def min_(*a) -> DD:
    return functools.reduce(lambda u, w: _extreme(False, u, w), [_dv(v) for v in a])


def xmul(a, b) -> DD:
    """a·b with 0·b = 0 for any b (the 0·log 0 = 0 convention) where a is exactly 0."""
    return _dv(a).xmul(b)


class _Module:
    """What the printed code calls ``mpmath``."""

    mpf = staticmethod(_dv)
    if AVAILABLE:
        log, exp, log1p, expm1 = staticmethod(log), staticmethod(exp), staticmethod(log1p), staticmethod(expm1)
        sqrt, sinh, cosh, tanh = staticmethod(sqrt), staticmethod(sinh), staticmethod(cosh), staticmethod(tanh)
    max_, min_, sign_, heaviside = staticmethod(max_), staticmethod(min_), staticmethod(sign_), staticmethod(heaviside)
    pick, ipow, cmp_ = staticmethod(pick), staticmethod(ipow), staticmethod(cmp_)
    and_, or_, not_ = staticmethod(fi.and_), staticmethod(fi.or_), staticmethod(fi.not_)
    pi = property(lambda self: _constant(mpmath.pi))
    e = property(lambda self: _constant(mpmath.e))
    inf = property(lambda self: DD.exact(_INF))
    nan = property(lambda self: DD.exact(float("nan")))  # nothing known (a branch no condition selects)


MODULE = _Module()


def compile_source(fn: Callable) -> Callable | None:
    """The printed reference function ``fn`` rebuilt on :class:`DD` intervals (None where its
    source cannot be read, or where Numba is missing)."""
    if not AVAILABLE:
        return None
    return fi.compile_source(fn, {"mpmath": MODULE, "XMul": xmul})


def evaluate(fn: Callable, columns: Sequence[np.ndarray]) -> list[DD] | None:
    """``fn`` (from :func:`compile_source`) at the points whose inputs are ``columns`` (float64,
    exact); None where the code uses what this arithmetic does not model."""
    args = [DD.exact(np.asarray(c, dtype=np.float64)) for c in columns]
    n = len(columns[0]) if columns else 1
    out = fi.run_printed(fn, args)
    if out is None:
        return None
    return [DD(np.ascontiguousarray(np.broadcast_to(_dv(o).v, (4, n)))) for o in out]


def middles(x: DD) -> tuple[np.ndarray, np.ndarray]:
    """The middle of each interval as a double-double (hi, lo): within 2^-104 of it relatively
    (far below the 2^-8 ulp to which a pinned interval holds its value)."""
    v = x.v
    with np.errstate(all="ignore"):
        s, e = fi.two_sum(v[0], v[2])
        hi, lo = fi.two_sum(s, (v[1] + v[3]) + e)
        hi, lo = hi / 2, lo / 2
        # ends past 2^1022 overflow in their sum (a middle of NaN for an interval near the largest
        # float): there the ends are halved first, exactly (their low parts are far above the
        # subnormals, where halving would round)
        big = (np.abs(v[0]) >= 2.0**1022) | (np.abs(v[2]) >= 2.0**1022)
        if big.any():
            s, e = fi.two_sum(v[0] / 2, v[2] / 2)
            bh, bl = fi.two_sum(s, (v[1] / 2 + v[3] / 2) + e)
            hi, lo = np.where(big, bh, hi), np.where(big, bl, lo)
    return hi, lo


def pinned(x: DD, p: int, emin: int) -> np.ndarray:
    """Where ``x`` pins its value as :func:`cesym.verify.float_intervals.pinned` asks (within
    2^-8 of the spacing of a format of ``p`` bits at its smaller end, both ends of one sign, the
    width within 2^-20 of the smaller end), the width measured on the double-doubles; values
    below 2^-968 (where a double-double has fewer than 106 bits) are left out."""
    v = x.v
    with np.errstate(all="ignore"):
        fin = np.isfinite(v).all(axis=0)
        same = ((v[0] > 0) & (v[2] > 0)) | ((v[2] < 0) & (v[0] < 0))
        small = np.where(same, np.minimum(np.abs(v[0]), np.abs(v[2])), 0.0)
        _, e = np.frexp(small)
        spacing = np.ldexp(1.0, np.maximum(np.where(small > 0, e - p, emin), emin))
        d, f = fi.two_sum(v[2], -v[0])
        width = np.abs(d + (f + (v[3] - v[1]))) * (1 + 2.0**-40)
        exact = (v[0] == v[2]) & (v[1] == v[3])
    return fin & (exact | (same & (small >= 2.0**-968) & (width <= spacing / 256) & (width <= small * 2.0**-20)))
