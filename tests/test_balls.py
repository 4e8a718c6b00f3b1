"""The reference's two interval back ends agree: python-flint's arb balls (the default) and
mpmath.iv pin the same digits of the same definitions, and give the same condition numbers.

Both are rigorous enclosures resolved to 2^-8 ulp of float64, so two resolved values of one
quantity differ by at most 2^-7 ulp; condition numbers are good to about three digits (each
Hessian entry to 2^-10 relative). Every shipped definition is sampled as ``cesym verify``
samples it (its strata, soft labels where it has labels).
"""

from __future__ import annotations

import math

import flint
import mpmath
import numpy as np
import pytest

from cesym.verify import balls, reference
from cesym.verify.contract import definition, losses_by_name
from cesym.verify.reference import RowReference
from cesym.verify.registry import CASES, one_hot
from cesym.verify.sampling import sample
from cesym.verify.ulps import ulp

from conftest import SEED

# one case per definition: the references are per loss, not per public kernel
_BY_LOSS = {}
for _c in CASES:
    if _c.reduction != "batch":
        _BY_LOSS.setdefault(_c.loss, _c)


def _rows(case, n: int, rows: int):
    """(labels, pred, params) per row of a sampled batch, as check_batch reads them."""
    loss = definition(case)
    batch = sample(case, np.float64, n, rows, seed=SEED, soft=case.labels not in ("none", "sparse"))
    labels = one_hot(batch.labels, n) if case.labels == "sparse" else batch.labels
    params = [batch.params[p.name] for p in loss.params]
    for r in range(rows):
        if case.elementwise:
            yield (None if labels is None else labels[r, :1]), batch.pred[r, :1], params
        else:
            yield (None if labels is None else labels[r]), batch.pred[r], params


def _reference(monkeypatch, kind: str, loss, n: int) -> RowReference:
    monkeypatch.setenv("CESYM_REFERENCE", kind)
    return RowReference(loss, n)


def _close(a: mpmath.mpf, b: mpmath.mpf) -> bool:
    if not (mpmath.isfinite(a) and mpmath.isfinite(b)):
        return a == b or (mpmath.isnan(a) and mpmath.isnan(b))
    return abs(a - b) <= ulp(a, np.float64) / 128


@pytest.mark.parametrize("name", sorted(_BY_LOSS))
def test_balls_and_mpmath_intervals_pin_the_same_digits(monkeypatch, name):
    case = _BY_LOSS[name]
    loss = definition(case)
    n = 1 if case.elementwise else 3
    arb_ref, iv_ref = _reference(monkeypatch, "arb", loss, n), _reference(monkeypatch, "iv", loss, n)
    assert arb_ref._main.backend == "arb" and iv_ref._main.backend == "iv"
    checked = 0
    for k, (lab, pred, params) in enumerate(_rows(case, n, 8)):
        try:
            va, ga = arb_ref.value_and_grad(lab, pred, params)
        except reference.Unresolved:
            with pytest.raises(reference.Unresolved):
                iv_ref.value_and_grad(lab, pred, params)
            continue
        vi, gi = iv_ref.value_and_grad(lab, pred, params)
        assert _close(va, vi), (name, lab, pred, va, vi)
        assert all(_close(a, b) for a, b in zip(ga, gi)), (name, lab, pred, ga, gi)
        checked += 1
        if k < 2 and loss.differentiable:  # condition numbers (second derivatives) on two rows
            (ka, kga), (ki, kgi) = arb_ref.kappa(lab, pred, params), iv_ref.kappa(lab, pred, params)
            for a, b in zip([ka, *kga], [ki, *kgi]):
                assert a == b or math.isclose(a, b, rel_tol=1e-2, abs_tol=1e-12), (name, pred, a, b)
    assert checked >= 4


def test_comparisons_of_balls_are_three_valued():
    with balls.precision(64):
        one_third = flint.arb(1) / 3
        wide = flint.arb(1, 0.5)  # [0.5, 1.5]
        assert balls.MODULE.cmp_(">", wide, 0) is True and balls.MODULE.cmp_("<", wide, 0) is False
        assert balls.MODULE.cmp_(">", wide, 1) is None and balls.MODULE.cmp_("==", wide, 1) is None
        assert balls.MODULE.cmp_("==", one_third * 3, 1) is None  # arb's own == answers False here
        assert balls.MODULE.cmp_("!=", flint.arb(2), 1) is True
        # a Piecewise undecided on the ball: the hull of both branches, not the first alone
        hull = balls.MODULE.pick((balls.MODULE.cmp_("<", wide, 1), flint.arb(-3)), (True, flint.arb(5)))
        lo, hi = balls.ends(hull)
        assert lo <= -3 and hi >= 5
        assert balls.MODULE.heaviside(wide - 1, 0.5).contains(0) and balls.MODULE.heaviside(wide - 1, 0.5).contains(1)


def test_ball_end_points_enclose_the_value():
    with balls.precision(80):
        x = flint.arb(1) / 3
        lo, hi = balls.ends(x)
    with mpmath.workprec(200):
        third = mpmath.mpf(1) / 3
        assert lo < third < hi and hi - lo < mpmath.ldexp(1, -78)
    assert balls.ends(flint.arb(0.25)) == (0.25, 0.25)  # an exact ball: one point
    # the ends are rounded outward on either side of 0: floor the lower, ceiling the upper (toward
    # and away from zero, as mpmath's 'd' and 'u' round, would round a negative ball's ends inward)
    for mid, rad in ((-1, 2.0**-200), (1, 2.0**-200), (2.0**-300, 1.0), (-(2.0**-300), 1.0), (-3, 0.5)):
        with balls.precision(80):
            b = flint.arb(mid, rad)
            lo, hi = balls.ends(b)
        with mpmath.workprec(2000):
            m, r = balls._exact(b.mid()), balls._exact(b.rad())  # Arb's radius: its 30-bit magnitude, rounded up
            assert r >= rad and lo <= m - r and m + r <= hi and lo < m < hi, (mid, rad, lo, hi)
            assert hi - lo <= 2 * r * (1 + mpmath.ldexp(1, -100)) + mpmath.ldexp(abs(m), -140), (mid, rad)
    big = mpmath.ldexp(3, 5000)  # mpmath numbers beyond any float convert exactly
    assert balls.ends(balls.as_ball(big)) == (big, big)


def test_the_default_reference_runs_on_balls_and_the_switch_is_checked(monkeypatch):
    loss = losses_by_name()["binary_crossentropy.logits"]
    monkeypatch.delenv("CESYM_REFERENCE", raising=False)
    assert RowReference(loss, 1)._main.backend == "arb"
    monkeypatch.setenv("CESYM_REFERENCE", "mpfr")
    with pytest.raises(ValueError, match="CESYM_REFERENCE"):
        RowReference(loss, 1)


def test_an_integer_power_of_a_ball_that_holds_zero_is_an_enclosure():
    """python-flint's ``arb ** int`` is NaN on a ball that holds 0 (exp(k·log x)): the printed
    reference calls ``mpmath.ipow``, flint's power where that is finite, products otherwise."""
    z = flint.arb(0, 1e-10)
    assert not (z**2).is_finite()  # the library's behaviour this works around
    for k in (2, 3, 4, 7):
        got = balls._ipow(z, k)
        assert got.is_finite()
        lo, hi = balls.ends(got)
        for t in (-1e-10, -3e-11, 0.0, 5e-11, 1e-10):
            assert lo <= mpmath.mpf(t) ** k <= hi
    x = flint.arb(3, 1e-10)
    assert balls._ipow(x, 2).mid() == (x**2).mid() and balls._ipow(x, -3).mid() == (x**-3).mid()
    assert not balls._ipow(z, -2).is_finite()  # 1/0: no value, as before


def test_a_square_of_an_exact_zero_difference_resolves():
    """(log1p(p) - log1p(y))² at p = y (the squared log error of a perfect prediction): the
    difference of two equal balls holds 0 and no precision excludes it; its square resolves to
    0, and so does the gradient."""
    loss = losses_by_name()["mean_squared_logarithmic_error.msle"]
    ref = RowReference(loss, 1)
    x = 6.501499176025391
    value, grad = ref.value_and_grad([x], [x], [], np.float64)
    assert value == 0 and grad == [0]


def _close_by_exponents(x, bits: int):
    """The exponent test written out (the oracle of ``balls.close``): the midpoint where
    ``rad < 2^(top(rad)+1) <= 2^(top(mid)-bits)``, top the exponent of the leading bit."""
    if not x.is_finite():
        return None
    mid, rad = x.mid(), x.rad()

    def top(v):
        man, exp = v.man_exp()
        return int(exp) + abs(int(man)).bit_length() - 1

    if mid.is_zero():
        return mpmath.mpf(0) if rad.is_zero() else None
    if not rad.is_zero() and top(rad) + 1 > top(mid) - bits:
        return None
    return balls.ends(x)[0] if rad.is_zero() else mpmath.mp.make_mpf(mpmath.libmp.from_man_exp(*map(int, mid.man_exp())))


def test_close_is_the_exponent_test():
    """``close`` asks Arb for the ball's relative accuracy instead of reading both exponents:
    the same answers on balls of every kind (exact, wide, around 0, huge and tiny exponents,
    not finite) at every precision the reference uses."""
    rng = np.random.default_rng(SEED)
    old = flint.ctx.prec
    try:
        for prec in (53, 80, 160, 640):
            flint.ctx.prec = prec
            for _ in range(1500):
                mid = 0.0 if rng.random() < 0.1 else float(rng.uniform(-1, 1)) * 2.0 ** int(rng.integers(-300, 300))
                kind = rng.integers(0, 4)
                if kind == 0:
                    x = flint.arb(mid)
                elif kind == 1:
                    x = flint.arb(mid, float(rng.random()) * 2.0 ** int(rng.integers(-400, 300)))
                elif kind == 2:
                    x = flint.arb(mid) / 3 + flint.arb(0, float(rng.random()) * 2.0 ** int(rng.integers(-400, 0)))
                else:
                    x = [flint.arb.nan(), flint.arb.pos_inf(), flint.arb.neg_inf(), flint.arb("0 +/- 1e-30")][int(rng.integers(0, 4))]
                for bits in (0, 1, 24, 33, 62, 120):
                    want, got = _close_by_exponents(x, bits), balls.close(x, bits)
                    assert (want is None) == (got is None) and (want is None or want == got), (x, bits, want, got)
    finally:
        flint.ctx.prec = old


def test_as_ball_is_exact_at_any_working_precision():
    """A float, and an mpmath number of any width (a limit's stand-in 1 - 2^-rk has hundreds of
    bits), become exact balls even where the working precision is lower than their width."""
    old = flint.ctx.prec
    try:
        flint.ctx.prec = 53
        with mpmath.workprec(400):
            wide = 1 - mpmath.ldexp(1, -300)
        for v in (wide, mpmath.ldexp(3, -5000), mpmath.mpf(-3) / 7, 1.5, -0.0, 2.0**-1074, np.float64(2.5), 7):
            b = balls.as_ball(v)
            exact = v if isinstance(v, mpmath.mpf) else mpmath.mpf(float(v))  # mpf(v) would round a wide v
            assert b.is_exact() and balls.ends(b)[0] == exact, v
        assert not balls.as_ball(math.inf).is_finite() and balls.as_ball(math.inf).mid() > 0
        assert balls.as_ball(mpmath.nan).is_nan() and balls.as_ball(math.nan).is_nan()
        assert not balls.as_ball(-mpmath.inf).is_finite() and balls.as_ball(-mpmath.inf).mid() < 0
    finally:
        flint.ctx.prec = old
