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
    GRAD_BASE, KAPPA_FACTOR, VALUE_BASE, batch_points, decide_by_kappa, definition, losses_by_name, point_of, reference_for, within_base,
)
from .model import _ends, contains, envelope
from .replay import agreement, near, replay_outputs
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


def classify(case: KernelCase, batch: Batch, keras_call) -> KerasTally:
    """Run ``keras_call`` (see :func:`cesym.keras.calls.keras_kernel`) on ``batch`` and classify."""
    loss = definition(case)
    dtype = batch.pred.dtype
    tally = KerasTally()
    if case.kernel == "activity_penalty":
        return tally  # a plain reduce_sum of squares: compared by the seeds' tests
    value, grad = (np.asarray(a) for a in keras_call(batch.labels, batch.pred, batch.params, grad="both"))
    rep = replay_outputs(case, batch.labels, batch.pred, batch.params)
    if rep is not None:  # one value and bound per output, in the outputs' layout
        tally.replayed, tally.replay_compared, tally.replay_apart = agreement(rep.value, rep.value_bound, value, dtype)
        rep_value, rep_bound = (np.asarray(a).reshape(np.shape(value)) for a in (rep.value, rep.value_bound))
        if rep.grad is not None:
            tally.grad_replayed, tally.grad_replay_compared, tally.grad_replay_apart = agreement(rep.grad, rep.grad_bound, grad, dtype)
    B, n = batch.pred.shape
    labels = one_hot(batch.labels, n) if case.labels == "sparse" else batch.labels
    params = [batch.params[p.name] for p in loss.params]
    exact = _exact_within_base(case, loss, labels, batch.pred, params, value, grad, dtype, tally)
    for r in range(B):
        if case.elementwise:
            items = [(labels[r, c : c + 1], batch.pred[r, c : c + 1], value[r, c], grad[r, c : c + 1], (r, c)) for c in range(n) if not exact[r * n + c]]
        else:
            items = [] if exact[r] else [(labels[r], batch.pred[r], value[r], grad[r], r)]
        for lab, pred, v, g, at in items:
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

            def kappa(ref=ref, lab=lab, pred=pred, tv=tv, tg=tg):  # memoised by the reference
                return ref.kappa(lab, pred, params, tv, tg)

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

            status, e = judge("value", v, tv, lambda: model()[0], VALUE_BASE, kappa_value, close)
            tally.value[status] += 1
            tally.value_max_ulps = max(tally.value_max_ulps, e)
            worst("value", e, v, tv, status)
            for j, (gj, tj) in enumerate(zip(g, tg)):
                status, e = judge(f"grad[{j}]", gj, tj, lambda j=j: model()[1][j], GRAD_BASE, lambda j=j: kappa()[1][j], grad_near(j))
                tally.grad[status] += 1
                tally.grad_max_ulps = max(tally.grad_max_ulps, e)
                worst("grad", e, gj, tj, status, f", element {j}")
    return tally


def _exact_within_base(case: KernelCase, loss, labels, pred, params, value, grad, dtype, tally: KerasTally) -> np.ndarray:
    """Tally, for the whole batch at once, the points whose every Keras output is within the
    constant term of its bound (``exact`` whatever κ: :mod:`cesym.verify.truths`) or, by the
    condition numbers the first tier computed for the batch, within ``base + 4κ``
    (:func:`cesym.verify.contract.decide_by_kappa`); returns where that held. The rest is
    classified point by point."""
    B, n = pred.shape
    ref = reference_for(loss, 1 if case.elementwise else n)
    pts = batch_points(ref, case, labels, pred, params)
    if pts is None:
        return np.zeros(B * n if case.elementwise else B, dtype=bool)
    fast, vals, grads, ev, eg, tr = within_base(ref, loss, case, pts, value, grad, dtype, VALUE_BASE, GRAD_BASE)
    # and those within base + 4κ by the batch's condition numbers: "exact" as the judge would say
    fast = fast | decide_by_kappa(ref, pts, tr.ok & ~fast, vals, grads, ev, eg, VALUE_BASE, GRAD_BASE)[0]
    idx = np.flatnonzero(fast)
    if not len(idx):
        return fast

    def note(part, e, k, true, i, where=""):
        lab, x = point_of(case, labels, pred, i)
        tally.note(part, {
            "ulps": float(e), "abs": _abs_error(k, true), "keras": float(k), "exact": mpmath.nstr(true, 17),
            "status": "exact", "at": f"labels {[float(v) for v in lab]} pred {[float(v) for v in x]}{where}",
        })

    tally.value["exact"] += len(idx)
    i = int(idx[np.argmax(ev[idx])])
    tally.value_max_ulps = max(tally.value_max_ulps, float(ev[i]))
    tv, tg = ref.value_and_grad(*point_of(case, labels, pred, i), params, dtype=dtype)
    note("value", ev[i], vals[i], tv, i)
    if eg.shape[1]:
        tally.grad["exact"] += len(idx) * eg.shape[1]
        flat = int(np.argmax(eg[idx]))
        i, j = int(idx[flat // eg.shape[1]]), flat % eg.shape[1]
        tally.grad_max_ulps = max(tally.grad_max_ulps, float(eg[i, j]))
        tv, tg = ref.value_and_grad(*point_of(case, labels, pred, i), params, dtype=dtype)
        note("grad", eg[i, j], grads[i, j], tg[j], i, f", element {j}")
    return fast


def _abs_error(k, true) -> float:
    """|Keras - exact| as a float (inf where either is infinite and they differ, NaN where there is no limit)."""
    t = mpmath.mpf(true) if not isinstance(true, mpmath.mpf) else true
    if mpmath.isnan(t) or np.isnan(float(k)):
        return float("nan")
    if mpmath.isinf(t) or np.isinf(float(k)):
        return 0.0 if float(k) == float(t) else float("inf")
    return float(abs(mpmath.mpf(float(k)) - t))
