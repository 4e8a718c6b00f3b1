r"""A margin-scaled logistic loss, written the way people write it.

For labels :math:`y \in \{0, 1\}` (or soft, in [0, 1]) and logits :math:`x`, with the sign
:math:`s = 2y - 1` and a margin :math:`m \ge 0` that the logit must clear:

.. math::  \ell = \log\big(1 + e^{m - s x}\big), \qquad L = \frac1C \sum_c \ell_c .

Written with ``log(1 + exp(·))``: ``cesym generate`` finds the stable form (softplus) itself.
No ``PUBLIC``: the file's one loss becomes the public ``margin_logistic(y_true, y_pred, margin,
axis=-1)``.
"""

from sympy import Symbol, exp, log

from cesym.define import C, Elem, Loss, RowSum

y = Elem("y")  # label
x = Elem("x")  # logit
margin = Symbol("margin", real=True)

LOSSES = [
    Loss(
        family="margin_logistic",
        variant="logits",
        title="margin-scaled logistic loss on logits",
        value=RowSum(log(1 + exp(margin - (2 * y - 1) * x))) / C,
        prediction=x,
        label=y,
        params=(margin,),
        param_ranges={margin: (0.0, 4.0)},
    ),
]
