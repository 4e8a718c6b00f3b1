"""Bad input: TypeError/ValueError naming the argument and what was expected."""

import numpy as np
import pytest

from cesym import kernels as K

P = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
Y = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda f: f["categorical_crossentropy"](Y[:, :2], P), ValueError, r"y_true: shape \(2, 2\) does not match"),
        (lambda f: f["binary_crossentropy"](Y, P.astype(np.int64)), TypeError, r"y_pred: expected a float32 or float64"),
        (lambda f: f["binary_crossentropy"](Y, P > 0.3), TypeError, r"y_pred: expected a float32 or float64"),
        (lambda f: f["binary_crossentropy"](Y, P.astype(np.float16)), TypeError, r"y_pred: .*float16"),
        (lambda f: f["binary_crossentropy"](Y, P, label_smoothing=1.5), ValueError, r"label_smoothing: expected a value in \[0, 1\]"),
        (lambda f: f["categorical_crossentropy"](Y, P, label_smoothing=-0.1), ValueError, r"label_smoothing"),
        (lambda f: f["categorical_crossentropy"](Y, P, label_smoothing=float("nan")), ValueError, r"label_smoothing"),
        (lambda f: f["categorical_crossentropy"](Y, P, axis=2), ValueError, r"axis: 2 is out of range"),
        (lambda f: f["categorical_crossentropy"](Y, P, axis=1.0), TypeError, r"axis: expected an integer"),
        (lambda f: f["sparse_categorical_crossentropy"](np.array([0, 3]), P), ValueError, r"y_true: label 3 is out of range for 3 classes"),
        (lambda f: f["sparse_categorical_crossentropy"](np.array([0, -1]), P), ValueError, r"y_true: label -1 is out of range"),
        (lambda f: f["sparse_categorical_crossentropy"](np.array([0.5, 1.0]), P), ValueError, r"y_true: expected integer class labels"),
        (lambda f: f["sparse_categorical_crossentropy"](np.array([0, 1, 2]), P), ValueError, r"y_true: shape \(3,\) does not fit"),
        (lambda f: f["sparse_categorical_crossentropy"](np.array(["a", "b"]), P), TypeError, r"y_true: expected integer class labels"),
        (lambda f: f["categorical_crossentropy"](np.zeros((2, 0)), np.zeros((2, 0))), ValueError, r"y_pred: the class axis .* is empty"),
        (lambda f: f["binary_crossentropy"](Y, P + 1.0), ValueError, r"y_pred: expected probabilities in \[0, 1\]"),
        (lambda f: f["categorical_crossentropy"](Y, P - 0.5), ValueError, r"y_pred: expected non-negative probabilities"),
        (lambda f: f["categorical_crossentropy"](Y, np.zeros((2, 3))), ValueError, r"y_pred: a row of probabilities sums to 0"),
        (lambda f: f["sparse_softmax_cross_entropy_with_logits"](labels=np.array([[0], [1]]), logits=P), ValueError, r"labels: shape \(2, 1\) does not fit"),
        (lambda f: f["softmax_cross_entropy_with_logits"](labels=Y, logits=P.astype(np.int32)), TypeError, r"logits: expected a float32"),
        (lambda f: f["activity_penalty"](np.ones((2, 3), dtype=np.int64)), TypeError, r"h: expected a float32"),
        (lambda f: f["activity_penalty"](np.ones((2, 3)), lam="a"), TypeError, r"lam: expected a real number"),
        (lambda f: f["activity_penalty"](np.ones((0, 3))), ValueError, r"h: the batch axis"),
    ],
)
def test_bad_input(call, exc, match, grad):
    fns = {
        name: getattr(K, name + ("_grad" if grad else ""))
        for name in (
            "binary_crossentropy",
            "categorical_crossentropy",
            "sparse_categorical_crossentropy",
            "softmax_cross_entropy_with_logits",
            "sparse_softmax_cross_entropy_with_logits",
            "activity_penalty",
        )
    }
    with pytest.raises(exc, match=match):
        call(fns)


def test_nan_propagates_per_row():
    p = P.copy()
    p[0, 1] = np.nan
    v = K.categorical_crossentropy(Y, p)
    assert np.isnan(v[0]) and np.isfinite(v[1])
    z = P.copy()
    z[1, 0] = np.nan
    v = K.categorical_crossentropy(Y, z, from_logits=True)
    assert np.isfinite(v[0]) and np.isnan(v[1])


def test_zero_probability_conventions():
    """0·log 0 = 0; a zero probability under a positive label gives +inf (and a -inf gradient)."""
    p = np.array([[0.0, 0.25, 0.75]])
    assert K.categorical_crossentropy(np.array([[0.0, 0.0, 1.0]]), p)[0] == pytest.approx(-np.log(0.75), rel=1e-15)
    assert K.categorical_crossentropy(np.array([[1.0, 0.0, 0.0]]), p)[0] == np.inf
    g = K.categorical_crossentropy_grad(np.array([[1.0, 0.0, 0.0]]), p)
    assert g[0, 0] == -np.inf
    g = K.categorical_crossentropy_grad(np.array([[0.0, 0.0, 1.0]]), p)
    assert np.all(np.isfinite(g)) and g[0, 0] == pytest.approx(1.0, rel=1e-15)
    b = np.array([[0.0, 1.0]])
    assert np.array_equal(K.binary_crossentropy(np.array([[0.0, 1.0]]), b), [0.0])
    assert np.array_equal(K.binary_crossentropy_grad(np.array([[0.0, 1.0]]), b), [[0.5, -0.5]])
    assert K.binary_crossentropy(np.array([[1.0, 1.0]]), b)[0] == np.inf


def test_ignore_class():
    z = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 0.0]])
    v = K.sparse_categorical_crossentropy(np.array([-1, 0]), z, from_logits=True, ignore_class=-1)
    assert v[0] == 0.0 and v[1] == K.sparse_categorical_crossentropy(np.array([0]), z[1:], from_logits=True)[0]
    g = K.sparse_categorical_crossentropy_grad(np.array([[-1], [0]]), z, from_logits=True, ignore_class=-1)
    assert np.all(g[0] == 0.0)


def test_dtype_in_dtype_out():
    for dt in (np.float32, np.float64):
        p = P.astype(dt)
        for f in (K.categorical_crossentropy, K.categorical_crossentropy_grad, K.binary_crossentropy, K.binary_crossentropy_grad):
            assert f(Y, p).dtype == dt
