r"""The slow, correct path of the float32 kernels: a loss evaluated in decimal arithmetic at rising
precision until its float32 rounding is certain (Ziv's strategy, as CORE-MATH's accurate phase).

A float32 kernel computes in float64 and rounds once; :mod:`cesym.kernels._rounding` finds the
rare outputs whose float64 value lies too close to a float32 rounding boundary for that rounding
to be trusted, and hands them here. The generated module prints, for each such kernel, its stable
form as Python code over :class:`decimal.Decimal` (``<variant>_value_exact``,
``<variant>_grad_exact``; :mod:`cesym.generate.exact`), calling the functions below.

Why :mod:`decimal` (the standard library) rather than mpmath or python-flint: the kernels depend on
NumPy alone. Its ``exp``, ``ln`` and ``sqrt`` are correctly rounded at any precision, ``+ - × ÷``
too, and the context is thread-local, so concurrent calls do not interfere. The functions below
keep that accuracy where a plain formula would cancel (log1p, expm1, log cosh near 0, …) by
working at the precision the cancellation needs.

:func:`solve` evaluates at 30, 60, 120, 240, 480 digits. A value computed without any inexact
operation is exact and is rounded at once (a tie of a rational loss, such as x²/2 on a float32
midpoint, is a tie: ties to even). Otherwise a level is accepted when its error bound (the float64
rounding test's, scaled from 2^-53 to the level's unit roundoff) is below half the distance to
the nearest float32 rounding boundary, or when it and the level before round alike and their
difference is below a quarter of that distance; cancellation shows as a large difference
between levels and only raises the precision. The exhaustive run (``cesym verify --exhaustive``)
checks the outcome input by input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_05UP, ROUND_UP, Context, Decimal, Inexact, getcontext, localcontext
from fractions import Fraction

__all__ = ["solve", "round_float32"]

#: The precisions (decimal digits) tried in turn.
LEVELS = (30, 60, 120, 240, 480)

_LN2: dict[int, Decimal] = {}

#: The most digits a sum is carried to exactly (float64 inputs need at most 1100).
_MAX_DIGITS = 4000


def _ctx() -> Context:
    return getcontext()


def _extra(digits: int) -> Context:
    """A context ``digits`` digits more precise than the current one (same flags object)."""
    c = _ctx()
    return Context(prec=c.prec + max(0, digits), rounding=c.rounding, Emin=c.Emin, Emax=c.Emax, traps=[], flags=c.flags)


def _exact_for(*values: Decimal) -> Context:
    """A context in which sums of ``values`` are exact (capped at ``_MAX_DIGITS``)."""
    c = _ctx()
    finite = [v for v in values if v.is_finite() and v != 0]
    need = max((v.adjusted() for v in finite), default=0) - min((v.as_tuple().exponent for v in finite), default=0) + 3
    return Context(prec=min(max(c.prec, need), _MAX_DIGITS), rounding=c.rounding, Emin=c.Emin, Emax=c.Emax, traps=[], flags=c.flags)


def D(v) -> Decimal:
    """A float, int or Decimal as an exact Decimal."""
    return v if isinstance(v, Decimal) else Decimal(v)


def q(n: int, d: int) -> Decimal:
    """The rational n/d at the current precision."""
    return _ctx().divide(Decimal(n), Decimal(d))


def _small(a: Decimal) -> bool:
    """|a| < 10^-5: where the series below converge in a few terms (no extended precision)."""
    return a.is_finite() and (not a or a.adjusted() < -5)  # (±0 too: its series keeps the sign)


def _series(a: Decimal, coeff: Callable[[int], Fraction], first: int, step: int = 1) -> Decimal:
    """Σ_{n >= first, by step} coeff(n)·a^n until the terms fall below the precision."""
    c = _ctx()
    if not a:  # ±0: the first term's signed zero (expm1(-0) = -0, as IEEE and its limit from below say)
        k = coeff(first)
        return a**first * k.numerator / k.denominator  # (no unary plus: +(-0) is 0)
    with localcontext(_extra(5)):
        s, n, p = Decimal(0), first, a**first
        limit = abs(p) * Decimal(10) ** -(c.prec + 3)
        while p != 0 and abs(p) > limit:
            k = coeff(n)
            s += p * k.numerator / k.denominator
            n += step
            p *= a**step
    return +s


def ln2() -> Decimal:
    p = _ctx().prec
    if p not in _LN2:
        with localcontext(Context(prec=p + 5)):
            _LN2[p] = Decimal(2).ln()  # noqa: the cache is filled once per precision (a benign race)
    return +_LN2[p]


def _exp_in(c: Context, a: Decimal) -> Decimal:
    """e^a in context ``c``; where it underflows to 0 (a below about -2.3·10^9 at the contexts of
    :func:`solve`, and no exponent range holds e^x for every float32 x), the least positive
    number of the context instead: a sticky tail. Its only use here is its sign: added to a sum
    it keeps the side of a rounding boundary the true tail is on (0.3f·|x| lands exactly on a
    float32 midpoint for x = -2560·2^k; the loss is above it by log1p(e^x)), and no factor a
    loss multiplies it by (at most 10^616, a square of float64 inputs) brings it near a float32
    spacing (10^Etiny is below 10^-10^9)."""
    v = c.exp(a)
    if v == 0 and a.is_finite():
        return Decimal(1).scaleb(c.Etiny())
    return v


def exp(a: Decimal) -> Decimal:
    return _exp_in(_ctx(), a)


def log(a: Decimal) -> Decimal:
    """ln a (-inf at 0; NaN below)."""
    if a < 0:
        return Decimal("NaN")
    return _ctx().ln(a)


def log1p(a: Decimal) -> Decimal:
    """ln(1 + a): a series for a small a, else ln of 1 + a formed exactly."""
    if a < -1:
        return Decimal("NaN")
    if _small(a):
        return _series(a, lambda n: Fraction((-1) ** (n + 1), n), 1)
    one_a = _exact_for(a, Decimal(1)).add(1, a)
    return _ctx().ln(one_a)


def expm1(a: Decimal) -> Decimal:
    """e^a - 1: a series for a small a, else e^a at the precision the subtraction needs."""
    if _small(a):
        return _series(a, lambda n: Fraction(1, math.factorial(n)), 1)
    c = _extra(max(0, -a.adjusted()) + 2 if a.is_finite() else 0)
    return +c.subtract(_exp_in(c, a), 1)


def expm1mx(a: Decimal) -> Decimal:
    """e^a - 1 - a: a series for a small a, else e^a at the precision the subtraction needs
    (about 2·log10(1/|a|) digits lost near 0)."""
    if _small(a):
        return _series(a, lambda n: Fraction(1, math.factorial(n)), 2)
    c = _extra(2 * max(0, -a.adjusted()) + 3 if a.is_finite() else 0)
    return +c.subtract(c.subtract(_exp_in(c, a), 1), a)


def sigmoid(a: Decimal) -> Decimal:
    """1/(1 + e^-a), from the side where e^{-|a|} <= 1."""
    if a >= 0:
        return 1 / (1 + exp(-a))
    e = exp(a)
    return e / (1 + e)


def softplus(a: Decimal) -> Decimal:
    """ln(1 + e^a) = max(a, 0) + ln(1 + e^{-|a|})."""
    return max(a, Decimal(0)) + log1p(exp(-abs(a)))


def logcosh(a: Decimal) -> Decimal:
    """ln cosh a: the series a²/2 - a⁴/12 + a⁶/45 - … for a small a, else
    |a| - ln 2 + ln(1 + e^{-2|a|}) at the precision the cancellation near 0 needs."""
    b = abs(a)
    if _small(b):
        # ln cosh a = Σ_{n>=1} 2^{2n-1} (2^{2n} - 1) B_{2n} a^{2n} / (n (2n)!)  (B: Bernoulli numbers)
        return _series(b, _logcosh_coeff, 2, 2)
    with localcontext(_extra(2 * max(0, -b.adjusted()) + 3)):
        v = b - ln2() + log1p(exp(-2 * b))
    return +v


def _logcosh_coeff(m: int) -> Fraction:
    n = m // 2
    return Fraction(2 ** (2 * n - 1) * (2 ** (2 * n) - 1)) * _bernoulli(2 * n) / (n * math.factorial(2 * n))


_BERN: dict[int, Fraction] = {}


def _bernoulli(n: int) -> Fraction:
    """The Bernoulli number B_n (B_1 = -1/2), by the Akiyama–Tanigawa algorithm."""
    if n not in _BERN:
        a = [Fraction(0)] * (n + 1)
        for m in range(n + 1):
            a[m] = Fraction(1, m + 1)
            for j in range(m, 0, -1):
                a[j - 1] = j * (a[j - 1] - a[j])
        _BERN[n] = a[0] if n != 1 else Fraction(-1, 2)
    return _BERN[n]


def tanh(a: Decimal) -> Decimal:
    if a < 0:
        return -tanh(-a)
    e = expm1(2 * a)
    return e / (e + 2) if e.is_finite() else Decimal(1)


def log1p_diff(a: Decimal, b: Decimal) -> Decimal:
    """ln(1 + a) - ln(1 + b) = ln(1 + (a - b)/(1 + b)), the difference and 1 + b formed exactly."""
    c = _exact_for(a, b, Decimal(1))
    return log1p(_ctx().divide(c.subtract(a, b), c.add(1, b)))


def log_ratio(w: Decimal, v: Decimal) -> Decimal:
    """ln(w/v), accurate to itself: within a factor 2 (v/2 <= w <= 2v), ln(1 + (w - v)/v) with
    the difference formed exactly (exactly 0 at w = v); farther apart, ln w - ln v, whose
    result is at least ln 2 (the two logs' errors, about |ln w|·10^-P each, stay within a few
    hundred units of 10^-P of it for float32 inputs, |ln w| <= 104). -inf at w = 0 < v."""
    if w == 0 or v == 0 or not (v <= 2 * w and w <= 2 * v):
        return log(w) - log(v)
    c = _exact_for(w, v)
    return log1p(_ctx().divide(c.subtract(w, v), v))


def xmul(a: Decimal, b: Decimal | Callable[[], Decimal]) -> Decimal:
    """a·b with 0·b = 0 for any b (0·log 0 = 0); ``b`` may be a function, called only where
    a != 0 (so that a zero weight neither costs its term nor makes an exact row inexact)."""
    if a == 0:
        return Decimal(0)
    return a * (b() if callable(b) else b)


def relu(a: Decimal) -> Decimal:
    return max(a, Decimal(0))


def heaviside(a: Decimal, h) -> Decimal:
    return Decimal(1) if a > 0 else (Decimal(0) if a < 0 else D(h))


def max_share(row: list, j: int) -> Decimal:
    """Element j's share of the row's maximum: 1/k if it is one of k elements equal to the
    maximum, else 0 (TensorFlow's gradient of ``reduce_max``)."""
    m = max(row)
    if row[j] != m:
        return Decimal(0)
    return Decimal(1) / sum(1 for v in row if v == m)


def hypot1(a: Decimal) -> Decimal:
    """sqrt(1 + a²) (decimal's exponent range holds a² for any float a)."""
    return (1 + a * a).sqrt()


def hypot1m1(a: Decimal) -> Decimal:
    """sqrt(1 + a²) - 1 as a²/(sqrt(1 + a²) + 1): no cancellation for a small a."""
    a2 = a * a
    return a2 / ((1 + a2).sqrt() + 1)


def sigmoid_diff(a: Decimal, b: Decimal, u: Decimal) -> Decimal:
    """a·σ(u) - b·σ(-u): ((a - b) + (a + b)·tanh(u/2))/2 for |u| < 1 (a - b exact, where the two
    sigmoids would cancel to the precision's noise for a = b), the two terms elsewhere."""
    if abs(u) < 1:
        return ((a - b) + (a + b) * tanh(u / 2)) / 2
    return a * sigmoid(u) - b * sigmoid(-u)


def log1p_square(a: Decimal) -> Decimal:
    """log(1 + a²) (decimal's exponent range holds a² for any float a)."""
    return (1 + a * a).ln()


def hypot_share(a: Decimal) -> Decimal:
    """a/sqrt(1 + a²)."""
    return a / (1 + a * a).sqrt()


def softmax_parts(row: list) -> tuple[Decimal, Decimal]:
    """``(m, L)`` of a row of logits z: m = max z and L = log1p(Σ_{c≠k} e^{z_c - m}), k the
    first maximum. Then -log softmax(z)_j = (m - z_j) + L (:func:`neg_log_softmax`): no e^{z}
    leaves the exponent range (e^{10^308} does, even in decimal), and L keeps the digits of a
    dominant class's tiny loss, which ln Σ e^{z_c - m} would round to 0."""
    m = max(row)
    k = row.index(m)
    return m, log1p(fsum(exp(z - m) for c, z in enumerate(row) if c != k))


def neg_log_softmax(parts: tuple[Decimal, Decimal], zj: Decimal) -> Decimal:
    """-log softmax(z)_j from :func:`softmax_parts` of the row and the element z_j."""
    m, rest = parts
    return (m - zj) + rest


def sign(a: Decimal) -> Decimal:
    return Decimal((a > 0) - (a < 0))


def power(b: Decimal, e) -> Decimal:
    """b^e: exact products for an integer e, e^{e·ln b} otherwise (b >= 0; 0^e = 0 for e > 0, 1 at e = 0)."""
    b = D(b)
    e = D(e) if not isinstance(e, int) else e
    if isinstance(e, int) or e == e.to_integral_value():
        n = int(e)
        if n >= 0:
            return b**n if n else Decimal(1)
        return 1 / (b ** (-n)) if b != 0 else Decimal("Infinity")
    if b == 0:
        return Decimal(0) if e > 0 else Decimal("Infinity")
    if b < 0:
        return Decimal("NaN")
    return exp(e * log(b))


def nan_or(first: Callable[[], Decimal], second: Callable[[], Decimal]) -> Decimal:
    """``first()``, or ``second()`` where it is NaN (two forms of one quantity)."""
    v = first()
    return second() if v.is_nan() else v


def fsum(terms) -> Decimal:
    """Σ terms, each addition at the current precision."""
    s = Decimal(0)
    for t in terms:
        s += t
    return s


# --- rounding to float32 ---------------------------------------------------------------------------

_F32_MAX_EXP = 127
_F32_MIN_EXP = -126
_F32_DIGITS = 24


def round_float32(v: Decimal | Fraction) -> tuple[float, Fraction]:
    """The float32 nearest ``v`` (ties to even; ±inf from 2^128 - 2^103 on), exactly, and the
    distance from ``v`` to the nearest float32 rounding boundary (a midpoint between neighbours,
    or the overflow threshold)."""
    fr = Fraction(v)
    if fr == 0:
        return 0.0, Fraction(2) ** (_F32_MIN_EXP - _F32_DIGITS)  # half the least subnormal away
    neg = fr < 0
    a = -fr if neg else fr
    e = a.numerator.bit_length() - a.denominator.bit_length()  # 2^e <= a < 2^(e+2)
    if Fraction(2) ** e > a:
        e -= 1
    k = max(min(e, _F32_MAX_EXP), _F32_MIN_EXP) - (_F32_DIGITS - 1)  # the spacing's exponent
    scaled = a / Fraction(2) ** k if k >= 0 else a * (1 << -k)
    n = math.floor(scaled)
    rem = scaled - n
    dist = abs(rem - Fraction(1, 2)) * (Fraction(2) ** k)
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n & 1):
        n += 1
    out = math.ldexp(n, k) if n < (1 << _F32_DIGITS) or k < _F32_MAX_EXP - 23 else math.inf
    if out >= 2.0**128:
        out = math.inf
    return (-out if neg else out), dist


#: Decimal exponents (``adjusted()``) past which a value is out of float32's range whatever its
#: digits: at or above 10^40 it rounds to ±inf (the threshold is 2^128 - 2^103 < 3.41e38), below
#: 10^-60 to ±0 (half the least subnormal is 2^-150 > 7e-46). Such values are decided in decimal:
#: e^{10^8} is a Decimal of 9 exponent digits, but as a Fraction an integer of 144 million bits,
#: whose construction alone takes minutes.
_HUGE_ADJUSTED = 40
_TINY_ADJUSTED = -61
_HALF_LEAST = Decimal("7e-46")  # below 2^-150, the distance from 0 to the first rounding boundary


def _far(v: Decimal) -> bool:
    """``v`` (finite, nonzero) lies far outside the float32 range: it rounds to ±inf or ±0."""
    return v != 0 and (v.adjusted() >= _HUGE_ADJUSTED or v.adjusted() <= _TINY_ADJUSTED)


def _far_agree(v: Decimal, pv: Decimal) -> bool:
    """Two levels' values of a far value (:func:`_far`) decide its rounding: the same sign and
    range, and 4·|v - pv| below the distance to the nearest rounding boundary (at least 0.99·|v|
    for an overflow, at least 7e-46 for an underflow), computed in decimal with the difference
    rounded up."""
    if not (isinstance(pv, Decimal) and pv.is_finite() and _far(pv)) or v.is_signed() != pv.is_signed():
        return False
    huge = v.adjusted() >= _HUGE_ADJUSTED
    if huge != (pv.adjusted() >= _HUGE_ADJUSTED):
        return False
    with localcontext(Context(prec=12, rounding=ROUND_UP, Emin=-(10**9), Emax=10**9, traps=[])):
        gap = 4 * abs(v - pv)
        return gap < (abs(v) * Decimal("0.99") if huge else _HALF_LEAST)


def solve(fn: Callable[..., Decimal], args: tuple, bound: float | None = None) -> float | None:
    """The correctly rounded float32 (as a float) of ``fn(*args)`` (Decimal arguments), by rising
    precision; None where the value is not a finite real (the caller keeps its own).

    ``bound``: the float64 evaluation of the same stable form errs by at most ``bound`` (the
    rounding test's window times 2^-53 times the output's magnitude). The decimal evaluation
    performs the same operations with unit roundoff 10^(1-P) in place of 2^-53, so it errs by at
    most ``bound·2^53·10^(1-P)``; a level whose value lies farther than twice that from every
    float32 rounding boundary is decided at once. Otherwise (no bound, or too close) a level is
    accepted when it and the level before round alike and differ by under a quarter of that
    distance."""
    prev = None
    for level in LEVELS:
        # 05UP (round to odd, in decimal): an inexact sum keeps the side of a tail it cannot
        # hold (x + 1e-600 at 30 digits ends in 1, not on a float32 midpoint x); exp and ln
        # round to nearest whatever the context says
        with localcontext(Context(prec=level, rounding=ROUND_05UP, Emin=-(10**9), Emax=10**9, traps=[])) as c:
            v = fn(*args)
            inexact = bool(c.flags[Inexact])
        if not v.is_finite():
            return None
        if isinstance(v, Decimal) and _far(v):
            f = math.copysign(math.inf if v.adjusted() >= _HUGE_ADJUSTED else 0.0, -1.0 if v.is_signed() else 1.0)
            if not inexact or (prev is not None and _far_agree(v, prev[0])):
                return f
            prev = (v, f)
            continue
        f, dist = round_float32(v)
        if not inexact:
            return f
        if bound is not None and math.isfinite(bound) and 2 * Fraction(bound) * 2**53 / Fraction(10) ** (level - 1) < dist:
            return f
        if prev is not None and not (isinstance(prev[0], Decimal) and _far(prev[0])):
            pv, pf = prev
            if pf == f and 4 * abs(Fraction(v) - Fraction(pv)) < dist:
                return f
        prev = (v, f)
    return prev[1]
