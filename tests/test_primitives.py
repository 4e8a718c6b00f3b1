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
    RowSum,
    Sigmoid,
    Softplus,
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
