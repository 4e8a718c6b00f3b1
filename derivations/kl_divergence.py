r"""Kullback–Leibler divergence, as ``keras.losses.kl_divergence`` (Keras 3) defines it:

.. math::  L = \sum_c y_c \log\frac{y_c}{p_c}

over the last axis, with :math:`0\cdot\log 0 = 0` (a zero target costs nothing, whatever
:math:`p`). Keras clips both to :math:`[10^{-7}, 1]` first (so a
zero target contributes :math:`10^{-7}\log(10^{-7}/p)`, and the gradient is 0 wherever a
prediction is clipped); the mathematics does not: a zero prediction under a positive target
gives +inf.
"""

from sympy import Float, Max, Min, log

from cesym.define import Elem, Keras, Loss, Public, RowSum, Variant

y = Elem("y")  # target distribution
p = Elem("p")  # predicted distribution (probabilities in [0, 1], not renormalised)

EPS = Float(1e-7, 53)

LOSSES = [
    Loss(
        family="kl_divergence",
        variant="probs",
        title="Kullback-Leibler divergence of the prediction from the target",
        value=RowSum(y * log(y / p)),
        prediction=p,
        label=y,
        weights={y: y},
        domain="probability",
        # keras.losses.kl_divergence: clip both to [epsilon, 1], then sum(y * log(y / p))
        keras=RowSum(Max(Min(y, 1), EPS) * log(Max(Min(y, 1), EPS) / Max(Min(p, 1), EPS))),
    ),
]

PUBLIC = [
    Public(
        name="kl_divergence",
        summary="Kullback-Leibler divergence over the last axis (``keras.losses.kl_divergence``).",
        variants=(Variant("probs", domain="unit", limits="edges"),),
        labels="distribution",
        keras=Keras("keras.losses.kl_divergence", "keras.losses.KLDivergence",
                    ("keras.metrics.kl_divergence", "keras.metrics.KLDivergence")),
        doc=r"""
One value per sample: :math:`\sum_c y_c\log(y_c/p_c)` over the last axis, 0·log 0 = 0 (a zero
target costs 0 and has a zero gradient). y_pred must lie in [0, 1]. Gradient: :math:`-y/p`.
""",
    ),
]
