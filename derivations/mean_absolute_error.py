r"""Mean absolute error, as ``keras.losses.mean_absolute_error`` (Keras 3) defines it:

.. math::  L = \frac1C \sum_c |p_c - y_c|

over the last axis. Its gradient :math:`\operatorname{sign}(p - y)/C` is 0 where
:math:`p = y` (the kink), TensorFlow's convention for ``abs`` (its gradient is ``sign``).
"""

from sympy import Abs

from cesym.define import C, Elem, Keras, Loss, Public, RowSum, Variant

y = Elem("y")  # target (any real number)
p = Elem("p")  # prediction

LOSSES = [
    Loss(
        family="mean_absolute_error",
        variant="mae",
        title="mean absolute error",
        value=RowSum(Abs(p - y)) / C,
        prediction=p,
        label=y,
        # keras.losses.mean_absolute_error: mean(abs(y_true - y_pred))
        keras=RowSum(Abs(y - p)) / C,
    ),
]

PUBLIC = [
    Public(
        name="mean_absolute_error",
        summary="Mean absolute error over the last axis (``keras.losses.mean_absolute_error``).",
        variants=(Variant("mae"),),
        labels="real",
        keras=Keras(
            "keras.losses.mean_absolute_error", "keras.losses.MeanAbsoluteError",
            ("keras.metrics.mean_absolute_error", "keras.metrics.MeanAbsoluteError"),
        ),
        doc=r"""
One value per sample: the mean of :math:`|p - y|` over the last axis. Gradient:
:math:`\operatorname{sign}(p - y)/C`, 0 where :math:`p = y` (TensorFlow's convention at the
kink). ±inf predictions give +inf (the gradient ±1/C); NaN propagates.
""",
    ),
]
