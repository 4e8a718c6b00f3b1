r"""The extremes grid: every row of two extreme finite inputs, under every pair of grid labels.

The sampler (:mod:`.sampling`) draws rows from strata, so a row whose logits span more than the
largest float (:math:`z = [10^{308}, -10^{308}]`, where :math:`z - \max z` overflows), a
renormalised row of one subnormal or two equal logits of :math:`10^{300}` turn up rarely or never.
Here they all do, once: for each kernel, dtype and setting of its parameters (their defaults,
then each at both ends of its range), the rows are all pairs of the values below (rows of one
element for an elementwise kernel), each under every pair of labels of the label kind's grid, and
every output is checked against the reference (:func:`~.contract.check_batch`): within
``base + 4κ`` ulps, an infinity or NaN where the mathematics is finite outside it whatever κ.

Values, by the prediction's domain (``fmax``, ``tiny`` and ``sub`` the format's largest, least
normal and least subnormal numbers):

* real numbers (logits, regression): ±fmax, fmax/2, -fmax/3, ±1, 0, tiny, -sub, 1e-30;
* probabilities: 0, 1, 1/2, tiny, sub, 1 - ε/2, 1e-30;
* positive numbers: 0, tiny, 1, fmax, fmax/2, sub, 3.

Labels: binary 0, 1, 1/2, 0.3; distributions 0, 1, 1/2, 1/4, 1/10 per element; class indices
each class; real targets ±fmax/2, 1, -3, 0, tiny; counts 0, 1, fmax/2, 1/2; signs ±1; less
those the definition's label symbol excludes (``nonzero``, ``positive``, ... assumptions).

``cesym verify --extremes`` runs it (exit 1 on any point outside the contract, or any reference
value left unresolved: such a point is not proven). Rows where the definition is an
indeterminate ball at every precision (0/0 at exact inputs: a zero row's direction) and the
kernel gives NaN in every output are counted apart, as without a value on either side. What it found in
the shipped kernels, fixed and open, is in README.md.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..derive.label_domain import inside
from .contract import check_batch, definition
from .processes import imap, shared, shared_get
from .registry import KernelCase
from .sampling import Batch

__all__ = ["values", "label_values", "settings", "grid", "ExtremesResult", "check_case", "check_cases"]


def values(inputs: str, dtype) -> list[float]:
    """The grid's prediction values for a case's ``inputs`` (:attr:`KernelCase.inputs`)."""
    fi = np.finfo(dtype)
    big, tiny, sub = float(fi.max), float(fi.tiny), float(fi.smallest_subnormal)
    if inputs in ("logits", "real"):
        return [big, -big, big / 2, -big / 3, 1.0, -1.0, 0.0, tiny, -sub, 1e-30]
    if inputs == "probs":
        return [0.0, 1.0, 0.5, tiny, sub, 1 - float(fi.eps) / 2, 1e-30]
    return [0.0, tiny, 1.0, big, big / 2, sub, 3.0]


def label_values(case: KernelCase, dtype) -> list[float] | None:
    """The grid's label values per element (None: no labels; class indices are all classes),
    those the definition's label symbol excludes by its assumptions left out (MAPE's divisor is
    ``Elem("y", nonzero=True)``: a label of 0 is outside its mathematics, not a limit), and those
    outside the label domain where the definition is real (``case.label_domain``: a label
    below 0 in KL's y·log(y/p)), whose finite ends join the grid (MSLE's y = -1, where
    log(1 + y) = -inf: a limit from inside)."""
    fi = np.finfo(dtype)
    vals = {
        "binary": [0.0, 1.0, 0.5, 0.3],
        "distribution": [0.0, 1.0, 0.5, 0.25, 0.1],
        "real": [float(fi.max) / 2, -float(fi.max) / 2, 1.0, -3.0, 0.0, float(fi.tiny)],
        "count": [0.0, 1.0, float(fi.max) / 2, 0.5],
        "sign": [1.0, -1.0],
    }.get(case.label_kind)
    if vals is not None and case.label_domain:  # inside the set where the loss is real, its ends too
        ends = [float(dtype(e)) for iv in case.label_domain["intervals"] for e in iv if e is not None]
        vals = [v for v in dict.fromkeys(vals + ends) if inside(v, case.label_domain)]
    label = getattr(definition(case), "label", None)
    if vals is None or label is None:
        return vals
    # SymPy's own answer for each value, taken exactly: every assumption the symbol holds must hold
    declared = [k for k, on in label.assumptions0.items() if on]
    return [v for v in vals if all(getattr(sp.Rational(v), f"is_{k}") for k in declared)]


def settings(case: KernelCase) -> list[dict]:
    """The parameter settings: every default (a range's middle, or 1, where there is none), then
    each ranged parameter at each end of its range, the others at their defaults."""
    base = {name: float(d) if d is not None else ((rng[0] + rng[1]) / 2 if rng else 1.0) for name, d, rng in case.params}
    out = [dict(base)]
    for name, _, rng in case.params:
        for end in rng or ():
            s = dict(base)
            s[name] = float(end)
            if s not in out:
                out.append(s)
    return out


def grid(case: KernelCase, dtype, params: dict | None = None) -> Batch:
    """The grid's batch of ``case`` in ``dtype`` (module docstring); ``params`` as given."""
    n = 1 if case.elementwise else 2
    rows = [p for p in itertools.product(values(case.inputs, dtype), repeat=n) if case.domain != "simplex" or sum(p) > 0]
    if case.labels == "none":
        pred = np.array(rows, dtype=dtype)
        return Batch(labels=None, pred=pred, params=dict(params or {}), strata=["extremes"] * len(pred))
    if case.labels == "sparse":
        pairs = [(p, k) for p in rows for k in range(n)]
        labels = np.array([k for _, k in pairs], dtype=np.int64)
    else:
        pairs = [(p, y) for p in rows for y in itertools.product(label_values(case, dtype), repeat=n)]
        labels = np.array([y for _, y in pairs], dtype=dtype)
    pred = np.array([p for p, _ in pairs], dtype=dtype)
    return Batch(labels=labels, pred=pred, params=dict(params or {}), strata=["extremes"] * len(pred))


@dataclass
class ExtremesResult:
    """One case, dtype and parameter setting on the grid."""

    kernel: str
    dtype: str
    params: dict
    points: int
    failures: list[str] = field(default_factory=list)
    unresolved: int = 0
    seconds: float = 0.0
    unresolved_at: list[str] = field(default_factory=list)  # the inputs of the first unresolved rows
    #: rows where the definition is indeterminate at every precision and the kernel gives NaN
    undefined: int = 0
    undefined_at: list[str] = field(default_factory=list)


def check_case(case: KernelCase, dtype) -> list[ExtremesResult]:
    """The grid of ``case`` in ``dtype`` under each of its parameter settings, checked."""
    out = []
    if case.reduction == "batch":
        return out
    for params in settings(case):
        t0 = time.time()
        batch = grid(case, dtype, params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = check_batch(case, batch, indeterminate=True)
        out.append(ExtremesResult(case.id, np.dtype(dtype).name, params, len(batch.pred), [str(f) for f in res.failures],
                                  res.unresolved, time.time() - t0, res.unresolved_at, res.undefined, res.undefined_at))
    return out


def _task(task: tuple) -> list[ExtremesResult]:
    token, i, dtype_name = task
    return check_case(shared_get(token)[i], np.dtype(dtype_name).type)


def check_cases(cases: Sequence[KernelCase], jobs: int = 1) -> Iterator[list[ExtremesResult]]:
    """:func:`check_case` of every case in float64 and float32, in that order, on ``jobs``
    processes (:func:`cesym.verify.processes.imap`)."""
    cases = list(cases)
    with shared(cases) as token:
        yield from imap(_task, [(token, i, d) for i in range(len(cases)) for d in ("float64", "float32")], jobs)
