"""The accuracy contract of every kernel, dtype and label kind, against the interval reference.

value <= 4 + 4κ ulps and every gradient element <= 8 + 4κ ulps (cesym.verify.contract), no NaN or inf
where the true value is finite, and every reference value pinned by its interval (0 unresolved).
"""

import numpy as np
import pytest

from cesym.verify.contract import check_batch
from cesym.verify.sampling import sample, sample_extended

from conftest import SEED, contract_variants

ROWS = 120  # per row length; stratified over PRED_STRATA / PROB_STRATA (6 strata)
SIZES = (1, 2, 3, 5, 8)


def _check_samples(case, dtype, soft, smooth, sampler, rows):
    """check_batch over the sampler's batches of every row length: (failures, unresolved, points)."""
    sizes = (4, 16) if case.kernel == "activity_penalty" else SIZES
    failures, unresolved, points = [], 0, 0
    for n in sizes:
        batch = sampler(case, dtype, n, rows, seed=SEED, soft=soft, smoothing=smooth)
        # float32 kernels compute in float64: the expectation is <= 1 ulp + 4κ (value and gradient)
        bases = {"value_base": 1.0, "grad_base": 1.0} if dtype == np.float32 else {}
        res = check_batch(case, batch, **bases)
        failures += res.failures
        unresolved += res.unresolved
        points += len(res.value_ulps)
    return failures, unresolved, points


@pytest.mark.parametrize("case,dtype,soft,smooth", list(contract_variants()))
def test_contract(case, dtype, soft, smooth):
    failures, unresolved, points = _check_samples(case, dtype, soft, smooth, sample, ROWS)
    assert points > 0
    assert unresolved == 0, f"{unresolved} reference values not pinned by their intervals"
    assert not failures, f"{len(failures)} point(s) outside the contract:\n" + "\n".join(map(str, failures[:10]))


# --- the activity penalty at the ends of the squares' range ----------------------------------


def _penalty_batch(h, lam, dtype):
    from cesym.verify.sampling import Batch

    pred = np.array(h, dtype=dtype)
    return Batch(None, pred, {"lam": lam}, ["explicit"] * pred.shape[0])


@pytest.mark.parametrize(
    "h,lam,dtype",
    [
        # the example: Σh² overflows (9e308), λ/N·Σh² = 4.5e307 does not (main: inf)
        ([[3e154, 1.0], [1.0, 1.0]], 0.1, np.float64),
        ([[-3e154, 2e154, 1.0], [1e154, 1.0, 0.0]], 1e-3, np.float64),
        # squares in the subnormals, λ/N·Σh² a normal number (main: digits of h² lost)
        ([[1e-155, 1e-156], [1e-157, 1e-160]], 1e3, np.float64),
        ([[1e-160, -3e-161], [2e-162, 1e-170]], 1e10, np.float64),
        ([[1e-157, 0.0, 0.0, -1e-158]], 1e6, np.float64),
        # both ends in one batch; a result in the subnormals; a true overflow (inf is right)
        ([[1e154, 1e-160], [1e-300, 3.0]], 0.1, np.float64),
        ([[1e-158, 1e-159]], 1e-3, np.float64),
        ([[1e155, 1e155]], 0.1, np.float64),
        # the gradient 2λh/N past max/2: 2·h overflows, the gradient does not (value: inf, right)
        ([[1.5e308, 1.0]], 0.1, np.float64),
        ([[-1.7e308, 2.0], [1.0, 0.0]], 1e-3, np.float64),
        # float32: computed in float64, one rounding; huge (h² past float32's max) and tiny
        ([[3e19, 1.0], [1.0, 1.0]], 0.1, np.float32),
        ([[1e-30, 1e-31], [1e-33, 1e-40]], 1e3, np.float32),
        ([[1e-20, 1e-22]], 1e-3, np.float32),
    ],
)
def test_penalty_at_the_ends_of_the_squares_range(h, lam, dtype):
    """The penalty's value within the contract (4 + 4κ ulps, κ = 2; float32 1 + 4κ) and its
    gradient 2λh/N within 8 + 4κ (float32 1 + 4κ), against the interval reference."""
    from cesym.verify.registry import case

    batch = _penalty_batch(h, lam, dtype)
    bases = {"value_base": 1.0, "grad_base": 1.0} if dtype == np.float32 else {}
    res = check_batch(case("activity_penalty"), batch, **bases)
    assert res.unresolved == 0 and len(res.value_ulps) == 1
    assert not res.failures, "\n".join(map(str, res.failures))


def test_penalty_sample_is_many_small_batches_that_catch_the_plain_sum():
    """verify's sample for the penalty: many batches of 1 to 4 rows (one value each), huge and
    subnormal-squared activations among the strata, in both dtypes. On it the plain sum
    λ·Σh²/N (the naive form, main's arithmetic) falls outside the contract in float64, so
    verify catches it; the kernel does not."""
    from cesym.verify.registry import case
    from cesym.verify.sampling import PENALTY_LAMS, sample
    from cesym.verify.run import naive_kernel

    c = case("activity_penalty")
    for dtype in (np.float32, np.float64):
        batch = sample(c, dtype, 4, ROWS, seed=SEED)
        assert len(batch.groups) >= ROWS // 4 and all(1 <= e - s <= 4 for s, e, _ in batch.groups)
        assert [s for s, _, _ in batch.groups] == sorted({s for s, _, _ in batch.groups})
        assert {"huge", "subnormal_squares"} <= set(batch.strata)
        assert {p["lam"] for _, _, p in batch.groups} == set(PENALTY_LAMS)
        res = check_batch(c, batch)
        assert len(res.value_ulps) == len(batch.groups) and not res.failures
        if dtype == np.float64:
            plain = check_batch(c, batch, kernel=naive_kernel(c))
            assert {f.stratum for f in plain.failures if f.what == "value"} == {"huge", "subnormal_squares"}


EXT_ROWS = 28  # per row length; stratified over cesym.verify.sampling.EXTENDED_STRATA


@pytest.mark.parametrize("case,dtype,soft,smooth", list(contract_variants()))
def test_contract_extended_reals(case, dtype, soft, smooth):
    """±inf logits, +inf and 0 probabilities (0 and 1 for binary cross-entropy), ±inf
    activations and NaN: every output is the limit of the mathematics (within the contract
    where finite, the same infinity, NaN exactly where there is none), against the interval
    definition evaluated along rays to infinity (cesym.verify.extended)."""
    failures, unresolved, points = _check_samples(case, dtype, soft, smooth, sample_extended, EXT_ROWS)
    assert points > 0
    assert unresolved == 0, f"{unresolved} limits not pinned by their intervals"
    assert not failures, f"{len(failures)} point(s) off their limits:\n" + "\n".join(map(str, failures[:10]))


def test_summary_mean_of_errors_whose_sum_overflows():
    """Errors of 1e308 ulps (a naive form far off) average to 1e308, not inf, and without a
    warning; an infinite error among them makes the mean inf."""
    import warnings

    from cesym.verify.contract import Result

    res = Result()
    res.value_ulps += [1e308, 1.5e308, 0.5e308]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = res.summary()["value_ulps"]
        assert s["avg"] == pytest.approx(1e308, rel=1e-15) and s["max"] == 1.5e308
        res.value_ulps.append(float("inf"))
        assert res.summary()["value_ulps"]["avg"] == float("inf")
