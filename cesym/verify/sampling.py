"""Seeded, stratified inputs over the whole finite domain of each kernel, and over its edges.

Rows are drawn stratum by stratum (round robin), so a sample of any size covers every stratum:
values uniform over an interval *and* uniform over float bit patterns (as Herbie samples both),
magnitudes from the smallest normal to the largest float, probabilities next to 0 and 1, rows
dominated by one class with margins of hundreds, exact ties, hard (0/1, one-hot) and soft labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..kernels._api import LABELS_ON_RAYS
from .registry import KernelCase

__all__ = ["Batch", "sample", "sample_extended", "PRED_STRATA", "PROB_STRATA", "PENALTY_STRATA", "PENALTY_LAMS", "EXTENDED_STRATA"]


@dataclass
class Batch:
    """Inputs of one kernel call: rows along the last axis."""

    labels: np.ndarray | None  # dense (B, n) floats, sparse (B,) ints, or None
    pred: np.ndarray  # (B, n) in the kernel's dtype
    params: dict  # keyword parameters (e.g. label_smoothing, lam)
    strata: list[str]  # stratum of each row
    # kernels that reduce over the batch (the activity penalty): the independent batches the
    # rows form, (first row, end row, their keyword parameters); empty: the whole batch is one
    groups: list[tuple[int, int, dict]] = field(default_factory=list)


def _bits_uniform(rng: np.random.Generator, dtype, size, lo: float, hi: float) -> np.ndarray:
    """Floats in [lo, hi] (lo >= 0) uniform over their bit patterns."""
    it = np.int64 if np.dtype(dtype) == np.float64 else np.int32
    a = np.array(lo, dtype=dtype).view(it).astype(np.int64)
    b = np.array(hi, dtype=dtype).view(it).astype(np.int64)
    return rng.integers(a, b, size=size, endpoint=True).astype(it).view(dtype)


_SIGNS = np.array([-1.0, 1.0])


def _choice(rng: np.random.Generator, values, n: int) -> np.ndarray:
    """``rng.choice(values, n)`` for a short 1-D ``values`` (uniform, with replacement): the same
    numbers from the same stream (``Generator.choice`` draws ``rng.integers(0, len(values), n)``
    and indexes; ``tests/test_sampling.py`` holds the two equal), without its argument handling,
    about 11 µs a call where the sampler makes one or two per row."""
    values = np.asarray(values)
    return values[rng.integers(0, len(values), size=n)]


def _logit_row(rng, stratum: str, n: int, dtype) -> np.ndarray:
    fi = np.finfo(dtype)
    if stratum == "moderate":
        return rng.uniform(-20, 20, n)
    if stratum == "large":
        return _choice(rng, _SIGNS, n) * 10 ** rng.uniform(1, 4.5, n)
    if stratum == "bits":  # any finite magnitude, either sign
        mags = _bits_uniform(rng, dtype, n, float(fi.smallest_normal), float(fi.max) / 4)
        return (_choice(rng, _SIGNS, n) * mags.astype(np.float64))
    if stratum == "dominant":  # one class ahead by hundreds
        z = -rng.uniform(100, 800, n) + rng.uniform(-5, 5)
        z[rng.integers(n)] = rng.uniform(-5, 5)
        return z
    if stratum == "ties":
        return _choice(rng, rng.uniform(-3, 3, 2), n)
    if stratum == "tiny":
        return _choice(rng, _SIGNS, n) * 10 ** rng.uniform(-12, -1, n)
    if stratum == "huge":  # squares next to the largest float: x² overflows, λ/N·Σx² may not
        scale = np.sqrt(float(fi.max)) * 10 ** rng.uniform(-2, 1.5)
        return _choice(rng, _SIGNS, n) * scale * 10 ** rng.uniform(-2, 0, n)
    if stratum == "subnormal_squares":  # squares in the subnormals (or below): digits lost in x²
        scale = np.sqrt(float(fi.smallest_normal)) * 10 ** rng.uniform(-6, 0)
        return _choice(rng, _SIGNS, n) * scale * 10 ** rng.uniform(-2, 0, n)
    raise ValueError(stratum)


def _prob_row(rng, stratum: str, n: int, dtype, renormalised: bool) -> np.ndarray:
    fi = np.finfo(dtype)
    eps = float(fi.eps)
    if stratum == "uniform":
        p = rng.uniform(0, 1, n)
    elif stratum == "log":  # from the smallest normal to 1
        p = 10 ** rng.uniform(np.log10(float(fi.smallest_normal)), 0, n)
    elif stratum == "near1":
        p = 1 - eps * rng.integers(1, 1000, n)
    elif stratum == "dominant":  # one probability next to 1, the rest tiny
        p = 10 ** rng.uniform(np.log10(float(fi.smallest_normal)) / 2, -3, n)
        p[rng.integers(n)] = 1 - eps * rng.integers(1, 64)
    elif stratum == "bits":
        p = _bits_uniform(rng, dtype, n, float(fi.smallest_normal), 1 - eps / 2).astype(np.float64)
    elif stratum == "ties":
        p = _choice(rng, rng.uniform(0.01, 1, 2), n)
    else:
        raise ValueError(stratum)
    p = np.asarray(p, dtype=dtype)
    if renormalised and stratum in ("uniform", "ties"):
        p = (p * 10 ** rng.uniform(-30, 30)).astype(dtype)  # any scale: Keras renormalises
        p[p == 0] = fi.smallest_normal
    p[p <= 0] = fi.smallest_normal
    return p


PRED_STRATA = ("moderate", "large", "bits", "dominant", "ties", "tiny")
PROB_STRATA = ("uniform", "log", "near1", "dominant", "bits", "ties")
#: The activity penalty sums squares: its magnitudes reach the ends of the squares' range too.
PENALTY_STRATA = PRED_STRATA + ("huge", "subnormal_squares")
#: Its penalty weights: the seed's; a small one, with which λ/N·Σx² is finite where Σx² is not;
#: a large one, with which it is normal where Σx² is subnormal (the contract holds for any λ).
PENALTY_LAMS = (0.1, 1e-3, 1e6)
PENALTY_MAX_BATCH = 4  # rows per penalty batch: 1 to this


def _into_domain(rng, case: KernelCase, y):
    """Dense labels outside the definition's label domain (``case.label_domain``, where the loss
    is real: KL's y >= 0) moved into it, its first interval: reflected at a one-sided end (a
    draw below -1 becomes one above it), uniform inside a bounded one. Rows already inside are
    returned as they are (no draw is consumed: the shipped samples do not move). A finite end
    itself (MSLE's y = -1, where log(1 + y) = -inf) is not drawn here: the extremes grid holds
    the ends (:func:`cesym.verify.extremes.label_values`)."""
    dom = case.label_domain
    if not dom:
        return y
    y = np.array(y, dtype=np.float64)
    inside = np.isnan(y)
    for lo, hi in dom["intervals"]:
        inside |= (y >= (-np.inf if lo is None else lo)) & (y <= (np.inf if hi is None else hi))
    if inside.all():
        return y
    lo, hi = dom["intervals"][0]
    v = y[~inside]
    if lo is not None and hi is not None:
        new = lo + (hi - lo) * rng.random(v.size)
    elif lo is not None:
        new = lo + np.abs(v - lo)  # -inf becomes +inf: a limit on the ray
    else:
        new = hi - np.abs(v - hi)
    y[~inside] = new
    return y


def _labels_row(rng, case: KernelCase, soft: bool, n: int, pred_row: np.ndarray):
    """One row's labels (a class index, or a dense row inside the definition's label domain)."""
    if case.labels == "sparse":
        return _label_row(rng, case, soft, n, pred_row)
    return _into_domain(rng, case, _label_row(rng, case, soft, n, pred_row))


def _label_row(rng, case: KernelCase, soft: bool, n: int, pred_row: np.ndarray):
    if case.labels == "sparse":
        # half the rows label the largest prediction (the dominant-class case), half a random one
        return int(np.argmax(pred_row)) if rng.random() < 0.5 else int(rng.integers(n))
    if soft:
        y = rng.uniform(0, 1, n)
        y[rng.random(n) < 0.2] = 0.5
        return y
    if case.label_kind in ("real", "count"):  # regression targets: any finite number (counts: >= 0)
        if rng.random() < 0.25:
            # next to the prediction (relative 1e-16..1e-2, so some equal it once rounded), or to
            # its negative: residuals that cancel, rows (nearly) parallel or antiparallel
            y = pred_row.astype(np.float64) * (1 + 10.0 ** rng.uniform(-16, -2, n) * rng.standard_normal(n))
            if case.label_kind == "real" and rng.random() < 0.3:
                y = -y
            return np.abs(y) if case.label_kind == "count" else y
        y = _logit_row(rng, "moderate" if rng.random() < 0.5 else "large", n, np.float64)
        if case.label_kind == "count":
            y = np.abs(y)
            y[rng.random(n) < 0.2] = 0.0  # zero counts: 0·log 0
        return y
    if case.label_kind == "sign":  # -1/+1 class labels
        return _choice(rng, _SIGNS, n)
    if case.label_kind == "distribution":
        y = np.zeros(n)
        k = int(np.argmax(pred_row)) if rng.random() < 0.5 else int(rng.integers(n))
        y[k] = 1.0
        if rng.random() < 0.15:  # multi-hot 0/1 rows are hard labels too
            y[rng.integers(n)] = 1.0
        return y
    return rng.integers(0, 2, n).astype(np.float64)


def _penalty_sample(rng: np.random.Generator, dtype, n: int, rows: int, weight: str) -> Batch:
    """The activity penalty's rows, as many small batches (1 to ``PENALTY_MAX_BATCH`` rows, each
    one value of the kernel): one stratum and one λ (``PENALTY_LAMS``) per batch, the strata in
    turn, so that huge and subnormal-squared activations make the penalty of a batch on their
    own (in one large batch the others' magnitudes would hide them)."""
    preds, names, groups = [], [], []
    start = 0
    while start < rows:
        stop = min(rows, start + int(rng.integers(1, PENALTY_MAX_BATCH + 1)))
        s = PENALTY_STRATA[len(groups) % len(PENALTY_STRATA)]
        preds += [_logit_row(rng, s, n, dtype).astype(dtype) for _ in range(start, stop)]
        names += [s] * (stop - start)
        groups.append((start, stop, {weight: float(rng.choice(PENALTY_LAMS))}))
        start = stop
    return Batch(None, np.array(preds, dtype=dtype).reshape(rows, n), {weight: PENALTY_LAMS[0]}, names, groups)


def _stack(case: KernelCase, preds: list, labels: list, dtype) -> tuple[np.ndarray, np.ndarray | None]:
    """The sampled rows as arrays: predictions and dense labels in the kernel's dtype (exact
    inputs), class indices as int64, no labels for a kernel without."""
    pred = np.array(preds, dtype=dtype)
    if case.labels == "none":
        return pred, None
    return pred, np.array(labels, dtype=np.int64 if case.labels == "sparse" else dtype)


def sample(case: KernelCase, dtype, n: int, rows: int, seed: int, soft: bool = False, smoothing: bool = False) -> Batch:
    """``rows`` seeded rows of length ``n`` for ``case`` in ``dtype``.

    ``soft``: soft labels (uniform in [0, 1]); ``smoothing``: the parameters with a declared
    range drawn over it (label_smoothing in (0, 1]), else at their defaults.
    The activity penalty's rows come as many small batches (``Batch.groups``, :func:`_penalty_sample`).
    """
    rng = np.random.default_rng([seed, n, rows, int(soft), int(smoothing), np.dtype(dtype).itemsize])
    if case.reduction == "batch":
        return _penalty_sample(rng, dtype, n, rows, case.params[0][0])
    strata = PROB_STRATA if case.inputs == "probs" else PRED_STRATA
    preds, labels, names = [], [], []
    for r in range(rows):
        s = strata[r % len(strata)]
        if case.inputs == "probs":
            row = _prob_row(rng, s, n, dtype, renormalised=case.domain == "simplex")
        elif case.inputs == "positive":  # magnitudes of every stratum, the smallest normal up
            row = np.maximum(np.abs(_logit_row(rng, s, n, dtype)), float(np.finfo(dtype).smallest_normal)).astype(dtype)
            if case.domain == "log1p":  # >= -1: m - 1 (near -1 and near 0), m, and -m/(1 + m) in (-1, 0)
                m = row.astype(np.float64)
                u = rng.random(n)
                row = np.where(u < 0.5, m - 1, np.where(u < 0.75, m, -m / (1 + m))).astype(dtype)
                # the interior: -1 itself (m - 1 rounded) is the edge, sampled with the extended reals
                row = np.maximum(row, np.nextafter(dtype(-1), dtype(0)))
        else:
            row = _logit_row(rng, s, n, dtype).astype(dtype)
        preds.append(row)
        labels.append(_labels_row(rng, case, soft, n, row) if case.labels != "none" else None)
        names.append(s)
    pred, lab = _stack(case, preds, labels, dtype)
    params: dict = {}
    params.update(_params(rng, case, smoothing))
    return Batch(lab, pred, params, names)


def _params(rng: np.random.Generator, case: KernelCase, draw: bool) -> dict:
    """The case's parameters with a declared range [lo, hi]: with ``draw``, each at a seeded
    point lo + f·(hi - lo), f one of 0.1, 0.2, 1 (the upper edge) or uniform in [0, 1];
    otherwise its default (the middle of the range when it has none)."""
    out = {}
    for name, default, rng_ in case.params:
        if rng_ is None:
            continue
        lo, hi = rng_
        if draw:
            out[name] = float(lo + (hi - lo) * rng.choice([0.1, 0.2, 1.0, rng.uniform(0, 1)]))
        else:
            out[name] = float(default) if default is not None else (lo + hi) / 2
    return out


# --- the extended reals: ±inf logits, +inf and 0 probabilities, NaN ----------------------------

EXTENDED_STRATA = {
    "logits": ("masked", "masked_zero_labels", "one_pos_inf", "several_pos_inf", "mixed_inf", "all_neg_inf", "nan"),
    "probs": ("zero", "zero_zero_labels", "one_pos_inf", "several_pos_inf", "nan"),
    "unit": ("zero", "one", "zero_and_one", "edges_zero_labels", "nan"),  # probabilities in [0, 1]
    "real": ("pos_inf", "neg_inf", "nan"),
}


def _ext_kind(case: KernelCase) -> str:
    if case.inputs in ("probs", "positive"):  # positive: 0 and +inf are its edges, as renormalised rows
        return "unit" if case.domain == "unit" else "probs"
    return "logits" if case.inputs == "logits" else "real"


def _some(rng, n: int, lo: int, hi: int) -> np.ndarray:
    """A random set of between lo and hi (inclusive, clipped to [1, n]) of the n positions."""
    k = int(rng.integers(max(1, min(lo, n)), max(1, min(hi, n)) + 1))
    return rng.choice(n, size=k, replace=False)


def _ext_row(rng, kind: str, stratum: str, n: int, dtype, elementwise: bool):
    """(prediction row, positions where the labels are to be 0, positions of special values)."""
    if kind in ("logits", "real"):
        row = rng.uniform(-20, 20, n)
    elif kind == "unit":
        row = rng.uniform(0, 1, n)
    else:
        row = rng.uniform(0.01, 1, n) * 10 ** rng.uniform(-3, 3)
    zero_labels = np.zeros(n, dtype=bool)
    if stratum == "nan":
        row[rng.integers(n)] = np.nan
    elif stratum in ("masked", "masked_zero_labels"):
        idx = _some(rng, n, 1, n - 1)
        row[idx] = -np.inf
        zero_labels[idx] = stratum == "masked_zero_labels"
    elif stratum == "one_pos_inf":
        row[rng.integers(n)] = np.inf
        if kind == "logits" and n > 2 and rng.random() < 0.5:
            row[_some(rng, n, 1, 1)] = -np.inf  # may land on the +inf: then a -inf row position
    elif stratum == "several_pos_inf":
        row[_some(rng, n, 2, n)] = np.inf
    elif stratum == "mixed_inf":
        idx = _some(rng, n, 2, n)
        signs = _choice(rng, _SIGNS, idx.size)
        signs[:2] = (1.0, -1.0)[: idx.size]  # both infinities in the row (n >= 2)
        row[idx] = signs * np.inf
    elif stratum == "all_neg_inf":
        row[:] = -np.inf
    elif stratum in ("zero", "zero_zero_labels"):
        idx = _some(rng, n, 1, n - 1 if kind == "probs" else n)
        row[idx] = 0.0
        zero_labels[idx] = stratum == "zero_zero_labels"
    elif stratum == "one":
        row[_some(rng, n, 1, n)] = 1.0
    elif stratum in ("zero_and_one", "edges_zero_labels"):
        idx = _some(rng, n, 1, n)
        row[idx] = _choice(rng, [0.0, 1.0], idx.size)
        zero_labels[idx] = stratum == "edges_zero_labels"
    elif stratum == "pos_inf":
        row[_some(rng, n, 1, n)] = np.inf
    elif stratum == "neg_inf":
        row[_some(rng, n, 1, n)] = -np.inf
    elif stratum == "label_inf":  # the predictions finite, some labels infinite (set by the caller)
        pass
    else:
        raise ValueError(stratum)
    if elementwise and kind == "logits" and stratum != "nan":
        row[rng.random(n) < 0.3] = rng.choice([-np.inf, np.inf])
    return np.asarray(row, dtype=dtype), zero_labels


def sample_extended(case: KernelCase, dtype, n: int, rows: int, seed: int, soft: bool = False, smoothing: bool = False) -> Batch:
    """``rows`` seeded rows of length ``n`` at the edges of ``case``'s domain (strata
    :data:`EXTENDED_STRATA`): -inf logits under zero and positive labels, one and several +inf,
    every logit -inf, +inf and 0 probabilities (0 and 1 for binary cross-entropy), ±inf
    activations, NaN; and for labels on the real line (regression targets, signs, counts), rows
    of finite predictions under some infinite labels (``label_inf``; +inf for counts). Labels as :func:`sample` draws them, then 0 where a stratum masks them
    (for class-index labels: a class that is not masked)."""
    rng = np.random.default_rng([seed, n, rows, int(soft), int(smoothing), np.dtype(dtype).itemsize, 1])
    kind = _ext_kind(case)
    strata = EXTENDED_STRATA[kind]
    if case.label_kind in LABELS_ON_RAYS:  # labels on the real line: infinite ones too
        strata = strata + ("label_inf",)
    if n == 1:  # a masked row needs a class left to label; a renormalised row, a non-zero element
        strata = tuple(s for s in strata if not s.endswith("zero_labels") and not (kind == "probs" and s == "zero"))
    preds, labels, names = [], [], []
    for r in range(rows):
        s = strata[r % len(strata)]
        row, zero = _ext_row(rng, kind, s, n, dtype, case.elementwise)
        if case.domain == "log1p":  # its edges -1 and +inf: the positive domain's, shifted
            row = (row.astype(np.float64) - 1).astype(dtype)
        preds.append(row)
        names.append(s)
        if case.labels == "none":
            labels.append(None)
            continue
        lab = _labels_row(rng, case, soft, n, np.where(np.isnan(row), 0, row))
        if case.labels == "sparse":
            if zero.any() and not zero.all():
                lab = int(rng.choice(np.flatnonzero(~zero)))
        else:
            lab = np.where(zero, 0.0, lab)
            if s == "label_inf":  # a count is infinite at +inf only
                idx = _some(rng, n, 1, n)
                signs = np.ones(idx.size) if case.label_kind == "count" else _choice(rng, _SIGNS, idx.size)
                lab = np.array(lab, dtype=np.float64)
                lab[idx] = signs * np.inf
                lab = _into_domain(rng, case, lab)
        labels.append(lab)
    pred, lab = _stack(case, preds, labels, dtype)
    params: dict = {}
    params.update(_params(rng, case, smoothing))
    if case.reduction == "batch":  # λ = 0 (zero weight times an infinite term) on short rows
        params[case.params[0][0]] = 0.0 if n <= 4 else 0.1
    return Batch(lab, pred, params, names)
