"""Derive: gradients by SymPy, and the stable value and gradient of each loss.

For a :class:`~cesym.define.loss.Loss` with value ``V0`` (the mathematics):

1. the naive gradient is ``G0 = diff(V0, prediction)``;
2. the value rules (:func:`cesym.rewrite.rules.value_rules`, passed over until nothing changes) turn
   ``V0`` into stable primitives, ``V1``;
3. the stable gradient is ``diff(V1, prediction)`` (a quotient of ``one-minus-ratio`` as the term it
   stands for: :func:`_diff_value`):
   SymPy differentiates the primitives through
   their exact ``fdiff`` (softplus' = sigmoid) and the row primitives through their reduction
   forms (:class:`~cesym.define.primitives.RowSum` carries the chain rule); the gradient rules then
   shift exponentials, split row sums and combine the terms on the label weights, ``G1``;
   a value that is a label-weighted function of the log-share (a softmax's or a renormalised
   probability's, :func:`log_share_gradient`) is differentiated through it instead, into a
   stable form of its own; where the split sums cost more than a test of the unsplit form,
   the two are kept side by side (:mod:`cesym.rewrite.guard`);
4. on probabilities, the value's label weights get the 0·∞ = 0 guard.

Every rewrite is checked for equivalence (:func:`cesym.rewrite.rules.check_equivalent`), and so is
``G1`` against ``G0``: two routes to the same derivative must agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from sympy.codegen.cfunctions import expm1

from ..define.loss import DerivationError, Loss
from ..define.primitives import (
    Elem, NegLogNormalized, NegLogSoftmax, NormalizedRest, RestSum, RowMax, RowSum, ScaledPow, ShareCrossRest, SoftmaxRest, XMul,
    element_symbols,
)
from ..rewrite.guard import GUARD_SPLIT, guard_split
from ..rewrite.rules import LOG_GUARDED_POWER, ONE_MINUS_RATIO, POWER_RULE, Rule, one_minus_ratio_recorded, apply_rules, check_equivalent, gradient_rules, guard_rule, label_weights, parameter_ranges, prediction, value_rules

__all__ = ["Derived", "derive", "as_record", "from_record", "log_share_gradient"]


@dataclass(frozen=True)
class Derived:
    """The symbolic results for one loss."""

    loss: Loss
    naive_value: sp.Expr
    naive_grad: sp.Expr | None
    raw_grad: sp.Expr | None  # diff of the stable value, before the gradient rules
    value: sp.Expr
    grad: sp.Expr | None
    value_rules: tuple[Rule, ...]
    grad_rules: tuple[Rule, ...]


def _rules_of(loss: Loss) -> dict[str, Rule]:
    """Every rule :func:`derive` may apply to ``loss``, by name."""
    x, weights, guard = loss.prediction, list(loss.weights), loss.domain == "probability"
    rules = [*value_rules(), guard_rule(weights, guard, name="guard-weights"), *gradient_rules(weights, guard, x)]
    rules.append(Rule("log-share-chain", LOG_SHARE_CHAIN_WHY, lambda v: log_share_gradient(v, x)))
    rules.append(GUARD_SPLIT)
    return {r.name: r for r in rules}


def as_record(d: Derived) -> dict:
    """What :func:`derive` found, as plain data (``sympy.srepr`` of each expression and the names
    of the rules applied): the generated module keeps it (``DERIVED``), and the reports read it
    back (:func:`from_record`) instead of deriving again."""
    expr = {k: None if e is None else sp.srepr(e) for k, e in
            (("naive_value", d.naive_value), ("naive_grad", d.naive_grad), ("raw_grad", d.raw_grad),
             ("value", d.value), ("grad", d.grad))}
    return {**expr, "value_rules": [r.name for r in d.value_rules], "grad_rules": [r.name for r in d.grad_rules]}


def from_record(loss: Loss, record: dict) -> Derived:
    """The :class:`Derived` of ``loss`` from :func:`as_record`'s data (the expressions evaluated in
    SymPy's and cesym's primitives' namespace; the rules looked up by name)."""
    from sympy.codegen import cfunctions
    from sympy.functions.elementary.piecewise import ExprCondPair

    from ..define import primitives

    ns = {**vars(sp), **vars(cfunctions), **vars(primitives), "ExprCondPair": ExprCondPair}
    rules = _rules_of(loss)

    def expr(key):
        text = record[key]
        return None if text is None else eval(text, dict(ns))  # noqa: S307 - written by generate

    return Derived(
        loss, expr("naive_value"), expr("naive_grad"), expr("raw_grad"), expr("value"), expr("grad"),
        tuple(rules[n] for n in record["value_rules"]), tuple(rules[n] for n in record["grad_rules"]),
    )


def derive(loss: Loss) -> Derived:
    """Derive the naive and stable value and gradient of ``loss``."""
    x = loss.prediction
    v0 = loss.value
    guard = loss.domain == "probability"
    weights = list(loss.weights)
    ratios: dict = {}  # each quotient one-minus-ratio writes -> the term it stands for (_diff_value)
    rules = [one_minus_ratio_recorded(ratios) if r.name == ONE_MINUS_RATIO.name else r for r in value_rules()]
    with prediction(x), label_weights(loss.weight_definitions), parameter_ranges({q: loss.param_range(q) for q in loss.params}):
        v1, vrules = apply_rules(v0, rules, repeat=True)
    v1_guarded, grules_v = apply_rules(v1, [guard_rule(weights, guard, name="guard-weights")] if guard else [])
    if not loss.differentiable:
        return Derived(loss, v0, None, None, v1_guarded, None, tuple(vrules + grules_v), ())
    try:
        g0 = sp.diff(v0, x)
        raw = log_share_gradient(v1, x)
        # a rule from the value to its gradient (in place of SymPy's diff), listed with the others
        chain = [Rule("log-share-chain", LOG_SHARE_CHAIN_WHY, lambda v: log_share_gradient(v, x))] if raw is not None else []
        if raw is None:
            raw = _diff_value(v1, ratios, x)
    except Exception as e:  # SymPy could not differentiate the definition
        raise DerivationError(f"{loss.name}: cannot differentiate: {type(e).__name__}: {e}") from None
    if g0.has(sp.Derivative) or raw.has(sp.Derivative):
        raise DerivationError(f"{loss.name}: cannot differentiate: SymPy left an unevaluated derivative")
    # the chain through the log-share gives a stable form: the rules would split its sums again
    rules = gradient_rules(weights, guard, x)
    with prediction(x):
        g1, grules = (raw, []) if chain else apply_rules(raw, rules)
    check_equivalent(g0, g1)
    guarded = None if chain else guard_split(loss, raw, g1, rules, grules)
    if guarded is not None:
        g1, grules = guarded, grules + [GUARD_SPLIT]
    return Derived(loss, v0, g0, raw, v1_guarded, g1, tuple(vrules + grules_v), tuple(chain + grules))


def _diff_value(v1: sp.Expr, ratios: dict, x: Elem) -> sp.Expr:
    """``diff(v1, x)``, each quotient that ``one-minus-ratio`` wrote (``ratios``: quotient -> the
    term it stands for, noted while the value rules ran) differentiated as that term.

    1 - N/D written (D - N)/D = F/D differentiates to F'/D - F·D'/D², whose D'/D terms cancel in
    rounding: the Tversky gradient at a label of 0 came out α/D - α·F/D² for α·TP/D², where TP
    is small beside D (every row with few true positives), and the focal Tversky loss (F/D)^γ
    inherits it. -N/D differentiates to -N'/D + N·D'/D², the same quantity without the pair.
    Each quotient is replaced by an undefined function of ``x`` for SymPy's chain rule, and its
    derivative by the term's."""
    marks = {q: sp.Function(f"_ratio{i}")(x) for i, q in enumerate(q for q in ratios if v1.has(q))}
    if not marks:
        return sp.diff(v1, x)
    d = sp.diff(v1.xreplace(marks), x)
    # q^γ/q as q^(γ - 1) while q is one symbol: the quotient's numerator over itself is 0/0 at 0
    d = d.replace(lambda e: isinstance(e, sp.Mul) and any(e.has(f) for f in marks.values()), lambda e: sp.powsimp(e, combine="exp"))
    for q, f in marks.items():
        d = d.subs(sp.Derivative(f, x), sp.diff(ratios[q], x)).xreplace({f: q})
    return d


LOG_SHARE_CHAIN_WHY = (
    "the gradient of Σ_c t_c·φ(ν_c), ν = -log softmax(z), differentiated through ν: "
    "Σ_{c≠j}(t_c g_c e_j - t_j g_j e_c)/Σe with g = φ' (one primitive, whose runtime takes a pair of "
    "close logits as (t_c - t_j)g_c e_j + t_j(e_j(g_c - g_j) + g_j e_c expm1(z_j - z_c)), g_c - g_j by "
    "quadrature of g': near z = 0 under uniform labels both differences lose every digit otherwise)."
)


def log_share_gradient(value: sp.Expr, x: Elem) -> sp.Expr | None:
    r"""The gradient of :math:`\sum_c t_c\,\varphi(\nu_c, R_c)` (one row sum, or a sum of row sums
    times row constants), a label-weighted function of the
    log-share :math:`\nu_c = -\log r_c` and of :math:`R_c = 1 - r_c`, by the chain rule through ν.

    The share is :math:`r = \operatorname{softmax}(z)` (written with
    :class:`~cesym.define.primitives.NegLogSoftmax` and :class:`~cesym.define.primitives.SoftmaxRest`) or
    :math:`r = p/\sum p` (:class:`~cesym.define.primitives.NegLogNormalized`,
    :class:`~cesym.define.primitives.NormalizedRest`). With :math:`g = d\varphi/d\nu = \varphi_\nu +
    r\,\varphi_R`:

    * logits, :math:`\partial\nu_c/\partial z_j = r_j - [c = j]`:
      :math:`\frac{1}{S}\sum_{c \ne j}(t_c g_c e_j - t_j g_j e_c)`, one
      :class:`~cesym.define.primitives.ShareCrossRest` (:math:`e = e^{z - \max z}`, :math:`S = \sum e`),
      whose runtime keeps the pairs of close logits that cancel;
    * probabilities, :math:`\partial\nu_c/\partial p_j = 1/S - [c = j]/p_j`:
      :math:`\sum_{c\ne j} t_c h_c - t_j h_j (S - p_j)/p_j` with :math:`h = g/S`,
      the division taken into g's power of R (:class:`~cesym.define.primitives.ScaledPow`): no
      product of two small numbers (a row of scale 1e-200 keeps its digits, a dominant class's
      :math:`R^{\gamma}/S` its range) and at :math:`p_j = 0` the limit (:math:`-\infty` under a
      positive weight, the first term under a zero one).

    :math:`r\,\varphi_R` is taken as 0 where r is (``XMul``): :math:`\varphi_R` grows at most
    like a power of ν there. ``None`` when the value has another shape, or when g is constant
    (the cross-entropy, which the rules make a :class:`~cesym.define.primitives.CrossRest`)."""
    body = sp.S.Zero  # Σ_i k_i·RowSum(f_i) as one RowSum(Σ_i k_i f_i), k_i row constants
    for term in sp.Add.make_args(value):
        factors = sp.Mul.make_args(term)
        sums = [f for f in factors if isinstance(f, RowSum)]
        k = sp.Mul(*(f for f in factors if not isinstance(f, RowSum)))
        if len(sums) != 1 or element_symbols(k):
            return None
        body += k * sums[0].args[0]
    nu, rest, share = sp.Symbol("nu", positive=True), sp.Symbol("rest", positive=True), sp.Symbol("share", positive=True)
    if body.has(NegLogSoftmax(x)) or body.has(SoftmaxRest(x)):
        forms = {nu: NegLogSoftmax(x), rest: SoftmaxRest(x), share: sp.exp(-NegLogSoftmax(x))}
    elif body.has(NegLogNormalized(x)) or body.has(NormalizedRest(x)):
        forms = {nu: NegLogNormalized(x), rest: NormalizedRest(x), share: x / RowSum(x)}
    else:
        return None
    f = body.replace(lambda e: isinstance(e, XMul), lambda e: e.args[0] * e.args[1])
    f = f.xreplace({v: k_ for k_, v in forms.items() if k_ is not share})
    labels = element_symbols(f)
    if x in labels or len(labels) != 1:
        return None
    (t,) = labels
    phi = sp.cancel(f / t)
    if phi.has(t) or not phi.has(nu, rest) or sp.expand(f - t * phi) != 0:
        return None
    # dR/dν = r = e^{-ν}
    phi_nu, phi_r = sp.diff(phi, nu), sp.diff(phi, rest)
    if not (phi_nu.has(nu, rest) or phi_r != 0):
        return None
    g = phi_nu + sp.exp(-nu) * phi_r
    dg = sp.factor_terms(sp.collect(sp.expand(sp.diff(g, nu) + sp.diff(g, rest) * sp.exp(-nu)), nu))
    of_nu = sp.Lambda(nu, dg.xreplace({rest: -expm1(-nu)}))
    guarded = [POWER_RULE, LOG_GUARDED_POWER]
    g_x = apply_rules(phi_nu.xreplace(forms), guarded)[0] + XMul(forms[share], apply_rules(phi_r.xreplace(forms), guarded)[0])
    if forms[nu] == NegLogSoftmax(x):
        return ShareCrossRest(t, x, g_x, of_nu) / RowSum(sp.exp(x - RowMax(x)))
    h = _over(g_x, RowSum(x), forms[rest])  # g/S: a dominant class's g (R^γ) underflows, g/S need not
    return RestSum(t * h) - XMul(t * h, RestSum(x) / x)


def _over(e: sp.Expr, S: sp.Expr, R: sp.Expr) -> sp.Expr:
    """``e/S`` with the division taken into a power of ``R`` where e has one
    (:class:`~cesym.define.primitives.ScaledPow`: R^a/S stays in range where R^a does not), through sums
    and into the second factor of a zero-guarded product (XMul(a, b)/S = XMul(a, b/S))."""
    if isinstance(e, sp.Add):
        return sp.Add(*(_over(a, S, R) for a in e.args))
    if isinstance(e, XMul):
        return XMul(e.args[0], _over(e.args[1], S, R))
    if isinstance(e, sp.Pow) and e.base == R:
        return ScaledPow(R, e.exp, 1 / S)
    if isinstance(e, sp.Mul):
        for i, f in enumerate(e.args):
            if isinstance(f, (XMul, sp.Pow)) and f.has(R) and (isinstance(f, XMul) or f.base == R):
                return sp.Mul(*e.args[:i], _over(f, S, R), *e.args[i + 1 :])
    return e / S
