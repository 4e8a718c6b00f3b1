"""Which public kernel computes which derived loss, and how to call it on a batch of rows.

Used by the accuracy checks (tests, ``cesym verify``): each :class:`KernelCase` names a public
function of :mod:`cesym.kernels` with fixed keyword arguments, the loss (``family.variant``) it
computes, the kind of labels and predictions it takes, and how to call it on rows along the
last axis.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["KernelCase", "CASES", "case", "label_kinds", "one_hot"]


@dataclass(frozen=True)
class KernelCase:
    """One public kernel in one configuration."""

    kernel: str  # public name in cesym.kernels
    loss: str  # Loss.name of the definition it computes
    inputs: Literal["probs", "logits", "real"]
    labels: Literal["dense", "sparse", "none"]
    smoothing: bool = False  # takes label_smoothing
    keywords: dict = field(default_factory=dict)
    elementwise: bool = False  # one value per element (no reduction over the row)
    nn_keywords: bool = False  # tf.nn style: labels=, logits=

    @property
    def id(self) -> str:
        kw = ",".join(f"{k}={v}" for k, v in self.keywords.items())
        return f"{self.kernel}[{kw}]" if kw else self.kernel

    def call(self, labels, pred, params: dict, grad: bool = False, module=None):
        """Call the kernel (value, or gradient with ``grad``) on rows along the last axis.

        ``module``: where the function is looked up (default :mod:`cesym.kernels`; the verifier
        passes :mod:`cesym.kernels.naive` for the naive forms). The checks sample one-class rows
        and logits in [0, 1] on purpose: the kernels' misuse warnings are silenced here (the
        numbers are what is checked).
        """
        from cesym import kernels

        fn: Callable = getattr(module or kernels, self.kernel + ("_grad" if grad else ""))
        kw = dict(self.keywords)
        kw.update(params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", kernels.SingleClassWarning)
            warnings.simplefilter("ignore", kernels.ProbabilitiesAsLogitsWarning)
            if self.nn_keywords:
                return fn(labels=labels, logits=pred, **kw)
            if self.labels == "none":
                return fn(pred, **kw)
            return fn(labels, pred, **kw)


CASES: list[KernelCase] = [
    KernelCase("binary_crossentropy", "binary_crossentropy.probs", "probs", "dense", True, {"from_logits": False}),
    KernelCase("binary_crossentropy", "binary_crossentropy.logits", "logits", "dense", True, {"from_logits": True}),
    KernelCase("categorical_crossentropy", "categorical_crossentropy.probs", "probs", "dense", True, {"from_logits": False}),
    KernelCase("categorical_crossentropy", "categorical_crossentropy.logits", "logits", "dense", True, {"from_logits": True}),
    KernelCase("sparse_categorical_crossentropy", "sparse_categorical_crossentropy.probs", "probs", "sparse", False, {"from_logits": False}),
    KernelCase("sparse_categorical_crossentropy", "sparse_categorical_crossentropy.logits", "logits", "sparse", False, {"from_logits": True}),
    KernelCase("sigmoid_cross_entropy_with_logits", "tf_nn.sigmoid_cross_entropy_with_logits", "logits", "dense", elementwise=True, nn_keywords=True),
    KernelCase("softmax_cross_entropy_with_logits", "tf_nn.softmax_cross_entropy_with_logits", "logits", "dense", nn_keywords=True),
    KernelCase("sparse_softmax_cross_entropy_with_logits", "sparse_categorical_crossentropy.logits", "logits", "sparse", nn_keywords=True),
    KernelCase("activity_penalty", "activity_penalty.l2_batch_mean", "real", "none"),
]


def label_kinds(case: KernelCase) -> list[tuple[str, bool, bool]]:
    """The label kinds a case is checked with: (name, soft, smoothing).

    Hard labels always; soft labels for dense labels; label smoothing where the kernel has it.
    """
    kinds = [("hard", False, False)]
    if case.labels == "dense":
        kinds.append(("soft", True, False))
    if case.smoothing:
        kinds.append(("smoothed", False, True))
    return kinds


def case(kernel: str, **keywords) -> KernelCase:
    """The case of ``kernel`` whose fixed keywords include ``keywords``."""
    for c in CASES:
        if c.kernel == kernel and all(c.keywords.get(k) == v for k, v in keywords.items()):
            return c
    raise KeyError(f"no kernel case {kernel} {keywords}")


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    """Integer labels -> rows of 0/1 (for the reference, which takes dense rows)."""
    return (np.asarray(labels)[..., None] == np.arange(n)).astype(np.float64)
