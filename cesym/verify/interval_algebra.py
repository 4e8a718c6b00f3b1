"""What every interval format of the first tier derives from its own operations.

The first tier runs a reference's printed code on three interval formats: float64 intervals
(:mod:`cesym.verify.float_intervals`), float64 intervals times a power of two
(:mod:`cesym.verify.scaled_intervals`) and intervals with double-double ends
(:mod:`cesym.verify.dd_intervals`). Each encloses its own sum, product, negation, reciprocal and
absolute value; the rest of the arithmetic the printed code uses is the same algebra on those,
written once here (:class:`IntervalAlgebra`): ``a - b = a + (-b)``, ``a / b = a · (1/b)``,
integer powers by squaring (a square of |x|, never below 0; ``x^-k = 1/x^k``), and the
three-valued step functions from the format's ``Piecewise`` and comparisons (:func:`steps`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["IntervalAlgebra", "steps"]


class IntervalAlgebra:
    """Operators derived from a format's own ``+``, ``·``, ``-x``, ``abs`` and the hooks below.

    A format defines ``_of`` (a constant or an interval of it as one, enclosed), ``_reciprocal``,
    ``_integer`` (the interval as one integer for every point, or None), ``_one`` (1 where the
    interval is a number, NaN where it is NaN), ``_nonneg`` (the interval with its lower end
    raised to 0 where it is below: a square's), ``_exact_zero`` (where the interval is exactly
    0), ``_zero_where`` (0 exactly where a mask holds) and ``_real_pow`` (x^p for a real p)."""

    __slots__ = ()
    __array_priority__ = 1000  # a NumPy scalar on the left defers to these operators

    _of: Callable

    def __radd__(self, other):
        return self + other

    def __rmul__(self, other):
        return self * other

    def __pos__(self):
        return self

    def __sub__(self, other):
        return self + (-self._of(other))

    def __rsub__(self, other):
        return self._of(other) + (-self)

    def __truediv__(self, other):
        return self * self._of(other)._reciprocal()

    def __rtruediv__(self, other):
        return self._of(other) * self._reciprocal()

    def __rpow__(self, other):
        return self._of(other) ** self

    def __pow__(self, other):
        if isinstance(other, (int, np.integer)) or (isinstance(other, float) and other.is_integer()):
            return self.ipow(int(other))
        p = self._of(other)
        k = p._integer()
        return self.ipow(k) if k is not None else self._real_pow(p)

    def ipow(self, k: int):
        """x^k for an integer k: by squaring (each product enclosed; the square of |x| as one
        factor, not two independent ones), 1/that for k < 0."""
        if k == 0:
            return self._one()
        m, base, prod = abs(k), self, None
        while m:
            if m & 1:
                prod = base if prod is None else prod * base
            m >>= 1
            if m:
                a = abs(base)
                base = (a * a)._nonneg()
        return prod if k > 0 else prod._reciprocal()

    def xmul(self, other):
        """self·other with 0·b = 0 for any b (the 0·log 0 = 0 convention) where self is exactly 0."""
        out = self * other
        zero = self._exact_zero()
        return out._zero_where(zero) if np.any(zero) else out


def steps(of: Callable, pick: Callable, cmp_: Callable) -> tuple[Callable, Callable]:
    """(heaviside, sign) of a format, from its coercion, ``Piecewise`` and comparisons: the hull
    of the values on an interval that holds 0."""

    def step(x, neg, zero, pos):
        x = of(x)
        return pick((cmp_(">", x, 0.0), pos), (cmp_("<", x, 0.0), neg), (True, zero))

    def heaviside(x, h0):
        return step(x, 0.0, h0, 1.0)

    def sign_(x):
        return step(x, -1.0, 0.0, 1.0)

    return heaviside, sign_
