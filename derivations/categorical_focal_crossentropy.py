r"""Categorical focal cross-entropy (Lin, Goyal, Girshick, He and Dollár, *Focal Loss for Dense
Object Detection*, 2017, arXiv:1708.02002), as ``keras.losses.categorical_focal_crossentropy``
(Keras 3) defines it.

With smoothed labels :math:`t_c = y_c(1 - \epsilon) + \epsilon/C` over the :math:`C` classes of
``axis`` and the class probabilities :math:`r` (the predictions renormalised,
:math:`r_c = p_c/\sum_k p_k`, as Keras does, or :math:`r = \operatorname{softmax}(z)` from logits):

.. math::  L = -\alpha \sum_c t_c\,(1 - r_c)^{\gamma} \log r_c,

a sum over the classes (not a mean); γ = 0 is α times the categorical cross-entropy. α is one
number here (Keras also takes a list, one weight per class). Keras clips :math:`r` to
[1e-7, 1 - 1e-7] (inside the power too), and from logits renormalises the softmax once more;
the mathematics does neither. Stable forms: :math:`1 - r_c = \sum_{k\ne c} r_k` (a dominant
class's 1 - r_c is its tiny rest, which 1 - r_c rounds to 0) and
:math:`-\log r_c` as the log-sum-exp difference.
"""

from sympy import Float, Max, Min, Symbol, exp, log

from cesym.declare import AXIS, Keras, Keyword, Public, Variant
from cesym.define import Loss
from cesym.primitives import C, Elem, RowMax, RowSum

y = Elem("y")  # label
p = Elem("p")  # predicted probability (any non-negative scale: renormalised)
z = Elem("z")  # logit
t = Elem("t")  # smoothed label
label_smoothing = Symbol("label_smoothing", real=True)
alpha = Symbol("alpha", nonnegative=True)
gamma = Symbol("gamma", nonnegative=True)
EPS = Float(1e-7, 53)

weights = {t: y * (1 - label_smoothing) + label_smoothing / C}
ranges = {label_smoothing: (0.0, 1.0), alpha: (0.0, 1.0), gamma: (0.0, 5.0)}


def _focal(r):
    return -alpha * RowSum(t * (1 - r) ** gamma * log(r))


def _keras(r):
    """Keras 3.15's algorithm: r renormalised (again, after a softmax), clipped to [ε, 1 - ε];
    -t·log r times (1 - r)^γ·α, summed over the row."""
    q = Min(Max(r / RowSum(r), EPS), 1 - EPS)
    return RowSum((1 - q) ** gamma * alpha * (-t * log(q)))


_softmax = exp(z) / RowSum(exp(z))
# tf.nn.softmax: e = exp(z - max z), then e·(1/Σe)
_tf_softmax = exp(z - RowMax(z)) * (1 / RowSum(exp(z - RowMax(z))))

LOSSES = [
    # On probabilities (renormalised) the gradient of rows of tiny scale (p up to 1e-106, a
    # dominant class by 1e115) multiplies three tiny numbers before the division that brings
    # the result back into range: not shipped until the kernels can order that product.
    Loss(
        family="categorical_focal_crossentropy",
        variant="logits",
        title="categorical focal cross-entropy on logits (from_logits=True)",
        value=_focal(_softmax),
        prediction=z,
        label=y,
        weights=weights,
        params=(label_smoothing, alpha, gamma),
        domain="real",
        param_ranges=ranges,
        keras=_keras(_tf_softmax),
    ),
]

PUBLIC = [
    Public(
        name="categorical_focal_crossentropy",
        summary="Categorical focal cross-entropy, summed over ``axis`` (``keras.losses.categorical_focal_crossentropy``).",
        variants=(Variant("logits", {"from_logits": True}, domain="real", limits=None),),
        labels="distribution",
        keywords=(
            Keyword("alpha", 0.25, "real", (0.0, 1.0), doc="α: the weight of every class (one number)"),
            Keyword("gamma", 2.0, "real", (0.0, 5.0), doc="γ: the focusing exponent (0: α·cross-entropy)"),
            Keyword("from_logits", False, "flag", doc="y_pred holds logits: True is required (probabilities are not supported yet)"),
            Keyword("label_smoothing", 0.0, "real", (0.0, 1.0), doc="ε: labels move towards the uniform distribution"),
            AXIS,
        ),
        keras=Keras("keras.losses.categorical_focal_crossentropy", "keras.losses.CategoricalFocalCrossentropy"),
        doc=r"""
Logits only (``from_logits=True``; probabilities are not supported yet). With
:math:`t_c = y_c(1-\epsilon) + \epsilon/C` and :math:`r = \operatorname{softmax}(z)`:
:math:`-\alpha\sum_c t_c (1 - r_c)^{\gamma}\log r_c` over ``axis`` (a sum, as Keras's).
Stable forms: :math:`1 - r_c` as the sum of the other classes' shares and :math:`-\log r_c` as
the shifted log-sum-exp, so a dominant class keeps its tiny loss; logits ±100 and γ < 1 give
finite gradients (Keras: NaN where its clipped 1 - r is 0 and γ < 1).
""",
    ),
]
