"""The host's floor: how accurate this machine's NumPy exp, log, log1p and expm1 are.

A kernel cannot be more accurate than the elementary functions it calls. Measured here against
mpmath (53-bit and 24-bit results are compared with 40-digit values), on a seeded sample uniform
over the bit patterns of each function's useful domain, with NumPy's SIMD dispatch recorded (its
float32 exp and log are vectorised approximations of a few ulps).
"""

from __future__ import annotations

import copy
import functools

import mpmath
import numpy as np

from .ulps import ulp_error

__all__ = ["measure", "simd"]

_FUNCS = {
    "exp": (np.exp, mpmath.exp, {np.float64: (-745.0, 709.0), np.float32: (-103.0, 88.0)}),
    "log": (np.log, mpmath.log, {np.float64: (1e-300, 1e300), np.float32: (1e-37, 1e37)}),
    "log1p": (np.log1p, mpmath.log1p, {np.float64: (-0.999, 1e300), np.float32: (-0.999, 1e37)}),
    "expm1": (np.expm1, mpmath.expm1, {np.float64: (-40.0, 709.0), np.float32: (-20.0, 88.0)}),
}


def _sample(dtype, lo: float, hi: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Half uniform over values, half uniform over bit patterns (of |x|, with the sign of the range)."""
    vals = rng.uniform(lo, hi, n // 2)
    it = np.int64 if dtype == np.float64 else np.int32
    a, b = sorted(abs(v) for v in (lo, hi) if v != 0) if lo * hi > 0 else (0.0, max(abs(lo), abs(hi)))
    ia = np.array(a, dtype=dtype).view(it).astype(np.int64)
    ib = np.array(b, dtype=dtype).view(it).astype(np.int64)
    mags = rng.integers(ia, ib, n - n // 2).astype(it).view(dtype).astype(np.float64)
    signs = np.where(rng.random(mags.size) < (0.5 if lo < 0 < hi else (0.0 if lo >= 0 else 1.0)), -1.0, 1.0)
    x = np.concatenate([vals, signs * mags]).astype(dtype)
    return x[(x >= lo) & (x <= hi)]


def measure(n: int = 2000, seed: int = 2026) -> dict:
    """Max and mean ulp error of each function and dtype, e.g. ``{"float32": {"exp": {...}}}``.

    Measured once per process (16,000 points at 40 digits: about half a second, which every
    ``cesym verify`` of a process, e.g. a test session's, paid again): NumPy picks its SIMD paths
    when it is imported, so the process's functions are the same at every call. A copy each time."""
    return copy.deepcopy(_measure(n, seed))


@functools.lru_cache(maxsize=None)
def _measure(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out: dict = {}
    for dtype in (np.float32, np.float64):
        res = {}
        for name, (npf, mpf, domains) in _FUNCS.items():
            x = _sample(dtype, *domains[dtype], n, rng)
            with np.errstate(all="ignore"):
                y = npf(x)
            with mpmath.workdps(40):
                errs = [ulp_error(float(yi), mpf(mpmath.mpf(float(xi))), dtype) for xi, yi in zip(x, y)]
            res[name] = {"max_ulps": float(np.max(errs)), "mean_ulps": float(np.mean(errs)), "points": int(x.size)}
        out[np.dtype(dtype).name] = res
    return out


def simd() -> dict:
    """NumPy's build baseline and the SIMD extensions this CPU dispatches to."""
    try:
        from numpy._core import _multiarray_umath as m
    except ImportError:  # NumPy < 2
        from numpy.core import _multiarray_umath as m  # type: ignore[no-redef]
    features = getattr(m, "__cpu_features__", {})
    return {
        "numpy": np.__version__,
        "baseline": list(getattr(m, "__cpu_baseline__", [])),
        "dispatch": [d for d in getattr(m, "__cpu_dispatch__", []) if features.get(d, False) or d.startswith("X86_V")],
        "avx512f": bool(features.get("AVX512F", False)),
        "avx2": bool(features.get("AVX2", False)),
    }
