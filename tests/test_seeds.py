"""Every number the seed posts print, reproduced by the kernels (the mathematics, no clipping)."""

import math

import numpy as np
import pytest

from cesym import kernels as K


def _ulps(a, b):
    a, b = np.asarray(a), np.asarray(b, dtype=np.asarray(a).dtype)
    return float(np.max(np.abs(a - b) / np.spacing(np.abs(b))))


def test_seed002_bce_single():
    """BinaryCrossentropy()(1, 0.3): the mathematics is -ln 0.3 = 1.2039728043259361 (Keras 2 printed
    1.2039724588394165 = float32(-ln(0.3 + 1e-7)); Keras 3 float32 gives 1.2039728164672852)."""
    v = K.binary_crossentropy(np.array([[1.0]]), np.array([[0.3]]))
    assert v.dtype == np.float64 and _ulps(v[0], 1.2039728043259361) <= 1
    v32 = K.binary_crossentropy(np.array([[1.0]], np.float32), np.array([[0.3]], np.float32))
    assert v32[0] == np.float32(1.2039728164672852)  # float32 of -ln float32(0.3), correctly rounded
    assert v32[0] == np.float32(-math.log(float(np.float32(0.3))))


def test_seed002_bce_column_and_batch():
    v = K.binary_crossentropy(np.array([1, 0]).reshape(-1, 1).astype(float), np.array([0.3, 0.7]).reshape(-1, 1))
    assert _ulps(np.mean(v), 1.2039728043259361) <= 2
    p = np.array([[0.3, 0.7], [0.4, 0.6], [0.1, 0.9]])
    y = np.array([[0, 1], [1, 0], [1, 0]], dtype=float)
    v = K.binary_crossentropy(y, p)
    assert np.allclose(v, [0.35667494, 0.91629073, 2.30258509], rtol=0, atol=5e-9)
    assert _ulps(np.mean(v), 1.1918502562689777) <= 4  # the blog's manual value; Keras: 1.1918498277664185


def test_seed002_cce_and_sparse():
    p = np.array([[0.2, 0.1, 0.7], [0.4, 0.3, 0.3], [0.1, 0.8, 0.1]])
    y = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=float)
    assert _ulps(np.mean(K.categorical_crossentropy(y, p)), 1.2877442804195713) <= 4
    assert _ulps(np.mean(K.sparse_categorical_crossentropy(np.array([2, 1, 0]), p)), 1.2877442804195713) <= 4


def test_seed004_losses():
    v = K.binary_crossentropy(np.array([[0], [1]], np.float32), np.array([[0.3], [0.8]], np.float32))
    assert f"{np.mean(v):.4f}" == "0.2899"
    p = np.array([[0.1, 0.6, 0.3], [0.2, 0.7, 0.1]], np.float32)
    y = np.array([[0, 0, 1], [0, 1, 0]], np.float32)
    assert f"{np.mean(K.categorical_crossentropy(y, p)):.4f}" == "0.7803"
    assert f"{np.mean(K.sparse_categorical_crossentropy(np.array([2, 1]), p)):.4f}" == "0.7803"


def test_seed000_plateau_is_ln10():
    """A network whose 10 logits are equal has loss ln 10 = 2.3026 (the plateau of seed 000)."""
    z = np.zeros((4, 10))
    v = K.sparse_categorical_crossentropy(np.array([0, 3, 7, 9]), z, from_logits=True)
    assert np.all(np.abs(v - math.log(10)) <= np.spacing(math.log(10)))
    # the same outputs passed as probabilities (from_logits=False) are renormalised: ln 10 again
    v = K.sparse_categorical_crossentropy(np.array([0, 3, 7, 9]), np.full((4, 10), 3.7))
    assert np.all(np.abs(v - math.log(10)) <= 2 * np.spacing(math.log(10)))


def test_seed000_raw_logits_as_probabilities_is_an_error():
    """Seed 000 passed raw logits with from_logits=False; Keras clips them into [1e-7, 1-1e-7] and
    trains on nonsense (losses of 1e5-1e6). The kernels refuse: negative values are not probabilities."""
    z = np.array([[-3.0, 2.0, 40.0]])
    with pytest.raises(ValueError, match="from_logits=True"):
        K.sparse_categorical_crossentropy(np.array([2]), z, from_logits=False)


def test_seed003_activity_penalty():
    rng = np.random.default_rng(3)
    hs = [rng.standard_normal((8, 4, 4, c)) for c in (8, 16, 32)]
    lam = 0.1
    manual = sum(lam * np.mean(np.sum(np.square(h), axis=(1, 2, 3))) for h in hs)
    total = sum(K.activity_penalty(h, lam) for h in hs)
    assert abs(total - manual) <= 8 * np.spacing(manual)
    g = K.activity_penalty_grad(hs[0], lam)
    assert _ulps(g, 2 * lam * hs[0] / 8) <= 2


def test_seed001_regression_rows():
    """Seed 001's table: mse for regression (a float32 error of 2e19 squares past float32's range,
    the mean of the squares does not: 2e38, where Keras's float32 squares give inf), and binary
    cross-entropy on a soft target, whose minimum at p = y is the target's entropy, not 0."""
    p = np.array([[2e19, 0.0]], np.float32)
    v = K.mean_squared_error(np.zeros((1, 2), np.float32), p)
    assert v.dtype == np.float32 and v[0] == np.float32(float(p[0, 0]) ** 2 / 2)
    t = np.array([[0.3]], np.float32)
    T = float(t[0, 0])
    H = -(T * math.log(T) + (1 - T) * math.log1p(-T))
    assert abs(float(K.binary_crossentropy(t, t)[0]) - H) <= 0.5 * float(np.spacing(np.float32(H)))
    assert K.binary_crossentropy_grad(t, t)[0, 0] == 0


def test_seed001_from_logits_after_sigmoid_never_reaches_zero():
    """BinaryCrossentropy(from_logits=True) after a sigmoid layer reads probabilities as logits: a
    perfect prediction costs softplus(-1) (label 1) or ln 2 (label 0)."""
    v = K.binary_crossentropy(np.array([[1.0], [0.0]]), np.array([[1.0], [0.0]]), from_logits=True)
    assert _ulps(v, [math.log1p(math.exp(-1.0)), math.log(2.0)]) <= 1


def test_seed000_spellings_are_one_loss():
    """loss1 (class), loss2 (partial) and loss3() (nested) of seed 000 are one function of the
    logits: the kernel's value is -log softmax_y, the same for each spelling."""
    z = np.array([[3.0, 1.0, -2.0], [0.5, 2.5, 0.1]])
    v = K.sparse_categorical_crossentropy(np.array([0, 1]), z, from_logits=True)
    expect = [math.log(sum(math.exp(x) for x in row)) - row[k] for row, k in zip(z.tolist(), (0, 1))]
    assert _ulps(v, expect) <= 2
