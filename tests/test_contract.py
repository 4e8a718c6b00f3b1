"""The accuracy contract of every kernel, dtype and label kind, against the interval reference.

value <= 4 + 4κ ulps and every gradient element <= 8 + 4κ ulps (cesym.contract), no NaN or inf
where the true value is finite, and every reference value pinned by its interval (0 unresolved).
"""

import numpy as np
import pytest

from cesym.contract import check_batch
from cesym.registry import CASES, label_kinds
from cesym.sampling import sample, sample_extended

from conftest import SEED

ROWS = 120  # per row length; stratified over PRED_STRATA / PROB_STRATA (6 strata)
SIZES = (1, 2, 3, 5, 8)


def _variants():
    for case in CASES:
        for dtype in (np.float32, np.float64):
            for name, soft, smooth in label_kinds(case):
                yield pytest.param(case, dtype, soft, smooth, id=f"{case.id}-{np.dtype(dtype).name}-{name}")


@pytest.mark.parametrize("case,dtype,soft,smooth", list(_variants()))
def test_contract(case, dtype, soft, smooth):
    sizes = (4, 16) if case.kernel == "activity_penalty" else SIZES
    failures, unresolved, points = [], 0, 0
    for n in sizes:
        batch = sample(case, dtype, n, ROWS, seed=SEED, soft=soft, smoothing=smooth)
        # float32 kernels compute in float64: the expectation is <= 1 ulp + 4κ (value and gradient)
        bases = {"value_base": 1.0, "grad_base": 1.0} if dtype == np.float32 else {}
        res = check_batch(case, batch, **bases)
        failures += res.failures
        unresolved += res.unresolved
        points += len(res.value_ulps)
    assert points > 0
    assert unresolved == 0, f"{unresolved} reference values not pinned by their intervals"
    assert not failures, f"{len(failures)} point(s) outside the contract:\n" + "\n".join(map(str, failures[:10]))


EXT_ROWS = 28  # per row length; stratified over cesym.sampling.EXTENDED_STRATA


@pytest.mark.parametrize("case,dtype,soft,smooth", list(_variants()))
def test_contract_extended_reals(case, dtype, soft, smooth):
    """±inf logits, +inf and 0 probabilities (0 and 1 for binary cross-entropy), ±inf
    activations and NaN: every output is the limit of the mathematics (within the contract
    where finite, the same infinity, NaN exactly where there is none), against the interval
    definition evaluated along rays to infinity (cesym.extended)."""
    sizes = (4, 16) if case.kernel == "activity_penalty" else SIZES
    failures, unresolved, points = [], 0, 0
    for n in sizes:
        batch = sample_extended(case, dtype, n, EXT_ROWS, seed=SEED, soft=soft, smoothing=smooth)
        bases = {"value_base": 1.0, "grad_base": 1.0} if dtype == np.float32 else {}
        res = check_batch(case, batch, **bases)
        failures += res.failures
        unresolved += res.unresolved
        points += len(res.value_ulps)
    assert points > 0
    assert unresolved == 0, f"{unresolved} limits not pinned by their intervals"
    assert not failures, f"{len(failures)} point(s) off their limits:\n" + "\n".join(map(str, failures[:10]))
