"""The symbolic primitives: exact derivatives, elementary forms, and the row chain rule."""

import mpmath
import numpy as np
import pytest
import sympy as sp

from cesym.kernels import _runtime as rt
from cesym.primitives import (
    C,
    CrossRest,
    Elem,
    NegLogNormalized,
    NegLogSoftmax,
    RestSum,
    RowMax,
    RowSum,
    Sigmoid,
    Softplus,
    SumSquares,
    expand_row_primitives,
    to_elementary,
)
from cesym.evaluate import compile_row_exprs
from cesym.rewrite import check_equivalent

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
    from cesym.evaluate import expand_row, indexed

    explicit = expand_row(v, n)
    for j in range(n):
        lhs = expand_row(g, n, j)
        rhs = sp.diff(explicit, indexed(z, j))
        assert sp.simplify(lhs - rhs) == 0


@pytest.mark.parametrize("prim", [NegLogSoftmax(z), NegLogNormalized(z), CrossRest(t, z)])
def test_row_primitives_expand_to_their_definition(prim):
    check_equivalent(prim, expand_row_primitives(prim))  # evaluates both at random rows
    assert not expand_row_primitives(prim).has(type(prim))


def test_restsum_is_rowsum_minus_element():
    check_equivalent(RestSum(sp.exp(z)), RowSum(sp.exp(z)) - sp.exp(z))


def test_sum_squares_is_the_sum_of_squares_and_fdiff_its_derivative():
    """SumSquares(f) = Σ_c f_c² (its elementary form, compared in 60 digits on random rows), and
    SymPy's derivative through ``fdiff`` is that of the elementary form (n = 3, explicitly)."""
    from cesym.evaluate import expand_row, indexed

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
    from cesym.define import N, load_all
    from cesym.derive import derive
    from cesym.rewrite import SUM_SQUARES, apply_rules, value_rules

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
    with np.errstate(invalid="ignore"):
        assert np.array_equal(rt.xmul(np.array([0.0, 2.0]), np.array([np.inf, 3.0])), [0.0, 6.0])


@pytest.mark.parametrize("a", [0.05, 1e-3, 1e6, 1e300, 3e-300])
def test_runtime_sum_squares_over_the_whole_range(a):
    """a·Σx² within the contract's value bound 4 + 4κ ulps (κ = Σ|x ∂f/∂x|/|f| = 2) against
    mpmath, wherever the result is a float: squares past the largest float (3e154 in a row
    of 1s: the issue's inf), squares in the subnormals, rows mixing both ends, results
    that round into the subnormals; exact 0 for zeros, inf and NaN kept."""
    from cesym.ulps import ulp_error

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
