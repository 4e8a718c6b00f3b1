"""-0 is the edge 0 of a domain that starts there (probabilities, rates): its outputs are those of
+0, bit for bit and sign of infinity included (1/p at -0 is -inf where the limit from inside the
domain is +inf: found by the exhaustive float32 run of binary cross-entropy from probabilities,
whose gradient at p = -0, label 1, was +inf). Checked for every shipped kernel whose predictions
start at 0, in blocks and in rows long enough to go in pieces."""

import numpy as np
import pytest

from cesym.kernels import _blocks
from cesym.verify.registry import CASES

ZERO_EDGE = [c for c in CASES if c.domain in ("unit", "simplex", "positive")]


def _inputs(case, n: int, dtype):
    rng = np.random.default_rng(7)
    C = 1 if case.label_kind == "binary" else 3
    C = n if n > 3 else C
    if case.domain == "simplex":
        p = rng.dirichlet(np.ones(C), size=2)
    else:
        p = rng.uniform(0.05, 0.95, (2, C))
    p[:, 0] = 0.0  # the edge, in every row
    if case.label_kind == "index":
        labels = np.zeros((2,), dtype=np.int64)
    elif case.label_kind == "count":
        labels = rng.uniform(0.5, 2.0, (2, C))
    else:
        labels = np.zeros((2, C))
        labels[:, 0] = 1.0  # the label that makes the edge a pole
    return labels.astype(dtype) if labels.dtype.kind == "f" else labels, p.astype(dtype)


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _all_outputs(case, labels, p):
    out = [case.call(labels, p, {}), case.call(labels, p, {}, grad=True)]
    both = case.call(labels, p, {}, grad="both")
    return out + list(both)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ZERO_EDGE, ids=lambda c: c.id)
def test_negative_zero_is_the_edge(case, dtype):
    labels, p = _inputs(case, 3, dtype)
    neg = p.copy()
    neg[:, 0] = -0.0
    assert np.signbit(neg[:, 0]).all()
    with np.errstate(all="ignore"):
        for a, b in zip(_all_outputs(case, labels, p), _all_outputs(case, labels, neg)):
            assert _same(a, b), (case.id, a, b)


@pytest.mark.parametrize("case", [c for c in ZERO_EDGE if c.label_kind != "binary" and c.domain != "simplex"][:2] +
                         [c for c in ZERO_EDGE if c.domain == "simplex"][:1], ids=lambda c: c.id)
def test_negative_zero_in_a_long_row(case):
    """Rows longer than a block go in pieces; a -0 there is the edge too."""
    size = _blocks.BLOCK_ELEMENTS
    _blocks.BLOCK_ELEMENTS = 64
    try:
        labels, p = _inputs(case, 200, np.float64)
        neg = p.copy()
        neg[:, 0] = -0.0
        with np.errstate(all="ignore"):
            for a, b in zip(_all_outputs(case, labels, p), _all_outputs(case, labels, neg)):
                assert _same(a, b), (case.id, a, b)
    finally:
        _blocks.BLOCK_ELEMENTS = size


def test_the_references_first_tier_gives_negative_zero_the_intervals_of_positive_zero():
    """The reference memoises (and the truths cache keeps) its numbers by inputs as floats, where
    -0.0 == 0.0: sound because mpmath and Arb have one zero, and because the first tier's float64
    intervals, which carry IEEE signed zeros, give both the same ends. Checked at every shipped
    kernel's sampled points with a third of the labels and predictions set to ±0."""
    from cesym.verify import first_tier
    from cesym.verify.contract import definition, reference_for
    from cesym.verify.sampling import sample

    rng = np.random.default_rng(11)
    compared = 0
    for case in CASES:
        loss = definition(case)
        n = 1 if case.elementwise else 3
        ref = reference_for(loss, n)
        b = sample(case, np.float64, 3, 60, seed=5)
        pred = b.pred[:, :n]
        labels = np.eye(n)[b.labels] if case.labels == "sparse" else (None if b.labels is None else b.labels[:, :n])
        params = [b.params[p.name] for p in loss.params]
        cols = ([labels] if ref.label_syms else []) + [pred]
        pts = np.concatenate(cols + [np.tile(params, (len(pred), 1))], axis=1)
        zero = rng.random(pts.shape) < 0.3
        zero[:, pts.shape[1] - len(params) :] = False
        pos = first_tier._evaluate(ref, "main", np.where(zero, 0.0, pts), np.float64)
        neg = first_tier._evaluate(ref, "main", np.where(zero, -0.0, pts), np.float64)
        assert (pos is None) == (neg is None), case.id
        compared += pos is not None
        for a, c in zip(pos or (), neg or ()):
            for x, y in ((a.lo, c.lo), (a.hi, c.hi)):
                np.testing.assert_array_equal(x, y, err_msg=case.id)  # (NaN equals NaN here)
    assert compared >= len(CASES) - 2  # the first tier has a form for (nearly) every kernel
