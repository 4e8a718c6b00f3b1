"""Issue 9, item 3: memory and speed must not depend on the shape.

Empty batches give empty outputs; elementwise kernels are blocked over the flat data (a 1-D
input is not one float64 block); a class axis that is not last is read block by block from the
strided array (no whole copy); rows longer than a block are computed in pieces (see
``cesym/kernels/_pieces.py``) within the accuracy contract and with the same bytes on any
number of threads.
"""

import gc
import tracemalloc

import numpy as np
import pytest

from cesym import kernels
from cesym.kernels import _blocks
from cesym.verify.registry import CASES

from conftest import SEED, contract_variants, pred_from


def _call(case, suffix, labels, pred, **kw):
    fn = getattr(kernels, case.kernel + suffix)
    args = dict(case.call_kw, **kw)
    if case.nn_keywords:
        return fn(labels=labels, logits=pred, **args)
    if case.labels == "none":
        return fn(pred, **args)
    return fn(labels, pred, **args)


def _empty_inputs(case, shape, dtype):
    pred = np.zeros(shape, dtype=dtype)
    if case.labels == "sparse":
        return np.zeros(shape[:-1], dtype=np.int64), pred
    if case.labels == "dense":
        return np.zeros(shape, dtype=dtype), pred
    return None, pred


@pytest.mark.parametrize("case", [c for c in CASES if c.kernel != "activity_penalty"], ids=lambda c: c.id)
@pytest.mark.parametrize("shape", [(0, 4), (3, 0, 4), (0, 2, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_batches_give_empty_outputs(case, shape, dtype):
    labels, pred = _empty_inputs(case, shape, dtype)
    v, g = _call(case, "_value_and_grad", labels, pred)
    want = shape if case.elementwise else shape[:-1]
    assert v.shape == want and v.dtype == dtype
    assert g.shape == shape and g.dtype == dtype
    assert _call(case, "", labels, pred).shape == want
    assert _call(case, "_grad", labels, pred).shape == shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_elementwise_input_of_any_rank(dtype):
    """TensorFlow returns [] for empty labels/logits; NumPy's reshape error must not leak out."""
    for shape in [(0,), (5, 0), (0, 3, 0)]:
        z = np.zeros(shape, dtype=dtype)
        out = kernels.sigmoid_cross_entropy_with_logits(labels=z, logits=z)
        assert out.shape == shape and out.dtype == dtype
        v, g = kernels.sigmoid_cross_entropy_with_logits_value_and_grad(labels=z, logits=z)
        assert v.shape == g.shape == shape


def test_empty_axes_other_than_the_class_axis():
    """Keras axis=0 with an empty trailing axis: no rows; an empty class axis stays an error."""
    p = np.zeros((4, 0), dtype=np.float32)
    v, g = kernels.categorical_crossentropy_value_and_grad(p, p, axis=0)
    assert v.shape == (0,) and g.shape == (4, 0)
    with pytest.raises(ValueError, match="class axis"):
        kernels.binary_crossentropy(p, p)
    # the penalty over samples with no features: Σh² = 0, gradient empty
    v, g = kernels.activity_penalty_value_and_grad(np.zeros((3, 0, 2), dtype=np.float32))
    assert v == 0 and v.dtype == np.float32 and g.shape == (3, 0, 2)


def _scratch(fn):
    """Peak bytes a call allocates beyond its outputs (tracemalloc sees NumPy's buffers)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    outs = out if isinstance(out, tuple) else (out,)
    return peak - sum(o.nbytes for o in outs)


@pytest.fixture
def restore_blocks():
    size = _blocks.BLOCK_ELEMENTS
    yield
    _blocks.BLOCK_ELEMENTS = size
    _blocks.set_num_threads(None)


def test_elementwise_1d_is_blocked(restore_blocks):
    """A 1-D input is cut into blocks like any other: scratch memory below the input's size
    (as one block it took 6 float64 copies of it: 12x a float32 input). Blocks of 2^14 doubles,
    so that a few blocks per thread are small against the 4 MB input, as 2^17 are against a
    large one."""
    _blocks.set_num_threads(2)
    _blocks.BLOCK_ELEMENTS = 1 << 14
    n = 1 << 20
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal(n).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    fn = lambda: kernels.sigmoid_cross_entropy_with_logits_value_and_grad(labels=y, logits=x)  # noqa: E731
    assert _scratch(fn) <= x.nbytes
    # and the same bytes as the same data laid out as rows, or transposed
    v, g = fn()
    v2, g2 = kernels.sigmoid_cross_entropy_with_logits_value_and_grad(labels=y.reshape(-1, 16), logits=x.reshape(-1, 16))
    assert v.tobytes() == v2.tobytes() and g.tobytes() == g2.tobytes()
    xt, yt = x.reshape(16, -1).T, y.reshape(16, -1).T  # a strided layout: gathered block by block
    v3, g3 = kernels.sigmoid_cross_entropy_with_logits_value_and_grad(labels=yt, logits=xt)
    assert v3.shape == xt.shape and np.array_equal(v3, v.reshape(16, -1).T) and np.array_equal(g3, g.reshape(16, -1).T)


@pytest.mark.parametrize("axis", [0, 1])
def test_class_axis_not_last_is_not_copied(axis, restore_blocks):
    """Rank 3, classes on axis 0 or 1: blocks are gathered from the strided input; no whole
    copy of labels and logits (2x the input on main), and the same bytes as the moved copy."""
    _blocks.set_num_threads(2)
    _blocks.BLOCK_ELEMENTS = 1 << 13
    rng = np.random.default_rng(SEED)
    shape = [256, 256, 512]
    shape[axis] = 10
    z = (rng.standard_normal(shape) * 3).astype(np.float32)
    y = np.moveaxis(np.eye(10, dtype=np.float32)[rng.integers(0, 10, np.prod(shape) // 10)].reshape(
        [s for i, s in enumerate(shape) if i != axis] + [10]), -1, axis).copy()
    fn = lambda: kernels.categorical_crossentropy_value_and_grad(y, z, from_logits=True, axis=axis)  # noqa: E731
    assert _scratch(fn) <= z.nbytes
    v, g = fn()
    v2, g2 = kernels.categorical_crossentropy_value_and_grad(
        np.ascontiguousarray(np.moveaxis(y, axis, -1)), np.ascontiguousarray(np.moveaxis(z, axis, -1)), from_logits=True
    )
    assert v.tobytes() == v2.tobytes() and np.moveaxis(g, axis, -1).tobytes() == g2.tobytes()


# --- rows longer than a block: in pieces -------------------------------------------------------


@pytest.mark.parametrize("case,dtype,soft,smooth", list(contract_variants()))
def test_long_rows_in_pieces_keep_the_contract(case, dtype, soft, smooth, restore_blocks):
    """Blocks of 4 doubles: rows of 5 and 8 classes are computed in pieces of 2 + 3 and 4 + 4
    elements (the same mechanism as a 2^20-class row in pieces of 2^17), on the contract's
    stratified samples (dominant classes, ties, logits to ±3e4, soft and smoothed labels): value
    <= 4 + 4κ ulps, gradient elements <= 8 + 4κ (float32: 1 + 4κ), against the interval
    reference. Row lengths of ``cesym verify``'s (5 and 8) have their reference's forms shipped
    (:mod:`cesym.verify.prederived`): a length of its own cost this test 15 s of ``sympy.diff``
    on an empty cache. Rows of more pieces: the tests below (rows of 53 in pieces of 16 on any
    number of threads; vocabularies of 5000 in about ten pieces against their whole rows)."""
    from cesym.verify.contract import check_batch
    from cesym.verify.sampling import sample

    _blocks.BLOCK_ELEMENTS = 4
    _blocks.set_num_threads(2)
    sizes = (16, 24) if case.kernel == "activity_penalty" else (5, 8)
    failures, unresolved, points = [], 0, 0
    for n in sizes:
        batch = sample(case, dtype, n, 40, seed=SEED, soft=soft, smoothing=smooth)
        bases = {"value_base": 1.0, "grad_base": 1.0} if dtype == np.float32 else {}
        res = check_batch(case, batch, **bases)
        failures += res.failures
        unresolved += res.unresolved
        points += len(res.value_ulps)
    assert points > 0 and unresolved == 0
    assert not failures, f"{len(failures)} point(s) outside the contract:\n" + "\n".join(map(str, failures[:10]))


def _long_inputs(case, dtype, rows, n, seed=SEED):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows, n)) * rng.choice([0.1, 3.0, 300.0], size=(rows, 1))
    pred = pred_from(case, z)
    pred = pred.astype(dtype)
    if case.labels == "sparse":
        labels = rng.integers(0, n, rows)
    elif case.labels == "dense":
        labels = np.zeros((rows, n), dtype=dtype)
        labels[np.arange(rows), rng.integers(0, n, rows)] = 1  # hard rows
        labels[rows // 2 :] = rng.random((rows - rows // 2, n))  # and soft ones
    else:
        labels = None
    return labels, pred


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_rows_same_bytes_for_any_threads(case, dtype, restore_blocks):
    """Pieces of 16 of rows of 53 (uneven pieces): the same bytes on 1, 2 and 3 threads, and
    value_and_grad equal to the value and the gradient computed alone."""
    labels, pred = _long_inputs(case, dtype, 12, 53)
    _blocks.BLOCK_ELEMENTS = 16
    results = []
    for threads in (1, 2, 3):
        _blocks.set_num_threads(threads)
        results.append(_call(case, "_value_and_grad", labels, pred))
    for v, g in results[1:]:
        assert v.tobytes() == results[0][0].tobytes() and g.tobytes() == results[0][1].tobytes()
    v, g = results[0]
    np.testing.assert_array_equal(_call(case, "", labels, pred), v)
    np.testing.assert_array_equal(_call(case, "_grad", labels, pred), g)


def _kappa_value(labels_dense, z, value, grad):
    """κ of a softmax cross-entropy value: (Σ|z_i ∂f/∂z_i| + Σ|t_i ∂f/∂t_i|)/|f| (∂f/∂t_i = -log softmax_i)."""
    z = z.astype(np.float64)
    lse = np.log(np.sum(np.exp(z - z.max(-1, keepdims=True)), -1, keepdims=True)) + z.max(-1, keepdims=True)
    return (np.sum(np.abs(z * grad), -1) + np.sum(np.abs(labels_dense * (lse - z)), -1)) / np.abs(value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vocabulary_rows_in_pieces_match_the_whole_row(dtype, restore_blocks):
    """Softmax cross-entropies over rows of 5000 classes in pieces of about 512 (blocks of 2^9)
    against the same rows as single blocks: both are within 4 + 4κ ulps of the truth, so they
    differ by at most twice that (values; κ from the gradient)."""
    rng = np.random.default_rng(SEED)
    C, R = 5000, 6
    z = (rng.standard_normal((R, C)) * rng.choice([0.1, 3.0, 30.0], size=(R, 1))).astype(dtype)
    k = rng.integers(0, C, R)
    y = np.zeros((R, C), dtype=dtype)
    y[np.arange(R), k] = 1
    calls = [
        (y, lambda: kernels.categorical_crossentropy_value_and_grad(y, z, from_logits=True)),
        (y, lambda: kernels.sparse_categorical_crossentropy_value_and_grad(k, z, from_logits=True)),
        (y, lambda: kernels.softmax_cross_entropy_with_logits_value_and_grad(labels=y, logits=z)),
        (y, lambda: kernels.sparse_softmax_cross_entropy_with_logits_value_and_grad(labels=k, logits=z)),
    ]
    for labels, call in calls:
        whole = call()
        _blocks.BLOCK_ELEMENTS = 1 << 9
        pieces = call()
        _blocks.BLOCK_ELEMENTS = 1 << 17
        v0, v1 = whole[0].astype(np.float64), pieces[0].astype(np.float64)
        kappa = _kappa_value(labels.astype(np.float64), z, v0, whole[1].astype(np.float64))
        ulp = np.spacing(np.abs(whole[0])).astype(np.float64)
        assert np.all(np.abs(v1 - v0) <= 2 * (4 + 4 * kappa) * ulp)
        # hard labels: every gradient element is softmax_j or softmax_k - 1, without cancellation
        g0, g1 = whole[1].astype(np.float64), pieces[1].astype(np.float64)
        assert np.all(np.abs(g1 - g0) <= 2 * 8 * np.spacing(np.abs(whole[1])).astype(np.float64) + 1e-300)


@pytest.mark.parametrize(
    "name,call",
    [
        ("cce", lambda y, z, k: kernels.categorical_crossentropy_value_and_grad(y, z, from_logits=True)),
        ("scce", lambda y, z, k: kernels.sparse_categorical_crossentropy_value_and_grad(k, z, from_logits=True)),
        ("bce", lambda y, z, k: kernels.binary_crossentropy_value_and_grad(y, z, from_logits=True)),
        ("penalty", lambda y, z, k: kernels.activity_penalty_value_and_grad(z[:1])),
    ],
)
def test_long_rows_scratch_memory_below_the_input(name, call, restore_blocks):
    """Rows of 2^15 classes, blocks of 2^10: a few pieces of scratch, not float64 rows (on main a
    row longer than a block was one block: 8x a float32 row per temporary)."""
    _blocks.set_num_threads(2)
    _blocks.BLOCK_ELEMENTS = 1 << 10
    rng = np.random.default_rng(SEED)
    R, C = 8, 1 << 15
    z = (rng.standard_normal((R, C)) * 3).astype(np.float32)
    k = rng.integers(0, C, R)
    y = np.zeros((R, C), dtype=np.float32)
    y[np.arange(R), k] = 1
    pred = z[:1] if name == "penalty" else z
    assert _scratch(lambda: call(y, z, k)) <= pred.nbytes


def test_smoothed_labels_over_a_vocabulary_stay_in_memory(restore_blocks):
    """Label smoothing over a vocabulary flags many gradient elements whose numerator
    T·e_j - t_j·E cancels (softmax_j near ls/C). Their recomputation against the k = T/t_j
    nearest classes cannot help there (T/t_j = C/ls > C: no k classes to pair with), yet it ran
    for each of them with an (elements × C) array (2 × 3e5 classes asked for tens of GiB) and
    sent long rows back to be evaluated whole. Now such elements keep the first form: rows of
    2^15 classes in blocks of 2^10 stay in pieces (scratch below the input), and the gradient
    still sums to 0 per row within the rounding of C terms (no reference needed)."""
    _blocks.set_num_threads(2)
    _blocks.BLOCK_ELEMENTS = 1 << 10
    rng = np.random.default_rng(SEED)
    R, C = 4, 1 << 15
    z = rng.standard_normal((R, C)).astype(np.float32)  # softmax_j near ls/C for a share of them: flagged
    y = np.zeros((R, C), dtype=np.float32)
    y[np.arange(R), rng.integers(0, C, R)] = 1
    call = lambda: kernels.categorical_crossentropy_value_and_grad(y, z, from_logits=True, label_smoothing=0.1)
    v, g = call()  # the first call of a process also allocates what stays (lazy imports, caches)
    assert _scratch(call) <= z.nbytes
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
    assert np.all(np.abs(g.astype(np.float64).sum(-1)) <= C * np.spacing(np.float32(1)))


def test_one_dimensional_bce_is_one_long_row(restore_blocks):
    """binary_crossentropy of a 1-D input is the mean over one row of 2^20: in pieces (scratch
    below the input), and within the contract's bound of the exact mean (κ = 1 for these terms,
    all positive: the pairwise sum's error does not grow with C)."""
    _blocks.set_num_threads(2)
    _blocks.BLOCK_ELEMENTS = 1 << 14
    rng = np.random.default_rng(SEED)
    n = 1 << 20
    x = rng.standard_normal(n).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    assert _scratch(lambda: kernels.binary_crossentropy_value_and_grad(y, x, from_logits=True)) <= x.nbytes
    v = kernels.binary_crossentropy(y.astype(np.float64), x.astype(np.float64), from_logits=True)
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    terms = np.where(yd == 1, np.logaddexp(0, -xd), np.logaddexp(0, xd))  # each within an ulp or two
    import math

    exact = math.fsum(terms.tolist()) / n  # the sum of the (rounded) terms, exactly rounded
    # terms each carry <= 2 ulps (logaddexp), their exact sum then <= 2 ulps of it: within 4 + 4κ
    assert abs(float(v) - exact) <= 6 * np.spacing(exact)


def test_masked_pieces_and_nan_in_long_rows(restore_blocks):
    """A vocabulary with a masked (-inf) region as long as pieces, and a NaN in one row: the
    online log-sum-exp gives a masked piece 0 (not NaN), and the NaN row is NaN, as for the
    whole row."""
    rng = np.random.default_rng(SEED)
    z = rng.standard_normal((3, 64))
    z[:, :32] = -np.inf  # two whole pieces of 16 masked
    z[2, 40] = np.nan
    k = np.array([40, 50, 33])
    whole = kernels.sparse_categorical_crossentropy_value_and_grad(k, z, from_logits=True)
    _blocks.BLOCK_ELEMENTS = 16
    pieces = kernels.sparse_categorical_crossentropy_value_and_grad(k, z, from_logits=True)
    assert np.all(np.isfinite(pieces[0][:2])) and np.isnan(pieces[0][2])
    assert np.all(np.isnan(pieces[1][2])) and np.all(pieces[1][:2, :32] == 0)
    np.testing.assert_allclose(pieces[0][:2], whole[0][:2], rtol=8 * 2.0**-52)
    np.testing.assert_allclose(pieces[1][:2], whole[1][:2], rtol=16 * 2.0**-52, atol=1e-300)


def test_bad_input_in_long_rows_raises(restore_blocks):
    """The input checks see a row in pieces: a row of zero probabilities (its sum is a reduction
    over the pieces) and a probability above 1 in one piece."""
    _blocks.BLOCK_ELEMENTS = 16
    p = np.full((3, 50), 0.02)
    p[1] = 0
    y = np.zeros((3, 50))
    y[:, 3] = 1
    with pytest.raises(ValueError, match="sums to 0"):
        kernels.categorical_crossentropy(y, p)
    with pytest.raises(ValueError, match="sums to 0"):
        kernels.sparse_categorical_crossentropy_grad(np.array([3, 3, 3]), p)
    q = np.full((3, 50), 0.5)
    q[2, 47] = 1.5
    with pytest.raises(ValueError, match=r"expected probabilities in \[0, 1\]"):
        kernels.binary_crossentropy(y, q)


@pytest.mark.parametrize(
    "fill",
    [
        "in_range_pieces_overflowing_total",  # every piece's Σh² finite, the row's past 1.8e308
        "one_huge_piece",
        "one_tiny_piece",  # the others ordinary: the plain sums
        "all_tiny",  # squares in the subnormals throughout
        "huge_and_tiny",
        "zeros_and_tiny",
        "inf",
        "nan",
        "ordinary",
    ],
)
def test_penalty_long_rows_in_pieces_at_the_ends_of_the_range(fill, restore_blocks):
    """Blocks of 4 doubles: a penalty row of 32 elements in pieces of 4, each piece giving its
    plain or scaled Σh² and the pieces combined by sum_squares' rule. Value within the contract's
    4 + 4κ ulps (κ = 2) of λ/N·Σh² in 300-bit arithmetic (inf and NaN where the row holds them),
    the same bytes as the whole row where no piece needs scaling, and on 1 and 2 threads."""
    import mpmath

    from cesym.verify.ulps import ulp_error

    rng = np.random.default_rng(SEED)
    h = rng.standard_normal((2, 16))
    if fill == "in_range_pieces_overflowing_total":
        h = 5e153 * (1 + 0.05 * h)  # pieces of 4: Σh² about 1e308 each
    elif fill == "one_huge_piece":
        h[0, 4:8] *= 1e154
    elif fill == "one_tiny_piece":
        h[1, 0:4] *= 1e-160
    elif fill == "all_tiny":
        h *= 1e-158
    elif fill == "huge_and_tiny":
        h[0] *= 3e154
        h[1] *= 1e-170
    elif fill == "zeros_and_tiny":
        h[:] = 0.0
        h[1, 9] = 1e-160
    elif fill == "inf":
        h[1, 3] = -np.inf
    elif fill == "nan":
        h[0, 2] = np.nan
    lam = 1e6 if fill in ("one_tiny_piece", "all_tiny", "zeros_and_tiny") else 1e-3 if "huge" in fill or "overflowing" in fill else 0.1
    whole = kernels.activity_penalty(h, lam)
    _blocks.BLOCK_ELEMENTS = 4
    outs = []
    for threads in (1, 2):
        _blocks.set_num_threads(threads)
        v, g = kernels.activity_penalty_value_and_grad(h, lam)
        outs.append((v, g, kernels.activity_penalty(h, lam)))
    (v, g, v2), (v_, g_, v2_) = outs
    assert v.tobytes() == v2.tobytes() == v_.tobytes() == v2_.tobytes() and g.tobytes() == g_.tobytes()
    if fill == "inf":
        assert v == np.inf
    elif fill == "nan":
        assert np.isnan(v)
    else:
        with mpmath.workprec(300):
            exact = mpmath.mpf(lam) / 2 * mpmath.fsum(mpmath.mpf(x) ** 2 for x in h.ravel())
        assert ulp_error(float(v), exact, np.float64) <= 12, (float(v), exact)
        assert ulp_error(float(whole), exact, np.float64) <= 12, (float(whole), exact)
    if fill == "ordinary":  # no scaling: the pairwise sum of the pieces' plain sums
        from cesym.kernels import _runtime as rt

        pieces = [rt._row_sum(h.reshape(1, -1)[:, i : i + 4] ** 2) for i in range(0, 32, 4)]
        assert v.tobytes() == np.float64(lam / 2 * rt._sum_parts(pieces)[0, 0]).tobytes()
