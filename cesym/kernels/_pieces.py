"""Rows longer than a block, in pieces: the generated core run over column pieces, its row
reductions supplied once known.

A generated core is straight-line code over a block of rows: elementwise NumPy and calls into
:mod:`._runtime`. A row longer than a block (``BLOCK_ELEMENTS``) is cut into P pieces of at
most three quarters of a block (:func:`piece_columns`) and nearly equal width (never a width of
1, which would read as a row-level value),
and the core is evaluated on every piece, in passes:

* every row reduction the core asks for (``row_sum``, ``row_max``, ``softmax_parts``' maximum,
  sum and off-max sum, the label's element in ``at_label``, the statistics behind
  ``rest_sum`` and ``cross_rest``, ...) is numbered in the order of the calls (:func:`reduce`).
  A reduction known from an earlier pass returns its full-row value (shape (1, 1)); an
  unknown one records this piece's *partial* (e.g. the piece's sum) and returns a
  :class:`Pending` value. Arithmetic on pending and row-level values stays pending;
  arithmetic of a pending value with elements (``exp(z - m)`` with m pending) gives
  :class:`Unknown` elements, and arithmetic on those stays unknown, so the evaluation goes on
  and asks, in the same pass, for every later reduction whose partial needs no unknown
  element (the label sums after the softmax's, rest_sum(p) after rest_sum(t)); the first use
  that needs numbers it does not have (a reduction of unknown elements, a branch, a
  selection) ends the piece's evaluation (:class:`PendingUsed`). A primitive whose
  statistics are pending returns unknown elements at once (:func:`unknown`), and one asked
  twice for the same statistics of the same array in a piece gets one reduction
  (:func:`reduce_once`);
* after the pass, the partials of each row are combined in piece order by the rule of the
  primitive that asked for them (sums: NumPy's pairwise sum of the piece sums, so the rounding
  error grows with log P, not with C; maxima: the maximum; the softmax's sum: the online
  log-sum-exp, Σ_p S_p·exp(m_p - m); a label's element: the piece that holds it; ...): they
  are known from the next pass on;
* a pass in which a piece's evaluation ends normally writes its element-level outputs; its
  row-level outputs, if still pending (a mean's final sum), are evaluated once that pass's
  reductions are combined; a row-level value that turns out to need another reduction once
  they are (:class:`AnotherPass`: a one-hot test that fails) sends the row round again. A
  value that is a function of row reductions alone takes one pass (a mean, binary
  cross-entropy; a categorical cross-entropy of probabilities with one-hot labels, which
  reads the labelled element by look-up as short rows do; the sparse softmax's value); a
  gradient takes two, the row's reductions then its elements, as does a value that needs
  every element after a row value (the softmax's, or soft labels' Σ t log(p/S)).
  ``tests/test_long_row_passes.py`` counts them.

The primitives branch on known row-level values only, so every piece of a row asks for the
same reductions in the same order (a piece that did not would raise RuntimeError, never give
silent numbers). Pieces of all long rows run on the kernels' threads; the pieces and the order
of every combination are fixed by the row length and the block size, not by the threads, so
the bytes do not depend on the number of threads, and a value is the same computed alone or
with its gradient. Memory stays a few pieces per thread.

The one exception: ``cross_rest`` recomputing a cancelled gradient element against its
nearest classes (soft labels on close logits; O(C log C) per element) needs the whole row.
It marks the row (:func:`need_whole_row`); when the row's reductions are all known it is
evaluated once more as one piece, with float64 temporaries of the row's length.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

__all__ = [
    "piece_columns", "active", "reduce", "reduce_once", "resolve", "need_whole_row", "unknown", "Pending", "Unknown", "PendingUsed", "AnotherPass", "run_pieces",
]

_local = threading.local()


class PendingUsed(Exception):
    """A row value not known yet was needed element by element: the piece's evaluation ends here."""


class AnotherPass(Exception):
    """Raised by a row-level :class:`Pending` whose value, once the pass's reductions are known,
    turns out to need another pass (a reduction it did not know it would ask for)."""


class _Placeholder(NDArrayOperatorsMixin):
    """A value not known yet: the operators go through ``__array_ufunc__`` (NumPy's mixin), and
    whatever needs its number now raises :class:`PendingUsed`."""

    __slots__ = ()

    def _need(self, *args, **kwargs):
        raise PendingUsed

    __array_function__ = __array__ = __bool__ = __iter__ = __getitem__ = __getattr__ = _need
    __len__ = __float__ = __int__ = __index__ = __contains__ = __setitem__ = _need


class Unknown(_Placeholder):
    """An element-level value that needs a row value not known yet (``exp(z - m)`` with m
    pending), in the pass that asks for that row value.

    Arithmetic (NumPy ufuncs and the operators, comparisons included: elementwise, as
    NumPy's) with it gives it back; anything else (a reduction of it, a truth value,
    ``numpy.where``, an attribute, indexing) raises :class:`PendingUsed`. So the evaluation of
    a piece goes on past a pending row value as far as it can without its elements: the
    reductions asked for there whose partials do not need them (the row sum of another input,
    the statistics of the labels) are recorded in the same pass, instead of one more pass over
    the row each. The element-level outputs are written in a later pass.
    """

    __slots__ = ()
    __hash__ = object.__hash__

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs:
            raise PendingUsed
        return UNKNOWN


UNKNOWN = Unknown()


def unknown(*xs) -> bool:
    """Any of ``xs`` an :class:`Unknown` element-level value."""
    return any(isinstance(x, Unknown) for x in xs)


class Pending(_Placeholder):
    """A row-level value (shape (1, 1)) of a reduction not combined yet, or arithmetic on such
    values: evaluated once the reductions of the pass are combined.

    NumPy ufuncs (and the arithmetic and ordering operators) on pending values and row-level
    operands give a pending value; with an element-level operand, an :class:`Unknown`;
    anything that needs its number now (a truth value, ``numpy.where``, unpacking, an
    attribute) raises :class:`PendingUsed`. So a core whose element-level outputs do not
    depend on a reduction (a mean's gradient) finishes in the pass that asks for it, its
    row-level value resolved afterwards; a core that needs the value element by element stops
    there. ``==`` and ``!=`` stay identity comparisons (no primitive compares a pending value).
    """

    __slots__ = ("fn",)
    __eq__, __ne__, __hash__ = object.__eq__, object.__ne__, object.__hash__

    def __init__(self, fn: Callable[[list], object]):
        self.fn = fn  # the row's known reductions -> the value

    def resolve(self, known: list):
        return self.fn(known)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs:
            raise PendingUsed
        for x in inputs:
            if isinstance(x, Unknown) or (isinstance(x, np.ndarray) and x.size > 1):  # element-level (a piece is >= 2 wide)
                return UNKNOWN
        return Pending(lambda known: ufunc(*[resolve(x, known) for x in inputs]))


def resolve(x, known: list):
    """``x`` itself, or its value once the reductions ``known`` are (a :class:`Pending`)."""
    return x.resolve(known) if isinstance(x, Pending) else x


class PieceContext:
    """What the runtime sees of the piece being evaluated (``None`` outside the long-row path)."""

    __slots__ = ("known", "next", "offset", "width", "piece_width", "whole", "pending", "need_whole", "memo")

    def __init__(self, known: list, offset: int, width: int, piece_width: int):
        self.known = known  # the row's reductions known so far, in call order
        self.next = 0  # number of the next reduction call
        self.offset = offset  # column of the piece's first element in the row
        self.width = width  # the row's length C
        self.piece_width = piece_width  # the piece's
        self.whole = piece_width == width  # one piece holds the whole row (need_whole_row's retry)
        self.pending: list = []  # (partial, combine) of the reductions asked for in this pass
        self.need_whole = False  # an element-level output needs the whole row (need_whole_row)
        self.memo: dict = {}  # (what, id(input)) -> (input, the reduction's value): asked once per piece


def need_whole_row() -> None:
    """Called by a primitive whose element-level result needs the whole row (``cross_rest``
    recomputing a cancelled element against its nearest classes): this piece's element-level
    outputs are not written; once the row's reductions are all known (they do not depend on
    element-level outputs: nothing reduces a gradient), the row is evaluated again as one piece."""
    _local.ctx.need_whole = True


def active() -> PieceContext | None:
    """The context of the piece this thread evaluates, or None (a whole-row block)."""
    return getattr(_local, "ctx", None)


def reduce(partial: Callable[[], object], combine: Callable[[list], object]):
    """A row reduction of the piece being evaluated: its full-row value if known; else record
    ``partial()`` (this piece's share; it may raise :class:`PendingUsed`) and ``combine``
    (piece partials, in order -> full-row value) and return a :class:`Pending` for it."""
    ctx = _local.ctx
    i = ctx.next
    ctx.next += 1
    if i < len(ctx.known):
        return ctx.known[i]
    part = partial()
    if unknown(*(part if isinstance(part, tuple) else (part,))):
        raise PendingUsed  # a partial of elements not known yet: a later pass
    ctx.pending.append((part, combine))
    return Pending(lambda known: known[i])


def reduce_once(what: str, x: np.ndarray, partial: Callable[[], object], combine: Callable[[list], object]):
    """:func:`reduce`, asked once per piece for the same statistic ``what`` of the same array
    ``x``: a second call (rest_sum(p) for the gradient and again for the value) returns the
    first call's value, known or pending, without a number of its own (the order of the calls
    is the same in every pass, so the numbering stays the same)."""
    ctx = _local.ctx
    key = (what, id(x))
    hit = ctx.memo.get(key)
    if hit is not None and hit[0] is x:
        return hit[1]
    value = reduce(partial, combine)
    ctx.memo[key] = (x, value)  # x kept alive: its id names it for the piece's evaluation
    return value


def piece_columns(block: int) -> int:
    """The widest piece for blocks of ``block`` elements: three quarters of a block (at least 4).

    Measured on softmax gradients over a vocabulary (float32, 2^20 x 10 elements, two threads,
    blocks of 2^18): whole-block pieces held 1.03x the input in scratch; half-block pieces 0.52x,
    but took 1.47-1.53x the time per element of rows of 10 (each piece pays the per-block
    overhead, twice: a gradient takes two passes)."""
    return max(4, 3 * block // 4)


def bounds(n_cols: int, size: int) -> list[int]:
    """Column bounds of the pieces of a row of ``n_cols`` > ``size``: P = ceil(n_cols/size)
    pieces of nearly equal width (each >= size/2 >= 2)."""
    p = -(-n_cols // size)
    return [n_cols * i // p for i in range(p + 1)]


def run_pieces(
    core: Callable,
    rows: Sequence,
    scalars: tuple,
    n_rows: int,
    n_cols: int,
    outputs: Sequence[tuple[str, np.dtype]],
    outs: list[np.ndarray],
    check: Callable | None,
    size: int,
    precheck: Callable | None,
    limit: Callable | None = None,
    zero_edge: bool = False,
) -> None:
    """Fill ``outs`` (see :func:`._blocks.run_blocks`) for rows longer than ``size``, in pieces.

    A row whose outputs are not all finite is looked at whole (as ``run_blocks`` looks at a
    block): ``check`` for bad input, then ``limit`` for the limits at infinite inputs, on the
    row's float64 inputs (the one case, with cancelled ``cross_rest`` elements, where a long
    row is materialised; only for rows holding inf or NaN).
    """
    from ._blocks import _block, _in_threads, positive_zero  # noqa: PLC0415 - _blocks imports this module lazily

    if size < 4:
        raise ValueError(f"block_elements: expected at least 4 for rows in pieces, got {size}")
    pieces = bounds(n_cols, size)
    cuts = [pieces] * n_rows  # a row that needs to be whole gets [0, n_cols]
    known: list[list] = [[] for _ in range(n_rows)]
    active_rows = list(range(n_rows))
    first = True

    def write(r: int, c0: int, c1: int, res) -> None:
        for out, (kind, _), x in zip(outs, outputs, res):
            if x is None:
                continue
            if kind == "row":
                if c0 == 0:
                    out[r] = np.broadcast_to(x, (1, 1))[0, 0]
            else:
                out[r, c0:c1] = np.broadcast_to(x, (1, c1 - c0))[0]

    nan_rows: set[int] = set()  # rows whose precheck saw NaN (see run_blocks)
    while active_rows:
        units = [(r, p) for r in active_rows for p in range(len(cuts[r]) - 1)]
        results: list = [None] * len(units)

        def work(share, units=units, results=results, first=first) -> None:
            for u in share:
                r, p = units[u]
                c0, c1 = cuts[r][p], cuts[r][p + 1]
                blocks = [_block(src, r, r + 1, c0, c1) for src in rows]
                fixed = positive_zero(blocks[-1]) if zero_edge else None
                if fixed is not None:  # -0 predictions are the edge 0 (see run_blocks): +0 in every pass
                    blocks[-1] = fixed
                ctx = PieceContext(known[r], c0, n_cols, c1 - c0)
                _local.ctx = ctx
                try:
                    with np.errstate(all="ignore"):  # IEEE results, as in run_blocks
                        if first and precheck is not None and precheck(blocks[-1]):
                            nan_rows.add(r)
                        res = core(*blocks, *scalars)
                        res = res if len(outs) > 1 else (res,)
                        if any(isinstance(x, Unknown) or (kind != "row" and isinstance(x, Pending)) for (kind, _), x in zip(outputs, res)):
                            raise PendingUsed  # an output needs a pending value element by element
                        keep = [kind == "row" or not ctx.need_whole for kind, _ in outputs]
                        write(r, c0, c1, [None if isinstance(x, Pending) or not k else x for x, k in zip(res, keep)])
                    later = [x if isinstance(x, Pending) else None for x in res] if c0 == 0 else None
                    results[u] = ("whole" if ctx.need_whole else "done", ctx.pending, later)
                except PendingUsed:
                    results[u] = ("stop", ctx.pending, None)
                finally:
                    _local.ctx = None

        _in_threads(work, range(len(units)))
        nxt = []
        at = 0
        for r in active_rows:
            mine = results[at : at + len(cuts[r]) - 1]
            at += len(cuts[r]) - 1
            status = {m[0] for m in mine}
            whole = "whole" in status
            status.discard("whole")
            status = status or {"done"}
            if len(status) != 1 or len({len(m[1]) for m in mine}) != 1:
                # a primitive branched on piece data: a bug, never silently wrong numbers
                raise RuntimeError("cesym: the pieces of a long row asked for different reductions")
            with np.errstate(all="ignore"):
                for j in range(len(mine[0][1])):
                    known[r].append(mine[0][1][j][1]([m[1][j][0] for m in mine]))
                if status == {"stop"}:
                    nxt.append(r)
                    continue
                try:
                    for out, x in zip(outs, mine[0][2]):  # the row-level values left pending
                        if x is not None:
                            out[r] = np.broadcast_to(x.resolve(known[r]), (1, 1))[0, 0]
                except AnotherPass:  # known now, they ask for more: the row goes round again
                    nxt.append(r)
                    continue
            if whole:
                # element-level outputs that need the whole row: once more, as one piece, every
                # reduction known (the row-level outputs come out the same)
                cuts[r] = [0, n_cols]
                nxt.append(r)
                continue
            if (check is not None or limit is not None) and (r in nan_rows or not all(np.all(np.isfinite(o[r])) for o in outs)):
                whole_row = [_block(src, r, r + 1) for src in rows]
                if check is not None:
                    check(whole_row[-1])  # bad input shows as inf or NaN
                if limit is not None:
                    res = tuple(
                        np.asarray(o[r : r + 1], dtype=np.float64)[:, None] if kind == "row" else np.asarray(o[r : r + 1], dtype=np.float64)
                        for o, (kind, _) in zip(outs, outputs)
                    )
                    with np.errstate(all="ignore"):
                        write(r, 0, n_cols, limit(whole_row, res))
        active_rows = nxt
        first = False
