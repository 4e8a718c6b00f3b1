r"""Generalized cross-entropy (Zhang & Sabuncu, 2018), as
``keras.losses.categorical_generalized_cross_entropy`` (Keras 3) defines it, for an integer
label :math:`k` and class probabilities :math:`p`:

.. math::  L = \frac{1 - p_k^{\,q}}{q}, \qquad 0 < q \le 1,

cross-entropy as :math:`q \to 0` (:math:`-\log p_k`), mean absolute error at :math:`q = 1`.
Computed as :math:`-\operatorname{expm1}(q\log p_k)/q`: :math:`1 - p_k^q` cancels for
:math:`p_k` near 1 or a small :math:`q` (Keras's form: float32 gives 0 for
:math:`p_k = 1 - 2^{-24}`, :math:`q = 10^{-3}`, where the loss is :math:`6\cdot10^{-8}`).
"""

from sympy import Symbol

from cesym.define import AXIS, Elem, Keras, Keyword, Loss, Public, RowSum, Variant

y = Elem("y")  # one-hot indicator of the integer label
p = Elem("p")  # class probabilities (not renormalised)
q = Symbol("q", positive=True)

LOSSES = [
    Loss(
        family="categorical_generalized_cross_entropy",
        variant="probs",
        title="generalized cross-entropy on probabilities",
        value=(1 - RowSum(y * p) ** q) / q,
        prediction=p,
        label=y,
        weights={y: y},
        label_index=True,
        params=(q,),
        domain="probability",
        param_ranges={q: (1e-6, 1.0)},
    ),
]

PUBLIC = [
    Public(
        name="categorical_generalized_cross_entropy",
        summary="Generalized cross-entropy of integer labels (``keras.losses.categorical_generalized_cross_entropy``).",
        variants=(Variant("probs", domain="unit", limits="edges"),),
        labels="index",
        keywords=(Keyword("q", None, "real", (1e-6, 1.0), doc="the noise parameter: cross-entropy as q -> 0"),),
        keras=Keras("keras.losses.categorical_generalized_cross_entropy",
                    "keras.losses.CategoricalGeneralizedCrossEntropy", one_hot_as_given=True),
        doc=r"""
Integer labels of shape (N,) or (N, 1) for y_pred (N, C) of class probabilities in [0, 1]; the
loss of a sample is :math:`(1 - p_k^q)/q`. Gradient: :math:`-p_k^{q-1}` at the label's class, 0
elsewhere.
""",
    ),
]
