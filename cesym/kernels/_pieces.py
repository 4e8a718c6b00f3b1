"""Rows longer than a block, in pieces: the generated core run over column pieces, its row
reductions supplied once known.

A generated core is straight-line code over a block of rows: elementwise NumPy and calls into
:mod:`._runtime`. A row longer than ``BLOCK_ELEMENTS`` is cut into P pieces of nearly equal
width (each at least half a block; never a width of 1, which would read as a row-level value),
and the core is evaluated on every piece, in passes:

* every row reduction the core asks for (``row_sum``, ``row_max``, ``off_max_sum``, the label's
  element in ``at_label``, the statistics behind ``rest_sum`` and ``cross_rest``, ...) is
  numbered in the order of the calls (:func:`reduce`). In pass j the first j reductions of a
  row are known (full-row values, shape (1, 1)); the call numbered j computes the piece's
  *partial* (e.g. the piece's sum) and stops the evaluation of that piece (:class:`Stop`);
* after the pass, the partials of each row are combined in piece order by the rule of the
  primitive that asked for them (sums: NumPy's pairwise sum of the piece sums, so the rounding
  error grows with log P, not with C; maxima: the maximum; a label's element: the piece that
  holds it; ...): that is reduction j, known from the next pass on;
* the pass in which no unknown reduction is met writes the outputs: each piece its elements,
  the first piece the row-level values.

The primitives decide their branches on known row-level values only, so every piece of a row
asks for the same reductions in the same order. Pieces of all long rows run on the kernels'
threads; the pieces and the order of every combination are fixed by the row length and the
block size, not by the threads, so the bytes do not depend on the number of threads. A core
with R reductions makes R + 1 passes over the row, each one reading its pieces again and
recomputing what precedes the reduction asked for: memory stays a few blocks, time grows with
R. A primitive whose piecewise form would need the whole row (``cross_rest`` recomputing a
cancelled element against its nearest classes, O(C log C)) raises :class:`NeedFullRow`; that
row is then computed as one block, as a short row would be.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["active", "reduce", "Stop", "NeedFullRow", "run_pieces"]

_local = threading.local()


class Stop(Exception):
    """A reduction not known yet: its partial is recorded and the piece's evaluation ends."""


class NeedFullRow(Exception):
    """The piece's row must be computed as one block."""


class PieceContext:
    """What the runtime sees of the piece being evaluated (``None`` outside the long-row path)."""

    __slots__ = ("known", "next", "offset", "width", "piece_width", "whole", "partial", "combine")

    def __init__(self, known: list, offset: int, width: int, piece_width: int):
        self.known = known  # the row's reductions known so far, in call order
        self.next = 0  # number of the next reduction call
        self.offset = offset  # column of the piece's first element in the row
        self.width = width  # the row's length C
        self.piece_width = piece_width  # the piece's
        self.whole = piece_width == width  # one piece holds the whole row (NeedFullRow's retry)
        self.partial = None
        self.combine: Callable | None = None


def active() -> PieceContext | None:
    """The context of the piece this thread evaluates, or None (a whole-row block)."""
    return getattr(_local, "ctx", None)


def reduce(partial: Callable[[], object], combine: Callable[[list], object]):
    """A row reduction of the piece being evaluated: its full-row value if known, else record
    ``partial()`` (this piece's share) and ``combine`` (piece partials, in order -> full-row
    value) and stop the piece (:class:`Stop`)."""
    ctx = _local.ctx
    i = ctx.next
    ctx.next += 1
    if i < len(ctx.known):
        return ctx.known[i]
    ctx.partial = partial()
    ctx.combine = combine
    raise Stop


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
) -> None:
    """Fill ``outs`` (see :func:`._blocks.run_blocks`) for rows longer than ``size``, in pieces."""
    from ._blocks import _block, _in_threads  # noqa: PLC0415 - _blocks imports this module lazily

    if size < 4:
        raise ValueError(f"block_elements: expected at least 4 for rows in pieces, got {size}")
    pieces = bounds(n_cols, size)
    cuts = [pieces] * n_rows  # a row that needs to be whole gets [0, n_cols]
    known: list[list] = [[] for _ in range(n_rows)]
    active_rows = list(range(n_rows))
    first = True

    def write(r: int, c0: int, c1: int, res) -> None:
        for out, (kind, _), x in zip(outs, outputs, res):
            if kind == "row":
                if c0 == 0:
                    out[r] = np.broadcast_to(x, (1, 1))[0, 0]
            else:
                out[r, c0:c1] = np.broadcast_to(x, (1, c1 - c0))[0]

    while active_rows:
        units = [(r, p) for r in active_rows for p in range(len(cuts[r]) - 1)]
        results: list = [None] * len(units)

        def work(share, units=units, results=results, first=first) -> None:
            for u in share:
                r, p = units[u]
                c0, c1 = cuts[r][p], cuts[r][p + 1]
                blocks = [_block(src, r, r + 1, c0, c1) for src in rows]
                ctx = PieceContext(known[r], c0, n_cols, c1 - c0)
                _local.ctx = ctx
                try:
                    with np.errstate(all="ignore"):  # IEEE results, as in run_blocks
                        if first and precheck is not None:
                            precheck(blocks[-1])
                        res = core(*blocks, *scalars)
                        write(r, c0, c1, res if len(outs) > 1 else (res,))
                    results[u] = "done"
                except Stop:
                    results[u] = (ctx.partial, ctx.combine)
                except NeedFullRow:
                    results[u] = "full"
                finally:
                    _local.ctx = None

        _in_threads(work, range(len(units)))
        nxt = []
        at = 0
        for r in active_rows:
            mine = results[at : at + len(cuts[r]) - 1]
            at += len(cuts[r]) - 1
            if "full" in mine:
                # the same pass again, on the whole row as one piece: the reductions known so
                # far are kept (the outputs depend on the pieces only through them)
                cuts[r] = [0, n_cols]
                nxt.append(r)
            elif all(m == "done" for m in mine):
                if check is not None and not all(np.all(np.isfinite(o[r])) for o in outs):
                    check(_block(rows[-1], r, r + 1))  # bad input shows as inf or NaN
            elif all(isinstance(m, tuple) for m in mine):
                with np.errstate(all="ignore"):
                    known[r].append(mine[0][1]([m[0] for m in mine]))
                nxt.append(r)
            else:  # a primitive branched on piece data: a bug, never silently wrong numbers
                raise RuntimeError("cesym: the pieces of a long row asked for different reductions")
        active_rows = nxt
        first = False
