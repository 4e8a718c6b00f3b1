r"""Categorical cross-entropy, as ``keras.losses.categorical_crossentropy`` (Keras 3) defines it.

With smoothed labels :math:`t_c = y_c(1 - \epsilon) + \epsilon/C` over the :math:`C` classes of
``axis``:

.. math::
    L = -\sum_c t_c \log\frac{p_c}{\sum_k p_k} \quad\text{(probabilities, renormalised as Keras
    does)}, \qquad
    L = -\sum_c t_c \log\frac{e^{z_c}}{\sum_k e^{z_k}} \quad\text{(logits)}.

Labels need not sum to 1. Keras clips the renormalised probabilities to [1e-7, 1 - 1e-7]; the
mathematics does not.
"""

from sympy import Symbol, exp, log

from cesym.define import Loss
from cesym.primitives import C, Elem, RowSum

y = Elem("y")  # label
p = Elem("p")  # predicted probability (any non-negative scale: renormalised)
z = Elem("z")  # logit
t = Elem("t")  # smoothed label
label_smoothing = Symbol("label_smoothing", real=True)

weights = {t: y * (1 - label_smoothing) + label_smoothing / C}

LOSSES = [
    Loss(
        family="categorical_crossentropy",
        variant="probs",
        title="categorical cross-entropy on probabilities (from_logits=False)",
        value=-RowSum(t * log(p / RowSum(p))),
        prediction=p,
        label=y,
        weights=weights,
        params=(label_smoothing,),
        domain="probability",
    ),
    Loss(
        family="categorical_crossentropy",
        variant="logits",
        title="categorical cross-entropy on logits (from_logits=True)",
        value=-RowSum(t * log(exp(z) / RowSum(exp(z)))),
        prediction=z,
        label=y,
        weights=weights,
        params=(label_smoothing,),
        domain="real",
    ),
]
