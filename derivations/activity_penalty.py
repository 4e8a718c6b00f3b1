r"""Seed 003's activity penalty: an L2 penalty on a layer's output, averaged over the batch.

For activations :math:`h` of shape (N, ...), flattened to rows of length :math:`C`:

.. math::  P = \lambda \,\frac{1}{N} \sum_{n=1}^{N} \sum_{c} h_{nc}^2,

what ``lambda_ * tf.reduce_mean(tf.reduce_sum(tf.square(h), axis=[1, 2, 3]))`` computes and
what Keras 3's ``ActivityRegularization(l2=λ)`` adds to the loss. The value of one row is
:math:`\lambda \sum_c h_c^2 / N`; the kernel returns their sum over the batch.
"""

from sympy import Symbol

from cesym.define import Loss, N
from cesym.primitives import Elem, RowSum

h = Elem("h")  # activation
lam = Symbol("lam", real=True)  # the penalty weight λ

LOSSES = [
    Loss(
        family="activity_penalty",
        variant="l2_batch_mean",
        title="λ · mean over the batch of the sum of squares over the other axes",
        value=lam * RowSum(h**2) / N,
        prediction=h,
        params=(lam,),
        domain="real",
    ),
]
