"""Ball arithmetic for the reference: the printed definition run on python-flint's ``arb``.

An arb number is a ball, a midpoint and a radius, that encloses the exact value of what it was
computed from (Arb, Johansson 2017: every operation and elementary function rounds outward;
https://arblib.org). The reference's printed code (:mod:`cesym.define.evaluate`) calls its
functions on a module named ``mpmath``; bound to :data:`MODULE` below, the same expressions give
balls where :mod:`mpmath.iv` gives intervals, at the precision set by :func:`precision`, about
twenty times faster (measured on the reference rows of the cross-entropies: 80-110 us a row of
8 against 1.4-1.7 ms). A ball is turned back into exact end points (:func:`ends`) for the
decision of how many digits are pinned, which stays with :mod:`cesym.verify.reference`.

Comparisons are three-valued, as mpmath's for intervals: ``True`` or ``False`` where every point
of the balls agrees, ``None`` where they overlap (arb's own operators answer ``False`` there,
which would drop a live branch of a ``Piecewise``); the printer prints them as calls.
"""

from __future__ import annotations

import functools

import flint
import mpmath
from flint import arb

from ..define.evaluate import _Printer

__all__ = ["MODULE", "BallPrinter", "as_ball", "close", "ends", "precision", "namespace"]


def as_ball(x) -> arb:
    """``x`` (a float, an int, a decimal string, an mpmath number or a ball) as an arb ball,
    exactly where ``x`` is a binary number (every float, every mpmath number, whatever its
    number of bits: python-flint converts an mpf's mantissa and exponent as they are)."""
    t = type(x)  # the reference calls this millions of times: balls and floats first
    if t is arb:
        return x
    if t is float:
        if x - x == 0.0:  # finite
            return arb(x)
        return arb.nan() if x != x else (arb.pos_inf() if x > 0 else arb.neg_inf())
    if isinstance(x, arb):
        return x
    if isinstance(x, mpmath.mpf):
        _, man, exp, _ = x._mpf_
        if man or not exp:  # a number other than 0, or 0 (mpmath's ±inf and NaN: man 0, exp != 0)
            return arb(x)
        return arb.nan() if mpmath.isnan(x) else (arb.pos_inf() if x > 0 else arb.neg_inf())
    if isinstance(x, float):  # a float subclass (numpy.float64)
        return as_ball(float(x))
    return arb(x)


def ends(x) -> tuple[mpmath.mpf, mpmath.mpf]:
    """The ball's end points, ``mid ∓ rad`` rounded outward to 64 bits past the working precision,
    as mpmath numbers (exact for an exact ball; ±inf for a ball that is not finite; NaN for NaN)."""
    x = as_ball(x)
    if x.is_nan():
        return mpmath.nan, mpmath.nan
    if not x.is_finite():
        return -mpmath.inf, mpmath.inf
    mid = _exact(x.mid())
    rad = x.rad()
    if rad.is_zero():
        return mid, mid
    r = _exact(rad)
    # rounded outward (a radius far below the midpoint's last bit would make an exact end point
    # of millions of bits): the interval stays an enclosure. Floor and ceiling: mpmath's "d" and
    # "u" round toward and away from zero, inward for the ends of a negative ball
    prec = flint.ctx.prec + 64
    return mpmath.fsub(mid, r, prec=prec, rounding="f"), mpmath.fadd(mid, r, prec=prec, rounding="c")


def _exact(v) -> mpmath.mpf:
    """An exact arb number (a midpoint, a radius) as the same mpmath number, not rounded (a
    tuple given to ``mpmath.mpf`` would be rounded to mpmath's working precision)."""
    if v.is_zero():
        return mpmath.mpf(0)
    man, exp = v.man_exp()
    return mpmath.mp.make_mpf(mpmath.libmp.from_man_exp(int(man), int(exp)))


def close(x: arb, bits: int) -> mpmath.mpf | None:
    """The ball's midpoint where its radius is certainly at most 2^-bits of it (then its width
    is at most 2^(1 - bits) of the larger end's magnitude); None where this test cannot tell.

    Arb's relative accuracy is ``top(mid) - top(rad) - 1`` (``arb_rel_accuracy_bits``: top the
    exponent of the leading bit; exact balls have the largest, a ball around 0 that is not
    exactly 0 and a NaN the smallest), and ``rad < 2^(top(rad)+1) <= 2^(top(mid)-bits) <=
    2^-bits·|mid|`` wherever it is at least ``bits``: one call instead of two exponents read
    through Python integers (this runs on every output of every reference evaluation)."""
    if not x.is_finite() or x.rel_accuracy_bits() < bits:
        return None
    mid = x.mid()
    return mpmath.mpf(0) if mid.is_zero() else _exact(mid)


class precision:
    """Balls computed at ``bits`` of working precision inside the block (the context is global
    to the process, as mpmath's: the reference runs in one thread per process). A class, not a
    generator: the reference enters it for every evaluation."""

    __slots__ = ("bits", "old")

    def __init__(self, bits: int):
        self.bits = bits

    def __enter__(self) -> None:
        self.old = flint.ctx.prec
        flint.ctx.prec = self.bits

    def __exit__(self, *exc) -> None:
        flint.ctx.prec = self.old


def _cmp(op: str, a, b) -> bool | None:
    """``a op b`` for balls: True or False where it holds or fails for every point, else None."""
    d = as_ball(a) - as_ball(b)
    if d.is_nan():
        return None
    if op in ("==", "!="):
        certain_eq = d.is_zero()
        certain_ne = not d.contains(0)
        res = True if certain_eq else False if certain_ne else None
        return res if op == "==" or res is None else not res
    lt, le = d < 0, d <= 0  # arb: True only where certain
    gt, ge = d > 0, d >= 0
    return {
        "<": True if lt else False if ge else None,
        "<=": True if le else False if gt else None,
        ">": True if gt else False if le else None,
        ">=": True if ge else False if lt else None,
    }[op]


def _and(*cs):
    if any(c is False for c in cs):
        return False
    return True if all(c is True for c in cs) else None


def _or(*cs):
    if any(c is True for c in cs):
        return True
    return False if all(c is False for c in cs) else None


def _not(c):
    return None if c is None else not c


def _hull(values) -> arb:
    return functools.reduce(lambda u, v: u.union(v), (as_ball(v) for v in values))


def _step(x, neg, zero, pos) -> arb:
    """A step function of ``x`` (sign, Heaviside): the hull of the values on the ball."""
    x = as_ball(x)
    if x > 0:
        return as_ball(pos)
    if x < 0:
        return as_ball(neg)
    if x.is_zero():
        return as_ball(zero)
    live = [v for v, on in ((neg, not (x >= 0)), (zero, x.contains(0)), (pos, not (x <= 0))) if on]
    return _hull(live)


def _pick(*pairs) -> arb:
    """A ``Piecewise``: the first value whose condition holds; the hull of every value that may
    be taken where a condition is undecided (None)."""
    live = []
    for c, v in pairs:
        if c is False:
            continue
        live.append(v)
        if c is True:
            break
    return _hull(live) if live else arb.nan()


def _ipow(x, k: int) -> arb:
    """``x**k`` for an integer ``k``: python-flint's (0.9) ``arb ** int`` goes through exp(k·log x),
    NaN on a ball that holds 0 (``arb(0, 1e-10) ** 2`` is NaN, ``x*x`` is [±1e-20]): a square of
    a difference that is exactly 0 (log1p(p) - log1p(y) at p = y) never resolved. Its ball where
    that is finite, else the product of ``|k|`` factors by squaring (an enclosure; 1/that for
    ``k < 0``)."""
    x = as_ball(x)
    out = x ** k
    if out.is_finite() or not x.is_finite():
        return out
    base, m, prod = x, abs(k), arb(1)
    while m:
        if m & 1:
            prod = prod * base
        base, m = base * base, m >> 1
    return prod if k >= 0 else 1 / prod


def _xmul(a, b) -> arb:
    """0·b = 0 for any b (the 0·log 0 = 0 convention): a ball that is exactly zero."""
    a = as_ball(a)
    return arb(0) if a.is_zero() else a * as_ball(b)


class _Module:
    """What the printed code calls ``mpmath``; constants are computed at the current precision."""

    mpf = staticmethod(as_ball)
    log = staticmethod(lambda x: as_ball(x).log())
    exp = staticmethod(lambda x: as_ball(x).exp())
    log1p = staticmethod(lambda x: as_ball(x).log1p())
    expm1 = staticmethod(lambda x: as_ball(x).expm1())
    sqrt = staticmethod(lambda x: as_ball(x).sqrt())
    sinh = staticmethod(lambda x: as_ball(x).sinh())
    cosh = staticmethod(lambda x: as_ball(x).cosh())
    tanh = staticmethod(lambda x: as_ball(x).tanh())
    max_ = staticmethod(lambda *a: functools.reduce(lambda u, v: as_ball(u).max(as_ball(v)), a))
    min_ = staticmethod(lambda *a: functools.reduce(lambda u, v: as_ball(u).min(as_ball(v)), a))
    sign_ = staticmethod(lambda x: _step(x, -1, 0, 1))
    heaviside = staticmethod(lambda x, h0: _step(x, 0, h0, 1))
    pick = staticmethod(_pick)
    ipow = staticmethod(_ipow)
    cmp_ = staticmethod(_cmp)
    and_ = staticmethod(_and)
    or_ = staticmethod(_or)
    not_ = staticmethod(_not)

    @property
    def pi(self) -> arb:
        return arb.pi()

    @property
    def e(self) -> arb:
        return arb.const_e()

    @property
    def inf(self) -> arb:
        return arb.pos_inf()

    @property
    def nan(self) -> arb:  # (a branch no condition selects: SymPy's Piecewise default)
        return arb.nan()


MODULE = _Module()


def namespace() -> dict:
    """The globals of printed reference code run on balls."""
    return {"mpmath": MODULE, "XMul": _xmul}


class BallPrinter(_Printer):
    """The reference printer with comparisons and logic as three-valued calls, integer powers
    as :func:`_ipow`."""

    def _print_Pow(self, e, rational=False):
        if e.exp.is_Integer and e.exp not in (0, 1):
            return "mpmath.ipow(%s, %d)" % (self._print(e.base), int(e.exp))
        return super()._print_Pow(e, rational=rational)

    def _print_Relational(self, e):
        return "mpmath.cmp_(%r, %s, %s)" % (e.rel_op, self._print(e.lhs), self._print(e.rhs))

    def _print_And(self, e):
        return "mpmath.and_(%s)" % ", ".join(self._print(a) for a in e.args)

    def _print_Or(self, e):
        return "mpmath.or_(%s)" % ", ".join(self._print(a) for a in e.args)

    def _print_Not(self, e):
        return "mpmath.not_(%s)" % self._print(e.args[0])

    def _print_BooleanTrue(self, e):
        return "True"

    def _print_BooleanFalse(self, e):
        return "False"

