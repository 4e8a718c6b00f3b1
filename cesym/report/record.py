"""What a report run measures on this host, as one structured record (``reports/measured.json``).

The reports hold two kinds of content. What the sources determine (definitions, derivations,
rewrites, generated code, derived thresholds, the seeds' exact mathematics) is rendered from the
sources by :mod:`cesym.report.render`. What the host measures (ulps and shares of the bound, Keras's
counts, the plotted points, Keras's and the kernels' values on the seeds) depends on NumPy's SIMD
exp/log and TensorFlow's kernels, which differ in the last bits between CPUs; it is collected
here, once, into a record that the renderer reads. ``cesym report --check``
(:mod:`cesym.report.check`) then compares the rendering exactly and the measurements by what they
promise.

The record also names the sources it was measured with (:func:`source_digests`: a digest of
each file of the kernels, the definitions and the code that samples, references and compares),
so that a change to any of them shows the record stale without measuring again.

The record is plain JSON (sorted keys, non-finite numbers as strings) so that its bytes are a
function of its content.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..files import file_digest
from ..verify.registry import CASES

__all__ = [
    "RECORD_NAME", "FORMAT", "PLOT_ROWS", "MEASURING_CODE", "measure", "source_digests", "dumps", "loads", "plot_cases", "SERIES",
]

#: File name of the record inside the reports directory.
RECORD_NAME = "measured.json"
#: Version of the record's layout (a reader refuses another).
FORMAT = 3
#: The code a measurement runs, inside the ``cesym`` package: the definitions' machinery, the
#: kernels (generated and runtime), the reference, sampling and contract, the Keras calls and
#: model, this module and the seeds' calls. The derivation files are added to it.
#: Not in it: what only renders (:mod:`.render`, :mod:`.check`), the command line, the bench,
#: and generation (its output, the kernels, is).
MEASURING_CODE = ("define", "kernels", "verify", "keras", "report/record.py", "report/seeds.py")
#: Sample of the error plots: rows per kernel and dtype (hard labels, rows of 3).
PLOT_ROWS = 240
#: Plotted series, in drawing order: the kernel, the naive form, Keras (when it ran).
SERIES = ("cesym kernel", "naive form", "Keras")
#: Plotted errors above this are drawn at it (NaN and overflow included): log10(1 + 1e20) ≈ 20.
ERR_CAP = 1e20
#: Significant digits kept for plotted points: more than a plot or its table can show.
PLOT_DIGITS = 6


def plot_cases(family: str, cases=None):
    """The kernel cases plotted in ``family``'s error figure (all but batch reductions: one value per batch)."""
    return [c for c in (CASES if cases is None else cases) if c.loss.split(".")[0] == family and c.reduction != "batch"]


def _round(x: float) -> float:
    return float(f"{x:.{PLOT_DIGITS}g}")


def _config(c, case) -> dict:
    """The part of a :class:`cesym.verify.run.Config` that the reports show (no timings), with what
    its case declares (the loss it computes, its reduction, how many label kinds it is checked with)."""
    from ..verify.registry import label_kinds

    keep = ("value_ulps", "grad_ulps", "value_bits", "value_share", "grad_share", "value_worst", "grad_worst")
    return {
        "kernel": c.kernel,
        "loss": case.loss,
        "batch": case.reduction == "batch",
        "label_kinds": len(label_kinds(case)),
        "keras_declared": case.keras is not None,
        "dtype": c.dtype,
        "labels": c.labels,
        "points": c.points,
        "stable": {k: c.stable.get(k) for k in keep},
        "naive": {k: c.naive.get(k) for k in ("value_ulps", "grad_ulps", "value_worst", "grad_worst")},
        "failures": len(c.failures),
        "naive_outside": c.naive_outside,
        "unresolved": c.unresolved,
        "extended": c.extended,
        "keras": None if c.keras is None else {k: c.keras[k] for k in (
            "value", "grad", "value_max_ulps", "grad_max_ulps", "unexplained_examples", "unresolved", "value_worst", "grad_worst",
            "replayed", "replay_compared", "replay_apart", "grad_replayed", "grad_replay_compared", "grad_replay_apart")},
    }


def separable(case) -> bool:
    """The loss of a row is the mean (or sum) of one term per element, each term of its own
    element only: a row of one element is that term, so its error can be plotted per element."""
    from ..verify.contract import definition

    if case.elementwise:
        return True
    if case.reduction == "batch":  # one value per batch: no row of its own
        return False
    loss = definition(case)
    return separable_value(loss.value, loss.weights)


def separable_value(value, weights: dict | None = None) -> bool:
    """``value`` is ``k·RowSum(term)`` with ``term`` of the row's element only (no row reduction,
    in elementary functions, and no C in it or in its label weights) and ``k`` free of elements."""
    import sympy as sp

    from ..define.primitives import C, Elem, RowSum, outer_reductions, to_elementary

    reds = outer_reductions(value)
    if len(reds) != 1 or not isinstance(next(iter(reds)), RowSum):
        return False
    (red,) = reds
    term = red.args[0]
    rest = sp.simplify(value / red)
    defs = [d for w, d in (weights or {}).items() if w in term.free_symbols]
    # in elementary functions a row primitive (the log-softmax, a norm) shows its row sums
    elementary = to_elementary(term, keep=())
    return (not outer_reductions(elementary) and not term.has(C) and not any(d.has(C) for d in defs)
            and not any(isinstance(x, Elem) for x in rest.free_symbols))


def _plot_panels(family: str, keras: bool, seed: int, cases=None) -> list[dict]:
    """Per plotted kernel × dtype: the input of each point and each series' value and gradient
    error in ulps (``ERR_CAP`` for NaN, inf and anything larger; a row's gradient: its largest
    element's), with how many of the series' points are outside the contract (full precision,
    before rounding). A separable loss (:func:`separable`)
    is sampled as rows of one element and plotted against that element, sign included
    (``signed``); the others against the largest |input| of their rows of three."""
    from ..verify.contract import check_batch, definition
    from ..verify.sampling import sample
    from ..verify.run import naive_kernel

    panels = []
    for case in plot_cases(family, cases):
        signed = separable(case)  # per element, sign kept (an elementwise loss's rows are elements already)
        per_element = signed and not case.elementwise
        for dtype in (np.float32, np.float64):
            batch = sample(case, dtype, 1 if per_element else 3, PLOT_ROWS * (3 if per_element else 1), seed=seed)
            pred = batch.pred.astype(np.float64)
            mags = pred.ravel() if signed else np.max(np.abs(pred), axis=1)
            kernels = [("cesym kernel", None), ("naive form", naive_kernel(case))]
            if keras and case.keras is not None:
                from ..keras.calls import keras_kernel

                kernels.append(("Keras", keras_kernel(case)))
            series = []
            grads = definition(case).differentiable
            for label, kern in kernels:
                res = check_batch(case, batch, grad=grads, kernel=kern)
                err = np.minimum(np.nan_to_num(np.asarray(res.value_ulps, dtype=float), nan=ERR_CAP, posinf=ERR_CAP), ERR_CAP)
                s = {"label": label, "err": [_round(e) for e in err], "outside": sum(f.what.startswith("value") for f in res.failures)}
                if grads:  # per point: the element's gradient (rows of one), else the row's largest
                    g = np.minimum(np.nan_to_num(np.asarray(res.grad_ulps, dtype=float), nan=ERR_CAP, posinf=ERR_CAP), ERR_CAP)
                    g = g.reshape(len(err), -1).max(axis=1)
                    s["grad_err"] = [_round(e) for e in g]
                    s["grad_outside"] = sum(f.what.startswith("grad") for f in res.failures)
                series.append(s)
            panels.append({
                "case": case.id,
                "dtype": np.dtype(dtype).name,
                "signed": bool(signed),
                "mags": [_round(m) for m in mags[: len(series[0]["err"])]],
                "series": series,
            })
    return panels


def source_digests(derivations: Path | None = None) -> dict[str, str]:
    """A digest of every Python file a measurement runs (:data:`MEASURING_CODE`, and the
    derivation files of ``derivations``, default the shipped ones), by its path relative to the
    ``cesym`` package (``derivations/<file>`` for a derivation)."""
    from ..define.loss import DERIVATIONS_DIR

    package = Path(__file__).resolve().parents[1]
    out = {}
    for part in MEASURING_CODE:
        root = package / part
        files = [root] if root.suffix == ".py" else sorted(root.rglob("*.py"))
        for f in files:
            out[f.relative_to(package).as_posix()] = file_digest(f)
    for f in sorted(Path(derivations or DERIVATIONS_DIR).glob("*.py")):
        out[f"derivations/{f.name}"] = file_digest(f)
    return out


def measure(points: int, seed: int, jobs: int = 1, keras: bool = True, cases=None, derivations: Path | None = None) -> dict[str, Any]:
    """Run every measurement the reports show and return the record. ``cases``: a user's kernel
    cases (:func:`cesym.verify.registry.load_cases`; default the shipped ones, with the seed posts'
    numbers and Keras's clip edges); ``derivations``: their directory (default the shipped
    one), whose files the record names with the code."""
    from ..keras.model import clip_edges
    from ..verify.run import environment, run

    pool = list(CASES if cases is None else cases)
    by_id = {c.id: c for c in pool}
    configs = run(points=points, seed=seed, jobs=jobs, keras=keras, forms=False, cases=pool)
    keras = keras and any(c.keras is not None for c in pool)
    env = environment(keras=keras)
    families = sorted({c.loss.split(".")[0] for c in pool})
    record: dict[str, Any] = {
        "format": FORMAT,
        "points": points,
        "seed": seed,
        "plot_rows": PLOT_ROWS,
        "keras": keras,
        "versions": {k: env[k] for k in ("numpy", "sympy", "mpmath", "tensorflow", "keras") if k in env},
        "configs": [_config(c, by_id[c.kernel]) for c in configs],
        "plots": {f: _plot_panels(f, keras, seed, pool) for f in families if plot_cases(f, pool)},
        "caps": clip_edges() if keras and cases is None else [],
        "seeds": [],
        "sources": source_digests(derivations),
    }
    if keras and cases is None:
        from .seeds import seed_numbers

        record["seeds"] = [asdict(s) for s in seed_numbers()]
    return record


def _encode(x):
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _encode(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_encode(v) for v in x]
    if isinstance(x, np.generic):
        return _encode(x.item())
    return x


_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _decode(x):
    if isinstance(x, str) and x in _NONFINITE:
        return _NONFINITE[x]
    if isinstance(x, dict):  # the seeds' columns are text ("inf" is what Keras printed, not a number)
        return {k: v if k == "seeds" else _decode(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_decode(v) for v in x]
    return x


def dumps(record: dict) -> str:
    """The record as JSON text: sorted keys, one configuration or panel per line, newline-terminated.

    Strings that read "inf"/"-inf"/"nan" come back as floats from :func:`loads`; no text of the
    reports is exactly one of those words.
    """
    return json.dumps(_encode(record), sort_keys=True, ensure_ascii=False, indent=1, allow_nan=False) + "\n"


def loads(text: str) -> dict:
    """Read a record written by :func:`dumps`; ValueError for anything else."""
    record = _decode(json.loads(text))
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{RECORD_NAME}: expected a report record of format {FORMAT}")
    return record
