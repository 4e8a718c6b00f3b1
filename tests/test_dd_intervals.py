"""The first tier's precise stage (:mod:`cesym.verify.dd_intervals`): intervals with double-double
ends hold mpmath's values at 400 bits, tightly, and the stage decides float64 values and the
condition numbers that cancel below float64, as the balls decide them, and hands over the rest."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from cesym.verify import dd_intervals as dd
from cesym.verify import first_tier
from cesym.verify.contract import definition
from cesym.verify.reference import RowReference
from cesym.verify.registry import CASES

pytestmark = pytest.mark.skipif(not dd.AVAILABLE, reason="Numba is not installed")

_PREC = 400
SEED = 20261205

_FUNCTIONS = {
    "exp": (lambda a: dd.exp(a), mpmath.exp, lambda x: x),
    "expm1": (lambda a: dd.expm1(a), mpmath.expm1, lambda x: x),
    "log": (lambda a: dd.log(a), mpmath.log, np.abs),
    "log1p": (lambda a: dd.log1p(a), mpmath.log1p, lambda x: np.abs(x) - 0.75),
    "sqrt": (lambda a: dd.sqrt(a), mpmath.sqrt, np.abs),
    "sinh": (lambda a: dd.sinh(a), mpmath.sinh, lambda x: x),
    "cosh": (lambda a: dd.cosh(a), mpmath.cosh, lambda x: x),
    "tanh": (lambda a: dd.tanh(a), mpmath.tanh, lambda x: x),
    "1/x": (lambda a: 1 / a, lambda t: 1 / t, lambda x: x),
    "x*x + 1/3": (lambda a: a * a + dd._dv("0.3333333333333333333333333333333333"), lambda t: t * t + mpmath.mpf(1) / 3, lambda x: x),
    "x - x/7": (lambda a: a - a / 7, lambda t: t - t / 7, lambda x: x),
    "x**2.5": (lambda a: abs(a) ** 2.5, lambda t: abs(t) ** mpmath.mpf(2.5), lambda x: x),
}


def _operands() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    special = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 0.34, 0.35, -0.34, 0.6931471805599453, 709.78, -745.0, 1e-300, 5e-324, 1e300]
    return np.concatenate([
        special,
        rng.normal(0, 1, 300),
        rng.normal(0, 40, 300),
        rng.uniform(-745, 709, 200),
        10 ** rng.uniform(-300, 300, 100) * rng.choice([-1, 1], 100),
        1 + rng.normal(0, 1e-9, 50),
    ])


def _ends(v: np.ndarray, i: int) -> tuple[mpmath.mpf, mpmath.mpf]:
    return mpmath.mpf(v[0, i]) + v[1, i], mpmath.mpf(v[2, i]) + v[3, i]


@pytest.mark.parametrize("name", sorted(_FUNCTIONS))
@pytest.mark.parametrize("thin", [False, True], ids=["points", "thin intervals"])
def test_every_operation_holds_the_exact_value_tightly(name, thin):
    """At floats (points) and on intervals around them a few 2^-106 wide ((x/3)·3): the exact
    value at 400 bits is inside; where it lies in [2^-900, 2^1000] and the ends are finite, the
    width is within 2^-60 of it (what pins a float64 value to 2^-8 ulp; measured widths are
    2^-90 to 2^-105, 2^-67 for tanh past 10^6 and log near 1 on thin intervals)."""
    f, exact, domain = _FUNCTIONS[name]
    xs = domain(_operands())
    if thin:  # (x/3)·3 of a number past 2^995 or below 2^-1000 is not thin: unbounded, or around 0
        xs = xs[(np.abs(xs) < 2.0**990) & ((np.abs(xs) > 2.0**-1000) | (xs == 0))]
    a = dd.DD.exact(xs)
    if thin:
        a = (a / 3) * 3
    out = f(a).v
    tight = 0
    with mpmath.workprec(_PREC):
        for i, x in enumerate(xs.tolist()):
            try:
                t = exact(mpmath.mpf(x))
            except (ValueError, ZeroDivisionError):
                continue
            if isinstance(t, mpmath.mpc) or mpmath.isnan(t):
                continue
            lo, hi = _ends(out, i)
            assert lo <= t <= hi, (name, x, lo, t, hi)
            if mpmath.isfinite(lo) and mpmath.isfinite(hi) and mpmath.mpf(2) ** -900 <= abs(t) <= mpmath.mpf(2) ** 1000:
                assert hi - lo <= abs(t) * mpmath.mpf(2) ** -60, (name, x, float((hi - lo) / abs(t)))
                tight += 1
    assert tight >= 300, tight


def test_exact_points_stay_exact():
    """e^0 = 1, log 1 = 0, sqrt 1 = 1, sums and products of floats that are floats: one number
    (a value exactly 0 pins; κ divides by it)."""
    for got, want in ((dd.exp(dd.DD.exact(0.0)), 1.0), (dd.log(dd.DD.exact(1.0)), 0.0), (dd.sqrt(dd.DD.exact(1.0)), 1.0), (dd.DD.exact(3.0) * 0.5 + 0.25, 1.75)):
        assert got.v[:, 0].tolist() == [want, 0.0, want, 0.0]
    z = dd.DD.exact(2.0) - dd.DD.exact(2.0)
    assert z.v[:, 0].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_the_constants_are_enclosed():
    """π, e, ln 2 and a decimal that is not a float: between two double-doubles that hold it."""
    with mpmath.workprec(_PREC):
        for c, exact in ((dd.MODULE.pi, +mpmath.pi), (dd.MODULE.e, +mpmath.e), (dd._dv("0.1"), mpmath.mpf(1) / 10), (dd._dv(mpmath.ln2), +mpmath.ln2)):
            lo, hi = _ends(c.v, 0)
            assert lo < exact < hi and hi - lo < exact * mpmath.mpf(2) ** -100


def test_leaving_the_range_is_unbounded_never_wrong():
    """e^800, a product past 2^1000 and a log of a negative number: infinite ends (or NaN: not a
    number at all), never a finite wrong bound."""
    out = dd.exp(dd.DD.exact(np.array([800.0]))).v[:, 0]
    assert out[0] == np.finfo(np.float64).max and out[2] == math.inf
    big = (dd.DD.exact(1e300) * dd.DD.exact(1e300)).v[:, 0]
    assert big[2] == math.inf and big[0] <= 1e300 * 1e300
    assert np.isnan(dd.log(dd.DD.exact(-1.0)).v[0, 0])


def test_the_middle_of_an_interval_near_the_largest_float_is_its_middle():
    """Ends whose sum overflows (an interval around 1.797e308, where the generalised KL's value
    p - y + y·log(y/p) lies at p = fmax): the middle is the exact middle, not NaN (a NaN middle
    was taken as the reference's value: "true: no limit" for 35 finite rows of --extremes):
    within 2^-104 of it, as everywhere."""
    big = np.finfo(np.float64).max
    lo = np.array([big - 2.0**970, 1e300, -big, 3.0])
    hi = np.array([big, 1e300 + 2.0**950, -big + 2.0**971, 3.0])
    x = dd.DD(np.stack([lo, np.array([-2.0**900, 0.0, 0.0, 1e-20]), hi, np.array([0.0, 0.0, 2.0**910, 1e-20])]))
    mh, ml = dd.middles(x)
    with mpmath.workprec(_PREC):
        for i in range(len(lo)):
            a, b = _ends(x.v, i)
            mid = (a + b) / 2
            assert abs(mpmath.mpf(mh[i]) + ml[i] - mid) <= abs(mid) * mpmath.ldexp(1, -104), i


def _softmax_rows(ref) -> np.ndarray:
    z = np.array([0.0, 1.0])
    s = 1 / (1 + math.exp(1.0))  # softmax of [0, 1] at 0, in float64: the label next to it
    rows = np.array([[s, 1 - s, *z], [0.0, 1.0, 900.0, -900.0], [0.0, 1.0, 0.5, 0.25]])
    return np.concatenate([rows, np.zeros((3, len(ref.args) - 4))], axis=1)


def test_the_precise_stage_decides_what_float64_cannot_and_hands_over_the_rest(monkeypatch):
    """The softmax gradient that cancels to 1.7e-17 (float64 intervals hand it over) is decided
    here for float32, and an ordinary row's float64 value; each equal to the balls' to 2^-8 of
    the format's spacing. Handed over: logits whose exponential leaves float64, the cancelling
    gradient for float64 (1.7e-17 known to 1.5e-33: 2^-43 of itself, not 2^-60), and
    everything with the stage off."""
    case = next(c for c in CASES if c.kernel == "categorical_crossentropy" and c.keywords.get("from_logits"))
    loss = definition(case)
    slow = RowReference(loss, 2)
    for precise in (True, False):
        monkeypatch.setattr(first_tier, "PRECISE", precise)
        for dtype, p, want_decided in ((np.float32, 24, [True, False, True]), (np.float64, 53, [False, False, True])):
            ref = RowReference(loss, 2)
            pts = _softmax_rows(ref)
            keys = [tuple(r) for r in pts.tolist()]
            ref.prefill(pts, dtype)
            got = [first_tier.lookup(ref, (k, np.dtype(dtype).name)) for k in keys]
            if not precise:
                assert [g is not None for g in got] == ([False, False, True] if dtype is np.float32 else [False, False, False])
                continue
            assert [g is not None for g in got] == want_decided, (dtype, got)
            for k, g in zip(keys, got):
                if g is None:
                    continue
                want = slow.value_and_grad_inputs(list(k), dtype)
                for a, b in zip([g[0], *g[1]], [want[0], *want[1]]):
                    spacing = mpmath.ldexp(1, int(mpmath.frexp(b)[1]) - p)
                    assert abs(a - b) <= spacing / 256, (k, a, b)


def test_a_condition_number_that_cancels_below_float64_is_decided_here(monkeypatch):
    """κ at the cancelling softmax row: the float64 stage leaves it unknown; asked for, the
    precise stage decides it, as the balls do (to 2^-8); asked for alone (no batch), it is
    left to the balls."""
    case = next(c for c in CASES if c.kernel == "categorical_crossentropy" and c.keywords.get("from_logits"))
    loss = definition(case)
    ref, slow = RowReference(loss, 2), RowReference(loss, 2)
    pts = _softmax_rows(ref)
    key = tuple(pts[0])
    monkeypatch.setattr(first_tier, "PRECISE", False)
    ref.prefill(pts, np.float32)
    ref._pending(("kappa", key), full=True, need=[key])
    assert ref._memo.get(("kappa", key)) is None  # float64 (and the wide format) cannot
    monkeypatch.setattr(first_tier, "PRECISE", True)
    ref = RowReference(loss, 2)
    ref.prefill(pts, np.float32)
    ref._pending(("kappa", key), full=True)
    assert ref._memo.get(("kappa", key)) is None  # not asked for in a batch
    ref._pending(("kappa", key), full=True, need=[key])
    got = ref._memo.get(("kappa", key))
    assert got is not None
    want = slow.kappa(pts[0, :2], pts[0, 2:4], list(pts[0, 4:]))
    for a, b in zip([got[0], *got[1]], [want[0], *want[1]]):
        assert a == b or abs(a - b) <= 2**-8 * max(abs(a), abs(b), 1.0), (a, b)
