"""Keras's algorithm replayed in its dtype (cesym.keras.replay) against TensorFlow in the same run:
within a few ulps everywhere the outputs are normal numbers (NumPy's exp/log against Eigen's,
and the order of a row's sum), bit for bit on most points; and a replay of another algorithm
is not."""

from __future__ import annotations

import numpy as np
import pytest

from cesym.keras import replay as R
from cesym.keras.calls import keras_kernel
from cesym.verify.registry import case, label_kinds
from cesym.verify.sampling import sample

pytest.importorskip("tensorflow")

#: The replay's bound (REPLAY_ULPS of the scale); a different algorithm (no clip, no
#: renormalisation, the label smoothing left out) is off by orders of magnitude more.
APART = R.REPLAY_ULPS

PATHS = [
    ("binary_crossentropy", {"from_logits": False}), ("binary_crossentropy", {"from_logits": True}),
    ("categorical_crossentropy", {"from_logits": False}), ("categorical_crossentropy", {"from_logits": True}),
    ("sparse_categorical_crossentropy", {"from_logits": False}), ("sparse_categorical_crossentropy", {"from_logits": True}),
    ("sigmoid_cross_entropy_with_logits", {}), ("softmax_cross_entropy_with_logits", {}),
]


@pytest.mark.parametrize("kernel, keywords", PATHS, ids=[f"{k}{kw}" for k, kw in PATHS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_replay_reproduces_keras(kernel, keywords, dtype):
    c = case(kernel, **keywords)
    for _, soft, smooth in label_kinds(c):
        b = sample(c, dtype, 3, 60, seed=11, soft=soft, smoothing=smooth)
        same, compared, apart = R.reproduced(c, b.labels, b.pred, b.params, keras_kernel(c)(b.labels, b.pred, b.params))
        assert apart <= APART, (soft, smooth, apart)
        assert same >= compared // 2, (soft, smooth, same, compared)
        # TensorFlow's gradient (its autodiff through Keras's ops, or the fused ops' softmax - y)
        rep = R.replay_outputs(c, b.labels, b.pred, b.params)
        _, _, apart = R.agreement(rep.grad, rep.grad_bound, keras_kernel(c)(b.labels, b.pred, b.params, grad=True), dtype)
        assert apart <= 1.0, (soft, smooth, apart)


def test_another_algorithm_is_not_reproduced():
    """The replay of BCE on probabilities without Keras's clip: off by far more than APART where
    the clip acts (p = 0 or 1 gives inf or NaN, a tiny p a value near -log p, not -log 1e-7)."""
    c = case("binary_crossentropy", from_logits=False)
    b = sample(c, np.float32, 3, 60, seed=11)
    keras = keras_kernel(c)(b.labels, b.pred, b.params)
    unclipped = lambda p, dt: p  # noqa: E731
    original = R._clip
    try:
        R._clip = unclipped
        same, compared, apart = R.reproduced(c, b.labels, b.pred, b.params, keras)
    finally:
        R._clip = original
    assert apart > 1e3 or same < compared - 5


#: Keras paths whose TensorFlow arithmetic is plain IEEE (+ - * /, abs, max, where, sums of rows
#: short enough that Eigen adds them left to right): the declared replay claims them bit for bit
#: (its bound is 0 there) and must be exact on every output, value and gradient.
PLAIN = ["mean_squared_error", "mean_absolute_error", "hinge", "squared_hinge", "huber"]


@pytest.mark.parametrize("kernel", PLAIN)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_declared_replay_is_tensorflow_bit_for_bit(kernel, dtype):
    c = case(kernel)
    for _, soft, smooth in label_kinds(c):
        b = sample(c, dtype, 3, 40, seed=7, soft=soft, smoothing=smooth)
        call = keras_kernel(c)
        rep = R.replay_outputs(c, b.labels, b.pred, b.params)
        for got, keras in ((rep.value, call(b.labels, b.pred, b.params)), (rep.grad, call(b.labels, b.pred, b.params, grad=True))):
            same, compared, _ = R.agreement(got, 0.0, keras, dtype)
            assert same == compared, (soft, smooth, same, compared)


def _declared_cases():
    from cesym.verify.registry import _shipped

    return [c for c in _shipped() if c.kernel not in R.HAND_REPLAYED and str((c.keras or {}).get("function") or "").startswith("keras.")]


@pytest.mark.parametrize("c", _declared_cases(), ids=lambda c: c.id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keras_lies_within_the_declared_replays_bound(c, dtype):
    """Every Keras output, value and gradient, within the replay's bound (where it is finite), on
    the sampler's adversarial rows: the bound counts what the replay cannot know, nothing else."""
    for _, soft, smooth in label_kinds(c):
        b = sample(c, dtype, 3, 24, seed=3, soft=soft, smoothing=smooth)
        call = keras_kernel(c)
        rep = R.replay_outputs(c, b.labels, b.pred, b.params)
        for got, bound, keras in ((rep.value, rep.value_bound, call(b.labels, b.pred, b.params)),
                                  (rep.grad, rep.grad_bound, call(b.labels, b.pred, b.params, grad=True))):
            _, _, apart = R.agreement(got, bound, keras, dtype)
            assert apart <= 1.0, (soft, smooth, apart)


def test_a_declared_algorithm_that_is_not_kerass_is_not_reproduced():
    """Poisson replayed without Keras's log(p + 1e-7): its gradient -y/p (no ε) is outside the
    replay's bound of Keras's wherever p is within a few orders of 1e-7."""
    import dataclasses

    from cesym.keras import declared as D
    from cesym.verify.contract import definition

    c = case("poisson")
    loss = definition(c)
    b = sample(c, np.float32, 3, 40, seed=3)
    keras = keras_kernel(c)(b.labels, b.pred, b.params, grad=True)
    pred = np.abs(b.pred) * np.float32(1e-6)  # rates near Keras's ε
    keras = keras_kernel(c)(b.labels, pred, b.params, grad=True)
    other = dataclasses.replace(loss, keras=None)  # the definition itself, no ε
    _, _, g, dg = D.replay_declared(other, b.labels, pred, b.params, True)
    _, _, apart = R.agreement(g, dg, keras, np.float32)
    assert apart > 10
    _, _, g, dg = D.replay_declared(loss, b.labels, pred, b.params, True)
    assert R.agreement(g, dg, keras, np.float32)[2] <= 1.0


CLASS_PATHS = [
    ("binary_crossentropy", {"from_logits": False}), ("categorical_crossentropy", {"from_logits": True}),
    ("sparse_categorical_crossentropy", {"from_logits": False}),
    ("binary_focal_crossentropy", {"from_logits": True, "apply_class_balancing": True}),
    ("poisson", {}), ("huber", {}), ("kl_divergence", {}), ("cosine_similarity", {}),
]


@pytest.mark.parametrize("kernel, keywords", CLASS_PATHS, ids=[f"{k}{kw}" for k, kw in CLASS_PATHS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_replay_reproduces_the_loss_classes(kernel, keywords, dtype):
    """A loss class's outputs: the function form's replayed values times the weights, reduced
    (class_values), and its gradients backward from each row's seed (class_seeds: 1/B and the
    weights as TensorFlow rounds them), within their bounds for every reduction, with and
    without weights (Huber's gradients, rational operations only, bit for bit). Seeded with 1
    instead of 1/B, the gradients are not."""
    from cesym.keras.calls import keras_class_kernel
    from cesym.keras.forms import REDUCTIONS, sample_weights

    c = case(kernel, **keywords)
    b = sample(c, dtype, 4, 24, seed=5, soft=True)
    call = keras_class_kernel(c)
    w = sample_weights(len(b.pred), [0])
    rep = R.replay_outputs(c, b.labels, b.pred, b.params)
    for reduction in REDUCTIONS:
        for weights in (None, w):
            value, grad = call(b.labels, b.pred, b.params, reduction, weights, None if dtype is np.float32 else "float64")
            rv, dv = R.class_values(rep, reduction, weights, dtype)
            _, _, apart = R.agreement(rv, dv, np.atleast_1d(value), dtype)
            assert apart <= 1.0, (reduction, weights is not None, "value", apart)
            seed = R.class_seeds(reduction, weights, len(b.pred), dtype)
            g = R.replay_outputs(c, b.labels, b.pred, b.params, seed)
            s2, n2, apart = R.agreement(g.grad, g.grad_bound, grad, dtype)
            assert apart <= 1.0, (reduction, weights is not None, "grad", apart)
            if kernel == "huber":
                assert s2 == n2, (reduction, weights is not None, s2, n2)
            if reduction == "sum_over_batch_size":
                ones = R.replay_outputs(c, b.labels, b.pred, b.params)
                assert not np.all(np.abs(ones.grad - grad) <= ones.grad_bound), "a seed of 1 reproduces a mean's gradient"


def test_loss_classes_take_few_envelopes(monkeypatch):
    """check_classes explains the outputs past the mathematics' band by the replay: the per-point
    envelope (milliseconds each) only where the replay's bound does not hold them."""
    from cesym.keras import forms
    from cesym.keras.calls import keras_class_kernel

    calls = []
    real = forms.envelope
    monkeypatch.setattr(forms, "envelope", lambda *a, **k: calls.append(1) or real(*a, **k))
    c = case("binary_crossentropy", from_logits=False)  # Keras's clip: outputs past the band
    b = sample(c, np.float32, 4, 16, seed=3, soft=True)
    tally = forms.check_classes(c, b, keras_class_kernel(c))
    assert tally.value["explained"] + tally.grad["explained"] > 100, (tally.value, tally.grad)
    assert tally.value["unexplained"] == tally.grad["unexplained"] == 0
    assert len(calls) <= 2, len(calls)
