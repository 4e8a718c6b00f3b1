"""The public loss kernels: argument checks, axis and dtype handling around the generated code.

Every function computes in float64 (float32 inputs are widened exactly, and the float64 result
is rounded once to float32), with the class axis moved last for the generated cores of
:mod:`cesym.kernels._generated`. ``kind`` selects the stable kernel (``"value"``/``"grad"``) or
the naive lambdified definition (``"naive_value"``/``"naive_grad"``, for comparison only).

Shapes: any rank, the class axis anywhere (rows are read through views, see :mod:`._blocks`),
rows of any length (longer than a block: in pieces), empty leading axes (empty outputs). An
empty class axis is an error: the loss of a row of no classes is not defined.

Special values: ±inf predictions give the limits of the mathematics, NaN where there is none
(:mod:`._limits` states the rule); NaN in any input propagates to the outputs of its row (an
ignored row stays 0). Checks for the probability domain ignore NaN.

Misuse that is not an error is named (:mod:`._misuse`): one class along the class axis of a
categorical or sparse loss (``SingleClassWarning``), and logits that are all probabilities
(``ProbabilitiesAsLogitsWarning``), raised in the calling thread once per call.
"""

from __future__ import annotations

import math

import numpy as np

from . import _limits as _lim
from . import _misuse as M
from . import _runtime as _rt
from . import _validate as V
from . import _blocks
from ._blocks import RowView, run_blocks
from ._generated import (
    activity_penalty as _gen_penalty,
    binary_crossentropy as _gen_bce,
    categorical_crossentropy as _gen_cce,
    sparse_categorical_crossentropy as _gen_scce,
    tf_nn as _gen_nn,
)

KINDS = ("value", "grad", "value_and_grad", "naive_value", "naive_grad")


def _rows(a: np.ndarray, axis: int) -> np.ndarray | RowView:
    """``a`` with the class axis last, as 2-D rows: a view whenever the layout allows one, else a
    :class:`RowView` that gathers blocks of rows from the strided array (never a whole copy)."""
    v = np.moveaxis(a, axis, -1)
    if v.ndim == 2:
        return v
    try:
        return np.reshape(v, (-1, v.shape[-1]), copy=False)
    except ValueError:
        return RowView(v)


def _run(
    core,
    kind: str,
    labels,
    pred: np.ndarray,
    axis: int,
    scalars: tuple = (),
    row_level: bool = True,
    check=None,
    precheck=None,
    watch: M.ProbabilityWatch | None = None,
    limits=None,
    grad_alone: bool = False,
    block_elements: int | None = None,
):
    """Call ``core`` on blocks of last-axis rows (:mod:`._blocks`); restore axes; round to pred's dtype.

    ``labels``: an array of pred's shape, a callable making label blocks (class indices, see
    :func:`_label_blocks`), or None. ``watch``: looks at every prediction block (as the
    precheck) and warns, from this thread, once the blocks are done. ``limits(lab, pred)``:
    (value, gradient, force) of block rows whose inputs are not all finite (:mod:`._limits`),
    for the stable kinds.
    ``grad_alone``: the gradient can be non-finite where the value is finite (ignored rows,
    whose value is 0 whatever their logits); otherwise value_and_grad tests the value only.
    ``block_elements``: the size of the blocks of short rows (default ``_blocks.BLOCK_ELEMENTS``).
    """
    if watch is not None:
        precheck = watch
    p = _rows(pred, axis)
    n_rows, n_cols = p.shape
    srcs = ([] if labels is None else [labels if callable(labels) else _rows(labels, axis)]) + [p]
    kinds = ("value", "grad") if kind == "value_and_grad" else (kind,)
    outputs = [("row" if row_level and not k.endswith("grad") else "elem", V.native(pred.dtype)) for k in kinds]
    fix = None if limits is None or kind.startswith("naive") else _fixer(limits, kinds, not row_level, labels is not None and callable(labels))
    # a non-finite gradient comes with a non-finite value (NaN or +inf in the row), but for
    # ignored rows: the value is tested alone unless there are such rows
    watched = (0,) if kind == "value_and_grad" and not grad_alone else None
    outs = run_blocks(
        core, srcs, scalars, n_rows, n_cols, outputs, check, precheck=precheck, limit=fix, watch=watched, pieces=True,
        block_elements=block_elements,
    )
    if watch is not None:
        watch.report(pred.size)
    lead = pred.shape[:axis] + pred.shape[axis + 1 :]
    res = []
    for (shape, _), out in zip(outputs, outs):
        if shape == "row":
            res.append(out.reshape(lead))
        else:
            res.append(np.moveaxis(out.reshape(lead + (n_cols,)), -1, axis))
    return tuple(res) if kind == "value_and_grad" else res[0]


def _fixer(limits, kinds, elementwise: bool, sparse: bool):
    """The ``limit`` callback of :func:`run_blocks`: rows with non-finite inputs (or ignored rows)
    get their limits where the core's outputs are not finite."""

    def fix(blocks, res):
        x = blocks[-1]
        lab = blocks[0] if len(blocks) > 1 else None
        bad = ~np.isfinite(x).all(axis=-1)
        if lab is not None:
            bad |= (lab[:, 0] < 0) if sparse else ~np.isfinite(lab).all(axis=-1)
        if not np.any(bad):
            return res
        return _lim.repair(kinds, res, bad, lambda idx: limits(None if lab is None else lab[idx], x[idx]), x.shape, elementwise)

    return fix


def _prediction(y_pred, axis):
    p = V.prediction(y_pred)
    ax = V.normalize_axis(axis, p.ndim)
    if p.shape[ax] == 0:
        raise ValueError(f"y_pred: the class axis (axis={axis}) is empty")
    return p, ax


def _check_unit_interval(p: np.ndarray, name: str = "y_pred") -> None:
    """Per block of rows: probabilities in [0, 1] (NaN passes: it propagates; fmin/fmax skip it)."""
    if np.fmin.reduce(p, axis=None) < 0 or np.fmax.reduce(p, axis=None) > 1:
        raise ValueError(
            f"{name}: expected probabilities in [0, 1] with from_logits=False "
            f"(got values in [{np.nanmin(p)}, {np.nanmax(p)}]); pass from_logits=True for logits"
        )


def _check_nonnegative(p: np.ndarray, name: str = "y_pred") -> None:
    """Per block of rows: non-negative probabilities (NaN passes: it propagates; fmin skips it)."""
    if np.fmin.reduce(p, axis=None) < 0:
        raise ValueError(
            f"{name}: expected non-negative probabilities with from_logits=False "
            f"(min {np.nanmin(p)}); pass from_logits=True for logits"
        )


def _renormalisable(block: np.ndarray, name: str = "y_pred") -> None:
    """Per float64 block of rows: every row must have a positive, finite sum to renormalise."""
    s = _rt.row_sum(block)
    if np.any(s == 0):
        raise ValueError(f"{name}: a row of probabilities sums to 0 and cannot be renormalised")
    if np.any(np.isinf(s) & ~np.isinf(block).any(axis=-1, keepdims=True)):
        raise ValueError(f"{name}: a row of probabilities overflows float64 when summed")


def _core(module, prefix: str, kind: str):
    return getattr(module, prefix + kind)


# --- Keras losses ------------------------------------------------------------------------------


def _watch(fn: str, from_logits: bool, pred_name: str = "y_pred", rows: bool = True, n_classes: int = 2):
    """The probabilities-as-logits watch of a logits path (none on probabilities or one class)."""
    if not from_logits or n_classes == 1:
        return None
    return M.ProbabilityWatch(fn, pred_name, rows)


def bce(y_true, y_pred, from_logits, label_smoothing, axis, kind):
    from_logits = V.flag(from_logits)
    p, ax = _prediction(y_pred, axis)
    y = V.dense_labels(y_true, p.shape)
    ls = V.smoothing(label_smoothing)
    core = _core(_gen_bce, "logits_" if from_logits else "probs_", kind)
    if not from_logits:  # p in [0, 1]: the cores' XMul terms give the edges' limits; NaN rows
        return _run(core, kind, y, p, ax, (ls,), precheck=_check_unit_interval, limits=lambda lab, x: _lim.nan_rows(lab, x))
    C = p.shape[ax]
    watch = _watch("binary_crossentropy", True, rows=False)
    return _run(core, kind, y, p, ax, (ls,), watch=watch, limits=lambda lab, x: _lim.sigmoid_rows(*_bce_weights(lab, ls), x, C),
                block_elements=_sigmoid_grad_block(kind))


def _sigmoid_grad_block(kind: str) -> int | None:
    """Half blocks for the gradients of the sigmoid terms: their cores keep about ten block-sized
    float64 temporaries, so two threads at full blocks held 1.02x a float32 input in scratch
    (2^20 x 10), for no speed (measured: 1.04 and 1.00 of the half blocks' time)."""
    return _blocks.BLOCK_ELEMENTS // 2 if kind.endswith("grad") else None


def _bce_weights(y: np.ndarray, ls: float) -> tuple[np.ndarray, np.ndarray]:
    """(t, u): the generated kernels' smoothed label weights, the same expressions."""
    t = y if ls == 0 else y * (1 - ls) + (1 / 2) * ls
    u = 1 - y if ls == 0 else (1 / 2) * ls + (1 - y) * (1 - ls)
    return t, u


def _cce_weights(y: np.ndarray, ls: float) -> np.ndarray:
    C = y.shape[-1]
    return y if ls == 0 else y * (1 - ls) + ls / C


def cce(y_true, y_pred, from_logits, label_smoothing, axis, kind):
    from_logits = V.flag(from_logits)
    p, ax = _prediction(y_pred, axis)
    y = V.dense_labels(y_true, p.shape)
    ls = V.smoothing(label_smoothing)
    M.single_class("categorical_crossentropy", "y_pred", p.shape, ax)
    checks = {} if from_logits else {"precheck": _check_nonnegative, "check": _renormalisable}
    core = _core(_gen_cce, "logits_" if from_logits else "probs_", kind)
    rows = _lim.softmax_rows if from_logits else _lim.probs_rows
    watch = _watch("categorical_crossentropy", from_logits, n_classes=p.shape[ax])
    return _run(core, kind, y, p, ax, (ls,), watch=watch, limits=lambda lab, x: rows(_cce_weights(lab, ls), x), **checks)


def _label_blocks(labels: np.ndarray):
    """Blocks of flat integer labels as (rows, 1) int64 columns; -1 marks an ignored sample."""
    return lambda s, e: labels[s:e, None]


def scce(y_true, y_pred, from_logits, axis, ignore_class, kind):
    from_logits = V.flag(from_logits)
    p, ax = _prediction(y_pred, axis)
    raw = V.array(y_true, "y_true")
    if ignore_class is not None:
        if isinstance(ignore_class, bool) or not isinstance(ignore_class, (int, np.integer)):
            raise TypeError(f"ignore_class: expected an integer or None, got {ignore_class!r}")
        ignored = raw == ignore_class
        raw = np.where(ignored, 0, raw)
    labels = V.sparse_labels(raw, p.shape, ax)
    if ignore_class is not None:
        labels = np.where(ignored.reshape(labels.shape), -1, labels)  # -1: a row of zeros
    M.single_class("sparse_categorical_crossentropy", "y_pred", p.shape, ax)
    checks = {} if from_logits else {"precheck": _check_nonnegative, "check": _renormalisable}
    core = _core(_gen_scce, "logits_" if from_logits else "probs_", kind)
    watch = _watch("sparse_categorical_crossentropy", from_logits, n_classes=p.shape[ax])
    rows = _lim.softmax_rows if from_logits else _lim.probs_rows
    any_ignored = ignore_class is not None and bool(np.any(ignored))
    return _run(
        core, kind, _label_blocks(labels.reshape(-1)), p, ax, watch=watch, limits=_sparse_limits(rows), grad_alone=any_ignored, **checks
    )


def _sparse_limits(rows):
    """Limits for class-index labels: one-hot label rows; ignored rows (-1) 0 with a zero gradient."""
    return lambda k, x: rows(_rt.one_hot(k, x.shape[-1]), x, ignored=k[:, 0] < 0)


# --- tf.nn ------------------------------------------------------------------------------------


def sigmoid_xent(labels, logits, kind):
    x = V.prediction(logits, "logits")
    y = V.dense_labels(labels, x.shape, "labels", "logits")
    core = _core(_gen_nn, "sigmoid_cross_entropy_with_logits_", kind)
    watch = _watch("sigmoid_cross_entropy_with_logits", True, "logits", rows=False)
    # Elementwise: blocked over the flat data whatever the shape. A unit axis appended as the
    # "class" axis makes every element a row of one: blocks of BLOCK_ELEMENTS elements for a
    # 1-D input as for any other (a view of C-contiguous data; other layouts are gathered).
    res = _run(core, kind, y[..., None], x[..., None], x.ndim, row_level=False, watch=watch,
               limits=lambda lab, z: _lim.sigmoid_rows(lab, 1 - lab, z, None), block_elements=_sigmoid_grad_block(kind))
    return tuple(r[..., 0] for r in res) if kind == "value_and_grad" else res[..., 0]


def softmax_xent(labels, logits, axis, kind):
    z = V.prediction(logits, "logits")
    ax = V.normalize_axis(axis, z.ndim, pred_name="logits")
    if z.shape[ax] == 0:
        raise ValueError(f"logits: the class axis (axis={axis}) is empty")
    y = V.dense_labels(labels, z.shape, "labels", "logits")
    M.single_class("softmax_cross_entropy_with_logits", "logits", z.shape, ax)
    core = _core(_gen_nn, "softmax_cross_entropy_with_logits_", kind)
    watch = _watch("softmax_cross_entropy_with_logits", True, "logits", n_classes=z.shape[ax])
    return _run(core, kind, y, z, ax, watch=watch, limits=_lim.softmax_rows)


def sparse_softmax_xent(labels, logits, kind):
    z = V.prediction(logits, "logits")
    if z.shape[-1] == 0:
        raise ValueError("logits: the class axis (the last) is empty")
    raw = V.array(labels, "labels")
    if raw.shape != z.shape[:-1]:
        raise ValueError(
            f"labels: shape {raw.shape} does not fit logits' shape {z.shape}: expected {z.shape[:-1]} "
            "(one integer label per row; tf.nn takes no trailing 1)"
        )
    lab = V.sparse_labels(raw, z.shape, z.ndim - 1, "labels")
    M.single_class("sparse_softmax_cross_entropy_with_logits", "logits", z.shape, z.ndim - 1)
    core = _core(_gen_scce, "logits_", kind)
    watch = _watch("sparse_softmax_cross_entropy_with_logits", True, "logits", n_classes=z.shape[-1])
    return _run(core, kind, _label_blocks(lab.reshape(-1)), z, z.ndim - 1, watch=watch, limits=_sparse_limits(_lim.softmax_rows))


# --- seed 003's activity penalty ----------------------------------------------------------------

_PENALTY_ROW = 512  # elements per row to aim for when samples are shorter


def penalty(h, lam, kind):
    a = V.prediction(h, "h")
    lam_ = V.scalar(lam, "lam")
    if a.shape[0] == 0:
        raise ValueError("h: the batch axis (axis 0) is empty")
    rows = a.reshape(a.shape[0], -1)
    # Only the total Σh² matters, so short samples are laid out several to a row: long rows are
    # summed by NumPy's pairwise sum, and there are fewer per-row results to add up.
    group = math.gcd(rows.shape[0], 1 << max(0, (_PENALTY_ROW // max(1, rows.shape[1])).bit_length() - 1))
    rows = rows.reshape(rows.shape[0] // group, group * rows.shape[1])
    core = _core(_gen_penalty, "l2_batch_mean_", kind)
    kinds = ("value", "grad") if kind == "value_and_grad" else (kind,)
    # the per-row terms stay float64 until their sum is rounded once
    outputs = [("row", np.dtype(np.float64)) if not k.endswith("grad") else ("elem", V.native(a.dtype)) for k in kinds]
    size = max(1, math.prod(a.shape[1:]))  # elements per sample
    fix = None if kind.startswith("naive") else _fixer(lambda _, x: _lim.penalty_rows(x, lam_, size), kinds, False, False)
    # Blocks of short rows twice the usual size: one pass per element (a square, a sum), so the
    # per-block work of the driver would be 15% of it at 2^17 (measured: 12.7 -> 9.0 ms at
    # 2^20 x 10). Rows are computed alike in any block; long rows keep the usual pieces.
    block = _blocks.BLOCK_ELEMENTS * 2
    outs = run_blocks(
        core, [rows], (lam_, a.shape[0]), rows.shape[0], rows.shape[1], outputs, limit=fix, pieces=True, block_elements=block
    )
    res = []
    with np.errstate(all="ignore"):  # a float32 result past 3.4e38 rounds to inf
        for (shape, _), out in zip(outputs, outs):
            res.append(np.asarray(np.sum(out), dtype=V.native(a.dtype)) if shape == "row" else out.reshape(a.shape))
    return tuple(res) if kind == "value_and_grad" else res[0]
