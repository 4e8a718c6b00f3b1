"""cesym: symbolic derivation, stable NumPy kernels and high-precision verification of losses.

The pipeline, one package per stage: define (``derivations/`` written with :mod:`cesym.define`),
derive (:mod:`cesym.derive`), rewrite (:mod:`cesym.rewrite`), generate (:mod:`cesym.generate`),
run (the generated kernels, :mod:`cesym.kernels`, which need NumPy only), verify
(:mod:`cesym.verify`), Keras (:mod:`cesym.keras`), report (:mod:`cesym.report`); ``cesym``'s
command line (:mod:`cesym.cli`) and the benchmark (:mod:`cesym.bench`) drive them.
"""

__version__ = "0.1.0"
