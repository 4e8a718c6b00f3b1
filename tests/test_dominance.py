"""Rest sums that share one dominance test (the ``shared-dominance-test`` lowering).

A split gradient computes each rest sum Σ_{c≠j} v_c as ``Σv - v_j`` and sums the other elements
directly where v_j dominates its row. Where the element-j terms the split rules cancelled come
in pairs (the cosine's p̂_j·p̂_jŷ_j from Σ p̂ŷ against ŷ_j·p̂_j² from Σ p̂²), one array's test
covers both rest sums of the pair (:func:`cesym.generate.lowerings.cancelled_pairs`): the
kernels compare once (``_rt.dominant``) and sum directly at those positions
(``_rt.rest_sum_at``). These tests pin where the lowering is written and where not, the runtime
against :func:`rest_sum`, and the cosine gradient against the interval reference on the rows
where the shared test decides: an element just below dominance, labels parallel, antiparallel
and along one axis.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from cesym.define.primitives import Elem, Norm2, RestSum, RowSum, Scaled
from cesym.generate import lowerings as L
from cesym.generate.lowerings import cancelled_pairs, lower, math_form
from cesym.kernels import _runtime as rt
from cesym.rewrite.rules import check_equivalent
from cesym.verify.contract import check_batch
from cesym.verify.registry import case
from cesym.verify.sampling import Batch

y, p = Elem("y"), Elem("p")
u, w = Scaled(p, Norm2(p)), Scaled(y, Norm2(y))
#: the cosine's split gradient (``norm-square-split``): (p̂_j Σ_{c≠j} p̂ŷ - ŷ_j Σ_{c≠j} p̂²)/‖p‖
COSINE_SPLIT = (u * RestSum(u * w) - w * RestSum(u**2)) / Norm2(p)


def test_the_cosine_split_cancels_one_pair():
    assert cancelled_pairs(COSINE_SPLIT) in ([(RestSum(u * w), RestSum(u**2))], [(RestSum(u**2), RestSum(u * w))])


@pytest.mark.parametrize(
    "expr",
    [
        u * RestSum(u * w),  # an element-j term with nothing to cancel it
        w / (p + RestSum(p)),  # a rest sum in a denominator: its terms are not a sum of pairs
        sp.log(RestSum(p**2)) + RestSum(p * y),  # inside a function
        u * RestSum(u * w) - 2 * w * RestSum(u**2),  # the j-terms differ by a factor 2: no pair
    ],
    ids=["unpaired", "denominator", "function", "unequal"],
)
def test_no_pairs_claimed_where_the_terms_do_not_pair(expr):
    assert cancelled_pairs(expr) is None


def test_the_lowering_shares_the_square_test_and_is_an_identity():
    low = lower(COSINE_SPLIT)
    tested = sorted(low.atoms(L.TestedRestSum), key=sp.default_sort_key)
    assert len(tested) == 2
    (dom,) = low.atoms(L.Dominant)
    assert dom.args == (u**2, 1, 1)  # the square of a unit vector: no |v|, its sum is 1
    assert all(t.args[2] == dom for t in tested)
    check_equivalent(COSINE_SPLIT.replace(lambda e: isinstance(e, RestSum), lambda e: RowSum(e.args[0]) - e.args[0]), math_form(low))


def test_not_written_for_an_unpaired_rest_sum():
    expr = u * RestSum(u * w) + w * RestSum(p**2)
    assert not lower(expr).has(L.TestedRestSum)


# --- the runtime ----------------------------------------------------------------------------------


def _rows(rng, n_rows, n):
    v = rng.standard_normal((n_rows, n))
    big = rng.integers(n, size=n_rows)
    v[np.arange(n_rows), big] *= rng.choice([1.0, 3.0, 1e3, 1e12], size=n_rows)  # some rows dominated
    return v


@pytest.mark.parametrize("n", [1, 2, 3, 10])
@pytest.mark.parametrize("signed", [False, True])
def test_dominant_is_rest_sums_own_test_and_rest_sum_at_its_numbers(n, signed):
    rng = np.random.default_rng(20261203 + n)
    v = _rows(rng, 4000, n)
    v = v if signed else v**2
    s = rt.row_sum(v)
    at = rt.dominant(v, s, 0 if signed else 1)
    a = np.abs(v)
    expect = np.flatnonzero(a > rt.row_sum(a) * 0.75)
    assert np.array_equal(at, expect)
    assert np.array_equal(rt.rest_sum_at(v, s, at), rt.rest_sum(v, s))  # its own test: rest_sum's numbers


def test_rest_sum_at_sums_directly_where_told_and_keeps_rows_apart():
    rng = np.random.default_rng(7)
    v = rng.standard_normal((3000, 6))
    v[:, 0] = 1.0
    v[:, 1] = -1.0 + 1e-13 * rng.standard_normal(3000)  # S - v_0 cancels: only the direct sum keeps the rest
    s = rt.row_sum(v)
    at = np.arange(3000) * 6  # element 0 of every row
    out = rt.rest_sum_at(v, s, at)
    q = v.copy()
    q[:, 0] = 0.0
    direct = rt.row_sum(q)[:, 0]  # the other elements summed, element 0 left out
    assert np.array_equal(out[:, 0], direct)
    plain = rt._along_rows(s, v) - v
    assert np.array_equal(out[:, 1:], plain[:, 1:])
    half = rt.rest_sum_at(v[1000:2000], s[1000:2000], np.arange(1000) * 6)  # element 0 of each of its rows
    assert np.array_equal(half, out[1000:2000])  # a row's numbers do not depend on its block
    assert rt.dominant(v[0], s[0]) is None and np.array_equal(rt.rest_sum_at(v, s, None), rt.rest_sum(v, s))


# --- the cosine gradient where the shared test decides ------------------------------------------


def _near_dominant(rng, n_rows, n):
    """Predictions with one element carrying 45% to 74.99% of the squared norm (below the test's
    3/4, so the rest sums are Σ - v_j) and labels parallel, antiparallel, random and along that
    element's axis (where Σ p̂ŷ is dominated by element j, whose own test no longer runs)."""
    pred = rng.standard_normal((n_rows, n))
    j = rng.integers(n, size=n_rows)
    f = rng.uniform(0.45, 0.7499, size=n_rows)
    rest = np.sum(pred**2, axis=1) - pred[np.arange(n_rows), j] ** 2
    pred[np.arange(n_rows), j] = np.where(rng.random(n_rows) < 0.5, -1, 1) * np.sqrt(f / (1 - f) * rest)
    noise = 10.0 ** rng.uniform(-12, -2, size=(n_rows, 1)) * rng.standard_normal((n_rows, n))
    lab = rng.standard_normal((n_rows, n))
    kind = np.arange(n_rows) % 4
    lab[kind == 0] = pred[kind == 0] + noise[kind == 0]
    lab[kind == 1] = -pred[kind == 1] + noise[kind == 1]
    axis = kind == 3
    lab[axis] = 1e-3 * noise[axis]
    lab[np.flatnonzero(axis), j[axis]] = 1.0
    return lab, pred


@pytest.mark.parametrize("n", [2, 3, 10])
def test_cosine_gradient_within_the_contract_where_the_shared_test_decides(n):
    rng = np.random.default_rng(1203 + n)
    lab, pred = _near_dominant(rng, 48, n)
    res = check_batch(case("cosine_similarity"), Batch(lab, pred, {}, ["near-dominant"] * len(pred)))
    assert res.unresolved == 0
    assert not res.failures, "\n".join(map(str, res.failures[:5]))
    assert max(res.grad_share) < 0.9  # measured at most about 0.6: a form that lost the pair's digits reaches 1


# --- the value near ±1: the half squared distance of the unit vectors ----------------------------


def test_unit_dot_is_written_for_the_value_only():
    value = -RowSum(u * w)
    assert lower(value).has(L.UnitDot)
    assert not lower(COSINE_SPLIT).has(L.UnitDot)  # the gradient's rest sums keep the computed dot


def _exact_cos(a, b):
    import mpmath

    with mpmath.workdps(60):
        num = mpmath.fsum(mpmath.mpf(float(x)) * mpmath.mpf(float(z)) for x, z in zip(a, b))
        den = mpmath.sqrt(mpmath.fsum(mpmath.mpf(float(x)) ** 2 for x in a)) * mpmath.sqrt(mpmath.fsum(mpmath.mpf(float(z)) ** 2 for z in b))
        return num / den


def test_unit_dot_keeps_the_cosine_of_aligned_rows_within_an_ulp():
    """Rows parallel and antiparallel up to 1e-16..1e-4: the plain dot of the rounded unit
    vectors errs by up to 4 ulps of 1 there (and exceeds 1), where the function's κ is about 0."""
    rng = np.random.default_rng(31)
    n_rows = 600
    yv = rng.standard_normal((n_rows, 10))
    sign = np.where(np.arange(n_rows) % 2, -1.0, 1.0)[:, None]
    pv = sign * yv * (1 + 10.0 ** rng.uniform(-16, -4, (n_rows, 1)) * rng.standard_normal((n_rows, 10)))
    a = rt.divide_rows(pv, rt.norm2(pv))
    b = rt.divide_rows(yv, rt.norm2(yv))
    c = rt.row_sum(a * b)
    got = rt.unit_dot(a, b, c)[:, 0]
    worst_plain = worst = 0.0
    for i in range(n_rows):
        exact = _exact_cos(pv[i], yv[i])
        ulp = np.spacing(abs(float(exact)))
        worst = max(worst, float(abs(got[i] - exact)) / ulp)
        worst_plain = max(worst_plain, float(abs(c[i, 0] - exact)) / ulp)
        assert abs(got[i]) <= 1.0
    assert worst <= 1.0 and worst_plain >= 2.0, (worst, worst_plain)  # measured 0.5 and 2.9


def test_unit_dot_leaves_other_rows_and_nan_alone():
    a = np.array([[0.6, 0.8], [1.0, 0.0], [np.nan, 1.0]])
    b = np.array([[0.8, -0.6], [0.28, 0.96], [0.0, 1.0]])
    c = rt.row_sum(a * b)
    out = rt.unit_dot(a, b, c)
    assert np.array_equal(out[:2], c[:2]) and np.isnan(out[2, 0])  # |c| <= 1/2 and NaN: the plain sum
    c0 = c[0]
    assert rt.unit_dot(a[0], b[0], c0) is c0  # not 2-D rows: as it is


# --- rest sums among the subnormal numbers: rows that span more than 2^500 ------------------------


def test_rest_products_are_written_for_the_cosine_gradient_and_are_an_identity():
    low = lower(COSINE_SPLIT)
    (node,) = low.atoms(L.RestProductsAt)
    (dom,) = low.atoms(L.Dominant)
    assert node.args[1] == dom and node.args[2] == Norm2(p)
    assert len(node.args) == 3 + 2 * 5  # two rest sums of products: s, λ, x, y, R each
    check_equivalent(
        COSINE_SPLIT.replace(lambda e: isinstance(e, RestSum), lambda e: RowSum(e.args[0]) - e.args[0]), math_form(low)
    )


def _spanning(rng, n_rows: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose elements span up to 10^600 (float64), labels next to them (relative 1e-16..1e-2,
    a third of them negated): the dominant element's gradient is a difference of products of the
    other elements, far below the unit vector's scale."""
    pred = rng.standard_normal((n_rows, n)) * 10.0 ** rng.uniform(-300, 300, (n_rows, n))
    lab = pred * (1 + 10.0 ** rng.uniform(-16, -2, (n_rows, n)) * rng.standard_normal((n_rows, n)))
    lab[rng.random(n_rows) < 0.3] *= -1
    return lab, pred


#: The row found with labels next to the prediction (2026-12-03): the plain form's rest sums of
#: the dominant element are 0 (p̂_1² = 1.25e-326), its gradient 0 where it is 1.35e-251.
SPAN_ROW = (np.array([[-3.2149839047086516e-83, 3.5945031727592555e-246]]), np.array([[-3.214983842929318e-83, 3.594503228369623e-246]]))


def test_the_plain_form_loses_the_dominant_gradient_of_a_spanning_row():
    lab, pred = SPAN_ROW
    u = pred / np.linalg.norm(pred)
    assert u[0, 1] ** 2 == 0.0  # the rest sum the plain form computes
    from cesym import kernels as K

    g = K.cosine_similarity_grad(lab, pred)
    assert 1.3e-251 < g[0, 0] < 1.4e-251


@pytest.mark.parametrize("n", [2, 3, 7])
def test_cosine_gradient_within_the_contract_on_rows_spanning_past_2_to_the_500(n):
    rng = np.random.default_rng(500 + n)
    lab, pred = _spanning(rng, 40, n)
    if n == 2:
        lab, pred = np.vstack([SPAN_ROW[0], lab]), np.vstack([SPAN_ROW[1], pred])
    res = check_batch(case("cosine_similarity"), Batch(lab, pred, {}, ["spanning"] * len(pred)))
    assert res.unresolved == 0
    assert not res.failures, "\n".join(map(str, res.failures[:5]))
    assert max(res.grad_share) < 0.9


def test_rest_products_at_keeps_other_positions_and_normal_rest_sums():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((50, 4))
    x[:, 0] = 10.0  # dominant, but the other elements are near 1: rest sums far above 2^-960
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = np.linalg.norm(x, axis=1, keepdims=True)
    at = rt.dominant(u**2, 1, 1)
    assert at.size == 50
    R = rt.rest_sum_at(u * u, rt.row_sum(u * u), at)
    g = rt.divide_rows(u * R, d)
    assert rt.rest_products_at(g, at, d, 1, u, u, u, R) is g
    # one-hot rows: rest sums 0, recomputed as 0
    e = np.eye(3)[[0, 2]]
    at = rt.dominant(e**2, 1, 1)
    R = rt.rest_sum_at(e * e, rt.row_sum(e * e), at)
    g = rt.divide_rows(e * R, np.ones((2, 1)))
    out = rt.rest_products_at(g, at, np.ones((2, 1)), 1, e, e, e, R)
    assert np.array_equal(out, np.zeros((2, 3)))
