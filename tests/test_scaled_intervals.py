"""The first tier's wide format (:mod:`cesym.verify.scaled_intervals`): float64 intervals times a
power of two. Every operation encloses the exact result (mpmath at 400 bits, whose exponents are
unbounded) on random and adversarial operands, exponents far past float64's and long double's
range included; results are tight where nothing cancels; and the condition numbers the first tier
computes on it agree with the balls' where long double's range ends (logits of 2e4 to 1e8)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from cesym.verify import first_tier
from cesym.verify import float_intervals as fi
from cesym.verify import scaled_intervals as si
from cesym.verify.contract import definition
from cesym.verify.reference import RowReference
from cesym.verify.registry import CASES

from conftest import SEED

pytestmark = pytest.mark.skipif(not si.AVAILABLE, reason="Numba is not installed: the long double path runs")

_PREC = 400


def _scaled(values: list) -> si.Scaled:
    """Exact numbers m·2^k given as (m, k) pairs (floats for k = 0)."""
    ms, ks = zip(*[(v, 0) if not isinstance(v, tuple) else v for v in values])
    m, e = si._from_floats(np.array(ms, dtype=np.float64), len(ms))
    return si.Scaled(m, m.copy(), e + np.array(ks, dtype=np.int64))


def _exact(values: list) -> list:
    with mpmath.workprec(_PREC):
        return [mpmath.ldexp(mpmath.mpf(v[0]), v[1]) if isinstance(v, tuple) else mpmath.mpf(v) for v in values]


def _ends(x: si.Scaled, i: int) -> tuple:
    return tuple(mpmath.ldexp(mpmath.mpf(float(a)), int(x.e[i])) if math.isfinite(a) else mpmath.mpf(float(a)) for a in (x.lo[i], x.hi[i]))


def _encloses(x: si.Scaled, exact: list, what: str) -> None:
    for i, t in enumerate(exact):
        if t is None:  # outside the domain: NaN (nothing claimed)
            assert math.isnan(x.lo[i]) and math.isnan(x.hi[i]), (what, i)
            continue
        lo, hi = _ends(x, i)
        assert lo <= t <= hi, (what, i, mpmath.nstr(t, 20), mpmath.nstr(lo, 20), mpmath.nstr(hi, 20))


# operands: ordinary numbers, the edges of float64 and long double, and exponents far past both
_OPERANDS = [
    0.0, 1.0, -1.0, 0.5, 2.0, 3.0, -0.7, 1e-8, -1e-8, 40.0, -40.0, 700.0, -745.0, 709.5, -708.5, 800.0,
    -800.0, 11356.0, -11400.0, 2e4, -3e4, 1e6, -1e8, 1e300, -1e300, 5e-324, 1e-310,
    (0.75, 5000), (-0.6, 5000), (0.9, -5000), (-0.55, -70000), (0.5, 30), (0.8, 40), (-0.8, 40), (0.7, -1100),
]


def _random_operands(rng, k: int) -> list:
    m = rng.uniform(0.5, 1.0, k) * rng.choice([-1.0, 1.0], k)
    e = rng.integers(-3000, 3000, k)
    return [(float(a), int(b)) for a, b in zip(m, e)] + [float(x) for x in rng.standard_normal(k) * 10.0 ** rng.integers(-5, 5, k)]


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "max", "min"])
def test_binary_operations_enclose_the_exact_result(op):
    rng = np.random.default_rng(SEED)
    vals = _OPERANDS + _random_operands(rng, 60)
    a = [vals[i] for i in rng.integers(0, len(vals), 400)]
    b = [vals[i] for i in rng.integers(0, len(vals), 400)]
    x, y = _scaled(a), _scaled(b)
    ta, tb = _exact(a), _exact(b)
    with mpmath.workprec(_PREC):
        if op == "+":
            out, want = x + y, [p + q for p, q in zip(ta, tb)]
        elif op == "-":
            out, want = x - y, [p - q for p, q in zip(ta, tb)]
        elif op == "*":
            out, want = x * y, [p * q for p, q in zip(ta, tb)]
        elif op == "/":
            out, want = x / y, [p / q if q != 0 else None for p, q in zip(ta, tb)]
        elif op == "max":
            out, want = si.max_(x, y), [max(p, q) for p, q in zip(ta, tb)]
        else:
            out, want = si.min_(x, y), [min(p, q) for p, q in zip(ta, tb)]
        _encloses(out, want, op)


_FUNCTIONS = [
    ("exp", si.exp, mpmath.exp, None),
    ("log", si.log, mpmath.log, 0.0),
    ("log1p", si.log1p, mpmath.log1p, -1.0),
    ("expm1", si.expm1, mpmath.expm1, None),
    ("sqrt", si.sqrt, mpmath.sqrt, 0.0),
    ("sinh", si.sinh, mpmath.sinh, None),
    ("cosh", si.cosh, mpmath.cosh, None),
    ("tanh", si.tanh, mpmath.tanh, None),
]


@pytest.mark.parametrize("name, f, ref, domain", _FUNCTIONS)
def test_elementary_functions_enclose_the_exact_value(name, f, ref, domain):
    """At points, and on intervals [a, b] (each end m·2^k) of random and adversarial ends: the
    exact function at both ends lies in the result (the functions are monotone in each end's
    direction; cosh in |x|)."""
    rng = np.random.default_rng(SEED)
    vals = _OPERANDS + _random_operands(rng, 80) + [(0.6, 31), (-0.6, 31), (0.99, 30), (-0.99, 30)]
    # logits in the billions (the reduction's TwoProd branch), up to its end at 2^44
    vals += [(0.7159, 33), (-0.7159, 33), (0.75, 40), (-0.75, 40), (0.9999999999, 44), (-0.9999999999, 44)]
    vals += [(float(m), int(k)) for m, k in zip(rng.uniform(-1.0, 1.0, 12), rng.integers(31, 45, 12))]
    x = _scaled(vals)
    with mpmath.workprec(_PREC):
        want = []
        for t in _exact(vals):
            if domain is not None and t < domain:
                want.append(None)
            elif name in ("exp", "expm1", "sinh", "cosh") and abs(t) > 2**44:
                want.append("skip")  # past the reduction's range: bounds only (tested below)
            else:
                want.append(ref(t) if not (name == "log" and t == 0) and not (name == "log1p" and t == -1) else -mpmath.inf)
        out = f(x)
        for i, t in enumerate(want):
            if t == "skip":
                continue
            if t is not None and mpmath.isinf(t):
                assert _ends(out, i)[0] == t, (name, vals[i])
                continue
            _encloses(si.Scaled(out.lo[i : i + 1], out.hi[i : i + 1], out.e[i : i + 1]), [t], f"{name}({vals[i]})")
    # past 2^44: valid bounds (e^v > 2^(2^44) for v > 2^44; e^v < 2^-(2^44) for v < -2^44)
    if name == "exp":
        big = f(_scaled([(0.75, 46), (-0.75, 46)]))
        assert big.lo[0] > 0 and big.e[0] >= 2**44 and big.hi[0] == np.inf
        assert big.lo[1] == 0 and big.hi[1] > 0 and big.e[1] <= -(2**44) + 1


@pytest.mark.parametrize("name, f, ref", [(n, f, r) for n, f, r, _ in _FUNCTIONS if n in ("log1p", "expm1", "sinh", "tanh")])
def test_functions_near_zero_keep_the_argument_s_scale(name, f, ref):
    """log1p, expm1, sinh and tanh of |x| < 2^-60 are x within the slack, at x's own exponent,
    also far below float64's range (log1p(e^z) of a logit of -6e9 is 2^-8.7e9: an interval
    [0, 5e-324] made every term it multiplies unknown)."""
    vals = [(0.75, -61), (-0.75, -61), (0.6, -5000), (-0.6, -5000), (0.9, -2**33), (-0.9, -2**33)]
    out = f(_scaled(vals))
    with mpmath.workprec(_PREC):
        for i, (t, v) in enumerate(zip(_exact(vals), vals)):
            _encloses(si.Scaled(out.lo[i : i + 1], out.hi[i : i + 1], out.e[i : i + 1]), [ref(t)], f"{name}({v})")
            lo, hi = sorted((out.lo[i], out.hi[i]))
            assert out.e[i] == v[1] and hi - lo <= 2.0**-47 * abs(v[0]), (name, v, out.lo[i], out.hi[i], out.e[i])


def test_an_exact_product_stays_a_point():
    """A product TwoProd shows exact keeps its ends (2·z: e^(2z) of a logit of 2e5 was 2^13 times
    wider than e^z when every product stepped one float out); an inexact one steps out on each
    side, still enclosing the exact product."""
    x = _scaled([202781.0, 0.1, (0.75, -3000)])
    two = si.Scaled.exact(np.array([2.0, 3.0, 2.0]))
    out = two * x
    assert out.lo[0] == out.hi[0] and out.lo[2] == out.hi[2]  # 2·202781, 2·(0.75·2^-3000): exact
    assert out.lo[1] < out.hi[1]  # 3·0.1 rounds
    with mpmath.workprec(_PREC):
        _encloses(out, [2 * t for t in _exact([202781.0])] + [3 * t for t in _exact([0.1])] + [2 * t for t in _exact([(0.75, -3000)])], "2x")


def test_functions_on_intervals_enclose_the_range():
    """On intervals, each result holds the function at both ends (every function here is monotone
    on the pieces used)."""
    rng = np.random.default_rng(SEED + 1)
    for name, f, ref, domain in _FUNCTIONS:
        for _ in range(60):
            e = int(rng.integers(-1200, 1200)) if rng.random() < 0.5 else int(rng.integers(-3, 12))
            a, b = np.sort(rng.uniform(-1, 1, 2))
            if domain is not None:
                a, b = abs(a) * 0.5, abs(b) + 0.5
            x = si.Scaled(np.array([a]), np.array([b]), np.array([e], dtype=np.int64))
            out = f(x)
            with mpmath.workprec(_PREC):
                for end in (mpmath.ldexp(mpmath.mpf(float(a)), e), mpmath.ldexp(mpmath.mpf(float(b)), e)):
                    if domain is not None and end < domain or abs(end) > 2**30:
                        continue
                    _encloses(out, [ref(end)], f"{name} on [{a}, {b}]·2^{e}")


def test_powers_enclose_and_stay_tight():
    rng = np.random.default_rng(SEED + 2)
    vals = [(float(m), int(k)) for m, k in zip(rng.uniform(0.5, 1.0, 50), rng.integers(-400, 400, 50))] + [3.0, 0.25, 1e-300, 7.5]
    x = _scaled(vals)
    with mpmath.workprec(_PREC):
        for k in (-3, 2, 5, 17):
            out = si.ipow(x, k)
            _encloses(out, [t**k for t in _exact(vals)], f"x^{k}")
        gamma = si.Scaled.exact(0.5)
        _encloses(x**gamma, [mpmath.sqrt(t) for t in _exact(vals)], "x^0.5")
        g = si.Scaled.exact(2.5)
        _encloses(x**g, [t ** mpmath.mpf(2.5) for t in _exact(vals)], "x^2.5")
    # tight where nothing cancels: a product of 17 factors within 2^-40 relative
    out = si.ipow(_scaled([(0.6, 1000)]), 17)
    assert (out.hi[0] - out.lo[0]) <= 2.0**-40 * abs(out.hi[0])


def test_the_ends_convert_outward():
    """To long double and to float64: exact where the number fits, the largest number or ±inf
    past the range on the side that stays a bound, 0 or the least subnormal below it."""
    x = si.Scaled(np.array([0.75, 0.75, -0.75, 0.75, 0.6]), np.array([0.75, 0.75, -0.75, 0.75, 0.7]), np.array([3, 20000, 20000, -20000, -1074], dtype=np.int64))
    for dt in {np.dtype(np.float64), np.dtype(fi.WIDE or np.float64)}:
        iv = si.to_interval(x, dt)
        big = np.finfo(dt).max
        assert iv.lo[0] == iv.hi[0] == 6.0
        assert iv.lo[1] == big and iv.hi[1] == np.inf
        assert iv.lo[2] == -np.inf and iv.hi[2] == -big
        assert iv.lo[3] == 0 and 0 < iv.hi[3] <= np.finfo(dt).smallest_subnormal
        with mpmath.workprec(_PREC):
            assert mpmath.mpf(float(iv.lo[4])) <= mpmath.ldexp(0.6, -1074) and mpmath.ldexp(0.7, -1074) <= mpmath.mpf(float(iv.hi[4])) or dt != np.float64


def test_three_valued_logic_and_pieces():
    x = _scaled([(0.75, 3000), (-0.75, 3000), 0.0, 1.0])
    y = _scaled([(0.75, 2999), (0.75, 2999), 0.0, 1.0])
    t, f = si.cmp_(">", x, y)
    assert list(t) == [True, False, False, False] and list(f) == [False, True, True, True]
    # the hull of the branches that may hold
    u = si.Scaled(np.array([-0.5]), np.array([0.5]), np.array([10], dtype=np.int64))
    out = si.pick((si.cmp_(">", u, 0.0), si.Scaled.exact(2.0)), (True, si.Scaled.exact(-3.0)))
    lo, hi = _ends(out, 0)
    assert lo == -3 and hi == 2
    s = si.sign_(x)
    assert [(_ends(s, i)[0], _ends(s, i)[1]) for i in range(4)] == [(1, 1), (-1, -1), (0, 0), (1, 1)]


_LARGE = [
    ("binary_crossentropy", [[0.25, 0.5, 2e4, -3e4], [0.5, 0.0, 1.5e4, 3.0], [0.3, 1.0, -2.5e4, 5000.5]]),
    ("categorical_crossentropy", [[0.3, 0.3, 0.4, 2e4, -2e4, 5.0], [0.3, 0.3, 0.4, -12000.0, 11999.0, -2e4]]),
]


@pytest.mark.parametrize("kernel, rows", _LARGE)
def test_condition_numbers_where_long_double_ends(kernel, rows):
    """Logits of 1.2e4 to 3e4 with soft labels: e^x leaves long double's range (e^±11356), the
    scaled format's exponents do not, and every output and Hessian term is a number of long
    double (or negligible against its scale). κ is decided by the first tier, without the balls,
    and agrees with the balls' to 2^-8 (absolute below 1). (Past about 1e5 a Hessian term that
    cancels, σ(x)(1 - σ(x)) as a difference, is negligible only against a scale |g|/|x| below
    the 2^-49 of its operands: the balls decide it.)"""
    case = next(c for c in CASES if c.kernel == kernel and c.keywords.get("from_logits") and c.reduction != "batch")
    loss = definition(case)
    n = len(rows[0]) // 2
    ref, slow = RowReference(loss, n), RowReference(loss, n)
    pts = np.array([r + [0.0] * (len(ref.args) - 2 * n) for r in rows])
    ref.prefill(pts, np.float32)
    ref._pending(("kappa", tuple(pts[0])), full=True, need=[tuple(p) for p in pts])
    for p in pts:
        got = ref._memo.get(("kappa", tuple(p)))
        assert got is not None, (case.id, p)  # decided without the balls
        want = slow.kappa(p[:n], p[n : 2 * n], list(p[2 * n :]))
        for a, b in zip([got[0], *got[1]], [want[0], *want[1]]):
            assert a == b or abs(a - b) <= 2**-8 * max(abs(a), abs(b), 1.0), (case.id, p, a, b)


@pytest.mark.parametrize("kernel", ["categorical_crossentropy", "binary_crossentropy"])
def test_the_wide_stage_agrees_with_long_double_and_decides_more(kernel, monkeypatch):
    """On seeded rows of logits of 700 to 16000 (hard and soft labels), every κ both wide formats
    decide is the same to 2^-8; the scaled one decides more points (long double's e^x ends at
    e^11356; its 11 more bits decide a few cancelling terms the scaled one hands on: 6 of 200
    rows each here, 2026-12-05). The precise stage, which would take those, is off."""
    monkeypatch.setattr(first_tier, "PRECISE", False)
    if fi.WIDE is None:
        pytest.skip("long double is float64 here")
    case = next(c for c in CASES if c.kernel == kernel and c.keywords.get("from_logits") and c.reduction != "batch")
    loss = definition(case)
    rng = np.random.default_rng(SEED)
    z = rng.choice([-1.0, 1.0], (200, 3)) * 10 ** rng.uniform(2.85, 4.2, (200, 3))
    y = np.where(rng.random((200, 1)) < 0.5, np.eye(3)[rng.integers(0, 3, 200)], rng.dirichlet(np.ones(3), 200))
    pts = np.concatenate([y, z, np.zeros((200, len(RowReference(loss, 3).args) - 6))], axis=1)
    got = {}
    for scaled in (False, True):
        first_tier.SCALED = scaled
        try:
            ref = RowReference(loss, 3)
            ref.prefill(pts, np.float32)
            ref._pending(("kappa", tuple(pts[0])), full=True, need=[tuple(p) for p in pts])
            got[scaled] = {tuple(p): ref._memo.get(("kappa", tuple(p))) for p in pts}
        finally:
            first_tier.SCALED = None
    decided = {k: sum(v is not None for v in got[k].values()) for k in got}
    assert decided[True] > decided[False], decided
    both = [k for k in got[True] if got[True][k] is not None and got[False][k] is not None]
    assert len(both) >= 20
    for k in both:
        a, b = got[True][k], got[False][k]
        for u, v in zip([a[0], *a[1]], [b[0], *b[1]]):
            assert u == v or abs(u - v) <= 2**-8 * max(abs(u), abs(v), 1.0), (k, u, v)


def test_without_a_wider_long_double_the_wide_stage_ends_in_float64(monkeypatch):
    """Where long double is float64 (Apple silicon, Windows), the printed code still runs on the
    scaled format and its outputs and κ on float64: a point whose intermediates leave float64's
    range (e^800) but whose outputs do not is decided, as the balls decide it; without Numba
    either, it is handed to the balls."""
    case = next(c for c in CASES if c.kernel == "binary_crossentropy" and c.keywords.get("from_logits") and c.reduction != "batch")
    loss = definition(case)
    monkeypatch.setattr(fi, "WIDE", None)
    monkeypatch.setattr(first_tier, "PRECISE", False)  # (its range is float64's: it would not decide this either)
    p = np.array([0.25, 0.5, 800.0, -750.0] + [0.0] * (len(RowReference(loss, 2).args) - 4))
    want = RowReference(loss, 2).kappa(p[:2], p[2:4], list(p[4:]))
    for scaled in (True, False):
        monkeypatch.setattr(first_tier, "SCALED", scaled)
        ref = RowReference(loss, 2)
        ref.prefill(p[None, :], np.float32)
        ref._pending(("kappa", tuple(p)), full=True, need=[tuple(p)])
        got = ref._memo.get(("kappa", tuple(p)))
        if not scaled:
            assert got is None  # no wider format: the balls decide
            continue
        assert got is not None
        for a, b in zip([got[0], *got[1]], [want[0], *want[1]]):
            assert a == b or abs(a - b) <= 2**-8 * max(abs(a), abs(b), 1.0), (a, b)


def test_the_constants_are_enclosed_not_rounded():
    """π and e in the printed code: two floats around them (mpmath's constants at its default 53
    bits are the nearest float, which an enclosure cannot be)."""
    pi, e = si.MODULE.pi, si.MODULE.e  # at mpmath's working precision, as the printed code asks
    with mpmath.workprec(_PREC):
        for c, exact in ((pi, +mpmath.pi), (e, +mpmath.e)):
            lo, hi = _ends(c, 0)
            assert lo < exact < hi
