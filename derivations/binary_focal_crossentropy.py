r"""Binary focal cross-entropy (Lin, Goyal, Girshick, He and Dollár, *Focal Loss for Dense
Object Detection*, 2017, arXiv:1708.02002), as ``keras.losses.binary_focal_crossentropy``
(Keras 3) defines it.

Per element, with the smoothed label :math:`t = y(1 - \epsilon) + \epsilon/2`, :math:`u = 1 - t`,
the probability given to the wrong class :math:`m = 1 - p_t = t(1 - p) + u\,p` and the binary
cross-entropy :math:`b = -(t\log p + u\log(1 - p))`:

.. math::  \ell = a\, m^{\gamma}\, b, \qquad a = \alpha t + (1 - \alpha) u \ \text{(class balancing), else } 1,

with :math:`p = \sigma(x)` from logits; the loss of a row is the mean of :math:`\ell` over
``axis``. γ = 0 is the binary cross-entropy (with :math:`0^0 = 1`). Keras clips p to
[1e-7, 1 - 1e-7] inside :math:`b` (not inside :math:`m`), and from logits computes
:math:`m` from σ(x) rounded: at x = 100 with label 1, m is 0 in float32 (exactly
3.7e-44), and its gradient :math:`\gamma m^{\gamma-1}\cdots` is NaN for γ < 1 (optax issue 1267,
kornia issue 2115). On logits the stable form is :math:`m = t\sigma(-x) + u\sigma(x)` and
:math:`b = t\,\mathrm{softplus}(-x) + u\,\mathrm{softplus}(x)`.
"""

from sympy import Float, Max, Min, Piecewise, Symbol, exp, log
from sympy.codegen.cfunctions import log1p

from cesym.define import AXIS, C, Elem, Keras, Keyword, Loss, Public, RowSum, Sigmoid, Variant

y = Elem("y")  # label (0/1, or soft)
p = Elem("p")  # predicted probability
x = Elem("x")  # logit
t = Elem("t")  # weight of log p: the smoothed label
u = Elem("u")  # weight of log(1 - p)
a = Elem("a")  # class-balancing weight
label_smoothing = Symbol("label_smoothing", real=True)
alpha = Symbol("alpha", real=True)
gamma = Symbol("gamma", nonnegative=True)
EPS = Float(1e-7, 53)

smoothed = {
    t: y * (1 - label_smoothing) + label_smoothing / 2,
    u: (1 - y) * (1 - label_smoothing) + label_smoothing / 2,
}
balanced = {a: alpha * smoothed[t] + (1 - alpha) * smoothed[u]}


def _focal(q, log_q, log_1mq, weight):
    """mean over the row of weight·m^γ·b, m = t(1 - q) + u·q, b = -(t log q + u log(1 - q))."""
    return RowSum(weight * (t * (1 - q) + u * q) ** gamma * -(t * log_q + u * log_1mq)) / C


def _keras(kind: str, balance: bool):
    """Keras 3.15's algorithm: smoothed label t; from logits σ(x) (ops.sigmoid), whose result
    carries its logits, so that the cross-entropy is tf.nn.sigmoid_cross_entropy_with_logits;
    on probabilities the cross-entropy of clip(p, 1e-7, 1 - 1e-7); p_t = t·p + (1 - t)(1 - p) of the
    unclipped p; (1 - p_t)^γ; the weight t·α + (1 - t)(1 - α); the mean over the row."""
    if kind == "probs":
        q = Min(Max(p, EPS), 1 - EPS)
        bce = -(t * log(q) + (1 - t) * log(1 - q))
        s = p
    else:
        s = Sigmoid(x)
        bce = Piecewise((x, x >= 0), (0, True)) - x * t + log1p(exp(Piecewise((-x, x >= 0), (x, True))))
    weight = t * alpha + (1 - t) * (1 - alpha) if balance else 1
    return RowSum(weight * (1 - (t * s + (1 - t) * (1 - s))) ** gamma * bce) / C


LOSSES = [
    Loss(
        family="binary_focal_crossentropy",
        variant=kind + ("_balanced" if balance else ""),
        title=f"binary focal cross-entropy on {'probabilities' if kind == 'probs' else 'logits'}"
        + (", class-balanced" if balance else ""),
        value=(_focal(p, log(p), log(1 - p), a if balance else 1) if kind == "probs"
               else _focal(Sigmoid(x), log(Sigmoid(x)), log(1 - Sigmoid(x)), a if balance else 1)),
        prediction=p if kind == "probs" else x,
        label=y,
        weights={**smoothed, **(balanced if balance else {})},
        params=(label_smoothing, gamma) + ((alpha,) if balance else ()),
        domain="probability" if kind == "probs" else "real",
        param_ranges={label_smoothing: (0.0, 1.0), gamma: (0.0, 5.0), **({alpha: (0.0, 1.0)} if balance else {})},
        keras=_keras(kind, balance),
    )
    for balance in (False, True)
    for kind in ("probs", "logits")
]

PUBLIC = [
    Public(
        name="binary_focal_crossentropy",
        summary="Binary focal cross-entropy, mean over ``axis`` (``keras.losses.binary_focal_crossentropy``).",
        variants=tuple(
            Variant(kind + ("_balanced" if balance else ""),
                    {"apply_class_balancing": balance, "from_logits": kind == "logits"},
                    domain="unit" if kind == "probs" else "real",
                    limits="edges" if kind == "probs" else None)
            for balance in (False, True)
            for kind in ("probs", "logits")
        ),
        labels="binary",
        keywords=(
            Keyword("apply_class_balancing", False, "flag", doc="weigh class 1 by α and class 0 by 1 - α"),
            Keyword("alpha", 0.25, "real", (0.0, 1.0), doc="α: the weight of class 1 when balancing"),
            Keyword("gamma", 2.0, "real", (0.0, 5.0), doc="γ: the focusing exponent (0: binary cross-entropy)"),
            Keyword("from_logits", False, "flag", doc="y_pred holds logits (True) or probabilities (False)"),
            Keyword("label_smoothing", 0.0, "real", (0.0, 1.0), doc="ε: labels move towards 1/2"),
            AXIS,
        ),
        keras=Keras("keras.losses.binary_focal_crossentropy", "keras.losses.BinaryFocalCrossentropy"),
        doc=r"""
With :math:`t = y(1-\epsilon) + \epsilon/2`, :math:`u = 1 - t`, :math:`p = \sigma(x)` when
``from_logits``, and :math:`a = \alpha t + (1-\alpha)u` when ``apply_class_balancing`` (else 1):
:math:`\operatorname{mean}_{axis}\, a\,(t(1-p) + u p)^{\gamma}\,(-(t\log p + u\log(1-p)))`.
Stable forms on logits: :math:`m = t\sigma(-x) + u\sigma(x)` (no 1 - σ(x), which is 0 in
float32 past x = 17) and the softplus cross-entropy; the gradient's
:math:`\gamma m^{\gamma-1} m'` is computed as :math:`\gamma m^{\gamma}\cdot m'/m` with
:math:`m'/m` divided through by :math:`\sigma(x)\sigma(-x)`, finite where m underflows,
so logits ±100 with hard labels give finite gradients for every γ >= 0 (Keras: NaN for γ < 1).
On probabilities the edges p = 0, 1 give the limits (e.g. a perfect prediction has gradient 0
for γ > 0). y_pred must lie in [0, 1] when ``from_logits`` is False.
""",
    ),
]
