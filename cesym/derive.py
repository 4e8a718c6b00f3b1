"""Derive: gradients by SymPy, and the stable value and gradient of each loss.

For a :class:`~cesym.define.Loss` with value ``V0`` (the mathematics):

1. the naive gradient is ``G0 = diff(V0, prediction)``;
2. the value rules (:func:`cesym.rewrite.value_rules`, passed over until nothing changes) turn
   ``V0`` into stable primitives, ``V1``;
3. the stable gradient is ``diff(V1, prediction)``: SymPy differentiates the primitives through
   their exact ``fdiff`` (softplus' = sigmoid) and the row primitives through their reduction
   forms (:class:`~cesym.primitives.RowSum` carries the chain rule); the gradient rules then
   shift exponentials, split row sums and combine the terms on the label weights, ``G1``;
4. on probabilities, the value's label weights get the 0·∞ = 0 guard.

Every rewrite is checked for equivalence (:func:`cesym.rewrite.check_equivalent`), and so is
``G1`` against ``G0``: two routes to the same derivative must agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .define import DerivationError, Loss
from .rewrite import Rule, apply_rules, check_equivalent, gradient_rules, guard_rule, value_rules

__all__ = ["Derived", "derive"]


@dataclass(frozen=True)
class Derived:
    """The symbolic results for one loss."""

    loss: Loss
    naive_value: sp.Expr
    naive_grad: sp.Expr | None
    raw_grad: sp.Expr | None  # diff of the stable value, before the gradient rules
    value: sp.Expr
    grad: sp.Expr | None
    value_rules: tuple[Rule, ...]
    grad_rules: tuple[Rule, ...]


def derive(loss: Loss) -> Derived:
    """Derive the naive and stable value and gradient of ``loss``."""
    x = loss.prediction
    v0 = loss.value
    guard = loss.domain == "probability"
    weights = list(loss.weights)
    v1, vrules = apply_rules(v0, value_rules(), repeat=True)
    v1_guarded, grules_v = apply_rules(v1, [guard_rule(weights, guard, name="guard-weights")] if guard else [])
    if not loss.differentiable:
        return Derived(loss, v0, None, None, v1_guarded, None, tuple(vrules + grules_v), ())
    try:
        g0 = sp.diff(v0, x)
        raw = sp.diff(v1, x)
    except Exception as e:  # SymPy could not differentiate the definition
        raise DerivationError(f"{loss.name}: cannot differentiate: {type(e).__name__}: {e}") from None
    if g0.has(sp.Derivative) or raw.has(sp.Derivative):
        raise DerivationError(f"{loss.name}: cannot differentiate: SymPy left an unevaluated derivative")
    g1, grules = apply_rules(raw, gradient_rules(weights, guard, x))
    check_equivalent(g0, g1)
    return Derived(loss, v0, g0, raw, v1_guarded, g1, tuple(vrules + grules_v), tuple(grules))
