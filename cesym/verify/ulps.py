"""Errors in units in the last place (ulps) of a float format, against an mpmath reference.

``ulp(x)`` is the spacing of the format at ``|x|``: ``2**(e - p)`` for ``2**(e-1) <= |x| < 2**e``
with ``p`` significand bits (53 for float64, 24 for float32), and never less than the spacing of
the subnormals (``2**-1074``, ``2**-149``). The error of a computed float ``y`` against the true
value ``x`` is ``|y - x| / ulp(x)``: 0.5 is a correctly rounded result. Herbie's "bits of error"
is ``log2(1 + number of floats between y and the correctly rounded x)``.
"""

from __future__ import annotations

import functools
import math
import struct

import mpmath
import numpy as np

__all__ = ["FORMATS", "ulp", "ulp_error", "bits_error", "nan_bits", "round_to"]

#: significand bits (with the hidden bit), smallest subnormal exponent, largest finite value
FORMATS = {
    np.dtype(np.float64): (53, -1074, float(np.finfo(np.float64).max)),
    np.dtype(np.float32): (24, -149, float(np.finfo(np.float32).max)),
}


def ulp(x, dtype) -> mpmath.mpf:
    """Spacing of ``dtype`` at the real number ``x`` (an mpmath number or float)."""
    p, emin, _ = FORMATS[np.dtype(dtype)]
    x = mpmath.mpf(x)
    if x == 0:
        return mpmath.ldexp(1, emin)
    _, e = mpmath.frexp(abs(x))  # |x| = m·2**e with 0.5 <= m < 1
    return mpmath.ldexp(1, max(int(e) - p, emin))


def ulp_error(computed: float, true, dtype) -> float:
    """``|computed - true| / ulp(true)`` in ``dtype`` ulps; inf for NaN or a wrong infinity.

    A true value beyond the format's range is matched by an infinity of the same sign.
    """
    p, emin, top_max, dt = _format(dtype)
    true = true if isinstance(true, mpmath.mpf) else mpmath.mpf(true)
    y = float(computed)
    if y != y:
        return math.inf
    sign, man, exp, bc = true._mpf_
    if not man:  # 0, ±inf or NaN (a NaN reference is no value: _ulps reads it as 0, as it always has)
        beyond = true._mpf_ in _INFINITIES
    else:
        # |true| < 2^(exp+bc): below 2^(top_max-1) nothing rounds to infinity, from 2^top_max on
        # everything does; in between (the top binade) the exact test
        top = exp + bc
        beyond = top > top_max or (top == top_max and (true >= _beyond(dt) or true <= -_beyond(dt)))
    if beyond:
        return 0.0 if (math.isinf(y) and (y > 0) == (true > 0)) else math.inf
    if math.isinf(y):
        return math.inf
    return _ulps(y, true, p, emin)


_INFINITIES = (mpmath.libmp.finf, mpmath.libmp.fninf)


@functools.cache
def _format(dtype) -> tuple[int, int, int, np.dtype]:
    """(precision, least exponent, top, dtype) of a dtype given in any form: ``top`` the exponent
    with 2^(top-1) <= the largest float < 2^top (1024, 128)."""
    dt = np.dtype(dtype)
    p, emin, fmax = FORMATS[dt]
    return p, emin, math.frexp(fmax)[1], dt


@functools.cache
def _beyond(dtype: np.dtype) -> mpmath.mpf:
    """The magnitude from which a value rounds to infinity in ``dtype``: the largest float plus
    half its spacing (the tie rounds to the even 2^emax, infinity), exactly."""
    p, _, fmax = FORMATS[dtype]
    _, e = math.frexp(fmax)  # fmax = (1 - 2^-p)·2^e, its spacing 2^(e - p)
    with mpmath.workprec(p + 8):
        return mpmath.mpf(fmax) + mpmath.ldexp(1, e - p - 1)


def _ulps(y: float, true: mpmath.mpf, p: int, emin: int) -> float:
    """|y - true| / 2^q, q the exponent of the spacing at ``true``, in integers: ``true`` is
    ±man·2^exp (mpmath's own form), ``y`` = Y·2^(e-53) exactly (``math.frexp``); the difference
    is exact over the smaller exponent (shifts of about the reference's extra bits where ``y``
    is near ``true``), the one rounding is the final conversion to float (a relative 2^-53, far
    below the 2^-8 ulp to which the reference pins ``true``)."""
    sign, man, exp, bc = true._mpf_
    t = -man if sign else man
    q = max(exp + bc - p, emin) if t else emin  # |true| = m·2^(exp+bc), m in [1/2, 1)
    if y == 0:
        d, c = abs(t), exp
    else:
        m, e = math.frexp(y)
        Y, ye = int(m * 9007199254740992.0), e - 53  # y = Y·2^ye, Y a whole number of 53 bits
        if not t:
            exp = ye
        c = min(ye, exp)
        if ye - c > 4096 or exp - c > 4096:  # a reference far outside the floats' exponents (a limit's stand-in)
            with mpmath.workprec(96):
                return float(abs(mpmath.mpf(y) - true) / mpmath.ldexp(1, q))
        d = abs((Y << (ye - c)) - (t << (exp - c)))  # |y - true|·2^-c
    if d == 0:
        return 0.0
    shift = max(d.bit_length() - 64, 0)
    try:
        return math.ldexp(float(d >> shift), shift + c - q)  # the dropped bits: below 2^-63 relative
    except OverflowError:
        return math.inf


def round_to(v, dtype) -> float:
    """``v`` (an mpmath number or float) rounded to the nearest number of ``dtype`` (ties to even;
    from the largest float plus half its spacing on: ±inf; below half the least subnormal: 0),
    as a Python float: one rounding of the exact binary value, in integers, with :func:`_ulps`'s
    spacing (the limits' hottest call, :mod:`cesym.verify.extended`: three per output and ray).
    NaN raises ValueError."""
    sign, man, exp, bc = (v if isinstance(v, mpmath.mpf) else mpmath.mpf(v))._mpf_
    if not man:
        if (sign, man, exp, bc) == mpmath.libmp.fzero:
            return 0.0
        if (sign, man, exp, bc) in (mpmath.libmp.finf, mpmath.libmp.fninf):
            return -math.inf if sign else math.inf
        raise ValueError("round_to: NaN has no nearest float")
    p, emin, top, _ = _format(dtype)
    unit = max(exp + bc - p, emin)  # the format's spacing at |v| is 2^unit
    if exp >= unit:
        q = man << (exp - unit)
    elif unit - exp > bc:  # below half the least subnormal (a stand-in 2^(-2^64)): 0
        q = 0
    else:
        shift = unit - exp
        q, rest = man >> shift, man & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rest > half or (rest == half and q & 1):
            q += 1
    if not q:
        return 0.0
    if q.bit_length() + unit > top:  # 2^top and beyond: past the largest float
        return -math.inf if sign else math.inf
    x = math.ldexp(q, unit)
    return -x if sign else x


def nan_bits(dtype) -> float:
    """The bits of error of a NaN output: every bit of the format (64 for float64, 32 for float32)."""
    return float(8 * np.dtype(dtype).itemsize)


def bits_error(computed: float, true, dtype) -> float:
    """Herbie's bits of error: log2(1 + floats strictly between ``computed`` and round(true));
    a NaN's, :func:`nan_bits`."""
    _, _, _, dt = _format(dtype)
    y = float(computed)
    if y != y:
        return nan_bits(dt)
    r = float(true if isinstance(true, mpmath.mpf) else mpmath.mpf(true))  # nearest (double rounding for float32 is harmless here)
    a, b = _ordinal(y, dt), _ordinal(r, dt)
    return math.log2(1 + abs(a - b))


def _ordinal(v: float, dt: np.dtype) -> int:
    """Monotone integer index of ``v`` rounded to ``dt`` (beyond float32's range: its infinity,
    as rounding gives): consecutive floats differ by 1."""
    if dt == np.float64:
        i = struct.unpack("<q", struct.pack("<d", v))[0]
        return i if i >= 0 else -(i & 0x7FFFFFFFFFFFFFFF)
    try:
        i = struct.unpack("<i", struct.pack("<f", v))[0]  # rounded to nearest, as a C cast
    except OverflowError:  # past the largest float32 after rounding: ±inf
        i = struct.unpack("<i", struct.pack("<f", math.copysign(math.inf, v)))[0]
    return i if i >= 0 else -(i & 0x7FFFFFFF)
