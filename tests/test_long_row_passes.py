"""Passes over a long row: how many times the generated core is evaluated on each piece.

A row longer than a block is evaluated in pieces, in passes (cesym/kernels/_pieces.py): each pass
reads every piece of the row again (widened to float64) and recomputes what the core computes
before the first reduction it cannot use yet. The time of a long row is about the number of
passes times the cost of one, so the number of passes is what keeps a long row within 1.5x of
rows of 10 per element (`cesym bench --shapes-only`): counted here exactly, not timed. The
expected counts are the fewest the kernels' mathematics allows with these primitives: every
row reduction whose partial needs no pending row value is asked for in the first pass; a
gradient needs the row's sums before its elements (two passes); a value that is a function of
row reductions alone (one-hot label rows, a sparse label) needs one.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cesym import kernels as K
from cesym.kernels import _blocks, _pieces
from cesym.kernels._generated import categorical_crossentropy as gen_cce
from cesym.kernels._generated import sparse_categorical_crossentropy as gen_scce

R, C, BLOCK = 3, 1000, 128  # rows of 1000 classes in pieces of at most 96 columns
PIECES = len(_pieces.bounds(C, _pieces.piece_columns(BLOCK))) - 1


@pytest.fixture
def small_blocks():
    size = _blocks.BLOCK_ELEMENTS
    _blocks.BLOCK_ELEMENTS = BLOCK
    yield
    _blocks.BLOCK_ELEMENTS = size
    _blocks.set_num_threads(None)


def _inputs(dtype, labels: str):
    rng = np.random.default_rng(2026)
    p = rng.random((R, C)).astype(dtype)
    p /= p.sum(-1, keepdims=True)
    z = (rng.standard_normal((R, C)) * 3).astype(dtype)
    k = np.array([5, 500, C - 1])
    if labels == "soft":
        y = rng.random((R, C)).astype(dtype)
        y /= y.sum(-1, keepdims=True)
    else:
        y = np.zeros((R, C), dtype)
        y[np.arange(R), k] = 1
    return y, p, z, k


def _passes(monkeypatch, module, core: str, call) -> float:
    """Evaluations of ``module.core`` per piece during ``call()`` (one thread: a plain count)."""
    n = [0]
    inner = getattr(module, core)

    def counted(*a):
        n[0] += 1
        return inner(*a)

    monkeypatch.setattr(module, core, counted)
    _blocks.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call()
    return n[0] / (R * PIECES)


_SUFFIX = {"value": "", "grad": "_grad", "value_and_grad": "_value_and_grad"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "labels,smoothing,kind,passes",
    [
        # one-hot rows: the value is log1p(r/p_k) of row reductions alone, by look-up
        ("hard", 0.0, "value", 1),
        ("hard", 0.0, "grad", 2),
        ("hard", 0.0, "value_and_grad", 2),
        # other label rows: the general form's value needs the row sum element by element
        ("soft", 0.0, "value", 2),
        ("soft", 0.0, "grad", 2),
        ("soft", 0.0, "value_and_grad", 2),
        ("hard", 0.1, "value", 2),
        ("hard", 0.1, "grad", 2),
        ("hard", 0.1, "value_and_grad", 2),
    ],
)
def test_categorical_probabilities_passes(monkeypatch, small_blocks, dtype, labels, smoothing, kind, passes):
    """categorical_crossentropy(from_logits=False) on long rows: was 2 passes (value), 3 (grad),
    4 (value and gradient: rest_sum(p)'s statistics asked for twice, each in a pass of its own)."""
    y, p, _, _ = _inputs(dtype, labels)
    fn = getattr(K, "categorical_crossentropy" + _SUFFIX[kind])
    got = _passes(monkeypatch, gen_cce, "probs_" + kind, lambda: fn(y, p, label_smoothing=smoothing))
    assert got == passes


@pytest.mark.parametrize(
    "module,core,call,passes",
    [
        (gen_cce, "logits_grad", lambda y, z, k: K.categorical_crossentropy_grad(y, z, from_logits=True), 2),
        (gen_cce, "logits_value_and_grad", lambda y, z, k: K.categorical_crossentropy_value_and_grad(y, z, from_logits=True), 2),
        (gen_cce, "logits_value", lambda y, z, k: K.categorical_crossentropy(y, z, from_logits=True), 2),
        (gen_scce, "logits_value", lambda y, z, k: K.sparse_categorical_crossentropy(k, z, from_logits=True), 1),
        (gen_scce, "logits_value_and_grad", lambda y, z, k: K.sparse_categorical_crossentropy_value_and_grad(k, z, from_logits=True), 2),
    ],
    ids=["cce_logits_grad", "cce_logits_value_and_grad", "cce_logits_value", "scce_logits_value", "scce_logits_value_and_grad"],
)
def test_logits_passes(monkeypatch, small_blocks, module, core, call, passes):
    """The softmax paths: the label statistics are asked for in the pass of the softmax's (was 3
    passes for the dense gradient, 2 for the sparse value)."""
    y, _, z, k = _inputs(np.float32, "hard")
    assert _passes(monkeypatch, module, core, lambda: call(y, z, k)) == passes


@pytest.mark.parametrize("labels,smoothing", [("hard", 0.0), ("soft", 0.0), ("hard", 0.1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fewer_passes_same_numbers_as_one_block(small_blocks, dtype, labels, smoothing):
    """The look-up of one-hot rows and the reductions asked for early change the order of the
    row sums only (pairwise over pieces): the results stay within a few roundings of S = Σp and
    T = Σt of the one-block results, propagated by the condition of each output (the value:
    T/S·ε per relative error ε of S; the gradient T/S - t_j/p_j: (T/S + t_j/p_j)·ε), plus the
    rounding to the input dtype. A value alone has the bytes of the value with the gradient."""
    y, p, _, _ = _inputs(dtype, labels)
    v, g = K.categorical_crossentropy_value_and_grad(y, p, label_smoothing=smoothing)
    v1 = K.categorical_crossentropy(y, p, label_smoothing=smoothing)
    g1 = K.categorical_crossentropy_grad(y, p, label_smoothing=smoothing)
    assert np.array_equal(v, v1) and np.array_equal(g, g1)
    _blocks.BLOCK_ELEMENTS = 1 << 17  # a whole row per block
    vw, gw = K.categorical_crossentropy_value_and_grad(y, p, label_smoothing=smoothing)
    t = y.astype(np.float64) * (1 - smoothing) + smoothing / C
    pp = p.astype(np.float64)
    T, S = t.sum(-1), pp.sum(-1)
    eps = 16 * np.finfo(np.float64).eps  # a few roundings of a pairwise sum of 1000 terms, either order
    rnd = lambda x: np.spacing(np.abs(x).astype(dtype)).astype(np.float64)  # noqa: E731 - the output's rounding
    vw, gw = vw.astype(np.float64), gw.astype(np.float64)
    assert np.all(np.abs(v - vw) <= rnd(vw) + eps * (np.abs(vw) + T / S))
    assert np.all(np.abs(g - gw) <= rnd(gw) + eps * (np.abs(gw) + (T / S)[:, None] + t / pp))


def test_unknown_elements_raise_where_their_numbers_are_needed():
    """An element-level value not known in this pass: arithmetic and comparisons keep it
    unknown (never a silent False for ``==``); reductions, selections and truth values end the
    piece's evaluation."""
    u = _pieces.UNKNOWN
    a = np.ones((1, 4))
    for x in (u + 1, 1 - u, a * u, u / a, -u, abs(u), u ** 2, np.exp(u), np.maximum(a, u), u == 1.0, a != u,
              u < a, (u > 0) & (a > 0), ~(u > 0)):
        assert isinstance(x, _pieces.Unknown)
    pending = _pieces.Pending(lambda known: known[0])
    assert isinstance(pending * a, _pieces.Unknown)  # a row value not known, times elements
    assert isinstance(pending * 2.0, _pieces.Pending)  # still a row value
    for need in (lambda: np.where(u, a, a), lambda: np.sum(u), lambda: bool(u), lambda: u[0], lambda: u.shape,
                 lambda: float(u), lambda: np.asarray(u), lambda: np.add.reduce(u)):
        with pytest.raises(_pieces.PendingUsed):
            need()


def test_labels_of_both_signs_on_long_rows(small_blocks):
    """Labels of both signs (the general rest_sum: Σ_{c≠j} t_c through the row's argmax) on
    long rows whose largest label does not carry its piece: the gradient is the one-block
    gradient to within the condition of T/S - t_j/p_j in the labels' sums (Σ|t|/S + |t_j|/p_j,
    a few roundings each), never NaN."""
    rng = np.random.default_rng(3)
    p = rng.random((2, C))
    p /= p.sum(-1, keepdims=True)
    y = rng.random((2, C)) * 0.01
    y[:, 10], y[:, 900] = 5.0, -5.0  # the row sum cancels; its largest label is in a piece of small ones
    y[1, 10:13] = 0.3
    g = K.categorical_crossentropy_grad(y, p)
    gz = K.categorical_crossentropy_grad(y, np.log(p), from_logits=True)
    _blocks.BLOCK_ELEMENTS = 1 << 17
    gw = K.categorical_crossentropy_grad(y, p)
    gzw = K.categorical_crossentropy_grad(y, np.log(p), from_logits=True)
    bound = 16 * np.finfo(np.float64).eps * (np.abs(y).sum(-1, keepdims=True) / p.sum(-1, keepdims=True) + np.abs(y) / p)
    assert np.all(np.abs(g - gw) <= bound)
    assert np.all(np.abs(gz - gzw) <= bound)
