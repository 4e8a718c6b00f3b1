"""Correctly rounded float32 kernels (issue 12 §3): the rounding test flags every output whose
float32 rounding its error bound leaves open; the decimal and tracked-float64 paths decide them
as the proven reference does; the kernels' float32 outputs are the correctly rounded ones on the
inputs the exhaustive runs found misrounded, and on random inputs with every output forced
through the slow path; the test fails without the slow path."""

import json
import math
import threading
import zlib
from decimal import Context, Decimal, Inexact, localcontext
from fractions import Fraction
from pathlib import Path

import mpmath
import numpy as np
import pytest

from cesym.kernels import _eft, _exact, _rounding
from cesym.verify import exhaustive as X
from cesym.verify.registry import CASES, case
from conftest import generated_modules, random_block

HARD = Path(__file__).resolve().parent / "data" / "misrounded_float32.json"


def _f32(v) -> float:
    with np.errstate(over="ignore"):
        return float(np.float32(v))


# --- the rounding test -------------------------------------------------------------------------

def _near_boundaries(rng, n: int) -> np.ndarray:
    """float64 numbers within a few thousand float64 ulps of float32 midpoints, in the normal
    and subnormal ranges and at the overflow threshold, and random ones."""
    f = rng.standard_normal(n).astype(np.float32) * np.float32(2.0) ** rng.integers(-140, 120, n).astype(np.float32)
    f = f[np.isfinite(f) & (f != 0)]
    mid = (f.astype(np.float64) + np.nextafter(f, np.float32(np.inf)).astype(np.float64)) / 2
    off = rng.integers(-4000, 4000, mid.size).astype(np.float64) * np.spacing(mid)
    over = (2.0**128 - 2.0**103) + rng.integers(-4000, 4000, 200).astype(np.float64) * 2.0**75
    return np.concatenate([mid + off, over, rng.standard_normal(1000) * 10.0 ** rng.integers(-44, 38, 1000)])


@pytest.mark.parametrize("with_m", [False, True])
def test_suspects_flags_every_open_rounding(with_m):
    """Every r whose float32 rounding differs from that of some value within the bound is
    flagged (checked at the bound's two ends, exactly with fractions)."""
    rng = np.random.default_rng(1)
    r = _near_boundaries(rng, 20000)
    m = np.abs(r) * (rng.uniform(1, 50, r.size) if with_m else 1.0)
    w = 2.0**7
    idx = set(_rounding.suspects(r, m if with_m else None, w).tolist())
    missed = 0
    for i, (ri, mi) in enumerate(zip(r.tolist(), m.tolist())):
        b = Fraction(w) * Fraction(2) ** -53 * Fraction(mi)
        ends = {_exact.round_float32(Fraction(ri) - b)[0], _exact.round_float32(Fraction(ri) + b)[0], _f32(ri)}
        if len(ends) > 1 and i not in idx:
            missed += 1
    assert missed == 0
    # and it is selective: far from the boundaries, almost nothing is flagged
    far = np.random.default_rng(2).standard_normal(200000)
    assert _rounding.suspects(far, None, w).size < 20  # expected 200000·2·2w/2^29 = 0.2


def test_suspects_skips_non_finite_outputs():
    r = np.array([np.nan, np.inf, -np.inf, 1.0])
    assert _rounding.suspects(r, None).tolist() == []


# --- the decimal path --------------------------------------------------------------------------

_FUNCS = {
    "log1p": (_exact.log1p, mpmath.log1p, (-0.999, 1e3)),
    "expm1": (_exact.expm1, mpmath.expm1, (-50, 50)),
    "sigmoid": (_exact.sigmoid, lambda a: 1 / (1 + mpmath.exp(-a)), (-800, 800)),
    "softplus": (_exact.softplus, lambda a: mpmath.log1p(mpmath.exp(a)), (-800, 800)),
    "logcosh": (_exact.logcosh, lambda a: mpmath.log1p(mpmath.sinh(a) ** 2) / 2, (-800, 800)),
    "tanh": (_exact.tanh, mpmath.tanh, (-50, 50)),
}


@pytest.mark.parametrize("name", sorted(_FUNCS))
def test_decimal_functions_hold_their_precision(name):
    """Relative error below 10^-37 at 40 digits, tiny arguments (series) and large ones included."""
    f, ref, (lo, hi) = _FUNCS[name]
    rng = np.random.default_rng(3)
    xs = list(rng.uniform(lo, hi, 150)) + [s * 10.0**-k for k in (6, 12, 30, 200) for s in (1, -1)] + [0.0]
    mpmath.mp.prec = 300
    for x in xs:
        if name == "log1p" and x <= -1:
            continue
        with localcontext(Context(prec=40, traps=[])):
            v = f(Decimal(x))
        exact = ref(mpmath.mpf(x))
        assert abs(mpmath.mpf(str(v)) - exact) <= abs(exact) * mpmath.mpf(10) ** -37, (name, x)


def test_log1p_diff_keeps_a_small_difference():
    mpmath.mp.prec = 300
    a, b = 0.1, 0.1 + 2.0**-50
    with localcontext(Context(prec=40, traps=[])):
        v = _exact.log1p_diff(Decimal(a), Decimal(b))
    exact = mpmath.log1p(a) - mpmath.log1p(b)
    assert abs(mpmath.mpf(str(v)) - exact) <= abs(exact) * 1e-36


def test_round_float32_agrees_with_the_reference_rounding():
    rng = np.random.default_rng(4)
    mpmath.mp.prec = 200
    vals = [Fraction(float(v)) for v in rng.standard_normal(300) * 10.0 ** rng.integers(-46, 39, 300)]
    f = rng.standard_normal(200).astype(np.float32)
    vals += [(Fraction(float(a)) + Fraction(float(np.nextafter(a, np.float32(9))))) / 2 for a in f]  # exact ties
    vals += [Fraction(2) ** -150, Fraction(3) * Fraction(2) ** -150, Fraction(2) ** 128 - Fraction(2) ** 103,
             Fraction(2) ** 128 - Fraction(2) ** 103 - Fraction(1), Fraction(2) ** -149 * 5 / 2]
    for v in vals:
        got, dist = _exact.round_float32(v)
        want = X._round_f32(mpmath.mpf(v.numerator) / v.denominator)
        assert got == want or (math.isnan(got) and math.isnan(want)), v
        assert dist >= 0


def test_solve_decides_exact_ties_and_far_tails():
    """x²/2 exactly on a float32 midpoint is a tie (to even); 0.3f·1280 + 0.3f·softplus tail
    (e^-1280, 556 digits below) is just above the midpoint 384.0000152587890625: up."""
    x = float(np.float32(1 + 2.0**-12))  # x² = 1 + 2^-11 + 2^-24: halfway between float32 neighbours
    tie = _exact.solve(lambda a: a * a, (Decimal(x),))
    assert tie == _f32(x * x) and Fraction(x) ** 2 != Fraction(tie)
    t = Decimal(float(np.float32(0.3)))
    up = _exact.solve(lambda xx, tt: tt * _exact.softplus(-xx) + (1 - tt) * _exact.softplus(xx), (Decimal(-1280.0), t))
    assert up == float(np.nextafter(np.float32(384.0), np.float32(1e9)))


@pytest.mark.parametrize("arg, want", [
    (1e8, math.inf), (-1e8, 0.0), (1e6, math.inf), (-1e6, 0.0), (200.0, math.inf), (-200.0, 0.0),
])
def test_solve_decides_values_far_past_float32_in_decimal(arg, want):
    """e^{±10^8} is a Decimal of a 9-digit exponent, and as a Fraction an integer of 144 million
    bits: the slow path rounds such values to ±inf or ±0 from their decimal exponents (a user
    loss, e^{-s·x}, took minutes per element at x = 10^8). Signs are kept, and an exact far
    value (a product of float32 numbers) is decided at once."""
    import time

    for sign in (1, -1):
        t = time.perf_counter()
        got = _exact.solve(lambda a: sign * _exact.exp(a), (Decimal(arg),))
        assert time.perf_counter() - t < 5.0  # the Fraction route: minutes
        assert got == sign * want and math.copysign(1.0, got) == sign
    big = Decimal(float(np.float32(3e38)))
    assert _exact.solve(lambda a: a * a * a, (big,)) == math.inf
    assert _exact.solve(lambda a: -a * a, (big,)) == -math.inf
    tiny = Decimal(float(np.float32(1e-30)))
    got = _exact.solve(lambda a: -a * a * a, (tiny,))
    assert got == 0.0 and math.copysign(1.0, got) == -1.0
    # near the range's ends the rounding is still the exact one: 2^128 - 2^104 rounds down
    edge = Decimal(2) ** 128 - Decimal(2) ** 104
    assert _exact.solve(lambda a: a, (edge,)) == float(np.finfo(np.float32).max)


# --- the tracked float64 path ------------------------------------------------------------------

def test_tracker_knows_when_float64_is_exact():
    rng = np.random.default_rng(5)
    a = rng.standard_normal(5000).astype(np.float32).astype(np.float64)
    b = (rng.standard_normal(5000) * 10.0 ** rng.integers(-12, 12, 5000)).astype(np.float32).astype(np.float64)
    for op, exact in (("add", lambda x, y: x + y), ("mul", lambda x, y: x * y), ("div", lambda x, y: x / y)):
        fx = _eft.Tracker(a.shape)
        got = getattr(fx, op)(a, b)
        for i in range(0, a.size, 7):
            true = exact(Fraction(a[i]), Fraction(b[i]))
            assert (not fx.inexact[i]) == (Fraction(got[i]) == true), (op, a[i], b[i])
    fx = _eft.Tracker(a.shape)  # a branch's roundings count only where it is taken
    out = fx.where(a > 0, lambda: fx.mul(a, a), lambda: fx.div(a, 3.0))
    assert np.array_equal(out, np.where(a > 0, a * a, a / 3.0))
    assert not fx.inexact[a > 0].any()  # a float32 squared is exact in float64
    neg = np.flatnonzero(a < 0)
    assert [bool(fx.inexact[i]) for i in neg] == [Fraction(a[i] / 3.0) != Fraction(a[i]) / 3 for i in neg]


# --- the kernels -------------------------------------------------------------------------------

def _recorded_misroundings():
    """(case id, label, params, what, input, correct float32): the inputs the exhaustive runs
    found misrounded by one rounding from float64 (tests/data, kept from those runs)."""
    data = json.loads(HARD.read_text())["inputs"]
    return [(d["case"], d["label"], tuple(tuple(p) for p in d["params"]), d["what"], d["x"], d["correct"]) for d in data]


MISROUNDED = _recorded_misroundings()


def _kernel_at(setting: X.Setting, xs) -> np.ndarray:
    return X._kernel_outs([X._problem(setting)], np.asarray(xs, dtype=np.float32))[0]


def test_recorded_misroundings_are_now_correct(monkeypatch):
    """The inputs the exhaustive runs found misrounded (before this path existed) give the
    correctly rounded float32; without the slow path, some do not."""
    assert len(MISROUNDED) >= 30
    groups: dict = {}
    for cid, label, params, what, x, want in MISROUNDED:
        groups.setdefault(X.Setting(cid, label, params, what), []).append((x, want))
    wrong_without = 0
    for st, pts in groups.items():
        xs, want = zip(*pts)
        got = _kernel_at(st, xs)
        assert got.tolist() == [_f32(w) for w in want], st.name
        with monkeypatch.context() as mp:
            mp.setattr(_rounding, "correctly_rounded", lambda *a, **k: None)
            wrong_without += int(np.sum(_kernel_at(st, xs) != np.asarray(want, dtype=np.float32)))
    assert wrong_without >= len(MISROUNDED) // 2


def _has_slow_path(st: X.Setting) -> bool:
    import importlib

    loss = X._problem(st).loss
    module = importlib.import_module(f"cesym.kernels._generated.{loss.family}")
    return hasattr(module, f"{loss.variant}_{st.what}_exact")


def _eligible_settings():
    """A value and a gradient setting of every kernel of one float input that has a slow path."""
    out = []
    for c in CASES:
        if X.eligible(c) is not None or c.module is not None:
            continue
        try:
            settings = X.settings_for(c)
        except ValueError:  # not swept (the cosine of one element): its slow path is tested all the same
            kw = tuple(sorted(X.default_params(c).items()))
            settings = [X.Setting(c.id, lab, kw, w) for lab in X._default_labels(c) for w in ("value", "grad")]
        for st in settings[:4]:
            if _has_slow_path(st):
                out.append(pytest.param(st, id=st.name))
    return out


def _inputs(st: X.Setting, rng, n: int) -> np.ndarray:
    lo, hi = X._domain(X._problem(st).case)
    if math.isinf(lo) and math.isinf(hi):
        x = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 3, n)
    elif math.isinf(hi):
        x = lo + rng.exponential(1, n) * 10.0 ** rng.integers(-6, 3, n)
    else:
        x = rng.uniform(lo, hi, n)
    return x.astype(np.float32)


@pytest.mark.parametrize("st", _eligible_settings())
def test_slow_path_is_correct_everywhere(monkeypatch, st):
    """Every output forced through the slow path (tracked float64, then decimal) is the
    correctly rounded float32 of the proven reference."""
    monkeypatch.setattr(_rounding, "suspects", lambda r, m, window=0: np.flatnonzero(np.isfinite(np.ravel(r))))
    rng = np.random.default_rng(zlib.crc32(st.name.encode()))
    xs = _inputs(st, rng, 40)
    got = _kernel_at(st, xs)
    problem = X._problem(st)
    for x, g in zip(xs.tolist(), got.tolist()):
        decided = X.decide_float32(problem, x)
        if decided is None:  # no real value (MAPE at a zero label): the kernel says so
            assert not math.isfinite(g), (st.name, x, g)
            continue
        assert g == decided[0] or (math.isnan(g) and math.isnan(decided[0])), (st.name, x, g, decided[0])


def test_rows_of_several_elements_are_correctly_rounded(monkeypatch):
    """A row's mean (three elements) through the slow path: the float32 nearest the exact mean."""
    from cesym.kernels import binary_crossentropy

    monkeypatch.setattr(_rounding, "suspects", lambda r, m, window=0: np.flatnonzero(np.isfinite(np.ravel(r))))
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((50, 3)) * 30).astype(np.float32)
    y = rng.uniform(0, 1, (50, 3)).astype(np.float32)
    got = binary_crossentropy(y, x, from_logits=True)
    mpmath.mp.prec = 300
    for i in range(50):
        s = sum(mpmath.mpf(float(t)) * mpmath.log1p(mpmath.exp(-mpmath.mpf(float(v)))) + (1 - mpmath.mpf(float(t))) * mpmath.log1p(mpmath.exp(mpmath.mpf(float(v))))
                for t, v in zip(y[i], x[i]))
        assert float(got[i]) == X._round_f32(s / 3), i


@pytest.mark.filterwarnings("ignore::cesym.kernels.ProbabilitiesAsLogitsWarning")  # the inputs are meant: logits in [0, 1]
def test_concurrent_calls_agree():
    """The decimal contexts are per thread: eight threads on the hard inputs get the same outputs."""
    groups: dict = {}
    for cid, label, params, what, x, want in MISROUNDED:
        groups.setdefault(X.Setting(cid, label, params, what), []).append((x, want))
    jobs = list(groups.items())
    errors = []

    def run():
        for st, pts in jobs:
            xs, want = zip(*pts)
            if _kernel_at(st, xs).tolist() != [_f32(w) for w in want]:
                errors.append(st.name)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# --- the error model, the first decimal level, the deferred slow path --------------------------

def _exact_kernels():
    return [pytest.param(fam, variant, id=f"{fam}.{variant}") for fam, mod in generated_modules()
            for variant in mod.CORES if getattr(mod, f"{variant}_value_checked", None) is not None]


@pytest.mark.parametrize("fam,variant", _exact_kernels())
def test_float64_errors_lie_within_the_window(fam, variant):
    """The model the rounding test rests on, measured: each float64 output of a ``_checked`` core
    is within WINDOW·2^-53·m of the exact value (``m`` its magnitude), a row's mean within
    row_window(C)·2^-53·m, against the decimal form at 60 digits. The measured worst is far
    inside (a few units where the window allows 128): a kernel whose error outgrew the window
    fails here before the exhaustive runs."""
    mod = dict(generated_modules())[fam]
    rng = np.random.default_rng(zlib.crc32(f"{fam}.{variant}".encode()))
    C = 5
    lab, pred, scalars = random_block(mod, variant, rng, 60, C)
    kinds = ["value"] + (["grad"] if getattr(mod, f"{variant}_grad_exact", None) is not None else [])
    row_level = mod.CORES[variant]["row_level"]
    worst = 0.0
    for kind in kinds:
        fn = getattr(mod, f"{variant}_{kind}_exact")
        with np.errstate(all="ignore"):
            out, m = getattr(mod, f"{variant}_{kind}_checked")(lab, pred, *scalars)
        value_row = kind == "value" and row_level
        shape = (lab.shape[0], 1) if value_row else lab.shape
        out = np.broadcast_to(out, shape)
        m = np.abs(out) if m is None else np.broadcast_to(m, shape)
        window = _rounding.row_window(C) if value_row else _rounding.WINDOW
        ds = tuple(Decimal(s) for s in scalars) + (Decimal(C),)
        for i, j in np.ndindex(*shape):
            if not (np.isfinite(out[i, j]) and np.isfinite(m[i, j])):
                continue
            if value_row:
                args = ([Decimal(float(v)) for v in lab[i]], [Decimal(float(v)) for v in pred[i]])
            else:
                args = (Decimal(float(lab[i, j])), Decimal(float(pred[i, j])))
            with localcontext(Context(prec=60, traps=[])):
                exact = fn(*args, *ds)
            if not exact.is_finite():
                continue
            err = abs(Fraction(float(out[i, j])) - Fraction(exact))
            if m[i, j] == 0:
                assert err == 0, (kind, i, j)
                continue
            units = float(err / (Fraction(float(m[i, j])) * Fraction(2) ** -53))
            assert units <= window, (kind, i, j, units)
            worst = max(worst, units)
    print(f"{fam}.{variant}: worst {worst:.3g} units of 2^-53·m")
    assert worst < _rounding.WINDOW / 4  # the window's margin, measured


def test_solve_settles_at_the_first_level_given_a_bound():
    """With the float64 error bound, a value far from every boundary (relative to the level's
    precision) is decided by one evaluation; without it Ziv's strategy takes two that agree."""
    calls = []

    def fn(a):
        calls.append(1)
        return _exact.softplus(a)

    a = Decimal(float(np.float32(0.7)))
    with_bound = _exact.solve(fn, (a,), bound=2.0**7 * 2.0**-53 * 1.2)
    n_bound = len(calls)
    calls.clear()
    without = _exact.solve(fn, (a,))
    assert with_bound == without and n_bound == 1 and len(calls) == 2


def test_a_zero_weight_skips_its_term_and_keeps_a_row_exact():
    """``xmul(0, ·)`` does not evaluate its second factor: a Poisson row whose labels are all 0
    is the mean of its rates, a rational number, decided exactly at the first level."""
    from cesym.kernels._generated import poisson

    assert _exact.xmul(Decimal(0), lambda: 1 / Decimal(0)) == 0
    p = [Decimal(float(np.float32(v))) for v in (0.1, 0.25, 3.0, 7.5)]
    with localcontext(Context(prec=30, traps=[])) as c:
        v = poisson.rate_value_exact([Decimal(0)] * 4, p, Decimal(4))
        assert not c.flags[Inexact]
    assert Fraction(v) == sum(Fraction(x) for x in p) / 4


def test_the_slow_path_leaves_rows_a_limit_rule_rewrote(monkeypatch):
    """A row holding NaN is NaN, also where a zero label weight made the core's output finite
    (a limit rule rewrites it after the block): the deferred slow path, which flagged every
    output here, does not write over it."""
    from cesym.kernels import binary_crossentropy, binary_crossentropy_value_and_grad

    monkeypatch.setattr(_rounding, "suspects", lambda r, m, window=0: np.flatnonzero(np.isfinite(np.ravel(r))))
    x = np.array([[np.nan, 1.5], [0.25, -3.0]], dtype=np.float32)
    y = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    v, g = binary_crossentropy_value_and_grad(y, x, from_logits=True)
    assert np.isnan(v[0]) and np.isfinite(v[1])
    assert float(binary_crossentropy(y[1:], x[1:], from_logits=True)[0]) == float(v[1])


def test_a_tail_below_the_decimal_exponent_range_keeps_its_side():
    """Label 0.3f, logit x = -2560·2^k (k = 0..116): 0.3f·|x| is exactly a float32 midpoint and
    the loss lies above it by log1p(e^x), which no decimal context holds for |x| beyond about
    2.3·10^9 (e^x underflows to 0 there): the slow path keeps it as a sticky positive tail, so
    every one rounds up (97 of them rounded to even before)."""
    import cesym.kernels as K

    xs = np.array([-2560.0 * 2.0**k for k in range(117)], np.float32)
    t = np.float32(0.3)
    mid = (xs.astype(np.float64) * -float(t))  # exact: 24-bit by 24-bit products
    below, above = mid.astype(np.float32), np.nextafter(mid.astype(np.float32), np.float32(np.inf))
    lower = np.where(below.astype(np.float64) < mid, below, np.nextafter(below, np.float32(0)))
    upper = np.where(lower == below, above, below)
    assert np.all((lower.astype(np.float64) + upper.astype(np.float64)) / 2 == mid)  # on the midpoint
    for got in (K.sigmoid_cross_entropy_with_logits(labels=np.full((117, 1), t), logits=xs[:, None])[:, 0],
                K.binary_crossentropy(np.full((117, 1), t), xs[:, None], from_logits=True)):
        assert np.array_equal(got, upper)


def test_a_gradient_zero_at_a_perfect_prediction_needs_no_slow_path(monkeypatch):
    """The Poisson gradient ((p - y)/p)/C (common-numerator) is exactly 0 where p = y, and its
    own magnitude: a batch of perfect predictions sends nothing to the decimal path (the summed
    form 1/C - y/(p·C) sent every element there, 57 µs each). Its other outputs stay correct."""
    from cesym import kernels as K

    calls = []
    real = _exact.solve
    monkeypatch.setattr(_exact, "solve", lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(5)
    y = rng.uniform(0.05, 6.0, (400, 10)).astype(np.float32)
    g = K.poisson_grad(y, y)
    assert not calls and np.all(g == 0) and not np.any(np.signbit(g))
    p = (y * np.float32(1.001)).astype(np.float32)
    got = K.poisson_grad(y, p)
    def nearest_f32(a, b):  # (1 - a/b)/10 at 60 digits, rounded once to 24 bits (normal range)
        with mpmath.workdps(60):
            v = (1 - mpmath.mpf(float(a)) / mpmath.mpf(float(b))) / 10
        with mpmath.workprec(24):
            return float(+v)

    want = [[nearest_f32(a, b) for a, b in zip(ry, rp)] for ry, rp in zip(y[:20], p[:20])]
    assert got[:20].tolist() == want


def test_a_value_zero_at_a_perfect_prediction_needs_no_slow_path(monkeypatch):
    """KL divergence's terms y·(log y - log p) are exactly 0 where p = y and log y, log p come
    out equal: the magnitude rule for f(a) - f(b) (cesym.generate.exact) gives them no error
    there, so a copy of the target sends no row to the decimal path (it sent every row, 1.3 ms
    each). A row that only nearly matches still gets its correctly rounded value."""
    from cesym import kernels as K

    calls = []
    real = _exact.solve
    monkeypatch.setattr(_exact, "solve", lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(6)
    z = rng.normal(0.0, 3.0, (300, 10))
    y = (np.exp(z) / np.exp(z).sum(-1, keepdims=True)).astype(np.float32)
    y[::7, 2] = 0.0  # zero targets: 0·log 0 = 0
    for fn in (K.kl_divergence, lambda a, b: K.kl_divergence_value_and_grad(a, b)[0]):
        v = fn(y, y)
        assert not calls and np.all(v == 0)
    p = y.copy()
    p[:5, 4] = np.nextafter(p[:5, 4], np.float32(1))  # one element a float32 ulp away
    got = K.kl_divergence(y[:5], p[:5])
    with mpmath.workdps(60):
        want = [float(mpmath.fsum(mpmath.mpf(float(a)) * mpmath.log(mpmath.mpf(float(a)) / mpmath.mpf(float(b)))
                                  for a, b in zip(ry, rp) if a != 0)) for ry, rp in zip(y[:5], p[:5])]
    with mpmath.workprec(24):
        want = [float(+mpmath.mpf(w)) for w in want]
    assert got.tolist() == want
