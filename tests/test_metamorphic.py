"""Metamorphic relations: shift invariance of softmax, BCE symmetry, sparse = categorical(one-hot)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from cesym import kernels as K

from conftest import SEED

SOFTMAX_FORMS = [
    lambda y, z: K.categorical_crossentropy(y, z, from_logits=True),
    lambda y, z: K.softmax_cross_entropy_with_logits(labels=y, logits=z),
]
SOFTMAX_GRADS = [
    lambda y, z: K.categorical_crossentropy_grad(y, z, from_logits=True),
    lambda y, z: K.softmax_cross_entropy_with_logits_grad(labels=y, logits=z),
]


def _shiftable_logits(rng, dtype, offset, shape):
    """Logits on a grid fine enough to matter and coarse enough that z + offset is exact."""
    step = float(np.spacing(np.array(offset, dtype=dtype))) * 2  # z + offset stays exact
    return (rng.integers(-400, 400, shape) * step).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [1e6, 1e8])
@pytest.mark.parametrize("form", range(2))
def test_logit_shift_invariance(dtype, offset, form):
    rng = np.random.default_rng([SEED, int(offset), np.dtype(dtype).itemsize])
    z = _shiftable_logits(rng, dtype, offset, (64, 5))
    zs = (z + dtype(offset)).astype(dtype)
    assert np.array_equal(zs - dtype(offset), z)  # the shift is exact
    y = np.eye(5, dtype=dtype)[rng.integers(0, 5, 64)]
    a, b = SOFTMAX_FORMS[form](y, z), SOFTMAX_FORMS[form](y, zs)
    assert np.all(np.isfinite(b))
    assert np.all(np.abs(a - b) <= 2 * np.spacing(np.abs(a)))
    ga, gb = SOFTMAX_GRADS[form](y, z), SOFTMAX_GRADS[form](y, zs)
    assert np.all(np.abs(ga - gb) <= 2 * np.spacing(np.abs(ga)))
    labels = np.argmax(y, axis=-1)
    s_a = K.sparse_categorical_crossentropy(labels, z, from_logits=True)
    s_b = K.sparse_categorical_crossentropy(labels, zs, from_logits=True)
    assert np.all(np.abs(s_a - s_b) <= 2 * np.spacing(np.abs(s_a)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_bce_symmetry(dtype, smoothing):
    """BCE(x, y) = BCE(-x, 1-y) and its gradient flips sign (labels with 1 - y exact)."""
    rng = np.random.default_rng([SEED, np.dtype(dtype).itemsize])
    x = (rng.choice([-1, 1], (50, 4)) * 10 ** rng.uniform(-8, 4, (50, 4))).astype(dtype)
    y = (rng.integers(0, 17, (50, 4)) / 16).astype(dtype)
    f = lambda yy, xx: K.binary_crossentropy(yy, xx, from_logits=True, label_smoothing=smoothing)  # noqa: E731
    g = lambda yy, xx: K.binary_crossentropy_grad(yy, xx, from_logits=True, label_smoothing=smoothing)  # noqa: E731
    assert np.array_equal(f(y, x), f(1 - y, -x))
    assert np.array_equal(g(y, x), -g(1 - y, -x))
    p = (rng.integers(1, 2**20, (50, 4)) / 2**20).astype(dtype)  # 1 - p exact
    fp = lambda yy, pp: K.binary_crossentropy(yy, pp, label_smoothing=smoothing)  # noqa: E731
    gp = lambda yy, pp: K.binary_crossentropy_grad(yy, pp, label_smoothing=smoothing)  # noqa: E731
    assert np.all(np.abs(fp(y, p) - fp(1 - y, 1 - p)) <= 2 * np.spacing(fp(y, p)))
    assert np.all(np.abs(gp(y, p) + gp(1 - y, 1 - p)) <= 2 * np.spacing(np.abs(gp(y, p))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_equals_categorical_of_one_hot(dtype, from_logits):
    rng = np.random.default_rng([SEED, 7])
    pred = rng.uniform(0.001, 1, (40, 6)).astype(dtype) if not from_logits else rng.normal(0, 30, (40, 6)).astype(dtype)
    labels = rng.integers(0, 6, 40)
    onehot = np.eye(6, dtype=dtype)[labels]
    for suffix in ("", "_grad"):
        sp = getattr(K, "sparse_categorical_crossentropy" + suffix)(labels, pred, from_logits=from_logits)
        cc = getattr(K, "categorical_crossentropy" + suffix)(onehot, pred, from_logits=from_logits)
        assert np.array_equal(sp, cc)
        sp2 = getattr(K, "sparse_categorical_crossentropy" + suffix)(labels[:, None], pred, from_logits=from_logits)
        assert np.array_equal(sp, sp2)
    if from_logits:
        assert np.array_equal(
            K.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=pred),
            K.softmax_cross_entropy_with_logits(labels=onehot, logits=pred),
        )


@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_axis_is_moving_the_class_axis(axis):
    rng = np.random.default_rng([SEED, 11])
    z = rng.normal(0, 5, (3, 4, 5))
    y = rng.uniform(0, 1, (3, 4, 5))
    ref = K.categorical_crossentropy(np.moveaxis(y, axis, -1), np.moveaxis(z, axis, -1), from_logits=True)
    assert np.array_equal(K.categorical_crossentropy(y, z, from_logits=True, axis=axis), ref)
    g = K.categorical_crossentropy_grad(y, z, from_logits=True, axis=axis)
    gref = K.categorical_crossentropy_grad(np.moveaxis(y, axis, -1), np.moveaxis(z, axis, -1), from_logits=True)
    assert np.array_equal(g, np.moveaxis(gref, -1, axis))


finite64 = st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False)


@pytest.mark.filterwarnings("ignore::cesym.kernels.SingleClassWarning")  # one class is among the shapes
@pytest.mark.filterwarnings("ignore::cesym.kernels.ProbabilitiesAsLogitsWarning")  # so are logits in [0, 1]
@settings(max_examples=300, deadline=None, derandomize=True)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6)), elements=finite64))
def test_softmax_loss_properties(z):
    """Any finite logits: a non-negative loss (finite unless a difference of logits overflows),
    a gradient summing to 0 over classes for labels summing to 1, entries in [-1, 1]."""
    y = np.eye(z.shape[1])[np.argmin(z, axis=1)]
    v = K.categorical_crossentropy(y, z, from_logits=True)
    assert np.all(v >= 0) and not np.any(np.isnan(v))
    g = K.categorical_crossentropy_grad(y, z, from_logits=True)
    assert np.all(np.isfinite(g)) and np.all(np.abs(g) <= 1)
    assert np.all(np.abs(np.sum(g, axis=1)) <= 4 * np.finfo(np.float64).eps)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6)), elements=finite64),
       st.floats(0, 1))
@pytest.mark.filterwarnings("ignore::cesym.kernels.ProbabilitiesAsLogitsWarning")  # any finite logits: [0, 1] too
def test_bce_logits_properties(x, y0):
    y = np.full_like(x, y0)
    v = K.binary_crossentropy(y, x, from_logits=True)
    assert np.all(v >= 0) and not np.any(np.isnan(v))
    g = K.binary_crossentropy_grad(y, x, from_logits=True)
    assert np.all(np.isfinite(g)) and np.all(np.abs(g) <= 1.0 / x.shape[1] * (1 + 1e-15))
