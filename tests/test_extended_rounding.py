"""The limits' rounding to a format (:func:`cesym.verify.ulps.round_to`): one correct rounding of
the exact binary value, ties to even, overflow past the largest float plus half its spacing, and
0 below half the least subnormal; checked against exact rational arithmetic (``fractions``) on
seeded values, exact ties and their neighbours, and the stand-ins' extreme exponents."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import mpmath
import numpy as np
import pytest

from cesym.verify.ulps import round_to as _round

_FMT = {np.float64: (53, -1074, 1024), np.float32: (24, -149, 128)}


def _exact(v: mpmath.mpf) -> Fraction:
    sign, man, exp, _ = v._mpf_
    f = Fraction(man) * (Fraction(2) ** exp)
    return -f if sign else f


def _correct(v: mpmath.mpf, dtype) -> float:
    """Round-to-nearest-even of the exact value, by rationals: the spacing at |v|, the nearest
    multiples, the tie to the even one, infinity from 2^top on."""
    p, emin, top = _FMT[dtype]
    x = abs(_exact(v))
    e = x.numerator.bit_length() - x.denominator.bit_length()
    while Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1  # 2^e <= x < 2^(e+1)
    unit = Fraction(2) ** max(e + 1 - p, emin)
    q, rest = divmod(x, unit)
    if rest > unit / 2 or (rest == unit / 2 and q % 2):
        q += 1
    r = q * unit
    if r >= Fraction(2) ** top:
        return -math.inf if v < 0 else math.inf
    out = float(r)  # exact: r is a number of the format
    return -out if v < 0 and out else out


def _values(rng: random.Random, dtype) -> list[mpmath.mpf]:
    p, emin, top = _FMT[dtype]
    vals = []
    for _ in range(3000):
        bits = rng.choice([1, 2, p, p + 1, 80, 160])
        man = rng.getrandbits(bits) | (1 << (bits - 1))
        e = rng.randint(emin - 8, top + 1)
        vals.append(mpmath.mpf((rng.getrandbits(1), man, e - bits, bits)))
    for _ in range(1000):  # ties between two floats and their nearest neighbours at 80 more bits
        k = rng.getrandbits(p) | (1 << (p - 1))
        e = rng.randint(emin + p, top - 1)
        for d in (-1, 0, 1):
            man = (2 * k + 1) * (1 << 80) + d
            vals.append(mpmath.mpf((rng.getrandbits(1), man, e - p - 81, man.bit_length())))
    return vals


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_is_one_correct_rounding(dtype):
    rng = random.Random(2026 + _FMT[dtype][0])
    for v in _values(rng, dtype):
        assert _round(v, dtype) == _correct(v, dtype), mpmath.nstr(v, 30)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_at_the_ends_of_the_range(dtype):
    p, emin, top = _FMT[dtype]
    fmax = float(np.finfo(dtype).max)
    half = mpmath.ldexp(1, top - p - 1)  # half the spacing at the largest float
    with mpmath.workprec(400):
        assert _round(mpmath.mpf(fmax) + half * mpmath.mpf(0.999), dtype) == fmax
        assert _round(mpmath.mpf(fmax) + half, dtype) == math.inf  # the tie rounds to the even 2^top
        assert _round(-(mpmath.mpf(fmax) + 3 * half), dtype) == -math.inf
        least = mpmath.ldexp(1, emin)
        assert _round(least / 2, dtype) == 0.0  # the tie rounds to the even 0
        assert _round(least / 2 * mpmath.mpf(1.001), dtype) == float(least)
    assert _round(mpmath.ldexp(1, -(2**96)), dtype) == 0.0  # a stand-in for a probability 0
    assert _round(mpmath.ldexp(1, 2**96), dtype) == math.inf
    assert _round(mpmath.mpf(0), dtype) == 0.0
    assert _round(mpmath.inf, dtype) == math.inf and _round(-mpmath.inf, dtype) == -math.inf
    with pytest.raises(ValueError):
        _round(mpmath.nan, dtype)
