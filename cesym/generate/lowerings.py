"""Lowering: the printing forms of the kernels, as checked rules.

Between the stable forms (:mod:`cesym.rewrite.rules`) and the printer, a derived value and
gradient are rewritten by exact identities into *printing forms*: nodes that name what the
runtime computes from parts other nodes compute too, so that ``cse`` shares the work between a
value and its gradient, and so that the runtime's scaled and guarded paths get the operands
they need (``a·Σ f`` as one node, which scales where ``Σ f`` alone would overflow). None of
them changes a number's mathematics:

* ``v_j + Σ_{c≠j} v_c = Σ_c v_c`` (a row-level sum; no cancellation to avoid in a sum);
* softplus and σ in their stable elementary forms, sharing ``exp(-|x|)``;
  ``exp(min(x, 0))`` is that same exponential where x < 0 and 1 elsewhere;
* the softmax's parts ``d = z - max z``, ``e = exp(d)``, ``S = Σ e``, ``s = Σ_{c≠argmax} e_c``
  shared by ``NegLogSoftmax = log1p(s) - d``, ``LogSumExp = max z + log1p(s)``, the cross
  terms of its gradient and ``1 - softmax = RestSum(e)/S``;
* rest sums given their row sums, ``NegLogNormalized(p)`` given ``RestSum(p)``;
* for a label that is the indicator of an integer class k, the sums and products against it
  as look-ups of element k.

Each lowering is a :class:`~cesym.rewrite.rules.Rule` (a name and the reason), applied in the
order of :func:`lowerings`; each printing form knows the mathematics it computes
(``math()``, read back by :func:`math_form`), and ``tests/test_lowerings.py`` checks every
lowering that fires on every shipped kernel as an identity, one at a time, with the rewrite
rules' own check (:func:`cesym.rewrite.rules.check_equivalent`). The class-index lowering
holds for one-hot labels only, which that check does not sample: the sparse kernels' contract
tests hold it to the reference instead.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp
from sympy.codegen.cfunctions import log1p

from ..define.primitives import (
    C,
    CrossRest,
    Elem,
    LogRatio,
    LogSumExp,
    NegLogNormalized,
    NegLogSoftmax,
    Norm2,
    NormalizedRest,
    RestSum,
    RowMax,
    RowSum,
    Scaled,
    ShareCrossRest,
    Sigmoid,
    SigmoidDiff,
    SoftmaxRest,
    Softplus,
    SumSquares,
    TwoForms,
    XMul,
    element_symbols,
)
from ..rewrite.rules import Rule, apply_rules

__all__ = ["lowerings", "lower", "math_form", "LABEL_INDEX", "ROW_LEVEL"]


class OffMaxSum(sp.Function):
    r"""Printing form: :math:`\sum_{c \ne k} e_c` over a row of ``e = exp(z - max z)`` with row sum
    ``S``, leaving one maximal element k out (row-level)."""

    nargs = 2

    def math(self) -> sp.Basic:
        e, S = self.args
        return S - 1  # e = exp(z - max z) is 1 at the maximal element left out


class SharedCrossRest(sp.Function):
    """Printing form of ``CrossRest(t, z)`` given ``e = exp(z - max z)``, its off-max sum and row sum."""

    nargs = 5

    def math(self) -> sp.Basic:
        t, z, e, s, S = self.args
        return CrossRest(t, z)


class SharedShareCrossRest(sp.Function):
    """Printing form of ``ShareCrossRest(t, z, g, dg)`` given ``e = exp(z - max z)``, its off-max
    sum and row sum: ``(t, z, e, s, S, g, dg)``, the order of the runtime's arguments."""

    nargs = 7

    def math(self) -> sp.Basic:
        t, z, e, s, S, g, dg = self.args
        return ShareCrossRest(t, z, g, dg)


class SharedNegLogNormalized(sp.Function):
    """Printing form of ``NegLogNormalized(p)`` given ``RestSum(p)``."""

    nargs = 2

    def math(self) -> sp.Basic:
        p, r = self.args
        return NegLogNormalized(p)


class WeightedNegLogNormalized(sp.Function):
    """Printing form of ``RowSum(XMul(t, NegLogNormalized(p)))`` given ``RowSum(p)`` (row-level)."""

    nargs = 3

    def math(self) -> sp.Basic:
        w, p, S = self.args
        return RowSum(XMul(w, NegLogNormalized(p)))


class SharedRestSum(sp.Function):
    """Printing form of ``RestSum(v)`` given ``RowSum(v)``."""

    nargs = 2

    def math(self) -> sp.Basic:
        v, S = self.args
        return RowSum(v) - v  # (RestSum nested in a reduction is not expandable)


class Dominant(sp.Function):
    """Printing form of where the elements of ``v`` dominate their rows, ``|v_j| > 3/4·Σ_c |v_c|``
    (given ``Σ v``, or 1 for the squares of a unit vector; ``plain``: 1 where ``v`` has no
    negative element): the flat positions
    (:func:`cesym.kernels._runtime.dominant`), shared by the rest sums it decides for. Not a
    number: it appears only inside :class:`TestedRestSum`, whose mathematics ignores it."""

    nargs = 3


class TestedRestSum(sp.Function):
    """Printing form of ``RestSum(v)`` given ``RowSum(v)`` and the positions ``Dominant(t, …)``
    at which it is summed directly (elsewhere ``Σ v - v_j``): the test of another array ``t``
    (see :func:`_shared_dominance_tests`)."""

    nargs = 3

    def math(self) -> sp.Basic:
        v, S, _ = self.args
        return RowSum(v) - v


class RestProductsAt(sp.Function):
    r"""Printing form of ``E = d⁻¹·Σ_i s_i·λ_i·Σ_{c≠j} x_i,c·y_i,c`` (tested rest sums of products,
    over a row-level ``d``), args ``(E, Dominant(…), d, s_1, λ_1, x_1, y_1, R_1, …)`` with ``R_i``
    the rest sums as ``E`` computes them: ``E``, recomputed at the dominant positions whose rest
    sums fall among the subnormal numbers with each rest sum's factors scaled by powers of two
    (:func:`cesym.kernels._runtime.rest_products_at`)."""

    def math(self) -> sp.Basic:
        return self.args[0]


class UnitDot(sp.Function):
    """Printing form of ``RowSum(a·b)`` for unit rows ``a = x/‖x‖``, ``b = z/‖z‖``, given that row
    sum: where it is near ±1 the runtime takes ``s·(1 - ½Σ(a - s·b)²)`` (``s`` its sign,
    :func:`cesym.kernels._runtime.unit_dot`), whose error is a rounding plus the unit vectors'
    errors times ``‖a - s·b‖``, where the dot product's own is a few roundings of 1."""

    nargs = 3

    def math(self) -> sp.Basic:
        return self.args[2]


class WeightedSumSquares(sp.Function):
    """Printing form of ``a·SumSquares(x)`` (a row-level): the runtime multiplies the scale of the
    sum in, so that nothing overflows or underflows before the product does."""

    nargs = 2

    def math(self) -> sp.Basic:
        x, a = self.args
        return a * SumSquares(x)


class WeightedRowSum(sp.Function):
    """Printing form of ``a·RowSum(f)`` (the product row-level, ``a`` not 1), given the sum
    ``RowSum(f)`` itself (its third argument, shared with every other use of it): the runtime
    computes ``a·Σf`` as the plain product, and where the sum overflows while the product (a
    mean) does not, scaled (:func:`cesym.kernels._runtime.weighted_row_sum`)."""

    nargs = 3

    def math(self) -> sp.Basic:
        x, a, s = self.args
        return a * s


class ExpMin0(sp.Function):
    """Printing form of ``exp(min(x, 0))`` given ``E = exp(-|x|)``: E where x < 0, else 1 (no
    second exponential)."""

    nargs = 2

    def math(self) -> sp.Basic:
        x, E = self.args
        return sp.exp(sp.Min(x, 0))


class SigmoidDiffForm(sp.Function):
    """Printing form of ``SigmoidDiff(a, b, x)`` given ``E = exp(-|x|)``, shared with the
    sigmoids and softplus of the same x (:func:`cesym.kernels._runtime.sigmoid_diff`)."""

    nargs = 4

    def math(self) -> sp.Basic:
        a, b, x, E = self.args
        return (a * sp.exp(sp.Min(x, 0)) - b * sp.exp(sp.Min(-x, 0))) / (1 + sp.exp(-sp.Abs(x)))


class Operand(sp.Function):
    """Printing form: ``z`` computed once as an array, the operand of a softmax's shift.

    ``d = z - max z`` of a compound z (x + 1 - y: a hinge's margin inside the softmax) would
    otherwise flatten into x + 1 - y - max z, and the value's ``-d_j`` into max z - x - 1 + y:
    its terms, each rounded, cancel where z_j is near the maximum, where ``d_j`` is 0 or small
    (a log-sum-exp hinge's term of 2e-12 came out with an error of 3.5e-15, 146 ulps of the
    value). Computed once, z keeps one rounding, d is exact at the maximum and the value's
    ``max z - z_j`` is a difference of two computed numbers (exact where they are close)."""

    nargs = 1

    def math(self) -> sp.Basic:
        return self.args[0]


def _operand(z: sp.Basic) -> sp.Basic:
    """``z`` as one :class:`Operand` where it is a sum (whose terms a shift would flatten into)."""
    return Operand(z) if isinstance(z, sp.Add) else z


class MaxPlusLog1p(sp.Function):
    """Printing form of ``LogSumExp(u)``: ``m + log1p(s)`` given ``m = max u`` and the off-max sum
    ``s`` of the softmax. One node, so that ``cse`` cannot share ``m + log1p(s)`` with a
    ``NegLogSoftmax`` ``(m - u) + log1p(s)`` of the same row and turn it into ``lse - u``,
    the cancellation the primitive is there to avoid."""

    nargs = 2

    def math(self) -> sp.Basic:
        m, s = self.args
        return m + sp.log(1 + s)


class LabelLogSoftmax(sp.Function):
    """Printing form of ``-log softmax(z)_k`` at the label k: ``(m - z_k) + log1p(s)`` given
    ``m = max z``, ``z_k`` and the off-max sum ``s``. One node, so that ``cse`` cannot take
    ``m + log1p(s)`` out of it where the gradient holds ``(m - z) + log1p(s)`` over the whole
    row (a sparse focal loss's ν): ``lse - z_k`` cancels where z_k is the maximum (at a class
    ahead by 30, 9.4e-14 came out 1.3 % off)."""

    nargs = 3

    def math(self) -> sp.Basic:
        m, zk, s = self.args
        return (m - zk) + sp.log(1 + s)


class AtLabel(sp.Function):
    """Printing form: element ``k`` of an element-level expression (0 for an ignored row, k = -1)."""

    nargs = 2


class RestAtLabel(sp.Function):
    """Printing form of ``AtLabel(k, RestSum(v))`` given ``RowSum(v)``: Σ_{c≠k} v_c, computed at k only (row-level)."""

    nargs = 3


class OneHot(sp.Function):
    """Printing form: the one-hot row ``[c = k]`` (zeros for k = -1), of C elements."""

    nargs = 2


class OneHotRest(sp.Function):
    """Printing form: ``Σ_{c≠j} [c = k]`` = 1 - [j = k] (zeros for k = -1)."""

    nargs = 2


class ScatterLabel(sp.Function):
    """Printing form: a row of C zeros holding the row-level value ``g`` at element k."""

    nargs = 3


class OneHotCrossRest(sp.Function):
    """Printing form of ``CrossRest([c = k], z)`` given e = exp(z - max z), its off-max sum and row sum."""

    nargs = 4


class LogNonzero(sp.Function):
    """Printing form of ``log(w)`` inside ``XMul(w, ·)``: ``log w``, 0 where w is 0
    (there the product is 0 whatever its other factor), so that no -inf, and no 0·inf = NaN
    for the product to repair, is computed where labels are 0 (one-hot rows: 9 in 10)."""

    nargs = 1

    def math(self) -> sp.Basic:
        return sp.log(self.args[0])


class LogRatioNonzero(sp.Function):
    """Printing form of ``LogRatio(w, v)`` inside ``XMul(w, ·)``: log(w/v) where w != 0, any
    number where w is 0 (the product is 0 there): a block of hard labels takes -log v for
    every element, one log and no quotient (:func:`cesym.kernels._runtime.log_ratio_nonzero`)."""

    nargs = 2

    def math(self) -> sp.Basic:
        return LogRatio(*self.args)


class LogRatioDiff(sp.Function):
    """Printing form of ``LogRatio(w, v)`` given ``d = w - v`` in a shorter form than the
    difference of the two (``LogRatio(2p, p + y)``, ``d = p - y``): ±log1p(|d|/min(w, v)) with
    the digits of d that ``w - fl(v)`` loses (:func:`cesym.kernels._runtime.log_ratio`)."""

    nargs = 3

    def math(self) -> sp.Basic:
        return LogRatio(*self.args[:2])


class LogRatioNonzeroDiff(sp.Function):
    """:class:`LogRatioNonzero` given ``d = w - v`` (:class:`LogRatioDiff`)."""

    nargs = 3

    def math(self) -> sp.Basic:
        return LogRatio(*self.args[:2])


def _shorter_difference(w: sp.Expr, v: sp.Expr, defs: dict | None = None) -> sp.Expr | None:
    """``w - v`` expanded where it has fewer terms than w and v together (terms cancel, so the
    difference of the computed w and v would lose what they share), else None. ``defs``: the
    label weights' definitions (``one_minus_y: 1 - y``), read into w and v first."""
    w, v = (w.xreplace(defs), v.xreplace(defs)) if defs else (w, v)
    d = sp.expand(w - v)
    terms = len(sp.Add.make_args(sp.expand(w))) + len(sp.Add.make_args(sp.expand(v)))
    return d if element_symbols(d) and len(sp.Add.make_args(d)) < terms else None


def _log_ratio_differences(defs: dict | None = None) -> Callable[[sp.Basic], sp.Basic]:
    """``LogRatio(w, v)`` (``LogRatioNonzero``) -> ``LogRatioDiff(w, v, d)`` where the difference
    ``d`` is shorter (:func:`_shorter_difference`; a Bernoulli KL's (1 - y)/(1 - p) through its
    weight one_minus_y = 1 - y: d = p - y)."""
    forms = {LogRatio: LogRatioDiff, LogRatioNonzero: LogRatioNonzeroDiff}

    def form(e: sp.Basic) -> sp.Basic:
        d = _shorter_difference(*e.args, defs)
        return e if d is None else forms[type(e)](*e.args, d)

    return lambda expr: expr.replace(lambda e: type(e) in forms, form)


LOG_RATIO_DIFFERENCE_WHY = (
    "log(w/v) = ±log1p(|w - v|/min(w, v)) with w - v in its shorter form where terms of w and v "
    "cancel (Jensen–Shannon's mixture: log(2p/(p + y)) with 2p - (p + y) = p - y): the rounded "
    "sum p + y loses the digits of p - y that the log needs where p is near y (a divergence "
    "below 1e-16 came out negative)."
)


def _guarded_logs(expr: sp.Basic) -> sp.Basic:
    """``XMul(w, B)`` with ``log(w)`` or ``LogRatio(w, v)`` in B (w an element symbol) -> B with
    ``LogNonzero(w)``, ``LogRatioNonzero(w, v)``."""
    def guard(e: sp.Basic) -> sp.Basic:
        w, b = e.args
        b = b.replace(lambda f: isinstance(f, LogRatio) and f.args[0] == w, lambda f: LogRatioNonzero(*f.args))
        return XMul(w, b.xreplace({sp.log(w): LogNonzero(w)}))

    return expr.replace(
        lambda e: isinstance(e, XMul) and isinstance(e.args[0], Elem)
        and (e.args[1].has(sp.log(e.args[0])) or any(f.args[0] == e.args[0] for f in e.args[1].atoms(LogRatio))),
        guard,
    )


#: The integer label of a loss whose label is an indicator (``Loss.label_index``).
LABEL_INDEX = sp.Symbol("k", integer=True)

#: The lowerings' nodes with one value per row.
ROW_LEVEL = (
    RowSum, RowMax, AtLabel, WeightedNegLogNormalized, RestAtLabel, SumSquares, WeightedSumSquares, Norm2, LogSumExp,
    MaxPlusLog1p, LabelLogSoftmax,
)


def _elementwise(e: sp.Basic) -> bool:
    """True when ``e`` has an element-level part (an Elem outside every row-level node)."""
    if isinstance(e, Elem):
        return True
    if isinstance(e, ROW_LEVEL) or e.func.__name__ == "OffMaxSum":
        return False
    return any(_elementwise(a) for a in e.args)


def _gather(e: sp.Basic) -> sp.Basic:
    """``e`` at element k: each element-level leaf (an Elem, a RestSum) read at k."""
    if not _elementwise(e):
        return e
    if isinstance(e, (Elem, RestSum)):
        return AtLabel(LABEL_INDEX, e)
    return e.func(*[_gather(a) for a in e.args])


def _index_label(expr: sp.Basic, y: Elem) -> sp.Basic:
    """Exact identities for a label ``y_c = [c = k]``: ``Σ_c y_c f_c = f_k`` (0 for an ignored
    row), ``XMul(y, g) = g_k`` at k and 0 elsewhere, ``RestSum(y) = 1 - y``, and the softmax
    numerator ``CrossRest(y, z)`` = e_j off k, ``-Σ_{c≠k} e_c`` at k."""
    k = LABEL_INDEX

    def row_sum(e: RowSum) -> sp.Basic:
        arg = e.args[0]
        if isinstance(arg, XMul) and arg.args[0] == y and not arg.args[1].has(y):
            return AtLabel(k, _gather(arg.args[1]))
        if arg == y:
            return AtLabel(k, sp.Integer(1))
        if isinstance(arg, sp.Mul) and y in arg.args and not (arg / y).has(y):
            return AtLabel(k, _gather(arg / y))
        return e

    expr = expr.replace(lambda e: isinstance(e, RowSum) and e.has(y), row_sum)
    expr = expr.replace(
        lambda e: isinstance(e, SharedCrossRest) and e.args[0] == y,
        lambda e: OneHotCrossRest(k, e.args[2], e.args[3], e.args[4]),
    )
    expr = expr.replace(
        lambda e: isinstance(e, XMul) and e.args[0] == y and not e.args[1].has(y),
        lambda e: ScatterLabel(k, _gather(e.args[1]), C),
    )
    expr = expr.replace(lambda e: isinstance(e, RestSum) and e.args[0] == y, lambda e: OneHotRest(k, C))
    return expr.xreplace({y: OneHot(k, C)})


def _merge_rest_sums(expr: sp.Basic) -> sp.Basic:
    """``v + RestSum(v)`` (in any sum) -> ``RowSum(v)``: one row-level sum instead of a per-element one."""

    def merge(add: sp.Add) -> sp.Basic:
        terms = list(add.args)
        for r in [a for a in terms if isinstance(a, RestSum)]:
            if r in terms and r.args[0] in terms:
                terms.remove(r)
                terms.remove(r.args[0])
                terms.append(RowSum(r.args[0]))
        return sp.Add(*terms)

    return expr.replace(lambda e: isinstance(e, sp.Add) and e.has(RestSum), merge)


def _merge_sum_terms(cls, only_alone: bool = False):
    """``c·cls(u) + c·cls(v) -> c·cls(u + v)`` (the same factor c, in any sum). ``only_alone``:
    only where none of the merged sums is left elsewhere in the expression (it would be
    computed as well as the merged one)."""

    def lower(expr: sp.Basic) -> sp.Basic:
        kept: set = set()  # sums not to merge: used elsewhere
        while True:
            merged: set = set()

            def merge(add: sp.Add) -> sp.Basic:
                groups: dict = {}
                for term in add.args:
                    found = [f for f in sp.Mul.make_args(term) if isinstance(f, cls)]
                    if len(found) == 1 and found[0] not in kept:
                        coeff = sp.Mul(*[f for f in sp.Mul.make_args(term) if f is not found[0]])
                        groups.setdefault(coeff, []).append((term, found[0]))
                terms = list(add.args)
                for coeff, found in groups.items():
                    if len(found) > 1:
                        for term, f in found:
                            terms.remove(term)
                            merged.add(f)
                        terms.append(coeff * cls(sp.Add(*[f.args[0] for _, f in found])))
                return sp.Add(*terms)

            out = expr.replace(lambda e: isinstance(e, sp.Add) and e.has(cls), merge)
            left = {f for f in merged if out.has(f)} if only_alone else set()
            if not left:
                return out
            kept |= left

    return lower


def _softmax_parts(z: sp.Basic) -> tuple[sp.Basic, sp.Basic, sp.Basic, sp.Basic]:
    """``d = z - max z``, ``e = exp(d)``, ``S = Σ e`` and ``s = Σ_{c≠k} e_c``."""
    z = _operand(z)
    d = z - RowMax(z)
    e = sp.exp(d)
    S = RowSum(e)
    return d, e, S, OffMaxSum(e, S)


def _weighted_sum_squares(expr: sp.Basic) -> sp.Basic:
    """``a·SumSquares(x)`` -> ``WeightedSumSquares(x, a)`` (a: the product's other row-level
    factors); a SumSquares in any other place -> ``WeightedSumSquares(x, 1)``."""

    def mul(e: sp.Mul) -> sp.Basic:
        sq = [f for f in e.args if isinstance(f, SumSquares)]
        if len(sq) != 1:
            return e
        rest = [f for f in e.args if f is not sq[0]]
        a = [f for f in rest if not element_symbols(f)]  # row-level factors only
        return sp.Mul(*[f for f in rest if element_symbols(f)]) * WeightedSumSquares(sq[0].args[0], sp.Mul(*a))

    expr = expr.replace(lambda e: isinstance(e, sp.Mul) and any(isinstance(f, SumSquares) for f in e.args), mul)
    return expr.replace(lambda e: isinstance(e, SumSquares), lambda e: WeightedSumSquares(e.args[0], sp.Integer(1)))


def _weighted_row_sums(expr: sp.Basic) -> sp.Basic:
    """``a·RowSum(f)`` with every other factor row-level -> ``WeightedRowSum(f, a)`` (a mean:
    its sum may overflow where it does not)."""

    def mul(e: sp.Mul) -> sp.Basic:
        sums = [f for f in e.args if isinstance(f, RowSum)]
        rest = [f for f in e.args if f is not (sums[0] if sums else None)]
        if len(sums) != 1 or any(element_symbols(f) or f.has(RowSum) for f in rest):
            return e
        return WeightedRowSum(sums[0].args[0], sp.Mul(*rest), sums[0])

    return expr.replace(lambda e: isinstance(e, sp.Mul) and any(isinstance(f, RowSum) for f in e.args), mul)


def _unit(f: sp.Basic) -> bool:
    return isinstance(f, Scaled) and f.args[1] == Norm2(f.args[0])


def _unit_dots(expr: sp.Basic) -> sp.Basic:
    """``RowSum(a·b)`` of two unit rows -> :class:`UnitDot` in a row-level expression (the value):
    the gradient's rest sums are differences of that same computed dot, whose numbers it keeps."""
    if element_symbols(expr):
        return expr
    return expr.replace(
        lambda e: isinstance(e, RowSum) and isinstance(e.args[0], sp.Mul) and len(e.args[0].args) == 2 and all(_unit(f) for f in e.args[0].args),
        lambda e: UnitDot(*e.args[0].args, e),
    )


def _softplus_form(x: sp.Basic) -> sp.Basic:
    return sp.Max(x, 0) + log1p(sp.exp(-sp.Abs(x)))


SOFTPLUS_PAIR_WHY = (
    "c·a + c·softplus(b - a) = c·(max(a, b) + log1p(exp(-|b - a|))) (log(e^a + e^b) as the softplus "
    "rule wrote it, a taken from b - a): a + softplus(b - a) adds a back to a max(0, b - a) that "
    "holds -a, so a large |a| costs its ulps where the sum is small (a negative binomial's "
    "r·log(r + e^s) at r = 0.01, s = 0: 50 ulps where κ is 2; and -inf + inf at a = -inf); the "
    "larger of a and b, plus a log1p of a number in (0, 1], cancels nothing, and shares exp(-|u|) "
    "with the softplus of the same u."
)


def _softplus_pairs(expr: sp.Basic) -> sp.Basic:
    """Every Add holding ``c·a`` and ``c·Softplus(u)`` with ``-a`` a summand of ``u``: the two
    as ``c·(Max(a, u + a) + log1p(exp(-|u|)))``."""

    def pair(add: sp.Add) -> sp.Basic:
        terms = list(add.args)
        for i, t in enumerate(terms):
            sps = [f for f in sp.Mul.make_args(t) if isinstance(f, Softplus)]
            if len(sps) != 1:
                continue
            (f,) = sps
            c = t / f
            u = f.args[0]
            for v in sp.Add.make_args(u):
                a = -v
                if not (v.could_extract_minus_sign() and a.free_symbols):
                    continue
                partner = c * a
                j = next((j for j, w in enumerate(terms) if j != i and w == partner), None)
                if j is None:
                    continue
                b = u + a
                terms[i] = c * (sp.Max(a, b) + log1p(sp.exp(-sp.Abs(u))))
                terms[j] = sp.S.Zero
                return sp.Add(*terms)
        return add

    return expr.replace(lambda e: isinstance(e, sp.Add) and e.has(Softplus), pair)


def _sigmoid_form(x: sp.Basic) -> sp.Basic:
    E = sp.exp(-sp.Abs(x))
    return ExpMin0(x, E) / (1 + E)


def _neg_log_softmax_form(e: NegLogSoftmax) -> sp.Basic:
    d, _, _, s = _softmax_parts(e.args[0])
    return log1p(s) - d


def _log_sum_exp_form(e: LogSumExp) -> sp.Basic:
    _, _, _, s = _softmax_parts(e.args[0])
    return MaxPlusLog1p(RowMax(_operand(e.args[0])), s)


def _cross_form(e: sp.Basic) -> sp.Basic:
    """``CrossRest(t, z)`` or ``ShareCrossRest(t, z, g, dg)`` given the softmax's parts."""
    t, z, *weights = e.args
    _, ex, S, s = _softmax_parts(z)
    return (SharedShareCrossRest if weights else SharedCrossRest)(t, _operand(z), ex, s, S, *weights)


def _softmax_rest_form(e: SoftmaxRest) -> sp.Basic:
    _, ex, S, _ = _softmax_parts(e.args[0])
    return RestSum(ex) / S


def _replacing(cls, form):
    """The lowering ``cls(...) -> form(node)`` everywhere in an expression."""
    return lambda expr: expr.replace(lambda e: isinstance(e, cls), form)


def _weighted_nln(index_label: Elem | None):
    def lower(expr: sp.Basic) -> sp.Basic:
        def form(e: RowSum) -> sp.Basic:
            w, nln = e.args[0].args
            return WeightedNegLogNormalized(w, nln.args[0], RowSum(nln.args[0]))

        return expr.replace(
            lambda e: isinstance(e, RowSum)
            and isinstance(e.args[0], XMul)
            and isinstance(e.args[0].args[0], Elem)
            and e.args[0].args[0] != index_label
            and isinstance(e.args[0].args[1], NegLogNormalized),
            form,
        )

    return lower


def _means(expr: sp.Basic) -> sp.Basic:
    """A row-level value's ``a·RowSum(f)`` as :class:`WeightedRowSum` (not the gradient's)."""
    return expr if element_symbols(expr) else _weighted_row_sums(expr)


def _label_log_softmax(e: sp.Add) -> sp.Basic:
    """``log1p(s) + max z - z_k`` (a NegLogSoftmax form read at the label) -> :class:`LabelLogSoftmax`."""
    if len(e.args) != 3:
        return e
    logs = [a for a in e.args if isinstance(a, log1p) and isinstance(a.args[0], OffMaxSum)]
    maxes = [a for a in e.args if isinstance(a, RowMax)]
    at = [-a for a in e.args if isinstance(-a, AtLabel)]
    if len(logs) == len(maxes) == len(at) == 1:
        return LabelLogSoftmax(maxes[0], at[0], logs[0].args[0])
    return e


def _label_lookups(index_label: Elem):
    def lower(expr: sp.Basic) -> sp.Basic:
        expr = _index_label(expr, index_label)
        expr = expr.replace(lambda e: isinstance(e, sp.Add) and e.has(AtLabel) and e.has(OffMaxSum), _label_log_softmax)
        return expr.replace(
            lambda e: isinstance(e, AtLabel) and isinstance(e.args[1], RestSum),
            lambda e: RestAtLabel(e.args[0], e.args[1].args[0], RowSum(e.args[1].args[0])),
        )

    return lower


def cancelled_pairs(expr: sp.Basic) -> list[tuple[RestSum, RestSum]] | None:
    r"""The element-j terms a split form cancelled, as pairs of the rest sums they came from.

    Each :math:`R(v) = \sum_{c \ne j} v_c` in ``expr`` is written :math:`S(v) - \varepsilon_v v_j`
    (:math:`\varepsilon = 1` is the unsplit form) and the result expanded: a term with
    :math:`\varepsilon_v` is an element-j term that the split rules cancelled symbolically
    against another. They must cancel in pairs :math:`\lambda\varepsilon_v - \lambda\varepsilon_w`
    (the cosine's :math:`\hat p_j\cdot\hat p_j\hat y_j` from :math:`\sum_{c\ne j} \hat p_c\hat y_c`
    against :math:`\hat y_j\cdot\hat p_j^2` from :math:`\sum_{c\ne j} \hat p_c^2`); ``None`` where
    they do not (an unpaired term, a rest sum in a denominator or inside a function: nothing is
    claimed there)."""
    rests = sorted(expr.atoms(RestSum), key=sp.default_sort_key)
    eps = {r: sp.Dummy(f"eps{i}") for i, r in enumerate(rests)}
    of = {e: r for r, e in eps.items()}
    expanded = sp.expand(expr.xreplace({r: RowSum(r.args[0]) - e * r.args[0] for r, e in eps.items()}))
    terms: list[tuple[sp.Expr, sp.Dummy]] = []
    for t in sp.Add.make_args(expanded):
        marks = t.free_symbols & set(of)
        if not marks:
            continue
        if len(marks) != 1:
            return None
        (e,) = marks
        coeff, rest = t.as_independent(e, as_Add=False)
        if rest != e:  # ε in a denominator, a power or a function
            return None
        terms.append((coeff, e))
    pairs = []
    while terms:
        c, e = terms.pop()
        match = next((i for i, (c2, e2) in enumerate(terms) if e2 != e and sp.expand(c + c2) == 0), None)
        if match is None:
            return None
        pairs.append((of[e], of[terms.pop(match)[1]]))
    return pairs


def _plain(v: sp.Basic) -> bool:
    """``v`` has no negative element: an even power (its test needs no ``|v|``)."""
    return isinstance(v, sp.Pow) and v.exp.is_Integer and bool(v.exp.is_even)


UNIT_DOT_WHY = (
    "Σ_c a_c b_c of two unit rows (x/‖x‖, the cosine) near ±1 as s·(1 - ½Σ(a - s·b)²), s its sign: "
    "the dot product of the rounded unit vectors errs by a few ulps of 1 there (computed 1 + 4e-16 "
    "where the cosine is 1 - 1e-17, 4 ulps where the function has κ ≈ 0), the half squared distance by "
    "a rounding and the unit vectors' errors times ‖a - s·b‖, which vanishes as the rows align; the "
    "plain sum where |Σ a b| <= 1/2."
)


SHARED_DOMINANCE_WHY = (
    "rest sums whose cancelled element-j terms come in pairs share one dominance test: Σ_{c≠j} v_c is "
    "Σv - v_j, and summed directly only where an element of the pair's tested array t dominates its row "
    "(|t_j| > 3/4·Σ|t|; a square where there is one: no |t|), not where v's own element does. Where t_j "
    "does not dominate, Σ_{c≠j} t_c >= |t_j|/3, so the pair's term λ·v_j = λ·t_j, which the rounding of "
    "Σv - v_j carries, is at most three times the term λ·Σ_{c≠j} t_c the form computes anyway "
    "(the cosine's p̂_j·Σ_{c≠j} p̂_c ŷ_c against ŷ_j·Σ_{c≠j} p̂_c², tested on p̂²): one test "
    "(a comparison) instead of two (|v|, its row sum, a comparison each)."
)


def _shared_dominance_tests(expr: sp.Basic) -> sp.Basic:
    """Each rest sum of ``expr`` given the dominance test of the array that covers its cancelled
    pairs (:func:`cancelled_pairs`): the tests are chosen greedily, those that cover most pairs
    first, squares before signed arrays; written only where every rest sum is in a pair, each
    covered by one test, and there are fewer tests than rest sums."""
    if expr.has(TwoForms):
        return expr
    shared = sorted(expr.atoms(SharedRestSum), key=sp.default_sort_key)
    if len(shared) < 2:
        return expr
    back = {r: RestSum(r.args[0]) for r in shared}
    pairs = cancelled_pairs(math_form(expr.xreplace(back)))
    if not pairs or {r for pair in pairs for r in pair} != set(back.values()):
        return expr
    uncovered, tests = list(pairs), []
    while uncovered:
        candidates = sorted({r for pair in uncovered for r in pair}, key=sp.default_sort_key)
        best = min(candidates, key=lambda r: (-sum(r in pair for pair in uncovered), not _plain(r.args[0])))
        tests.append(best)
        uncovered = [pair for pair in uncovered if best not in pair]
    if len(tests) >= len(shared):
        return expr
    tested_by = {}
    for r in back.values():
        covering = {t for t in tests if any(r in pair and t in pair for pair in pairs)} if r not in tests else {r}
        if len(covering) != 1:
            return expr
        tested_by[r] = covering.pop()

    def dominant(t: RestSum) -> Dominant:
        v = t.args[0]
        # the squares of a unit vector sum to 1 (up to its elements' roundings, a few ulps of the
        # threshold): compared with 3/4 itself, no row sum repeated along the row
        total = sp.Integer(1) if isinstance(v, sp.Pow) and v.exp == 2 and _unit(v.base) else RowSum(v)
        return Dominant(v, total, sp.Integer(int(_plain(v))))

    return expr.xreplace({r: TestedRestSum(r.args[0], r.args[1], dominant(tested_by[back[r]])) for r in shared})


REST_PRODUCTS_WHY = (
    "d⁻¹·Σ_i λ_i·Σ_{c≠j} x_i,c y_i,c at the positions where element j dominates its row and the rest "
    "sums fall below 2^-960: each rest sum of products recomputed with x and y scaled by the powers of "
    "two of their largest rest elements, the d⁻¹ and the scales put back last (frexp, ldexp). The "
    "products of the other elements lose their bits among the subnormal numbers where the row's "
    "elements span more than 2^500 (the cosine's gradient of p = [-3.2e-83, 3.6e-246] against a label "
    "next to it: 0 where it is 1.35e-251); scaled, they keep them down to the result's own range."
)


def _product_factors(v: sp.Basic) -> tuple[sp.Basic, sp.Basic] | None:
    """``(x, y)`` with ``v = x·y`` (a square ``x²``: ``(x, x)``), or None."""
    if isinstance(v, sp.Pow) and v.exp == 2:
        return v.base, v.base
    if isinstance(v, sp.Mul) and len(v.args) >= 2:
        return v.args[0], sp.Mul(*v.args[1:])
    return None


def _rest_products(expr: sp.Basic) -> sp.Basic:
    """Each ``Σ_i λ_i·TestedRestSum(x_i·y_i, …)/d`` (one dominance test, ``d`` row-level, ``λ_i``
    elementwise) as :class:`RestProductsAt`."""

    def match(e: sp.Basic):
        if not isinstance(e, sp.Mul) or len(e.args) != 2:
            return None
        add = next((a for a in e.args if isinstance(a, sp.Add)), None)
        inv = next((a for a in e.args if isinstance(a, sp.Pow) and a.exp == -1), None)
        if add is None or inv is None or _elementwise(inv.base):
            return None
        terms, dom = [], None
        for t in add.args:
            sign, rest = t.as_coeff_Mul()
            if sign not in (1, -1):
                return None
            tested = [f for f in sp.Mul.make_args(rest) if isinstance(f, TestedRestSum)]
            if len(tested) != 1:
                return None
            (T,) = tested
            lam = sp.Mul(*[f for f in sp.Mul.make_args(rest) if f is not T])
            xy = _product_factors(T.args[0])
            if lam.has(RestSum, TestedRestSum, SharedRestSum) or xy is None or (dom is not None and T.args[2] != dom):
                return None
            dom = T.args[2]
            terms += [sign, lam, *xy, T]
        return RestProductsAt(e, dom, inv.base, *terms)

    return expr.replace(lambda e: match(e) is not None, match)


def lowerings(index_label: Elem | None = None, means: bool = True, defs: dict | None = None) -> list[Rule]:
    """The lowerings, in the order they apply. ``index_label``: a label that is the indicator
    of an integer class (its look-ups); ``means``: a row-level value's ``a·Σ f`` as one node
    (the naive forms keep the plain product); ``defs``: the label weights' definitions."""
    rules = [
        Rule("merge-rest-sums", "v_j + Σ_{c≠j} v_c = Σ_c v_c: one row-level sum instead of a rest sum per element (no cancellation to avoid in a sum).", _merge_rest_sums),
        Rule("merge-rest-sum-terms", "c·Σ_{c≠j} u_c + c·Σ_{c≠j} v_c = c·Σ_{c≠j} (u_c + v_c): one rest sum instead of two, and no less accurate (the rest sum of u + v is computed without cancellation, where the sum of the two rest sums can cancel).", _merge_sum_terms(RestSum)),
        Rule("merge-row-sum-terms", "c·Σ u + c·Σ v = c·Σ (u + v) where neither sum is used alone: one row reduction instead of two (a pass over the block each), shared with the rest sum of u + v; its error bound γ·Σ|u + v| is at most the two sums' γ·(Σ|u| + Σ|v|).", _merge_sum_terms(RowSum, only_alone=True)),
        Rule("weighted-sum-squares", "a·Σ x² as one node of a and x: the runtime multiplies a into the scaled sum, so λ/N·Σh² is finite where Σh² alone overflows.", _weighted_sum_squares),
    ]
    rules.append(Rule("unit-dot", UNIT_DOT_WHY, _unit_dots))
    if means:
        rules.append(Rule("weighted-row-sum", "a·Σ f (a row-level value, a a row-level factor) as one node: where Σ f overflows and the mean a·Σ f does not, the runtime scales the terms first.", _means))
    rules += [
        Rule("softplus-pair", SOFTPLUS_PAIR_WHY, _softplus_pairs),
        Rule("softplus-form", "softplus(x) = max(x, 0) + log1p(exp(-|x|)): never overflows, and softplus(x) and softplus(-x) share exp(-|x|).", _replacing(Softplus, lambda e: _softplus_form(e.args[0]))),
        Rule("sigmoid-diff-form", "a·σ(x) - b·σ(-x) given exp(-|x|), shared with the sigmoids and softplus of the same x.", _replacing(SigmoidDiff, lambda e: SigmoidDiffForm(*e.args, sp.exp(-sp.Abs(e.args[2]))))),
        Rule("sigmoid-form", "σ(x) = exp(min(x, 0))/(1 + exp(-|x|)): full relative accuracy for very negative x, sharing exp(-|x|) with softplus and σ(-x); exp(min(x, 0)) is that exponential or 1.", _replacing(Sigmoid, lambda e: _sigmoid_form(e.args[0]))),
        Rule("softmax-cross-parts", "the softmax gradient's cross terms given e = exp(z - max z), its off-max sum and row sum, computed once for the value and the gradient.", _replacing((CrossRest, ShareCrossRest), _cross_form)),
        Rule("softmax-rest-form", "1 - softmax(z)_j = Σ_{c≠j} e_c / Σ e: the rest sum of the softmax's own exponentials, no cancellation where element j dominates.", _replacing(SoftmaxRest, _softmax_rest_form)),
        Rule("normalized-rest-form", "1 - p_j/Σp = Σ_{c≠j} p_c / Σ p, sharing the rest sum of p with a NegLogNormalized of the same row.", _replacing(NormalizedRest, lambda e: RestSum(e.args[0]) / RowSum(e.args[0]))),
        Rule("neg-log-softmax-form", "-log softmax(z)_j = log1p(s) - d_j with d = z - max z and s = Σ_{c≠argmax} e^{d_c}: no exp overflows, and log1p keeps a small s.", _replacing(NegLogSoftmax, _neg_log_softmax_form)),
        Rule("log-sum-exp-form", "log Σ e^{u} = max u + log1p(s) with the softmax's s, as one node, so that cse cannot rewrite (m - u) + log1p(s) of the same row as lse - u (the cancellation the primitive avoids).", _replacing(LogSumExp, _log_sum_exp_form)),
        Rule("weighted-neg-log-normalized", "Σ_c t_c·(-log(p_c/Σp)) as one node: for one-hot rows of t, the labelled element is looked up instead of every element computed.", _weighted_nln(index_label)),
        Rule("shared-neg-log-normalized", "-log(p_j/Σp) given Σ_{c≠j} p_c (log1p of the rest over p_j where p_j carries the row), shared with the gradient's rest sums.", _replacing(NegLogNormalized, lambda e: SharedNegLogNormalized(e.args[0], RestSum(e.args[0])))),
    ]
    rules.append(Rule("guarded-log-weight", "w·log(w) (and w·f(log w)) with the convention 0·log 0 = 0: log(w) is computed as 0 where w is 0, where the product is 0 anyway (_rt.log_nonzero: no log at all for hard labels, log(w + [w = 0]) for other rows with zeros, log w on dense rows): no -inf for the zero-weight guard to repair (a masked pass over most elements of one-hot rows), and no log of 0 (10x a log of 1 in NumPy); LogRatio(w, v) likewise (_rt.log_ratio_nonzero: -log v for hard labels, no -inf at w = 0).", _guarded_logs))
    rules.append(Rule("log-ratio-difference", LOG_RATIO_DIFFERENCE_WHY, _log_ratio_differences(defs)))
    if index_label is not None:
        rules.append(Rule("class-index-lookups", "for a label y_c = [c = k]: Σ_c y_c f_c = f_k (0 for an ignored row), y_c·g = g_k at k and 0 elsewhere, Σ_{c≠j} y_c = 1 - y_j, the softmax's cross terms e_j off k and -Σ_{c≠k} e_c at k: look-ups of element k instead of a row of products.", _label_lookups(index_label)))
    rules.append(Rule("shared-rest-sum", "Σ_{c≠j} v_c given the row sum Σ v, which the value often computes already.", _replacing(RestSum, lambda e: SharedRestSum(e.args[0], RowSum(e.args[0])))))
    rules.append(Rule("shared-dominance-test", SHARED_DOMINANCE_WHY, _shared_dominance_tests))
    rules.append(Rule("rest-products-scaled", REST_PRODUCTS_WHY, _rest_products))
    return rules


def lower(expr: sp.Basic, index_label: Elem | None = None, means: bool = True, defs: dict | None = None) -> sp.Basic:
    """``expr`` in printing forms: every lowering of :func:`lowerings`, in order, once."""
    return apply_rules(expr, lowerings(index_label, means, defs), check=False)[0]


def math_form(expr: sp.Basic) -> sp.Basic:
    """The printing forms in ``expr`` as the mathematics they compute (each form's ``math()``)."""
    return expr.replace(lambda e: hasattr(e, "math") and isinstance(e, sp.Function), lambda e: e.math())
