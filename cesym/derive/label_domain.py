r"""Derive: the labels' domain, the label values at which a loss's definition is a real number.

A label inside a logarithm, a root or a non-integer power restricts what a label may be:
Kullback–Leibler's :math:`y\log(y/p)` is real for :math:`y \ge 0` only, the squared logarithmic
error's :math:`\log(1 + y)` for :math:`y \ge -1`. Elsewhere the kernels would return NaN (or a
finite gradient beside a NaN value) for an input that has no loss at all, so the public
functions refuse such a label with an error that names it (:mod:`cesym.kernels._api`), and
``cesym verify`` draws its labels inside the domain (:mod:`cesym.verify.sampling`).

How: every part of the definition that holds the label and no row reduction (the summand of a
``RowSum``, or the whole of an elementwise loss), with the primitives written as elementary
functions, the label weights as their definitions, the prediction inside its domain and each
parameter inside its declared range, goes to SymPy's ``continuous_domain`` (the set of the label
where the part is real and continuous). The labels' domain is the closure of the intersection:
its edges are limits the kernels compute (:math:`0\cdot\log 0 = 0` under a label weight,
:math:`\log(1 + y) = -\infty` at :math:`y = -1`). A part whose domain depends on the prediction
or on a parameter (:math:`\log(y - p)`) is not a set of labels alone: no domain is derived, and
the labels are not checked (the reference, which evaluates the definition, still says where a
kernel's number is not the loss). A label inside a row reduction inside a logarithm
(:math:`\log\sum_c y_c`) is not restricted element by element.
"""

from __future__ import annotations

import math
from fractions import Fraction

import sympy as sp
from sympy.calculus.util import continuous_domain

from ..define.loss import Loss
from ..define.primitives import _is_reduction, to_elementary

__all__ = ["label_domain", "inside", "moved_inside"]


def _parts(expr: sp.Basic, label: sp.Symbol) -> list[sp.Basic]:
    """The largest subexpressions of ``expr`` that hold ``label`` and no row reduction."""
    if not expr.has(label):
        return []
    if not any(_is_reduction(e) for e in sp.preorder_traversal(expr)):
        return [expr]
    return [p for a in expr.args for p in _parts(a, label)]


def _stand_ins(loss: Loss) -> dict:
    """The prediction and the parameters as symbols whose assumptions state their ranges: a
    probability as 1/(1 + q), q > 0 (so that 1 - p is positive too), a log1p input as q - 1."""
    q = sp.Dummy("q", positive=True)
    subs: dict = {}
    if loss.domain == "probability":
        subs[loss.prediction] = 1 / (1 + q)
    elif loss.domain == "log1p":
        subs[loss.prediction] = q - 1
    for a in loss.params:
        lo, hi = loss.param_range(a)
        subs[a] = sp.Dummy(a.name, positive=True) if lo > 0 else sp.Dummy(a.name, nonnegative=True) if lo >= 0 else sp.Dummy(a.name, real=True)
    return subs


def _declared(y: sp.Symbol) -> sp.Set:
    """The set the label symbol's own sign assumptions allow (``Elem("y", positive=True)``)."""
    if y.is_positive:
        return sp.Interval.open(0, sp.oo)
    if y.is_nonnegative:
        return sp.Interval(0, sp.oo)
    if y.is_negative:
        return sp.Interval.open(-sp.oo, 0)
    if y.is_nonpositive:
        return sp.Interval(-sp.oo, 0)
    return sp.S.Reals


def _float_in(v: sp.Expr, up: bool) -> float | None:
    """The nearest float64 to ``v`` on the side of the set's inside: the least float >= ``v``
    (``up``, a lower end) or the greatest <= ``v``; None for an infinite end. Every float the
    check accepts then lies in the closed set."""
    if v in (sp.oo, -sp.oo):
        return None
    f = float(v)
    exact = Fraction(int(v.p), int(v.q)) if v.is_Rational else None
    below = Fraction(f) < exact if exact is not None else sp.Float(f, 60) < sp.N(v, 60)
    above = Fraction(f) > exact if exact is not None else sp.Float(f, 60) > sp.N(v, 60)
    if up and below:
        return math.nextafter(f, math.inf)
    if not up and above:
        return math.nextafter(f, -math.inf)
    return f


def inside(v: float, domain: dict) -> bool:
    """Whether ``v`` lies in the closed set ``domain`` (:func:`label_domain`'s data)."""
    return any((lo is None or v >= lo) and (hi is None or v <= hi) for lo, hi in domain["intervals"])


def moved_inside(v: float, domain: dict) -> float:
    """``v`` itself where it lies in ``domain``, else a value in its first interval: reflected
    at a one-sided end (-2 under y >= -1 becomes 0), the middle of a bounded one."""
    if inside(v, domain):
        return v
    lo, hi = domain["intervals"][0]
    if lo is not None and hi is not None:
        return (lo + hi) / 2
    return lo + abs(v - lo) if lo is not None else hi - abs(v - hi)


_CACHE: dict[int, tuple] = {}


def label_domain(loss: Loss) -> dict | None:
    """The closed set of label values where ``loss``'s definition is real, as plain data:
    ``{"intervals": [[lo, hi], ...], "because": part}`` (``None`` for an unbounded end; the
    float64 ends inside the set), or ``None`` where the labels are not restricted (every real
    label, no label, class-index labels, or a domain that depends on the other inputs). Once per
    loss (SymPy's set solver takes up to a second; generate and verify ask several times)."""
    hit = _CACHE.get(id(loss))
    if hit is None or hit[0] is not loss:
        hit = _CACHE[id(loss)] = (loss, _derive(loss))  # (the loss kept: its id is not reused)
    return hit[1]


def _derive(loss: Loss) -> dict | None:
    y = loss.label
    if y is None or loss.label_index:
        return None
    expr = loss.value.xreplace(loss.weight_definitions)
    expr, stand_ins = to_elementary(expr, keep=()), _stand_ins(loss)
    # the label as a plain real symbol (SymPy takes log y as real for every y of a symbol declared
    # positive); its own sign assumptions join the set after
    t = sp.Dummy(y.name, real=True)
    stand_ins[y] = t
    domain, because = _declared(y), []
    for part in _parts(expr, y):
        try:
            d = continuous_domain(_logs_of_products(part.xreplace(stand_ins)), t, sp.S.Reals)
        except Exception:  # noqa: BLE001 - SymPy's set solver raises many kinds; none may stop generate
            d = None
        if not isinstance(d, sp.Set) or d.free_symbols - {t} or isinstance(d, sp.ConditionSet):
            # not a set of this label alone (log(y - p)), or not found: nothing is claimed beyond
            # what the label symbol itself declares
            return _as_data(_declared(y), [], y) if _declared(y) != sp.S.Reals else None
        if d != sp.S.Reals:
            domain = domain & d
            because.append(part)
    return _as_data(domain, because, y)


def _logs_of_products(e: sp.Expr) -> sp.Expr:
    """``e`` with each ``log(n/d)`` written ``log(n·d)``: real on the same set (n/d > 0 where
    n·d > 0, and neither where d = 0), and a product SymPy's inequality solver takes where it
    cannot take the quotient (``q/y > 0``: NotImplementedError)."""
    def product(f: sp.log) -> sp.Expr:
        n, d = sp.fraction(sp.together(f.args[0]))
        return f if d == 1 else sp.log(sp.expand(n * d))

    return e.replace(lambda f: isinstance(f, sp.log), product)


def _as_data(domain: sp.Set, because: list, y: sp.Symbol) -> dict | None:
    """:func:`label_domain`'s data for the set ``domain`` (its closure), None for every real."""
    closed = domain.closure
    if closed == sp.S.Reals:  # a hole (MAPE's y = 0) is a limit, not a restriction
        return None
    pieces = closed.args if isinstance(closed, sp.Union) else (closed,)
    intervals = []
    for piece in pieces:
        if isinstance(piece, sp.FiniteSet):  # an isolated point: the label may be only that
            for v in piece:
                lo, hi = _float_in(v, True), _float_in(v, False)
                if lo <= hi:  # (a point that is not a float holds no float label)
                    intervals.append([lo, hi])
            continue
        if not isinstance(piece, sp.Interval):
            return None
        intervals.append([_float_in(piece.start, True), _float_in(piece.end, False)])
    if not intervals:
        return None
    declared = next((k for k in ("positive", "nonnegative", "negative", "nonpositive") if getattr(y, f"is_{k}")), None)
    reason = "; ".join(sp.sstr(p) for p in because) or f"the label, declared {declared},"
    return {"intervals": intervals, "because": reason}

