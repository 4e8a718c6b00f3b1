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

* labels in [0, 1] (binary labels, distributions; and ``label_smoothing``, ``lam``) are fixed
  numbers; the limit is taken in the predictions (logits, probabilities, activations), each
  infinite element on its own path, and exists only when every path gives the same value;
* labels on the real line (regression targets, signs, counts: a count at +inf only) are
  inputs like the predictions: an infinite one is on the same paths (Huber's value at y = +inf
  is +inf and its gradient -δ/C; the hinge's term past its kink is 0); beside an infinite
  prediction of [0, inf] (Poisson's rate, MSLE's) no limit is claimed (NaN);
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
* NaN in a sample's inputs, or a label in [0, 1] that is not finite, makes that sample's value and
  gradient NaN; a sample ignored by ``ignore_class`` is 0 with a zero gradient whatever its
  predictions, NaN included.

The finite rows are untouched (the same numbers, the same speed): rows with non-finite inputs
are recomputed only in blocks whose outputs are not all finite. Metrics are counts, not limits:
they keep Keras's rules at ±inf too (argmax orders the extended reals, ties to the smallest
index, NaN never wins; the top-k metrics, as TensorFlow's ``in_top_k``, count a row holding
±inf or NaN as not in the top k).
"""

from __future__ import annotations

from . import _generated
from ._blocks import num_threads, set_num_threads  # noqa: F401
from ._misuse import ProbabilitiesAsLogitsWarning, SingleClassWarning  # noqa: F401
from ._metrics import (  # noqa: F401
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)


def _public(naive: bool = False) -> dict:
    """Every generated module's public functions (built from its ``PUBLIC`` by :mod:`._api`)."""
    out: dict = {}
    for modname in _generated.__all__:
        module = getattr(_generated, modname)
        if naive:
            out.update(getattr(module, "NAIVE", {}))
        else:
            out.update({n: getattr(module, n) for n in getattr(module, "__all__", ())})
    return out


_LOSSES = _public()
globals().update(_LOSSES)

__all__ = [
    *_LOSSES,
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
