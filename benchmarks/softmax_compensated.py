"""float64 softmax cross-entropy values with compensated sums: what ≤ 2 ulps would cost (issue 12 §4).

The shipped value is Σ_c t_c·((m - z_c) + log1p(s)), s = Σ_{c≠argmax} e^{z_c - m} (the rounding of
z - m carried into e by TwoSum). What is left above 2 ulps on `cesym verify`'s default sample is
the rounding of the two sums: s (1.5 ulps of s at the worst row, amplified 1.26x by log1p where
the loss is in a lower binade than s) and the row sum over soft labels. This script evaluates a
candidate that carries both sums' roundings (TwoSum over the columns, transposed once), here and
not in the kernels, against the shipped kernels:

* accuracy: max ulps of the float64 values on verify's default sample (seed 2026, rows of 1, 2,
  3, 5 and 8; the reference at 160 bits in a form without cancellation: m - z_c exact, the
  log1p of the off-max sum);
* time: 2^20 × 10 float64 logits, the minimum of ``REPS`` interleaved runs each of the shipped
  kernel without the carried shift (before issue 12 §4), the shipped kernel, and the candidate.

    python benchmarks/softmax_compensated.py [REPS]
"""

from __future__ import annotations

import contextlib
import sys
import time

import mpmath
import numpy as np

import cesym.kernels as K
from cesym.kernels import _runtime as rt
from cesym.verify.registry import CASES, label_kinds
from cesym.verify.sampling import sample
from cesym.verify.ulps import ulp_error

KERNELS = ("categorical_crossentropy[from_logits=True]", "sparse_categorical_crossentropy[from_logits=True]",
           "softmax_cross_entropy_with_logits", "sparse_softmax_cross_entropy_with_logits")


def two_sum(a, b):
    """Knuth's TwoSum: s + e = a + b exactly."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def compensated_row_sum(v: np.ndarray) -> np.ndarray:
    """Σ_c v_c per row, the roundings carried (TwoSum over the columns of the transposed block)."""
    cols = np.ascontiguousarray(v.T)
    s, c = cols[0].copy(), np.zeros(v.shape[0])
    for k in range(1, v.shape[1]):
        s, e = two_sum(s, cols[k])
        c += e
    return (s + c)[:, None]


_ROW_SUM, _OFF_MAX_SUM = rt.row_sum, rt.off_max_sum


def _compensated_row_sum(v):
    if getattr(rt._CARRY, "on", False) and np.ndim(v) == 2 and 1 < v.shape[-1] <= 16 and rt._piece() is None:
        return compensated_row_sum(v)
    return _ROW_SUM(v)


def _compensated_off_max_sum(e, S):
    if not (getattr(rt._CARRY, "on", False) and np.ndim(e) == 2 and rt._piece() is None):
        return _OFF_MAX_SUM(e, S)
    small = compensated_row_sum(e - np.floor(e))
    return small + np.rint((S - 1.0) - small)


@contextlib.contextmanager
def candidate():
    """The public kernels (blocks, threads, the carried shift as shipped) with every short row sum
    of a float64 call compensated, the off-max sum s among them: the value's final sum and s,
    and also the sums the value does not need exactly (Σe), so the time is an upper bound."""
    rt.row_sum, rt.off_max_sum = _compensated_row_sum, _compensated_off_max_sum
    try:
        yield
    finally:
        rt.row_sum, rt.off_max_sum = _ROW_SUM, _OFF_MAX_SUM


@contextlib.contextmanager
def without_carry():
    """The public kernels as before issue 12 §4: z - m rounded into exp."""
    shifted = rt.shifted_exp
    rt.shifted_exp = lambda z, m: np.exp(z - m)
    try:
        yield
    finally:
        rt.shifted_exp = shifted


def exact(t: np.ndarray, z: np.ndarray) -> list:
    out = []
    with mpmath.workprec(160):
        for tr, zr in zip(t, z):
            zs = [mpmath.mpf(float(x)) for x in zr]
            k = int(np.argmax(zr))
            L = mpmath.log1p(mpmath.fsum(mpmath.exp(mpmath.fsub(x, zs[k], exact=True)) for i, x in enumerate(zs) if i != k))
            out.append(mpmath.fsum(mpmath.mpf(float(a)) * (mpmath.fsub(zs[k], x, exact=True) + L) for a, x in zip(tr, zs)))
    return out


def accuracy() -> None:
    print("max ulps of the float64 values on verify's default sample: shipped / candidate")
    for case in CASES:
        if case.id not in KERNELS:
            continue
        kinds = label_kinds(case)
        rows = -(-10_000 // len(kinds))
        for kind, soft, smooth in kinds:
            worst = [0.0, 0.0]
            for n in (1, 2, 3, 5, 8):
                b = sample(case, np.float64, n, rows // 5, seed=2026, soft=soft, smoothing=smooth)
                ok = np.all(np.isfinite(b.pred), axis=1)
                z, labels = b.pred[ok], np.asarray(b.labels)[ok]
                if case.labels == "sparse":
                    t = np.zeros_like(z)
                    hit = labels.reshape(-1) >= 0
                    t[np.flatnonzero(hit), labels.reshape(-1)[hit]] = 1.0
                else:
                    t = labels
                eps = float(b.params.get("label_smoothing", 0.0))
                if eps:
                    t = t * (1 - eps) + eps / n
                shipped = np.asarray(case.call(labels, z, b.params, False)).reshape(-1)
                with candidate():
                    cand = np.asarray(case.call(labels, z, b.params, False)).reshape(-1)
                for i, want in enumerate(exact(t, z)):
                    worst[0] = max(worst[0], ulp_error(shipped[i], want, np.float64))
                    worst[1] = max(worst[1], ulp_error(cand[i], want, np.float64))
            print(f"  {case.id:52s} {kind:9s} {worst[0]:5.2f} / {worst[1]:5.2f}", flush=True)


def timing(reps: int) -> None:
    rng = np.random.default_rng(1)
    n, c = 1 << 20, 10
    z = rng.normal(0, 3, (n, c))
    k = rng.integers(0, c, n)
    hard = np.eye(c)[k]
    soft = rng.uniform(0, 1, (n, c))
    soft /= soft.sum(axis=1, keepdims=True)
    cases = {
        "categorical, one-hot": lambda: K.categorical_crossentropy(hard, z, from_logits=True),
        "categorical, soft": lambda: K.categorical_crossentropy(soft, z, from_logits=True),
        "sparse": lambda: K.sparse_categorical_crossentropy(k, z, from_logits=True),
    }
    best = {name: [np.inf] * 3 for name in cases}
    for _ in range(reps):
        for name, f in cases.items():
            for j, how in enumerate((without_carry, contextlib.nullcontext, candidate)):
                with how():
                    t0 = time.perf_counter()
                    f()
                    best[name][j] = min(best[name][j], time.perf_counter() - t0)
    print(f"2^20 x 10 float64 values, min of {reps} interleaved runs (ms): without the carry / shipped / candidate, ratios to without")
    for name, (a, b, c2) in best.items():
        print(f"  {name:22s} {a * 1e3:7.1f} / {b * 1e3:7.1f} / {c2 * 1e3:7.1f}   {b / a:4.2f}x / {c2 / a:4.2f}x")


if __name__ == "__main__":
    accuracy()
    timing(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
