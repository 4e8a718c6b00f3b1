"""The verifier fails when it should: a deliberately inaccurate kernel, a wrong gradient, a Keras
that no model explains, a metric with the wrong tie rule, and `cesym verify` on a broken kernel."""

import numpy as np
import pytest

from cesym import kernels
from cesym.verify.contract import check_batch
from cesym.keras.calls import keras_class_kernel, keras_kernel, keras_metric
from cesym.keras.check import classify
from cesym.keras.forms import check_classes, check_metrics
from cesym.verify.registry import case
from cesym.verify.sampling import sample
from cesym.verify.run import naive_kernel

from conftest import SEED

CCE_LOGITS = case("categorical_crossentropy", from_logits=True)
BCE_PROBS = case("binary_crossentropy", from_logits=False)


def _batch(c, dtype=np.float64, n=3, rows=18, **kw):
    return sample(c, dtype, n, rows, seed=SEED, **kw)


def _with(c, value_fn=None, grad_fn=None):
    """``c``'s kernel with its value and/or gradient replaced by functions of the true outputs."""

    def call(labels, pred, params, grad=False):
        out = c.call(labels, pred, params, grad=grad)
        f = grad_fn if grad else value_fn
        return out if f is None else f(out, labels, pred, params)

    return call


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_true_kernel_passes(dtype):
    res = check_batch(CCE_LOGITS, _batch(CCE_LOGITS, dtype))
    assert not res.failures
    # a share for each error above the κ-free part of its bound, every one within the bound
    assert len(res.value_share) == sum(e > 4 for e in res.value_ulps)
    assert len(res.grad_share) == sum(e > 8 for e in res.grad_ulps)
    assert max(res.value_share + res.grad_share, default=0) <= 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_value_64_ulps_off_fails(dtype):
    eps = np.finfo(dtype).eps
    res = check_batch(CCE_LOGITS, _batch(CCE_LOGITS, dtype), kernel=_with(CCE_LOGITS, value_fn=lambda v, *_: v * dtype(1 + 64 * eps)))
    bad = [f for f in res.failures if f.what == "value"]
    assert len(bad) >= 6 and all(f.ulps >= 32 for f in bad)  # rows where 4 + 4κ < 64 (κ ~ 1 on most)
    # the share of the bound says the same: above 1 exactly where a failure is recorded
    assert sum(s > 1 for s in res.value_share) == len(bad) and max(res.grad_share, default=0) <= 1
    assert res.summary()["value_share"]["max"] > 1
    assert not [f for f in res.failures if f.what != "value"]  # the gradient is untouched


def test_a_kernel_computed_naively_in_float32_fails():
    """σ(x) − y and log(1 + exp(−x)) evaluated as written lose every digit at large logits."""
    c = case("binary_crossentropy", from_logits=True)
    res = check_batch(c, _batch(c, np.float32, rows=24), kernel=naive_kernel(c))
    assert any(f.what == "value" for f in res.failures) and any(f.what.startswith("grad") for f in res.failures)


@pytest.mark.parametrize(
    "wrong",
    [
        pytest.param(lambda g, *_: np.concatenate([-g[:, :1], g[:, 1:]], axis=1), id="sign-of-one-element"),
        pytest.param(lambda g, *_: g * (1 + 1e-6), id="factor-1+1e-6"),
        pytest.param(lambda g, y, z, p: kernels.binary_crossentropy_grad(y, z, from_logits=True) * z.shape[1], id="other-loss"),
    ],
)
def test_a_wrong_gradient_fails(wrong):
    res = check_batch(CCE_LOGITS, _batch(CCE_LOGITS), kernel=_with(CCE_LOGITS, grad_fn=wrong))
    grads = [f for f in res.failures if f.what.startswith("grad")]
    assert len(grads) >= 6
    assert not [f for f in res.failures if f.what == "value"]


def test_keras_classify_flags_what_no_model_explains():
    """A Keras function form 0.1% off: neither the mathematics nor Keras's algorithm gives it."""
    keras = keras_kernel(BCE_PROBS)

    def off(labels, pred, params, grad=False):  # grad="both": (values, gradient) from one tape
        out = keras(labels, pred, params, grad)
        return tuple(a * 1.001 for a in out) if grad == "both" else out * 1.001

    t = classify(BCE_PROBS, _batch(BCE_PROBS, np.float32), off)
    assert t.value["unexplained"] > 0 and t.grad["unexplained"] > 0
    assert t.unexplained_examples


def test_loss_class_checks_flag_a_wrong_class():
    """A loss class 0.1% off in value and gradient, for every reduction."""
    keras = keras_class_kernel(CCE_LOGITS)

    def off(*args):
        v, g = keras(*args)
        return v * 1.001, g * 1.001

    t = check_classes(CCE_LOGITS, _batch(CCE_LOGITS, np.float32, rows=8), off, seed=SEED)
    for r in t.reductions.values():
        assert r["value"]["unexplained"] > 0 and r["grad"]["unexplained"] > 0


def test_loss_class_checks_flag_the_wrong_divisor():
    """'sum_over_batch_size' divides by B, zero weights included: Σwℓ/Σw is not explained."""
    keras = keras_class_kernel(BCE_PROBS)

    def by_weight_sum(labels, pred, params, reduction, weights, dtype):
        v, g = keras(labels, pred, params, reduction, weights, dtype)
        if reduction == "sum_over_batch_size" and weights is not None:
            scale = len(pred) / np.sum(weights)
            return v * scale, g * scale
        return v, g

    t = check_classes(BCE_PROBS, _batch(BCE_PROBS, np.float32, rows=12), by_weight_sum, seed=SEED)
    assert t.reductions["sum_over_batch_size"]["value"]["unexplained"] == 1  # the one weighted value
    assert t.reductions["sum"]["value"]["unexplained"] == 0 and t.reductions["none"]["value"]["unexplained"] == 0


def test_metric_checks_flag_a_wrong_tie_rule(monkeypatch):
    """A categorical_accuracy whose argmax ties go to the *largest* index disagrees with Keras."""
    c = case("categorical_crossentropy", from_logits=False)
    right = kernels.categorical_accuracy

    def last_index(y, p):
        p = np.asarray(p)
        flipped = np.argmax(np.where(np.isnan(p), -np.inf, p)[..., ::-1], axis=-1)
        return (np.argmax(y, axis=-1) == p.shape[-1] - 1 - flipped).astype(p.dtype)

    batch = _batch(c, np.float32, rows=12)
    assert not check_metrics(c, batch, seed=SEED).failures
    monkeypatch.setattr(kernels, "categorical_accuracy", last_index)
    t = check_metrics(c, batch, seed=SEED)
    assert t.failures and all("categorical_accuracy" in f for f in t.failures)
    assert t.function["unexplained"] > 0
    monkeypatch.setattr(kernels, "categorical_accuracy", right)


def test_metric_checks_flag_a_wrong_weighted_mean():
    """A metric class whose result() is 0.1% off (or divides by B instead of Σw) is unexplained."""
    c = case("sparse_categorical_crossentropy", from_logits=False)

    def wrong(name, **kw):
        function, weighted_mean = keras_metric(name, **kw)

        def mean(labels, pred, weights=None, chunks=1):
            if weights is None:
                return weighted_mean(labels, pred, None, chunks) * 1.001
            return weighted_mean(labels, pred, weights, chunks) * np.sum(weights) / len(pred)

        return function, mean

    t = check_metrics(c, _batch(c, np.float32, rows=12), seed=SEED, metric_call=wrong)
    assert t.classes["unexplained"] == 2 * len(t.metrics) and not t.failures


@pytest.mark.parametrize("part", ["value", "grad"])
def test_cesym_verify_exits_1_on_a_broken_kernel(monkeypatch, capsys, part):
    """`cesym verify` in process (one job) with binary_crossentropy 64 ulps off, or its gradient
    off by a factor 1 + 1e-6: exit status 1 and FAIL lines."""
    from cesym import cli

    name = "binary_crossentropy" + ("_grad" if part == "grad" else "")
    right = getattr(kernels, name)

    def broken(*args, **kw):
        out = right(*args, **kw)
        return out * out.dtype.type(1 + 64 * np.finfo(out.dtype).eps if part == "value" else 1 + 1e-6)

    monkeypatch.setattr(kernels, name, broken)
    status = cli.main(["verify", "--quick", "--no-keras", "--jobs", "1", "binary_crossentropy"])
    out = capsys.readouterr().out
    assert status == 1 and "FAIL " + ("value" if part == "value" else "grad") in out
    assert "outside the contract" in out
