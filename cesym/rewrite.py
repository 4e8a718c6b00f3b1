"""Rewrite: turn derived expressions into numerically stable forms, checking each step.

Each :class:`Rule` is a :class:`sympy.codegen.rewriting.ReplaceOptim` (a ``replace`` query and
value) or a function of the whole expression, with a name and the reason it exists. Every rule
application is checked for equivalence by :func:`check_equivalent`, which evaluates the
expression before and after at random rows in 60-digit arithmetic: a rewrite that changes the
value (as ``sympy.codegen.rewriting.logsumexp_2terms_opt`` does, giving log(e + 1) = 1.693 for
a true 1.313) raises :class:`RewriteError` instead of reaching a kernel.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mpmath
import sympy as sp
from sympy.codegen.cfunctions import log1p
from sympy.codegen.rewriting import Optimization, ReplaceOptim

from .evaluate import compile_row_exprs
from .primitives import (
    CrossRest,
    Elem,
    NegLogNormalized,
    NegLogSoftmax,
    RestSum,
    RowMax,
    RowSum,
    Sigmoid,
    Softplus,
    SumSquares,
    XMul,
    element_symbols,
)

__all__ = [
    "Rule",
    "RewriteError",
    "check_equivalent",
    "apply_rules",
    "value_rules",
    "gradient_rules",
    "guard_rule",
]


class RewriteError(ValueError):
    """A rewrite rule changed the value of an expression."""


@dataclass(frozen=True)
class Rule:
    """A named rewrite with the numerical reason for it."""

    name: str
    why: str
    optim: Optimization | Callable[[sp.Basic], sp.Basic]

    def __call__(self, expr: sp.Basic) -> sp.Basic:
        return self.optim(expr)


# --- sample rows for the equivalence check -------------------------------------------------


def _sample_rows(elems: Sequence[Elem], scalars: Sequence[sp.Symbol], n: int, rng: random.Random):
    """Random rows in the interior of every loss's domain (labels and probabilities in (0, 1))."""
    rows = [[mpmath.mpf(rng.uniform(0.05, 0.95)) for _ in range(n)] for _ in elems]
    vals = [mpmath.mpf(rng.uniform(0.05, 0.95)) for _ in scalars]
    return rows, vals


def check_equivalent(
    before: sp.Basic,
    after: sp.Basic,
    *,
    sizes: Sequence[int] = (2, 3, 5),
    trials: int = 4,
    digits: int = 60,
    seed: int = 20261122,
) -> None:
    """Raise :class:`RewriteError` unless ``before`` and ``after`` agree at random rows.

    Both are evaluated with ``mpmath`` at ``digits`` significant digits on rows of each length in
    ``sizes``; they must agree to ``digits - 10`` digits (relative, or absolute near zero).
    """
    if before == after:
        return
    elems = sorted((before.free_symbols | after.free_symbols) & _elems(before, after), key=str)
    scalars = sorted(
        (before.free_symbols | after.free_symbols) - set(elems) - {sp.Symbol("C", positive=True, integer=True)},
        key=str,
    )
    elem_level = bool(element_symbols(before) or element_symbols(after))
    rng = random.Random(seed)
    tol = mpmath.mpf(10) ** (10 - digits)
    with mpmath.workdps(digits):
        for n in sizes:
            f = compile_row_exprs([before, after], elems, scalars, n, per_element=[elem_level] * 2)
            for _ in range(trials):
                rows, vals = _sample_rows(elems, scalars, n, rng)
                out = f(rows, vals)
                half = len(out) // 2
                for a, b in zip(out[:half], out[half:]):
                    if abs(a - b) > tol * max(1, abs(a)):
                        raise RewriteError(
                            f"rewrite changed the value: {before} -> {after} "
                            f"({mpmath.nstr(a, 15)} vs {mpmath.nstr(b, 15)} at n={n})"
                        )


def _elems(*exprs: sp.Basic) -> set[Elem]:
    return {s for e in exprs for s in e.atoms(Elem)}


def apply_rules(expr: sp.Basic, rules: Sequence[Rule], check: bool = True) -> tuple[sp.Basic, list[Rule]]:
    """Apply ``rules`` in order; return the result and the rules that changed something."""
    applied: list[Rule] = []
    for rule in rules:
        new = rule(expr)
        if new != expr:
            if check:
                check_equivalent(expr, new)
            applied.append(rule)
            expr = new
    return expr, applied


# --- value rules ------------------------------------------------------------------------------


def _is_log_of(e: sp.Basic, pred: Callable[[sp.Basic], bool]) -> bool:
    return isinstance(e, sp.log) and pred(e.args[0])


LOG_SIGMOID = Rule(
    "log-sigmoid",
    "log σ(x) = -softplus(-x) and log(1 - σ(x)) = -softplus(x): σ(x) underflows to 0 (log -> -inf) "
    "and 1 - σ(x) rounds to 0 long before the loss is infinite; softplus has neither problem.",
    ReplaceOptim(
        lambda e: _is_log_of(e, lambda a: isinstance(a, Sigmoid) or _one_minus(a, Sigmoid) is not None),
        lambda e: -Softplus(-e.args[0].args[0])
        if isinstance(e.args[0], Sigmoid)
        else -Softplus(_one_minus(e.args[0], Sigmoid).args[0]),
    ),
)


def _one_minus(a: sp.Basic, cls) -> sp.Basic | None:
    """If ``a`` is ``1 - f`` with ``f`` of type ``cls`` (or an Elem when cls is Elem), return f."""
    if isinstance(a, sp.Add) and len(a.args) == 2 and sp.S.One in a.args:
        other = a.args[0] if a.args[1] == 1 else a.args[1]
        neg = -other
        if isinstance(neg, cls):
            return neg
    return None


LOG1P = Rule(
    "log1p",
    "log(1 - p) = log1p(-p): 1 - p rounds away the digits of a small p (log(1 - 1e-10) keeps "
    "6 digits), log1p keeps them all.",
    ReplaceOptim(
        lambda e: _is_log_of(e, lambda a: _one_minus(a, Elem) is not None),
        lambda e: log1p(-_one_minus(e.args[0], Elem)),
    ),
)


def _softmax_of(a: sp.Basic) -> sp.Basic | None:
    """If ``a`` is ``exp(z)/RowSum(exp(z))`` return z."""
    if isinstance(a, sp.Mul) and len(a.args) == 2:
        num = [f for f in a.args if isinstance(f, sp.exp)]
        den = [f for f in a.args if isinstance(f, sp.Pow) and f.exp == -1 and isinstance(f.base, RowSum)]
        if num and den and den[0].base.args[0] == num[0]:
            return num[0].args[0]
    return None


def _normalized_of(a: sp.Basic) -> sp.Basic | None:
    """If ``a`` is ``p/RowSum(p)`` return p."""
    if isinstance(a, sp.Mul) and len(a.args) == 2:
        den = [f for f in a.args if isinstance(f, sp.Pow) and f.exp == -1 and isinstance(f.base, RowSum)]
        num = [f for f in a.args if isinstance(f, Elem)]
        if num and den and den[0].base.args[0] == num[0]:
            return num[0]
    return None


LOG_SOFTMAX = Rule(
    "log-softmax",
    "log(exp(z_j)/Σ exp(z_c)) = -NegLogSoftmax(z): exp overflows past z = 88.72 (float32) or "
    "709.78 (float64), and lse(z) - z_j cancels to 0 for a class winning by hundreds; "
    "(max z - z_j) + log1p(Σ_{c≠argmax} exp(z_c - max z)) is a sum of two non-negative terms.",
    ReplaceOptim(
        lambda e: _is_log_of(e, lambda a: _softmax_of(a) is not None),
        lambda e: -NegLogSoftmax(_softmax_of(e.args[0])),
    ),
)

LOG_NORMALIZED = Rule(
    "log-normalized",
    "log(p_j/Σ p_c) = -log1p(Σ_{c≠j} p_c / p_j): when p_j carries almost all of the row, p_j/Σp "
    "rounds to 1 and its log to 0; the sum of the other elements keeps the digits.",
    ReplaceOptim(
        lambda e: _is_log_of(e, lambda a: _normalized_of(a) is not None),
        lambda e: -NegLogNormalized(_normalized_of(e.args[0])),
    ),
)


def _squared_elements(e: sp.Basic) -> sp.Basic | None:
    """If ``e`` is ``RowSum(f**2)`` with ``f`` element-level and free of row reductions, return f."""
    if not (isinstance(e, RowSum) and isinstance(e.args[0], sp.Pow) and e.args[0].exp == 2):
        return None
    f = e.args[0].base
    reductions = (RowSum, RowMax, RestSum, SumSquares, NegLogSoftmax, NegLogNormalized, CrossRest)
    if not element_symbols(f) or any(f.has(r) for r in reductions):
        return None
    return f


SUM_SQUARES = Rule(
    "sum-squares",
    "Σ_c x_c² = SumSquares(x), m²·Σ_c (x_c/m)² with m a power of two next to max|x| where the "
    "plain sum is out of range: x_c² overflows past |x| = 1.3e154 (float64) although λ/N·Σx² may "
    "not, and goes subnormal (digits lost) below |x| = 1.5e-154; the scaled sum has neither "
    "problem (as LAPACK's nrm2).",
    ReplaceOptim(lambda e: _squared_elements(e) is not None, lambda e: SumSquares(_squared_elements(e))),
)


def value_rules() -> list[Rule]:
    """Rules applied to a loss value, in order."""
    return [LOG_SIGMOID, LOG1P, LOG_SOFTMAX, LOG_NORMALIZED, SUM_SQUARES]


# --- gradient rules ---------------------------------------------------------------------------


def _shift_exponentials(expr: sp.Basic) -> sp.Basic:
    zs = {e.args[0] for e in expr.atoms(sp.exp) if isinstance(e.args[0], Elem)}
    for z in zs:
        expr = expr.xreplace({sp.exp(z): sp.exp(z - RowMax(z))})
    return expr


SHIFT_EXP = Rule(
    "shift-exp",
    "exp(z_j)/Σ exp(z_c) = exp(z_j - max z)/Σ exp(z_c - max z): the shifted exponentials lie in "
    "(0, 1] and cannot overflow (the checked equivalence holds because the ratio is homogeneous).",
    _shift_exponentials,
)


def _split_rowsums(expr: sp.Basic) -> sp.Basic:
    if not element_symbols(expr):
        return expr
    return expr.replace(lambda e: isinstance(e, RowSum), lambda e: e.args[0] + RestSum(e.args[0]))


SPLIT_ROWSUM = Rule(
    "split-rowsum",
    "Σ_c v_c = v_j + Σ_{c≠j} v_c: written this way, a difference such as σ_j·Σt - t_j or "
    "Σt/Σp - t_j/p_j becomes an expression in the other elements, which does not cancel when "
    "element j dominates (softmax_j - 1 = -Σ_{c≠j} e_c / Σ e_c).",
    _split_rowsums,
)


def _weight_symbols(expr: sp.Basic, weights: Sequence[Elem]) -> list[Elem]:
    return [w for w in weights if expr.has(w)]


def _distribute(expr: sp.Basic) -> sp.Basic:
    """Multiply out products over sums, leaving exponentials and logs of sums alone."""
    return sp.expand(expr, power_exp=False, power_base=False, log=False, multinomial=False, basic=False)


def combine_by_weights(expr: sp.Basic, weights: Sequence[Elem], guard: bool, together: bool = True) -> sp.Basic:
    """Collect ``expr`` on the label weights, bring each coefficient to one fraction.

    ``A + Σ_w w·B_w`` with each ``B_w`` put over a common denominator (``together``), so that
    terms such as ``e/(e+r) - 1`` become ``-r/(e+r)``. With ``guard``, ``w·B_w`` is written
    ``XMul(w, B_w)`` (0·∞ = 0: a zero label weight cancels an infinite log or 1/p).
    """
    ws = _weight_symbols(expr, weights)
    if not ws:
        return expr
    # Only the weights as bare factors are collected; RestSum(t) stays inside the coefficients.
    collected = sp.collect(_distribute(expr), ws, evaluate=False)
    out = []
    for key, coeff in collected.items():
        if together:
            num, den = sp.fraction(sp.together(coeff))
            num = _distribute(num)
            coeff = num / den if den != 1 else num
        if key == 1:
            out.append(coeff)
        elif key in ws:
            out.append(XMul(key, coeff) if guard else key * coeff)
        else:
            raise RewriteError(f"loss is not linear in the label weights: term {key}*({coeff})")
    return sp.Add(*out)


def guard_rule(weights: Sequence[Elem], guard: bool, name: str = "combine-weights") -> Rule:
    """The rule that collects a gradient or a summand on its label weights."""
    why = (
        "collect on the label weights and put each coefficient over one denominator, so that "
        "the cancelling parts of a coefficient (Σt/Σp - t/p) are cancelled exactly in algebra"
    )
    if guard:
        why += "; each weighted term is XMul(w, ·): 0·log 0 = 0 and 0·(1/0) = 0, no NaN"

    return Rule(name, why, lambda expr: combine_terms(expr, weights, guard))


def combine_terms(expr: sp.Basic, weights: Sequence[Elem], guard: bool, together: bool = True) -> sp.Basic:
    """:func:`combine_by_weights` on an element-level expression, or inside each RowSum of a row-level one."""
    if element_symbols(expr):
        return combine_by_weights(expr, weights, guard, together)
    return expr.replace(
        lambda e: isinstance(e, RowSum),
        lambda e: RowSum(combine_by_weights(e.args[0], weights, guard, together)),
    )


def _cross_rest(expr: sp.Basic) -> sp.Basic:
    """``(e·RestSum(t) - t·RestSum(e))/D`` -> ``CrossRest(t, z)/D`` for ``e = exp(z - max z)``."""
    if not element_symbols(expr):
        return expr
    num, den = sp.fraction(sp.together(expr))
    num = _distribute(num)
    for e in num.atoms(sp.exp):
        arg = e.args[0]
        zs = [s for s in arg.atoms(Elem)]
        if len(zs) != 1 or arg != zs[0] - RowMax(zs[0]):
            continue
        for t in num.atoms(Elem) - {zs[0]}:
            if sp.expand(num - (e * RestSum(t) - t * RestSum(e)), power_exp=False) == 0:
                return CrossRest(t, zs[0]) / den
    return expr


CROSS_REST = Rule(
    "cross-rest",
    "e_j·Σ_{c≠j}t_c - t_j·Σ_{c≠j}e_c = Σ_{c≠j}(t_c e_j - t_j e_c): one primitive, so that the runtime "
    "can take pairs of equal label weights as t_j·e_c·expm1(z_j - z_c) (two labelled classes with "
    "close logits cancel in e_j - e_c).",
    _cross_rest,
)


def gradient_rules(weights: Sequence[Elem], guard: bool) -> list[Rule]:
    """Rules applied to a derived gradient, in order."""
    return [SHIFT_EXP, SPLIT_ROWSUM, guard_rule(weights, guard), CROSS_REST]
