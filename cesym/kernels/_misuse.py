"""Misuse that is not an error: named warnings, raised once per call from the calling thread.

* :class:`SingleClassWarning`: a softmax or renormalisation over one class is 1, so the
  categorical and sparse losses are 0, with a zero gradient, whatever the input (Keras warns
  too, with a ``SyntaxWarning``, for ``categorical_crossentropy``).
* :class:`ProbabilitiesAsLogitsWarning`: ``from_logits=True`` (or a ``tf.nn`` op) given what
  looks like probabilities: the loss is then about ln C for softmax rows, and a sigmoid of a
  probability for binary ones, silently far from the one meant.

Probabilities are recognised per input, block by block in the worker threads (see
:class:`ProbabilityWatch`); the warning itself is raised by the calling thread after the blocks,
so that ``warnings`` filters and ``catch_warnings`` in the caller see it, once per call.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np

__all__ = ["ProbabilitiesAsLogitsWarning", "SingleClassWarning", "ProbabilityWatch", "single_class", "warn"]


class ProbabilitiesAsLogitsWarning(UserWarning):
    """Logits that are every one a probability: probably ``from_logits=True`` by mistake."""


class SingleClassWarning(UserWarning):
    """A categorical or sparse loss over one class: always 0."""


#: |Σ_c p_c − 1| allowed for a row to count as a probability distribution. A softmax computed in
#: float32 sums to 1 within about C·2^-24 (2^-8 at 65536 classes at worst-case rounding; in
#: practice √C·2^-24), one computed in float16 within about C·2^-11 (2^-8 at 8 classes at worst,
#: typically many more). Real logits that lie in [0, 1] and sum this close to 1 in every row of
#: an input do not occur by chance beyond a row or two.
ROW_SUM_TOLERANCE = 2.0**-8

_PROBE = 64  # elements looked at first in each block: real logits fail here, at no visible cost


def warn(warning: Warning) -> None:
    """``warnings.warn`` attributed to the first frame outside ``cesym.kernels`` (the user's call)."""
    level, f = 2, sys._getframe(1)  # noqa: SLF001
    while f is not None and f.f_globals.get("__name__", "").startswith("cesym.kernels"):
        f, level = f.f_back, level + 1
    warnings.warn(warning, stacklevel=level)


def single_class(fn: str, pred_name: str, shape: tuple[int, ...], axis: int) -> None:
    """Warn when the class axis holds one class."""
    if shape[axis] == 1:
        warn(
            SingleClassWarning(
                f"{fn}: {pred_name} has one class along axis {axis} (shape {shape}): the softmax or "
                "renormalisation over one class is 1, so the loss is 0 and its gradient 0 for every "
                "sample. For two classes given by one output, use a sigmoid (binary) cross-entropy."
            )
        )


class ProbabilityWatch:
    """Per call: are all of the input's logits probabilities? A ``precheck`` for the blocks.

    ``rows=True`` (softmax losses): every row in [0, 1] elementwise and summing to 1 within
    :data:`ROW_SUM_TOLERANCE`. ``rows=False`` (sigmoid losses, elementwise): every element in
    [0, 1] and at least one strictly inside (0, 1), so zero-initialised logits (all 0) and hard
    0/1 values do not count.

    Each block is probed first (its first rows, at least :data:`_PROBE` elements) and looked at
    whole only when the probe passes, so real logits cost a few small NumPy calls per block of
    2^17 elements. NaN counts as not a probability. The verdict is the same for any blocks and
    threads (a conjunction over rows); called from many worker threads at once, the state only
    ever moves one way (``possible`` True -> False, ``interior`` False -> True).
    """

    def __init__(self, fn: str, pred_name: str, rows: bool) -> None:
        self.fn, self.pred_name, self.rows = fn, pred_name, rows
        self.possible = True
        self.interior = rows  # only the elementwise rule needs an interior element

    def _probabilities(self, b: np.ndarray) -> bool:
        if not (b.min() >= 0 and b.max() <= 1):
            return False  # NaN fails both comparisons (min and max propagate it)
        if self.rows:
            return bool(np.all(np.abs(b.sum(axis=-1) - 1.0) <= ROW_SUM_TOLERANCE))
        if not self.interior and np.any((b > 0) & (b < 1)):
            self.interior = True
        return True

    def __call__(self, block: np.ndarray) -> None:
        if not self.possible:
            return
        probe = block[: max(1, -(-_PROBE // max(1, block.shape[-1])))]
        if not self._probabilities(probe) or (probe.shape[0] < block.shape[0] and not self._probabilities(block)):
            self.possible = False

    def report(self, n_elements: int) -> None:
        """After the blocks, in the calling thread: warn if every block was probabilities."""
        if not (self.possible and self.interior and n_elements):
            return
        if self.rows:
            what = (
                f"every row of {self.pred_name} lies in [0, 1] and sums to 1, as a softmax output does; "
                "read as logits, each such row gives a loss near ln C (C classes) whatever the label"
            )
        else:
            what = (
                f"every value of {self.pred_name} lies in [0, 1], as a sigmoid output does; read as "
                "logits, each gives a loss near ln 2 whatever the label (σ of [0, 1] is [0.5, 0.73])"
            )
        warn(
            ProbabilitiesAsLogitsWarning(
                f"{self.fn}: {what}. Pass the logits, or the probabilities with from_logits=False; "
                "if these are logits, silence this with warnings.filterwarnings('ignore', "
                "category=cesym.kernels.ProbabilitiesAsLogitsWarning)."
            )
        )
