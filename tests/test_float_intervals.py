"""The reference's first tier (:mod:`cesym.verify.first_tier` on
:mod:`cesym.verify.float_intervals`) against the balls.

Its operations enclose the exact result (mpmath at 300 bits) at random and edge points; on every
shipped definition, sampled as ``cesym verify`` samples it, each value it pins agrees with the
balls' to 2^-8 of the format's spacing (each is within 2^-9 of it: the reference's own test) and
each condition number it gives agrees to 2^-8 relative (absolute below 1, where κ enters the
bound base + 4κ); and it hands over what it cannot decide: float64 values that are not exact, a
cancelling gradient, logits whose exponential leaves float64's range.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from cesym.verify import first_tier
from cesym.verify import float_intervals as fi
from cesym.verify.contract import _first_tier, definition
from cesym.verify.reference import RowReference
from cesym.verify.registry import CASES, label_kinds, one_hot
from cesym.verify.sampling import sample

from conftest import SEED

_BY_LOSS = {}
for _c in CASES:
    if _c.reduction != "batch":
        _BY_LOSS.setdefault(_c.loss, _c)

_EMIN = {np.float32: -149, np.float64: -1074}
_P = {np.float32: 24, np.float64: 53}


def _holds(iv: fi.Interval, exact) -> np.ndarray:
    lo, hi = iv.lo, iv.hi
    return np.array([mpmath.mpf(float(a)) <= e <= mpmath.mpf(float(b)) for a, b, e in zip(lo, hi, exact)])


_POINTS = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-300, -1e-300, 5e-324, 1e-8, -1e-8, 0.3, -0.7, 3.0, 40.0, -40.0, 700.0, -745.0, 1e300, -1e300])


@pytest.mark.parametrize(
    "name, f, ref, domain",
    [
        ("exp", fi.exp, mpmath.exp, None),
        ("log", fi.log, mpmath.log, 0.0),
        ("log1p", fi.log1p, mpmath.log1p, -1.0),
        ("expm1", fi.expm1, mpmath.expm1, None),
        ("sqrt", fi.sqrt, mpmath.sqrt, 0.0),
        ("sinh", fi.sinh, mpmath.sinh, None),
        ("cosh", fi.cosh, mpmath.cosh, None),
        ("tanh", fi.tanh, mpmath.tanh, None),
    ],
)
def test_elementary_functions_enclose_the_exact_value(name, f, ref, domain):
    rng = np.random.default_rng(SEED)
    x = np.concatenate([_POINTS, rng.standard_normal(200) * 10.0 ** rng.uniform(-20, 3, 200)])
    if domain is not None:
        x = x[x > domain]
    out = f(fi.Interval(x))
    with mpmath.workprec(300):
        exact = [ref(mpmath.mpf(float(v))) for v in x]
    ok = np.isfinite(out.lo) | np.isfinite(out.hi)
    finite = np.array([mpmath.isfinite(e) for e in exact])
    assert np.all(_holds(out, exact)[finite & ok])
    # exact points stay exact: exp 0 = 1, log 1 = 0, ...
    z = f(fi.Interval(np.array([1.0 if name == "log" else 0.0])))
    assert z.lo[0] == z.hi[0]


def test_arithmetic_encloses_and_keeps_exact_sums_and_zeros():
    rng = np.random.default_rng(SEED + 1)
    a = rng.standard_normal(300) * 10.0 ** rng.integers(-300, 300, 300)
    b = rng.standard_normal(300) * 10.0 ** rng.integers(-300, 300, 300)
    A, B = fi.Interval(a), fi.Interval(b)
    with mpmath.workprec(3000):
        for iv, op in ((A + B, lambda x, y: x + y), (A - B, lambda x, y: x - y), (A * B, lambda x, y: x * y), (A / B, lambda x, y: x / y)):
            exact = [op(mpmath.mpf(float(x)), mpmath.mpf(float(y))) for x, y in zip(a, b)]
            assert np.all(_holds(iv, exact)), iv
        sq = fi.ipow(A, 3)
        assert np.all(_holds(sq, [mpmath.mpf(float(x)) ** 3 for x in a])[np.isfinite(sq.lo) & np.isfinite(sq.hi)])
    one = fi.Interval(np.array([1.0, 0.0, 0.25]))
    d = 1 - one  # 0, 1, 0.75: exact
    assert np.all(d.lo == d.hi)
    z = fi.xmul(fi.Interval(np.array([0.0])), fi.log(fi.Interval(np.array([0.0]))))  # 0·log 0 = 0
    assert z.lo[0] == 0.0 and z.hi[0] == 0.0
    # an overflow from finite operands is unbounded, not ±inf as a value
    big = fi.Interval(np.array([1e308])) * 10
    assert big.hi[0] == math.inf and big.lo[0] < math.inf
    # a division by an interval that holds 0: nothing known
    assert np.isnan((fi.Interval(np.array([1.0])) / fi.Interval(np.array([-1.0]), np.array([1.0]))).lo[0])
    # an exact 0 times what is undefined (0/0, 1/0) stays undefined: 0·b = 0 only for a number b
    und = fi.Interval(np.array([0.0, 1.0])) / fi.Interval(np.array([0.0, 0.0]))
    for prod in (fi.Interval(np.array([0.0, 0.0])) * und, und * fi.Interval(np.array([0.0, 0.0]))):
        assert np.all(np.isnan(prod.lo)) and np.all(np.isnan(prod.hi))
    fi._load_loops()  # and the compiled loops, where Numba is installed, alike
    prod = fi.Interval(np.zeros(3)) * fi.Interval(np.array([np.nan, 2.0, 0.0]), np.array([np.nan, 3.0, 0.0]))
    assert np.isnan(prod.lo[0]) and prod.lo[1] == prod.hi[1] == 0.0 and prod.lo[2] == 0.0


def test_it_never_decides_what_is_undefined():
    """The cosine of a zero label row is 0/0: the balls leave it unresolved, and so must the
    first tier, on rows whose prediction's norm overflows float64 (∞·0 there was taken for an
    exact 0, then 0·(0/0) for 0: a "true 0" the kernels' NaN was measured against)."""
    case = next(c for c in CASES if c.kernel == "cosine_similarity")
    ref = RowReference(definition(case), 2)
    big = np.finfo(np.float64).max
    rows = np.array([[0.0, 0.0, big, big], [0.0, 0.0, big, 1.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, -big, 0.5]])
    inputs = np.repeat(rows, 40, axis=0)  # a batch, as check_batch prefills one
    for dtype in (np.float32, np.float64):
        ref.prefill(inputs, dtype)
        for r in rows:
            assert _decided(ref, (tuple(r.tolist()), np.dtype(dtype).name)) is None, (r, dtype)


def test_piecewise_and_comparisons_are_three_valued():
    x = fi.Interval(np.array([-1.0, 0.0, 2.0, -1.0]), np.array([-0.5, 0.0, 3.0, 1.0]))
    h = fi.heaviside(x, 0.5)
    assert list(h.lo) == [0.0, 0.5, 1.0, 0.0] and list(h.hi) == [0.0, 0.5, 1.0, 1.0]  # the last: the hull
    t, f = fi.cmp_("<", x, 0)
    assert list(t) == [True, False, False, False] and list(f) == [False, True, True, False]


def _pairs(case, dtype, n, rows, soft, smooth):
    loss = definition(case)
    batch = sample(case, dtype, n, rows, seed=SEED, soft=soft, smoothing=smooth)
    labels = one_hot(batch.labels, n) if case.labels == "sparse" else batch.labels
    params = [batch.params[p.name] for p in loss.params]
    pts = []
    for r in range(rows):
        if case.elementwise:
            pts += [(None if labels is None else labels[r, c : c + 1], batch.pred[r, c : c + 1]) for c in range(n)]
        else:
            pts.append((None if labels is None else labels[r], batch.pred[r]))
    return loss, batch, labels, params, pts


def _spacing(v, dtype):
    e = _EMIN[dtype]
    if v == 0 or not mpmath.isfinite(v):
        return mpmath.ldexp(1, e)
    return mpmath.ldexp(1, max(int(mpmath.frexp(v)[1]) - _P[dtype], e))


def _decided(ref, key):
    """What the first tier pinned at a memo key (kept as arrays until the reference asks)."""
    return ref._memo.get(key) or first_tier.lookup(ref, key)


@pytest.mark.parametrize("precise", [False, True], ids=["float64", "double-double"])
@pytest.mark.parametrize("name", sorted(_BY_LOSS))
def test_what_the_first_tier_decides_agrees_with_the_balls(monkeypatch, name, precise):
    """Every value, gradient and κ the first tier decides, with its precise stage
    (:mod:`cesym.verify.dd_intervals`) or without, is the balls' to 2^-8 of the format's spacing
    (κ: to 2^-8 relatively); without it, a float64 value only where the interval is one number;
    with it, float64 values too."""
    monkeypatch.setattr(first_tier, "PRECISE", precise)
    case = _BY_LOSS[name]
    decided = kappas = 0
    decided64 = total64 = 0
    for dtype in (np.float32, np.float64):
        kind = label_kinds(case)[-1]
        n = 3
        loss, batch, labels, params, pts = _pairs(case, dtype, n, 12, kind[1], kind[2])
        nn = 1 if case.elementwise else n
        fast, slow = RowReference(loss, nn), RowReference(loss, nn)
        monkeypatch.setattr("cesym.verify.contract.reference_for", lambda _l, _n, fast=fast: fast)
        _first_tier(loss, case, labels, batch.pred, params, dtype)
        if fast._pending is not None:  # κ is computed at the first need: ask for it
            fast._pending(("kappa", tuple(fast._inputs(*pts[0], params))), full=True, need=[tuple(fast._inputs(*pt, params)) for pt in pts])
        for lab, pred in pts:
            inputs = tuple(fast._inputs(lab, pred, params))
            got = _decided(fast, (inputs, np.dtype(dtype).name))
            total64 += dtype is np.float64
            if got is not None:
                decided += 1
                decided64 += dtype is np.float64
                want = slow.value_and_grad(lab, pred, params, dtype=dtype)
                for a, b in zip([got[0], *got[1]], [want[0], *want[1]]):
                    # within 2^-8 of the format's spacing, and relatively close too: κ divides by it
                    assert abs(a - b) <= _spacing(b, dtype) / 256, (lab, pred, a, b)
                    assert a == b or abs(a - b) <= 2**-16 * abs(b), (lab, pred, a, b)
                if dtype is np.float64 and not precise:  # a float64 value only where the interval is one number
                    assert all(float(v) == v for v in [got[0], *got[1]])
            k = fast._memo.get(("kappa", inputs))
            if k is not None:
                kappas += 1
                want = slow.kappa(lab, pred, params)
                for a, b in zip([k[0], *k[1]], [want[0], *want[1]]):
                    assert a == b or (math.isinf(a) and math.isinf(b)) or abs(a - b) <= 2**-8 * max(abs(a), abs(b), 1.0), (lab, pred, a, b)
    assert kappas > 0  # the tier decides something on every definition
    if precise:
        assert decided64 > 0, (decided64, total64)  # (log_cosh: most of its float64 sample overflows cosh)


def test_it_hands_over_what_it_cannot_decide(monkeypatch):
    """A softmax gradient that cancels (a soft label equal to the softmax but for a few ulps),
    logits whose exponential overflows float64, and float64 values are left to the balls by
    float64 intervals (the precise stage off: ``tests/test_dd_intervals.py`` for it); the balls
    then decide them as before."""
    monkeypatch.setattr(first_tier, "PRECISE", False)
    case = next(c for c in CASES if c.kernel == "categorical_crossentropy" and c.keywords.get("from_logits"))
    loss = definition(case)
    ref = RowReference(loss, 2)
    z = np.array([0.0, 1.0])
    s = 1 / (1 + math.exp(1.0))  # softmax of [0, 1] at 0, in float64: the label next to it
    y = np.array([s, 1 - s])
    rows = np.array([[*y, *z], [0.0, 1.0, 900.0, -900.0], [0.0, 1.0, 0.5, 0.25]])
    params = [0.0] * (len(ref.args) - 4)
    inputs = np.concatenate([rows, np.zeros((3, len(params)))], axis=1)
    ref.prefill(inputs, np.float32)
    keys = [tuple(r) for r in inputs.tolist()]
    assert _decided(ref, (keys[0], "float32")) is None  # cancelling: handed over
    assert _decided(ref, (keys[1], "float32")) is None  # exp(900): beyond float64
    assert _decided(ref, (keys[2], "float32")) is not None  # an ordinary row: decided
    # a value far below float64's range (the focal factor e^-1400): the balls' ~1e-600, not
    # the "0" of an interval of float64 that underflowed (κ would divide by it)
    focal = next(c for c in CASES if c.kernel == "categorical_focal_crossentropy" and c.keywords.get("from_logits"))
    fref = RowReference(definition(focal), 2)
    row = np.array([[1.0, 0.0, float(np.float32(2.2274597)), float(np.float32(-701.34174)), 0.0, 0.25, 2.0]])
    fref.prefill(row, np.float32)
    assert _decided(fref, (tuple(row[0]), "float32")) is None
    ref.prefill(inputs, np.float64)
    assert _decided(ref, (keys[2], "float64")) is None  # float64's 2^-8 ulp: beyond a float64 interval
    v, g = ref.value_and_grad(y, z, params, dtype=np.float32)  # the balls decide it
    assert mpmath.isfinite(v) and len(g) == 2


def test_condition_numbers_wait_for_the_first_need():
    """A batch whose checks ask for no κ derives and evaluates no second derivatives; the
    first κ asked for computes the batch's, the value's alone without the Hessian."""
    case = next(c for c in CASES if c.kernel == "binary_crossentropy" and c.keywords.get("from_logits"))
    loss = definition(case)
    ref = RowReference(loss, 2)
    rows = np.array([[0.0, 1.0, 0.5, -0.25], [1.0, 0.0, 3.0, 2.0]])
    inputs = np.concatenate([rows, np.zeros((2, len(ref.args) - 4))], axis=1)
    ref.prefill(inputs, np.float32)
    assert "hessian" not in ref.__dict__.get("_tier1_fns", {})
    assert not any(k[0] in ("kappa", "kappa_value") for k in ref._memo)
    params = [0.0] * (len(ref.args) - 4)
    kv = ref.kappa_value(rows[0, :2], rows[0, 2:], params)
    assert "hessian" not in ref._tier1_fns and ("kappa_value", tuple(inputs[1])) in ref._memo
    k = ref.kappa(rows[1, :2], rows[1, 2:], params)
    assert ("kappa", tuple(inputs[0])) in ref._memo and ref._pending.full_known is not None
    slow = RowReference(loss, 2)
    assert abs(kv - slow.kappa_value(rows[0, :2], rows[0, 2:], params)) <= 2**-8 * max(kv, 1.0)
    want = slow.kappa(rows[1, :2], rows[1, 2:], params)
    assert all(abs(a - b) <= 2**-8 * max(abs(b), 1.0) for a, b in zip([k[0], *k[1]], [want[0], *want[1]]))


@pytest.mark.skipif(fi.WIDE is None, reason="long double is float64 here: no wider exponent")
def test_condition_numbers_past_float64s_range_on_the_wide_format():
    """Probabilities of 1e-300 (1/p² overflows float64) and logits of 800 (e^x does): κ is
    computed on long double intervals for those points, and agrees with the balls' to 2^-8."""
    checks = [
        (next(c for c in CASES if c.kernel == "categorical_crossentropy" and not c.keywords.get("from_logits")),
         [[0.3, 0.7, 1e-300, 0.5], [0.0, 1.0, 2e-200, 0.75]]),
        (next(c for c in CASES if c.kernel == "binary_crossentropy" and c.keywords.get("from_logits")),
         [[0.25, 0.5, 800.0, -750.0], [1.0, 0.0, 900.0, 3.0]]),
    ]
    for case, rows in checks:
        loss = definition(case)
        n = (len(rows[0])) // 2
        ref, slow = RowReference(loss, n), RowReference(loss, n)
        extra = len(ref.args) - 2 * n
        pts = np.array([r + [0.0] * extra for r in rows])
        assert ref.prefill(pts, np.float32) >= 0
        ref._pending(("kappa", tuple(pts[0])), full=True, need=[tuple(p) for p in pts])
        for p in pts:
            got = ref._memo.get(("kappa", tuple(p)))
            assert got is not None, (case.id, p)  # decided without the balls
            want = slow.kappa(p[:n], p[n : 2 * n], list(p[2 * n :]))
            for a, b in zip([got[0], *got[1]], [want[0], *want[1]]):
                assert a == b or abs(a - b) <= 2**-8 * max(abs(a), abs(b), 1.0), (case.id, p, a, b)


def test_a_term_that_cancels_to_nothing_is_negligible():
    """``approx``: 0 where the interval stays within NEGLIGIBLE of its scale, unknown just past
    it; and a confident focal row, whose ∂f/∂γ cancels to ±5.8e-10 in float64 against a scale of
    158, gets its κ from the tier, equal to the balls' to 2^-8."""
    s = 1e3
    x = fi.Interval(np.array([-0.99 * fi.NEGLIGIBLE * s, -1.01 * fi.NEGLIGIBLE * s]), np.array([0.99 * fi.NEGLIGIBLE * s, 1.01 * fi.NEGLIGIBLE * s]))
    v, known = fi.approx(x, np.array([s, s]))
    assert list(known) == [True, False] and v[0] == 0.0
    focal = next(c for c in CASES if c.kernel == "categorical_focal_crossentropy" and c.keywords.get("from_logits"))
    loss = definition(focal)
    y = [0.06428868245916375, 0.5, 0.5, 0.25389236033218787, 0.8697769647296975, 0.8039989393306071, 0.5227613197442037, 0.5257613726946682]
    z = [-533.0359208140375, -315.66383676366235, -230.21097307534532, -419.6310941281895, -266.24067833555085, 4.031602959035071, -611.1028318738572, -556.6046250922476]
    params = [0.0, 0.25, 2.0]
    ref, slow = RowReference(loss, 8), RowReference(loss, 8)
    pts = np.array([y + z + params])
    ref.prefill(pts, np.float32)
    key = tuple(pts[0])
    ref._pending(("kappa", key), full=True, need=[key])
    got = ref._memo.get(("kappa", key))
    assert got is not None  # decided without the balls
    want = slow.kappa(y, z, params)
    for a, b in zip([got[0], *got[1]], [want[0], *want[1]]):
        assert abs(a - b) <= 2**-8 * max(abs(b), 1.0), (a, b)


def test_terms_not_pinned_are_dropped_by_the_balls_rule():
    """A Hessian entry that straddles 0 (it cancels below the format's precision) but whose bound
    is at most KAPPA_REST of its group's pinned terms is 0 in κ, as the balls' own rule makes it
    (:func:`cesym.verify.reference._negligible_rest`): the focal rows below were left to the balls
    before it; now the tier decides them, equal to the balls' κ to 2^-8; and a row whose
    straddling term is not small against the rest stays unknown."""
    focal = next(c for c in CASES if c.kernel == "categorical_focal_crossentropy" and c.keywords.get("from_logits"))
    loss = definition(focal)
    params = [0.0, 0.25, 2.0]
    rows = [
        [1.0, 0.0, 0.0, -6105987.0, -2.2458748e-22, -8.147015e-21],
        [1.0, 0.0, 0.0, -135.21354675292969, 2.1688122749328613, -709.37329101562500],
        [0.0, 0.0, 1.0, 7625.19091796875, 144.19000244140625, -12.542717933654785],
    ]
    ref, slow = RowReference(loss, 3), RowReference(loss, 3)
    pts = np.array([r + params for r in rows])
    keys = [tuple(p) for p in pts]
    ref.prefill(pts, np.float32)
    ref._pending(("kappa", keys[0]), full=True, need=keys)
    for p, key in zip(pts, keys):
        got = ref._memo.get(("kappa", key))
        assert got is not None, p  # decided without the balls
        want = slow.kappa(p[:3], p[3:6], params)
        for a, b in zip([got[0], *got[1]], [want[0], *want[1]]):
            assert abs(a - b) <= 2**-8 * max(abs(b), 1.0), (p, a, b)
    # the rule itself: a group whose straddling bound is above KAPPA_REST of its pinned terms stays unknown
    h = [fi.Interval(np.array([1.0, 1.0]), np.array([1.0, 1.0])), fi.Interval(np.array([-1e-3, -1e-6]), np.array([1e-3, 1e-6]))]
    xs = np.array([[1.0, 1.0], [1.0, 1.0]])

    class _Ref:  # two inputs, no labels: the Hessian row of one gradient element
        n, label_syms, loss, _memo = 2, (), type("L", (), {"params": ()})(), {}

    one = np.array([1.0, 1.0])
    with pytest.MonkeyPatch.context() as m:
        m.setattr(first_tier, "_evaluate", lambda *a, **k: h + h)  # both gradient elements' rows
        got = first_tier._grad_kappas(_Ref(), xs, [("a",), ("b",)], np.zeros(2), np.ones(2, dtype=bool), [one, one], np.zeros(2, dtype=bool))
    assert list(got) == [False, True]  # 1e-3 > 2^-12 of the pinned 1; 1e-6 below it


def test_two_sum_and_two_prod_err_are_exact():
    """TwoSum and Dekker's TwoProduct give the exact rounding errors (as Fractions), across
    exponents from 2^-900 to 2^900 and for exact cases (a power of two, a zero)."""
    from fractions import Fraction

    rng = np.random.default_rng(9)
    a = rng.standard_normal(4000) * np.ldexp(1.0, rng.integers(-450, 450, 4000))
    b = rng.standard_normal(4000) * np.ldexp(1.0, rng.integers(-450, 450, 4000))
    a[:3], b[:3] = (0.0, 2.0**-300, 3.0), (5.0, 7.0, 0.0)
    s, e = fi.two_sum(a, b)
    p = a * b
    q = fi.two_prod_err(a, b, p)
    for i in range(a.size):
        assert Fraction(s[i]) + Fraction(e[i]) == Fraction(a[i]) + Fraction(b[i])
        assert Fraction(p[i]) + Fraction(q[i]) == Fraction(a[i]) * Fraction(b[i])
