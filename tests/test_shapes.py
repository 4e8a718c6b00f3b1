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
from cesym.registry import CASES

from conftest import SEED


def _call(case, suffix, labels, pred, **kw):
    fn = getattr(kernels, case.kernel + suffix)
    args = dict(case.keywords, **kw)
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
