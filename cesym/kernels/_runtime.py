"""Runtime of the generated kernels: the stable primitives in NumPy, rows along the last axis.

Row-level results keep the reduced axis (``keepdims``) so they broadcast against the row.
These are the only hand-written numerics of the kernels; each is the printed form of a
primitive of :mod:`cesym.primitives`, whose docstring gives the mathematics.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "row_sum",
    "row_max",
    "rest_sum",
    "sigmoid",
    "softplus",
    "neg_log_softmax",
    "neg_log_normalized",
    "cross_rest",
    "xmul",
]


def row_sum(v: np.ndarray) -> np.ndarray:
    """Σ_c v_c along the last axis (NumPy's pairwise summation)."""
    return np.sum(v, axis=-1, keepdims=True)


def row_max(v: np.ndarray) -> np.ndarray:
    """max_c v_c along the last axis."""
    return np.max(v, axis=-1, keepdims=True)


def _first_argmax_mask(v: np.ndarray) -> np.ndarray:
    """True at the first largest element of each row (one element per row, ties included)."""
    k = np.argmax(v, axis=-1)[..., None]
    return np.arange(v.shape[-1]) == k


def rest_sum(v: np.ndarray) -> np.ndarray:
    r"""Σ_{c≠j} v_c for every element j, without cancellation.

    With k the row's argmax and r = Σ_{c≠k} v_c summed directly: ``r`` at k, and
    ``(v_k + r) - v_j`` elsewhere. For non-negative rows ``v_k + r >= 2 v_j`` when j ≠ k, so
    the subtraction loses at most a couple of bits, where ``Σ v - v_k`` loses them all when
    ``v_k`` carries the row.
    """
    k = _first_argmax_mask(v)
    r = np.sum(np.where(k, 0.0, v), axis=-1, keepdims=True)
    vk = np.sum(np.where(k, v, 0.0), axis=-1, keepdims=True)
    return np.where(k, r, (vk + r) - v)


def sigmoid(x: np.ndarray) -> np.ndarray:
    r"""σ(x) = 1/(1 + e^{-x}), as ``1/(1+e^{-x})`` for x >= 0 and ``e^{x}/(1+e^{x})`` for x < 0.

    ``e^{-|x|}`` never overflows, and σ(x) for very negative x is e^{x}(1 - e^{x}) to full
    relative accuracy instead of 1/(1 + huge).
    """
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(x: np.ndarray) -> np.ndarray:
    r"""log(1 + e^{x}) as max(x, 0) + log1p(e^{-|x|}) (``numpy.logaddexp(0, x)``).

    ``log1p(exp(x))`` overflows to inf past x = 709.78 (88.72 in float32).
    """
    return np.logaddexp(0.0, x)


def neg_log_softmax(z: np.ndarray) -> np.ndarray:
    r"""-log softmax(z)_j = (m - z_j) + log1p(Σ_{c≠k} e^{z_c - m}), m = max z, k = argmax z.

    Both terms are non-negative, so nothing cancels: a class winning by 300 gets its true loss
    (about e^{-300}) rather than the 0 of ``logsumexp(z) - z_j``. Exactly one maximal element
    (the first) is left out of the sum, so ties count e^0 = 1 for the others.
    """
    k = _first_argmax_mask(z)
    m = np.sum(np.where(k, z, 0.0), axis=-1, keepdims=True)
    t = np.sum(np.where(k, 0.0, np.exp(z - m)), axis=-1, keepdims=True)
    return (m - z) + np.log1p(t)


def neg_log_normalized(p: np.ndarray) -> np.ndarray:
    r"""-log(p_j / Σ_c p_c) = log1p(r_j / p_j), r_j = Σ_{c≠j} p_c (see :func:`rest_sum`).

    When ``r_j/p_j`` overflows (p_j tiny, float64) the value is above 709 and
    ``log(p_j + r_j) - log(p_j)`` has no cancellation to fear. p_j = 0 gives +inf.
    """
    r = rest_sum(p)
    q = r / p
    out = np.log1p(q)
    big = np.isinf(q) & (p > 0)
    if np.any(big):
        out = np.where(big, np.log(p + r) - np.log(np.where(big, p, 1.0)), out)
    return out


_LN2 = float(np.log(2.0))


def cross_rest(t: np.ndarray, z: np.ndarray) -> np.ndarray:
    r"""N_j = Σ_{c≠j} (t_c e_j - t_j e_c) = T e_j - t_j E, e = exp(z - max z): the softmax-gradient numerator.

    First ``e_j·r^t_j - t_j·r^e_j`` (:func:`rest_sum`): exact in form for one-hot labels. Where
    that difference has cancelled more than two bits (two labelled classes, or uniform labels,
    with close logits: for logits near 0, 1 - exp(-3e-16) keeps no digit), the element is
    recomputed from ``t_j (k e_j - E) + t_j (r - k) e_j`` with ``r = T/t_j``, ``k = rint(r)``:
    ``k e_j - E = Σ_{c∈P}(e_j - e_c) - Σ_{c∉P} e_c`` where P holds the k classes whose logits
    are closest to z_j (j among them), and each ``e_j - e_c`` of a close pair is
    ``-e_j·expm1(z_c - z_j)``. What cancels then is only what the inputs' condition allows.
    Cost: O(C log C) for each recomputed element; none for rows without cancellation.
    """
    m = row_max(z)
    e = np.exp(z - m)
    rt, re = rest_sum(t), rest_sum(e)
    a, b = e * rt, t * re
    out = a - b
    bad = (np.abs(out) < 0.25 * (np.abs(a) + np.abs(b))) & (t != 0)
    if not np.any(bad):
        return out
    rows = np.nonzero(bad)  # flagged elements: leading indices and j
    zr = z[rows[:-1]]  # (F, C): the row of each flagged element
    er, tr = e[rows[:-1]], t[rows[:-1]]
    j = rows[-1]
    f = np.arange(len(j))
    zj, ej, tj = zr[f, j], er[f, j], tr[f, j]
    r = (rt[bad] + tj) / tj  # T / t_j
    k = np.clip(np.rint(r), 1, z.shape[-1])
    d = zr - zj[:, None]  # z_c - z_j
    dist = np.where(np.arange(z.shape[-1]) == j[:, None], -1.0, np.abs(d))  # j itself is always in P
    rank = np.argsort(np.argsort(dist, axis=-1, kind="stable"), axis=-1, kind="stable")
    near = rank < k[:, None]
    with np.errstate(over="ignore", invalid="ignore"):
        diff = np.where(np.abs(d) < _LN2, -ej[:, None] * np.expm1(d), ej[:, None] - er)  # e_j - e_c
    pairs = np.sum(np.where(near, diff, 0.0), axis=-1)
    rest = np.sum(np.where(near, 0.0, er), axis=-1)
    out[bad] = tj * ((pairs - rest) + (r - k) * ej)
    return out


def xmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a·b with 0·b = 0 for any b (0·log 0 = 0, 0·inf = 0)."""
    return np.where(a == 0, 0.0, a * b)
