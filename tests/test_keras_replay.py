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


def test_no_replay_for_declared_algorithms():
    c = case("huber")
    b = sample(c, np.float32, 3, 4, seed=1)
    assert R.replay(c, b.labels, b.pred, b.params) is None
