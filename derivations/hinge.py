r"""Hinge and squared hinge losses, as ``keras.losses.hinge`` and ``keras.losses.squared_hinge``
(Keras 3) define them, for class labels :math:`t = \pm 1`:

.. math::  L = \frac1C \sum_c \max(1 - t_c p_c, 0), \qquad
           L_2 = \frac1C \sum_c \max(1 - t_c p_c, 0)^2

over the last axis. At the kink :math:`t p = 1` the hinge's gradient is :math:`-t/C`, as
TensorFlow's ``maximum`` passes the gradient to its first argument on a tie; the squared hinge's
is 0 there. Keras converts labels to :math:`2t - 1` when every label of the batch is 0 or 1
(and leaves them alone otherwise, so the same 0/1 row gives two different losses in two batches);
the kernels take the labels as they come: pass :math:`2t - 1` for 0/1 labels.
"""

from sympy import Heaviside, Max

from cesym.define import C, Elem, Keras, Loss, Public, Relu, RowSum, Variant

t = Elem("t")  # class label, -1 or +1 (any real number)
p = Elem("p")  # prediction (a score; the decision is its sign)

LOSSES = [
    Loss(
        family="hinge",
        variant="plain",
        title="hinge loss",
        value=RowSum(Relu(1 - t * p)) / C,
        prediction=p,
        label=t,
        # keras.losses.hinge (labels not all 0/1): mean(maximum(1 - y_true * y_pred, 0))
        keras=RowSum(Max(1 - t * p, 0)) / C,
    ),
    Loss(
        family="hinge",
        variant="squared",
        title="squared hinge loss",
        value=RowSum(Relu(1 - t * p) ** 2) / C,
        prediction=p,
        label=t,
        # keras.losses.squared_hinge: mean(square(maximum(1 - y_true * y_pred, 0)))
        keras=RowSum(Max(1 - t * p, 0) ** 2) / C,
    ),
]

_LABELS = r"""
Labels are -1 or +1 (any real number is taken as it is): Keras converts 0/1 labels to -1/+1
when every label of the batch is 0 or 1; cesym never converts (a row's loss does not depend
on the rest of the batch): pass ``2 * y - 1``."""

PUBLIC = [
    Public(
        name="hinge",
        summary="Hinge loss over the last axis (``keras.losses.hinge``).",
        variants=(Variant("plain"),),
        labels="sign",
        keras=Keras("keras.losses.hinge", "keras.losses.Hinge", ("keras.metrics.hinge", "keras.metrics.Hinge")),
        doc=r"""
One value per sample: the mean of :math:`\max(1 - t p, 0)` over the last axis. Gradient:
:math:`-t\,[t p \le 1]/C` (at the kink :math:`t p = 1`: :math:`-t/C`, TensorFlow's convention).
±inf predictions give their limits (+inf on the wrong side, 0 on the right one); NaN propagates.
""" + _LABELS,
    ),
    Public(
        name="squared_hinge",
        summary="Squared hinge loss over the last axis (``keras.losses.squared_hinge``).",
        variants=(Variant("squared"),),
        labels="sign",
        keras=Keras("keras.losses.squared_hinge", "keras.losses.SquaredHinge",
                    ("keras.metrics.squared_hinge", "keras.metrics.SquaredHinge")),
        doc=r"""
One value per sample: the mean of :math:`\max(1 - t p, 0)^2` over the last axis. Gradient:
:math:`-2t\max(1 - t p, 0)/C` (0 at the kink). ±inf predictions give their limits; NaN propagates.
""" + _LABELS,
    ),
]
