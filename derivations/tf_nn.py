r"""The fused TensorFlow ops ``tf.nn.*_cross_entropy_with_logits`` (keyword arguments labels=, logits=).

* ``sigmoid_cross_entropy_with_logits``: elementwise, no reduction,
  :math:`\ell = -(y \log\sigma(x) + (1 - y)\log(1 - \sigma(x)))`.
* ``softmax_cross_entropy_with_logits``: :math:`L = -\sum_c y_c \log\operatorname{softmax}(z)_c`
  over ``axis``; the labels need not sum to 1.
* ``sparse_softmax_cross_entropy_with_logits``: the same with a one-hot row from an integer label.
"""

from sympy import exp, log

from cesym.define import Loss
from cesym.primitives import Elem, RowSum, Sigmoid

y = Elem("y")  # label
u = Elem("u")  # 1 - label
x = Elem("x")  # logit (sigmoid)
z = Elem("z")  # logit (softmax)

LOSSES = [
    Loss(
        family="tf_nn",
        variant="sigmoid_cross_entropy_with_logits",
        title="tf.nn.sigmoid_cross_entropy_with_logits (elementwise)",
        value=-(y * log(Sigmoid(x)) + u * log(1 - Sigmoid(x))),
        prediction=x,
        label=y,
        weights={y: y, u: 1 - y},
        domain="real",
    ),
    Loss(
        family="tf_nn",
        variant="softmax_cross_entropy_with_logits",
        title="tf.nn.softmax_cross_entropy_with_logits",
        value=-RowSum(y * log(exp(z) / RowSum(exp(z)))),
        prediction=z,
        label=y,
        weights={y: y},
        domain="real",
    ),
]
