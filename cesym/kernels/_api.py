"""The public kernels built from their declarations: argument checks, axis and dtype handling,
limits and warnings around the generated cores, for any loss.

Each generated module (:mod:`cesym.kernels._generated`) holds, next to its cores, ``PUBLIC``
(the :class:`cesym.define.declare.Public` of its derivation file, as plain data) and ``CORES`` (each
kernel's arguments). :func:`build` turns one declaration into ``<name>``, ``<name>_grad``,
``<name>_value_and_grad`` and the naive ``<name>``/``<name>_grad``: nothing here knows a loss
by name; what a loss needs is read from its declaration (label kind, prediction domain, limit
rule, reduction, keywords).

Every function computes in float64 (float32 inputs are widened exactly, and the float64 result
is rounded once to float32; for the kernels with a decimal form, the outputs whose rounding that
leaves open are recomputed: :mod:`._rounding`), with the class axis moved last for the generated
cores. ``kind``
selects the stable kernel (``"value"``/``"grad"``/``"value_and_grad"``) or the naive lambdified
definition (``"naive_value"``/``"naive_grad"``, for comparison only).
"""

from __future__ import annotations

import inspect
import math
import textwrap
from collections.abc import Callable
from types import ModuleType

import numpy as np

from . import _limits as _lim
from . import _misuse as M
from . import _runtime as _rt
from . import _validate as V
from . import _blocks
from . import _rescue
from . import _rounding
from ._blocks import RowView, run_blocks

__all__ = ["build", "export", "KINDS"]

KINDS = ("value", "grad", "value_and_grad", "naive_value", "naive_grad")


def _rows(a: np.ndarray, axis: int) -> np.ndarray | RowView:
    """``a`` with the class axis last, as 2-D rows: a view whenever the layout allows one, else a
    :class:`RowView` that gathers blocks of rows from the strided array (never a whole copy)."""
    v = np.moveaxis(a, axis, -1)
    if v.ndim == 2:
        return v
    try:
        return np.reshape(v, (-1, v.shape[-1]), copy=False)
    except ValueError:
        return RowView(v)


def _run(
    core,
    kind: str,
    labels,
    pred: np.ndarray,
    axis: int,
    scalars: tuple = (),
    row_level: bool = True,
    check=None,
    precheck=None,
    watch: M.ProbabilityWatch | None = None,
    limits=None,
    grad_alone: bool = False,
    block_elements: int | None = None,
    zero_edge: bool = False,
    rescue=None,
    nan_masked: bool = False,
):
    """Call ``core`` on blocks of last-axis rows (:mod:`._blocks`); restore axes; round to pred's dtype.

    ``labels``: an array of pred's shape, a callable making label blocks (class indices, see
    :func:`_label_blocks`), or None. ``watch``: looks at every prediction block (as the
    precheck) and warns, from this thread, once the blocks are done. ``limits(lab, pred)``:
    (value, gradient, force) of block rows whose inputs are not all finite (:mod:`._limits`),
    for the stable kinds.
    ``grad_alone``: the gradient can be non-finite where the value is finite (ignored rows,
    whose value is 0 whatever their logits; an infinite label past a kink); otherwise
    value_and_grad tests the value only.
    ``block_elements``: the size of the blocks of short rows (default ``_blocks.BLOCK_ELEMENTS``).
    ``zero_edge``: the predictions' domain starts at 0, and -0 is that edge (see ``run_blocks``).
    ``rescue(blocks, results)``: recomputes the outputs that overflowed where their rows' inputs
    are finite (:mod:`._rescue`), for the stable kinds; with it every output is watched.
    """
    if watch is not None:
        precheck = watch
    p = _rows(pred, axis)
    n_rows, n_cols = p.shape
    srcs = ([] if labels is None else [labels if callable(labels) else _rows(labels, axis)]) + [p]
    kinds = ("value", "grad") if kind == "value_and_grad" else (kind,)
    outputs = [("row" if row_level and not k.endswith("grad") else "elem", V.native(pred.dtype)) for k in kinds]
    naive = kind.startswith("naive")  # in the predictions' own dtype: what a plain implementation computes
    rescue = None if naive else rescue
    fix = None
    if not naive:  # (without limits or a rescue: NaN rows only)
        fix = _fixer(limits, kinds, not row_level, labels is not None and callable(labels), rescue=rescue, nan_masked=nan_masked)
    # a non-finite gradient comes with a non-finite value (NaN or +inf in the row), but for
    # ignored rows and where a gradient can overflow alone (rescued): the value is tested alone
    # unless there are such rows
    # (float64 only: float32 inputs, below 3.4e38, leave float64 forms far from overflow)
    alone = rescue is not None and V.native(pred.dtype) == np.float64
    watched = (0,) if kind == "value_and_grad" and not grad_alone and not alone else None
    outs = run_blocks(
        core, srcs, scalars, n_rows, n_cols, outputs, check, precheck=precheck, limit=fix, watch=watched, pieces=not naive,
        block_elements=block_elements, compute=V.native(pred.dtype) if naive else np.float64,
        zero_edge=zero_edge and not naive,
    )
    if isinstance(core, _rounding._Rounder):  # the outputs its blocks noted, settled together
        core.finish(outs)
    if watch is not None:
        watch.report(pred.size)
    lead = pred.shape[:axis] + pred.shape[axis + 1 :]
    res = []
    for (shape, _), out in zip(outputs, outs):
        if shape == "row":
            res.append(out.reshape(lead))
        else:
            res.append(np.moveaxis(out.reshape(lead + (n_cols,)), -1, axis))
    return tuple(res) if kind == "value_and_grad" else res[0]


def _fixer(limits, kinds, elementwise: bool, sparse: bool, nan_rows: bool = True, rescue=None, nan_masked: bool = False):
    """The ``limit`` callback of :func:`run_blocks`: rows with non-finite inputs (or ignored rows)
    get their limits where the core's outputs are not finite (``limits``, or None: the core's
    outputs stand); rows with finite inputs, their outputs recomputed where they overflowed
    (``rescue``, :mod:`._rescue`, or None). ``nan_masked``: the core can give a finite output
    for a NaN input (a branch free of it: comparisons with NaN are false), so a block holding
    NaN is looked at whatever its outputs."""

    on_rays = getattr(limits, "label_rays", False)

    def fix(blocks, res):
        if rescue is not None:
            res = rescue(blocks, res)
        x = blocks[-1]
        lab = blocks[0] if len(blocks) > 1 else None
        bad = ~np.isfinite(x).all(axis=-1)
        if lab is not None:
            bad |= (lab[:, 0] < 0) if sparse else ~np.isfinite(lab).all(axis=-1)
        if not np.any(bad):
            return res
        # a row holding NaN (or a label in [0, 1] that is not finite) is NaN, also where a zero label
        # weight or a branch free of the NaN input (Tukey's c²/6 past |e| = c: comparisons
        # with NaN are false) made the core's output finite; an ignored row's rule sets it to 0 after
        if nan_rows:  # (a batch reduction's rows hold several samples: its rule sees to them)
            nan = np.isnan(x).any(axis=-1)
            if lab is not None and not sparse:
                nan |= np.isnan(lab).any(axis=-1) if limits is None or on_rays else ~np.isfinite(lab).all(axis=-1)
            if np.any(nan):
                res = tuple(_nan_where(r, nan) for r in res)
        if limits is None:
            return res
        # (a core that masks NaN beside labels on the rays: inf - inf where a label and its
        # prediction are infinite is NaN, which a branch can hide; every such row takes its limit)
        every = nan_masked and on_rays
        return _lim.repair(kinds, res, bad, lambda idx: limits(None if lab is None else lab[idx], x[idx]), x.shape, elementwise, every)

    wants = getattr(rescue, "wants", None)  # finite blocks the rescue looks at all the same
    if nan_masked and on_rays:
        fix.wants = lambda blocks: any(not np.isfinite(b).all() for b in blocks) or (wants is not None and wants(blocks))
    elif nan_masked:
        fix.wants = lambda blocks: any(np.isnan(b).any() for b in blocks) or (wants is not None and wants(blocks))
    else:
        fix.wants = wants
    return fix


def _nan_where(r: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``r`` (float64, one row per input row) with the ``rows`` set to NaN."""
    r = np.array(r, dtype=np.float64)
    r[np.broadcast_to(rows[:, None], r.shape) if r.ndim == 2 else rows] = np.nan
    return r


def _renormalisable(block: np.ndarray, name: str = "y_pred") -> None:
    """Per float64 block of rows: every row must have a positive, finite sum to renormalise."""
    s = _rt.row_sum(block)
    if np.any(s == 0):
        raise ValueError(f"{name}: a row of probabilities sums to 0 and cannot be renormalised")
    if np.any(np.isinf(s) & ~np.isinf(block).any(axis=-1, keepdims=True)):
        raise ValueError(f"{name}: a row of probabilities overflows float64 when summed")


def _range_and_nan(p: np.ndarray, high: bool = True) -> tuple:
    """(min, max or None, whether the block holds NaN), NaN skipped: min/max propagate NaN, so
    one pass each tells (:func:`._blocks.block_range`, shared with the rounding test); fmin/fmax,
    which skip it, are taken only when there is NaN."""
    lo, hi = _blocks.block_range(p, high)  # remembered for the rounding test's box
    nan = bool(np.isnan(lo))
    if nan:
        lo = np.fmin.reduce(p, axis=None)
    if not high:
        return lo, None, nan
    return lo, (np.fmax.reduce(p, axis=None) if nan else hi), nan


def _check_positive(p: np.ndarray, name: str = "y_pred", edge: float = 0.0) -> bool:
    """Per block of rows: numbers >= ``edge`` (0: non-negative), the domain's edge; True if the
    block holds NaN (it passes and propagates to its rows)."""
    lo, _, nan = _range_and_nan(p, high=False)
    if lo < edge:
        what = "non-negative values" if edge == 0 else f"values >= {edge:g}"
        raise ValueError(f"{name}: expected {what} (min {np.nanmin(p)})")
    return nan


def _label_blocks(labels: np.ndarray):
    """Blocks of flat integer labels as (rows, 1) int64 columns; -1 marks an ignored sample."""
    return lambda s, e: labels[s:e, None]


def _real_keyword(value, kw: dict) -> float:
    """A "real" keyword: a finite number, in its declared closed range."""
    v = V.scalar(value, kw["name"])
    rng = kw["range"]
    if rng is not None and not float(rng[0]) <= v <= float(rng[1]):
        raise ValueError(f"{kw['name']}: expected a value in [{float(rng[0]):g}, {float(rng[1]):g}], got {value!r}")
    return v


def _ignore_class(value) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
        raise TypeError(f"ignore_class: expected an integer or None, got {value!r}")
    return value


class _Call:
    """One call's checked inputs: the variant, the prediction and labels, the scalars."""

    def __init__(self, pub: dict, module: ModuleType, values: dict):
        self.pub, self.module = pub, module
        kws = {k["name"]: k for k in pub["keywords"]}
        flags = {n: V.flag(values[n], n) for n, k in kws.items() if k["kind"] == "flag"}
        self.variant = next((v for v in pub["variants"] if all(flags[k] == want for k, want in v["when"].items())), None)
        if self.variant is None:
            offered = "; ".join(", ".join(f"{k}={w}" for k, w in v["when"].items()) for v in pub["variants"])
            given = ", ".join(f"{k}={flags[k]}" for k in flags)
            raise ValueError(f"{pub['name']}: no kernel for {given}; available: {offered}")
        self.core = module.CORES[self.variant["loss"]]
        self.pred_name = pub["args"][-1]
        self.lab_name = pub["args"][0] if pub["labels"] != "none" else None
        self.has_flag = "from_logits" in flags
        p = V.prediction(values[self.pred_name], self.pred_name)
        red = pub["reduction"]
        if red == "row":
            if "axis" in kws:
                axis = values["axis"]
                ax = V.normalize_axis(axis, p.ndim, pred_name=self.pred_name)
                where = f"axis={axis}"
            else:
                ax, where = p.ndim - 1, "the last"
            if p.shape[ax] == 0:
                raise ValueError(f"{self.pred_name}: the class axis ({where}) is empty")
        elif red == "batch":
            ax = 0
        else:
            ax = p.ndim  # a unit axis appended: every element a row of one
        self.p, self.ax = p, ax
        self.labels, self.ignored = self._labels(values, kws)
        self.scalars = {}
        for n, k in kws.items():
            if k["kind"] == "real":
                self.scalars[n] = _real_keyword(values[n], k)
        if red == "batch" and p.shape[0] == 0:
            raise ValueError(f"{self.pred_name}: the batch axis (axis 0) is empty")

    def _labels(self, values: dict, kws: dict):
        kind = self.pub["labels"]
        if kind == "none":
            return None, None
        raw = values[self.lab_name]
        p, name = self.p, self.lab_name
        if kind != "index":
            y = V.dense_labels(raw, p.shape, name, self.pred_name)
            if "label_domain" in self.core:
                V.labels_in_domain(y, self.core["label_domain"], name)
            return (y[..., None] if self.pub["reduction"] == "element" else y), None
        raw = V.array(raw, name)
        if self.pub["exact_label_shape"] and raw.shape != p.shape[:-1]:
            raise ValueError(
                f"{name}: shape {raw.shape} does not fit {self.pred_name}' shape {p.shape}: expected {p.shape[:-1]} "
                "(one integer label per row; tf.nn takes no trailing 1)"
            )
        ignore = _ignore_class(values["ignore_class"]) if "ignore_class" in kws else None
        ignored = None
        if ignore is not None:
            ignored = raw == ignore
            raw = np.where(ignored, 0, raw)
        labels = V.sparse_labels(raw, p.shape, self.ax, name)
        if ignored is not None:
            labels = np.where(ignored.reshape(labels.shape), -1, labels)  # -1: a row of zeros
        return _label_blocks(labels.reshape(-1)), (ignored is not None and bool(np.any(ignored)))

    def params(self) -> tuple:
        """The cores' scalar arguments after the label and prediction, in their order."""
        args = self.core["args"][2 if self.pub["labels"] != "none" else 1 :]
        return tuple(self.p.shape[0] if a == "N" else self.scalars[a] for a in args)


def _flag_hint(call: _Call) -> tuple[str, str]:
    """The from_logits hint of a probability check's message, where the function has the flag."""
    if not call.has_flag:
        return "", ""
    return " with from_logits=False", "; pass from_logits=True for logits"


def _unit_interval(call: _Call):
    hint, tail = _flag_hint(call)
    name = call.pred_name

    def check(p: np.ndarray) -> bool:
        """Per block of rows: probabilities in [0, 1]; True if the block holds NaN (it passes
        and propagates to its rows)."""
        lo, hi, nan = _range_and_nan(p)
        if lo < 0 or hi > 1:
            raise ValueError(
                f"{name}: expected probabilities in [0, 1]{hint} "
                f"(got values in [{np.nanmin(p)}, {np.nanmax(p)}]){tail}"
            )
        return nan

    return check


def _nonnegative(call: _Call):
    hint, tail = _flag_hint(call)
    name = call.pred_name

    def check(p: np.ndarray) -> None:
        """Per block of rows: non-negative probabilities (NaN passes: it propagates; fmin skips it)."""
        if np.fmin.reduce(p, axis=None) < 0:
            raise ValueError(f"{name}: expected non-negative probabilities{hint} (min {np.nanmin(p)}){tail}")

    return check


def _limit_rule(call: _Call, kind: str):
    """The ``limits(lab, pred)`` callback of the variant's rule (:mod:`._limits`), or None."""
    rule = call.variant["limits"]
    if rule == "squares" or kind.startswith("naive"):
        return None
    if rule is None:  # no rule declared: the limits measured along rays (any loss)
        vg = getattr(call.module, call.variant["loss"] + "_value_and_grad")
        scalars = call.params()
        elementwise = call.pub["reduction"] == "element"
        ks = _lim.SIMPLEX_RAY_KS if call.variant["domain"] == "simplex" else _lim.RAY_KS
        if call.pub["labels"] == "none":
            return lambda _, x: _lim.numeric_rows(lambda L, X: vg(X, *scalars), None, x, call.p.dtype, elementwise, ks)
        rays = call.pub["labels"] if call.pub["labels"] in LABELS_ON_RAYS else None
        mixed = call.variant["domain"] == "real"

        def limits(lab, x):
            return _lim.numeric_rows(lambda L, X: vg(L, X, *scalars), lab, x, call.p.dtype, elementwise, ks, rays, mixed)

        limits.label_rays = rays is not None  # an infinite label is on the rays, not a NaN row (:func:`_fixer`)
        return limits
    params = tuple(call.scalars[a] for a in call.core["args"][2:] if a != "N") if call.pub["labels"] != "none" else ()
    weights = getattr(call.module, call.variant["loss"] + "_weights", None) if call.core["weights"] else None
    index = call.pub["labels"] == "index"

    def w(lab, x):
        return weights(lab, x, *params) if weights is not None else (lab,)

    if rule == "edges":
        return lambda lab, x: _lim.nan_rows(lab, x)
    if rule == "sigmoid":
        C = call.p.shape[call.ax] if call.pub["reduction"] == "row" else None
        return lambda lab, x: _lim.sigmoid_rows(*w(lab, x), x, C)
    rows = _lim.softmax_rows if rule == "softmax" else _lim.probs_rows
    if index:
        return lambda k, x: rows(w(_rt.one_hot(k, x.shape[-1]), x)[0], x, ignored=k[:, 0] < 0)
    return lambda lab, x: rows(w(lab, x)[0], x)


#: Label kinds on the real line (regression targets, counts, signs): an infinite label has a limit
#: to take, as an infinite prediction has (labels in [0, 1] are fixed numbers: their rows are NaN).
LABELS_ON_RAYS = ("real", "count", "sign")

_BATCH_ROW = 512  # elements per row to aim for when the samples of a batch reduction are shorter


def _call(pub: dict, module: ModuleType, values: dict, kind: str):
    c = _Call(pub, module, values)
    core = getattr(module, f"{c.variant['loss']}_{kind}")
    if pub["reduction"] == "batch":
        return _batch(c, core, kind)
    rule, domain = c.variant["limits"], c.variant["domain"]
    checks: dict = {}
    if domain == "unit":
        checks["precheck"] = _unit_interval(c)
    elif domain == "simplex":
        checks = {"precheck": _nonnegative(c), "check": lambda b: _renormalisable(b, c.pred_name)}
    elif domain == "positive":
        checks["precheck"] = lambda b: _check_positive(b, c.pred_name)
    elif domain == "log1p":
        checks["precheck"] = lambda b: _check_positive(b, c.pred_name, -1.0)
    if rule in ("softmax", "renormalised"):
        M.single_class(pub["name"], c.pred_name, c.p.shape, c.ax)
    watch = None
    if domain == "real" and rule == "sigmoid":
        watch = M.ProbabilityWatch(pub["name"], c.pred_name, False)
    elif domain == "real" and rule == "softmax" and c.p.shape[c.ax] > 1:
        watch = M.ProbabilityWatch(pub["name"], c.pred_name, True)
    if watch is not None:
        checks.pop("precheck", None)
    element = pub["reduction"] == "element"
    pred = c.p[..., None] if element else c.p
    dtype = V.native(pred.dtype)  # a byte-swapped input computes as a native one
    arrays = _blocks.local_arrays(core)
    if dtype == np.float32 and pred.shape[c.ax] <= _blocks.BLOCK_ELEMENTS and not c.ignored:
        # correctly rounded float32 outputs (rows in pieces, past BLOCK_ELEMENTS, are rounded once)
        core = _rounding.correctly_rounded(module, c.variant["loss"], kind, c.labels is not None) or core
        arrays = getattr(core, "arrays", arrays)
    elif dtype == np.float64 and not kind.startswith("naive"):
        core = _carrying(core)
    res = _run(
        core, kind, c.labels, pred, c.ax, c.params(), row_level=not element, watch=watch,
        # (an infinite label on the real line can leave a finite value beside a gradient to repair:
        # the hinge's max(0, 1 - y·x) at y = +inf)
        limits=_limit_rule(c, kind), grad_alone=bool(c.ignored) or pub["labels"] in LABELS_ON_RAYS,
        rescue=None if kind.startswith("naive") or c.ignored else _rescue.rescuer(
            module, c.variant["loss"], ("value", "grad") if kind == "value_and_grad" else (kind,), c.params(), dtype == np.float32,
            logits=domain == "real", label_index=callable(c.labels),
        ),
        zero_edge=domain in ("unit", "simplex", "positive"), block_elements=_blocks.block_elements(arrays),
        nan_masked=bool(module.CORES[c.variant["loss"]].get("nan_masked")), **checks,
    )
    if element:
        return tuple(r[..., 0] for r in res) if kind == "value_and_grad" else res[..., 0]
    return res


def _carrying(core):
    """``core`` with the rounding of z - max z carried into exp (:func:`_runtime.shifted_exp`),
    in whichever thread runs it."""

    def carried(*args):
        with _rt.carried_shift():
            return core(*args)

    return carried


def _batch(c: _Call, core, kind: str):
    """A loss summed over the whole batch (samples along axis 0): one 0-d value."""
    a = c.p
    rows = a.reshape(a.shape[0], -1)
    # Only the total matters, so short samples are laid out several to a row: long rows are
    # summed by NumPy's pairwise sum, and there are fewer per-row results to add up.
    group = math.gcd(rows.shape[0], 1 << max(0, (_BATCH_ROW // max(1, rows.shape[1])).bit_length() - 1))
    rows = rows.reshape(rows.shape[0] // group, group * rows.shape[1])
    kinds = ("value", "grad") if kind == "value_and_grad" else (kind,)
    # the per-row terms stay float64 until their sum is rounded once
    naive = kind.startswith("naive")  # in the input's own dtype, its sum too (see _run)
    row_dtype = V.native(a.dtype) if naive else np.dtype(np.float64)
    outputs = [("elem", V.native(a.dtype)) if k.endswith("grad") else ("row", row_dtype) for k in kinds]
    size = max(1, math.prod(a.shape[1:]))  # elements per sample
    fix = None
    if c.variant["limits"] == "squares" and not naive:
        lam = next(iter(c.scalars.values()))
        fix = _fixer(lambda _, x: _lim.penalty_rows(x, lam, size), kinds, False, False, nan_rows=False)
    # Blocks of short rows twice the usual size: one pass per element (a square, a sum), so the
    # per-block work of the driver would be 15% of it at 2^17 (measured: 12.7 -> 9.0 ms at
    # 2^20 x 10). Rows are computed alike in any block; long rows keep the usual pieces.
    block = _blocks.BLOCK_ELEMENTS * 2
    outs = run_blocks(
        core, [rows], c.params(), rows.shape[0], rows.shape[1], outputs, limit=fix, pieces=not naive, block_elements=block,
        compute=V.native(a.dtype) if naive else np.float64,
    )
    res = []
    with np.errstate(all="ignore"):  # a float32 result past 3.4e38 rounds to inf
        for (shape, _), out in zip(outputs, outs):
            res.append(np.asarray(np.sum(out), dtype=V.native(a.dtype)) if shape == "row" else out.reshape(a.shape))
    return tuple(res) if kind == "value_and_grad" else res[0]


# --- the public functions -----------------------------------------------------------------------

_CONVENTIONS = """
Inputs: float32 or float64 predictions (float32 is computed in float64 and rounded once); the
result has the predictions' dtype. Accuracy: value within 4 + 4κ ulps, gradient elements within
8 + 4κ ulps of the exact result (κ the componentwise condition number). ±inf inputs give the
limits of the mathematics, NaN only where there is none; NaN propagates to its row's outputs.
"""


def _signature(pub: dict) -> inspect.Signature:
    kind = inspect.Parameter.KEYWORD_ONLY if pub["keyword_only"] else inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(a, kind) for a in pub["args"]]
    for k in pub["keywords"]:
        default = inspect.Parameter.empty if k["kind"] == "real" and k["default"] is None else k["default"]
        params.append(inspect.Parameter(k["name"], kind, default=default))
    return inspect.Signature(params)


def _formulas(pub: dict, module: ModuleType) -> str:
    lines = []
    for v in pub["variants"]:
        core = module.CORES[v["loss"]]
        weights = "; ".join(f"{w} = {d}" for w, d in core["weights"] if w != d)
        lines.append(f"* {core['title']}: ``{core['formula']}``" + (f", label weights ``{weights}``" if weights else ""))
    return "\n".join(lines)


def _doc(pub: dict, module: ModuleType, kind: str) -> str:
    name, pred = pub["name"], pub["args"][-1]
    if kind == "value":
        head = pub["summary"]
    elif kind == "grad":
        head = f"d(Σ {name})/d({pred}): the gradient of the sum of the returned values, {pred}'s shape and dtype."
    else:
        head = f"``({name}(...), {name}_grad(...))`` in one pass: the same numbers, shared work."
    keywords = "".join(f"\n* ``{k['name']}`` (default {k['default']!r}): {k['doc']}" for k in pub["keywords"] if k["doc"])
    body = textwrap.dedent(pub["doc"]).strip()
    parts = [head, body, "Definition (the generated kernels' mathematics, ``C`` the row length):\n\n" + _formulas(pub, module)]
    if keywords:
        parts.append("Keywords:" + keywords)
    example = getattr(module, "EXAMPLES", {}).get(name)
    if example and kind == "value":
        parts.append("Example::\n\n    >>> " + example.replace("  # ", "\n    "))
    parts.append(_CONVENTIONS.strip())
    kinds = ("value", "grad") if kind == "value_and_grad" else ("value",) if kind == "value" else ("grad",)
    if kind in ("value", "grad", "value_and_grad") and all(
        hasattr(module, f"{v['loss']}_{k}_exact") for v in pub["variants"] for k in kinds
    ):
        parts.append(
            "float32: correctly rounded (the float32 nearest the exact result, ties to even) for every input, "
            "gradients elementwise and values for rows of at most 16 elements: the float64 result is tested "
            "against its error bound and recomputed exactly where its rounding is not certain "
            "(:mod:`cesym.kernels._rounding`). ``cesym verify --exhaustive`` checks it input by input."
        )
    return "\n\n".join(p for p in parts if p)


_SUFFIX = {"value": "", "grad": "_grad", "value_and_grad": "_value_and_grad", "naive_value": "", "naive_grad": "_grad"}


def build(pub: dict, module: ModuleType, naive: bool = False) -> dict[str, Callable]:
    """The public functions of one declaration: ``{name: fn, name_grad: fn, name_value_and_grad: fn}``
    (``naive``: ``{name: fn, name_grad: fn}`` computing the naive forms)."""
    sig = _signature(pub)
    kinds = ("naive_value", "naive_grad") if naive else ("value", "grad", "value_and_grad")
    out = {}
    for kind in kinds:
        name = pub["name"] + _SUFFIX[kind]

        def fn(*args, __kind=kind, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            return _call(pub, module, bound.arguments, __kind)

        fn.__name__ = fn.__qualname__ = name
        fn.__signature__ = sig
        fn.__doc__ = _doc(pub, module, kind.replace("naive_", ""))
        fn.__module__ = module.__name__
        out[name] = fn
    return out


class _Live:
    """A generated module's namespace as attributes (its ``globals()``, shared, not copied)."""


def export(namespace: dict) -> list[str]:
    """Build a generated module's declared public functions into its ``namespace`` (its
    ``globals()``), the naive forms into ``namespace["NAIVE"]``; return the public names."""
    module = _Live()
    module.__dict__ = namespace  # read live: a core replaced in the module is the one called
    names: list[str] = []
    naive: dict[str, Callable] = {}
    for pub in namespace.get("PUBLIC", ()):
        fns = build(pub, module)
        namespace.update(fns)
        names += list(fns)
        naive.update(build(pub, module, naive=True))
    namespace["NAIVE"] = naive
    return names
