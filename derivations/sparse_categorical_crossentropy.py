r"""Sparse categorical cross-entropy, as ``keras.losses.sparse_categorical_crossentropy`` defines it.

The integer label :math:`k` selects one class: :math:`y_c = [c = k]` (a one-hot row, all zero
for ``ignore_class``), and

.. math::
    L = -\sum_c y_c \log\frac{p_c}{\sum_j p_j} = -\log\frac{p_k}{\sum_j p_j}, \qquad
    L = -\log\frac{e^{z_k}}{\sum_j e^{z_j}} \text{ (logits)}.

No label smoothing (Keras has none for the sparse form).
"""

from sympy import exp, log

from cesym.define import AXIS, Elem, Keras, Keyword, Loss, Public, RowSum, Variant

y = Elem("y")  # one-hot indicator of the integer label
p = Elem("p")
z = Elem("z")

LOSSES = [
    Loss(
        family="sparse_categorical_crossentropy",
        variant="probs",
        title="sparse categorical cross-entropy on probabilities (from_logits=False)",
        value=-RowSum(y * log(p / RowSum(p))),
        prediction=p,
        weights={y: y},
        label=y,
        label_index=True,
        domain="probability",
    ),
    Loss(
        family="sparse_categorical_crossentropy",
        variant="logits",
        title="sparse categorical cross-entropy on logits (from_logits=True)",
        value=-RowSum(y * log(exp(z) / RowSum(exp(z)))),
        prediction=z,
        weights={y: y},
        label=y,
        label_index=True,
        domain="real",
    ),
]

PUBLIC = [
    Public(
        name="sparse_categorical_crossentropy",
        summary="Sparse categorical cross-entropy (``keras.losses.sparse_categorical_crossentropy``).",
        variants=(
            Variant("probs", {"from_logits": False}, domain="simplex", limits="renormalised"),
            Variant("logits", {"from_logits": True}, domain="real", limits="softmax"),
        ),
        labels="index",
        keywords=(
            Keyword("from_logits", False, "flag", doc="y_pred holds logits (True) or probabilities (False)"),
            AXIS,
            Keyword("ignore_class", None, "ignore_class", doc="samples with this label get 0 and a zero gradient"),
        ),
        keras=Keras("keras.losses.sparse_categorical_crossentropy", "keras.losses.SparseCategoricalCrossentropy",
                    ("keras.metrics.sparse_categorical_crossentropy", "keras.metrics.SparseCategoricalCrossentropy")),
        doc=r"""
Integer labels of shape (N,) or (N, 1) for y_pred (N, C); the loss is
:math:`-\log(p_k/\sum_c p_c)` or :math:`-\log\operatorname{softmax}(z)_k`. Samples whose
label equals ``ignore_class`` get 0 (and a zero gradient), whatever their predictions (NaN
included). At ±inf logits: the limits: +inf if the labelled class's logit
is -inf or another's +inf, 0 if the labelled class alone is +inf.
""",
    ),
]
