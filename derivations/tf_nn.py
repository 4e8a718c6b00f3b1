r"""The fused TensorFlow ops ``tf.nn.*_cross_entropy_with_logits`` (keyword arguments labels=, logits=).

* ``sigmoid_cross_entropy_with_logits``: elementwise, no reduction,
  :math:`\ell = -(y \log\sigma(x) + (1 - y)\log(1 - \sigma(x)))`.
* ``softmax_cross_entropy_with_logits``: :math:`L = -\sum_c y_c \log\operatorname{softmax}(z)_c`
  over ``axis``; the labels need not sum to 1.
* ``sparse_softmax_cross_entropy_with_logits``: the same with a one-hot row from an integer label
  (:math:`-\log\operatorname{softmax}(z)_k`).
"""

from sympy import exp, log

from cesym.define import AXIS, Elem, Keras, Loss, Public, RowSum, Sigmoid, Variant

y = Elem("y")  # label
u = Elem("u")  # 1 - label
x = Elem("x")  # logit (sigmoid)
z = Elem("z")  # logit (softmax)
k = Elem("k")  # one-hot indicator of the integer label

LOSSES = [
    Loss(
        family="tf_nn",
        variant="sigmoid",
        title="tf.nn.sigmoid_cross_entropy_with_logits (elementwise)",
        value=-(y * log(Sigmoid(x)) + u * log(1 - Sigmoid(x))),
        prediction=x,
        label=y,
        weights={y: y, u: 1 - y},
        domain="real",
    ),
    Loss(
        family="tf_nn",
        variant="softmax",
        title="tf.nn.softmax_cross_entropy_with_logits",
        value=-RowSum(y * log(exp(z) / RowSum(exp(z)))),
        prediction=z,
        label=y,
        weights={y: y},
        domain="real",
    ),
    Loss(
        family="tf_nn",
        variant="sparse_softmax",
        title="tf.nn.sparse_softmax_cross_entropy_with_logits",
        value=-RowSum(k * log(exp(z) / RowSum(exp(z)))),
        prediction=z,
        label=k,
        weights={k: k},
        label_index=True,
        domain="real",
    ),
]

PUBLIC = [
    Public(
        name="sigmoid_cross_entropy_with_logits",
        summary=r"``tf.nn.sigmoid_cross_entropy_with_logits``: elementwise :math:`y\,\mathrm{softplus}(-x) + (1-y)\,\mathrm{softplus}(x)`.",
        variants=(Variant("sigmoid", domain="real", limits="sigmoid"),),
        labels="binary",
        args=("labels", "logits"),
        keyword_only=True,
        reduction="element",
        keras=Keras("tf.nn.sigmoid_cross_entropy_with_logits"),
        doc=r"""
At x = +inf: ``(1 - y)·inf`` (0 for y = 1); at x = -inf: ``y·inf`` (0 for y = 0); NaN stays NaN.
Gradient: elementwise :math:`(1-y)\sigma(x) - y\sigma(-x)`.
""",
    ),
    Public(
        name="softmax_cross_entropy_with_logits",
        summary=r"``tf.nn.softmax_cross_entropy_with_logits``: :math:`-\sum_c y_c\log\operatorname{softmax}(z)_c`; labels need not sum to 1.",
        variants=(Variant("softmax", domain="real", limits="softmax"),),
        labels="distribution",
        args=("labels", "logits"),
        keyword_only=True,
        keywords=(AXIS,),
        keras=Keras("tf.nn.softmax_cross_entropy_with_logits"),
        doc=r"""
At ±inf logits: the limits: labels [[0, .5, .5]] at [[-inf, 0, 0]] give
ln 2, [[0, 1, 0]] at [[-inf, 0, -inf]] give 0; two +inf logits under a label give NaN.
""",
    ),
    Public(
        name="sparse_softmax_cross_entropy_with_logits",
        summary=r"``tf.nn.sparse_softmax_cross_entropy_with_logits``: :math:`-\log\operatorname{softmax}(z)_k`, labels of shape logits.shape[:-1].",
        variants=(Variant("sparse_softmax", domain="real", limits="softmax"),),
        labels="index",
        args=("labels", "logits"),
        keyword_only=True,
        exact_label_shape=True,
        keras=Keras("tf.nn.sparse_softmax_cross_entropy_with_logits"),
        doc=r"""
At ±inf logits: the limits: label 0 at [[1, inf]] gives +inf (gradient
[-1, 1]), label 1 gives 0 (gradient [0, 0]).
""",
    ),
]
