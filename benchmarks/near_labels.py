"""Soft labels next to the prediction's probability: an adversarial sample `cesym verify` does not
draw yet (README, "Accuracy contract").

For every dense-label kernel with binary or distribution labels, rows of verify's own strata
(seed 77) whose labels are the prediction's probability (the prediction itself, its sigmoid, or
its softmax) times 1 + 10^U(-16,-3)·N(0,1), clipped to [0, 1]: gradients that cancel to far below
their terms. Prints, per kernel × dtype × row length, the points outside the contract and the
largest share of the bound, then the first failures.

    python benchmarks/near_labels.py [ROWS] [KERNEL ...]
"""

from __future__ import annotations

import sys

import numpy as np

from cesym.verify.contract import check_batch
from cesym.verify.registry import CASES
from cesym.verify.sampling import Batch, sample


def near_labels(case, pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Labels next to the probability the prediction stands for."""
    p = pred.astype(np.float64)
    if case.inputs == "probs":
        q = p
    elif case.label_kind == "binary":
        q = 0.5 * (1 + np.tanh(p / 2))  # σ(p), without overflow
    else:
        e = np.exp(p - p.max(axis=1, keepdims=True))
        q = e / e.sum(axis=1, keepdims=True)
    return np.clip(q * (1 + 10.0 ** rng.uniform(-16, -3, q.shape) * rng.standard_normal(q.shape)), 0, 1)


def main(argv: list[str]) -> int:
    rows = int(argv[0]) if argv else 300
    only = set(argv[1:])
    failed = 0
    for case in CASES:
        if (only and case.kernel not in only) or case.reduction == "batch" or case.labels != "dense":
            continue
        if case.label_kind not in ("binary", "distribution") or case.inputs == "positive":
            continue
        for dtype in (np.float32, np.float64):
            for n in (2, 5):
                b = sample(case, dtype, n, rows, seed=77, soft=True)
                lab = near_labels(case, b.pred, np.random.default_rng(5))
                res = check_batch(case, Batch(lab.astype(b.labels.dtype), b.pred, b.params, ["near-soft"] * rows))
                failed += len(res.failures)
                print(
                    f"{case.id:60s} {np.dtype(dtype).name} n={n} outside={len(res.failures)} unresolved={res.unresolved} "
                    f"value share={max(res.value_share, default=0):.3g} grad share={max(res.grad_share, default=0):.3g}",
                    flush=True,
                )
                for f in res.failures[:2]:
                    print("   ", str(f)[:400])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
