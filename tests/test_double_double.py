"""Double-doubles with error bounds (:mod:`cesym.kernels._dd`), the float32 kernels' pass between
exact float64 and decimal: every operation's bound holds the exact rational value, on random and
adversarial operands (cancellation, products past the format's range, near underflow); the bound
is a few 2^-100 of the value, so that it decides; comparisons and signs decide only what the
bounds decide; the rounding of a double-double to float32 is exact; and MAPE's inputs past 2^53,
whose every float64 result rounds, are settled here, none going to the decimal path."""

from fractions import Fraction

import numpy as np
import pytest

from cesym.kernels import _dd, _exact
from cesym.verify import exhaustive as X
from cesym.verify.registry import case


def _value(x: _dd.DW, i) -> Fraction:
    return Fraction(float(x.h[i])) + Fraction(float(x.l[i]))


def _operands(rng, n: int) -> np.ndarray:
    """float64 numbers over 2^±60, with a third float32 ones (the kernels' inputs)."""
    x = rng.standard_normal(n) * 2.0 ** rng.integers(-60, 60, n)
    return np.where(rng.random(n) < 0.33, x.astype(np.float32).astype(np.float64), x)


def _exact_op(op: str, a: Fraction, b: Fraction) -> Fraction:
    return {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "div": lambda: a / b}[op]()


def _apply(fx: _dd.DDTracker, op: str, a, b):
    return {"add": fx.add, "sub": lambda u, v: fx.add(u, -v if isinstance(v, _dd.DW) else -np.asarray(v)),
            "mul": fx.mul, "div": fx.div}[op](a, b)


@pytest.mark.parametrize("seed", range(3))
def test_every_operation_bounds_the_exact_value(seed):
    """Chains of four operations on random operands, one of them often a near-copy of the
    running value (cancellation): the exact rational value lies within e of h + l wherever the
    output is not marked undecided, and e is at most 2^-96 of the magnitude (the value with every sum taken of absolute values)."""
    rng = np.random.default_rng(seed)
    n = 400
    fx = _dd.DDTracker((n,))
    x0 = _operands(rng, n)
    x = _dd.DW(x0, np.zeros(n), np.zeros(n), fx)
    exact = [Fraction(float(v)) for v in x0]
    scale = [abs(v) for v in exact]
    for step in range(4):
        op = ["add", "sub", "mul", "div"][(seed + step) % 4]
        b = _operands(rng, n)
        near = rng.random(n) < 0.3  # b a float64 near the running value: sums cancel
        b = np.where(near, x.h * (1 + rng.integers(-8, 8, n) * 2.0**-50), b)
        if op in ("mul", "div"):
            b = np.where(near, rng.standard_normal(n), b)
        x = _apply(fx, op, x, b)
        exact = [_exact_op(op, e, Fraction(float(v))) for e, v in zip(exact, b)]
        # the magnitude the rounding errors scale with: sums of absolute values, carried through
        fb = [abs(Fraction(float(v))) for v in b]
        scale = [s + c if op in ("add", "sub") else s * c if op == "mul" else s / c for s, c in zip(scale, fb)]
    decided = 0
    for i in range(n):
        if fx.undecided[i]:
            continue
        decided += 1
        err = abs(exact[i] - _value(x, i))
        assert err <= Fraction(float(x.e[i])), (i, float(err), float(x.e[i]))
        assert Fraction(float(x.e[i])) <= scale[i] * Fraction(1, 2**96) + Fraction(1, 2**1000), i
    assert decided == n  # nothing here leaves the format's range


def test_undecided_where_the_format_cannot_follow():
    """A product past 2^995 (Veltkamp's split overflows), one below 2^-968 (its error is no
    longer a float64) and a reciprocal of 2^-1000 are marked, not given a wrong bound."""
    fx = _dd.DDTracker((4,))
    a = np.array([2.0**1000, 2.0**-500, 3.0, 1.0])
    b = np.array([1.5, 2.0**-490, 2.0**-1000, 3.0])
    fx.mul(a[:2].repeat(2), b[:2].repeat(2))
    assert fx.undecided.tolist() == [True] * 4
    fx = _dd.DDTracker((4,))
    fx.div(a[2:].repeat(2), b[2:].repeat(2))
    assert fx.undecided.tolist() == [True, True, False, False]


def test_comparisons_and_signs_decide_only_what_the_bounds_decide():
    """a - b for a, b one float64 apart or exactly equal, and with bounds wider than their gap:
    a decided comparison is the exact one; an equal pair is decided (exactly 0); a pair the
    bounds cannot separate is marked."""
    rng = np.random.default_rng(3)
    n = 2000
    a = rng.standard_normal(n)
    b = np.where(rng.random(n) < 0.5, np.nextafter(a, np.where(rng.random(n) < 0.5, np.inf, -np.inf)), a)
    fx = _dd.DDTracker((n,))
    x = fx.div(fx.mul(a, 3.0), 3.0)  # a again, now with a bound: ties with b undecided
    got = x > b
    for i in range(n):
        if not fx.undecided[i]:
            assert got[i] == (_value(x, i) - Fraction(float(x.e[i])) > Fraction(float(b[i]))), i
    assert fx.undecided[a == b].all() and not fx.undecided[a != b].all()
    fx = _dd.DDTracker((n,))
    eq = fx.compare(_dd.DW(a, np.zeros(n), np.zeros(n), fx), b, ">=")
    assert not fx.undecided.any() and np.array_equal(eq, a >= b)
    assert np.array_equal(np.sign(_dd.DW(a - b, np.zeros(n), np.zeros(n), fx)), np.sign(a - b))


def test_max_and_abs_carry_the_bound():
    """|x|, max(x, 0) and min are 1-Lipschitz: the bound carries over; h and l follow x."""
    fx = _dd.DDTracker((3,))
    x = fx.div(np.array([-1.0, 1.0, -0.0]), 3.0)
    for got, want in ((abs(x), [Fraction(1, 3), Fraction(1, 3), 0]), (np.maximum(x, 0.0), [0, Fraction(1, 3), 0]),
                      (np.minimum(x, 0.0), [-Fraction(1, 3), 0, 0])):
        for i in range(3):
            assert abs(_value(got, i) - want[i]) <= Fraction(float(got.e[i])), (i, got.h[i])


@pytest.mark.parametrize("kind", ["midpoints", "spread"])
def test_decided_roundings_are_the_exact_ones(kind):
    """(m + k·2^-70·m)/3·3 for float32 midpoints m (the exact value m + tiny), and random
    quotients: a decided output is the float32 nearest the exact value; a value that is exactly a
    midpoint, carried with a bound, stays undecided."""
    from cesym.verify.ulps import round_to
    import mpmath

    rng = np.random.default_rng(11)
    n = 3000
    f = (rng.standard_normal(n) * 2.0 ** rng.integers(-100, 100, n)).astype(np.float32)
    mid = (f.astype(np.float64) + np.nextafter(f, np.float32(np.inf)).astype(np.float64)) / 2
    fx = _dd.DDTracker((n,))
    if kind == "midpoints":
        tiny = rng.integers(-3, 4, n) * mid * 2.0**-70
        num = fx.add(fx.mul(mid, 3.0), fx.mul(tiny, 3.0))
        exact = [3 * (Fraction(float(m)) + Fraction(float(t))) / 3 for m, t in zip(mid, tiny)]
    else:
        num = fx.mul(mid, rng.standard_normal(n))
        exact = None
    x = fx.div(num, 3.0)
    if exact is None:
        exact = [_value(num, i) / 3 for i in range(n)]  # num is exact: h·g with g a float64
    v, ok = _dd.decide32(x, fx.undecided)
    assert ok.mean() > 0.5
    for i in np.flatnonzero(ok):
        e = exact[i]
        assert float(v[i]) == round_to(mpmath.fdiv(e.numerator, e.denominator, prec=300), np.float32), i
    if kind == "midpoints":
        assert not ok[tiny == 0].any()  # an exact midpoint with a bound: not decided


def test_mape_past_float64s_reach_is_settled_in_double_doubles(monkeypatch):
    """MAPE at label 1 on 2^16 consecutive float32 inputs from 2^60: every output is the float32
    nearest 100·(p - 1) (exact integers), and the decimal path is never called; with the
    double-double pass removed it is (one input in 32)."""
    from cesym.kernels import _rounding

    (st,) = X.settings_for(case("mean_absolute_percentage_error"), [1.0], what=("value",))
    problem = X._problem(st)
    x = (np.arange(2**16, dtype=np.uint32) + np.float32(2.0**60).view(np.uint32)).view(np.float32)
    calls = []
    solve = _exact.solve
    monkeypatch.setattr(_exact, "solve", lambda *a, **k: calls.append(1) or solve(*a, **k))
    got = X._kernel_outs([problem], x)[0]
    assert not calls
    p = x.astype(np.float64).astype(object)
    want = [_round_int(100 * (int(v) - 1)) for v in p]
    assert got.tolist() == want
    monkeypatch.setattr(_rounding, "_rounded_in_double_double", lambda args, *a: (np.zeros(len(args[-1])), np.zeros(len(args[-1]), bool)))
    assert np.array_equal(X._kernel_outs([problem], x)[0], got) and len(calls) > 2**16 // 64


def _round_int(n: int) -> float:
    """The float32 nearest the integer n (> 2^24), ties to even, by integer arithmetic."""
    shift = n.bit_length() - 24
    q, r = divmod(n, 1 << shift)
    half = 1 << (shift - 1)
    if r > half or (r == half and q % 2):
        q += 1
    return float(np.float32(q * (1 << shift)))
def test_a_double_double_rounds_to_its_nearest_float32():
    """:func:`~cesym.kernels._dd.round32` against one exact rounding (integers): h + l
    with h on float32 rounding boundaries (midpoints of neighbours, and ±(2^128 - 2^103), where
    rounding reaches infinity), beside them, anywhere in float32's range and its subnormals; l 0,
    within h's half spacing, or exactly half of it."""
    import mpmath

    from cesym.verify.ulps import round_to

    rng = np.random.default_rng(7)
    n = 30000
    h = rng.standard_normal(n) * 2.0 ** rng.integers(-160, 130, n)
    with np.errstate(over="ignore"):
        f = h.astype(np.float32)
        g = np.nextafter(f, np.float32(np.inf))
    ok = np.isfinite(f) & np.isfinite(g)
    mid = np.where(ok, (f.astype(np.float64) + np.where(ok, g, 0).astype(np.float64)) / 2, h)
    h = np.where(rng.random(n) < 0.6, mid, h)
    h[:10], h[10:20] = 2.0**128 - 2.0**103, -(2.0**128 - 2.0**103)
    h = np.where(rng.random(n) < 0.15, np.nextafter(h, np.where(rng.random(n) < 0.5, np.inf, -np.inf)), h)
    half = np.spacing(np.abs(h)) / 2
    l = np.where(rng.random(n) < 0.3, 0.0, (2 * rng.random(n) - 1) * half)
    l = np.where(rng.random(n) < 0.05, np.copysign(half, rng.random(n) - 0.5), l)
    s = h + l
    h, l = s, (h - s) + l  # renormalised: |l| at most half h's spacing
    got = _dd.round32(h, l)
    want = np.array([round_to(mpmath.fadd(float(a), float(b), exact=True), np.float32) for a, b in zip(h, l)])
    assert np.sum((h == mid) & (l != 0)) > 5000  # boundaries that l moves off
    assert np.array_equal(got.astype(np.float64), want)


