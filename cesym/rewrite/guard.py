"""The split form only where it is needed: the unsplit gradient, guarded (``guard-split``).

``split-rowsum`` and ``norm-square-split`` write a row sum :math:`\\sum_c v_c` as
:math:`v_j + \\sum_{c \\ne j} v_c` so that the terms of element j that cancel do so exactly,
before anything is computed. The price is a rest sum per split sum, about five passes over a
block each (the row sum repeated, the difference, the test for a dominant element) and a
second sum of the rows where an element dominates. The cancellation they remove can only hurt
where the unsplit form's terms cancel, which on most rows they do not (the Dice gradient
:math:`2(\\sum y p - y_j(\\sum y + \\sum p))/(\\sum y + \\sum p)^2` with 0/1 labels and
probabilities: :math:`\\sum y + \\sum p - \\sum y p \\ge \\max(\\sum y, \\sum p)`, so its two terms cancel by
at most a factor 3).

So where it pays, the gradient becomes :class:`~cesym.define.primitives.Guarded`\\ (unsplit,
split): the kernels compute the unsplit sum :math:`\\sum_k t_k`, test
:math:`\\sum_k |t_k| \\le 4|\\sum_k t_k|` element by element, and compute the split form on
the rows that fail (``cesym.kernels._runtime.guarded``). Where the test holds, the unsplit sum's
error is at most four times the largest relative error of its terms, plus a rounding per
addition: the factor the split form allows itself, whose rest sums :math:`S - v_j` are used for
an element up to 3/4 of its row (4γ of the rest).
That bound needs terms with small relative errors, which holds when every sum inside them
(each row sum, and each sum of row sums or of elements they are made of) adds terms of one
sign on the declared domain: an interval evaluation over the domain's box proves it
(probabilities and labels in [0, 1], parameters in their declared ranges, a row sum of
non-negative terms in [0, ∞]). With signed terms (the cosine's :math:`\\sum \\hat y \\hat p`,
the Jaccard denominator :math:`\\sum y + \\sum p - \\sum y p`, which intervals cannot show
positive) a sum can cancel inside a term where the test cannot see it, and the split form
stays alone (where its cancelled element-j terms pair, the rest sums share one dominance test
instead: ``shared-dominance-test`` in :mod:`cesym.generate.lowerings`). The guard also costs
about six passes, so it is written only where it removes two or more rest sums of arrays
that involve the prediction (a rest sum of labels alone is exact for hard labels and cheap).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import mpmath
import sympy as sp

from ..define.loss import Loss
from ..define.primitives import Guarded, RestSum, RowSum
from .ranges import interval
from .rules import Rule, apply_rules, check_equivalent

__all__ = ["SPLIT_RULES", "GUARD_SPLIT", "guard_split", "one_signed"]

#: The rules whose rest sums the guard can spare.
SPLIT_RULES = ("split-rowsum", "norm-square-split")

GUARD_SPLIT_WHY = (
    "the unsplit gradient Σ_k t_k (row sums, no rest sums) where its terms cancel by at most a factor "
    "four (Σ|t_k| <= 4|Σ t_k|), the split form on the rows where they cancel more: there the unsplit "
    "sum's error is at most four times its terms' (its row sums add terms of one sign on the domain), "
    "the factor the split form's rest sums allow themselves, for about half the passes over the block."
)


def _box(loss: Loss) -> dict:
    """The declared domain as intervals: on probabilities, the prediction and the labels in [0, 1]
    (cesym's label kinds on that domain are 0/1, soft or distributions); elsewhere the real line;
    each parameter in its declared range; each label weight over the range of its definition."""
    iv = mpmath.iv
    unit, real = iv.mpf([0, 1]), iv.mpf(["-inf", "inf"])
    dom = unit if loss.domain == "probability" else real
    box: dict = {loss.prediction: dom}
    if loss.label is not None:
        box[loss.label] = dom
    for q in loss.params:
        lo, hi = loss.param_range(q)
        box[q] = iv.mpf([lo, hi])
    for w, definition in loss.weights.items():
        r = interval(definition, box)
        box[w] = r if r is not None else real
    return box


def one_signed(terms: sp.Basic, loss: Loss) -> bool:
    """Every sum inside ``terms`` (row sums and the sums of row sums or of elements a term is
    made of) has addends of one sign over ``loss``'s declared domain: each term is then a product
    and quotient of quantities with small relative errors. (The cancellation between the terms
    themselves is the runtime's test.)"""
    box = _box(loss)
    return all(_signed(e, box) for e in sp.preorder_traversal(terms) if isinstance(e, (RowSum, sp.Add)))


def _signed(e: sp.Basic, box: dict) -> bool:
    """``e`` has one sign over ``box``: by interval arithmetic, or, for a polynomial of degree at
    most one in each of its symbols (all in bounded ranges, no row sum), at the box's corners,
    where such a polynomial takes its extremes (intervals overestimate it: y·β - y - α(1 - y)
    spans [-2, 1] by intervals, [-2, 0] in fact)."""
    r = interval(e, box)
    if r is not None and (r.a >= 0 or r.b <= 0):
        return True
    syms = sorted(e.free_symbols, key=sp.default_sort_key)
    if e.has(RowSum) or not syms or len(syms) > 10 or any(s not in box or not mpmath.isfinite(box[s].a) or not mpmath.isfinite(box[s].b) for s in syms):
        return False
    try:
        degrees = sp.Poly(e, *syms).degree_list()
    except sp.PolynomialError:
        return False
    if any(d > 1 for d in degrees):
        return False
    ends = [(sp.Rational(float(box[s].a)), sp.Rational(float(box[s].b))) for s in syms]
    values = [e.xreplace(dict(zip(syms, corner))) for corner in itertools.product(*ends)]
    return all(v >= 0 for v in values) or all(v <= 0 for v in values)


def _costly_rest_sums(g: sp.Basic, x: sp.Symbol) -> int:
    """Distinct rest sums in ``g`` of arrays that involve the prediction ``x``."""
    return len({r for r in g.atoms(RestSum) if r.args[0].has(x)})


GUARD_SPLIT = Rule("guard-split", GUARD_SPLIT_WHY, lambda g: g)  # written by guard_split, named here


def guard_split(loss: Loss, raw: sp.Expr, split: sp.Expr, rules: Sequence[Rule], applied: Sequence[Rule]) -> sp.Expr | None:
    """``split`` (the gradient after ``rules``) with each part that holds rest sums written as
    ``Guarded(unsplit, split part)``, or ``None`` where the guard does not apply or does not pay
    (see the module docstring). ``raw``: the gradient before the rules; ``applied``: the rules
    that changed it. The result is checked against ``split`` (both forms)."""
    if not any(r.name in SPLIT_RULES for r in applied) or _costly_rest_sums(split, loss.prediction) < 2:
        return None
    fast, _ = apply_rules(raw, [r for r in rules if r.name not in SPLIT_RULES])
    if fast.has(RestSum):
        return None

    def guard(a: sp.Expr, b: sp.Expr) -> sp.Expr | None:
        ok = isinstance(a, sp.Add) and all(one_signed(t, loss) for t in a.args)
        return Guarded(a, b) if ok else None

    if isinstance(split, sp.Piecewise):
        if not isinstance(fast, sp.Piecewise) or len(fast.args) != len(split.args):
            return None
        branches = []
        for (fa, fc), (sa, sc) in zip(fast.args, split.args):
            if fc != sc:
                return None
            if sa.has(RestSum):
                sa = guard(fa, sa)
                if sa is None:
                    return None
            branches.append((sa, sc))
        out = sp.Piecewise(*branches)
    else:
        out = guard(fast, split)
        if out is None:
            return None
    check_equivalent(split, out)
    return out
