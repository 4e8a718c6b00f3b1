"""Generate: print derived expressions as standalone NumPy kernels.

The code is printed by a subclass of SymPy's :class:`~sympy.printing.numpy.NumPyPrinter` after
common-subexpression elimination (:func:`sympy.cse`). Each primitive prints as a call into
:mod:`cesym.kernels._runtime`, whose functions take rows along the last axis. One module is
written per derivation family, into ``cesym/kernels/_generated/``, with for each loss variant:
``<variant>_value``, ``<variant>_grad``, ``<variant>_value_and_grad`` (one pass, shared
subexpressions) and the naive counterparts (the unrewritten expression
in elementary functions).

Writing is atomic (a temporary file renamed over the old one) and skipped when the bytes are
unchanged, so ``cesym generate`` on an unchanged tree touches nothing.
"""

from __future__ import annotations

import ast
import textwrap
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from ..define.loss import N, DerivationError, Loss, default_public, load_families, DERIVATIONS_DIR
from ..derive.gradients import Derived, as_record, derive
from ..derive.label_domain import label_domain, moved_inside

from .bounds import bound_body
from .exact import eft_parts, exact_parts, magnitude, needs_magnitude, rescue_parts
from .ranges import input_box, unit_label_box
from .lowerings import LABEL_INDEX, ROW_LEVEL, OffMaxSum, WeightedRowSum, lower
from ..define.primitives import (
    C,
    Elem,
    Guarded,
    MaxMinusSum,
    NanOr,
    Norm2,
    TwoForms,
    RowMax,
    RowSum,
    XMul,
    element_symbols,
    outer_reductions,
    to_elementary,
)

__all__ = ["KernelPrinter", "render_family", "generate", "GENERATED_DIR"]

GENERATED_DIR = Path(__file__).resolve().parents[1] / "kernels" / "_generated"




class KernelPrinter(NumPyPrinter):
    """NumPy printer that knows the row reductions and stable primitives."""

    def __init__(self, settings=None):
        super().__init__(dict(settings or {}, fully_qualified_modules=True, allow_unknown_functions=False))
        #: The temporaries with one value per row (set while a body is printed, see _print_body)
        self.row_level: set = set()

    def _is_row_level(self, e: sp.Basic) -> bool:
        return not (_element_level(e) - self.row_level)

    def _rt(self, name: str, *args) -> str:
        return "_rt.%s(%s)" % (name, ", ".join(self._print(a) for a in args))

    #: Primitives printed as a call into the runtime, by class name: on their first argument
    #: (the row or element expression) ...
    _RT_FIRST_ARG = {
        "RowSum": "row_sum",
        "RowMax": "row_max",
        "MaxShare": "max_share",
        "RestSum": "rest_sum",
        "Sigmoid": "sigmoid",
        "Softplus": "softplus",
        "Log1mexp": "log1mexp",
        "LogExpm1": "log_expm1",
        "LogWeight": "log_weight",
        "LogCosh": "logcosh",
        "Hypot1": "hypot1",
        "Hypot1m1": "hypot1m1",
        "HypotShare": "hypot_share",
        "Log1pSquare": "log1p_square",
        "Norm2": "norm2",
        "NegLogSoftmax": "neg_log_softmax",
        "NegLogNormalized": "neg_log_normalized",
        "SumSquares": "sum_squares",
    }
    #: ... and on all their arguments.
    _RT_ALL_ARGS = {
        "SoftmaxRest": "softmax_rest",
        "NormalizedRest": "normalized_rest",
        "Pow1p": "pow1p",
        "Expm1mx": "expm1mx",
        "Pow1pm1": "pow1pm1",
        "Log1pDiff": "log1p_diff",
        "LogRatio": "log_ratio",
        "MaxMinusSum": "max_minus_sum",
        "Powm1": "powm1",
        "PowShift": "pow_shift",
        "ScaledPow": "scaled_pow",
        "CrossRest": "cross_rest",
        "AtLabel": "at_label",
        "RestAtLabel": "rest_at_label",
        "OneHot": "one_hot",
        "OneHotRest": "one_hot_rest",
        "ScatterLabel": "scatter_label",
        "OneHotCrossRest": "one_hot_cross_rest",
        "ExpMin0": "exp_min0",
        "SigmoidDiffForm": "sigmoid_diff",
        "OffMaxSum": "off_max_sum",
        "SharedCrossRest": "cross_rest",
        "SharedShareCrossRest": "cross_rest",
        "WeightedNegLogNormalized": "weighted_neg_log_normalized",
        "SharedRestSum": "rest_sum",
        "TestedRestSum": "rest_sum_at",
        "Dominant": "dominant",
        "UnitDot": "unit_dot",
        "SharedNegLogNormalized": "neg_log_normalized",
        "XMul": "xmul",
    }

    def _print_Function(self, e):
        """The primitives of the tables above (each a ``sympy.Function``); others as SymPy prints them."""
        name = type(e).__name__
        if name in self._RT_FIRST_ARG:
            return self._rt(self._RT_FIRST_ARG[name], e.args[0])
        if name in self._RT_ALL_ARGS:
            return self._rt(self._RT_ALL_ARGS[name], *e.args)
        return super()._print_Function(e)

    def _print_Lambda(self, e):
        """A function of one variable (the derivative a runtime primitive evaluates at points of
        its own, :class:`~cesym.define.primitives.ShareCrossRest`), as a Python lambda."""
        (v,), body = e.args
        return "(lambda %s: %s)" % (self._print(v), self._print(body))

    def _print_WeightedRowSum(self, e):
        return self._rt("weighted_row_sum", *e.args)

    def _print_WeightedSumSquares(self, e):
        x, a = e.args
        return self._rt("sum_squares", x) if a == 1 else self._rt("sum_squares", x, a)

    def _print_Operand(self, e):
        return "(%s)" % self._print(e.args[0])

    def _print_LabelLogSoftmax(self, e):
        return "((%s - %s) + numpy.log1p(%s))" % tuple(self._print(a) for a in e.args)

    def _print_MaxPlusLog1p(self, e):
        return "(%s + numpy.log1p(%s))" % (self._print(e.args[0]), self._print(e.args[1]))

    def _print_LogNonzero(self, e):
        return self._rt("log_nonzero", e.args[0])

    def _print_LogRatioNonzero(self, e):
        return self._rt("log_ratio_nonzero", *e.args)

    def _print_LogRatioDiff(self, e):
        return self._rt("log_ratio", *e.args)

    def _print_LogRatioNonzeroDiff(self, e):
        return self._rt("log_ratio_nonzero", *e.args)

    def _print_ScaledExp(self, e):
        """``scaled_exp(u, f_1, ..., f_n)`` with the factors of ``a`` apart (an integer power as
        repeated factors): y² overflows past 1e154 where y²·e^u need not."""
        u, a = e.args
        factors = []
        for f in sp.Mul.make_args(a):
            if isinstance(f, sp.Pow) and f.exp.is_Integer and 1 < f.exp <= 4:
                factors += [f.base] * int(f.exp)
            else:
                factors.append(f)
        return self._rt("scaled_exp", u, *factors)

    def _print_NanOr(self, e):
        """``nan_or(a, lambda: b)``: the second form is evaluated only where the first is NaN."""
        return "_rt.nan_or(%s, lambda: %s)" % (self._print(e.args[0]), self._print(e.args[1]))

    def _print_InfOr(self, e):
        """``inf_or(a, lambda: b)``: the second form is evaluated only where the first is ±inf."""
        return "_rt.inf_or(%s, lambda: %s)" % (self._print(e.args[0]), self._print(e.args[1]))

    def _print_Guarded(self, e):
        """``guarded(lambda: (t_1, ..., t_n), lambda <inputs>: b, <inputs>)``: the sum of the terms
        where they do not cancel, the split form ``b`` on the other rows (its inputs gathered)."""
        a, b = e.args
        if not isinstance(a, sp.Add):
            raise DerivationError(f"Guarded: the first form must be a sum, got {sp.sstr(a)}")
        terms = ", ".join(self._print(t) for t in self._as_ordered_terms(a))
        inputs = ", ".join(str(x) for x in sorted(b.atoms(Elem), key=str))
        return "_rt.guarded(lambda: (%s,), lambda %s: %s, %s)" % (terms, inputs, self._print(b), inputs)

    def _print_And(self, e):
        # SymPy's numpy printer stacks the conditions into one array to reduce it: a copy of each
        return self._fold("numpy.logical_and", e.args)

    def _print_Piecewise(self, e):
        """Nested ``_rt.where`` (NaN where no condition holds): the same values as SymPy's
        ``numpy.select``, which builds lists of full-size condition and choice arrays, and
        without ``numpy.where``'s cost where a condition is the same for the whole block (a
        guard for a zero denominator: false on every ordinary row)."""
        out = self._print(sp.S.NaN)
        for piece in reversed(e.args):
            if piece.cond == sp.true:
                out = self._print(piece.expr)
            else:
                out = "_rt.where(%s, %s, %s)" % (self._print(piece.cond), self._print(piece.expr), out)
        return out

    def _print_Max(self, e):
        """``_rt.maximum``: ``numpy.maximum``'s numbers, and its SIMD loop beside a constant 0."""
        return self._fold("_rt.maximum", e.args)

    def _print_Scaled(self, e):
        """x/s by its row-level scale: s repeated along the row (``divide_rows``), the same numbers;
        the unit vector x/‖x‖ by ``unit_rows`` (the same numbers where ‖x‖ is a normal float, x
        scaled by a power of two first where it is not)."""
        x, s = e.args
        if ((isinstance(s, Norm2) and s.args[0] == x) or getattr(self, "norm_of", {}).get(s) == x) and not self._is_row_level(x):
            return self._rt("unit_rows", x, s)
        if self._is_row_level(s) and not self._is_row_level(x):
            return self._divide_rows(x, s)
        return "(%s/%s)" % tuple(self.parenthesize(a, sp.printing.precedence.PRECEDENCE["Mul"]) for a in e.args)

    def _norm_row(self, d):
        """x where ``d`` is ‖x‖ (``Norm2(x)``, or a CSE temporary of it), else None."""
        if isinstance(d, Norm2):
            return d.args[0]
        return getattr(self, "norm_of", {}).get(d)

    def _divide_rows(self, x, d, k: int = 1) -> str:
        """x/d/d… (k divisions) by a row-level d: ``divide_by_norm`` where d is a norm (the same
        numbers where ‖x‖ is a normal float; scaled operands where it is not: past 1.8e308 the
        quotient by inf was 0), else ``divide_rows``."""
        row = self._norm_row(d)
        if row is not None and not self._is_row_level(row):
            return self._rt("divide_by_norm", x, row, d, *((k,) if k != 1 else ()))
        return self._rt("divide_rows", x, d, *((k,) if k != 1 else ()))

    def _print_RestProductsAt(self, e):
        """``rest_products_at``, told the row whose norm its divisor is (its mantissa and exponent
        are known past float64's range, where the norm itself is inf)."""
        args = [self._print(a) for a in e.args]
        row = self._norm_row(e.args[2])
        if row is not None and not self._is_row_level(row):
            args.append("norm_of=%s" % self._print(row))
        return "_rt.rest_products_at(%s)" % ", ".join(args)

    def _print_Relu(self, e):
        return "_rt.maximum(%s, 0)" % self._print(e.args[0])

    def _print_Heaviside(self, e):
        h0 = e.args[1] if len(e.args) > 1 else sp.S.Half
        index = getattr(self, "kink_index", None)
        k = index.get(_expanded(e.args[0], self.defined)) if index else None
        if k is not None:
            return "_rt.kink(%d, %s, %s)" % (k, self._print(e.args[0]), self._print(sp.Float(h0)))
        return self._rt("heaviside", e.args[0], sp.Float(h0))

    def _print_Min(self, e):
        return self._fold("_rt.minimum", e.args)

    def _fold(self, fn: str, args) -> str:
        out = self._print(args[0])
        for a in args[1:]:
            out = f"{fn}({out}, {self._print(a)})"
        return out

    def _print_Elem(self, e):
        return e.name

    def _print_Mul(self, e):
        # A power-of-two coefficient 2^k (k >= 1) is printed last: (h*c)*2 is (2*h)*c bit for bit
        # (scaling by 2^k is exact) except where 2*h overflows and the product does not (the
        # penalty's gradient 2·h·λ/N at |h| > max/2).
        # Division by a power b^k (k >= 2) is printed as k divisions by b, each paired with one
        # factor of the numerator: b^k, and the numerator's product, overflow or underflow where
        # the quotient does not (x·s/‖x‖³ at ‖x‖ = 1e-300 is (x/‖x‖)·(s/‖x‖)/‖x‖); as many roundings.
        powers = [f for f in e.args if isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp <= -2]
        rest = [f for f in e.args if f not in powers]
        if len(powers) == 1 and len(rest) == 1 and not rest[0].is_number and self._is_row_level(powers[0].base) and not self._is_row_level(rest[0]):
            # (x/d)/d by a row-level d: d repeated along the row once, not broadcast per division
            # (a (rows, 1) operand over short rows costs NumPy a loop per row); the same divisions
            return self._divide_rows(rest[0], powers[0].base, int(-powers[0].exp))
        if not powers:
            c, factors = e.as_coeff_mul()
            recips = [f for f in factors if isinstance(f, sp.Pow) and f.exp == -1 and f.base in self.row_level]
            if len(factors) == 2 and len(recips) == 1 and not self._is_row_level(factors[0] if factors[1] in recips else factors[1]):
                # c·x/d by a row-level temporary d: (c·x)/d, as printed, with d repeated along the row
                (x,) = [f for f in factors if f not in recips]
                return self._divide_rows(c * x, recips[0].base)
            arrays = [f for f in factors if f in self.row_level]
            x = [f for f in factors if f not in arrays]
            if len(factors) == 2 and len(arrays) == 1 and abs(c) == 1 and isinstance(x[0], NanOr):
                n, d = sp.fraction(x[0].args[0])
                if d != 1:
                    # NanOr(n/d, b)·k: the quotient overflows where the product by k (|k| < 1: 1/C)
                    # does not; the runtime takes (n·k)/d there, the same numbers elsewhere. A
                    # power d = b^m as m divisions by b, (n/b^(m-1))/b: b^m overflows where the
                    # quotient does not (the gamma deviance's (p - y)/p² at p = 1e200: 0 for 1e-200)
                    if isinstance(d, sp.Pow) and d.exp.is_Integer and d.exp >= 2 and not self._is_row_level(d.base):
                        n, d = n * d.base ** (1 - d.exp), d.base
                    return "_rt.scale_quotient(%s, %s, %s, lambda: %s)" % (
                        self._print(n), self._print(d), self._print(c * arrays[0]), self._print(x[0].args[1]))
            if len(factors) == 2 and len(arrays) == 1 and abs(c) == 1 and not self._is_row_level(x[0]) and not (
                isinstance(x[0], sp.Pow) and x[0].exp.is_negative
            ):
                # x·k by a row-level temporary k (one value per row): k repeated along the row (a
                # (rows, 1) operand costs NumPy a loop per row); ±k first, as printed: the same
                # numbers (not k/x, one division, which a product by 1/x would round twice)
                return self._rt("scale_rows", x[0], c * arrays[0])
        if powers:
            pow_prec = sp.printing.precedence.PRECEDENCE["Pow"]
            divisors = [self.parenthesize(f.base, pow_prec) for f in powers for _ in range(int(-f.exp))]
            coeff = [f for f in e.args if f.is_number]
            factors = [f for f in e.args if f not in powers and not f.is_number]
            parts = [self._print(c) for c in coeff]
            for i, f in enumerate(factors):
                text = self.parenthesize(f, pow_prec)
                parts.append(f"({text}/{divisors[i]})" if i < len(divisors) else text)
            out = "*".join(parts) if parts else "1"
            return out + "".join("/" + d for d in divisors[len(factors):])
        c, rest = e.as_coeff_Mul()
        if c.is_Integer and c > 1 and int(c) & (int(c) - 1) == 0 and rest is not sp.S.One:
            return "%s*%s" % (self.parenthesize(rest, sp.printing.precedence.precedence(e)), self._print(c))
        return super()._print_Mul(e)

    def _print_Add(self, expr, order=None):
        """As SymPy prints a sum, except that a first term printed negative is swapped with a
        second that is not: ``b - a``, not ``-a + b``, which costs NumPy a negation pass over the
        block. The same number bit for bit: IEEE defines x - y as x + (-y), negation is exact
        ((-a)·c = -(a·c)), and the first two terms are the first addition either way."""
        prec = sp.printing.precedence.precedence(expr)
        moving = getattr(self, "moving", None)
        if moving:
            data = [t for t in expr.args if not (t.free_symbols & moving)]
            if len(data) >= 2 and len(data) < len(expr.args):
                # the terms of labels and constants alone summed first: 1 - y is exact at y = 1
                # (a·y - y + 1 rounds a tiny a·y into -1 + 1 = 0 there), and they are data, whose
                # own sum meets no rounding of the prediction's terms
                rest = sp.Add(*[t for t in expr.args if t not in data])
                return "%s + (%s)" % (self._print(rest) if rest.is_Add else self.parenthesize(rest, prec), self._print(sp.Add(*data)))
        parts = []
        for term in self._as_ordered_terms(expr, order=order):
            if isinstance(term, XMul) and term.args[1].could_extract_minus_sign():
                # a + XMul(w, -b) as a - XMul(w, b): w·(-b) = -(w·b) bit for bit, and the
                # subtraction takes the negation's pass (a zero-guarded 0·inf is +0 either way:
                # only a = -0 there gives -0 for +0)
                parts.append(("-", self._print(XMul(term.args[0], -term.args[1]))))
                continue
            t = self._print(term)
            sign = "+"
            if t.startswith("-") and not term.is_Add:
                sign, t = "-", t[1:]
            if sp.printing.precedence.precedence(term) < prec or term.is_Add:
                t = "(%s)" % t
            parts.append((sign, t))
        if len(parts) > 1 and parts[0][0] == "-" and parts[1][0] == "+":
            parts[0], parts[1] = parts[1], parts[0]
        out = " ".join("%s %s" % p for p in parts)
        return out[2:] if out.startswith("+ ") else "-" + out[2:]

    def _print_Pow(self, e, rational=False):
        if e.exp == -1:
            return "1/%s" % self.parenthesize(e.base, sp.printing.precedence.PRECEDENCE["Pow"])
        return super()._print_Pow(e, rational=rational)


def _element_level(e: sp.Basic) -> set:
    """The Elem symbols of ``e`` outside every reduction, the lowerings' row-level nodes
    (a weighted row sum, the off-max sum, ...) included."""
    if isinstance(e, Elem):
        return {e}
    if isinstance(e, (*ROW_LEVEL, WeightedRowSum)) or type(e).__name__ == "OffMaxSum" or not element_symbols(e):
        return set()
    return set().union(*(_element_level(a) for a in e.args))


@dataclass(frozen=True)
class _Fn:
    name: str
    expr: sp.Expr | tuple[sp.Expr, ...]
    doc: str
    element_level: bool
    returns: tuple[int, ...] | None = None  # which of a tuple ``expr`` the function returns
    naive: bool = False  # a naive form: printed as written (no lowering of its means)
    nones: tuple[int, ...] = ()  # positions in the returned tuple that are None
    checked: bool = False  # a ``_checked`` function: its outputs in order, no ``grad =`` line
    calls: str | None = None  # the body is a call of this function of the file, then ``nones`` Nones
    bound: list[str] | None = None  # a magnitudes' bound over a box (cesym.generate.bounds): its lines
    kinks: tuple[sp.Expr, ...] = ()  # the Heaviside arguments ``<variant>_kinks`` returns, in order


def _arguments(loss: Loss, dense: bool = False) -> list[str]:
    """The kernel's argument names; ``dense``: a class-index label by its one-hot row's name."""
    args = []
    if loss.label is not None:
        args.append(LABEL_INDEX.name if loss.label_index and not dense else loss.label.name)
    args.append(loss.prediction.name)
    args.extend(p.name for p in loss.params)
    if loss.value.has(N):  # the batch size: a block of rows does not know it
        args.append("N")
    return args


def _print_weight(definition: sp.Expr, params: Sequence[sp.Symbol], printer: KernelPrinter) -> str:
    """A label weight; with its parameters all 0 (no smoothing), the shorter form it reduces to
    (``t = y``, ``u = 1 - y``: the same numbers, one or two passes over the labels fewer)."""
    used = [p for p in params if definition.has(p)]
    full = printer.doprint(definition)
    if not used:
        return full
    plain = definition.subs({p: 0 for p in used})
    cond = " and ".join(f"{p.name} == 0" for p in used)
    return f"{printer.doprint(plain)} if {cond} else {full}"


def printed_form(
    loss: Loss, expr: sp.Expr | tuple[sp.Expr, ...], returns: tuple[int, ...] | None = None, index_label: bool = True,
    naive: bool = False,
) -> tuple[list[tuple[Elem, sp.Basic]], list[sp.Basic]]:
    """What :func:`_print_body` prints: the temporaries ``[(tmpK, expression), ...]`` in order and
    the returned expressions, after :func:`cesym.generate.lowerings.lower` and ``cse`` over all of ``expr``.

    ``index_label=False``: a class-index label stays a dense label (for evaluating the printed
    form on dense rows, :mod:`cesym.generate.edges`).
    """
    label = loss.label if loss.label_index and index_label else None
    exprs = [lower(e, label, means=not naive, defs=loss.weight_definitions) for e in (expr if isinstance(expr, tuple) else (expr,))]
    returns = tuple(range(len(exprs))) if returns is None else returns
    taken = {s.name for e in exprs for s in e.free_symbols} | {"C", "N"}
    # Temporaries are Elem symbols: RowSum must not mistake an element-level temporary for a
    # row-level constant and pull it out of the sum when cse rebuilds the expression.
    names = (Elem(f"cse{i}") for i in range(10**6) if f"cse{i}" not in taken)
    # a Lambda (a function a primitive evaluates at its own points) is one opaque argument: cse
    # must not pull its body's subexpressions out of it, where its variable is unbound
    lambdas = sorted(set().union(*(e.atoms(sp.Lambda) for e in exprs)), key=sp.default_sort_key)
    hidden = {lam: sp.Symbol(f"_lambda{i}") for i, lam in enumerate(lambdas)}
    shown = {v: k for k, v in hidden.items()}
    exprs = [e.xreplace(hidden) for e in exprs]
    # the second form of a NanOr (a domain edge's form) is computed only where the first is NaN
    # (printed as a lambda, KernelPrinter._print_NanOr): cse must not hoist its subexpressions
    # into temporaries that every call would compute
    hidden_b: dict = {}
    # the terms of a Guarded's first form are printed as written, reusing the temporaries of the
    # rest (its row sums): cse would otherwise pull factors out of them that it shares with the
    # value (2/Σ from -2y/Σ and 1 - 2A/Σ), rounding the value twice where it rounded once
    hidden_a: dict = {}

    def hide(e: sp.Basic) -> sp.Basic:  # top-down: a NanOr inside a second form stays in it
        if isinstance(e, TwoForms):
            b = hidden_b.setdefault(e.args[1], sp.Symbol(f"_fallback{len(hidden_b)}"))
            if isinstance(e, Guarded):
                return Guarded(hidden_a.setdefault(e.args[0], sp.Symbol(f"_unsplit{len(hidden_a)}")), b)
            return type(e)(hide(e.args[0]), b)
        return e.func(*[hide(a) for a in e.args]) if e.args and e.has(TwoForms) else e

    exprs = [hide(e) for e in exprs]
    shown_b = {v: k for k, v in hidden_b.items()}
    # ... but the row-level parts of those terms (their row sums) take part, to be shared
    extras = sorted({r for a in hidden_a for r in _row_level_parts(a)}, key=sp.default_sort_key)
    replacements, reduced = sp.cse(exprs + extras, symbols=names, order="canonical")
    reduced = reduced[: len(exprs)]
    shown_a = {}
    for a, sym_a in hidden_a.items():
        for sym, sub in replacements:  # in order: each refers to earlier ones, replaced in a before it
            a = a.xreplace({sub: sym})
        shown_a[sym_a] = a
    replacements = [(sym, sub.xreplace(shown_a).xreplace(shown_b).xreplace(shown)) for sym, sub in replacements]
    # cse shares b - a with a - b as -(b - a): the same number but at a = b, where -(+0) is -0
    # and a quotient by it the wrong infinity (1/(1 - p) at p = 1 was -inf in float32 focal
    # gradients, whose rounding test shares |p - 1| with the value); such a negation is the
    # difference as written
    defs = dict(replacements)
    replacements = [
        (sym, -defs[sub.args[1]] if isinstance(sub, sp.Mul) and len(sub.args) == 2 and sub.args[0] == -1
         and isinstance(defs.get(sub.args[1]), sp.Add) else sub)
        for sym, sub in replacements
    ]
    reduced = [e.xreplace(shown_a).xreplace(shown_b).xreplace(shown) for e in reduced]
    out_exprs = [reduced[i] for i in returns]
    needed = set().union(*(e.free_symbols for e in out_exprs))
    kept = []
    for sym, sub in reversed(replacements):
        if sym in needed:
            kept.append((sym, sub))
            needed |= sub.free_symbols
    kept.reverse()
    fresh = (Elem(f"tmp{i}") for i in range(10**6) if f"tmp{i}" not in taken)
    rename = {sym: next(fresh) for sym, _ in kept}
    return [(rename[sym], sub.xreplace(rename)) for sym, sub in kept], [e.xreplace(rename) for e in out_exprs]


def _row_level_parts(e: sp.Basic) -> set[sp.Basic]:
    """The row reductions of ``e`` and the row-level sums it divides by: what the terms of a
    Guarded's first form may share with the rest (not their products, see printed_form)."""
    parts = set(outer_reductions(e))
    for p in e.atoms(sp.Pow):
        if p.exp.is_negative and isinstance(p.base, sp.Add) and not element_symbols(p.base):
            parts.add(p.base)
    return parts


def _print_body(
    loss: Loss, expr: sp.Expr | tuple[sp.Expr, ...], printer: KernelPrinter, returns: tuple[int, ...] | None = None,
    naive: bool = False, nones: tuple[int, ...] = (), checked: bool = False, kinks: tuple[sp.Expr, ...] = (),
) -> list[str]:
    """Lines computing ``expr``: shape constants, label weights, CSE temporaries, return.

    ``expr`` may be a tuple of expressions (a value and its gradient): ``cse`` runs over all of
    them, and the function returns those numbered in ``returns`` (default: all), computing only
    the temporaries they need. The value, the gradient and the fused pair are printed from the
    same ``cse``, so each output is the same expression, and the same numbers, in all three.
    ``kinks``: the arguments ``<variant>_kinks`` returns; a Heaviside of the k-th is printed as
    ``_rt.kink(k, ...)``, which hands its computed argument to the rescue (:func:`_kink_index`).
    """
    kept, out_exprs = printed_form(loss, expr, returns, naive=naive)
    printer.kink_index = _kink_index(loss, kinks) if kinks else {}
    printer.defined = dict(kept)
    printer.row_level = set()
    printer.norm_of = {sym: sub.args[0] for sym, sub in kept if isinstance(sub, Norm2)}  # tmp = ‖x‖: x, for unit_rows
    printer.moving = {loss.prediction}  # the prediction and the temporaries computed from it
    for sym, sub in kept:
        if sub.free_symbols & printer.moving:
            printer.moving.add(sym)
    for sym, sub in kept:
        if printer._is_row_level(sub):
            printer.row_level.add(sym)
    taken = {s.name for e in (expr if isinstance(expr, tuple) else (expr,)) for s in e.free_symbols}
    used = [sub for _, sub in kept] + out_exprs
    lines = []
    pred = loss.prediction.name
    if any(e.has(C) for e in used) or any(d.has(C) for w, d in loss.weights.items() if any(e.has(w) for e in used)):
        lines.append(f"C = _rt.width({pred})")  # the whole row's length, also for a piece of it
    for w, definition in loss.weights.items():
        if any(e.has(w) for e in used) and definition != w:
            lines.append(f"{w.name} = {_print_weight(definition, loss.params, printer)}")
    fused = _fused_softmax(kept)
    for sym, sub in kept:
        if sym in fused:
            if fused[sym] is not None:
                names_ = ", ".join(str(x) for x in fused[sym][1])
                lines.append(f"{names_} = _rt.softmax_parts({printer.doprint(fused[sym][0])})")
            continue
        lines.append(f"{sym} = {printer.doprint(sub)}")
    rets = [printer.doprint(e) for e in out_exprs]
    for i in nones:
        rets.insert(i, "None")
    if len(rets) == 2 and "grad" not in taken and not checked:
        # the gradient before the value (the same operations): a row in pieces (see
        # cesym.kernels._pieces) then meets the gradient's row reductions first, and the value's
        # final sum, which no element depends on, is combined after the last pass
        lines.append(f"grad = {rets[1]}")
        rets[1] = "grad"
    if checked and isinstance(expr, tuple) and len(rets) == 1:
        rets[0] += ","  # a tuple of one output, as the caller iterates it
    lines.append("return " + ", ".join(rets))
    return lines


def _fused_softmax(kept: list[tuple[sp.Symbol, sp.Basic]]) -> dict:
    """The temporaries ``m = RowMax(z)``, ``e = exp(z - m)``, ``S = RowSum(e)`` and
    ``s = OffMaxSum(e, S)`` of a softmax, printed as one call ``m, e, S, s = _rt.softmax_parts(z)``
    (the same operations; a row in pieces gets m, S and s from one reduction, see
    :func:`cesym.kernels._runtime.softmax_parts`). Returns {first symbol: (z, (m, e, S, s)),
    the other three: None}, or {} when the four are not all there."""
    for m, sub in kept:
        if not isinstance(sub, RowMax):
            continue
        z = sub.args[0]
        e = next((x for x, v in kept if v == sp.exp(z - m)), None)
        S = next((x for x, v in kept if e is not None and v == RowSum(e)), None)
        s = next((x for x, v in kept if S is not None and isinstance(v, OffMaxSum) and v.args == (e, S)), None)
        if s is None:
            continue
        order = [x for x, _ in kept]
        if order.index(m) < order.index(e) < order.index(S) < order.index(s) and all(
            order.index(x) == order.index(m) + i for i, x in enumerate((m, e, S, s))
        ):
            return {m: (z, (m, e, S, s)), e: None, S: None, s: None}
        return {}  # not consecutive: printed one by one
    return {}


def _latex(expr: sp.Expr) -> str:
    return sp.latex(expr)


def _render_function(loss: Loss, fn: _Fn, printer: KernelPrinter) -> str:
    args = ", ".join(_arguments(loss))
    if fn.bound is not None:
        args = ", ".join(["box"] + _arguments(loss)[(loss.label is not None) + 1 :] + ["C"])
        body = "\n".join(fn.bound)
    elif fn.calls is not None:  # the same outputs as ``calls`` (the same expressions), no magnitude
        outs = f"{fn.calls}({args})" if fn.returns == (0,) else f"*{fn.calls}({args})"
        body = "return " + ", ".join([outs] + ["None"] * len(fn.nones))
    else:
        body = "\n".join(_print_body(loss, fn.expr, printer, fn.returns, fn.naive, fn.nones, fn.checked, fn.kinks))
    doc = fn.doc.strip()
    return (
        f"def {fn.name}({args}):\n"
        + textwrap.indent(f'r"""{doc}\n"""\n', "    ")
        + textwrap.indent(body, "    ")
        + "\n"
    )


def _boxes(loss: Loss, public: Sequence) -> tuple[dict | None, dict | None]:
    """The inputs' ranges the public functions allow (:func:`cesym.generate.ranges.input_box`:
    labels unbounded, the prediction in the domains its public functions declare and check,
    parameters in their keywords' ranges), and the same with labels in [0, 1]
    (:func:`cesym.generate.ranges.unit_label_box`; None without dense labels)."""
    pubs = [pub for pub in public if any(v.loss == loss.variant for v in pub.variants)]
    if not pubs:  # default_public's declaration
        pubs = [pub for pub in default_public([loss]) if any(v.loss == loss.variant for v in pub.variants)]
    domains = [v.domain for pub in pubs for v in pub.variants if v.loss == loss.variant]
    params: dict = {}
    for q in loss.params:  # the widest range any public function accepts (unbounded: none declared)
        rs = [kw.range for pub in pubs for kw in pub.keywords if kw.name == q.name]
        if rs and all(r is not None for r in rs):
            params[q.name] = (min(float(r[0]) for r in rs), max(float(r[1]) for r in rs))
    return input_box(loss, domains, params), unit_label_box(loss, domains, params)


def _functions(d: Derived, boxes: tuple[dict | None, dict | None], exact_forms: dict | str) -> list[_Fn]:
    loss = d.loss
    v = loss.variant
    weights = "; ".join(f"{w} = {sp.sstr(defn)}" for w, defn in loss.weight_definitions.items())
    wline = f"\nLabel weights: {weights}." if weights else ""
    vr = "".join(f"\n- {r.name}: {r.why}" for r in d.value_rules) or "\n- none"
    gr = "".join(f"\n- {r.name}: {r.why}" for r in d.grad_rules) or "\n- none"
    shape = "one value per row (keepdims)" if loss.row_level else "one value per element"
    # value and gradient are printed from one cse over both (see _print_body)
    both = (d.value, d.grad) if d.grad is not None else d.value
    fns = [
        _Fn(
            f"{v}_value",
            both,
            f"{loss.title}: stable value, {shape}.\n\nMathematics: ``{sp.sstr(d.naive_value)}``{wline}\n\n"
            f"Stable form: ``{sp.sstr(d.value)}``\n\nRewrites applied:{vr}",
            not loss.row_level,
            (0,) if d.grad is not None else None,
        ),
        _Fn(
            f"{v}_naive_value",
            to_elementary(d.naive_value, keep=()),
            f"{loss.title}: the naive value (the definition in elementary functions, no rewrite).\n\n"
            f"``{sp.sstr(d.naive_value)}``",
            not loss.row_level,
            naive=True,
        ),
    ]
    if d.grad is not None:
        fns += [
            _Fn(
                f"{v}_grad",
                both,
                f"{loss.title}: stable gradient d(value)/d({loss.prediction}), elementwise.\n\n"
                f"Derived by SymPy from the stable value: ``{sp.sstr(d.raw_grad)}``\n\n"
                f"Stable form: ``{sp.sstr(d.grad)}``\n\nRewrites applied:{gr}",
                True,
                (1,),
            ),
            _Fn(
                f"{v}_value_and_grad",
                (d.value, d.grad),
                f"{loss.title}: stable value and gradient in one pass, their common subexpressions "
                f"computed once (the same expressions, and numbers, as ``{v}_value`` and ``{v}_grad``).",
                True,
            ),
            _Fn(
                f"{v}_naive_grad",
                to_elementary(d.naive_grad, keep=()),
                f"{loss.title}: the naive gradient (SymPy's derivative of the definition, no rewrite).\n\n"
                f"``{sp.sstr(d.naive_grad)}``",
                True,
                naive=True,
            ),
        ]
    kinks = _kinks_functions(d)
    if kinks:  # the gradients hand their kink arguments to the rescue
        v, args = d.loss.variant, kinks[0].expr
        fns = [replace(fn, kinks=args) if fn.name in (f"{v}_grad", f"{v}_value_and_grad") else fn for fn in fns]
    return fns + kinks + _checked_functions(d, boxes, exact_forms)


def _abs_bound(e: sp.Basic) -> sp.Expr | None:
    """An upper bound of the magnitudes that rounding in ``e`` scales with, for a ring
    expression of the inputs (sums, products, integer powers, row sums and maxima, max, min,
    |·|): each sum as the sum of its terms' bounds; None for anything else (a division, a
    function), whose computed sign this does not bound."""
    if e.is_number:
        return abs(e)
    if isinstance(e, sp.Symbol):
        return sp.Abs(e)
    if isinstance(e, sp.Pow):
        b = _abs_bound(e.args[0])
        return b ** e.args[1] if b is not None and e.args[1].is_Integer and e.args[1] > 0 else None
    if isinstance(e, (sp.Abs, RowSum, RowMax)) and len(e.args) == 1:
        b = _abs_bound(e.args[0])
        return None if b is None else (b if isinstance(e, sp.Abs) else type(e)(b))
    if isinstance(e, MaxMinusSum):
        f, g = (_abs_bound(a) for a in e.args)
        return None if f is None or g is None else RowMax(f) + RowSum(g)
    if isinstance(e, (sp.Add, sp.Mul, sp.Max, sp.Min)):
        parts = [_abs_bound(a) for a in e.args]
        if any(b is None for b in parts):
            return None
        return sp.Add(*parts) if isinstance(e, sp.Add) else sp.Mul(*parts) if isinstance(e, sp.Mul) else sp.Max(*parts)
    return None


def _expanded(e: sp.Basic, defined: dict) -> sp.Basic:
    """``e`` with every CSE temporary replaced by what it stands for, down to the inputs."""
    while (inner := e.free_symbols & defined.keys()):
        e = e.xreplace({t: defined[t] for t in inner})
    return e


def _kink_index(loss: Loss, kinks: tuple[sp.Expr, ...]) -> dict[sp.Basic, int]:
    """Each kink argument as printed (lowered, temporaries expanded) and its place in
    ``<variant>_kinks``: where a gradient's Heaviside argument, expanded the same way, is one of
    them, the gradient hands the number it computed to the rescue, which need not compute it
    again. One it does not find is printed as a plain Heaviside (the rescue computes it)."""
    kept, outs = printed_form(loss, kinks, tuple(range(len(kinks))))
    defined = dict(kept)
    return {_expanded(e, defined): k for k, e in enumerate(outs)}


def _kinks_functions(d: Derived) -> list[_Fn]:
    """``<variant>_kinks``: each Heaviside argument of the stable gradient, and
    ``<variant>_kink_scales``: for each, a bound of the magnitudes its rounding scales with
    (:func:`_abs_bound`), for the decimal rescue (:mod:`cesym.kernels._rescue`): where a
    computed argument lies within its rounding of 0, the side of the kink is decided exactly
    (the categorical hinge's margin max (1 - y)p - Σ yp + 1 at scores [1 + 2^-52, 0.75·2^-52]:
    -5.6e-17, computed 0, the gradient [-1, 1] where it is [0, 0]). Two functions because each
    bound grows with every input's magnitude: the rescue bounds a whole block's at once from a
    row of its largest magnitudes, and computes the elementwise bounds only for the rows that
    screen leaves. None where the gradient has no such argument, or a class-index label."""
    if d.grad is None or d.loss.label_index:
        return []
    args = sorted({h.args[0] for h in d.grad.atoms(sp.Heaviside) if d.loss.prediction in h.args[0].free_symbols}, key=sp.default_sort_key)
    pairs = [(a, b) for a in args if (b := _abs_bound(a)) is not None]
    if not pairs:
        return []
    v, title, n = d.loss.variant, d.loss.title, len(pairs)
    tail = "(:mod:`cesym.kernels._rescue`: where an argument lies within (C + 8)·2^-50 of its bound, the decimal rescue decides the side of the kink exactly)."
    return [
        _Fn(f"{v}_kinks", tuple(a for a, _ in pairs), f"{title}: each Heaviside argument of the stable gradient, in the order of ``{v}_kink_scales`` {tail}", True, tuple(range(n)), checked=True),
        _Fn(f"{v}_kink_scales", tuple(b for _, b in pairs), f"{title}: for each of ``{v}_kinks``, a bound of the magnitudes its rounding scales with, nondecreasing in every input's magnitude {tail}", True, tuple(range(n)), checked=True),
    ]


def _checked_functions(d: Derived, boxes: tuple[dict | None, dict | None], exact_forms: dict | str) -> list[_Fn]:
    """``<variant>_<kind>_checked``: the stable outputs followed by their :func:`magnitude` (None
    where it is the output's absolute value), for the float32 rounding test
    (:mod:`cesym.kernels._rounding`); only for kernels with a decimal form (:func:`exact_parts`).
    Signs are read over the inputs the public functions accept (``boxes[0]``: a prediction in
    a positive domain is its own magnitude). Where labels in [0, 1] (``boxes[1]``) leave fewer
    sums that can cancel, also ``<variant>_<kind>_checked_unit`` with those magnitudes None
    (a call of the plain ``<variant>_<kind>`` when none is left): the runtime takes it for
    label blocks inside [0, 1]. ``exact_forms``: :func:`exact_parts` of ``d``."""
    if not isinstance(exact_forms, dict):
        return []
    v = d.loss.variant
    public, unit = boxes
    outs = [("value", d.value)] + ([("grad", d.grad)] if d.grad is not None else [])
    kinds = [("value", outs[:1])] + ([("grad", outs[1:]), ("value_and_grad", outs)] if d.grad is not None else [])
    fns = []
    for kind, chosen in kinds:
        variants = [("", public)]
        if unit is not None and any(needs_magnitude(e, public) and not needs_magnitude(e, unit) for _, e in chosen):
            variants.append(("_unit", unit))
        for suffix, b in variants:
            need = [needs_magnitude(e, b) for _, e in chosen]
            exprs = [e for _, e in chosen] + [magnitude(e, b) for (_, e), n in zip(chosen, need) if n]
            nones = tuple(len(chosen) + i for i, n in enumerate(need) if not n)
            where = " with labels in [0, 1]" if suffix else ""
            doc = (f"{d.loss.title}: ``{v}_{kind}`` and the scale of its float64 rounding error{where} (each "
                   "sum as the sum of its terms' absolute values; None: the output's own absolute value), "
                   "for the float32 rounding test.")
            fns.append(_Fn(f"{v}_{kind}_checked{suffix}", tuple(exprs), doc, kind != "value" or not d.loss.row_level,
                           tuple(range(len(exprs))), nones=nones, checked=True,
                           calls=f"{v}_{kind}" if not any(need) else None))
            mags = [magnitude(e, b) if n else None for (_, e), n in zip(chosen, need)]
            lines = bound_body(d.loss, mags) if any(need) else None
            if lines is not None:
                bdoc = (f"{d.loss.title}: upper bounds of the magnitudes ``{v}_{kind}_checked{suffix}`` returns "
                        f"(None where it returns None), over the box of inputs ``box`` (each array argument's "
                        f"(min, max)){where}: interval arithmetic (:mod:`cesym.kernels._iv`).")
                fns.append(_Fn(f"{v}_{kind}_bound{suffix}", (), bdoc, False, bound=lines))
    return fns


def _render_exact(d: Derived, parts: dict | str) -> str:
    """The decimal forms of the value and the gradient (:mod:`cesym.kernels._exact`), and their
    tracked float64 forms where they are rational (:mod:`cesym.kernels._eft`); where ``d`` has
    none, its row forms for the float64 rescue (:func:`rescue_parts`), or ''.
    ``parts``: :func:`exact_parts` of ``d``."""
    # the rescue's row forms take a class-index label as its one-hot row (cesym.kernels._rescue)
    args = ", ".join(_arguments(d.loss, dense=not isinstance(parts, dict)) + ["C"])
    if not isinstance(parts, dict):
        rows = rescue_parts(d.loss, d.value, d.grad)
        if not isinstance(rows, dict):
            return ""
        return "\n\n".join(
            f"def {d.loss.variant}_{kind}_rescue({args}):\n"
            f'    r"""{d.loss.title}: the stable {kind} in decimal arithmetic at the current precision, '
            f'of one row (lists of Decimals{"; the list of its C elements" if kind == "grad" else ""}): '
            f'the float64 rescue of rows that overflow or underflow (:mod:`cesym.kernels._rescue`)."""\n'
            f"    return {code}\n"
            for kind, code in rows.items()
        )
    out = []
    for kind, code in eft_parts(d.loss, d.value, d.grad).items():
        out.append(
            f"def {d.loss.variant}_{kind}_eft(fx, {args}):\n"
            f'    r"""{d.loss.title}: the stable {kind} in float64 with every rounding recorded in '
            f'``fx`` (:class:`cesym.kernels._eft.Tracker`): exact where ``fx.inexact`` stays False."""\n'
            f"    return {code}\n"
        )
    for kind, code in parts.items():
        what = "one row (lists of Decimals)" if kind == "value" else "one element (Decimals), the row width C"
        out.append(
            f"def {d.loss.variant}_{kind}_exact({args}):\n"
            f'    r"""{d.loss.title}: the stable {kind} in decimal arithmetic at the current precision, '
            f'of {what}: the slow, correct path of the float32 kernels (:mod:`cesym.kernels._exact`)."""\n'
            f"    return {code}\n"
        )
    return "\n\n".join(out)


HEADER = '''r"""Generated by ``cesym generate`` from ``derivations/{family}.py``. Do not edit.

{doc}
Each function takes rows along the last axis (float64 arrays, labels broadcast to the
prediction's shape; a label given by its class, ``k``, as int64 of shape (rows, 1), -1 for an
ignored row) and scalar parameters; the public, checked API is :mod:`cesym.kernels`.
The cores compute the finite domain; at ±inf inputs they give what IEEE arithmetic gives
(0·inf = NaN), and the public kernels replace those outputs by the limits of the mathematics
(:mod:`cesym.kernels._limits`).
The code prints each stable form after the exact identities of ``cesym.generate.lowerings``
(``v_j + Σ_{{c≠j}} v_c = Σ_c v_c``; ``-log softmax(z)_j = log1p(Σ_{{c≠argmax}} e_c) - d_j`` with
``d = z - max z``, ``e = exp(d)``, shared with the gradient; softplus and σ in their stable
elementary forms, sharing ``exp(-|x|)``).
"""

import numpy

from cesym.kernels import _exact as _ex
from cesym.kernels import _iv
from cesym.kernels import _runtime as _rt

'''

FOOTER = '''

# The public functions declared in PUBLIC (cesym.kernels._api): argument checks, limits, warnings.
from cesym.kernels._api import export as _export  # noqa: E402

__all__ = _export(globals())
'''


def _render_weights(loss: Loss, printer: KernelPrinter) -> str:
    """``<variant>_weights(y, pred, *params)``: the label weights in their declared order, from
    dense labels (one-hot rows for class indices), as the cores compute them (the limit rules of
    :mod:`cesym.kernels._limits` take them)."""
    label = loss.label.name
    args = ", ".join([label, loss.prediction.name] + [q.name for q in loss.params])
    lines = []
    if any(d.has(C) for d in loss.weights.values()):
        lines.append(f"C = _rt.width({loss.prediction.name})")
    for w, definition in loss.weights.items():
        lines.append(f"{w.name}_ = {_print_weight(definition.subs(w, loss.label) if definition == w else definition, loss.params, printer)}")
    names = [f"{w.name}_" for w in loss.weights]
    lines.append("return (" + ", ".join(names) + ("," if len(names) == 1 else "") + ")")
    doc = f"The label weights ({', '.join(w.name for w in loss.weights)}) of {loss.title}, as its cores compute them."
    return f"def {loss.variant}_weights({args}):\n" + textwrap.indent(f'r"""{doc}"""\n' + "\n".join(lines), "    ") + "\n"


def _cores(derived: Sequence[Derived]) -> dict:
    """What the public API needs to know of each kernel: its arguments, whether it has label
    weights, whether it is differentiable, one value per row or per element, its formula, and the
    labels' domain where the definition restricts it (:mod:`cesym.derive.label_domain`)."""
    return {
        d.loss.variant: {
            "args": _arguments(d.loss),
            "weights": [[w.name, sp.sstr(defn)] for w, defn in d.loss.weights.items()],
            "differentiable": d.grad is not None,
            "row_level": d.loss.row_level,
            "title": d.loss.title,
            "formula": sp.sstr(d.loss.value),
            **({"nan_masked": True} if any(_masks_nan(e) for e in (d.value, d.grad) if e is not None) else {}),
            **({"label_domain": dom} if (dom := label_domain(d.loss)) else {}),
        }
        for d in derived
    }


def _masks_nan(expr: sp.Basic) -> bool:
    """A branch of a Piecewise in ``expr`` is free of an input its conditions test (Tukey's c²/6
    past |e| = c, a hinge's 0): where that input is NaN every condition is false and the branch
    taken is a number (the public functions then set the row to NaN, :mod:`cesym.kernels._api`)."""
    for pw in expr.atoms(sp.Piecewise):
        tested = set().union(*[c.atoms(Elem) for _, c in pw.args])
        if any(not tested <= x.atoms(Elem) for x, _ in pw.args):
            return True
    return False


#: Example inputs for the docstrings, by label kind and prediction domain: three classes.
_EXAMPLE_LABELS = {"binary": "[[0.0, 1.0, 1.0]]", "distribution": "[[0.0, 1.0, 0.0]]", "index": "[1]",
                   "real": "[[0.5, -1.0, 2.0]]", "count": "[[0.0, 1.0, 3.0]]",
                   "sign": "[[1.0, -1.0, 1.0]]"}
_EXAMPLE_PREDS = {"real": "[[0.3, -1.2, 2.0]]", "unit": "[[0.2, 0.7, 0.9]]", "simplex": "[[0.2, 0.7, 0.1]]",
                  "positive": "[[0.5, 1.5, 3.0]]", "log1p": "[[-0.5, 0.5, 3.0]]"}


def _example_labels(kind: str, domain: dict | None) -> str:
    """The example's labels of ``kind``, those outside the definition's label domain moved into
    it (:func:`cesym.derive.label_domain.moved_inside`)."""
    text = _EXAMPLE_LABELS[kind]
    if not domain or kind == "index":
        return text
    return repr([[moved_inside(v, domain) for v in row] for row in ast.literal_eval(text)])


def _examples(public: Sequence, namespace: dict, where: str) -> dict[str, str]:
    """``{public name: "call  # result"}``: each function run on a small input of its declared
    kinds, the result to 6 digits (the same on every machine but where a digit is a tie)."""
    import numpy as np

    out = {}
    for pub in public:
        v = pub.variants[0]
        domain = namespace["CORES"][v.loss].get("label_domain") if "CORES" in namespace else None
        args = [] if pub.labels == "none" else [_example_labels(pub.labels, domain)]
        pred = _EXAMPLE_PREDS[v.domain] if pub.reduction != "batch" else "[[0.5, -1.0], [2.0, 0.25]]"
        args.append(pred)
        kws = dict(v.when)
        for k in pub.keywords:
            if k.kind == "real" and k.default is None:
                kws[k.name] = (k.range[0] + k.range[1]) / 2 if k.range else 1.0
        if pub.keyword_only:
            call = ", ".join(f"{n}={a}" for n, a in zip(pub.args, args))
        else:
            call = ", ".join(args)
        call += "".join(f", {n}={val!r}" for n, val in kws.items())
        expr = f"{pub.name}({call})"
        try:
            res = eval(expr, {**namespace, "np": np})  # noqa: S307 - our own rendering, our inputs
        except Exception as e:  # noqa: BLE001
            raise DerivationError(f"{where}: {pub.name}: the docstring example {expr} raised {type(e).__name__}: {e}") from None
        shown = np.array2string(np.asarray(res), separator=", ", formatter={"float_kind": "{:.6g}".format})
        out[pub.name] = f"{expr}  # {shown}"
    return out


def render_family(
    family: str, derived: Sequence[Derived], module_doc: str = "", public: Sequence = (), examples: dict | None = None
) -> str:
    """Source text of the generated module for one family: its kernels and, as plain data, its
    public declarations (``PUBLIC``, :class:`cesym.define.declare.Public`) and ``CORES``."""
    import pprint

    printer = KernelPrinter()
    parts = [HEADER.format(family=family, doc=textwrap.dedent(module_doc).strip() + "\n" if module_doc else "")]
    parts.append("#: The public functions of this file (cesym.define.declare.Public as plain data): cesym.kernels builds them.\n")
    parts.append("PUBLIC = " + pprint.pformat([p.as_data() for p in public], width=100, sort_dicts=False) + "\n\n")
    parts.append("#: Each kernel's arguments, label weights, differentiability, shape and formula.\n")
    parts.append("CORES = " + pprint.pformat(_cores(derived), width=100, sort_dicts=False) + "\n\n")
    parts.append("#: One call of each public function and its result (6 digits), for its docstring.\n")
    parts.append("EXAMPLES = " + pprint.pformat(examples or {}, width=100, sort_dicts=False) + "\n\n")
    parts.append("#: What was derived for each kernel (SymPy srepr, the rules applied): the reports read it.\n")
    parts.append("DERIVED = " + pprint.pformat({d.loss.variant: as_record(d) for d in derived}, width=100, sort_dicts=False) + "\n\n\n")
    for d in derived:
        exact_forms = exact_parts(d.loss, d.value, d.grad)
        for fn in _functions(d, _boxes(d.loss, public), exact_forms):
            parts.append(_render_function(d.loss, fn, printer))
            parts.append("\n\n")
        if d.loss.weights:
            parts.append(_render_weights(d.loss, printer))
            parts.append("\n\n")
        exact = _render_exact(d, exact_forms)
        if exact:
            parts.append(exact)
            parts.append("\n\n")
    return "".join(parts).rstrip() + "\n" + FOOTER


#: :func:`render_all`'s last results in this process: (directory, keep, the bytes of its Python
#: files) -> texts. ``cesym generate`` then ``cesym verify --derivations`` on the same files in
#: one process (a notebook, the tests) derive them once: the derivation and its domain and edge
#: checks are most of either command's time on a user's loss (SymPy, seconds a family).
_RENDERED: dict[tuple, dict[str, str]] = {}
_RENDERED_KEEP = 8
_RENDERED_LOCK = threading.Lock()


def _sources_key(directory: Path, keep: Sequence[str]) -> tuple:
    """What :func:`render_all` reads of ``directory``: every Python file's name and bytes."""
    directory = Path(directory).resolve()
    files = tuple((f.name, f.read_bytes()) for f in sorted(directory.glob("*.py")) if f.is_file())
    return str(directory), tuple(keep), files


def render_all(directory: Path = DERIVATIONS_DIR, keep: Sequence[str] = ()) -> dict[str, str]:
    """Render every family: file name -> source. Raises DerivationError before anything is written.

    Each loss is checked real and finite on its declared domain (:func:`cesym.generate.domain.check_domain`),
    and its printed kernel finite and accurate at the domain's edges (:func:`cesym.generate.edges.check_edges`).
    ``keep``: other generated modules (file names) that ``__init__.py`` imports too. The result
    of the same files is remembered in this process (a failure is not).
    """
    key = _sources_key(directory, keep)
    with _RENDERED_LOCK:
        hit = _RENDERED.get(key)
    if hit is not None:
        return dict(hit)
    out = _render_all(directory, keep)
    with _RENDERED_LOCK:
        _RENDERED[key] = dict(out)
        while len(_RENDERED) > _RENDERED_KEEP:
            del _RENDERED[next(iter(_RENDERED))]
    return out


def _render_all(directory: Path, keep: Sequence[str]) -> dict[str, str]:
    from .domain import check_domain
    from ..files import raise_if_interrupted
    from .edges import check_edges, load_module

    out: dict[str, str] = {}
    for family, fam in load_families(directory).items():
        path = fam.path
        derived, refs = [], []
        for loss in fam.losses:
            raise_if_interrupted()  # a Ctrl-C Python dropped (in an import's weakref callback) stops here
            d = _derive_in(path, loss)
            refs.append(check_domain(loss, d, str(path)))
            derived.append(d)
        raise_if_interrupted()
        text = render_family(family, derived, _module_doc(path), fam.public)
        namespace = load_module(text, family)
        for d, ref in zip(derived, refs):
            check_edges(d.loss, d, namespace, str(path), ref=ref)
        examples = _examples(fam.public, namespace, str(path))
        if examples:
            text = render_family(family, derived, _module_doc(path), fam.public, examples)
        out[f"{family}.py"] = text
    names = sorted(set(out) | set(keep))
    out["__init__.py"] = INIT.format(names="".join(f'    "{n[:-3]}",\n' for n in names))
    return out


INIT = '''"""Generated kernels, one module per derivation family (``cesym generate``). Do not edit.

A module listed here but missing (deleted by hand) is skipped with a warning, so that
``cesym generate`` itself, which imports the kernels, can still run and rewrite this file.
"""

import importlib as _importlib
import warnings as _warnings

_MODULES = (
{names})

__all__ = []
for _name in _MODULES:
    try:
        globals()[_name] = _importlib.import_module(f"{{__name__}}.{{_name}}")
    except ModuleNotFoundError as _e:
        if _e.name != f"{{__name__}}.{{_name}}":
            raise
        _warnings.warn(f"cesym.kernels: generated module {{_name}} is missing; run `cesym generate`", RuntimeWarning)
    else:
        __all__.append(_name)
'''


def _generated_modules(out_dir: Path) -> list[str]:
    """File names of the family modules in ``out_dir`` that ``cesym generate`` wrote (by their header)."""
    if not out_dir.is_dir():
        return []
    found = []
    for p in sorted(out_dir.glob("*.py")):
        if p.name == "__init__.py":
            continue
        try:
            with open(p, encoding="utf-8") as f:
                head = f.read(200)
        except (OSError, UnicodeDecodeError):
            continue
        if head.startswith('r"""Generated by ``cesym generate``'):
            found.append(p.name)
    return found


def _derive_in(path: Path, loss: Loss) -> Derived:
    """``derive(loss)``, with any failure reported as a DerivationError naming ``path``."""
    try:
        return derive(loss)
    except Exception as e:  # noqa: BLE001 - SymPy or a rewrite failing on this definition
        raise DerivationError(f"{path}: {type(e).__name__}: {' '.join(str(e).split())}") from None


def _module_doc(path: Path) -> str:
    import ast

    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


def generate(
    directory: Path = DERIVATIONS_DIR, out_dir: Path = GENERATED_DIR, check: bool = False
) -> list[str]:
    """Regenerate the kernels; return the names of files that changed (or would, with ``check``).

    Everything is rendered and checked in memory first: a missing or empty derivations
    directory, a broken derivation or a loss that is not real and finite on its domain raises
    :class:`DerivationError` before any file is touched. Nothing is ever removed: a generated
    module with no derivation in ``directory`` (another directory, a family deleted) stays, and
    ``__init__.py`` keeps importing it (:func:`orphans` lists them). The files are written as one
    step (:func:`cesym.files.write_texts`: atomic, the umask's mode, all or none on Ctrl-C).
    """
    from ..files import check_output_dir, write_texts

    out_dir = Path(out_dir)
    if not check:
        check_output_dir(out_dir, "output directory")
    rendered = render_all(directory, keep=orphans(directory, out_dir))
    if check:
        return [
            name for name, text in sorted(rendered.items())
            if not (out_dir / name).is_file() or (out_dir / name).read_bytes() != text.encode("utf-8")
        ]
    out_dir.mkdir(exist_ok=True)
    changed = write_texts({out_dir / name: text for name, text in sorted(rendered.items())}, what="generated kernel")
    return [p.name for p in changed]


def orphans(directory: Path, out_dir: Path) -> list[str]:
    """Generated modules in ``out_dir`` with no derivation file in ``directory`` (kept, never removed)."""
    from ..define.loss import derivation_files

    families = {p.stem for p in derivation_files(directory)}
    return [n for n in _generated_modules(Path(out_dir)) if n[:-3] not in families]
