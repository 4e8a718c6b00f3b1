r"""Compiled elementwise steps of the exhaustive run's first tier (:mod:`cesym.verify.intervals`).

An exhaustive sweep encloses 2^32 values in float64 intervals, each operation a few NumPy
passes over blocks of 2^16 inputs. Moving an end outward (:func:`cesym.verify.intervals._down`:
``fmin(x - (max(|x|, 2^-970)·2^-52 + 2^-1074), x)``) was six passes, a sum with its two
outward ends twelve, a product of intervals twenty (four products, three minima and three
maxima, two outward steps), and widening a libm result (``_widen``) eight: together half the
time of a slice of the logit kernels' soft label (x in [0.5, 0.5625)). Here each is one NumPy ufunc (``numba.vectorize``: broadcasting,
scalars and 0-d arrays as NumPy's own), and computes the same IEEE operations in the same
order, so the numbers are NumPy's bit for bit (no ``fastmath``: no reassociation, no
contraction into FMA); ``tests/test_exhaustive_loops.py`` holds each to the NumPy expression on
±0, subnormals, the largest float, ±inf, NaN and random floats of every magnitude.

:data:`STEPS` is None where Numba is missing, cannot cache, or ``CESYM_COMPILED_INTERVALS=off``;
then :mod:`cesym.verify.intervals` runs the NumPy expressions (the same numbers, slower).
"""

from __future__ import annotations

import os

from . import interval_loops

__all__ = ["STEPS"]

numba = interval_loops.numba

#: ``_step_of``'s constants: the spacing factor and the least subnormal.
_ULP, _TINY = 2.0**-52, 5e-324
_INF = float("inf")
#: :mod:`cesym.verify.intervals`' allowances (LIBM_RELATIVE, FORMULA_RELATIVE, LIBM_ABSOLUTE,
#: _HUGE; a test holds them equal), as ``_widen`` uses them: rel + 2^-51 and 2·LIBM_ABSOLUTE.
LIBM_RELATIVE, FORMULA_RELATIVE, LIBM_ABSOLUTE, HUGE = 2.0**-46, 2.0**-42, 2.0**-960, 2.0**1020
#: intervals._NO_UNDERFLOW: the least |x| the steps and allowances multiply
NO_UNDERFLOW = 2.0**-970
_LIBM_R, _FORMULA_R, _ABS, _HUGE = LIBM_RELATIVE + 2.0**-51, FORMULA_RELATIVE + 2.0**-51, 2 * LIBM_ABSOLUTE, HUGE


if numba is not None:
    try:
        _sig = ["float64(float64)"]
        _sig2 = ["float64(float64, float64)"]
        _sig4 = ["float64(float64, float64, float64, float64)"]

        # Selects, not early returns: LLVM vectorizes a loop of selects (a third of the time).
        @numba.njit(cache=True, inline="always")
        def _minimum(a, b):
            """numpy.minimum: NaN where either is NaN (which NaN, and the sign of a zero among
            equal zeros, do not matter after an outward step: ±0 both step to ∓2^-1074)."""
            return a if (a < b or a != a) else b

        @numba.njit(cache=True, inline="always")
        def _maximum(a, b):
            return a if (a > b or a != a) else b

        @numba.njit(cache=True, inline="always")
        def _floor(a):
            """numpy.maximum(a, NO_UNDERFLOW) for a >= 0 or NaN."""
            return a if (a > NO_UNDERFLOW or a != a) else NO_UNDERFLOW

        @numba.njit(cache=True, inline="always")
        def _d(x):
            """numpy.fmin(x - (max(|x|, 2^-970)·2^-52 + 2^-1074), x): x where the difference is
            NaN (x = +inf)."""
            d = x - (_floor(abs(x)) * _ULP + _TINY)
            return x if d != d else (d if d < x else x)

        @numba.njit(cache=True, inline="always")
        def _u(x):
            d = x + (_floor(abs(x)) * _ULP + _TINY)
            return x if d != d else (d if d > x else x)

        @numba.vectorize(_sig, cache=True)
        def down(x):
            """``fmin(x - (max(|x|, 2^-970)·2^-52 + 2^-1074), x)``: below x by at least one
            spacing; ±inf stays."""
            return _d(x)

        @numba.vectorize(_sig, cache=True)
        def up(x):
            return _u(x)

        @numba.vectorize(_sig2, cache=True)
        def add_down(a, b):
            """down(a + b)."""
            return _d(a + b)

        @numba.vectorize(_sig2, cache=True)
        def add_up(a, b):
            return _u(a + b)

        @numba.vectorize(_sig4, cache=True)
        def mul_down(a0, a1, b0, b1):
            """down(min(min(a0·b0, a0·b1), min(a1·b0, a1·b1))): the lower end of [a0, a1]·[b0, b1]."""
            return _d(_minimum(_minimum(a0 * b0, a0 * b1), _minimum(a1 * b0, a1 * b1)))

        @numba.vectorize(_sig4, cache=True)
        def mul_up(a0, a1, b0, b1):
            return _u(_maximum(_maximum(a0 * b0, a0 * b1), _maximum(a1 * b0, a1 * b1)))

        # _widen at its two allowances, the constants compiled in (a scalar operand costs a
        # generic-stride loop: twice the time). An overflowed value keeps a lower end of _HUGE.
        @numba.vectorize(_sig, cache=True)
        def widen_libm_lo(f):
            lo = f - (_floor(abs(f)) * _LIBM_R + _ABS)
            return _HUGE if f == _INF else lo

        @numba.vectorize(_sig, cache=True)
        def widen_libm_hi(f):
            hi = f + (_floor(abs(f)) * _LIBM_R + _ABS)
            return -_HUGE if f == -_INF else hi

        @numba.vectorize(_sig, cache=True)
        def widen_formula_lo(f):
            lo = f - (_floor(abs(f)) * _FORMULA_R + _ABS)
            return _HUGE if f == _INF else lo

        @numba.vectorize(_sig, cache=True)
        def widen_formula_hi(f):
            hi = f + (_floor(abs(f)) * _FORMULA_R + _ABS)
            return -_HUGE if f == -_INF else hi

        _F32_MAX = 3.4028234663852886e38
        _BEYOND = _F32_MAX * (1 + 2.0**-25)

        @numba.vectorize(["float64(float64, float64, float64)"], cache=True)
        def ulps32(k, lo, hi):
            """:func:`cesym.verify.exhaustive._ulps_vec` of one input: |k - v|/ulp32(v), v the
            middle of [lo, hi]; 0 where k is the infinity v is or rounds to, inf where NaN."""
            v = lo * 0.5 + hi * 0.5
            e = ((interval_loops._bits(v) >> 52) & 0x7FF) - 23
            if e < 1:
                e = 1
            u = interval_loops._float(e << 52)
            if u < 2.0**-149:
                u = 2.0**-149
            err = abs(k - v) / u
            if err - err == 0.0 and abs(v) < _F32_MAX:  # finite, and v within float32's range
                return err
            beyond = abs(v) >= _BEYOND
            kinf = k == _INF or k == -_INF
            same_sign = (k > 0.0 and v > 0.0) or (k < 0.0 and v < 0.0)
            if kinf and same_sign and (beyond or v == _INF or v == -_INF):
                return 0.0
            return _INF if err != err else err

    except RuntimeError:  # cache=True with no writable cache directory (a read-only install and home)
        numba = None


class _Steps:
    """The compiled ufuncs (see the module's docstring)."""

    def __init__(self) -> None:
        self.down, self.up = down, up
        self.add_down, self.add_up = add_down, add_up
        self.mul_down, self.mul_up = mul_down, mul_up
        #: rel -> (lower end, upper end) of _widen
        self.widen = {LIBM_RELATIVE: (widen_libm_lo, widen_libm_hi), FORMULA_RELATIVE: (widen_formula_lo, widen_formula_hi)}
        self.ulps32 = ulps32


def _steps() -> _Steps | None:
    if numba is None or os.environ.get("CESYM_COMPILED_INTERVALS", "on").strip().lower() in ("off", "0", "no"):
        return None
    return _Steps()


#: The compiled steps, or None (Numba missing, or ``CESYM_COMPILED_INTERVALS=off``).
STEPS = _steps()
