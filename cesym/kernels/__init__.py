"""Accurate NumPy kernels for the Keras cross-entropy family, value and gradient.

``from cesym import kernels`` needs NumPy only. Every loss takes the arguments of the Keras (or
``tf.nn``) function of the same name and returns what that function form returns: one value per
sample, reduced over ``axis``, in ``y_pred``'s floating dtype (float32 in, float32 out). Each
``<name>_grad`` takes the same arguments and returns d(sum of the returned values)/d(y_pred),
with y_pred's shape and dtype.

The kernels compute the *mathematics* that the Keras function defines (renormalisation and label
smoothing included) without Keras's 1e-7 clipping: 0·log 0 = 0, and a zero probability under a
positive label gives +inf. They are generated from ``derivations/`` by ``cesym generate``; the
stable forms and the rewrites applied are in the generated modules' docstrings.

Accuracy: value within 4 + 4κ ulps, gradient elements within 8 + 4κ ulps of the exact result
(κ the componentwise relative condition number), over the whole finite domain.

Speed: rows are computed in float64 blocks that stay in cache, on ``num_threads()`` threads
(``set_num_threads(n)`` or the environment variable ``CESYM_NUM_THREADS``); the results do not
depend on either. ``<name>_value_and_grad`` returns both in one pass.

Thread safety: every function here may be called from many threads at once, and
``set_num_threads`` while they run; each call returns what a single-threaded call returns, bit
for bit.

Bad input raises ``TypeError``/``ValueError`` naming the argument. NaN inputs propagate to the
outputs of their row; probability checks ignore NaN. Inputs: float32 or float64 predictions in
either byte order (outputs in native order); ``from_logits`` must be a bool (Python or NumPy:
``"False"`` is refused, not read as True); masked arrays are refused with a ``TypeError`` (a
mask is not honoured, and ``np.asarray`` would drop it); an out-of-range sparse label is
reported as passed (``18446744073709551615``, ``1e+30``), not as its int64 cast.

Misuse that is not an error warns, once per call, from the calling thread:

* :class:`SingleClassWarning` (a ``UserWarning``): a categorical or sparse loss (Keras's or
  ``tf.nn``'s) over one class, which is 0 for any input (Keras warns with a ``SyntaxWarning``);
* :class:`ProbabilitiesAsLogitsWarning` (a ``UserWarning``): logits that are all probabilities:
  with a softmax (categorical, sparse, ``tf.nn`` softmax ops), every row of the input lies in
  [0, 1] and sums to 1 within 2^-8; with a sigmoid (binary, ``tf.nn`` sigmoid), every element
  lies in [0, 1] and one at least strictly inside. Each block is probed on its first rows and
  looked at whole only when they pass, so real logits cost nothing measurable.

Infinite inputs (the extended reals). Every loss, value and gradient, returns at ±inf inputs
the limit of the mathematics where one exists, and NaN only where none does:

* labels (and ``label_smoothing``, ``lam``) are fixed numbers; the limit is taken in the
  predictions (logits, probabilities, activations), each infinite element on its own path,
  and exists only when every path gives the same value;
* a label weight that is exactly 0 times a term that tends to infinity is 0 (as 0·log 0 = 0
  for probabilities): a class masked with a -inf logit under a zero label costs nothing;
* a positive label on a -inf logit gives +inf (softmax and sigmoid losses alike), and the
  gradient there tends to -label (softmax tends to 0);
* one +inf logit in a softmax row makes softmax one-hot there: the value is 0 if every label
  sits on it, +inf if a positive label sits elsewhere; the gradient is ``T·[j = k] - t_j``;
* two or more +inf logits in a row (or a row of -inf only) have no limit of softmax at those
  elements: NaN there, and NaN for the value unless a positive label sits elsewhere (+inf)
  or every label is 0 (0); the other gradient elements are ``-t_j``; a row of one class is 0;
* sigmoid terms: ``t·softplus(-x) + u·softplus(x)`` tends to ``u·inf`` at +inf and ``t·inf``
  at -inf, the gradient to u and -t; +inf and -inf in one row of a mean add their limits
  (+inf + -inf, possible only with labels outside [0, 1], is NaN);
* probabilities: 0 and 1 are the domain's edges (their limits from inside); renormalised
  probabilities may be +inf (softmax at log p: p/Σp one-hot at a single +inf);
* ``activity_penalty``: ±inf activations give +inf (λ > 0) and ±inf gradients, 0 when λ = 0;
* NaN in a sample's inputs, or a label that is not finite, makes that sample's value and
  gradient NaN; a sample ignored by ``ignore_class`` is 0 with a zero gradient whatever its
  predictions, NaN included.

The finite rows are untouched (the same numbers, the same speed): rows with non-finite inputs
are recomputed only in blocks whose outputs are not all finite. Metrics are counts, not limits:
they keep Keras's rules at ±inf too (argmax orders the extended reals, ties to the smallest
index, NaN never wins; the top-k metrics, as TensorFlow's ``in_top_k``, count a row holding
±inf or NaN as not in the top k).
"""

from __future__ import annotations

import numpy as np

from . import _losses as _L
from ._blocks import num_threads, set_num_threads  # noqa: F401
from ._misuse import ProbabilitiesAsLogitsWarning, SingleClassWarning  # noqa: F401
from ._metrics import (  # noqa: F401
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)

__all__ = [
    "binary_crossentropy",
    "binary_crossentropy_grad",
    "binary_crossentropy_value_and_grad",
    "categorical_crossentropy",
    "categorical_crossentropy_grad",
    "categorical_crossentropy_value_and_grad",
    "sparse_categorical_crossentropy",
    "sparse_categorical_crossentropy_grad",
    "sparse_categorical_crossentropy_value_and_grad",
    "sigmoid_cross_entropy_with_logits",
    "sigmoid_cross_entropy_with_logits_grad",
    "sigmoid_cross_entropy_with_logits_value_and_grad",
    "softmax_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits_grad",
    "softmax_cross_entropy_with_logits_value_and_grad",
    "sparse_softmax_cross_entropy_with_logits",
    "sparse_softmax_cross_entropy_with_logits_grad",
    "sparse_softmax_cross_entropy_with_logits_value_and_grad",
    "activity_penalty",
    "activity_penalty_grad",
    "activity_penalty_value_and_grad",
    "num_threads",
    "set_num_threads",
    "ProbabilitiesAsLogitsWarning",
    "SingleClassWarning",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
]


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1) -> np.ndarray:
    r"""Binary cross-entropy, mean over ``axis`` (``keras.losses.binary_crossentropy``).

    With :math:`t = y(1-\epsilon) + \epsilon/2`, :math:`u = 1 - t` and :math:`p = \sigma(x)` when
    ``from_logits``: :math:`\operatorname{mean}_{axis} -(t\log p + u\log(1-p))`.
    Stable forms: ``t·softplus(-x) + u·softplus(x)`` on logits (two non-negative terms);
    ``log1p(-p)`` on probabilities. y_pred must lie in [0, 1] when ``from_logits`` is False.
    At ±inf logits and at p = 0 or 1: the limits (module docstring), e.g.
    ``binary_crossentropy([[0, 1]], [[-inf, 2]], from_logits=True)`` is softplus(-2)/2.
    """
    return _L.bce(y_true, y_pred, from_logits, label_smoothing, axis, "value")


def binary_crossentropy_grad(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1) -> np.ndarray:
    r"""d(Σ binary_crossentropy)/d(y_pred): ``(u σ(x) - t σ(-x))/C`` on logits, ``(u/(1-p) - t/p)/C``."""
    return _L.bce(y_true, y_pred, from_logits, label_smoothing, axis, "grad")


def binary_crossentropy_value_and_grad(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """``(binary_crossentropy(...), binary_crossentropy_grad(...))`` in one pass: the same numbers, shared work."""
    return _L.bce(y_true, y_pred, from_logits, label_smoothing, axis, "value_and_grad")


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1) -> np.ndarray:
    r"""Categorical cross-entropy over ``axis`` (``keras.losses.categorical_crossentropy``).

    With :math:`t_c = y_c(1-\epsilon) + \epsilon/C`: :math:`-\sum_c t_c \log(p_c/\sum_k p_k)`
    (probabilities renormalised, as Keras does) or :math:`-\sum_c t_c\log\operatorname{softmax}(z)_c`.
    Stable forms: ``(max z - z_c) + log1p(Σ_{k≠argmax} e^{z_k - max z})`` and
    ``log1p(Σ_{k≠c} p_k / p_c)``, which keep a dominant class's tiny loss.
    At ±inf logits (+inf or 0 probabilities): the limits (module docstring); a -inf logit under
    a zero label costs 0, e.g. labels [[0, .5, .5]] at logits [[-inf, 0, 0]] give ln 2.
    """
    return _L.cce(y_true, y_pred, from_logits, label_smoothing, axis, "value")


def categorical_crossentropy_grad(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1) -> np.ndarray:
    r"""d(Σ categorical_crossentropy)/d(y_pred).

    Logits: :math:`(e_j R^t_j - t_j R^e_j)/(e_j + R^e_j)` with :math:`e = e^{z - \max z}` and
    :math:`R^v_j = \sum_{c\ne j} v_c` (no cancellation in softmax_j - 1). Probabilities:
    :math:`R^t_j/S - t_j R^p_j/(p_j S)`, :math:`S = \sum p`.
    """
    return _L.cce(y_true, y_pred, from_logits, label_smoothing, axis, "grad")


def categorical_crossentropy_value_and_grad(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """``(categorical_crossentropy(...), categorical_crossentropy_grad(...))`` in one pass: the same numbers, shared work."""
    return _L.cce(y_true, y_pred, from_logits, label_smoothing, axis, "value_and_grad")


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False, axis: int = -1, ignore_class: int | None = None) -> np.ndarray:
    r"""Sparse categorical cross-entropy (``keras.losses.sparse_categorical_crossentropy``).

    Integer labels of shape (N,) or (N, 1) for y_pred (N, C); the loss is
    :math:`-\log(p_k/\sum_c p_c)` or :math:`-\log\operatorname{softmax}(z)_k`. Samples whose
    label equals ``ignore_class`` get 0 (and a zero gradient), whatever their predictions (NaN
    included). At ±inf logits: the limits (module docstring): +inf if the labelled class's logit
    is -inf or another's +inf, 0 if the labelled class alone is +inf.
    """
    return _L.scce(y_true, y_pred, from_logits, axis, ignore_class, "value")


def sparse_categorical_crossentropy_grad(y_true, y_pred, from_logits: bool = False, axis: int = -1, ignore_class: int | None = None) -> np.ndarray:
    """d(Σ sparse_categorical_crossentropy)/d(y_pred)."""
    return _L.scce(y_true, y_pred, from_logits, axis, ignore_class, "grad")


def sparse_categorical_crossentropy_value_and_grad(y_true, y_pred, from_logits: bool = False, axis: int = -1, ignore_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(sparse_categorical_crossentropy(...), sparse_categorical_crossentropy_grad(...))`` in one pass: the same numbers, shared work."""
    return _L.scce(y_true, y_pred, from_logits, axis, ignore_class, "value_and_grad")


def sigmoid_cross_entropy_with_logits(*, labels, logits) -> np.ndarray:
    r"""``tf.nn.sigmoid_cross_entropy_with_logits``: elementwise :math:`y\,\mathrm{softplus}(-x) + (1-y)\,\mathrm{softplus}(x)`.

    At x = +inf: ``(1 - y)·inf`` (0 for y = 1); at x = -inf: ``y·inf`` (0 for y = 0); NaN stays NaN.
    """
    return _L.sigmoid_xent(labels, logits, "value")


def sigmoid_cross_entropy_with_logits_grad(*, labels, logits) -> np.ndarray:
    r"""Elementwise :math:`(1-y)\sigma(x) - y\sigma(-x)`."""
    return _L.sigmoid_xent(labels, logits, "grad")


def sigmoid_cross_entropy_with_logits_value_and_grad(*, labels, logits) -> tuple[np.ndarray, np.ndarray]:
    """``(sigmoid_cross_entropy_with_logits(...), sigmoid_cross_entropy_with_logits_grad(...))`` in one pass: the same numbers, shared work."""
    return _L.sigmoid_xent(labels, logits, "value_and_grad")


def softmax_cross_entropy_with_logits(*, labels, logits, axis: int = -1) -> np.ndarray:
    r"""``tf.nn.softmax_cross_entropy_with_logits``: :math:`-\sum_c y_c\log\operatorname{softmax}(z)_c`; labels need not sum to 1.

    At ±inf logits: the limits (module docstring): labels [[0, .5, .5]] at [[-inf, 0, 0]] give
    ln 2, [[0, 1, 0]] at [[-inf, 0, -inf]] give 0; two +inf logits under a label give NaN.
    """
    return _L.softmax_xent(labels, logits, axis, "value")


def softmax_cross_entropy_with_logits_grad(*, labels, logits, axis: int = -1) -> np.ndarray:
    """d(Σ softmax_cross_entropy_with_logits)/d(logits)."""
    return _L.softmax_xent(labels, logits, axis, "grad")


def softmax_cross_entropy_with_logits_value_and_grad(*, labels, logits, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """``(softmax_cross_entropy_with_logits(...), softmax_cross_entropy_with_logits_grad(...))`` in one pass: the same numbers, shared work."""
    return _L.softmax_xent(labels, logits, axis, "value_and_grad")


def sparse_softmax_cross_entropy_with_logits(*, labels, logits) -> np.ndarray:
    r"""``tf.nn.sparse_softmax_cross_entropy_with_logits``: :math:`-\log\operatorname{softmax}(z)_k`, labels of shape logits.shape[:-1].

    At ±inf logits: the limits (module docstring): label 0 at [[1, inf]] gives +inf (gradient
    [-1, 1]), label 1 gives 0 (gradient [0, 0]).
    """
    return _L.sparse_softmax_xent(labels, logits, "value")


def sparse_softmax_cross_entropy_with_logits_grad(*, labels, logits) -> np.ndarray:
    """d(Σ sparse_softmax_cross_entropy_with_logits)/d(logits)."""
    return _L.sparse_softmax_xent(labels, logits, "grad")


def sparse_softmax_cross_entropy_with_logits_value_and_grad(*, labels, logits) -> tuple[np.ndarray, np.ndarray]:
    """``(sparse_softmax_cross_entropy_with_logits(...), sparse_softmax_cross_entropy_with_logits_grad(...))`` in one pass: the same numbers, shared work."""
    return _L.sparse_softmax_xent(labels, logits, "value_and_grad")


def activity_penalty(h, lam: float = 0.1) -> np.ndarray:
    r"""Seed 003's penalty :math:`\lambda \cdot \frac1N\sum_n \sum_{c} h_{nc}^2` (batch axis 0), a 0-d array.

    What ``lambda_ * tf.reduce_mean(tf.reduce_sum(tf.square(h), axis=[1, 2, 3]))`` computes and
    Keras 3's ``ActivityRegularization(l2=lam)`` adds to the loss. ±inf activations give
    ``sign(λ)·inf`` (0 when λ = 0).
    """
    return _L.penalty(h, lam, "value")


def activity_penalty_grad(h, lam: float = 0.1) -> np.ndarray:
    r"""d(activity_penalty)/dh :math:`= 2\lambda h / N`."""
    return _L.penalty(h, lam, "grad")


def activity_penalty_value_and_grad(h, lam: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """``(activity_penalty(...), activity_penalty_grad(...))`` in one pass: the same numbers, shared work."""
    return _L.penalty(h, lam, "value_and_grad")
