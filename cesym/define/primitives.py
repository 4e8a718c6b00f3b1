"""Define: the symbolic vocabulary of a loss, as SymPy objects.

A loss is written over one *row*: the values along the class axis. Three kinds of object appear:

* :class:`Elem` symbols stand for one element of a row (the logit ``z_c``, the label ``y_c``).
  Outside a reduction an expression is *element-level*: it is evaluated at every element ``j``
  of the row (a gradient is element-level). Inside a reduction the symbol is the summation
  variable.
* Reductions over the row: :class:`RowSum` (``Σ_c f(x_c)``), :class:`RowMax`, and the
  element-level :class:`RestSum` (``Σ_{c≠j} f(x_c)``). ``RowSum`` carries the chain rule for
  rows (``_eval_derivative``), so ``sympy.diff`` differentiates any expression built from them.
* Stable primitives (softplus, sigmoid, the negative log-softmax, the negative log of a
  renormalised probability, the zero-guarded product, the scaled sum of squares; for the shapes
  people write by hand: log1mexp, log-sum-exp, log cosh, (1 + x)^y, x^y - 1 and the scaled
  norm). Each has an exact derivative (``fdiff``
  or, for row primitives, an expansion into reductions that ``diff`` goes through), an
  elementary form (:func:`to_elementary`, used by the naive kernels and the mpmath reference)
  and a NumPy printer (:mod:`cesym.generate.codegen`), whose runtime lives in
  :mod:`cesym.kernels._runtime`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

__all__ = [
    "C",
    "Elem",
    "RowSum",
    "RestSum",
    "RowMax",
    "Sigmoid",
    "Softplus",
    "NegLogSoftmax",
    "NegLogNormalized",
    "XMul",
    "CrossRest",
    "ShareCrossRest",
    "SumSquares",
    "Norm2",
    "LogSumExp",
    "Log1mexp",
    "LogExpm1",
    "LogWeight",
    "LogCosh",
    "Hypot1",
    "Hypot1m1",
    "HypotShare",
    "Log1pSquare",
    "SigmoidDiff",
    "Expm1mx",
    "Pow1p",
    "Pow1pm1",
    "Powm1",
    "PowShift",
    "ScaledPow",
    "ScaledExp",
    "Relu",
    "MaxShare",
    "MaxN",
    "MaxMinusSum",
    "Rsqrt",
    "Log1pDiff",
    "LogRatio",
    "Scaled",
    "NanOr",
    "InfOr",
    "Guarded",
    "TwoForms",
    "SoftmaxRest",
    "NormalizedRest",
    "element_symbols",
    "outer_reductions",
    "expand_row_primitives",
    "to_elementary",
]

#: Number of elements in a row (the size of the class axis); printed as ``C`` in kernels.
C = sp.Symbol("C", positive=True, integer=True)


class Elem(sp.Symbol):
    """One element of a row: ``z`` means ``z_j`` outside a reduction, ``z_c`` inside one."""

    def __new__(cls, name: str, **assumptions):
        assumptions.setdefault("real", True)
        return super().__new__(cls, name, **assumptions)


def _is_reduction(e: sp.Basic) -> bool:
    return isinstance(e, (RowSum, RowMax, SumSquares, Norm2, LogSumExp, MaxMinusSum))


def element_symbols(expr: sp.Basic) -> set[Elem]:
    """Elem symbols of ``expr`` that occur outside every row reduction (element-level use)."""
    if isinstance(expr, Elem):
        return {expr}
    if _is_reduction(expr):
        return set()
    out: set[Elem] = set()
    for a in expr.args:
        out |= element_symbols(a)
    return out


def is_row_level(expr: sp.Basic) -> bool:
    """True when ``expr`` has one value per row (no element-level symbol)."""
    return not element_symbols(expr)


def outer_reductions(expr: sp.Basic) -> set[sp.Basic]:
    """Reductions of ``expr`` (RowSum, RowMax) not nested inside another reduction."""
    if _is_reduction(expr):
        return {expr}
    out: set[sp.Basic] = set()
    for a in expr.args:
        out |= outer_reductions(a)
    return out


def _split_index(arg) -> tuple[str, str]:
    """``z_{c}`` -> ("z", "c") for display symbols; ``z`` -> ("z", "j")."""
    name = getattr(arg, "name", str(arg))
    if "_{" in name:
        base, idx = name.split("_{", 1)
        return base, idx.rstrip("}")
    return name, "j"


def _display_index(arg, default: str) -> str:
    """The summation index of a reduction whose argument holds display symbols like ``p_{k}``."""
    for s in sorted(arg.free_symbols, key=str):
        if "_{" in s.name:
            return _split_index(s)[1]
    return default


def _powered(latex):
    """A primitive's ``_latex`` that also takes the power SymPy's printer passes (``f(x)^q``)."""

    def wrapped(self, printer, exp=None):
        text = latex(self, printer)
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)

    return wrapped


class RowSum(sp.Function):
    r"""Sum over the row: :math:`\mathrm{RowSum}(f) = \sum_c f(x_c)`, a row-level value.

    Differentiating with respect to element ``x_j`` of the row (``sympy.diff(expr, x)``):

    .. math::
        \frac{\partial}{\partial x_j}\sum_c f(x_c, R) = \partial_x f(x_j, R)
            + \sum_{R'} \Big(\sum_c \partial_{R'} f(x_c, R)\Big)\,\frac{\partial R'}{\partial x_j}

    where ``R'`` runs over the reductions nested in ``f``. Row-level factors are pulled out,
    so ``RowSum(t/S)`` is ``RowSum(t)/S``.
    """

    nargs = 1

    @classmethod
    def eval(cls, arg):
        if is_row_level(arg):
            return C * arg
        if isinstance(arg, sp.Mul):
            outside = [a for a in arg.args if is_row_level(a)]
            if outside:
                inside = [a for a in arg.args if not is_row_level(a)]
                return sp.Mul(*outside) * cls(sp.Mul(*inside))
        return None

    def _eval_derivative(self, s):
        return _row_chain(self.args[0], s)

    @_powered
    def _latex(self, printer):
        return r"\sum_{%s} %s" % (_display_index(self.args[0], "c"), printer._print(self.args[0]))


def _row_chain(
    f: sp.Basic, s: sp.Symbol, outer: Callable[[sp.Basic], sp.Basic] = lambda g: g, weight: sp.Basic = sp.S.One
) -> sp.Basic:
    r""":math:`\partial/\partial x_j \sum_c w_c\,h(f(x_c, R))` for ``outer`` = h (default the
    identity) and ``weight`` = w (default 1; a row maximum's :class:`MaxShare`): the element's own
    term :math:`w_j h'(f_j)\,\partial_x f(x_j, R)` and, for each reduction R nested in f,
    :math:`\sum_c w_c h'(f_c)\,\partial_R f(x_c, R)\cdot\partial R/\partial x_j`."""
    f = expand_row_primitives(f)
    reds = outer_reductions(f)
    dummies = {r: sp.Dummy(f"R{i}") for i, r in enumerate(sorted(reds, key=sp.default_sort_key))}
    inverse = {d: r for r, d in dummies.items()}
    g = outer(f.xreplace(dummies))
    direct = weight * g.diff(s).xreplace(inverse)
    chain = sp.Add(*[RowSum(weight * g.diff(d).xreplace(inverse)) * r.diff(s) for r, d in dummies.items()])
    return direct + chain


class RowMax(sp.Function):
    r"""Largest element of the row (row-level): :math:`\max_c f(x_c)`.

    Differentiated as TensorFlow's ``reduce_max`` is: the gradient is shared equally among the
    elements that attain the maximum (:class:`MaxShare`),

    .. math::
        \frac{\partial}{\partial x_j}\max_c f(x_c, R) = s_j\,\partial_x f(x_j, R)
            + \sum_{R'} \Big(\sum_c s_c\,\partial_{R'} f(x_c, R)\Big)\,\frac{\partial R'}{\partial x_j}

    with :math:`s_j = [f_j = \max f] / \#\{c : f_c = \max f\}`.
    """

    nargs = 1

    def _eval_derivative(self, s):
        return _row_chain(self.args[0], s, weight=MaxShare(self.args[0]))

    @_powered
    def _latex(self, printer):
        return r"\max_{%s} %s" % (_display_index(self.args[0], "c"), printer._print(self.args[0]))


class Log1pDiff(sp.Function):
    r""":math:`\log(1 + a) - \log(1 + b)`, the log of the ratio :math:`(1 + a)/(1 + b)` without its
    cancellation: :math:`\pm\mathrm{log1p}(|a - b|/\min(1 + a, 1 + b))`, the log of the larger
    of the two over the smaller, and the plain difference where that ratio leaves the range
    (:func:`cesym.kernels._runtime.log1p_diff`).
    The plain difference of two logs of about 9.8 that differ by 0.98 (MSLE at y = 18050,
    p = 6772) keeps the logs' absolute errors, 10 times its own ulp.
    :math:`\partial_a = 1/(1 + a)`, :math:`\partial_b = -1/(1 + b)`."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return 1 / (1 + a) if argindex == 1 else -1 / (1 + b)

    def elementary(self):
        return log1p(self.args[0]) - log1p(self.args[1])

    @_powered
    def _latex(self, printer):
        a, b = (printer._print(x) for x in self.args)
        return r"\log\frac{1 + %s}{1 + %s}" % (a, b)


class LogRatio(sp.Function):
    r""":math:`\log(w/v) = \log w - \log v` for :math:`w, v > 0`, accurate to itself: the
    difference of the two logs keeps their absolute errors, :math:`2^{-53}(|\log w| + |\log v|)`,
    which is all of the result where w and v agree to float32 precision (KL divergence of a
    prediction a float32 ulp from its target: ``log y - log p`` of about -2.3 each, the
    difference 1e-7); computed as :math:`\pm\mathrm{log1p}(|w - v|/\min(w, v))`, the log of
    the larger over the smaller (:func:`cesym.kernels._runtime.log_ratio`), exactly 0 at w = v.
    :math:`\partial_w = 1/w`, :math:`\partial_v = -1/v`."""

    nargs = 2

    def fdiff(self, argindex=1):
        w, v = self.args
        return 1 / w if argindex == 1 else -1 / v

    def elementary(self):
        return sp.log(self.args[0]) - sp.log(self.args[1])

    @_powered
    def _latex(self, printer):
        w, v = (printer._print(x) for x in self.args)
        return r"\log\frac{%s}{%s}" % (w, v)


class MaxMinusSum(sp.Function):
    r""":math:`\max_c f_c - \sum_c g_c` (row-level), evaluated as
    :math:`\max_c \big(f_c - g_c - \sum_{c' \ne c} g_{c'}\big)`: the sum moved inside the
    maximum and each candidate's own :math:`f_c - g_c` formed first. ``max f - Σ g`` cancels
    where the maximising element carries the sum (the categorical hinge's
    :math:`\max (1 - y)p - \sum y p` at :math:`y = 1/2` and :math:`p = 3.6\cdot 10^{37}`:
    1.8e37 - 1.8e37 is 0 in rounding where the exact difference is :math:`-3.9\cdot 10^{12}`).
    Its derivative is that of :math:`\max f - \sum g` (the maximum's share among ties)."""

    nargs = 2

    def _eval_derivative(self, s):
        f, g = self.args
        return (RowMax(f) - RowSum(g)).diff(s)

    def elementary(self):
        f, g = self.args
        return RowMax(f) - RowSum(g)

    @_powered
    def _latex(self, printer):
        f, g = (printer._print(a) for a in self.args)
        return r"\left(\max_c %s - \sum_c %s\right)" % (f, g)


class Rsqrt(sp.Function):
    r""":math:`1/\sqrt{x}` as TensorFlow's ``Rsqrt`` computes it, for the model of Keras's algorithm
    only (``Loss.keras``; never generated, no elementary form): SymPy writes :math:`(p^2)^{-1/2}` of
    a single element as :math:`1/|p|`, where TensorFlow squares first (:math:`p^2` overflows to
    inf and its rsqrt is 0). Derivative :math:`-x^{-3/2}/2` (TensorFlow: :math:`-y^3/2` of the output y)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return -Rsqrt(self.args[0]) ** 3 / 2

    @_powered
    def _latex(self, printer):
        return r"\frac{1}{\sqrt{%s}}" % printer._print(self.args[0])


class MaxShare(sp.Function):
    r"""The share of element j in the row maximum: :math:`[f_j = \max_c f_c] / \#\{c : f_c = \max_c f_c\}`
    (element-level): 1 at a unique maximum, 1/k at each of k tied ones, 0 elsewhere, as
    TensorFlow's gradient of ``reduce_max`` distributes it. Piecewise constant: derivative 0."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.S.Zero

    def elementary(self):
        f = self.args[0]
        top = sp.Heaviside(f - RowMax(f), 1)  # 1 where f_j is the maximum
        return top / RowSum(top)

    @_powered
    def _latex(self, printer):
        return r"\operatorname{share}_{\max}\left(%s\right)" % printer._print(self.args[0])


class MaxN(sp.Function):
    r"""The maximum of an expanded row, :math:`\max(a_0, \ldots, a_{n-1})` (what :class:`RowMax`
    becomes for a concrete row), differentiated with TensorFlow's equal share among ties:
    :math:`\partial/\partial a_i = m_i / \sum_k m_k`, :math:`m_i = \prod_{k \ne i} [a_i \ge a_k]`.
    (SymPy's ``Max`` differentiates to Heaviside steps that are 1/2 at a tie.)"""

    def fdiff(self, argindex=1):
        a = self.args
        ind = [sp.Mul(*[sp.Heaviside(a[i] - a[k], 1) for k in range(len(a)) if k != i]) for i in range(len(a))]
        return ind[argindex - 1] / sp.Add(*ind)

    def _latex(self, printer):
        return r"\max\left(%s\right)" % ", ".join(printer._print(x) for x in self.args)


class RestSum(sp.Function):
    r"""Sum of the *other* elements: :math:`\mathrm{RestSum}(f)_j = \sum_{c \ne j} f(x_c)`.

    Element-level. Computed without cancellation (:func:`cesym.kernels._runtime.rest_sum`), where
    ``RowSum(f) - f`` would lose every digit of a row dominated by element ``j``.
    """

    nargs = 1

    def _eval_derivative(self, s):
        f = self.args[0]
        return (RowSum(f) - f).diff(s)

    @_powered
    def _latex(self, printer):
        return r"\sum_{c \ne j} %s" % printer._print(self.args[0])


class Sigmoid(sp.Function):
    r"""Logistic sigmoid :math:`\sigma(x) = 1/(1 + e^{-x})`; :math:`\sigma' = \sigma(x)\sigma(-x)`.

    Evaluated as ``1/(1+exp(-x))`` for ``x >= 0`` and ``exp(x)/(1+exp(x))`` otherwise, so that
    neither branch overflows and ``σ(-x)`` keeps full relative accuracy when it is tiny.
    """

    nargs = 1

    def fdiff(self, argindex=1):
        x = self.args[0]
        return Sigmoid(x) * Sigmoid(-x)

    def elementary(self):
        return 1 / (1 + sp.exp(-self.args[0]))

    @_powered
    def _latex(self, printer):
        return r"\sigma\left(%s\right)" % printer._print(self.args[0])


class Softplus(sp.Function):
    r"""Softplus :math:`\log(1 + e^{x})`, so that :math:`-\log\sigma(x) = \mathrm{softplus}(-x)`.

    Stable form :math:`\max(x, 0) + \mathrm{log1p}(e^{-|x|})` (``numpy.logaddexp(0, x)``): no
    overflow past x = 709.78 where ``log1p(exp(x))`` returns inf, and full relative accuracy
    for very negative x where the value is ``e^{x}``.
    """

    nargs = 1

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0])

    def elementary(self):
        return sp.log(1 + sp.exp(self.args[0]))

    @_powered
    def _latex(self, printer):
        return r"\operatorname{softplus}\left(%s\right)" % printer._print(self.args[0])


class NegLogSoftmax(sp.Function):
    r"""Negative log-softmax of element j: :math:`\log\sum_c e^{z_c} - z_j` (element-level).

    Stable form with ``m = max z`` and ``k = argmax z``:
    :math:`(m - z_j) + \mathrm{log1p}\big(\sum_{c \ne k} e^{z_c - m}\big)`, a sum of two
    non-negative terms. ``lse(z) - z_j`` returns 0 when class j wins by 300 (true value
    about 1e-130); this form keeps it.
    """

    nargs = 1

    def reduction_form(self):
        z = self.args[0]
        return sp.log(RowSum(sp.exp(z))) - z

    @_powered
    def _latex(self, printer):
        base, idx = _split_index(self.args[0])
        return r"\left(-\log\operatorname{softmax}(%s)_{%s}\right)" % (base, idx)


class NegLogNormalized(sp.Function):
    r"""Negative log of a renormalised probability: :math:`-\log(p_j / \sum_c p_c)` (element-level).

    Stable form :math:`\mathrm{log1p}(r_j / p_j)` with :math:`r_j = \sum_{c\ne j} p_c`
    (a :class:`RestSum`), so a dominant ``p_j`` close to the row sum keeps its digits; where
    ``r_j/p_j`` overflows, :math:`\log S - \log p_j` (then above 709, no cancellation).
    """

    nargs = 1

    def reduction_form(self):
        p = self.args[0]
        return sp.log(RowSum(p)) - sp.log(p)

    @_powered
    def _latex(self, printer):
        base, idx = _split_index(self.args[0])
        return r"\left(-\log\frac{%s_{%s}}{\sum_i %s_i}\right)" % (base, idx, base)


class CrossRest(sp.Function):
    r"""Softmax-gradient numerator :math:`\sum_{c\ne j} (t_c e_j - t_j e_c)`, :math:`e = e^{z - \max z}`.

    Element-level; equal to ``e_j·RestSum(t)_j - t_j·RestSum(e)_j``. With hard multi-hot labels
    two labelled classes with close logits make ``e_j - e_c`` cancel (for logits near 0 every
    digit goes: 1 - exp(-3e-16)); the runtime evaluates such pairs as
    :math:`t_j e_c \operatorname{expm1}(z_j - z_c)`, which keeps them.
    """

    nargs = 2

    def reduction_form(self):
        t, z = self.args
        e = sp.exp(z - RowMax(z))
        return e * RestSum(t) - t * RestSum(e)

    @_powered
    def _latex(self, printer):
        t, z = (_split_index(a)[0] for a in self.args)
        return r"\sum_{c \ne j}\left(%s_c e^{%s_j} - %s_j e^{%s_c}\right)e^{-\max_k %s_k}" % (t, z, t, z, z)


class ShareCrossRest(sp.Function):
    r"""Softmax-gradient numerator with weights that depend on the log-share:
    :math:`\sum_{c\ne j} (t_c g_c e_j - t_j g_j e_c)`, :math:`e = e^{z - \max z}`, where
    :math:`g_c = g(\nu_c)` is a function of :math:`\nu_c = -\log\operatorname{softmax}(z)_c`.

    Arguments ``(t, z, g, dg)``: the label weight, the logits, ``g`` as an element-level
    expression of ``z`` (through :class:`NegLogSoftmax`, :class:`SoftmaxRest` and the share) and
    ``dg = Lambda(ν, g'(ν))``, its derivative in ν as a function of one variable.

    It is :math:`S\cdot\partial/\partial z_j \sum_c t_c \varphi(\nu_c)` for
    :math:`g = \varphi'` (:math:`\partial\nu_c/\partial z_j = r_j - [c = j]`): the
    gradient of any label-weighted function of the log-share. Where the logits are close (all
    near 0, or two labelled classes) ``e_j - e_c`` and ``g_c - g_j`` cancel; the runtime takes
    such a pair as :math:`(t_c - t_j) g_c e_j + t_j\big(e_j (g_c - g_j) - g_j e_c
    \operatorname{expm1}(z_j - z_c)\big)` with :math:`g_c - g_j = \int_{\nu_j}^{\nu_c} g'`
    by Gauss–Legendre quadrature (:math:`\nu_c - \nu_j = z_j - z_c`, exact).
    """

    nargs = 4

    def reduction_form(self):
        t, z, g, _ = self.args
        e = sp.exp(z - RowMax(z))
        return e * RestSum(t * g) - t * g * RestSum(e)

    @_powered
    def _latex(self, printer):
        t, z = (_split_index(a)[0] for a in self.args[:2])
        return r"\sum_{c \ne j}\left(%s_c g_c e^{%s_j} - %s_j g_j e^{%s_c}\right)e^{-\max_k %s_k}" % (t, z, t, z, z)


class XMul(sp.Function):
    r"""Product with the convention :math:`0 \cdot b = 0` even for infinite b (so 0·log 0 = 0).

    Wraps each label weight of a loss on probabilities, where a zero probability makes the
    other factor infinite.
    """

    nargs = 2

    def _eval_derivative(self, s):
        a, b = self.args
        db = b.diff(s)
        first = XMul(a, db)
        factors = sp.Mul.make_args(a)
        if a.has(s) and any(f.exp.is_negative and f.base in factors for f in db.atoms(sp.Pow)):
            # a·b' that cancels a (p·(1/p) of d(p·log p)/dp) is that quotient: the limit at
            # a = 0, and no overflow of b' at a subnormal a (5e-324·(1/5e-324) = 5e-324·inf);
            # without a reciprocal of a factor of a in b' there is nothing to cancel (and
            # cancel is slow on the large derivatives of the references' condition numbers)
            c = sp.cancel(a * db)
            if not any(isinstance(f, sp.Pow) and f.base == a and f.exp.is_negative for f in sp.preorder_traversal(c)):
                first = c
        return first + a.diff(s) * b

    def elementary(self):
        return self.args[0] * self.args[1]

    @_powered
    def _latex(self, printer):
        return r"%s \cdot %s" % (
            printer.parenthesize(self.args[0], sp.printing.precedence.PRECEDENCE["Mul"]),
            printer.parenthesize(self.args[1], sp.printing.precedence.PRECEDENCE["Mul"]),
        )


class SumSquares(sp.Function):
    r"""Sum of squares over the row, :math:`\|x\|_2^2 = \sum_c x_c^2` (row-level), scaled so that
    no square overflows or underflows before the result does.

    :math:`\partial/\partial x_j \sum_c x_c^2 = 2 x_j` (``fdiff``, where the argument holds no row
    reduction, so the chain rule through it is SymPy's; else the row chain rule of ``RowSum``). Evaluated as LAPACK's ``nrm2`` does:
    :math:`m^2 \sum_c (x_c/m)^2` with :math:`m` a power of two next to :math:`\max_c |x_c|`
    (exact scaling), where the plain sum would overflow (|x| past 1.3e154 in float64) or lose
    digits to subnormal squares (|x| below 1.5e-154); the plain sum elsewhere
    (:func:`cesym.kernels._runtime.sum_squares`). Elementary form: ``RowSum(x**2)``.
    """

    nargs = 1

    def fdiff(self, argindex=1):
        return 2 * self.args[0]

    def _eval_derivative(self, s):
        # an argument that holds reductions (a unit vector x/‖x‖ inside the sum) also moves with
        # every element of the row through them: the row chain rule, not fdiff's element alone
        if outer_reductions(self.args[0]):
            return _row_chain(self.args[0], s, lambda g: g**2)
        return super()._eval_derivative(s)

    def elementary(self):
        return RowSum(self.args[0] ** 2)

    @_powered
    def _latex(self, printer):
        return r"\left\|%s\right\|_2^2" % printer._print(self.args[0])


class Norm2(sp.Function):
    r"""Euclidean norm of the row, :math:`\|x\|_2 = \sqrt{\sum_c x_c^2}` (row-level), scaled so that
    it overflows or underflows only where the norm does.

    :math:`\partial/\partial x_j \|x\|_2 = x_j/\|x\|_2` (``fdiff``, where the argument holds no row
    reduction; else the row chain rule, as for :class:`SumSquares`). ``sqrt(SumSquares(x))`` overflows past a sum of
    squares of 1.8e308 (a row of 1e200s, whose norm is 1.4e200) and is 0 where every square
    underflows (a row of 1e-200s); the runtime (:func:`cesym.kernels._runtime.norm2`) takes
    the square root of the scaled sum :math:`2^E S` as :math:`2^{E/2}\sqrt{S}`.
    Elementary form: ``sqrt(RowSum(x**2))``.
    """

    nargs = 1

    def fdiff(self, argindex=1):
        return self.args[0] / self

    def _eval_derivative(self, s):
        if outer_reductions(self.args[0]):  # as SumSquares: the row chain rule through them
            return _row_chain(self.args[0], s, lambda g: g**2) / (2 * self)
        return super()._eval_derivative(s)

    def elementary(self):
        return sp.sqrt(RowSum(self.args[0] ** 2))

    @_powered
    def _latex(self, printer):
        return r"\left\|%s\right\|_2" % printer._print(self.args[0])


class Scaled(sp.Function):
    r"""An element divided by a row-level scale, :math:`x_j / s` (element-level), kept as one
    factor: inside a row sum :math:`\sum_c (x_c/s)\,w_c` the division comes first, so that
    :math:`x/\|x\|_2` is a unit vector whose products neither overflow nor underflow
    (:math:`\sum_c x_c w_c` of two rows of 1e200s is inf where the cosine is 1).
    (``RowSum`` takes a bare row-level factor out of the sum; this one it cannot.)
    :math:`\partial_x = 1/s`, :math:`\partial_s = -x/s^2`.
    """

    nargs = 2

    def fdiff(self, argindex=1):
        x, s = self.args
        return 1 / s if argindex == 1 else -x / s**2

    def elementary(self):
        return self.args[0] / self.args[1]

    @_powered
    def _latex(self, printer):
        return r"\frac{%s}{%s}" % (printer._print(self.args[0]), printer._print(self.args[1]))


class LogSumExp(sp.Function):
    r"""Log-sum-exp over the row, :math:`\log\sum_c e^{u_c}` (row-level).

    Stable form with ``m = max u`` and ``k = argmax u``: :math:`m +
    \mathrm{log1p}\big(\sum_{c \ne k} e^{u_c - m}\big)`, the numbers of the softmax's
    ``softmax_parts`` (shared with a :class:`NegLogSoftmax` of the same row): ``log(Σ exp(u))``
    overflows past u = 709.78 and is -inf when every u is below -745. Differentiated through
    its reduction form (the softmax).
    """

    nargs = 1

    def reduction_form(self):
        return sp.log(RowSum(sp.exp(self.args[0])))

    def _eval_derivative(self, s):
        return self.reduction_form().diff(s)  # the row chain rule of RowSum: the softmax

    @_powered
    def _latex(self, printer):
        return r"\log\sum_{%s} e^{%s}" % (_display_index(self.args[0], "c"), printer._print(self.args[0]))


class Log1mexp(sp.Function):
    r""":math:`\log(1 - e^{u})` for :math:`u \le 0`; derivative :math:`e^{u}/\operatorname{expm1}(u)`.

    Stable form (Mächler 2012, "Accurately computing log(1 - exp(-|a|))"):
    :math:`\log(-\operatorname{expm1}(u))` for :math:`u > -\log 2` and
    :math:`\mathrm{log1p}(-e^{u})` below. ``1 - exp(u)`` rounds to 0 for :math:`|u| < 2^{-54}`
    (log: -inf, exact: :math:`\log|u|`) and keeps few digits of :math:`1 - e^u` near 0;
    ``log(-expm1(u))`` loses the value where :math:`e^u` is small (u = -40: the value is
    :math:`-4.25\cdot10^{-18}`, ``-expm1(-40)`` rounds to 1 and its log to 0).
    """

    nargs = 1

    def fdiff(self, argindex=1):
        # e^u/expm1(u) = -1/expm1(-u): for u < 0 neither part overflows (expm1(-u) does past
        # u = -709.8, where the derivative, about -e^u, is still a subnormal number, not 0)
        return sp.exp(self.args[0]) / expm1(self.args[0])

    def elementary(self):
        return sp.log(1 - sp.exp(self.args[0]))

    @_powered
    def _latex(self, printer):
        return r"\operatorname{log1mexp}\left(%s\right)" % printer._print(self.args[0])


class LogExpm1(sp.Function):
    r""":math:`\log(e^{u} - 1)` for :math:`u > 0`; derivative :math:`-1/\operatorname{expm1}(-u)`
    (:math:`= e^u/(e^u - 1)`, which is inf/inf past u = 709.78 where it is 1).

    Stable form: :math:`u + \mathrm{log1p}(-e^{-u})` for :math:`u > 1` and
    :math:`\log(\operatorname{expm1}(u))` below. ``exp(u) - 1`` overflows past u = 709.78 (log:
    inf where the value is about u) and keeps few digits of a small u (none below 2^-53: log 0 =
    -inf where the value is log u); ``expm1`` keeps them, but overflows as ``exp`` does. The
    large-u form is u plus a term in (-0.46, 0], which cannot cancel u (>= 1) by more than a bit.
    """

    nargs = 1

    def fdiff(self, argindex=1):
        return -1 / expm1(-self.args[0])

    def elementary(self):
        return sp.log(sp.exp(self.args[0]) - 1)

    @_powered
    def _latex(self, printer):
        return r"\operatorname{logexpm1}\left(%s\right)" % printer._print(self.args[0])


class LogWeight(sp.Function):
    r""":math:`\log w` of a weight :math:`w \ge 0`, with :math:`\log 0 = -\infty`; derivative
    :math:`1/w`.

    Its own function so that SymPy does not fold :math:`e^{u + \log w}` back into
    :math:`w \cdot e^{u}`: in a log-sum-exp :math:`\operatorname{lse}(u + \log w)` the shifted
    term :math:`e^{u + \log w - m}` is :math:`e^{-\infty} = 0` for a zero weight, where
    :math:`0 \cdot e^{u - m}` is :math:`0 \cdot \infty` = NaN once :math:`u - m` passes 709.78.
    """

    nargs = 1

    def fdiff(self, argindex=1):
        return 1 / self.args[0]

    def elementary(self):
        return sp.log(self.args[0])

    @_powered
    def _latex(self, printer):
        return r"\log\left(%s\right)" % printer._print(self.args[0])


class LogCosh(sp.Function):
    r""":math:`\log\cosh u`; derivative :math:`\tanh u`.

    Stable form: :math:`\tfrac12\mathrm{log1p}(\sinh^2 u)` for :math:`|u| < 1` (the value is
    :math:`u^2/2` there; :math:`|u| - \log 2 + \ldots` cancels to nothing for small u) and
    :math:`|u| - \log 2 + \mathrm{log1p}(e^{-2|u|})` for :math:`|u| \ge 1` (``cosh`` overflows
    past 710.48: inf where the value is about 710).
    """

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.tanh(self.args[0])

    def elementary(self):
        return sp.log(sp.cosh(self.args[0]))

    @_powered
    def _latex(self, printer):
        return r"\log\cosh\left(%s\right)" % printer._print(self.args[0])


class Hypot1(sp.Function):
    r""":math:`\sqrt{1 + u^2}`, as ``hypot(1, u)``: no overflow of :math:`u^2` (the value of
    :math:`u = 10^{200}` is :math:`10^{200}`, where ``sqrt(1 + u**2)`` is inf).
    :math:`\partial_u = u/\sqrt{1 + u^2}` (:class:`HypotShare`)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return HypotShare(self.args[0])

    def elementary(self):
        return sp.sqrt(1 + self.args[0] ** 2)

    @_powered
    def _latex(self, printer):
        return r"\sqrt{1 + %s^{2}}" % printer.parenthesize(self.args[0], 1000)


class Hypot1m1(sp.Function):
    r""":math:`\sqrt{1 + u^2} - 1` (the pseudo-Huber and Charbonnier losses), as
    :math:`|u|\cdot\frac{|u|}{\sqrt{1 + u^2} + 1}`: the difference cancels for small u (every
    digit of :math:`u^2/2` at :math:`u = 10^{-8}`) and :math:`u^2` overflows for large u; the
    quotient lies in [0, 1), so the product neither cancels nor overflows before the result does.
    :math:`\partial_u = u/\sqrt{1 + u^2}` (:class:`HypotShare`)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return HypotShare(self.args[0])

    def elementary(self):
        return sp.sqrt(1 + self.args[0] ** 2) - 1

    @_powered
    def _latex(self, printer):
        return r"\left(\sqrt{1 + %s^{2}} - 1\right)" % printer.parenthesize(self.args[0], 1000)


class HypotShare(sp.Function):
    r""":math:`u/\sqrt{1 + u^2}`, the derivative of :class:`Hypot1` and :class:`Hypot1m1`: within
    [-1, 1], ±1 at u = ±inf (``u/hypot(1, u)`` is inf/inf there: a u past the largest float, such
    as (x - y)/δ for a small δ, keeps its limit). :math:`\partial_u = (1 + u^2)^{-3/2}`."""

    nargs = 1

    def fdiff(self, argindex=1):
        return Hypot1(self.args[0]) ** -3

    def elementary(self):
        return self.args[0] / sp.sqrt(1 + self.args[0] ** 2)

    @_powered
    def _latex(self, printer):
        u = printer._print(self.args[0])
        return r"\frac{%s}{\sqrt{1 + %s^{2}}}" % (u, printer.parenthesize(self.args[0], 1000))


class Pow1p(sp.Function):
    r""":math:`(1 + x)^y` as :math:`\exp(y \cdot \mathrm{log1p}(x))`, with :math:`(1 + x)^0 = 1`.

    ``1 + x`` rounds away the digits of a small x, and the power multiplies that relative error
    by y: :math:`(1 - 10^{-10})^{10^{10}}` keeps 6 digits, the log1p form all of them. The
    product :math:`y \cdot \mathrm{log1p}(x)` is zero-guarded (``0·(-inf) = 0``: :math:`0^0 = 1`
    at x = -1, as ``numpy.power``). :math:`\partial_x = y\,(1 + x)^{y - 1}`
    (zero-guarded: 0 for y = 0, also at x = -1), :math:`\partial_y = (1 + x)^y \mathrm{log1p}(x)`.
    """

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        if argindex == 1:
            return XMul(y, Pow1p(x, y - 1))  # 0 for y = 0 also at x = -1 (a constant 1)
        return self * log1p(x)

    def elementary(self):
        return (1 + self.args[0]) ** self.args[1]

    @_powered
    def _latex(self, printer):
        x, y = (printer._print(a) for a in self.args)
        return r"\left(1 + %s\right)^{%s}" % (x, y)


class Expm1mx(sp.Function):
    r""":math:`e^u - 1 - u`, the exponential less its first two Taylor terms.

    A Gaussian KL divergence's :math:`(e^s - 1 - s)/2` (a VAE's, in the log variance s):
    ``expm1(s) - s`` keeps only about :math:`-\log_2|s|` fewer bits than it has, none at
    s = 1e-8, where the value is 5e-17; the series :math:`\sum_{k \ge 2} u^k/k!` keeps them
    below :math:`|u| = 1/2` (:func:`cesym.kernels._runtime.expm1mx`).
    :math:`\partial_u = \operatorname{expm1}(u)`."""

    nargs = 1

    def fdiff(self, argindex=1):
        return expm1(self.args[0])

    def elementary(self):
        return sp.exp(self.args[0]) - 1 - self.args[0]

    @_powered
    def _latex(self, printer):
        u = printer._print(self.args[0])
        return r"\left(e^{%s} - 1 - %s\right)" % (u, u)


class Pow1pm1(sp.Function):
    r""":math:`(1 + x)^m - 1` as :math:`\operatorname{expm1}(m \cdot \mathrm{log1p}(x))`.

    Tukey's biweight :math:`1 - (1 - u)^3`: ``(1 + x)**m - 1`` rounds 1 + x first and then
    cancels (0 at u = 1e-18, where the value is 3e-18); expm1 of the exact small exponent keeps
    every digit. An integer m takes a negative base too (:func:`cesym.kernels._runtime.pow1pm1`).
    :math:`\partial_x = m (1 + x)^{m - 1}` (zero-guarded: 0 for m = 0),
    :math:`\partial_m = (1 + x)^m \mathrm{log1p}(x)`."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        if argindex == 1:
            return y * Pow1p(x, y - 1) if y.is_number else XMul(y, Pow1p(x, y - 1))
        return Pow1p(x, y) * log1p(x)

    def elementary(self):
        return (1 + self.args[0]) ** self.args[1] - 1

    @_powered
    def _latex(self, printer):
        x, y = (printer._print(a) for a in self.args)
        return r"\left(\left(1 + %s\right)^{%s} - 1\right)" % (x, y)


class Powm1(sp.Function):
    r""":math:`x^y - 1` (Boost's ``powm1``) as :math:`\operatorname{expm1}(y \log x)` for x >= 0.

    ``x**y - 1`` cancels when :math:`x^y` is close to 1 (x near 1, or y near 0): ``1 - p**q`` of
    the generalised cross-entropy at p = 1 - 2^-53 is 0 or 2^-53 off by a factor q; the expm1
    form keeps every digit. The product is zero-guarded (``y = 0``: 0 for every x, as
    :math:`x^0 - 1`). :math:`\partial_x = y x^{y - 1}` (zero-guarded: 0 for y = 0, also at
    x = 0; plain power: :math:`0^0 = 1`), :math:`\partial_y = x^y \log x`.
    """

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        if argindex == 1:
            return XMul(y, PowShift(x, y))  # 0 for y = 0 also at x = 0 (a constant 0)
        return x**y * sp.log(x)

    def elementary(self):
        return self.args[0] ** self.args[1] - 1

    @_powered
    def _latex(self, printer):
        x, y = (printer._print(a) for a in self.args)
        return r"\operatorname{powm1}\left(%s, %s\right)" % (x, y)


class PowShift(sp.Function):
    r""":math:`x^{y-1}`, evaluated as :math:`x^y / x` for a positive normal x.

    ``x**(y - 1)`` rounds the exponent: y - 1 is off by up to half an ulp of 1, which moves
    :math:`x^{y-1}` by :math:`|\log x|` ulps (690 at x = 1e-300, whatever y); ``x**y / x`` rounds
    twice. At 0, subnormal or infinite x (where 1/x or x^y leaves the range) the plain power.
    :math:`\partial_x = (y - 1) x^{y-2}`, :math:`\partial_y = x^{y-1}\log x`.
    """

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        if argindex == 1:
            return (y - 1) * x ** (y - 2)
        return x ** (y - 1) * sp.log(x)

    def elementary(self):
        return self.args[0] ** (self.args[1] - 1)

    @_powered
    def _latex(self, printer):
        x, y = (printer._print(a) for a in self.args)
        return r"%s^{%s - 1}" % (x, y)


class ScaledPow(sp.Function):
    r""":math:`x^a s` for :math:`x > 0`, kept in range where :math:`x^a` alone is not.

    A power of a small share divided by a small row sum (:math:`R^{\gamma}/S` for a dominant class
    of a row of scale 1e-21: :math:`R^2 = 10^{-330}` underflows to 0, the quotient 1e-310 does
    not). Computed as ``x**a * s``; where that is 0, subnormal or infinite, as
    :math:`m^a\,2^{f} s \cdot 2^{n}` with :math:`x = m\,2^{e}` (``frexp``) and
    :math:`a e = n + f` split exactly. :math:`\partial_x = a\,x^{a-1}s` (zero-guarded),
    :math:`\partial_a = x^a s \log x`, :math:`\partial_s = x^a`.
    """

    nargs = 3

    def fdiff(self, argindex=1):
        x, a, s = self.args
        if argindex == 1:
            return XMul(a, ScaledPow(x, a - 1, s))
        if argindex == 2:
            return self * sp.log(x)
        return x**a

    def elementary(self):
        x, a, s = self.args
        return x**a * s

    @_powered
    def _latex(self, printer):
        x, a, s = (printer._print(v) for v in self.args)
        return r"%s^{%s}\,%s" % (x, a, s)


class ScaledExp(sp.Function):
    r""":math:`a\,e^{u}`, zero-guarded (0 where :math:`a = 0`, whatever :math:`u`), kept in range
    where :math:`e^u` alone is not.

    A label factor times an exponential of the prediction (a Gaussian likelihood's
    :math:`y^2 e^{-s}/2`): :math:`e^{u}` overflows past :math:`u = 709.78` and underflows past
    -745 where the product need not (:math:`e^{710}/4` is 5.6e307), and :math:`0 \cdot \infty`
    is NaN where the term is 0. :math:`\partial_u = a e^u`, :math:`\partial_a = e^u`.
    """

    nargs = 2

    def fdiff(self, argindex=1):
        u, a = self.args
        return self if argindex == 1 else sp.exp(u)

    def elementary(self):
        u, a = self.args
        return a * sp.exp(u)

    @_powered
    def _latex(self, printer):
        u, a = (printer._print(v) for v in self.args)
        return r"%s\,e^{%s}" % (a, u)


class Relu(sp.Function):
    r""":math:`\max(u, 0)`, the hinge; derivative the step :math:`[u \ge 0]`, 1 at the kink.

    At :math:`u = 0` the derivative is a convention: 1 is TensorFlow's (``maximum(u, 0)`` passes
    the gradient to its first argument on a tie), so a hinge's gradient at its kink is that of
    its active side. SymPy's own ``Max(u, 0)`` differentiates to ``Heaviside(u)``, 1/2 at 0.
    """

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.Heaviside(self.args[0], 1)

    def elementary(self):
        u = self.args[0]
        return sp.Piecewise((u, u >= 0), (0, True))  # differentiates to the step with 1 at 0

    @_powered
    def _latex(self, printer):
        return r"\max\left(%s, 0\right)" % printer._print(self.args[0])


class SoftmaxRest(sp.Function):
    r"""One minus the softmax of element j: :math:`1 - e^{z_j}/\sum_c e^{z_c} = \sum_{c\ne j}
    e^{z_c}/\sum_c e^{z_c}` (element-level).

    Computed as ``rest_sum(e)/S`` with :math:`e = e^{z - \max z}`, :math:`S = \sum e`: the other
    classes' share, kept whole where a dominant class makes :math:`1 - \mathrm{softmax}_j` round
    to 0 (:math:`e^{-40}`; the focal factor :math:`(1 - r)^\gamma` lives there).
    """

    nargs = 1

    def reduction_form(self):
        z = self.args[0]
        return 1 - sp.exp(z) / RowSum(sp.exp(z))

    @_powered
    def _latex(self, printer):
        base, idx = _split_index(self.args[0])
        return r"\left(1 - \operatorname{softmax}(%s)_{%s}\right)" % (base, idx)


class NormalizedRest(sp.Function):
    r"""One minus a renormalised probability: :math:`1 - p_j/\sum_c p_c = \sum_{c\ne j} p_c /
    \sum_c p_c` (element-level), computed as ``rest_sum(p)/S``: no cancellation for a dominant
    :math:`p_j`."""

    nargs = 1

    def reduction_form(self):
        p = self.args[0]
        return 1 - p / RowSum(p)

    @_powered
    def _latex(self, printer):
        base, idx = _split_index(self.args[0])
        return r"\left(1 - \frac{%s_{%s}}{\sum_i %s_i}\right)" % (base, idx, base)


_ROW_PRIMITIVES = (NegLogSoftmax, NegLogNormalized, CrossRest, ShareCrossRest, LogSumExp, SoftmaxRest, NormalizedRest)
class Log1pSquare(sp.Function):
    r""":math:`\log(1 + u^2)` (the Cauchy or Lorentzian loss :math:`\log(1 + (e/c)^2)`):
    :math:`\mathrm{log1p}(u^2)` for :math:`|u| \le 1`, :math:`2\log|u| + \mathrm{log1p}(u^{-2})`
    above, so that :math:`u^2` neither overflows (past :math:`|u| = 1.3\cdot10^{154}`, where the
    value is about 709) nor rounds :math:`1 + u^2` to 1 for a small u.
    :math:`\partial_u = 2u/(1 + u^2) = 2\,\mathrm{HypotShare}(u)/\mathrm{Hypot1}(u)`, which
    neither overflows nor is inf/inf."""

    nargs = 1

    def fdiff(self, argindex=1):
        return 2 * HypotShare(self.args[0]) / Hypot1(self.args[0])

    def elementary(self):
        return sp.log(1 + self.args[0] ** 2)

    @_powered
    def _latex(self, printer):
        return r"\log\left(1 + %s^{2}\right)" % printer.parenthesize(self.args[0], 1000)


class SigmoidDiff(sp.Function):
    r""":math:`a\,\sigma(u) - b\,\sigma(-u)`, the logistic gradient :math:`(1 - t)\sigma(x) -
    t\,\sigma(-x) = \sigma(x) - t` of a (label-smoothed, focal) binary cross-entropy. As
    :math:`\tfrac12\big((a - b) + (a + b)\tanh(u/2)\big)` for :math:`|u| < 1` (an identity, as
    :math:`\sigma(\pm u) = \tfrac12(1 \pm \tanh(u/2))`): with :math:`a = b` (label smoothing 1,
    every target 1/2) the two sigmoids cancel to :math:`\tfrac{a}{2}\tanh(u/2) \approx au/4`
    (0 at u = 1e-20, 10^{10} ulps off at 1e-10), where :math:`a - b` is exact and tanh keeps u.
    Past :math:`|u| = 1` as the two terms: there they differ by at least :math:`\tanh(1/2)` of
    their sum where a = b, and the tanh form would lose :math:`b\,e^{-u}` beside :math:`a = 0`.
    :math:`\partial_u = (a + b)\,\sigma(u)\sigma(-u)`."""

    nargs = 3

    def fdiff(self, argindex=1):
        a, b, u = self.args
        if argindex == 1:
            return Sigmoid(u)
        if argindex == 2:
            return -Sigmoid(-u)
        return (a + b) * Sigmoid(u) * Sigmoid(-u)

    def sum_form(self) -> sp.Expr:
        """The two terms it computes (what the rounding-error magnitude and ranges read)."""
        a, b, u = self.args
        return a * Sigmoid(u) - b * Sigmoid(-u)

    def elementary(self):
        a, b, u = self.args
        return a / (1 + sp.exp(-u)) - b / (1 + sp.exp(u))

    @_powered
    def _latex(self, printer):
        a, b, u = (printer._print(x) for x in self.args)
        return r"\left(%s\,\sigma\left(%s\right) - %s\,\sigma\left(-%s\right)\right)" % (a, u, b, u)


_ELEMENTWISE_PRIMITIVES = (Sigmoid, Softplus, Log1mexp, LogExpm1, LogWeight, LogCosh, Hypot1, Hypot1m1, HypotShare, Log1pSquare, SigmoidDiff, Expm1mx, Pow1p, Pow1pm1, Powm1, PowShift, ScaledPow, ScaledExp, Relu, Scaled, Log1pDiff, LogRatio)


def expand_row_primitives(expr: sp.Basic) -> sp.Basic:
    """Replace row primitives by their reduction forms (what ``diff`` differentiates)."""
    return expr.replace(lambda e: isinstance(e, _ROW_PRIMITIVES), lambda e: e.reduction_form())


class TwoForms(sp.Function):
    """Two forms :math:`a = b` of one quantity, each computed where it is accurate (the
    subclasses say where). The mathematics is :math:`a` (``elementary``); the rule that writes
    one checks both against the expression it replaces (:func:`nan_or_forms`)."""

    nargs = 2

    def _eval_derivative(self, s):
        return type(self)(self.args[0].diff(s), self.args[1].diff(s))

    def elementary(self):
        return self.args[0]

    def _latex(self, printer):
        return printer._print(self.args[0])


class NanOr(TwoForms):
    r"""Two forms :math:`a = b` of one quantity: :math:`a`, and :math:`b` where :math:`a` is NaN.

    A form that is best inside a domain can be :math:`0\cdot\infty` or :math:`\infty - \infty`
    at its edge (a pole :math:`1/p` beside a :math:`\log p` at :math:`p = 0`), where another form
    of the same expression has the limit; each is used where it holds.
    """


class InfOr(NanOr):
    r"""Two forms :math:`a = b` of one quantity: :math:`a`, and :math:`b` where :math:`a` is
    :math:`\pm\infty`.

    A mean's :math:`1/C` taken last, as the kernels take it, leaves a term within a factor
    :math:`C` of the largest float overflowing before the division (a Gaussian likelihood's
    gradient :math:`(1 - y^2 e^{-s})/(2C)` at :math:`y^2 e^{-s} = 7\cdot 10^{308}`); :math:`b`
    has the scale taken into the term. Treated as a :class:`NanOr` everywhere but in the runtime.
    """


class Guarded(TwoForms):
    r"""Two forms of one gradient: :math:`a = \sum_k t_k` (an ``Add``) where its terms cancel
    by at most a factor four, :math:`\sum_k |t_k| \le 4|\sum_k t_k|`, and :math:`b`, the split
    form (rest sums in place of row sums), on every other row.

    The split rules (``split-rowsum``, ``norm-square-split``) write :math:`\sum_c v_c` as
    :math:`v_j + \sum_{c \ne j} v_c` so that element j's terms cancel exactly before anything is
    computed; each rest sum costs about five passes over a block and a second sum where an
    element dominates its row. That cancellation can only hurt where the unsplit terms cancel:
    where they cancel by at most a factor four, the unsplit sum's error is at most four times
    its terms' relative errors, the factor the rest sums allow themselves (and its row sums,
    of terms of one sign, the condition under which the rule is written, err by a few units).
    The kernels compute :math:`a` and the test, and :math:`b` only on the rows where the test
    fails (printed ``_rt.guarded``; :mod:`cesym.rewrite.guard`).
    """

    def _latex(self, printer):
        return printer._print(self.args[1])


def nan_or_forms(expr: sp.Basic) -> tuple[sp.Basic, sp.Basic]:
    """``expr`` with every :class:`TwoForms` (:class:`NanOr`, :class:`Guarded`) taken as its
    first form, and as its second."""
    return (expr.replace(lambda e: isinstance(e, TwoForms), lambda e: e.args[0]),
            expr.replace(lambda e: isinstance(e, TwoForms), lambda e: e.args[1]))


def to_elementary(expr: sp.Basic, keep: Iterable[type] = (XMul,)) -> sp.Basic:
    """Rewrite every primitive into elementary functions and row reductions.

    ``keep`` lists primitive classes left as they are (by default the zero-guarded product,
    whose convention the elementary ``a*b`` would lose).
    """
    keep = tuple(keep)
    expr = expand_row_primitives(expr)

    def elementary(e):
        return e.elementary()

    return expr.replace(
        lambda e: hasattr(e, "elementary") and not isinstance(e, keep) and isinstance(e, sp.Function),
        elementary,
    )
