r"""Sparse categorical cross-entropy, as ``keras.losses.sparse_categorical_crossentropy`` defines it.

The integer label :math:`k` selects one class: :math:`y_c = [c = k]` (a one-hot row, all zero
for ``ignore_class``), and

.. math::
    L = -\sum_c y_c \log\frac{p_c}{\sum_j p_j} = -\log\frac{p_k}{\sum_j p_j}, \qquad
    L = -\log\frac{e^{z_k}}{\sum_j e^{z_j}} \text{ (logits)}.

No label smoothing (Keras has none for the sparse form).
"""

from sympy import exp, log

from cesym.define import Loss
from cesym.primitives import Elem, RowSum

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
