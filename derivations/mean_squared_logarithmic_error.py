r"""Mean squared logarithmic error, as ``keras.losses.mean_squared_logarithmic_error`` (Keras 3)
defines it:

.. math::  L = \frac1C \sum_c \big(\log(1 + p_c) - \log(1 + y_c)\big)^2

over the last axis, for :math:`p, y \ge -1` (−1 the edge, where :math:`\log(1 + p) = -\infty`).
Keras computes :math:`\log(\max(p, \epsilon) + 1)`, :math:`\epsilon = 10^{-7}`: every prediction
below :math:`10^{-7}` is taken as :math:`10^{-7}` (a prediction of −0.9 costs as if it were 0,
with a zero gradient), and :math:`\log(x + 1)` loses the digits of small :math:`x`
(float32: :math:`10^{-7} + 1` is :math:`1 + 2^{-23}`, 19 % high); the kernels use ``log1p``.
Keras's constant :math:`10^{-7}` is a float32 number in float64 too (:math:`1.0000000116860974\cdot 10^{-7}`).
"""

from sympy import Max, Rational, log
from sympy.codegen.cfunctions import log1p

from cesym.define import C, Elem, Keras, Loss, Public, RowSum, Variant

y = Elem("y")  # target, >= -1 (counts, prices: usually >= 0)
p = Elem("p")  # prediction, >= -1

#: Keras's epsilon as it enters: ``ops.convert_to_tensor(backend.epsilon())`` is a float32 tensor in
#: every dtype, 1e-7 rounded to float32 (0x33d6bf95 = 1.0000000116860974e-07)
EPS = Rational(14073749, 2**47)

LOSSES = [
    Loss(
        family="mean_squared_logarithmic_error",
        variant="msle",
        title="mean squared logarithmic error",
        value=RowSum((log(1 + p) - log(1 + y)) ** 2) / C,
        prediction=p,
        label=y,
        domain="log1p",
        # keras.losses.mean_squared_logarithmic_error: log(max(x, eps) + 1) for both, squared difference
        keras=RowSum((log(Max(p, EPS) + 1) - log(Max(y, EPS) + 1)) ** 2) / C,
    ),
]

PUBLIC = [
    Public(
        name="mean_squared_logarithmic_error",
        summary="Mean squared logarithmic error over the last axis (``keras.losses.mean_squared_logarithmic_error``).",
        variants=(Variant("msle", domain="log1p"),),
        labels="count",
        keras=Keras(
            "keras.losses.mean_squared_logarithmic_error", "keras.losses.MeanSquaredLogarithmicError",
            ("keras.metrics.mean_squared_logarithmic_error", "keras.metrics.MeanSquaredLogarithmicError"),
        ),
        doc=r"""
One value per sample: the mean of :math:`(\log(1 + p) - \log(1 + y))^2` over the last axis, no
floor (Keras floors both at :math:`10^{-7}`). y_pred must be >= −1: −1 gives +inf (the gradient
−inf). Gradient: :math:`2(\log(1 + p) - \log(1 + y))/((1 + p)C)`. NaN propagates.
""",
    ),
]
