r"""Tversky loss (Salehi, Erdogmus and Gholipour 2017, arXiv:1706.05721), for a label mask
:math:`y` and predicted probabilities :math:`p`:

.. math::  L = 1 - \frac{TP}{TP + \alpha\,FP + \beta\,FN}, \qquad
           TP = \sum_c y_c p_c,\ FP = \sum_c (1 - y_c) p_c,\ FN = \sum_c y_c (1 - p_c)

over the last axis: α weighs false positives, β false negatives (α = β = 1/2 is the Dice
loss). ``keras.losses.tversky`` (Keras 3.15.1) swaps them: it multiplies
:math:`\sum y(1 - p)` (the false negatives) by ``alpha`` and :math:`\sum (1 - y)p` by ``beta``
(fixed upstream after 3.15); the kernels follow the definition, the model of Keras follows
Keras, and where α ≠ β the two differ by far more than rounding. Keras also adds
:math:`10^{-7}` to the denominator and by default reduces the whole batch
(``axis=None``); cesym reduces over ``axis`` (Keras is compared with ``axis=-1``).

A row without a label (every :math:`y_c = 0`) has TP = FN = 0, so the loss is 1 wherever its
denominator :math:`\alpha FP` is positive; at 0/0 (α = 0, or no prediction either) 1 is its
limit, and the loss is 1 on such a row, as a number. A row with a label whose denominator is 0
(β = 0 and every labelled prediction 0) has no limit: along a path where TP grows first the
loss tends to 0 (α = 0) or to 1 − 1/(1 + αr) for a ratio r of FP to TP, so it is NaN there.
"""

from sympy import Eq, Float, Piecewise, Symbol

from cesym.define import AXIS, Elem, Keras, Keyword, Loss, Public, RowSum, Variant

y = Elem("y")  # label mask (0/1, or soft in [0, 1])
p = Elem("p")  # predicted probability
alpha = Symbol("alpha", nonnegative=True)
beta = Symbol("beta", nonnegative=True)

EPS = Float(1e-7, 53)
TP, FP, FN = RowSum(y * p), RowSum((1 - y) * p), RowSum(y * (1 - p))

LOSSES = [
    Loss(
        family="tversky",
        variant="index",
        title="Tversky loss",
        # a row without a label (TP + FN = Σy = 0) is 1 where its denominator αFP is 0 too (the
        # limit); a labelled row with a zero denominator (β = 0, every labelled p = 0) is 0/0 with
        # no limit: NaN. (Both tests read sums the loss computes anyway.)
        value=Piecewise((1, Eq(TP + alpha * FP + beta * FN, 0) & Eq(TP + FN, 0)), (1 - TP / (TP + alpha * FP + beta * FN), True)),
        prediction=p,
        label=y,
        params=(alpha, beta),
        domain="probability",
        # keras.losses.tversky (3.15.1): fp = sum((1 - y_pred) * y_true) (the false negatives),
        # fn = sum(y_pred * (1 - y_true)); 1 - tp / (tp + fp * alpha + fn * beta + epsilon)
        keras=1 - TP / (TP + RowSum((1 - p) * y) * alpha + RowSum(p * (1 - y)) * beta + EPS),
    ),
]

PUBLIC = [
    Public(
        name="tversky",
        summary="Tversky loss over an axis (``keras.losses.tversky``, with α on the false positives).",
        variants=(Variant("index", domain="unit", limits="edges"),),
        labels="binary",
        keywords=(
            Keyword("alpha", 0.5, "real", (0.0, 1.0), doc="the weight of the false positives"),
            Keyword("beta", 0.5, "real", (0.0, 1.0), doc="the weight of the false negatives"),
            AXIS,
        ),
        keras=Keras("keras.losses.tversky", "keras.losses.Tversky", keywords={"axis": -1}),
        doc=r"""
One value per sample: :math:`1 - TP/(TP + \alpha FP + \beta FN)` over ``axis``, α on the false
positives :math:`\sum(1 - y)p`, β on the false negatives :math:`\sum y(1 - p)` (Keras 3.15.1
swaps them), no added constant. y_pred must lie in [0, 1]. A row without a label is 1 (gradient
0); a labelled row whose denominator is 0 (β = 0, every labelled prediction 0) has no limit: NaN.
""",
    ),
]
