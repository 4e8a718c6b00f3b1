r"""Huber loss, as ``keras.losses.huber`` (Keras 3) defines it, with :math:`e = p - y`:

.. math::  L = \frac1C \sum_c h_\delta(e_c), \qquad
           h_\delta(e) = \begin{cases} e^2/2 & |e| \le \delta \\
                                       \delta|e| - \delta^2/2 & |e| > \delta \end{cases}

over the last axis: quadratic near 0, linear beyond :math:`\delta > 0`, with a continuous
gradient :math:`\operatorname{clip}(e, -\delta, \delta)/C` (no convention needed at the joins).
Each piece is evaluated as written, at its own scale: :math:`e^2/2` is two roundings of itself,
also among the subnormal numbers (a form :math:`\delta\,g(e)` with :math:`g = e^2/(2\delta)`
lost digits there at :math:`\delta \gg 1`: 35 ulps at :math:`e = 3.9\cdot10^{-159}`,
:math:`\delta = 729`), and :math:`\delta(|e| - \delta/2)` has no cancellation
(:math:`|e| - \delta/2 \ge |e|/2`). Where :math:`\delta|e|` passes the largest float while
the row's mean does not, the kernels recompute the row in decimal (``cesym/kernels/_rescue.py``).
Keras evaluates both pieces and selects one.
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
        # each piece at its own scale (e²/2 down to the subnormals); δ|e| past the largest float
        # where the mean is not: the kernels' decimal rescue (cesym.kernels._rescue)
        value=RowSum(Piecewise((half * (p - y) ** 2, Abs(p - y) <= delta), (delta * (Abs(p - y) - half * delta), True))) / C,
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
