r"""Categorical focal cross-entropy (Lin, Goyal, Girshick, He and Dollár, *Focal Loss for Dense
Object Detection*, 2017, arXiv:1708.02002), as ``keras.losses.categorical_focal_crossentropy``
(Keras 3) defines it.

With smoothed labels :math:`t_c = y_c(1 - \epsilon) + \epsilon/C` over the :math:`C` classes of
``axis`` and the class probabilities :math:`r` (the predictions renormalised,
:math:`r_c = p_c/\sum_k p_k`, as Keras does, or :math:`r = \operatorname{softmax}(z)` from logits):

.. math::  L = -\alpha \sum_c t_c\,(1 - r_c)^{\gamma} \log r_c,

a sum over the classes (not a mean); γ = 0 is α times the categorical cross-entropy. The weight
of class c is :math:`\alpha t_c` (one label weight): a class weighted 0, by its label or by
α = 0, contributes 0 wherever its :math:`\log r_c` is -inf (the limit, where IEEE's 0·inf is
NaN). α is one
number here (Keras also takes a list, one weight per class). Keras clips :math:`r` to
[1e-7, 1 - 1e-7] (inside the power too), and from logits renormalises the softmax once more;
the mathematics does neither. Stable forms: :math:`1 - r_c = \sum_{k\ne c} r_k` (a dominant
class's 1 - r_c is its tiny rest, which 1 - r_c rounds to 0) and
:math:`-\log r_c` as the log-sum-exp difference; the gradient through :math:`\nu = -\log r`
(``cesym.derive.gradients.log_share_gradient``).
"""

from sympy import Float, Max, Min, Symbol, exp, log

from cesym.define import AXIS, C, Elem, Keras, Keyword, Loss, Public, RowMax, RowSum, Variant

y = Elem("y")  # label
p = Elem("p")  # predicted probability (any non-negative scale: renormalised)
z = Elem("z")  # logit
t = Elem("t")  # smoothed label
label_smoothing = Symbol("label_smoothing", real=True)
alpha = Symbol("alpha", nonnegative=True)
gamma = Symbol("gamma", nonnegative=True)
EPS = Float(1e-7, 53)

# α in the weight: a class weighted 0 (α = 0, or a zero label) contributes 0 even where log r is
# -inf (α·(-inf) is NaN in IEEE arithmetic; the convention 0·f = 0 of a zero weight)
weights = {t: alpha * (y * (1 - label_smoothing) + label_smoothing / C)}
ranges = {label_smoothing: (0.0, 1.0), alpha: (0.0, 1.0), gamma: (0.0, 5.0)}


def _focal(r):
    return -RowSum(t * (1 - r) ** gamma * log(r))


def _keras(r):
    """Keras 3.15's algorithm: r renormalised (again, after a softmax), clipped to [1e-7, 1 - 1e-7];
    -t·log r times (1 - r)^γ·α, summed over the row."""
    q = Min(Max(r / RowSum(r), EPS), 1 - EPS)
    return RowSum((1 - q) ** gamma * (-t * log(q)))


_softmax = exp(z) / RowSum(exp(z))
# tf.nn.softmax: e = exp(z - max z), then e·(1/Σe)
_tf_softmax = exp(z - RowMax(z)) * (1 / RowSum(exp(z - RowMax(z))))

LOSSES = [
    Loss(
        family="categorical_focal_crossentropy",
        variant="probs",
        title="categorical focal cross-entropy on probabilities (renormalised)",
        value=_focal(p / RowSum(p)),
        prediction=p,
        label=y,
        weights=weights,
        params=(label_smoothing, alpha, gamma),
        domain="probability",
        param_ranges=ranges,
        keras=_keras(p),
    ),
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
        variants=(
            Variant("probs", {"from_logits": False}, domain="simplex", limits=None),
            Variant("logits", {"from_logits": True}, domain="real", limits=None),
        ),
        labels="distribution",
        keywords=(
            Keyword("alpha", 0.25, "real", (0.0, 1.0), doc="α: the weight of every class (one number)"),
            Keyword("gamma", 2.0, "real", (0.0, 5.0), doc="γ: the focusing exponent (0: α·cross-entropy)"),
            Keyword("from_logits", False, "flag", doc="y_pred holds logits (True) or probabilities, renormalised over ``axis`` (False)"),
            Keyword("label_smoothing", 0.0, "real", (0.0, 1.0), doc="ε: labels move towards the uniform distribution"),
            AXIS,
        ),
        keras=Keras("keras.losses.categorical_focal_crossentropy", "keras.losses.CategoricalFocalCrossentropy"),
        doc=r"""
With :math:`t_c = y_c(1-\epsilon) + \epsilon/C` and the class probabilities
:math:`r = \operatorname{softmax}(z)` (``from_logits``) or :math:`r = p/\sum_c p_c`:
:math:`-\alpha\sum_c t_c (1 - r_c)^{\gamma}\log r_c` over ``axis`` (a sum, as Keras's).
Stable forms: :math:`1 - r_c` as the other classes' share and :math:`-\log r_c` as the shifted
log-sum-exp (or :math:`\log(1 + \sum_{k\ne c} p_k/p_c)`), so a dominant class keeps its tiny
loss; the gradient by the chain rule through :math:`\nu = -\log r`, with
:math:`g = d/d\nu\,[\nu(1 - e^{-\nu})^{\gamma}]`: from logits
:math:`\alpha\sum_{c\ne j}(t_c g_c r_j - t_j g_j r_c)`, whose pairs of close logits are
taken as differences (:math:`g_c - g_j` by quadrature of :math:`g'`), so logits near 0 under
uniform labels keep their digits; on probabilities
:math:`\alpha(\sum_{c\ne j} t_c g_c/S - t_j g_j (1 - r_j)/p_j)`, finite for rows of any scale.
Logits ±100 and γ < 1 give finite gradients (Keras: NaN where its clipped 1 - r is 0 and
γ < 1). y_pred must be non-negative when ``from_logits`` is False (a zero probability under a
positive label gives +inf; +inf entries are limits along rays).
""",
    ),
]
