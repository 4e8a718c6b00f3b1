"""Keras against the mathematics and against the model of its own algorithm, point by point.

Each value and gradient element Keras returns is classified:

* ``exact``: within the contract of the mathematics (4 + 4κ ulps value, 8 + 4κ gradient);
* ``explained``: outside it, but within the replay's bound where Keras's algorithm is replayed
  in its dtype (:mod:`cesym.keras.replay`: every value, and the gradients of the declared
  algorithms), else (no replay, or a replay whose bound is infinite or does not hold) inside the
  envelope of :mod:`cesym.keras.model`, and the exact value outside that bound or envelope: Keras's own
  algorithm (its clip, renormalisation order, fused softmax gradient ``softmax - y``, float
  evaluation with every rounding and flush-to-zero it may commit) can return that value, so the
  deviation is the algorithm at work;
* ``ambiguous``: inside the envelope, but so is the exact value: the envelope is too wide there
  to tell Keras's algorithm from the mathematics, so it explains nothing (a model that explains
  a deviation must be able to fail to explain one);
* ``unexplained``: neither: something the model does not capture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mpmath
import numpy as np

from ..verify.contract import (
    GRAD_BASE, KAPPA_FACTOR, VALUE_BASE, batch_points, decide_by_kappa, definition, kappa_of, losses_by_name, point_of, reference_for, tier_kappas,
    within_base,
)
from ..verify.truths import FAST_MARGIN
from .model import _ends, contains, envelope
from .replay import agreement, near, near_bounds, replay_outputs
from ..verify.reference import Unresolved
from ..verify.registry import KernelCase, one_hot
from ..verify.sampling import Batch
from ..verify.ulps import ulp_error

__all__ = ["KerasTally", "classify"]


def _lo(x):
    return _ends(x)[0]


def _hi(x):
    return _ends(x)[1]

@dataclass
class KerasTally:
    """Counts of exact / explained / unexplained Keras outputs, with the worst deviations."""

    value: dict = field(default_factory=lambda: {"exact": 0, "explained": 0, "ambiguous": 0, "unexplained": 0})
    grad: dict = field(default_factory=lambda: {"exact": 0, "explained": 0, "ambiguous": 0, "unexplained": 0})
    value_max_ulps: float = 0.0
    grad_max_ulps: float = 0.0
    unexplained_examples: list[str] = field(default_factory=list)
    unresolved: int = 0
    #: the point of each maximum: {"ulps", "abs" (|Keras - exact|), "keras", "exact", "status", "at"}
    value_worst: dict | None = None
    grad_worst: dict | None = None
    #: outputs reproduced bit for bit by the replay in the dtype (:mod:`.replay`), of those compared,
    #: and the largest distance of the others as a fraction of the replay's bound
    replayed: int = 0
    replay_compared: int = 0
    replay_apart: float = 0.0
    grad_replayed: int = 0
    grad_replay_compared: int = 0
    grad_replay_apart: float = 0.0

    def note(self, part: str, worst: dict) -> None:
        cur = getattr(self, f"{part}_worst")
        if cur is None or not worst["ulps"] <= cur["ulps"]:  # NaN counts as worst
            setattr(self, f"{part}_worst", worst)

    def merge(self, other: "KerasTally") -> "KerasTally":
        for k in self.value:
            self.value[k] += other.value.get(k, 0)
            self.grad[k] += other.grad.get(k, 0)
        self.value_max_ulps = max(self.value_max_ulps, other.value_max_ulps)
        self.grad_max_ulps = max(self.grad_max_ulps, other.grad_max_ulps)
        self.unexplained_examples += other.unexplained_examples[: max(0, 3 - len(self.unexplained_examples))]
        self.unresolved += other.unresolved
        for pre in ("", "grad_"):
            for k in ("replayed", "replay_compared"):
                setattr(self, pre + k, getattr(self, pre + k) + getattr(other, pre + k))
            setattr(self, pre + "replay_apart", max(getattr(self, pre + "replay_apart"), getattr(other, pre + "replay_apart")))
        for part in ("value", "grad"):
            w = getattr(other, f"{part}_worst")
            if w is not None:
                self.note(part, w)
        return self


def keras_outputs(case: KernelCase, batch: Batch, keras_call) -> tuple[np.ndarray, np.ndarray] | None:
    """Keras's values and gradient on ``batch`` (``keras_call``: :func:`cesym.keras.calls.keras_kernel`),
    as :func:`classify` takes them; None for the activity penalty, which it does not classify."""
    if case.kernel == "activity_penalty":
        return None
    value, grad = (np.asarray(a) for a in keras_call(batch.labels, batch.pred, batch.params, grad="both"))
    return value, grad


def classify(case: KernelCase, batch: Batch, keras_call, outputs: tuple | None = None) -> KerasTally:
    """Run ``keras_call`` (see :func:`cesym.keras.calls.keras_kernel`) on ``batch`` and classify;
    ``outputs``: what :func:`keras_outputs` gave for them (Keras is not called again)."""
    loss = definition(case)
    dtype = batch.pred.dtype
    tally = KerasTally()
    if case.kernel == "activity_penalty":
        return tally  # a plain reduce_sum of squares: compared by the seeds' tests
    value, grad = outputs if outputs is not None else keras_outputs(case, batch, keras_call)
    rep = replay_outputs(case, batch.labels, batch.pred, batch.params)
    if rep is not None:  # one value and bound per output, in the outputs' layout
        tally.replayed, tally.replay_compared, tally.replay_apart = agreement(rep.value, rep.value_bound, value, dtype)
        rep_value, rep_bound = (np.asarray(a).reshape(np.shape(value)) for a in (rep.value, rep.value_bound))
        if rep.grad is not None:
            tally.grad_replayed, tally.grad_replay_compared, tally.grad_replay_apart = agreement(rep.grad, rep.grad_bound, grad, dtype)
    B, n = batch.pred.shape
    labels = one_hot(batch.labels, n) if case.labels == "sparse" else batch.labels
    params = [batch.params[p.name] for p in loss.params]
    vstat, gstat = _batch_statuses(case, loss, labels, batch.pred, params, value, grad, dtype, rep, tally)
    for r in range(B):
        if case.elementwise:
            items = [(labels[r, c : c + 1], batch.pred[r, c : c + 1], value[r, c], grad[r, c : c + 1], (r, c), r * n + c) for c in range(n)]
        else:
            items = [(labels[r], batch.pred[r], value[r], grad[r], r, r)]
        items = [it for it in items if not vstat[it[5]] or not gstat[it[5]].all()]
        for lab, pred, v, g, at, i in items:
            close = None if rep is None else near(rep_value[at], rep_bound[at], dtype)

            def grad_near(j, at=at):  # the replay's bound of gradient element j of this item
                if rep is None or rep.grad is None:
                    return None
                r, c = at if case.elementwise else (at, 0)
                return near(rep.grad[r, c + j], rep.grad_bound[r, c + j], dtype)

            ref = reference_for(loss, len(pred))
            try:
                tv, tg = ref.value_and_grad(lab, pred, params, dtype=dtype)
            except Unresolved:
                tally.unresolved += 1
                continue
            memo: list = []

            def model(lab=lab, pred=pred, memo=memo):  # Keras's algorithm, for the outputs past the contract only
                if not memo:
                    memo.append(envelope(case, lab, pred, batch.params, dtype))
                return memo[0]

            def kappa_value(ref=ref, lab=lab, pred=pred, tv=tv, tg=tg):  # first derivatives only
                return ref.kappa_value(lab, pred, params, tv, tg)

            def judge(what, k, true, mfun, base, kfun, near=None):
                e = ulp_error(k, true, dtype)
                if e <= base or (np.isfinite(k) and e <= base + KAPPA_FACTOR * kfun()):
                    return "exact", e
                if near is not None and near[0] <= float(k) <= near[1]:  # the replay's bound: tight
                    return ("ambiguous" if near[0] <= true <= near[1] else "explained"), e
                mod = mfun()
                if contains(mod, k, dtype):
                    lo, hi = _ends(mod)
                    return ("ambiguous" if lo <= true <= hi else "explained"), e
                if len(tally.unexplained_examples) < 3:
                    tally.unexplained_examples.append(
                        f"{what}: Keras {float(k)!r}, mathematics {float(true)!r}"
                        + f", Keras's algorithm [{float(_lo(mod))!r}, {float(_hi(mod))!r}]"
                        + f"; labels {[float(x) for x in lab]} pred {[float(x) for x in pred]}"
                    )
                return "unexplained", e

            def worst(part, e, k, true, status, where=""):
                cur = getattr(tally, f"{part}_worst")
                if cur is None or not e <= cur["ulps"]:
                    tally.note(part, {
                        "ulps": float(e), "abs": _abs_error(k, true), "keras": float(k), "exact": mpmath.nstr(true, 17),
                        "status": status, "at": f"labels {[float(x) for x in lab]} pred {[float(x) for x in pred]}{where}",
                    })

            if not vstat[i]:
                status, e = judge("value", v, tv, lambda: model()[0], VALUE_BASE, kappa_value, close)
                tally.value[status] += 1
                tally.value_max_ulps = max(tally.value_max_ulps, e)
                worst("value", e, v, tv, status)
            for j, (gj, tj) in enumerate(zip(g, tg)):
                if gstat[i, j]:
                    continue
                status, e = judge(f"grad[{j}]", gj, tj, lambda j=j: model()[1][j], GRAD_BASE, lambda j=j: kappa_of(ref, lab, pred, params, tv, tg, j), grad_near(j))
                tally.grad[status] += 1
                tally.grad_max_ulps = max(tally.grad_max_ulps, e)
                worst("grad", e, gj, tj, status, f", element {j}")
    return tally


#: Statuses of the batch path (:func:`_batch_statuses`); 0: left to the point-by-point judge.
_STATUS = {1: "exact", 2: "explained", 3: "ambiguous"}


def _batch_statuses(case: KernelCase, loss, labels, pred, params, value, grad, dtype, rep, tally: KerasTally):
    """Classify, for the whole batch at once, what the point-by-point judge would decide without
    Keras's algorithm or a condition number the batch lacks, and tally it: ``(value status by
    point, gradient status by point and element)``, 1 exact, 2 explained, 3 ambiguous, 0 left to
    the judge.

    An output is ``exact`` where its error is within its bound's constant term
    (:mod:`cesym.verify.truths`) or within ``base + 4κ`` by the κ the first tier computed for the
    batch (:func:`cesym.verify.contract.decide_by_kappa` asks it for every point with an error
    above the constant term). An output above that bound whose Keras number lies within the
    replay's bound (:func:`cesym.keras.replay.near`) is ``explained``, or ``ambiguous`` where the
    reference lies there too: the judge's second test, on the same float64 numbers; the reference's
    side of it is decided exactly from its double-double (``t_hi`` the float64 nearest the
    reference, ``t_lo`` of its sign). The batch's errors agree with the judge's to a relative
    2^-51 (:mod:`cesym.verify.truths`): a comparison with a bound within ``FAST_MARGIN`` of it is
    left to the judge, as are the points whose reference the batch does not hold, the outputs whose
    κ the first tier left unknown and those that need the model of Keras's algorithm."""
    B, n = pred.shape
    m = B * n if case.elementwise else B
    k = np.asarray(grad).size // m if m else 0
    vstat, gstat = np.zeros(m, dtype=np.int8), np.zeros((m, k), dtype=np.int8)
    ref = reference_for(loss, 1 if case.elementwise else n)
    pts = batch_points(ref, case, labels, pred, params)
    if pts is None:
        return vstat, gstat
    fast, vals, grads, ev, eg, tr = within_base(ref, loss, case, pts, value, grad, dtype, VALUE_BASE, GRAD_BASE)
    within, _, _, outside = decide_by_kappa(ref, pts, tr.ok & ~fast, vals, grads, ev, eg, VALUE_BASE, GRAD_BASE)
    within[list(outside)] = False  # (an output past its bound: classified output by output below)
    whole = fast | within
    vstat[whole], gstat[whole] = 1, 1
    rest = np.flatnonzero(tr.ok & ~whole)
    if len(rest):
        kv, kg = _known_kappas(ref, pts[rest], k)
        rv = rg = None
        if rep is not None:
            rv = (np.asarray(rep.value).reshape(-1)[rest], np.asarray(rep.value_bound).reshape(-1)[rest])
            if rep.grad is not None:
                rg = tuple(np.asarray(a).reshape(m, k)[rest] for a in (rep.grad, rep.grad_bound))
        vstat[rest] = _statuses(vals[rest], ev[rest], tr.v_hi[rest], tr.v_lo[rest], VALUE_BASE, kv, rv, dtype)
        if k:
            gstat[rest] = _statuses(grads[rest], eg[rest], tr.g_hi[rest], tr.g_lo[rest], GRAD_BASE, kg, rg, dtype)
    for part, stat, errs, outs in (("value", vstat, ev, vals), ("grad", gstat, eg, grads)):
        if errs is None or not errs.size:
            continue
        errs = errs.reshape(m, -1)
        for s in (1, 2, 3):
            getattr(tally, part)[_STATUS[s]] += int(np.count_nonzero(stat == s))
        decided = np.where(stat.reshape(m, -1) > 0, errs, -1.0)
        flat = int(np.argmax(decided))
        i, j = divmod(flat, errs.shape[1])
        if decided[i, j] < 0:
            continue
        e = float(errs[i, j])
        setattr(tally, f"{part}_max_ulps", max(getattr(tally, f"{part}_max_ulps"), e))
        lab, x = point_of(case, labels, pred, i)
        tv, tg = ref.value_and_grad(lab, x, params, dtype=dtype)
        true, kout = (tv, outs[i]) if part == "value" else (tg[j], outs.reshape(m, -1)[i, j])
        tally.note(part, {
            "ulps": e, "abs": _abs_error(kout, true), "keras": float(kout), "exact": mpmath.nstr(true, 17),
            "status": _STATUS[int(stat.reshape(m, -1)[i, j])],
            "at": f"labels {[float(v) for v in lab]} pred {[float(v) for v in x]}" + (f", element {j}" if part == "grad" else ""),
        })
    return vstat, gstat


def _known_kappas(ref, pts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The κ of the value and of each gradient element the reference holds for the points (NaN
    where none): what the judge's condition numbers would read there without computing."""
    kv, kg = np.full(len(pts), np.nan), np.full((len(pts), k), np.nan)
    for i, key in enumerate(tuple(r) for r in pts.tolist()):
        v, g = tier_kappas(ref._memo, key)
        kv[i] = np.nan if v is None else v
        if g is not None and k:
            kg[i] = g
    return kv, kg


def _statuses(outs, errs, t_hi, t_lo, base: float, kappa, rep, dtype) -> np.ndarray:
    """The judge's status of each output (:func:`_batch_statuses`), 0 where the batch cannot say.

    ``outs``, ``errs``, ``t_hi``, ``t_lo``, ``kappa``: the outputs, their errors in ulps, the
    reference's double-double and κ (NaN: unknown), one shape; ``rep``: the replay's values and
    bounds in that shape, or None."""
    with np.errstate(invalid="ignore", over="ignore"):
        bound = np.where(np.isinf(kappa), np.inf, base + KAPPA_FACTOR * kappa)
        finite = np.isfinite(outs)
        exact = (errs <= base * FAST_MARGIN) | (finite & (errs <= bound * FAST_MARGIN))
        above = (errs >= base / FAST_MARGIN) & (~finite | (errs >= bound / FAST_MARGIN))  # NaN κ: neither
        out = np.where(exact, 1, 0).astype(np.int8)
        if rep is None:
            return out
        lo, hi, defined = near_bounds(*rep, dtype)
        y = np.asarray(outs, dtype=np.float64)
        inside = above & defined & (lo <= y) & (y <= hi)
        # lo <= t and t <= hi for t = t_hi + t_lo exactly: t_hi is the float64 nearest t
        t_in = ((lo < t_hi) | ((lo == t_hi) & (t_lo >= 0))) & ((t_hi < hi) | ((t_hi == hi) & (t_lo <= 0)))
    return np.where(inside, np.where(t_in, 3, 2), out).astype(np.int8)


def _abs_error(k, true) -> float:
    """|Keras - exact| as a float (inf where either is infinite and they differ, NaN where there is no limit)."""
    t = mpmath.mpf(true) if not isinstance(true, mpmath.mpf) else true
    if mpmath.isnan(t) or np.isnan(float(k)):
        return float("nan")
    if mpmath.isinf(t) or np.isinf(float(k)):
        return 0.0 if float(k) == float(t) else float("inf")
    return float(abs(mpmath.mpf(float(k)) - t))
