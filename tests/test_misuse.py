"""Misuse is named, not silent (issue 9, item 9): non-bool from_logits, byte order, masked arrays,
out-of-range sparse labels reported as passed, and named warnings for one class and for
probabilities passed as logits."""

import threading
import warnings

import numpy as np
import pytest

from cesym import kernels as K
from cesym.kernels import _blocks, _misuse
from cesym.verify.registry import CASES

from conftest import SEED, pred_from

LOGITS_FNS = ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy")
SUFFIXES = ("", "_grad", "_value_and_grad")


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _args(kernel, labels, pred, **kw):
    """Positional/keyword arguments of a kernel, as the registry describes it."""
    case = next(c for c in CASES if c.kernel == kernel)
    if case.nn_keywords:
        return (), {"labels": labels, "logits": pred, **kw}
    if case.labels == "none":
        return (pred,), kw
    return (labels, pred), kw


def _batch(case, dtype, rows=50, n=6, seed=SEED):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows, n)) * 3
    pred = pred_from(case, z)
    if case.labels == "sparse":
        labels = rng.integers(0, n, rows)
    elif case.labels == "dense":
        labels = rng.random((rows, n)).astype(dtype)
    else:
        labels = None
    return labels, pred.astype(dtype)


@pytest.fixture
def warnings_as_list():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


# --- from_logits must be a bool ------------------------------------------------------------------


@pytest.mark.parametrize("fn", [f + s for f in LOGITS_FNS for s in SUFFIXES])
@pytest.mark.parametrize("value", ["False", "True", 0, 1, None, np.array(True), 1.0])
def test_from_logits_must_be_bool(fn, value):
    labels = np.array([0, 1]) if fn.startswith("sparse") else np.array([[0.0, 1.0], [1.0, 0.0]])
    pred = np.array([[0.3, 0.7], [0.6, 0.4]])
    with pytest.raises(TypeError, match=r"from_logits: expected True or False, got"):
        getattr(K, fn)(labels, pred, from_logits=value)


@pytest.mark.parametrize("fn", [f + s for f in LOGITS_FNS for s in SUFFIXES])
def test_from_logits_numpy_bool_is_a_bool(fn):
    labels = np.array([0, 1]) if fn.startswith("sparse") else np.array([[0.0, 1.0], [1.0, 0.0]])
    pred = np.array([[0.3, -2.0], [1.5, 0.4]])
    for flag in (True, False):
        p = pred if flag else _softmax(pred)
        a, b = getattr(K, fn)(labels, p, from_logits=np.bool_(flag)), getattr(K, fn)(labels, p, from_logits=flag)
        for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            assert x.tobytes() == y.tobytes()


# --- any byte order ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_any_byte_order(case, dtype):
    labels, pred = _batch(case, dtype)
    swapped = pred.astype(pred.dtype.newbyteorder("S"))
    swapped_labels = None if labels is None else labels.astype(labels.dtype.newbyteorder("S"))
    for suffix in SUFFIXES:
        fn = getattr(K, case.kernel + suffix)
        args, kw = _args(case.kernel, labels, pred, **case.call_kw)
        want = fn(*args, **kw)
        args, kw = _args(case.kernel, swapped_labels, swapped, **case.call_kw)
        got = fn(*args, **kw)
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            assert g.dtype == np.dtype(dtype) and g.dtype.isnative  # native output
            assert g.shape == w.shape and g.tobytes() == w.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_any_byte_order_metrics(dtype):
    rng = np.random.default_rng(SEED)
    p = rng.standard_normal((40, 5)).astype(dtype)
    k = rng.integers(0, 5, 40)
    y = np.eye(5, dtype=dtype)[k]
    s = lambda a: a.astype(a.dtype.newbyteorder("S"))  # noqa: E731
    calls = [
        (K.binary_accuracy, (y, p)),
        (K.categorical_accuracy, (y, p)),
        (K.sparse_categorical_accuracy, (k, p)),
        (K.top_k_categorical_accuracy, (y, p)),
        (K.sparse_top_k_categorical_accuracy, (k, p)),
    ]
    for fn, (a, b) in calls:
        want, got = fn(a, b), fn(s(a), s(b))
        assert got.dtype == np.dtype(dtype) and got.dtype.isnative and got.tobytes() == want.tobytes()


# --- masked arrays are refused -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda m: K.binary_crossentropy(np.ones((2, 2)), m(np.full((2, 2), 0.5))), "y_pred"),
        (lambda m: K.binary_crossentropy(m(np.ones((2, 2))), np.full((2, 2), 0.5)), "y_true"),
        (lambda m: K.categorical_crossentropy_grad(np.eye(2), m(np.eye(2) * 0.5 + 0.25)), "y_pred"),
        (lambda m: K.sparse_categorical_crossentropy(m(np.array([0, 1])), np.full((2, 2), 0.5)), "y_true"),
        (lambda m: K.sparse_categorical_crossentropy(m(np.array([0, 1])), np.full((2, 2), 0.5), ignore_class=1), "y_true"),
        (lambda m: K.sigmoid_cross_entropy_with_logits(labels=m(np.ones(3)), logits=np.zeros(3)), "labels"),
        (lambda m: K.softmax_cross_entropy_with_logits(labels=np.eye(2), logits=m(np.zeros((2, 2)))), "logits"),
        (lambda m: K.sparse_softmax_cross_entropy_with_logits(labels=m(np.array([0, 1])), logits=np.zeros((2, 2))), "labels"),
        (lambda m: K.activity_penalty(m(np.ones((2, 3)))), "h"),
        (lambda m: K.activity_penalty(np.ones((2, 3)), lam=np.ma.masked), "lam"),
        (lambda m: K.categorical_accuracy(np.eye(2), m(np.eye(2))), "y_pred"),
        (lambda m: K.sparse_top_k_categorical_accuracy(m(np.array([0, 1])), np.eye(2), k=1), "y_true"),
    ],
)
def test_masked_arrays_are_refused(call, name):
    """np.asarray drops a mask: the masked values would be computed as if valid."""
    mask = lambda a: np.ma.masked_array(a, mask=np.zeros(a.shape, bool))  # noqa: E731
    with pytest.raises(TypeError, match=rf"^{name}: (masked arrays are not supported|expected a real number, got a masked)"):
        call(mask)


# --- sparse labels: the value passed, not its int64 cast -----------------------------------------


@pytest.mark.parametrize(
    "label,shown",
    [
        (np.array([2**64 - 1, 0], dtype=np.uint64), "18446744073709551615"),
        (np.array([0, 2**63], dtype=np.uint64), "9223372036854775808"),
        (np.array([1e30, 0.0]), r"1e\+30"),
        (np.array([0.0, -1e19], dtype=np.float32), r"-1e\+19"),
        (np.array([-1, 0]), "-1"),
        (np.array([0, 3], dtype=">i8"), "3"),
    ],
)
def test_out_of_range_label_reported_as_passed(label, shown):
    p = np.full((2, 3), 1 / 3)
    for call, name in [
        (lambda: K.sparse_categorical_crossentropy(label, p), "y_true"),
        (lambda: K.sparse_categorical_crossentropy_grad(label, p, from_logits=True), "y_true"),
        (lambda: K.sparse_softmax_cross_entropy_with_logits(labels=label, logits=p), "labels"),
        (lambda: K.sparse_categorical_accuracy(label, p), "y_true"),
    ]:
        with pytest.raises(ValueError, match=rf"^{name}: label {shown} is out of range for 3 classes"):
            call()


@pytest.mark.parametrize("label,shown", [(np.nan, "nan"), (2.5, "2.5"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_non_integer_label_reported_as_passed(label, shown):
    with pytest.raises(ValueError, match=rf"^y_true: expected integer class labels, got non-integer value {shown}"):
        K.sparse_categorical_crossentropy(np.array([0.0, label]), np.full((2, 3), 1 / 3))


def test_names_the_prediction_argument():
    """tf.nn ops name their own arguments (logits), not Keras's (y_pred)."""
    with pytest.raises(ValueError, match=r"^axis: 2 is out of range for logits"):
        K.softmax_cross_entropy_with_logits(labels=np.eye(2), logits=np.zeros((2, 2)), axis=2)
    with pytest.raises(ValueError, match=r"^labels: shape \(2, 3\) does not match the shape of logits, \(2, 2\)"):
        K.softmax_cross_entropy_with_logits(labels=np.ones((2, 3)), logits=np.zeros((2, 2)))


# --- one class ----------------------------------------------------------------------------------

ONE_CLASS = [
    ("categorical_crossentropy", {"from_logits": True}),
    ("categorical_crossentropy", {"from_logits": False}),
    ("sparse_categorical_crossentropy", {"from_logits": True}),
    ("sparse_categorical_crossentropy", {"from_logits": False}),
    ("softmax_cross_entropy_with_logits", {}),
    ("sparse_softmax_cross_entropy_with_logits", {}),
]


@pytest.mark.parametrize("kernel,kw", ONE_CLASS)
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_one_class_warns(kernel, kw, suffix, warnings_as_list):
    sparse = "sparse" in kernel
    labels = np.zeros(4, dtype=np.int64) if sparse else np.ones((4, 1))
    pred = np.array([[0.9], [0.2], [1.0], [0.5]], dtype=np.float32)
    args, kwargs = _args(kernel, labels, pred, **kw)
    getattr(K, kernel + suffix)(*args, **kwargs)
    ours = [w for w in warnings_as_list if issubclass(w.category, K.SingleClassWarning)]
    assert len(ours) == 1 and issubclass(ours[0].category, UserWarning)
    assert ours[0].filename == __file__  # attributed to the caller's line
    assert kernel in str(ours[0].message) and "one class" in str(ours[0].message)
    assert not [w for w in warnings_as_list if issubclass(w.category, K.ProbabilitiesAsLogitsWarning)]


def test_two_classes_and_binary_do_not_warn_single_class(warnings_as_list):
    K.categorical_crossentropy(np.eye(2), np.array([[3.0, -1.0], [0.5, 2.0]]), from_logits=True)
    K.binary_crossentropy(np.ones((3, 1)), np.array([[3.0], [-2.0], [5.0]]), from_logits=True)
    K.categorical_crossentropy(np.ones((1, 4)), np.full((1, 4), 0.25), axis=-1)  # classes along -1: 4
    assert not [w for w in warnings_as_list if issubclass(w.category, K.SingleClassWarning)]


# --- probabilities passed as logits --------------------------------------------------------------

SOFTMAX = [
    ("categorical_crossentropy", {"from_logits": True}),
    ("sparse_categorical_crossentropy", {"from_logits": True}),
    ("softmax_cross_entropy_with_logits", {}),
    ("sparse_softmax_cross_entropy_with_logits", {}),
]
SIGMOID = [("binary_crossentropy", {"from_logits": True}), ("sigmoid_cross_entropy_with_logits", {})]


def _labels(kernel, shape, rng):
    if "sparse" in kernel:
        return rng.integers(0, shape[-1], shape[:-1])
    return np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]


def _ours(caught):
    return [w for w in caught if issubclass(w.category, K.ProbabilitiesAsLogitsWarning)]


@pytest.mark.parametrize("kernel,kw", SOFTMAX + SIGMOID)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probabilities_as_logits_warn_once_per_call(kernel, kw, dtype, warnings_as_list):
    """Softmax (sigmoid) outputs passed as logits: one warning per call, even over many blocks on
    several threads, raised in the calling thread and attributed to the caller's line."""
    rng = np.random.default_rng(SEED)
    z = rng.standard_normal((3000, 7)) * 4
    pred = (_softmax(z) if (kernel, kw) in SOFTMAX else 1 / (1 + np.exp(-z))).astype(dtype)  # float32: sums off by ulps
    labels = _labels(kernel, pred.shape, rng)
    threads = []
    saved, saved_show = _blocks.BLOCK_ELEMENTS, warnings.showwarning
    record = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        threads.append(threading.current_thread())
        record(message, category, filename, lineno, file, line)

    try:
        _blocks.BLOCK_ELEMENTS = 700  # 30 blocks
        K.set_num_threads(4)
        warnings.showwarning = show
        for suffix in SUFFIXES:
            args, kwargs = _args(kernel, labels, pred, **kw)
            getattr(K, kernel + suffix)(*args, **kwargs)
    finally:
        warnings.showwarning = saved_show
        _blocks.BLOCK_ELEMENTS = saved
        K.set_num_threads(None)
    ours = _ours(warnings_as_list)
    assert len(ours) == 3, [str(w.message) for w in ours]
    assert all(w.filename == __file__ and kernel in str(w.message) for w in ours)
    assert threads and all(t is threading.current_thread() for t in threads)


@pytest.mark.parametrize("kernel,kw", SOFTMAX + SIGMOID)
def test_logits_do_not_warn(kernel, kw, warnings_as_list):
    rng = np.random.default_rng(SEED)
    sig = (kernel, kw) in SIGMOID
    z = rng.standard_normal((3000, 7)) * 4
    prob = _softmax(z) if not sig else 1 / (1 + np.exp(-z))
    cases = [z, np.zeros((5, 7))]  # real logits; zero-initialised ones
    if not sig:
        cases.append(np.full((5, 7), 1 / 7 + 1e-2))  # in [0, 1], rows summing to 1.07
    # one row (the last, in the last block) that is not a probability distribution / in [0, 1]
    last = prob.copy()
    last[-1, 3] = -0.5 if sig else last[-1, 3] + 0.01
    nan = prob.copy()
    nan[1500, 2] = np.nan
    cases += [last, nan, np.round(prob)] if sig else [last, nan]
    saved = _blocks.BLOCK_ELEMENTS
    try:
        _blocks.BLOCK_ELEMENTS = 700
        K.set_num_threads(3)
        for pred in cases:
            args, kwargs = _args(kernel, _labels(kernel, pred.shape, rng), pred, **kw)
            getattr(K, kernel)(*args, **kwargs)
    finally:
        _blocks.BLOCK_ELEMENTS = saved
        K.set_num_threads(None)
    assert not _ours(warnings_as_list), [str(w.message) for w in _ours(warnings_as_list)]


def test_probabilities_with_from_logits_false_do_not_warn(warnings_as_list):
    p = _softmax(np.random.default_rng(SEED).standard_normal((20, 4)))
    K.categorical_crossentropy(np.eye(4)[np.arange(20) % 4], p)
    K.sparse_categorical_crossentropy(np.arange(20) % 4, p)
    K.binary_crossentropy(np.ones((20, 4)), p)
    assert not warnings_as_list


def test_row_sum_tolerance():
    """Rows summing to 1 within 2^-8 are distributions (a float16 softmax of 8 classes, a float32
    one of 65536 at worst-case rounding); 2^-7 off is not."""
    w = _misuse.ProbabilityWatch("f", "y_pred", rows=True)
    row = np.full((1, 8), 1 / 8)
    assert w._probabilities(row + 2.0**-8 / 8 * 0.99) and w._probabilities(np.float16(row).astype(np.float64))
    assert not w._probabilities(row + 2.0**-7 / 8)


def test_the_watch_probes_real_logits_only(monkeypatch):
    """On real logits each block is looked at in its first rows only (≥ 64 elements), never whole:
    the cost of the watch does not grow with the block."""
    seen = []
    probe = _misuse.ProbabilityWatch._probabilities
    monkeypatch.setattr(_misuse.ProbabilityWatch, "_probabilities", lambda self, b: seen.append(b.size) or probe(self, b))
    rng = np.random.default_rng(SEED)
    for n in (1, 3, 10, 100):
        z = rng.standard_normal((20000, n)).astype(np.float32)
        seen.clear()
        K.binary_crossentropy(np.zeros_like(z), z, from_logits=True)
        if n > 1:
            K.categorical_crossentropy_value_and_grad(np.eye(n, dtype=np.float32)[np.zeros(20000, int)], z, from_logits=True)
        assert seen and max(seen) < 64 + n
