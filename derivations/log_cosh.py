r"""Logarithm of the hyperbolic cosine of the prediction error, as ``keras.losses.log_cosh``
(Keras 3) defines it.

.. math::  L = \frac1C \sum_c \log\cosh(p_c - y_c)

over the last axis: about :math:`e^2/2` for a small error :math:`e` and :math:`|e| - \log 2`
for a large one. Keras computes :math:`e + \operatorname{softplus}(-2e) - \log 2`, which cancels
for small :math:`e` (float32: 0 for :math:`|e| = 10^{-4}`, where the loss is
:math:`5\cdot10^{-9}`), with :math:`\log 2` rounded to float32 in float64 too (each float64
value is :math:`1.9\cdot10^{-9}` low); the kernel evaluates :math:`\log\cosh` in a form with no
cancellation.
"""

from sympy import Abs, Max, Rational, cosh, exp, log
from sympy.codegen.cfunctions import log1p

from cesym.define import C, Elem, Keras, Loss, Public, RowSum, Variant

#: ln 2 rounded to float32 (0x3f317218), what Keras subtracts in float32 and float64 alike
LOG2_FLOAT32 = Rational(11629080, 2**24)

def _tf_softplus(u):
    """tf.math.softplus as TensorFlow evaluates it: max(u, 0) + log1p(exp(-|u|))."""
    return Max(u, 0) + log1p(exp(-Abs(u)))


y = Elem("y")  # target
p = Elem("p")  # prediction

LOSSES = [
    Loss(
        family="log_cosh",
        variant="logcosh",
        title="log-cosh error",
        value=RowSum(log(cosh(p - y))) / C,
        prediction=p,
        label=y,
        # keras.losses.log_cosh: x + softplus(-2x) - log(2) with x = y_pred - y_true; its
        # log(2.0) is a float32 constant in every dtype (float64: 1.9e-9 from ln 2)
        keras=RowSum((p - y) + _tf_softplus(-2 * (p - y)) - LOG2_FLOAT32) / C,
    ),
]

PUBLIC = [
    Public(
        name="log_cosh",
        summary="Log-cosh error over the last axis (``keras.losses.log_cosh``).",
        variants=(Variant("logcosh"),),
        labels="real",
        keras=Keras("keras.losses.log_cosh", "keras.losses.LogCosh", ("keras.metrics.LogCoshError",)),
        doc=r"""
One value per sample: the mean of :math:`\log\cosh(p - y)` over the last axis. Gradient:
:math:`\tanh(p - y)/C`. ±inf predictions give +inf (the gradient ±1/C); NaN propagates.
""",
    ),
]
