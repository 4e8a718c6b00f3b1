"""The gradient through the log-share (``cesym.derive.gradients.log_share_gradient``): a label-weighted
function of ν = -log softmax(z) (or of a renormalised probability) differentiated through ν.

It fires on a loss it has never seen (a poly-1 softmax loss written as people write it), leaves
the cross-entropy to its own rules, and its kernels keep the digits that the derivative written
out loses: uniform labels on logits near 0 (every digit of e_j - e_c and g_c - g_j), and a
dominant class of a row of tiny scale (R^γ underflows, R^γ/S does not).
"""

from __future__ import annotations

import importlib.util
import textwrap

import numpy as np
import pytest
import sympy as sp

from cesym import cli
from cesym.define.loss import load_family
from cesym.derive.gradients import derive, log_share_gradient
from cesym.define.primitives import Elem, NegLogSoftmax, RowSum, ScaledPow, ShareCrossRest
from cesym.verify.reference import RowReference
from cesym.verify.ulps import ulp_error

POLY1 = textwrap.dedent(
    r'''
    r"""Poly-1 softmax cross-entropy (Leng et al., 2022): -Σ t log r + ε Σ t (1 - r), r = softmax(z)."""

    from sympy import Symbol, exp, log

    from cesym.define.declare import AXIS, Keyword, Public, Variant
    from cesym.define.loss import Loss
    from cesym.define.primitives import Elem, RowSum

    y = Elem("y")
    z = Elem("z")
    eps = Symbol("epsilon", real=True)
    r = exp(z) / RowSum(exp(z))

    LOSSES = [Loss(family="poly1_softmax", variant="logits", title="poly-1 softmax cross-entropy",
                   value=-RowSum(y * log(r)) + eps * RowSum(y * (1 - r)), prediction=z, label=y,
                   params=(eps,), param_ranges={eps: (-1.0, 2.0)})]

    PUBLIC = [Public(name="poly1_softmax", summary="Poly-1 softmax cross-entropy, summed over ``axis``.",
                     variants=(Variant("logits", domain="real"),), labels="distribution",
                     keywords=(Keyword("epsilon", 1.0, "real", (-1.0, 2.0), doc="ε: the weight of 1 - r"), AXIS))]
    '''
)


@pytest.fixture(scope="module")
def poly1(tmp_path_factory):
    d = tmp_path_factory.mktemp("poly1")
    (d / "src").mkdir()
    (d / "src" / "poly1_softmax.py").write_text(POLY1)
    assert cli.main(["generate", "--derivations", str(d / "src"), "--out", str(d / "out")]) == 0
    spec = importlib.util.spec_from_file_location("user_poly1", d / "out" / "poly1_softmax.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (loss,) = load_family(d / "src" / "poly1_softmax.py").losses
    return mod, loss


def test_fires_on_a_loss_it_has_never_seen(poly1):
    _, loss = poly1
    d = derive(loss)
    assert [r.name for r in d.grad_rules] == ["log-share-chain"]
    assert d.grad.has(ShareCrossRest)


def test_leaves_the_cross_entropy_to_its_rules():
    z, t = Elem("z"), Elem("t")
    assert log_share_gradient(RowSum(t * NegLogSoftmax(z)), z) is None  # g = 1: CrossRest
    assert log_share_gradient(RowSum(t * z**2), z) is None  # not a function of the log-share


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "labels, logits",
    [([0.5, 0.5], [3e-12, -1e-12]), ([1 / 3] * 3, [2e-9, -1e-9, 8e-10]), ([0.2, 0.8, 0.0], [40.0, -3.0, 2.0])],
)
def test_user_kernel_within_the_base_bounds(poly1, labels, logits, dtype):
    """8 ulps (the contract's base for a gradient element; these rows are well conditioned):
    written out, the first row's gradient kept no digit in float64 (its exact value is about
    the logits' difference, 4e-12, against terms of 1/2)."""
    mod, loss = poly1
    y, z = np.array([labels], dtype), np.array([logits], dtype)
    v, g = mod.poly1_softmax_value_and_grad(y, z, epsilon=1.0)
    fv, fg = RowReference(loss, len(logits)).value_and_grad([float(a) for a in y[0]], [float(a) for a in z[0]], [1.0])
    assert ulp_error(float(v[0]), fv, dtype) <= 4
    for j in range(len(logits)):
        assert ulp_error(float(g[0, j]), fg[j], dtype) <= 8, (j, g[0, j], fg[j])


def test_scaled_pow_keeps_the_quotient_in_range():
    """R^2/S for R = 7.5e-166, S = 2.2e-21: R^2 underflows to 0, the quotient is 2.6e-310."""
    from cesym.kernels import _runtime as rt

    R, S = 7.55e-166, 2.2e-21
    got = rt.scaled_pow(np.array([R]), 2.0, np.array([1 / S]))[0]
    import mpmath

    exact = mpmath.mpf(R) ** 2 / mpmath.mpf(S)
    assert ulp_error(got, exact, np.float64) <= 1  # a subnormal: its rounding and 1/S's
    assert rt.scaled_pow(np.array([0.5]), 2.5, np.array([3.0]))[0] == 0.5**2.5 * 3.0  # in range: the plain product
    assert sp.diff(ScaledPow(sp.Symbol("x"), 2, 3), sp.Symbol("x")).doit() != 0
