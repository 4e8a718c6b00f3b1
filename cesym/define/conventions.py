"""The conventions of a definition that are not elementary functions: a zero label weight.

A loss written ``Σ_c t_c·f(p_c)`` means ``0·f = 0`` where a label weight is 0 and ``f`` is
infinite: cross-entropy's ``0·log 0 = 0`` (a class with no mass contributes nothing whatever the
prediction), KL's ``0·log(0/q)``, the focal loss's ``t·(1 - p)^γ·log p`` at p = 0. IEEE
arithmetic gives 0·inf = NaN, and so would interval arithmetic on the plain expression.

:func:`guard_zero_weights` states the convention in the expression itself: the loss collected
on the monomials of its weights (t, t², t·u), each weighted part written ``XMul(w, B)``
(:class:`~cesym.define.primitives.XMul`: ``w·B``, and 0 where ``w`` is 0). It is part of what a
loss *means*, so the reference (:mod:`cesym.verify.reference`) applies it to the definition, and
the stability rules (:mod:`cesym.rewrite.rules`) build their weighted combinations on the same
collection.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from .primitives import Elem, RowSum, XMul, element_symbols

__all__ = ["guard_zero_weights", "weight_symbols", "distribute", "collect_monomials", "label_times_log", "label_times_power"]


def weight_symbols(expr: sp.Basic, weights: Sequence[Elem]) -> list[Elem]:
    """The label weights that occur in ``expr``, in ``weights``' order."""
    return [w for w in weights if expr.has(w)]


def distribute(expr: sp.Basic) -> sp.Basic:
    """Multiply out products over sums, leaving exponentials, logs of sums and the bases of
    symbolic powers alone (t(1 - p) + u·p stays whole in m^γ: multiplied out, t - p·t cancels
    near p = 1)."""
    # also a reciprocal of a sum of parameters alone, kept a product of such sums: 1/((1 - q)(2 - q))
    # multiplied out is 1/(q² - 3q + 2), which cancels in floats near q = 1 and q = 2 (44 ulps of a
    # Tweedie deviance's coefficient at q = 1.2)
    held = {e: sp.Dummy() for e in expr.atoms(sp.Pow) if e.exp.free_symbols or (e.exp.is_negative and isinstance(e.base, sp.Add) and not e.base.atoms(Elem))}
    out = sp.expand(expr.xreplace(held), power_exp=False, power_base=False, log=False, multinomial=False, basic=False)
    return out.xreplace({d: e for e, d in held.items()}) if held else out


def collect_monomials(expr: sp.Basic, ws: Sequence[Elem]) -> dict:
    """``expr`` collected on the monomials of the bare weight factors (t, t², t·u): SymPy's
    collect files t·u·B under t alone, and a guard on t would leave u·B unguarded (u = 0 with
    B = log 0 is 0·inf inside it)."""
    out: dict = {}
    for key, coeff in sp.collect(expr, ws, evaluate=False).items():
        inner = sp.collect(distribute(coeff), ws, evaluate=False) if key != 1 else {1: coeff}
        for k2, c2 in inner.items():
            out[key * k2] = out.get(key * k2, 0) + c2
    return out


def _guard(expr: sp.Basic, weights: Sequence[Elem]) -> sp.Basic:
    ws = weight_symbols(expr, weights)
    if not ws:
        return expr
    out = []
    for key, coeff in collect_monomials(distribute(expr), ws).items():
        if key == 1:
            out.append(coeff)
        elif key in ws or (key.free_symbols <= set(ws) and (key.is_Mul or key.is_Pow)):
            out.append(XMul(key, coeff))  # a weight or a monomial of weights: 0 where one is
        else:
            raise ValueError(f"loss is not polynomial in the label weights: term {key}*({coeff})")
    return sp.Add(*out)


def guard_zero_weights(expr: sp.Basic, weights: Sequence[Elem]) -> sp.Basic:
    r"""``expr`` with ``0·f = 0`` for a zero label weight made explicit: collected on the
    monomials of ``weights``, each weighted part as :class:`XMul` (inside each RowSum of a
    row-level expression). The same function of the finite inputs; where a weight is 0 and its
    part infinite, the convention's 0 instead of NaN."""
    if element_symbols(expr):
        return _guard(expr, weights)
    return expr.replace(lambda e: isinstance(e, RowSum), lambda e: RowSum(_guard(e.args[0], weights)))


def _label_weighted(expr: sp.Basic, label: Elem, holds) -> bool:
    """Whether ``expr`` (each RowSum's summand of a row-level one) collected on the monomials of
    ``label`` has a weighted part whose coefficient ``holds`` (a predicate on it). False where it
    is not polynomial in the label (the guard could not be written)."""
    parts = [expr] if element_symbols(expr) else [e.args[0] for e in expr.atoms(RowSum)]
    for part in parts:
        if not part.has(label):
            continue
        try:
            monomials = collect_monomials(distribute(part), [label])
        except (ValueError, TypeError):
            return False
        if any(key != 1 and holds(sp.sympify(coeff)) for key, coeff in monomials.items()):
            return True
    return False


def label_times_log(expr: sp.Basic, label: Elem, prediction: Elem) -> bool:
    """Whether ``label`` weighs a log of ``prediction`` in ``expr`` (``y·log p``: infinite at
    p = 0 where the label's 0 makes the term vanish): :func:`_label_weighted`."""
    from sympy.codegen.cfunctions import log1p

    return _label_weighted(expr, label, lambda c: any(f.has(prediction) for f in c.atoms(sp.log, log1p)))


def label_times_power(expr: sp.Basic, label: Elem, prediction: Elem) -> bool:
    """Whether ``label`` weighs a power of ``prediction`` with a symbolic exponent in ``expr``
    (``y·p^(β - 1)``, a β-divergence's: its derivative y·p^(β - 2) is 0·inf at y = p = 0 for
    β < 2, where the term vanishes for every p > 0): :func:`_label_weighted`."""
    return _label_weighted(expr, label, lambda c: any(f.base == prediction and not f.exp.is_Number for f in c.atoms(sp.Pow)))
