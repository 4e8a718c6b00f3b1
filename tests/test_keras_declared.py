"""The model of Keras's algorithm for losses modelled by their declaration (``Loss.keras``, else
the definition): it explains what Keras computes, and fails to explain a wrong algorithm."""

from __future__ import annotations

import dataclasses

import mpmath
import numpy as np
import pytest

from cesym import kernels
from cesym.verify.contract import definition, reference_for
from cesym.keras.calls import keras_kernel
from cesym.keras.model import contains, envelope
from cesym.verify.registry import case

pytest.importorskip("tensorflow")


def _row(c, dtype):
    y = np.array([0.25, -3.0, 2.0], dtype=dtype)
    p = np.array([1.5, 40.0, 2.0001], dtype=dtype)
    return y, p


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_cosh_keras_is_explained_by_its_declared_algorithm_only(dtype):
    c = case("log_cosh")
    y, p = _row(c, dtype)
    keras_v = keras_kernel(c)(y[None], p[None], {}, grad=False)[0]
    model_v, _ = envelope(c, y, p, {}, dtype)
    assert contains(model_v, keras_v, dtype)
    if dtype == np.float64:  # Keras's float32 log(2): the definition alone does not explain it
        import cesym.keras.model as km

        loss = definition(c)
        plain = dataclasses.replace(loss, keras=None)
        value, labels, preds, consts = km._algorithm(plain, 3)
        env = km.constants(consts, km._Rounding(dtype), 3)
        env.update({s: km.iv.mpf(float(v)) for s, v in zip(labels, y)})
        env.update({s: km.iv.mpf(float(v)) for s, v in zip(preds, p)})
        km.iv.prec = 200
        assert not contains(km._walk(value, env, km._Rounding(dtype)), keras_v, dtype)
        true, _ = reference_for(loss, 3).value_and_grad(y, p, (), dtype=dtype)
        assert abs(keras_v - float(true)) > 1e-9  # 1.9e-9 off: ln 2 in float32


def test_log_cosh_where_keras_cancels():
    """|e| = 1e-4: Keras's e + softplus(-2e) - log 2 is 0 in float32; the loss is 5e-9."""
    y = np.zeros((1, 1), np.float32)
    p = np.full((1, 1), 1e-4, np.float32)
    with mpmath.workdps(40):
        true = float(mpmath.log(mpmath.cosh(mpmath.mpf(float(p[0, 0])))))
    v = kernels.log_cosh(y, p)[0]
    assert abs(v - true) <= 1 * np.spacing(np.float32(true))
    keras_v = keras_kernel(case("log_cosh"))(y, p, {}, grad=False)[0]
    assert keras_v == 0.0
    assert contains(envelope(case("log_cosh"), y[0], p[0], {}, np.float32)[0], keras_v, np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_squared_error_keras_within_its_model(dtype):
    c = case("mean_squared_error")
    y, p = _row(c, dtype)
    call = keras_kernel(c)
    v = call(y[None], p[None], {}, grad=False)[0]
    g = call(y[None], p[None], {}, grad=True)[0]
    mv, mg = envelope(c, y, p, {}, dtype)
    assert contains(mv, v, dtype) and all(contains(a, b, dtype) for a, b in zip(mg, g))
    assert not contains(mv, v * (1 + 1e-3), dtype)  # a wrong value is not explained


def test_tversky_keras_swaps_alpha_and_beta():
    """Keras 3.15.1's tversky weighs the false negatives by alpha: its (alpha, beta) is cesym's
    (beta, alpha) to rounding; the model of Keras (its declared algorithm) explains Keras, and
    the same model with the definition's weights does not."""
    import keras

    y = np.array([[1.0, 0.0, 1.0, 0.0]])
    p = np.array([[0.9, 0.6, 0.2, 0.1]])
    ours = kernels.tversky(y, p, alpha=0.3, beta=0.7)[0]
    theirs = float(np.asarray(keras.losses.tversky(y, p, alpha=0.7, beta=0.3, axis=-1))[0])
    assert abs(ours - theirs) < 1e-6  # Keras's ε (1e-7 in the denominator) aside
    assert abs(ours - float(np.asarray(keras.losses.tversky(y, p, alpha=0.3, beta=0.7, axis=-1))[0])) > 1e-2
    c = case("tversky")
    params = {"alpha": 0.3, "beta": 0.7}
    v = keras_kernel(c)(y, p, params, grad=False)[0]
    model = envelope(c, y[0], p[0], params, np.float64)[0]
    assert contains(model, v, np.float64)  # the model follows Keras ...
    assert not contains(model, ours, np.float64)  # ... and so does not contain the definition


def test_hinge_labels_are_never_converted():
    """Keras converts a batch of 0/1 labels to -1/+1 (and leaves any other batch alone); cesym
    takes the labels as given: with 2y - 1 it is Keras's number on a 0/1 batch."""
    import keras

    y = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    p = np.array([[0.3, -0.4, 2.0], [0.5, 0.25, -3.0]])
    keras_v = np.asarray(keras.losses.hinge(y, p))
    assert np.allclose(kernels.hinge(2 * y - 1, p), keras_v, rtol=1e-15, atol=0)
    assert not np.allclose(kernels.hinge(y, p), keras_v)  # 0/1 taken as the labels 0 and 1
    # the mean of max(1 - t·p, 0) over the row, to its last bits (a sum times 1/3 vs divided by 3)
    np.testing.assert_allclose(kernels.hinge(y, p), np.mean(np.maximum(1 - y * p, 0), axis=-1), rtol=4 * 2.0**-52, atol=0)
