"""Accuracy metrics, value only, with Keras 3's tie rules (``keras.metrics.*`` function forms).

Outputs have y_pred's floating dtype (Keras returns floatx, float32 by default); the values are
0 and 1, exactly representable in both. Rows are processed in blocks, in their own dtype (a
comparison needs no widening), on the kernels' threads (:mod:`._blocks`).
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _validate as V
from ._blocks import run_blocks

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


def _native(a: np.ndarray):
    """Row blocks of a 2-D array as they are (views, no copy, no widening)."""
    return lambda s, e: a[s:e]


def _per_row(core, p: np.ndarray, *rows: np.ndarray) -> np.ndarray:
    """``core(*row_blocks)`` -> one boolean per row, over blocks of the last-axis rows of ``p``."""
    lead = p.shape[:-1]
    flat = [r.reshape(-1, r.shape[-1]) if r.ndim > 1 else r.reshape(-1, 1) for r in (*rows, p)]
    n_rows, n_cols = flat[-1].shape
    (out,) = run_blocks(lambda *b: core(*b)[:, None], [_native(f) for f in flat], (), n_rows, n_cols, [("row", V.native(p.dtype))])
    return out.reshape(lead)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> np.ndarray:
    """Elementwise ``y_true == (y_pred > threshold)``: a prediction equal to the threshold is 0."""
    p = V.prediction(y_pred)
    y = V.dense_labels(y_true, p.shape)
    th = V.scalar(threshold, "threshold")
    return (y == (p > th)).astype(V.native(p.dtype))


def categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """Per sample ``argmax(y_true) == argmax(y_pred)``; argmax ties go to the smallest index, NaN never wins."""
    p = _classes(y_pred)
    y = V.dense_labels(y_true, p.shape)
    return _per_row(lambda yb, pb: _argmax(yb) == _argmax(pb), p, y)


def sparse_categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """Per sample ``y_true == argmax(y_pred)``; labels of shape y_pred.shape[:-1] or with a trailing 1."""
    p = _classes(y_pred)
    labels = V.sparse_labels(y_true, p.shape, p.ndim - 1)
    return _per_row(lambda lb, pb: lb[:, 0] == _argmax(pb), p, labels[..., None])


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
    k = _k(k)
    return _per_row(lambda yb, pb: _in_top_k(_argmax(yb), pb, k), p, y)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> np.ndarray:
    """Per sample: is the integer label among the top ``k`` of y_pred (in_top_k ties)."""
    p = _classes(y_pred)
    labels = V.sparse_labels(y_true, p.shape, p.ndim - 1)
    k = _k(k)
    return _per_row(lambda lb, pb: _in_top_k(lb[:, 0], pb, k), p, labels[..., None])
