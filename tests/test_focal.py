"""Focal losses where other libraries fail: logits ±100 with hard labels and γ = 0.5 or 2 (NaN
gradients in optax issue 1267 and kornia issue 2115: (1 - p_t)^γ is 0^γ there, and its
derivative γ·0^(γ-1) = inf times 0), and the probabilities' edges p = 0, 1."""

import mpmath
import numpy as np
import pytest

from cesym import kernels
from cesym.verify.contract import losses_by_name
from cesym.verify.reference import RowReference
from cesym.verify.ulps import ulp_error

X = np.array([[100.0, -100.0, -100.0, 100.0, 3.0]])
Y = np.array([[1.0, 0.0, 1.0, 0.0, 1.0]])


# the contract's base bounds (cesym.verify.contract), without the 4κ allowance: these points are well conditioned
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
    from cesym.keras.calls import keras_kernel
    from cesym.keras.model import contains, envelope
    from cesym.verify.registry import case

    c = case("binary_focal_crossentropy", from_logits=True, apply_class_balancing=False)
    params = {"gamma": 0.5, "label_smoothing": 0.0}
    y, x = np.array([[1.0, 0.0]], np.float32), np.array([[100.0, 3.0]], np.float32)
    g = keras_kernel(c)(y, x, params, grad=True)
    assert np.isnan(g[0, 0])
    _, model = envelope(c, y[0], x[0], params, np.float32)
    assert contains(model[0], g[0, 0], np.float32)
    assert np.all(np.isfinite(kernels.binary_focal_crossentropy_grad(y, x, gamma=0.5, from_logits=True)))


# --- categorical focal cross-entropy -------------------------------------------------------------

CFC = "categorical_focal_crossentropy"


def _cfc_check(labels, pred, dtype, from_logits, ls=0.0, alpha=0.25, gamma=2.0):
    """The public kernel's value and gradient within the contract's base bounds of the reference."""
    y, x = np.array([labels], dtype), np.array([pred], dtype)
    v, g = kernels.categorical_focal_crossentropy_value_and_grad(
        y, x, alpha=alpha, gamma=gamma, from_logits=from_logits, label_smoothing=ls)
    name = CFC + (".logits" if from_logits else ".probs")
    fv, fg = _reference(name, [float(a) for a in y[0]], [float(a) for a in x[0]], [ls, alpha, gamma])
    assert ulp_error(float(v[0]), fv, dtype) <= VALUE_ULPS, (v, fv)
    for j in range(len(pred)):
        assert ulp_error(float(g[0, j]), fg[j], dtype) <= GRAD_ULPS, (j, g[0, j], fg[j])
    return v, g


@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_categorical_focal_at_logits_100(gamma, dtype):
    """A class winning by 200: 1 - r is e^-200 (0 in Keras's clipped float32 arithmetic), its
    γ-th power and the derivative γ(1 - r)^(γ-1)·r(1 - r) finite and right."""
    _, g = _cfc_check([1.0, 0.0, 0.0], [100.0, -100.0, 3.0], dtype, True, gamma=gamma)
    assert np.all(np.isfinite(g))
    _cfc_check([0.0, 1.0, 0.0], [100.0, -100.0, 3.0], dtype, True, gamma=gamma)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "labels, logits, ls",
    [
        ([1.0, 0.0], [4.67e-13, 1.76e-11], 1.0),  # uniform labels, logits near 0 (sampled by verify)
        ([0.25, 0.25, 0.25, 0.25], [3e-9, -1e-9, 2e-9, 5e-10], 0.0),
        ([1.0, 1.0, 0.0], [2.0, 2.0 + 2**-40, -1.0], 0.0),  # two labelled classes, close logits
        ([0.5, 0.5, 0.0], [1e-3, -2e-3, 0.7], 0.0),
    ],
)
def test_categorical_focal_close_logits_keep_their_digits(labels, logits, ls, dtype):
    """Uniform label weights on close logits: the gradient is a difference of nearly equal terms
    (t_c g_c r_j against t_j g_j r_c) whose exact value is proportional to the logits'
    differences, well conditioned (κ of a few). Computed as written, float64 kept about
    log2(1/|z|) bits: 33 float32 ulps at the first row. The runtime takes close pairs as
    e_j(g_c - g_j) + g_j e_c expm1(z_j - z_c), g_c - g_j by Gauss–Legendre on g'."""
    _cfc_check(labels, logits, dtype, True, ls=ls, gamma=1.0)
    _cfc_check(labels, logits, dtype, True, ls=ls, gamma=0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_categorical_focal_probabilities_of_any_scale(dtype):
    """The gradient on probabilities as Σ_{c≠j} t_c g_c/S - t_j g_j (1 - r_j)/p_j: no product of
    two small numbers (the derivative written out multiplied p_j·S², 0 for p of scale 1e-106)."""
    tiny = 1e-30 if dtype == np.float32 else 6.26e-106
    small = 1e-37 if dtype == np.float32 else 1.56e-221
    _cfc_check([1.0, 0.0], [tiny, small], dtype, False)
    _cfc_check([0.3, 0.7], [tiny, small], dtype, False, ls=0.1)
    _cfc_check([0.2, 0.3, 0.5], [0.1, 0.3, 0.6], dtype, False, gamma=0.5)
    if dtype == np.float64:
        # a dominant class of share 1 - 1.3e-161: its R^2 is subnormal (3 digits), R^2/S is not
        _cfc_check([1.0, 0.0], [5.3151462177326366e-30, 6.757011307753212e-191], dtype, False)


def test_categorical_focal_probability_edges():
    """A zero probability under a positive label: value +inf, gradient -inf there; under a zero
    label the limit (finite); a perfect prediction has gradient 0 for γ > 0."""
    v, g = kernels.categorical_focal_crossentropy_value_and_grad(np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 0.5, 0.5]]))
    assert v[0] == np.inf and g[0, 0] == -np.inf and np.all(np.isfinite(g[0, 1:]))
    v, g = kernels.categorical_focal_crossentropy_value_and_grad(np.array([[0.0, 1.0, 0.0]]), np.array([[0.0, 0.5, 0.5]]))
    assert np.isfinite(v[0]) and np.all(np.isfinite(g))
    # 0 is the domain's edge: its value is the limit from inside, as the contract takes it
    from cesym.verify.extended import ExtendedReference
    ext = ExtendedReference(RowReference(losses_by_name()[CFC + ".probs"], 3), "probability")
    fv, fg = ext.value_and_grad([0.0, 1.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.25, 2.0])
    assert ulp_error(float(v[0]), fv, np.float64) <= VALUE_ULPS
    assert all(ulp_error(float(g[0, j]), fg[j], np.float64) <= GRAD_ULPS for j in range(3)), (g, fg)
    v, g = kernels.categorical_focal_crossentropy_value_and_grad(np.array([[0.0, 1.0]]), np.array([[0.0, 1.0]]))
    assert v[0] == 0.0 and np.all(g == 0.0)


def test_categorical_focal_recomputed_pairs_in_pieces():
    """A row in pieces (blocks of 4 doubles) whose every gradient element cancels (uniform labels,
    logits near 0) is evaluated once more as one piece for the recomputation: within the
    contract's base of the reference, as the short row is (not bit for bit: the pieces' sums are
    summed in another order)."""
    from cesym.kernels import _blocks

    rng = np.random.default_rng(1)
    y, z = np.full((3, 9), 1 / 9), rng.normal(size=(3, 9)) * 1e-10
    whole = kernels.categorical_focal_crossentropy_grad(y, z, from_logits=True, gamma=1.0)
    old = _blocks.BLOCK_ELEMENTS
    _blocks.BLOCK_ELEMENTS = 4
    try:
        pieces = kernels.categorical_focal_crossentropy_grad(y, z, from_logits=True, gamma=1.0)
    finally:
        _blocks.BLOCK_ELEMENTS = old
    for r in range(3):
        _, fg = _reference(CFC + ".logits", list(y[r]), list(z[r]), [0.0, 0.25, 1.0])
        for g in (whole, pieces):
            assert all(ulp_error(float(g[r, j]), fg[j], np.float64) <= GRAD_ULPS for j in range(9)), (r, g[r], fg)
