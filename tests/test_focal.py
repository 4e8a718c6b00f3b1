"""Focal losses where other libraries fail: logits ±100 with hard labels and γ = 0.5 or 2 (NaN
gradients in optax issue 1267 and kornia issue 2115: (1 - p_t)^γ is 0^γ there, and its
derivative γ·0^(γ-1) = inf times 0), and the probabilities' edges p = 0, 1."""

import mpmath
import numpy as np
import pytest

from cesym import kernels
from cesym.contract import losses_by_name
from cesym.reference import RowReference
from cesym.ulps import ulp_error

X = np.array([[100.0, -100.0, -100.0, 100.0, 3.0]])
Y = np.array([[1.0, 0.0, 1.0, 0.0, 1.0]])


# the contract's base bounds (cesym.contract), without the 4κ allowance: these points are well conditioned
VALUE_ULPS, GRAD_ULPS = 4, 8


def _reference(name, labels, pred, params):
    ref = RowReference(losses_by_name()[name], len(pred))
    return ref.value_and_grad(labels, pred, params)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_focal_at_logits_100(gamma, dtype):
    v, g = kernels.binary_focal_crossentropy_value_and_grad(Y.astype(dtype), X.astype(dtype), gamma=gamma, from_logits=True)
    assert np.all(np.isfinite(g))
    fv, fg = _reference("binary_focal_crossentropy.logits", Y[0], X[0], [0.0, gamma])
    assert ulp_error(float(v[0]), fv, dtype) <= VALUE_ULPS
    for j in range(5):  # value-sized gradients and the tiny ones (2e-66 at x = 100, γ = 0.5)
        assert ulp_error(float(g[0, j]), fg[j], dtype) <= GRAD_ULPS, (j, g[0, j], fg[j])


def test_binary_focal_probability_edges():
    """A perfect prediction has gradient 0 for γ > 0 (and the cross-entropy's ∓1/C at γ = 0); a
    label weight on a zero probability makes the loss +inf and its gradient -inf (p = 0) or
    +inf (p = 1): the pole outgrows the log beside it, which IEEE arithmetic makes NaN."""
    y = np.array([[1.0, 0.0, 1.0, 0.0, 0.3, 0.3]])
    p = np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 1.0]])
    for gamma in (0.5, 2.0):
        v, g = kernels.binary_focal_crossentropy_value_and_grad(y, p, gamma=gamma)
        assert v[0] == np.inf
        np.testing.assert_array_equal(g, [[0.0, 0.0, -np.inf, np.inf, -np.inf, np.inf]])
    g0 = kernels.binary_focal_crossentropy_grad(y[:, :2], p[:, :2], gamma=0.0)
    np.testing.assert_array_equal(g0, [[-0.5, 0.5]])


def test_keras_binary_focal_nan_is_its_algorithm():
    """Keras's gradient at logit 100, label 1, γ = 0.5 is NaN (σ(100) rounds to 1, 1 - p_t to 0,
    and pow's derivative 0.5·0^-0.5 = inf meets σ's derivative 0); the model of its algorithm
    can return NaN there (its interval is all reals) and so explains it, while cesym's kernel
    is finite."""
    pytest.importorskip("tensorflow")
    from cesym.keras_calls import keras_kernel
    from cesym.keras_model import contains, envelope
    from cesym.registry import case

    c = case("binary_focal_crossentropy", from_logits=True, apply_class_balancing=False)
    params = {"gamma": 0.5, "label_smoothing": 0.0}
    y, x = np.array([[1.0, 0.0]], np.float32), np.array([[100.0, 3.0]], np.float32)
    g = keras_kernel(c)(y, x, params, grad=True)
    assert np.isnan(g[0, 0])
    _, model = envelope(c, y[0], x[0], params, np.float32)
    assert contains(model[0], g[0, 0], np.float32)
    assert np.all(np.isfinite(kernels.binary_focal_crossentropy_grad(y, x, gamma=0.5, from_logits=True)))
