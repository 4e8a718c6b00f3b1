"""The sampler's draws: its shortcut for ``Generator.choice`` gives the same numbers from the same
stream, so the sampled points (and every report number measured on them) do not depend on it."""

from __future__ import annotations

import numpy as np
import pytest

from cesym.verify import sampling


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 8, 40])
def test_choice_is_generator_choice_on_the_same_stream(n):
    """``_choice(rng, values, n)`` and ``rng.choice(values, n)``: the same values and dtype, and
    the stream left at the same place (the next draw agrees), for lists and arrays of 2 and 4."""
    for values in ([-1.0, 1.0], [0.0, 1.0], np.array([0.25, -3.5]), [0.1, 0.2, 1.0, 0.7]):
        a, b = np.random.default_rng([7, n]), np.random.default_rng([7, n])
        for _ in range(20):
            got, want = sampling._choice(a, values, n), b.choice(values, n)
            assert got.dtype == want.dtype and np.array_equal(got, want)
        assert a.random() == b.random()


def test_samples_are_seeded():
    """The same case, dtype, row length and seed give the same batch, bit for bit."""
    from cesym.verify.registry import CASES

    case = next(c for c in CASES if c.inputs == "logits" and c.labels == "dense")
    one, two = (sampling.sample(case, np.float32, 5, 60, seed=3) for _ in range(2))
    assert one.pred.tobytes() == two.pred.tobytes() and np.array_equal(one.labels, two.labels) and one.strata == two.strata
