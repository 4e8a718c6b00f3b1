r"""The reference's values of a whole batch as double-double arrays, and their errors in ulps.

The contract check (:func:`cesym.verify.contract.check_batch`) and Keras's classification
(:func:`cesym.keras.check.classify`) compare every output of a batch with the reference. Most
outputs are within the constant term of their bound (4 ulps for a value, 8 for a gradient
element), where no condition number is needed and nothing but the error is recorded. Those
errors are computed here for the whole batch, a few NumPy operations, from the reference's values
held as double-double arrays; only the other outputs go through the point-by-point check, which
computes everything exactly with mpmath (about 0.3 ms of Python per point, most of a default
``cesym verify`` before this module).

The reference value :math:`t` (pinned by the balls or the first tier to 2^-8 of the format's
spacing) is held as :math:`t_{hi} + t_{lo}` with :math:`t_{hi} = \mathrm{fl}_{64}(t)` and
:math:`t_{lo} = \mathrm{fl}_{64}(t - t_{hi})`: 106 bits, exact for every first-tier middle (a
TwoSum of two float64 halves) and within 2^-106 relatively of a ball's middle. The error of a
computed float :math:`y` is

.. math:: e = |(y - t_{hi}) - t_{lo}| \cdot 2^{-q},\qquad q = \max(E(t) - p,\ e_{min}),

with :math:`E(t)` the exponent of :math:`|t|` (:math:`2^{E-1} \le |t| < 2^E`, one less than
:math:`t_{hi}`'s where :math:`t_{hi}` is a power of two and :math:`t_{lo}` pulls :math:`|t|` below
it). ``y - t_hi`` is exact where :math:`y` is within a factor 2 of :math:`t_{hi}` (Sterbenz), the
rest rounds twice at 2^-53: :math:`e` agrees with :func:`cesym.verify.ulps.ulp_error` to a
relative 2^-51. An output is decided here only where :math:`e \le (1 - 2^{-30})` of the constant
term, so that no output the exact check would send to its condition number is decided here.

Handed to the point-by-point check: a point with an input reached only as a limit (±inf, a
probability 0 or, for unit probabilities, 1, the edge −1 of log1p) or a non-finite label, a
reference value not pinned (Unresolved), NaN, at or beyond 2^(emax) of the format, or non-zero below 2^-968 (where float64 cannot hold it
to 106 bits) (where
rounding to infinity is decided exactly), and every output past the margin above.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np

from .reference import RowReference, Unresolved
from .ulps import FORMATS, nan_bits

__all__ = ["Truths", "batch_truths", "double_double", "format_top", "ulp_errors", "ulp_exponents", "bits_errors", "special_inputs", "FAST_MARGIN"]

#: The fraction of a bound's constant term below which an error is decided here (see the module
#: docstring: the errors here agree with the exact ones to a relative 2^-51).
FAST_MARGIN = 1.0 - 2.0**-30


@dataclass
class Truths:
    """The reference's value and gradient of each point of a batch, as double-double arrays.

    ``ok[i]``: point ``i`` has every output here (finite, pinned, below 2^emax of the format);
    elsewhere the arrays hold 0 and the point is left to the point-by-point check.
    """

    ok: np.ndarray  # (m,) bool
    v_hi: np.ndarray  # (m,)
    v_lo: np.ndarray
    g_hi: np.ndarray  # (m, n_grad)
    g_lo: np.ndarray


def special_inputs(pts: np.ndarray, n_lab: int, n: int, domain: str, unit: bool = False) -> np.ndarray:
    """Per point (one row of ``pts``: labels, pred, params): whether an input is reached only as a
    limit or a label is not finite (:func:`cesym.verify.extended.needs_limit`, vectorised)."""
    x = pts[:, n_lab : n_lab + n]
    bad = ~np.all(np.isfinite(pts), axis=1)
    if domain == "probability":
        bad |= np.any(x == 0.0, axis=1)
        if unit:
            bad |= np.any(x == 1.0, axis=1)
    elif domain == "log1p":
        bad |= np.any(x == -1.0, axis=1)
    return bad


#: Below this, t_lo would be subnormal (fewer bits) or t_hi itself would lose bits: such values
#: (and non-zero values that round to 0 in float64) go to the exact check.
_LOW = 2.0**-968


def double_double(x: mpmath.mpf) -> tuple[float, float]:
    """``x`` as hi + lo: hi the nearest float64, lo the nearest float64 to the rest (NaN for a
    non-zero ``x`` that float64 cannot hold to 106 bits)."""
    hi = float(x)
    if not np.isfinite(hi) or (abs(hi) < _LOW and x != 0):
        return np.nan, 0.0
    return hi, float(mpmath.fsub(x, hi, exact=True))


def batch_truths(ref: RowReference, pts: np.ndarray, dtype, skip: np.ndarray | None = None) -> Truths:
    """The reference's values at the points ``pts`` (one row per point: labels, pred, params, as
    :meth:`RowReference._inputs` orders them) for ``dtype``: the first tier's middles as arrays
    where it pinned them (:func:`cesym.verify.first_tier.pinned_middles`), else its memo or its
    balls point by point (kept as double-doubles on ``ref`` for the next check of the same
    points: the naive form's, Keras's; and, for the ``cesym`` command, in the truths cache for
    the next run, :mod:`cesym.verify.truthcache`); the points where ``skip`` is true are not evaluated
    (left to the exact check)."""
    from .first_tier import pinned_middles

    m, k = len(pts), ref.n_grad
    _, _, top = format_top(dtype)
    hi = np.zeros((m, 1 + k))
    lo = np.zeros((m, 1 + k))
    ok = np.zeros(m, dtype=bool)
    rows = [tuple(r) for r in pts.tolist()]
    tier = pinned_middles(ref, rows, dtype)
    if tier is not None:
        t_ok, t_hi, t_lo = tier
        ok, hi, lo = t_ok.copy(), np.where(t_ok[:, None], t_hi, 0.0), np.where(t_ok[:, None], t_lo, 0.0)
    cache = ref.__dict__.setdefault("_dd_memo", {})
    dn = np.dtype(dtype).name
    for i in np.flatnonzero(~ok if skip is None else ~ok & ~skip):
        key = (rows[i], dn)
        got = cache.get(key)
        if got is None:  # an earlier run's where the truths cache kept it
            got = cache[key] = np.array(ref.kept(("dd",) + key, lambda row=rows[i]: _balls_double_doubles(ref, row, dtype)))
        ok[i] = True
        hi[i], lo[i] = got
    with np.errstate(invalid="ignore"):
        a = np.abs(hi)
        ok &= np.all(np.isfinite(hi) & ((hi == 0) | ((a >= _LOW) & (a < top))), axis=1)
    if skip is not None:
        ok &= ~skip
    return Truths(ok, hi[:, 0], lo[:, 0], hi[:, 1:], lo[:, 1:])


def _balls_double_doubles(ref: RowReference, row: tuple, dtype) -> tuple:
    """The balls' value and gradient at the inputs ``row`` as double-doubles: (hi, lo), each a
    float tuple (value, gradient...); NaN where the reference is Unresolved."""
    try:
        tv, tg = ref.value_and_grad_inputs(list(row), dtype)
        got = np.array([double_double(tv)] + [double_double(t) for t in tg]).T  # (2, 1 + k)
    except Unresolved:
        got = np.full((2, 1 + ref.n_grad), np.nan)
    return tuple(map(tuple, got.tolist()))


def format_top(dtype) -> tuple[int, int, float]:
    """(precision, least exponent, 2^(emax)): from 2^emax on, whether a value rounds to infinity
    is decided by the exact check."""
    p, emin, fmax = FORMATS[np.dtype(dtype)]
    return p, emin, float(np.ldexp(1.0, np.frexp(fmax)[1] - 1))


def ulp_exponents(hi: np.ndarray, lo: np.ndarray, dtype) -> np.ndarray:
    """q with ulp(hi + lo) = 2^q in ``dtype``, elementwise: ``max(E(t) - p, emin)`` (module
    docstring), E(t) one less than hi's exponent where hi is a power of two and lo pulls |t|
    below it."""
    p, emin, _ = format_top(dtype)
    m, e = np.frexp(hi)
    below = (np.abs(m) == 0.5) & (lo != 0) & ((lo < 0) != (hi < 0))  # |t| just under a power of 2
    e = np.where(below, e - 1, e)
    return np.where((hi == 0) & (lo == 0), emin, np.maximum(e - p, emin))


def ulp_errors(computed: np.ndarray, hi: np.ndarray, lo: np.ndarray, dtype) -> np.ndarray:
    """|computed - (hi + lo)| / ulp(hi + lo) in ``dtype`` ulps, elementwise (NaN or inf
    computed: inf), for finite references below 2^emax (:func:`cesym.verify.ulps.ulp_error`)."""
    y = np.asarray(computed, dtype=np.float64)
    with np.errstate(all="ignore"):
        d = np.abs((y - hi) - lo)
        out = np.ldexp(d, -ulp_exponents(hi, lo, dtype))
    return np.where(np.isfinite(y), out, np.inf)


def bits_errors(computed: np.ndarray, hi: np.ndarray, dtype) -> np.ndarray:
    """Herbie's bits of error (:func:`cesym.verify.ulps.bits_error`) elementwise: log2(1 + the
    floats between ``computed`` and the reference rounded to ``dtype``, through float64 as there);
    a NaN's, as there, :func:`~cesym.verify.ulps.nan_bits`."""
    dt = np.dtype(dtype)
    it, mask = (np.int64, 0x7FFFFFFFFFFFFFFF) if dt == np.float64 else (np.int32, 0x7FFFFFFF)
    with np.errstate(over="ignore", invalid="ignore"):
        a = np.asarray(computed, dtype=dt).view(it).astype(np.int64)
        b = np.asarray(hi, dtype=np.float64).astype(dt).view(it).astype(np.int64)
    a = np.where(a >= 0, a, -(a & mask))
    b = np.where(b >= 0, b, -(b & mask))
    # ordinals of opposite signs are up to 2^64 apart, past int64: there |a| + |b| in float64
    # (a count past 2^53 rounds, its log2 does not notice)
    with np.errstate(over="ignore"):
        apart = np.where((a < 0) == (b < 0), np.abs(a - b).astype(np.float64), np.abs(a).astype(np.float64) + np.abs(b).astype(np.float64))
    out = np.log2(1.0 + apart)
    return np.where(np.isnan(computed), nan_bits(dt), out)
