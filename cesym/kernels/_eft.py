r"""Float64 evaluation that knows when it is exact: error-free transformations (Knuth's TwoSum,
Dekker's TwoProduct) on every operation of a rational stable form.

Losses built from + − × ÷, |·|, max and branches (squared error, Huber, hinge, MAE) on float32
inputs are often *exact* in float64: (p − y)²/2 of two float32 numbers has at most 50
significant bits. An exact value that falls on a float32 midpoint is a tie, rounded to even by
the float32 cast, which is right; but the rounding test of :mod:`._rounding` cannot tell an
exact tie from a value that merely lies near one (for Huber on integer labels, 3.6% of random
inputs). These forms are evaluated again on the flagged outputs with every operation's rounding
error computed exactly (:class:`Tracker`); where every error is zero, the float64 value is the
exact value and its float32 cast is correct. The rest go to the decimal path (:mod:`._exact`).

TwoSum: ``s = a + b``, ``e = (a - (s - b')) + (b - b')`` with ``b' = s - a``: ``s + e = a + b``
exactly (Knuth, TAOCP vol. 2, 4.2.2). TwoProduct: Dekker's split into 26-bit halves, exact when
no product underflows or overflows (|a|, |b| < 2^996, products above 2^-969; outside that the
operation counts as inexact, which only sends the output to the decimal path). Division: the
remainder ``a - q·b``, by TwoProduct, is zero exactly when the quotient is exact.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["Tracker"]

_SPLIT = 134217729.0  # 2^27 + 1
_SAFE_HI = 2.0**996
_SAFE_LO = 2.0**-969


def _two_prod_err(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> np.ndarray:
    """a·b - fl(a·b), exactly, by Dekker's algorithm (no FMA in NumPy)."""
    ca = _SPLIT * a
    ah = ca - (ca - a)
    al = a - ah
    cb = _SPLIT * b
    bh = cb - (cb - b)
    bl = b - bh
    return ((ah * bh - p) + ah * bl + al * bh) + al * bl


class Tracker:
    """Operations on float64 arrays that record, per element, whether any rounding happened
    (``inexact``). Values broadcast to the tracked shape."""

    def __init__(self, shape: tuple[int, ...]):
        self.inexact = np.zeros(shape, dtype=bool)

    def _mark(self, bad) -> None:
        bad = np.asarray(bad)
        if bad.ndim and bad.shape[-1] not in (1, self.inexact.shape[-1]):  # part of a row (row_sum)
            bad = bad.any(axis=-1, keepdims=True)
        self.inexact |= np.broadcast_to(bad, self.inexact.shape)

    def add(self, a, b) -> np.ndarray:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        s = a + b
        bv = s - a
        e = (a - (s - bv)) + (b - bv)
        self._mark((e != 0) | ~np.isfinite(s))
        return s

    def mul(self, a, b) -> np.ndarray:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        p = a * b
        with np.errstate(over="ignore", invalid="ignore"):
            e = _two_prod_err(a, b, p)
        aa, ab, ap = np.abs(a), np.abs(b), np.abs(p)
        unsafe = (aa >= _SAFE_HI) | (ab >= _SAFE_HI) | ((ap < _SAFE_LO) & (p != 0) ) | ~np.isfinite(p)
        self._mark((e != 0) | unsafe)
        return p

    def div(self, a, b) -> np.ndarray:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = a / b
        t = Tracker(np.broadcast_shapes(q.shape, self.inexact.shape))
        qb = t.mul(q, b)
        rem = (a - qb) - _two_prod_err(q, b, qb)
        self._mark((rem != 0) | t.inexact | ~np.isfinite(q))
        return q

    def power(self, a, n: int) -> np.ndarray:
        if n < 0:
            return self.div(1.0, self.power(a, -n))
        out = np.ones_like(np.asarray(a, dtype=np.float64))
        for _ in range(n):
            out = self.mul(out, a)
        return out

    def where(self, cond, first: Callable[[], np.ndarray], second: Callable[[], np.ndarray]) -> np.ndarray:
        """``first()`` where ``cond``, else ``second()``; each branch's roundings count only
        where it is taken."""
        cond = np.broadcast_to(cond, self.inexact.shape)
        saved = self.inexact
        self.inexact = np.zeros_like(saved)
        a = first()
        ia = self.inexact
        self.inexact = np.zeros_like(saved)
        b = second()
        ib = self.inexact
        self.inexact = saved | np.where(cond, ia, ib)
        return np.where(cond, a, b)

    def xmul(self, a, b) -> np.ndarray:
        """a·b with 0·b = 0 (0·inf = 0)."""
        zero = np.asarray(a) == 0
        return self.where(zero, lambda: np.zeros(np.broadcast_shapes(np.shape(a), np.shape(b))),
                          lambda: self.mul(np.where(zero, 1.0, a), b))

    def row_sum(self, v) -> np.ndarray:
        """Σ over the last axis, keepdims, each addition tracked: pairwise, so that a row of C
        takes log2 C tracked additions of whole arrays (an exact sum is the same in any order)."""
        v = np.asarray(v, dtype=np.float64)
        if v.shape[-1] == 0:
            return np.zeros(v.shape[:-1] + (1,))
        while v.shape[-1] > 1:
            h = v.shape[-1] // 2
            s = self.add(v[..., :h], v[..., h : 2 * h])
            v = np.concatenate([s, v[..., 2 * h :]], axis=-1) if v.shape[-1] % 2 else s
        return v
