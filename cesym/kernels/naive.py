"""The naive forms: each loss's definition lambdified as SymPy wrote it, with no rewrite.

Same arguments and return conventions as :mod:`cesym.kernels`, for comparison only: these are
what a straightforward implementation computes (``lse(z) - z_y``, ``log(1 - p)``,
``σ(x) - y``, ...), and they lose digits, overflow or return NaN where the stable kernels do not.
Built, like the stable functions, from the generated modules' declarations (``PUBLIC``).
"""

from __future__ import annotations

from . import _public

_NAIVE = _public(naive=True)
globals().update(_NAIVE)

__all__ = list(_NAIVE)
