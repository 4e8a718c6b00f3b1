"""A model of Keras 3's own algorithm, evaluated exactly, to explain where Keras leaves the mathematics.

Keras 3.15 (TensorFlow backend) on probabilities (``from_logits=False``):

* ``binary_crossentropy``: ``q = clip(p, ε, 1 - ε)``, ``-(t log q + (1 - t) log(1 - q))``, mean
  over ``axis``; ``t`` the smoothed label.
* ``categorical_crossentropy``: renormalise first, ``r = p / Σp``, then clip, ``-Σ t log q``.
* ``sparse_categorical_crossentropy``: clip first, then ``-log softmax(log q)_k``, i.e.
  ``-log(q_k / Σq)``: it renormalises *after* clipping (the two disagree on unnormalised input).

``ε`` is ``backend.epsilon() = 1e-7`` and the bounds are cast to the input's dtype (in float32,
``1 - 1e-7`` is ``1 - 2**-23``). ``tf.clip_by_value`` passes the gradient where ``ε <= x <= 1 - ε``
and gives 0 outside. On logits Keras calls the fused ``tf.nn`` ops, whose mathematics is the
loss's own: there the model is the mathematics, and a deviation is floating-point error.

The model is evaluated here in 300-bit arithmetic from the exact inputs: a Keras result that
matches it (within the contract's bound) deviates from the mathematics *because of its
algorithm* (explained); one that matches neither is unexplained.
"""

from __future__ import annotations

import mpmath
import numpy as np

from .registry import KernelCase

__all__ = ["EPSILON", "bounds", "model_value_and_grad", "has_model"]

EPSILON = 1e-7


def bounds(dtype) -> tuple[mpmath.mpf, mpmath.mpf]:
    """The clip bounds as Keras casts them to ``dtype``."""
    dt = np.dtype(dtype).type
    return mpmath.mpf(float(dt(EPSILON))), mpmath.mpf(float(dt(1.0 - EPSILON)))


def has_model(case: KernelCase) -> bool:
    """True where Keras's algorithm differs from the mathematics (the probability paths)."""
    return case.inputs == "probs"


def _clip(x, lo, hi):
    inside = lo <= x <= hi
    return (lo if x < lo else hi if x > hi else x), inside


def model_value_and_grad(case: KernelCase, labels, pred, params: dict, dtype) -> tuple[mpmath.mpf, list[mpmath.mpf]]:
    """Keras's value and gradient (of the row) by its own algorithm, exactly, on one row.

    ``labels`` are dense rows (a one-hot row for sparse labels), ``pred`` the row of y_pred.
    """
    if not has_model(case):
        raise ValueError(f"{case.id}: Keras computes the mathematics itself; no model needed")
    lo, hi = bounds(dtype)
    with mpmath.workprec(300):
        p = [mpmath.mpf(float(v)) for v in pred]
        y = [mpmath.mpf(float(v)) for v in labels]
        n = len(p)
        ls = mpmath.mpf(float(params.get("label_smoothing", 0.0)))
        if case.kernel == "binary_crossentropy":
            t = [yi * (1 - ls) + ls / 2 for yi in y]
            value, grad = mpmath.mpf(0), []
            for tc, pc in zip(t, p):
                q, inside = _clip(pc, lo, hi)
                value += -(tc * mpmath.log(q) + (1 - tc) * mpmath.log(1 - q))  # q in [ε, 1-ε]: finite
                grad.append((-(tc / q) + (1 - tc) / (1 - q)) / n if inside else mpmath.mpf(0))
            return value / n, grad
        if case.kernel == "categorical_crossentropy":
            t = [yi * (1 - ls) + ls / n for yi in y]
            S = mpmath.fsum(p)
            r = [pc / S for pc in p]
            qs = [_clip(rc, lo, hi) for rc in r]
            value = -mpmath.fsum(tc * mpmath.log(q) for tc, (q, _) in zip(t, qs) if tc != 0)
            # d/dp_j of -Σ_c t_c log q_c, q_c = clip(p_c/S): only unclipped q_c depend on p
            common = mpmath.fsum(tc * pc / q / S**2 for tc, pc, (q, ins) in zip(t, p, qs) if ins and tc != 0)
            grad = [(-(tc / q) / S if ins and tc != 0 else 0) + common for tc, (q, ins) in zip(t, qs)]
            return value, grad
        if case.kernel == "sparse_categorical_crossentropy":
            k = int(np.argmax(np.asarray(labels)))  # the one-hot row's class
            qs = [_clip(pc, lo, hi) for pc in p]
            Q = mpmath.fsum(q for q, _ in qs)
            value = mpmath.log(Q) - mpmath.log(qs[k][0])
            grad = [((1 / Q) - (1 / q if j == k else 0)) if ins else mpmath.mpf(0) for j, (q, ins) in enumerate(qs)]
            return value, grad
    raise ValueError(f"{case.id}: no model")
