r"""Poly-1 cross-entropy (Leng et al., "PolyLoss", ICLR 2022), on logits.

The cross-entropy plus :math:`\epsilon` times its first polynomial term :math:`1 - p_t`, with
:math:`p = \operatorname{softmax}(z)` and :math:`p_t = \sum_c y_c p_c`:

.. math::  L = -\sum_c y_c \log p_c + \epsilon\,\Big(1 - \sum_c y_c p_c\Big).

Written as the paper writes it; ``cesym generate`` finds the stable forms (the shifted
log-softmax, and :math:`1 - p_t` without cancellation for one-hot labels).
"""

from sympy import Symbol, exp, log

from cesym.declare import AXIS, Keyword, Public, Variant
from cesym.define import Loss
from cesym.primitives import Elem, RowSum

y = Elem("y")  # label distribution
z = Elem("z")  # logit
epsilon = Symbol("epsilon", real=True)

softmax = exp(z) / RowSum(exp(z))

LOSSES = [
    Loss(
        family="poly1_crossentropy",
        variant="logits",
        title="poly-1 cross-entropy on logits",
        value=-RowSum(y * log(softmax)) + epsilon * (1 - RowSum(y * softmax)),
        prediction=z,
        label=y,
        weights={y: y},
        params=(epsilon,),
        param_ranges={epsilon: (-1.0, 2.0)},
    ),
]

PUBLIC = [
    Public(
        name="poly1_crossentropy",
        summary="Poly-1 cross-entropy over ``axis``: CE + ε(1 − p_t) (PolyLoss, Leng et al. 2022).",
        variants=(Variant("logits", domain="real", limits=None),),
        labels="distribution",
        keywords=(Keyword("epsilon", 1.0, "real", (-1.0, 2.0), doc="ε, the weight of 1 − p_t"), AXIS),
        doc="Labels are rows of class probabilities (one-hot for hard labels).",
    ),
]
