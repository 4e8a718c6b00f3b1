r"""Poisson loss, as ``keras.losses.poisson`` (Keras 3) defines it: the negative log-likelihood of
counts :math:`y` under a Poisson rate :math:`p > 0`, up to the terms free of :math:`p`:

.. math::  L = \frac1C \sum_c \big(p_c - y_c \log p_c\big)

over the last axis. Keras computes :math:`p - y\log(p + 10^{-7})`;
the mathematics adds nothing: a rate 0 under a positive count gives +inf (its limit), under a zero
count 0 (:math:`0\cdot\log 0 = 0`).
"""

from sympy import Float, log

from cesym.define import C, Elem, Keras, Loss, Public, RowSum, Variant

y = Elem("y")  # count (>= 0; the kernels take any real number)
p = Elem("p")  # predicted rate, >= 0

LOSSES = [
    Loss(
        family="poisson",
        variant="rate",
        title="Poisson loss on rates",
        value=RowSum(p - y * log(p)) / C,
        prediction=p,
        label=y,
        weights={y: y},
        domain="probability",  # the rate may be 0 (an edge: log 0 = -inf); the label weight is guarded
        # keras.losses.poisson: y_pred - y_true * log(y_pred + epsilon), epsilon = 1e-7
        keras=RowSum(p - y * log(p + Float(1e-7, 53))) / C,
    ),
]

PUBLIC = [
    Public(
        name="poisson",
        summary="Poisson loss over the last axis (``keras.losses.poisson``).",
        variants=(Variant("rate", domain="positive"),),
        labels="count",
        keras=Keras("keras.losses.poisson", "keras.losses.Poisson", ("keras.metrics.poisson", "keras.metrics.Poisson")),
        doc=r"""
One value per sample: the mean of :math:`p - y\log p` over the last axis; y_pred must be
non-negative (0 is the edge: +inf under a positive count, 0 under a zero one). Gradient:
:math:`(1 - y/p)/C`. +inf rates give +inf; NaN propagates.
""",
    ),
]
