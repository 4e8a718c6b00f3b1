"""The first tier's compiled loops (:mod:`cesym.verify.interval_loops`) give NumPy's operations'
numbers bit for bit (NaN's sign aside: NaN means "nothing known" whatever its sign).

Operands are intervals whose ends are drawn from the values where the operations branch: ±0,
subnormals, the least normal, powers of two, the largest float, ±inf, NaN, and random floats
of every magnitude; as 1-d arrays, 1-element arrays and 0-d scalars (NumPy's broadcasting).
The interval arithmetic itself is tested in ``tests/test_float_intervals.py`` (enclosures,
exact zeros and sums, against mpmath); a loop that equals NumPy's operation inherits that.
"""

from __future__ import annotations

import numpy as np
import pytest

from cesym.verify import float_intervals as fi
from cesym.verify import interval_loops

pytestmark = pytest.mark.skipif(interval_loops.LOOPS is None, reason="Numba not installed: NumPy's operations run")

_SPECIAL = np.array(
    [0.0, -0.0, 5e-324, -5e-324, 2.0**-1070, 2.2250738585072014e-308, 2.0**-1022 * 3, 0.5, 1.0, 2.0, 3.0, 1e300,
     2.0**1023, np.finfo(np.float64).max, np.inf, -np.inf, np.nan, 1.5e-160, 7e154, 0.1]
)


def _ends(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    """m intervals (lo <= hi where both are numbers; a few NaN and reversed-by-NaN ends)."""
    special = np.concatenate([_SPECIAL, -_SPECIAL])
    pool = np.concatenate([special, rng.standard_normal(64) * np.exp2(rng.integers(-1070, 1020, 64))])
    a, b = rng.choice(pool, m), rng.choice(pool, m)
    with np.errstate(invalid="ignore"):
        lo, hi = np.fmin(a, b), np.fmax(a, b)
    point = rng.random(m) < 0.3  # points: lo == hi
    hi = np.where(point, lo, hi)
    nan = rng.random(m) < 0.03
    return np.where(nan, np.nan, lo), hi


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    x, y = np.broadcast_arrays(np.asarray(x), np.asarray(y))
    nx, ny = np.isnan(x), np.isnan(y)
    return bool(np.array_equal(nx, ny) and np.array_equal(x[~nx], y[~ny]) and np.array_equal(np.signbit(x[~nx]), np.signbit(y[~ny])))


def _shapes(lo, hi, how: str):
    if how == "scalar":
        return np.float64(lo[0]) * np.ones(()), np.float64(hi[0]) * np.ones(())
    if how == "one":
        return lo[:1].copy(), hi[:1].copy()
    if how == "strided":  # a column of a batch of points (what the printed code's arguments are)
        return np.stack([lo, lo], axis=1)[:, 0], np.stack([hi, hi], axis=1)[:, 1]
    return lo, hi


@pytest.mark.parametrize("op", ["mul", "add", "sub", "div"])
@pytest.mark.parametrize("shape_a,shape_b", [("full", "full"), ("full", "scalar"), ("scalar", "full"), ("one", "full"), ("strided", "full"), ("full", "one")])
def test_compiled_loops_equal_numpys_operations(monkeypatch, op, shape_a, shape_b):
    rng = np.random.default_rng([2026, len(op), len(shape_a), len(shape_b)])
    m = 4000
    a = fi.Interval(*_shapes(*_ends(rng, m), shape_a))
    b = fi.Interval(*_shapes(*_ends(rng, m), shape_b))
    ops = {"mul": lambda x, y: x * y, "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "div": lambda x, y: x / y}
    with np.errstate(all="ignore"):
        monkeypatch.setattr(fi, "LOOPS", interval_loops.LOOPS)
        compiled = ops[op](a, b)
        monkeypatch.setattr(fi, "LOOPS", None)
        numpy_ = ops[op](a, b)
    assert np.shape(compiled.lo) == np.shape(numpy_.lo)
    assert _same(compiled.lo, numpy_.lo), f"{op}: lower ends differ"
    assert _same(compiled.hi, numpy_.hi), f"{op}: upper ends differ"


@pytest.mark.parametrize("name", ["exp", "log", "log1p", "expm1", "sqrt", "sinh", "tanh"])
@pytest.mark.parametrize("shape", ["full", "strided"])
def test_elementary_functions_finish_as_numpys(monkeypatch, name, shape):
    """NumPy's function at the ends, then the slack, the exact points and the domain in one loop."""
    rng = np.random.default_rng([2026, len(name), len(shape)])
    x = fi.Interval(*_shapes(*_ends(rng, 4000), shape))
    f = getattr(fi, name)
    monkeypatch.setattr(fi, "LOOPS", interval_loops.LOOPS)
    compiled = f(x)
    monkeypatch.setattr(fi, "LOOPS", None)
    numpy_ = f(x)
    assert _same(compiled.lo, numpy_.lo) and _same(compiled.hi, numpy_.hi), name


def test_the_loops_run_where_they_apply_and_numpy_elsewhere(monkeypatch):
    """The first tier's evaluation loads them; they take 1-d float64 operands (and 1-element or
    0-d ones beside them); scalars alone, the wide format and shapes NumPy would not broadcast as
    one length stay with NumPy."""
    monkeypatch.setattr(fi, "LOOPS", None)
    monkeypatch.setattr(fi, "_LOOPS_LOADED", False)
    fn = fi.compile_source(_double_then_square)
    out = fi.evaluate(fn, [np.linspace(1.0, 2.0, 5)])
    assert fi.LOOPS is interval_loops.LOOPS
    assert np.all(out[0].lo <= (2 * np.linspace(1.0, 2.0, 5)) ** 2) and np.all(out[0].hi >= (2 * np.linspace(1.0, 2.0, 5)) ** 2)
    loops = interval_loops.LOOPS
    x = np.linspace(1.0, 2.0, 7)
    assert loops.mul(x, x, x, x) is not None
    assert loops.add(x, x, np.ones(()), np.ones(())) is not None
    assert loops.mul(np.ones(()), np.ones(()), np.ones(()), np.ones(())) is None
    assert loops.mul(x, x, x[:3], x[:3]) is None
    assert loops.reciprocal(x.reshape(7, 1), x.reshape(7, 1)) is None
    if fi.WIDE is not None:
        w = x.astype(fi.WIDE)
        assert loops.mul(w, w, w, w) is None
        assert (fi.Interval(w) * fi.Interval(w)).lo.dtype == fi.WIDE


def _lambdifygenerated(x):  # what compile_source reads: a printed reference function's shape
    y = x * 2
    return [y * y]


_double_then_square = _lambdifygenerated
