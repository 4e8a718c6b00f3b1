r"""Outputs that overflow in float64 where the exact result does not: recomputed in decimal.

A float64 core can overflow where its result does not:

- a mean whose terms pass the largest float: Poisson's :math:`y\log p` at
  :math:`y \approx p \approx 2.8\cdot10^{305}` in a row of two is :math:`-2\cdot10^{308}` per
  term, the mean :math:`-10^{308}`; Huber's :math:`\delta|e|` past :math:`1.8\cdot10^{308}/\delta`;
- a difference of two inputs near :math:`\pm1.8\cdot10^{308}` (:math:`e = p - y` is inf) under
  a square, an absolute value or a gradient :math:`2e/C`;
- a quotient such as :math:`y/p` past the largest float, divided by :math:`C` after;
- NaN from :math:`\infty - \infty` between such terms.

:func:`rescuer` gives the ``limit`` hook of :func:`cesym.kernels._blocks.run_blocks` a second
job: the rows (values) and elements (gradients) whose inputs are all finite and whose float64
outputs are not are recomputed by the kernel's decimal form (``<variant>_value_exact``,
``<variant>_grad_exact``: the same stable form in :mod:`decimal`, with an exponent range of
:math:`10^{9}`, so nothing overflows), and rounded once: at :data:`DIGITS` significant digits
for float64 outputs (each operation then errs by :math:`10^{1-D}` in place of
:math:`2^{-53}`: the result is the correctly rounded float64 of a value within
:math:`10^{-40}` relative of the stable form's exact value, save a condition number past
:math:`10^{24}`), correctly rounded for float32 (:func:`cesym.kernels._exact.solve`). Where the
exact result overflows, the rounding gives ±inf, as the core did; a result that is not a real
number (a NaN input was screened before) keeps the core's output.

Only kernels with a decimal form are rescued (rows of elementwise terms; the generated module
says which), and rows of at most ``BLOCK_ELEMENTS`` (2^18) elements: a longer row, computed in
pieces, keeps IEEE's result. The cost is the decimal form's, about 30 µs per element, on the rows
that need it: a batch whose every row truly overflows (a float64 MSE of errors past 1e154) pays
it on every row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from types import ModuleType

import numpy as np

from . import _blocks, _exact

__all__ = ["DIGITS", "rescuer", "decimal_float64"]

#: Significant digits of the decimal evaluation of a float64 output.
DIGITS = 50


def decimal_float64(fn: Callable[..., Decimal], args: tuple) -> float | None:
    """``fn(*args)`` (Decimal arguments) at :data:`DIGITS` digits, rounded to float64 (±inf past
    the largest float); None where it is not a real number."""
    with localcontext(Context(prec=DIGITS, rounding=ROUND_HALF_EVEN, Emin=-(10**9), Emax=10**9, traps=[])):
        v = fn(*args)
    if not v.is_finite():
        return None
    return float(v)  # decimal -> float rounds to nearest (inf past the largest float)


def rescuer(
    module: ModuleType, variant: str, kinds: Sequence[str], scalars: tuple, float32: bool
) -> Callable[[list, tuple], tuple] | None:
    """``rescue(blocks, res)``: ``res`` (the core's float64 outputs on ``blocks``: labels first
    if any, predictions last) with the outputs that are not finite, where their rows' inputs
    are, recomputed by the decimal form (module docstring). None when the kernel has no decimal
    form for any of ``kinds``. ``float32``: the outputs will be float32 (correctly rounded)."""
    fns = {k: getattr(module, f"{variant}_{k}_exact", None) for k in kinds}
    if all(f is None for f in fns.values()):
        return None
    row_level = module.CORES[variant]["row_level"]
    dscalars = tuple(Decimal(float(s)) for s in scalars)

    def evaluate(fn: Callable[..., Decimal], args: tuple) -> float | None:
        return _exact.solve(fn, args) if float32 else decimal_float64(fn, args)

    def rescue(blocks: list, res: tuple) -> tuple:
        x = blocks[-1]
        R, C = x.shape
        if C > _blocks.BLOCK_ELEMENTS:  # a row in pieces: C decimal terms a row is too slow a path
            return res
        finite = np.ones(R, dtype=bool)
        for b in blocks:
            finite &= np.isfinite(b).all(axis=-1)
        out = list(res)
        dC = (Decimal(C),)
        full = [np.broadcast_to(b, (R, C)) for b in blocks]
        for i, k in enumerate(kinds):
            fn = fns[k]
            if fn is None:
                continue
            row = k == "value" and row_level
            r = np.broadcast_to(res[i], (R, 1) if row else (R, C))
            need = ~np.isfinite(r) & finite[:, None]
            if not need.any():
                continue
            r = np.array(r, dtype=np.float64)
            for a, c in zip(*np.nonzero(need)):
                if row:
                    args = tuple([Decimal(float(v)) for v in b[a]] for b in full)
                else:
                    args = tuple(Decimal(float(b[a, c])) for b in full)
                v = evaluate(fn, args + dscalars + dC)
                if v is not None:
                    r[a, c] = v
            out[i] = r
        return tuple(out)

    return rescue
