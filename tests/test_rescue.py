"""Outputs that overflow in float64 where the exact result does not (:mod:`cesym.kernels._rescue`),
and Huber's pieces at their own scale.

References: mpmath at 300 bits (the inputs are exact binary numbers, so the definition is
evaluated to far below the float64 rounding). Where a rescue applies, the kernel returns the
decimal evaluation of its stable form rounded once: within 1 ulp (the rounding plus a relative
10^-40 of the decimal form; these rows have κ <= 2). Elsewhere the contract's 4 + 4κ ulps
(value) and 8 + 4κ (gradient), κ measured here.
"""

from __future__ import annotations

import concurrent.futures as cf

import mpmath as mp
import numpy as np
import pytest

from cesym import kernels as K
from cesym.kernels import _generated as G
from cesym.kernels import _rescue

mp.mp.prec = 300


def ulps(got: float, want) -> float:
    want = mp.mpf(want)
    if not np.isfinite(got):
        return np.inf
    return float(abs(mp.mpf(float(got)) - want) / np.spacing(abs(float(want))))


def mean(terms) -> mp.mpf:
    terms = list(terms)
    return mp.fsum(terms) / len(terms)


def test_a_poisson_row_whose_terms_overflow_and_whose_mean_does_not():
    y = np.array([[1.4329452610938815e-175, 2.8337942229705896e305]])
    p = np.array([[1.4329452610938818e-175, 2.8337942206785315e305]])
    want = mean(mp.mpf(a) - mp.mpf(b) * mp.log(mp.mpf(a)) for a, b in zip(p[0], y[0]))
    assert float(want) < -9.9e307  # finite, where y·log p of the second term is -2e308
    got = K.poisson(y, p)
    assert ulps(got[0], want) <= 1
    v, g = K.poisson_value_and_grad(y, p)
    assert v[0] == got[0]
    assert np.array_equal(g, K.poisson_grad(y, p))


def test_a_gradient_quotient_past_the_largest_float_divided_by_a_long_row():
    y = np.array([[1e10] + [0.0] * 99])
    p = np.array([[1e-300] + [1.0] * 99])
    want = (1 - mp.mpf(1e10) / mp.mpf(1e-300)) / 100
    assert ulps(K.poisson_grad(y, p)[0, 0], want) <= 1
    # the value is finite, the gradient alone overflowed: value_and_grad watches both
    assert ulps(K.poisson_value_and_grad(y, p)[1][0, 0], want) <= 1


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_differences_of_inputs_near_the_largest_float(sign):
    big = sign * 1.5e308
    y = np.array([[-big, 0.0, 1.0, 0.0]])
    p = np.array([[big, 0.0, 0.0, 0.0]])
    e = mp.mpf(big) - mp.mpf(-big)
    assert ulps(K.mean_squared_error_grad(y, p)[0, 0], 2 * e / 4) <= 1
    assert ulps(K.mean_absolute_error(y, p)[0], (abs(e) + 1) / 4) <= 1
    assert ulps(K.mean_absolute_error_grad(y, p)[0, 0], mp.sign(e) / 4) <= 1
    # the exact value passes the largest float: inf, as before
    assert K.mean_squared_error(y, p)[0] == np.inf


def test_huber_linear_piece_past_the_largest_float_with_a_finite_mean():
    d = 800.0
    y = np.zeros((1, 4))
    p = np.array([[1.7e308 / 500, 0.0, 0.0, 0.0]])
    want = (d * mp.mpf(p[0, 0]) - d * d / 2) / 4
    assert ulps(K.huber(y, p, delta=d)[0], want) <= 1
    assert ulps(K.huber_grad(y, p, delta=d)[0, 0], mp.mpf(d) / 4) <= 1


def test_huber_quadratic_piece_keeps_its_digits_among_the_subnormals():
    # δ·(e²/(2δ)) lost them at δ >> 1: 35 ulps here; e²/2 rounds twice at most
    d = 729.037116225599
    y = np.array([[-1.957685261707797e-159]])
    p = np.array([[1.9576852610433471e-159]])
    e = mp.mpf(p[0, 0]) - mp.mpf(y[0, 0])
    assert ulps(K.huber(y, p, delta=d)[0], e**2 / 2) <= 1.5
    y = np.array([[9.657010337854636e73, 3.422279025119582e-307]])
    p = np.array([[-9.65701033785965e73, -3.4222799233021846e-307]])
    e = mp.mpf(p[0, 1]) - mp.mpf(y[0, 1])
    assert ulps(K.huber_grad(y, p, delta=803.2811482101258)[0, 1], e / 2) <= 1


def test_rows_with_infinite_inputs_keep_their_limits_and_nan_its_row():
    y = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 2.0]])
    p = np.array([[np.inf, 1.0], [np.nan, 1.0], [1e308, -1e308]])
    v = K.mean_absolute_error(y, p)
    assert v[0] == np.inf and np.isnan(v[1])
    assert ulps(v[2], (abs(mp.mpf(1e308) - 1) + abs(mp.mpf(-1e308) - 2)) / 2) <= 1


def test_float32_inputs_are_untouched_and_correctly_rounded():
    # float32 inputs cannot overflow the float64 forms here; the rescue is not in their way
    y = np.array([[3e38, -3e38]], dtype=np.float32)
    p = np.array([[-3e38, 3e38]], dtype=np.float32)
    v = K.mean_absolute_error(y, p)
    assert v.dtype == np.float32
    want = (abs(mp.mpf(float(p[0, 0])) - mp.mpf(float(y[0, 0]))) * 2) / 2
    assert float(want) > float(np.finfo(np.float32).max)  # 6e38 rounds to float32's inf
    assert v[0] == np.inf


def test_a_kernel_without_a_decimal_form_has_no_rescuer():
    assert _rescue.rescuer(G.activity_penalty, "l2_batch_mean", ("value", "grad"), (0.1,), False) is None
    assert _rescue.rescuer(G.poisson, "rate", ("value",), (), False) is not None


def test_class_index_labels_are_rescued_as_their_one_hot_rows():
    """A renormalised row of a 0 and a least subnormal: 1/Σp overflows, and the labelled element
    of the gradient, -Σ_{c≠k} p_c/(p_k Σp), was inf·0 = NaN (at k = 1: it is -0, -5e-324·0/…) or
    -inf + inf·0 (at k = 0: -inf). The class-index kernels now rescue as the dense ones do,
    with the same numbers."""
    p = np.array([[0.0, 5e-324], [5e-324, 0.0], [1e-320, 3e-320]])
    for k in ([0, 1, 1], [1, 0, 0]):
        k = np.array(k)
        dense = np.eye(2)[k]
        g = K.sparse_categorical_crossentropy_grad(k, p)
        assert not np.isnan(g).any(), g
        assert np.array_equal(g, K.categorical_crossentropy_grad(dense, p)), (g, K.categorical_crossentropy_grad(dense, p))
        v, g2 = K.sparse_categorical_crossentropy_value_and_grad(k, p)
        assert np.array_equal(g2, g) and np.array_equal(v, K.categorical_crossentropy(dense, p))
    g = K.sparse_categorical_crossentropy_grad(np.array([1]), p[:1])
    assert g[0, 1] == 0.0 and g[0, 0] == np.inf  # -ε/(p_1(p_1 + ε)) -> -0; 1/5e-324 overflows


@pytest.fixture
def nothing_remembered(monkeypatch):
    """The decimal forms evaluated at every call (no answer remembered, :func:`_rescue._remembered`)."""
    _rescue.forget_answers()
    monkeypatch.setattr(_rescue, "REMEMBERED", 0)
    yield
    _rescue.forget_answers()


def test_rescued_rows_are_the_same_from_many_threads(nothing_remembered):
    """Every thread evaluates the decimal forms itself (nothing remembered): their contexts are
    the threads' own."""
    rng = np.random.default_rng(3)
    # one term past the largest float (y·log p, y > 2.56e305), the mean of the row within it
    y = np.stack([rng.uniform(1e300, 1e302, 64), rng.uniform(2.6e305, 3.5e305, 64)], axis=1)
    p = y * (1 + rng.uniform(-1e-9, 1e-9, y.shape))
    once = K.poisson_value_and_grad(y, p)
    assert np.all(np.isfinite(once[0]))
    assert not _rescue._answers
    with cf.ThreadPoolExecutor(8) as ex:
        runs = list(ex.map(lambda _: K.poisson_value_and_grad(y, p), range(16)))
    for v, g in runs:
        assert np.array_equal(v, once[0]) and np.array_equal(g, once[1])


def test_a_remembered_answer_is_the_evaluated_one(monkeypatch):
    """Binary cross-entropy on probabilities saturated to 1 (and 0): +inf for every label short
    of 1 (0), each an infinite output the decimal form confirms. An input met again (in the same
    call or a later one, from any thread) costs no decimal evaluation, and the outputs have the
    bytes of a call that remembers nothing; -0.0 and 0.0 are different inputs."""
    rng = np.random.default_rng(5)
    y = rng.choice([0.0, 0.25, 1.0], size=(300, 4))
    p = rng.choice([0.0, 1.0, 0.5, 1e-300], size=(300, 4))
    evaluations = []
    real = _rescue.decimal_rows

    def counted(*a, **k):
        evaluations.append(1)
        return real(*a, **k)

    monkeypatch.setattr(_rescue, "decimal_rows", counted)
    solve = _rescue._exact.solve  # (float32: the correctly rounded path)
    monkeypatch.setattr(_rescue._exact, "solve", lambda *a, **k: (evaluations.append(1), solve(*a, **k))[1])
    for dtype in (np.float64, np.float32):
        _rescue.forget_answers()
        monkeypatch.setattr(_rescue, "REMEMBERED", 0)
        fresh = K.binary_crossentropy_value_and_grad(y.astype(dtype), p.astype(dtype))
        monkeypatch.setattr(_rescue, "REMEMBERED", 1 << 12)
        first = K.binary_crossentropy_value_and_grad(y.astype(dtype), p.astype(dtype))
        assert not np.all(np.isfinite(first[1]))
        del evaluations[:]
        with cf.ThreadPoolExecutor(4) as ex:
            again = list(ex.map(lambda _: K.binary_crossentropy_value_and_grad(y.astype(dtype), p.astype(dtype)), range(4)))
        assert not evaluations  # every rescued input was met before
        for v, g in [first, *again]:
            assert v.tobytes() == fresh[0].tobytes() and g.tobytes() == fresh[1].tobytes()
    assert _rescue._bits([-0.0]) != _rescue._bits([0.0])
    _rescue.forget_answers()
    assert not _rescue._answers


def test_rows_longer_than_the_limit_are_not_kept():
    """A row form's answers are kept for rows of at most ``REMEMBERED_ROW`` elements (Dice's
    gradient on rows of 1e-209, rescued whole: their products underflow)."""
    for C, kept in ((8, True), (_rescue.REMEMBERED_ROW + 1, False)):
        _rescue.forget_answers()
        y = np.tile([1.0, 0.0], (2, C // 2 + 1))[:, :C]
        p = np.full((2, C), 1e-209)
        g = K.dice_grad(y, p)
        assert np.all(np.isfinite(g)) and g[0, 0] != 0
        assert bool(_rescue._answers) == kept
    _rescue.forget_answers()


def test_the_answers_kept_are_bounded(monkeypatch):
    """The least recently used answer goes first past ``REMEMBERED``."""
    _rescue.forget_answers()
    monkeypatch.setattr(_rescue, "REMEMBERED", 3)
    for i in range(5):
        assert _rescue._remembered(("k", i), lambda i=i: i * i) == i * i
    assert list(_rescue._answers) == [("k", 2), ("k", 3), ("k", 4)]
    assert _rescue._remembered(("k", 2), lambda: "not called") == 4  # a hit moves it to the end
    _rescue._remembered(("k", 5), lambda: 25)
    assert list(_rescue._answers) == [("k", 4), ("k", 2), ("k", 5)]
    _rescue.forget_answers()


def test_decimal_float64_rounds_past_the_largest_float_to_inf():
    from decimal import Decimal

    assert _rescue.decimal_float64(lambda a: a * a, (Decimal("1e200"),)) == np.inf
    assert _rescue.decimal_float64(lambda a: a * a / 4, (Decimal("2e154"),)) == 1e308
    assert _rescue.decimal_float64(lambda a: a * 0 * Decimal("Infinity"), (Decimal(1),)) is None
    assert _rescue.decimal_float64(lambda a: a - a * Decimal("Infinity"), (Decimal(1),)) == -np.inf
    assert _rescue.decimal_float64(lambda a: -a / 0, (Decimal(1),)) == -np.inf  # -t/p at p = 0


# --- row forms: kernels whose gradient couples the row (Dice, Tversky, the categorical hinge) ---


def dice_ref(y, p):
    y, p = [mp.mpf(float(v)) for v in y], [mp.mpf(float(v)) for v in p]
    s, t = mp.fsum(y) + mp.fsum(p), mp.fsum(a * b for a, b in zip(y, p))
    return 1 - 2 * t / s, [-2 * a / s + 2 * t / s**2 for a in y]


def tversky_ref(y, p, alpha, beta):
    y, p = [mp.mpf(float(v)) for v in y], [mp.mpf(float(v)) for v in p]
    tp = mp.fsum(a * b for a, b in zip(y, p))
    fp, fn = mp.fsum((1 - a) * b for a, b in zip(y, p)), mp.fsum(a * (1 - b) for a, b in zip(y, p))
    d = tp + alpha * fp + beta * fn
    if d == 0:
        return mp.mpf(1), [mp.mpf(0)] * len(y)
    return 1 - tp / d, [-(a * d - tp * ((1 - alpha - beta) * a + alpha)) / d**2 for a in y]


def test_dice_and_tversky_on_rows_of_tiny_probabilities():
    # Σ y·p underflows on these rows while its share of the gradient, Σyp/(Σy + Σp)², is of order
    # one (-1 where the gradient is -0.5 before the row forms); κ of these outputs is below 3
    rng = np.random.default_rng(11)
    rows = [(np.array([8.378e-209, 1.643e-293]), np.array([8.378e-209, 1.643e-293]))]
    for _ in range(12):
        c = int(rng.integers(2, 6))
        scale = 2.0 ** -float(rng.integers(480, 1000))
        y = rng.uniform(0, 1, c) * scale * (rng.random(c) < 0.7)
        p = rng.uniform(0, 1, c) * scale
        rows.append((y, p))
    for y, p in rows:
        v, g = K.dice_value_and_grad(y[None], p[None])
        want_v, want_g = dice_ref(y, p)
        assert ulps(v[0], want_v) <= 1 and ulps(K.dice(y[None], p[None])[0], want_v) <= 1
        assert all(ulps(a, b) <= 1 for a, b in zip(g[0], want_g)), (y, p, g, want_g)
        assert np.array_equal(g, K.dice_grad(y[None], p[None]))
        for alpha, beta in ((0.5, 0.5), (0.2, 0.7), (0.0, 0.0)):
            want_v, want_g = tversky_ref(y, p, alpha, beta)
            v, g = K.tversky_value_and_grad(y[None], p[None], alpha=alpha, beta=beta)
            assert ulps(v[0], want_v) <= 1 or (want_v == 0 and v[0] == 0)
            assert all(ulps(a, b) <= 1 or (b == 0 and a == 0) for a, b in zip(g[0], want_g)), (y, p, alpha, beta)


def test_dice_gradient_is_homogeneous_across_the_tiny_threshold():
    # the Dice gradient -2y_j/S + 2Σyp/S² (S = Σy + Σp) is homogeneous of degree 0 in (y, p):
    # scaled by powers of two (exact, the elements staying normal) it is the same numbers, within
    # the contract's 8 + 4κ ulps of the exact gradient (κ <= 2 on rows of binary labels); the
    # value, 1 - s·(2Σyp/S), is held to the exact value of the scaled row
    rng = np.random.default_rng(5)
    y = (rng.random((1, 7)) < 0.5).astype(float)
    y[0, 0] = 1.0
    p = rng.uniform(2.0**-8, 1, (1, 7))
    want_g = dice_ref(y[0], p[0])[1]
    for k in range(0, 1000, 37):
        s = 2.0**-k
        v, g = K.dice_value_and_grad(y * s, p * s)
        assert ulps(v[0], dice_ref(y[0] * s, p[0] * s)[0]) <= 4
        assert all(ulps(a, b) <= 16 for a, b in zip(g[0], want_g)), k


def test_categorical_hinge_where_products_of_large_labels_overflow():
    # Σ y·p and (1 - y)·p overflow to ±inf on finite inputs (NaN from inf - inf before the row forms)
    y, p = np.array([[1e200, 3e200, 0.0]]), np.array([[2e200, 1e200, 5e199]])
    v, g = K.categorical_hinge_value_and_grad(y, p)
    assert v[0] == 0 and np.all(g == 0)  # the margin is -5e400
    # a finite margin between two overflowing terms: max (1 - y)p = 2e308, Σ y·p = 1.4e308
    y, p = np.array([[1.5, -1.0]]), np.array([[1.6e308, 1e308]])
    f = [(1 - mp.mpf(a)) * mp.mpf(b) for a, b in zip(y[0], p[0])]
    want = max(f) - mp.fsum(mp.mpf(a) * mp.mpf(b) for a, b in zip(y[0], p[0])) + 1
    v, g = K.categorical_hinge_value_and_grad(y, p)
    assert ulps(v[0], want) <= 1 and ulps(K.categorical_hinge(y, p)[0], want) <= 1
    assert g.tolist() == [[-1.5, 3.0]] and np.array_equal(g, K.categorical_hinge_grad(y, p))


def test_the_tiny_row_test():
    t = _rescue.TINY
    blocks = [np.array([[t / 2, 0.0], [0.0, 0.0], [t, t / 4], [-t / 8, 5e-324], [np.nan, t / 2], [np.inf, 0]])]
    assert _rescue._tiny_rows(blocks, 6, 2).tolist() == [True, False, False, True, False, False]
    wants = _rescue.rescuer(G.dice, "overlap", ("grad",), (), False, logits=True).wants  # every input
    assert wants(blocks)
    for x in ([[0.0, -0.0]], [[t, -t]], [[np.nan, np.inf]], [[1.0, -np.inf]]):
        assert not wants([np.array(x)])
    # probabilities: a label row alone tiny, over a prediction row that is not: no product of two
    # tiny numbers; but a label or prediction under SMALL loses bits in a product with any factor
    wants = _rescue.rescuer(G.dice, "overlap", ("grad",), (), False).wants
    assert not wants([np.array([[t / 2, t / 2]]), np.array([[0.5, 0.5]])])
    assert wants([np.array([[0.5, 0.5]]), np.array([[5e-324, 0.5]])])
    assert wants([np.array([[1e-300, 0.5]]), np.array([[0.5, 0.5]])])
    s = _rescue.SMALL
    tiny, small = _rescue._fragile_rows([np.array([[s, 1.0], [s / 2, 1.0], [0.0, 1.0], [-s / 4, 0.0]])], None, 4, 2)
    assert small.tolist() == [False, True, False, True] and not tiny.any()
    # float32 inputs never take the tiny rows (their products cannot leave float64's normal range)
    assert not hasattr(_rescue.rescuer(G.dice, "overlap", ("grad",), (), True), "wants")
    assert hasattr(_rescue.rescuer(G.dice, "overlap", ("grad",), (), False), "wants")


def _row_forms():
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(G.__path__):
        mod = importlib.import_module(f"{G.__name__}.{info.name}")
        for variant, core in getattr(mod, "CORES", {}).items():
            if hasattr(mod, f"{variant}_value_rescue"):
                yield pytest.param(mod, variant, core, id=f"{info.name}.{variant}")


@pytest.mark.parametrize("mod,variant,core", list(_row_forms()))
def test_row_forms_are_the_stable_forms(mod, variant, core):
    # a row form printed wrong would be off by far more than rounding: on ordinary rows (inputs in
    # [1/16, 1], κ small) it agrees with the float64 core to 2^-40 of the output's scale
    from decimal import Decimal, localcontext

    rng = np.random.default_rng(17)
    arrays = [a for a in core["args"] if a in ("y", "p", "t", "x", "z", "k")]
    scalars = tuple(0.25 + 0.5 * i for i in range(len(core["args"]) - len(arrays)))
    for c in (2, 3, 5):
        # a class index k (rows × 1) for the core; its one-hot row for the row form
        rows = [rng.integers(0, c, (4, 1)) if a == "k" else rng.uniform(1 / 16, 1, (4, c)) for a in arrays]
        dense = [np.eye(c)[a[:, 0]] if n == "k" else a for n, a in zip(arrays, rows)]
        v = getattr(mod, f"{variant}_value")(*rows, *scalars)
        g = getattr(mod, f"{variant}_grad")(*rows, *scalars)
        for r in range(4):
            args = tuple([Decimal(float(x)) for x in a[r]] for a in dense) + tuple(Decimal(s) for s in scalars) + (Decimal(c),)
            dv = _rescue.decimal_float64(getattr(mod, f"{variant}_value_rescue"), args)
            assert abs(dv - np.ravel(v)[r]) <= 2.0**-40 * max(1.0, abs(dv))
            if not hasattr(mod, f"{variant}_grad_rescue"):  # a gradient decimal cannot print: the value alone
                continue
            with localcontext(_rescue._context()):
                dg = [float(e) for e in getattr(mod, f"{variant}_grad_rescue")(*args)]
            scale = max(1.0, max(abs(e) for e in dg))
            assert np.allclose(dg, g[r], rtol=0, atol=2.0**-40 * scale)


def _hinge_exact_grad(y, p):
    """The categorical hinge's gradient from the exact margin (Fractions): [m >= 0]·((1 - y_j)·s_j - y_j),
    s_j the share of the maximum of (1 - y)·p (1/k among k ties)."""
    from fractions import Fraction as F

    f = [(1 - F(a)) * F(b) for a, b in zip(y, p)]
    top = max(f)
    ties = [v == top for v in f]
    m = top - sum(F(a) * F(b) for a, b in zip(y, p)) + 1
    if m < 0:
        return [0.0] * len(p)
    return [float((1 - F(a)) * (F(1, sum(ties)) if t else 0) - F(a)) for a, t in zip(y, ties)]


def test_the_side_of_a_kink_is_decided_exactly():
    """The categorical hinge's margin max (1 - y)p - Σ yp + 1 computed within its rounding of 0
    takes the rescue's exact decimal row form (``<variant>_kinks``): scores [1 + 2^-52, 0.75·2^-52]
    under a one-hot label have the margin -5.6e-17, which rounded to 0 (the gradient [-1, 1] where
    it is [0, 0]); multi-hot [1, 1] under [1, 1e-30] likewise. Rows near the kink drawn at random
    (the labelled score 1 + a few ulps, the others within a few ulps of its excess over 1) get the
    gradient of the exact margin's side, in float64 and from float32 inputs."""
    cases = [([1.0, 0.0], [1 + 2**-52, 0.75 * 2**-52]), ([1.0, 1.0], [1.0, 1e-30]), ([1.0, 0.0, 0.0], [2.0, 1.0, 1.0 - 2**-53])]
    rng = np.random.default_rng(5)
    for _ in range(200):
        C = int(rng.integers(2, 6))
        k = int(rng.integers(C))
        y = np.zeros(C)
        y[k] = 1.0
        pk = 1 + float(rng.integers(1, 8)) * 2**-52
        p = (pk - 1) * (1 + rng.integers(-4, 5, C) * 2.0**-52) * rng.choice([1.0, 0.5, 2.0], C)
        p[k] = pk
        cases.append((y.tolist(), p.tolist()))
    ys, ps = np.array([c[0] for c in cases[:2]]), np.array([c[1] for c in cases[:2]])
    assert np.array_equal(K.categorical_hinge_grad(ys, ps), [[0.0, 0.0], [0.0, 0.0]])
    crossed = 0
    for y, p in cases:
        y, p = np.array([y]), np.array([p])
        want = _hinge_exact_grad(y[0], p[0])
        assert K.categorical_hinge_grad(y, p)[0].tolist() == want, (y, p)
        assert K.categorical_hinge_value_and_grad(y, p)[1][0].tolist() == want
        y32, p32 = y.astype(np.float32), p.astype(np.float32)
        want32 = [float(np.float32(v)) for v in _hinge_exact_grad(y32[0].astype(float), p32[0].astype(float))]
        assert K.categorical_hinge_grad(y32, p32)[0].tolist() == want32, (y32, p32)
        with np.errstate(all="ignore"):  # the plain float64 sign, for the count
            m = np.max((1 - y) * p) - np.sum(y * p) + 1
        crossed += (m >= 0) != (_hinge_exact_grad(y[0], p[0]) != [0.0] * len(want))
    assert crossed >= 1  # the draw holds rows whose plain margin is on the wrong side


def test_a_hinge_with_soft_labels_decides_its_kink_exactly():
    """1 - t·p with t = fl(1/3), p = 3: t·p rounds to 1, the margin to 0; exactly it is 2^-54·…
    > 0, the active side (the gradient -t/C, not 0)."""
    from fractions import Fraction as F

    t, p = np.array([[1 / 3, 0.1]]), np.array([[3.0, 10.0]])
    g = K.hinge_grad(t, p)
    for j in range(2):
        m = 1 - F(t[0, j]) * F(p[0, j])
        assert (g[0, j] != 0) == (m >= 0), (j, m, g)
    # from float32 inputs the kink's elements are correctly rounded to float32: -t/C at a
    # margin of exactly 0 (t = 1/2, p = 2) or just above, 0 below
    from cesym.kernels._exact import round_float32

    t32 = np.array([[0.5, 1 / 3, 0.1, 0.7]], dtype=np.float32)
    p32 = np.array([[2.0, 3.0, 10.0, 1 / 0.7]], dtype=np.float32)
    g32 = K.hinge_grad(t32, p32)
    assert g32.dtype == np.float32
    for j in range(4):
        tj, pj = F(float(t32[0, j])), F(float(p32[0, j]))
        want = round_float32(-tj / 4)[0] if 1 - tj * pj >= 0 else 0.0
        assert float(g32[0, j]) == want, (j, g32)


def test_the_kink_screen_and_log_give_each_row_its_own_answer(monkeypatch):
    """The rescue bounds a block's kink arguments at once from a row of its largest magnitudes,
    tests elementwise only the rows that screen leaves, and reads the arguments the gradient
    computed (``_runtime.kink_log``) instead of computing the margin again. In a batch of
    near-kink rows among random ones, with a row of scores 2^600 (whose bound lets every row
    through the screen) or without it, each row's gradient is its exact margin's side, the same
    as alone; every block's arguments came from the gradient."""
    from cesym.kernels import _runtime as rt

    seen = []
    real = rt.logged_kinks
    monkeypatch.setattr(rt, "logged_kinks", lambda pred, n: seen.append(real(pred, n)) or seen[-1])
    rng = np.random.default_rng(11)
    C = 4
    rows, labels = [], []
    for i in range(300):
        k = int(rng.integers(C))
        y = np.zeros(C)
        y[k] = 1.0
        if i % 2:
            pk = 1 + float(rng.integers(1, 8)) * 2**-52
            p = (pk - 1) * (1 + rng.integers(-4, 5, C) * 2.0**-52) * rng.choice([1.0, 0.5, 2.0], C)
            p[k] = pk
        else:
            p = rng.normal(size=C)
        rows.append(p)
        labels.append(y)
    ys, ps = np.array(labels), np.array(rows)
    alone = np.array([K.categorical_hinge_grad(ys[i : i + 1], ps[i : i + 1])[0] for i in range(len(ps))])
    for i in range(1, len(ps), 2):
        assert alone[i].tolist() == _hinge_exact_grad(ys[i], ps[i]), i
    huge = np.full((1, C), 2.0**600)
    for y, p in ((ys, ps), (np.vstack([ys, ys[:1]]), np.vstack([ps, huge]))):
        seen.clear()
        g = K.categorical_hinge_grad(y, p)
        assert np.array_equal(g[: len(ps)], alone)
        assert seen and all(s is not None for s in seen)
        g, = K.categorical_hinge_value_and_grad(y, p)[1:]
        assert np.array_equal(g[: len(ps)], alone)


def _kink_variants():
    from conftest import generated_modules

    for fam, mod in generated_modules():
        for v in sorted(mod.CORES):
            if hasattr(mod, f"{v}_kink_scales"):
                yield pytest.param(mod, v, id=f"{fam}.{v}")


@pytest.mark.parametrize("mod, variant", list(_kink_variants()))
def test_kink_scales_grow_with_every_input_magnitude(mod, variant):
    """The rescue bounds a block's kink scales by their value on one row of the block's largest
    magnitudes: for that to screen soundly, each scale must be nondecreasing in every input's
    magnitude. On random blocks (labels of either sign), the scales of that row are at least
    every element's."""
    from conftest import random_block

    scales = getattr(mod, f"{variant}_kink_scales")
    rng = np.random.default_rng(7)
    for _ in range(40):
        lab, pred, scalars = random_block(mod, variant, rng, int(rng.integers(1, 30)), int(rng.integers(1, 8)))
        lab = lab * rng.choice([-3.0, -1.0, 1.0, 2.0], lab.shape)
        blocks = [lab, pred]
        top = [np.full((1, b.shape[-1]), np.max(np.abs(b))) for b in blocks]
        for each, cap in zip(scales(*blocks, *scalars), scales(*top, *scalars)):
            assert np.all(np.asarray(each) <= np.max(cap)), (variant, each, cap)


def test_row_forms_evaluate_each_element_a_bounded_number_of_times(monkeypatch):
    """Every generated row form (``*_rescue(..., C)``: the float64 rescue of the row kernels)
    costs O(C) decimal function calls a row: a row 4 times as long makes at most 5 times as
    many calls to the functions of :mod:`cesym.kernels._exact`. A sum over the other elements
    printed inside every term of a gradient's sum over the row was O(C^3): categorical focal on
    probabilities called log1p 49 times on a row of 7, 196 on a row of 14; the softmax
    cross-entropies' gradients from logits made 560 calls on a row of 16 against 44 on a row of 4,
    80 now."""
    import decimal
    import inspect

    from cesym.kernels import _exact

    calls = [0]
    names = sorted(n for n, f in vars(_exact).items() if inspect.isfunction(f) and f.__module__ == _exact.__name__
                   and not n.startswith("_") and n not in ("D", "q"))
    for n in names:
        real = getattr(_exact, n)
        monkeypatch.setattr(_exact, n, lambda *a, _f=real, **k: (calls.__setitem__(0, calls[0] + 1), _f(*a, **k))[1])
    params = {"label_smoothing": "0.1", "alpha": "0.25", "gamma": "2", "beta": "0.7"}
    D = decimal.Decimal
    forms = []
    for mod in sorted({getattr(G, m) for m in dir(G) if inspect.ismodule(getattr(G, m))}, key=lambda m: m.__name__):
        for name, fn in sorted(vars(mod).items()):
            if name.endswith("_rescue") and inspect.isfunction(fn) and list(inspect.signature(fn).parameters)[-1] == "C":
                forms.append((f"{mod.__name__}.{name}", fn))
    assert len(forms) >= 20, forms  # every row family's value and gradient
    for what, fn in forms:
        _, _, *rest, _ = inspect.signature(fn).parameters
        assert set(rest) <= set(params), (what, rest)  # a new parameter: give it a value above
        counts = []
        for C in (4, 16):
            labels = [D(1) / D(C)] * C  # a soft row (a class index comes as its one-hot row)
            pred = [D(i + 1) / D(C * (C + 1)) for i in range(C)]  # positive and below 1: probabilities or logits
            calls[0] = 0
            with decimal.localcontext() as ctx:
                ctx.prec = 40
                fn(labels, pred, *(D(params[p]) for p in rest), C)
            counts.append(calls[0])
        assert counts[1] <= 5 * counts[0], (what, counts)
