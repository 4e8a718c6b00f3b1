r"""Compiled loops for the first tier's hottest interval operations (float64 only).

:mod:`cesym.verify.float_intervals` runs a reference's printed code on :class:`Interval` s of
NumPy arrays, one operation of the code per Python call. A product there is about twenty NumPy
calls (four products, three minima, three maxima, the exact-zero test, two ``nextafter``, the
overflow test), each paying NumPy's fixed cost on a few hundred elements, and an elementary
function's outward step, exact points and domain about thirty more: the first tier's condition
numbers (a Hessian of a few thousand such operations per batch) were a quarter of a full
``cesym verify``. Here the same operations are one loop each, compiled by Numba (``numba.njit``,
IEEE semantics: no ``fastmath``, so no reassociation or contraction into FMA), and give the same
numbers bit for bit:

* the products' minimum and maximum propagate NaN as ``numpy.minimum``/``numpy.maximum`` do;
* ``numpy.nextafter`` is the neighbouring bit pattern (:func:`_down`, :func:`_up`), with its
  special cases: ±0 steps to ∓/± the least subnormal, +inf down to the largest float, -inf
  stays, NaN stays;
* the order of the TwoSum's operations is :func:`cesym.verify.float_intervals._sum`'s;
* an elementary function's values at the ends are NumPy's own (its SIMD exp and log differ from
  libm's in the last bit): only what follows them is compiled (:func:`_finish`).

``tests/test_interval_loops.py`` holds each loop to the NumPy operations on seeded and
adversarial operands (zeros of both signs, subnormals, infinities, NaN, overflow). Where Numba
is not installed, cannot cache, or ``CESYM_COMPILED_INTERVALS=off``, :data:`LOOPS` is None and
the NumPy operations run (the same numbers, slower); the wide format (``long double``) always
runs on NumPy, which Numba does not type.

Compiled on first use and cached on disk (``cache=True``: next to this module, or in Numba's
per-user cache directory where that is not writable).
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["LOOPS"]

try:
    import numba
    from numba.core import types
    from numba.extending import intrinsic
except ImportError:  # the NumPy operations run
    numba = None

_NINF, _PINF = -np.inf, np.inf

if numba is not None:
    try:

        @intrinsic
        def _bits(typingctx, x):
            """The float64's bit pattern as an int64 (a register move)."""

            def codegen(context, builder, signature, args):
                return builder.bitcast(args[0], context.get_value_type(types.int64))

            return types.int64(types.float64), codegen

        @intrinsic
        def _float(typingctx, b):
            """The int64's bit pattern as a float64."""

            def codegen(context, builder, signature, args):
                return builder.bitcast(args[0], context.get_value_type(types.float64))

            return types.float64(types.int64), codegen

        @numba.njit(cache=True, inline="always")
        def _down(x):
            """numpy.nextafter(x, -inf)."""
            if x != x or x == _NINF:
                return x
            if x == 0.0:
                return -5e-324
            b = _bits(x)
            return _float(b - 1 if x > 0.0 else b + 1)

        @numba.njit(cache=True, inline="always")
        def _up(x):
            """numpy.nextafter(x, +inf)."""
            if x != x or x == _PINF:
                return x
            if x == 0.0:
                return 5e-324
            b = _bits(x)
            return _float(b + 1 if x > 0.0 else b - 1)

        @numba.njit(cache=True, inline="always")
        def _two_prod(a, b):
            """a·b = p + e exactly (Dekker: |a|, |b| < 2^995, |p| > 2^-968; below, within 2^-1070)."""
            p = a * b
            t = 134217729.0 * a
            ah = t - (t - a)
            al = a - ah
            t = 134217729.0 * b
            bh = t - (t - b)
            bl = b - bh
            return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl

        @numba.njit(cache=True, inline="always")
        def _sum(a, b, down):
            """:func:`cesym.verify.float_intervals._sum` of one element."""
            s = a + b
            bb = s - a
            err = (a - (s - bb)) + (b - bb)  # TwoSum: a + b = s + err exactly (finite s)
            if down:
                out = _down(s) if err < 0 else s
            else:
                out = _up(s) if err > 0 else s
            if (s == _PINF or s == _NINF) and np.isfinite(a) and np.isfinite(b):
                out = _NINF if down else _PINF
            return out

        @numba.njit(cache=True, nogil=True)
        def _mul(alo, ahi, blo, bhi, n):
            """:meth:`cesym.verify.float_intervals.Interval.__mul__`; a 1-element operand broadcasts."""
            sa = 1 if alo.shape[0] > 1 else 0
            sb = 1 if blo.shape[0] > 1 else 0
            lo = np.empty(n)
            hi = np.empty(n)
            for i in range(n):
                a0, a1, b0, b1 = alo[i * sa], ahi[i * sa], blo[i * sb], bhi[i * sb]
                nan = a0 != a0 or a1 != a1 or b0 != b0 or b1 != b1
                if not nan and ((a0 == 0.0 and a1 == 0.0) or (b0 == 0.0 and b1 == 0.0)):  # exact: 0·b = 0
                    lo[i] = 0.0
                    hi[i] = 0.0
                    continue
                p1, p2, p3, p4 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
                if p1 != p1 or p2 != p2 or p3 != p3 or p4 != p4:  # numpy.minimum/maximum propagate NaN
                    lq = hq = np.nan
                else:
                    lq = _down(min(min(p1, p2), min(p3, p4)))
                    hq = _up(max(max(p1, p2), max(p3, p4)))
                if lq == _NINF or lq == _PINF or hq == _NINF or hq == _PINF:  # overflow from finite operands
                    fin = np.isfinite(a0) and np.isfinite(a1) and np.isfinite(b0) and np.isfinite(b1)
                    if fin and (lq == _NINF or lq == _PINF):
                        lq = _NINF
                    if fin and (hq == _NINF or hq == _PINF):
                        hq = _PINF
                lo[i] = lq
                hi[i] = hq
            return lo, hi

        @numba.njit(cache=True, nogil=True)
        def _add(alo, ahi, blo, bhi, n):
            """:meth:`cesym.verify.float_intervals.Interval.__add__`; a 1-element operand broadcasts."""
            sa = 1 if alo.shape[0] > 1 else 0
            sb = 1 if blo.shape[0] > 1 else 0
            lo = np.empty(n)
            hi = np.empty(n)
            for i in range(n):
                lo[i] = _sum(alo[i * sa], blo[i * sb], True)
                hi[i] = _sum(ahi[i * sa], bhi[i * sb], False)
            return lo, hi

        @numba.njit(cache=True, nogil=True)
        def _reciprocal(xlo, xhi, n):
            """:func:`cesym.verify.float_intervals._reciprocal`."""
            tiny, big = 2.2250738585072014e-308, 1.7976931348623157e308
            lo = np.empty(n)
            hi = np.empty(n)
            for i in range(n):
                a, b = xlo[i], xhi[i]
                if not (a > 0.0 or b < 0.0):  # holds 0 (or NaN): undefined
                    lo[i] = np.nan
                    hi[i] = np.nan
                    continue
                rl, rh = 1.0 / b, 1.0 / a
                # exact where the divisor is a power of two and the quotient normal
                el = abs(math.frexp(b)[0]) == 0.5 and tiny <= abs(rl) <= big
                eh = abs(math.frexp(a)[0]) == 0.5 and tiny <= abs(rh) <= big
                lq = rl if el else _down(rl)
                hq = rh if eh else _up(rh)
                lo[i] = 0.0 if (b == _PINF or b == _NINF) else lq  # 1/±inf = 0 exactly
                hi[i] = 0.0 if (a == _PINF or a == _NINF) else hq
            return lo, hi

        @numba.njit(cache=True, nogil=True)
        def _finish(a, b, xlo, xhi, exact_x, exact_f, domain, has_domain, slack, tiny, big, n):
            """What :func:`cesym.verify.float_intervals._monotone` does with f at the ends ``a``,
            ``b`` of the argument ``[xlo, xhi]``: each moved out by ``slack`` of itself plus
            ``tiny`` (an infinite end: the largest float on its finite side), the exact points
            ``f(exact_x) = exact_f`` in their order, NaN where ``xlo`` is not at least ``domain``."""
            lo = np.empty(n)
            hi = np.empty(n)
            for i in range(n):
                l, h = a[i], b[i]
                if l == _PINF:
                    l = big
                elif l != _NINF:
                    l = l - (abs(l) * slack + tiny)
                if h == _NINF:
                    h = -big
                elif h != _PINF:
                    h = h + (abs(h) * slack + tiny)
                for k in range(exact_x.shape[0]):
                    if xlo[i] == exact_x[k]:
                        l = exact_f[k]
                    if xhi[i] == exact_x[k]:
                        h = exact_f[k]
                if has_domain and not (xlo[i] >= domain):
                    l = np.nan
                    h = np.nan
                lo[i] = l
                hi[i] = h
            return lo, hi

    except RuntimeError:  # cache=True with no writable cache directory (a read-only install and home)
        numba = None


def _operands(*xs):
    """The operands as 1-d contiguous float64 arrays and the result's length, or (None, 0) where
    NumPy's path should run: another dtype, more than one dimension, lengths that do not
    broadcast as one length and 1, or every operand 0-d (a scalar result stays 0-d, as NumPy's)."""
    n = 1
    out = []
    scalar = True
    for x in xs:
        if x.dtype.type is not np.float64 or x.ndim > 1 or not x.dtype.isnative:
            return None, 0
        if x.ndim == 1 and x.flags.c_contiguous:
            scalar = False
        else:
            scalar = scalar and x.ndim == 0
            x = np.ascontiguousarray(x).reshape(-1)
        m = x.shape[0]
        if m != 1:
            if n != 1 and m != n:
                return None, 0
            n = m
        out.append(x)
    return (None, 0) if scalar else (out, n)


def _binary(kernel, alo, ahi, blo, bhi):
    """``kernel`` (:func:`_mul`, :func:`_add`) on two intervals, or None where NumPy's path
    should run (:func:`_operands`, or an interval whose ends have two lengths)."""
    xs, n = _operands(alo, ahi, blo, bhi)
    if xs is None or len(xs[0]) != len(xs[1]) or len(xs[2]) != len(xs[3]):
        return None
    return kernel(*xs, n)


class _Loops:
    """The compiled operations on (lo, hi) arrays, each returning (lo, hi), or None where NumPy's
    path should run (:func:`_operands`)."""

    @staticmethod
    def mul(alo, ahi, blo, bhi):
        return _binary(_mul, alo, ahi, blo, bhi)

    @staticmethod
    def add(alo, ahi, blo, bhi):
        return _binary(_add, alo, ahi, blo, bhi)

    @staticmethod
    def finish(a, b, xlo, xhi, exact_x, exact_f, domain, slack, tiny, big):
        """:func:`_finish` where ``a``, ``b``, ``xlo``, ``xhi`` are 1-d float64 of one length
        (``exact_x``, ``exact_f``: float64 arrays; ``domain`` None for none), else None."""
        xs, n = _operands(a, b, xlo, xhi)
        if xs is None or any(len(x) != n for x in xs):
            return None
        return _finish(*xs, exact_x, exact_f, 0.0 if domain is None else float(domain), domain is not None, slack, tiny, big, n)

    @staticmethod
    def reciprocal(lo, hi):
        xs, n = _operands(lo, hi)
        if xs is None or len(xs[0]) != n or len(xs[1]) != n:
            return None
        return _reciprocal(*xs, n)


def _loops() -> _Loops | None:
    if numba is None or os.environ.get("CESYM_COMPILED_INTERVALS", "on").strip().lower() in ("off", "0", "no"):
        return None
    return _Loops()


#: The compiled operations, or None (Numba missing, or ``CESYM_COMPILED_INTERVALS=off``).
LOOPS = _loops()
