r"""Huber loss, as ``keras.losses.huber`` (Keras 3) defines it, with :math:`e = p - y`:

.. math::  L = \frac1C \sum_c h_\delta(e_c), \qquad
           h_\delta(e) = \begin{cases} e^2/2 & |e| \le \delta \\
                                       \delta|e| - \delta^2/2 & |e| > \delta \end{cases}

over the last axis: quadratic near 0, linear beyond :math:`\delta > 0`, with a continuous
gradient :math:`\operatorname{clip}(e, -\delta, \delta)/C` (no convention needed at the joins).
The loss is written :math:`h_\delta(e) = \delta\,g(e)` with :math:`g(e) = e^2/(2\delta)` or
:math:`|e| - \delta/2`: no piece of :math:`g` exceeds :math:`|e|` (no cancellation either:
:math:`|e| - \delta/2 \ge |e|/2` on the linear piece), and :math:`\delta/C` multiplies the row's
sum last, so a row whose :math:`\delta|e|` passes the largest float while its mean does not
keeps its value. Keras evaluates both pieces and selects one.
"""

from sympy import Abs, Piecewise, Rational, Symbol

from cesym.define import C, Elem, Keras, Keyword, Loss, Public, RowSum, Variant

y = Elem("y")  # target
p = Elem("p")  # prediction
delta = Symbol("delta", positive=True)

half = Rational(1, 2)

LOSSES = [
    Loss(
        family="huber",
        variant="smooth_l1",
        title="Huber loss",
        # h_δ(e) = δ·g(e), g = e²/(2δ) or |e| - δ/2: no piece of g exceeds |e|, and δ/C multiplies
        # the row's sum of g (δ|e| itself overflows past |e| = 1.8e308/δ where the mean does not)
        value=delta * RowSum(Piecewise((half * (p - y) ** 2 / delta, Abs(p - y) <= delta), (Abs(p - y) - half * delta, True))) / C,
        prediction=p,
        label=y,
        params=(delta,),
        param_ranges={delta: (1e-3, 1e3)},
        # keras.losses.huber: where(|e| <= delta, 0.5 * e**2, delta * |e| - 0.5 * delta**2), e = y_pred - y_true
        keras=RowSum(Piecewise((half * (p - y) ** 2, Abs(p - y) <= delta), (delta * Abs(p - y) - half * delta**2, True))) / C,
    ),
]

PUBLIC = [
    Public(
        name="huber",
        summary="Huber loss over the last axis (``keras.losses.huber``).",
        variants=(Variant("smooth_l1"),),
        labels="real",
        keywords=(Keyword("delta", 1.0, "real", (1e-3, 1e3), doc="where the loss turns from quadratic to linear"),),
        keras=Keras("keras.losses.huber", "keras.losses.Huber"),
        doc=r"""
One value per sample: the mean of :math:`e^2/2` (:math:`|e| \le \delta`) or
:math:`\delta|e| - \delta^2/2` (beyond) over the last axis, :math:`e = p - y`. Gradient:
:math:`\operatorname{clip}(e, -\delta, \delta)/C`. ±inf predictions give +inf (the gradient
:math:`\pm\delta/C`); NaN propagates.
""",
    ),
]
