"""The naive forms: each loss's definition lambdified as SymPy wrote it, with no rewrite.

Same arguments and return conventions as :mod:`cesym.kernels`, for comparison only: these are
what a straightforward implementation computes (``lse(z) - z_y``, ``log(1 - p)``,
``σ(x) - y``, ...), and they lose digits, overflow or return NaN where the stable kernels do not.
"""

from __future__ import annotations

import numpy as np

from . import _losses as _L

__all__ = [
    "binary_crossentropy",
    "binary_crossentropy_grad",
    "categorical_crossentropy",
    "categorical_crossentropy_grad",
    "sparse_categorical_crossentropy",
    "sparse_categorical_crossentropy_grad",
    "sigmoid_cross_entropy_with_logits",
    "sigmoid_cross_entropy_with_logits_grad",
    "softmax_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits_grad",
    "sparse_softmax_cross_entropy_with_logits",
    "sparse_softmax_cross_entropy_with_logits_grad",
    "activity_penalty",
    "activity_penalty_grad",
]


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1) -> np.ndarray:
    return _L.bce(y_true, y_pred, from_logits, label_smoothing, axis, "naive_value")


def binary_crossentropy_grad(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1) -> np.ndarray:
    return _L.bce(y_true, y_pred, from_logits, label_smoothing, axis, "naive_grad")


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1) -> np.ndarray:
    return _L.cce(y_true, y_pred, from_logits, label_smoothing, axis, "naive_value")


def categorical_crossentropy_grad(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1) -> np.ndarray:
    return _L.cce(y_true, y_pred, from_logits, label_smoothing, axis, "naive_grad")


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1, ignore_class=None) -> np.ndarray:
    return _L.scce(y_true, y_pred, from_logits, axis, ignore_class, "naive_value")


def sparse_categorical_crossentropy_grad(y_true, y_pred, from_logits=False, axis=-1, ignore_class=None) -> np.ndarray:
    return _L.scce(y_true, y_pred, from_logits, axis, ignore_class, "naive_grad")


def sigmoid_cross_entropy_with_logits(*, labels, logits) -> np.ndarray:
    return _L.sigmoid_xent(labels, logits, "naive_value")


def sigmoid_cross_entropy_with_logits_grad(*, labels, logits) -> np.ndarray:
    return _L.sigmoid_xent(labels, logits, "naive_grad")


def softmax_cross_entropy_with_logits(*, labels, logits, axis=-1) -> np.ndarray:
    return _L.softmax_xent(labels, logits, axis, "naive_value")


def softmax_cross_entropy_with_logits_grad(*, labels, logits, axis=-1) -> np.ndarray:
    return _L.softmax_xent(labels, logits, axis, "naive_grad")


def sparse_softmax_cross_entropy_with_logits(*, labels, logits) -> np.ndarray:
    return _L.sparse_softmax_xent(labels, logits, "naive_value")


def sparse_softmax_cross_entropy_with_logits_grad(*, labels, logits) -> np.ndarray:
    return _L.sparse_softmax_xent(labels, logits, "naive_grad")


def activity_penalty(h, lam=0.1) -> np.ndarray:
    return _L.penalty(h, lam, "naive_value")


def activity_penalty_grad(h, lam=0.1) -> np.ndarray:
    return _L.penalty(h, lam, "naive_grad")
