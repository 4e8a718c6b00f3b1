"""cesym: symbolic derivation, stable NumPy kernels and high-precision verification of losses.

The pipeline, one module each: define (``derivations/`` + :mod:`cesym.define`,
:mod:`cesym.primitives`), derive (:mod:`cesym.derive`), rewrite (:mod:`cesym.rewrite`),
generate (:mod:`cesym.generate`), verify (:mod:`cesym.reference`, :mod:`cesym.ulps`).
The generated kernels are in :mod:`cesym.kernels`, which needs NumPy only.
"""

__version__ = "0.1.0"
