r"""Mean squared error, as ``keras.losses.mean_squared_error`` (Keras 3) defines it: seed 001's
regression loss.

.. math::  L = \frac1C \sum_c (p_c - y_c)^2

over the last axis (Keras 3's function takes no ``axis``). The squares are summed scaled (the
largest |p - y| of the row factored out), so that a row whose squares overflow or underflow
float64 (|p - y| past 1.3e154 or below 1.5e-154) still gives its value to the last digit.
"""

from cesym.define import C, Elem, Keras, Loss, Public, RowSum, Variant

y = Elem("y")  # target (any real number)
p = Elem("p")  # prediction

LOSSES = [
    Loss(
        family="mean_squared_error",
        variant="mse",
        title="mean squared error",
        value=RowSum((p - y) ** 2) / C,
        prediction=p,
        label=y,
    ),
]

PUBLIC = [
    Public(
        name="mean_squared_error",
        summary="Mean squared error over the last axis (``keras.losses.mean_squared_error``).",
        variants=(Variant("mse"),),
        labels="real",
        keras=Keras(
            "keras.losses.mean_squared_error", "keras.losses.MeanSquaredError",
            ("keras.metrics.mean_squared_error", "keras.metrics.MeanSquaredError", "keras.metrics.RootMeanSquaredError"),
            metric_of={"keras.metrics.RootMeanSquaredError": "sqrt(mean)"},
        ),
        doc=r"""
One value per sample: the mean of :math:`(p - y)^2` over the last axis, in y_pred's dtype.
Gradient: :math:`2(p - y)/C`. ±inf predictions give +inf (the gradient ±inf); NaN propagates.
""",
    ),
]
