"""The symbolic primitives: exact derivatives, elementary forms, and the row chain rule."""

import mpmath
import numpy as np
import pytest
import sympy as sp

from cesym.kernels import _runtime as rt
from cesym.define.primitives import (
    C,
    CrossRest,
    Elem,
    Hypot1,
    Hypot1m1,
    HypotShare,
    Log1pSquare,
    SigmoidDiff,
    Log1mexp,
    LogExpm1,
    LogWeight,
    LogCosh,
    Relu,
    LogSumExp,
    NegLogNormalized,
    NegLogSoftmax,
    Norm2,
    Pow1p,
    Powm1,
    RestSum,
    RowMax,
    RowSum,
    ShareCrossRest,
    Sigmoid,
    Softplus,
    SoftmaxRest,
    Scaled,
    ScaledExp,
    SumSquares,
    expand_row_primitives,
    to_elementary,
)
from cesym.define.evaluate import compile_row_exprs
from cesym.rewrite.rules import check_equivalent
from cesym.verify.ulps import ulp_error

x = Elem("x")
t = Elem("t")
z = Elem("z")


@pytest.mark.parametrize("f", [Sigmoid, Softplus])
def test_fdiff_is_the_derivative_of_the_elementary_form(f):
    xs = sp.Symbol("xs", real=True)
    exact = sp.diff(f(xs).elementary(), xs)
    assert sp.simplify(to_elementary(sp.diff(f(xs), xs)) - exact) == 0


def test_row_chain_rule_matches_explicit_differentiation():
    """diff through RowSum equals plain SymPy on the expanded row (n = 3)."""
    v = RowSum(t * sp.log(RowSum(sp.exp(z)))) - RowSum(t * z) + RowSum(z**2) * RowSum(t) / C
    g = sp.diff(v, z)
    n = 3
    from cesym.define.evaluate import expand_row, indexed

    explicit = expand_row(v, n)
    for j in range(n):
        lhs = expand_row(g, n, j)
        rhs = sp.diff(explicit, indexed(z, j))
        assert sp.simplify(lhs - rhs) == 0


_nu = sp.Symbol("nu")
_SHARE = ShareCrossRest(t, z, SoftmaxRest(z) ** 2 + NegLogSoftmax(z), sp.Lambda(_nu, 1 + 2 * sp.exp(-_nu)))


@pytest.mark.parametrize("prim", [NegLogSoftmax(z), NegLogNormalized(z), CrossRest(t, z), _SHARE])
def test_row_primitives_expand_to_their_definition(prim):
    check_equivalent(prim, expand_row_primitives(prim))  # evaluates both at random rows
    assert not expand_row_primitives(prim).has(type(prim))


def test_restsum_is_rowsum_minus_element():
    check_equivalent(RestSum(sp.exp(z)), RowSum(sp.exp(z)) - sp.exp(z))


def test_sum_squares_is_the_sum_of_squares_and_fdiff_its_derivative():
    """SumSquares(f) = Σ_c f_c² (its elementary form, compared in 60 digits on random rows), and
    SymPy's derivative through ``fdiff`` is that of the elementary form (n = 3, explicitly)."""
    from cesym.define.evaluate import expand_row, indexed

    f = sp.exp(x) - t
    check_equivalent(SumSquares(f), RowSum(f**2))
    assert to_elementary(SumSquares(f)) == RowSum(f**2)
    g = sp.diff(SumSquares(f), x)
    explicit = expand_row(RowSum(f**2), 3)
    for j in range(3):
        assert sp.simplify(expand_row(g, 3, j) - sp.diff(explicit, indexed(x, j))) == 0


def test_sum_squares_rule_is_found_by_the_rewriter():
    """The value rule turns RowSum(f**2) into SumSquares(f) (checked as an identity), not the
    square of an expression holding a row reduction (SymPy's chain rule through fdiff would miss
    the reduction's own derivative); the penalty's derivation gets it and keeps its gradient."""
    from cesym.define.loss import N, load_all
    from cesym.derive.gradients import derive
    from cesym.rewrite.rules import SUM_SQUARES, apply_rules, value_rules

    lam = sp.Symbol("lam", real=True)
    out, applied = apply_rules(lam * RowSum(x**2) / N, value_rules())
    assert out == lam * SumSquares(x) / N and applied == [SUM_SQUARES]
    shifted = RowSum((x - RowMax(x)) ** 2)
    assert SUM_SQUARES(shifted) == shifted
    d = derive(load_all()["activity_penalty"][0])
    h = d.loss.prediction
    assert d.value == lam * SumSquares(h) / N and [r.name for r in d.value_rules] == ["sum-squares"]
    assert sp.simplify(d.grad - 2 * lam * h / N) == 0  # 2λh/N, as before


# --- the runtime primitives against mpmath, in ulps -------------------------------------------


def _ulps(computed, exact):
    exact = np.array([float(v) for v in exact])
    return np.max(np.abs(computed - exact) / np.spacing(np.maximum(np.abs(exact), np.finfo(float).tiny)))


def test_runtime_sigmoid_softplus():
    xs = np.concatenate([np.linspace(-40, 40, 801), -np.logspace(-300, 2.8, 200), np.logspace(-300, 2.8, 200)])
    with mpmath.workdps(40):
        sig = [1 / (1 + mpmath.exp(-mpmath.mpf(v))) for v in xs]
        spl = [mpmath.log1p(mpmath.exp(mpmath.mpf(v))) for v in xs]
    assert _ulps(rt.sigmoid(xs), sig) <= 2
    assert _ulps(rt.softplus(xs), spl) <= 2


def test_runtime_neg_log_softmax_dominant_class():
    zz = np.array([[0.0, -300.0, -310.0], [5.0, 5.0, -1e4], [1e6, 1e6 - 1, 1e6 - 2]])
    out = rt.neg_log_softmax(zz)
    with mpmath.workdps(60):
        for r, row in enumerate(zz):
            # lse(z) - z_j written as log1p: 60 digits of lse(z) - z_j would still give 0 here
            exact = [
                mpmath.log1p(mpmath.fsum(mpmath.exp(mpmath.mpf(c) - mpmath.mpf(v)) for k, c in enumerate(row) if k != j))
                for j, v in enumerate(row)
            ]
            assert _ulps(out[r], exact) <= 3


def test_runtime_rest_sum_and_neg_log_normalized():
    p = np.array([[1 - 2**-52, 2**-60, 1e-300], [0.25, 0.25, 0.5], [1e-308, 1.0, 3.0]])
    with mpmath.workdps(60), np.errstate(over="ignore"):
        for r, row in enumerate(p):
            S = mpmath.fsum(mpmath.mpf(v) for v in row)
            rest = [S - mpmath.mpf(v) for v in row]
            assert _ulps(rt.rest_sum(p)[r], rest) <= 2
            assert _ulps(rt.neg_log_normalized(p)[r], [mpmath.log(S / mpmath.mpf(v)) for v in row]) <= 3


def test_runtime_xmul_convention():
    """0·b = 0 for any b, from an array of weights or a scalar one (γ); a nonzero scalar keeps
    b's infinities and NaN (its shortcut skips the repair pass)."""
    b = np.array([np.inf, -np.inf, np.nan, 3.0, -0.0])
    with np.errstate(invalid="ignore"):
        assert np.array_equal(rt.xmul(np.array([0.0, 2.0]), np.array([np.inf, 3.0])), [0.0, 6.0])
        assert np.array_equal(rt.xmul(0.0, b), [0.0, 0.0, 0.0, 0.0, 0.0])
        assert np.array_equal(rt.xmul(np.zeros(5), b), rt.xmul(0.0, b))
        assert np.array_equal(rt.xmul(2.0, b), [np.inf, -np.inf, np.nan, 6.0, -0.0], equal_nan=True)
        assert np.array_equal(rt.xmul(2.0, b), rt.xmul(np.full(5, 2.0), b), equal_nan=True)


@pytest.mark.parametrize("a", [0.05, 1e-3, 1e6, 1e300, 3e-300])
def test_runtime_sum_squares_over_the_whole_range(a):
    """a·Σx² within the contract's value bound 4 + 4κ ulps (κ = Σ|x ∂f/∂x|/|f| = 2) against
    mpmath, wherever the result is a float: squares past the largest float (3e154 in a row
    of 1s: the issue's inf), squares in the subnormals, rows mixing both ends, results
    that round into the subnormals; exact 0 for zeros, inf and NaN kept."""
    from cesym.verify.ulps import ulp_error

    rows = np.array(
        [
            [3e154, 1.0, 1.0, 1.0],
            [1e-155, 1e-156, 1e-157, 1e-160],
            [1e-160, -1e-161, 1e-162, 1e-170],
            [1e200, -1e150, 1e-150, 3.0],
            [-1e300, 1e-300, 0.0, 0.0],
            [1.7e308, 1.7e308, 1.0, 0.0],
            [4e-324, 0.0, 0.0, 4e-324],
            [1.5, -2.5, 3.0, 0.1],
            [0.0, 0.0, 0.0, 0.0],
        ]
    )
    with np.errstate(over="ignore"):  # a = 1e300 on the row of 1.7e308: the result overflows
        out = rt.sum_squares(rows, a)
    with mpmath.workprec(300):
        for r, row in enumerate(rows):
            exact = mpmath.mpf(a) * mpmath.fsum(mpmath.mpf(v) ** 2 for v in row)
            assert ulp_error(out[r, 0], exact, np.float64) <= 12, (row, a, out[r, 0], exact)
    assert out[-1, 0] == 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        special = rt.sum_squares(np.array([[np.inf, 1.0], [1e-200, -np.inf], [np.nan, 1e200], [np.nan, 1e-200]]), a)
    assert special[0, 0] == np.inf and special[1, 0] == np.inf and np.all(np.isnan(special[2:]))


# --- the primitives of the hand-written shapes (issue 10): derivatives and runtime ----------------


@pytest.mark.parametrize(
    "prim",
    [
        lambda: Log1mexp(-x),
        lambda: LogExpm1(x + t),
        lambda: LogWeight(x * t),
        lambda: LogCosh(x - t),
        lambda: Pow1p(-x, t),
        lambda: Powm1(x, t),
        lambda: Relu(1 - t * x),
        lambda: Hypot1(x / t),
        lambda: Hypot1m1(x - t),
        lambda: HypotShare(x * t),
        lambda: Log1pSquare(x / t),
        lambda: SigmoidDiff(t, 1 - t * x, x * t),
    ],
    ids=["log1mexp", "log_expm1", "log_weight", "log_cosh", "pow1p", "powm1", "relu", "hypot1", "hypot1m1", "hypot_share", "log1p_square", "sigmoid_diff"],
)
def test_new_fdiff_is_the_derivative_of_the_elementary_form(prim):
    """d/dx of each primitive (through ``fdiff``) equals SymPy's derivative of its elementary
    form, compared in 60 digits at random rows (both arguments of the two-argument ones)."""
    f = prim()
    for s in (x, t):
        if f.has(s):
            check_equivalent(to_elementary(sp.diff(f, s)), sp.diff(to_elementary(f), s))


def test_norm2_and_logsumexp_derivatives_through_the_row():
    """Norm2 and LogSumExp are row-level: their derivatives (fdiff; the reduction form) are
    those of the expanded row sqrt(Σ x²) and log Σ e^z, checked element by element (n = 3)."""
    from cesym.define.evaluate import expand_row, indexed

    for f in (Norm2(x - t), LogSumExp(2 * z)):
        v = to_elementary(f)
        for s in f.atoms(Elem) - {t}:
            g = sp.diff(f, s)
            for j in range(3):
                assert sp.simplify(expand_row(to_elementary(g), 3, j) - sp.diff(expand_row(v, 3), indexed(s, j))) == 0


def test_sum_squares_and_norm2_of_an_argument_that_holds_reductions():
    """SumSquares and Norm2 of a unit vector's difference (x/‖x‖ inside the reduction) move with
    every element of the row through ‖x‖: the row chain rule, not fdiff's element alone (the
    rewriter's Σ(x/‖x‖ - w)² had been differentiated as if ‖x‖ were the element's own)."""
    from cesym.define.evaluate import expand_row, indexed

    for f in (SumSquares(Scaled(x, Norm2(x)) - t), Norm2(x / Norm2(x) - t), SumSquares(x - RowSum(x) / 3)):
        v = to_elementary(f)
        g = sp.diff(f, x)
        for j in range(3):
            assert sp.simplify(expand_row(to_elementary(g), 3, j) - sp.diff(expand_row(v, 3), indexed(x, j))) == 0, (f, j)


def _ulp_max(computed, exact):
    from cesym.verify.ulps import ulp_error

    return max(ulp_error(c, e, np.float64) for c, e in zip(np.ravel(computed), exact))


def test_runtime_log1mexp():
    """log(1 - e^u) within 2 ulps on both sides of the switch at -log 2 and at the ends (u = -1e-300:
    log|u|, where 1 - exp(u) is 0; u = -40: -e^-40, where log(-expm1(u)) is 0)."""
    u = np.concatenate([-np.logspace(-300, 2.8, 300), [-np.log(2) + 1e-16, -np.log(2) - 1e-16, -40.0, -1e5]])
    with mpmath.workprec(2000):
        exact = [mpmath.log(-mpmath.expm1(mpmath.mpf(v))) for v in u]
    assert _ulp_max(rt.log1mexp(u), exact) <= 2


def test_runtime_log_expm1():
    """log(e^u - 1) within 2 ulps on both sides of the switch at u = 1 and at the ends (u = 1e-300:
    log u, where log(exp(u) - 1) is -inf; u = 800 and 1e5: about u, where it is inf), away from
    u = log 2 where the value crosses 0 (there within 2 + 4κ ulps, κ = 1/(log(e^u - 1)·(1 - e^-u))·u)."""
    u = np.concatenate([np.logspace(-300, 2.8, 300), [1 - 1e-16, 1 + 1e-16, 800.0, 1e5, np.log(2) * (1 + 1e-9)]])
    with mpmath.workprec(2000):
        exact = [mpmath.log(mpmath.expm1(mpmath.mpf(v))) for v in u]
        kappa = [abs(mpmath.mpf(v) / (e * -mpmath.expm1(-mpmath.mpf(v)))) for v, e in zip(u, exact)]
    from cesym.verify.ulps import ulp_error

    got = rt.log_expm1(u)
    assert all(ulp_error(c, e, np.float64) <= 2 + 4 * k for c, e, k in zip(got, exact, kappa))
    with np.errstate(all="ignore"):
        assert np.isnan(rt.log_expm1(np.array([-1.0]))).all() and rt.log_expm1(np.array([0.0]))[0] == -np.inf


def test_runtime_log_weight():
    """log w within 1 ulp from the smallest subnormal to the largest float, and -inf at 0
    (no warning: the zero weight of a weighted log-sum-exp)."""
    w = np.concatenate([np.logspace(-323, 308, 300), [5e-324, 1.0 - 2**-53, 1.0]])
    with mpmath.workprec(2000):
        exact = [mpmath.log(mpmath.mpf(v)) for v in w]
    assert _ulp_max(rt.log_weight(w), exact[:-1] + [0.0]) <= 1
    with np.errstate(all="raise"):
        assert rt.log_weight(np.array([0.0]))[0] == -np.inf


def test_runtime_log_cosh():
    """log cosh u within 2.5 ulps from 1e-300 (u²/2) through the switch at |u| = 1 to 1e200
    (|u| - log 2). The worst is just above |u| = 1, where (|u| - log 2) + log1p(e^{-2|u|}) =
    0.307 + 0.127 = 0.434: the rounded log 2 (half an ulp of 0.69), the difference's and the
    sum's roundings and log1p's come to about 2.2 ulps of 0.434 by the standard model (2.05
    measured with NumPy's AVX2 exp; ulps against the exact value, not against its rounding)."""
    u = np.concatenate([np.logspace(-300, 200, 400), -np.logspace(-10, 3, 50), [1 - 2**-53, 1.0, 710.5]])
    with mpmath.workprec(2000):
        exact = [mpmath.log(mpmath.cosh(mpmath.mpf(v))) for v in u]
    assert _ulp_max(rt.logcosh(u), exact) <= 2.5


def test_runtime_hypot1_hypot1m1_hypot_share():
    """√(1 + u²), √(1 + u²) - 1 and u/√(1 + u²) within 2 ulps from 1e-300 (u²/2 for the
    difference, where the plain form gives 0) to 1e300 (|u|, where u² overflows), and their
    limits at ±inf (inf, inf, ±1)."""
    u = np.concatenate([np.logspace(-300, 300, 500), -np.logspace(-20, 20, 60), [1e-8, 1.0, 1.3e154, 1.4e154]])
    with mpmath.workprec(2200):
        m = [mpmath.mpf(v) for v in u]
        h = [mpmath.sqrt(1 + v * v) for v in m]
        exact1, exact2, exact3 = h, [v * v / (hv + 1) for v, hv in zip(m, h)], [v / hv for v, hv in zip(m, h)]
    assert _ulp_max(rt.hypot1(u), exact1) <= 2
    assert _ulp_max(rt.hypot1m1(u), exact2) <= 2
    assert _ulp_max(rt.hypot_share(u), exact3) <= 2
    inf = np.array([np.inf, -np.inf])
    assert np.array_equal(rt.hypot1(inf), [np.inf, np.inf]) and np.array_equal(rt.hypot1m1(inf), [np.inf, np.inf])
    assert np.array_equal(rt.hypot_share(inf), [1.0, -1.0]) and np.isnan(rt.hypot1m1(np.array([np.nan])))[0]


def test_runtime_log1p_square():
    """log(1 + u²) within 2 ulps from 1e-300 (u², where log1p(u·u) is exact in its digits) to
    1e300 (2·log|u|, where u² overflows), across |u| = 1 where the two forms meet; inf at ±inf."""
    u = np.concatenate([np.logspace(-300, 300, 500), -np.logspace(-3, 3, 200), [1.0, -1.0, np.nextafter(1.0, 2.0), 1.3e154, 1.4e154]])
    with mpmath.workprec(2200):
        exact = [mpmath.log1p(mpmath.mpf(v) ** 2) for v in u]
    assert _ulp_max(rt.log1p_square(u), exact) <= 2
    assert np.array_equal(rt.log1p_square(np.array([np.inf, -np.inf])), [np.inf, np.inf])
    assert np.isnan(rt.log1p_square(np.array([np.nan])))[0]


def test_runtime_sigmoid_diff():
    """a·σ(x) - b·σ(-x) within 3 ulps where the weights are equal (tanh(x/2)·a, from x = 5e-324,
    where the two sigmoids are 1/2 each, to 700), or one of them 0 (a sigmoid: -b·e^{-50} at
    x = 50, which the tanh form would lose), across |x| = 1 where the forms meet; for other
    weights within 3 + 3κ ulps, κ = (|a|σ(x) + |b|σ(-x))/|a·σ(x) - b·σ(-x)| (the weights' own
    roundings, each a relative 2^-53, are the whole of the condition). The limits at ±inf: a and -b."""
    xs = np.concatenate([np.logspace(-323.3, 2.845, 400), [1.0, np.nextafter(1.0, 0.0), 2.2250738585072014e-308, 5e-324]])
    xs = np.concatenate([xs, -xs])
    E = np.exp(-np.abs(xs))
    pairs = ((0.5, 0.5), (1 / 3, 1 / 3), (0.0, 1.0), (1.0, 0.0), (0.7, 0.3), (0.25, 2.0), (-0.5, -0.5), (1e-170, 1e-170))
    # the gate's edge (b/a = 1/3 takes the two terms, just inside it tanh) and weights of either sign
    pairs += ((0.3, 0.1), (0.3, np.nextafter(0.1, 1.0)), (1.0, 3.0), (-0.7, -0.3), (-0.5, 0.5))
    for a, b in pairs:
        got = rt.sigmoid_diff(a, b, xs, E)
        # per element: the same numbers whatever the other elements' weights select
        mixed = rt.sigmoid_diff(np.where(np.arange(xs.size) % 2, a, 1.0), np.where(np.arange(xs.size) % 2, b, 0.0), xs, E)
        assert np.array_equal(mixed[1::2], got[1::2], equal_nan=True), (a, b)
        with mpmath.workprec(2400):
            A, B = mpmath.mpf(a), mpmath.mpf(b)
            sig = [(1 / (1 + mpmath.exp(-mpmath.mpf(v))), 1 / (1 + mpmath.exp(mpmath.mpf(v)))) for v in xs]
            exact = [A * s - B * r for s, r in sig]
            kappa = [float((abs(A) * s + abs(B) * r) / abs(e)) if e != 0 else np.inf for (s, r), e in zip(sig, exact)]
        from cesym.verify.ulps import ulp_error

        for v, c, e, k in zip(xs, got, exact, kappa):
            bound = 3.0 if a == b or a * b == 0 else 3.0 + 3.0 * k
            assert ulp_error(c, e, np.float64) <= bound, (a, b, v, c, e)
    assert rt.sigmoid_diff(0.25, 0.5, np.array([np.inf, -np.inf]), np.zeros(2)).tolist() == [0.25, -0.5]
    assert np.isnan(rt.sigmoid_diff(0.5, 0.5, np.array([np.nan]), np.array([np.nan])))[0]


def test_runtime_pow1p_powm1():
    """(1 + x)^y and x^y - 1 within 4 + 4κ ulps (κ = |y·log(1 + x)|, |y·log x|·x^y/|x^y - 1|: the
    exponent's rounding); the zero-guarded ends: (1 + x)^0 = 1 at x = -1, 0^q - 1 = -1, x^0 - 1 = 0."""
    xs = np.array([1e-300, 1e-16, 2**-53, 0.25, 0.5, 1 - 2**-53, 1.0])
    with mpmath.workprec(3000):
        for y in (0.05, 0.5, 2.5, 1e16):
            got1 = rt.pow1p(-xs[:-1], y)
            got2 = rt.powm1(xs, y)
            for a, g1 in zip(xs[:-1], got1):
                e = mpmath.power(1 - mpmath.mpf(a), y)
                k = abs(y * mpmath.log1p(-mpmath.mpf(a)))
                assert _ulp_max([g1], [e]) <= 4 + 4 * float(k), (a, y)
            for a, g2 in zip(xs, got2):
                e = mpmath.power(mpmath.mpf(a), y) - 1
                k = 0 if e == 0 else abs(y * mpmath.log(a)) * mpmath.power(a, y) / abs(e)
                assert _ulp_max([g2], [e]) <= 4 + 4 * float(k), (a, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        assert rt.pow1p(np.array([-1.0, -0.5]), 0.0).tolist() == [1.0, 1.0]
        assert rt.powm1(np.array([0.0, 0.5]), 0.3)[0] == -1.0
        assert rt.powm1(np.array([0.0, 0.5]), 0.0).tolist() == [0.0, 0.0]


NORM_ROWS = np.array(
    [
        [1e200, -1e200, 1e200, 0.0],
        [1e-200, -1e-200, 1e-200, 5e-324],
        [1e-300, 3e-300, 0.0, 0.0],
        [1.7e308, 1.7e308, 1.0, 0.0],
        [3.0, 4.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
)


def _norm_exact(row):
    with mpmath.workprec(300):
        return mpmath.sqrt(mpmath.fsum(mpmath.mpf(v) ** 2 for v in row))


def test_runtime_norm2_over_the_whole_range():
    """sqrt(Σx²) within 2 ulps where the squares overflow (1e200: the plain form's inf) or
    underflow (1e-200: the plain form's 0) and where the norm itself is past the largest float
    (1.7e308·√2: inf)."""
    with np.errstate(over="ignore", under="ignore"):
        out = rt.norm2(NORM_ROWS)[:, 0]
    assert _ulp_max(out, [_norm_exact(r) for r in NORM_ROWS]) <= 2
    assert out[3] == np.inf and out[-1] == 0.0


def test_runtime_norm2_in_pieces():
    """A long row in pieces (cesym.kernels._pieces): the norm and x/‖x‖ from the combined scaled
    partials of sum_squares, within 2 ulps of the row's truth, for rows of 1e200s and 1e-200s."""
    from cesym.kernels import _blocks

    rng = np.random.default_rng(10)
    rows = np.concatenate([rng.standard_normal((1, 1000)) * 1e200, rng.standard_normal((1, 1000)) * 1e-200,
                           rng.standard_normal((1, 1000))])
    size = _blocks.BLOCK_ELEMENTS
    _blocks.BLOCK_ELEMENTS = 128
    try:
        value, grad = _blocks.run_blocks(
            lambda v: (rt.norm2(v), v / rt.norm2(v)), [rows], (), 3, 1000,
            [("row", np.dtype(np.float64)), ("elem", np.dtype(np.float64))], pieces=True,
        )
    finally:
        _blocks.BLOCK_ELEMENTS = size
        _blocks.set_num_threads(None)
    exact = [_norm_exact(r) for r in rows]
    assert _ulp_max(value.reshape(-1), exact) <= 2
    with mpmath.workprec(300):
        for r, n in zip(range(3), exact):
            assert _ulp_max(grad[r, :20], [mpmath.mpf(v) / n for v in rows[r, :20]]) <= 3


def test_runtime_pow_shift():
    """x^(y-1) without rounding y - 1: within 2 ulps where x**(y - 1) is |log x| ulps off."""
    from cesym.kernels import _runtime as rt

    x = np.array([1e-300, 3e-200, 0.5, 0.999, 7.0, 1e300, 5e-324, 1e-310])  # subnormals: x^y normal
    for y in (1e-6, 0.05, 0.3, 0.999999):
        with mpmath.workdps(60):
            exact = [float(mpmath.mpf(float(a)) ** (mpmath.mpf(y) - 1)) for a in x]
        assert _ulp_max(rt.pow_shift(x, y), exact) <= 2
    with mpmath.workdps(60):
        far = float(mpmath.mpf(1e-300) ** (mpmath.mpf(1e-6) - 1))
    assert _ulp_max(np.array([1e-300]) ** (1e-6 - 1), [far]) > 100  # what it avoids: the rounded exponent
    with np.errstate(divide="ignore"):
        assert rt.pow_shift(np.array([0.0]), 0.5)[0] == np.inf and rt.pow_shift(np.array([5e-324]), 0.5)[0] > 0


def test_rest_sum_of_a_row_carried_by_a_negative_element():
    """Σ_{c≠j} v_c where the element carrying the row is negative: the largest in magnitude,
    not the largest, is left out first (by the argmax, (v_k + r) - v_j cancelled: 70 ulps in the
    cosine's gradient, 0 where the rest is 1e-265)."""
    from cesym.verify.ulps import ulp_error

    rows = np.array([[-0.204, 3.13e-4, 1e-9], [-0.96, 9.1e-265, 0.0], [2.5, -1e6, 3e-3]])
    out = rt.rest_sum(rows)
    with mpmath.workprec(4000):
        for r, row in enumerate(rows):
            for j in range(rows.shape[1]):
                exact = mpmath.fsum(mpmath.mpf(v) for c, v in enumerate(row) if c != j)
                assert ulp_error(out[r, j], exact, np.float64) <= 2, (row, j, out[r, j], exact)


def test_row_max_differentiates_as_reduce_max():
    """d/dp_j max_c f(p_c) is f'(p_j) shared equally among the tied maxima (MaxShare), and the
    expanded row's MaxN differentiates the same way (the reference's route)."""
    from cesym.define.evaluate import compile_row_exprs
    from cesym.define.primitives import MaxShare

    y, p = Elem("y"), Elem("p")
    v = RowMax((1 - y) * p**2)
    g = sp.diff(v, p)
    assert g == MaxShare((1 - y) * p**2) * 2 * p * (1 - y)
    f = compile_row_exprs([g], [y, p], [], 3, per_element=[True])
    got = [float(a) for a in f([[0, 0, 1], [2.0, -2.0, 5.0]])]
    assert got == [2.0, -2.0, 0.0]  # p² ties at ±2: half of 2p each; the labelled element is out
    assert list(rt.max_share(np.array([[4.0, 4.0, 0.0]]))[0]) == [0.5, 0.5, 0.0]


def test_runtime_log1p_diff():
    """log(1 + a) - log(1 + b) within 2 ulps across magnitudes (both signs of the result, ratios
    near 1 and far from it, the edge -1 and infinity), where the plain difference of the two
    log1p loses digits (1e300 against 5e299: hundreds of ulps)."""
    from cesym.verify.ulps import ulp_error

    rng = np.random.default_rng(20261130)
    a = np.concatenate([10 ** rng.uniform(-300, 300, 500), rng.uniform(-1, 1, 500), [18050.0, 1e300, 5e299, 0.0]])
    b = np.concatenate([10 ** rng.uniform(-300, 300, 500), rng.uniform(-1, 1, 500), [6772.0, 0.0, 1e300, 1e300]])
    out = rt.log1p_diff(a, b)
    with mpmath.workprec(3000):
        exact = [mpmath.log1p(mpmath.mpf(x)) - mpmath.log1p(mpmath.mpf(y)) for x, y in zip(a, b)]
    assert max(ulp_error(o, e, np.float64) for o, e in zip(out, exact)) <= 2
    plain = np.log1p(a[-3:-2]) - np.log1p(a[-2:-1])  # log(2) as 690.78 - 690.08
    with mpmath.workprec(3000):
        ln2 = mpmath.log1p(mpmath.mpf(1e300)) - mpmath.log1p(mpmath.mpf(5e299))
    assert ulp_error(plain[0], ln2, np.float64) > 100  # the difference the primitive avoids
    assert ulp_error(rt.log1p_diff(a[-3:-2], a[-2:-1])[0], ln2, np.float64) <= 1
    edge = rt.log1p_diff(np.array([-1.0, np.inf, np.nan, 3.0]), np.array([2.0, 1.0, 0.0, -1.0]))
    assert edge[0] == -np.inf and edge[1] == np.inf and np.isnan(edge[2]) and edge[3] == np.inf


def test_runtime_weighted_row_sum():
    """a·Σv: the very numbers of a*row_sum(v) on ordinary rows; where the sum overflows and the
    mean does not (terms near the largest float), the mean to a few ulps; inf only where the
    result is; NaN and ±inf terms as in the plain product."""
    from cesym.verify.ulps import ulp_error

    rng = np.random.default_rng(7)
    v = rng.standard_normal((50, 7)) * 10.0 ** rng.uniform(-300, 300, (50, 1))
    a = 1 / 7
    assert np.array_equal(rt.weighted_row_sum(v, a), a * rt.row_sum(v))
    big = np.array([[1.5e308, 1.2e308, -1e300], [1.7e308, 1.7e308, 1.7e308], [1e308, np.inf, 1.0], [np.nan, 1e308, 1e308]])
    out = rt.weighted_row_sum(big, 1 / 3)
    with mpmath.workprec(200):
        for r in (0, 1):
            exact = mpmath.fsum(mpmath.mpf(x) for x in big[r]) / 3
            assert ulp_error(out[r, 0], exact, np.float64) <= 4, (r, out[r, 0], exact)
    assert out[2, 0] == np.inf and np.isnan(out[3, 0])
    assert rt.weighted_row_sum(big[1:2], 2.0)[0, 0] == np.inf  # the product itself overflows


def test_share_cross_rest_runtime_pairs_match_the_definition():
    """The runtime's ShareCrossRest (g = R² + ν, g' = 2R·e^{-ν} + 1 with R = 1 - e^{-ν}) against
    the definition in 60 digits, on rows of close logits under equal weights (the first form
    cancels every digit at 1e-12; the pairs are recomputed) and on rows where it does not.

    Bound: 16 ulps of Σ_c |pair_c| (each pair t_c g_c e_j - t_j g_j e_c is computed from g,
    itself a few roundings off, in about six roundings, then three are summed; measured 5.8);
    the sum of the pairs may cancel as the mathematics does (z_j between the others), which is
    the condition of the result, not the runtime's. Computed as written, the first rows were
    1e12 times that bound off."""
    rng = np.random.default_rng(7)
    mpmath.mp.dps = 60
    for scale in (1e-12, 1e-6, 1e-2, 3.0):
        for _ in range(40):
            zr = rng.normal(size=4) * scale
            tr = np.full(4, 0.25) if scale < 1 else rng.uniform(0, 1, 4)
            zm = [mpmath.mpf(float(v)) for v in zr]
            S = sum(mpmath.exp(v) for v in zm)
            nu = [mpmath.log(S) - v for v in zm]
            g = [(1 - mpmath.exp(-n)) ** 2 + n for n in nu]
            e = [mpmath.exp(v - max(zm)) for v in zm]
            pairs = [[tr[c] * g[c] * e[j] - tr[j] * g[j] * e[c] for c in range(4) if c != j] for j in range(4)]
            Z, T = zr[None, :], tr[None, :]
            m, E, Ssum, s = rt.softmax_parts(Z)
            nu_f = m - Z + np.log1p(s)
            R = -np.expm1(-nu_f)
            got = rt.cross_rest(T, Z, E, s, Ssum, R**2 + nu_f, lambda v: 2 * -np.expm1(-v) * np.exp(-v) + 1)
            for j in range(4):
                bound = 16 * 2.0**-53 * float(sum(abs(p) for p in pairs[j]))
                assert abs(float(got[0, j]) - float(sum(pairs[j]))) <= bound, (scale, j, got[0, j], sum(pairs[j]))


def _softmax_grad_mp(t, z):
    """(softmax(z)·Σt - t) at 3000 bits (the inputs are exact binary numbers)."""
    with mpmath.workprec(3000):
        Z = [mpmath.mpf(float(v)) for v in z]
        T = [mpmath.mpf(float(v)) for v in t]
        m = max(Z)
        E = [mpmath.exp(v - m) for v in Z]
        S = mpmath.fsum(E)
        return [float(e / S * mpmath.fsum(T) - tj) for e, tj in zip(E, T)]


@pytest.mark.parametrize(
    "t, z",
    [
        # soft labels next to the softmax, the other labels far below t_j: the recomputation's
        # t_j·(r - k) with r = T/t_j rounded to 1 kept none of their digits (-4.9e-222 where the
        # gradient is -1.3e-232; float32 logits: 60% off at 1e-16)
        ([4.919131052431605e-222, 0.9999999999999998], [-510.75616103513175, -1.1754022900264416]),
        ([1.0, 1.0237330731396876e-12], [15.115674018859863, -12.491734504699707]),
        ([2.063892684253026e-23, 0.0, 0.0, 0.0, 1.0], [346.51666259765625, -1701.5811767578125, -1297.7318115234375, -76.48006439208984, 398.75152587890625]),
    ],
)
def test_cross_rest_recomputation_keeps_labels_far_below_the_labelled_class(t, z):
    from cesym import kernels as K

    t, z = np.array([t]), np.array([z])
    got = K.softmax_cross_entropy_with_logits_grad(labels=t, logits=z)[0]
    want = _softmax_grad_mp(t[0], z[0])
    for g, w in zip(got, want):
        # κ of these elements is 1e5-1e13 (the labels cancel the softmax): within 1e-4 relative is
        # far inside 8 + 4κ ulps, and the rounded r left 40-100% errors
        assert abs(g - w) <= 1e-4 * abs(w) or (w == 0 and g == 0), (got, want)


@pytest.mark.parametrize("C, ls", [(3, 0.5), (3, 0.1), (7, 0.5), (10, 0.1), (10, 0.3)])
def test_cross_rest_recomputation_of_uniform_smoothed_labels(C, ls):
    """All labels 0 with smoothing: t = ls/C in every class, inexact for these C. T - k·t_j was
    rt - (k - 1)·t_j, which rounds T: 1e-17·T left against an exact 0, times e_j, was all of the
    gradient's digits at the logit between the others (3e4 relative at C = 3). The differences
    t_c - t_j are summed instead (0 here). Bound as above: these elements' κ is about 1e10
    (first-order terms of 1e-11 cancel to 1e-21), so 1e-4 relative is far inside 8 + 4κ ulps."""
    from cesym import kernels as K

    y = np.zeros((1, C))
    z = np.linspace(-1e-10, 1e-10, C)[None, :] * np.resize([1.0, -1.0], C)
    got = K.categorical_crossentropy_grad(y, z, from_logits=True, label_smoothing=ls)[0]
    want = _softmax_grad_mp(np.full(C, ls / C), z[0])
    for g, w in zip(got, want):
        assert abs(g - w) <= 1e-4 * abs(w), (got, want)


def test_scaled_exp_fdiff_and_elementary_form():
    u, a = sp.Symbol("u", real=True), sp.Symbol("a", real=True)
    for s in (u, a):
        assert sp.simplify(to_elementary(sp.diff(ScaledExp(u, a), s)) - sp.diff(a * sp.exp(u), s)) == 0


@pytest.mark.parametrize("u, factors", [
    (710.0, (0.25,)),  # e^710 overflows, e^710/4 = 5.6e307 does not
    (-1000.0, (1e200, 1e200)),  # 1e200² overflows, 1e400·e^-1000 = 5.1e-35 does not
    (-745.0, (3.0, 1e10)),  # e^-745 is subnormal, the product is 1.5e-313·1e10·3: normal
    (709.0, (-0.5, 2.0, 1e-300)),  # a negative factor: the sign kept
    (-30.0, (2.5, 7.0)),  # in range: the plain product
])
def test_runtime_scaled_exp_stays_in_range(u, factors):
    """a·e^u within 2 ulps where the product is a normal float, whatever e^u and the factors do;
    the plain product, bit for bit, where every part is in range."""
    got = float(rt.scaled_exp(np.array([u]), *[np.array([f]) for f in factors])[0])
    with mpmath.workdps(50):
        want = mpmath.exp(u)
        for f in factors:
            want *= mpmath.mpf(f)
    assert ulp_error(got, want, np.float64) <= 2, (got, want)
    if -700 < u < 700 and all(1e-150 < abs(f) < 1e150 for f in factors):
        assert got == float(np.prod(factors) * np.exp(u))


def test_runtime_scaled_exp_zero_factor_and_infinite_exponents():
    u = np.array([800.0, np.inf, -np.inf, 800.0, np.nan])
    a = np.array([0.0, 2.0, 2.0, np.inf, 2.0])
    out = rt.scaled_exp(u, a)
    assert out[0] == 0.0  # 0·e^800: 0, the term's limit, not 0·inf
    assert out[1] == np.inf and out[2] == 0.0 and out[3] == np.inf and np.isnan(out[4])


def test_runtime_inf_or_takes_the_second_form_at_infinities_only():
    a = np.array([1.0, np.inf, -np.inf, np.nan])
    calls = []

    def b():
        calls.append(1)
        return np.array([5.0, 6.0, 7.0, 8.0])

    assert np.array_equal(rt.inf_or(a, b), np.array([1.0, 6.0, 7.0, np.nan]), equal_nan=True)
    assert calls == [1]
    assert rt.inf_or(np.array([1.0, 2.0]), lambda: 1 / 0) is not None  # not called where nothing overflows


def test_runtime_pow1pm1_and_pow1p_at_small_and_negative_bases():
    """(1 + x)^m - 1 as expm1(m·log1p(x)) keeps a small x (1 - (1 - 1e-18)^3 = 3e-18, where the
    plain form is 0); an integer m takes a base below 0 (|1 + x|^m with its sign), near -1 too.
    Tolerance: 2 ulps, plus the rounded exponent v = m·log|1 + x| (two roundings, 2^-52|v|
    absolute) passed on by e^v: 2|v| ulps of (1 + x)^m, which is (1 + x)^m/((1 + x)^m - 1) times
    as many ulps of the difference (3.0 ulps at x = 2, m = 3 on an AVX2 libm)."""
    from cesym.kernels import _runtime as rt

    x = np.array([-1e-18, 1e-10, -0.5, -1.0, -1.5, -3.0, -2.0 + 2.0**-40, 2.0])
    for m in (2, 3, 0.5):
        got, pw = rt.pow1pm1(x, m), rt.pow1p(x, m)
        with mpmath.workdps(80):
            for a, g, q in zip(x, got, pw):
                b = 1 + mpmath.mpf(a)
                if b < 0 and m != int(m):
                    assert np.isnan(g) and np.isnan(q)
                    continue
                # the exponent m·log1p(x) is rounded (twice): e^v passes its error on times |v|
                v = abs(m * mpmath.log(abs(b))) if b != 0 else 0
                assert ulp_error(g, b**m - 1, np.float64) <= 2 + 2 * v * (1 + abs(1 / (b**m - 1)) if b**m != 1 else 1), (a, m, g)
                assert ulp_error(q, b**m, np.float64) <= 2 + 2 * v, (a, m, q)
    assert rt.pow1pm1(np.array([1.0]), 0)[0] == 0


def test_runtime_expm1mx():
    """e^u - 1 - u within 2 ulps: the series below |u| = 1/2 (expm1(u) - u loses -log2|u| bits:
    all of them at u = 1e-8), expm1(u) - u above; e^u - 1 - u past e^709 is inf, as it is."""
    from cesym.kernels import _runtime as rt

    u = np.array([1e-300, -1e-8, 1e-8, 0.3, -0.4999, 0.5, -0.5, 2.0, -40.0, 700.0, 0.0])
    got = rt.expm1mx(u)
    with mpmath.workdps(80):
        for a, g in zip(u, got):
            assert ulp_error(g, mpmath.expm1(mpmath.mpf(a)) - mpmath.mpf(a), np.float64) <= 2, (a, g)
    assert rt.expm1mx(np.array([710.0]))[0] == np.inf and rt.expm1mx(np.array([-np.inf]))[0] == np.inf
