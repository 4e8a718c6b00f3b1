r"""Binary cross-entropy, as ``keras.losses.binary_crossentropy`` (Keras 3) defines it.

Per element, with smoothed label :math:`t = y(1 - \epsilon) + \epsilon/2` (``label_smoothing``
:math:`\epsilon`) and :math:`u = 1 - t`:

.. math::  \ell = -\big(t \log p + u \log(1 - p)\big), \qquad p = \sigma(x) \text{ from logits},

and the loss of a row is the mean of :math:`\ell` over ``axis`` (size :math:`C`).
Keras clips p to [1e-7, 1 - 1e-7] first; the mathematics does not.
"""

from sympy import Symbol, log

from cesym.define import AXIS, C, Elem, Keras, Keyword, Loss, Public, RowSum, Sigmoid, Variant

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

PUBLIC = [
    Public(
        name="binary_crossentropy",
        summary="Binary cross-entropy, mean over ``axis`` (``keras.losses.binary_crossentropy``).",
        variants=(
            Variant("probs", {"from_logits": False}, domain="unit", limits="edges"),
            Variant("logits", {"from_logits": True}, domain="real", limits="sigmoid"),
        ),
        labels="binary",
        keywords=(Keyword("from_logits", False, "flag", doc="y_pred holds logits (True) or probabilities (False)"), Keyword("label_smoothing", 0.0, "real", (0.0, 1.0), doc="ε: labels move towards the uniform distribution"), AXIS),
        keras=Keras("keras.losses.binary_crossentropy", "keras.losses.BinaryCrossentropy",
                    ("keras.metrics.binary_crossentropy", "keras.metrics.BinaryCrossentropy")),
        doc=r"""
With :math:`t = y(1-\epsilon) + \epsilon/2`, :math:`u = 1 - t` and :math:`p = \sigma(x)` when
``from_logits``: :math:`\operatorname{mean}_{axis} -(t\log p + u\log(1-p))`.
Stable forms: ``t·softplus(-x) + u·softplus(x)`` on logits (two non-negative terms);
``log1p(-p)`` on probabilities. y_pred must lie in [0, 1] when ``from_logits`` is False.
At ±inf logits and at p = 0 or 1: the limits, e.g.
``binary_crossentropy([[0, 1]], [[-inf, 2]], from_logits=True)`` is softplus(-2)/2.
Gradient: ``(u σ(x) - t σ(-x))/C`` on logits, ``(u/(1-p) - t/p)/C`` on probabilities.
""",
    ),
]
