"""The accuracy contract, checked point by point against the interval reference.

For a value ``f`` (or one gradient element) computed in a format with spacing ``ulp``:

* value: ``|f̂ - f| <= (4 + 4κ) ulp(f)``;  gradient element: ``<= (8 + 4κ) ulp(f)``,

where ``κ = Σ_i |x_i ∂f/∂x_i| / |f|`` runs over the floating inputs (labels and the smoothing
parameter only when soft: smoothing on or a label other than 0/1). The constant term allows a
few roundings of the stable formula; ``4κ`` allows the inherent sensitivity to a relative
perturbation of the inputs of a few units (no algorithm can do better than κ·u on inputs that
are themselves rounded). κ is computed only where the error exceeds the constant term.
A NaN or inf where the true value is finite is a failure whatever κ is.

Inputs that are ±inf (or probabilities at the edge 0) are checked against their limits
(:mod:`cesym.verify.extended`): the same bounds where the limit is finite, the same infinity where it
is infinite, and NaN exactly where there is none.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import mpmath
import numpy as np

from ..define.loss import Loss, load_all
from ..kernels._api import LABELS_ON_RAYS
from .extended import AsGivenOrLimit, ExtendedReference, needs_limit
from .reference import Indeterminate, RowReference, Unresolved
from .registry import KernelCase, one_hot
from .sampling import Batch
from .truths import FAST_MARGIN, batch_truths, bits_errors, special_inputs, ulp_errors
from .ulps import bits_error, ulp_error

__all__ = ["Result", "Failure", "check_batch", "kernel_outputs", "prefill_batch", "definition", "losses_by_name", "VALUE_BASE", "GRAD_BASE"]

VALUE_BASE = 4.0
GRAD_BASE = 8.0
KAPPA_FACTOR = 4.0


@dataclass
class Failure:
    """One output outside the contract. ``inputs`` and ``true`` are formatted when shown
    (:attr:`inputs_text`, ``str``): a naive form fails on hundreds of thousands of points of a
    default run, which only counts them, and printing an mpmath number of a large exponent in
    decimal costs a big-integer power of ten (27.6 s of a 1019 s profile of `cesym verify --jobs 1`)."""

    what: str  # "value" or "grad[j]"
    row: int
    stratum: str
    ulps: float
    kappa: float
    inputs: str | Callable[[], str]  # the text, or a function giving it
    computed: float
    true: object  # the exact value (an mpmath number) or a text

    @property
    def inputs_text(self) -> str:
        return self.inputs() if callable(self.inputs) else self.inputs

    def __str__(self) -> str:
        return (
            f"{self.what} row {self.row} ({self.stratum}): {self.ulps:.3g} ulps > bound at κ={self.kappa:.3g}; "
            f"computed {self.computed!r}, true {self.true}; inputs {self.inputs_text}"
        )


@dataclass
class Result:
    """Errors of one kernel on one batch (ulps and Herbie bits; κ where computed).

    ``value_share``/``grad_share``: for each error above the κ-free part of its bound (``base``
    ulps: there κ decides), the error divided by the bound ``base + 4κ`` (≤ 1: within the
    contract; NaN or a spurious inf: inf). It says what an error in ulps cannot: 10^58 ulps of a
    gradient that cancels to almost nothing (κ ≈ 10^58) can use a small part of its bound.
    Errors within ``base`` are within the contract whatever κ (not evaluated for them).
    """

    value_ulps: list[float] = field(default_factory=list)
    grad_ulps: list[float] = field(default_factory=list)
    value_share: list[float] = field(default_factory=list)
    grad_share: list[float] = field(default_factory=list)
    value_bits: list[float] = field(default_factory=list)
    grad_bits: list[float] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    unresolved: int = 0
    #: the inputs of the first unresolved points (at most UNRESOLVED_SHOWN), as failures show theirs
    unresolved_at: list[str] = field(default_factory=list)
    #: points with no value on either side (``check_batch(indeterminate=True)``), and the first inputs
    undefined: int = 0
    undefined_at: list[str] = field(default_factory=list)
    #: "value"/"grad" -> (ulps, describe): the largest error and a function giving its point
    #: (inputs, computed, exact, κ); κ is computed for that point only, when summarised
    worst: dict = field(default_factory=dict)

    def note(self, what: str, e: float, describe) -> None:
        """Keep ``(e, describe)`` as the worst ``what`` if ``e`` exceeds the worst so far (NaN does)."""
        cur = self.worst.get(what)
        if cur is None or not e <= cur[0]:
            self.worst[what] = (e, describe)

    def merge_worst(self, other: "Result") -> None:
        for what, (e, describe) in other.worst.items():
            self.note(what, e, describe)

    def _worst(self, what: str) -> dict | None:
        if what not in self.worst:
            return None
        e, describe = self.worst[what]
        return {"ulps": float(e), **describe()}

    def summary(self) -> dict:
        def st(xs):
            if not xs:
                return None
            a = np.asarray(xs, dtype=float)
            with np.errstate(invalid="ignore"):  # inf errors (naive forms) make inf - inf in percentile
                p99 = float(np.percentile(a, 99, method="higher"))
            with np.errstate(over="ignore"):  # an inf error among huge finite ones: the mean is inf
                avg = float(np.mean(a))
            if math.isinf(avg) and np.all(np.isfinite(a)):  # finite errors whose sum overflows
                m = float(np.max(a))
                avg = m * float(np.mean(a / m))
            return {"avg": avg, "p99": p99, "max": float(np.max(a))}

        return {
            "value_ulps": st(self.value_ulps),
            "grad_ulps": st(self.grad_ulps),
            "value_bits": st(self.value_bits),
            "grad_bits": st(self.grad_bits),
            "value_share": st(self.value_share),
            "grad_share": st(self.grad_share),
            "failures": len(self.failures),
            "unresolved": self.unresolved,
            "value_worst": self._worst("value"),
            "grad_worst": self._worst("grad"),
        }


#: How many unresolved points a result names (their inputs).
UNRESOLVED_SHOWN = 5

_LOSSES: dict[str, Loss] | None = None


def losses_by_name() -> dict[str, Loss]:
    """Every loss of ``derivations/`` by ``family.variant``."""
    global _LOSSES
    if _LOSSES is None:
        _LOSSES = {l.name: l for ls in load_all().values() for l in ls}
    return _LOSSES


_REFS: dict[tuple[int, int], RowReference] = {}


def definition(case) -> Loss:
    """The loss a kernel case computes: its own definition (a user's derivations directory) or
    the one of ``derivations/`` by name."""
    return case.definition if case.definition is not None else losses_by_name()[case.loss]


def reference_for(loss: Loss, n: int) -> RowReference:
    key = (id(loss), n)  # by identity: a user's loss may share a shipped one's name
    if key not in _REFS:
        _REFS[key] = RowReference(loss, n)
    return _REFS[key]


_EXT: dict[tuple[int, int, bool, str | None], ExtendedReference] = {}
#: ``extended_for``'s label domain not given: derived from the definition.
DERIVE = "derive"


def extended_for(loss: Loss, n: int, unit: bool = False, label_kind: str | None = None, label_domain=DERIVE) -> ExtendedReference:
    """The limits' reference; ``unit``: probabilities bounded by 1, element by element (the
    declared domain ``"unit"``, not renormalised), whose edge 1 is reached only as a limit too;
    ``label_kind``: the declared label kind (labels on the real line are on the rays too);
    ``label_domain``: the set where the definition is real in its label, as generate wrote it
    (``KernelCase.label_domain``; None: every label), or :data:`DERIVE`."""
    rays = label_kind if label_kind in LABELS_ON_RAYS else None
    key = (id(loss), n, unit, rays)
    if key not in _EXT:
        _EXT[key] = ExtendedReference(reference_for(loss, n), loss.domain, unit, rays, _label_ends(loss, label_domain))
    return _EXT[key]


def _label_ends(loss: Loss, dom=DERIVE) -> tuple[tuple[float, int], ...]:
    """The finite ends of the set where the definition is real in its label (``dom``, or derived
    from the definition: :mod:`cesym.derive.label_domain`, SymPy's set solver, up to a second per
    loss), each with the side its inside lies on."""
    if dom == DERIVE:
        from cesym.derive.label_domain import label_domain

        dom = label_domain(loss)
    if not dom:
        return ()
    return tuple((e, d) for lo, hi in dom["intervals"] for e, d in ((lo, 1), (hi, -1)) if e is not None and lo != hi)


def _pick(ref: RowReference, loss: Loss, lab, pred, unit: bool, label_kind: str | None = None, label_domain=DERIVE):
    """The interval reference, or its limits where an input is reached only as a limit (a label
    on a finite end of its domain: as given where the interval resolves it, else as a limit)."""
    if needs_limit(pred, loss.domain, unit) or (lab is not None and not np.all(np.isfinite(np.asarray(lab, dtype=np.float64)))):
        return extended_for(loss, ref.n, unit, label_kind, label_domain)
    ext = extended_for(loss, ref.n, unit, label_kind, label_domain)
    if ext.at_label_edge(lab):
        return AsGivenOrLimit(ref, ext)
    return ref


def check_batch(
    case: KernelCase,
    batch: Batch,
    grad: bool = True,
    kernel=None,
    value_base: float = VALUE_BASE,
    grad_base: float = GRAD_BASE,
    indeterminate: bool = False,
    outputs: list | None = None,
) -> Result:
    """Run ``case``'s kernel on ``batch`` and check every output against the reference.

    ``indeterminate``: a point whose reference is an indeterminate ball at every precision
    (:class:`~cesym.verify.reference.Indeterminate`: 0/0 at exact inputs, most likely) where the
    kernel gives NaN in every output is counted in ``undefined``, not ``unresolved`` (the extremes
    grid, whose exact zeros reach such points: a zero row's direction).

    ``kernel`` (optional) replaces the public kernel: a callable ``(labels, pred, params, grad)``
    returning values, so that the checker itself can be tested on a deliberately wrong kernel.
    ``outputs``: what :func:`kernel_outputs` gave for this batch, kernel and ``grad`` (the
    kernel is not called again). ``value_base``/``grad_base`` replace the constant terms of the
    bounds (1 and 1 for the float32 expectation ``<= 1 ulp + 4κ``).
    """
    loss = definition(case)
    dtype = batch.pred.dtype
    res = Result()
    if outputs is None:
        outputs = kernel_outputs(case, batch, kernel, grad)
    if case.reduction == "batch":
        for (start, stop, params), (value, g) in zip(_groups(batch), outputs):
            _check_penalty(loss, batch, start, stop, params, value, g, res, value_base, grad_base)
        return res
    value, g = outputs[0]
    B, n = batch.pred.shape
    ref, labels, params, pts = prefill_batch(case, batch)
    fast = None
    if pts is not None:
        fast = _decide_within_base(ref, loss, case, pts, labels, batch.pred, params, value, g, dtype, res, value_base, grad_base)
    # point by point, in order (the lists of errors are the points', in the batch's order: the
    # report plots them against the inputs); a point the batch path decided appends its errors
    for r in range(B):
        if case.elementwise:
            items = [(r, c, None if labels is None else labels[r, c : c + 1], batch.pred[r, c : c + 1], value[r, c], None if g is None else g[r, c : c + 1]) for c in range(n)]
        else:
            items = [(r, None, None if labels is None else labels[r], batch.pred[r], value[r], None if g is None else g[r])]
        for k, (row, col, lab, pred, val, grow) in enumerate(items):
            i = r * n + k if case.elementwise else r
            if fast is not None and fast.decided[i]:
                fast.append_to(res, i, row, col, batch.strata[r], lab, pred, params, val, grow)
            else:
                _check_point(_pick(ref, loss, lab, pred, case.domain == "unit", case.label_kind, case.label_domain), res, batch.strata[r], row, col, lab, pred, params, val, grow, dtype, value_base, grad_base, indeterminate)
    return res


def prefill_batch(case: KernelCase, batch: Batch) -> tuple:
    """The reference of ``batch``'s rows with what its first tier decides for the whole batch
    at once memoised (:meth:`RowReference.prefill`, batches of ``FIRST_TIER_MIN_POINTS``
    elements or more), as :func:`check_batch` begins: ``(ref, dense labels, parameter values,
    points)``. Keras's checks of the same batch read that memo after it (the first tier's
    pinned middles and condition numbers, which the balls would give to 2^-8 ulp, not bit for
    bit), so a run that takes the contract's verdict (:mod:`.verdicts`) prefills it the same."""
    loss = definition(case)
    n = batch.pred.shape[1]
    labels = one_hot(batch.labels, n) if case.labels == "sparse" else batch.labels
    params = [batch.params[p.name] for p in loss.params]
    ref = reference_for(loss, 1 if case.elementwise else n)
    pts = batch_points(ref, case, labels, batch.pred, params)
    if pts is not None and batch.pred.size >= FIRST_TIER_MIN_POINTS:
        ref.prefill(pts, batch.pred.dtype)
    return ref, labels, params, pts


def _groups(batch: Batch) -> list[tuple[int, int, dict]]:
    """The independent batches of a kernel that reduces over the batch (the activity penalty)."""
    return batch.groups or [(0, batch.pred.shape[0], batch.params)]


def kernel_outputs(case: KernelCase, batch: Batch, kernel=None, grad: bool = True) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Every output :func:`check_batch` checks, as ``(value, gradient)`` pairs (the gradient
    None where it is not asked for or the loss has none): one for the batch, or one per
    independent batch of a kernel that reduces over the batch. ``kernel`` as for :func:`check_batch`."""
    call = kernel or case.call
    with_grad = grad and definition(case).differentiable
    if case.reduction == "batch":
        out = []
        for start, stop, params in _groups(batch):
            pred = batch.pred[start:stop]
            out.append((np.asarray(call(None, pred, params, grad=False)), np.asarray(call(None, pred, params, grad=True)) if grad else None))
        return out
    value = np.asarray(call(batch.labels, batch.pred, batch.params, grad=False))
    return [(value, np.asarray(call(batch.labels, batch.pred, batch.params, grad=True)) if with_grad else None)]


def batch_points(ref: RowReference, case, labels, pred: np.ndarray, params: list) -> np.ndarray | None:
    """The batch's points as the reference takes them, one row each (labels, pred, params; an
    elementwise kernel's elements one by one), float64; None where the reference takes more
    (the batch size)."""
    if case.elementwise:
        cols = ([] if labels is None else [np.asarray(labels).reshape(-1)]) + [pred.reshape(-1)]
    else:
        cols = ([] if labels is None else list(np.asarray(labels).T)) + list(pred.T)
    m = len(cols[0])
    cols += [np.full(m, float(p)) for p in params]
    if len(cols) != len(ref.args):
        return None
    return np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1)


class _Decided:
    """The errors of the points the batch path decided, to append in the batch's order; for
    those decided by their condition numbers (:func:`decide_by_kappa`), their shares of the
    bound too (``vshare``: NaN where the value is within its constant term; ``gshare``: the
    shares of the gradient elements above theirs, in order) and their outputs outside the
    contract (``fails``: per point, ``(j, ulps, κ)`` with ``j`` None for the value)."""

    def __init__(self, ref, dtype, decided: np.ndarray, ev, vbits, eg, gbits, vshare=None, gshare=None, fails=None):
        self.ref, self.dtype = ref, dtype
        self.decided = decided
        self.ev, self.vbits = ev.tolist(), vbits.tolist()
        self.eg = None if eg is None else eg.tolist()
        self.gbits = None if gbits is None else gbits.tolist()
        self.vshare, self.gshare, self.fails = vshare or {}, gshare or {}, fails or {}

    def append_to(self, res: Result, i: int, row=None, col=None, stratum=None, lab=None, pred=None, params=(), val=None, grow=None) -> None:
        res.value_ulps.append(self.ev[i])
        res.value_bits.append(self.vbits[i])
        if i in self.vshare:
            res.value_share.append(self.vshare[i])
        if self.eg is not None:
            res.grad_ulps += self.eg[i]
            res.grad_bits += self.gbits[i]
            res.grad_share += self.gshare.get(i, ())
        where = "" if col is None else f"[{col}]"
        for j, e, k in self.fails.get(i, ()):
            what, computed = ("value" + where, val) if j is None else (f"grad{where}[{j}]", grow[j])
            true = _Exact(self.ref, lab, pred, params, self.dtype, j)
            res.failures.append(Failure(what, row, stratum, e, k, _later_inputs(lab, pred, params), float(computed), true))


class _Exact:
    """The reference's value (``j`` None) or gradient element ``j`` at a point, printed when shown
    (a failure's ``true``, as :class:`Failure` prints it: the naive forms' are only counted)."""

    def __init__(self, ref, lab, pred, params, dtype, j):
        self.args = (ref, None if lab is None else np.array(lab), np.array(pred), list(params), dtype, j)

    def __str__(self) -> str:
        ref, lab, pred, params, dtype, j = self.args
        v, g = ref.value_and_grad(lab, pred, params, dtype=dtype)
        return str(v if j is None else g[j])


def within_base(ref, loss, case, pts, value, grad, dtype, vbase: float, gbase: float):
    """The batch path's core (:mod:`cesym.verify.truths`), shared by this check and Keras's:
    ``(decided, vals, grads, ev, eg, truths)``: the points whose every output is within the
    constant term of its bound, the outputs one row per point, their errors in ulps (``grads``,
    ``eg`` None for a loss without a gradient) and the references (:class:`~.truths.Truths`)."""
    skip = special_inputs(pts, len(ref.label_syms), ref.n, loss.domain, case.domain == "unit")
    tr = batch_truths(ref, pts, dtype, skip)
    vals = np.asarray(value).reshape(-1)
    grads = None if grad is None else np.asarray(grad).reshape(len(pts), -1)
    ev = ulp_errors(vals, tr.v_hi, tr.v_lo, dtype)
    decided = tr.ok & (ev <= vbase * FAST_MARGIN)
    eg = None
    if grads is not None:
        eg = ulp_errors(grads, tr.g_hi, tr.g_lo, dtype)
        decided &= np.all(eg <= gbase * FAST_MARGIN, axis=1)
    return decided, vals, grads, ev, eg, tr


def point_of(case, labels, pred: np.ndarray, i: int):
    """(labels, pred) of point ``i`` of :func:`batch_points`, as the point-by-point checks take them."""
    if case.elementwise:
        r, c = divmod(int(i), pred.shape[1])
        return (None if labels is None else labels[r, c : c + 1]), pred[r, c : c + 1]
    return (None if labels is None else labels[i]), pred[i]


def _decide_within_base(ref, loss, case, pts, labels, pred, params, value, g, dtype, res: Result, vbase: float, gbase: float) -> _Decided:
    """Decide, for the whole batch at once, the points whose every output is within the constant
    term of its bound (:mod:`cesym.verify.truths`: no κ needed, nothing but the errors recorded),
    noting their worst errors in ``res``; the rest is checked point by point, exactly."""
    fast, vals, grads, ev, eg, tr = within_base(ref, loss, case, pts, value, g, dtype, vbase, gbase)
    by_kappa, vshare, gshare, fails = decide_by_kappa(ref, pts, tr.ok & ~fast, vals, grads, ev, eg, vbase, gbase, tr, dtype)
    fast = fast | by_kappa
    out = _Decided(ref, dtype, fast, ev, bits_errors(vals, tr.v_hi, dtype), eg, None if grads is None else bits_errors(grads, tr.g_hi, dtype), vshare, gshare, fails)
    idx = np.flatnonzero(fast)
    if not len(idx):
        return out
    i = int(idx[np.argmax(ev[idx])])
    lab, x = point_of(case, labels, pred, i)
    tv, tg = ref.value_and_grad(lab, x, params, dtype=dtype)
    res.note("value", float(ev[i]), _describer(lab, x, params, vals[i], tv, lambda lab=lab, x=x, tv=tv, tg=tg: ref.kappa_value(lab, x, params, tv, tg)))
    if eg is not None and eg.shape[1]:
        flat = int(np.argmax(eg[idx]))
        i, j = int(idx[flat // eg.shape[1]]), flat % eg.shape[1]
        lab, x = point_of(case, labels, pred, i)
        tv, tg = ref.value_and_grad(lab, x, params, dtype=dtype)
        res.note("grad", float(eg[i, j]), _describer(lab, x, params, grads[i, j], tg[j], lambda lab=lab, x=x, tv=tv, tg=tg, j=j: ref.kappa(lab, x, params, tv, tg)[1][j]))
    return out


def decide_by_kappa(ref, pts: np.ndarray, cand: np.ndarray, vals, grads, ev, eg, vbase: float, gbase: float, tr=None, dtype=None):
    """Decide, for the whole batch at once, the points among ``cand`` (reference pinned, some
    error above its bound's constant term) whose every error above that term is within its bound
    ``base + 4κ`` or outside it, by the condition numbers the first tier computed for the batch
    (:mod:`.first_tier`, into the reference's memo: the numbers the point-by-point check would
    read there). Errors are the batch's (:mod:`.truths`: within a relative 2^-51 of the exact
    ones), so a share is decided only below ``FAST_MARGIN`` or above its inverse; a point with a
    κ the first tier left unknown or a share near 1 goes to the point-by-point check, as before.
    A NaN, or an infinity where the reference lies well within the format's range (``tr``, the
    batch's :class:`~.truths.Truths`, and ``dtype`` given), is outside the contract whatever κ
    (share inf, κ NaN, as :func:`_check_point` records it); without ``tr``, points with a
    non-finite output are left to the point-by-point check.
    Returns (decided, value shares by point, gradient shares by point, the outputs outside the
    contract by point: ``(j, ulps, κ)``, ``j`` None for the value)."""
    decided = np.zeros(len(cand), dtype=bool)
    vshare: dict[int, float] = {}
    gshare: dict[int, list[float]] = {}
    fails: dict[int, list] = {}
    if tr is None:
        ok = cand & np.isfinite(vals)
        if grads is not None:
            ok &= np.all(np.isfinite(grads), axis=1)
        spurious_v = np.zeros(len(cand), dtype=bool)
        spurious_g = None if grads is None else np.zeros(grads.shape, dtype=bool)
    else:  # non-finite outputs where the reference is finite and at most half the largest float
        half = float(np.finfo(dtype).max) / 2
        with np.errstate(invalid="ignore"):
            spurious_v = ~np.isfinite(vals) & (np.abs(tr.v_hi) <= half)
            spurious_g = None if grads is None else ~np.isfinite(grads) & (np.abs(tr.g_hi) <= half)
        ok = cand & (np.isfinite(vals) | spurious_v)
        if grads is not None:
            ok &= np.all(np.isfinite(grads) | spurious_g, axis=1)
    idx = np.flatnonzero(ok)
    if not len(idx) or getattr(ref, "_memo", None) is None:
        return decided, vshare, gshare, fails
    v_above = ev[idx] > vbase
    g_above = (eg[idx] > gbase) if eg is not None and eg.shape[1] else np.zeros((len(idx), 0), dtype=bool)
    # κ only where a finite output is above its constant term
    v_need = v_above & ~spurious_v[idx]
    g_need = g_above & ~spurious_g[idx] if spurious_g is not None and g_above.shape[1] else g_above
    full = np.any(g_need, axis=1)
    keys = [tuple(r) for r in pts[idx].tolist()]
    pending = ref._pending
    if pending is not None:  # the batch's κ stages, as the first point that needs each would run them
        need_full = [k for k, f in zip(keys, full.tolist()) if f]
        need_value = [k for k, f, v in zip(keys, full.tolist(), v_need.tolist()) if v and not f]
        if need_full:
            pending(("kappa", need_full[0]), full=True, need=need_full)
        if need_value:
            pending(("kappa_value", need_value[0]), full=False, need=need_value)
    for n, (i, key) in enumerate(zip(idx.tolist(), keys)):
        kv, kg = tier_kappas(ref._memo, key)
        if (full[n] and kg is None) or (v_need[n] and kv is None):
            continue
        vs = None
        out: list = []
        if v_above[n]:
            if spurious_v[i]:
                vs, k = math.inf, math.nan
            else:
                vs, k = _fast_share(float(ev[i]), vbase, kv), kv
            if not (vs <= FAST_MARGIN or vs >= 1 / FAST_MARGIN):
                continue
            if vs > 1:
                out.append((None, float(ev[i]), k))
        gs = []
        for j in np.flatnonzero(g_above[n]).tolist():
            if spurious_g[i, j]:
                share, k = math.inf, math.nan
            else:
                share, k = _fast_share(float(eg[i, j]), gbase, kg[j]), kg[j]
            if not (share <= FAST_MARGIN or share >= 1 / FAST_MARGIN):
                break
            gs.append(share)
            if share > 1:
                out.append((j, float(eg[i, j]), k))
        else:
            decided[i] = True
            if vs is not None:
                vshare[i] = vs
            if gs:
                gshare[i] = gs
            if out:
                fails[i] = out
    return decided, vshare, gshare, fails


def _fast_share(e: float, base: float, kappa: float) -> float:
    """:func:`_share` of a finite output with a known κ (NaN: not decidable here)."""
    return math.nan if math.isnan(kappa) else _kappa_share(e, base, kappa)


def _kappa_share(e: float, base: float, kappa: float) -> float:
    """e / (base + 4κ) for a κ that is a number: 0 for κ = inf (the mathematics allows any
    error; inf / inf would be NaN)."""
    return 0.0 if math.isinf(kappa) else e / (base + KAPPA_FACTOR * kappa)


#: Batches of fewer elements skip the first tier: its cost is NumPy's per operation of the printed
#: definition (and of its Hessian, for κ), whatever the points, and on the quick pass's batches
#: (12 rows of 2 or 3) it cost more than the balls it spared (`cesym verify --quick`: 25.6 s with
#: it, 22.0 s without, two interleaved runs each on a 2-core AVX2 EPYC VM, 2026-12-03); the
#: default run's batches (about 666 rows) keep it.
FIRST_TIER_MIN_POINTS = 64


def _first_tier(loss: Loss, case, labels, pred: np.ndarray, params: list, dtype) -> None:
    """The whole batch through the reference's first tier (:meth:`RowReference.prefill`) before
    the points are checked one by one: what it pins, the balls never compute."""
    ref = reference_for(loss, 1 if case.elementwise else pred.shape[1])
    pts = batch_points(ref, case, labels, pred, params)
    if pts is not None:
        ref.prefill(pts, dtype)


def _later_inputs(lab, pred, params) -> Callable[[], str]:
    """:func:`_fmt_inputs` of copies of the inputs, when asked for (a failure's text)."""
    return functools.partial(_fmt_inputs, None if lab is None else np.array(lab), np.array(pred), list(params))


def _fmt_inputs(lab, pred, params) -> str:
    lab_s = "None" if lab is None else "[" + ", ".join(repr(float(v)) for v in lab) + "]"
    return f"labels={lab_s} pred=[{', '.join(repr(float(v)) for v in pred)}] params={list(params)}"


def _describer(lab, pred, params, computed, true, k):
    """The point of a worst error, with its κ (``k()``; nan: none applies), computed when summarised."""

    def text():
        try:
            kap = float(k()) if mpmath.isfinite(true) else math.nan
        except Unresolved:
            kap = math.nan
        return {"at": _fmt_inputs(lab, pred, params), "computed": float(computed), "exact": mpmath.nstr(true, 17), "kappa": kap}

    return text


def _undefined_alike(err, val, grow, dtype, vbase: float, gbase: float) -> bool:
    """Whether the kernel is NaN at every output the reference found indeterminate
    (:class:`Indeterminate`, ``err.partial``), and within the constant term of its bound at each
    output that resolved: a row of a symmetric MAPE with one 0/0 element has no value, while the
    partial derivative in another element does (where such an output is further off, its κ would
    need the value: the point stays unresolved)."""
    outs = [val] + ([] if grow is None else list(grow))
    partial = getattr(err, "partial", None)
    if partial is None or len(partial) != len(outs):
        return bool(np.all(np.isnan(np.asarray(outs, dtype=np.float64))))
    for i, (k, t) in enumerate(zip(outs, partial)):
        if t is None:
            if not np.isnan(k):
                return False
        elif not _error(k, t, dtype) <= (vbase if i == 0 else gbase):
            return False
    return True


def _check_point(ref, res: Result, stratum, row, col, lab, pred, params, val, grow, dtype, vbase, gbase, indeterminate=False) -> None:
    try:
        true_v, true_g = ref.value_and_grad(lab, pred, params, dtype=dtype)
    except Unresolved as err:
        # no value on either side (Indeterminate, and NaN from the kernel): counted apart, if asked
        undefined = indeterminate and isinstance(err, Indeterminate) and _undefined_alike(err, val, grow, dtype, vbase, gbase)
        if undefined:
            res.undefined += 1
        else:
            res.unresolved += 1
        shown = res.undefined_at if undefined else res.unresolved_at
        if len(shown) < UNRESOLVED_SHOWN:
            shown.append(_fmt_inputs(lab, pred, params))
        return

    def kappa_value():  # the value's κ needs first derivatives only: no Hessian unless a gradient needs it
        return ref.kappa_value(lab, pred, params, true_v, true_g)

    where = "" if col is None else f"[{col}]"

    def describe(computed, true, k):  # the point of a worst error, with its κ
        return _describer(lab, pred, params, computed, true, k)

    e = _error(val, true_v, dtype)
    res.note("value", e, describe(val, true_v, kappa_value))
    res.value_ulps.append(e)
    res.value_bits.append(_bits(val, true_v, dtype))
    if _no_limit(true_v):
        if e > 0:
            res.failures.append(Failure("value" + where, row, stratum, e, math.nan, _later_inputs(lab, pred, params), float(val), "no limit (NaN)"))
    elif e > vbase:
        # a spurious NaN or inf fails whatever κ: κ (second derivatives) only where it decides
        k = math.nan if _spurious_nonfinite(val, true_v) else kappa_value()
        share = _share(e, vbase, k, val, true_v)
        res.value_share.append(share)
        if share > 1:
            res.failures.append(Failure("value" + where, row, stratum, e, k, _later_inputs(lab, pred, params), float(val), true_v))
    if grow is None:
        return
    for j, (gj, tj) in enumerate(zip(grow, true_g)):
        e = _error(gj, tj, dtype)
        res.note("grad", e, describe(gj, tj, lambda j=j: kappa_of(ref, lab, pred, params, true_v, true_g, j)))
        res.grad_ulps.append(e)
        res.grad_bits.append(_bits(gj, tj, dtype))
        if _no_limit(tj):
            if e > 0:
                res.failures.append(
                    Failure(f"grad{where or ''}[{j}]", row, stratum, e, math.nan, _later_inputs(lab, pred, params), float(gj), "no limit (NaN)")
                )
        elif e > gbase:
            k = math.nan if _spurious_nonfinite(gj, tj) else kappa_of(ref, lab, pred, params, true_v, true_g, j)
            share = _share(e, gbase, k, gj, tj)
            res.grad_share.append(share)
            if share > 1:
                res.failures.append(
                    Failure(f"grad{where or ''}[{j}]", row, stratum, e, k, _later_inputs(lab, pred, params), float(gj), tj)
                )


def tier_kappas(memo: dict, key: tuple) -> tuple[float | None, list[float] | None]:
    """The κ of the value and of the gradient elements the reference's memo holds for the point
    ``key`` (its inputs) without computing: the whole κ, else the first tier's partial one (NaN
    for an element it does not know, :func:`cesym.verify.first_tier._grad_kappas`), else the
    value's alone (no gradient: None); None where there is none."""
    got = memo.get(("kappa", key)) or memo.get(("kappa_partial", key))
    if got is not None:
        return got[0], got[1]
    return memo.get(("kappa_value", key)), None


def kappa_of(ref, lab, pred, params, value, grad, j: int) -> float:
    """κ of gradient element ``j`` at a point: where the memo knows that element
    (:func:`tier_kappas`), that; else the whole κ (:meth:`RowReference.kappa`: the balls)."""
    if isinstance(ref, RowReference):
        kg = tier_kappas(ref._memo, tuple(ref._inputs(lab, pred, params)))[1]
        if kg is not None and kg[j] == kg[j]:  # (NaN: unknown)
            return kg[j]
    return ref.kappa(lab, pred, params, value, grad)[1][j]


def _no_limit(true) -> bool:
    import mpmath

    return bool(mpmath.isnan(true))


def _error(computed, true, dtype) -> float:
    """ulp error; where the mathematics has no limit (NaN), 0 for NaN and inf for anything else."""
    if _no_limit(true):
        return 0.0 if math.isnan(float(computed)) else math.inf
    return ulp_error(computed, true, dtype)


def _bits(computed, true, dtype) -> float:
    if _no_limit(true):
        return 0.0 if math.isnan(float(computed)) else float(bits_error(math.nan, 0, dtype))
    return bits_error(computed, true, dtype)


def _share(e: float, base: float, kappa: float, computed, true) -> float:
    """error / (base + 4κ); inf for NaN or a spurious inf (outside the contract whatever κ)."""
    if _spurious_nonfinite(computed, true):
        return math.inf
    if math.isnan(kappa):  # κ unknown: no allowance (a NaN share would pass anything)
        kappa = 0.0
    return _kappa_share(e, base, kappa)


def _spurious_nonfinite(computed, true) -> bool:
    """NaN, or inf where the true value is finite and within the format's range (any κ)."""
    import mpmath

    y = float(computed)
    if math.isnan(y):
        return True
    if math.isinf(y):
        return mpmath.isfinite(true) and abs(true) <= np.finfo(np.asarray(computed).dtype).max
    return False


def _check_penalty(
    loss: Loss, batch: Batch, start: int, stop: int, params: dict, value: np.ndarray, g: np.ndarray | None, res: Result, vbase: float, gbase: float
) -> None:
    """The penalty of the batch of rows ``start:stop`` (one value: the sum over its rows) and
    each gradient element (the kernel's ``value`` and ``g`` there), into ``res``."""
    import mpmath

    dtype = batch.pred.dtype
    pred = batch.pred[start:stop]
    B, n = pred.shape
    ref = reference_for(loss, n)
    scalars = [params[q.name] for q in loss.params] + [B]
    values, kap_terms = [], []
    for r in range(B):
        v, gr = _pick(ref, loss, None, pred[r], False).value_and_grad(None, pred[r], scalars, dtype=dtype)
        values.append(v)
        kap_terms += [abs(mpmath.mpf(float(x)) * d) for x, d in zip(pred[r], gr) if np.isfinite(x)]
        for j, (gj, tj) in enumerate(zip(g[r] if g is not None else (), gr)):
            e = _error(gj, tj, dtype)
            res.note("grad", e, lambda gj=gj, tj=tj, r=r: {  # 2λh/N: κ = 1
                "at": f"row {start + r} of rows {start}:{stop} pred={pred[r].tolist()!r}", "computed": float(gj),
                "exact": mpmath.nstr(tj, 17), "kappa": 1.0})
            res.grad_ulps.append(e)
            res.grad_bits.append(_bits(gj, tj, dtype))
            if _no_limit(tj) or not mpmath.isfinite(tj):
                if e > 0:
                    res.failures.append(Failure(f"grad[{j}]", start + r, batch.strata[start + r], e, math.nan, "", float(gj), tj))
            elif e > gbase:  # 2λh/N: κ = 1
                share = _share(e, gbase, 1.0, gj, tj)
                res.grad_share.append(share)
                if share > 1:
                    res.failures.append(Failure(f"grad[{j}]", start + r, batch.strata[start + r], e, 1.0, "", float(gj), tj))
    with mpmath.workprec(256):  # exact enough: the terms are positive
        total = mpmath.fsum(values)
        kap_num = mpmath.fsum(kap_terms)
    e = _error(float(value), total, dtype)
    res.value_ulps.append(e)
    res.value_bits.append(_bits(float(value), total, dtype))
    if _no_limit(total) or not mpmath.isfinite(total):
        if e > 0:
            res.failures.append(Failure("value", start, batch.strata[start], e, math.nan, "", float(value), total))
        return
    k = float(kap_num / abs(total)) if total != 0 else 0.0
    res.note("value", e, lambda: {"at": f"rows {start}:{stop} pred={pred.tolist()!r} params={scalars[:-1]!r}",
                                  "computed": float(value), "exact": mpmath.nstr(total, 17), "kappa": k})
    share = _share(e, vbase, k, value, total)
    if e > vbase:
        res.value_share.append(share)
    if share > 1:
        inputs = f"rows {start}:{stop} pred={pred.tolist()!r} params={scalars[:-1]!r}"
        res.failures.append(Failure("value", start, batch.strata[start], e, k, inputs, float(value), total))
