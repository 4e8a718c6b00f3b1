r"""Poly-1 binary cross-entropy (Leng et al., "PolyLoss", ICLR 2022), on logits.

The binary cross-entropy plus :math:`\epsilon` times its first polynomial term
:math:`1 - p_t`, with :math:`p = \sigma(x)` and :math:`p_t = y p + (1 - y)(1 - p)`, the mean
over the row:

.. math::  L = \frac1C \sum_c -\big(y \log p + (1 - y)\log(1 - p)\big) + \epsilon\,(1 - p_t).

Written as the paper writes it, with σ spelled out as 1/(1 + e^{-x}): ``cesym generate`` finds
the stable forms (softplus for the logs, σ(±x) for 1 - p_t) itself.
"""

from sympy import Symbol, exp, log

from cesym.define import AXIS, C, Elem, Keyword, Loss, Public, RowSum, Variant

y = Elem("y")  # label, 0/1 or soft
x = Elem("x")  # logit
epsilon = Symbol("epsilon", real=True)

p = 1 / (1 + exp(-x))
p_t = y * p + (1 - y) * (1 - p)

LOSSES = [
    Loss(
        family="poly1_binary",
        variant="logits",
        title="poly-1 binary cross-entropy on logits",
        value=RowSum(-(y * log(p) + (1 - y) * log(1 - p)) + epsilon * (1 - p_t)) / C,
        prediction=x,
        label=y,
        params=(epsilon,),
        param_ranges={epsilon: (0.0, 2.0)},
    ),
]

PUBLIC = [
    Public(
        name="poly1_binary_crossentropy",
        summary="Poly-1 binary cross-entropy on logits, mean over ``axis``: BCE + ε(1 − p_t) (PolyLoss, 2022).",
        variants=(Variant("logits", domain="real"),),
        labels="binary",
        keywords=(Keyword("epsilon", 1.0, "real", (0.0, 2.0), doc="ε, the weight of 1 − p_t"), AXIS),
    ),
]
