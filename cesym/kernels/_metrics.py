"""Accuracy metrics, value only, with Keras 3's tie rules (``keras.metrics.*`` function forms).

Outputs have y_pred's floating dtype (Keras returns floatx, float32 by default); the values are
0 and 1, exactly representable in both.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _validate as V

__all__ = [
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
]


def _classes(y_pred) -> np.ndarray:
    p = V.prediction(y_pred)
    if p.shape[-1] == 0:
        raise ValueError("y_pred: the class axis (the last) is empty")
    return p


def _k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k: expected a positive integer, got {k!r}")
    if k < 1:
        raise ValueError(f"k: expected a positive integer, got {k}")
    return int(k)


def _argmax(a: np.ndarray) -> np.ndarray:
    """TensorFlow's argmax: the first largest element; NaN never wins (it compares false)."""
    return np.argmax(np.where(np.isnan(a), -np.inf, a), axis=-1)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> np.ndarray:
    """Elementwise ``y_true == (y_pred > threshold)``: a prediction equal to the threshold is 0."""
    p = V.prediction(y_pred)
    y = V.dense_labels(y_true, p.shape)
    th = V.scalar(threshold, "threshold")
    return (y == (p > th)).astype(p.dtype)


def categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """Per sample ``argmax(y_true) == argmax(y_pred)``; argmax ties go to the smallest index, NaN never wins."""
    p = _classes(y_pred)
    y = V.dense_labels(y_true, p.shape)
    return (_argmax(y) == _argmax(p)).astype(p.dtype)


def sparse_categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """Per sample ``y_true == argmax(y_pred)``; labels of shape y_pred.shape[:-1] or with a trailing 1."""
    p = _classes(y_pred)
    labels = V.sparse_labels(y_true, p.shape, p.ndim - 1)
    return (labels == _argmax(p)).astype(p.dtype)


def _in_top_k(labels: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """TensorFlow's in_top_k: fewer than k classes score strictly higher (ties count as in);
    a row holding any NaN or infinity is never in."""
    target = np.take_along_axis(p, labels[..., None], axis=-1)
    higher = np.sum(p > target, axis=-1)
    return (higher < k) & np.all(np.isfinite(p), axis=-1)


def top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> np.ndarray:
    """Per sample: is argmax(y_true) among the top ``k`` of y_pred (TensorFlow's in_top_k ties)."""
    p = _classes(y_pred)
    y = V.dense_labels(y_true, p.shape)
    return _in_top_k(_argmax(y), p, _k(k)).astype(p.dtype)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> np.ndarray:
    """Per sample: is the integer label among the top ``k`` of y_pred (in_top_k ties)."""
    p = _classes(y_pred)
    labels = V.sparse_labels(y_true, p.shape, p.ndim - 1)
    return _in_top_k(labels, p, _k(k)).astype(p.dtype)
