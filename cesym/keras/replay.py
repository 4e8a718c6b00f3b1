r"""Keras's algorithm replayed in its own dtype, operation by operation (values and gradients), in NumPy.

Where :mod:`cesym.keras.model` encloses every value Keras's algorithm *can* return (an interval
per point, mpmath), the replay computes the one it *does* return where TensorFlow's arithmetic
is plain IEEE: the casts, the clip to ``[1e-7, 1 - 1e-7]`` (the constant rounded to the dtype),
the renormalisation, each ``+ - * /`` in Keras's order, and the row reductions summed left to
right. Its ``exp``, ``log`` and ``log1p`` are NumPy's, which may differ from TensorFlow's
vectorised (Eigen) ones in the last bits, and TensorFlow may sum a row in another order; so the
replay measures how much of Keras is reproduced *bit for bit* (:func:`reproduced`), and where it
is not, by how many ulps. Keras 3.15, TensorFlow backend, function forms:

* ``binary_crossentropy``: ``t = y(1 - ε) + ε/2`` (ε the label smoothing), then
  ``q = clip(p)``; ``-(t·log q + (1 - t)·log(1 - q))``; from logits
  ``tf.nn.sigmoid_cross_entropy_with_logits``: ``(relu(x) - x·t) + log1p(exp(-|x|))``; the mean
  over the row (``reduce_mean``: the sum, then divided by n);
* ``categorical_crossentropy``: ``t = y(1 - ε) + ε/C``; probabilities ``r = p/Σp``,
  ``q = clip(r)``, ``-Σ t·log q``; logits: the fused op, ``Σ t·(log Σ e^{z - m} - (z - m))``,
  ``m = max z``;
* ``sparse_categorical_crossentropy``: probabilities ``log clip(p)`` into the sparse softmax op;
  logits the op: ``log Σ e^{z - m} - (z_k - m)``;
* ``sigmoid_cross_entropy_with_logits``, ``softmax_cross_entropy_with_logits``,
  ``sparse_softmax_cross_entropy_with_logits``: the ops above.

Every other loss with a Keras function form is replayed from the algorithm its derivation file
declares (:mod:`cesym.keras.declared`: values and TensorFlow's gradients, with a bound per
output). The cross-entropies' gradients are replayed too: TensorFlow's autodiff through Keras's
ops (the clip as ``maximum(minimum(p, 1 - ε), ε)``, the log, the ``where`` s of
``sigmoid_cross_entropy_with_logits``) by :mod:`cesym.keras.declared` on those ops written out
(:func:`_tf_algorithm`), and the fused softmax ops' own gradient ``softmax - labels`` by hand
(:func:`_softmax_backprop`). :func:`replay_outputs` gives any of them as a :class:`Replay`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..verify.registry import KernelCase, one_hot
from .declared import TRANSCENDENTAL_ULPS, _Walk, replay_declared, row_sum_ltr
from .model import bounds

__all__ = ["replay", "replay_with_scale", "reproduced", "REPLAY_ULPS", "Replay", "replay_outputs", "HAND_REPLAYED", "class_seeds", "class_values"]

#: The losses replayed by hand here (their values); every other declared algorithm by .declared.
HAND_REPLAYED = (
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "sigmoid_cross_entropy_with_logits", "softmax_cross_entropy_with_logits", "sparse_softmax_cross_entropy_with_logits",
)

def _clip(p: np.ndarray, dt) -> np.ndarray:
    lo, hi = bounds(dt)  # Keras's 1e-7 and 1 - 1e-7 as TensorFlow makes them tensors of the dtype
    return np.clip(p, dt(lo), dt(hi))


def _row_sum(a: np.ndarray) -> np.ndarray:
    """Left to right along the row, in the dtype."""
    return row_sum_ltr(a)[:, 0]


def _row_mean(a: np.ndarray, dt) -> np.ndarray:
    return _row_sum(a) / dt(a.shape[1])


def _sigmoid_xent(t: np.ndarray, x: np.ndarray, dt) -> tuple[np.ndarray, np.ndarray]:
    zero = dt(0)
    relu = np.where(x >= zero, x, zero)
    neg_abs = np.where(x >= zero, -x, x)
    sp = np.log1p(np.exp(neg_abs))
    xt = x * t
    return (relu - xt) + sp, np.abs(relu) + np.abs(xt) + sp


def _softmax_xent(t: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fused op. The scale counts z and max z, whose difference cancels (z = log q of
    probabilities near each other: logs of 11 whose difference is 0.8), and C - 1 for the sum
    of the exponentials: at least 1 (the maximum's), summed by TensorFlow in its own order, it
    errs by up to (C - 1) roundings of 1, which its log passes on as an absolute error (rows of
    1 + 1e-7 + 1e-7 + ...: another order moves the loss by ulps of 1, not of the loss)."""
    m = np.max(z, axis=1, keepdims=True)
    shifted = z - m
    lse = np.log(_row_sum(np.exp(shifted)))[:, None]
    order = np.abs(lse) + np.abs(z) + np.abs(m) + (z.shape[1] - 1)
    return _row_sum(t * (lse - shifted)), _row_sum(np.abs(t) * order)


def _sparse_softmax_xent(k: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.max(z, axis=1)
    rows = np.arange(len(k))
    shifted = z - m[:, None]
    lse = np.log(_row_sum(np.exp(shifted)))
    return lse - shifted[rows, k], np.abs(lse) + np.abs(z[rows, k]) + np.abs(m) + (z.shape[1] - 1)


def replay(case: KernelCase, labels, pred: np.ndarray, params: dict) -> np.ndarray | None:
    """Keras's values for ``case`` on a batch of rows (``pred``: (rows, C) in the dtype; labels
    dense (rows, C) or class indices (rows,)), replayed in the dtype; None where there is no replay."""
    got = replay_with_scale(case, labels, pred, params)
    return None if got is None else got[0]


def replay_with_scale(case: KernelCase, labels, pred: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`replay` and the scale of each value's rounding errors: the sum of the absolute
    values of the terms it adds (a value that cancels, ``lse − z_k`` near 0, keeps the scale of
    its terms: two implementations of log differ by ulps of the terms, not of the result)."""
    pred = np.asarray(pred)
    dt = pred.dtype.type
    ls = dt(params.get("label_smoothing", 0.0))
    k = case.kernel
    with np.errstate(all="ignore"):
        if k == "binary_crossentropy":
            t = np.asarray(labels, dtype=pred.dtype)
            if ls:  # Python floats made tensors of the dtype: 1 - ε and ε/2 rounded once
                t = t * dt(1.0 - float(ls)) + dt(0.5 * float(ls))
            if case.keywords.get("from_logits"):
                per, scale = _sigmoid_xent(t, pred, dt)
            else:
                q = _clip(pred, dt)
                a, b = t * np.log(q), (dt(1) - t) * np.log(dt(1) - q)
                per, scale = -(a + b), np.abs(a) + np.abs(b)
            return _row_mean(per, dt), _row_mean(scale, dt)
        if k == "sigmoid_cross_entropy_with_logits":
            return _sigmoid_xent(np.asarray(labels, dtype=pred.dtype), pred, dt)
        if k in ("categorical_crossentropy", "softmax_cross_entropy_with_logits"):
            t = np.asarray(labels, dtype=pred.dtype)
            if ls:  # 1 - ε a Python float made a tensor; ε / C divided in the dtype
                t = t * dt(1.0 - float(ls)) + ls / dt(pred.shape[1])
            if case.keywords.get("from_logits", True):
                return _softmax_xent(t, pred)
            r = pred / _row_sum(pred)[:, None]
            terms = t * np.log(_clip(r, dt))
            return -_row_sum(terms), _row_sum(np.abs(terms))
        if k in ("sparse_categorical_crossentropy", "sparse_softmax_cross_entropy_with_logits"):
            idx = np.asarray(labels, dtype=np.int64).reshape(-1)
            z = pred if case.keywords.get("from_logits", True) else np.log(_clip(pred, dt))
            return _sparse_softmax_xent(idx, z)
    return None


#: The replay's distance from TensorFlow, in ulps of a value's scale: NumPy's and TensorFlow's
#: exp/log each within a few ulps of the correctly rounded result (FIELD_NOTES: NumPy's SIMD
#: float32 log <= 3.1 ulps) and a row summed in another order; measured at most 2 here
#: (tests/test_keras_replay.py holds it to this).
REPLAY_ULPS = 16.0


def reproduced(
    case: KernelCase, labels, pred: np.ndarray, params: dict, keras_values: np.ndarray, got: tuple | None = None
) -> tuple[int, int, float] | None:
    """(outputs of Keras reproduced bit for bit by the replay, outputs compared, the largest
    distance between the replay and Keras in ulps of the value's scale (:func:`replay_with_scale`)
    where both are finite): :func:`agreement` with the bound of REPLAY_ULPS ulps of the scale;
    None where there is no replay. ``got``: :func:`replay_with_scale`'s result, where the caller has it."""
    got = replay_with_scale(case, labels, pred, params) if got is None else got
    if got is None:
        return None
    value, scale = got
    same, compared, apart = agreement(value, _bound_of_scale(scale, pred.dtype), keras_values, pred.dtype)
    return same, compared, apart * REPLAY_ULPS


@dataclass
class Replay:
    """Keras's outputs on a batch as the replay computes them, each with the absolute bound of
    TensorFlow's distance from it: ``value`` in Keras's layout ((rows,), or (rows, C) for an
    elementwise loss), ``grad`` (rows, C) or None where the gradient is not replayed."""

    value: np.ndarray
    value_bound: np.ndarray
    grad: np.ndarray | None = None
    grad_bound: np.ndarray | None = None


def _bound_of_scale(scale: np.ndarray, dtype) -> np.ndarray:
    tiny = np.finfo(dtype).smallest_normal
    with np.errstate(invalid="ignore"):
        s = np.maximum(np.abs(np.asarray(scale, dtype=dtype)), tiny)
        return np.where(np.isfinite(s), REPLAY_ULPS * np.spacing(s).astype(np.float64), np.inf)


def replay_outputs(case: KernelCase, labels, pred: np.ndarray, params: dict, seed: np.ndarray | None = None) -> Replay | None:
    """The replay of ``case`` on a batch (see :func:`replay`): the cross-entropies' values by hand
    (bound: REPLAY_ULPS ulps of the scale) and their gradients (:func:`_cross_entropy_grad`), or
    the declared algorithm's values and gradients (:func:`cesym.keras.declared.replay_declared`);
    None where Keras has no function form to replay (the activity penalty). ``seed``: each row's
    upstream gradient in the dtype (a loss class's reduction: :func:`class_seeds`), default 1."""
    from ..verify.contract import definition  # noqa: PLC0415 - the registry imports this package's siblings

    pred = np.asarray(pred)
    loss = definition(case)
    dense = one_hot(labels, pred.shape[1]) if case.labels == "sparse" else labels
    if case.kernel in HAND_REPLAYED:
        got = replay_with_scale(case, labels, pred, params)
        if got is None:
            return None
        value, scale = got
        g, dg = _cross_entropy_grad(case, loss, dense, pred, params, seed)
        return Replay(value, _bound_of_scale(scale, pred.dtype), g, dg)
    if not str((case.keras or {}).get("function") or "").startswith("keras."):
        return None
    v, dv, g, dg = replay_declared(loss, dense, pred, params, loss.row_level, seed)
    return Replay(v, dv, g, dg)


def class_seeds(reduction: str, weights, rows: int, dtype) -> np.ndarray:
    """The upstream gradient of each row's loss in a Keras loss class, as TensorFlow rounds it:
    ``sum_over_batch_size`` divides the weighted sum by the batch size (its gradient 1/B, one
    division), the sample weights multiply it (one product; the weights cast to the dtype);
    ``sum`` and ``none`` (the gradient of the outputs' sum) pass the weights, or 1."""
    dt = np.dtype(dtype).type
    w = np.ones(rows, dt) if weights is None else np.asarray(weights).astype(dt)
    return w * (dt(1) / dt(rows)) if reduction == "sum_over_batch_size" else w  # 1·(1/B) is 1/B exactly


def class_values(rep: Replay, reduction: str, weights, dtype) -> tuple[np.ndarray, np.ndarray]:
    """A loss class's outputs from the replayed per-row values: ``none`` each value (times its
    weight, cast to the dtype: one product), else their sum (in TensorFlow's order, unknown:
    (B - 1)·eps of the terms' magnitude) and for ``sum_over_batch_size`` that over B (one
    division); with the bound of each."""
    dt = np.dtype(dtype).type
    eps = float(np.finfo(dt).eps)
    v = np.asarray(rep.value, dtype=dt).reshape(-1)
    dv = np.asarray(rep.value_bound, dtype=np.float64).reshape(-1)
    w = _Walk(dt, {}, 1, v.size)
    with np.errstate(all="ignore"):
        if weights is not None:
            wt = np.asarray(weights).astype(dt)
            t = v * wt
            dv = w.moved(t, np.abs(wt.astype(np.float64)) * dv)
            v = t
        if reduction == "none":
            return v, dv
        s = np.sum(v, dtype=dt)
        fa = float(np.sum(np.abs(v.astype(np.float64))))
        ds = float(np.sum(dv)) + max(v.size - 1, 0) * eps * fa
        ds = float(ds + (w.ulp(s) if ds > 0 else 0.0))
        if reduction == "sum_over_batch_size":
            q = s / dt(v.size)
            ds = float(ds / v.size + (w.ulp(q) if ds > 0 else 0.0))
            s = q
        return np.array([s], dt), np.array([ds])


# --- the cross-entropies' gradients ------------------------------------------------------------------
#
# Where TensorFlow differentiates Keras's composite ops (the clip, log, the where's of
# sigmoid_cross_entropy_with_logits), the ops are written as an algorithm and replayed backward by
# .declared; the fused softmax ops return their own gradient, softmax - labels, replayed here.

_TF_ALGORITHMS: dict[str, object] = {}  # case id -> the definition with TensorFlow's algorithm as ``keras``


def _tf_algorithm(case: KernelCase, loss):
    """``loss`` with ``keras`` set to the ops Keras 3.15's TensorFlow backend runs for ``case``
    (None for the fused softmax ops): ``clip_by_value`` is ``maximum(minimum(x, 1 - ε), ε)``."""
    import dataclasses

    import sympy as sp
    from sympy.codegen.cfunctions import log1p

    from ..define.primitives import C, RowSum

    if case.id in _TF_ALGORITHMS:
        return _TF_ALGORITHMS[case.id]
    eps = sp.Float(1e-7, 53)
    x = loss.prediction
    t = next((w for w in loss.weights if w.name == "t"), loss.label)

    def clip(v):
        return sp.Max(sp.Min(v, 1 - eps), eps)

    def sigmoid_xent(x, t):  # nn_impl: where(x >= 0, x, 0) - x·t + log1p(exp(where(x >= 0, -x, x)))
        return sp.Piecewise((x, x >= 0), (0, True)) - x * t + log1p(sp.exp(sp.Piecewise((-x, x >= 0), (x, True))))

    k, logits = case.kernel, case.keywords.get("from_logits", True)
    if k == "binary_crossentropy" and not logits:
        q = clip(x)
        expr = RowSum(-(t * sp.log(q) + (1 - t) * sp.log(1 - q))) / C
    elif k == "binary_crossentropy":
        expr = RowSum(sigmoid_xent(x, t)) / C
    elif k == "sigmoid_cross_entropy_with_logits":
        expr = sigmoid_xent(x, t)
    elif k == "categorical_crossentropy" and not logits:
        expr = -RowSum(t * sp.log(clip(x / RowSum(x))))
    else:
        expr = None
    out = None if expr is None else dataclasses.replace(loss, keras=expr)
    _TF_ALGORITHMS[case.id] = out
    return out


def _cross_entropy_grad(case: KernelCase, loss, dense, pred: np.ndarray, params: dict, seed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """TensorFlow's gradient of a cross-entropy's Keras path, replayed in the dtype, with its
    bound; ``seed``: each row's upstream gradient (default 1)."""
    algo = _tf_algorithm(case, loss)
    if algo is not None:
        _, _, g, dg = replay_declared(algo, dense, pred, params, algo.row_level, seed)
        return g, dg
    dt = pred.dtype.type
    ls = float(params.get("label_smoothing", 0.0))
    t = np.asarray(dense, dtype=pred.dtype)
    if ls:
        t = t * dt(1.0 - ls) + ls / dt(pred.shape[1])
    if case.keywords.get("from_logits", True):
        return _seeded(*_softmax_backprop(t, pred, np.zeros(pred.shape)), seed)
    # sparse on probabilities: log(clip(p)) into the sparse op, back through Log (g·reciprocal(q))
    # and the clip (g where 1e-7 <= p <= 1 - 1e-7, the ends included)
    lo, hi = bounds(dt)
    q = _clip(pred, dt)
    with np.errstate(all="ignore"):
        z = np.log(q)
        w = _Walk(dt, {}, pred.shape[1], pred.shape[0])
        bp, dbp = _seeded(*_softmax_backprop(t, z, TRANSCENDENTAL_ULPS * w.ulp(z)), seed)
        r = dt(1) / q
        fr = np.abs(r.astype(np.float64))
        g = bp * r
        dg = w.moved(g, dbp * fr + np.abs(bp.astype(np.float64)) * w.reciprocal_slack(q, r))
        inside = (pred >= dt(lo)) & (pred <= dt(hi))
        edge = (pred == dt(lo)) | (pred == dt(hi))  # the mask at a tie is the op order's: no claim
        g = np.where(inside, g, dt(0))
        dg = np.where(edge, np.inf, np.where(inside, dg, 0.0))
    return g, dg


def _seeded(g: np.ndarray, dg: np.ndarray, seed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The fused ops' gradient times each row's upstream (TensorFlow's ``grad_loss[:, None] *
    backprop``: one product), with its bound."""
    if seed is None:
        return g, dg
    dt = g.dtype.type
    u = np.asarray(seed, dtype=dt).reshape(-1, 1)
    w = _Walk(dt, {}, g.shape[1], g.shape[0])
    with np.errstate(all="ignore"):
        out = g * u
        return out, w.moved(out, np.abs(u.astype(np.float64)) * dg)


def _softmax_backprop(t: np.ndarray, z: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fused softmax ops' gradient ``exp(z - max z)/Σ exp(z - max z) - t`` (TensorFlow's xent
    kernels; the loss's upstream 1 multiplies it exactly), with its bound: ``dz`` the inputs'
    own, TRANSCENDENTAL_ULPS per exp, Eigen's order of the row sum ((C - 1)·eps of it)."""
    dt = z.dtype.type
    rows, n = z.shape
    w = _Walk(dt, {}, n, rows)
    with np.errstate(all="ignore"):
        m = np.max(z, axis=1, keepdims=True)
        shifted = z - m
        dshift = w.moved(shifted, dz + np.max(dz, axis=1, keepdims=True))
        e = np.exp(shifted)
        fe = e.astype(np.float64)
        de = fe * dshift + TRANSCENDENTAL_ULPS * w.ulp(e)
        s = _row_sum(e)[:, None]
        fs = s.astype(np.float64)
        ds = np.sum(de, axis=1, keepdims=True) + (n - 1) * w.eps * fs + w.ulp(s)
        p = e / s
        dp = w.moved(p, de / fs + p.astype(np.float64) * ds / fs)
        g = p - t
        return w.settle(g, w.moved(g, dp))


def near(value, bound, dtype) -> tuple[float, float] | None:
    """[value - bound, value + bound] (0 joined in where the value may be flushed to zero): where
    Keras's output must lie if the replay models it; None where either is not finite."""
    v, b = float(value), float(bound)
    if not (np.isfinite(v) and np.isfinite(b)):
        return None
    tiny = float(np.finfo(dtype).smallest_normal)
    lo, hi = v - b, v + b
    if abs(v) < tiny + b:  # TensorFlow flushes subnormal results to zero
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    return lo, hi


def near_bounds(value: np.ndarray, bound: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`near` elementwise, on the same float64 operations: ``(lo, hi, defined)``, ``defined``
    false where :func:`near` gives None (a value or bound not finite)."""
    v, b = np.asarray(value, dtype=np.float64), np.asarray(bound, dtype=np.float64)
    tiny = float(np.finfo(dtype).smallest_normal)
    with np.errstate(invalid="ignore", over="ignore"):
        lo, hi = v - b, v + b
        flush = np.abs(v) < tiny + b  # TensorFlow flushes subnormal results to zero
    return np.where(flush, np.minimum(lo, 0.0), lo), np.where(flush, np.maximum(hi, 0.0), hi), np.isfinite(v) & np.isfinite(b)


def agreement(replayed: np.ndarray, bound: np.ndarray, keras, dtype) -> tuple[int, int, float]:
    """(outputs of Keras equal to the replay's bit for bit, outputs compared, the largest distance
    of the others as a fraction of their bound, among those with a finite bound). NaN matches NaN,
    +0 matches -0; a subnormal counts as 0 (TensorFlow flushes them)."""
    r = np.asarray(replayed)
    k = np.asarray(keras, dtype=r.dtype).reshape(r.shape)
    same = (r == k) | (np.isnan(r) & np.isnan(k))
    b = np.broadcast_to(np.asarray(bound, dtype=np.float64), r.shape)
    both = np.isfinite(r) & np.isfinite(k) & np.isfinite(b) & ~same
    apart = 0.0
    if np.any(both):
        tiny = np.finfo(dtype).smallest_normal
        x, y = (np.where(np.abs(v[both]) < tiny, 0, v[both]).astype(np.float64) for v in (r, k))
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.abs(x - y) / b[both]
        frac = np.where(np.abs(x - y) == 0, 0.0, frac)
        apart = float(np.max(frac))
    return int(np.count_nonzero(same)), int(same.size), apart
