"""Keras and tf.nn as kernels: the same calling convention as :meth:`KernelCase.call`.

``keras_kernel(case)`` returns ``call(labels, pred, params, grad=False)`` that runs the Keras 3
function form of the same name (``keras.losses.<name>``) or the ``tf.nn`` op, on plain tensors
of the input's dtype (function forms keep float32/float64; called on plain tensors, Keras's hidden
``_keras_logits`` shortcut cannot apply), and for ``grad`` the gradient of the sum of the returned
values with ``tf.GradientTape``. TensorFlow is imported on first use, never by
:mod:`cesym.kernels`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import numpy as np

from .registry import KernelCase

__all__ = ["keras_kernel", "versions"]


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf


def versions() -> dict[str, str]:
    """Versions of TensorFlow and Keras that the calls use."""
    tf = _tf()
    import keras

    return {"tensorflow": tf.__version__, "keras": keras.__version__}


def _loss_fn(case: KernelCase, params: dict) -> Callable:
    tf = _tf()
    import keras

    kw = dict(case.keywords)
    kw.update(params)
    if case.kernel in ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"):
        fn = getattr(keras.losses, case.kernel)
        return lambda y, p: fn(y, p, **kw)
    if case.nn_keywords:
        fn = getattr(tf.nn, case.kernel)
        return lambda y, p: fn(labels=y, logits=p, **kw)
    if case.kernel == "activity_penalty":
        lam = kw["lam"]
        return lambda _, h: lam * tf.reduce_mean(tf.reduce_sum(tf.square(h), axis=list(range(1, len(h.shape)))))
    raise KeyError(case.kernel)


def keras_kernel(case: KernelCase) -> Callable:
    """A callable ``(labels, pred, params, grad=False)`` running Keras/TF for ``case``."""

    def call(labels, pred, params: dict, grad: bool = False):
        tf = _tf()
        pred = np.asarray(pred)
        fn = _loss_fn(case, params)
        if labels is None:
            y = None
        elif case.labels == "sparse":
            y = tf.constant(np.asarray(labels))
        else:
            y = tf.constant(np.asarray(labels, dtype=pred.dtype))
        x = tf.Variable(pred)
        with tf.GradientTape() as tape, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras warns about one-class rows; they are meant
            v = fn(y, x)
            total = tf.reduce_sum(v)
        if grad:
            return np.asarray(tape.gradient(total, x).numpy(), dtype=pred.dtype)
        return np.asarray(v.numpy(), dtype=pred.dtype)

    return call
