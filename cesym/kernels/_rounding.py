r"""Correctly rounded float32 kernels: the rounding test, and the slow path for what it flags.

A float32 kernel computes in float64 and rounds once. The float64 result ``r`` errs by at most
``W·2^-53·m``, where ``m`` is the output's magnitude (:func:`cesym.generate.exact.magnitude`: its
sums as sums of absolute values; ``|r|`` where there is no cancellation) and ``W = 2^7``
(:data:`WINDOW`): each stable form is a few dozen operations, each within a few ulps of its
exact result (libm's exp/log within 4 ulps; measured by ``cesym verify``). Rounding ``r`` to
float32 is then the correct rounding of the exact value unless a float32 rounding boundary (a
midpoint between neighbouring float32 numbers, or the overflow threshold) lies within that
bound of ``r``: :func:`suspects` finds those outputs by rounding ``r`` minus and plus the bound
(rounding is monotone: where both give the same float32, so does the exact value). They are
rare, about ``2.5·W·m/|r|`` in 2^29 outputs. Where the form is rational they are computed again
exactly in float64 (:mod:`._eft`), then where an operation rounded, in double-doubles with a
rigorous error bound (:mod:`._dd`: MAPE's ``100·(p - 1)`` past ``|p| = 2^53``), all at once;
the rest by the decimal form at rising precision (:func:`cesym.kernels._exact.solve`), one
output at a time.

Magnitudes where sums cancel cost as much as the value. A block first tests its outputs with
one magnitude for all, the bound of the magnitude over the box of the block's inputs (the
generated ``<kernel>_<kind>_bound``, interval arithmetic: :mod:`._iv`), on the outputs of the
plain core; only the outputs that bound leaves open get their own magnitudes (their rows
through the ``_checked`` core). Where the bound is far too loose (a gradient whose range over
the box spans decades), the call's blocks take the ``_checked`` core.

Rows of values: a row's value ``(1/C)·Σ_c t_c`` has the magnitude ``(1/C)·Σ_c m_c``. Each term
errs by at most ``W·2^-53·m_c``, so the terms together by ``W·2^-53`` times the row's magnitude
(the bounds add as the magnitudes do); the C - 1 additions (any order) add at most
``(C - 1)·2^-53`` of it, ``1/C`` and the product one rounding each: the row's window is
``W + C + 1`` (:func:`row_window`). Rows wider than :data:`MAX_ROW` are rounded once from
float64, not tested (their decimal evaluation costs C decimal terms).

The claim "correctly rounded for every input" is checked by ``cesym verify --exhaustive``, which
compares every float32 input's output with the proven reference; a kernel whose float64 error
exceeded the window would show there as misrounded inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from types import ModuleType

import numpy as np

from . import _blocks, _dd, _eft, _exact

__all__ = ["WINDOW", "MAX_ROW", "row_window", "suspects", "correctly_rounded"]

#: The float64 error allowance, in units of 2^-53 times the output's magnitude.
WINDOW = 2.0**7
#: The widest row whose value is tested and corrected (wider rows: one rounding from float64).
MAX_ROW = 16


def row_window(C: int) -> float:
    """The window of a row's value: :data:`WINDOW` for its terms, C - 1 additions, 1/C and the
    product (see the module's docstring)."""
    return WINDOW + C + 1


#: Slack on the window for the roundings of r ± bound themselves (each within 2^-53·|r ± bound|,
#: at most 1/W of the bound since the bound is at least W·2^-53·|r|).
_SLACK = 1.25


def suspects(r: np.ndarray, m: np.ndarray | None, window: float = WINDOW) -> np.ndarray:
    """Flat indices of ``r`` (float64) whose float32 rounding may differ from the exact value's,
    given ``|r - exact| <= window·2^-53·m`` (``m``: broadcastable to ``r``, or None for ``|r|``).
    Outputs that are not finite are not flagged (their limits are the limit rules' business).

    Rounding to float32 is monotone: if ``r - b`` and ``r + b`` round to the same float32, so
    does every number between them, the exact value among them. The test is that, with ``b``
    the bound (times :data:`_SLACK`, so that ``r ± b`` computed in float64 still enclose
    ``[r - bound, r + bound]``): two multiplications or additions, each cast to float32 as it
    is stored (NumPy computes in float64 and rounds into the float32 output: one pass, not an
    operation and a copy), and no special case, since the casts themselves know float32's
    subnormal grid, its midpoints and its overflow threshold (from 2^128 - 2^103: inf). An
    output is flagged when the two differ; that happens about ``2·slack·window·m/|r|`` times in
    2^29 outputs, so a block usually has none and the positions are looked up only when one
    does. A scalar ``m`` (a block's bound) stays a scalar. It runs on every output of every
    float32 call."""
    r = np.asarray(r, dtype=np.float64)
    if m is not None:
        m = np.asarray(m, dtype=np.float64)
        if m.ndim:  # a view where m has r's shape (the checked cores' case), else a copy
            m = np.broadcast_to(m, r.shape).reshape(-1)
    r = np.ascontiguousarray(r).reshape(-1)
    eps = _SLACK * window * 2.0**-53
    lo = np.empty(r.shape, np.float32)
    hi = np.empty(r.shape, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        if m is None:
            np.multiply(r, 1.0 + eps, out=hi, casting="same_kind")
            np.multiply(r, 1.0 - eps, out=lo, casting="same_kind")
        else:
            b = np.multiply(m, eps)
            np.add(r, b, out=hi, casting="same_kind")
            np.subtract(r, b, out=lo, casting="same_kind")
        differ = lo != hi  # NaN differs from itself: sorted out below
    if not differ.any():
        return np.empty(0, np.intp)
    idx = np.flatnonzero(differ)
    keep = np.isfinite(r[idx])
    if m is not None and m.ndim:
        keep &= ~np.isnan(m[idx])
    elif m is not None:
        keep &= not np.isnan(m)
    return idx[keep]


def _exact_in_float64(args: list, fn: Callable, scalars: tuple, C: int) -> tuple[np.ndarray, np.ndarray]:
    """The tracked float64 form ``fn`` (:mod:`._eft`) on rows ``args`` ((k, C) blocks, or (k, 1)
    elements): its values and whether each is exact (no operation rounded)."""
    fx = _eft.Tracker(args[-1].shape)
    with np.errstate(all="ignore"):
        v = np.broadcast_to(fn(fx, *args, *scalars, float(C)), (len(args[-1]), 1))[:, 0]
    return v, ~fx.inexact.any(axis=-1) & np.isfinite(v)


def _rounded_in_double_double(args: list, fn: Callable, scalars: tuple, C: int) -> tuple[np.ndarray, np.ndarray]:
    """The same form ``fn`` on double-doubles with error bounds (:mod:`._dd`): the correctly
    rounded float32 values (as float64) and whether each is decided."""
    fx = _dd.DDTracker(args[-1].shape)
    with np.errstate(all="ignore"):
        x = fn(fx, *args, *scalars, float(C))
        if not isinstance(x, _dd.DW):  # a form that never reached an operation
            x = _dd.DW(np.asarray(x, np.float64), np.zeros(np.shape(x)), np.zeros(np.shape(x)), fx)
        shape = (len(args[-1]), 1)
        x = _dd.DW(*(np.broadcast_to(a, shape)[:, 0] for a in (x.h, x.l, x.e)), fx)
        v, ok = _dd.decide32(x, fx.undecided.any(axis=-1))
    return v.astype(np.float64), ok


class _Rounder:
    """A block core for float32 outputs that rounds correctly: the ``_checked`` core on each
    block (its outputs and their magnitudes), the rounding test (:func:`suspects`) noting the
    flagged outputs with their inputs; once every block is done, :meth:`finish` settles them
    together, tracked float64 (:mod:`._eft`) then double-doubles (:mod:`._dd`) for rational
    forms, each in one pass over all of them, then decimal (:mod:`._exact`), and writes the
    float32 results. Deferring the slow path
    costs each block nothing but the test: a call with thousands of exact ties (hinge and
    absolute error rows land exactly on float32 midpoints) pays the tracked pass's NumPy calls
    once, not once per block. A call builds its own; its blocks may run in several threads."""

    def __init__(self, module: ModuleType, variant: str, kind: str, labels: bool):
        self.plain = getattr(module, f"{variant}_{kind}")
        self.checked = getattr(module, f"{variant}_{kind}_checked")
        self.bound = getattr(module, f"{variant}_{kind}_bound", None)
        # labels in [0, 1] may leave fewer sums that cancel: fewer magnitudes to compute
        self.unit = getattr(module, f"{variant}_{kind}_checked_unit", None) if labels else None
        self.unit_bound = getattr(module, f"{variant}_{kind}_bound_unit", None)
        self.kinds = ("value", "grad") if kind == "value_and_grad" else (kind,)
        self.exact = {k: getattr(module, f"{variant}_{k}_exact", None) for k in self.kinds}
        self.eft = {k: getattr(module, f"{variant}_{k}_eft", None) for k in self.kinds}
        self.row_level = module.CORES[variant]["row_level"]
        # the arrays of the core most blocks run (labels in [0, 1] where there are labels); a
        # ``_checked`` form that only calls the plain core has that core's
        usual = self.unit if self.unit is not None else self.checked
        self.arrays = _blocks.local_arrays(usual) or _blocks.local_arrays(self.plain)
        self.nb = 2 if labels else 1
        self.found: list[tuple] = []  # (output, flat positions, float64 values, bounds, input rows)
        self.scalars: tuple = ()
        self.C = 0
        # a block found the bound far too loose (a gradient's range over the box spans decades):
        # the call's later blocks take the checked core at once (a benign race between threads)
        self.loose = False

    def _outputs(self, blocks: tuple, scalars: tuple) -> tuple[tuple, tuple, Callable]:
        """The outputs, their magnitudes and the ``_checked`` core that gives them element by
        element. Where the block's bound (one number per output over the box of its inputs) is
        finite, the plain core computes the outputs and the magnitudes are those numbers;
        otherwise the ``_checked`` core computes both."""
        use = self.bound is not None and not self.loose
        box = None
        if blocks[-1].size and (use or self.unit is not None):
            box = [_blocks.block_range(b) for b in (blocks if use else blocks[:1])]
        unit = box is not None and self.unit is not None and box[0][0] >= 0 and box[0][1] <= 1  # NaN fails
        checked, bound = (self.unit, self.unit_bound) if unit else (self.checked, self.bound)
        n = len(self.kinds)
        # a NaN input makes its box NaN: no bound (interval rules assume ordered ends)
        if use and bound is not None and box is not None and all(lo <= hi for lo, hi in box):
            mags = bound(box, *scalars, blocks[-1].shape[1])
            if all(m is None or m < np.inf for m in mags):  # NaN and inf fail
                outs = self.plain(*blocks, *scalars)
                return (outs if n > 1 else (outs,)), tuple(mags), checked
        res = checked(*blocks, *scalars)
        return res[:n], res[n:], checked

    def __call__(self, *args):
        blocks, scalars = args[: self.nb], args[self.nb :]
        outs, mags, checked = self._outputs(blocks, scalars)
        n = len(self.kinds)
        rows, C = blocks[-1].shape
        start = _blocks.block_start()

        def full():  # the inputs at the outputs' shape, for the few outputs a block flags
            return [np.broadcast_to(b, (rows, C)) for b in blocks]

        for i, k in enumerate(self.kinds):
            value_row = k == "value" and self.row_level
            if self.exact[k] is None or (value_row and C > MAX_ROW):
                continue
            shape = (rows, 1) if value_row else (rows, C)
            r = np.broadcast_to(outs[i], shape)
            flat = r.reshape(-1) if r.flags.c_contiguous else np.ascontiguousarray(r).reshape(-1)
            window = row_window(C) if value_row else WINDOW
            m = mags[i]
            idx = suspects(r, m, window)
            if idx.size == 0:
                continue
            if isinstance(m, float) and idx.size > flat.size // 16:  # the bound is far too loose here
                self.loose = True
                m = checked(*blocks, *scalars)[n + i]
                idx = suspects(r, m, window)
                if idx.size == 0:
                    continue
            rv = flat[idx]
            if isinstance(m, float):  # left open by the block's bound: test them with their own magnitudes
                sel = idx if value_row else np.unique(idx // C)
                sub = checked(*[b[sel] for b in full()], *scalars)[n + i]
                if sub is None:
                    own = np.abs(rv)
                else:
                    ms = np.broadcast_to(sub, (len(sel), shape[1]))
                    own = ms[:, 0] if value_row else ms[np.searchsorted(sel, idx // C), idx % C]
                keep = suspects(rv, own, window)
                idx, rv, mm = idx[keep], rv[keep], np.asarray(own)[keep]
                if idx.size == 0:
                    continue
            else:
                mm = np.abs(rv) if m is None else np.broadcast_to(m, shape).reshape(-1)[idx]
            if value_row:
                inputs, pos = [b[idx] for b in full()], start + idx
            else:
                rr, cc = np.divmod(idx, C)
                inputs, pos = [b[rr, cc][:, None] for b in full()], start * C + idx
            self.found.append((i, pos, rv, window * 2.0**-53 * mm, inputs))  # one append: atomic
        self.scalars, self.C = scalars, C
        return tuple(outs) if n > 1 else outs[0]

    def finish(self, outs: list[np.ndarray]) -> None:
        """Settle the noted outputs and write them into ``outs`` (the float32 arrays the blocks
        were written to: one per output, rows or rows × C). An output that is no longer the
        rounded float64 value (a limit rule rewrote its row: inputs that are not finite) is
        left as it is."""
        for i, k in enumerate(self.kinds):
            found = [f for f in self.found if f[0] == i]
            if not found:
                continue
            pos = np.concatenate([f[1] for f in found])
            r = np.concatenate([f[2] for f in found])
            bound = np.concatenate([f[3] for f in found])
            inputs = [np.concatenate([f[4][j] for f in found]) for j in range(len(found[0][4]))]
            # a block computed twice (-0 predictions read as +0) noted some outputs twice: the last counts
            last = len(pos) - 1 - np.unique(pos[::-1], return_index=True)[1]
            pos, r, bound, inputs = pos[last], r[last], bound[last], [a[last] for a in inputs]
            v = r.copy()
            todo = np.arange(len(pos))
            if self.eft[k] is not None:  # a rational form: exact in float64 where no operation rounded
                ev, ok = _exact_in_float64(inputs, self.eft[k], self.scalars, self.C)
                v[ok] = ev[ok]
                todo = todo[~ok]
                if todo.size:
                    dv, ok = _rounded_in_double_double([a[todo] for a in inputs], self.eft[k], self.scalars, self.C)
                    # a zero keeps the float64 result's sign (the kernel's convention for -0)
                    v[todo[ok]] = np.where(dv[ok] == 0, np.copysign(0.0, r[todo[ok]]), dv[ok])
                    todo = todo[~ok]
            value_row = k == "value" and self.row_level
            dscalars = tuple(Decimal(float(s)) for s in self.scalars) + (Decimal(self.C),)
            fn = self.exact[k]
            for j in todo:
                if value_row:
                    args = tuple([Decimal(float(x)) for x in a[j]] for a in inputs)
                else:
                    args = tuple(Decimal(float(a[j, 0])) for a in inputs)
                got = _exact.solve(fn, args + dscalars, float(bound[j]))
                if got is not None:
                    v[j] = got
            flat = outs[i].reshape(-1)
            keep = flat[pos] == r.astype(flat.dtype)  # untouched since the block wrote it
            flat[pos[keep]] = v[keep]


def correctly_rounded(module: ModuleType, variant: str, kind: str, labels: bool) -> _Rounder | None:
    """The core ``<variant>_<kind>`` of a generated module for float32 outputs (a
    :class:`_Rounder`: call :meth:`_Rounder.finish` with the outputs once every block is done);
    None when the module has no ``_checked`` forms. ``labels``: the core takes a label block
    first."""
    if getattr(module, f"{variant}_{kind}_checked", None) is None:
        return None
    return _Rounder(module, variant, kind, labels)
