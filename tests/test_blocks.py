"""Blocked, threaded evaluation: the same bytes whatever the blocks and threads, and the fused
``<name>_value_and_grad`` equal to the separate value and gradient."""

import numpy as np
import pytest

from cesym import kernels
from cesym.kernels import _blocks
from cesym.verify.registry import CASES

from conftest import SEED, pred_from


def _inputs(case, dtype, rows=2000, n=7, axis=-1, seed=SEED):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows, n)) * rng.choice([0.1, 3.0, 300.0], size=(rows, 1))
    pred = pred_from(case, z)
    pred = pred.astype(dtype)
    if case.labels == "sparse":
        labels = rng.integers(0, n, rows)
    elif case.labels == "dense":
        labels = (rng.random((rows, n)) < 0.3).astype(dtype)
        labels[: rows // 2] = rng.random((rows // 2, n))  # soft rows too
    else:
        labels = None
    if axis != -1 and case.has_axis:
        pred, labels = np.moveaxis(pred, -1, axis), np.moveaxis(labels, -1, axis)
    return labels, pred


def _call(case, fn_suffix, labels, pred, **kw):
    fn = getattr(kernels, case.kernel + fn_suffix)
    args = dict(case.call_kw)
    args.update(kw)
    if case.nn_keywords:
        return fn(labels=labels, logits=pred, **args)
    if case.labels == "none":
        return fn(pred, **args)
    return fn(labels, pred, **args)


@pytest.fixture
def restore_blocks():
    size = _blocks.BLOCK_ELEMENTS
    yield
    _blocks.BLOCK_ELEMENTS = size
    _blocks.set_num_threads(None)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bytes_for_any_blocks_and_threads(case, dtype, restore_blocks):
    """Rows no longer than a block (the penalty lays its 2000 samples of 7 out 16 to a row of
    112): the bytes do not depend on the blocks or the threads. (Longer rows go in pieces, whose
    sums are ordered by the pieces: tests/test_shapes.py checks those for any threads.)"""
    labels, pred = _inputs(case, dtype)
    results = []
    for threads, block in [(1, 1 << 20), (1, 128), (2, 256), (3, 1000)]:
        _blocks.set_num_threads(threads)
        _blocks.BLOCK_ELEMENTS = block
        results.append(_call(case, "_value_and_grad", labels, pred))
    for v, g in results[1:]:
        assert v.tobytes() == results[0][0].tobytes() and g.tobytes() == results[0][1].tobytes()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_value_and_grad_is_value_and_grad(case, dtype):
    axis = 0 if case.has_axis else -1
    labels, pred = _inputs(case, dtype, axis=axis)
    kw = {"axis": axis} if axis != -1 else {}
    v, g = _call(case, "_value_and_grad", labels, pred, **kw)
    v1 = _call(case, "", labels, pred, **kw)
    g1 = _call(case, "_grad", labels, pred, **kw)
    assert v.dtype == v1.dtype == dtype and g.dtype == g1.dtype == dtype and g.shape == pred.shape
    np.testing.assert_array_equal(v, v1)
    np.testing.assert_array_equal(g, g1)


def test_num_threads_arguments(monkeypatch, restore_blocks):
    with pytest.raises(ValueError, match="n: expected a positive integer"):
        kernels.set_num_threads(0)
    kernels.set_num_threads(3)
    assert kernels.num_threads() == 3
    kernels.set_num_threads(None)
    monkeypatch.setenv("CESYM_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="CESYM_NUM_THREADS"):
        kernels.num_threads()
    monkeypatch.setenv("CESYM_NUM_THREADS", "2")
    assert kernels.num_threads() == 2


def test_bad_input_in_a_later_block_raises(restore_blocks):
    """A row of zeros far into the batch still raises (the check runs where results are not finite)."""
    _blocks.BLOCK_ELEMENTS = 64
    p = np.full((500, 4), 0.25, dtype=np.float32)
    p[437] = 0
    y = np.eye(4, dtype=np.float32)[np.arange(500) % 4]
    with pytest.raises(ValueError, match="sums to 0"):
        kernels.categorical_crossentropy(y, p)
    with pytest.raises(ValueError, match="sums to 0"):
        kernels.sparse_categorical_crossentropy_value_and_grad(np.arange(500) % 4, p)


def test_naive_forms_compute_in_the_inputs_dtype():
    """The naive forms are what a plain implementation in the inputs' dtype computes: float32 in
    float32 arithmetic (the stable kernels compute in float64 and round once)."""
    from cesym.kernels import naive

    one, logit = np.array([[1.0]]), np.array([[-100.0]])
    with np.errstate(all="ignore"):
        assert np.isinf(naive.binary_crossentropy(one.astype(np.float32), logit.astype(np.float32), from_logits=True)[0])
        assert naive.binary_crossentropy(one, logit, from_logits=True)[0] == pytest.approx(100.0, rel=1e-15)
        # log(1 - 1e-8) is 0 in float32: the naive loss of a label 0 at p = 1e-8
        assert naive.binary_crossentropy(np.zeros((1, 1), np.float32), np.full((1, 1), 1e-8, np.float32))[0] == 0.0
        # class indices become float32 one-hot rows; exp(100) overflows float32
        z = np.array([[100.0, -100.0]], np.float32)
        assert np.isinf(naive.sparse_categorical_crossentropy(np.array([0]), z, from_logits=True)[0])
        assert naive.sparse_categorical_crossentropy(np.array([0]), z.astype(np.float64), from_logits=True)[0] == 0.0
        assert kernels.sparse_categorical_crossentropy(np.array([0]), z, from_logits=True)[0] == 0.0


def test_block_range_reads_the_float32_rows_once_and_forgets_them():
    """The domain check and the rounding box share one (min, max) per block, read from the float32
    rows the block was widened from (the same numbers); nothing of the caller's arrays is kept."""
    from cesym.kernels import _blocks as B

    seen = []

    def core(block):
        lo, hi = B.block_range(block)
        assert np.array_equal([lo, hi], [block.min(), block.max()], equal_nan=True)
        assert B._current.ranges[id(block)] == (lo, hi) or np.isnan(lo)  # remembered for the block
        seen.append((lo, hi))
        return block

    x = np.random.default_rng(0).random((1000, 10)).astype(np.float32)
    x[500, 3] = np.nan
    out = B.run_blocks(core, [x], (), 1000, 10, [("elem", np.float32)], block_elements=2000)[0]
    assert len(seen) == 5 and any(np.isnan(lo) for lo, _ in seen)
    assert np.array_equal(out, x, equal_nan=True)
    assert getattr(B._current, "ranges", None) is None and not getattr(B._current, "sources", {})


def test_cores_that_keep_many_arrays_get_half_blocks(monkeypatch):
    """The block size follows the local arrays of the core a call runs (its working set): the
    float32 class-balanced binary focal value+grad keeps more than ``MANY_ARRAYS`` and gets half
    blocks, the binary cross-entropy's fewer and full ones; a function that is not a generated
    core counts none."""
    from cesym.kernels import _api

    assert _blocks.local_arrays(lambda x: x) == 0 and _blocks.local_arrays(len) == 0
    assert _blocks.block_elements(_blocks.MANY_ARRAYS) == _blocks.BLOCK_ELEMENTS
    assert _blocks.block_elements(_blocks.MANY_ARRAYS + 1) == _blocks.BLOCK_ELEMENTS // 2
    seen = []
    real = _api.run_blocks

    def spy(*args, **kw):
        seen.append(kw.get("block_elements"))
        return real(*args, **kw)

    monkeypatch.setattr(_api, "run_blocks", spy)
    rng = np.random.default_rng(SEED)
    y = (rng.random((50, 4)) < 0.5).astype(np.float32)
    p = rng.uniform(0.05, 0.95, (50, 4)).astype(np.float32)
    kernels.binary_focal_crossentropy_value_and_grad(y, p, apply_class_balancing=True)
    kernels.binary_crossentropy_value_and_grad(y, p)
    assert seen == [_blocks.BLOCK_ELEMENTS // 2, _blocks.BLOCK_ELEMENTS]
