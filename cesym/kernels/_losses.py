"""The public loss kernels: argument checks, axis and dtype handling around the generated code.

Every function computes in float64 (float32 inputs are widened exactly, and the float64 result
is rounded once to float32), with the class axis moved last for the generated cores of
:mod:`cesym.kernels._generated`. ``kind`` selects the stable kernel (``"value"``/``"grad"``) or
the naive lambdified definition (``"naive_value"``/``"naive_grad"``, for comparison only).

IEEE special values: NaN in any input propagates to the outputs of its row; ±inf logits give
what IEEE arithmetic gives (for example inf - inf = NaN in a row holding +inf twice). Checks for
the probability domain ignore NaN.
"""

from __future__ import annotations

import numpy as np

from . import _validate as V
from ._generated import (
    activity_penalty as _gen_penalty,
    binary_crossentropy as _gen_bce,
    categorical_crossentropy as _gen_cce,
    sparse_categorical_crossentropy as _gen_scce,
    tf_nn as _gen_nn,
)

KINDS = ("value", "grad", "naive_value", "naive_grad")


def _run(core, kind: str, args: tuple, pred: np.ndarray, dtype: np.dtype, axis: int, row_level: bool):
    """Call ``core`` on last-axis rows; reduce/restore axes; round to ``dtype``."""
    last = pred.shape[:axis] + pred.shape[axis + 1 :] + (pred.shape[axis],)  # class axis last
    with np.errstate(all="ignore"):  # IEEE results (inf for log 0, overflow in the float32 cast)
        out = core(*args)
        if row_level and not kind.endswith("grad"):
            out = out[..., 0]
        else:
            out = np.moveaxis(np.broadcast_to(out, last), -1, axis)
        return np.asarray(out, dtype=dtype)


def _prediction(y_pred, axis):
    p = V.prediction(y_pred)
    ax = V.normalize_axis(axis, p.ndim)
    if p.shape[ax] == 0:
        raise ValueError(f"y_pred: the class axis (axis={axis}) is empty")
    return p, ax


def _last(a: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(a.astype(np.float64, copy=False), axis, -1)


def _check_unit_interval(p: np.ndarray, name: str = "y_pred") -> None:
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError(
            f"{name}: expected probabilities in [0, 1] with from_logits=False "
            f"(got values in [{np.nanmin(p)}, {np.nanmax(p)}]); pass from_logits=True for logits"
        )


def _check_renormalisable(p_last: np.ndarray, name: str = "y_pred") -> None:
    if np.any(p_last < 0):
        raise ValueError(
            f"{name}: expected non-negative probabilities with from_logits=False "
            f"(min {np.nanmin(p_last)}); pass from_logits=True for logits"
        )
    s = np.sum(p_last, axis=-1)
    if np.any(s == 0):
        raise ValueError(f"{name}: a row of probabilities sums to 0 and cannot be renormalised")
    if np.any(np.isinf(s) & ~np.isinf(p_last).any(axis=-1)):
        raise ValueError(f"{name}: a row of probabilities overflows float64 when summed")


# --- Keras losses ------------------------------------------------------------------------------


def bce(y_true, y_pred, from_logits, label_smoothing, axis, kind):
    p, ax = _prediction(y_pred, axis)
    y = V.dense_labels(y_true, p.shape)
    ls = V.smoothing(label_smoothing)
    if not from_logits:
        _check_unit_interval(p)
    core = getattr(_gen_bce, ("logits_" if from_logits else "probs_") + kind)
    return _run(core, kind, (_last(y, ax), _last(p, ax), ls), p, p.dtype, ax, True)


def cce(y_true, y_pred, from_logits, label_smoothing, axis, kind):
    p, ax = _prediction(y_pred, axis)
    y = V.dense_labels(y_true, p.shape)
    ls = V.smoothing(label_smoothing)
    pl = _last(p, ax)
    if not from_logits:
        _check_renormalisable(pl)
    core = getattr(_gen_cce, ("logits_" if from_logits else "probs_") + kind)
    return _run(core, kind, (_last(y, ax), pl, ls), p, p.dtype, ax, True)


def _one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    """Rows of 0/1 along a new last axis; label -1 (an ignored sample) gives a row of zeros."""
    return (labels[..., None] == np.arange(n)).astype(np.float64)


def scce(y_true, y_pred, from_logits, axis, ignore_class, kind):
    p, ax = _prediction(y_pred, axis)
    n = p.shape[ax]
    raw = np.asarray(y_true)
    if ignore_class is not None:
        if isinstance(ignore_class, bool) or not isinstance(ignore_class, (int, np.integer)):
            raise TypeError(f"ignore_class: expected an integer or None, got {ignore_class!r}")
        ignored = raw == ignore_class
        raw = np.where(ignored, 0, raw)
    labels = V.sparse_labels(raw, p.shape, ax)
    if ignore_class is not None:
        labels = np.where(ignored.reshape(labels.shape), -1, labels)  # -1: a row of zeros
    pl = _last(p, ax)
    if not from_logits:
        _check_renormalisable(pl)
    core = getattr(_gen_scce, ("logits_" if from_logits else "probs_") + kind)
    return _run(core, kind, (_one_hot(labels, n), pl), p, p.dtype, ax, True)


# --- tf.nn ------------------------------------------------------------------------------------


def sigmoid_xent(labels, logits, kind):
    x = V.prediction(logits, "logits")
    y = V.dense_labels(labels, x.shape, "labels")
    core = getattr(_gen_nn, "sigmoid_cross_entropy_with_logits_" + kind)
    # elementwise: any axis may stand last; the last one is used as is
    return _run(core, kind, (_last(y, -1), _last(x, -1)), x, x.dtype, x.ndim - 1, False)


def softmax_xent(labels, logits, axis, kind):
    z = V.prediction(logits, "logits")
    ax = V.normalize_axis(axis, z.ndim)
    if z.shape[ax] == 0:
        raise ValueError(f"logits: the class axis (axis={axis}) is empty")
    y = V.dense_labels(labels, z.shape, "labels")
    core = getattr(_gen_nn, "softmax_cross_entropy_with_logits_" + kind)
    return _run(core, kind, (_last(y, ax), _last(z, ax)), z, z.dtype, ax, True)


def sparse_softmax_xent(labels, logits, kind):
    z = V.prediction(logits, "logits")
    if z.shape[-1] == 0:
        raise ValueError("logits: the class axis (the last) is empty")
    raw = np.asarray(labels)
    if raw.shape != z.shape[:-1]:
        raise ValueError(
            f"labels: shape {raw.shape} does not fit logits' shape {z.shape}: expected {z.shape[:-1]} "
            "(one integer label per row; tf.nn takes no trailing 1)"
        )
    lab = V.sparse_labels(raw, z.shape, z.ndim - 1, "labels")
    core = getattr(_gen_scce, "logits_" + kind)
    return _run(core, kind, (_one_hot(lab, z.shape[-1]), _last(z, -1)), z, z.dtype, z.ndim - 1, True)


# --- seed 003's activity penalty ----------------------------------------------------------------


def penalty(h, lam, kind):
    a = V.prediction(h, "h")
    lam_ = V.scalar(lam, "lam")
    if a.shape[0] == 0:
        raise ValueError("h: the batch axis (axis 0) is empty")
    rows = a.astype(np.float64, copy=False).reshape(a.shape[0], -1)
    core = getattr(_gen_penalty, "l2_batch_mean_" + kind)
    with np.errstate(all="ignore"):  # also: a float32 result past 3.4e38 rounds to inf
        out = core(rows, lam_)
        if kind.endswith("grad"):
            return np.asarray(np.broadcast_to(out, rows.shape).reshape(a.shape), dtype=a.dtype)
        return np.asarray(np.sum(out), dtype=a.dtype)
