"""Runtime of the generated kernels: the stable primitives in NumPy, rows along the last axis.

Row-level results keep the reduced axis (``keepdims``) so they broadcast against the row.
These are the only hand-written numerics of the kernels; each is the printed form of a
primitive of :mod:`cesym.define.primitives`, whose docstring gives the mathematics.

A row longer than a block is evaluated in pieces (:mod:`._pieces`): there each row-level
primitive has a piecewise form (section "Rows in pieces" at the end), which computes this
piece's partial of a row reduction, combined over the pieces by a rule of its own, and the
element-level part from full-row values once they are known. Its branches depend on those
full-row values only.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np

from . import _pieces
from ._pieces import active as _piece

__all__ = [
    "width",
    "row_sum",
    "row_max",
    "max_share",
    "weighted_row_sum",
    "divide_rows",
    "log1p_diff",
    "log_ratio",
    "log_ratio_nonzero",
    "max_minus_sum",
    "sum_squares",
    "norm2",
    "rest_sum",
    "sigmoid",
    "exp_min0",
    "softplus",
    "log1mexp",
    "log_expm1",
    "log_weight",
    "logcosh",
    "expm1mx",
    "pow1p",
    "pow1pm1",
    "powm1",
    "pow_shift",
    "scaled_pow",
    "scaled_exp",
    "inf_or",
    "neg_log_softmax",
    "off_max_sum",
    "softmax_parts",
    "neg_log_normalized",
    "weighted_neg_log_normalized",
    "cross_rest",
    "at_label",
    "rest_at_label",
    "one_hot",
    "one_hot_rest",
    "scatter_label",
    "one_hot_cross_rest",
    "xmul",
    "heaviside",
    "maximum",
    "minimum",
    "all_finite",
    "nan_or",
    "guarded",
    "scale_rows",
    "scale_quotient",
    "where",
    "softmax_rest",
    "normalized_rest",
]


# Rows this short are not reduced by NumPy's reductions along the last axis, which cost 2-5 ns
# per element (a loop per row): sums by einsum, maxima by a column tree (0.2-0.7 ns).
_TINY = float(np.finfo(np.float64).tiny)  # the smallest positive normal float64
_SHORT_ROW = 16
_EXACT_INT = 2.0**53  # whole numbers below this add exactly in float64


def width(v: np.ndarray) -> int:
    """C, the length of the rows of ``v`` (the whole row's when ``v`` is a piece of one)."""
    ctx = _piece()
    return v.shape[-1] if ctx is None else ctx.width


def _columns(v: np.ndarray) -> list[np.ndarray]:
    return [v[..., c : c + 1] for c in range(v.shape[-1])]


def _tree(op, cols: list[np.ndarray]) -> np.ndarray:
    """``op`` folded over ``cols`` as a balanced tree (used for row maxima of short rows)."""
    while len(cols) > 1:
        nxt = [op(cols[i], cols[i + 1]) for i in range(0, len(cols) - 1, 2)]
        if len(cols) % 2:
            nxt.append(cols[-1])
        cols = nxt
    return cols[0] if cols[0].base is None else cols[0].copy()


def row_sum(v: np.ndarray) -> np.ndarray:
    """Σ_c v_c along the last axis.

    Short rows (<= 16): ``einsum('ij->i')``, NumPy's SIMD sum-of-products loop, in one pass
    over the block (8 lanes, then the lanes and the tail: a few roundings). A column tree
    reads the whole block once per column (a column of rows of 10 touches every cache line),
    which made the sums the slowest part of the kernels on 2^17-element blocks; NumPy's
    ``add.reduce`` along a short last axis pays a loop per row. The order depends on NumPy's
    build and the CPU's SIMD, not on where a row sits in memory (tests/test_blocks.py checks
    that blocks and threads change no byte). Long rows: NumPy's pairwise sum.
    """
    if _piece() is not None:
        return _pieces.reduce(lambda: _row_sum(v), _sum_parts)
    return _row_sum(v)


def _row_sum(v: np.ndarray) -> np.ndarray:
    if 0 < v.shape[-1] <= _SHORT_ROW and v.ndim == 2:
        return np.einsum("ij->i", v)[:, None]
    return np.sum(v, axis=-1, keepdims=True)


def row_max(v: np.ndarray) -> np.ndarray:
    """max_c v_c along the last axis (NaN if the row holds one)."""
    if _piece() is not None:
        return _pieces.reduce(lambda: _row_max(v), _max_parts)
    return _row_max(v)


def _row_max(v: np.ndarray) -> np.ndarray:
    if 0 < v.shape[-1] <= _SHORT_ROW:
        return _tree(np.maximum, _columns(v))
    return np.max(v, axis=-1, keepdims=True)


def weighted_row_sum(v: np.ndarray, a, s: np.ndarray | None = None) -> np.ndarray:
    """a·Σ_c v_c along the last axis (``a`` row-level): ``a*row_sum(v)``, the same operations and
    numbers, but where that overflows (or is NaN from inf·0) with every term and ``a`` finite
    (a mean of terms near the largest float whose sum is not), as :func:`sum_squares` does: the
    terms scaled by the power of two next to their largest magnitude (exact), summed, multiplied
    by a's mantissa, and the exact power of two put back last (inf only where the result is).
    ``s``: ``row_sum(v)`` when the caller has it already. A row in pieces keeps the plain product."""
    if _piece() is not None:
        return a * (row_sum(v) if s is None else s)
    if s is None:
        s = _row_sum(v)
    with np.errstate(over="ignore", invalid="ignore"):
        out = a * s
    if np.all(np.isfinite(out)):
        return out
    A = np.broadcast_to(a, s.shape)
    bad = (~np.isfinite(out) & np.isfinite(A))[..., 0] & np.all(np.isfinite(v), axis=-1)
    if not np.any(bad):
        return out
    vb = v[bad]
    _, k = np.frexp(np.max(np.abs(vb), axis=-1, keepdims=True))
    out = np.array(np.broadcast_to(out, s.shape))
    with np.errstate(over="ignore"):
        out[bad] = _ssq_finish(k, _row_sum(np.ldexp(vb, -k)), A[bad])  # a·2^k·S, the power of two last
    return out


def log1p_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(1 + a) - log(1 + b) without cancellation, as ``±log1p(|a - b| / min(1 + a, 1 + b))``:
    the log of the ratio of the larger of 1 + a, 1 + b to the smaller, whose argument
    ``x = |a - b|/min >= 0`` carries three roundings (relative) and log1p(x) passes them on
    damped by x/((1 + x)·log1p(x)) <= 1: a few ulps, wherever the result lies (a - b keeps the
    digits of a small difference that 1 + a - (1 + b) would lose). Where x overflows (a ratio
    past 2^1000: 1 + b near 0 against a huge a) the difference of the two log1p, which is
    large there and cannot cancel. One log1p per element, where the log of the ratio near 1
    and the log1p of the difference both took one."""
    with np.errstate(all="ignore"):
        d = a - b
        x = np.abs(d)
        x /= 1 + np.minimum(a, b)  # = min(1 + a, 1 + b): rounding is monotone
        out = np.copysign(np.log1p(x), d)
        if not np.max(x, initial=-np.inf) < 2.0**1000:  # one pass; NaN (an infinite input, or 0/0) fails it too
            far = ~(x < 2.0**1000)
            np.copyto(out, np.log1p(a) - np.log1p(b), where=far)
    return out


def log_ratio(w: np.ndarray, v: np.ndarray, d: np.ndarray | None = None) -> np.ndarray:
    """log(w/v) for w, v >= 0, accurate to itself (:class:`cesym.define.primitives.LogRatio`):
    ``±log1p(|w - v|/min(w, v))``, the log of the larger over the smaller, as
    :func:`log1p_diff` (``w - v`` keeps the digits of a small difference that ``log w - log v``
    loses: KL divergence's terms at a prediction a float32 ulp from its target), exactly 0 at
    w = v, -inf at w = 0 < v, inf at v = 0 < w; ``-log v`` where w = 1 (as accurate). log1p of
    a non-negative x, the sign of w - v set in its bits (``copysign`` costs 3x an ``or``).
    Where the quotient overflows (a ratio past 2^1000, float64 inputs), ``log w - log v``,
    which cannot cancel there. ``d``: w - v where it has a shorter form than the difference of
    the two computed numbers (Jensen–Shannon's 2p - (p + y) = p - y: the rounded sum p + y
    loses the digits of p - y where p is near y)."""
    w = np.asarray(w, dtype=np.float64)
    given = d is not None  # (then v is a computed number: -log v at w = 1 would keep its rounding)
    with np.errstate(all="ignore"):
        if not given:
            d = w - v
        else:
            d = np.asarray(d, dtype=np.float64)
            d = np.broadcast_to(d, np.broadcast_shapes(d.shape, w.shape, np.shape(v)))
        x = np.abs(d)
        x /= np.minimum(w, v)
        out = np.log1p(x)
        bits = out.view(np.int64)
        bits |= d.view(np.int64) & np.int64(-(2**63))  # log1p(x) >= 0 (or NaN): the sign of w - v
        if not np.max(x, initial=-np.inf) < 2.0**1000:  # one pass; NaN (inf/inf, 0/0) fails it too
            far = ~(x < 2.0**1000)
            np.copyto(out, np.log(w) - np.log(v), where=far)
        one = w == 1
        if not given and one.any():
            one, vv = np.broadcast_arrays(one, v)
            out[one] = -np.log(vv[one])
    return out


def log_ratio_nonzero(w: np.ndarray, v: np.ndarray, d: np.ndarray | None = None) -> np.ndarray:
    """:func:`log_ratio` inside ``XMul(w, ·)``, any number where w is 0 (the product is 0
    there: :class:`cesym.generate.lowerings.LogRatioNonzero`). A block of hard labels (all 0
    and 1, looked for where the first row holds a 0) is ``-log v`` throughout: the number
    log_ratio gives wherever w = 1, for one log and no quotient or log1p; not where ``d`` is
    given (v is then a computed number, whose log keeps its rounding)."""
    w = np.asarray(w, dtype=np.float64)
    if d is None and w.ndim and w.size and not np.all(w.reshape(-1)[: w.shape[-1]]):
        if np.count_nonzero(w) == np.count_nonzero(w == 1):
            with np.errstate(all="ignore"):
                out = np.log(np.broadcast_to(v, w.shape))
            return np.negative(out, out=out)
    return log_ratio(w, v, d)


def _at_most_one_per_row(g: np.ndarray) -> bool:
    """Every row of the 2-D ``g`` holds at most one non-zero element: the counts as a row sum of
    the 0/1 bytes (einsum in uint8, exact below 256 columns; float64 above), which
    ``count_nonzero(g, axis=-1)``'s loop per short row takes 2.5x as long for."""
    nonzero = g != 0
    if g.shape[-1] < 256:
        return bool(np.all(np.einsum("ij->i", nonzero.view(np.uint8)) <= 1))
    return bool(np.all(_row_sum(nonzero.astype(np.float64)) <= 1))


def max_minus_sum(f: np.ndarray, g: np.ndarray) -> np.ndarray:
    """max_c f_c - Σ_c g_c as max_c (f_c - g_c - Σ_{c'≠c} g_c'): each candidate's own f_c - g_c
    formed first (exact where they are equal), the rest of the sum without cancellation.

    Rows with at most one non-zero g (one-hot labels times scores) take ``max f - Σ g``: Σ g is
    that element, exact, and each candidate's one rounding is then the same number (rounding
    is monotone), at a third of the passes."""
    if _piece() is None and g.ndim == 2 and _at_most_one_per_row(g):
        return row_max(f) - row_sum(g)
    return row_max((f - g) - rest_sum(g))


def max_share(v: np.ndarray, m: np.ndarray | None = None) -> np.ndarray:
    """[v_j = max_c v_c] / #{c : v_c = max_c v_c} along the last axis: 1 at a unique maximum,
    1/k at each of k tied ones, 0 elsewhere (TensorFlow's gradient of ``reduce_max``); NaN
    throughout a row that holds NaN. ``m``: the row maxima, if already computed."""
    top = v == (row_max(v) if m is None else m)
    with np.errstate(invalid="ignore"):  # a NaN row: no maximum, 0/0
        return top / row_sum(top.astype(v.dtype))


# A finite plain sum of squares at least this lost nothing that matters to subnormal squares:
# each of its n <= 2^53 terms below 2^-1022 is off by at most 2^-1075, together <= 2^-1022,
# 2^-122 of the sum. Above it, every square and partial sum is exact to a rounding, as the sum.
_SSQ_LOW = 2.0**-900
_F64_MAX = float(np.finfo(np.float64).max)
_F64_TINY = float(np.finfo(np.float64).tiny)  # 2^-1022, the least normal float64


def sum_squares(x: np.ndarray, a=1.0) -> np.ndarray:
    r"""a·Σ_c x_c² along the last axis (row-level, ``a`` row-level), overflowing or underflowing
    only where the result does.

    Fast path, wherever the plain sum ``s = Σ x²`` is finite and at least 2^-900 (all ordinary
    rows): ``a·s``, the same operations as ``a*row_sum(x**2)`` and no other pass. Other rows
    (a square past 1.8e308, |x| > 1.3e154; or squares in the subnormals, whose digits are lost,
    |x| < 1.5e-154), as LAPACK's nrm2 does: with ``m = 2^k`` next to ``max|x|`` (max|x|/m in
    [1, 2)), ``x/m`` is exact and ``S = Σ (x/m)²`` lies in [1, 4n); with ``a = a'·2^e``
    (frexp, |a'| in [0.5, 1)) the result is ``ldexp(a'·S, e + 2k)``: one rounding in a'·S,
    which cannot overflow, and the exact power of two last, which overflows or rounds into the
    subnormals only where the result does. Rows of zeros give 0; a row holding ±inf or NaN
    keeps the plain ``a·s`` (inf, or NaN).

    A row in pieces: each piece gives ``(0, s_p)`` when its plain sum is in range, else its
    scaled ``(2k_p, S_p)``; combined by NumPy's pairwise sum of the s_p when every piece is in
    range and so is the total (the numbers of ``row_sum``), else as ``Σ_p S_p·2^(2k_p - T)``
    with T the largest exponent of a piece's value, and the row's result ``a·2^T·that``.
    """
    if _piece() is not None:
        part = _pieces.reduce(lambda: _ssq_parts(x), _ssq_combine)
        if isinstance(part, _pieces.Pending) or isinstance(a, _pieces.Pending):
            return _pieces.Pending(lambda known: _ssq_finish(*_pieces.resolve(part, known), _pieces.resolve(a, known)))
        return _ssq_finish(*part, a)
    s = _row_sum(x**2)
    ok = _ssq_in_range(s)
    if np.all(ok):
        return a * s
    out = a * s
    bad = ~ok[..., 0]
    E, S = _ssq_scaled(x[bad], s[bad])
    out = np.array(np.broadcast_to(out, s.shape))
    out[bad] = _ssq_finish(E, S, np.broadcast_to(a, s.shape)[bad])
    return out


def _ssq_in_range(s: np.ndarray) -> np.ndarray:
    """Plain row sums of squares that are exact to their roundings (see ``_SSQ_LOW``)."""
    return (s >= _SSQ_LOW) & (s <= _F64_MAX)


def _ssq_scaled(x: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(E, S)`` with Σ x² = 2^E·S for rows ``x`` whose plain sums ``s`` are out of range:
    E = 2k, S = Σ (x·2^-k)² with 2^k <= max|x| < 2^(k+1); rows of zeros, ±inf or NaN: (0, s)."""
    if x.shape[-1] == 0:  # empty rows: Σ = 0
        return np.zeros(s.shape, dtype=np.int64), s
    mx = np.max(np.abs(x), axis=-1, keepdims=True)
    fine = np.isfinite(mx) & (mx > 0)
    k = np.frexp(np.where(fine, mx, 1.0))[1].astype(np.int64) - 1
    # exact: a power of two (an element far below the maximum may lose digits in the
    # subnormals, its square then far below the last bit of S >= 1); rows of zeros, ±inf or
    # NaN are scaled by 1 and their S discarded
    with np.errstate(over="ignore", invalid="ignore"):
        S = _row_sum(np.ldexp(x, -k) ** 2)
    return np.where(fine, 2 * k, 0), np.where(fine, S, s)


def _ssq_finish(E: np.ndarray, S: np.ndarray, a) -> np.ndarray:
    """a·2^E·S: ``a·S`` where E = 0 (the plain sum), else ``ldexp(a'·S, e + E)`` with a = a'·2^e."""
    E = np.asarray(E)
    plain = a * S
    if not np.any(E):
        return plain
    ma, ea = np.frexp(a)
    return np.where(E == 0, plain, np.ldexp(ma * S, ea + E))


def _ssq_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A piece's partial of :func:`sum_squares`: (0, its plain sum) in range, else its scaled (E, S)."""
    s = _row_sum(x**2)
    if np.all(_ssq_in_range(s)):
        return np.zeros(s.shape, dtype=np.int64), s
    return _ssq_scaled(x, s)


def _ssq_combine(parts: list) -> tuple[np.ndarray, np.ndarray]:
    """The pieces' (E_p, S_p) in order -> the row's (E, S) with Σ x² = 2^E·S (see :func:`sum_squares`)."""
    E = np.concatenate([p[0] for p in parts], axis=-1)
    S = np.concatenate([p[1] for p in parts], axis=-1)
    zero = np.zeros((1, 1), dtype=np.int64)
    if not np.all(np.isfinite(S)):  # ±inf or NaN in the row: the plain inf or NaN
        return zero, _sum_parts([p[1] for p in parts])
    if not np.any(E):
        total = _sum_parts([p[1] for p in parts])
        if bool(np.all(_ssq_in_range(total))) or not np.any(S):
            return zero, total  # the numbers of row_sum(x**2)
    live = S > 0
    t = np.where(live, E + np.frexp(np.where(live, S, 1.0))[1], np.iinfo(np.int64).min)
    T = np.max(t, axis=-1, keepdims=True)  # the largest piece: 2^E_p·S_p < 2^T
    return T, np.sum(np.ldexp(S, E - T), axis=-1, keepdims=True)


def norm2(x: np.ndarray) -> np.ndarray:
    r"""sqrt(Σ_c x_c²) along the last axis (row-level), overflowing or underflowing only where
    the norm does.

    Fast path, wherever the plain sum ``s = Σ x²`` is in range (see :func:`sum_squares`):
    ``sqrt(s)``. Other rows (|x| past 1.3e154, whose squares overflow although the norm of a
    row of 1e200s is 1.4e200; squares in the subnormals, a row of 1e-200s whose norm is not
    0): the scaled ``Σ x² = 2^E·S`` of :func:`sum_squares` (E even), and ``2^(E/2)·sqrt(S)``,
    one rounding in the square root and an exact power of two. A row in pieces: the partials
    and combination of :func:`sum_squares`, then the same square root.
    """
    if _piece() is not None:
        part = _pieces.reduce(lambda: _ssq_parts(x), _ssq_combine)
        if isinstance(part, _pieces.Pending):
            return _pieces.Pending(lambda known: _norm_finish(*_pieces.resolve(part, known)))
        return _norm_finish(*part)
    s = _row_sum_squares(x)
    ok = _ssq_in_range(s)
    if np.all(ok):
        return np.sqrt(s)
    out = np.sqrt(s)
    bad = ~ok[..., 0]
    out[bad] = _norm_finish(*_ssq_scaled(x[bad], s[bad]))
    return out


def _row_sum_squares(x: np.ndarray) -> np.ndarray:
    """Σ_c x_c² along the last axis: for short 2-D rows NumPy's einsum sum of products, one pass
    and no array of squares (its own order of additions, not that of ``row_sum(x**2)``: norm2
    is the only user); otherwise ``row_sum(x**2)``."""
    if 0 < x.shape[-1] <= _SHORT_ROW and x.ndim == 2:
        return np.einsum("ij,ij->i", x, x)[:, None]
    return _row_sum(x**2)


def _norm_finish(E: np.ndarray, S: np.ndarray) -> np.ndarray:
    """sqrt(2^E·S): ``sqrt(S)`` where E = 0, else ``ldexp(sqrt(S·2^(E mod 2)), E div 2)``
    (E is even for one block's rows; a combination of pieces can make it odd)."""
    E = np.asarray(E)
    if not np.any(E):
        return np.sqrt(S)
    odd = E % 2
    return np.ldexp(np.sqrt(np.ldexp(S, odd)), (E - odd) // 2)


def _whole(v: np.ndarray) -> bool:
    """Every element a whole number (the first row is looked at first: probabilities fail there)."""
    head = v[:1]
    return bool(np.array_equal(head, np.rint(head)) and np.array_equal(v, np.rint(v)))


def _negative_head(v: np.ndarray) -> bool:
    """The first row holds a negative element: signed rows, known without a pass over the block."""
    return bool(v.size) and bool(np.any(v[:1] < 0))


def _nonnegative_rows(v: np.ndarray, s: np.ndarray) -> bool:
    """2-D rows with no negative element (NaN aside) and row sums ``s`` below 2^53: the domain
    of :func:`rest_sum`'s direct recomputation of a dominant element (at most one per row)."""
    return v.ndim == 2 and np.fmin.reduce(v, axis=None) >= 0 and bool(np.all(s < _EXACT_INT))


def _rows_without(v: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A copy of ``v[rows]`` with element ``cols`` of each replaced by 0: the other elements of
    the few rows whose j dominates."""
    q = np.take(v, rows, axis=0)  # a gather by fancy indexing costs 3x np.take
    q[np.arange(rows.size), cols] = 0.0
    return q


def _sum_without(v: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Row sums of ``v[rows]`` with element ``cols`` of each left out (replaced by 0):
    Σ_{c≠j} v_c summed directly, for the few rows whose j dominates (see :func:`rest_sum`)."""
    return row_sum(_rows_without(v, rows, cols))


def _along_rows(s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A new float64 array of ``v``'s shape with the row-level ``s`` (rows, 1) along each row."""
    if s.shape == v.shape[:-1] + (1,):
        return np.repeat(s, v.shape[-1], axis=-1).astype(np.float64, copy=False)
    return np.array(np.broadcast_to(s, v.shape), dtype=np.float64)


def _row_operand(k, x):
    """``k``, repeated along the rows of ``x`` where it is row-level (rows, 1) against 2-D rows
    of more than one element (NumPy pays a loop per row for such a broadcast operand: 2-3x a
    plain operation); as it is otherwise (scalars, pending values of a row in pieces)."""
    if isinstance(x, np.ndarray) and isinstance(k, np.ndarray) and x.ndim == 2 and k.shape == (x.shape[0], 1) and x.shape[1] > 1:
        return _along_rows(k, x)
    return k


def scale_rows(x, k):
    """``x·k`` by a row-level ``k``: k repeated along the row once; the same numbers."""
    return x * _row_operand(k, x)


def scale_quotient(n, d, k, b):
    """``nan_or(n/d, b)·k`` by a row-level ``k`` (as :func:`scale_rows`), and ``(n·k)/d`` where
    that product is ±inf at a finite ``n``: the quotient overflows where the result, within a
    factor ``1/k`` of the largest float, does not (the Poisson gradient ((p - y)/p)/C at
    p = 1e-304, y = 2e4: -9.4e307 for C = 3). There ``|n| > max·|d|``, so ``n·k`` is far from the
    subnormals (``|n·k| > max·|d|·|k|``), and ``(n·k)/d`` rounds twice, as ``(n/d)·k`` does;
    where ``d`` is 0 it is the same ±inf. ``b`` as in :func:`nan_or`."""
    out = scale_rows(nan_or(n / d, b), k)
    if _pieces.unknown(out) or all_finite(out):
        return out
    out = np.array(out, dtype=np.float64)
    k = np.broadcast_to(k, out.shape)  # out has the broadcast shape of n/d and k already
    n = np.broadcast_to(n, out.shape)
    d = np.broadcast_to(d, out.shape)
    redo = np.isinf(out) & np.isfinite(n)
    out[redo] = (n[redo] * k[redo]) / d[redo]
    return out


def hypot1(u):
    r"""sqrt(1 + u²) as ``numpy.hypot(1, u)``: no overflow of u² (u = 1e200 gives 1e200)."""
    return np.hypot(1.0, u)


def hypot1m1(u):
    r"""sqrt(1 + u²) - 1 as |u|·(|u|/(hypot(1, u) + 1)): no cancellation for small u (u²/2 to
    the last digit at u = 1e-8, where the difference is 0) and no overflow of u² for large u
    (the quotient lies in [0, 1)). ±inf gives inf (the quotient inf/inf taken as its limit 1 by
    ``fmin``, which passes every other quotient), NaN NaN."""
    a = np.abs(u)
    with np.errstate(invalid="ignore"):
        return a * np.fmin(a / (np.hypot(1.0, a) + 1.0), 1.0)


def log1p_square(u):
    r"""log(1 + u²): ``log1p(u·u)`` for |u| <= 1, ``2·log|u| + log1p((1/|u|)²)`` above (u² would
    overflow past 1.3e154, where the value is about 709; the two parts are positive, so their sum
    does not cancel). ±inf gives inf, NaN NaN."""
    a = np.abs(u)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        small = np.log1p(a * a)
        r = 1.0 / a
        big = 2.0 * np.log(a) + np.log1p(r * r)
    return np.where(a <= 1.0, small, big)


def hypot_share(u):
    r"""u/sqrt(1 + u²) as ``u/hypot(1, u)``, and ±1 at u = ±inf (inf/inf there)."""
    with np.errstate(invalid="ignore"):
        r = np.divide(u, np.hypot(1.0, u))
    return np.where(np.isinf(u), np.sign(u), r)


def _off_range(n) -> np.ndarray | None:
    """The rows (flat indices) whose row-level norm ``n`` is not a normal float (past 1.8e308, or
    below 2^-1022); None where there are none or ``n`` is not a (rows, 1) array."""
    if not isinstance(n, np.ndarray) or n.ndim != 2 or n.shape[-1] != 1:
        return None
    with np.errstate(invalid="ignore"):
        bad = ~((n[:, 0] >= _F64_TINY) & (n[:, 0] <= _F64_MAX))
    return np.flatnonzero(bad) if np.any(bad) else None


def _norm_scaled(xr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""(fine, k, r) for rows ``xr``: ‖x‖ = 2^k·r exactly in its exponent, r = sqrt(Σ (x·2^-k)²)
    rounded once (in [1, √C]), with 2^k <= max|x| < 2^(k+1) (:func:`_ssq_scaled`); ``fine``: the
    rows that are finite and not all zero (the others' k and r are meaningless)."""
    E, S = _ssq_scaled(xr, np.full(xr.shape[:-1] + (1,), np.nan))
    fine = np.isfinite(S[:, 0])
    return fine, E // 2, np.sqrt(S)


def unit_rows(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    r"""x/‖x‖ along the last axis, given ``n = norm2(x)``: :func:`divide_by_norm` of x by its own
    norm. ``divide_rows(x, n)`` (the same numbers) wherever the norm is a normal float; where it
    is not (past 1.8e308, a row of 1e308s, whose unit vector is 1/√2 where x/inf is 0; or below
    2^-1022, whose quotients x/n lose digits with n's), the scaled division, rounded once but
    where a unit element falls among the subnormals. A row of zeros, ±inf or NaN keeps x/n."""
    return divide_by_norm(x, x, n)


def divide_by_norm(v: np.ndarray, x: np.ndarray, n: np.ndarray, k: int = 1) -> np.ndarray:
    r"""v/‖x‖^k (``k`` divisions, as :func:`divide_rows`), given ``n = norm2(x)`` row-level.

    Where the norm is a normal float, ``divide_rows(v, n, k)``. Where it is not (a row of 1e308s:
    ‖x‖ = inf, and the cosine's gradient v/‖x‖, about 1e-309, came out 0; a row of subnormals,
    whose norm lost digits), with ‖x‖ = 2^e·r (:func:`_norm_scaled`) and v = m_v·2^(e_v) (frexp):
    ``ldexp(m_v/r/r…, e_v - k·e)``: the same divisions on scaled operands, which neither overflow
    nor underflow, and one more rounding only where the result falls among the subnormals."""
    out = divide_rows(v, n, k)
    if _piece() is not None or not isinstance(v, np.ndarray) or v.ndim != 2 or x.ndim != 2 or (rows := _off_range(n)) is None or n.shape[0] != v.shape[0]:
        return out
    fine, e, r = _norm_scaled(np.take(x, rows, axis=0))
    if not np.any(fine):
        return out
    rows, e, r = rows[fine], e[fine], r[fine]
    mv, ev = np.frexp(np.take(v, rows, axis=0))
    q = mv
    for _ in range(k):
        q = q / r
    out = np.array(out, dtype=np.float64, copy=True) if not out.flags.writeable else out
    out[rows] = np.ldexp(q, ev - k * e)
    return out


def norm_parts(x: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""(m, e) with ‖x‖ = m·2^e (m in [1/2, 1), frexp's), given ``n = norm2(x)``: ``frexp(n)``
    where the norm is a normal float, else from :func:`_norm_scaled` (the norm of a row of 1e308s
    is past the largest float; its mantissa and exponent are not)."""
    m, e = np.frexp(n)
    if _piece() is not None or not isinstance(x, np.ndarray) or x.ndim != 2 or (rows := _off_range(n)) is None:
        return m, e
    fine, k, r = _norm_scaled(np.take(x, rows, axis=0))
    mr, er = np.frexp(r)
    m, e = np.array(m, dtype=np.float64), np.array(e)
    m[rows[fine]] = mr[fine]
    e[rows[fine]] = (er + k)[fine]
    return m, e


def divide_rows(x, d, k: int = 1):
    """``x/d/d…`` (``k`` divisions, in that order: the numbers of ``(x/d)/d``) by a row-level ``d``:
    d repeated along the row once, where it would be broadcast over short rows once per division.
    Rows all divided by 1 (unit-norm rows, one-hot labels) are ``x`` itself: x/1 is x, exactly."""
    if isinstance(x, np.ndarray) and x.dtype == np.float64 and isinstance(d, np.ndarray) and d.shape == x.shape[:-1] + (1,) and np.all(d == 1):
        return x
    d = _row_operand(d, x)
    for _ in range(k):
        x = x / d
    return x


def rest_sum(v: np.ndarray, s: np.ndarray | None = None) -> np.ndarray:
    r"""Σ_{c≠j} v_c for every element j, without cancellation.

    ``S - v_j`` (S the row sum) has the error of S, at most γ·Σ|v| = γ·(|v_j| + Σ_{c≠j}|v_c|):
    within 4γ·Σ_{c≠j}|v_c| (what a direct sum of the other elements could promise) wherever
    ``|v_j| <= 3/4·Σ|v|``. An element above that carries its row (at most one per row: two
    would add up to more than the row), and there ``S - v_j`` can lose every digit (a
    probability of 1 - 1e-12: the rest is 1e-12, S - v_j keeps 4 digits); its rest is summed
    directly, the row with v_j zeroed. The test is the same on every row (a non-negative row
    skips ``|v|``, whose sum is S), so a row's numbers do not depend on the rows beside it.

    Rows of non-negative whole numbers (hard labels) need none of this: below 2^53 every sum
    of them is exact; nor do blocks with at most one non-zero per row (one-hot labels times
    scores), whose sums are that element (looked for where the first row has one at most).
    ``s``: the row sum ``row_sum(v)`` when the caller has it already.
    """
    if _piece() is not None:
        return _p_rest_sum(v, s)
    if v.ndim != 2:
        shape = v.shape
        v2 = v.reshape(-1, shape[-1]) if v.ndim else v.reshape(1, 1)
        return rest_sum(v2, None if s is None else np.reshape(s, (-1, 1))).reshape(shape)
    if s is None:
        s = row_sum(v)
    # S repeated along the row first: a (rows, 1) operand broadcast over a short row costs
    # NumPy a loop per row (3x a plain operation; repeated and used twice, 1.5x)
    out = _along_rows(s, v) - v
    if np.count_nonzero(v[:1]) <= 1 and _at_most_one_per_row(v):
        return out  # S is the row's one non-zero, exactly: S - v_j is exact (0 at j, S elsewhere)
    if not _negative_head(v) and _nonnegative_rows(v, s):
        if _whole(v):
            return out  # whole numbers below 2^53 (hard labels): every sum and difference is exact
        at = _dominant_at(v, s)  # Σ|v| = S here, bit for bit: the test below, as for any row
    else:
        at = _dominant_at(v)
    _sum_rests_at(out, v, at)
    return out


def _dominant_at(v: np.ndarray, s=None) -> np.ndarray:
    """The flat positions where ``|v_j| > 3/4·Σ_c |v_c|`` along 2-D rows; ``s``: ``Σ|v|`` where it
    is known (the row sum of a non-negative ``v``, or a number), else computed. At most one per
    row (two would add up to more than the row)."""
    if s is None:
        a = np.abs(v)
        s = _row_sum(a)
    else:
        a = v
    risky = a > (s * 0.75 if np.ndim(s) == 0 else _along_rows(s * 0.75, v))
    if not risky.any():  # flatnonzero of a block costs 2x the comparison, and most blocks have none
        return np.empty(0, dtype=np.intp)
    return np.flatnonzero(risky)


def _sum_rests_at(out: np.ndarray, v: np.ndarray, at: np.ndarray) -> None:
    """``out`` at the flat positions ``at`` (at most one per row: each names its row): the other
    elements of the row summed directly."""
    if at.size:
        n = v.shape[-1]
        rows = at // n
        np.put(out, at, _sum_without(v, rows, at - rows * n)[:, 0])


def dominant(v: np.ndarray, s: np.ndarray, plain: int = 0) -> np.ndarray | None:
    r"""The flat positions of the elements of ``v`` that dominate their row,
    ``|v_j| > 3/4·Σ_c |v_c|`` (:func:`rest_sum`'s test; ``s``: the row sum of ``v``, or a number
    known to be it, 1 for the squares of a unit vector; ``plain``: ``v`` has no negative
    element, so ``Σ|v| = s``), for :func:`rest_sum_at`: an empty array on
    most blocks. ``None`` for a row in pieces or rows that are not 2-D (the rest sums test
    themselves there). NaN compares False: a NaN row is NaN either way."""
    if _piece() is not None or v.ndim != 2:
        return None
    return _dominant_at(v, s if plain else None)


def rest_sum_at(v: np.ndarray, s: np.ndarray, at: np.ndarray | None) -> np.ndarray:
    r"""Σ_{c≠j} v_c for every element j: ``S - v_j``, and the other elements summed directly at
    the flat positions ``at`` (:func:`dominant` of an array whose test covers this one's
    cancellation, :class:`cesym.generate.lowerings.TestedRestSum`). ``at`` None: :func:`rest_sum`
    (its own test). ``s``: the row sum of ``v``."""
    if at is None or _piece() is not None or v.ndim != 2 or np.shape(s) != v.shape[:-1] + (1,):
        return rest_sum(v, s)
    out = _along_rows(s, v) - v
    _sum_rests_at(out, v, at)
    return out


#: Rest sums below this may hold products that lost bits among the subnormal numbers (a product
#: under 2^-1022 errs by up to 2^-1075 absolute): 2^62 above the normal range.
_TINY_REST = 2.0**-960
#: The exponent of a zero term (below every other: its ldexp is 0).
_NO_EXP = -(1 << 20)


def rest_products_at(g: np.ndarray, at: np.ndarray | None, d: np.ndarray, *terms, norm_of: np.ndarray | None = None) -> np.ndarray:
    r"""``g = d⁻¹·Σ_i s_i·λ_i·R_i`` along 2-D rows, with ``R_i = Σ_{c≠j} x_i,c·y_i,c`` (``terms``:
    ``s_1, λ_1, x_1, y_1, R_1, s_2, …``; ``d`` row-level), recomputed at the flat positions ``at``
    (:func:`dominant`) where some ``|R_i|`` is below 2^-960 (or 0, or NaN).

    Where element j dominates, its rest sums hold the products of the row's other elements only;
    where those are under 2^-511 of the unit vector's scale (a row spanning more than 2^500),
    the products fall among the subnormal numbers and lose their bits (0 where the cosine's
    gradient is 1.35e-251, after the division by a small ``d``). There each ``x_i`` and ``y_i``
    over the other elements is scaled by the power of two of its largest magnitude (exact:
    ``frexp``/``ldexp``), the products summed, each term ``s_i·λ_i,j·R_i`` taken to the largest
    term's exponent, divided by ``d``'s mantissa, and the exponents put back last: one rounding
    into the result's own range where the plain form rounded its rest sums to 0. The terms and
    their sum are the plain form's operations on scaled numbers, so the error bound is the plain
    form's. ``norm_of``: the row x where ``d = norm2(x)``, whose mantissa and exponent
    (:func:`norm_parts`) are known past float64's range. Rows in pieces, and blocks without such
    positions: ``g`` as it is."""
    if at is None or not at.size or _piece() is not None or g.ndim != 2:
        return g
    groups = [terms[i : i + 5] for i in range(0, len(terms), 5)]
    small = np.zeros(at.size, dtype=bool)
    for *_, R in groups:
        small |= ~(np.abs(np.take(R, at)) >= _TINY_REST)
    pos = at[small]
    if not pos.size:
        return g
    n = g.shape[-1]
    rows = pos // n
    cols = pos - rows * n

    def scaled(x):  # x over the other elements of each row, scaled to a largest magnitude in [1/2, 1)
        v = _rows_without(x, rows, cols)
        _, k = np.frexp(np.max(np.abs(v), axis=1))
        return np.ldexp(v, -k[:, None]), k

    parts = []
    with np.errstate(all="ignore"):
        for sign, lam, x, y, _ in groups:
            X, kx = scaled(x)
            Y, ky = (X, kx) if y is x else scaled(y)
            c = sign * np.take(np.broadcast_to(lam, g.shape).reshape(-1), pos) * _row_sum(X * Y)[:, 0]
            parts.append((c, np.where(c != 0, kx + ky, _NO_EXP)))
        K = np.maximum.reduce([k for _, k in parts])
        N = sum(np.ldexp(c, np.maximum(k - K, _NO_EXP)) for c, k in parts)
        if norm_of is not None:  # d = ‖norm_of‖: its mantissa and exponent also past float64's range
            m, e = (np.broadcast_to(a, g.shape[:-1] + (1,)).reshape(-1)[rows] for a in norm_parts(norm_of, d))
        else:
            m, e = np.frexp(np.broadcast_to(d, g.shape[:-1] + (1,)).reshape(-1)[rows])
        out = np.array(g, dtype=np.float64)
        np.put(out, pos, np.ldexp(N / m, np.where(N != 0, K - e, 0)))
    return out


def unit_dot(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    r"""Σ_c a_c b_c for unit rows ``a`` and ``b`` (each x/‖x‖), given ``c = row_sum(a*b)``.

    Where |c| > 1/2: ``s·(1 - ½Σ_c (a_c - s·b_c)²)`` with s = sign(c), the same number for exact
    unit vectors (‖a - s·b‖² = 2 - 2s·a·b). With rounded ones, a = u + e, b = w + f, it errs by
    ``(u - s·w)·(e - s·f)`` and a rounding: the unit vectors' errors times ‖u - s·w‖ ≤ 1, which
    vanishes as the rows align, where the plain sum errs by a few ulps of 1 (1 + 4e-16 for a
    cosine of 1 - 1e-17: |cos| > 1). Elsewhere, and for a row in pieces, ``c``. NaN rows: c.
    """
    if _piece() is not None or a.ndim != 2 or np.shape(c) != a.shape[:-1] + (1,):
        return c
    col = c[:, 0]
    up, down = np.flatnonzero(col > 0.5), np.flatnonzero(col < -0.5)  # NaN compares False
    if not (up.size or down.size):
        return c
    out = np.array(c, dtype=np.float64)
    # np.take, and a sign per group: a gather by fancy indexing and a (rows, 1) operand broadcast
    # over short rows cost 3-10x as much
    for rows, sign in ((up, 1.0), (down, -1.0)):
        if rows.size:
            ar, br = np.take(a, rows, axis=0), np.take(b, rows, axis=0)
            d = ar - br if sign > 0 else ar + br
            out[rows, 0] = sign * (1.0 - 0.5 * np.einsum("ij,ij->i", d, d))
    return out


#: The cancellation the unsplit form may have: Σ|t_k| <= GUARD_RATIO·|Σ t_k|. rest_sum allows
#: itself the same factor (S - v_j for an element up to 3/4 of its row: 4γ of the rest).
GUARD_RATIO = 4.0
#: Rows whose unsplit terms cancel, above this share of a block, are computed by the split form
#: as a whole block (a gather of most rows costs more than it saves).
_GUARD_WHOLE_BLOCK = 0.25


def guarded(terms: Callable[[], tuple], split: Callable[..., np.ndarray], *inputs) -> np.ndarray:
    r"""``Σ_k t_k`` where its terms cancel by at most a factor four (``Σ|t_k| <= 4|Σ t_k|``,
    finite), ``split(*inputs)`` on every other row (:class:`cesym.define.primitives.Guarded`).

    ``terms()`` gives the terms (element-level, or row-level (rows, 1): repeated along the row),
    summed in their order. Where the test holds, the error of the sum is at most four times the
    largest relative error of its terms plus a rounding per addition, the factor the split
    form's rest sums allow themselves (:func:`rest_sum`: 4γ of the rest). A row that fails it
    (a cancellation, an inf or a NaN anywhere in it) is computed by ``split`` on that row's
    inputs (arrays with one row per block row are gathered; others, scalars and rows broadcast
    from one, are passed as they are): row by row, so a row's numbers do not depend on the
    block it falls in. A row in pieces (:mod:`._pieces`) is computed by ``split`` alone, whose
    row reductions every piece must ask for alike.
    """
    if _piece() is not None:
        return split(*inputs)
    ts = [np.asarray(t, dtype=np.float64) for t in terms()]
    shape = np.broadcast_shapes(*(t.shape for t in ts))
    if len(shape) != 2:
        return split(*inputs)

    like = next((t for t in ts if t.shape == shape), None)  # an element-level term, if any

    def full(t):  # row-level terms repeated along the row (a fresh array: the test below writes into it)
        r = t if t.shape == shape or like is None else _row_operand(t, like)
        return r if r.shape == shape else np.broadcast_to(r, shape)

    fulls = [full(t) for t in ts]
    g = fulls[0] + fulls[1]
    for t in fulls[2:]:
        g += t
    if len(ts) == 2:  # |a| + |b| = max(|a + b|, |a - b|): the test reads |a - b| <= 4|a + b|
        a, b = fulls
        slack = np.subtract(a, b, out=b if b is not ts[1] and b.flags.writeable else None)
        np.abs(slack, out=slack)
        limit = np.abs(g)
        limit *= GUARD_RATIO  # exact (a power of two)
        slack = np.subtract(limit, slack, out=slack)  # NaN where both are inf, -inf where only |a - b| is
    else:
        bound = np.abs(fulls[0])
        for t in fulls[1:]:
            bound += np.abs(t)
        bound *= 1 / GUARD_RATIO  # exact (a power of two)
        slack = np.abs(g)
        slack -= bound  # NaN where both are inf, -inf where only the bound is: both fail below
    ok = slack >= 0
    if ok.all():
        return g
    rows = np.unique(np.flatnonzero(~ok) // shape[-1])
    if rows.size > _GUARD_WHOLE_BLOCK * shape[0]:  # the split form of the whole block, its rows taken
        g[rows] = np.broadcast_to(split(*inputs), shape)[rows]
        return g

    def gather(x):
        return x[rows] if isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[0] == shape[0] and shape[0] != 1 else x

    g[rows] = split(*(gather(x) for x in inputs))
    return g


def sigmoid(x: np.ndarray) -> np.ndarray:
    r"""σ(x) = e^{min(x, 0)} / (1 + e^{-|x|}): ``1/(1+e^{-x})`` for x >= 0 and ``e^{x}/(1+e^{x})`` for x < 0.

    ``e^{-|x|}`` never overflows, and σ(x) for very negative x is e^{x}/(1 + e^{x}) to full
    relative accuracy instead of 1/(1 + huge). (A second exp is cheaper than a select.)
    """
    return np.exp(np.minimum(x, 0.0)) / (1.0 + np.exp(-np.abs(x)))


def exp_min0(x: np.ndarray, E: np.ndarray) -> np.ndarray:
    """exp(min(x, 0)) from ``E = exp(-|x|)``: E where x < 0, 1 elsewhere, NaN where x is NaN.

    An exact select: max(E, [x >= 0]), since 0 <= E <= 1 (and NaN propagates): one comparison
    and one maximum, cheaper than a second exponential, ``numpy.where`` (about 3x the time) or
    E·[x < 0] + [x >= 0] (four passes).
    """
    return np.maximum(E, x >= 0)


def sigmoid_diff(a, b, x: np.ndarray, E: np.ndarray) -> np.ndarray:
    r"""a·σ(x) - b·σ(-x) given ``E = exp(-|x|)``: ``((a - b) + (a + b)·tanh(x/2))/2`` where
    |x| < 1 and |a - b| < |a + b|/2, ``(a·exp(min(x, 0)) - b·exp(min(-x, 0)))/(1 + E)``
    elsewhere.

    The two terms cancel only where a and b have one sign and σ(x)/σ(-x) = e^x is near b/a,
    which inside |x| < 1 needs b/a in (1/e, e), inside the gate's (1/3, 3). At label smoothing 1
    the binary cross-entropy's gradient σ(x) - 1/2 = tanh(x/2)/2 was 0 at x = 1e-20 and 10^10
    ulps off at 1e-10; there a - b is exact (or not small) and tanh keeps x. Outside the gate the
    two terms lose at most a factor (3/e + 1)/(3/e - 1) < 21 to cancellation, where κ in x is
    above 10 (x = -1, b/a = 1/3); past |x| = 1 the tanh form would lose b·e^{-x} beside a = 0.
    NaN stays NaN, ±inf gives a or -b.

    The choice is per element (a block's numbers must not depend on its neighbours); labels of
    0 and 1, what training mostly feeds, never pass the gate and the tanh pass is skipped. (Not
    ``np.tanh(..., where=)``: a ufunc's mask costs four times the unmasked SIMD loop.)
    """
    with np.errstate(over="ignore", invalid="ignore"):
        far = (a * exp_min0(x, E) - b * exp_min0(-x, E)) / (1.0 + E)
    # Weights of one sign first (two cheap passes; labels of 0 and 1 stop here).
    if not (np.any(np.minimum(a, b) > 0) or np.any(np.maximum(a, b) < 0)):
        return far
    with np.errstate(over="ignore", invalid="ignore"):
        d, s = a - b, a + b
        near = (np.abs(d) < 0.5 * np.abs(s)) & (np.abs(x) < 1.0)
    if not near.any():
        return far
    return np.where(near, (d + s * np.tanh(0.5 * x)) * 0.5, far)


def softplus(x: np.ndarray) -> np.ndarray:
    r"""log(1 + e^{x}) as max(x, 0) + log1p(e^{-|x|}) (what ``numpy.logaddexp(0, x)`` computes,
    with NumPy's SIMD exp and log1p instead of its scalar loop).

    ``log1p(exp(x))`` overflows to inf past x = 709.78 (88.72 in float32).
    """
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def log1mexp(u: np.ndarray) -> np.ndarray:
    r"""log(1 - e^u) for u <= 0: ``log(-expm1(u))`` for u > -log 2, ``log1p(-exp(u))`` below
    (Mächler 2012); NaN for u > 0, where it is not real.

    Near 0, ``1 - exp(u)`` keeps few digits of a small 1 - e^u (none for |u| < 2^-54: log 0 =
    -inf where the value is log|u|) and ``expm1`` keeps them all; far below, ``-expm1(u)`` is
    1 - e^u rounded (log: 0 where the value is -e^u) and ``log1p(-e^u)`` keeps e^u. At the
    switch both are accurate (-expm1(u) >= 1/2, e^u <= 1/2).
    """
    if _pieces.unknown(u):  # a long row's elements not known in this pass
        return _pieces.UNKNOWN
    near = u > -_LN2
    return np.where(near, np.log(-np.expm1(np.where(near, u, -1.0))), np.log1p(-np.exp(np.where(near, -1.0, u))))


def log_expm1(u: np.ndarray) -> np.ndarray:
    r"""log(e^u - 1) for u > 0: ``u + log1p(-exp(-u))`` for u > 1, ``log(expm1(u))`` below; NaN
    for u < 0, where it is not real, and -inf at 0.

    ``log(exp(u) - 1)`` is inf past u = 709.78 (exp overflows where the value is about u) and
    -inf below 2^-53 (exp(u) rounds to 1 where the value is log u); ``expm1`` is exact for small
    u but overflows as exp does. The large-u form adds to u a term in (-0.46, 0]: at most a bit
    of cancellation at u = 1, none further out. Within 2 ulps away from u = log 2, where the
    value crosses 0 (there the error is that of expm1, 1 ulp of 1, as the condition number says).
    """
    if _pieces.unknown(u):
        return _pieces.UNKNOWN
    big = u > 1.0
    return np.where(big, u + np.log1p(-np.exp(-np.where(big, u, 1.0))), np.log(np.expm1(np.where(big, 1.0, u))))


def log_weight(w: np.ndarray) -> np.ndarray:
    r"""log w of a weight w >= 0, -inf at w = 0 without a divide-by-zero warning (correctly
    rounded as ``numpy.log``, within 1 ulp).

    Used as lse(u + log w) for log Σ w·e^u: a zero weight is then a term e^{-inf} = 0 of the
    shifted sum, where w·e^{u - m} would be 0·inf = NaN for a large u under a zero weight.
    """
    if _pieces.unknown(w):
        return _pieces.UNKNOWN
    with np.errstate(divide="ignore"):
        return np.log(w)


def logcosh(u: np.ndarray) -> np.ndarray:
    r"""log cosh u: ``log1p(sinh(u)²)/2`` for |u| < 1, ``|u| - log 2 + log1p(e^{-2|u|})`` for |u| >= 1.

    ``log(cosh(u))`` is inf past |u| = 710.48 (cosh overflows where log cosh is about 710); the
    second form cannot overflow, but it is a difference of nearly equal terms for small u,
    where the value is u²/2 (u = 1e-8: 5e-17, the difference gives 0 or 1e-16): there the
    first form, whose sinh is accurate and whose log1p keeps the small argument, holds every
    digit. At |u| = 1 the second form loses about one bit (1 - log 2 + 0.127 = 0.434).
    """
    if _pieces.unknown(u):
        return _pieces.UNKNOWN
    u = np.asarray(u, dtype=np.float64)
    a = np.abs(u)
    t = np.multiply(a, -2.0)
    np.exp(t, out=t)
    np.log1p(t, out=t)
    out = np.asarray(a - _LN2)
    out += t  # (|u| - log 2) + log1p(e^{-2|u|}), in place: half the passes of both branches everywhere
    small = np.flatnonzero(a < 1.0)  # flat positions: take/put, several times faster than a boolean mask
    if small.size:  # the elements below 1 only (no sinh overflow elsewhere)
        np.put(out, small, 0.5 * np.log1p(np.sinh(np.take(u, small)) ** 2))
    return out


def pow1p(x: np.ndarray, y) -> np.ndarray:
    r"""(1 + x)^y as exp(y·log1p(x)), the product zero-guarded: (1 + x)^0 = 1 also at x = -1.

    ``(1 + x)**y`` rounds 1 + x first (a relative error up to 2^-53 that the power multiplies by
    y); log1p keeps a small x whole. For x < -1: ±|1 + x|^y for an integer y (:func:`_negative_base`),
    NaN otherwise (not real).
    """
    if _pieces.unknown(x, y):
        return _pieces.UNKNOWN
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.exp(xmul(y, np.log1p(x)))
    return _negative_base(out, x, y, lambda a: a + 1, lambda a: -(a + 1))


#: 1/k! for k = 2..17: the series of e^u - 1 - u below |u| = 1/2 (the next term, 2^-18/18!, is
#: below 2^-76 of the sum's first, u²/2).
_EXPM1MX_SERIES = tuple(1.0 / math.factorial(k) for k in range(17, 1, -1))


def expm1mx(u: np.ndarray) -> np.ndarray:
    r"""e^u - 1 - u (:class:`cesym.define.primitives.Expm1mx`): below |u| = 1/2 the series
    u²·Σ_{k>=2} u^(k-2)/k! by Horner's rule (its terms of one sign for u > 0, alternating and
    falling by at least a factor 6 for u < 0: a few ulps); elsewhere ``expm1(u) - u``, which
    cancels by at most a factor 4.4 there (at u = -1/2: 0.107 of 0.5)."""
    if _pieces.unknown(u):
        return _pieces.UNKNOWN
    u = np.asarray(u, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = np.expm1(u) - u
        small = np.abs(u) < 0.5
        if np.any(small):
            v = u[small] if u.ndim else u
            acc = np.full_like(v, _EXPM1MX_SERIES[0])
            for c in _EXPM1MX_SERIES[1:]:
                acc = acc * v + c
            if u.ndim:
                out[small] = acc * v * v
            else:
                out = acc * v * v
    return out


def pow1pm1(x: np.ndarray, y) -> np.ndarray:
    r"""(1 + x)^y - 1 as expm1(y·log1p(x)) (:class:`cesym.define.primitives.Pow1pm1`), the product
    zero-guarded (y = 0: 0); for x < -1 and an integer y, |1 + x|^y - 1 (y even) or
    -|1 + x|^y - 1 (y odd) from expm1 of y·log|1 + x| (:func:`_negative_base`)."""
    if _pieces.unknown(x, y):
        return _pieces.UNKNOWN
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.expm1(xmul(y, np.log1p(x)))
    return _negative_base(out, x, y, lambda a: a, lambda a: -a - 2)


def _negative_base(out: np.ndarray, x, y, even, odd) -> np.ndarray:
    """``out`` where the base 1 + x is negative and y an integer (NaN there: log1p of x < -1)
    replaced by ``even(a)`` or ``odd(a)``, a = expm1(y·log|1 + x|): |1 + x| = 1 + (-2 - x), the
    difference -2 - x exact near x = -2, where |1 + x| is near 1."""
    x = np.asarray(x, dtype=np.float64)
    neg = x < -1
    if not np.any(neg):
        return out
    y = np.asarray(y, dtype=np.float64)
    whole = np.floor(y) == y
    with np.errstate(all="ignore"):
        a = np.expm1(y * np.log1p(-2.0 - x))
        return np.where(neg & whole, np.where(np.fmod(y, 2) == 0, even(a), odd(a)), out)


def powm1(x: np.ndarray, y) -> np.ndarray:
    r"""x^y - 1 as expm1(y·log x) (Boost's ``powm1``), the product zero-guarded (y = 0: 0).

    ``x**y - 1`` cancels where x^y is close to 1 (x near 1 or y near 0); expm1 of the exact
    small exponent does not. x = 0 gives -1 for y > 0 (expm1(-inf)); NaN for x < 0.
    """
    if _pieces.unknown(x, y):
        return _pieces.UNKNOWN
    return np.expm1(xmul(y, np.log(x)))


def scaled_pow(x: np.ndarray, a, s) -> np.ndarray:
    r"""x^a·s for x >= 0: ``x**a * s``, and where x^a or that is 0, subnormal or infinite (with x > 0 and
    s finite and non-zero), ``ldexp(m**a · 2**f · s, n)`` with ``x = m·2**e`` and ``a·e = n + f``,
    n an integer and f in [0, 1): m^a·2^f lies in [2^-a, 2), so only s sets the scale, and the
    final ldexp rounds once. ``a·e`` is split exactly (a = a_hi + a_lo, a_hi of 26 bits, so that
    a_hi·e is exact for |e| <= 1074): rounding it would move the result by |a·e·ln 2| ulps."""
    if _pieces.unknown(x, a, s):
        return _pieces.UNKNOWN
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        power = x**a
        out = np.asarray(power * s, dtype=np.float64)
        # a subnormal power has lost digits even where the product is back in range
        redo = ((power < _TINY) | np.isinf(power) | (np.abs(out) < _TINY) | np.isinf(out)) & (x > 0) & np.isfinite(x) & np.isfinite(s) & (s != 0)
        if not np.any(redo):
            return out
        xb, ab, sb = (np.broadcast_to(v, out.shape)[redo] for v in (x, a, s))
        m, e = np.frexp(xb)
        c = ab * 134217729.0  # Veltkamp's split: 2^27 + 1
        a_hi = c - (c - ab)
        hi = a_hi * e  # exact: 26 bits times 11
        n = np.floor(hi)
        f = (hi - n) + (ab - a_hi) * e
        fixed = np.ldexp(m**ab * np.exp2(f) * sb, n.astype(np.int64))
        out = np.array(out)
        out[redo] = fixed
    return out


#: ln 2 in two parts (fdlibm's): k·LN2_HI is exact for |k| < 2^20.
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10


def scaled_exp(u, *a) -> np.ndarray:
    r"""a·e^u for a = a_1·…·a_n: ``(a_1·…·a_n)·exp(u)``; 0 where a factor is 0, whatever u; and
    where that product, a, e^u or the result is not finite or not normal (u and the factors
    finite and not 0), ``ldexp(m·e^r, k + Σe_i)`` with ``a_i = m_i·2^(e_i)`` (``frexp``),
    m = Π m_i, and ``u = k·ln 2 + r``, |r| <= ln 2/2 (Cody and Waite's reduction, ln 2 in two
    parts: r is exact to a rounding of itself): only the result's scale is set by the powers of
    two, and the final ldexp rounds once (``e^710/4`` is 5.6e307 where e^710 overflows;
    ``(1e200)²·e^-1000`` is 5e-35 where 1e200² overflows)."""
    if _pieces.unknown(u, *a):
        return _pieces.UNKNOWN
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        E = np.exp(u)
        A = a[0]
        for f in a[1:]:
            A = A * f
        out = np.asarray(A * E, dtype=np.float64)
        zero = a[0] == 0
        for f in a[1:]:
            zero = zero | (f == 0)
        if np.any(zero):
            out = np.where(zero, np.zeros_like(out), out)
        redo = ~np.isfinite(out) | (np.abs(out) < _TINY) | ~np.isfinite(A) | (np.abs(A) < _TINY) | ~np.isfinite(E) | (E < _TINY)
        redo &= ~zero & np.isfinite(u)
        for f in a:
            redo &= np.isfinite(f)
        if not np.any(redo):
            return out
        ub = np.broadcast_to(u, out.shape)[redo]
        m, n = np.ones(ub.shape), np.zeros(ub.shape, dtype=np.int64)
        for f in a:
            mi, ei = np.frexp(np.broadcast_to(f, out.shape)[redo])
            m, n = m * mi, n + ei  # m·2^n, the factors' product: each m_i in [1/2, 1), m far from the ends of the range
        # past |k| = 10^5 the result is 0 or inf whatever the factors (|log a_i| <= 745 each); the
        # clip keeps k an integer (u = 1e300) and k·LN2_HI exact
        k = np.clip(np.rint(ub / _LN2_HI), -100_000, 100_000)
        r = (ub - k * _LN2_HI) - k * _LN2_LO
        out = np.array(out)
        out[redo] = np.ldexp(m * np.exp(r), k.astype(np.int64) + n)
    return out


def pow_shift(x: np.ndarray, y) -> np.ndarray:
    r"""x^(y-1) as x^y/x where x > 0 and x^y is a normal number: ``x**(y - 1)`` rounds the
    exponent, which moves the result by |log x| ulps (690 at x = 1e-300, 172 at a subnormal x
    under y = 0.05); at 0, infinite or NaN x, and where x^y is subnormal or leaves the range
    (its digits lost), the plain power."""
    if _pieces.unknown(x, y):
        return _pieces.UNKNOWN
    with np.errstate(all="ignore"):
        power = np.power(x, y)
        out = power / x
        plain = ~((x > 0) & (np.abs(power) >= _TINY) & np.isfinite(out))
        if np.any(plain):
            out = np.where(plain, np.power(x, np.subtract(y, 1)), out)
    return out


def neg_log_softmax(z: np.ndarray) -> np.ndarray:
    r"""-log softmax(z)_j = (m - z_j) + log1p(Σ_{c≠k} e^{z_c - m}), m = max z, k one maximal element.

    Both terms are non-negative, so nothing cancels: a class winning by 300 gets its true loss
    (about e^{-300}) rather than the 0 of ``logsumexp(z) - z_j``. (The kernels print this as
    ``log1p(off_max_sum(e, S)) - d``, sharing d, e and S with the gradient.)
    """
    d = z - row_max(z)
    e = np.exp(d)
    return np.log1p(off_max_sum(e, row_sum(e))) - d


def off_max_sum(e: np.ndarray, S: np.ndarray) -> np.ndarray:
    r"""Σ_{c≠k} e_c for a row of ``e = exp(z - max z)`` with row sum ``S``, k one maximal element.

    e_c = 1 exactly at the maxima, so ``Σ_c (e_c - [e_c = 1])`` holds the other elements only
    (no cancellation however small they are), and the ``n`` maxima add ``n - 1``, recovered
    exactly as ``rint((S - 1) - that sum)`` (an integer known to far better than ±0.5). An
    element below the maximum whose exponential rounds to 1 counts as a maximum: its e_c is 1.
    """
    if _piece() is not None:
        small = _pieces.reduce(lambda: _row_sum(e - np.floor(e)), _sum_parts)
        return small + np.rint((S - 1.0) - small)
    # e - floor(e) is e_c - [e_c = 1] for e in [0, 1] (NaN stays NaN): two fast passes, no mask
    small = np.floor(e)
    np.subtract(e, small, out=small)
    small = row_sum(small)
    return small + np.rint((S - 1.0) - small)


_CARRY = threading.local()


@contextmanager
def carried_shift():
    """Within it (in this thread), :func:`shifted_exp` carries the rounding of z - m into e:
    the public kernels ask for it on float64 inputs (a float32 input's z - m is far more
    precise than its result needs)."""
    before = getattr(_CARRY, "on", False)
    _CARRY.on = True
    try:
        yield
    finally:
        _CARRY.on = before


def shifted_exp(z: np.ndarray, m: np.ndarray) -> np.ndarray:
    r"""e = exp(z - m) for the row maximum m; within :func:`carried_shift`, exp(z - m)·(1 + δ)
    with δ = (z - m) - fl(z - m) exactly (Knuth's TwoSum).

    fl(z - m) is exact when z and m are within a factor 2 (Sterbenz); otherwise it errs by up
    to half an ulp of z - m, which exp turns into a relative error of |z - m|·2^-53: 500 ulps
    of a share e^{-550}, and of the loss of a class that wins by 550 (its loss is that share).
    exp(d + δ) = exp(d)·(1 + δ + δ²/2 + …) and |δ| <= 2^-53·|d|, so the first order leaves
    |d|²·2^-107: below an ulp while e is not 0 (|d| < 745). Cost: six passes over the block.
    """
    if not (getattr(_CARRY, "on", False) and np.ndim(z) == 2):
        return np.exp(z - m)
    M = np.repeat(m, z.shape[-1], axis=-1)  # the maxima as a full block: each op below one plain pass
    d = z - M
    e = np.exp(d)
    # TwoSum(z, -m): zz = d + m, mm = d - zz, delta = (z - zz) - (m + mm), in place
    zz = d + M
    np.subtract(d, zz, out=d)
    np.add(d, M, out=d)
    np.subtract(z, zz, out=zz)
    np.subtract(zz, d, out=zz)
    # NaN only at an infinite z (or a NaN row): there e is 0 (kept 0) or NaN (kept NaN)
    np.fmin(zz, 1.0, out=zz)
    np.multiply(zz, e, out=zz)
    np.add(e, zz, out=e)
    return e


def softmax_parts(z: np.ndarray) -> tuple:
    r"""``(m, e, S, s)``: m = max z, e = exp(z - m), S = Σ e and s = :func:`off_max_sum` (e, S),
    the shared start of every softmax kernel (the generated code asks for them in one call).

    A row in pieces gets them from one reduction (the online log-sum-exp): each piece's
    maximum m_p, ``S_p = Σ exp(z - m_p)``, its off-max part and its count of elements at m_p;
    combined as m = max m_p, S = Σ_p S_p·exp(m_p - m) (pairwise over the pieces), and s = the
    off-max parts of the pieces holding m, plus the other pieces' S_p·exp(m_p - m), plus the
    count of maximal elements less one (an exact integer, as in :func:`off_max_sum`). A piece
    of -inf logits contributes 0 (the normal path's exp(-inf) = 0). e itself is exp(z - m),
    computed once m is known, as for a short row.
    """
    if _piece() is None:
        m = row_max(z)
        e = shifted_exp(z, m)
        S = row_sum(e)
        return m, e, S, off_max_sum(e, S)

    def partial():
        mp = _row_max(z)
        ep = np.exp(z - mp)
        fl = np.floor(ep)
        return mp, _row_sum(ep), _row_sum(ep - fl), _row_sum(fl)

    parts = _pieces.reduce(partial, _softmax_parts_combine)
    if isinstance(parts, _pieces.Pending):  # e's elements in a later pass; the next reductions now
        m, S, s = (_pieces.Pending(lambda known, i=i: parts.resolve(known)[i]) for i in range(3))
        return m, _pieces.UNKNOWN, S, s
    m, S, s = parts
    return m, shifted_exp(z, m), S, s


def _softmax_parts_combine(parts: list) -> tuple:
    mp = np.concatenate([p[0] for p in parts], axis=-1)
    m = np.max(mp, axis=-1, keepdims=True)  # NaN propagates
    top = mp == m
    scale = np.exp(mp - m)
    Sp = np.concatenate([p[1] for p in parts], axis=-1) * scale
    Sp[np.isneginf(mp) & ~np.isneginf(m)] = 0.0  # exp(-inf - m) = 0 for every element
    small = np.where(top, np.concatenate([p[2] for p in parts], axis=-1), Sp)
    ones = np.sum(np.where(top, np.concatenate([p[3] for p in parts], axis=-1), 0.0), axis=-1, keepdims=True)
    S = np.sum(Sp, axis=-1, keepdims=True)
    s = np.sum(small, axis=-1, keepdims=True) + (ones - 1.0)
    nan = np.isnan(m) | np.isnan(S)
    return m, S, np.where(nan, np.nan, s)


def softmax_rest(z: np.ndarray) -> np.ndarray:
    r"""1 - softmax(z)_j = Σ_{c≠j} e_c / S, e = exp(z - max z), S = Σ e (:func:`rest_sum`: a
    dominant class's tiny rest is summed, not 1 - softmax_j, which rounds to 0)."""
    _, e, S, _ = softmax_parts(z)
    return rest_sum(e, S) / S


def normalized_rest(p: np.ndarray) -> np.ndarray:
    r"""1 - p_j/Σ_c p_c = Σ_{c≠j} p_c / Σ_c p_c (:func:`rest_sum`: no cancellation)."""
    S = row_sum(p)
    return rest_sum(p, S) / S


def neg_log_normalized(p: np.ndarray, r: np.ndarray | None = None) -> np.ndarray:
    r"""-log(p_j / Σ_c p_c) = log1p(r_j / p_j), r_j = Σ_{c≠j} p_c (see :func:`rest_sum`).

    When ``r_j/p_j`` overflows (p_j tiny, float64) the value is above 709 and
    ``log(p_j + r_j) - log(p_j)`` has no cancellation to fear. p_j = 0 gives +inf.
    ``r``: ``rest_sum(p)`` when the caller has it already.
    """
    if r is None:
        r = rest_sum(p)
    return _log1p_ratio(r, p)


def _log1p_ratio(r: np.ndarray, p: np.ndarray) -> np.ndarray:
    """log1p(r/p) for r, p >= 0, with ``log(p + r) - log(p)`` where r/p overflows and p > 0."""
    q = r / p
    out = np.log1p(q)
    if np.any(np.isinf(q)):  # rare: look for the overflowing quotients only then
        big = np.isinf(q) & (p > 0)
        if np.any(big):
            out = np.where(big, np.log(p + r) - np.log(np.where(big, p, 1.0)), out)
    return out


def _one_hot_rows(t: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """For label rows that are all one-hot or zero: (flat index of each row's 1, row sums T); else None.

    Exact: every row sums to 0 or 1 and the non-zero elements are as many as the rows summing
    to 1 (each of those has one, which is then 1; the others none). The index is the product
    with (0, 1, ..., C-1): one term 1·k per row, exact in any order (a BLAS matrix-vector
    product, the cheapest pass NumPy has for it); a zero row gets 0. (count_nonzero of a
    boolean array: NumPy counts non-zero doubles one by one.)
    """
    if t.ndim != 2:
        return None
    R, C = t.shape
    nnz = np.count_nonzero(t != 0)
    if nnz > R:
        return None
    T = row_sum(t)
    if not (np.all((T == 0) | (T == 1)) and nnz == np.count_nonzero(T)):
        return None
    k = (np.ascontiguousarray(t) @ np.arange(C, dtype=np.float64)).astype(np.intp)
    return _flat(k[:, None], C), T


def weighted_neg_log_normalized(t: np.ndarray, p: np.ndarray, S: np.ndarray) -> np.ndarray:
    r"""Σ_c t_c·(-log(p_c/S)) with 0·∞ = 0 (row-level): ``row_sum(xmul(t, neg_log_normalized(p)))``.

    Rows of t that are one-hot or zero (hard labels) need the labelled element only: there the
    sum is that element's ``neg_log_normalized``, computed by the same operations (the rest
    ``S - p_k``, or for a dominant p_k the other elements summed directly), so the numbers are
    the same as the general form's (for p >= 0, which the public kernels check), without a log
    of every element. Other labels: the general form.
    """
    if _piece() is not None:
        return _p_weighted_neg_log_normalized(t, p, S)
    hot = _one_hot_rows(t) if np.all(S < _EXACT_INT) else None
    if hot is None:
        return row_sum(xmul(t, neg_log_normalized(p, rest_sum(p, S))))
    flat, T = hot
    p = np.ascontiguousarray(p)
    pk = np.take(p, flat)[:, None]
    return np.where(T == 0, 0.0, _log1p_ratio(_rest_at(p, flat, pk, S), pk))


_LN2 = float(np.log(2.0))
_FIVE_THIRDS = 5.0 / 3.0


def cross_rest(t: np.ndarray, z: np.ndarray, e=None, s=None, S=None, g=None, dg=None) -> np.ndarray:
    r"""N_j = Σ_{c≠j} (t_c e_j - t_j e_c) = T e_j - t_j E, e = exp(z - max z): the softmax-gradient numerator.

    First ``e_j·r^t_j - t_j·r^e_j`` with ``r^t = rest_sum(t)`` and ``r^e_j = S - e_j``, or the
    off-max sum ``s`` at a maximal element (e_j = 1; elsewhere ``S >= 1 + e_j >= 2 e_j``, so
    ``S - e_j`` loses at most a bit): exact in form for one-hot labels, whose rows need
    ``r^e`` at the label only (``e_j·T`` elsewhere; the same numbers, found without a pass
    for ``r^e``). Where
    that difference has cancelled more than two bits (two labelled classes, or uniform labels,
    with close logits: for logits near 0, 1 - exp(-3e-16) keeps no digit), the element is
    recomputed from ``t_j (k e_j - E) + t_j (r - k) e_j`` with ``r = T/t_j``, ``k = rint(r)``:
    ``k e_j - E = Σ_{c∈P}(e_j - e_c) - Σ_{c∉P} e_c`` where P holds the k classes whose logits
    are closest to z_j (j among them), and each ``e_j - e_c`` of a close pair is
    ``-e_j·expm1(z_c - z_j)``. What cancels then is only what the inputs' condition allows.
    Cost: O(C log C) for each recomputed element; none for rows without cancellation.
    ``e``, ``s``, ``S``: ``exp(z - max z)``, :func:`off_max_sum` and the row sum of ``e``, when
    the caller has them already. ``g``, ``dg``: weights that depend on the log-share, see
    :func:`_share_cross_rest`.
    """
    if e is None:
        e = np.exp(z - row_max(z))
    if S is None:
        S = row_sum(e)
    if s is None:
        s = off_max_sum(e, S)
    if g is not None:
        return _share_cross_rest(t, z, e, s, S, g, dg)
    if _piece() is not None:
        return _p_cross_rest(t, z, e, s, S)
    hot = _one_hot_rows(t)
    if hot is not None:
        # one-hot (or zero) rows: e_j·T_j - t_j·re_j is e_j·T off the label and 0 - re_k at it
        # (T = 1); re is needed at the label only. A row holding NaN is NaN throughout, as in
        # the general form (there every re_j is NaN).
        flat, T = hot
        out = e * T
        rest = 0.0 - _exp_rest_at(e, flat, s, S)
        if np.all(T == 1):
            np.put(out, flat, rest[:, 0])
        else:
            one = np.flatnonzero(T[:, 0] == 1)
            np.put(out, flat[one], rest[one, 0])
        nan = np.isnan(S[:, 0])
        if np.any(nan):
            out[nan] = np.nan
        return out
    # re_j = S - e_j, and the off-max sum s at a maximal element (e_j = 1)
    re = S - e
    at_max = np.flatnonzero(e == 1.0)
    np.put(re, at_max, np.take(s, at_max // e.shape[-1]))
    T = row_sum(t)
    negative = bool(np.fmin.reduce(t, axis=None) < 0)  # any t_c < 0 (fmin skips NaN)
    if not negative and np.all(T < _EXACT_INT) and _whole(t):
        rt = T - t  # hard labels: whole numbers, exact
    else:
        rt = rest_sum(t, T)
    a, b = e * rt, t * re
    out = a - b
    if negative:
        bad = (np.abs(out) < 0.25 * (np.abs(a) + np.abs(b))) & (t != 0)
    else:  # a, b >= 0: |a - b| < (a + b)/4 is a/b in (3/5, 5/3); t = 0 gives b = 0, never flagged
        bad = (a < _FIVE_THIRDS * b) & (b < _FIVE_THIRDS * a)
    bad = _pairable(bad, t, rt, width(z))
    if not np.any(bad):
        return out
    return _fix_cancelled(out, bad, t, z, e, rt)


def _pairable(bad: np.ndarray, t: np.ndarray, rt: np.ndarray, C: int) -> np.ndarray:
    """The flagged elements that the recomputation can help: those with r = T/t_j <= C.

    Where r > C there are no k = rint(r) classes to pair with (k would be clipped to C) and the
    recomputation cancels as the first form does (t_j·(r - C)·e_j against Σ_c e_c), so the first
    form stays: smoothed labels' off-label weights (t_j = ls/C, r = C/ls) are all of this kind.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return bad & ~((rt + t) / t >= C + 0.5)


def _fix_cancelled(out, bad, t, z, e, rt) -> np.ndarray:
    """cross_rest's flagged elements (:func:`_pairable`) recomputed against their nearest classes
    (see there), a chunk at a time (:func:`_in_chunks`)."""
    rb = rt[bad]
    r_all = (rb + t[bad]) / t[bad]  # T / t_j
    out[bad] = _in_chunks(bad, z.shape[-1], lambda lead, j, sl: _fix_elements(z[lead], e[lead], t[lead], j, r_all[sl]))
    return out


_FIX_CHUNK = 1 << 17  # doubles per (elements × C × per-pair) temporary of a recomputation


def _in_chunks(bad: np.ndarray, width: int, compute: Callable) -> np.ndarray:
    """The flagged elements of ``bad`` recomputed a chunk at a time, so that the (elements ×
    ``width``) temporaries stay within a block (soft or smoothed labels over a vocabulary can flag
    a large share of a row: all at once, that was F·C doubles). ``compute(lead, j, sl)`` gets the
    chunk's leading indices, its elements' positions j in their rows, and its slice of the flat
    list of flagged elements. Each element's numbers do not depend on the chunk."""
    rows = np.nonzero(bad)  # flagged elements: leading indices and j
    fixed = np.empty(len(rows[-1]))
    step = max(1, _FIX_CHUNK // max(1, width))
    for s0 in range(0, len(fixed), step):
        sl = slice(s0, s0 + step)
        fixed[sl] = compute(tuple(ix[sl] for ix in rows[:-1]), rows[-1][sl], sl)
    return fixed


def _fix_elements(zr, er, tr, j, r) -> np.ndarray:
    """t_j (k e_j - E) + t_j (r - k) e_j for flagged elements j of the rows zr, er, tr (F, C),
    where P is the k classes nearest z_j (j among them). t_j (r - k) = T - k t_j is summed from
    the labels, not taken from r = T/t_j rounded: where the other labels are far below t_j
    (labels next to the softmax, t = [5e-222, 1 - 2e-16]) r rounds to 1 and r - k kept none of
    their digits."""
    C = zr.shape[-1]
    f = np.arange(len(j))
    zj, ej, tj = zr[f, j], er[f, j], tr[f, j]
    k = np.clip(np.rint(r), 1, C)
    d = zr - zj[:, None]  # z_c - z_j
    if np.all(k >= C):
        near = np.ones(d.shape, dtype=bool)  # every class is among the k nearest: no ranking
    else:
        dist = np.where(np.arange(C) == j[:, None], -1.0, np.abs(d))  # j itself is always in P
        rank = np.argsort(np.argsort(dist, axis=-1, kind="stable"), axis=-1, kind="stable")
        near = rank < k[:, None]
    with np.errstate(over="ignore", invalid="ignore"):
        diff = np.where(np.abs(d) < _LN2, -ej[:, None] * np.expm1(d), ej[:, None] - er)  # e_j - e_c
    pairs = np.sum(np.where(near, diff, 0.0), axis=-1)
    rest = np.sum(np.where(near, 0.0, er), axis=-1)
    # T - k t_j as Σ_{c∈P} (t_c - t_j) + Σ_{c∉P} t_c: each close difference is exact
    # (Sterbenz), where rt - (k - 1) t_j rounds T (uniform smoothed labels, ls/C inexact, left
    # 1e-17·T against an exact 0, and that times e_j is all the gradient's digits)
    with np.errstate(invalid="ignore"):
        excess = np.sum(np.where(near, tr - tj[:, None], tr), axis=-1)
    return tj * (pairs - rest) + excess * ej


def _share_cross_rest(t, z, e, s, S, g, dg) -> np.ndarray:
    r"""N_j = Σ_{c≠j} (t_c g_c e_j - t_j g_j e_c), with g_c = g(ν_c) a function of the log-share
    ν_c = lse(z) - z_c whose derivative ``dg`` (a function of ν) is given.

    First ``e_j·Σ_{c≠j} w_c - w_j·Σ_{c≠j} e_c`` with w = t·g (rest sums, the off-max sum at a
    maximal element, as :func:`cross_rest`). Where that difference has cancelled more than two
    bits (uniform labels on close logits: near z = 0 every digit of e_j - e_c and g_c - g_j
    goes), the element is recomputed pair by pair (:func:`_share_pairs`), O(C) evaluations of
    ``dg`` per recomputed element. A long row that needs it is evaluated once more as one piece
    (:func:`._pieces.need_whole_row`), as :func:`cross_rest`'s.
    """
    w = t * g
    rw = rest_sum(w)
    piece = _piece()
    if piece is not None and (any(isinstance(x, _pieces.Pending) for x in (s, S)) or _pieces.unknown(e) or _pieces.unknown(rw)):
        return _pieces.UNKNOWN  # the elements in a later pass (the row's statistics are asked for now)
    re = np.where(e == 1.0, s, S - e)  # the off-max sum at a maximal element (e_j = 1)
    a, b = e * rw, w * re
    out = a - b
    with np.errstate(invalid="ignore"):
        bad = np.abs(out) < 0.25 * (np.abs(a) + np.abs(b))
    if not np.any(bad):
        return out
    if piece is not None and not piece.whole:
        _pieces.need_whole_row()
        return out
    # ν_j = (max z - z_j) + log S, in that order: (max z + log S) - z_j rounds log S away where
    # the logits are large (ν = 0 for equal logits of 1e300, and g' is 0/0 there)
    mx = np.max(z, axis=-1, keepdims=True)
    tb = np.broadcast_to(t, z.shape)
    mb, lb = (np.broadcast_to(a, z.shape[:-1] + (1,)) for a in (mx, np.log(S)))
    out[bad] = _in_chunks(
        bad, z.shape[-1] * _GL_NODES.size,
        lambda lead, j, sl: _share_pairs(z[lead], e[lead], tb[lead], g[lead], mb[lead][:, 0], lb[lead][:, 0], j, dg),
    )
    return out


# Gauss–Legendre on [0, 1], 16 nodes: g_c - g_j = (ν_c - ν_j)·Σ_i W_i g'(ν_j + x_i (ν_c - ν_j)).
# A pair is taken this way where |z_c - z_j| <= 1/2; then both shares are below 0.63 (they sum
# to at most 1), so ν >= 0.47 on the interval, whose length is at most 1/2: a singularity of g
# at ν = 0 (the share 1) lies outside the Bernstein ellipse of parameter 5.5, and the rule's
# error is below 5.5^-32 (1e-24) relative. Farther pairs lose at most 1.4 bits in the plain
# difference (e^{-1/2} = 0.61).
_GL_X, _GL_W = np.polynomial.legendre.leggauss(16)
_GL_NODES, _GL_WEIGHTS = (_GL_X + 1) / 2, _GL_W / 2
_PAIR_RADIUS = 0.5


def _share_pairs(zr, er, tr, gr, mx, log_s, j, dg) -> np.ndarray:
    """Σ_{c≠j} (t_c g_c e_j - t_j g_j e_c) for flagged elements j of the rows (F, C): a close pair
    (|d| <= 1/2, d = z_c - z_j) as (t_c - t_j) g_c e_j + t_j (e_j (g_c - g_j) + g_j e_c expm1(-d)),
    g_c - g_j by Gauss–Legendre on g' (ν_c - ν_j = -d, exact for float32 inputs); the others as
    written."""
    f = np.arange(len(j))
    zj, ej, tj, gj = zr[f, j], er[f, j], tr[f, j], gr[f, j]
    d = zr - zj[:, None]
    close = np.abs(d) <= _PAIR_RADIUS
    close[f, j] = False
    with np.errstate(over="ignore", invalid="ignore"):
        direct = tr * gr * ej[:, None] - (tj * gj)[:, None] * er
        # g' at the nodes of the close pairs only: ν_j + x_i (ν_c - ν_j), ν_c - ν_j = -d
        nu_j = np.broadcast_to(((mx - zj) + log_s)[:, None], d.shape)[close]
        dg_mean = np.zeros(d.shape)
        dg_mean[close] = np.sum(dg(nu_j[:, None] - _GL_NODES * d[close][:, None]) * _GL_WEIGHTS, axis=-1)
        delta_g = -d * dg_mean
        pair = (tr - tj[:, None]) * gr * ej[:, None] + tj[:, None] * (
            ej[:, None] * delta_g + gj[:, None] * er * np.expm1(-d)
        )
    terms = np.where(close, pair, direct)
    terms[f, j] = 0.0
    return np.sum(terms, axis=-1)


# --- labels given by their class index k (one per row, int64 of shape (rows, 1); -1: ignored) --


def _valid(k: np.ndarray) -> np.ndarray:
    return k >= 0


def _flat(k: np.ndarray, C: int) -> np.ndarray:
    """Flat indices of element k of each row of a C-contiguous (rows, C) block (row 0's for k = -1).

    ``numpy.take``/``put`` with flat indices cost a quarter of ``take_along_axis``/``put_along_axis``.
    """
    return np.arange(k.shape[0]) * C + np.maximum(k[:, 0], 0)


def _zero_ignored(k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """v with the rows where k = -1 set to 0 (in place; most batches have none)."""
    ignored = k[:, 0] < 0
    if np.any(ignored):
        v[ignored] = 0.0
    return v


def at_label(k: np.ndarray, f) -> np.ndarray:
    """f at element k of each row (f element-level) or f itself (row-level); 0 where k = -1."""
    if isinstance(f, _pieces.Pending):  # a long row's value not combined yet: at_label of it, later
        return _pieces.Pending(lambda known: at_label(k, f.resolve(known)))
    f = np.asarray(f, dtype=np.float64)
    if f.ndim == 2 and f.shape[-1] != 1 and _piece() is not None:
        return _p_at_label(k, f)
    if f.ndim == 2 and f.shape[-1] != 1:
        f = np.take(np.ascontiguousarray(f), _flat(k, f.shape[-1]))[:, None]
    else:
        f = np.array(np.broadcast_to(f, k.shape))
    return _zero_ignored(k, f)


def rest_at_label(k: np.ndarray, v: np.ndarray, S: np.ndarray) -> np.ndarray:
    """``at_label(k, rest_sum(v, S))``: Σ_{c≠k} v_c, computed at element k only.

    For non-negative rows (sums below 2^53) the same operations as :func:`rest_sum` at k:
    ``S - v_k``, or where v_k dominates (``v_k > 3/4·S``) the row without v_k summed
    directly. Otherwise :func:`rest_sum` itself.
    """
    if _piece() is not None:
        return _p_rest_at_label(k, v, S)
    if not _nonnegative_rows(v, S):
        return at_label(k, rest_sum(v, S))
    v = np.ascontiguousarray(v)
    flat = _flat(k, v.shape[-1])
    return _zero_ignored(k, _rest_at(v, flat, np.take(v, flat)[:, None], S))


def _rest_at(v: np.ndarray, flat: np.ndarray, vk: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Σ_{c≠k} v_c for non-negative C-contiguous rows, k given by flat indices and ``vk`` the
    elements there: rest_sum's numbers at k (``S - v_k``; a dominant v_k's row summed without it)."""
    r = S - vk
    dominant = np.flatnonzero(vk > 0.75 * S)  # rest_sum's test
    if dominant.size:
        r[dominant] = _sum_without(v, dominant, flat[dominant] - dominant * v.shape[-1])
    return r


def one_hot(k: np.ndarray, C: int) -> np.ndarray:
    """The rows ``[c = k]`` as float64 (zeros where k = -1)."""
    if _piece() is not None:
        return _p_label_row(k, 0.0, 1.0)
    out = np.zeros((k.shape[0], C))
    np.put(out, _flat(k, C), 1.0)
    return _zero_ignored(k, out)


def one_hot_rest(k: np.ndarray, C: int) -> np.ndarray:
    """Σ_{c≠j} [c = k] = [k valid] - [j = k]."""
    if _piece() is not None:
        return _p_label_row(k, 1.0, 0.0)
    out = np.ones((k.shape[0], C))
    np.put(out, _flat(k, C), 0.0)
    return _zero_ignored(k, out)


def scatter_label(k: np.ndarray, g: np.ndarray, C: int) -> np.ndarray:
    """A row of C zeros with the row-level value g at element k (all zero where k = -1)."""
    if _piece() is not None:
        return _p_label_row(k, 0.0, g)
    out = np.zeros((k.shape[0], C))
    np.put(out, _flat(k, C), np.broadcast_to(g, k.shape)[:, 0])
    return _zero_ignored(k, out)


def one_hot_cross_rest(k: np.ndarray, e: np.ndarray, s: np.ndarray, S: np.ndarray) -> np.ndarray:
    r"""CrossRest([c = k], z) from e = exp(z - max z), its off-max sum s and row sum S:
    e_j off k and ``-Σ_{c≠k} e_c`` at k (``s`` if e_k is a maximum, else ``S - e_k``, which
    loses at most a bit since then S >= 1 + e_k >= 2 e_k); zeros where k = -1."""
    if _piece() is not None:
        ek = _p_local(k, e)
        rest = -np.where(ek == 1.0, s, S - ek)
        return _p_label_row(k, e, rest)
    out = np.array(e, dtype=np.float64, order="C")
    flat = _flat(k, e.shape[-1])
    np.put(out, flat, -np.broadcast_to(_exp_rest_at(out, flat, s, S), k.shape)[:, 0])
    return _zero_ignored(k, out)


def _exp_rest_at(e: np.ndarray, flat: np.ndarray, s: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Σ_{c≠k} e_c at the flat positions k of a C-contiguous e = exp(z - max z): the off-max sum s
    where e_k is a maximum (e_k = 1), else ``S - e_k`` (S >= 1 + e_k >= 2 e_k: at most a bit lost)."""
    ek = np.take(e, flat)[:, None]
    return np.where(ek == 1.0, s, S - ek)


def xmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a·b with 0·b = 0 for any b (0·log 0 = 0, 0·inf = 0)."""
    if _pieces.unknown(a, b):  # a long row's elements not known in this pass
        return _pieces.UNKNOWN
    if np.ndim(a) == 0 and a != 0:  # a nonzero scalar (gamma): no 0 factor, nothing to repair
        return np.multiply(a, b)
    out = np.multiply(a, b)
    if all_finite(out):  # no NaN (one summing pass, cheaper than isnan and any)
        return out
    nan = np.isnan(out)
    if np.any(nan):
        out[nan & np.broadcast_to(a == 0, out.shape)] = 0.0
    return out


def all_finite(r: np.ndarray) -> bool:
    """No inf or NaN in ``r``: one summing pass (a sum is finite iff every term is; an overflow
    of finite terms, likelier in float32, answers False and sends the caller to its element by
    element test)."""
    r = np.asarray(r)
    if r.flags.c_contiguous and r.dtype in (np.float64, np.float32):
        return bool(np.isfinite(np.einsum("i->", r.reshape(-1))))
    return bool(np.all(np.isfinite(r)))


def log_nonzero(w: np.ndarray) -> np.ndarray:
    """``log(w)``, and 0 where ``w`` is 0: the log of a label weight inside ``XMul(w, ·)``, whose
    product is 0 there whatever this factor (:class:`cesym.generate.lowerings.LogNonzero`).
    NumPy's log of 0 is slow (10x a log of 1, measured), and a mixed-type ``w + (w == 0)``
    costs most of a log: where the first row holds a 0 (one-hot and sparse labels) the zeros
    are made ones first (all 0 and 1, hard labels: no log at all, log 1 = 0); elsewhere the log
    is taken whole and its zeros, if a summing pass finds any, are set afterwards (dense labels
    pay one pass). The same numbers in every case."""
    w = np.asarray(w)
    if w.ndim and w.size and not np.all(w.reshape(-1)[: w.shape[-1]]):
        if np.count_nonzero(w) == np.count_nonzero(w == 1):  # hard labels: log 1 = 0, and 0 at the zeros
            return np.zeros(w.shape)
        return np.log(np.add(w, w == 0, dtype=np.float64))
    out = np.log(w)
    if all_finite(out):
        return out
    out[np.broadcast_to(w == 0, out.shape)] = 0.0
    return out


def nan_or(a: np.ndarray, b) -> np.ndarray:
    """``a``, and ``b`` where ``a`` is NaN: two forms of one quantity, the second for the points
    (a domain's edge) where the first is 0·inf or inf - inf. ``b`` may be a function of no
    arguments that computes it: called only where ``a`` holds a NaN (the generated kernels pass
    one), and always for a row in pieces, whose passes must ask for the same row reductions."""
    return _second_where(np.isnan, a, b)


def inf_or(a: np.ndarray, b) -> np.ndarray:
    """``a``, and ``b`` where ``a`` is ±inf: two forms of one quantity, the second in range where
    the first overflows (:class:`~cesym.define.primitives.InfOr`). ``b`` as in :func:`nan_or`."""
    return _second_where(np.isinf, a, b)


def _second_where(test, a: np.ndarray, b) -> np.ndarray:
    """``a``, and ``b`` where ``test(a)`` (:func:`nan_or`, :func:`inf_or`)."""
    if callable(b) and (_piece() is not None or _pieces.unknown(a)):
        b = b()
    if _pieces.unknown(a, b):
        return _pieces.UNKNOWN
    a = np.asarray(a, dtype=np.float64)
    hit = test(a)
    if not np.any(hit):
        return a
    if callable(b):
        b = b()
    shape = np.broadcast_shapes(a.shape, np.shape(b))
    out = np.array(np.broadcast_to(a, shape))
    hit = np.broadcast_to(hit, shape)
    out[hit] = np.broadcast_to(b, shape)[hit]
    return out


def where(c, a, b) -> np.ndarray:
    """``numpy.where(c, a, b)``, without its cost where ``c`` is the same everywhere (a guard
    such as a zero row sum, true nowhere on ordinary rows) or mixed at random (a Piecewise's
    branch taken by the data: Huber's |e| <= δ). ``numpy.where`` costs a branch per element:
    measured 10-15x a multiplication's time where ``c`` is true at random, 2-3x where it
    is true in long runs. Where neither value dominates, the float64 result is taken from the
    bits instead, ``b ^ ((a ^ b)·[c])`` on their int64 views (three passes without branches,
    about 3x a multiplication): the same bits as ``numpy.where``, NaN, -0 and inf included.
    The result has ``numpy.where``'s shape, dtype and values."""
    c = np.asarray(c)
    n = np.count_nonzero(c) if c.size else -1
    if n == 0:
        pick = b
    elif n == c.size:
        pick = a
    else:
        dtype = np.result_type(a, b)
        # few of one side: numpy.where's branches predict well (its runs are long)
        if dtype != np.float64 or c.dtype != np.bool_ or min(n, c.size - n) * 16 < c.size:
            return np.where(c, a, b)
        ai = np.asarray(a, dtype=np.float64).view(np.int64)
        bi = np.asarray(b, dtype=np.float64).view(np.int64)
        x = np.bitwise_xor(ai, bi)
        x = np.multiply(x, c, out=x if x.shape == np.broadcast_shapes(x.shape, c.shape) else None)
        np.bitwise_xor(x, bi, out=x)
        return x.view(np.float64)
    out = np.asarray(pick, dtype=np.result_type(a, b))
    shape = np.broadcast_shapes(c.shape, np.shape(a), np.shape(b))
    return out if out.shape == shape else np.array(np.broadcast_to(out, shape))


#: Zeros to stand for a constant 0 beside an array, per dtype: ``BLOCK``-sized (a block's
#: elements, ``_blocks.BLOCK_ELEMENTS``), read only, shared by every thread: 2 MiB and 1 MiB,
#: allocated once (``numpy.zeros`` of that size is usually fresh zeroed pages from the system).
_ZERO_ELEMENTS = 1 << 18
_ZEROS = {np.dtype(t): np.zeros(_ZERO_ELEMENTS, dtype=t) for t in (np.float64, np.float32)}
for _z in _ZEROS.values():
    _z.flags.writeable = False


def _zeros_like(x) -> np.ndarray | None:
    """A read-only array of zeros of ``x``'s shape and dtype (a view of :data:`_ZEROS`), or None
    where ``x`` is not a float array that fits."""
    if type(x) is not np.ndarray or not x.ndim or x.size > _ZERO_ELEMENTS:
        return None
    z = _ZEROS.get(x.dtype)
    return None if z is None else z[: x.size].reshape(x.shape)


def _extremum(op, a, b):
    """``op(a, b)`` (``numpy.maximum`` or ``numpy.minimum``), with a constant 0 operand given
    to NumPy as an array of zeros. NumPy's loops for an operand of stride 0 (a scalar, or a
    broadcast one) are not its SIMD loops: on a 2^18-element float64 block,
    ``maximum(0, x)`` took 167 µs with NumPy 2.4's AVX-512 dispatch (``maximum(x, 0.0)``
    123 µs) against 76 µs beside an array of zeros, and 61 µs against 76 µs with AVX2; on
    float32, 105 µs against 37 µs on both (a 2-core Zen 4 VM). The operands keep their order,
    so the results are the same bits: NumPy's choice between equal operands (+0 against -0)
    and its NaN are those of ``op(a, b)``."""
    if _plus_zero(a):
        z = _zeros_like(b)
        if z is not None:
            return op(z, b)
    elif _plus_zero(b):
        z = _zeros_like(a)
        if z is not None:
            return op(a, z)
    return op(a, b)


def _plus_zero(c) -> bool:
    """``c`` is the number +0 (an int 0, or a float +0.0: not -0.0, whose ties with +0 differ)."""
    if isinstance(c, bool) or not isinstance(c, (int, float)):
        return False
    return c == 0 and math.copysign(1.0, c) > 0


def maximum(a, b) -> np.ndarray:
    """``numpy.maximum(a, b)`` (NaN if either is NaN), faster where one is the constant 0: see
    :func:`_extremum`."""
    return _extremum(np.maximum, a, b)


def minimum(a, b) -> np.ndarray:
    """``numpy.minimum(a, b)`` (NaN if either is NaN), faster where one is the constant 0: see
    :func:`_extremum`."""
    return _extremum(np.minimum, a, b)


_kink_log = threading.local()


@contextmanager
def kink_log(pred: np.ndarray):
    """Keep the kink arguments the gradient computes on the block whose predictions are
    ``pred`` (:func:`kink`), for the rescue to read (:func:`logged_kinks`) before the block
    ends: the rescue looks for arguments within their rounding of 0 on every block, and
    computing them a second time cost as much as the gradient (the categorical hinge's
    margin: a row maximum and a row sum)."""
    _kink_log.pred, _kink_log.args = pred, {}
    try:
        yield
    finally:  # no reference to the block outlives it
        _kink_log.pred = _kink_log.args = None


def kink(k: int, x, h0: float) -> np.ndarray:
    """:func:`heaviside` of the k-th argument of ``<variant>_kinks``, kept in the current
    :func:`kink_log`."""
    args = getattr(_kink_log, "args", None)
    if args is not None:
        args[k] = x
    return heaviside(x, h0)


def logged_kinks(pred: np.ndarray, n: int) -> list | None:
    """The n kink arguments the gradient computed on the block of predictions ``pred`` (that
    very array), or None where they were not all kept (no log, another block, a row in
    pieces)."""
    args = getattr(_kink_log, "args", None)
    if args is None or _kink_log.pred is not pred or len(args) != n:
        return None
    out = [args[k] for k in range(n)]
    return None if any(isinstance(a, _pieces._Placeholder) for a in out) else out


def heaviside(x, h0: float) -> np.ndarray:
    """``numpy.heaviside(x, h0)``: 0 for x < 0, ``h0`` at 0 (either sign of zero), 1 for x > 0,
    NaN at NaN. ``numpy.heaviside`` branches per element (measured 30x a multiplication's time
    on signs at random, as a hinge's margins are); for h0 = 1 or 0 it is a comparison written
    into float64 (``x >= 0``, ``x > 0``: the same 0.0 and 1.0), NaN put back where there is any."""
    if isinstance(x, _pieces._Placeholder) or h0 not in (0.0, 1.0):  # a row value not known yet: deferred
        return np.heaviside(x, h0)
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(x.shape, np.float64)
    (np.greater_equal if h0 == 1.0 else np.greater)(x, 0.0, out=out, casting="unsafe")
    nan = np.isnan(x)
    if nan.any():
        out[nan] = np.nan
    return out


# --- Rows in pieces (see _pieces): partials, their combination, and the element-level parts ---
#
# A piece is one row (shape (1, w), w >= 2) starting at column ``_piece().offset`` of a row of
# ``_piece().width``; row-level values are (1, 1). Partials are combined in piece order.


def _sum_parts(parts: list) -> np.ndarray:
    """Σ over the pieces' sums: NumPy's pairwise sum, so the error grows with log P."""
    return np.sum(np.concatenate(parts, axis=-1), axis=-1, keepdims=True)


def _max_parts(parts: list) -> np.ndarray:
    return np.max(np.concatenate(parts, axis=-1), axis=-1, keepdims=True)  # NaN propagates


def _p_local(k: np.ndarray, f: np.ndarray) -> np.ndarray:
    """f at column k of the row when k falls in this piece, else NaN (k = -1: never)."""
    ctx = _piece()
    j = int(k[0, 0]) - ctx.offset
    if int(k[0, 0]) < 0 or not 0 <= j < f.shape[-1]:
        return np.full((1, 1), np.nan)
    return f[:, j : j + 1].copy()


def _pick_parts(parts: list) -> np.ndarray:
    """The one piece's value that holds the label (0 for an ignored row: no piece holds it)."""
    for value, inside in parts:
        if inside:
            return value
    return np.zeros((1, 1))


def _p_at_label(k: np.ndarray, f: np.ndarray) -> np.ndarray:
    ctx = _piece()
    j = int(k[0, 0]) - ctx.offset
    inside = int(k[0, 0]) >= 0 and 0 <= j < f.shape[-1]
    return _pieces.reduce(lambda: (_p_local(k, f), inside), _pick_parts)


def _p_label_row(k: np.ndarray, off, at) -> np.ndarray:
    """A piece of a row holding ``off`` (a number, or an element-level array) with the
    row-level value ``at`` at column k; zeros where k = -1."""
    ctx = _piece()
    if isinstance(off, np.ndarray) and off.ndim == 2:
        out = np.array(off, dtype=np.float64, order="C")
    else:
        out = np.full((1, ctx.piece_width), float(off))
    kk = int(k[0, 0])
    if kk < 0:
        return np.zeros_like(out)
    j = kk - ctx.offset
    if 0 <= j < out.shape[-1]:
        out[0, j] = np.broadcast_to(at, (1, 1))[0, 0]
    return out


def _p_rest_at_label(k: np.ndarray, v: np.ndarray, S: np.ndarray) -> np.ndarray:
    """rest_at_label for a long row: ``S - v_k``, or where v_k dominates (``v_k > 3/4·S``, a
    non-negative row) the row without v_k summed directly (pairwise within pieces and over them)."""
    ctx = _piece()
    j = int(k[0, 0]) - ctx.offset
    inside = int(k[0, 0]) >= 0 and 0 <= j < v.shape[-1]

    def partial():
        q = v
        if inside:
            q = v.copy()
            q[0, j] = 0.0
        low = np.fmin.reduce(v, axis=-1, keepdims=True)
        return _p_local(k, v), inside, _row_sum(q), low, _row_sum(np.abs(v))

    def combine(parts):
        vk = _pick_parts([(p[0], p[1]) for p in parts])
        without = _sum_parts([p[2] for p in parts])
        low = np.fmin.reduce(np.concatenate([p[3] for p in parts], axis=-1), axis=-1, keepdims=True)
        return vk, without, low, _sum_parts([p[4] for p in parts])

    vk, without, low, mag = _pieces.reduce(partial, combine)
    if int(k[0, 0]) < 0:
        return np.zeros((1, 1))
    r = S - vk
    if bool(low[0, 0] >= 0):
        return np.where(vk > 0.75 * S, without, r)
    return np.where(np.abs(vk) > 0.75 * mag, without, r)  # a negative element: rest_sum's test


def _rest_stats_partial(v: np.ndarray, off: int):
    """A piece's statistics for :func:`_p_rest_sum`: its sum, least element (NaN aside), first
    element largest in magnitude and its column, the piece's sum without that element, and Σ|v| (the sum
    itself for a non-negative piece). The sum without the largest element is summed directly
    where that element may carry the piece (more than half its sum: a non-negative row's
    dominant element exceeds 3/4 of the row's sum, so more than half its piece's), else it is
    ``s - top``, which loses nothing there. Three passes over a non-negative piece (sum, min,
    argmax), a fourth in the piece holding a dominant element."""
    s = _row_sum(v)
    low = np.fmin.reduce(v, axis=-1, keepdims=True)
    a = int(np.argmax(np.abs(v[0])))  # the element largest in magnitude (for a non-negative piece: the largest)
    top = v[:, a : a + 1].copy()
    nonneg = bool(low[0, 0] >= 0)
    if nonneg and bool(top[0, 0] <= 0.5 * s[0, 0]):
        # no element above half the piece: s - top >= s/2 keeps its digits (an error of a few
        # roundings of s, as the direct sum's), for a row with negative elements elsewhere
        without = s - top
    else:
        q = v.copy()
        q[0, a] = 0.0
        without = _row_sum(q)
    return low, top, off + a, s, without, s if nonneg else _row_sum(np.abs(v))


def _rest_stats_combine(parts: list) -> tuple:
    """The row's (least element, first largest element, its column, Σ v, Σ_{c≠k} v_c with k that
    column, Σ|v|): sums pairwise over the pieces (the sum is row_sum's numbers)."""
    low = np.fmin.reduce(np.concatenate([p[0] for p in parts], axis=-1), axis=-1, keepdims=True)
    tops = np.concatenate([p[1] for p in parts], axis=-1)
    best = int(np.argmax(np.abs(tops[0])))  # the first piece holding the row's (first) largest magnitude
    return (
        low,
        tops[:, best : best + 1],
        parts[best][2],
        _sum_parts([p[3] for p in parts]),
        _sum_parts([p[4] if i == best else p[3] for i, p in enumerate(parts)]),
        _sum_parts([p[5] for p in parts]),
    )


def _p_rest_sum(v: np.ndarray, S: np.ndarray | None) -> np.ndarray:
    """rest_sum for a long row: ``S - v_j``, and at the row's element largest in magnitude, k,
    ``r = Σ_{c≠k} v_c`` (summed directly) where k carries the row (rest_sum's tests:
    ``|v_k| > 3/4·Σ|v|``, for a non-negative row, sum below 2^53, ``v_k > 3/4·S``; for whole
    numbers, hard labels, r = S - v_k exactly: the short rows' shortcut, the same numbers).
    The statistics are asked for once per piece and array (:func:`._pieces.reduce_once`);
    while they are pending the elements are not known (:class:`._pieces.Unknown`), and the
    evaluation goes on to ask for the next reductions in the same pass.
    """
    if S is None:
        S = row_sum(v)
    ctx = _piece()
    off = ctx.offset
    stats = _pieces.reduce_once("rest_sum", v, lambda: _rest_stats_partial(v, off), _rest_stats_combine)
    if isinstance(stats, _pieces.Pending) or isinstance(S, _pieces.Pending) or _pieces.unknown(v):
        return _pieces.UNKNOWN
    low, vk, k, _, r, mag = stats
    out = S - v
    if bool(low[0, 0] >= 0) and bool(S[0, 0] < _EXACT_INT):
        if not bool(vk[0, 0] > 0.75 * S[0, 0]):  # rest_sum's test at k, the only candidate
            return out
        if 0 <= k - off < v.shape[-1]:
            out[0, k - off] = r[0, 0]
        return out
    if bool(np.abs(vk[0, 0]) > 0.75 * mag[0, 0]) and 0 <= k - off < v.shape[-1]:  # rest_sum's test at k
        out[0, k - off] = r[0, 0]
    return out


def _hot_partial(t: np.ndarray, p: np.ndarray, off: int) -> tuple:
    """A piece's share of a label row's one-hot test: its count of non-zero labels and, when
    that is one, the label there, its column and p there."""
    n = int(np.count_nonzero(t))
    if n != 1:
        return n, None
    j = int(np.flatnonzero(t[0])[0])
    return n, (float(t[0, j]), off + j, p[:, j : j + 1].copy())


def _hot_combine(parts: list) -> tuple:
    """(kind, p_k): kind 0 for a row of zero labels, 1 for a one-hot row (k its labelled
    column, p_k the prediction there), 2 for any other label row."""
    n = sum(q[0] for q in parts)
    if n == 0:
        return 0, None
    if n == 1:
        tk, _, pk = next(q[1] for q in parts if q[0] == 1)
        if tk == 1.0:
            return 1, pk
    return 2, None


def _p_weighted_neg_log_normalized(t: np.ndarray, p: np.ndarray, S: np.ndarray):
    """weighted_neg_log_normalized for a long row: a one-hot (or zero) label row needs its
    labelled element only, as a short row's: ``log1p(r/p_k)`` with r = ``S - p_k``, or the row
    without p_k summed directly where p_k dominates (:func:`_p_rest_sum`'s statistics of p,
    asked for once with the gradient's), no log of every element. Row-level from the
    reductions, so it is known in the pass that asks for them (a value alone: one pass). Other
    label rows: the general form, in the next pass (:class:`._pieces.AnotherPass`)."""
    off = _piece().offset
    hot = _pieces.reduce(lambda: _hot_partial(t, p, off), _hot_combine)
    stats = _pieces.reduce_once("rest_sum", p, lambda: _rest_stats_partial(p, off), _rest_stats_combine)

    def finish(hot, stats, S):
        kind, pk = hot
        if kind == 2 or not bool(S[0, 0] < _EXACT_INT):
            return None
        if kind == 0:
            return np.zeros((1, 1))
        _, _, _, _, without, _ = stats
        r = S - pk
        if bool(pk[0, 0] > 0.75 * S[0, 0]):  # p_k dominates (rest_sum's test): the row's argmax, r its rest
            r = without
        return _log1p_ratio(r, pk)

    if any(isinstance(x, _pieces.Pending) for x in (hot, stats, S)):

        def later(known):
            v = finish(*(_pieces.resolve(x, known) for x in (hot, stats, S)))
            if v is None:
                raise _pieces.AnotherPass
            return v

        return _pieces.Pending(later)
    v = finish(hot, stats, S)
    if v is not None:
        return v
    return row_sum(xmul(t, neg_log_normalized(p, rest_sum(p, S))))


def _p_cross_rest(t: np.ndarray, z: np.ndarray, e: np.ndarray, s: np.ndarray, S: np.ndarray) -> np.ndarray:
    """cross_rest for a long row: ``e_j·r^t_j - t_j·r^e_j`` as in the general form (the one-hot
    path's numbers are the same); an element that cancels is recomputed against its nearest
    classes, which needs the whole row: left to the row's evaluation as one piece
    (:func:`._pieces.need_whole_row`), which makes the general form's recomputation."""

    off = _piece().offset
    # the label row's sum and least element are rest_sum's statistics of t (asked for once)
    stats = _pieces.reduce_once("rest_sum", t, lambda: _rest_stats_partial(t, off), _rest_stats_combine)
    if any(isinstance(x, _pieces.Pending) for x in (stats, s, S)) or _pieces.unknown(e):
        return _pieces.UNKNOWN  # the elements in a later pass (the row's statistics are asked for now)
    low, _, _, T, _, _ = stats
    re = np.where(e == 1.0, s, S - e)
    negative = bool(low[0, 0] < 0)
    # hard labels: T - t (whole numbers, exact); rest_sum's numbers are the same there (its
    # only correction, at a dominant label, is the exact sum of the other whole numbers)
    rt = rest_sum(t, T)
    a, b = e * rt, t * re
    out = a - b
    if negative:
        bad = (np.abs(out) < 0.25 * (np.abs(a) + np.abs(b))) & (t != 0)
    else:
        bad = (a < _FIVE_THIRDS * b) & (b < _FIVE_THIRDS * a)
    bad = _pairable(bad, t, rt, width(z))
    if not np.any(bad):
        return out
    if not _piece().whole:
        _pieces.need_whole_row()
        return out
    return _fix_cancelled(out, bad, t, z, e, rt)
