r"""Cosine similarity loss, as ``keras.losses.cosine_similarity`` (Keras 3) defines it: the
negative cosine of the angle between the label row :math:`y` and the prediction row :math:`p`,

.. math::  L = -\frac{\sum_c y_c p_c}{\|y\|_2\,\|p\|_2}

over ``axis`` (default the last), in [-1, 1]: -1 where the rows point the same way. Keras
normalises each row by :math:`\min(1/\|x\|_2, 10^{7})` (``normalize`` with
its constant :math:`10^{-7}`): a row of norm below :math:`10^{-7}` is not scaled to unit length,
so its "cosine" shrinks with it (and a zero row gives 0 with a gradient of :math:`-y/10^{-7}`
scale). The kernels form the unit vectors first (:math:`x/\|x\|_2` with a scaled norm), so that
rows of 1e200s or 1e-200s give their cosine, and compute the gradient

.. math::  \frac{\partial L}{\partial p_j} = \frac{\hat p_j \sum_{c \ne j} \hat y_c \hat p_c
           - \hat y_j \sum_{c \ne j} \hat p_c^2}{\|p\|_2}, \qquad \hat x = x/\|x\|_2,

in which the terms of element j itself cancel exactly (computed as
:math:`\hat p_j \cos - \hat y_j`, they cancel in rounding where :math:`p_j` carries the row).
A zero row of either argument has no direction: its cosine is undefined (NaN).
"""

from sympy import Float, Min, sqrt

from cesym.define import AXIS, Elem, Keras, Loss, Public, RowSum, Rsqrt, Variant

y = Elem("y")  # label row (any real vector)
p = Elem("p")  # prediction row

EPS = Float(1e-7, 53)

LOSSES = [
    Loss(
        family="cosine_similarity",
        variant="cosine",
        title="negative cosine similarity",
        value=-RowSum(y * p) / (sqrt(RowSum(y**2)) * sqrt(RowSum(p**2))),
        prediction=p,
        label=y,
        # keras.losses.cosine_similarity: x * minimum(rsqrt(sum(x**2)), 1/epsilon) for both rows,
        # then -sum(y * p)
        keras=-RowSum(y * Min(Rsqrt(RowSum(y**2)), 1 / EPS) * (p * Min(Rsqrt(RowSum(p**2)), 1 / EPS))),
    ),
]

PUBLIC = [
    Public(
        name="cosine_similarity",
        summary="Negative cosine similarity over an axis (``keras.losses.cosine_similarity``).",
        variants=(Variant("cosine"),),
        labels="real",
        keywords=(AXIS,),
        keras=Keras("keras.losses.cosine_similarity", "keras.losses.CosineSimilarity",
                    ("keras.metrics.CosineSimilarity",), metric_of={"keras.metrics.CosineSimilarity": "-mean"}),
        doc=r"""
One value per sample: :math:`-\sum y p/(\|y\|_2\|p\|_2)` over ``axis``, in [-1, 1], no added constant (Keras
caps 1/‖x‖ at 1e7). Gradient: :math:`(\hat p_j\sum_{c\ne j}\hat y_c\hat p_c - \hat y_j\sum_{c\ne j}\hat p_c^2)/\|p\|_2`
with :math:`\hat x = x/\|x\|_2`. A zero row (either argument) has no direction: NaN. ±inf
elements give their limits where the row has one (one infinite element: the cosine with its
axis, gradient 0).
""",
    ),
]
