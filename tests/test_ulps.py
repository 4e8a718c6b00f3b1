"""ulp_error against a 2200-bit mpmath computation: fractions of an ulp kept (the reference's
160-bit value is not rounded to the format first), the overflow edge, zeros and subnormals."""

from __future__ import annotations

import math
import random

import mpmath
import numpy as np
import pytest

from cesym.verify.ulps import FORMATS, ulp, ulp_error


def _exact(y: float, true: mpmath.mpf, dtype) -> float:
    with mpmath.workprec(2200):
        return float(abs(mpmath.mpf(y) - true) / ulp(true, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ulp_error_is_the_exact_ratio(dtype):
    rng = random.Random(7)
    lo, hi = (-45, 38) if dtype == np.float32 else (-320, 307)
    for _ in range(3000):
        with mpmath.workprec(160):
            true = mpmath.mpf(rng.uniform(-1, 1)) * mpmath.mpf(10) ** rng.randint(lo, hi)
        y = float(dtype(float(true)))
        if rng.random() < 0.4:
            y = float(np.nextafter(dtype(y), dtype(rng.choice([-np.inf, np.inf]))))
        if rng.random() < 0.05:
            y = rng.choice([0.0, -0.0, 5e-324, 1e-300, -1e300])
        if math.isinf(y):
            continue
        got, want = ulp_error(y, true, dtype), _exact(y, true, dtype)
        assert got == pytest.approx(want, rel=1e-12, abs=0), (y, true)


def test_a_correctly_rounded_float64_reads_its_fraction():
    """0.1 (the float) against the real 1/10: 0.4 ulp, not the 0 of a reference rounded first."""
    with mpmath.workprec(160):
        tenth = mpmath.mpf(1) / 10
    e = ulp_error(0.1, tenth, np.float64)
    assert 0.35 < e < 0.45


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_overflow_edge(dtype):
    p, _, fmax = FORMATS[np.dtype(dtype)]
    half = mpmath.ldexp(1, math.frexp(fmax)[1] - p - 1)  # half the spacing at the largest float
    with mpmath.workprec(300):
        below, at = mpmath.mpf(fmax) + half * (1 - mpmath.ldexp(1, -40)), mpmath.mpf(fmax) + half
    assert ulp_error(fmax, below, dtype) < 0.5 and ulp_error(math.inf, below, dtype) == math.inf
    assert ulp_error(math.inf, at, dtype) == 0.0 and ulp_error(fmax, at, dtype) == math.inf  # the tie rounds to infinity
    assert ulp_error(-math.inf, -at, dtype) == 0.0 and ulp_error(math.nan, below, dtype) == math.inf


def test_zero_and_subnormals():
    assert ulp_error(0.0, mpmath.mpf(0), np.float64) == 0.0
    assert ulp_error(5e-324, mpmath.mpf(0), np.float64) == 1.0  # the subnormal spacing
    assert ulp_error(0.0, mpmath.ldexp(1, -1075), np.float64) == 0.5
    assert ulp_error(float(np.float32(1.4e-45)), mpmath.mpf(0), np.float32) == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bits_error_counts_the_floats_between(dtype):
    """Herbie's bits, log2(1 + floats between), against NumPy's own rounding to ``dtype`` and the
    integer views of its floats: nearby values, signed zeros, subnormals, infinities and true
    values past the largest float (which round to infinity)."""
    from cesym.verify.ulps import bits_error

    it = np.int32 if dtype == np.float32 else np.int64
    mask = (1 << (8 * np.dtype(dtype).itemsize - 1)) - 1

    def ordinal(v) -> int:
        i = int(np.array(v, dtype=dtype).view(it))
        return i if i >= 0 else -(i & mask)

    rng = random.Random(11)
    fmax = float(np.finfo(dtype).max)
    edges = [0.0, -0.0, float(np.finfo(dtype).smallest_subnormal), fmax, -fmax, math.inf, -math.inf]
    for _ in range(3000):
        with mpmath.workprec(160):
            true = mpmath.mpf(rng.uniform(-1, 1)) * mpmath.mpf(2) ** rng.randint(-160, 130) if rng.random() < 0.9 else mpmath.mpf(rng.choice(edges + [fmax * 1.0000001]))
        with np.errstate(over="ignore"):
            r = dtype(float(true))
            y = dtype(rng.choice(edges)) if rng.random() < 0.1 else np.nextafter(r, dtype(rng.choice([-np.inf, np.inf]))) if rng.random() < 0.5 else r
        if np.isnan(y):
            continue
        assert bits_error(float(y), true, dtype) == math.log2(1 + abs(ordinal(y) - ordinal(r))), (y, true)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_nan_reference_is_not_an_infinity(dtype):
    """A NaN reference (no value; callers such as the contract test NaN first) is read as no
    number at all: a finite result is measured as against 0, and no infinity matches it as a
    same-signed infinity matches an infinite reference."""
    for y in (1.0, -1.0, 5e-324, 0.0):
        assert ulp_error(y, mpmath.nan, dtype) == ulp_error(y, mpmath.mpf(0), dtype), y
    for y in (math.inf, -math.inf, math.nan):
        assert ulp_error(y, mpmath.nan, dtype) == math.inf, y
