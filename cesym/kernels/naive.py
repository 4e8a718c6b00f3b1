"""The naive forms: each loss's definition lambdified as SymPy wrote it, with no rewrite.

Same arguments and return conventions as :mod:`cesym.kernels`, for comparison only: these are
what a straightforward implementation computes (``lse(z) - z_y``, ``log(1 - p)``,
``σ(x) - y``, ...), and they lose digits, overflow or return NaN where the stable kernels do not.
They compute in the predictions' own dtype (float32 inputs in float32 arithmetic, where the
stable kernels compute in float64 and round once): ``binary_crossentropy`` of float32 logits
-100 under label 1 is inf here, as in any float32 implementation, not 100.
Built, like the stable functions, from the generated modules' declarations (``PUBLIC``).
"""

from __future__ import annotations

from . import _public

_NAIVE = _public(naive=True)
globals().update(_NAIVE)

__all__ = list(_NAIVE)
