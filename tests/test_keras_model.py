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

    def off(labels, pred, params, grad=False):
        return keras(labels, pred, params, grad) * (1 + 2.0**-10)

    t = _tally(case, off, np.float64)
    assert t.value["unexplained"] > 0 and t.grad["unexplained"] > 0
