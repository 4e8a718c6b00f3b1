"""The batch path of the contract check (:mod:`cesym.verify.truths`): errors in ulps of whole
arrays against double-double references, and the outputs it decides without the point-by-point
check.

References: :func:`cesym.verify.ulps.ulp_error` (exact integer arithmetic on mpmath numbers) for
the errors; the point-by-point check itself (the batch path turned off) for the decisions. The
errors agree to a relative 2^-48 (the module's analysis gives 2^-51: two roundings at 2^-53 and
a reference held to 2^-106); a decision is either the same or the point was handed over.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from cesym.verify import contract, first_tier, truths
from cesym.verify.registry import CASES, label_kinds
from cesym.verify.sampling import sample
from cesym.verify.ulps import bits_error, ulp_error

from conftest import SEED

_P = {np.float32: 24, np.float64: 53}


def _references(rng, dtype, m: int) -> list:
    """Reference values at 160 bits around computed floats: exact floats, a few ulps away,
    just under and over powers of two, in float32's subnormal range, 0."""
    p = _P[dtype]
    out = []
    with mpmath.workprec(160):
        for _ in range(m):
            e = int(rng.integers(-140 if dtype is np.float32 else -960, 120))
            kind = rng.integers(6)
            base = mpmath.ldexp(1, e)
            if kind == 0:  # just below a power of two (the binade below: half the spacing)
                t = base - mpmath.ldexp(rng.uniform(0, 3), e - p - 1)
            elif kind == 1:  # just above one
                t = base + mpmath.ldexp(rng.uniform(0, 3), e - p)
            elif kind == 2:  # a float itself
                t = mpmath.mpf(float(np.asarray(rng.uniform(0.5, 1) * 2.0**e, dtype=dtype)))
            elif kind == 3 and dtype is np.float32:  # float32 subnormals
                t = mpmath.ldexp(rng.uniform(0, 1), -126 - int(rng.integers(0, 20)))
            elif kind == 4:
                t = mpmath.mpf(0)
            else:  # an arbitrary 160-bit number
                t = mpmath.ldexp(mpmath.mpf(int(rng.integers(1, 2**62))) * 2**98 + int(rng.integers(0, 2**62)), e - 160)
            out.append(-t if rng.random() < 0.5 else t)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_errors_agree_with_the_exact_ones(dtype):
    rng = np.random.default_rng(SEED)
    refs = _references(rng, dtype, 3000)
    dd = [truths.double_double(t) for t in refs]
    keep = [i for i, (h, _) in enumerate(dd) if np.isfinite(h)]
    refs = [refs[i] for i in keep]
    hi = np.array([dd[i][0] for i in keep])
    lo = np.array([dd[i][1] for i in keep])
    # computed floats: the nearest and a few spacings either side, and far ones
    near = hi.astype(dtype)
    steps = rng.integers(-6, 7, len(hi))
    computed = near.copy()
    for i, s in enumerate(steps):
        for _ in range(abs(int(s))):
            computed[i] = np.nextafter(computed[i], np.asarray(np.inf if s > 0 else -np.inf, dtype=dtype))
    computed[::17] = (hi[::17] * 3).astype(dtype)
    with np.errstate(over="ignore"):
        got = truths.ulp_errors(computed, hi, lo, dtype)
    bits = truths.bits_errors(computed, hi, dtype)
    for y, t, e, b in zip(computed, refs, got, bits):
        want = ulp_error(y, t, dtype)
        assert e == want or abs(e - want) <= 2.0**-48 * want, (y, t, e, want)
        assert abs(b - bits_error(y, t, dtype)) <= 1e-12 * max(b, 1.0)
    assert np.isinf(truths.ulp_errors(np.array([np.nan, np.inf]), np.ones(2), np.zeros(2), dtype)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bits_of_outputs_at_opposite_ends_of_the_format(dtype):
    """Ordinals of opposite signs lie up to 2^64 apart, past int64: still the scalar count, no NaN."""
    top = float(np.finfo(dtype).max)
    computed = np.array([np.inf, -top, top, 3.0], dtype=dtype)
    true = [-top, top, -top, -3.0]
    with np.errstate(all="raise"):
        got = truths.bits_errors(computed, np.array(true), dtype)
    for y, t, b in zip(computed, true, got):
        assert abs(b - bits_error(y, mpmath.mpf(t), dtype)) <= 1e-12 * b

def test_what_float64_cannot_hold_is_left_out():
    assert np.isnan(truths.double_double(mpmath.mpf("1e-320"))[0])  # subnormal: fewer than 106 bits
    assert np.isnan(truths.double_double(mpmath.ldexp(1, -5000))[0])  # rounds to 0, but is not 0
    assert truths.double_double(mpmath.mpf(0)) == (0.0, 0.0)
    with mpmath.workprec(160):
        third = mpmath.mpf(1) / 3
        hi, lo = truths.double_double(third)
        assert lo != 0 and abs(lo) <= np.spacing(hi) / 2
        assert abs(mpmath.mpf(hi) + lo - third) <= mpmath.ldexp(abs(third), -105)


def _pointwise(monkeypatch):
    monkeypatch.setattr(contract, "_decide_within_base", lambda *a, **k: None)
    # each point asks for its κ alone: let the first tier's later formats take it as the batch
    # path's request would (else the balls' κ, equal only to 2^-8, would differ in the shares)
    call = first_tier._Kappas.__call__
    monkeypatch.setattr(first_tier._Kappas, "__call__", lambda self, key, full, need=None: call(self, key, full, [key[1]] if need is None else need))


def _results(case, batch, kernel=None):
    contract._REFS.clear()
    contract._EXT.clear()
    return contract.check_batch(case, batch, kernel=kernel)


_SOME = ["binary_crossentropy", "categorical_crossentropy", "huber", "poisson", "cosine_similarity", "dice", "log_cosh"]
#: Kernels whose samples hold errors above the constant term with κ the first tier computes.
_BY_KAPPA = ("binary_crossentropy", "poisson", "cosine_similarity")


@pytest.mark.parametrize("kernel", _SOME)
def test_the_batch_path_decides_what_the_points_would(monkeypatch, kernel):
    """Every list of errors (in the points' order: the report plots them against the inputs),
    every failure and unresolved count, and the worst errors with their κ are those of the
    point-by-point check, on every variant, dtype and label kind of the kernels named."""
    by_kappa = []
    real = contract.decide_by_kappa

    def counted(*a, **k):  # how many points the batch's κ decided
        out = real(*a, **k)
        by_kappa.append(int(out[0].sum()))
        return out

    monkeypatch.setattr(contract, "decide_by_kappa", counted)
    for case in [c for c in CASES if c.kernel == kernel]:
        for dtype in (np.float32, np.float64):
            for kind, soft, smooth in label_kinds(case):
                batch = sample(case, dtype, 3, 90, seed=SEED, soft=soft, smoothing=smooth)
                fast = _results(case, batch)
                with monkeypatch.context() as m:
                    _pointwise(m)
                    slow = _results(case, batch)
                for f in ("value_ulps", "grad_ulps", "value_bits", "grad_bits", "value_share", "grad_share"):
                    a, b = np.asarray(getattr(fast, f)), np.asarray(getattr(slow, f))  # in the points' order
                    assert len(a) == len(b) and np.allclose(a, b, rtol=2.0**-48, atol=0), (case.id, kind, f)
                assert [str(x) for x in fast.failures] == [str(x) for x in slow.failures]
                assert fast.unresolved == slow.unresolved
                for w in ("value", "grad"):
                    assert (w in fast.worst) == (w in slow.worst)
                    if w in fast.worst:
                        a, b = fast.worst[w][0], slow.worst[w][0]
                        assert a == b or abs(a - b) <= 2.0**-48 * b
                        da, db = fast.worst[w][1](), slow.worst[w][1]()
                        if da["at"] == db["at"]:  # (ties may name another point) its κ, of that point
                            ka, kb = da["kappa"], db["kappa"]
                            assert ka == kb or abs(ka - kb) <= 2.0**-8 * max(abs(ka), abs(kb)), (case.id, kind, w, da, db)
    if kernel in _BY_KAPPA:  # errors above the constant term decided by the batch's κ (the test can fail)
        assert sum(by_kappa) > 0, kernel


def _handed_over(case, batch, bad=None, steps: int = 5, nan: bool = False):
    """The (row, col) points the exact check saw, and the result, for ``case``'s kernel with the
    value of point ``bad`` moved ``steps`` floats up (or made NaN)."""

    def kernel(labels, pred, params, grad=False):
        out = np.asarray(case.call(labels, pred, params, grad=grad))
        if not grad and bad is not None:
            out = out.copy()
            if nan:
                out[bad] = np.nan
            else:
                out[bad] = out[bad] + steps * np.spacing(out[bad])
        return out

    seen = []
    real = contract._check_point
    contract._REFS.clear()
    try:
        contract._check_point = lambda *a, **k: (seen.append(a[3:5]), real(*a, **k))[1]
        res = contract.check_batch(case, batch, kernel=kernel)
    finally:
        contract._check_point = real
    return set(seen), res


def _exact_path_only(monkeypatch):
    """Make the contract's batch path decide nothing past the constant term (every such point
    to the exact check)."""
    real = contract.decide_by_kappa

    def nothing(*a, **k):
        got = real(*a, **k)
        return (np.zeros_like(got[0]), {}, {}, {})

    monkeypatch.setattr(contract, "decide_by_kappa", nothing)


def _failures(res):
    return [(f.what, f.row, f.stratum, repr(f.kappa), repr(f.computed), str(f.true), f.inputs_text) for f in res.failures], [f.ulps for f in res.failures]


def test_errors_past_the_constant_term_decided_by_the_batchs_kappa(monkeypatch):
    """A kernel 5 ulps off on one point the batch path decided: still decided there, by the
    point's κ (its share of the bound recorded, as the exact check records it); pushed past
    its bound (2^20 ulps, κ below 2^17) or made NaN, still decided there, and failed as the
    exact check fails it: the same failure (output, row, κ, computed and exact numbers, inputs;
    ulps to a relative 2^-48), the same errors, bits and shares."""
    case = next(c for c in CASES if c.kernel == "sigmoid_cross_entropy_with_logits")
    assert case.elementwise
    batch = sample(case, np.float32, 3, 30, seed=SEED)
    before, res0 = _handed_over(case, batch)
    assert len(before) < batch.pred.size / 2 and not res0.failures
    bad = next((r, c) for r in range(batch.pred.shape[0]) for c in range(3) if (r, c) not in before)
    ref = contract.reference_for(contract.definition(case), 1)
    lab, x = batch.labels[bad[0], bad[1] : bad[1] + 1], batch.pred[bad[0], bad[1] : bad[1] + 1]
    tv, tg = ref.value_and_grad(lab, x, [], dtype=np.float32)
    assert ref.kappa_value(lab, x, [], tv, tg) < 2.0**17

    after, res = _handed_over(case, batch, bad)
    assert after == before and not res.failures
    assert len(res.value_ulps) == batch.pred.size and 4 < max(res.value_ulps) <= 6
    assert len(res.value_share) == len(res0.value_share) + 1  # its share of the bound, from its κ

    for kw in ({"steps": 2**20}, {"nan": True}):
        after, res = _handed_over(case, batch, bad, **kw)
        assert after == before, kw  # decided by the batch
        assert len(res.failures) == 1 and res.failures[0].row == bad[0], kw
        with monkeypatch.context() as m:
            _exact_path_only(m)
            after_exact, exact = _handed_over(case, batch, bad, **kw)
        assert bad in after_exact
        (got, ulps), (want, want_ulps) = _failures(res), _failures(exact)
        assert got == want, kw
        assert all(a == b or abs(a - b) <= 2.0**-48 * b for a, b in zip(ulps, want_ulps)), kw
        for part in ("value", "grad"):
            assert getattr(res, part + "_bits") == getattr(exact, part + "_bits"), (kw, part)
            assert len(getattr(res, part + "_share")) == len(getattr(exact, part + "_share")), (kw, part)
            for a, b in zip(getattr(res, part + "_share"), getattr(exact, part + "_share")):
                assert a == b or abs(a - b) <= 2.0**-48 * b, (kw, part)


def _nothing_decided(case, loss, labels, pred, params, value, grad, dtype, rep, tally):
    m = pred.size if case.elementwise else len(pred)
    return np.zeros(m, dtype=np.int8), np.zeros((m, np.asarray(grad).size // m), dtype=np.int8)


def test_classify_decides_what_the_points_would(monkeypatch):
    """Keras's classification with the batch path (:func:`check._batch_statuses`: within the
    constant term, within base + 4κ by the first tier's κ, explained or ambiguous by the replay's
    bound) counts what the judge, point by point, counts; the batch path is run as ``cesym verify``
    runs it, after the contract's check of the same batch (which asks the first tier)."""
    pytest.importorskip("tensorflow")
    from dataclasses import asdict

    from cesym.keras import check
    from cesym.keras.calls import keras_kernel

    decided = {1: 0, 2: 0, 3: 0}
    batch_statuses = check._batch_statuses

    def counted(*a):
        v, g = batch_statuses(*a)
        for s in decided:
            decided[s] += int(np.count_nonzero(v == s) + np.count_nonzero(g == s))
        return v, g

    monkeypatch.setattr(check, "_batch_statuses", counted)
    for kernel in ("binary_crossentropy", "kl_divergence", "huber", "binary_focal_crossentropy", "categorical_focal_crossentropy", "log_cosh"):
        for case in [c for c in CASES if c.kernel == kernel][-2:]:
            for dtype in (np.float32, np.float64):
                kind, soft, smooth = label_kinds(case)[-1]
                batch = sample(case, dtype, 3, 40, seed=SEED, soft=soft, smoothing=smooth)
                contract._REFS.clear()
                contract.check_batch(case, batch)
                fast = asdict(check.classify(case, batch, keras_kernel(case)))
                with monkeypatch.context() as m:
                    m.setattr(check, "_batch_statuses", _nothing_decided)
                    contract._REFS.clear()
                    contract.check_batch(case, batch)
                    slow = asdict(check.classify(case, batch, keras_kernel(case)))
                for k in fast:
                    if k.endswith("max_ulps"):
                        assert fast[k] == slow[k] or abs(fast[k] - slow[k]) <= 2.0**-48 * slow[k], (case.id, k)
                    elif k.endswith("_worst"):
                        assert fast[k]["status"] == slow[k]["status"]
                        assert fast[k]["ulps"] == slow[k]["ulps"] or abs(fast[k]["ulps"] - slow[k]["ulps"]) <= 2.0**-48 * slow[k]["ulps"]
                    else:
                        assert fast[k] == slow[k], (case.id, k)
    assert all(decided.values()), decided  # each status, somewhere, decided by the batch
