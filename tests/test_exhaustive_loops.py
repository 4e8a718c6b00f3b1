"""The exhaustive first tier's compiled steps (:mod:`cesym.verify.exhaustive_loops`) give the
NumPy expressions of :mod:`cesym.verify.intervals` bit for bit (NaN's sign aside), so a sweep's
decisions do not depend on whether Numba is installed.

Operands are drawn from where the steps branch (±0, subnormals, the least normal, the largest
float, float32's overflow threshold, ±inf, NaN) and random floats of every magnitude, as 1-d
arrays and as scalars (broadcasting).
"""

from __future__ import annotations

import numpy as np
import pytest

from cesym.verify import exhaustive, exhaustive_loops, intervals

pytestmark = pytest.mark.skipif(exhaustive_loops.STEPS is None, reason="Numba not installed: NumPy's expressions run")

_F32_MAX = float(np.finfo(np.float32).max)
_SPECIAL = np.array(
    [0.0, -0.0, 5e-324, 2.0**-1070, 2.2250738585072014e-308, 2.0**-149, 2.0**-126, 0.5, 1.0, 3.0, 1e300,
     2.0**1023, np.finfo(np.float64).max, _F32_MAX, _F32_MAX * (1 + 2.0**-25), 2.0**128, np.inf, np.nan, 0.1]
)


def _pool(rng: np.random.Generator, m: int) -> np.ndarray:
    special = np.concatenate([_SPECIAL, -_SPECIAL])
    pool = np.concatenate([special, rng.standard_normal(64) * np.exp2(rng.integers(-1074, 1023, 64))])
    return rng.choice(pool, m)


def _same(x, y) -> bool:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    both_nan = np.isnan(x) & np.isnan(y)
    return x.shape == y.shape and bool(np.all(both_nan | (x.view(np.int64) == y.view(np.int64))))


@pytest.fixture
def numpy_steps(monkeypatch):
    """Run ``fn`` with the NumPy expressions (STEPS off) and return its result."""

    def run(fn, *args):
        monkeypatch.setattr(intervals, "STEPS", None)
        monkeypatch.setattr(exhaustive_loops, "STEPS", None)
        try:
            return fn(*args)
        finally:
            monkeypatch.undo()

    return run


@pytest.mark.parametrize("seed", range(3))
def test_outward_steps_sums_and_products_match_numpy(numpy_steps, seed):
    rng = np.random.default_rng(seed)
    m = 4000
    a, b, c, d = (_pool(rng, m) for _ in range(4))
    x = (np.fmin(a, b), np.fmax(a, b))
    y = (np.fmin(c, d), np.fmax(c, d))
    with np.errstate(all="ignore"):
        for fn, args in [
            (intervals._down, (a,)),
            (intervals._up, (a,)),
            (intervals.add, (x, y)),
            (intervals.mul, (x, y)),
            (intervals.mul, (x, (np.float64(c[0]), np.float64(d[0])))),  # an interval by a scalar interval
            (intervals._widen, (a, intervals.LIBM_RELATIVE)),
            (intervals._widen, (a, intervals.FORMULA_RELATIVE)),
        ]:
            got, want = fn(*args), numpy_steps(fn, *args)
            for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
                assert _same(g, w), fn.__name__


def test_scalars_stay_scalars(numpy_steps):
    for v in (0.0, -0.0, 1.5, np.inf, -np.inf, 5e-324):
        got, want = intervals._down(np.float64(v)), numpy_steps(intervals._down, np.float64(v))
        assert np.ndim(got) == 0 and _same(got, want)
        got, want = intervals._widen(np.float64(v), intervals.LIBM_RELATIVE), numpy_steps(intervals._widen, np.float64(v), intervals.LIBM_RELATIVE)
        assert _same(got[0], want[0]) and _same(got[1], want[1])


@pytest.mark.parametrize("seed", range(3))
def test_ulps_match_numpy(numpy_steps, seed):
    """The errors in float32 ulps: k a float32 result near v, or an infinity, NaN, 0."""
    rng = np.random.default_rng(seed)
    m = 4000
    v = _pool(rng, m)
    width = np.abs(v) * 2.0**-45 * rng.random(m)
    with np.errstate(all="ignore"):
        lo, hi = v - width, v + width
        k = np.where(rng.random(m) < 0.7, v * (1 + rng.standard_normal(m) * 2.0**-22), _pool(rng, m)).astype(np.float32)
    got, want = exhaustive._ulps_vec(k, lo, hi), numpy_steps(exhaustive._ulps_vec, k, lo, hi)
    assert _same(got, want)
    # the cases the comparison turns on are among the operands
    assert np.isinf(k).any() and (np.abs(v) >= _F32_MAX).any() and np.isnan(want).sum() == 0 and (want == np.inf).any()


def test_the_compiled_allowances_are_the_intervals_own():
    assert exhaustive_loops.LIBM_RELATIVE == intervals.LIBM_RELATIVE
    assert exhaustive_loops.FORMULA_RELATIVE == intervals.FORMULA_RELATIVE
    assert exhaustive_loops.LIBM_ABSOLUTE == intervals.LIBM_ABSOLUTE
    assert exhaustive_loops.HUGE == intervals._HUGE
    assert set(exhaustive_loops.STEPS.widen) == {intervals.LIBM_RELATIVE, intervals.FORMULA_RELATIVE}
    assert exhaustive_loops.NO_UNDERFLOW == intervals._NO_UNDERFLOW
