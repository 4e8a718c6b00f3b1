r"""Categorical hinge loss, as ``keras.losses.categorical_hinge`` (Keras 3) defines it, for a
label row :math:`y` (one-hot) and scores :math:`p`:

.. math::  L = \max\big(\max_c (1 - y_c) p_c - \sum_c y_c p_c + 1,\ 0\big)

over the last axis: the margin by which the best wrong score comes within 1 of the true
class's. The wrong classes' maximum includes the true class's 0 (:math:`(1 - y_k)p_k = 0`), as
Keras's does: with every wrong score negative the "best wrong score" is 0. Gradients follow
TensorFlow's conventions: at the kink (margin exactly 0) the active side's, and a maximum
attained by k tied scores shares the gradient equally (1/k each).
"""

from sympy import Max

from cesym.define import Elem, Keras, Loss, Public, Relu, RowMax, RowSum, Variant

y = Elem("y")  # label row (one-hot; any row is taken as it is)
p = Elem("p")  # scores

LOSSES = [
    Loss(
        family="categorical_hinge",
        variant="margin",
        title="categorical hinge loss",
        value=Relu(RowMax((1 - y) * p) - RowSum(y * p) + 1),
        prediction=p,
        label=y,
        # keras.losses.categorical_hinge: maximum(max((1 - y) * p) - sum(y * p) + 1, 0)
        keras=Max(RowMax((1 - y) * p) - RowSum(y * p) + 1, 0),
    ),
]

PUBLIC = [
    Public(
        name="categorical_hinge",
        summary="Categorical hinge loss over the last axis (``keras.losses.categorical_hinge``).",
        variants=(Variant("margin"),),
        labels="distribution",
        keras=Keras("keras.losses.categorical_hinge", "keras.losses.CategoricalHinge",
                    ("keras.metrics.categorical_hinge", "keras.metrics.CategoricalHinge")),
        doc=r"""
One value per sample: :math:`\max(\max_c (1 - y_c)p_c - \sum_c y_c p_c + 1, 0)` over the last
axis. Gradient: :math:`[m \ge 0]\,((1 - y_j) s_j - y_j)` with :math:`m` the margin and
:math:`s_j` element j's share of the maximum (1/k for k tied scores, TensorFlow's convention).
±inf scores give their limits where the row has one (NaN where +inf and -inf meet); NaN
propagates.
""",
    ),
]
