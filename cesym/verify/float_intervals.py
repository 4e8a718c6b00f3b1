r"""The reference's first tier: its printed code on float64 intervals, every point of a batch at once.

The reference (:mod:`cesym.verify.reference`) runs a loss's expanded definition on arb balls, one
point at a time, at rising precision: rigorous, and about a hundred Python calls per point. Most
points need far less. A float32 output is pinned to 2^-8 of its ulp by a float64 interval
:math:`[a, b]` with :math:`b - a \le 2^{-32}|a|`, which a well-conditioned expression of a few
hundred operations keeps; a condition number needs a few digits only. This module runs the same
printed code (the :class:`~cesym.verify.balls.BallPrinter` source: ``mpmath.log1p``,
``mpmath.pick``, ``mpmath.cmp_``, …) on :class:`Interval` s of NumPy arrays, one element per
point, and :mod:`cesym.verify.reference` takes from it what it pins; what it does not (a
cancellation, an interval that reaches a log's pole, a float64 output, whose 2^-8 ulp is below a
float64 interval's width) goes to the balls as before.

Why the enclosures hold (interval arithmetic with outward rounding, Moore 1966):

* ``+`` and ``−``: IEEE rounds to nearest; the exact error of a finite sum is computed (TwoSum,
  Knuth) and the end point moved one float outward only where it is not 0, so exact sums (1 − y
  at y = 0, a difference that is 0) stay exact;
* ``·`` and ``/``: each end point one float outward (``numpy.nextafter``), except where a
  factor is exactly 0 (a division: a power-of-two divisor with a normal result);
* exp, log, log1p, expm1, sqrt, sinh, cosh, tanh, powers: NumPy's functions at the end points
  (each monotone on the pieces used), moved outward by :data:`LIBM_SLACK` of the result
  (2^-40: 2^12 float64 ulps, where glibc documents at most 4 ulps for these and NumPy's SIMD
  versions measure below 4: ``cesym.verify.hostfloor`` and FIELD_NOTES) plus 2^-1064 for the
  subnormal range; their exact points (exp 0 = 1, log 1 = 0, …) stay exact;
* on the wide format (:data:`WIDE`, the condition numbers' fallback where float64's exponent
  range is too small), ``long double``'s functions, moved out by :data:`WIDE_SLACK` (2^-56):
  where Numba is missing (the first tier runs the printed code on
  :mod:`cesym.verify.scaled_intervals` otherwise, and only its outputs on long double);
* a result that overflows from finite operands becomes the whole line, an undefined one (the
  log of an interval reaching below 0, a division by an interval holding 0) NaN: never decided;
* comparisons, ``Piecewise`` and the step functions are three-valued as on the balls: a branch
  whose condition is undecided on a point contributes to the hull there.

:func:`pinned` applies the reference's own test (the interval's width at most 2^-8 of the
format's spacing at its smaller end); :func:`approx` is the condition numbers' (2^-10 of the
magnitude, or negligible against a scale). ``tests/test_float_intervals.py`` holds every
decision to the balls' on seeded points, adversarial ones included, and shows the points it hands
over (cancellations, large κ).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import mpmath
import numpy as np

from .interval_algebra import IntervalAlgebra, steps

__all__ = ["Interval", "LIBM_SLACK", "compile_source", "evaluate", "pinned", "approx", "NEGLIGIBLE", "two_sum", "two_prod_err"]

#: The compiled loops of the float64 products, sums and quotients
#: (:data:`cesym.verify.interval_loops.LOOPS`: NumPy's numbers, faster), loaded by the first
#: :func:`evaluate` (importing Numba costs a quarter of a second, which a process that never
#: runs the first tier does not pay); None: NumPy's operations.
LOOPS = None
_LOOPS_LOADED = False


def _load_loops() -> None:
    global LOOPS, _LOOPS_LOADED
    if not _LOOPS_LOADED:
        from .interval_loops import LOOPS as loops

        LOOPS, _LOOPS_LOADED = loops, True


#: Relative slack of a NumPy elementary function's result (see the module docstring).
LIBM_SLACK = 2.0**-40
_TINY = 2.0**-1064  # absolute slack below the normal range (float64's; :func:`_tiny` per format)
_MAX = np.finfo(np.float64).max
_INF = np.inf
#: The wider format the condition numbers fall back to where float64's range is too small
#: (x87 extended or binary128: exponents to ±16382), None where ``long double`` is float64.
WIDE = np.dtype(np.longdouble) if np.finfo(np.longdouble).maxexp > 1024 else None


def _arr(x) -> np.ndarray:
    """``x`` as an array of float64, or of the wide format if it is one already."""
    a = np.asarray(x)
    return a if a.dtype == np.float64 or (WIDE is not None and a.dtype == WIDE) else a.astype(np.float64)


def _tiny(r) -> np.ndarray | float:
    """The absolute slack below the normal range of ``r``'s format: 2^-42 of its least normal."""
    dt = np.asarray(r).dtype
    return _TINY if dt == np.float64 else np.ldexp(np.ones((), dt), np.finfo(dt).minexp - 42)


#: The wide format's relative slack: 2^7 to 2^8 of x87 extended's ulps (2^-64 to 2^-63 of the
#: result), where glibc's sysdeps/x86_64/fpu/libm-test-ulps lists at most 3 (round to nearest,
#: ldouble: exp 1, log 1, log1p 2, expm1 3, sinh 3, cosh 3, tanh 3; float128, aarch64's long
#: double: at most 3 of 2^-112). NumPy's long double functions are libm's (expl, logl, ...).
WIDE_SLACK = 2.0**-56


def _slack(r):
    return LIBM_SLACK if np.asarray(r).dtype == np.float64 else WIDE_SLACK


def _max(r):
    return np.finfo(np.asarray(r).dtype).max


def _down(r):
    return np.nextafter(r, -_INF)


def _up(r):
    return np.nextafter(r, _INF)


def _pow2(x) -> np.ndarray:
    """|x| a power of two (0 and non-finite excluded)."""
    m, _ = np.frexp(x)
    return np.abs(m) == 0.5


def _normal(r) -> np.ndarray:
    a = np.abs(r)
    return (a >= np.finfo(a.dtype).tiny) & (a <= np.finfo(a.dtype).max)


class Interval(IntervalAlgebra):
    """Closed intervals ``[lo, hi]`` of float64 (or of :data:`WIDE`), one per point (arrays
    broadcast as NumPy's). NaN in either end: nothing is known there. The operators not
    defined here: :class:`~cesym.verify.interval_algebra.IntervalAlgebra`."""

    __slots__ = ("lo", "hi")

    def __init__(self, lo, hi=None):
        self.lo = _arr(lo)
        self.hi = self.lo if hi is None else _arr(hi)

    # --- arithmetic ---------------------------------------------------------------------------
    def __add__(self, other):
        o = _iv(other)
        if LOOPS is not None and (r := LOOPS.add(self.lo, self.hi, o.lo, o.hi)) is not None:
            return Interval(*r)
        return Interval(_sum(self.lo, o.lo, down=True), _sum(self.hi, o.hi, down=False))

    def __neg__(self):
        return Interval(-self.hi, -self.lo)

    def __mul__(self, other):
        o = _iv(other)
        if LOOPS is not None and (r := LOOPS.mul(self.lo, self.hi, o.lo, o.hi)) is not None:
            return Interval(*r)
        with np.errstate(invalid="ignore", over="ignore", under="ignore"):
            p1, p2, p3, p4 = self.lo * o.lo, self.lo * o.hi, self.hi * o.lo, self.hi * o.hi
        lo = np.minimum(np.minimum(p1, p2), np.minimum(p3, p4))
        hi = np.maximum(np.maximum(p1, p2), np.maximum(p3, p4))
        # one float outward, except where a factor is exactly 0 (every product is): a rounding
        # that never happened costs one float of width, a zero that is not exact would not be.
        # An undefined factor (NaN: 1/0, 0/0) stays undefined: 0·(0/0) is not 0
        zero = ((self.lo == 0) & (self.hi == 0)) | ((o.lo == 0) & (o.hi == 0))
        zero &= ~(np.isnan(self.lo) | np.isnan(self.hi) | np.isnan(o.lo) | np.isnan(o.hi))
        if zero.any():
            return _overflowed(Interval(np.where(zero, 0.0, _down(lo)), np.where(zero, 0.0, _up(hi))), self, o)
        return _overflowed(Interval(_down(lo), _up(hi)), self, o)

    def __abs__(self):
        lo = np.where(self.lo >= 0, self.lo, np.where(self.hi <= 0, -self.hi, 0.0))
        hi = np.where(self.lo >= 0, self.hi, np.where(self.hi <= 0, -self.lo, np.maximum(-self.lo, self.hi)))
        return Interval(np.where(np.isnan(self.lo) | np.isnan(self.hi), np.nan, lo), hi)

    # --- the hooks of IntervalAlgebra ---------------------------------------------------------
    @staticmethod
    def _of(x) -> "Interval":
        return _iv(x)

    def _reciprocal(self) -> "Interval":
        return _reciprocal(self)

    def _integer(self) -> int | None:
        if self.lo.ndim == 0 and self.lo == self.hi and np.mod(self.lo, 1) == 0:
            return int(self.lo)
        return None

    def _one(self) -> "Interval":
        return Interval(np.where(np.isnan(self.lo) | np.isnan(self.hi), np.nan, 1.0))

    def _nonneg(self) -> "Interval":
        return Interval(np.maximum(self.lo, 0.0), self.hi)

    def _exact_zero(self) -> np.ndarray:
        return (self.lo == 0) & (self.hi == 0)

    def _zero_where(self, mask) -> "Interval":
        return Interval(np.where(mask, 0.0, self.lo), np.where(mask, 0.0, self.hi))

    def _real_pow(self, p: "Interval") -> "Interval":
        """x^p = exp(p·log x) for x > 0; 0^p = 0 for p > 0."""
        return (exp(p * log(self)))._zero_where(self._exact_zero() & (p.lo > 0))


def _iv(x) -> Interval:
    """A constant or an interval as an :class:`Interval` (a float exactly; an int exactly where
    it is a float, else enclosed)."""
    if isinstance(x, Interval):
        return x
    if isinstance(x, (bool, np.bool_)):
        return Interval(float(x))
    if isinstance(x, (int, np.integer)):
        f = float(x)
        if int(f) == int(x):
            return Interval(f)
        return Interval(_down(f), _up(f))
    if isinstance(x, (float, np.floating, np.ndarray)):
        return Interval(_arr(x))
    return _enclose(mpmath.mpf(x))


def _enclose(v: mpmath.mpf) -> Interval:
    """An mpmath number between two floats (exact where it is one)."""
    f = float(v)
    if mpmath.mpf(f) == v:
        return Interval(f)
    return Interval(_down(f), _up(f))


def two_sum(a, b) -> tuple:
    """Knuth's TwoSum, elementwise: (s, err) with s = fl(a + b) and a + b = s + err exactly
    (where s is finite)."""
    with np.errstate(invalid="ignore", over="ignore"):
        s = a + b
        bb = s - a
        return s, (a - (s - bb)) + (b - bb)


#: Veltkamp's splitting constant for float64, 2^27 + 1.
_SPLIT = 134217729.0


def two_prod_err(a, b, p):
    """Dekker's TwoProduct, elementwise: ``a·b - p`` exactly for ``p = fl(a·b)`` (NumPy has no
    FMA), where |a|, |b| and |a·b| stay between about 2^-969 and 2^996 (the splits neither
    overflow nor lose bits among the subnormals). The verification's own, beside the kernels'
    ``cesym.kernels._eft._two_prod_err``: the reference side's arithmetic (this module,
    ``truths``, ``reference``) imports nothing from the kernels it checks, so a fault in one
    cannot hide in both."""
    with np.errstate(invalid="ignore", over="ignore"):
        ca = _SPLIT * a
        ah = ca - (ca - a)
        al = a - ah
        cb = _SPLIT * b
        bh = cb - (cb - b)
        bl = b - bh
        return ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _sum(a, b, down: bool):
    """a + b rounded outward (``down``: toward -inf), exact where the sum is."""
    s, err = two_sum(a, b)
    out = np.where(err < 0, _down(s), s) if down else np.where(err > 0, _up(s), s)
    inf = np.isinf(s)
    if inf.any():  # an overflow from finite operands: unbounded on that side
        over = inf & np.isfinite(a) & np.isfinite(b)
        out = np.where(over, -_INF if down else _INF, out)
    return out


def _overflowed(out: Interval, a: Interval, b: Interval) -> Interval:
    """Ends that overflowed from finite operands: unbounded there."""
    il, ih = np.isinf(out.lo), np.isinf(out.hi)
    if not (il.any() or ih.any()):
        return out
    fin = np.isfinite(a.lo) & np.isfinite(a.hi) & np.isfinite(b.lo) & np.isfinite(b.hi)
    return Interval(np.where(fin & il, -_INF, out.lo), np.where(fin & ih, _INF, out.hi))


def _reciprocal(x: Interval) -> Interval:
    """1/x; NaN where x holds 0."""
    if LOOPS is not None and (r := LOOPS.reciprocal(x.lo, x.hi)) is not None:
        return Interval(*r)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rl, rh = 1.0 / x.hi, 1.0 / x.lo
    ok = (x.lo > 0) | (x.hi < 0)
    el = _pow2(x.hi) & _normal(rl)
    eh = _pow2(x.lo) & _normal(rh)
    lo = np.where(el, rl, _down(rl))
    hi = np.where(eh, rh, _up(rh))
    lo = np.where(np.isinf(x.hi), 0.0, lo)  # 1/±inf = 0 exactly
    hi = np.where(np.isinf(x.lo), 0.0, hi)
    return Interval(np.where(ok, lo, np.nan), np.where(ok, hi, np.nan))


# --- elementary functions -----------------------------------------------------------------------


def _slack_down(r):
    with np.errstate(invalid="ignore"):
        out = r - (np.abs(r) * _slack(r) + _tiny(r))
    return np.where(np.isposinf(r), _max(r), np.where(np.isneginf(r), r, out))


def _slack_up(r):
    with np.errstate(invalid="ignore"):
        out = r + (np.abs(r) * _slack(r) + _tiny(r))
    return np.where(np.isneginf(r), -_max(r), np.where(np.isposinf(r), r, out))


def _monotone(f: Callable, exact_at: Sequence[tuple[float, float]] = (), lo_domain: float | None = None):
    """An increasing function on intervals: f at the ends, moved out by the slack except at its
    exact points ``(x, f(x))``; NaN where the interval reaches below ``lo_domain``."""

    ex = np.array([p for p, _ in exact_at], dtype=np.float64)
    ef = np.array([v for _, v in exact_at], dtype=np.float64)

    def apply(x) -> Interval:
        x = _iv(x)
        with np.errstate(all="ignore"):
            a, b = f(x.lo), f(x.hi)
        if LOOPS is not None and (r := LOOPS.finish(a, b, x.lo, x.hi, ex, ef, lo_domain, LIBM_SLACK, _TINY, _MAX)) is not None:
            return Interval(*r)
        lo, hi = _slack_down(a), _slack_up(b)
        for px, fx in exact_at:
            lo = np.where(x.lo == px, fx, lo)
            hi = np.where(x.hi == px, fx, hi)
        if lo_domain is not None:
            bad = ~(x.lo >= lo_domain)
            lo, hi = np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)
        return Interval(lo, hi)

    return apply


exp = _monotone(np.exp, [(0.0, 1.0), (-_INF, 0.0), (_INF, _INF)])
log = _monotone(np.log, [(1.0, 0.0), (0.0, -_INF), (_INF, _INF)], lo_domain=0.0)
log1p = _monotone(np.log1p, [(0.0, 0.0), (-1.0, -_INF), (_INF, _INF)], lo_domain=-1.0)
expm1 = _monotone(np.expm1, [(0.0, 0.0), (-_INF, -1.0), (_INF, _INF)])
sqrt = _monotone(np.sqrt, [(0.0, 0.0), (1.0, 1.0), (_INF, _INF)], lo_domain=0.0)
sinh = _monotone(np.sinh, [(0.0, 0.0), (-_INF, -_INF), (_INF, _INF)])
tanh = _monotone(np.tanh, [(0.0, 0.0), (-_INF, -1.0), (_INF, 1.0)])


def cosh(x) -> Interval:
    """cosh: even, increasing in |x|."""
    a = abs(_iv(x))
    with np.errstate(over="ignore"):
        lo, hi = np.cosh(a.lo), np.cosh(a.hi)
    return Interval(np.where(a.lo == 0, 1.0, np.maximum(_slack_down(lo), 1.0)), np.where(a.hi == 0, 1.0, _slack_up(hi)))


def ipow(x, k: int) -> Interval:
    """x^k for an integer k (:meth:`~cesym.verify.interval_algebra.IntervalAlgebra.ipow`)."""
    return _iv(x).ipow(k)


# --- three-valued logic: (certainly true, certainly false) boolean arrays -----------------------


def _truth(c) -> tuple:
    if isinstance(c, tuple):
        return c
    c = bool(c)
    return (np.asarray(c), np.asarray(not c))


def cmp_(op: str, a, b) -> tuple:
    d = _iv(a) - _iv(b)
    lo, hi = d.lo, d.hi
    known = ~(np.isnan(lo) | np.isnan(hi))
    if op == "<":
        t, f = hi < 0, lo >= 0
    elif op == "<=":
        t, f = hi <= 0, lo > 0
    elif op == ">":
        t, f = lo > 0, hi <= 0
    elif op == ">=":
        t, f = lo >= 0, hi < 0
    elif op == "==":
        t, f = (lo == 0) & (hi == 0), (lo > 0) | (hi < 0)
    elif op == "!=":
        t, f = (lo > 0) | (hi < 0), (lo == 0) & (hi == 0)
    else:
        raise ValueError(f"comparison {op!r}")
    return (t & known, f & known)


def and_(*cs) -> tuple:
    ts, fs = zip(*(_truth(c) for c in cs))
    return (functools.reduce(np.logical_and, ts), functools.reduce(np.logical_or, fs))


def or_(*cs) -> tuple:
    ts, fs = zip(*(_truth(c) for c in cs))
    return (functools.reduce(np.logical_or, ts), functools.reduce(np.logical_and, fs))


def not_(c) -> tuple:
    t, f = _truth(c)
    return (f, t)


def pick(*pairs) -> Interval:
    """A ``Piecewise``: per point, the hull of the values whose conditions may hold, up to the
    first that certainly does."""
    lo = hi = None
    done = np.asarray(False)
    for c, v in pairs:
        t, f = _truth(c)
        v = _iv(v)
        take = ~done & ~f
        if lo is None:
            lo = np.where(take, v.lo, _INF)
            hi = np.where(take, v.hi, -_INF)
        else:
            lo = np.where(take, np.minimum(lo, v.lo), lo)
            hi = np.where(take, np.maximum(hi, v.hi), hi)
        done = done | t
    empty = lo > hi  # no branch may hold: undefined
    return Interval(np.where(empty, np.nan, lo), np.where(empty, np.nan, hi))


heaviside, sign_ = steps(_iv, pick, cmp_)


def max_(*a) -> Interval:
    ivs = [_iv(v) for v in a]
    return Interval(functools.reduce(np.maximum, [v.lo for v in ivs]), functools.reduce(np.maximum, [v.hi for v in ivs]))


def min_(*a) -> Interval:
    ivs = [_iv(v) for v in a]
    return Interval(functools.reduce(np.minimum, [v.lo for v in ivs]), functools.reduce(np.minimum, [v.hi for v in ivs]))


def xmul(a, b) -> Interval:
    """a·b with 0·b = 0 for any b (the 0·log 0 = 0 convention) where a is exactly 0."""
    return _iv(a).xmul(b)


class _Module:
    """What the printed code calls ``mpmath``."""

    mpf = staticmethod(_iv)
    log, exp, log1p, expm1 = staticmethod(log), staticmethod(exp), staticmethod(log1p), staticmethod(expm1)
    sqrt, sinh, cosh, tanh = staticmethod(sqrt), staticmethod(sinh), staticmethod(cosh), staticmethod(tanh)
    max_, min_, sign_, heaviside = staticmethod(max_), staticmethod(min_), staticmethod(sign_), staticmethod(heaviside)
    pick, ipow, cmp_ = staticmethod(pick), staticmethod(ipow), staticmethod(cmp_)
    and_, or_, not_ = staticmethod(and_), staticmethod(or_), staticmethod(not_)
    pi = property(lambda self: _enclose_const(mpmath.pi))
    e = property(lambda self: _enclose_const(mpmath.e))
    inf = property(lambda self: Interval(_INF))
    nan = property(lambda self: Interval(float("nan")))  # nothing known (a branch no condition selects)


def _enclose_const(c) -> Interval:
    with mpmath.workprec(200):
        v = +c
    f = float(v)
    return Interval(_down(f), _up(f))


MODULE = _Module()


def compile_source(fn: Callable, namespace: dict | None = None) -> Callable | None:
    """The printed reference function ``fn`` (a ``_lambdifygenerated`` of the ball printer)
    rebuilt on :class:`Interval` s (or on what ``namespace``'s ``mpmath`` and ``XMul`` compute
    on: :mod:`cesym.verify.scaled_intervals`); None where its source cannot be read."""
    src = getattr(fn, "printed_source", None)  # set by the reference's code cache
    if src is None:
        try:
            src = inspect.getsource(fn)
        except (OSError, TypeError):
            return None
    g = {"mpmath": MODULE, "XMul": xmul, **(namespace or {}), "range": range}
    try:
        exec(compile(src, "<float intervals>", "exec"), g)  # noqa: S102 - the reference's own printed code
    except SyntaxError:
        return None
    out = g.get("_lambdifygenerated")
    return out if callable(out) else None


def run_printed(fn: Callable, args: list) -> list | None:
    """The printed reference code ``fn`` on one format's interval arguments (this module's, the
    wide and the double-double formats'): its outputs, or None where the code uses what the
    format does not model (an operation or a comparison it lacks, a quotient by an exact 0)."""
    try:
        with np.errstate(all="ignore"):
            return list(fn(*args))
    except (TypeError, ValueError, AttributeError, ZeroDivisionError, OverflowError):
        return None


def evaluate(fn: Callable, columns: Sequence[np.ndarray], dtype=np.float64) -> list[Interval] | None:
    """``fn`` (from :func:`compile_source`) on the points whose inputs are ``columns`` (one array
    of float64 per argument, exact binary values), in intervals of ``dtype`` (float64 or
    :data:`WIDE`); None where the code uses what this arithmetic does not model."""
    _load_loops()
    # contiguous once here (the columns of a batch are strided views): not copied by every loop
    args = [Interval(np.ascontiguousarray(c, dtype=dtype)) for c in columns]
    n = len(columns[0]) if columns else 1
    out = run_printed(fn, args)
    if out is None:
        return None
    res = []
    for o in out:
        o = _iv(o)
        res.append(Interval(np.broadcast_to(o.lo, (n,)), np.broadcast_to(o.hi, (n,))))
    return res


def pinned(x: Interval, p: int, emin: int) -> np.ndarray:
    """Where ``x`` pins its value to within 2^-8 of the spacing of a format of ``p`` bits and
    least exponent ``emin`` at its smaller end (the reference's own test), or is one number.

    Stricter than that test in one way: both ends of one sign and the width within 2^-20 of
    the smaller end. The balls pin a value far below the format's range relatively (a ball
    about 1e-600 has a radius of a few of its own ulps); an interval of float64 that underflowed
    to [-2^-1074, 2^-1074] would pin "0" for float32 just as well, but the condition numbers
    divide by the value, and κ of 0 is infinite: such points are left to the balls."""
    a, b = x.lo, x.hi
    fin = np.isfinite(a) & np.isfinite(b)
    same = ((a > 0) & (b > 0)) | ((a < 0) & (b < 0))
    small = np.where(same, np.minimum(np.abs(a), np.abs(b)), 0.0)
    _, e = np.frexp(small)
    spacing = np.ldexp(1.0, np.maximum(np.where(small > 0, e - p, emin), emin))
    with np.errstate(over="ignore", invalid="ignore"):
        width = _up(b - a)
    return ((a == b) & fin) | (fin & same & (width <= spacing / 256) & (width <= small * 2.0**-20))


#: A term x·∂f/∂x of κ whose interval stays within this share of its scale |f|/|x| of 0 is taken
#: for 0: it adds less than 2^-30 to κ, whose bound allows 4κ ulps on top of 4 or 8 (a change of
#: 2^-28 ulp at most, per term). The balls' threshold is 2^(-prec/2), 2^-40 at their first 80
#: bits; the 2^-10 more here lets a float64 interval, 27 bits shorter, call a term that cancels
#: to nothing negligible, where 2^-40 sent it to the balls (focal loss's ∂f/∂γ at a confident
#: row: an interval of ±5.8e-10 against a scale of 158; 3590 of the 29815 points whose κ the
#: balls computed in a default `cesym verify`, 2026-12-04).
NEGLIGIBLE = 2.0**-30


def approx(x: Interval, scale: np.ndarray | float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(value, known): a few digits of each point's value, as the condition numbers take them
    (:meth:`cesym.verify.reference.RowReference._approx`): the interval's one number, its middle
    where its width is at most 2^-10 of its magnitude, and with a ``scale``, 0 where it stays
    within :data:`NEGLIGIBLE` ·``scale`` of 0 (negligible against the rest of κ)."""
    a, b = x.lo, x.hi
    fin = np.isfinite(a) & np.isfinite(b)
    mag = np.maximum(np.abs(a), np.abs(b))
    with np.errstate(over="ignore", invalid="ignore"):
        mid = a / 2 + b / 2
        narrow = fin & (b - a <= 2.0**-10 * mag)
        tiny = fin & (mag < NEGLIGIBLE * np.asarray(scale, dtype=np.float64)) if scale is not None else False
    exact = a == b
    val = np.where(exact, a, np.where(narrow, mid, 0.0))
    return val, exact | narrow | tiny
