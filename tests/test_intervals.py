"""The float64 interval tier (cesym.verify.intervals) against arb: every rule encloses the exact
value, narrowly enough to decide float32 rounding, and undecidable points come out undecided."""

import math

import flint
import numpy as np
import pytest
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from cesym.define import primitives as P
from cesym.verify import intervals as I

x = sp.Symbol("x", real=True)


def _points(seed: int, n: int = 300) -> np.ndarray:
    """float32 values over the whole range (and float64 ones), signs mixed, with 0, ±1 and the
    edges of the float32 range."""
    rng = np.random.default_rng(seed)
    mags = 10.0 ** rng.uniform(-44, 38, n)
    xs = (rng.choice([-1.0, 1.0], n) * mags).astype(np.float32).astype(np.float64)
    more = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-45, -1e-45, 3.4028235e38, -3.4028235e38, 88.7, -88.7, 709.0, -745.0])
    small = rng.normal(size=n) * 10.0 ** rng.uniform(-3, 1.5, n)  # where the functions bend
    return np.concatenate([xs, more, small])


def _arb(e: sp.Basic, v: float):
    """The exact value of ``e`` at x = v as an arb ball at 300 bits (None where undefined)."""
    flint.ctx.prec = 300
    try:
        def ev(t):
            if t == x:
                return flint.arb(v)
            if t.is_Number:
                return flint.arb(sp.Rational(t).p) / flint.arb(sp.Rational(t).q) if t.is_Rational else flint.arb(str(sp.Float(t, 80)))
            if isinstance(t, sp.Add):
                out = ev(t.args[0])
                for a in t.args[1:]:
                    out = out + ev(a)
                return out
            if isinstance(t, sp.Mul):
                out = ev(t.args[0])
                for a in t.args[1:]:
                    out = out * ev(a)
                return out
            if isinstance(t, sp.Pow):
                b, n = t.args
                return ev(b) ** int(n) if n.is_Integer else ev(b) ** ev(n)
            a = [ev(s) for s in t.args]
            f = {
                sp.exp: lambda u: u.exp(), sp.log: lambda u: u.log(), sp.tanh: lambda u: u.tanh(), sp.Abs: abs,
                log1p: lambda u: u.log1p(), expm1: lambda u: u.expm1(),
                P.Softplus: lambda u: u.exp().log1p() if u < 0 else u + (-u).exp().log1p(),
                P.Sigmoid: lambda u: 1 / (1 + (-u).exp()),
                P.LogCosh: lambda u: abs(u) + (-2 * abs(u)).exp().log1p() - flint.arb(2).log() if abs(u) > 1 else (2 * (u / 2).sinh() ** 2).log1p(),
                P.Log1pDiff: lambda u, w: u.log1p() - w.log1p(),
                P.SigmoidDiff: lambda a, b, u: a / (1 + (-u).exp()) - b / (1 + u.exp()),
            }[type(t)]
            return f(*a)

        return ev(e)
    finally:
        flint.ctx.prec = 53


EXPRS = [
    P.Softplus(x), P.Softplus(-x), P.Sigmoid(x), P.Sigmoid(-x), P.LogCosh(x), sp.exp(x), sp.tanh(x), expm1(x),
    sp.log(sp.Abs(x)), log1p(sp.Abs(x)), x**2 / 2, 1 / x, (x - 3) ** 3, P.Log1pDiff(sp.Abs(x), sp.Rational(3, 7)),
    sp.Rational(1, 3) * P.Softplus(x) + sp.Rational(2, 3) * P.Softplus(-x),
    # σ(x) - 1/2 (tight near 0, where the two sigmoids' intervals are wider than the value) and -σ(-x)
    P.SigmoidDiff(sp.Rational(1, 2), sp.Rational(1, 2), x), P.SigmoidDiff(0, 1, x),
]


@pytest.mark.parametrize("expr", EXPRS, ids=str)
def test_encloses_the_exact_value(expr):
    xs = _points(EXPRS.index(expr))
    with np.errstate(all="ignore"):
        lo, hi = I.evaluate(expr, {x: I.point(xs)})
    decided = 0
    for v, a, b in zip(xs.tolist(), lo.tolist(), hi.tolist()):
        if math.isnan(a):
            continue  # undecided: handed on, never wrong
        t = _arb(expr, v)
        if t is None or not t.is_finite():
            continue
        flint.ctx.prec = 300
        assert flint.arb(a) <= t + t.rad() and t - t.rad() <= flint.arb(b), (expr, v, a, b, t)
        mag = abs(float(t.mid()))
        if 1e-300 < mag < 1e300:
            assert (b - a) <= 2.0**-38 * mag + 1e-300, (expr, v, a, b)  # narrow: decides float32 rounding
            decided += 1
    flint.ctx.prec = 53
    assert decided > len(xs) // 3


def test_piecewise_is_three_valued():
    """A condition the interval cannot settle leaves the hull of the live branches; a settled
    one takes its branch alone."""
    huber = sp.Piecewise((x**2 / 2, sp.Abs(x) <= 1), (sp.Abs(x) - sp.Rational(1, 2), True))
    xs = np.array([0.5, 1.0, 3.0, -2.0])
    lo, hi = I.evaluate(huber, {x: I.point(xs)})
    exact = [0.125, 0.5, 2.5, 1.5]
    assert np.all(lo <= exact) and np.all(exact <= hi) and np.all(hi - lo < 1e-14)
    wide = (np.array([0.9]), np.array([1.1]))  # straddles the kink: both branches live
    lo, hi = I.evaluate(huber, {x: wide})
    assert lo[0] <= 0.9**2 / 2 and hi[0] >= 0.6


def test_undefined_points_are_undecided():
    lo, hi = I.evaluate(sp.log(x), {x: I.point(np.array([-1.0, 2.0]))})
    assert np.isnan(lo[0]) and np.isnan(hi[0]) and not np.isnan(lo[1])
    lo, hi = I.evaluate(1 / x, {x: (np.array([-1.0]), np.array([1.0]))})  # 1/[−1, 1]
    assert np.isnan(lo[0])


def test_nan_or_takes_its_second_form_where_the_first_decides_nothing():
    """NanOr((x - y)/x, 1 - y/x zero-guarded): the first form's enclosure where it has one, the
    second's at x = y = 0 (0/0), and both enclose the exact value."""
    y = sp.Symbol("y")
    e = P.NanOr((x - y) / x, P.XMul(y, -1 / x) + 1)
    xs, ys = np.array([0.5, 2.0, 0.0, 3.0]), np.array([0.25, 2.0, 0.0, 1.0])
    lo, hi = I.evaluate(e, {x: I.point(xs), y: I.point(ys)})
    exact = [0.5, 0.0, 1.0, 2.0 / 3.0]
    assert np.all(lo <= exact) and np.all(exact <= hi) and np.all(hi - lo < 1e-15)


def test_rounds_to_decides_only_where_both_ends_agree():
    one = np.float64(1.0)
    mid = 1.0 + 2.0**-24  # halfway between the float32 numbers 1 and 1 + 2^-23
    lo = np.array([one, mid - 2.0**-50, mid + 2.0**-50, np.nan])
    hi = np.array([one, mid + 2.0**-50, mid + 2.0**-49, 1.0])
    r, ok = I.rounds_to(lo, hi)
    assert ok.tolist() == [True, False, True, False]
    assert r[2] == np.float32(1.0 + 2.0**-23)


def test_unknown_function_is_refused():
    with pytest.raises(I.NoIntervalRule, match="gamma"):
        I.evaluate(sp.gamma(x), {x: I.point(np.array([1.5]))})


def test_the_libm_allowance_is_measured():
    """NumPy's exp, log, log1p, expm1 and tanh on this machine err far less than the allowance
    the rules assume (an exhaustive run measures this before it starts)."""
    worst = I.libm_check(600)
    assert max(worst.values()) <= I.LIBM_RELATIVE / 16, worst


def test_cancellation_is_handed_over():
    """Where the value cancels (exp(x) - 1 at x = 1e-12: the terms' errors are 10^12 times the
    value's ulp, as a huge κ), the interval is honest and wide, and undecided: the point goes to
    the ball reference. The stable form of the same quantity decides."""
    xs = np.array([1e-12, -3e-9, 0.5])
    lo, hi = I.evaluate(sp.exp(x) - 1, {x: I.point(xs)})
    _, ok = I.rounds_to(lo, hi)
    assert ok.tolist() == [False, False, True]
    assert np.all(lo <= np.expm1(xs)) and np.all(np.expm1(xs) <= hi)
    lo, hi = I.evaluate(expm1(x), {x: I.point(xs)})
    assert I.rounds_to(lo, hi)[1].all()


@pytest.mark.parametrize("expr", [x * x / 2, x - sp.Rational(1, 2), (x - 3) ** 3, x * sp.Rational(3, 10) + 7, 1 / x, P.Softplus(x)], ids=str)
def test_exact_ends_enclose_and_keep_exact_results_points(expr):
    """Within exact_ends, every enclosure still holds the exact value (arb), and a sum or product
    that float64 computes exactly is a point: x²/2 and x - 1/2 of a float32 x always are."""
    xs = _points(7)
    with np.errstate(all="ignore"), I.exact_ends():
        lo, hi = I.evaluate(expr, {x: I.point(xs)})
    for v, a, b in zip(xs.tolist(), lo.tolist(), hi.tolist()):
        if math.isnan(a):
            continue
        t = _arb(expr, v)
        if t is None or not t.is_finite():
            continue
        flint.ctx.prec = 300
        assert flint.arb(a) <= t + t.rad() and t - t.rad() <= flint.arb(b), (expr, v, a, b, t)
        flint.ctx.prec = 53
    if expr in (x * x / 2, x - sp.Rational(1, 2)):
        # float32 inputs whose result float64 holds exactly: x² (48 bits) above the underflow,
        # x - 1/2 where x has no bits below 2^-28 and is below 2^52
        f32 = (xs == xs.astype(np.float32)) & (np.abs(xs) < 1e15) & (np.abs(xs) > (1e-100 if expr == x * x / 2 else 2.0**-4))
        assert np.all(lo[f32] == hi[f32]) and f32.sum() > 50


def test_exact_ends_are_this_threads_only():
    import threading

    seen = []
    with I.exact_ends():
        t = threading.Thread(target=lambda: seen.append(I._EXACT.get()))
        t.start()
        t.join()
        assert I._EXACT.get() is True
    assert seen == [False] and I._EXACT.get() is False
