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

from cesym.define import AXIS, C, Elem, Keras, Keyword, Loss, Public, RowSum, Variant

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

PUBLIC = [
    Public(
        name="categorical_crossentropy",
        summary="Categorical cross-entropy over ``axis`` (``keras.losses.categorical_crossentropy``).",
        variants=(
            Variant("probs", {"from_logits": False}, domain="simplex", limits="renormalised"),
            Variant("logits", {"from_logits": True}, domain="real", limits="softmax"),
        ),
        labels="distribution",
        keywords=(Keyword("from_logits", False, "flag", doc="y_pred holds logits (True) or probabilities (False)"), Keyword("label_smoothing", 0.0, "real", (0.0, 1.0), doc="ε: labels move towards the uniform distribution"), AXIS),
        keras=Keras("keras.losses.categorical_crossentropy", "keras.losses.CategoricalCrossentropy",
                    ("keras.metrics.categorical_crossentropy", "keras.metrics.CategoricalCrossentropy")),
        doc=r"""
With :math:`t_c = y_c(1-\epsilon) + \epsilon/C`: :math:`-\sum_c t_c \log(p_c/\sum_k p_k)`
(probabilities renormalised, as Keras does) or :math:`-\sum_c t_c\log\operatorname{softmax}(z)_c`.
Stable forms: ``(max z - z_c) + log1p(Σ_{k≠argmax} e^{z_k - max z})`` and
``log1p(Σ_{k≠c} p_k / p_c)``, which keep a dominant class's tiny loss.
At ±inf logits (+inf or 0 probabilities): the limits; a -inf logit under
a zero label costs 0, e.g. labels [[0, .5, .5]] at logits [[-inf, 0, 0]] give ln 2.
Gradient on logits: :math:`(e_j R^t_j - t_j R^e_j)/(e_j + R^e_j)` with :math:`e = e^{z - \max z}` and
:math:`R^v_j = \sum_{c\ne j} v_c` (no cancellation in softmax_j - 1); on probabilities
:math:`R^t_j/S - t_j R^p_j/(p_j S)`, :math:`S = \sum p`.
""",
    ),
]
