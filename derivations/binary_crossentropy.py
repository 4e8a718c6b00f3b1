r"""Binary cross-entropy, as ``keras.losses.binary_crossentropy`` (Keras 3) defines it.

Per element, with smoothed label :math:`t = y(1 - \epsilon) + \epsilon/2` (``label_smoothing``
:math:`\epsilon`) and :math:`u = 1 - t`:

.. math::  \ell = -\big(t \log p + u \log(1 - p)\big), \qquad p = \sigma(x) \text{ from logits},

and the loss of a row is the mean of :math:`\ell` over ``axis`` (size :math:`C`).
Keras clips p to [1e-7, 1 - 1e-7] first; the mathematics does not.
"""

from sympy import Symbol, log

from cesym.define import Loss
from cesym.primitives import C, Elem, RowSum, Sigmoid

y = Elem("y")  # label (0/1, or soft)
p = Elem("p")  # predicted probability
x = Elem("x")  # logit
t = Elem("t")  # weight of log p: the smoothed label
u = Elem("u")  # weight of log(1 - p)
label_smoothing = Symbol("label_smoothing", real=True)

weights = {
    t: y * (1 - label_smoothing) + label_smoothing / 2,
    u: (1 - y) * (1 - label_smoothing) + label_smoothing / 2,
}

LOSSES = [
    Loss(
        family="binary_crossentropy",
        variant="probs",
        title="binary cross-entropy on probabilities (from_logits=False)",
        value=RowSum(-(t * log(p) + u * log(1 - p))) / C,
        prediction=p,
        label=y,
        weights=weights,
        params=(label_smoothing,),
        domain="probability",
    ),
    Loss(
        family="binary_crossentropy",
        variant="logits",
        title="binary cross-entropy on logits (from_logits=True)",
        value=RowSum(-(t * log(Sigmoid(x)) + u * log(1 - Sigmoid(x)))) / C,
        prediction=x,
        label=y,
        weights=weights,
        params=(label_smoothing,),
        domain="real",
    ),
]
