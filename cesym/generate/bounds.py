r"""Code for a bound of a kernel's magnitudes over a box of inputs (:mod:`cesym.kernels._iv`).

A ``_checked`` core returns each output's magnitude (:func:`cesym.generate.exact.magnitude`),
element by element; ``<kernel>_<kind>_bound`` bounds the same magnitudes over the box of a
block's inputs (each input between its minimum and maximum over the block) by interval
arithmetic, one :mod:`cesym.kernels._iv` call per operation of the magnitude's expression. The
runtime tests every output with that one number first and computes the magnitudes of the few
outputs it leaves open (:class:`cesym.kernels._rounding._Rounder`).

The bound is printed from the magnitude as mathematics (before the lowerings that print
kernels): it must hold for the exact magnitude wherever the inputs are in the box. An operation
without a rule here makes the whole bound None (the runtime then computes every magnitude).
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from ..define import primitives as P
from ..define.loss import N, Loss

__all__ = ["bound_body", "NoBound"]


class NoBound(Exception):
    """A magnitude with an operation :mod:`cesym.kernels._iv` has no rule for."""


_UNARY = {
    sp.log: "log", sp.exp: "exp", log1p: "log1p", expm1: "expm1", sp.Abs: "abs_", sp.tanh: "tanh",
    sp.sign: "sign", P.Softplus: "softplus", P.Sigmoid: "sigmoid", P.LogCosh: "logcosh", P.Relu: "relu",
}


class _Printer:
    """Interval code for an expression: nested ``_iv`` calls over named intervals."""

    def __init__(self, names: dict[sp.Basic, str]):
        self.names = names

    def __call__(self, e: sp.Basic) -> str:
        if e in self.names:
            return self.names[e]
        if e == P.C:
            return "(float(C), float(C))"
        if e.is_number:
            if not e.is_real:
                raise NoBound(f"the number {e}")
            return f"_iv.num({float(e)!r})" if not e.is_Integer else f"({float(e)!r}, {float(e)!r})"
        if isinstance(e, sp.Add):
            return "_iv.add(" + ", ".join(self(a) for a in e.args) + ")"
        if isinstance(e, sp.Mul):
            return "_iv.mul(" + ", ".join(self(a) for a in e.args) + ")"
        if isinstance(e, P.LogRatio):  # log w - log v: an enclosure of the same number
            return self(e.elementary())
        if isinstance(e, P.XMul):
            w, b = e.args
            if isinstance(b, P.LogRatio):  # w·log w - w·log v: w·log w stays bounded at w = 0
                b = b.elementary()
            if isinstance(b, sp.Add):  # w·(a + b) = w·a + w·b: each term may hold log w (below)
                return "_iv.add(" + ", ".join(self(P.XMul(w, t)) for t in b.args) + ")"
            if isinstance(b, sp.Piecewise):  # w·(one branch): each branch as its own product
                return "_iv.hull(" + ", ".join(self(P.XMul(w, x)) for x, _ in b.args) + ")"
            if b == sp.log(w):  # w·log w is bounded where w and log w as two intervals are not
                return f"_iv.xlog({self(w)})"
            if b == -sp.log(w):
                return f"_iv.neg(_iv.xlog({self(w)}))"
            if b == sp.Abs(sp.log(w)):
                return f"_iv.xabslog({self(w)})"
            return f"_iv.xmul({self(w)}, {self(b)})"
        if isinstance(e, P.ScaledExp):
            return f"_iv.xmul({self(e.args[1])}, _iv.exp({self(e.args[0])}))"
        if isinstance(e, sp.Pow):
            base, ex = e.args
            if not ex.is_number:
                raise NoBound(f"the power {e}")
            return f"_iv.pow_({self(base)}, {float(ex)!r})"
        if isinstance(e, P.RowSum):
            return f"_iv.rowsum({self(e.args[0])}, C)"
        if isinstance(e, (sp.Piecewise,)):
            return "_iv.hull(" + ", ".join(self(x) for x, _ in e.args) + ")"
        if isinstance(e, P.NanOr):
            return "_iv.hull(" + ", ".join(self(a) for a in e.args) + ")"
        if isinstance(e, (sp.Max, sp.Min)):
            return f"_iv.{'max_' if isinstance(e, sp.Max) else 'min_'}(" + ", ".join(self(a) for a in e.args) + ")"
        if isinstance(e, sp.Heaviside):
            return f"_iv.heaviside({self(e.args[0])})"
        for cls, name in _UNARY.items():
            if isinstance(e, cls):
                return f"_iv.{name}({self(e.args[0])})"
        raise NoBound(f"{type(e).__name__}")


def bound_body(loss: Loss, magnitudes: Sequence[sp.Expr | None]) -> list[str] | None:
    """The lines of ``<kernel>_<kind>_bound(box, *scalars, C)``: ``box`` the (min, max) of each
    array argument of the core, in its order, ``scalars`` its other arguments; returns the upper bound of each magnitude (None
    where ``magnitudes`` has None). None when an operation has no interval rule."""
    names: dict[sp.Basic, str] = {}
    lines = []
    arrays = ([] if loss.label is None else [loss.label]) + [loss.prediction]
    for i, a in enumerate(arrays):
        if a is loss.label and loss.label_index:
            names[a] = "(0.0, 1.0)"  # the indicator [c = k]
        else:
            names[a] = f"box[{i}]"
    for q in loss.params:
        names[q] = q.name
        lines.append(f"{q.name} = ({q.name}, {q.name})")
    names[N] = "(float(N), float(N))"
    printer = _Printer(names)
    try:
        for w, d in loss.weights.items():
            if w == d or not any(m is not None and m.has(w) for m in magnitudes):
                continue
            lines.append(f"{w.name} = {printer(d)}")
            names[w] = w.name
        rets = ["None" if m is None else f"_iv.upper({printer(m)})" for m in magnitudes]
    except NoBound:
        return None
    return lines + ["return " + ", ".join(rets) + ("," if len(rets) == 1 else "")]
