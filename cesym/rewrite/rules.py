"""Rewrite: turn derived expressions into numerically stable forms, checking each step.

Each :class:`Rule` is a :class:`sympy.codegen.rewriting.ReplaceOptim` (a ``replace`` query and
value) or a function of the whole expression, with a name and the reason it exists. Every rule
application is checked for equivalence by :func:`check_equivalent`, which evaluates the
expression before and after at random rows in 60-digit arithmetic: a rewrite that changes the
value (as ``sympy.codegen.rewriting.logsumexp_2terms_opt`` does, giving log(e + 1) = 1.693 for
a true 1.313) raises :class:`RewriteError` instead of reaching a kernel.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import mpmath
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.codegen.rewriting import Optimization, ReplaceOptim

from ..define.conventions import collect_monomials, distribute, weight_symbols
from ..define.evaluate import compile_row_exprs
from ..define.primitives import (
    C as C_SYM,
    InfOr,
    NanOr,
    TwoForms,
    NormalizedRest,
    SoftmaxRest,
    nan_or_forms,
    CrossRest,
    Elem,
    Log1mexp,
    LogExpm1,
    LogWeight,
    LogCosh,
    Hypot1,
    HypotShare,
    Hypot1m1,
    Log1pSquare,
    LogSumExp,
    NegLogNormalized,
    NegLogSoftmax,
    Norm2,
    Expm1mx,
    Pow1p,
    Pow1pm1,
    Powm1,
    RestSum,
    RowMax,
    RowSum,
    MaxMinusSum,
    Log1pDiff,
    LogRatio,
    Scaled,
    ScaledExp,
    Sigmoid,
    SigmoidDiff,
    Softplus,
    SumSquares,
    XMul,
    element_symbols,
)
from .ranges import interval

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


#: The element the loss being rewritten is differentiated in (its prediction), where a rule
#: must tell it from a label inside one argument (lse(x + 1 - y) - Σ y·x): :func:`prediction`.
_PREDICTION: contextvars.ContextVar = contextvars.ContextVar("cesym_prediction", default=None)


@contextlib.contextmanager
def prediction(x: Elem | None) -> Iterator[None]:
    """Rules applied inside see ``x`` as the loss's prediction (:func:`cesym.derive.gradients.derive`)."""
    token = _PREDICTION.set(x)
    try:
        yield
    finally:
        _PREDICTION.reset(token)


#: The label weights' definitions (``one_minus_y: 1 - y``) of the loss being rewritten, where a
#: rule must read a weight as what it stands for (a Bernoulli KL's y + (1 - y) = 1): :func:`label_weights`.
_WEIGHTS: contextvars.ContextVar = contextvars.ContextVar("cesym_label_weights", default={})


@contextlib.contextmanager
def label_weights(defs: dict) -> Iterator[None]:
    """Rules applied inside read each label weight of ``defs`` (``Loss.weight_definitions``) as
    its definition where they ask (:func:`cesym.derive.gradients.derive`)."""
    token = _WEIGHTS.set(defs)
    try:
        yield
    finally:
        _WEIGHTS.reset(token)


#: The declared range of each parameter of the loss being rewritten (symbol -> ``(lo, hi)``),
#: where a rule proves a sign over them (the power-gap window): :func:`parameter_ranges`.
_PARAM_RANGES: contextvars.ContextVar = contextvars.ContextVar("cesym_parameter_ranges", default={})


@contextlib.contextmanager
def parameter_ranges(ranges: dict) -> Iterator[None]:
    """Rules applied inside read each parameter's declared range in ``ranges`` (symbol ->
    ``(lo, hi)``; :func:`cesym.derive.gradients.derive`); without it a rule proves nothing
    about parameters and takes its narrowest form."""
    token = _PARAM_RANGES.set(ranges)
    try:
        yield
    finally:
        _PARAM_RANGES.reset(token)


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
    Label weights read as their definitions where the rules are told them (:func:`label_weights`).
    """
    if before == after:
        return
    if defs := _WEIGHTS.get():
        before, after = before.xreplace(defs), after.xreplace(defs)
    if after.has(TwoForms):  # each form must be the expression it replaces
        for form in nan_or_forms(after):
            check_equivalent(before, form, sizes=sizes, trials=trials, digits=digits, seed=seed)
        return
    elems = sorted((before.free_symbols | after.free_symbols) & _elems(before, after), key=str)
    scalars = sorted(
        (before.free_symbols | after.free_symbols) - set(elems) - {sp.Symbol("C", positive=True, integer=True)},
        key=str,
    )
    elem_level = bool(element_symbols(before) or element_symbols(after))
    rng = random.Random(seed)
    tol = mpmath.mpf(10) ** (10 - digits)
    checked = 0
    with mpmath.workdps(digits):
        for n in sizes:
            f = compile_row_exprs([before, after], elems, scalars, n, per_element=[elem_level] * 2)
            for _ in range(trials):
                rows, vals = _sample_rows(elems, scalars, n, rng)
                try:
                    out = f(rows, vals)
                except (ZeroDivisionError, ValueError) as err:
                    try:  # a pole of the expression itself at this row (a clip's 1/max(p - m, 0)): another row
                        compile_row_exprs([before], elems, scalars, n, per_element=[elem_level])(rows, vals)
                    except (ZeroDivisionError, ValueError):
                        continue
                    raise RewriteError(f"rewrite has a pole the expression has not: {before} -> {after} "
                                       f"({type(err).__name__} at n={n})") from None
                checked += 1
                half = len(out) // 2
                for a, b in zip(out[:half], out[half:]):
                    if abs(a - b) > tol * max(1, abs(a)):
                        raise RewriteError(
                            f"rewrite changed the value: {before} -> {after} "
                            f"({mpmath.nstr(a, 15)} vs {mpmath.nstr(b, 15)} at n={n})"
                        )
    if not checked:
        raise RewriteError(f"rewrite could not be checked: {before} has a pole at every sample row")


def _elems(*exprs: sp.Basic) -> set[Elem]:
    return {s for e in exprs for s in e.atoms(Elem)}


#: Passes over the rules at most (``apply_rules(..., repeat=True)``); a rule set that still
#: changes the expression after this many is a bug (two rules undoing each other).
MAX_PASSES = 8


def apply_rules(
    expr: sp.Basic, rules: Sequence[Rule], check: bool = True, repeat: bool = False
) -> tuple[sp.Basic, list[Rule]]:
    """Apply ``rules`` in order; return the result and the rules that changed something.

    With ``repeat``, pass over the rules again until a pass changes nothing (one rule's output
    can be another's input: ``log(1/(1 + e^{-x}))`` is ``log σ(x)`` after the sigmoid rule, and
    ``-softplus(-x)`` after the log-sigmoid rule). The rules applied are listed once each, in the
    order they first changed something.
    """
    applied: list[Rule] = []
    for _ in range(MAX_PASSES if repeat else 1):
        changed = False
        for rule in rules:
            new = rule(expr)
            if new != expr:
                if check:
                    check_equivalent(expr, new)
                if rule not in applied:
                    applied.append(rule)
                expr = new
                changed = True
        if not changed:
            return expr, applied
    if repeat:
        raise RewriteError(f"the rules did not settle in {MAX_PASSES} passes: {expr}")
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


def _other_share(f: sp.Basic) -> sp.Basic | None:
    """1 - f for a share f = v_j/Σv: the other elements' share (:class:`SoftmaxRest` for
    v = e^z, :class:`NormalizedRest` for v = p), or None."""
    z = _softmax_of(f)
    if z is not None:
        return SoftmaxRest(z)
    p = _normalized_of(f)
    return NormalizedRest(p) if p is not None else None


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


def _one_minus_share(e: sp.Basic) -> sp.Basic | None:
    """``1 - exp(z)/Σexp(z)`` -> ``SoftmaxRest(z)``; ``1 - p/Σp`` -> ``NormalizedRest(p)`` (in any sum)."""
    if not isinstance(e, sp.Add) or sp.S.One not in e.args:
        return None
    for a in e.args:
        rest = _other_share(-a)
        if rest is not None:
            return e - 1 - a + rest
    return None


ONE_MINUS_SHARE = Rule(
    "one-minus-share",
    "1 - v_j/Σ v_c = Σ_{c≠j} v_c/Σ v_c (v = e^z: 1 - softmax; v = p: 1 - a renormalised "
    "probability): for a dominant class the difference rounds to 0 (1 - 1/(1 + 1e-20)), and a "
    "power or a log of it is 0 or -inf; the other classes' share keeps every digit.",
    lambda expr: _top_down(expr, _one_minus_share),
)


def _neg_log_share(e: sp.Basic) -> sp.Basic | None:
    """``log Σexp(z) - z`` -> ``NegLogSoftmax(z)``; ``log Σp - log p`` -> ``NegLogNormalized(p)``
    (two terms of a sum, in any sum)."""
    if not isinstance(e, sp.Add):
        return None
    for a in e.args:
        if isinstance(a, sp.log) and isinstance(a.args[0], RowSum):
            v = a.args[0].args[0]
            if isinstance(v, sp.exp) and -v.args[0] in e.args:
                return e - a + v.args[0] + NegLogSoftmax(v.args[0])
            if isinstance(v, Elem) and -sp.log(v) in e.args:
                return e - a + sp.log(v) + NegLogNormalized(v)
    return None


NEG_LOG_SHARE = Rule(
    "neg-log-share",
    "log Σ exp(z_c) - z_j = NegLogSoftmax(z)_j and log Σ p_c - log p_j = NegLogNormalized(p)_j "
    "(the derivative of a function of the log-share, written back): the difference cancels "
    "for a dominant class, the primitives keep it.",
    lambda expr: _top_down(expr, _neg_log_share),
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


# --- stable forms of the shapes people write ---------------------------------------------------
#
# The rules above expect the shipped shapes (``Sigmoid``, ``log(exp(z)/RowSum(exp(z)))``). The
# ones below find the stable form of what people write by hand: σ written out, log(1 + e^u),
# log Σ e^u, y·log(y/p), (1 - p)^γ, ... They match on structure (a sum of positive exponential
# terms, a power with a non-integer exponent), not on one printed form, and ``apply_rules``
# runs the list until nothing changes, so that one rule's output reaches the next.


def _top_down(expr: sp.Basic, fn: Callable[[sp.Basic], sp.Basic | None]) -> sp.Basic:
    """Replace each subexpression ``e`` for which ``fn(e)`` is not None, outermost first.

    ``sympy.Basic.replace`` works bottom-up: in ``exp(x)/(1 + exp(x))`` it would see the
    denominator alone first and make it σ(-x), leaving ``exp(x)·σ(-x)``; outermost first, the
    product is σ(x).
    """
    new = fn(expr)
    if new is not None:
        expr = new
    if not expr.args:
        return expr
    args = [_top_down(a, fn) for a in expr.args]
    if all(a is b for a, b in zip(args, expr.args)):
        return expr
    return expr.func(*args)


def _top_down_skipping(expr: sp.Basic, fn: Callable[[sp.Basic], sp.Basic | None], skip: Callable[[sp.Basic], bool]) -> sp.Basic:
    """:func:`_top_down`, not into the subexpressions ``skip`` names (the branches a rule made,
    whose first form is what it matched: matched again, they would nest without end)."""
    if skip(expr):
        return expr
    new = fn(expr)
    if new is not None:
        return new
    if not expr.args:
        return expr
    args = [_top_down_skipping(a, fn, skip) for a in expr.args]
    if all(a is b for a, b in zip(args, expr.args)):
        return expr
    return expr.func(*args)


def _has_elems(e: sp.Basic) -> bool:
    return bool(e.atoms(Elem))


def _exponent_of(term: sp.Basic) -> sp.Basic | None:
    """``L`` with ``term = e^L`` for a term ``c·exp(w)`` (c > 0 a number or a positive parameter,
    L = w + log c) or a positive constant c (L = log c: the dispersion r of a negative binomial's
    log(e^s + r)); None for anything else."""
    if term.is_Number:
        return sp.log(term) if term.is_positive else None
    if term.is_positive and not _has_elems(term) and not term.has(sp.exp):
        return sp.log(term)
    exps = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.exp)]
    if len(exps) != 1:
        return None
    c = sp.Mul(*[f for f in sp.Mul.make_args(term) if f is not exps[0]])
    if c.is_positive and not _has_elems(c):
        return exps[0].args[0] + sp.log(c)
    return None


def _exponents(a: sp.Basic) -> list[sp.Basic] | None:
    """``[L_1, ..., L_k]`` with ``a = Σ_i e^{L_i}`` (k >= 2, some L_i depending on an element),
    or None: a sum of positive exponential terms, constants included."""
    if not isinstance(a, sp.Add):
        return None
    ls = [_exponent_of(t) for t in a.args]
    if any(L is None for L in ls) or not any(_has_elems(L) for L in ls):
        return None
    return ls


def _noninteger(e: sp.Basic) -> bool:
    """An exponent that is not known to be an integer (γ, 1/2, 0.25): a power of a negative base
    is then not real, so rewriting through a logarithm loses nothing."""
    return e.is_integer is not True


def _sigmoid_of(e: sp.Basic) -> sp.Basic | None:
    """``N/(e^{L_1} + e^{L_2})`` -> ``q·σ(L_i - L_j)`` where ``q = N·e^{-L_i}`` has no exponential left."""
    if isinstance(e, sp.Pow):
        factors = [e]
    elif isinstance(e, sp.Mul):
        factors = list(e.args)
    else:
        return None
    for f in factors:
        if not (isinstance(f, sp.Pow) and f.exp == -1):
            continue
        ls = _exponents(f.base)
        if ls is None or len(ls) != 2:
            continue
        num = sp.Mul(*[g for g in factors if g is not f])
        for i in (0, 1):
            q = num * sp.exp(-ls[i])
            if not any(_has_elems(x) for x in q.atoms(sp.exp)):
                return q * Sigmoid(sp.expand(ls[i] - ls[1 - i]))
    return None


SIGMOID = Rule(
    "sigmoid",
    "1/(1 + e^{-u}), e^u/(1 + e^u), e^{-u}/(1 + e^{-u}), 1/(1 + e^u) and e^a/(e^a + e^b) are σ of the "
    "difference of the exponents: e^u overflows past u = 709.78 (1/(1 + inf) = 0 is right, but "
    "e^u/(1 + e^u) = inf/inf is NaN), and 1 - 1/(1 + e^{-u}) rounds to 0 long before it is; σ "
    "then goes to the log-sigmoid and one-minus-sigmoid rules.",
    lambda expr: _top_down(expr, _sigmoid_of),
)


def _tanh_sigmoid(e: sp.Basic) -> sp.Basic | None:
    """``a + a·tanh(u)`` -> ``2a·σ(2u)`` and ``a - a·tanh(u)`` -> ``2a·σ(-2u)`` inside a sum (the
    other terms kept)."""
    if not isinstance(e, sp.Add):
        return None
    terms = list(e.args)
    for i, t in enumerate(terms):
        th = [f for f in sp.Mul.make_args(t) if isinstance(f, sp.tanh) and _has_elems(f)]
        if len(th) != 1:
            continue
        a = sp.Mul(*[f for f in sp.Mul.make_args(t) if f is not th[0]])
        u = th[0].args[0]
        for k, other in enumerate(terms):
            if k == i:
                continue
            for sign in (1, -1):
                if sp.expand(other - sign * a) == 0:  # other = ±a: a(±1 + tanh u)
                    rest = [x for n, x in enumerate(terms) if n not in (i, k)]
                    return sp.Add(*rest, 2 * sign * a * Sigmoid(sign * 2 * u))
    return None


TANH_SIGMOID = Rule(
    "tanh-sigmoid",
    "1 + tanh(u) = 2σ(2u) and 1 - tanh(u) = 2σ(-2u) (times any factor): σ written with tanh, "
    "(1 + tanh(x/2))/2, cancels to 0 where σ(x) is 1e-300 and its log is -inf; as σ it goes to "
    "the log-sigmoid and one-minus-sigmoid rules. A tanh alone stays (2σ(2u) - 1 would cancel "
    "near 0).",
    lambda expr: _top_down(expr, _tanh_sigmoid),
)


def _square_root_of(w: sp.Basic) -> sp.Basic | None:
    """u with u² = w for a product of even powers and positive constants or parameters (the sign
    of u does not matter to √(1 + u²)); None otherwise: (x - y)²/δ² -> (x - y)/δ, (x - y)²/ν ->
    (x - y)/√ν."""
    factors = sp.Mul.make_args(w)
    out = []
    for f in factors:
        base, e = f.as_base_exp()
        if e.is_Integer and e % 2 == 0:
            out.append(base ** (e // 2))
        elif f.is_positive and not _has_elems(f):  # a positive number or parameter (1/ν of a Student-t)
            out.append(sp.sqrt(f))
        elif base.is_nonnegative and e.is_real and not _has_elems(f):
            # a power of a non-negative constant (Barron's 1/|α - 2|): at 0 the factor and its root
            # are both 0, or both forms divide by 0
            out.append(base ** (e / 2))
        else:
            return None
    u = sp.Mul(*out)
    return u if _has_elems(u) else None


def _hypot(e: sp.Basic) -> sp.Basic | None:
    """``√(k + u²)`` (k > 0 free of the inputs: 1, ε²) -> ``√k·Hypot1(u/√k)``; ``a·√(1 + u²) - a``
    -> ``a·Hypot1m1(u)`` inside a sum."""
    if isinstance(e, sp.Pow) and e.exp == sp.S.Half and isinstance(e.base, sp.Add) and len(e.base.args) == 2:
        for k in e.base.args:
            if _has_elems(k) or not k.is_positive:
                continue
            u = _square_root_of((e.base - k) / k)
            if u is not None:
                return sp.sqrt(k) * Hypot1(u)
    if isinstance(e, sp.Add):
        terms = [_top_down(t, _hypot) for t in e.args]
        for i, t in enumerate(terms):
            hs = [f for f in sp.Mul.make_args(t) if isinstance(f, Hypot1)]
            if len(hs) != 1:
                continue
            a = sp.Mul(*[f for f in sp.Mul.make_args(t) if f is not hs[0]])
            for k, other in enumerate(terms):
                if k != i and sp.expand(other + a) == 0:  # a·√(1 + u²) - a
                    rest = [x for n, x in enumerate(terms) if n not in (i, k)]
                    return sp.Add(*rest, a * Hypot1m1(hs[0].args[0]))
    return None


def _square_share(e: sp.Basic) -> sp.Basic | None:
    """``a·w/(w + k)`` (w a square u²·k of the inputs, k > 0 free of them, a free of them) ->
    ``a·HypotShare(u)²``."""
    if not isinstance(e, sp.Mul):
        return None
    num, den = sp.fraction(e)
    if not (isinstance(den, sp.Add) and len(den.args) == 2):
        return None
    for k in den.args:
        if _has_elems(k) or not k.is_positive:
            continue
        w = den - k
        a = sp.cancel(num / w)
        u = _square_root_of(w / k)
        if u is not None and not _has_elems(a):
            return a * HypotShare(u) ** 2
    return None


SQUARE_SHARE = Rule(
    "square-share",
    "u²/(u² + 1) = (u/√(1 + u²))², the square of hypot-share (the Geman–McClure loss "
    "e²/(e² + c²) with u = e/c): e² overflows past |e| = 1.3e154, where the quotient is inf/inf "
    "= NaN and its value 1; u/hypot(1, u) stays in [-1, 1].",
    lambda expr: _top_down(expr, _square_share),
)


HYPOT = Rule(
    "hypot",
    "√(1 + u²) = hypot(1, u) and √(1 + u²) - 1 = |u|·|u|/(hypot(1, u) + 1) (the pseudo-Huber "
    "δ²(√(1 + (e/δ)²) - 1), Charbonnier's √(e² + ε²) - ε as ε·(√(1 + (e/ε)²) - 1)): u² overflows past |u| = 1.3e154, where the value is "
    "about |u|, and √(1 + u²) - 1 cancels every digit of u²/2 below |u| = 1e-8.",
    lambda expr: _top_down(expr, _hypot),
)


def _log1p_square(e: sp.Basic) -> sp.Basic | None:
    """``log(1 + u²)`` or ``log1p(u²)`` -> ``Log1pSquare(u)``."""
    if isinstance(e, sp.log) and isinstance(e.args[0], sp.Add) and len(e.args[0].args) == 2 and sp.S.One in e.args[0].args:
        w = e.args[0] - 1
    elif isinstance(e, log1p):
        w = e.args[0]
    else:
        return None
    u = _square_root_of(w)
    return Log1pSquare(u) if u is not None else None


LOG1P_SQUARE = Rule(
    "log1p-square",
    "log(1 + u²) = log1p(u²) for |u| <= 1 and 2·log|u| + log1p(u⁻²) above (the Cauchy loss "
    "log(1 + (e/c)²)): u² overflows past |u| = 1.3e154 where the value is about 709, and its "
    "derivative 2u/(1 + u²) is inf/inf there; as 2·HypotShare(u)/Hypot1(u) it is not.",
    lambda expr: _top_down(expr, _log1p_square),
)


def _pow1p_square(e: sp.Basic) -> sp.Basic | None:
    """``(1 + u²)^a`` (a not an integer) -> ``exp(a·Log1pSquare(u))``."""
    if not (isinstance(e, sp.Pow) and isinstance(e.base, sp.Add) and len(e.base.args) == 2 and sp.S.One in e.base.args):
        return None
    if not _noninteger(e.exp) or e.exp.free_symbols & set(element_symbols(e.exp)):
        return None
    u = _square_root_of(e.base - 1)
    return sp.exp(e.exp * Log1pSquare(u)) if u is not None else None


POW1P_SQUARE = Rule(
    "pow1p-square",
    "(1 + u²)^a = exp(a·log1p(u²)) with log1p(u²) as Log1pSquare(u) (Barron's general robust "
    "loss, ((e/c)²/|α - 2| + 1)^(α/2)): u² overflows past |u| = 1.3e154 where the power, about "
    "|u|^(2a), does not; pow1p(u², a) was inf there. The expm1 rule then takes its - 1.",
    lambda expr: _top_down(expr, _pow1p_square),
)


def _sigmoid_term(t: sp.Basic) -> tuple[sp.Basic, Sigmoid] | None:
    """``t = k·σ(u)`` with one σ factor and k free of σ: (k, σ(u))."""
    sig = [f for f in sp.Mul.make_args(t) if isinstance(f, Sigmoid)]
    if len(sig) != 1:
        return None
    k = sp.Mul(*[f for f in sp.Mul.make_args(t) if f is not sig[0]])
    return None if k.has(Sigmoid) else (k, sig[0])


def _one_minus_sigmoid(e: sp.Basic) -> sp.Basic | None:
    """``c - Σ k_i σ(u_i)`` with ``Σ k_i = c`` (in algebra) -> ``Σ k_i σ(-u_i)``; the other terms
    of the sum stay. ``c``: the sum's numbers, or its terms free of σ and of the row's elements."""
    if not isinstance(e, sp.Add):
        return None
    terms = [(t, _sigmoid_term(t)) for t in e.args]
    grouped: dict[Sigmoid, list] = {}  # the terms of each σ(u), their coefficients summed
    for t, ks in terms:
        if ks is not None:
            grouped.setdefault(ks[1], []).append((t, ks[0]))
    sig = [(sp.Add(*[t for t, _ in g]), (sp.factor(sp.Add(*[k for _, k in g])), f)) for f, g in grouped.items()]
    if not sig:
        return None
    for const in (
        [t for t in e.args if t.is_number],
        [t for t in e.args if not t.has(Sigmoid) and not element_symbols(t)],
    ):
        c = sp.Add(*const)
        if c == 0:
            continue
        for chosen in (sig, *([x] for x in sig)):  # every σ term, or one of them
            if sp.expand(sp.Add(*[ks[0] for _, ks in chosen]) + c) == 0:  # Σ (-k_i) = c
                rest = e - c - sp.Add(*[t for t, _ in chosen])
                return rest + sp.Add(*[-ks[0] * Sigmoid(sp.expand(-ks[1].args[0])) for _, ks in chosen])
    return None


ONE_MINUS_SIGMOID = Rule(
    "one-minus-sigmoid",
    "1 - σ(u) = σ(-u), and c - Σ k_i σ(u_i) = Σ k_i σ(-u_i) when Σ k_i = c (1 - p_t with "
    "p_t = y σ(x) + (1 - y) σ(-x) is y σ(-x) + (1 - y) σ(x)): 1 - σ(u) rounds to 0 for u past "
    "36.7 (float64) where σ(-u) is e^{-u}.",
    lambda expr: _top_down(expr, _one_minus_sigmoid),
)


def _pow_sigmoid(e: sp.Basic) -> sp.Basic | None:
    if not (isinstance(e, sp.Pow) and _noninteger(e.exp)):
        return None
    if isinstance(e.base, Sigmoid):
        return sp.exp(-e.exp * Softplus(-e.base.args[0]))
    b = e.base
    if isinstance(b, sp.Add) and len(b.args) == 2 and sp.S.One in b.args:
        (u,) = [a for a in b.args if a is not sp.S.One]
        if isinstance(u, sp.exp) and _has_elems(u):
            # SymPy writes σ(x)^γ, (1/(1 + e^{-x}))^γ, as (1 + e^{-x})^(-γ) at once
            return sp.exp(e.exp * Softplus(u.args[0]))
    return None


POW_SIGMOID = Rule(
    "pow-sigmoid",
    "σ(u)^γ = exp(-γ·softplus(-u)), and (1 + e^u)^a = exp(a·softplus(u)) (σ(-u)^(-a), as SymPy "
    "writes a power of σ spelled out), for a non-integer exponent: σ(u) underflows to 0 below "
    "u = -745 while σ(u)^γ need not (σ(-800)^0.5 = e^{-400}); e^u overflows past u = 709.8, "
    "and the power's derivative is then inf·0.",
    lambda expr: _top_down(expr, _pow_sigmoid),
)


def _positive(f: sp.Basic) -> bool:
    """``f`` > 0 wherever it is defined, by its structure (exp, σ, softplus, a sum of positive
    exponential terms, a row sum or product of positive terms, a positive number or symbol)."""
    if f.is_positive or isinstance(f, (sp.exp, Sigmoid, Softplus)) or _exponents(f) is not None:
        return True
    if isinstance(f, RowSum):
        return _positive(f.args[0])
    if isinstance(f, sp.Pow):
        return _positive(f.base) and f.exp.is_real is True
    if isinstance(f, sp.Mul):
        return all(_positive(a) for a in f.args)
    return False


def _log_split(e: sp.Basic) -> sp.Basic | None:
    if not (isinstance(e, sp.log) and isinstance(e.args[0], (sp.Mul, sp.Pow))):
        return None
    a = e.args[0]
    factors = a.args if isinstance(a, sp.Mul) else (a,)
    if not all(_positive(f) for f in factors):
        return None
    if not any(f.atoms(Elem) for f in factors):
        return None  # constants: nothing for another rule to take
    out = []
    for f in factors:
        base, k = (f.base, f.exp) if isinstance(f, sp.Pow) else (f, sp.S.One)
        out.append(k * sp.log(base))
    return sp.Add(*out)


LOG_SPLIT = Rule(
    "log-split",
    "log(a·b/c) = log a + log b - log c for positive factors (exponentials, σ, sums of exponentials, "
    "row sums of them): each log then has a stable form of its own (log e^u = u, log σ(u) = "
    "-softplus(-u), log(1 + e^u) = softplus(u), log Σ e^u = lse), where the product or the "
    "quotient would overflow or underflow first (e^a/(e^a + e^b) at a = 800 is inf/inf).",
    lambda expr: _top_down(expr, _log_split),
)


def _xlogy(e: sp.Basic) -> sp.Basic | None:
    """``w·log w``, ``w·log(w/v)``, ``w·log(v/w)`` (times other factors) -> ``XMul(w, ·)``."""
    if not isinstance(e, sp.Mul):
        return None
    logs = [f for f in e.args if isinstance(f, sp.log)]
    if len(logs) != 1:
        return None
    lg = logs[0]
    a = lg.args[0]
    for w in [f for f in e.args if isinstance(f, Elem)]:
        rest = sp.Mul(*[f for f in e.args if f is not lg and f is not w])
        if a == w:
            inner = sp.log(w)
        elif isinstance(a / w, sp.Pow) and (a / w).exp == -1:  # a = w/v
            inner = _log_ratio(w, (a / w).base)
        elif not (a * w).has(w):  # a = v/w
            inner = -_log_ratio(w, a * w)
        else:
            continue
        return rest * XMul(w, inner)
    return None


def _log_ratio(w: sp.Expr, v: sp.Expr) -> sp.Expr:
    """LogRatio(w, v), a constant factor c < 1 of v moved onto w: log(w/(c·u)) = log((w/c)/u).
    A mixture v = (p + y)/2 (Jensen–Shannon's) underflows to 0 at p = 5e-324, y = 0, where
    w/c = 2p does not; log(w/u) - log c would cancel where w is near v."""
    c, u = v.as_content_primitive()
    if c.is_Rational and 0 < c < 1 and u.atoms(Elem):
        return LogRatio(w / c, u)
    return LogRatio(w, v)


XLOGY = Rule(
    "xlogy",
    "y·log y, y·log(y/p) and y·log(p/y) with 0·log 0 = 0 (XMul): at y = 0 the plain product is "
    "0·(-inf) = NaN; the log of the quotient is LogRatio(y, p), ±log1p(|y - p|/min(y, p)): "
    "y/p overflows for p below 1/max (a subnormal p under a label of 1), and log y - log p keeps "
    "the logs' absolute errors, all of the result where p is within float32 ulps of y.",
    lambda expr: _top_down(expr, _xlogy),
)


def _log_add_exp(e: sp.Basic) -> sp.Basic | None:
    if isinstance(e, sp.log):
        a = e.args[0]
    elif isinstance(e, log1p):
        a = 1 + e.args[0]
    else:
        return None
    ls = _exponents(a)
    if ls is None:
        return None
    ls = sorted(ls, key=_has_elems)  # a constant term first: log(1 + e^u) = softplus(u)
    out = ls[0]
    for L in ls[1:]:
        out = out + Softplus(sp.expand(L - out)) if out != 0 else Softplus(L)
    return out


LOG_ADD_EXP = Rule(
    "softplus",
    "log(1 + e^u) = softplus(u) and log(e^a + e^b) = a + softplus(b - a) (log1p(e^u) too; more "
    "terms fold): e^u overflows past u = 709.78, so the plain form gives inf where the value is "
    "about u, and log1p(e^u) loses nothing only while e^u is finite.",
    lambda expr: _top_down(expr, _log_add_exp),
)


def _log1mexp(e: sp.Basic) -> sp.Basic | None:
    """``log(c - b·e^w)``, ``log1p(-b·e^w)`` (b, c > 0 numbers) and ``log(-expm1(u))``."""
    if isinstance(e, sp.log):
        a = e.args[0]
        if isinstance(a, sp.Mul) and a.args[0] == -1 and len(a.args) == 2 and isinstance(a.args[1], expm1):
            return Log1mexp(a.args[1].args[0])
    elif isinstance(e, log1p):
        a = 1 + e.args[0]
    else:
        return None
    if not (isinstance(a, sp.Add) and len(a.args) == 2):
        return None
    c, t = sorted(a.args, key=lambda x: not x.is_Number)
    if not (c.is_Number and c.is_positive and not t.is_Number):
        return None
    L = _exponent_of(-t)
    if L is None or not _has_elems(L):
        return None
    return sp.log(c) + Log1mexp(sp.expand(L - sp.log(c)))


LOG1MEXP = Rule(
    "log1mexp",
    "log(1 - e^u) = log1mexp(u) (also log1p(-e^u), log(-expm1(u))): 1 - e^u rounds to 0 for "
    "|u| < 2^-54 (log: -inf where the value is log|u|) and keeps few digits near 0; log1mexp "
    "takes log(-expm1(u)) there and log1p(-e^u) below -log 2 (Mächler 2012).",
    lambda expr: _top_down(expr, _log1mexp),
)


def _lse(e: sp.Basic) -> sp.Basic | None:
    if isinstance(e, sp.log) and isinstance(e.args[0], RowSum) and isinstance(e.args[0].args[0], sp.exp):
        return LogSumExp(e.args[0].args[0].args[0])
    return None


LOG_SUM_EXP = Rule(
    "log-sum-exp",
    "log Σ_c e^{u_c} = lse(u) = m + log1p(Σ_{c≠k} e^{u_c - m}), m = max u: e^u overflows past "
    "u = 709.78 (log: inf where the value is about max u) and every term underflows below -745 "
    "(log 0 = -inf).",
    lambda expr: _top_down(expr, _lse),
)


def _weighted_lse(e: sp.Basic) -> sp.Basic | None:
    """``log(RowSum(w·exp(u)))`` (w an element symbol, a weight >= 0) -> ``lse(u + log w)``."""
    if not (isinstance(e, sp.log) and isinstance(e.args[0], RowSum)):
        return None
    s = e.args[0].args[0]
    if not (isinstance(s, sp.Mul) and len(s.args) == 2):
        return None
    exps = [f for f in s.args if isinstance(f, sp.exp)]
    ws = [f for f in s.args if isinstance(f, Elem)]
    if len(exps) != 1 or len(ws) != 1 or exps[0].has(ws[0]):
        return None
    return LogSumExp(exps[0].args[0] + LogWeight(ws[0]))


LSE_WEIGHTS = Rule(
    "log-sum-exp-weighted",
    "log Σ_c w_c·e^{u_c} = lse(u + log w) for weights w >= 0 (log 0 = -inf: a term that is 0): the "
    "sum overflows past u = 709.78 and underflows (log 0 = -inf) when every u is below -745; lse "
    "shifts by the largest u_c + log w_c, the largest term with a non-zero weight, so that a zero "
    "weight on the largest u does not leave the other terms to underflow (LogWeight keeps SymPy "
    "from folding e^{u + log w} back into w·e^u, which is 0·inf for a zero weight).",
    lambda expr: _top_down(expr, _weighted_lse),
)


def _log_softmax_difference(e: sp.Basic) -> sp.Basic | None:
    """``... + k·u - k·lse(u) + ...`` (element-level) -> ``... - k·NegLogSoftmax(u)``."""
    if not isinstance(e, sp.Add) or not element_symbols(e):
        return None
    terms = set(e.args)
    for t in e.args:
        k, f = t.as_coeff_Mul()
        if not isinstance(f, LogSumExp):
            continue
        u = f.args[0]
        if all(a in terms for a in sp.Add.make_args(sp.expand(-k * u))):
            return e - t + k * u + k * NegLogSoftmax(u)
    return None


LOG_SOFTMAX_DIFFERENCE = Rule(
    "log-softmax-difference",
    "u_j - lse(u) = -NegLogSoftmax(u)_j (and lse(u) - u_j = NegLogSoftmax(u)_j): the difference "
    "cancels to 0 when class j wins by hundreds (its true value about e^{-300}); the stable "
    "negative log-softmax is a sum of two non-negative terms.",
    lambda expr: _top_down(expr, _log_softmax_difference),
)


def _split_factor(term: sp.Basic, cls) -> tuple[sp.Basic, sp.Basic] | None:
    """``(coefficient, f)`` with ``term = coefficient·f`` for its one factor ``f`` of type ``cls``."""
    fs = [f for f in sp.Mul.make_args(term) if isinstance(f, cls)]
    if len(fs) != 1:
        return None
    return sp.Mul(*[f for f in sp.Mul.make_args(term) if f is not fs[0]]), fs[0]


def _lse_weighted(e: sp.Basic) -> sp.Basic | None:
    """``a·lse(u) - c·RowSum(w·u)`` (row-level) -> ``c·RowSum(w·NLS(u)) + (a - c·RowSum(w))·lse(u)``."""
    if not isinstance(e, sp.Add) or element_symbols(e):
        return None
    for t in e.args:
        lse = _split_factor(t, LogSumExp)
        if lse is None:
            continue
        a, f = lse
        u = f.args[0]
        for s in e.args:
            rs = _split_factor(s, RowSum)
            if s is t or rs is None:
                continue
            c, r = -rs[0], rs[1]
            w = sp.cancel(r.args[0] / u)
            if w * u != r.args[0] or w.free_symbols & element_symbols(u):
                continue
            # (not for a summand affine in u, Σ y·x beside lse(x + 1 - y): its part k = y² - y
            # cancels against y·NLS(u) for real labels, 1.25e3 ulps at labels in the thousands)
            return e - t - s + c * RowSum(w * NegLogSoftmax(u)) + (a - c * RowSum(w)) * f
    return None


LSE_WEIGHTED = Rule(
    "lse-minus-weighted-sum",
    "lse(u) - Σ_c w_c u_c = Σ_c w_c·NegLogSoftmax(u)_c + (1 - Σ_c w_c)·lse(u) (exact for any weights; "
    "the second term is 0 for labels summing to 1): the plain difference of two large numbers "
    "cancels when the labelled class dominates (lse(30, 0, 0) - 30 keeps 2 digits of 1.9e-13).",
    lambda expr: _top_down(expr, _lse_weighted),
)


def _softplus_weighted(e: sp.Basic) -> sp.Basic | None:
    """``a·softplus(u) - c·w·u`` (in any sum) -> ``c·w·softplus(-u) + (a - c·w)·softplus(u)``;
    also where the term is ``-c·w·u`` up to a part ``k`` free of u's elements (``-y·s`` beside
    softplus(s - log r): k = -y·log r, kept as it is), and in the sum with its products
    multiplied out (``-y·s + (y + r)·(log r + softplus(s - log r))``) where only that matches."""
    if not isinstance(e, sp.Add):
        return None
    found = _softplus_weighted_terms(e)
    if found is None and any(isinstance(t, sp.Mul) and any(isinstance(f, sp.Add) and f.has(Softplus) for f in t.args) for t in e.args):
        # (each softplus once, its weights collected: (y + r)·softplus(u), not y·… + r·…, whose
        # rewritten parts (r - y)·softplus(u) + y·softplus(u) would cancel)
        out = sp.collect(sp.expand_mul(e), sorted(e.atoms(Softplus), key=str))
        return _softplus_weighted_terms(out) if isinstance(out, sp.Add) else None
    return found


def _softplus_weighted_terms(e: sp.Add) -> sp.Basic | None:
    for t in e.args:
        sp_ = _split_factor(t, Softplus)
        if sp_ is None:
            continue
        a, f = sp_
        u = f.args[0]
        for s in e.args:
            if s is t:
                continue
            for r, k in _affine_in(s, u):  # s = r·u + k, r = -c·w
                if r.has(Softplus) or r.free_symbols & (u.free_symbols - set(element_symbols(r)) | element_symbols(u)):
                    continue
                return e - t - s - r * Softplus(sp.expand(-u)) + (a + r) * f + k
    return None


def _affine_in(s: sp.Basic, u: sp.Basic):
    """``(r, k)`` with ``s = r·u + k``: r = s/u (k = 0), else r the ratio of their derivatives in
    an element of u, where that leaves k free of u's elements."""
    r = sp.cancel(s / u)
    if sp.expand(r * u - s) == 0 and not (element_symbols(r) & element_symbols(u)):
        yield r, sp.S.Zero
        return
    if s.has(Softplus):
        return
    known = _PREDICTION.get()
    for x in [known] if known is not None and known in element_symbols(u) else sorted(element_symbols(u), key=str):
        du = sp.diff(u, x)
        if du == 0 or du.free_symbols & set(element_symbols(u)):
            continue
        r = sp.cancel(sp.diff(s, x) / du)
        k = sp.expand(s - r * u)
        if r != 0 and k != 0 and not (element_symbols(k) & element_symbols(u)) and not (element_symbols(r) & element_symbols(u)):
            yield r, k
        return


SOFTPLUS_WEIGHTED = Rule(
    "softplus-minus-weighted",
    "softplus(u) - w·u = w·softplus(-u) + (1 - w)·softplus(u) (the logistic loss written as "
    "log(1 + e^x) - y·x, the two-class lse(z) - Σ y·z): the difference cancels for a label on a "
    "dominant logit (softplus(30) - 30 keeps 2 digits of 9.4e-14); the weighted sum of two "
    "positive terms does not.",
    lambda expr: _top_down(expr, _softplus_weighted),
)


def _log_expm1(e: sp.Basic) -> sp.Basic | None:
    """``log(expm1(u))`` -> ``LogExpm1(u)`` (``log(e^u - 1)`` reaches it through the expm1 rule)."""
    if isinstance(e, sp.log) and isinstance(e.args[0], expm1) and _has_elems(e.args[0]):
        return LogExpm1(e.args[0].args[0])
    return None


LOG_EXPM1 = Rule(
    "log-expm1",
    "log(e^u - 1) = log(expm1(u)) = logexpm1(u) for u > 0 (the inverse of softplus): expm1 overflows "
    "past u = 709.78 (log: inf where the value is about u); logexpm1 takes u + log1p(-e^{-u}) for "
    "u > 1 and log(expm1(u)) below, which keeps a small u (log(e^u - 1) is -inf below u = 2^-53).",
    lambda expr: _top_down(expr, _log_expm1),
)


def _logit_sigmoid(e: sp.Basic) -> sp.Basic | None:
    """``log(σ(u)/σ(-u))`` (times other positive factors) -> ``u + log(rest)``."""
    if not (isinstance(e, sp.log) and isinstance(e.args[0], sp.Mul)):
        return None
    factors = e.args[0].args
    for f in factors:
        if not isinstance(f, Sigmoid):
            continue
        u = f.args[0]
        inv = Sigmoid(sp.expand(-u)) ** -1
        if inv in factors:
            rest = sp.Mul(*[g for g in factors if g is not f and g != inv])
            return u + sp.log(rest) if rest != 1 else u
    return None


LOGIT_SIGMOID = Rule(
    "logit-sigmoid",
    "log(σ(u)/(1 - σ(u))) = log(σ(u)/σ(-u)) = u (the logit of a sigmoid): 1 - σ(u) rounds to 0 past "
    "u = 36.7 (log: inf where the value is u), and split into softplus(u) - softplus(-u) the two "
    "logs cancel for small u (u = 1e-10: log 2 - log 2 keeps 6 digits); u is exact.",
    lambda expr: _top_down(expr, _logit_sigmoid),
)


def _sigmoid_power(e: sp.Basic) -> sp.Basic | None:
    """``N/(e^{L_1} + e^{L_2})^n`` (n >= 2 an integer) -> ``q·σ(L_i - L_j)^n`` with
    ``q = N·e^{-n·L_i}`` free of exponentials (the sigmoid rule's shape, to a power)."""
    factors = list(e.args) if isinstance(e, sp.Mul) else [e] if isinstance(e, sp.Pow) else []
    for f in factors:
        if not (isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp < -1):
            continue
        ls = _exponents(f.base)
        if ls is None or len(ls) != 2:
            continue
        n = -f.exp
        num = sp.Mul(*[g for g in factors if g is not f])
        for i in (0, 1):
            q = num * sp.exp(-n * ls[i])
            if not any(_has_elems(a) for a in q.atoms(sp.exp)):
                return q * Sigmoid(sp.expand(ls[i] - ls[1 - i])) ** n
    return None


SIGMOID_POWER = Rule(
    "sigmoid-power",
    "1/(1 + e^{-u})^n = σ(u)^n for an integer n >= 2 (the squared sigmoid of a Brier-style loss "
    "written out): its derivative n·e^{-u}/(1 + e^{-u})^{n+1} is inf/inf = NaN past u = -709.78, "
    "where σ(u)^n·n·σ(-u) is 0; σ^n of the stable σ is as accurate as σ (relative error times n) "
    "and underflows only where σ^n is below the smallest float.",
    lambda expr: _top_down(expr, _sigmoid_power),
)


def _minus_weight(e: sp.Basic, complement: Callable[[sp.Basic], sp.Basic | None]) -> sp.Basic | None:
    """``... + k·f - k·w + ...`` (k a number, w an element symbol that f does not hold, and
    ``complement(f)`` = 1 - f, None for an f it does not know) -> ``... + k·((1 - w)·f -
    w·complement(f)) + ...``."""
    if not isinstance(e, sp.Add):
        return None
    for a in e.args:
        k, f = a.as_coeff_Mul()
        rest = complement(f)
        if rest is None:
            continue
        for b in e.args:
            w = -b / k
            if b is not a and isinstance(w, Elem) and not f.has(w):
                return e - a - b + k * ((1 - w) * f - w * rest)
    return None


def _sigmoid_minus_weight(e: sp.Basic) -> sp.Basic | None:
    """``... + k·σ(u) - k·w + ...`` -> ``... + k·((1 - w)·σ(u) - w·σ(-u)) + ...`` (:func:`_minus_weight`)."""
    return _minus_weight(e, lambda f: Sigmoid(sp.expand(-f.args[0])) if isinstance(f, Sigmoid) else None)


SIGMOID_MINUS_WEIGHT = Rule(
    "sigmoid-minus-label",
    "σ(u) - w = (1 - w)·σ(u) - w·σ(-u) (as σ(u) + σ(-u) = 1; the residual of a Brier-style loss "
    "(σ(x) - y)²): for w = 1 and u = 30 the difference σ(u) - 1 keeps 3 digits of -9.4e-14, and "
    "past u = 36.7 it is 0 where the value is -e^{-u}; for a label of 0 or 1 the right side is one "
    "term, exact to σ's accuracy.",
    lambda expr: _top_down(expr, _sigmoid_minus_weight),
)


def _share_minus_weight(e: sp.Basic) -> sp.Basic | None:
    """``... + k·v_j/Σv - k·w + ...`` -> ``... + k·((1 - w)·v_j/Σv - w·Rest) + ...``, Rest the
    other elements' share (:func:`_minus_weight`)."""
    return _minus_weight(e, _other_share)


SHARE_MINUS_WEIGHT = Rule(
    "share-minus-label",
    "v_j/Σv - w = (1 - w)·v_j/Σv - w·Σ_{c≠j}v_c/Σv (v = e^z: softmax; v = p: a renormalised "
    "share; the shares sum to 1): the residual of a multi-class Brier score Σ(softmax(z) - y)² at "
    "y_j = 1 and a class winning by 30 keeps 3 digits of -9.4e-14 as softmax_j - 1, every digit "
    "as the other classes' share; for a label of 0 or 1 the right side is one term.",
    lambda expr: _top_down(expr, _share_minus_weight),
)


def _rowsum_softplus_weighted(e: sp.Basic) -> sp.Basic | None:
    """``a·RowSum(A) + c·RowSum(B)`` (row-level) -> ``RowSum(a·A + c·B)`` rewritten by the
    softplus-minus-weighted rule, only where that rule fires on the merged summand."""
    if not isinstance(e, sp.Add) or element_symbols(e):
        return None
    for t in e.args:
        ft = _split_factor(t, RowSum)
        if ft is None or not ft[1].has(Softplus) or element_symbols(ft[0]):
            continue
        for s in e.args:
            fs = _split_factor(s, RowSum)
            if s is t or fs is None or element_symbols(fs[0]):
                continue
            merged = sp.expand(ft[0] * ft[1].args[0] + fs[0] * fs[1].args[0], power_exp=False, log=False)
            new = _top_down(merged, _softplus_weighted)
            if new != merged:
                return e - t - s + RowSum(new)
    return None


ROWSUM_SOFTPLUS_WEIGHTED = Rule(
    "rowsum-softplus-minus-weighted",
    "Σ_c softplus(x_c) - Σ_c y_c·x_c = Σ_c (y_c·softplus(-x_c) + (1 - y_c)·softplus(x_c)) (the "
    "logistic loss split into two row sums): each sum is large (800 at x = 800) while the loss is "
    "small, and their difference cancels (softplus(30) - 30 keeps 2 digits of 9.4e-14); merged "
    "into one row sum, the softplus-minus-weighted rule finds the sum of positive terms.",
    lambda expr: _top_down(expr, _rowsum_softplus_weighted),
)


def _pow1p(e: sp.Basic) -> sp.Basic | None:
    if not (isinstance(e, sp.Pow) and isinstance(e.base, sp.Add) and sp.S.One in e.base.args):
        return None
    if not _noninteger(e.exp) or not _has_elems(e.base):
        return None
    if _one_minus_sigmoid(e.base) is not None:  # 1 - Σ k σ(u) with Σ k = 1: a sum of σ(-u) instead
        return None
    return Pow1p(e.base - 1, e.exp)


POW1P = Rule(
    "pow1p",
    "(1 + x)^γ = exp(γ·log1p(x)) for a non-integer γ (the focal loss' (1 - p)^γ): 1 + x rounds "
    "away the digits of a small x and the power multiplies the error by γ ((1 - 1e-10)^1e10 "
    "keeps 6 digits); 0^0 = 1 kept (zero-guarded product).",
    lambda expr: _top_down(expr, _pow1p),
)


def _unguarded(e: sp.Basic, weights=None) -> sp.Basic:
    """``e`` with each zero-guarded product ``XMul(a, b)`` written ``a·b`` (those on one of
    ``weights`` only, where given)."""
    return e.replace(lambda f: isinstance(f, XMul) and (weights is None or f.args[0] in weights), lambda f: f.args[0] * f.args[1])


def _one_number(e: sp.Basic) -> sp.Number | None:
    """The number among the terms of the sum ``e`` where it holds exactly one, else None."""
    if not isinstance(e, sp.Add):
        return None
    nums = [a for a in e.args if a.is_Number]
    return nums[0] if len(nums) == 1 else None


def _number_and_term(e: sp.Basic, match: Callable[[sp.Basic], bool], ratio: int = -1):
    """In a sum holding exactly one number n: ``(n, t, k, f)`` for its first term ``t = k·f`` with
    ``match(f)`` and ``k = ratio·n`` (the shape ``n + ratio·n·f`` of expm1, powm1, 1 - 2σ), else None."""
    n = _one_number(e)
    if n is None:
        return None
    for t in e.args:
        k, f = t.as_coeff_Mul()
        if match(f) and k == ratio * n:
            return n, t, k, f
    return None


def _powm1(e: sp.Basic) -> sp.Basic | None:
    hit = _number_and_term(e, lambda f: isinstance(f, sp.Pow) and _noninteger(f.exp) and _has_elems(f.base))
    if hit is not None:
        n, t, k, f = hit
        z = _softmax_of(f.base)
        if z is not None and not f.exp.has(z):
            # a softmax share rounds next to 1 (1 - 9.4e-14): s^q - 1 = expm1(-q·(-log s)) from
            # the log-share, which keeps it (a generalised CE on logits, 1.2e12 ulps as powm1)
            return e - t - n + k * expm1(-f.exp * NegLogSoftmax(z))
        return e - t - n + k * Powm1(f.base, f.exp)
    hit = _number_and_term(e, _integer_power_of_one_plus)
    if hit is None:
        return None
    n, t, k, f = hit
    return e - t - n + k * Pow1pm1(f.base - 1, f.exp)


def _integer_power_of_one_plus(f: sp.Basic) -> bool:
    """``(1 + x)^m``, x over the elements, m an integer in [2, 8]: Tukey's (1 - (e/c)²)³."""
    return (
        isinstance(f, sp.Pow) and f.exp.is_Integer and 2 <= int(f.exp) <= 8
        and isinstance(f.base, sp.Add) and sp.S.One in f.base.args and _has_elems(f.base)
    )


POWM1 = Rule(
    "powm1",
    "1 - p^q = -powm1(p, q) = -expm1(q·log p) for a non-integer q (the generalised "
    "cross-entropy (1 - p^q)/q): p^q is close to 1 for p near 1 or a small q, and 1 - p^q keeps "
    "few digits (none at p = 1 - 2^-53, q = 0.3); expm1 of the small exponent keeps them all. "
    "For an integer m (Tukey's biweight 1 - (1 - u)³), 1 - (1 + x)^m = -pow1pm1(x, m) = "
    "-expm1(m·log1p(x)): 1 - u rounds u away first (1 - (1 - 1e-18)³ was 0), and its derivative "
    "3(1 - u)² is the power's, not a sum that cancels near u = 1.",
    lambda expr: _top_down(expr, _powm1),
)


def _cosh_sum(e: sp.Basic) -> sp.Basic | None:
    """``... + k·e^u + k·e^{-u} + ...`` -> ``... + 2k·cosh(u) + ...`` (u over the elements)."""
    if not isinstance(e, sp.Add):
        return None
    exps = {}
    for t in e.args:
        k, f = t.as_coeff_Mul()
        if isinstance(f, sp.exp) and _has_elems(f):
            exps[f.args[0]] = (k, t)
    for u, (k, t) in exps.items():
        other = exps.get(sp.expand(-u))
        if other is not None and other[0] == k and other[1] != t:
            return e - t - other[1] + 2 * k * sp.cosh(u if u.could_extract_minus_sign() is False else -u)
    return None


COSH_SUM = Rule(
    "cosh-sum",
    "e^u + e^{-u} = 2·cosh(u) (log-cosh written with exponentials, (e^u + e^{-u})/2): as a "
    "log of a sum of exponentials it becomes |u| + log1p(e^{-2|u|}) - log 2, which cancels for "
    "small u (0 at u = 3e-13 where the loss is 4e-26); log cosh u has its own stable form.",
    lambda expr: _top_down(expr, _cosh_sum),
)


def _log_cosh(e: sp.Basic) -> sp.Basic | None:
    if isinstance(e, sp.log) and isinstance(e.args[0], sp.cosh):
        return LogCosh(e.args[0].args[0])
    return None


LOG_COSH = Rule(
    "log-cosh",
    "log cosh u = LogCosh(u): cosh overflows past |u| = 710.48 where log cosh is about 710, and "
    "the stable large-|u| form |u| - log 2 + log1p(e^{-2|u|}) cancels for small u (value u²/2), "
    "so the runtime takes log1p(sinh² u)/2 below |u| = 1.",
    lambda expr: _top_down(expr, _log_cosh),
)


def _expm1(e: sp.Basic) -> sp.Basic | None:
    """``... + k·exp(u) - k + ...`` (k a number, or free of the row's elements: a scale
    parameter's 1/b) -> ``... + k·expm1(u) + ...``."""
    hit = _number_and_term(e, lambda f: isinstance(f, sp.exp) and _has_elems(f))
    if hit is not None:
        n, t, k, f = hit
        return e - t - n + k * expm1(f.args[0])
    if not isinstance(e, sp.Add):
        return None
    terms = set(e.args)
    for t in e.args:
        k, f = t.as_independent(Elem, as_Add=False)
        if isinstance(f, sp.exp) and _has_elems(f) and k != 1 and not k.is_number and -k in terms:
            return e - t + k + k * expm1(f.args[0])  # (-k is among the terms: + k takes it out)
    return None


def _expm1mx(e: sp.Basic) -> sp.Basic | None:
    """``... + k·e^u - k - k·u + ...`` (or ``k·expm1(u) - k·u``; k a number) -> ``k·Expm1mx(u)``."""
    if not isinstance(e, sp.Add):
        return None
    for t in e.args:
        k, f = t.as_coeff_Mul()
        if isinstance(f, sp.exp) and _has_elems(f):
            u, drop = f.args[0], k * (f - 1 - f.args[0])
        elif isinstance(f, expm1) and _has_elems(f):
            u, drop = f.args[0], k * (f - f.args[0])
        else:
            continue
        if set(sp.Add.make_args(sp.expand(drop))) <= set(sp.Add.make_args(sp.expand(e))):  # each term there as it is
            return sp.expand(e - drop) + k * Expm1mx(u)
    return None


EXPM1MX = Rule(
    "expm1mx",
    "e^u - 1 - u = Expm1mx(u) (a Gaussian KL divergence's e^s - 1 - s in the log variance): "
    "e^u - 1 - u keeps no digit at u = 1e-8 (the value 5e-17), expm1(u) - u about -log2|u| bits "
    "fewer than it has; the series Σ_{k>=2} u^k/k! keeps them all below |u| = 1/2.",
    lambda expr: _top_down(expr, _expm1mx),
)


EXPM1 = Rule(
    "expm1",
    "e^u - 1 = expm1(u) (and 1 - e^u = -expm1(u)): for small u, e^u rounds to 1 + u with an "
    "absolute error of half an ulp of 1, so e^u - 1 keeps few digits of u (none below 2^-53).",
    lambda expr: _top_down(expr, _expm1),
)


def _zero_times_exp(e: sp.Basic) -> sp.Basic | None:
    """``a·e^u`` with ``a`` free of u's inputs, holding an input and possibly 0 -> ``ScaledExp(u, a)``."""
    if not isinstance(e, sp.Mul) or e.has(XMul, ScaledExp):
        return None
    exps = [f for f in e.args if isinstance(f, sp.exp) and _has_elems(f)]
    if len(exps) != 1:
        return None
    inputs = element_symbols(exps[0])
    c, a = (e / exps[0]).as_coeff_Mul()
    if a == 1 or a.has(sp.exp) or not _has_elems(a) or element_symbols(a) & inputs or a.is_nonzero:
        return None
    return ScaledExp(exps[0].args[0], c * a)


ZERO_TIMES_EXP = Rule(
    "zero-times-exp",
    "a·e^u with a factor a free of u's inputs (a label's y² in a Gaussian likelihood y²·e^(-s)) is "
    "0 wherever a is, whatever u, and finite where e^u alone is not: ScaledExp(u, a), zero-guarded "
    "(0·inf is NaN where the term is 0) and computed as a·e^r·2^k, u = k·ln 2 + r, where e^u "
    "overflows or underflows (e^710/4 is 5.6e307).",
    lambda expr: _top_down(expr, _zero_times_exp),
)


def _log1p_sum(e: sp.Basic) -> sp.Basic | None:
    if isinstance(e, sp.log) and isinstance(e.args[0], sp.Add) and sp.S.One in e.args[0].args and _has_elems(e.args[0]):
        return log1p(e.args[0] - 1)
    return None


LOG1P_SUM = Rule(
    "log1p-sum",
    "log(1 + a) = log1p(a) for any a (after the rules for 1 + e^u and 1 - e^u): 1 + a rounds away "
    "the digits of a small a (the Cauchy loss log(1 + r²) at r = 1e-8 gives 1.1e-16 for 1e-16).",
    lambda expr: _top_down(expr, _log1p_sum),
)


def _norm(e: sp.Basic) -> sp.Basic | None:
    if not isinstance(e, sp.Pow) or not (e.exp * 2).is_odd:
        return None
    b = e.base
    if isinstance(b, SumSquares):
        return Norm2(b.args[0]) ** (e.exp * 2)
    if isinstance(b, sp.Mul):
        sq = [f for f in b.args if isinstance(f, SumSquares)]
        if len(sq) == 1 and not element_symbols(b):
            return (b / sq[0]) ** e.exp * Norm2(sq[0].args[0]) ** (e.exp * 2)
    return None


def _degree(e: sp.Basic, x: Elem) -> int | None:
    """The degree of ``e`` as a homogeneous function of the row ``x`` (``Norm2(x)`` has degree 1),
    or None where it is not homogeneous (or not visibly so)."""
    if e == x or (isinstance(e, Norm2) and e.args[0] == x):
        return 1
    if not e.has(x):
        return 0
    if isinstance(e, sp.Mul):
        ds = [_degree(a, x) for a in e.args]
        return None if None in ds else sum(ds)
    if isinstance(e, sp.Add):
        ds = {_degree(a, x) for a in e.args}
        return ds.pop() if len(ds) == 1 else None
    if isinstance(e, sp.Pow) and e.exp.is_Integer:
        d = _degree(e.base, x)
        return None if d is None else d * int(e.exp)
    if isinstance(e, (RowSum, RestSum)):
        return _degree(e.args[0], x)
    return None


def _scale_by_norms(e: sp.Basic) -> sp.Basic | None:
    """``f(x)/‖x‖^k`` -> ``f(x/‖x‖)/‖x‖^(k-d)`` for ``f`` homogeneous of degree d <= k in the row x."""
    if not isinstance(e, sp.Mul):
        return None
    out, changed = e, False
    for f in e.args:
        if not (isinstance(f, sp.Pow) and isinstance(f.base, Norm2) and f.exp.is_Integer and f.exp < 0):
            continue
        x = f.base.args[0]
        if not isinstance(x, Elem):
            continue
        factors = out.args if isinstance(out, sp.Mul) else (out,)
        den = [g for g in factors if isinstance(g, sp.Pow) and g.base == f.base]
        if len(den) != 1:
            continue
        k = -int(den[0].exp)
        num = sp.Mul(*[g for g in factors if g is not den[0]])
        d = _degree(num, x)
        if d is None or d < 1 or d > k:
            continue
        # f(x) = ‖x‖^d·f(x/‖x‖), in which ‖x/‖x‖‖ = 1: a norm of x inside f is 1 there
        hold = sp.Dummy("norm")
        num = num.xreplace({f.base: sp.S.One, x: Scaled(x, hold)}).xreplace({hold: f.base})
        out, changed = num * f.base ** (d - k), True
    return out if changed else None


SCALE_NORM = Rule(
    "scale-by-norm",
    "f(x)/‖x‖^k = f(x/‖x‖)/‖x‖^(k-d) for f homogeneous of degree d <= k in the row x: the unit "
    "vector x/‖x‖ is formed first, so the products and sums in f neither overflow (x·w of two "
    "rows of 1e200s) nor underflow (of 1e-200s: 0 where the cosine is 1).",
    lambda expr: _top_down(expr, _scale_by_norms),
)


def _log1p_difference(e: sp.Basic) -> sp.Basic | None:
    """``log1p(a) - log1p(b)`` in a sum (a and b over the row's elements) -> ``Log1pDiff(a, b)``."""
    if not isinstance(e, sp.Add):
        return None
    pos = [t for t in e.args if isinstance(t, log1p) and _has_elems(t)]
    neg = [t for t in e.args if isinstance(-t, log1p) and _has_elems(-t)]
    if not pos or not neg:
        return None
    a, b = pos[0], -neg[0]
    return e - a + b + Log1pDiff(a.args[0], b.args[0])


LOG1P_DIFFERENCE = Rule(
    "log1p-difference",
    "log1p(a) - log1p(b) = log((1 + a)/(1 + b)), by log1p of (a - b)/(1 + b) where the ratio is near 1: "
    "the difference of two logs keeps their absolute errors (MSLE at y = 18050, p = 6772: logs of "
    "9.8 and 8.8, a difference of 0.98 with 10 of its ulps lost).",
    lambda expr: _top_down(expr, _log1p_difference),
)


def _plain_log_argument(a: sp.Basic) -> bool:
    """A polynomial in the row's elements and parameters (p, y, p + c), not a product of the
    forms the log-split rule takes apart (exponentials, σ, row sums): its log is not split again."""
    return _has_elems(a) and not a.has(sp.exp, Sigmoid, RowSum, RowMax) and a.is_polynomial()


def _log_terms(e: sp.Add, argument: Callable[[sp.Basic], bool]) -> list[tuple[sp.Basic, sp.Basic, sp.Basic]]:
    """The terms ``t = c·log(a)`` of the sum ``e`` with ``argument(a)``, as ``(t, c, a)``."""
    logs = []
    for t in e.args:
        c, rest = t.as_independent(sp.log, as_Add=False)
        if isinstance(rest, sp.log) and argument(rest.args[0]):
            logs.append((t, c, rest.args[0]))
    return logs


def _log_difference(e: sp.Basic) -> sp.Basic | None:
    """``c·log(a) - c·log(b)`` in a sum (a, b polynomials in the elements) -> ``c·LogRatio(a, b)``."""
    if not isinstance(e, sp.Add):
        return None
    logs = _log_terms(e, _plain_log_argument)
    for t1, c1, a in logs:
        for t2, c2, b in logs:
            if t1 is not t2 and c1 == -c2 and a != b and c1.could_extract_minus_sign() is False:
                return e - t1 - t2 + c1 * _log_ratio(a, b)
    return None


LOG_DIFFERENCE = Rule(
    "log-difference",
    "log a - log b = log(a/b) as LogRatio(a, b), ±log1p(|a - b|/min(a, b)) (a, b positive "
    "polynomials of the elements where the definition is real): the difference of two logs keeps "
    "their absolute errors, all of the result where a is near b ((log p - log y)² at p = 6.730530e-18, "
    "y = 6.730538e-18: logs of -39.5, a difference of 1.2e-6 with 2e5 of its ulps lost).",
    lambda expr: _top_down(expr, _log_difference),
)


def _within_four(a: sp.Basic, b: sp.Basic) -> sp.Basic:
    """1/4 < a/b < 4, written without the quotient: where a gap's Expm1mx(log(a/b)) is taken."""
    return sp.And(sp.StrictGreaterThan(4 * a, b), sp.StrictLessThan(a, 4 * b))


def _log_ratio_gap(e: sp.Basic) -> sp.Basic | None:
    """``k·(r - 1) - k·log r`` in a sum (r = a/b, a and b polynomials of the elements; the log
    written as one or several logs, k a coefficient common to them up to rational factors) ->
    ``Piecewise((k·Expm1mx(LogRatio(a, b)), 1/4 < a/b < 4), (the same terms, True))``, with
    ``(k·r·(1 - 1/r + log(1/r)/r), a/b > 4)`` between where b can be 0 and k not."""
    if not isinstance(e, sp.Add):
        return None
    logs = [(t, c, a) for t, c, a in _log_terms(e, _has_elems) if not c.has(sp.log)]
    if not logs:
        return None
    split = _divergence_gaps(e, logs)
    if split is not None:
        return split
    plain = set(sp.Add.make_args(sp.expand(e - sp.Add(*[t for t, _, _ in logs]))))
    for _, c0, _ in logs:
        for k in (c0, -c0):
            qs = [sp.cancel(c / k) for _, c, _ in logs]
            if not all(q.is_Rational and q != 0 for q in qs):
                continue
            r = sp.together(sp.Mul(*[f ** (-q) for (_, _, f), q in zip(logs, qs)]))
            a, b = sp.fraction(r)
            if not all(_has_elems(x) or x.is_positive for x in (a, b)) or not all(x.is_polynomial() for x in (a, b)):
                continue
            drop = sp.expand(sp.cancel(k * (r - 1)))
            if not set(sp.Add.make_args(drop)) <= plain:  # k·(r - 1) there, each term as it is
                continue
            gap = sp.Add(*[t for t, _, _ in logs]) + drop
            pieces = [(k * Expm1mx(_log_ratio(a, b)), _within_four(a, b)), (gap, True)]
            if not sp.cancel(k / b).is_polynomial(*element_symbols(b)):
                # r > 4 as k·r·(1 - s + s·log s), s = 1/r: where b is 0 and k is not (Itakura–Saito
                # at p = 0) the terms as written are inf - inf; where k vanishes with b (the
                # generalised KL's label y), they are the limit already (0·log 0 guarded)
                far = sp.cancel(k * a / b) * (1 - b / a + XMul(b / a, _log_ratio(b, a)))
                pieces.insert(1, (far, sp.StrictGreaterThan(a, 4 * b)))
            return sp.expand(e - gap) + sp.Piecewise(*pieces)
    return None


def _divergence_gaps(e: sp.Add, logs: list) -> sp.Basic | None:
    """``Σ_i w_i·log(w_i/v_i)`` (two or more terms, every log of ``e`` one of them) with
    ``Σ w_i = Σ v_i`` identically (a Bernoulli KL's y, 1 - y against p, 1 - p) -> the sum of the
    non-negative gaps ``w_i·log(w_i/v_i) - w_i + v_i`` (the zero ``Σ v_i - w_i`` added), each as
    :func:`_log_ratio_gap` writes it: the terms cancel to (p - y)²/(2p(1 - p)) near y = p, where
    a sum of gaps has nothing to cancel."""
    if len(logs) < 2:
        return None
    pairs = []
    for _, c, f in logs:
        w, v = sp.fraction(sp.together(f))
        if sp.expand(c + w) == 0:  # (1 - y)/(1 - p) comes out (y - 1)/(p - 1)
            w, v = -w, -v
        if sp.expand(c - w) != 0:
            return None
        pairs.append((w, v))
    if sp.expand(sp.Add(*[w - v for w, v in pairs]).xreplace(_WEIGHTS.get())) != 0:
        return None
    gaps = [_log_ratio_gap(sp.Add(w * sp.log(w / v), -w, v, evaluate=False)) for w, v in pairs]
    if any(not isinstance(g, sp.Piecewise) for g in gaps):
        return None
    return sp.expand(e - sp.Add(*[t for t, _, _ in logs])) + sp.Add(*gaps)


def _own_gap(e: sp.Basic) -> bool:
    """A branch :func:`_log_ratio_gap` made (its last piece holds the terms it matched)."""
    return isinstance(e, sp.Piecewise) and len(e.args) in (2, 3) and e.args[0].expr.has(Expm1mx) and e.args[0].expr.has(LogRatio)


LOG_RATIO_GAP = Rule(
    "log-ratio-gap",
    "k·(r - 1 - log r) = k·Expm1mx(log r) with r = a/b and log r as LogRatio(a, b) (the generalised KL "
    "y·log(y/p) - y + p, Poisson and gamma deviances, Itakura–Saito's y/p - log(y/p) - 1): the three "
    "terms cancel to about k·(r - 1)²/2 where a is near b, all digits lost at r = 1 + 1e-8; "
    "Expm1mx of an accurate log r keeps them. Taken where 1/4 < a/b < 4 (no overflow of e^log r); "
    "elsewhere the terms as written (which cancel by at most a factor 4.2 there), but above 4 where "
    "b can be 0 and k not (Itakura–Saito's p = 0: inf - inf): k·r·(1 - s + s·log s) with s = b/a "
    "(terms cancelling by at most a factor 4; s·log s zero-guarded).",
    # (not into the branches it made: their last piece is the sum it matched)
    lambda expr: _top_down_skipping(expr, _log_ratio_gap, _own_gap),
)


def _power_terms(e: sp.Add) -> list[tuple[sp.Basic, sp.Basic, dict]]:
    """The terms ``t = c·Π_i x_i^(k_i)`` of the sum ``e`` (c free of the elements, every x_i an
    element), as ``(t, c, {x_i: k_i})``."""
    out = []
    for t in e.args:
        c, rest = t.as_independent(Elem, as_Add=False)
        powers = rest.as_powers_dict() if rest != 1 else {}
        if powers and all(isinstance(b, Elem) for b in powers) and not c.has(Elem):
            out.append((t, c, dict(powers)))
    return out


def _power_gap(e: sp.Basic) -> sp.Basic | None:
    """``Σ_i c_i·u^(d - β_i)·v^(β_i)`` in a sum (two elements u, v; the terms homogeneous of one
    degree d, with Σ c_i = 0 and Σ c_i·β_i = 0: they vanish with their slope at v = u) ->
    ``Piecewise((u^d·Σ_i c_i·Expm1mx(β_i·LogRatio(v, u)), 1/4 < v/u < 4), (the same terms, True))``,
    u the label where one of the two is the prediction."""
    if not isinstance(e, sp.Add):
        return None
    terms = _power_terms(e)
    syms = sorted({b for _, _, pw in terms for b in pw}, key=str)
    if len(syms) != 2:
        return None
    x = _PREDICTION.get()
    u, v = (syms[::-1] if syms[0] == x else syms)
    by_degree: dict = {}
    for t, c, pw in terms:
        by_degree.setdefault(sp.expand(pw.get(u, sp.S.Zero) + pw.get(v, sp.S.Zero)), []).append((t, c, sp.sympify(pw.get(v, sp.S.Zero))))
    for d, group in by_degree.items():
        if len({sp.expand(b) for _, _, b in group}) < 2 or (d.is_Number and all(b.is_Number for _, _, b in group)):
            continue  # (whole powers: a polynomial, for the polynomial rules; real for bases of any sign)
        if sp.simplify(sp.Add(*[c for _, c, _ in group])) != 0 or sp.simplify(sp.Add(*[c * b for _, c, b in group])) != 0:
            continue
        gap = sp.Add(*[t for t, _, _ in group])
        r = _log_ratio(v, u)
        live = [(c, b) for _, c, b in group if b != 0]
        # β_i·L as one product (XMul: not distributed): (2 - q)·L written 2L - qL cancels where
        # q is near 2 (at L = 12, q = 1.9: 9 ulps of the exponent, 11 of its exponential)
        form = u**d * sp.Add(*[c * Expm1mx(b * r if b.is_Number else XMul(b, r)) for c, b in live])
        return sp.expand(e - gap) + sp.Piecewise((form, _gap_window(v, u, [t for t, _, _ in group], live)), (gap, True))
    return None


def _gap_window(v: sp.Basic, u: sp.Basic, terms: list, live: list) -> sp.Basic:
    """Where :func:`_power_gap` takes its Expm1mx form rather than ``terms`` as written.

    Where every coefficient c_i of a β_i != 0 has one sign over the parameters' declared ranges
    (a Tweedie deviance with q in (1, 2), a β-divergence with β < 1), the form's terms cannot
    cancel, and it is taken wherever the terms as written cancel by more than a factor 2
    (Σ|t_i| > 2|Σ t_i|, decided on those terms: rounded, they are within a few ulps of the
    factor where it is near 2). Its own error grows as |x|·u with the rounding of x = β_i·L in
    e^x, but x is large only where one term dominates, and there the terms are taken (a
    Tweedie deviance with q = 1.9 at p = 4y: 17-20 ulps as written, the terms cancelling by a
    factor 16; with the form wherever every β_i·L < 3 instead, 4.3 ulps for a β-divergence at
    β = 0.3, p = y/60, where the terms as written, dominated by one, give 1.3).
    Elsewhere (signs mixed, or not proven) 1/4 < v/u < 4, where the terms as written cancel by a
    bounded factor and the form's linear parts do not."""
    box = {q: mpmath.iv.mpf([lo, hi]) for q, (lo, hi) in _PARAM_RANGES.get().items()}
    cs = [interval(c, box) for c, _ in live]
    bs = [interval(b, box) for _, b in live]
    known = all(x is not None and mpmath.isfinite(x.a) and mpmath.isfinite(x.b) for x in cs + bs)
    if not known or not (all(c.a > 0 for c in cs) or all(c.b < 0 for c in cs)) or not all(b.a > 0 or b.b < 0 for b in bs):
        return _within_four(v, u)
    # (u, v > 0 first: where one is 0 the terms are taken, the form's log ratio infinite)
    cancel = sp.StrictGreaterThan(sp.Add(*[sp.Abs(t) for t in terms]), 2 * sp.Abs(sp.Add(*terms)))
    return sp.And(sp.StrictGreaterThan(u, 0), sp.StrictGreaterThan(v, 0), cancel)


POWER_GAP = Rule(
    "power-gap",
    "Σ_i c_i·u^(d - β_i)·v^(β_i) with Σ c_i = 0 and Σ c_i·β_i = 0 (a sum of powers homogeneous in u "
    "and v that vanishes with its slope at v = u: a Tweedie deviance 2(y^(2-q)/((1-q)(2-q)) - "
    "y·p^(1-q)/(1-q) + p^(2-q)/(2-q)), a β-divergence) = u^d·Σ_i c_i·Expm1mx(β_i·log(v/u)): the terms "
    "cancel to about u^d·(v/u - 1)²·Σ c_i β_i²/2 where v is near u (a Tweedie deviance of -4.4e-16 "
    "for 7.1e-19 at p/y = 1 + 1e-9: negative); each Expm1mx(β·L) of an accurate L = LogRatio(v, u) "
    "keeps the digits (the first-order terms cancel in algebra). Taken where 1/4 < v/u < 4 (no "
    "overflow of e^(β·L)), and where the c_i of the β_i != 0 have one sign over the parameters' declared "
    "ranges (the form's terms cannot cancel) wherever the terms as written cancel by more than a factor 2 "
    "(a Tweedie deviance with q = 1.9 at p = 4y: 17-20 ulps as written, a factor 16); elsewhere the terms "
    "as written, which cancel by a bounded factor there.",
    lambda expr: _top_down_skipping(expr, _power_gap, _own_gap),
)


#: The magnitude-range rule's thresholds and shift (powers of two): rows whose largest element is
#: past 2^500 (or below 2^-500) are computed scaled by 2^-600 (2^600), exactly.
_RANGE_EDGE, _RANGE_SHIFT = 500, 600


def _magnitude_sum(b: sp.Basic) -> bool:
    """A sum of two or more terms, each non-negative by its form (|u|, u^(2k)) and holding an
    element: it overflows where each term is finite, and nothing in it cancels."""
    def nonneg(a):
        c, rest = a.as_independent(Elem, as_Add=False)
        a = rest if c.is_positive else a
        return isinstance(a, sp.Abs) or (isinstance(a, sp.Pow) and a.exp.is_even)
    return isinstance(b, sp.Add) and len(b.args) >= 2 and all(_has_elems(a) and nonneg(a) for a in b.args)


def _homogeneous_degree(e: sp.Basic, elems: Sequence[Elem]) -> int | None:
    """k with e(λx) = λ^k·e(x) for λ > 0 (every element scaled), or None."""
    lam = sp.Dummy("lam", positive=True)
    r = sp.cancel(sp.powsimp(e.xreplace({x: lam * x for x in elems}) / e))
    if r == 1:
        return 0
    if r == lam:
        return 1
    if isinstance(r, sp.Pow) and r.base == lam and r.exp.is_Integer:
        return int(r.exp)
    return None


def _magnitude_range(e: sp.Basic) -> sp.Basic | None:
    """An element-level expression homogeneous of degree k in its elements, divided by a sum of
    magnitudes (:func:`_magnitude_sum`) -> ``Piecewise((e(x·2^-600)·2^(600k), max|x| > 2^500),
    (e(x·2^600)·2^(-600k), max|x| < 2^-500), (e, True))``, the scaled inputs as ``Scaled``."""
    if not isinstance(e, (sp.Mul, sp.Pow)) or e.has(RowSum, RowMax, Scaled):
        return None
    if not any(isinstance(f, sp.Pow) and f.exp.is_negative and _magnitude_sum(f.base) for f in sp.Mul.make_args(e)):
        return None
    elems = sorted(element_symbols(e), key=str)
    k = _homogeneous_degree(e, elems) if elems else None
    if k is None:
        return None
    big = sp.Max(*[sp.Abs(x) for x in elems]) if len(elems) > 1 else sp.Abs(elems[0])
    s = sp.Integer(2) ** _RANGE_SHIFT
    # the scale put back last, as one factor (first, SymPy's coefficient order multiplied a 2^601
    # into 1/tmp before the label's 0: inf·0 = NaN)
    down, up = (e.xreplace({x: Scaled(x, f) for x in elems}) for f in (s, 1 / s))
    if k:
        down, up = Scaled(down, s**-k), Scaled(up, s**k)
    edge = sp.Integer(2) ** _RANGE_EDGE
    return sp.Piecewise((down, sp.StrictGreaterThan(big, edge)), (up, sp.StrictLessThan(big, 1 / edge)), (e, True))


def _own_range(e: sp.Basic) -> bool:
    """A branch :func:`_magnitude_range` made."""
    if not (isinstance(e, sp.Piecewise) and len(e.args) == 3):
        return False
    c = e.args[0].cond
    return isinstance(c, sp.StrictGreaterThan) and c.rhs == sp.Integer(2) ** _RANGE_EDGE


MAGNITUDE_RANGE = Rule(
    "magnitude-range",
    "an expression homogeneous of degree k in its elements, divided by a sum of magnitudes "
    "(|p| + |y|: a symmetric MAPE 2|p - y|/(|y| + |p|)): the sum overflows where every element is "
    "finite, and its reciprocal is 0 (a SMAPE of 0 for 0.26 at y = 1e308, p = 1.7e308), its square "
    "past 1.3e154; computed on the elements times 2^-600 where the largest is past 2^500 (and times "
    "2^600 below 2^-500), the result scaled back by 2^(600k): exact, as every scaling is.",
    lambda expr: _top_down_skipping(expr, _magnitude_range, _own_range),
)


def _abs_sign(e: sp.Basic) -> sp.Basic | None:
    """A sum over one denominator whose numerator, with each |u| written u·sign(u), cancels terms
    in algebra -> that numerator, factored, over the denominator."""
    if not isinstance(e, sp.Add) or not e.has(sp.Abs) or not e.has(sp.sign):
        return None
    n, d = sp.fraction(sp.together(e))
    if not n.has(sp.Abs):
        return None
    n2 = sp.expand(n.replace(lambda a: isinstance(a, sp.Abs), lambda a: a.args[0] * sp.sign(a.args[0])))
    if len(sp.Add.make_args(n2)) >= len(sp.Add.make_args(sp.expand(n))):
        return None
    return sp.factor(n2) / d


ABS_SIGN = Rule(
    "abs-sign",
    "|u| = u·sign(u) in a gradient's numerator over one denominator, where that cancels terms in "
    "algebra: a symmetric MAPE's sign(p - y)(|p| + |y|) - |p - y|·sign(p) is "
    "y·(sign p + sign y)·sign(p - y), which rounds nothing; as written it cancelled where |p| >> |y| "
    "(310 ulps at κ = 3).",
    lambda expr: _top_down(expr, _abs_sign),
)


def _jumps(a: sp.Basic, b: sp.Basic, lhs: sp.Basic, rhs: sp.Basic, x: Elem) -> bool:
    """Whether the branches ``a`` and ``b`` differ where ``lhs = rhs`` (solved for the prediction
    ``x``): a gradient that jumps across the condition's boundary."""
    try:
        roots = sp.solve(sp.Eq(lhs, rhs), x)
    except (NotImplementedError, ValueError, TypeError):
        return False
    return any(sp.simplify((a - b).xreplace({x: r})) != 0 for r in roots if isinstance(r, sp.Expr))


def _kink_branch(e: sp.Basic) -> sp.Basic | None:
    """``Piecewise((A, lhs < rhs), (B, True))`` in a gradient (the prediction in the condition,
    A and B different on its boundary) -> ``Piecewise((A, Heaviside(rhs - lhs, 0) > 0), (B,
    True))`` (``<=``: Heaviside(·, 1)): the condition as a kink argument, whose side the decimal
    rescue decides exactly where its computed value lies within its rounding of 0."""
    x = _PREDICTION.get()
    if x is None or not isinstance(e, sp.Piecewise) or len(e.args) < 2:
        return None
    pieces, changed = [], False
    for i, (a, c) in enumerate(e.args):
        if i < len(e.args) - 1 and isinstance(c, (sp.StrictLessThan, sp.LessThan, sp.StrictGreaterThan, sp.GreaterThan)) and c.has(x):
            lhs, rhs = (c.lhs, c.rhs) if isinstance(c, (sp.StrictLessThan, sp.LessThan)) else (c.rhs, c.lhs)
            if _jumps(a, e.args[i + 1].expr, lhs, rhs, x):
                h0 = sp.S.Zero if isinstance(c, (sp.StrictLessThan, sp.StrictGreaterThan)) else sp.S.One
                c, changed = sp.StrictGreaterThan(sp.Heaviside(rhs - lhs, h0), 0), True
        pieces.append((a, c))
    return sp.Piecewise(*pieces) if changed else None


KINK_BRANCH = Rule(
    "kink-branch",
    "a gradient's branch condition lhs < rhs where the branches differ on its boundary (the wing loss "
    "w·log(1 + |e|/ε) for |e| < w, |e| - C beyond: its gradient jumps from w/(ε + w) to 1 at |e| = w) "
    "as the kink Heaviside(rhs - lhs): decided on the rounded |x - y| it took the far side at "
    "y = 1, x = 1e-300, w = 1 (-1/3 for -2/9); the decimal rescue decides the side exactly where "
    "the computed argument lies within its rounding of 0, as for a margin's kink.",
    lambda expr: _top_down(expr, _kink_branch),
)


def _max_minus_sum(e: sp.Basic) -> sp.Basic | None:
    """``RowMax(f) - RowSum(g)`` (in a sum, f and g over the same elements) -> ``MaxMinusSum(f, g)``."""
    if not isinstance(e, sp.Add):
        return None
    maxes = [a for a in e.args if isinstance(a, RowMax)]
    sums = [a for a in e.args if isinstance(-a, RowSum)]
    for m in maxes:
        for s in sums:
            g = (-s).args[0]
            if element_symbols(m.args[0]) & element_symbols(g):
                return e - m - s + MaxMinusSum(m.args[0], g)
    return None


MAX_MINUS_SUM = Rule(
    "max-minus-sum",
    "max_c f_c - Σ_c g_c = max_c (f_c - g_c - Σ_{c'≠c} g_c'): the maximising element's own "
    "f_c - g_c is formed before the rest is subtracted (a max-margin loss at a soft label 1/2: "
    "max (1 - y)p - Σ y p cancels to 0 in rounding where the margin is -3.9e12).",
    lambda expr: _top_down(expr, _max_minus_sum),
)


def _unscale(expr: sp.Basic) -> sp.Basic:
    return expr.replace(lambda e: isinstance(e, Scaled), lambda e: e.args[0] / e.args[1])


UNSCALE = Rule(
    "unscale",
    "x/‖x‖ written as a quotient again before the gradient rules combine the terms (the "
    "scale-by-norm rule forms the unit vectors again at the end).",
    _unscale,
)


def _norm_square_cancel(expr: sp.Basic) -> sp.Basic:
    """Over one denominator, with the row sums split at element j (``Σ v = v_j + Σ_{c≠j} v``,
    ``‖x‖² = x_j² + Σ_{c≠j} x_c²``): terms that cancel exactly (``-y_j‖p‖² + p_j(p_j y_j + R)``,
    the Dice gradient's ``y_j p_j - y_j(y_j + p_j + …)``) are gone before the numerator is computed.
    Applied only where something cancels; sums of exponentials are the softmax rules'."""
    if isinstance(expr, sp.Piecewise):  # each piece on its own (the Dice loss' empty row)
        return sp.Piecewise(*[(_norm_square_cancel(e), c) for e, c in expr.args])
    if not element_symbols(expr) or not (expr.has(Norm2) or expr.has(RestSum)) or expr.has(sp.exp) or expr.has(Sigmoid):
        return expr
    num, den = sp.fraction(sp.together(expr))
    norms = {b for b in num.atoms(Norm2) if isinstance(b.args[0], Elem)}
    split = num.replace(
        lambda e: isinstance(e, sp.Pow) and e.base in norms and e.exp.is_Integer and e.exp >= 2 and e.exp % 2 == 0,
        lambda e: (e.base.args[0] ** 2 + RestSum(e.base.args[0] ** 2)) ** (e.exp // 2),
    )
    # the terms as they would be computed (each expanded on its own) against the whole expanded:
    # fewer terms in the whole is an exact cancellation
    apart = sum(len(sp.Add.make_args(sp.expand(t))) for t in sp.Add.make_args(split))
    new = sp.expand(split)
    if len(sp.Add.make_args(new)) >= apart:
        return expr  # nothing cancelled: keep the terms as they were
    return new / den


NORM_SQUARE = Rule(
    "norm-square-split",
    "over one denominator, with Σ v = v_j + Σ_{c≠j} v and ‖x‖² = x_j² + Σ_{c≠j} x_c², the terms of "
    "element j that cancel exactly are gone before anything is computed (the cosine's gradient: "
    "y_j‖p‖² - p_j Σ y p = y_j Σ_{c≠j} p_c² - p_j Σ_{c≠j} y_c p_c; the Dice gradient: "
    "Σ y p - y_j(Σ y + Σ p) loses its y_j p_j), where computed they would cancel in rounding for a "
    "row dominated by element j.",
    _norm_square_cancel,
)


def _squares_ratio(e: sp.Basic) -> sp.Basic | None:
    """``SumSquares(a)·SumSquares(b)^-1`` in a product -> the quotient where both sums are far
    inside float64's range, ``Scaled(Norm2(a), Norm2(b))²`` elsewhere."""
    if not isinstance(e, sp.Mul):
        return None
    nums = [f for f in e.args if isinstance(f, SumSquares)]
    dens = [f for f in e.args if isinstance(f, sp.Pow) and isinstance(f.base, SumSquares) and f.exp == -1]
    if not nums or not dens:
        return None
    sa, sb = nums[0], dens[0].base
    rest = [f for f in e.args if f is not sa and f is not dens[0]]
    big, small = sp.Float(2.0**1000), sp.Float(2.0**-960)  # (thresholds: need not be exact)
    plain = sp.And(sa < big, sb < big, sb > small, sp.Or(sa > small, sp.Eq(sa, 0)))
    return sp.Mul(*rest) * sp.Piecewise((sa / sb, plain), (Scaled(Norm2(sa.args[0]), Norm2(sb.args[0])) ** 2, True))


SQUARES_RATIO = Rule(
    "squares-ratio",
    "Σa²/Σb² = (‖a‖/‖b‖)², the quotient of the scaled norms squared, where a sum is past 2^1000 or "
    "below 2^-960 (nonzero): both sums overflow past rows of 1.3e154 and underflow below 1.5e-154 "
    "where their ratio is an ordinary number (a normalised squared error Σ(p - y)²/Σy² at y = 1e200 "
    "came out 0 for 0.5); elsewhere the plain quotient, one rounding where the norms' form has four.",
    lambda expr: _top_down_skipping(expr, _squares_ratio, lambda e: isinstance(e, sp.Piecewise) and e.args[-1].expr.has(Scaled)),
)




NORM2 = Rule(
    "scaled-norm",
    "sqrt(Σ x²) = ‖x‖₂ (and its odd powers of 1/2), the scaled norm: the squares of a row of "
    "1e200s overflow (inf where the norm is 1.4e200) and those of 1e-200s underflow (0, and a "
    "gradient x/0); the runtime takes 2^(E/2)·sqrt(S) of the scaled sum 2^E·S.",
    lambda expr: _top_down(expr, _norm),
)


def _one_minus_ratio(e: sp.Basic, record: dict | None = None) -> sp.Basic | None:
    """``n + c·N/D`` (a number n, D a sum) -> ``(n·D + c·N)/D`` where that numerator, expanded,
    has fewer terms than D and N together (terms cancel in algebra). ``record``: each quotient
    written, mapped to the term ``c·N/D`` it stands for less n (its derivative, without the
    D'/D pair that the quotient's own would hold)."""
    n = _one_number(e)
    if n is None:
        return None
    for t in e.args:
        if t is n:
            continue
        num, den = sp.fraction(sp.together(t))
        if not isinstance(den, sp.Add) or not den.atoms(Elem, RowSum) or not num.atoms(Elem, RowSum):
            continue
        new = sp.expand(n * den + num, deep=False)  # (not inside the row sums: p(1 - y) stays whole)
        if len(sp.Add.make_args(new)) < len(den.args) + len(sp.Add.make_args(sp.expand(num, deep=False))):
            if record is not None:
                record[new / den] = t
            return e - n - t + new / den
    return None


def one_minus_ratio_recorded(record: dict) -> Rule:
    """``one-minus-ratio`` that notes each quotient it writes in ``record`` (see
    :func:`_one_minus_ratio`)."""
    return Rule(ONE_MINUS_RATIO.name, ONE_MINUS_RATIO.why, lambda expr: _top_down(expr, lambda e: _one_minus_ratio(e, record)))


ONE_MINUS_RATIO = Rule(
    "one-minus-ratio",
    "1 - N/D = (D - N)/D where terms of D and N cancel in algebra (the soft Dice loss "
    "1 - (2Σyp + s)/(Σy + Σp + s) = (Σy + Σp - 2Σyp)/(Σy + Σp + s)): at labels of 0 the "
    "quotient is s/(Σp + s), within 1e-30 of 1, and 1 - N/D was 0 for Σp/(Σp + s) = 1e-30.",
    lambda expr: _top_down(expr, _one_minus_ratio),
)


def value_rules() -> list[Rule]:
    """Rules applied to a loss value, in order, until nothing changes (``apply_rules(...,
    repeat=True)``).

    The shipped shapes' rules come first, after the sigmoid rule that turns σ written out into
    ``Sigmoid`` for them; the rules for the other hand-written shapes follow, so that none of them
    sees a shape that a shipped rule takes.
    """
    return [
        SIGMOID,
        TANH_SIGMOID,
        COSH_SUM,
        SIGMOID_POWER,
        LOG_SIGMOID,
        LOG1P,
        LOG_SOFTMAX,
        LOG_NORMALIZED,
        SUM_SQUARES,
        ONE_MINUS_SIGMOID,
        POW_SIGMOID,
        LOGIT_SIGMOID,
        LOG_SPLIT,
        LOG_RATIO_GAP,  # before xlogy, which takes y·log(y/p) into a zero-guarded product
        POWER_GAP,
        XLOGY,
        LOG_ADD_EXP,
        LOG1MEXP,
        LOG_SUM_EXP,
        LSE_WEIGHTS,
        LOG_SOFTMAX_DIFFERENCE,
        LSE_WEIGHTED,
        SOFTPLUS_WEIGHTED,
        ROWSUM_SOFTPLUS_WEIGHTED,
        SIGMOID_MINUS_WEIGHT,
        SHARE_MINUS_WEIGHT,
        ONE_MINUS_SHARE,
        HYPOT,
        SQUARE_SHARE,
        LOG1P_SQUARE,
        POW1P_SQUARE,
        ONE_MINUS_RATIO,  # before the powers: (1 - TP/D)^γ as ((D - TP)/D)^γ, not pow1p(-TP/D, γ)
        POW1P,
        POWM1,
        LOG_COSH,
        NORM2,
        SQUARES_RATIO,
        MAGNITUDE_RANGE,
        SCALE_NORM,
        MAX_MINUS_SUM,
        LOG1P_DIFFERENCE,
        EXPM1MX,
        EXPM1,
        LOG_EXPM1,
        LOG1P_SUM,
        ZERO_TIMES_EXP,
        LOG_DIFFERENCE,  # after log1p-sum: log(1 + p) - log(1 + y) is log1p-difference's
    ]


# --- gradient rules ---------------------------------------------------------------------------


def _shift_exponentials(expr: sp.Basic) -> sp.Basic:
    """``exp(u)`` -> ``exp(u - max u)`` for each element-level u (z, z/T), where that is an identity (the
    expression homogeneous of degree 0 in exp(z), as a softmax is; checked numerically, a
    shift that changes the value, as in ``tanh`` written with ``exp(z)`` and ``exp(-z)``, is
    not made)."""
    # every element-level exponent (z, z/T, -z, ...), not only a bare element: a softmax with
    # a temperature is homogeneous in exp(z/T) as the plain one is in exp(z)
    zs = sorted({e.args[0] for e in expr.atoms(sp.exp) if _has_elems(e.args[0]) and not e.args[0].has(RowMax, LogWeight)}, key=str)
    for z in zs:
        shifted = expr.xreplace({sp.exp(z): sp.exp(z - RowMax(z))})
        try:
            check_equivalent(expr, shifted)
        except RewriteError:
            continue
        expr = shifted
    return expr


SHIFT_EXP = Rule(
    "shift-exp",
    "exp(z_j)/Σ exp(z_c) = exp(z_j - max z)/Σ exp(z_c - max z): the shifted exponentials lie in "
    "(0, 1] and cannot overflow (the checked equivalence holds because the ratio is homogeneous).",
    _shift_exponentials,
)


def _shift_weighted_exponentials(expr: sp.Basic) -> sp.Basic:
    """``exp(u + log w)`` -> ``exp(u + log w - max(u + log w))`` where that is an identity (the
    softmax of a weighted log-sum-exp; checked numerically as in the shift-exp rule)."""
    us = sorted({e.args[0] for e in expr.atoms(sp.exp) if e.args[0].has(LogWeight) and not e.args[0].has(RowMax)}, key=str)
    for u in us:
        shifted = expr.xreplace({sp.exp(u): sp.exp(u - RowMax(u))})
        try:
            check_equivalent(expr, shifted)
        except RewriteError:
            continue
        expr = shifted
    return expr


SHIFT_EXP_WEIGHTED = Rule(
    "shift-exp-weighted",
    "e^{u_j + log w_j}/Σ e^{u_c + log w_c} = the same shifted by m = max(u + log w), the largest term "
    "with a non-zero weight (the gradient of log Σ w·e^u): the shifted terms lie in [0, 1] and "
    "cannot overflow, and the largest is 1, so the sum cannot underflow to 0 (0/0).",
    _shift_weighted_exponentials,
)


def _split_rowsums(expr: sp.Basic) -> sp.Basic:
    if not element_symbols(expr):
        return expr
    # a step, a sign or a condition decides on the forward value: it keeps the value's own row
    # sums (split, it would round otherwise and put a kink on the other side of the value's)
    held = {a: sp.Dummy() for a in expr.atoms(sp.Heaviside, sp.sign, sp.core.relational.Relational)}
    return _split_outer(expr.xreplace(held)).xreplace({d: a for a, d in held.items()})


def _split_outer(e: sp.Basic) -> sp.Basic:
    """Each outermost RowSum split; a row sum inside another's summand (Σ_c t_c f(p_c/Σp)) is
    left whole: split there, it would be an element's rest inside the rest over the others."""
    if isinstance(e, RowSum):  # element j's own term is outermost now: its row sums split too
        return _split_outer(e.args[0]) + RestSum(e.args[0])
    if not e.args or not e.has(RowSum) or isinstance(e, _ROW_OPERATORS):
        return e  # (a row operator's argument is the whole row: its element j is no one's)
    return e.func(*[_split_outer(a) for a in e.args])


#: Functions whose argument is a row, read element by element (a row sum inside is a constant of
#: the row there, not of element j's own term).
_ROW_OPERATORS = (RowMax, RestSum, SumSquares, Norm2, MaxMinusSum, LogSumExp, NegLogSoftmax, NegLogNormalized,
                  CrossRest, SoftmaxRest, NormalizedRest)


SPLIT_ROWSUM = Rule(
    "split-rowsum",
    "Σ_c v_c = v_j + Σ_{c≠j} v_c: written this way, a difference such as σ_j·Σt - t_j or "
    "Σt/Σp - t_j/p_j becomes an expression in the other elements, which does not cancel when "
    "element j dominates (softmax_j - 1 = -Σ_{c≠j} e_c / Σ e_c).",
    _split_rowsums,
)


def combine_by_weights(expr: sp.Basic, weights: Sequence[Elem], guard: bool, together: bool = True) -> sp.Basic:
    """Collect ``expr`` on the label weights, bring each coefficient to one fraction.

    ``A + Σ_w w·B_w`` with each ``B_w`` put over a common denominator (``together``), so that
    terms such as ``e/(e+r) - 1`` become ``-r/(e+r)``. With ``guard``, ``w·B_w`` is written
    ``XMul(w, B_w)`` (0·∞ = 0: a zero label weight cancels an infinite log or 1/p).
    """
    ws = weight_symbols(expr, weights)
    if not ws:
        return expr
    if guard:  # a term already guarded on a weight is collected with the others, and guarded again
        expr = _unguarded(expr, ws)
    # each branch of a piecewise term on its own (log-ratio-gap's: its second branch is the sum
    # as written, y·log(y/p) - y + p, whose 0·log 0 needs the guard as much as the unbranched one)
    expr = expr.replace(
        lambda e: isinstance(e, sp.Piecewise) and bool(weight_symbols(e, weights)),
        lambda e: sp.Piecewise(*[(combine_by_weights(b, weights, guard, together), c) for b, c in e.args]),
    )
    # Only the weights as bare factors are collected; RestSum(t) stays inside the coefficients.
    collected = collect_monomials(distribute(expr), ws)
    if not guard and any(k != 1 and k not in ws for k in collected):
        # not linear in the weights (the focal loss' (1 - p_t)^γ): collecting on the powers of
        # the weights would spread one term over several that cancel; nothing to guard either
        return expr
    out = []
    for key, coeff in collected.items():
        if together:
            num, den = sp.fraction(sp.together(coeff))
            num = distribute(num)
            # powers of sums multiplied out too where that cancels terms ((e + r)²·a - e²·a - e·r·a:
            # the square of a row sum against its parts, which cancel in floats for a dominant e)
            full = sp.expand(num, power_exp=False, power_base=False, log=False, basic=False, multinomial=True)
            if len(sp.Add.make_args(full)) < len(sp.Add.make_args(num)):
                num = full
            one = num / den if den != 1 else num
            # over one denominator where that cancels something (the form is no longer than the
            # sum it came from); else the sum stays, each fraction with its own denominator:
            # (p·a·b + p^γ - a·b)/(1 - p) computes p·a·b - a·b, which cancels near p = 1, where
            # p^γ/(1 - p) - a·b does not
            if not _distinct_denominators(coeff) or _cancels(coeff, num, den):
                coeff = one
        if key == 1:
            out.append(coeff)
        elif key in ws or (key.free_symbols <= set(ws) and (key.is_Mul or key.is_Pow)):
            # a weight, or a monomial of them (t², t·u: a loss not linear in its labels, the
            # focal loss): zero where a weight is, so 0·∞ = 0 guards it the same way
            out.append(XMul(key, coeff) if guard else key * coeff)
        else:
            raise RewriteError(f"loss is not linear in the label weights: term {key}*({coeff})")
    return sp.Add(*out)


def _distinct_denominators(coeff: sp.Basic) -> bool:
    """Two or more denominators among the terms of ``coeff`` (a sum of fractions to combine)."""
    return len({sp.fraction(t)[1] for t in sp.Add.make_args(coeff)}) >= 2


def _cancels(coeff: sp.Basic, num: sp.Basic, den: sp.Basic) -> bool:
    """The numerator ``num`` of ``coeff`` over ``den`` has fewer terms than the terms of ``coeff``
    each brought over ``den`` and multiplied out: something cancelled (1/S - 1/p with
    S = p + r is -r/(pS))."""
    apart = sum(len(sp.Add.make_args(distribute(sp.cancel(t * den)))) for t in sp.Add.make_args(coeff))
    return len(sp.Add.make_args(num)) < apart


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
    num = distribute(num)
    for e in num.atoms(sp.exp):
        arg = e.args[0]
        zs = [s for s in arg.atoms(Elem)]
        if len(zs) != 1 or arg != zs[0] - RowMax(zs[0]):
            continue
        # the weight: a label, or a weight written out (a smoothed label (1 - ε)y + ε/C), free of z
        weights = (num.atoms(Elem) - {zs[0]}) | {r.args[0] for r in num.atoms(RestSum) if element_symbols(r.args[0]) and not r.args[0].has(zs[0])}
        for t in sorted(weights, key=sp.default_sort_key):
            cross = e * RestSum(t) - t * RestSum(e)
            if sp.expand(num - cross, power_exp=False) == 0:
                return CrossRest(t, zs[0]) / den
            # over one denominator a written-out weight's constants leave a row factor k (C)
            k = sp.cancel(sp.expand(num, power_exp=False) / sp.expand(cross, power_exp=False))
            if k != 0 and not element_symbols(k) and sp.expand(num - k * cross, power_exp=False) == 0:
                return k * CrossRest(t, zs[0]) / den
    return expr


CROSS_REST = Rule(
    "cross-rest",
    "e_j·Σ_{c≠j}t_c - t_j·Σ_{c≠j}e_c = Σ_{c≠j}(t_c e_j - t_j e_c): one primitive, so that the runtime "
    "can take pairs of equal label weights as t_j·e_c·expm1(z_j - z_c) (two labelled classes with "
    "close logits cancel in e_j - e_c).",
    _cross_rest,
)


def _split_sum_of(e: sp.Basic) -> sp.Basic | None:
    """``v`` when ``e`` is ``v + RestSum(v)`` (a row sum written at element j), else None."""
    if isinstance(e, sp.Add) and len(e.args) == 2:
        for a, b in (e.args, e.args[::-1]):
            if isinstance(b, RestSum) and b.args[0] == a:
                return a
    return None


def _one_fraction(expr: sp.Basic) -> sp.Basic:
    """``A/(v + R) + B`` -> ``(A + B·(v + R))/(v + R)``, the numerator collected on v and R = RestSum(v)."""
    if not isinstance(expr, sp.Add) or not element_symbols(expr):
        return expr
    dens = {f.base for t in expr.args for f in sp.Mul.make_args(t)
            if isinstance(f, sp.Pow) and f.exp == -1 and _split_sum_of(f.base) is not None}
    if len(dens) != 1:
        return expr
    D = dens.pop()
    inside = [t for t in expr.args if t.has(D)]
    outside = [t for t in expr.args if not t.has(D)]
    if not outside or not inside:
        return expr
    v = _split_sum_of(D)
    num = distribute(sp.Add(*inside) * D + sp.Add(*outside) * D)
    if num.has(D):  # a term had another power of the sum: not one fraction
        return expr
    return sp.collect(num, [v, RestSum(v)]) / D


ONE_FRACTION = Rule(
    "one-fraction",
    "e_j/(e_j + Σ_{c≠j} e_c) - y_j = (e_j·(1 - y_j) - y_j·Σ_{c≠j} e_c)/(e_j + Σ_{c≠j} e_c): the softmax minus a "
    "label cancels when the labelled class dominates (1/(1 + 1.9e-13) - 1 keeps 3 digits); over one "
    "denominator, e_j(1 - y_j) is exactly 0 for y_j = 1 and the other classes' sum is kept whole.",
    _one_fraction,
)


def _mixture(d: sp.Basic) -> list[tuple[sp.Basic, int, sp.Basic]] | None:
    """``d = Σ_i a_i σ(s_i u)`` (s_i = ±1, one u, a_i free of σ): [(a_i, s_i, u)], else None."""
    out, u = [], None
    for term in sp.Add.make_args(d):
        ks = _sigmoid_term(term)
        if ks is None:
            return None
        k, sig = ks
        arg = sig.args[0]
        if u is None:
            u = arg
        if arg == u:
            out.append((k, 1, u))
        elif sp.expand(arg + u) == 0:
            out.append((k, -1, u))
        else:
            return None
    return out if len(out) >= 2 or (out and out[0][1] == 1) else None


def _mixture_ratio(e: sp.Basic) -> sp.Basic | None:
    """``N/D`` with ``D = Σ a_i σ(s_i u)`` and every term of ``N`` a multiple of ``σ(u)σ(-u)``
    -> ``(N/(σ(u)σ(-u)))/Σ a_i (1 + e^{s_i u})``, each product zero-guarded."""
    if not isinstance(e, sp.Mul):
        return None
    for f in e.args:
        if not (isinstance(f, sp.Pow) and f.exp == -1 and isinstance(f.base, sp.Add)):
            continue
        mix = _mixture(f.base)
        if not mix:
            continue
        u = mix[0][2]
        both = Sigmoid(u) * Sigmoid(sp.expand(-u))
        for g in e.args:
            if g is f or not isinstance(g, sp.Add):
                continue
            q = [sp.cancel(term / both) for term in g.args]
            if any(x.has(Sigmoid(u)) and x.has(Sigmoid(sp.expand(-u))) for x in q) or any(sp.fraction(x)[1].has(Sigmoid) for x in q):
                continue
            den = sp.Add(*[XMul(a, 1 + sp.exp(s * u)) for a, s, _ in mix])
            rest = [h for h in e.args if h is not f and h is not g]
            return sp.Mul(*rest) * sp.Add(*q) / den
    return None


MIXTURE_RATIO = Rule(
    "sigmoid-mixture-ratio",
    "m'/m for m = Σ a_i σ(±u) (the focal loss' 1 - p_t = t σ(-x) + (1 - t) σ(x), whose derivative "
    "is a multiple of σ(u)σ(-u)): divided through by σ(u)σ(-u), the quotient is "
    "(m'/(σ(u)σ(-u)))/Σ a_i (1 + e^{±u}), finite where m underflows to 0 (hard labels past "
    "|x| = 745: m'/m was 0/0 there, and m^γ·m'/m with it).",
    lambda expr: _top_down(expr, _mixture_ratio),
)


def _power_rule(e: sp.Basic) -> sp.Basic | None:
    """``a·x**a/x`` (SymPy's derivative of x**a) -> ``XMul(a, x**(a - 1))``."""
    if not isinstance(e, sp.Mul):
        return None
    for f in e.args:
        if not (isinstance(f, sp.Pow) and _noninteger(f.exp) and not f.exp.is_Number):
            continue
        x, a = f.base, f.exp
        inv = sp.Pow(x, -1)
        if inv in e.args and a in e.args:
            rest = [g for g in e.args if g is not f and g != inv and g != a]
            return sp.Mul(*rest) * XMul(a, x ** (a - 1))
    return None


def _merge_powers(e: sp.Basic) -> sp.Basic | None:
    """Powers of one element (or of one magnitude |e|) in a product as one power: ``x^a·x^-1`` -> ``x^(a - 1)`` (SymPy
    keeps a symbolic exponent's power apart from x^-1), also where x^-1 is inside a power of a
    product, ``x^a·(c·x)^-1`` -> ``x^(a - 1)·c^-1``."""
    if not isinstance(e, sp.Mul):
        return None
    factors = list(e.args)
    for i, f in enumerate(factors):  # (c·x)^n with x's power beside it: its factors apart
        if isinstance(f, sp.Pow) and isinstance(f.base, sp.Mul) and f.exp.is_Integer:
            others = {g.base if isinstance(g, sp.Pow) else g for j, g in enumerate(factors) if j != i}
            if any(isinstance(g, Elem) and g in others for g in (h.base if isinstance(h, sp.Pow) else h for h in f.base.args)):
                factors[i:i + 1] = [g**f.exp for g in f.base.args]
                break
    exps: dict = {}
    for f in factors:
        b, x = (f.base, f.exp) if isinstance(f, sp.Pow) else (f, sp.S.One)
        # (an element, or the magnitude of an expression in them: |e|^q·sign(e)/|e|, the
        # derivative of |e|^q, is 0/0 at e = 0 where |e|^(q - 1)·sign(e) is 0)
        if isinstance(b, Elem) or (isinstance(b, sp.Abs) and _has_elems(b)):
            exps.setdefault(b, []).append(x)
    merged = {b: xs for b, xs in exps.items() if len(xs) > 1 and any(not x.is_Number for x in xs)}
    if not merged and len(factors) == len(e.args):
        return None
    rest = [f for f in factors if (f.base if isinstance(f, sp.Pow) else f) not in merged]
    return sp.Mul(*rest) * sp.Mul(*[b ** sp.Add(*xs) for b, xs in merged.items()])


def _x_power(t: sp.Basic, x: Elem) -> tuple[sp.Basic, sp.Basic, sp.Basic | None] | None:
    """``(k, a, c)`` with ``t = k·x^a`` (k free of x; c None), or ``t = k·XMul(c, x^a)`` (the
    power rule's zero-guarded γ·x^(γ - 1)), or None."""
    k, rest = t.as_independent(x, as_Add=False)
    c = None
    if isinstance(rest, XMul) and not rest.args[0].has(x):
        c, rest = rest.args
    if rest == x:
        return k, sp.S.One, c
    if isinstance(rest, sp.Pow) and rest.base == x:
        return k, rest.exp, c
    return None


def _common_power(e: sp.Basic) -> sp.Basic | None:
    """``Σ_i k_i·x^(a + n_i)`` in a sum (x the prediction, a symbolic exponent, n_i distinct
    integers; a term may be a label weight's ``XMul(w, k·x^(a + n))``) -> ``x^(a + N)·Σ_i
    k_i·x^(n_i - N)`` where a + N < 0 (N the largest n_i), the terms elsewhere."""
    x = _PREDICTION.get()
    if x is None or not isinstance(e, sp.Add):
        return None
    parts = []
    for t in e.args:
        w, body = (t.args if isinstance(t, XMul) else (None, t))
        got = _x_power(body, x)
        if got is not None and not got[1].is_Number and _noninteger(got[1]) and (w is None or not w.has(x)):
            parts.append((t, w, *got))
    for _, _, _, a, _ in parts:
        group = [p for p in parts if sp.expand(p[3] - a).is_Integer]
        offsets = {sp.expand(p[3] - a) for p in group}
        if len(group) < 2 or len(offsets) < 2:
            continue
        top = a + max(offsets)
        inner = [x ** sp.expand(b - top) for _, _, _, b, _ in group]
        inner = [k * (v if c is None else XMul(c, v)) for (_, _, k, _, c), v in zip(group, inner)]
        inner = [v if w is None else XMul(w, v) for (_, w, _, _, _), v in zip(group, inner)]
        terms = sp.Add(*[p[0] for p in group])
        return e - terms + sp.Piecewise((x**top * sp.Add(*inner), sp.StrictLessThan(top, 0)), (terms, True))
    return None


COMMON_POWER = Rule(
    "common-power",
    "Σ_i k_i·x^(a + n_i) = x^(a + N)·Σ_i k_i·x^(n_i - N) for powers of the prediction whose "
    "exponents differ by integers (N the largest): at x = 0 the terms are infinities of both signs "
    "where the exponents are negative (a Tweedie deviance's gradient 2p^(1-q) - 2y·p^(-q): inf - inf "
    "= NaN at p = 0, where the limit is -inf for y > 0 and +inf for y = 0), and x^(a + n) overflows "
    "for a tiny x where the sum does not; factored, the least singular power multiplies the rest "
    "(a label weight's term zero-guarded: 0·(1/0) = 0); at a huge x the lesser powers underflow "
    "(y·p^(-q) at y = 9e307, p = 1.8e308: half the gradient lost). Taken where every exponent is "
    "negative (a + N < 0, decided on the parameters at run time); where one is not, the terms are "
    "not inf - inf at x = 0, and factored they would be 0·inf at a tiny x (a β-divergence's "
    "gradient at p = 1e-300, β = 3: -0 for -1e-300).",
    # (not into its own branches: the last is the sum it matched)
    lambda expr: _top_down_skipping(expr, _common_power, lambda e: isinstance(e, (sp.Piecewise, TwoForms))),
)


MERGE_POWERS = Rule(
    "merge-powers",
    "x^a/(c·x) = x^(a - 1)/c for an element x: the two are one power (a Tweedie deviance's gradient "
    "2p^(2-q)/(C·p), whose p^(2-q)·(1/p) overflowed at p = 5e-324 where p^(1-q) is 3e64).",
    lambda expr: _top_down(expr, _merge_powers),
)


POWER_RULE = Rule(
    "power-rule",
    "γ·x^γ/x (SymPy's derivative of x^γ) = γ·x^(γ-1) with 0·x^(γ-1) = 0 (XMul): x^γ/x is inf/inf "
    "or 1/0 for a subnormal or zero x, and at γ = 0 the derivative of the constant x^0 is 0, "
    "not 0·inf = NaN; one power keeps the combined denominators of the label weights free of x.",
    lambda expr: _top_down(expr, _power_rule),
)


def _vanishing_log(f: sp.Basic) -> Elem | None:
    """The element x of ``log(x)`` or ``log1p(-x)`` (zero at x = 1, resp. x = 0), else None."""
    if isinstance(f, sp.log) and isinstance(f.args[0], Elem):
        return f.args[0]
    if isinstance(f, log1p) and isinstance(-f.args[0], Elem):
        return -f.args[0]
    return None


def _vanish_together(m: sp.Basic, g: sp.Basic) -> bool:
    """``g`` is 0 where ``m`` may be, and ``m`` then vanishes no faster than ``g``: ``g = log x``
    or ``log1p(-x)`` with ``m`` affine in x; or ``m`` a rest share and ``g`` the negative log of
    the same share (-log(1 - m) ~ m)."""
    x = _vanishing_log(g)
    if x is not None:
        mm = sp.expand(m)
        return m.has(x) and not mm.has(sp.log, sp.exp) and sp.degree(mm, x) == 1
    pairs = ((SoftmaxRest, NegLogSoftmax), (NormalizedRest, NegLogNormalized))
    return any(isinstance(m, a) and isinstance(g, b) and m.args == g.args for a, b in pairs)


def _log_guarded_power(e: sp.Basic) -> sp.Basic | None:
    """``XMul(a, m^(a-1))·L`` with ``L = log x`` or ``log1p(-x)`` and ``m`` affine in ``x`` ->
    ``XMul(a, XMul(L, m^(a-1)))``."""
    if not isinstance(e, sp.Mul):
        return None
    for f in e.args:
        if not (isinstance(f, XMul) and isinstance(f.args[1], sp.Pow)):
            continue
        a, (m, ex) = f.args[0], f.args[1].args
        if not (a.is_nonnegative and sp.expand(ex - (a - 1)) == 0):
            continue
        for g in e.args:
            if not _vanish_together(m, g):
                continue
            rest = [h for h in e.args if h is not f and h is not g]
            out = XMul(a, XMul(g, f.args[1]))
            if isinstance(g, NegLogNormalized) and g.args[0] in rest:
                # p·(-log(p/Σp)) -> 0 at p = 0, where the log is infinite and the share's rest is 1
                p = g.args[0]
                rest.remove(p)
                out = XMul(p, out)
            return sp.Mul(*rest) * out
    return None


LOG_GUARDED_POWER = Rule(
    "log-guarded-power",
    "a·m^(a-1)·L with L = log x or log1p(-x) and m affine in x, a >= 0 (the derivative of m^a "
    "times a log that vanishes where m may): written XMul(a, XMul(L, m^(a-1))), 0 where L is 0. "
    "Where m is not 0 that is the product; where m = 0 too, both vanish linearly and the "
    "product is O(|m|^a), whose limit is 0 (a = 0 is zeroed by the outer XMul): 0·inf = NaN "
    "for a < 1 otherwise (a hard label on a perfect prediction). A factor p of a -log(p/Σp) "
    "guards it the same way: p·log p -> 0 at p = 0.",
    lambda expr: _top_down(expr, _log_guarded_power),
)


def edge_poles(expr: sp.Basic, x: Elem) -> sp.Basic:
    """``G`` -> ``NanOr(G, (Σ_k D·G_k)/D)`` for a gradient ``G = Σ_k G_k`` on probabilities x
    holding a pole (a denominator that vanishes at x = 0 or 1) and a log of the same edge
    (log x, log1p(-x)); ``D`` is the product of those edges' bases (x, 1 - x), and in ``D·G_k``
    (cancelled) each log is ``XMul(x, log x)/x`` (resp. ``XMul(1 - x, log1p(-x))/(1 - x)``), so
    that D cancels the poles and takes the logs to 0."""
    if not element_symbols(expr):
        return expr
    edges = [(x, sp.log(x), 0), (1 - x, log1p(-x), 1)]
    dens = [f.base for f in expr.atoms(sp.Pow) if f.exp.is_negative and f.base.has(x)]
    live = [(b, L) for b, L, at in edges if expr.has(L) and any(d.subs(x, at) == 0 for d in dens)]
    if not live:
        return expr
    D = sp.Mul(*[b for b, _ in live])
    sub = {L: XMul(b, L) / b for b, L in live}

    def times_d(term: sp.Basic) -> sp.Basic:
        k, rest = term.as_coeff_Mul()
        if isinstance(rest, XMul):  # into the guarded factor, where D meets the pole
            return XMul(rest.args[0], times_d(k * rest.args[1]))
        # each term of the sum times D, cancelled (D multiplied out first would leave
        # x·f/(1 - x) - x²·f/(1 - x))
        return sp.Add(*[sp.cancel(t * D) for t in sp.Add.make_args(distribute(term.xreplace(sub)))])

    return NanOr(expr, sp.Add(*[times_d(t) for t in sp.Add.make_args(expr)]) / D)


def _sigmoid_difference(e: sp.Basic) -> sp.Basic | None:
    """``n + k·σ(u)`` with ``k = -2n`` (inside any sum) -> ``-n·tanh(u/2)``."""
    hit = _number_and_term(e, lambda f: isinstance(f, Sigmoid), ratio=-2)
    if hit is None:
        return None
    n, t, _, f = hit
    return e - n - t - n * sp.tanh(f.args[0] / 2)


SIGMOID_DIFFERENCE = Rule(
    "sigmoid-difference",
    "1 - 2σ(u) = σ(-u) - σ(u) = -tanh(u/2): near u = 0 the difference cancels (u = 1e-300 gives 0 "
    "for -5e-301), tanh keeps it.",
    lambda expr: _top_down(expr, _sigmoid_difference),
)


def _sigmoid_pair(e: sp.Basic) -> sp.Basic | None:
    """``a·σ(u) + c·σ(-u)`` (inside any sum) with ``a`` and ``c`` of opposite signs as written
    (their numeric coefficients) -> ``SigmoidDiff(a, -c, u)``, u without a leading minus sign;
    terms with a second σ(±u) factor are left alone."""
    if not isinstance(e, sp.Add):
        return None
    # (term index, u, coefficient, its sign as written) for each term a·σ(u) with one σ(±u)
    # factor; the sign is the term's numeric factor's (in a·σ(u) SymPy keeps -1·(1 - y)·σ(u) as
    # written, where the coefficient alone, -1·(1 - y), is distributed to y - 1)
    split = []
    for i, t in enumerate(e.args):
        sig = [f for f in sp.Mul.make_args(t) if isinstance(f, Sigmoid)]
        if len(sig) == 1:
            rest = sp.Mul(*[f for f in sp.Mul.make_args(t) if f is not sig[0]])
            if not rest.has(Sigmoid(sig[0].args[0]), Sigmoid(-sig[0].args[0])):
                split.append((i, sig[0].args[0], rest, t.as_coeff_Mul()[0] < 0))
    for n, (i, u, a, neg_a) in enumerate(split):
        for j, v, c, neg_c in split[n + 1 :]:
            if neg_a == neg_c or sp.expand(u + v) != 0:
                continue
            if u.could_extract_minus_sign():
                u, a, c = v, c, a
            rest = [t for k, t in enumerate(e.args) if k not in (i, j)]
            return sp.Add(*rest, SigmoidDiff(a, -c, u))
    return None


SIGMOID_PAIR = Rule(
    "sigmoid-pair",
    "a·σ(u) - b·σ(-u) = ((a - b) + (a + b)·tanh(u/2))/2 for |u| < 1, the two terms elsewhere "
    "(SigmoidDiff): the binary cross-entropy's gradient (1 - t)σ(x) - tσ(-x) at label smoothing 1 "
    "(t = 1/2 whatever the label) is tanh(x/2)/2, which the two sigmoids cancel to 0 at x = 1e-20 "
    "and keep 6 digits of at 1e-10.",
    lambda expr: _top_down(expr, _sigmoid_pair),
)


def _expm1_weight(e: sp.Basic) -> sp.Basic | None:
    """``K·e^u - K·w`` (w an element symbol, in any sum) -> ``K·w·expm1(v)``, ``v = u - log w``,
    where ``|v| < 1/2`` and ``|log w| < 2``, and ``K·(e^u - w)`` elsewhere (``Piecewise``:
    element by element)."""
    if not isinstance(e, sp.Add):
        return None
    for a in e.args:
        exps = [f for f in sp.Mul.make_args(a) if isinstance(f, sp.exp) and _has_elems(f)]
        if len(exps) != 1:
            continue
        f = exps[0]
        K = a / f
        for b in e.args:
            w = -b / K
            if b is not a and isinstance(w, Elem) and not K.has(w):
                lw = LogWeight(w)
                v = f.args[0] - lw
                near = sp.And(sp.Abs(v) < sp.Rational(1, 2), sp.Abs(lw) < 2)
                return e - a - b + K * sp.Piecewise((w * expm1(v), near), (f - w, True))
    return None


EXPM1_WEIGHT = Rule(
    "expm1-weight",
    "e^u - w = w·expm1(u - log w) for a label w > 0 (a Poisson likelihood's gradient in the log "
    "rate, e^x - y): where e^u is near w the difference cancels (e^(1e-300) - 1 = 0 for 1e-300), "
    "and so does (1 - w)·e^u + w·expm1(u) for a count w > 1 (0 for 4.7e25 at w = 1e30, u = 69.08); "
    "expm1 of u - log w keeps it. Both err by about 2^-53/|v| of the result, v = u - log w: the "
    "difference through the rounding of e^u, expm1 through that of log w, |log w|/2 times as "
    "much (and not at all at w = 1, where the difference loses everything below 2^-53). So "
    "expm1 is taken where |log w| < 2 and |v| < 1/2 (e^u/w in (0.61, 1.65)), the difference "
    "elsewhere (a count of 1e30: 150 ulps at κ = 1.5e6 where expm1 of v errs by 2.8e5), which "
    "cannot cancel by more than a factor three outside |v| < 1/2 (w <= 0: log w is -inf or NaN, "
    "the test fails).",
    lambda expr: _outside_pairs(expr, _expm1_weight),
)


def _log_of_nonnegative(a: sp.Basic, signed: bool = False) -> sp.Basic | None:
    """``log a`` for a product ``a`` of even powers of inputs, exponentials and positive symbols,
    written without forming ``a`` (log y² = 2·log|y|: y² overflows past 1e154, its log does
    not), each log a ``LogWeight`` (-inf at 0; SymPy would fold e^(u + log w) back into w·e^u);
    None where ``a`` may be negative (or is a number). ``signed``: inputs and their powers of
    either sign too, their log NaN where they are negative."""
    out = []
    for f in sp.Mul.make_args(a):
        if f.is_Number:
            return None
        if isinstance(f, sp.exp):
            out.append(f.args[0])
        elif isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp.is_even and f.base.is_real:
            out.append(f.exp * LogWeight(sp.Abs(f.base)))
        elif f.is_positive:
            out.append(LogWeight(f))
        elif signed and (isinstance(f, Elem) or (isinstance(f, sp.Pow) and f.exp.is_Integer and isinstance(f.base, Elem))):
            # an input of either sign (a Gamma likelihood's y·e^(-s)): log y is NaN for y < 0, where
            # the caller's test of it fails and 1 - a·e^u, which cannot cancel there, is taken
            k, b = (1, f) if isinstance(f, Elem) else (f.exp, f.base)
            out.append(k * LogWeight(b))
        else:
            return None
    return sp.Add(*out)


def _one_minus_scaled_exp(e: sp.Basic) -> sp.Basic | None:
    """``k - k·a·e^u`` (in any sum; ``a`` a product of inputs that is never negative, see
    :func:`_log_of_nonnegative`) -> ``-k·expm1(v)`` where ``|v| < 1/2``, ``v = u + log a``, and
    ``k - k·a·e^u`` elsewhere (``Piecewise``: element by element)."""
    n = _one_number(e)
    if n is None or e.has(TwoForms):
        return None
    for t in e.args:
        plain = _unguarded(t).replace(lambda f: isinstance(f, ScaledExp), lambda f: f.elementary())  # (a zero-guarded a·e^u too)
        exps = [f for f in sp.Mul.make_args(plain) if isinstance(f, sp.exp) and _has_elems(f)]
        if len(exps) != 1:
            continue
        c, rest = (plain / exps[0]).as_coeff_Mul()
        if c != -n or rest == 1 or not _has_elems(rest):
            continue
        log_a = _log_of_nonnegative(rest, signed=True)
        if log_a is None:
            continue
        v = exps[0].args[0] + log_a
        return e - n - t + sp.Piecewise((-n * expm1(v), sp.Abs(v) < sp.Rational(1, 2)), (n + t, True))
    return None


ONE_MINUS_SCALED_EXP = Rule(
    "one-minus-scaled-exp",
    "1 - a·e^u = -expm1(u + log a) for a >= 0 (the Gaussian likelihood's gradient in the log "
    "variance s, (1 - y²e^(-s))/2): where a·e^u is near 1 the difference cancels (y = 1, "
    "s = 1e-300: 1 - e^(-s) is 0 for 1e-300); expm1 of u + log a keeps it, to about "
    "|u| + |log a| roundings of the result's scale, within its condition number there (|u| + 2 "
    "over the result for a = y²). Elsewhere that argument is a rounding of large numbers (y = 1e150, s = 0: 690 "
    "ulps where the difference errs by 2): expm1 is taken only where |u + log a| < 1/2, that is "
    "a·e^u within (0.61, 1.65), where the difference would cancel by more than a factor three, "
    "the difference elsewhere (Piecewise, element by element).",
    lambda expr: _outside_pairs(expr, _one_minus_scaled_exp),
)


def _exact_numerator(e: sp.Expr) -> bool:
    """A sum of inputs (element symbols) times powers of two, at least two of them (``p - y``):
    for float32 inputs exact in float64, and one rounding of exact operands in float64."""
    def exact(t: sp.Expr) -> bool:
        c, rest = t.as_coeff_Mul()
        a = abs(c)
        return isinstance(rest, Elem) and a.is_Rational and (a.p & (a.p - 1)) == 0 and (a.q & (a.q - 1)) == 0

    return isinstance(e, sp.Add) and all(exact(t) for t in e.args)


def _common_numerator(expr: sp.Basic) -> sp.Basic:
    """``Σ_k a_k/d_k`` (an element-level rational sum, products zero-guarded or not) ->
    ``NanOr(N/D, Σ_k a_k/d_k)`` where over one denominator D the numerator N is a difference of
    inputs (``1/C - y/(p·C) = (p - y)/(p·C)``)."""
    if not isinstance(expr, sp.Add) or not element_symbols(expr) or expr.has(TwoForms):
        return expr
    plain = _unguarded(expr)
    if plain.atoms(sp.Function):  # a transcendental or a row reduction: not a rational sum
        return expr
    num, den = sp.fraction(sp.together(plain))
    num = sp.expand(num)
    # the denominator's factors free of the inputs (the row width C) stay outside, a product
    # taken last: (p - y)/(p·C) as ((p - y)/p)·(1/C), since p·C overflows, and (1/C)·(p - y)
    # underflows, where the quotient does not
    k = sp.Mul(*[f for f in sp.Mul.make_args(den) if not element_symbols(f)])
    den = sp.cancel(den / k)
    signs = {t.as_coeff_Mul()[0] > 0 for t in sp.Add.make_args(num)}
    if not _exact_numerator(num) or den == 1 or signs != {True, False}:  # a difference: what cancelled
        return expr
    second = sp.Add(*[_times(t, k) for t in sp.Add.make_args(expr)])
    return NanOr(num / den, second) / k


def _cancelling_terms(expr: sp.Basic) -> sp.Basic:
    """``Σ_k a_k/d_k`` (element-level, rational, two or more terms) -> ``N/D`` over one
    denominator, ``N`` factored, where expanded ``N`` has fewer terms than the terms' own
    numerators expanded: what cancels there cancels in algebra (the Geman–McClure gradient
    2e/(e² + c²) - 2e³/(e² + c²)² = 2e·c²/(e² + c²)²)."""
    if not isinstance(expr, sp.Add) or not element_symbols(expr) or expr.atoms(sp.Function):
        return expr
    num, den = sp.fraction(sp.together(expr))
    if den == 1 or not element_symbols(den):
        return expr
    apart = sum(len(sp.Add.make_args(sp.expand(sp.fraction(t)[0]))) for t in expr.args)
    whole = sp.expand(num)
    if whole == 0 or len(sp.Add.make_args(whole)) >= apart:
        return expr
    return sp.factor(whole) / den


CANCELLING_TERMS = Rule(
    "cancelling-terms",
    "a rational gradient over one denominator where its terms cancel in algebra (the Geman–McClure "
    "loss e²/(e² + c²): 2e/(e² + c²) - 2e³/(e² + c²)² is 2e·c²/(e² + c²)², whose two terms "
    "cancel for |e| far above c: 4.6e10 ulps at e = 1e5, c = 0.1); the numerator factored.",
    lambda expr: _outermost(expr, _cancelling_terms),
)


def _times(term: sp.Expr, k: sp.Expr) -> sp.Expr:
    """``k·term``, taken into the second argument of the term's zero-guarded product (if any),
    so that 0·(k·inf) stays 0."""
    guarded = [f for f in sp.Mul.make_args(term) if isinstance(f, XMul)]
    if len(guarded) != 1:
        return sp.cancel(k * term)
    (g,) = guarded
    return XMul(g.args[0], sp.cancel(k * (term / g) * g.args[1]))


def _at(e: sp.Expr, point: dict) -> sp.Expr:
    """``e`` at ``point``, a zero-guarded product with a zero first factor taken as 0."""
    return e.replace(lambda f: isinstance(f, XMul),
                     lambda f: sp.S.Zero if f.args[0].subs(point) == 0 else f.args[0] * f.args[1]).subs(point)


def second_form_exact(pair: NanOr) -> bool:
    """Whether the second form of ``pair`` is exact wherever it is taken at finite inputs, for a
    first form ``N/D`` with ``N`` a difference of inputs and ``D`` a product of inputs (what
    :data:`COMMON_NUMERATOR` writes): such a quotient is NaN at finite inputs only where a
    factor of ``D`` and ``N`` are both 0, and there the second form must be a binary number
    (``((p - y)/p, 1 - y/p)``: at p = y = 0 the zero-guarded 1 - y/p is 1). The pair then errs
    as its first form does (its magnitude: :func:`cesym.generate.exact.needs_magnitude`)."""
    num, den = sp.fraction(pair.args[0])
    second = pair.args[1]
    factors = sp.Mul.make_args(den)
    if not _exact_numerator(sp.expand(num)) or not all(
        isinstance(f, Elem) or (isinstance(f, sp.Pow) and isinstance(f.base, Elem) and f.exp.is_Integer) for f in factors
    ):
        return False
    for f in factors:
        s = f if isinstance(f, Elem) else f.base
        rest = sp.expand(num.subs(s, 0))
        others = sorted(element_symbols(rest), key=str)
        if len(others) > 1 or (rest != 0 and not others):
            return False  # 0/0 on a surface, or never 0/0 here: not read
        roots = sp.solve(rest, others[0]) if others else [None]
        if not roots:
            return False  # no 0/0 on the symbols' domain (a label declared positive): as above
        point = {s: 0, **({others[0]: roots[0]} if others else {})}
        v = _at(second, point)
        if element_symbols(v) or not v.is_Rational or v.q & (v.q - 1):
            return False
    return True


COMMON_NUMERATOR = Rule(
    "common-numerator",
    "a rational gradient whose terms cancel where the prediction meets the label (the Poisson "
    "loss' 1/C - y/(p·C), 0 at p = y) over one denominator, where its numerator is a difference "
    "of inputs: ((p - y)/p)/C is exact in its numerator (float32 inputs in float64), so the "
    "result errs by a few roundings of itself, exactly 0 at p = y, and is cheaper; the summed "
    "form is kept for the edge where the fraction is 0/0 or inf/inf (p = 0 under y = 0, p = inf: "
    "NanOr; where that form is exact wherever it is taken, the pair is its own magnitude: "
    "second_form_exact).",
    lambda expr: _outermost(expr, _common_numerator),
)


def _outermost(expr: sp.Basic, fn: Callable[[sp.Basic], sp.Basic], skip: type | tuple = ()) -> sp.Basic:
    """Each outermost subexpression that ``fn`` changes, changed (what it returns is not
    visited again: a NanOr keeps the form it replaces as its second argument); subexpressions
    of the types ``skip`` are left as they are, and not entered."""
    if isinstance(expr, skip):
        return expr
    new = fn(expr)
    if new is not expr or not expr.args:
        return new
    args = [_outermost(a, fn, skip) for a in expr.args]
    return expr if all(a is b for a, b in zip(args, expr.args)) else expr.func(*args)


def edge_poles_rule(x: Elem) -> Rule:
    """The edge-poles rule for a gradient with respect to the probability ``x``."""
    return Rule(
        "edge-poles",
        "c/x + d·log x at x = 0 (and c/(1 - x) + d·log1p(-x) at x = 1) is inf - inf in floats where "
        "the limit is c's infinity (the pole outgrows the log): the sum is also written over "
        "D = x(1 - x), (Σ D·term)/D, the poles cancelled and each log as XMul(x, log x)/x, 0 at "
        "the edge, and that form is taken where the first is NaN (NanOr).",
        lambda expr: edge_poles(expr, x),
    )


def _common_factor(expr: sp.Basic) -> sp.Basic:
    """``c·a + c·b -> c·(a + b)`` for the integer content c > 1 of a sum of element-level terms
    (SymPy distributes the 2 of d(x²)/dx = 2x over ``x = p - y``: ``2p - 2y``). Only sums of
    products of powers of the inputs and parameters (no function, no row reduction): the
    shapes of the other rules (a guarded split, a rest sum) are left as they are."""

    def take(e: sp.Basic) -> sp.Basic | None:
        if not isinstance(e, sp.Add) or not element_symbols(e) or e.atoms(sp.Function):
            return None
        c, rest = e.primitive()
        if not (c.is_Integer and c > 1):
            return None
        return sp.Mul(c, rest, evaluate=False)

    return _top_down(expr, take)


COMMON_FACTOR = Rule(
    "common-factor",
    "an integer factor common to a sum's terms taken out of it (2p - 2y = 2(p - y)): one "
    "operation per term fewer, p - y shared with the value, and no overflow of 2p where p - y "
    "is finite (|p| > 9e307); a power of two is the same number wherever 2p does not overflow.",
    _common_factor,
)


def _label_pole(f: sp.Basic, x: Elem) -> bool:
    """``f`` is a pole in ``x``: a negative power of a base holding ``x``."""
    return isinstance(f, sp.Pow) and f.exp.is_negative and f.base.has(x)


def _split_quotient(expr: sp.Basic, x: Elem) -> sp.Basic:
    """``N·P`` (N a sum holding ``x``, P poles in ``x``) where N and P's bases all vanish at
    the inputs' zero -> ``NanOr(N·P, Σ_k n_k·P)``, each term's factors free of ``x`` that hold a
    label zero-guarded against the pole (``XMul``): ``(√p - √y)/(2√p)`` ->
    ``NanOr(·, 1/2 - XMul(√y, p^(-1/2)/2))``. Algebraic terms only (no function, no reduction)."""

    def take(e: sp.Basic) -> sp.Basic | None:
        if not isinstance(e, sp.Mul) or e.atoms(sp.Function) or not e.has(x):
            return None
        sums = [f for f in e.args if isinstance(f, sp.Add) and f.has(x)]
        poles = [f for f in e.args if _label_pole(f, x)]
        if len(sums) != 1 or not poles:
            return None
        zero = {s: 0 for s in element_symbols(e)}
        if sums[0].subs(zero) != 0 or any(f.base.subs(zero) != 0 for f in poles):
            return None  # not 0/0 where the inputs are 0
        others = [f for f in e.args if f is not sums[0]]
        terms, guarded = [], False
        for t in sums[0].args:
            factors = sp.Mul.make_args(sp.Mul(t, *others))
            labels = [f for f in factors if element_symbols(f) and not f.has(x)]
            rest = [f for f in factors if f not in labels]
            if labels and any(_label_pole(f, x) for f in rest):
                terms.append(XMul(sp.Mul(*labels), sp.Mul(*rest)))
                guarded = True
            else:
                terms.append(sp.Mul(*factors))
        second = sp.Add(*terms)
        if not guarded or not _at(second, zero).is_finite:
            return None
        return NanOr(e, second)

    return _outside_pairs(expr, take)


def _outside_pairs(expr: sp.Basic, take: Callable[[sp.Basic], sp.Basic | None]) -> sp.Basic:
    """:func:`_outermost` with ``take`` (None: unchanged), outside pairs of forms (``TwoForms``:
    each form is already the one it stands for)."""

    def fn(e: sp.Basic) -> sp.Basic:
        new = take(e)
        return e if new is None else new

    return _outermost(expr, fn, TwoForms)


def split_quotient_rule(x: Elem) -> Rule:
    """The split-quotient rule for a gradient with respect to ``x``."""
    return Rule(
        "split-quotient",
        "a quotient whose numerator and denominator vanish together where the inputs are 0 (the "
        "squared Hellinger distance's (√p - √y)/(2√p) at p = y = 0: 0/0 = NaN in floats, where the "
        "limit in p is 1/2) is also written term by term, each label factor zero-guarded against "
        "the pole (1/2 - XMul(√y, p^(-1/2))/2: a label of 0 times the pole is 0, as its term is 0 "
        "at every p > 0), and that form is taken where the first is NaN (NanOr).",
        lambda expr: _split_quotient(expr, x),
    )


def _linear_positive(e: sp.Expr) -> dict | None:
    """The coefficients of ``e`` as a form Σ a_i·s_i in element symbols s_i with positive
    rational a_i and no constant term, else None."""
    coeffs: dict = {}
    for t in sp.Add.make_args(sp.expand(e)):
        a, s = t.as_coeff_Mul()
        if not (isinstance(s, Elem) and a.is_Rational and a > 0) or s in coeffs:
            return None
        coeffs[s] = a
    return coeffs


def _log_ratio_at_zero(expr: sp.Basic, x: Elem) -> sp.Basic:
    """``LogRatio(w, v)`` for w, v positive linear forms in the inputs, both holding ``x`` ->
    ``NanOr(LogRatio(w, v), log(a/b) + log1p(W/(a·x)) - log1p(V/(b·x)))``, a and b the
    coefficients of x in w and v, W = w - a·x and V = v - b·x over x zero-guarded (XMul)."""

    def take(e: sp.Basic) -> sp.Basic | None:
        if not isinstance(e, LogRatio):
            return None
        w, v = (_linear_positive(a) for a in e.args)
        if w is None or v is None or x not in w or x not in v:
            return None

        def rest(form: dict) -> sp.Expr:  # (w - a·x)/(a·x), each input's share zero-guarded
            return sp.Add(*[c / form[x] * XMul(s, 1 / x) for s, c in form.items() if s != x])

        # log(w/v) = log(a/b) + log1p((w - a·x)/(a·x)) - log1p((v - b·x)/(b·x)): log(a/b) where
        # the inputs beside x are 0, whatever x
        return NanOr(e, sp.log(w[x] / v[x]) + log1p(rest(w)) - log1p(rest(v)))

    return _outside_pairs(expr, take)


def log_ratio_at_zero_rule(x: Elem) -> Rule:
    """The log-ratio-at-zero rule for a gradient with respect to ``x`` (inputs >= 0)."""
    return Rule(
        "log-ratio-at-zero",
        "log(w/v) for w, v positive linear forms in non-negative inputs, both holding x "
        "(Jensen–Shannon's gradient log(2p/(p + y))/2), is 0/0 = NaN only where w = v = 0, every "
        "input in them 0, and inf/inf only at x = inf: along x, with the labels fixed (at 0, or "
        "finite), the ratio tends to the quotient a/b of x's coefficients there, log 2 at "
        "p = y = 0; that form is taken where the first is NaN (NanOr).",
        lambda expr: _log_ratio_at_zero(expr, x),
    )


def _scaled_inside(e: sp.Basic, k: sp.Basic) -> sp.Basic:
    """``k·e`` with ``k`` taken into the factor of each ``ScaledExp`` term (``ScaledExp(u, k·a)``)
    and every other term multiplied by it, through sums, branches and pairs of forms."""
    if isinstance(e, sp.Add):
        return sp.Add(*[_scaled_inside(t, k) for t in e.args])
    if isinstance(e, TwoForms):
        return type(e)(*[_scaled_inside(a, k) for a in e.args])
    if isinstance(e, sp.Piecewise):
        return sp.Piecewise(*[(_scaled_inside(x, k), c) for x, c in e.args])
    c, rest = e.as_coeff_Mul()
    if isinstance(rest, ScaledExp):
        return ScaledExp(rest.args[0], c * k * rest.args[1])
    return k * e


def _scale_inside(expr: sp.Basic) -> sp.Basic:
    """``E/C`` with ``E`` holding a ``ScaledExp`` -> ``InfOr(E/C, E')``, E' = E with 1/C taken into
    each ``ScaledExp``'s factor."""
    if not isinstance(expr, sp.Mul) or expr.has(InfOr):
        return expr
    k = sp.Mul(*[f for f in expr.args if f.has(C_SYM) and not element_symbols(f)])
    rest = expr / k
    if k == 1 or not rest.has(ScaledExp) or not element_symbols(rest):
        return expr
    return InfOr(expr, _scaled_inside(rest, k))


SCALE_INSIDE = Rule(
    "scale-inside",
    "a mean's 1/C is taken last (C·p overflows where p/C does not, 1/C·x underflows where x/C does "
    "not), so a term a·e^u within a factor C of the largest float overflows before it: where the "
    "gradient is ±inf, 1/C is taken into a (ScaledExp(u, a/C), InfOr): the Gaussian likelihood's "
    "(1 - y²e^(-s))/(2C) at y = 72.3, s = -703.3, C = 5 is -1.42e308, not -inf.",
    _scale_inside,
)


def _same_branches(e: sp.Basic) -> sp.Basic | None:
    """``Piecewise((A, c), ..., (B, True))`` with every branch one function (at random rows, to 50
    digits) -> ``B``."""
    if not isinstance(e, sp.Piecewise) or len(e.args) < 2 or e.args[-1].cond != sp.true:
        return None
    try:
        for piece in e.args[:-1]:
            check_equivalent(piece.expr, e.args[-1].expr)
    except (RewriteError, ValueError, TypeError, ZeroDivisionError):
        return None
    return e.args[-1].expr


SAME_BRANCHES = Rule(
    "same-branches",
    "a branch between two forms of one number (log-ratio-gap's Expm1mx(log r) beside r - 1 - log r) "
    "differentiates to two forms of one derivative: the general one is kept (k·(1/b - 1/a) for the "
    "gap, which the rules after write over one denominator, (p - y)/p), not both computed and one "
    "picked per element.",
    lambda expr: _top_down(expr, _same_branches),
)


def gradient_rules(weights: Sequence[Elem], guard: bool, x: Elem | None = None) -> list[Rule]:
    """Rules applied to a derived gradient with respect to ``x``, in order (the edge poles of
    a loss on probabilities with ``guard``)."""
    edge = [edge_poles_rule(x)] if guard and x is not None else []
    return [
        SAME_BRANCHES, ONE_MINUS_SHARE, NEG_LOG_SHARE, UNSCALE, SHIFT_EXP, SHIFT_EXP_WEIGHTED, SPLIT_ROWSUM, NORM_SQUARE, MIXTURE_RATIO, POWER_RULE, MERGE_POWERS, guard_rule(weights, guard), COMMON_POWER, EXPM1,
        *edge, LOG_GUARDED_POWER, CROSS_REST, ONE_FRACTION, SIGMOID_DIFFERENCE, SIGMOID_PAIR, EXPM1_WEIGHT, ONE_MINUS_SCALED_EXP, SCALE_NORM, COMMON_FACTOR,
        COMMON_NUMERATOR, CANCELLING_TERMS, ABS_SIGN, *([split_quotient_rule(x)] if x is not None else []),
        *([log_ratio_at_zero_rule(x)] if guard and x is not None else []), SCALE_INSIDE, MAGNITUDE_RANGE, KINK_BRANCH,
    ]
