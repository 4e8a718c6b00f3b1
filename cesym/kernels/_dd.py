r"""Double-double evaluation with a rigorous error bound: the rational stable forms once more, on
the float32 outputs the rounding test left open and float64 did not compute exactly.

The tracked float64 pass (:mod:`._eft`) settles an open output when no operation rounded. Where
one did, a float64 result cannot say on which side of a float32 midpoint the exact value lies,
and the output went to the decimal path (:mod:`._exact`), one Python call per output. For MAPE at
label 1 that is one input in 32 past ``|p| ≈ 2^45``: ``100·(p - 1)`` lies 100 below ``100·p``,
which is then often exactly a float32 midpoint, and 100 is less than float64's spacing there.

Here each value is a double-double :math:`h + l` (two float64, :math:`|l|` at most half of h's
spacing) with a bound :math:`e` of its distance to the exact value (:class:`DW`), and each
operation of the same generated form (``<kernel>_<kind>_eft``, the ``fx`` argument a
:class:`DDTracker` instead of a :class:`._eft.Tracker`) is carried out with error-free
transformations (TwoSum; Dekker's TwoProduct, exact for operands below 2^995 and products above
2^-968) and a rigorous bound of what they leave out, as in :mod:`cesym.verify.dd_intervals`
(which needs Numba and intervals; a kernel needs neither): each bound is the sum of the
magnitudes of the rounded intermediate results times 2^-52 (a rounding to nearest errs by at
most 2^-53 of its result; the factor 2 covers the roundings of the bound itself), plus 2^-1060
where a product may lose to gradual underflow, plus the operands' own bounds carried through:

* ``a + b``: :math:`s + e_1 = a_h + b_h`, :math:`t + e_2 = a_l + b_l` exactly,
  :math:`u = \mathrm{fl}(e_1 + t)`, :math:`v + x = s + u` and :math:`w = \mathrm{fl}(x + e_2)`:
  rounding :math:`2^{-52}(|u| + |w|)` (an addition whose result is below 2^-1021 is exact);
  carried :math:`e_a + e_b`;
* ``a · b``: :math:`p + e = a_h b_h` exactly, :math:`t_1 = a_h b_l`, :math:`t_2 = a_l b_h`,
  :math:`t_3 = t_1 + t_2`, :math:`c = t_3 + e`: rounding
  :math:`2^{-52}(|t_1| + |t_2| + |t_3| + |c|) + 2|a_l||b_l|`; carried
  :math:`|A|e_b + |B|e_a + e_a e_b` (:math:`|A| \le |a_h|(1 + 2^{-52})`);
* ``1/b``: :math:`q = \mathrm{fl}(1/b_h)`, :math:`r = 1 - qb` (:math:`1 - p` exact by Sterbenz's
  lemma; :math:`d = \mathrm{fl}((1 - p) - e)`, :math:`m = \mathrm{fl}(q b_l)`,
  :math:`r = \mathrm{fl}(d - m)`), :math:`1/b = q(1 + r^* + r^{*2}/(1 - r^*))`: the result
  :math:`q + \mathrm{fl}(qr)`, rounding
  :math:`|q|(2^{-52}(|d| + |m| + |r|) + 2\bar r^2) + 2^{-52}|qr|`; carried
  :math:`e_b/(|B|(|B| - e_b))` (undecided unless :math:`e_b < |B|/2`); ``a / b`` is
  ``a · (1/b)``;
* ``|a|``, ``max``, ``min``: 1-Lipschitz, so the bound carries over unchanged; ``-a`` is exact;
* a comparison or a sign is decided where the bound leaves one answer; elsewhere the output is
  marked undecided (as an operation past the format's range is, or a result that is not finite)
  and goes on to the decimal path.

The output is decided (:func:`decide32`) where both ends of :math:`[h + l - e, h + l + e]`,
rounded to float32 exactly (:func:`round32`), agree: rounding is monotone, so the exact value
rounds the same. ``tests/test_double_double.py`` holds every operation to exact rationals.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["DW", "DDTracker", "round32", "decide32"]

_SPLIT = 134217729.0  # 2^27 + 1: Veltkamp's split into 26-bit halves
_SAFE_HI = 2.0**995  # below it the split does not overflow
_SAFE_LO = 2.0**-968  # above it a product's error is a float64 (no underflow)
_U = 2.0**-52  # twice the unit roundoff
_TINY = 2.0**-1060  # at least what gradual underflow loses in a few operations
_GROW = 1.0 + 2.0**-48  # the float64 sums and products that form a bound, made upper bounds


def _two_sum(a, b):
    """s, e with s = fl(a + b) and s + e = a + b exactly (Knuth)."""
    s = a + b
    bv = s - a
    return s, (a - (s - bv)) + (b - bv)


def _two_prod(a, b):
    """p, e with p = fl(a·b) and p + e = a·b exactly where |a|, |b| < 2^995 and the product is
    0 or above 2^-968 (Dekker, Veltkamp's split)."""
    with np.errstate(over="ignore", invalid="ignore"):  # outside that range: marked by the caller
        p = a * b
        ca = _SPLIT * a
        ah = ca - (ca - a)
        al = a - ah
        cb = _SPLIT * b
        bh = cb - (cb - b)
        bl = b - bh
        return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _bound(x):
    """x (a float64 sum or product of non-negative bounds), made an upper bound of the exact
    one: the relative error of a few roundings, and what underflow may have lost."""
    return np.where(x > 0, x * _GROW + _TINY, 0.0)


class DW:
    """Double-doubles ``h + l`` and bounds ``e`` of their distance to the exact values, for the
    outputs a :class:`DDTracker` ``fx`` follows (a comparison marks its undecided outputs
    there). NumPy's ``abs``, ``maximum``, ``minimum``, ``sign``, comparisons and ``where`` take
    them; any other NumPy function refuses them (TypeError)."""

    __slots__ = ("h", "l", "e", "fx")
    __array_priority__ = 1000

    def __init__(self, h, l, e, fx: DDTracker):
        self.h, self.l, self.e, self.fx = h, l, e, fx

    def __neg__(self) -> DW:
        return DW(-self.h, -self.l, self.e, self.fx)

    def __abs__(self) -> DW:
        s = np.where(self.h < 0, -1.0, 1.0)  # h = 0 has l = 0: |0 ± e| within e of 0
        return DW(s * self.h, s * self.l, self.e, self.fx)

    def __gt__(self, other):
        return self.fx.compare(self, other, ">")

    def __lt__(self, other):
        return self.fx.compare(self, other, "<")

    def __ge__(self, other):
        return self.fx.compare(self, other, ">=")

    def __le__(self, other):
        return self.fx.compare(self, other, "<=")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fn = _UFUNCS.get(ufunc)
        if method != "__call__" or kwargs or fn is None:
            return NotImplemented
        return fn(self.fx, *inputs)

    def __array_function__(self, func, types, args, kwargs):
        if func is not np.where or kwargs or len(args) != 3:
            return NotImplemented
        return self.fx.select(*args)


def _as_dw(x, fx: DDTracker) -> DW:
    if isinstance(x, DW):
        return x
    x = np.asarray(x, dtype=np.float64)
    z = np.zeros(x.shape)
    return DW(x, z, z, fx)


class DDTracker:
    """The operations of a generated ``_eft`` form (the interface of :class:`._eft.Tracker`) on
    double-doubles with error bounds (:class:`DW`); ``undecided`` marks, per element of the
    tracked shape, the outputs this arithmetic cannot settle (an operation past its range, a
    comparison the bounds leave open, a result that is not finite)."""

    def __init__(self, shape: tuple[int, ...]):
        self.undecided = np.zeros(shape, dtype=bool)

    def _mark(self, bad) -> None:
        bad = np.asarray(bad)
        if bad.ndim and bad.shape[-1] not in (1, self.undecided.shape[-1]):  # part of a row (row_sum)
            bad = bad.any(axis=-1, keepdims=True)
        self.undecided = self.undecided | np.broadcast_to(bad, self.undecided.shape)

    def _made(self, h, l, e) -> DW:
        self._mark(~(np.isfinite(h) & np.isfinite(l) & np.isfinite(e)))
        return DW(h, l, e, self)

    def add(self, a, b) -> DW:
        a, b = _as_dw(a, self), _as_dw(b, self)
        s, e1 = _two_sum(a.h, b.h)
        t, e2 = _two_sum(a.l, b.l)
        u = e1 + t
        v, x = _two_sum(s, u)
        w = x + e2
        h, l = _two_sum(v, w)
        return self._made(h, l, _bound(a.e + b.e + _U * (np.abs(u) + np.abs(w))))

    def mul(self, a, b) -> DW:
        a, b = _as_dw(a, self), _as_dw(b, self)
        p, e = _two_prod(a.h, b.h)
        t1 = a.h * b.l
        t2 = a.l * b.h
        t3 = t1 + t2
        c = t3 + e
        h, l = _two_sum(p, c)
        ah, bh = np.abs(a.h), np.abs(b.h)
        self._mark((ah >= _SAFE_HI) | (bh >= _SAFE_HI) | ((np.abs(p) < _SAFE_LO) & (ah != 0) & (bh != 0)))
        rnd = _U * (np.abs(t1) + np.abs(t2) + np.abs(t3) + np.abs(c)) + 2 * np.abs(a.l) * np.abs(b.l)
        carried = (ah * (1 + _U)) * b.e + (bh * (1 + _U)) * a.e + a.e * b.e
        # a product of non-zero factors may underflow to 0: _bound's tiny term must then be there
        lost = (a.l != 0) | (b.l != 0) | (a.e > 0) | (b.e > 0)
        return self._made(h, l, _bound(rnd + carried) + np.where(lost, _TINY, 0.0))

    def reciprocal(self, b) -> DW:
        b = _as_dw(b, self)
        bh = np.abs(b.h)
        self._mark((bh >= 2.0**990) | (bh <= 2.0**-990))  # q·b_h's TwoProduct stays exact
        q = 1.0 / b.h
        p, pe = _two_prod(q, b.h)
        d = (1.0 - p) - pe
        m = q * b.l
        r = d - m
        rr = _U * (np.abs(d) + np.abs(m) + np.abs(r)) + _TINY  # |r* - r|
        rbar = np.abs(r) + rr
        qr = q * r
        h, l = _two_sum(q, qr)
        rnd = np.abs(q) * (rr + 2 * rbar * rbar) + _U * np.abs(qr)
        low = bh * (1 - _U)  # at most |B|
        self._mark(~(b.e < low / 2))
        carried = np.where(b.e > 0, (b.e / low) / ((low - b.e) * (1 - _U)), 0.0)
        return self._made(h, l, _bound(rnd + carried) + _TINY)

    def div(self, a, b) -> DW:
        return self.mul(a, self.reciprocal(b))

    def power(self, a, n: int) -> DW:
        if n < 0:
            return self.reciprocal(self.power(a, -n))
        out = _as_dw(np.ones(np.shape(a.h if isinstance(a, DW) else a)), self)
        for _ in range(n):
            out = self.mul(out, a)
        return out

    def where(self, cond, first: Callable, second: Callable) -> DW:
        """``first()`` where ``cond``, else ``second()``; each branch's undecided outputs count
        only where it is taken."""
        cond = np.broadcast_to(cond, self.undecided.shape)
        saved = self.undecided
        self.undecided = np.zeros_like(saved)
        a = first()
        ua = self.undecided
        self.undecided = np.zeros_like(saved)
        b = second()
        ub = self.undecided
        self.undecided = saved | np.where(cond, ua, ub)
        return self.select(cond, a, b)

    def select(self, cond, a, b) -> DW | np.ndarray:
        """NumPy's ``where`` on double-doubles and floats."""
        if not isinstance(a, DW) and not isinstance(b, DW):
            return np.where(cond, a, b)
        a, b = _as_dw(a, self), _as_dw(b, self)
        return DW(np.where(cond, a.h, b.h), np.where(cond, a.l, b.l), np.where(cond, a.e, b.e), self)

    def xmul(self, a, b) -> DW:
        """a·b with 0·b = 0 (0·inf = 0), where a is exactly 0."""
        a = _as_dw(a, self)
        zero = (a.h == 0) & (a.e == 0)
        shape = np.broadcast_shapes(a.h.shape, np.shape(b.h if isinstance(b, DW) else b))
        one = DW(np.where(zero, 1.0, a.h), np.where(zero, 0.0, a.l), np.where(zero, 0.0, a.e), self)
        return self.where(zero, lambda: np.zeros(shape), lambda: self.mul(one, b))

    def row_sum(self, v) -> DW:
        """Σ over the last axis, keepdims, pairwise."""
        v = _as_dw(v, self)
        if v.h.shape[-1] == 0:
            z = np.zeros(v.h.shape[:-1] + (1,))
            return DW(z, z, z, self)
        while v.h.shape[-1] > 1:
            k = v.h.shape[-1] // 2
            part = lambda x, s: x[..., s]  # noqa: E731
            s = self.add(DW(part(v.h, slice(0, k)), part(v.l, slice(0, k)), part(v.e, slice(0, k)), self),
                         DW(part(v.h, slice(k, 2 * k)), part(v.l, slice(k, 2 * k)), part(v.e, slice(k, 2 * k)), self))
            if v.h.shape[-1] % 2:
                odd = slice(2 * k, None)
                s = DW(*(np.concatenate([np.broadcast_to(x, s.h.shape), part(y, odd)], axis=-1)
                         for x, y in ((s.h, v.h), (s.l, v.l), (s.e, v.e))), self)
            v = s
        return v

    def signs(self, a) -> tuple[np.ndarray, np.ndarray]:
        """(the sign of each exact value where the bounds decide it, whether they do)."""
        a = _as_dw(a, self)
        with np.errstate(over="ignore", invalid="ignore"):
            # h + l - e > 0 follows from h + t > 0 with t at most l - e (rounded one float down)
            below = a.h + np.nextafter(a.l - a.e, -np.inf)
            above = a.h + np.nextafter(a.l + a.e, np.inf)
        exact_zero = (a.h == 0) & (a.e == 0)
        sign = np.where(below > 0, 1.0, np.where(above < 0, -1.0, 0.0))
        return sign, (below > 0) | (above < 0) | exact_zero

    def compare(self, a, b, op: str) -> np.ndarray:
        """``a op b`` where the bounds decide it; the rest marked undecided."""
        sign, known = self.signs(self.add(a, -_as_dw(b, self)))
        self._mark(~known)
        return {">": sign > 0, "<": sign < 0, ">=": sign >= 0, "<=": sign <= 0}[op]


def _sign(fx: DDTracker, a) -> np.ndarray:
    sign, known = fx.signs(a)
    fx._mark(~known)
    return sign


def _extreme(take_max: bool) -> Callable:
    def fn(fx: DDTracker, a, b) -> DW:
        # max and min are 1-Lipschitz in each argument: the larger bound covers the result
        a, b = _as_dw(a, fx), _as_dw(b, fx)
        first = (a.h > b.h) | ((a.h == b.h) & (a.l >= b.l))  # double-doubles order as (h, l) do
        first = first if take_max else ~first
        e = np.maximum(a.e, b.e)
        return DW(np.where(first, a.h, b.h), np.where(first, a.l, b.l), e, fx)
    return fn


_UFUNCS: dict = {
    np.absolute: lambda fx, a: abs(_as_dw(a, fx)),
    np.negative: lambda fx, a: -_as_dw(a, fx),
    np.sign: _sign,
    np.maximum: _extreme(True),
    np.minimum: _extreme(False),
    np.greater: lambda fx, a, b: fx.compare(a, b, ">"),
    np.less: lambda fx, a, b: fx.compare(a, b, "<"),
    np.greater_equal: lambda fx, a, b: fx.compare(a, b, ">="),
    np.less_equal: lambda fx, a, b: fx.compare(a, b, "<="),
}


def round32(h: np.ndarray, l: np.ndarray) -> np.ndarray:
    """The float32 nearest each double-double h + l (ties to even; |l| at most half h's float64
    spacing), exactly: NaN where h is NaN.

    h + l lies within h's spacing of h, on l's side. The float32 rounding boundaries (midpoints
    of neighbours, at most 25 bits) are float64 numbers, so none lies strictly between h and its
    float64 neighbour h' on that side: h + l rounds as h does, unless h itself is a boundary,
    where l (not 0) carries it to h''s side, or h' is one, which h + l does not reach (|l| is at
    most half of h' - h, which is a whole spacing: 2^k - l never meets 2^k's lower neighbour
    1 - 2^-53, which has 53 bits). Where h and h' round alike that is the answer; else exactly one
    of them is the boundary between the two roundings."""
    with np.errstate(over="ignore", invalid="ignore"):
        toward = np.where(l > 0, np.inf, -np.inf)
        h2 = np.where(l == 0, h, np.nextafter(h, toward))
        a, b = h.astype(np.float32), h2.astype(np.float32)
        # the boundary between a and b (neighbours): their mean, with ±inf as ±2^128
        big = np.float64(2.0**128)
        a64 = np.where(np.isinf(a), np.copysign(big, a), a.astype(np.float64))
        b64 = np.where(np.isinf(b), np.copysign(big, b), b.astype(np.float64))
        boundary = (a64 + b64) / 2
    return np.where(a == b, a, np.where(h == boundary, b, a))


def decide32(x: DW, undecided: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the float32 rounding of each exact value, whether it is decided): where both ends of
    ``[h + l - e, h + l + e]`` round to the same float32 and nothing marked the output
    ``undecided``. Each end is ``h + t`` with t the end's l ∓ e rounded one float outward,
    renormalised exactly (|t| < 2^-40|h| is required, so that h stays the larger part)."""
    with np.errstate(over="ignore", invalid="ignore"):
        ends = []
        for side in (-np.inf, np.inf):
            t = np.where(x.e > 0, np.nextafter(x.l + np.copysign(x.e, side), side), x.l)
            s = x.h + t
            ends.append(round32(s, t - (s - x.h)))
        small = np.abs(x.l) + x.e < 2.0**-40 * np.abs(x.h)
    zero = (x.h == 0) & (x.e == 0)
    ok = ~undecided & (((ends[0] == ends[1]) & small) | zero) & np.isfinite(x.h)
    return np.where(zero, np.float32(0), ends[0]), ok
