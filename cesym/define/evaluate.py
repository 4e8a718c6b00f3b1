"""Evaluate row expressions on concrete rows with mpmath (plain or interval arithmetic).

A row expression (see :mod:`cesym.define.primitives`) is expanded for a concrete row length ``C``:
``RowSum(f)`` becomes ``f(x_0) + … + f(x_{C-1})``, ``RestSum(f)`` at element ``j`` the same sum
without ``x_j``, element-level symbols become ``x_j``. The expanded expression is printed by
SymPy's :class:`~sympy.printing.pycode.MpmathPrinter` and compiled once per ``C`` with
``lambdify``; the ``mpmath`` name in the printed code is bound to either ``mpmath.mp`` or
``mpmath.iv``, so the same code gives point values or rigorous enclosures.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Sequence

import mpmath
import sympy as sp
from sympy.printing.pycode import MpmathPrinter

from .primitives import C as C_SYM
from .primitives import Elem, MaxN, RestSum, RowMax, RowSum, element_symbols, to_elementary

__all__ = ["expand_row", "compile_row_exprs", "indexed"]


def indexed(sym: Elem, c: int) -> sp.Symbol:
    """The concrete symbol for element ``c`` of ``sym``."""
    return sp.Symbol(f"{sym.name}__{c}", real=True)


def expand_row(expr: sp.Basic, n: int, j: int | None = None) -> sp.Basic:
    """Expand reductions of ``expr`` for a row of length ``n``, evaluated at element ``j``."""

    def at(e: sp.Basic, c: int) -> sp.Basic:
        return e.xreplace({s: indexed(s, c) for s in e.atoms(Elem)})

    def reduce(e: sp.Basic) -> sp.Basic:
        # innermost reductions are replaced first, so ``e.args[0]`` holds no reduction
        terms = [at(e.args[0], c) for c in range(n) if not (isinstance(e, RestSum) and c == j)]
        if isinstance(e, RowMax):
            return MaxN(*terms)  # no symbolic comparisons (slow); TensorFlow's derivative at ties
        return sp.Add(*terms)

    if j is None and element_symbols(expr):
        raise ValueError(f"element symbol(s) {sorted(map(str, element_symbols(expr)))} used at row level")
    if j is None and expr.has(RestSum):
        raise ValueError("RestSum used at row level")
    expr = expr.xreplace({C_SYM: sp.Integer(n)})
    expr = expr.replace(lambda e: isinstance(e, (RowSum, RowMax, RestSum)), reduce)
    expr = at(expr, j) if j is not None else expr
    return expr.xreplace({C_SYM: sp.Integer(n)})  # RowSum of a row-level value gives C·value


def _xmul(ctx):
    def xmul(a, b):
        # 0 * b = 0 even for infinite b (the 0·log 0 = 0 convention); an interval is zero
        # only when both its ends are.
        if ctx is mpmath.iv:
            if a.a == 0 and a.b == 0:
                return ctx.mpf(0)
        elif a == 0:
            return ctx.mpf(0)
        return a * b

    return xmul


class _Printer(MpmathPrinter):
    def _print_Float(self, e):
        # a binary float exactly, as man·2^exp: SymPy's mpf((sign, man, exp, bc)) is a raw
        # tuple that the interval context cannot convert (a constant 1e-7 in a user's value made
        # the domain check fail with an empty NotImplementedError)
        sign, man, exp, _ = e._mpf_
        if man == 0:
            return "mpmath.mpf(0)"
        return "%s(mpmath.mpf(%d) * mpmath.mpf(2) ** %d)" % ("-" if sign else "", man, exp)

    def _print_XMul(self, e):
        return "XMul(%s, %s)" % (self._print(e.args[0]), self._print(e.args[1]))

    def _print_Max(self, e):
        return "mpmath.max_(%s)" % ", ".join(self._print(a) for a in e.args)

    _print_MaxN = _print_Max

    def _print_Min(self, e):
        return "mpmath.min_(%s)" % ", ".join(self._print(a) for a in e.args)

    def _print_sign(self, e):
        return "mpmath.sign_(%s)" % self._print(e.args[0])

    def _print_Heaviside(self, e):
        h0 = e.args[1] if len(e.args) > 1 else sp.S.Half
        return "mpmath.heaviside(%s, %s)" % (self._print(e.args[0]), self._print(h0))

    def _print_Piecewise(self, e):
        # every piece is evaluated; mpmath.pick takes the first whose condition holds (for an
        # interval on which a condition is undecided: the hull of the candidates)
        parts = ", ".join("(%s, %s)" % (self._print(c), self._print(v)) for v, c in e.args)
        return "mpmath.pick(%s)" % parts

    def _print_DiracDelta(self, e):
        # second derivatives of |x|, max(x, 0): zero away from the kink; at the kink itself the
        # gradient is a convention (a one-sided or zero derivative), its condition number moot
        return "0"


def _nonsmooth(ctx, mod) -> None:
    """max, min, sign and the step function for point values and for intervals: an interval that
    straddles a kink gives the hull of both sides (never a comparison of intervals, which mpmath
    answers with None where they overlap)."""
    if ctx is not mpmath.iv:
        mod.max_ = lambda *a: functools.reduce(lambda u, v: u if u >= v else v, a)
        mod.min_ = lambda *a: functools.reduce(lambda u, v: u if u <= v else v, a)
        mod.sign_ = lambda x: ctx.mpf((x > 0) - (x < 0))
        mod.heaviside = lambda x, h0: ctx.mpf(1) if x > 0 else ctx.mpf(0) if x < 0 else ctx.mpf(h0)
        mod.pick = lambda *pairs: next((v for c, v in pairs if c), ctx.nan)
        return

    def ends(x):
        x = ctx.mpf(x)
        return ctx.mpf(x.a), ctx.mpf(x.b)

    def hull(lo, hi):
        return ctx.mpf([lo.a, hi.b])

    def max2(u, v):
        (ua, ub), (va, vb) = ends(u), ends(v)
        return hull(ua if ua.a >= va.a else va, ub if ub.b >= vb.b else vb)

    def min2(u, v):
        (ua, ub), (va, vb) = ends(u), ends(v)
        return hull(ua if ua.a <= va.a else va, ub if ub.b <= vb.b else vb)

    def step(x, neg, zero, pos):
        lo, hi = ends(x)
        if lo.a > 0:
            return ctx.mpf(pos)
        if hi.b < 0:
            return ctx.mpf(neg)
        if lo.a == 0 and hi.b == 0:
            return ctx.mpf(zero)
        vals = [v for v, live in ((neg, lo.a < 0), (zero, True), (pos, hi.b > 0)) if live]
        return ctx.mpf([min(vals), max(vals)])

    def pick(*pairs):
        # a comparison of intervals is True, False, or None where they overlap
        live = []
        for c, v in pairs:
            if c is False:
                continue
            live.append(ends(v))
            if c is True:
                break
        if not live:
            return ctx.nan
        lo = functools.reduce(lambda u, w: u if u.a <= w.a else w, (a for a, _ in live))
        hi = functools.reduce(lambda u, w: u if u.b >= w.b else w, (b for _, b in live))
        return hull(lo, hi)

    mod.pick = pick
    mod.max_ = lambda *a: functools.reduce(max2, a)
    mod.min_ = lambda *a: functools.reduce(min2, a)
    mod.sign_ = lambda x: step(x, -1, 0, 1)
    mod.heaviside = lambda x, h0: step(x, 0, h0, 1)


def _namespace(ctx) -> dict:
    mod = types.SimpleNamespace()
    for name in ("mpf", "log", "exp", "log1p", "expm1", "sqrt", "pi", "e", "inf"):
        setattr(mod, name, getattr(ctx, name))
    _nonsmooth(ctx, mod)
    # hyperbolic functions (log cosh and its derivative), which mpmath.iv lacks, from expm1 and
    # exp: no cancellation near 0 (sinh(1e-300), tanh(1e-300)) and none at ±800 either
    mod.sinh = lambda x: (ctx.expm1(x) - ctx.expm1(-x)) / 2
    mod.cosh = lambda x: (ctx.exp(x) + ctx.exp(-x)) / 2
    mod.tanh = lambda x: ctx.expm1(2 * x) / (ctx.exp(2 * x) + 1) if x >= 0 else -ctx.expm1(-2 * x) / (ctx.exp(-2 * x) + 1)
    return {"mpmath": mod, "XMul": _xmul(ctx)}


def compile_row_exprs(
    exprs: Sequence[sp.Basic],
    elems: Sequence[Elem],
    scalars: Sequence[sp.Symbol],
    n: int,
    ctx=mpmath.mp,
    per_element: Sequence[bool] | None = None,
) -> Callable[..., list]:
    """Compile row expressions for rows of length ``n``.

    Returns ``f(rows, scalars) -> list`` where ``rows`` is a sequence of length-``n`` sequences
    (one per ``elems`` entry, in order) and ``scalars`` a sequence of scalar values; each
    element-level expression contributes ``n`` outputs (elements 0…n-1), each row-level one a
    single output. Primitives are taken in their elementary form, ``XMul`` keeps its 0·∞ = 0
    convention.
    """
    # the disk cache of printed code (cesym.verify.codecache; imported here: it imports this
    # module): the rewrite checks compile hundreds of rows, most of a `cesym generate`'s time
    from ..verify.codecache import cached_source

    levels = [bool(per_element[k]) if per_element is not None else False for k in range(len(exprs))]
    args = [indexed(s, c) for s in elems for c in range(n)] + list(scalars)
    namespace = _namespace(ctx)

    def build() -> Callable:
        flat: list[sp.Basic] = []
        for e, elem_level in zip(exprs, levels):
            e = to_elementary(e)
            if elem_level:
                flat.extend(expand_row(e, n, j) for j in range(n))
            else:
                flat.append(expand_row(e, n, None))
        # docstring_limit=0: lambdify's docstring prints str(expr), a third of its time on rows
        # this size, and nothing reads it
        return sp.lambdify(args, flat, modules=[namespace], printer=_Printer, cse=True, docstring_limit=0)

    what = "|".join(["row-exprs", f"{type(ctx).__module__}.{type(ctx).__qualname__}", str(n), repr(levels), *(sp.srepr(e) for e in exprs)])
    fn = cached_source(args, what, build, namespace, modules=(to_elementary.__module__,))

    def call(rows: Sequence[Sequence], scalar_values: Sequence = ()) -> list:
        flat_args = [v for row in rows for v in row] + list(scalar_values)
        return list(fn(*flat_args))

    return call
