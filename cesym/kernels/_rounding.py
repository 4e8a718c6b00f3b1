r"""Correctly rounded float32 kernels: the rounding test, and the slow path for what it flags.

A float32 kernel computes in float64 and rounds once. The float64 result ``r`` errs by at most
``W·2^-53·m``, where ``m`` is the output's magnitude (:func:`cesym.generate.exact.magnitude`: its
sums as sums of absolute values; ``|r|`` where there is no cancellation) and ``W = 2^10``
(:data:`WINDOW`): each stable form is a few dozen operations, each within a few ulps of its
exact result (libm's exp/log within 4 ulps; measured by ``cesym verify``). Rounding ``r`` to
float32 is then the correct rounding of the exact value unless a float32 rounding boundary (a
midpoint between neighbouring float32 numbers, or the overflow threshold) lies within that
bound of ``r``: :func:`suspects` finds those outputs from ``r``'s bits (the 29 low bits of a
float64 in float32's normal range are its offset from a float32 number, so ``|low − 2^28|``
counts float64 ulps to the nearest midpoint; below 2^-126 the float32 grid is 2^-149). They are
rare, about ``2W·m/|r|`` in 2^29 outputs (1 in 2^18 where nothing cancels), and are recomputed
by the decimal form at rising precision (:func:`cesym.kernels._exact.solve`).

Rows of values: a row's value is a sum of its elements' terms, which adds one rounding per
element; the window grows with the row width ``C``, and rows wider than :data:`MAX_ROW` are
rounded once from float64, not tested (their decimal evaluation costs C decimal terms).

The claim "correctly rounded for every input" is checked by ``cesym verify --exhaustive``, which
compares every float32 input's output with the proven reference; a kernel whose float64 error
exceeded the window would show there as misrounded inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from types import ModuleType

import numpy as np

from . import _eft, _exact

__all__ = ["WINDOW", "MAX_ROW", "suspects", "correctly_rounded"]

#: The float64 error allowance, in units of 2^-53 times the output's magnitude.
WINDOW = 2.0**7
#: The widest row whose value is tested and corrected (wider rows: one rounding from float64).
MAX_ROW = 16

_TWO_M149 = 2.0**-149
_F32_OVERFLOW = 2.0**128 - 2.0**103  # the midpoint between float32's max and 2^128: from here, inf


def suspects(r: np.ndarray, m: np.ndarray | None, window: float = WINDOW) -> np.ndarray:
    """Flat indices of ``r`` (float64) whose float32 rounding may differ from the exact value's,
    given ``|r - exact| <= window·2^-53·m`` (``m``: broadcastable to ``r``, or None for ``|r|``).
    Outputs that are not finite are not flagged (their limits are the limit rules' business)."""
    r = np.asarray(r, dtype=np.float64)
    if m is not None:
        m = np.ascontiguousarray(np.broadcast_to(np.asarray(m, dtype=np.float64), r.shape)).reshape(-1)
    r = np.ascontiguousarray(r).reshape(-1)
    d = r.view(np.int64) & 0x1FFFFFFF
    d -= 0x10000000
    np.abs(d, out=d)  # float64 ulps of r to the nearest float32 midpoint (float32's normal range)
    a = np.abs(r)
    with np.errstate(invalid="ignore", over="ignore"):
        # distance >= d·|r|·2^-53 in float32's normal range: flag d·|r| <= window·m (a factor 2
        # spare at binade edges, where the nearest midpoint below lies in the binade below)
        flag = d <= int(2 * window) if m is None else d * a <= (2 * window) * m
        edge = np.flatnonzero((a < 2.0**-126) | (a >= 2.0**128))  # float32 subnormals; past float32
        if edge.size:
            ae = a[edge]
            bound = window * 2.0**-53 * (ae if m is None else m[edge]) + window * 2.0**-1074
            s = ae * 2.0**149  # exact: the float32 grid below 2^-126 is 2^-149
            sub = np.abs(s - np.floor(s) - 0.5) * _TWO_M149 <= bound
            flag[edge] = np.where(ae < 2.0**-126, sub, ae - bound <= _F32_OVERFLOW)
    idx = np.flatnonzero(flag)
    if idx.size:
        keep = np.isfinite(r[idx])
        if m is not None:
            keep &= ~np.isnan(m[idx])
        idx = idx[keep]
    return idx


def _exact_in_float64(r: np.ndarray, idx: np.ndarray, fn: Callable, full: list, scalars: tuple, C: int, rows: bool) -> np.ndarray:
    """Evaluate the tracked float64 form ``fn`` (:mod:`._eft`) at the outputs ``idx`` of ``r``;
    write the exact ones into ``r``; return the indices that were not exact."""
    if rows:
        args = [b[idx] for b in full]  # (k, C) rows
    else:
        rr, cc = np.divmod(idx, C)
        args = [b[rr, cc][:, None] for b in full]  # (k, 1) elements
    fx = _eft.Tracker(args[-1].shape)
    with np.errstate(all="ignore"):
        v = np.broadcast_to(fn(fx, *args, *scalars, float(C)), (len(idx), 1))[:, 0]
    ok = ~fx.inexact.any(axis=-1) & np.isfinite(v)
    r.reshape(-1)[idx[ok]] = v[ok]
    return idx[~ok]


def _fix(out: np.ndarray, idx: np.ndarray, args_at: Callable[[int], tuple], fn: Callable) -> np.ndarray:
    """``out`` (float64, writable) with the outputs at flat ``idx`` replaced by the correctly
    rounded float32 of ``fn`` at ``args_at(i)``, as float64 (exact, so the float32 cast keeps it)."""
    flat = out.reshape(-1)
    for i in idx:
        v = _exact.solve(fn, args_at(int(i)))
        if v is not None:
            flat[i] = v
    return out


def correctly_rounded(module: ModuleType, variant: str, kind: str, labels: bool) -> Callable | None:
    """The core ``<variant>_<kind>`` of a generated module for float32 outputs: the ``_checked``
    core, its suspects recomputed by the ``_exact`` forms; None when the module has no such
    forms. ``labels``: the core takes a label block first."""
    checked = getattr(module, f"{variant}_{kind}_checked", None)
    if checked is None:
        return None
    kinds = ("value", "grad") if kind == "value_and_grad" else (kind,)
    exact = {k: getattr(module, f"{variant}_{k}_exact", None) for k in kinds}
    eft = {k: getattr(module, f"{variant}_{k}_eft", None) for k in kinds}
    row_level = module.CORES[variant]["row_level"]
    nb = 2 if labels else 1

    def core(*args):
        blocks, scalars = args[:nb], args[nb:]
        res = checked(*args)
        outs, mags = list(res[: len(kinds)]), res[len(kinds):]
        C = blocks[-1].shape[-1]
        dscalars = tuple(Decimal(float(s)) for s in scalars) + (Decimal(C),)
        for i, k in enumerate(kinds):
            fn = exact[k]
            value_row = k == "value" and row_level
            if fn is None or (value_row and C > MAX_ROW):
                continue
            r = outs[i]
            shape = (blocks[-1].shape[0], 1) if value_row else blocks[-1].shape
            r = np.broadcast_to(r, shape)
            idx = suspects(r, mags[i], WINDOW * (C + 1) if value_row else WINDOW)
            if idx.size == 0:
                continue
            full = [np.broadcast_to(b, blocks[-1].shape) for b in blocks]
            r = np.array(r, dtype=np.float64)  # a fresh, writable copy of the core's result
            if eft[k] is not None:  # a rational form: exact in float64 where no operation rounded
                idx = _exact_in_float64(r, idx, eft[k], full, scalars, C, value_row)
            if value_row:
                def args_at(j, full=full):
                    return tuple([Decimal(float(v)) for v in b[j]] for b in full) + dscalars
            else:
                def args_at(j, full=full):
                    row, col = divmod(j, C)
                    return tuple(Decimal(float(b[row, col])) for b in full) + dscalars
            outs[i] = _fix(r, idx, args_at, fn)
        return tuple(outs) if len(kinds) > 1 else outs[0]

    return core
