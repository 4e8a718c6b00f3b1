r"""Seed 003's activity penalty: an L2 penalty on a layer's output, averaged over the batch.

For activations :math:`h` of shape (N, ...), flattened to rows of length :math:`C`:

.. math::  P = \lambda \,\frac{1}{N} \sum_{n=1}^{N} \sum_{c} h_{nc}^2,

what ``lambda_ * tf.reduce_mean(tf.reduce_sum(tf.square(h), axis=[1, 2, 3]))`` computes and
what Keras 3's ``ActivityRegularization(l2=λ)`` adds to the loss. The value of one row is
:math:`\lambda \sum_c h_c^2 / N`; the kernel returns their sum over the batch.
"""

from sympy import Symbol

from cesym.define import Elem, Keras, Keyword, Loss, N, Public, RowSum, Variant

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

PUBLIC = [
    Public(
        name="activity_penalty",
        summary=r"Seed 003's penalty :math:`\lambda \cdot \frac1N\sum_n \sum_{c} h_{nc}^2` (batch axis 0), a 0-d array.",
        variants=(Variant("l2_batch_mean", domain="real", limits="squares"),),
        labels="none",
        args=("h",),
        keywords=(Keyword("lam", 0.1, "real", doc="the penalty weight λ"),),
        reduction="batch",
        keras=Keras(loss_class="keras.layers.ActivityRegularization"),
        doc=r"""
What ``lambda_ * tf.reduce_mean(tf.reduce_sum(tf.square(h), axis=[1, 2, 3]))`` computes and
Keras 3's ``ActivityRegularization(l2=lam)`` adds to the loss. ±inf activations give
``sign(λ)·inf`` (0 when λ = 0). Gradient: :math:`2\lambda h / N`.
""",
    ),
]
