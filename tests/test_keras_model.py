"""The model of Keras's algorithm explains Keras's deviations, and only Keras's."""

import numpy as np
import pytest

from cesym.keras.calls import keras_kernel
from cesym.keras.check import KerasTally, classify
from cesym.keras.model import bounds
from cesym.verify.registry import CASES, label_kinds
from cesym.verify.sampling import sample

from conftest import SEED


def test_clip_bounds_as_keras_casts_them():
    lo, hi = bounds(np.float32)
    assert hi == 1 - 2.0**-23 and lo == float(np.float32(1e-7))


#: Families whose Keras form clips the probabilities to [1e-7, 1 - 1e-7] (deviations on these samples).
CLIPPED = {"binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"}


def _tally(case, keras_call, dtype, soft=False, smooth=False):
    t = KerasTally()
    for n in (2, 3):
        t.merge(classify(case, sample(case, dtype, n, 18, seed=SEED, soft=soft, smoothing=smooth), keras_call))
    return t


@pytest.mark.parametrize("case", [c for c in CASES if c.kernel != "activity_penalty"], ids=lambda c: c.id)
def test_every_keras_deviation_is_explained(case):
    for dtype in (np.float32, np.float64):
        for _, soft, smooth in label_kinds(case):
            t = _tally(case, keras_kernel(case), dtype, soft, smooth)
            assert t.value["unexplained"] == 0 and t.grad["unexplained"] == 0, t.unexplained_examples
            if case.inputs == "probs" and case.loss.split(".")[0] in CLIPPED:  # the clip is at work on these samples
                assert t.value["explained"] > 0


def test_a_wrong_keras_is_not_explained():
    """Keras's outputs scaled by 1 + 2**-10: the model must not absorb that."""
    case = next(c for c in CASES if c.kernel == "categorical_crossentropy" and c.keywords["from_logits"])
    keras = keras_kernel(case)

    def off(labels, pred, params, grad=False):  # grad="both": (values, gradient) from one tape
        out = keras(labels, pred, params, grad)
        return tuple(a * (1 + 2.0**-10) for a in out) if grad == "both" else out * (1 + 2.0**-10)

    t = _tally(case, off, np.float64)
    assert t.value["unexplained"] > 0 and t.grad["unexplained"] > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_mean_whose_sum_overflows_is_inf_in_the_model(dtype):
    """TensorFlow's reduce_mean sums before it divides: eight Huber terms of a quarter of the
    largest float overflow to inf in Keras where the mean itself is a float. The model takes the
    sum first too (1/C is not distributed over it), so it explains the inf; a mean of terms that
    fit stays finite in it."""
    from cesym.keras.model import contains, envelope
    from cesym.verify.registry import case as case_of

    c = case_of("huber")
    fmax = float(np.finfo(dtype).max)
    params = {p[0]: (p[1] if p[1] is not None else 1.0) for p in c.params}
    labels = np.zeros((1, 8), dtype)
    for scale, overflows in ((0.25, True), (0.1, False)):
        pred = np.full((1, 8), scale * fmax, dtype)
        keras_value = float(np.asarray(keras_kernel(c)(labels, pred, params))[0])
        assert np.isinf(keras_value) == overflows
        value, _ = envelope(c, labels[0], pred[0], params, dtype)
        assert contains(value, keras_value, dtype)
        assert contains(value, np.inf, dtype) == overflows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_envelope_past_the_largest_float_contains_what_lies_in_it(dtype):
    """An interval whose ends lie past the format's range (a cancelled gradient's ±7e72 in
    float32) holds every float between them: its ends need no ulp of widening (one computed
    there was NaN, and 0.0 inside [-7e72, 7e72] read as outside)."""
    import mpmath

    from cesym.keras.model import contains

    wide = mpmath.iv.mpf(["-6.75e72", "6.75e72"]) if dtype == np.float32 else mpmath.iv.mpf(["-2.5e640", "2.5e640"])
    assert contains(wide, 0.0, dtype) and contains(wide, -1.5, dtype)
    assert contains(wide, float(np.finfo(dtype).max), dtype)
    above = mpmath.iv.mpf(["1e39", "2e39"]) if dtype == np.float32 else mpmath.iv.mpf(["1e309", "2e309"])
    assert not contains(above, 1.0, dtype) and contains(above, np.inf, dtype)
