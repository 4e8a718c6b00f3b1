"""Argument checks shared by the public kernels: clear errors that name the argument."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "FLOAT_DTYPES",
    "array",
    "flag",
    "native",
    "prediction",
    "normalize_axis",
    "dense_labels",
    "sparse_labels",
    "smoothing",
    "scalar",
    "labels_in_domain",
]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def array(x, name: str) -> np.ndarray:
    """``x`` as an ndarray (``np.asarray``), refusing masked arrays: the kernels do not honour a
    mask, and ``np.asarray`` would drop it silently, computing the masked values."""
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name}: masked arrays are not supported (the mask would be ignored); pass the valid "
            f"entries only (e.g. {name}.compressed() or {name}.filled(...)), or weight the loss"
        )
    return np.asarray(x)


def native(dtype: np.dtype) -> np.dtype:
    """``dtype`` in the machine's byte order (outputs are native whatever the input's order)."""
    return np.dtype(dtype).newbyteorder("=")


def prediction(y_pred, name: str = "y_pred") -> np.ndarray:
    """``y_pred`` as an array of float32 or float64 in either byte order (its own dtype sets the
    output's, in native order; the kernels read it block by block, so no copy is made)."""
    arr = array(y_pred, name)
    if native(arr.dtype) not in FLOAT_DTYPES:
        if arr.dtype.kind in "biuc" or arr.dtype == object:
            raise TypeError(
                f"{name}: expected a float32 or float64 array, got dtype {arr.dtype} "
                f"(cast it, e.g. np.asarray({name}, dtype=np.float32))"
            )
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected an array with at least one axis, got a scalar")
    return arr


def flag(value, name: str = "from_logits") -> bool:
    """A Python or NumPy bool. Anything else is refused: ``bool("False")`` is True, and 0/1 or
    None are most often a mistaken positional argument."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def normalize_axis(axis, ndim: int, name: str = "axis", pred_name: str = "y_pred") -> int:
    """``axis`` as a non-negative index into ``ndim`` axes."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: {axis} is out of range for {pred_name} with {ndim} dimension(s)")
    return int(axis) % ndim


def dense_labels(y_true, shape: tuple[int, ...], name: str = "y_true", pred_name: str = "y_pred") -> np.ndarray:
    """Labels of exactly ``shape`` (the prediction's), in their own numeric dtype and byte order
    (the kernels widen them to float64 block by block)."""
    arr = array(y_true, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numeric labels, got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        hint = ""
        if arr.size == int(np.prod(shape)) and abs(arr.ndim - len(shape)) == 1:
            hint = (
                f"; reshape the labels to {tuple(shape)} (Keras's function form would broadcast "
                "them against y_pred, its class form squeezes the trailing 1)"
            )
        raise ValueError(f"{name}: shape {arr.shape} does not match the shape of {pred_name}, {tuple(shape)}{hint}")
    return arr


def sparse_labels(y_true, pred_shape: tuple[int, ...], axis: int, name: str = "y_true") -> np.ndarray:
    """Integer class labels for ``y_pred`` of ``pred_shape`` with classes along ``axis``.

    Accepted shapes: ``pred_shape`` without ``axis`` (e.g. (N,) for (N, C)), or with a 1 in its
    place (e.g. (N, 1)). Integer dtypes, or floats holding integers, in ``[0, C)``, any byte
    order. The range is checked in the labels' own dtype, so an error names the value passed
    (``18446744073709551615``, ``1e+30``, ``nan``), not its int64 cast.
    Returns int64 labels of ``pred_shape`` without ``axis``.
    """
    arr = array(y_true, name)
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
        with np.errstate(invalid="ignore"):
            fraction = ~np.isfinite(arr) | (arr != np.floor(arr))
        if np.any(fraction):
            raise ValueError(
                f"{name}: expected integer class labels, got non-integer value {arr[fraction].flat[0]!s}"
            )
    # in the labels' dtype (NumPy compares unsigned and float values with Python ints exactly)
    out = (arr < 0) | (arr >= n_classes)
    if np.any(out):
        bad = arr[out].flat[0]  # str() of a NumPy scalar: its shortest repr in its own dtype
        raise ValueError(f"{name}: label {bad!s} is out of range for {n_classes} classes (expected 0..{n_classes - 1})")
    return arr.astype(np.int64)


def smoothing(label_smoothing, name: str = "label_smoothing") -> float:
    """``label_smoothing`` as a float in [0, 1]."""
    ls = scalar(label_smoothing, name)
    if not 0.0 <= ls <= 1.0:
        raise ValueError(f"{name}: expected a value in [0, 1], got {label_smoothing!r}")
    return ls


def scalar(value, name: str) -> float:
    """A real, finite Python scalar."""
    if isinstance(value, np.ma.MaskedArray):  # np.ma.masked would read as 0.0 or NaN
        raise TypeError(f"{name}: expected a real number, got a masked value")
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        if not (isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf"):
            raise TypeError(f"{name}: expected a real number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return v


def _words(intervals, name: str) -> str:
    """A union of closed intervals (None an unbounded end) as words: ``y >= 0``, ``y in [0, 1]``."""

    def one(lo, hi):
        if lo is None:
            return f"{name} <= {hi!r}"
        if hi is None:
            return f"{name} >= {lo!r}"
        return f"{name} = {lo!r}" if lo == hi else f"{name} in [{lo!r}, {hi!r}]"

    return " or ".join(one(lo, hi) for lo, hi in intervals)


def labels_in_domain(y: np.ndarray, domain: dict, name: str = "y_true") -> None:
    """Refuse labels outside ``domain`` (``{"intervals": [[lo, hi], ...], "because": part}``,
    :mod:`cesym.derive.label_domain`: the closed set where the definition is real; None an
    unbounded end). NaN passes: NaN propagates. Compared in float64 (a float32 label at the
    rounded end of a set is judged by its own value)."""
    ivs = domain["intervals"]
    if y.size == 0:
        return
    if len(ivs) == 1:  # one pass per end, no mask, unless a label is outside (NaN is skipped)
        lo, hi = ivs[0]
        if (lo is None or not float(np.fmin.reduce(y, axis=None)) < lo) and (
            hi is None or not float(np.fmax.reduce(y, axis=None)) > hi
        ):
            return
    bad = None
    for lo, hi in ivs:
        if lo is None and hi is None:
            return
        below = y < np.float64(lo) if lo is not None else None
        above = y > np.float64(hi) if hi is not None else None
        outside = above if below is None else below if above is None else below | above
        bad = outside if bad is None else bad & outside
    if bad is not None and np.any(bad):
        raise ValueError(
            f"{name}: label {y[bad].flat[0]!s} is outside the loss's domain: expected "
            f"{_words(domain['intervals'], name)} (where {domain['because']} is real)"
        )
