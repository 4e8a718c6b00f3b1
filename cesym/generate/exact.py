r"""What a float32 kernel needs to be correctly rounded: a bound on its float64 error, and its
stable form in decimal arithmetic for the inputs that bound cannot settle.

A float32 kernel computes in float64 and rounds once. That rounding is the correctly rounded
float32 wherever the float64 value ``r`` is farther from every float32 rounding boundary than
``r``'s own error. :func:`magnitude` gives the scale of that error: the stable form with each
sum replaced by the sum of its terms' absolute values, descending through products, row sums,
piecewise branches and zero-guarded products, and stopping at functions and powers, whose values
the stable forms compute to a few ulps of themselves (that is what the stable rewrites are for,
and what ``cesym verify`` measures). The float64 error is then at most W·2^-53·magnitude for a
modest W (:mod:`cesym.kernels._rounding`): a cancelling sum such as σ(x) - t has a magnitude
σ(x) + t far above its value, where the relative error of the float64 result is large.

:class:`DecimalPrinter` prints a stable form as Python code over :class:`decimal.Decimal` with
the functions of :mod:`cesym.kernels._exact`; :func:`exact_parts` says which kernels of a loss
have such a form (elementwise gradients; values whose only row reductions are sums of elementwise
terms) and returns the code, or None with the reason when they do not. :func:`rescue_parts`
(:class:`RowDecimalPrinter`) prints the others whose reductions are sums, maxima and the other
elements' sums over a whole row, for the float64 rescue of :mod:`cesym.kernels._rescue` only.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.simplify.simplify import signsimp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter

from ..define.loss import Loss
from ..define.primitives import C, NanOr, RestSum, RowMax, RowSum, SumSquares, XMul
from ..rewrite.rules import second_form_exact
from .ranges import value_range

__all__ = ["magnitude", "DecimalPrinter", "RowDecimalPrinter", "EftPrinter", "exact_parts", "rescue_parts", "eft_parts", "NotExact"]


class NotExact(Exception):
    """A kernel whose stable form has no decimal evaluation here (a row reduction other than a
    sum, or a primitive :mod:`cesym.kernels._exact` lacks)."""


def _input_sum(e: sp.Expr) -> bool:
    """A sum of inputs times powers of two (``p - y``, ``2p - 2y``): one rounding of exact
    operands, accurate to half an ulp of itself whatever the cancellation."""
    def exact(t: sp.Expr) -> bool:
        c, rest = t.as_coeff_Mul()
        if rest == 1:
            return c.is_Rational
        two = abs(c).is_Rational and (abs(c).p & (abs(c).p - 1)) == 0 and (abs(c).q & (abs(c).q - 1)) == 0
        return bool(two) and isinstance(rest, sp.Symbol)

    return isinstance(e, sp.Add) and all(exact(t) for t in e.args)


def magnitude(e: sp.Expr, box: dict | None = None, _memo: dict | None = None) -> sp.Expr:
    r"""The scale of the rounding error of ``e`` evaluated in floating point: every ``Add`` reached
    through products, row sums, ``XMul``, ``Piecewise`` branches and ``NanOr`` becomes
    :math:`\sum_k |t_k|`; every other factor ``f`` is ``|f|``.

    ``|a + b| <= |a| + |b|``, with equality when the terms have one sign: for a sum of
    non-negative terms the magnitude is the value itself. ``box``: the input ranges under which
    signs are read (:func:`cesym.generate.ranges.value_range`), besides SymPy's assumptions.
    """
    memo = {} if _memo is None else _memo  # needs_magnitude of every subexpression, once

    def mag(a: sp.Expr) -> sp.Expr:
        return magnitude(a, box, memo)

    if hasattr(e, "sum_form"):  # a primitive that adds terms (SigmoidDiff): their magnitudes
        return mag(e.sum_form())
    if _input_sum(e):
        return _abs(e)
    if not needs_magnitude(e, box, memo):
        return e if _sign(e, box) > 0 else _abs(e)  # |a·b| as one term: cse shares a·b with the value
    if isinstance(e, sp.Add):
        m = sp.Add(*[mag(a) for a in e.args])
        pair = _same_function_difference(e)
        if pair is not None:  # f(a) - f(b) at a = b, f(a) and f(b) computed alike: exactly 0
            (a, fa), (b, fb) = pair
            return sp.Piecewise((sp.S.Zero, sp.And(sp.Eq(a, b), sp.Eq(fa, fb))), (m, True))
        return m
    if isinstance(e, sp.Mul):
        return sp.Mul(*[mag(a) for a in e.args])
    if isinstance(e, XMul):
        a, b = e.args
        if needs_magnitude(a, box, memo):
            return XMul(mag(a), mag(b))
        # the weight itself, not |w|: the printer then guards log(w) where w is 0 as it does in
        # the value (no -inf, no 0·inf to repair)
        return XMul(a, mag(b)) if _sign(a, box) > 0 else _abs(XMul(a, mag(b)))
    if isinstance(e, (RowSum, NanOr)):
        return type(e)(*[mag(a) for a in e.args])
    if isinstance(e, SumSquares):
        return e
    if isinstance(e, sp.Piecewise):
        return sp.Piecewise(*[(mag(x), c) for x, c in e.args])
    if e.is_number:
        return abs(e)
    return _abs(e)


def _abs(e: sp.Expr) -> sp.Expr:
    """``Abs(e)`` with ``e``'s own subexpressions kept. SymPy's ``Abs`` first applies
    ``signsimp``, which rewrites sums inside (``t·(1 - p) + p·u`` becomes ``p·u - t·(p - 1)``):
    ``cse`` then no longer sees them as the value's, and a power of such a sum is computed twice
    (a ``pow`` costs about as much as the rest of a focal loss's gradient). Sums in the result
    that ``signsimp`` changed are put back as ``e`` has them."""
    out = sp.Abs(e)
    forms = {}
    for s in sp.preorder_traversal(e):
        if isinstance(s, sp.Add):
            forms.setdefault(signsimp(s, evaluate=False), s)
    forms = {k: v for k, v in forms.items() if k != v}
    if not forms:
        return out

    def back(x: sp.Basic) -> sp.Basic:
        if x in forms:
            return forms[x]
        if not x.args:
            return x
        args = [back(a) for a in x.args]
        if all(a is b for a, b in zip(args, x.args)):
            return x
        return sp.Abs(*args, evaluate=False) if isinstance(x, sp.Abs) else x.func(*args)

    return back(out)


def _same_function_difference(e: sp.Expr) -> tuple[tuple, tuple] | None:
    """``((a, f(a)), (b, f(b)))`` where ``e`` is ``k·f(a) - k·f(b)``, one function of two
    different inputs.

    Where a = b and the computed f(a) and f(b) are equal (finite), the computed difference is
    0, the exact value: its magnitude is 0 there, not ``|f(a)| + |f(b)|``. A prediction equal
    to its target (``y·(log y - log p)`` at y = p: KL divergence of a copy of the teacher) is
    then decided by the rounding test, not sent to the decimal path. Both conditions are
    needed: equal inputs alone would trust f to give equal bits on both (NumPy's SIMD and
    scalar loops may differ), equal values alone would take 0 for exact where f(a) and f(b)
    merely round alike. (Equal infinities make the difference NaN, which the rounding test
    leaves to the limit rules.)"""
    terms = e.args if isinstance(e, sp.Add) else ()
    if len(terms) != 2:
        return None
    (k1, f1), (k2, f2) = (t.as_coeff_Mul() for t in terms)
    if k1 != -k2 or not isinstance(f1, sp.Function) or f1.func != f2.func or len(f1.args) != 1:
        return None
    a, b = f1.args[0], f2.args[0]
    if a == b or not (isinstance(a, sp.Symbol) and isinstance(b, sp.Symbol)):
        return None
    return ((a, f1), (b, f2)) if k1 > 0 else ((b, f2), (a, f1))


def _sign(e: sp.Expr, box: dict | None) -> int:
    """1: ``e >= 0`` wherever defined; -1: ``e <= 0``; 0: unknown (SymPy's assumptions, then
    the range of ``e`` over ``box``)."""
    if e.is_nonnegative:
        return 1
    if e.is_nonpositive:
        return -1
    if box is not None:
        lo, hi = value_range(e, box)
        if lo >= 0:
            return 1
        if hi <= 0:
            return -1
    return 0


def needs_magnitude(e: sp.Expr, box: dict | None = None, _memo: dict | None = None) -> bool:
    """Whether :func:`magnitude` can exceed ``|e|``: a sum is reached whose terms are not all of
    one known sign (over ``box``, where given)."""
    memo = {} if _memo is None else _memo
    if e in memo:
        return memo[e]
    if hasattr(e, "sum_form"):
        out = needs_magnitude(e.sum_form(), box, memo)
    elif _input_sum(e):
        out = False
    elif isinstance(e, sp.Add):
        terms = [a for a in e.args if not a.is_zero]
        signs = {_sign(a, box) for a in terms}
        out = not (signs == {1} or signs == {-1} or not signs) or any(needs_magnitude(a, box, memo) for a in terms)
    elif isinstance(e, NanOr) and not needs_magnitude(e.args[0], box, memo) and second_form_exact(e):
        out = False  # the second form is exact wherever it is taken: the pair errs as the first
    elif isinstance(e, RowSum):  # a sum too: its terms may cancel unless they have one sign
        out = _sign(e.args[0], box) == 0 or needs_magnitude(e.args[0], box, memo)
    elif isinstance(e, (sp.Mul, XMul, NanOr)):
        out = any(needs_magnitude(a, box, memo) for a in e.args)
    elif isinstance(e, sp.Piecewise):
        out = any(needs_magnitude(x, box, memo) for x, _ in e.args)
    else:
        out = False
    memo[e] = out
    return out


class _ScalarPrinter(PythonCodePrinter):
    """What the decimal and the tracked-float64 printers share: the row width ``C``, comparisons,
    and SymPy's singleton numbers (1/2, 1, 0, -1) printed as the general ones are."""

    def _print_Symbol(self, e):
        return "C" if e == C else e.name

    def _print_Relational(self, e):
        return f"({self._print(e.lhs)} {e.rel_op} {self._print(e.rhs)})"

    def _print_Half(self, e):
        return self._print_Rational(e)

    def _print_NegativeOne(self, e):
        return self._print_Integer(e)

    def _print_One(self, e):
        return self._print_Integer(e)

    def _print_Zero(self, e):
        return self._print_Integer(e)


class DecimalPrinter(_ScalarPrinter):
    """Python code over :class:`decimal.Decimal`: numbers as exact Decimals, functions from
    :mod:`cesym.kernels._exact` (``_ex``), element symbols indexed by ``_c`` inside a row sum."""

    _known = {
        "log": "log", "exp": "exp", "log1p": "log1p", "expm1": "expm1", "tanh": "tanh", "sign": "sign",
        "Sigmoid": "sigmoid", "Softplus": "softplus", "LogCosh": "logcosh", "Log1pDiff": "log1p_diff", "LogRatio": "log_ratio",
        "XMul": "xmul", "Relu": "relu", "Hypot1": "hypot1", "Hypot1m1": "hypot1m1", "HypotShare": "hypot_share", "Log1pSquare": "log1p_square",
        "SigmoidDiff": "sigmoid_diff", "Expm1mx": "expm1mx",
    }

    def __init__(self, settings=None):
        super().__init__(settings or {})
        self.in_row = False

    def _print_Elem(self, e):
        return f"{e.name}[_c]" if self.in_row else e.name

    # Decimal's unary minus rounds to the context's precision (an input of 1e300 has 300 digits
    # and more, the first level 30): -p + y computed y - p from p rounded, garbage where y = p.
    # Negation is printed as copy_negate (exact) and a sum as a difference where it has one.

    def _print_Mul(self, e):
        if e.as_coeff_Mul()[0] < 0:
            return f"({self._print(-e)}).copy_negate()"
        return super()._print_Mul(e)

    def _print_Add(self, e, order=None):
        plus = [a for a in e.args if not a.as_coeff_Mul()[0] < 0]
        minus = [-a for a in e.args if a.as_coeff_Mul()[0] < 0]
        if not plus:
            return f"({self._print(-e)}).copy_negate()"
        out = " + ".join(self._print(a) for a in plus)
        for a in minus:
            out += f" - {self.parenthesize(a, PRECEDENCE['Add'] + 1)}"
        return f"({out})"

    def _print_Integer(self, e):
        return f"_ex.D({int(e)})"

    def _print_Rational(self, e):
        return f"_ex.q({e.p}, {e.q})"

    def _print_Float(self, e):
        return f"_ex.D({float(e)!r})"

    def _print_Pow(self, e, rational=False):
        b, x = e.args
        if x == sp.Rational(1, 2):
            return f"({self._print(b)}).sqrt()"
        if x.is_Integer:
            return f"_ex.power({self._print(b)}, {int(x)})"
        return f"_ex.power({self._print(b)}, {self._print(x)})"

    def _print_Abs(self, e):
        return f"abs({self._print(e.args[0])})"

    def _print_Max(self, e):
        return "max(" + ", ".join(self._print(a) for a in e.args) + ")"

    def _print_Min(self, e):
        return "min(" + ", ".join(self._print(a) for a in e.args) + ")"

    def _print_Heaviside(self, e):
        h = e.args[1] if len(e.args) > 1 else sp.Rational(1, 2)
        return f"_ex.heaviside({self._print(e.args[0])}, {self._print(h)})"

    def _print_XMul(self, e):
        # b only where a != 0: 0·log 0 = 0, and a zero weight leaves a rational row exact
        return f"_ex.xmul({self._print(e.args[0])}, lambda: {self._print(e.args[1])})"

    def _print_NanOr(self, e):
        return f"_ex.nan_or(lambda: {self._print(e.args[0])}, lambda: {self._print(e.args[1])})"

    def _print_InfOr(self, e):
        # (SymPy's printer takes no method of a Function's base class: NanOr's is not InfOr's.)
        # The second form stands in for the first where float64 overflows; decimal does not
        # (its exponents reach 10^9): the first form is the number.
        return self._print(e.args[0])

    def _print_Scaled(self, e):
        return f"({self._print(e.args[0])} / {self._print(e.args[1])})"

    def _print_ScaledExp(self, e):
        u, a = e.args
        return f"_ex.xmul({self._print(a)}, lambda: _ex.exp({self._print(u)}))"

    def _print_ScaledPow(self, e):
        x, a, s = e.args
        return f"(_ex.power({self._print(x)}, {self._print(a)}) * {self._print(s)})"

    def _print_RowSum(self, e):
        return self._row_sum(e.args[0])

    def _print_SumSquares(self, e):
        return self._row_sum(e.args[0] ** 2)

    def _row_sum(self, body: sp.Expr) -> str:
        return f"_ex.fsum({self._over_row(body)} for _c in range(int(C)))"

    def _over_row(self, body: sp.Expr) -> str:
        """``body`` printed for element ``_c`` of the row (one level of reduction only)."""
        if self.in_row:
            raise NotExact("a row reduction inside a row reduction")
        self.in_row = True
        try:
            return self._print(body)
        finally:
            self.in_row = False

    def _print_Piecewise(self, e):
        out = "_ex.D('NaN')"
        for x, c in reversed(e.args):
            out = self._print(x) if c == sp.true else f"({self._print(x)} if {self._print(c)} else {out})"
        return out

    def _print_Function(self, e):
        name = type(e).__name__
        if name in self._known:
            return f"_ex.{self._known[name]}(" + ", ".join(self._print(a) for a in e.args) + ")"
        raise NotExact(f"no decimal evaluation of {name}")


class RowDecimalPrinter(DecimalPrinter):
    """:class:`DecimalPrinter` over a whole row, for kernels whose gradient couples the row's
    elements or whose stable form holds row primitives: an element outside a reduction is
    element ``_j`` (the gradient is printed as the list of its C elements), and the row
    reductions are the stable forms' own (sums, maxima, the other elements' sums, a maximum's
    share, the maximum minus a sum) and those of the row primitives (-log softmax, -log of a
    renormalised share, the other classes' share, the softmax gradient's numerator, norms).

    Reductions nest, each with its own index (``_c1``, ``_c2``, …; an element symbol is the
    innermost one's element). A reduction over the whole row (a sum, a maximum, the row a
    primitive reads) depends on no outer index: it is computed once per row, bound by
    :meth:`wrap` around the printed code (``_h0``, ``_h1``, … in the order they were met, each
    after those it reads), so that a row costs O(C) evaluations where a sum inside every
    element's term would cost O(C^2). The sums over the *other* elements are one list per row
    over one list of their terms: O(C) evaluations and O(C^2) additions a row, where a gradient
    summing them in every term took O(C^3) evaluations.
    A guarded pair of forms is its second, split form (the one without cancellation); in
    decimal both are the same number up to rounding."""

    def __init__(self, settings=None):
        super().__init__(settings)
        self.scope = ["_j"]
        self.hoisted: list[tuple[str, str, str]] = []  # (name, code, code with its indices renamed in order)

    def _print_Elem(self, e):
        return f"{e.name}[{self.scope[-1]}]"

    def _loop(self, body: sp.Expr) -> tuple[str, str]:
        """``body`` printed for a new index: (the index, the code)."""
        var = f"_c{len(self.scope)}"
        self.scope.append(var)
        try:
            return var, self._print(body)
        finally:
            self.scope.pop()

    def _hoist(self, code: str) -> str:
        """A name for ``code``, a quantity of the whole row (computed once, :meth:`wrap`); the
        same quantity met at another depth (its indices named otherwise) gets the same name."""
        names: dict[str, str] = {}
        key = re.sub(r"\b_c\d+\b", lambda m: names.setdefault(m.group(0), f"_i{len(names)}"), code)
        for name, c, k in self.hoisted:
            if k == key:
                return name
        name = f"_h{len(self.hoisted)}"
        self.hoisted.append((name, code, key))
        return name

    def _whole_row(self, body: sp.Expr) -> str:
        var, b = self._loop(body)
        return self._hoist(f"[{b} for {var} in range(int(C))]")

    def _print_RowSum(self, e):
        var, b = self._loop(e.args[0])
        return self._hoist(f"_ex.fsum({b} for {var} in range(int(C)))")

    def _print_SumSquares(self, e):
        return self._print_RowSum(RowSum(e.args[0] ** 2))

    def _print_RowMax(self, e):
        var, b = self._loop(e.args[0])
        return self._hoist(f"max({b} for {var} in range(int(C)))")

    def _print_RestSum(self, e):
        # every element's sum of the others at once, once per row (bound by :meth:`wrap`): its
        # body reads its own index alone, so it is evaluated once per element (a list), then
        # summed C times. Printed inside each element's term, it was evaluated again for every
        # element, and again for every term of a gradient's sum over the row: O(C^3) logarithms
        # and powers (categorical focal on probabilities, 3 ms a row of 7). The same sums in the
        # same order: the same numbers.
        terms = self._whole_row(e.args[0])
        rest = self._hoist(f"[_ex.fsum({terms}[_k] for _k in range(int(C)) if _k != _r) for _r in range(int(C))]")
        return f"{rest}[{self.scope[-1]}]"

    def _print_MaxShare(self, e):
        return f"_ex.max_share({self._whole_row(e.args[0])}, {self.scope[-1]})"

    def _print_MaxMinusSum(self, e):
        f, g = e.args
        return f"({self._print(RowMax(f))} - {self._print(RowSum(g))})"

    def _print_Guarded(self, e):
        return self._print(e.args[1])

    def _print_NegLogSoftmax(self, e):
        z = e.args[0]
        parts = self._hoist(f"_ex.softmax_parts({self._whole_row(z)})")
        return f"_ex.neg_log_softmax({parts}, {self._print(z)})"

    def _print_LogSumExp(self, e):
        z = e.args[0]
        m = self._print(RowMax(z))
        return f"({m} + _ex.log({self._print(RowSum(sp.exp(z - RowMax(z))))}))"

    def _print_NegLogNormalized(self, e):
        p = e.args[0]  # log(Σp/p_j) = log1p(Σ_{c≠j} p_c / p_j): no cancellation for a dominant p_j
        return f"_ex.log1p({self._print(RestSum(p))} / {self._print(p)})"

    def _print_NormalizedRest(self, e):
        p = e.args[0]
        return f"({self._print(RestSum(p))} / {self._print(RowSum(p))})"

    def _print_SoftmaxRest(self, e):
        z = e.args[0]
        ez = sp.exp(z - RowMax(z))
        return f"({self._print(RestSum(ez))} / {self._print(RowSum(ez))})"

    def _print_CrossRest(self, e):
        return f"({self._print(e.reduction_form())})"

    def _print_Norm2(self, e):
        # a quantity of the whole row, as its sum of squares: one square root per row, where
        # printed inline it would be taken again for every element (C^2 of them in a gradient)
        return self._hoist(f"({self._print(RowSum(e.args[0] ** 2))}).sqrt()")

    def wrap(self, code: str) -> str:
        """``code`` with the row quantities it reads bound around it, in order."""
        for name, c, _ in reversed(self.hoisted):
            code = f"(lambda {name}: {code})({c})"
        return code


# PythonCodePrinter prints some of these itself (math.log, math.copysign, ...): the Decimal ones win
for _name in DecimalPrinter._known:
    if _name == "XMul":
        continue
    setattr(DecimalPrinter, f"_print_{_name}", DecimalPrinter._print_Function)


class EftPrinter(_ScalarPrinter):
    """NumPy code over a :class:`cesym.kernels._eft.Tracker` ``fx`` for a rational stable form
    (+ − × ÷ by anything, integer powers, |·|, sign, max/min, Relu, Heaviside, branches): every
    rounding recorded. Anything else raises :class:`NotExact`."""

    def _print_Elem(self, e):
        return e.name

    def _print_Integer(self, e):
        if abs(int(e)) >= 2**53:
            raise NotExact("an integer beyond 2^53")
        return repr(float(e))

    def _print_Rational(self, e):
        if e.q & (e.q - 1) == 0 and abs(e.p) < 2**53:
            return repr(float(e))  # exact in binary
        return f"fx.div({float(e.p)!r}, {float(e.q)!r})"

    def _print_Float(self, e):
        return repr(float(e))

    def _print_Add(self, e, order=None):
        terms = [self._print(a) for a in e.args]
        out = terms[0]
        for t in terms[1:]:
            out = f"fx.add({out}, {t})"
        return out

    def _product(self, factors) -> str:
        if not factors:
            return "1.0"
        out = self._print(factors[0])
        for f in factors[1:]:
            out = f"fx.mul({out}, {self._print(f)})"
        return out

    def _print_Mul(self, e):
        coeff, rest = e.as_coeff_Mul()
        if coeff == -1:
            return f"(-{self._print(rest)})"
        num, den = sp.fraction(e, exact=True)
        nf = list(num.args) if isinstance(num, sp.Mul) else [num]
        df = list(den.args) if isinstance(den, sp.Mul) else [den]
        n = self._product([f for f in nf if f != 1])
        return n if den == 1 else f"fx.div({n}, {self._product([f for f in df if f != 1])})"

    def _print_Pow(self, e, rational=False):
        b, x = e.args
        if not x.is_Integer:
            raise NotExact("a power that is not an integer one")
        if x == -1:
            return f"fx.div(1.0, {self._print(b)})"
        if x < 0:
            return f"fx.div(1.0, fx.power({self._print(b)}, {-int(x)}))"
        return f"fx.power({self._print(b)}, {int(x)})"

    def _print_Abs(self, e):
        return f"numpy.abs({self._print(e.args[0])})"

    def _print_sign(self, e):
        return f"numpy.sign({self._print(e.args[0])})"

    def _print_Max(self, e):
        return self._fold("numpy.maximum", e.args)

    def _print_Min(self, e):
        return self._fold("numpy.minimum", e.args)

    def _fold(self, fn, args):
        out = self._print(args[0])
        for a in args[1:]:
            out = f"{fn}({out}, {self._print(a)})"
        return out

    def _print_Relu(self, e):
        return f"numpy.maximum({self._print(e.args[0])}, 0.0)"

    def _print_Heaviside(self, e):
        a = self._print(e.args[0])
        h = self._print(e.args[1] if len(e.args) > 1 else sp.Rational(1, 2))
        return f"numpy.where({a} > 0, 1.0, numpy.where({a} < 0, 0.0, {h}))"

    def _print_XMul(self, e):
        return f"fx.xmul({self._print(e.args[0])}, {self._print(e.args[1])})"

    def _print_RowSum(self, e):
        return f"fx.row_sum({self._print(e.args[0])})"

    def _print_SumSquares(self, e):
        a = self._print(e.args[0])
        return f"fx.row_sum(fx.mul({a}, {a}))"

    def _print_Piecewise(self, e):
        out = "numpy.nan"
        for x, c in reversed(e.args):
            out = self._print(x) if c == sp.true else f"fx.where({self._print(c)}, lambda: {self._print(x)}, lambda: {out})"
        return out


    def _print_BooleanTrue(self, e):
        return "True"

    def _print_And(self, e):
        return "(" + " & ".join(self._print(a) for a in e.args) + ")"

    def _print_Or(self, e):
        return "(" + " | ".join(self._print(a) for a in e.args) + ")"

    def _print_Function(self, e):
        raise NotExact(f"{type(e).__name__} is not rational")


for _name in ("log", "exp", "log1p", "expm1", "tanh", "sqrt", "Sigmoid", "Softplus", "LogCosh", "Log1pDiff", "LogRatio", "NanOr"):
    setattr(EftPrinter, f"_print_{_name}", EftPrinter._print_Function)


def eft_parts(loss: Loss, value: sp.Expr, grad: sp.Expr | None) -> dict[str, str]:
    """The tracked float64 code (:class:`EftPrinter`) of the value and the gradient of a loss
    whose stable forms are rational; {} when they are not."""
    out = {}
    for kind, e in (("value", value), ("grad", grad)):
        if e is None:
            continue
        try:
            out[kind] = EftPrinter().doprint(_substitute_weights(loss, e))
        except NotExact:
            pass
    return out


def _substitute_weights(loss: Loss, e: sp.Expr) -> sp.Expr:
    return e.xreplace(loss.weight_definitions)


def exact_parts(loss: Loss, value: sp.Expr, grad: sp.Expr | None) -> dict[str, str] | str:
    """The decimal code of the value (over a row: lists ``y``, ``x``) and of the gradient (one
    element, the row width ``C`` given), as expression strings, or the reason there is none.

    Eligible: a loss with dense or no labels whose gradient holds no row reduction, and whose
    value's row reductions are sums of elementwise terms.
    """
    if loss.label_index:
        return "a class-index label"
    if any(s.name == "N" for s in value.free_symbols):
        return "a batch reduction"
    printer = DecimalPrinter()
    out = {}
    try:
        v = _substitute_weights(loss, value)
        out["value"] = printer.doprint(v)
        if grad is not None:
            g = _substitute_weights(loss, grad)
            if g.has(RowSum, SumSquares):
                return "the gradient holds a row reduction"
            out["grad"] = printer.doprint(g)
    except NotExact as why:
        return str(why)
    return out


def rescue_parts(loss: Loss, value: sp.Expr, grad: sp.Expr | None) -> dict[str, str] | str:
    """The decimal code of the value and of the gradient, each over a whole row (lists ``y``,
    ``x``; the gradient as the list of its C elements), for kernels :func:`exact_parts` refuses
    because their gradient holds row reductions (or maxima): only the float64 rescue of
    :mod:`cesym.kernels._rescue` evaluates them (they are no correctly rounded float32 path).
    A class-index label is its one-hot row ``y`` here (:func:`cesym.kernels._rescue.rescuer`
    builds it). The kinds it can print (a value whose gradient holds a primitive decimal lacks is
    rescued alone), or the reason there is none."""
    if any(s.name == "N" for s in value.free_symbols):
        return "a batch reduction"
    out: dict[str, str] = {}
    why = ""
    for kind, e in (("value", value), ("grad", grad)):
        if e is None:
            continue
        printer = RowDecimalPrinter()
        try:
            body = printer.doprint(_substitute_weights(loss, e))
        except NotExact as reason:
            why = why or str(reason)
            continue
        out[kind] = printer.wrap(body if kind == "value" else f"[{body} for _j in range(int(C))]")
    return out or why
