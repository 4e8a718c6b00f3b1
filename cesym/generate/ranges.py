r"""The range of a stable form over a box of inputs: which of its terms keep one sign.

The float32 rounding test (:mod:`cesym.kernels._rounding`) needs, for every output, the scale
of its float64 rounding error: the output's own absolute value where its sums add terms of one
sign, the sum of the terms' absolute values where they may cancel
(:func:`cesym.generate.exact.magnitude`). SymPy's assumptions see few signs (``t·softplus(-x)``
with a label weight ``t`` of unknown sign); over the box where labels lie in [0, 1] and every
parameter in its declared range, many more sums are seen to add terms of one sign, and the
kernels skip their magnitudes on label blocks inside that box (binary cross-entropy's
``t·softplus(-x) + u·softplus(x)``: two non-negative terms).

:func:`value_range` bounds an expression by interval arithmetic over the extended reals, one
rule per operation (monotone functions at their ends). It decides signs only, so its ends need
not be tight; they must contain every value: a closed range in which 0·∞ counts as 0 (an
end at ∞ is a limit the inputs approach, never a value they take). Where a rule is missing the
range is the whole line, and no sign is claimed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import sympy as sp

from ..define import primitives as P
from ..kernels._iv import _exp, _ipow, _log, _rpow, _sigmoid  # the scalar ends, one copy for both evaluators
from ..define.loss import Loss

__all__ = ["value_range", "input_box", "unit_label_box", "DOMAIN_RANGES", "FULL"]

Range = tuple[float, float]
FULL: Range = (-math.inf, math.inf)
_INF = math.inf


def _mul(a: Range, b: Range) -> Range:
    def prod(x: float, y: float) -> float:
        return 0.0 if x == 0 or y == 0 else x * y  # 0·∞ = 0: ∞ is a limit, not a value

    ps = [prod(x, y) for x in a for y in b]
    return min(ps), max(ps)


def _add(a: Range, b: Range) -> Range:
    lo, hi = a[0] + b[0], a[1] + b[1]
    return (-_INF if math.isnan(lo) else lo, _INF if math.isnan(hi) else hi)


def _monotone(f, r: Range, increasing: bool = True) -> Range:
    lo, hi = f(r[0]), f(r[1])
    return (lo, hi) if increasing else (hi, lo)


def _inv(v: float) -> float:
    return 0.0 if abs(v) == _INF else (math.copysign(_INF, v) if v == 0 else 1.0 / v)


def _pow(b: Range, e: sp.Basic) -> Range:
    if e.is_Integer:
        n = int(e)
        if n < 0:
            if b[0] >= 0 or b[1] <= 0:  # 1/b of one sign (1/0 as the limit ∞)
                lo, hi = sorted((_inv(b[0]) if b[0] != 0 else _INF, _inv(b[1]) if b[1] != 0 else -_INF))
                if b[0] == 0:  # b in [0, hi]: 1/b in [1/hi, ∞)
                    lo, hi = _inv(b[1]), _INF
                elif b[1] == 0:  # b in [lo, 0]: 1/b in (-∞, 1/lo]
                    lo, hi = -_INF, _inv(b[0])
                return _pow((lo, hi), sp.Integer(-n))
            return FULL
        lo_v, hi_v = _ipow(b[0], n), _ipow(b[1], n)
        if n % 2 == 0:
            return (0.0 if b[0] <= 0 <= b[1] else min(lo_v, hi_v)), max(lo_v, hi_v)
        return lo_v, hi_v
    if b[0] >= 0:  # a power of a non-negative base
        if e.is_number:
            x = float(e)
            return _monotone(lambda v: _rpow(v, x), b, x >= 0)
        return (0.0, _INF)
    return FULL


def _softplus(x: float) -> float:
    if x == _INF:
        return _INF
    if x == -_INF:
        return 0.0
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def value_range(e: sp.Basic, box: dict[sp.Basic, Range]) -> Range:
    """A closed range (ends may be ±inf) holding every value of ``e`` when each symbol of
    ``box`` lies in its range; symbols outside ``box`` are unbounded."""
    if e in box:
        return box[e]
    if e.is_number:
        try:
            v = float(e)
        except (TypeError, ValueError):
            return FULL
        return (v, v) if not math.isnan(v) else FULL
    if isinstance(e, sp.Symbol):
        if e.is_nonnegative:
            return (0.0, _INF)
        if e.is_nonpositive:
            return (-_INF, 0.0)
        return FULL
    if hasattr(e, "sum_form"):  # a primitive that adds terms (SigmoidDiff)
        return value_range(e.sum_form(), box)
    args = [value_range(a, box) for a in e.args] if not isinstance(e, (sp.Piecewise, sp.Pow)) else None
    if isinstance(e, sp.Add):
        out = args[0]
        for a in args[1:]:
            out = _add(out, a)
        return out
    if isinstance(e, (sp.Mul, P.XMul)):
        out = args[0]
        for a in args[1:]:
            out = _mul(out, a)
        return out
    if isinstance(e, sp.Pow):
        return _pow(value_range(e.args[0], box), e.args[1])
    if isinstance(e, P.RowSum):
        return _mul(args[0], (1.0, _INF))  # C >= 1 terms, each in the range
    if isinstance(e, sp.Piecewise):
        rs = [value_range(x, box) for x, _ in e.args]
        return min(r[0] for r in rs), max(r[1] for r in rs)
    (a,) = args if len(args) == 1 else (None,)
    if a is not None:
        if isinstance(e, sp.log):
            return FULL if a[0] < 0 else _monotone(_log, a)
        if isinstance(e, sp.exp):
            return _monotone(_exp, a)
        if isinstance(e, sp.Abs):
            lo = 0.0 if a[0] <= 0 <= a[1] else min(abs(a[0]), abs(a[1]))
            return lo, max(abs(a[0]), abs(a[1]))
        if isinstance(e, P.Softplus):
            return _monotone(_softplus, a)
        if isinstance(e, P.Sigmoid):
            return _monotone(_sigmoid, a)
        if isinstance(e, P.Relu):
            return max(a[0], 0.0), max(a[1], 0.0)
        if isinstance(e, P.LogCosh):
            hi = max(_INF if abs(v) == _INF else math.log(math.cosh(min(abs(v), 700.0))) for v in a)
            return 0.0, hi if max(abs(a[0]), abs(a[1])) < 700 else _INF
        if type(e).__name__ == "log1p":
            return FULL if a[0] < -1 else _monotone(lambda v: -_INF if v == -1 else (_INF if v == _INF else math.log1p(v)), a)
        if type(e).__name__ == "expm1":
            return _monotone(lambda v: -1.0 if v == -_INF else (_INF if v > 709 else math.expm1(v)), a)
        if isinstance(e, sp.tanh):
            return _monotone(lambda v: math.tanh(v) if abs(v) != _INF else math.copysign(1.0, v), a)
    if isinstance(e, sp.Heaviside):
        return (0.0, 1.0)
    if isinstance(e, sp.sign):
        return (-1.0, 1.0)
    return FULL


#: The range of a prediction in each public domain (:data:`cesym.define.declare.DOMAINS`).
DOMAIN_RANGES: dict[str, Range] = {
    "real": FULL, "unit": (0.0, 1.0), "simplex": (0.0, _INF), "positive": (0.0, _INF), "log1p": (-1.0, _INF),
}


def input_box(
    loss: Loss, domains: Sequence[str], params: dict[str, Range], labels: Range = FULL
) -> dict[sp.Basic, Range] | None:
    """The box of a loss's inputs: its dense label in ``labels`` (the whole line by default: the
    public functions accept any label), each label weight (its own range over that box), each
    parameter in the range its public keyword accepts (``params``, by name; unbounded when not
    given), the prediction in the union of the public ``domains`` its kernel is called on (the
    public functions reject predictions outside them). None without ``domains``."""
    if not domains:
        return None
    box: dict[sp.Basic, Range] = {}
    if loss.label is not None:
        box[loss.label] = (0.0, 1.0) if loss.label_index else labels  # an index label: the indicator [c = k]
    for q in loss.params:
        box[q] = params.get(q.name, FULL)
    for w, d in loss.weights.items():
        box[w] = value_range(d, box)
    ranges = [DOMAIN_RANGES.get(d, FULL) for d in domains]
    box[loss.prediction] = (min(r[0] for r in ranges), max(r[1] for r in ranges))
    return box


def unit_label_box(loss: Loss, domains: Sequence[str], params: dict[str, Range]) -> dict[sp.Basic, Range] | None:
    """:func:`input_box` with the labels in [0, 1]; None for a loss without dense labels."""
    if loss.label is None or loss.label_index:
        return None
    return input_box(loss, domains, params, (0.0, 1.0))
