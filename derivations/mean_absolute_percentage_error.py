r"""Mean absolute percentage error, as ``keras.losses.mean_absolute_percentage_error`` (Keras 3)
defines it:

.. math::  L = \frac{100}{C} \sum_c \left|\frac{y_c - p_c}{y_c}\right|

over the last axis. Keras divides by :math:`\max(|y|, 10^{-7})`
(a target of 0 costs :math:`10^9|p|`, and every target below :math:`10^{-7}` in magnitude is
weighed as :math:`10^{-7}`); the mathematics has no floor: a zero target gives +inf where
:math:`p \ne 0`. The kernels compute :math:`|p - y|/|y|` (one rounding
for the difference, one for the quotient). The gradient :math:`\operatorname{sign}(p - y)/|y|\cdot 100/C`
is 0 where :math:`p = y` (TensorFlow's convention for ``abs``).
"""

from sympy import Abs, Float, Max

from cesym.define import C, Elem, Keras, Loss, Public, RowSum, Variant

y = Elem("y", nonzero=True)  # target: a divisor
p = Elem("p")  # prediction

EPS = Float(1e-7, 53)

LOSSES = [
    Loss(
        family="mean_absolute_percentage_error",
        variant="mape",
        title="mean absolute percentage error",
        value=100 * RowSum(Abs(p - y) / Abs(y)) / C,
        prediction=p,
        label=y,
        # keras.losses.mean_absolute_percentage_error: 100 * mean(abs((y - p) / max(abs(y), eps)))
        keras=100 * (RowSum(Abs((y - p) / Max(Abs(y), EPS))) / C),
    ),
]

PUBLIC = [
    Public(
        name="mean_absolute_percentage_error",
        summary="Mean absolute percentage error over the last axis (``keras.losses.mean_absolute_percentage_error``).",
        variants=(Variant("mape"),),
        labels="real",
        keras=Keras(
            "keras.losses.mean_absolute_percentage_error", "keras.losses.MeanAbsolutePercentageError",
            ("keras.metrics.mean_absolute_percentage_error", "keras.metrics.MeanAbsolutePercentageError"),
        ),
        doc=r"""
One value per sample: 100 times the mean of :math:`|p - y|/|y|` over the last axis (no floor: a
zero target gives +inf where :math:`p \ne y`, NaN where both are 0). Gradient:
:math:`100\,\operatorname{sign}(p - y)/(C|y|)`, 0 where :math:`p = y`. ±inf predictions give
+inf; NaN propagates.
""",
    ),
]
