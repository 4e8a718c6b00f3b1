"""±inf inputs give the limits of the mathematics (issue 9, item 8); NaN only where there is none.

Expected values are the exact limits; a finite one is compared within 2 ulps of the format
(the kernels' own accuracy contract at κ ≤ 1 where these rows have κ ≤ 1: they are the finite
row's value, one log1p or softplus away from correctly rounded), infinities and zeros exactly.
"""

import math

import numpy as np
import pytest

from cesym import kernels as K

inf, nan = np.inf, np.nan
DTYPES = (np.float32, np.float64)


def close(got, want, dtype, ulps=2.0):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got, want)
    assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
    same_inf = np.isinf(want) & (got == want)
    fin = np.isfinite(want)
    assert np.all(same_inf | fin | np.isnan(want)), (got, want)
    tol = ulps * np.spacing(np.abs(want[fin]).astype(dtype)).astype(np.float64)
    tol = np.maximum(tol, ulps * np.finfo(dtype).smallest_subnormal)
    assert np.all(np.abs(got[fin] - want[fin]) <= tol), (got, want)


def softmax_forms():
    """(name, value_and_grad(labels, logits)) of every dense softmax kernel."""
    return [
        ("softmax_cross_entropy_with_logits", lambda y, z: K.softmax_cross_entropy_with_logits_value_and_grad(labels=y, logits=z)),
        ("categorical_crossentropy", lambda y, z: K.categorical_crossentropy_value_and_grad(y, z, from_logits=True)),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,fn", softmax_forms())
def test_issue_softmax_examples(name, fn, dtype):
    y = np.array([[0, 0.5, 0.5], [0, 1, 0]], dtype)
    z = np.array([[-inf, 0, 0], [-inf, 0, -inf]], dtype)
    v, g = fn(y, z)
    close(v, [math.log(2), 0.0], dtype)
    # T·softmax - y: softmax is (0, 1/2, 1/2) and (0, 1, 0)
    close(g, [[0, 0, 0], [0, 0, 0]], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_issue_binary_example(dtype):
    v, g = K.binary_crossentropy_value_and_grad(np.array([[0, 1]], dtype), np.array([[-inf, 2]], dtype), from_logits=True)
    close(v, [0.063464005521486248], dtype)  # softplus(-2)/2
    close(g, [[0.0, -1 / (1 + math.exp(2)) / 2]], dtype)  # u σ(x) - t σ(-x), over C = 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_issue_sparse_example(dtype):
    z = np.array([[1, inf], [1, inf]], dtype)
    v, g = K.sparse_softmax_cross_entropy_with_logits_value_and_grad(labels=np.array([0, 1]), logits=z)
    close(v, [inf, 0.0], dtype)
    close(g, [[-1, 1], [0, 0]], dtype)
    v2, g2 = K.sparse_categorical_crossentropy_value_and_grad(np.array([0, 1]), z, from_logits=True)
    close(v2, [inf, 0.0], dtype)
    close(g2, [[-1, 1], [0, 0]], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_issue_ignored_nan_row_is_zero(dtype):
    z = np.array([[nan, 1, 2], [0, 1, 2], [inf, inf, nan]], dtype)
    labels = np.array([3, 1, 3])
    for fn in (K.sparse_categorical_crossentropy_value_and_grad,):
        v, g = fn(labels, z, from_logits=True, ignore_class=3)
        assert v[0] == 0 and v[2] == 0 and np.all(g[[0, 2]] == 0)
        assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
        assert np.array_equal(K.sparse_categorical_crossentropy_grad(labels, z, from_logits=True, ignore_class=3), g)
        assert np.array_equal(K.sparse_categorical_crossentropy(labels, z, from_logits=True, ignore_class=3), v)
    p = np.array([[nan, 0.5, 0.5], [0.2, 0.3, 0.5], [inf, inf, 1]], dtype)
    v, g = K.sparse_categorical_crossentropy_value_and_grad(labels, p, ignore_class=3)
    assert v[0] == 0 and v[2] == 0 and np.all(g[[0, 2]] == 0)


# (labels, logits, value, gradient) of softmax rows: the rule of cesym.kernels, case by case
SOFTMAX_ROWS = [
    # one +inf: softmax one-hot there
    ([1, 0, 0], [inf, 3, -inf], 0.0, [0, 0, 0]),
    ([0, 1, 0], [inf, 3, -inf], inf, [1, -1, 0]),
    ([0.25, 0.5, 0.25], [inf, 3, -inf], inf, [0.75, -0.5, -0.25]),
    ([0, 0, 0], [inf, 3, -inf], 0.0, [0, 0, 0]),
    # -inf only: the finite row's softmax, 0 at -inf; +inf for a positive label there
    ([0, 0, 1], [-inf, -inf, 5], 0.0, [0, 0, 0]),
    ([1, 0, 0], [-inf, 1, 1], inf, [-1, 0.5, 0.5]),
    # two +inf: no limit of softmax there (NaN); -t elsewhere; +inf when a positive label is off them
    ([1, 0, 0], [inf, inf, 0], nan, [nan, nan, 0]),
    ([0, 0, 1], [inf, inf, 0], inf, [nan, nan, -1]),
    ([0, 0, 0], [inf, inf, 0], 0.0, [0, 0, 0]),
    # every logit -inf: no limit unless the labels are all 0
    ([0, 1, 0], [-inf, -inf, -inf], nan, [nan, nan, nan]),
    ([0, 0, 0], [-inf, -inf, -inf], 0.0, [0, 0, 0]),
    # NaN: the row is NaN
    ([0, 1, 0], [nan, 0, inf], nan, [nan, nan, nan]),
    ([0, 0, 0], [nan, 0, 0], nan, [nan, nan, nan]),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,fn", softmax_forms())
def test_softmax_rule(name, fn, dtype):
    y = np.array([r[0] for r in SOFTMAX_ROWS], dtype)
    z = np.array([r[1] for r in SOFTMAX_ROWS], dtype)
    v, g = fn(y, z)
    close(v, [r[2] for r in SOFTMAX_ROWS], dtype)
    close(g, [r[3] for r in SOFTMAX_ROWS], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_rule(dtype):
    y = np.array([0, 1, 0, 1, 0.5, 0.5, 0.25, 1], dtype)
    x = np.array([-inf, -inf, inf, inf, inf, -inf, nan, inf], dtype)
    v, g = K.sigmoid_cross_entropy_with_logits_value_and_grad(labels=y, logits=x)
    close(v, [0, inf, inf, 0, inf, inf, nan, 0], dtype)
    close(g, [0, -1, 1, 0, 0.5, -0.5, nan, 0], dtype)  # u σ(x) - y σ(-x) -> u or -y


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_mixed_infinities(dtype):
    """+inf and -inf in one row: each term has its own limit (terms are non-negative)."""
    y = np.array([[1, 0, 0], [0, 1, 0.5]], dtype)
    x = np.array([[inf, -inf, 0], [inf, -inf, 0]], dtype)
    v, g = K.binary_crossentropy_value_and_grad(y, x, from_logits=True, label_smoothing=0.0)
    close(v, [math.log(2) / 3, inf], dtype)
    close(g, [[0, 0, 0.5 / 3], [1 / 3, -1 / 3, 0]], dtype)
    v, g = K.binary_crossentropy_value_and_grad(y, x, from_logits=True, label_smoothing=0.2)
    close(v, [inf, inf], dtype)  # smoothing puts weight 0.1 on each infinite softplus


@pytest.mark.parametrize("dtype", DTYPES)
def test_infinite_probabilities(dtype):
    """Renormalised probabilities may be +inf: the limit of p/Σp, as softmax at z = log p."""
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype)
    p = np.array([[inf, 0.5, 0], [inf, 0.5, 0], [inf, inf, 1], [inf, inf, 1]], dtype)
    v, g = K.categorical_crossentropy_value_and_grad(y, p)
    close(v, [0, inf, nan, inf], dtype)
    # T/S - t_j/p_j with S = +inf: -t_j/p_j, and 0 at +inf
    close(g, [[0, 0, 0], [0, -2, 0], [0, 0, 0], [0, 0, -1]], dtype)
    v, g = K.sparse_categorical_crossentropy_value_and_grad(np.array([0, 1, 0, 2]), p)
    close(v, [0, inf, nan, inf], dtype)
    close(g, [[0, 0, 0], [0, -2, 0], [0, 0, 0], [0, 0, -1]], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_probability_edges(dtype):
    """p = 0 and 1 are in the domain: 0·log 0 = 0, +inf (and ∓inf gradient) under a positive weight."""
    y = np.array([[0, 1], [1, 0], [1, 1]], dtype)
    p = np.array([[0, 1], [0, 1], [0, 1]], dtype)
    v, g = K.binary_crossentropy_value_and_grad(y, p)
    close(v, [0, inf, inf], dtype)
    close(g, [[0.5, -0.5], [-inf, inf], [-inf, -0.5]], dtype)
    v, g = K.categorical_crossentropy_value_and_grad(np.array([[0, 1]], dtype), np.array([[0, 1]], dtype))
    close(v, [0], dtype)
    close(g, [[1, 0]], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_penalty(dtype):
    h = np.array([[inf, 1.0], [2.0, -inf]], dtype)
    v, g = K.activity_penalty_value_and_grad(h, lam=0.0)
    assert v == 0 and np.all(g == 0)
    v, g = K.activity_penalty_value_and_grad(h, lam=0.5)
    close(v, inf, dtype)
    close(g, [[inf, 0.5], [1.0, -inf]], dtype)


def _entries(fn_name, **kw):
    vg = getattr(K, fn_name + "_value_and_grad")
    return (lambda *a: vg(*a, **kw)), (lambda *a: getattr(K, fn_name)(*a, **kw)), (lambda *a: getattr(K, fn_name + "_grad")(*a, **kw))


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_numbers_whatever_the_entry_block_or_threads(dtype):
    """value_and_grad = (value, grad) bit for bit, and a row's numbers do not depend on its block."""
    rng = np.random.default_rng(7)
    R, C = 5000, 6
    z = rng.normal(0, 5, (R, C)).astype(dtype)
    y = rng.uniform(0, 1, (R, C)).astype(dtype)
    y[rng.random((R, C)) < 0.3] = 0
    special = rng.random((R, C))
    z[special < 0.05] = -inf
    z[special > 0.98] = inf
    z[(special > 0.5) & (special < 0.501)] = nan
    for name, kw in [("categorical_crossentropy", {"from_logits": True}), ("binary_crossentropy", {"from_logits": True})]:
        vg, val, grad = _entries(name, **kw)
        v, g = vg(y, z)
        assert np.array_equal(v, val(y, z), equal_nan=True)
        assert np.array_equal(g, grad(y, z), equal_nan=True)
        try:
            K.set_num_threads(1)
            for r in (0, 17, R - 1):  # each row alone
                v1, g1 = vg(y[r : r + 1], z[r : r + 1])
                assert np.array_equal(v1, v[r : r + 1], equal_nan=True)
                assert np.array_equal(g1, g[r : r + 1], equal_nan=True)
        finally:
            K.set_num_threads(None)
    # nothing non-finite where the limit is finite: the finite rows are untouched
    fin = np.isfinite(z).all(axis=1)
    v = K.categorical_crossentropy(y, z, from_logits=True)
    assert np.all(np.isfinite(v[fin]))


# --- the checker of the extended reals can fail ---------------------------------------------------


def _ieee_kernel(case):
    """What the kernels computed before the limits: the generated cores' IEEE results."""
    import cesym.kernels._api as L

    def call(labels, pred, params, grad=False):
        saved = L._fixer
        L._fixer = lambda *a, **k: None  # no limit callback: the cores' outputs as they are
        try:
            return case.call(labels, pred, params, grad=grad)
        finally:
            L._fixer = saved

    return call


def _nan_to_zero_kernel(case):
    """A kernel that answers 0 where the mathematics has no limit."""

    def call(labels, pred, params, grad=False):
        return np.nan_to_num(np.asarray(case.call(labels, pred, params, grad=grad)), nan=0.0, posinf=np.inf, neginf=-np.inf)

    return call


@pytest.mark.parametrize("kernel", ["softmax_cross_entropy_with_logits", "binary_crossentropy"])
def test_extended_checker_fails_wrong_limits(kernel):
    from cesym.verify.contract import check_batch
    from cesym.verify.registry import case as case_of
    from cesym.verify.sampling import sample_extended

    c = case_of(kernel, **({"from_logits": True} if kernel == "binary_crossentropy" else {}))
    batch = sample_extended(c, np.float64, 3, 14, seed=5)
    assert not check_batch(c, batch).failures
    assert check_batch(c, batch, kernel=_ieee_kernel(c)).failures  # NaN where a limit exists
    assert check_batch(c, batch, kernel=_nan_to_zero_kernel(c)).failures  # a number where none does


@pytest.mark.parametrize("dtype", DTYPES)
def test_any_axis_and_rank(dtype):
    """The limits follow the class axis wherever it is (rank 3, axis 1)."""
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, (4, 3, 5)).astype(dtype)
    y = rng.uniform(0, 1, (4, 3, 5)).astype(dtype)
    z[0, :, 1] = -inf
    y[0, :, 1] = 0
    z[2, 0, 3] = inf
    z[3, :, 4] = [inf, inf, 0]
    v, g = K.categorical_crossentropy_value_and_grad(y, z, from_logits=True, axis=1)
    vt, gt = K.categorical_crossentropy_value_and_grad(np.moveaxis(y, 1, -1), np.moveaxis(z, 1, -1), from_logits=True)
    assert np.array_equal(v, vt, equal_nan=True) and np.array_equal(g, np.moveaxis(gt, -1, 1), equal_nan=True)
    assert np.all(np.isfinite(v[0])) and v[2, 3] == inf and v[3, 4] == inf  # positive labels off the +inf
    assert np.all(np.isnan(g[3, :2, 4])) and np.all(np.isfinite(g[3, 2, 4]))  # two +inf: no softmax limit there


@pytest.mark.parametrize("dtype", DTYPES)
def test_labels_that_are_not_finite_give_nan(dtype):
    """Labels are fixed numbers: a label ±inf or NaN has no limit to take; its sample is NaN."""
    y = np.array([[inf, 0], [0, 1]], dtype)
    x = np.array([[0, 1], [inf, -inf]], dtype)
    for vg in (
        lambda: K.sigmoid_cross_entropy_with_logits_value_and_grad(labels=y, logits=x),
        lambda: K.binary_crossentropy_value_and_grad(y, x, from_logits=True),
        lambda: K.softmax_cross_entropy_with_logits_value_and_grad(labels=y, logits=x),
    ):
        v, g = vg()
        assert np.isnan(v.reshape(2, -1)[0, 0]) and np.isnan(g[0, 0])
    v, g = K.binary_crossentropy_value_and_grad(y, x, from_logits=True)
    assert np.all(np.isnan(g[0])) and v[1] == inf and np.all(g[1] == [0.5, -0.5])  # (u σ(x) - y σ(-x))/C


@pytest.mark.parametrize("dtype", DTYPES)
def test_infinite_labels_on_the_real_line_give_the_limits(dtype):
    """Regression targets, signs and counts are inputs on the real line: an infinite label has a
    limit as an infinite prediction has, taken along the same rays, and checked against the
    extended reference (:mod:`cesym.verify.extended`, labels on its rays too). It was NaN (Huber's
    value, hinge's gradient) or a finite value beside a NaN gradient. A count's -inf is off its
    domain (NaN); a wrong kernel (NaN everywhere) fails the same check."""
    from cesym.verify.contract import check_batch
    from cesym.verify.registry import CASES
    from cesym.verify.sampling import Batch

    pred = np.array([[0.3, -1.0, 2.0]] * 4, dtype)
    lab = np.array([[inf, 0, 1], [-inf, 0, 1], [inf, -inf, 1], [inf, inf, -3]], dtype)
    checked = set()
    for case in CASES:
        if case.label_kind not in ("real", "sign", "count") or case.elementwise:
            continue
        x = np.abs(pred) if case.label_kind == "count" else pred
        # (counts: >= 0, and MSLE refuses a label below -1)
        y = np.where(np.isneginf(lab), 2.0, np.abs(lab)).astype(dtype) if case.label_kind == "count" else lab
        batch = Batch(y, x, {p[0]: (float(p[1]) if p[1] is not None else 1.0) for p in case.params}, ["label_inf"] * 4)
        res = check_batch(case, batch)
        assert not res.failures, (case.id, res.failures[:3])
        wrong = check_batch(case, batch, kernel=lambda lab, p, params, grad: np.full(p.shape if grad else p.shape[:1], np.nan))
        assert wrong.failures, case.id
        checked.add(case.label_kind)
    assert checked == {"real", "sign", "count"}
    # the hinge past its kink: value 1/3 (the infinite label's term is 0) and a zero gradient there,
    # the same from value_and_grad (which watched only the value)
    v, g = K.hinge_value_and_grad(lab[:1], pred[:1])
    assert v[0] == dtype(1 / 3) and g[0, 0] == 0 and np.array_equal(g, K.hinge_grad(lab[:1], pred[:1]))
    v, g = K.huber_value_and_grad(lab[:1], pred[:1])
    assert v[0] == inf and g[0, 0] == dtype(-1 / 3)
    v, g = K.poisson_value_and_grad(np.array([[-inf, 0, 1]], dtype), np.abs(pred[:1]))
    assert np.isnan(v[0]) and np.all(np.isnan(g))


def test_ray_limits_of_algebraic_decay_are_zero():
    """Values falling as c·M^-a along the rays (M = 2^64, 2^80, 2^96: the cosine's gradient at an
    infinite element falls as 1/M or 1/M²) have the limit 0, in the kernels' measured limits and
    in the reference's; an irregular fall, or a change of sign, has none."""
    import mpmath

    from cesym.verify.extended import _ray_limit as ref_limit
    from cesym.kernels._limits import _ray_limit

    M = [2.0**64, 2.0**80, 2.0**96]
    for dtype in (np.float32, np.float64):
        v = np.array([[-3.0 / m for m in M], [5.0 / m**2 for m in M], [1e-3, 5e-4, 4e-4], [1 / M[0], -1 / M[1], 1 / M[2]]]).T
        out = _ray_limit(v, dtype)
        assert out[0] == 0 and np.signbit(out[0]) and out[1] == 0 and np.isnan(out[2]) and np.isnan(out[3])
        assert ref_limit([mpmath.mpf(-3) / m for m in M], dtype) == 0
        assert ref_limit([mpmath.mpf(x) for x in (1e-3, 5e-4, 4e-4)], dtype) is None


def test_rays_that_agree_to_rounding_agree():
    """The kernels' rays: one limit computed at different stand-ins rounds differently ((w·S)/S
    with each ray's row sum S): within 4 ulps of the dtype they agree; 5% apart they do not
    (a path-dependent limit: NaN). The reference's: two resolved values of a limit that lies on
    a rounding midpoint (α(t_0 + t_1), exactly between two floats) round either way and are one
    limit."""
    import mpmath

    from cesym.kernels._limits import _agree
    from cesym.verify.extended import _ray_limit as ref_limit, _same

    v = -0.2072493
    per_ray = np.array([[v], [np.nextafter(v, 0)], [np.nextafter(np.nextafter(v, -1), -1)]])
    assert _agree(per_ray, np.float64)[0] == v
    assert np.isnan(_agree(np.array([[v], [v * 1.05]]), np.float64)[0])
    mid = mpmath.mpf(1) + mpmath.ldexp(1, -53)  # halfway between 1 and its successor
    lo, hi = mid - mpmath.ldexp(1, -70), mid + mpmath.ldexp(1, -70)  # pinned to 2^-8 ulp, either side
    assert _same(lo, hi, np.float64) and ref_limit([lo, hi, lo], np.float64) is not None
    assert not _same(mpmath.mpf(1), mpmath.mpf(1) + mpmath.ldexp(1, -50), np.float64)


def test_poisson_gradient_overflows_only_where_it_does():
    """float64 Poisson gradient (p - y)/(p·C) where the quotient (p - y)/p overflows and the
    gradient, within a factor C of the largest float64, may not: p = 7e-305, y = 19823 in a row
    of 3 is -9.40241745168234e+307 (``cesym verify poisson``'s row 1862, once computed -inf).
    Swept across the threshold: finite within 4 ulps where the exact value is below the largest
    float64 (two roundings: the product by 1/C and the quotient), -inf beyond it, as the
    mathematics rounds; every kernel form the same numbers."""
    import mpmath

    big = np.finfo(np.float64).max
    y0 = 19823.036171340304
    # y/(p·3) from 0.5·max to 2·max, and C = 1 (no scaling: the quotient itself, inf beyond max)
    for width in (3, 1):
        for r in (0.5, 0.9, 0.999, 0.9999999, 1.0000001, 1.5, 2.0):
            p0 = y0 / big / (width * r)
            y = np.array([[y0] + [0.0, 9010.8398844882][: width - 1]])
            p = np.array([[p0] + [1.0412242023022724e-293, 2.6122661891112447e-165][: width - 1]])
            with mpmath.workdps(40):
                exact = (mpmath.mpf(p0) - mpmath.mpf(y0)) / (mpmath.mpf(p0) * width)
            want = float(exact) if abs(exact) <= mpmath.mpf(big) else -math.inf
            g = K.poisson_grad(y, p)
            _, g2 = K.poisson_value_and_grad(y, p)
            np.testing.assert_array_equal(g, g2)
            close(g[0, 0], want, np.float64, ulps=4.0)
    y = np.array([[19823.036171340304, 0.0, 9010.8398844882]])
    p = np.array([[7.027638113002324e-305, 1.0412242023022724e-293, 2.6122661891112447e-165]])
    close(K.poisson_grad(y, p)[0, 0], -9.40241745168234e307, np.float64, ulps=4.0)


def test_a_log_divergence_beside_a_huge_finite_term_is_infinite():
    """Poisson at rates [0, 1.8e308] with label 1 on the 0: -y·log p → +inf, but at the stand-ins
    p = 2^-M the value moves by about 10^24 per stand-in beside 9e307, under an ulp: the three
    values round alike. The elasticity p·∂f/∂p = -y/C stays -1/2 at each stand-in (a term that
    converges dies out), so the limit is +inf, as the kernel says; with label 0 the term is 0 and
    the limit the finite M/2."""
    import mpmath

    from cesym.verify.contract import definition, reference_for
    from cesym.verify.extended import ExtendedReference, _log_growth
    from cesym.verify.registry import case

    big = float(np.finfo(np.float64).max)
    loss = definition(case("poisson"))
    ext = ExtendedReference(reference_for(loss, 2), loss.domain)
    v, _ = ext.value_and_grad([1.0, 0.0], [0.0, big], [])
    assert v == mpmath.inf and K.poisson(np.array([[1.0, 0.0]]), np.array([[0.0, big]]))[0] == np.inf
    v0, _ = ext.value_and_grad([0.0, 0.0], [0.0, big], [])
    assert mpmath.isfinite(v0) and float(v0) == big / 2
    # the rule alone: growing elasticities of one sign diverge, shrinking ones do not
    pts = [[mpmath.mpf(2) ** k] for k in (64, 80, 96)]
    grow = [[mpmath.mpf(1), 0.5 / p[0]] for p in pts]  # e = x·∂f/∂x = 1/2 at every stand-in
    assert _log_growth(mpmath.mpf(1), grow, pts, [math.inf]) == mpmath.inf
    fade = [[mpmath.mpf(1), 0.5 / p[0] ** 2] for p in pts]  # e = 1/(2x): converges
    assert _log_growth(mpmath.mpf(1), fade, pts, [math.inf]) == 1


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_a_small_limit_beside_a_decaying_part_is_not_taken_for_zero(gamma):
    """Binary focal loss on probabilities [1, 1e-30], labels [1, 0]. For γ = 0 the edge 1 is
    reached along 1 - 2^-k (log 1 = 0 times 0^0 does not resolve), where its term -log(1 - 2^-k)
    decays like 2^-k beside the other element's 1e-30: at k = 64, 80, 96 the decaying part is the
    larger and the reference had no limit (NaN expected, where the kernel's 5e-31 is right); the
    stand-ins further out (FAR_KS) find it. γ = 2 resolves at the edge itself and is the control."""
    from cesym.verify.contract import check_batch
    from cesym.verify.registry import case
    from cesym.verify.sampling import Batch

    c = case("binary_focal_crossentropy", from_logits=False, apply_class_balancing=False)
    b = Batch(labels=np.array([[1.0, 0.0], [0.0, 1.0]]), pred=np.array([[1.0, 1e-30], [1e-30, 1.0]]),
              params={"label_smoothing": 0.0, "gamma": gamma, "alpha": 0.25}, strata=["edge"] * 2)
    res = check_batch(c, b)
    assert not res.failures and not res.unresolved, [str(f) for f in res.failures]


def test_a_path_dependent_zero_over_zero_is_nan_from_the_value_alone():
    """Tversky at β = 0, labels [0, 1], predictions [0, 0]: TP/(TP + α·FP) = p_1/(p_1 + α·p_0)
    depends on the direction (1/(1 + α) on the diagonal, 1 or 0 where one runs ahead), so the
    row has no limit; its gradient cancels across stand-ins 2^(2^64) apart and never resolves,
    and the value's rays alone show there is nothing to resolve: every output NaN, as the kernel
    gives. A row without a label is 1 with a zero gradient (its limit, whatever α)."""
    import mpmath

    from cesym.verify.contract import definition, extended_for
    from cesym.verify.registry import case

    ext = extended_for(definition(case("tversky")), 2, unit=True)
    v, g = ext.value_and_grad([0.0, 1.0], [0.0, 0.0], [0.5, 0.0])
    assert mpmath.isnan(v) and all(mpmath.isnan(x) for x in g)
    assert ext._value_has_no_limit([0.0, 1.0], [0.0, 0.0], [0.5, 0.0], np.float64)
    # a value that has a limit (equal labels: α/(1 + α) in every direction) is not called path-dependent
    assert not ext._value_has_no_limit([0.5, 0.5], [0.0, 0.0], [0.5, 0.0], np.float64)
    y, p = np.array([[0.0, 1.0]]), np.array([[0.0, 0.0]])
    v, g = K.tversky_value_and_grad(y, p, alpha=0.5, beta=0.0)
    assert np.isnan(v).all() and np.isnan(g).all()
    for a, pred in ((0.0, [0.3, 0.0]), (0.5, [0.0, 0.0]), (0.0, [0.0, 0.0])):
        v, g = K.tversky_value_and_grad(np.zeros((1, 2)), np.array([pred]), alpha=a, beta=0.5)
        assert v[0] == 1.0 and np.all(g == 0.0)
