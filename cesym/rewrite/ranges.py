"""Ranges of expressions over a box of intervals (symbol -> ``mpmath.iv`` interval), by interval
arithmetic: what the rewrite rules prove about signs and sizes over a loss's declared domain
(:mod:`cesym.rewrite.guard`'s one-signed sums, :mod:`cesym.rewrite.rules`' power-gap window)."""

from __future__ import annotations

import mpmath
import sympy as sp

from ..define.primitives import RowSum

__all__ = ["interval"]


def interval(e: sp.Basic, box: dict):
    """The range of ``e`` over ``box`` (symbol -> interval) by interval arithmetic, a row sum of
    terms of one sign as [0, inf] (or [-inf, 0]); ``None`` for an expression this small
    evaluator does not know (a function, a row sum of terms of both signs: not provably signed)."""
    iv = mpmath.iv
    if e in box:
        return box[e]
    if e.is_Number:
        return iv.mpf(e.p) / e.q if e.is_Rational else iv.mpf(str(e))  # a decimal string: an enclosure
    if isinstance(e, RowSum):
        r = interval(e.args[0], box)
        if r is None or not (r.a >= 0 or r.b <= 0):
            return None
        return iv.mpf([0, "inf"]) if r.a >= 0 else iv.mpf(["-inf", 0])
    if isinstance(e, (sp.Add, sp.Mul)):
        parts = [interval(a, box) for a in e.args]
        if any(p is None for p in parts):
            return None
        out = parts[0]
        for p in parts[1:]:
            out = out + p if isinstance(e, sp.Add) else out * p
        return out
    if isinstance(e, sp.Pow) and e.exp.is_Integer:
        base = interval(e.base, box)
        if base is None or (e.exp < 0 and base.a < 0 < base.b):
            return None
        return base ** int(e.exp)  # mpmath: an even power of [-1, 2] is [0, 4]
    return None
