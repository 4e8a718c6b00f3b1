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
    assert _rescue.rescuer(G.cosine_similarity, "cosine", ("value", "grad"), (), False) is None
    assert _rescue.rescuer(G.poisson, "rate", ("value",), (), False) is not None


def test_rescued_rows_are_the_same_from_many_threads():
    rng = np.random.default_rng(3)
    # one term past the largest float (y·log p, y > 2.56e305), the mean of the row within it
    y = np.stack([rng.uniform(1e300, 1e302, 64), rng.uniform(2.6e305, 3.5e305, 64)], axis=1)
    p = y * (1 + rng.uniform(-1e-9, 1e-9, y.shape))
    once = K.poisson_value_and_grad(y, p)
    assert np.all(np.isfinite(once[0]))
    with cf.ThreadPoolExecutor(8) as ex:
        runs = list(ex.map(lambda _: K.poisson_value_and_grad(y, p), range(16)))
    for v, g in runs:
        assert np.array_equal(v, once[0]) and np.array_equal(g, once[1])


def test_decimal_float64_rounds_past_the_largest_float_to_inf():
    from decimal import Decimal

    assert _rescue.decimal_float64(lambda a: a * a, (Decimal("1e200"),)) == np.inf
    assert _rescue.decimal_float64(lambda a: a * a / 4, (Decimal("2e154"),)) == 1e308
    assert _rescue.decimal_float64(lambda a: a - a * Decimal("Infinity"), (Decimal(1),)) is None
