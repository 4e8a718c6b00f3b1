"""Accuracy metrics: the seeds' numbers, Keras 3's function forms on ties, and bad input."""

import numpy as np
import pytest

from cesym import kernels as K

from conftest import SEED


def test_seed_numbers():
    p = np.array([[0.2, 0.1, 0.7], [0.4, 0.3, 0.3], [0.1, 0.8, 0.1]])
    assert np.mean(K.categorical_accuracy(np.array([[0, 0, 1], [1, 0, 0], [1, 0, 0]]), p)) == pytest.approx(2 / 3)
    assert f"{100 * np.mean(K.sparse_categorical_accuracy(np.array([2, 0, 0]), p)):.2f}" == "66.67"
    p = np.array([[0.1, 0.6, 0.3], [0.2, 0.7, 0.1]], np.float32)
    assert f"{100 * np.mean(K.categorical_accuracy(np.array([[0, 0, 1], [0, 1, 0]], np.float32), p)):.2f}" == "50.00"
    assert f"{100 * np.mean(K.sparse_categorical_accuracy(np.array([2, 1]), p)):.2f}" == "50.00"


def _tied_inputs(dtype):
    rng = np.random.default_rng([SEED, 5])
    p = rng.choice([0.1, 0.25, 0.5, 0.75], size=(64, 5)).astype(dtype)  # many exact ties, 0.5 = threshold
    p[:4] = 0.5  # all-equal rows
    labels = rng.integers(0, 5, 64)
    onehot = np.eye(5, dtype=dtype)[labels]
    binary = rng.integers(0, 2, (64, 5)).astype(dtype)
    return p, labels, onehot, binary


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_agrees_with_keras_on_ties(dtype):
    import keras

    p, labels, onehot, binary = _tied_inputs(dtype)
    m = keras.metrics
    assert np.array_equal(K.binary_accuracy(binary, p), np.asarray(m.binary_accuracy(binary, p)))
    assert np.array_equal(K.categorical_accuracy(onehot, p), np.asarray(m.categorical_accuracy(onehot, p)))
    for lab in (labels, labels[:, None]):
        ours = K.sparse_categorical_accuracy(lab, p)
        theirs = np.asarray(m.sparse_categorical_accuracy(lab, p))
        assert ours.shape == theirs.shape and np.array_equal(ours, theirs)
    # TensorFlow's InTopKV2 takes float32 only (float64 raises InvalidArgumentError); these
    # values keep their order and ties in float32
    p32 = p.astype(np.float32)
    for k in (1, 2, 3, 5, 7):
        assert np.array_equal(K.top_k_categorical_accuracy(onehot, p, k=k), np.asarray(m.top_k_categorical_accuracy(onehot, p32, k=k)))
        assert np.array_equal(
            K.sparse_top_k_categorical_accuracy(labels, p, k=k), np.asarray(m.sparse_top_k_categorical_accuracy(labels, p32, k=k))
        )


def test_non_finite_rows_as_keras():
    import keras

    p = np.array([[np.nan, 0.2, 0.3], [np.inf, 0.1, 0.2], [0.1, np.inf, 0.2], [0.5, np.nan, 0.1], [-np.inf, 0.0, 0.0]], np.float32)
    lab = np.zeros(5, dtype=np.int64)
    for k in (1, 2, 3):
        assert np.array_equal(
            K.sparse_top_k_categorical_accuracy(lab, p, k=k), np.asarray(keras.metrics.sparse_top_k_categorical_accuracy(lab, p, k=k))
        )
    assert np.array_equal(K.sparse_categorical_accuracy(lab, p), np.asarray(keras.metrics.sparse_categorical_accuracy(lab, p)))
    onehot = np.eye(3, dtype=np.float32)[lab]
    assert np.array_equal(K.categorical_accuracy(onehot, p), np.asarray(keras.metrics.categorical_accuracy(onehot, p)))


def test_dtype_follows_y_pred():
    p, labels, onehot, binary = _tied_inputs(np.float64)
    assert K.categorical_accuracy(onehot, p).dtype == np.float64
    assert K.categorical_accuracy(onehot, p.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: K.categorical_accuracy(np.eye(3), np.eye(3, dtype=int)), TypeError, "y_pred"),
        (lambda: K.sparse_categorical_accuracy(np.array([0, 3, 1]), np.eye(3)), ValueError, "y_true: label 3"),
        (lambda: K.categorical_accuracy(np.eye(3)[:2], np.eye(3)), ValueError, "y_true: shape"),
        (lambda: K.top_k_categorical_accuracy(np.eye(3), np.eye(3), k=0), ValueError, "k: expected a positive integer"),
        (lambda: K.top_k_categorical_accuracy(np.eye(3), np.eye(3), k=1.5), TypeError, "k: expected a positive integer"),
        (lambda: K.categorical_accuracy(np.zeros((2, 0)), np.zeros((2, 0))), ValueError, "empty"),
        (lambda: K.binary_accuracy(np.eye(3), np.eye(3), threshold="a"), TypeError, "threshold"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
