"""Argument checks shared by the public kernels: clear errors that name the argument."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "FLOAT_DTYPES",
    "prediction",
    "normalize_axis",
    "dense_labels",
    "sparse_labels",
    "smoothing",
    "scalar",
]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def prediction(y_pred, name: str = "y_pred") -> np.ndarray:
    """``y_pred`` as an array of float32 or float64 (its own dtype is kept: it sets the output's)."""
    arr = np.asarray(y_pred)
    if arr.dtype not in FLOAT_DTYPES:
        if arr.dtype.kind in "biuc" or arr.dtype == object:
            raise TypeError(
                f"{name}: expected a float32 or float64 array, got dtype {arr.dtype} "
                f"(cast it, e.g. np.asarray({name}, dtype=np.float32))"
            )
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected an array with at least one axis, got a scalar")
    return arr


def normalize_axis(axis, ndim: int, name: str = "axis") -> int:
    """``axis`` as a non-negative index into ``ndim`` axes."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: {axis} is out of range for y_pred with {ndim} dimension(s)")
    return int(axis) % ndim


def dense_labels(y_true, shape: tuple[int, ...], name: str = "y_true") -> np.ndarray:
    """Labels of exactly ``shape`` (the prediction's), in their own numeric dtype (the kernels
    widen them to float64 block by block)."""
    arr = np.asarray(y_true)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numeric labels, got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        hint = ""
        if arr.size == int(np.prod(shape)) and abs(arr.ndim - len(shape)) == 1:
            hint = (
                f"; reshape the labels to {tuple(shape)} (Keras's function form would broadcast "
                "them against y_pred, its class form squeezes the trailing 1)"
            )
        raise ValueError(f"{name}: shape {arr.shape} does not match y_pred's shape {tuple(shape)}{hint}")
    return arr


def sparse_labels(y_true, pred_shape: tuple[int, ...], axis: int, name: str = "y_true") -> np.ndarray:
    """Integer class labels for ``y_pred`` of ``pred_shape`` with classes along ``axis``.

    Accepted shapes: ``pred_shape`` without ``axis`` (e.g. (N,) for (N, C)), or with a 1 in its
    place (e.g. (N, 1)). Integer dtypes, or floats holding integers, in ``[0, C)``.
    Returns int64 labels of ``pred_shape`` without ``axis``.
    """
    arr = np.asarray(y_true)
    if arr.dtype.kind not in "iuf" and arr.dtype.kind != "b":
        raise TypeError(f"{name}: expected integer class labels, got dtype {arr.dtype}")
    if arr.dtype.kind == "b":
        raise TypeError(f"{name}: expected integer class labels, got booleans")
    n_classes = pred_shape[axis]
    batch = pred_shape[:axis] + pred_shape[axis + 1 :]
    with_one = pred_shape[:axis] + (1,) + pred_shape[axis + 1 :]
    if arr.shape == with_one and arr.shape != batch:
        arr = arr.reshape(batch)
    elif arr.shape != batch:
        raise ValueError(
            f"{name}: shape {arr.shape} does not fit y_pred's shape {tuple(pred_shape)}: expected "
            f"{batch} or {with_one} (one integer label per sample)"
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.floor(arr)):
            raise ValueError(f"{name}: expected integer class labels, got non-integer values")
    labels = arr.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad = labels[(labels < 0) | (labels >= n_classes)].flat[0]
        raise ValueError(f"{name}: label {bad} is out of range for {n_classes} classes (expected 0..{n_classes - 1})")
    return labels


def smoothing(label_smoothing, name: str = "label_smoothing") -> float:
    """``label_smoothing`` as a float in [0, 1]."""
    ls = scalar(label_smoothing, name)
    if not 0.0 <= ls <= 1.0:
        raise ValueError(f"{name}: expected a value in [0, 1], got {label_smoothing!r}")
    return ls


def scalar(value, name: str) -> float:
    """A real, finite Python scalar."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        if not (isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf"):
            raise TypeError(f"{name}: expected a real number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return v
