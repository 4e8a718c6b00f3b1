"""Evaluate row expressions on concrete rows with mpmath (plain or interval arithmetic).

A row expression (see :mod:`cesym.primitives`) is expanded for a concrete row length ``C``:
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
from .primitives import Elem, RestSum, RowMax, RowSum, element_symbols, to_elementary

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
            return sp.Max(*terms, evaluate=False)  # no symbolic comparisons: they are slow
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
    def _print_XMul(self, e):
        return "XMul(%s, %s)" % (self._print(e.args[0]), self._print(e.args[1]))

    def _print_Max(self, e):
        return "mpmath.max_(%s)" % ", ".join(self._print(a) for a in e.args)


def _namespace(ctx) -> dict:
    mod = types.SimpleNamespace()
    for name in ("mpf", "log", "exp", "log1p", "expm1", "sqrt", "pi", "e", "inf"):
        setattr(mod, name, getattr(ctx, name))
    mod.max_ = lambda *a: functools.reduce(lambda u, v: u if u >= v else v, a)
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
    flat: list[sp.Basic] = []
    for k, e in enumerate(exprs):
        e = to_elementary(e)
        elem_level = per_element[k] if per_element is not None else False
        if elem_level:
            flat.extend(expand_row(e, n, j) for j in range(n))
        else:
            flat.append(expand_row(e, n, None))
    args = [indexed(s, c) for s in elems for c in range(n)] + list(scalars)
    fn = sp.lambdify(args, flat, modules=[_namespace(ctx)], printer=_Printer, cse=True)

    def call(rows: Sequence[Sequence], scalar_values: Sequence = ()) -> list:
        flat_args = [v for row in rows for v in row] + list(scalar_values)
        return list(fn(*flat_args))

    return call
