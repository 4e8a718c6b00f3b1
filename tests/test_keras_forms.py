"""Keras's loss classes (reductions, sample weights, dtype) and metrics: every output exact or
explained, the reduction's rounding bound honest, Keras's documented divisors as measured, and
TensorFlow's reading of subnormal predictions as zero in the metrics."""

import mpmath
import numpy as np
import pytest

from cesym.keras.calls import keras_class_kernel, loss_class
from cesym.keras.forms import ClassTally, _reduce, check_classes, check_metrics, metrics_for, sample_weights
from cesym.keras.model import _ends, _Rounding
from cesym.verify.registry import CASES, case, label_kinds
from cesym.verify.sampling import sample

from conftest import SEED

CLASS_CASES = [c for c in CASES if loss_class(c) is not None]
#: Families whose Keras form clips the probabilities to [1e-7, 1 - 1e-7] (deviations on these samples).
CLIPPED = {"binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"}


@pytest.mark.parametrize("c", CLASS_CASES, ids=lambda c: c.id)
def test_every_loss_class_output_is_exact_or_explained(c):
    for dtype in (np.float32, np.float64):
        t = ClassTally()
        for _, soft, smooth in label_kinds(c):
            t.merge(check_classes(c, sample(c, dtype, 3, 12, seed=SEED, soft=soft, smoothing=smooth), keras_class_kernel(c), seed=SEED))
        assert t.value["unexplained"] == 0 and t.grad["unexplained"] == 0, t.unexplained_examples
        assert t.value["exact"] > 0 and t.grad["exact"] > 0
        if c.inputs == "probs" and c.loss.split(".")[0] in CLIPPED:  # the clip is at work, through every reduction
            assert all(r["value"]["explained"] > 0 for r in t.reductions.values())


def test_sum_over_batch_size_divides_by_the_batch_size():
    """Keras 3.15: 'sum_over_batch_size' is Σ w_i ℓ_i / B with zero weights counted in B."""
    c = case("categorical_crossentropy", from_logits=True)
    b = sample(c, np.float64, 3, 10, seed=SEED)
    w = sample_weights(10, SEED)
    assert (w == 0).any()
    call = keras_class_kernel(c)
    per_sample, _ = call(b.labels, b.pred, b.params, "none", None, "float64")
    value, _ = call(b.labels, b.pred, b.params, "sum_over_batch_size", w, "float64")
    assert value == pytest.approx(np.sum(w * per_sample) / 10, rel=1e-12)
    assert value != pytest.approx(np.sum(w * per_sample) / np.sum(w), rel=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_reduction_bound_holds_and_is_tight(dtype):
    """Float sums of B positive terms in three orders lie inside the interval of `_reduce`, whose
    half-width is at most γ_{B-1}·Σ|x| (a few (B-1)·u relative), not more."""
    rng = np.random.default_rng(SEED)
    R = _Rounding(dtype)
    u = float(np.finfo(dtype).eps) / 2
    old = mpmath.iv.prec
    mpmath.iv.prec = 200
    try:
        for B in (2, 7, 64):
            x = (10 ** rng.uniform(-3, 3, B)).astype(dtype)
            (hull,) = _reduce(R, [mpmath.iv.mpf(float(v)) for v in x], None, "sum", None)
            a, b = _ends(hull)
            seq = dtype(0)
            for v in x:
                seq = dtype(seq + v)
            for s in (seq, np.sum(x, dtype=dtype), np.sum(np.sort(x)[::-1], dtype=dtype)):
                assert a <= float(s) <= b
            exact = mpmath.fsum([mpmath.mpf(float(v)) for v in x])
            assert (b - a) / 2 <= 1.01 * (B - 1) * u * exact
    finally:
        mpmath.iv.prec = old


@pytest.mark.parametrize("c", [c for c in CASES if metrics_for(c)], ids=lambda c: c.kernel)
def test_metrics_agree_with_cesym_and_weighted_means_are_bounded(c):
    for dtype in (np.float32, np.float64):
        t = check_metrics(c, sample(c, dtype, 3, 18, seed=SEED), seed=SEED)
        assert not t.failures and t.function["exact"] > 0 and t.function["unexplained"] == 0
        assert t.classes["unexplained"] == 0, t.unexplained_examples
        # TensorFlow reads the subnormal edge rows as zeros (argmax 0, level in in_top_k); with the
        # threshold 0.5 binary_accuracy cannot tell
        assert (t.function["explained"] > 0) == (c.kernel != "binary_crossentropy")
        assert t.class_max_ulps < 64  # float32 accumulation over ~24 samples


@pytest.mark.parametrize("name", ["mean_squared_error", "cosine_similarity", "log_cosh", "mean_absolute_error"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_metric_forms_are_explained(name, dtype):
    """Keras's metric forms of a loss (its declaration's ``metrics``): the function is the loss
    function, each class's result() is the float32 weighted mean (RootMeanSquaredError: the root
    of the mean of the elements' squares; CosineSimilarity: of the negated loss) within the model."""
    from cesym.keras.forms import check_loss_metrics

    pytest.importorskip("tensorflow")
    c = case(name)
    t = check_loss_metrics(c, sample(c, dtype, 4, 40, SEED), seed=SEED)
    assert t.function["unexplained"] == 0 and t.classes["unexplained"] == 0, (t.failures, t.unexplained_examples)
    assert sum(t.classes.values()) == 2 * sum(1 for m in c.keras["metrics"] if m.split(".")[-1][0].isupper())


def test_loss_metric_check_can_fail():
    """Judged as a plain mean, RootMeanSquaredError's result (a root) is not explained."""
    import dataclasses

    from cesym.keras.forms import check_loss_metrics

    pytest.importorskip("tensorflow")
    from cesym.verify.sampling import Batch

    c = case("mean_squared_error")
    wrong = dataclasses.replace(c, keras=dict(c.keras, metric_of={}))
    rng = np.random.default_rng(SEED)
    batch = Batch(rng.normal(size=(40, 4)), rng.normal(size=(40, 4)), {}, ["moderate"] * 40)
    assert check_loss_metrics(c, batch, seed=SEED).classes["unexplained"] == 0
    t = check_loss_metrics(wrong, batch, seed=SEED)
    assert t.classes["unexplained"] >= 1, t.classes


def test_rmse_with_an_overflowing_square_and_a_zero_weight():
    """float32 squares past the range are inf, and a zero sample weight makes Keras's weighted
    total NaN: RootMeanSquaredError's NaN is explained by that, a finite result would not be."""
    from cesym.keras.forms import _judge_loss_mean

    y = np.array([[0.0, 1.0], [2.0, 3.0]])
    p = np.array([[1e20, 1.0], [2.5, 3.0]])  # (1e20)² overflows float32
    w = np.array([0.0, 1.0])
    assert _judge_loss_mean(float("nan"), y, p, None, w, "sqrt(mean)")[0] == "explained"
    assert _judge_loss_mean(0.25, y, p, None, w, "sqrt(mean)")[0] == "unexplained"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_class_rows_are_broadcast_by_the_class_and_the_model_says_so(dtype):
    """Class indices of shape (B,) against predictions (B, 1): Keras's class expands the labels to
    (B, 1) and its one-hot (B, 1, 1) broadcasts against (B, 1), so 'none' is a (B, B) matrix and
    'sum' B times the sum (the function form is right). The model explains exactly that, and not
    the mathematics' outputs in its place, nor Keras's off by a part in 10^4."""
    c = next(c for c in CLASS_CASES if c.labels == "sparse" and c.loss.startswith("categorical_generalized"))
    b = sample(c, dtype, 1, 10, seed=SEED)
    assert b.pred.shape == (10, 1) and b.labels.ndim == 1
    keras_call = keras_class_kernel(c)
    t = check_classes(c, b, keras_call, seed=SEED)
    assert t.value["unexplained"] == 0 and t.grad["unexplained"] == 0, t.unexplained_examples
    assert t.reductions["none"]["value"]["explained"] == 2 * 10 * 10  # the matrix, with and without weights
    assert t.reductions["sum_over_batch_size"]["value"]["exact"] == 2  # Σ/B² there is the mathematics' Σ/B

    def mathematics(labels, pred, params, reduction, weights, class_dtype):  # what the loss should be
        per_sample, _ = keras_call(labels, pred, params, "sum_over_batch_size", None, class_dtype)
        v, g = keras_call(labels, pred, params, reduction, weights, class_dtype)
        B = len(labels)
        return (np.diagonal(v).copy() if reduction == "none" else v / B if reduction == "sum" else v), (g / B if reduction != "sum_over_batch_size" else g)

    def nudged(labels, pred, params, reduction, weights, class_dtype):
        v, g = keras_call(labels, pred, params, reduction, weights, class_dtype)
        return v * (1 + 1e-4), g * (1 + 1e-4)

    for wrong in (mathematics, nudged):
        t = check_classes(c, b, wrong, seed=SEED)
        assert t.reductions["sum"]["value"]["unexplained"] > 0 and t.reductions["sum"]["grad"]["unexplained"] > 0
        assert t.reductions["none"]["value"]["unexplained"] > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_class_rows_of_sparse_cross_entropy_are_not_broadcast(dtype):
    """Sparse cross-entropy squeezes the class's (B, 1) labels back to (B,): one value per row,
    which the model takes as the mathematics' (the broadcast it models is declared only for a
    function that one-hots the labels as given); a (B, B) matrix in its place is unexplained."""
    for c in [c for c in CLASS_CASES if c.labels == "sparse" and not (c.keras or {}).get("one_hot_as_given")]:
        b = sample(c, dtype, 1, 10, seed=SEED)
        assert b.pred.shape == (10, 1) and b.labels.ndim == 1
        keras_call = keras_class_kernel(c)
        t = check_classes(c, b, keras_call, seed=SEED)
        assert t.value["unexplained"] == 0 and t.grad["unexplained"] == 0, (c.id, t.unexplained_examples)
        assert t.reductions["none"]["value"]["exact"] + t.reductions["none"]["value"]["explained"] == 2 * 10

        def broadcast(labels, pred, params, reduction, weights, class_dtype):
            v, g = keras_call(labels, pred, params, reduction, weights, class_dtype)
            return (np.broadcast_to(v, (len(v), len(v))).copy() if reduction == "none" else v), g

        t = check_classes(c, b, broadcast, seed=SEED)
        assert t.reductions["none"]["value"]["unexplained"] > 0


@pytest.mark.parametrize("name,keywords", [("categorical_crossentropy", {"from_logits": True}), ("binary_crossentropy", {"from_logits": False}),
                                           ("cosine_similarity", {}), ("huber", {}), ("kl_divergence", {})])
def test_gradient_elements_decided_in_batch_are_the_judges(monkeypatch, name, keywords):
    """The loss classes' gradient elements tallied at once (``forms._within_base``) get the counts
    and the largest error the element-by-element judge gives them (to a relative 2^-48)."""
    from cesym.keras import forms

    pytest.importorskip("tensorflow")
    c = case(name, **keywords)
    call = keras_class_kernel(c)
    batches = [(dtype, sample(c, dtype, n, 12, seed=SEED, soft=soft, smoothing=smooth))
               for dtype in (np.float32, np.float64) for n in (3,) for _, soft, smooth in label_kinds(c)]
    fast = [check_classes(c, b, call, seed=SEED) for _, b in batches]
    within = forms._within_base
    monkeypatch.setattr(forms, "_within_base", lambda *a: (np.zeros_like(within(*a)[0]), within(*a)[1]))
    slow = [check_classes(c, b, call, seed=SEED) for _, b in batches]
    decided = 0
    for (dtype, b), f, s in zip(batches, fast, slow):
        assert f.grad == s.grad and f.reductions == s.reductions and f.value == s.value
        assert f.grad_max_ulps == s.grad_max_ulps or abs(f.grad_max_ulps - s.grad_max_ulps) <= 2.0**-48 * s.grad_max_ulps
        decided += f.grad["exact"]
    assert decided > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_batch_path_hands_over_what_it_cannot_decide(dtype):
    """Within 8 ulps of c·g (c = w, or w/B for 'sum_over_batch_size') less the margin: decided
    exact; 9 ulps away, a NaN, or a reference float64 cannot hold: left to the judge."""
    from cesym.keras.forms import _grads_dd, _within_base
    from cesym.verify.ulps import ulp, ulp_error

    with mpmath.workprec(200):
        g = [mpmath.mpf(1) / 3, mpmath.mpf(-2.5), mpmath.mpf(0), mpmath.mpf("1e-320")]
    truth = [(mpmath.mpf(1), g)] * 2
    dd = _grads_dd(truth, len(g))
    w = np.array([0.75, 0.0])
    for reduction, D in (("sum", 1), ("sum_over_batch_size", 2)):
        out = np.zeros((2, len(g)))
        want = np.zeros((2, len(g)), dtype=bool)
        for i in range(2):
            for j, gj in enumerate(g):
                with mpmath.workprec(256):
                    t = mpmath.mpf(w[i]) * gj / D
                steps = 9 if j == 1 else 7
                x = float(t) + steps * float(ulp(gj, dtype)) * w[i] / D
                out[i, j] = x
                want[i, j] = j in (0, 2) or (w[i] == 0 and j != 3)
        out[0, 2] = np.nan
        want[0, 2] = False
        exact, errors = _within_base(dd, out.astype(dtype), w, reduction, dtype)
        assert (exact == want).all(), (reduction, exact, want)
        for i, j in zip(*np.nonzero(exact)):
            with mpmath.workprec(256):
                true = mpmath.mpf(w[i]) * g[j] / D
            assert abs(errors[i, j] - ulp_error(out.astype(dtype)[i, j], true, dtype)) <= 2.0**-48 * max(errors[i, j], 1)
