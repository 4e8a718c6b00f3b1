r"""Dice loss, as ``keras.losses.dice`` (Keras 3) defines it, for a label mask :math:`y` and
predicted probabilities :math:`p`:

.. math::  L = 1 - \frac{2\sum_c y_c p_c}{\sum_c y_c + \sum_c p_c}

over the last axis (one value per sample). Keras adds :math:`10^{-7}` to the
denominator, and its default ``axis=None`` reduces the whole batch to one number: cesym's
kernels reduce over ``axis`` (default the last; Keras is compared with ``axis=-1``); for Keras's
batch-wide value pass the batch as one row, ``y.reshape(1, -1)``. A row with no label and no
prediction (every :math:`y_c = p_c = 0`) is 0/0; the loss there is its limit along every path, 1
(the gradient 0, as on every row without a label).
"""

from sympy import Eq, Float, Piecewise

from cesym.define import AXIS, Elem, Keras, Loss, Public, RowSum, Variant

y = Elem("y")  # label mask (0/1, or soft in [0, 1])
p = Elem("p")  # predicted probability

EPS = Float(1e-7, 53)

LOSSES = [
    Loss(
        family="dice",
        variant="overlap",
        title="Dice loss",
        # an empty row (no label, no prediction) is 0/0; its limit along every path is 1
        value=Piecewise((1, Eq(RowSum(y) + RowSum(p), 0)), (1 - 2 * RowSum(y * p) / (RowSum(y) + RowSum(p)), True)),
        prediction=p,
        label=y,
        domain="probability",
        # keras.losses.dice: 1 - 2 * sum(y * p) / (sum(y) + sum(p) + epsilon)
        keras=1 - (2 * RowSum(y * p)) / (RowSum(y) + RowSum(p) + EPS),
    ),
]

PUBLIC = [
    Public(
        name="dice",
        summary="Dice loss over an axis (``keras.losses.dice``).",
        variants=(Variant("overlap", domain="unit", limits="edges"),),
        labels="binary",
        keywords=(AXIS,),
        keras=Keras("keras.losses.dice", "keras.losses.Dice", keywords={"axis": -1}),
        doc=r"""
One value per sample: :math:`1 - 2\sum y p/(\sum y + \sum p)` over ``axis``, no added constant (Keras adds
1e-7 to the denominator and by default reduces the whole batch: pass ``y.reshape(1, -1)`` for
that). y_pred must lie in [0, 1]. Gradient:
:math:`2(\sum_c y_c p_c - y_j(\sum_c y_c + \sum_c p_c))/(\sum y + \sum p)^2`.
""",
    ),
]
