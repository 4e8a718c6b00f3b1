r"""Keras's loss classes and metrics against the mathematics, with the rounding of their reductions.

**Loss classes** (``keras.losses.BinaryCrossentropy``, ``CategoricalCrossentropy``,
``SparseCategoricalCrossentropy``), Keras 3.15 ``Loss.__call__`` → ``reduce_weighted_values``:
per-sample losses ``ℓ_i`` (the function form), times the sample weight ``w_i``, then

* ``'none'``: ``w_i·ℓ_i``;
* ``'sum'``: ``Σ_i w_i·ℓ_i``;
* ``'sum_over_batch_size'``: ``Σ_i w_i·ℓ_i / B``, ``B`` the number of per-sample values (zero
  weights count: the divisor is ``prod(shape(values))``, not ``Σ w``),

computed in the class's dtype (float32 by default: inputs are cast to it; ``dtype="float64"``).
Its gradient (``tf.GradientTape``) is ``∂/∂x_ij = U_i·∂ℓ_i/∂x_ij``, the backward pass seeded
with ``U_i = fl(fl(1/B)·w_i)`` ('sum_over_batch_size'; ``DivNoNan``'s gradient is ``1/B``, then
``Mul``'s ``·w_i``) or ``w_i`` ('sum', 'none'; 1 without weights).

Each output is classified as :mod:`cesym.keras.check` does for the function forms:

* ``exact``: inside the mathematics carried through the reduction: each ``ℓ_i`` anywhere within
  its contract (``ℓ_i ± (4 + 4κ_i) ulp(ℓ_i)``; gradients ``g_ij ± (8 + 4κ_ij) ulp(g_ij)``), then
  weighted, summed and divided with every rounding a float reduction may commit;
* ``explained``: within the bound of the replay of Keras's algorithm in its dtype
  (:mod:`cesym.keras.replay`: the function form's per-sample values times the weights, reduced
  (:func:`~cesym.keras.replay.class_values`), the gradients backward from the seeds ``U_i``
  (:func:`~cesym.keras.replay.class_seeds`)), else (no replay, or one whose bound does not hold
  there) inside the envelope of Keras's own algorithm (:func:`cesym.keras.model.envelope` per
  sample, widened by an ulp as :func:`~cesym.keras.model.contains` does, gradients with the
  seed ``U_i``) carried through the same reduction, overflow to ±inf included;
* ``unexplained``: neither.

The rounding of a reduction is bounded honestly: a product ``(1 ± u)``, a sum of ``n`` terms in
any order ``± γ_{n-1}·Σ|terms|`` with ``γ_k = k·u/(1 - k·u)`` (TensorFlow's ``reduce_sum``
order is unspecified; in float32 over ``B`` terms this is up to ``(B-1)·2**-24`` relative), and
flush-to-zero (``± tiny`` per operation). Nothing is loosened to make Keras fit: an output
outside both intervals is reported, not absorbed.

**Metrics** (``keras.metrics.binary_accuracy`` … and their classes): per sample, a function
form is ``exact`` when it equals cesym's metric kernel (Keras's tie rules), ``explained`` when it
equals cesym's kernel on the input with subnormal numbers read as zero (TensorFlow's CPU kernels
do: ``tf.argmax([0, 1e-42])`` is 0, ``in_top_k`` ranks 1e-42 level with 0, in float32 and
float64 alike), else ``unexplained`` — a failure of the run, as cesym's metric kernels promise
Keras's rules. A class's ``result()`` is ``total/count`` accumulated in float32 over
``update_state`` calls: ``total = Σ_i fl(fl(mean_c v_ic)·w_i)``, ``count = Σ_i w_i`` (the sum of
the weights, not ``B``). It is ``exact`` when it equals the exact weighted mean (a fraction of
the exact weights and cesym's per-sample values) rounded to float32, ``explained`` when it lies
within the rounding bound of that accumulation (of the values with subnormals read as zero,
too), else ``unexplained``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import mpmath
import numpy as np

from ..verify.contract import GRAD_BASE, KAPPA_FACTOR, VALUE_BASE, definition, reference_for
from ..verify.float_intervals import two_prod_err, two_sum
from ..verify.reference import Unresolved
from ..verify.registry import KernelCase, one_hot
from ..verify.sampling import Batch
from ..verify.truths import FAST_MARGIN, double_double, format_top, ulp_errors, ulp_exponents
from ..verify.ulps import ulp, ulp_error
from .model import _ends, _Rounding, contains, envelope
from .replay import class_seeds, class_values, near, replay_outputs

__all__ = [
    "REDUCTIONS",
    "ClassTally",
    "MetricTally",
    "check_classes",
    "check_metrics",
    "check_loss_metrics",
    "metrics_for",
    "sample_weights",
    "head",
]

iv = mpmath.iv

#: The reductions checked (``keras.losses.Loss(reduction=...)``).
REDUCTIONS = ("sum_over_batch_size", "sum", "none")

#: Rows of each batch that the class forms and metrics are checked on (verify's default run, and
#: --quick): the first rows, which cover every stratum (six of them) in turn.
CLASS_ROWS = 16
QUICK_CLASS_ROWS = 6


def _counts(*keys: str) -> dict:
    return {k: 0 for k in keys}


@dataclass
class ClassTally:
    """Exact / explained / unexplained counts of loss-class outputs, in total and per reduction."""

    value: dict = field(default_factory=lambda: _counts("exact", "explained", "unexplained"))
    grad: dict = field(default_factory=lambda: _counts("exact", "explained", "unexplained"))
    reductions: dict = field(
        default_factory=lambda: {
            r: {"value": _counts("exact", "explained", "unexplained"), "grad": _counts("exact", "explained", "unexplained")}
            for r in REDUCTIONS
        }
    )
    value_max_ulps: float = 0.0  # from the mathematics (the exactly weighted and reduced reference)
    grad_max_ulps: float = 0.0
    class_dtype: str = ""
    rows: int = 0
    unexplained_examples: list[str] = field(default_factory=list)
    unresolved: int = 0

    def add(self, reduction: str, what: str, status: str, count: int = 1) -> None:
        getattr(self, what)[status] += count
        self.reductions[reduction][what][status] += count

    def merge(self, other: "ClassTally") -> "ClassTally":
        for what in ("value", "grad"):
            for k in getattr(self, what):
                getattr(self, what)[k] += getattr(other, what)[k]
            for r in REDUCTIONS:
                for k in self.reductions[r][what]:
                    self.reductions[r][what][k] += other.reductions[r][what][k]
        self.value_max_ulps = max(self.value_max_ulps, other.value_max_ulps)
        self.grad_max_ulps = max(self.grad_max_ulps, other.grad_max_ulps)
        self.class_dtype = self.class_dtype or other.class_dtype
        self.rows += other.rows
        self.unexplained_examples += other.unexplained_examples[: max(0, 3 - len(self.unexplained_examples))]
        self.unresolved += other.unresolved
        return self


@dataclass
class MetricTally:
    """Metric function forms (per sample, against cesym's kernels) and classes (weighted means)."""

    function: dict = field(default_factory=lambda: _counts("exact", "explained", "unexplained"))
    classes: dict = field(default_factory=lambda: _counts("exact", "explained", "unexplained"))
    class_max_ulps: float = 0.0  # of result() from the exact weighted mean (of the values explaining it), float32 ulps
    metrics: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # function forms that no rule explains
    unexplained_examples: list[str] = field(default_factory=list)

    def merge(self, other: "MetricTally") -> "MetricTally":
        for k in self.function:
            self.function[k] += other.function[k]
        for k in self.classes:
            self.classes[k] += other.classes[k]
        self.class_max_ulps = max(self.class_max_ulps, other.class_max_ulps)
        self.metrics += [m for m in other.metrics if m not in self.metrics]
        self.failures += other.failures
        self.unexplained_examples += other.unexplained_examples[: max(0, 3 - len(self.unexplained_examples))]
        return self


def head(batch: Batch, rows: int | None) -> Batch:
    """The first ``rows`` rows of ``batch`` (rows are drawn stratum by stratum: all strata)."""
    if rows is None or rows >= batch.pred.shape[0]:
        return batch
    labels = None if batch.labels is None else batch.labels[:rows]
    return Batch(labels, batch.pred[:rows], batch.params, batch.strata[:rows])


def sample_weights(B: int, seed) -> np.ndarray:
    """Seeded non-negative weights: uniform in [0, 2) rounded to float32 (exact in both dtypes),
    about one in five exactly 0 (they still count in 'sum_over_batch_size')."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0, 2, B).astype(np.float32)
    w[rng.random(B) < 0.2] = 0
    return w.astype(np.float64)


# --- interval reductions --------------------------------------------------------------------------


def _overflow(x, fmax: mpmath.mpf):
    """``x`` with ±inf joined where its float result may overflow."""
    a, b = _ends(x)
    if b > fmax or a < -fmax:
        return iv.mpf([-mpmath.inf if a < -fmax else a, mpmath.inf if b > fmax else b])
    return x


def _reduce(R: _Rounding, terms: list, weights, reduction: str, fmax: mpmath.mpf | None) -> list:
    """Intervals of the reduced outputs given intervals of the per-sample values.

    ``weights`` None: unweighted. ``fmax``: join overflow to ±inf (Keras's float reduction);
    None: no overflow (the mathematics).
    """
    ovf = (lambda x: _overflow(x, fmax)) if fmax is not None else (lambda x: x)
    t = list(terms) if weights is None else [ovf(R.mul(x, iv.mpf(float(w)))) for x, w in zip(terms, weights)]
    if reduction == "none":
        return t
    s = ovf(R.gsum(t))
    if reduction == "sum":
        return [s]
    return [R.div(s, iv.mpf(len(t)))]


def _seed(R: _Rounding, reduction: str, w: float | None, B: int):
    """The backward seed ``U_i`` of one sample, as TensorFlow rounds it."""
    if reduction == "sum_over_batch_size":
        inv = R.div(iv.mpf(1), iv.mpf(B))
        return inv if w is None else R.mul(inv, iv.mpf(float(w)))
    return iv.mpf(1 if w is None else float(w))


def _widen(x, dtype):
    """An envelope widened by one ulp of ``dtype`` at each end (as ``contains`` reads it)."""
    a, b = _ends(x)
    dt = np.dtype(dtype).type
    ua = mpmath.mpf(float(np.spacing(dt(abs(float(a)))))) if mpmath.isfinite(a) else 0
    ub = mpmath.mpf(float(np.spacing(dt(abs(float(b)))))) if mpmath.isfinite(b) else 0
    return iv.mpf([a - ua, b + ub])


def _band(true, base: float, kappa: float, dtype):
    """The contract's interval around a true value: ``true ± (base + 4κ)·ulp(true)``."""
    if not mpmath.isfinite(true) or math.isinf(kappa) or math.isnan(kappa):
        return iv.mpf([-mpmath.inf, mpmath.inf]) if mpmath.isfinite(true) else iv.mpf(true)
    tol = (base + KAPPA_FACTOR * kappa) * ulp(true, dtype)
    return iv.mpf([true - tol, true + tol])


def _within(x, value: float, dtype) -> bool:
    """``value`` inside the interval ``x`` (±inf inside when ``x`` reaches past the largest float)."""
    v = float(value)
    if math.isnan(v):
        return False
    a, b = _ends(x)
    if math.isinf(v):
        fmax = mpmath.mpf(float(np.finfo(dtype).max))
        return (v > 0 and b > fmax) or (v < 0 and a < -fmax)
    return a <= v <= b


def _judge(k: float, math_at: Callable[[bool], object], model: Callable[[], object], dtype, close: tuple[float, float] | None = None) -> str:
    """exact (inside the mathematics' band, first without κ, then with it), explained (within
    the replay's bound ``close``, else inside the model's envelope to within an ulp), or
    unexplained. ``model()`` makes the envelope: only for the outputs past both (an envelope
    costs milliseconds; the replay's bounds of a whole batch, one pass)."""
    if _within(math_at(False), k, dtype) or (np.isfinite(k) and _within(math_at(True), k, dtype)):
        return "exact"
    if close is not None and close[0] <= k <= close[1]:
        return "explained"
    if contains(model(), k, dtype):
        return "explained"
    return "unexplained"


def _class_replay(case: KernelCase, labels, pred: np.ndarray, params: dict, dtype):
    """``(values(reduction, weights), grads(reduction, weights))``: the replay's outputs of the
    loss class and their bounds (:mod:`cesym.keras.replay`), or None where Keras's function form
    is not replayed per sample."""
    rep = replay_outputs(case, labels, pred, params)
    if rep is None or np.ndim(rep.value) != 1:
        return None
    B = pred.shape[0]
    seeded: dict = {np.ones(B, dtype).tobytes(): rep}  # 'sum' and 'none' share their seeds

    def values(reduction: str, weights):
        return class_values(rep, reduction, weights, dtype)

    def grads(reduction: str, weights):
        seed = class_seeds(reduction, weights, B, dtype)
        key = seed.tobytes()
        if key not in seeded:
            seeded[key] = replay_outputs(case, labels, pred, params, seed)
        g = seeded[key]
        return None if g is None or g.grad is None else (g.grad, g.grad_bound)

    return values, grads


# --- loss classes ---------------------------------------------------------------------------------


def class_rows(case: KernelCase, batch: Batch) -> list[int]:
    """The rows of ``batch`` :func:`check_classes` calls Keras's class on: those whose reference
    resolves (read from the reference's memo, in the order :func:`check_classes` reads it)."""
    loss = definition(case)
    dtype = np.dtype(batch.pred.dtype)
    n = batch.pred.shape[1]
    dense = one_hot(batch.labels, n) if case.labels == "sparse" else batch.labels
    params = [batch.params[p.name] for p in loss.params]
    ref = reference_for(loss, n)
    keep = []
    for i in range(batch.pred.shape[0]):
        try:
            ref.value_and_grad(dense[i], batch.pred[i], params, dtype=dtype)
            keep.append(i)
        except Unresolved:
            pass
    return keep


def class_outputs(case: KernelCase, batch: Batch, keep: list[int], class_call: Callable, seed=0) -> list:
    """Keras's class on the rows ``keep`` of ``batch`` (:func:`class_rows`), as
    :func:`check_classes` calls it: per reduction, unweighted then with seeded sample weights,
    ``(value, gradient)`` arrays, or None where the class refuses the parameters; none for no rows."""
    if not keep:
        return []
    dtype = np.dtype(batch.pred.dtype)
    class_dtype = None if dtype == np.float32 else dtype.name
    labels, pred = batch.labels[keep], batch.pred[keep]
    w = sample_weights(len(keep), seed)
    out = []
    for reduction in REDUCTIONS:
        for weights in (None, w):
            try:
                value, grad = class_call(labels, pred, batch.params, reduction, weights, class_dtype)
            except ValueError:  # Keras's class refuses these parameters (q = 1 is outside its (0, 1))
                out.append(None)
                continue
            out.append((np.atleast_1d(np.asarray(value)), np.asarray(grad)))
    return out


def check_classes(case: KernelCase, batch: Batch, class_call: Callable, seed=0, outputs: list | None = None) -> ClassTally:
    """Run the loss class of ``case`` (``class_call``, see :func:`cesym.keras.calls.keras_class_kernel`)
    on ``batch`` with every reduction, without and with seeded sample weights, and classify
    every value and gradient element (``outputs``: what :func:`class_outputs` gave on the rows
    :func:`class_rows` chose, measured before; else measured here).

    float32 inputs go to the class's default (float32); float64 inputs to ``dtype="float64"``.
    """
    loss = definition(case)
    dtype = np.dtype(batch.pred.dtype)
    tally = ClassTally(class_dtype=dtype.name)
    B, n = batch.pred.shape
    dense = one_hot(batch.labels, n) if case.labels == "sparse" else batch.labels
    params = [batch.params[p.name] for p in loss.params]
    ref = reference_for(loss, n)
    keep = class_rows(case, batch)
    tally.unresolved = B - len(keep)
    if not keep:
        return tally
    truth = [ref.value_and_grad(dense[i], batch.pred[i], params, dtype=dtype) for i in keep]  # memoised by class_rows
    if outputs is None:
        outputs = class_outputs(case, batch, keep, class_call, seed)
    labels, pred, dense = batch.labels[keep], batch.pred[keep], dense[keep]
    B = len(keep)
    tally.rows = B
    w = sample_weights(B, seed)
    R = _Rounding(dtype)
    fmax = mpmath.mpf(float(np.finfo(dtype).max))
    old = iv.prec
    iv.prec = 200
    try:
        values_memo: list = []

        def model_values() -> list:  # every row's value envelope, made once, when an output needs it
            if not values_memo:
                values_memo.append([_widen(envelope(case, dense[i], pred[i], batch.params, dtype)[0], dtype) for i in range(B)])
            return values_memo[0]

        grad_models: dict = {}

        def grad_model(i: int, reduction: str, weighted: bool):
            key = (i, reduction == "sum_over_batch_size", weighted)
            if key not in grad_models:
                U = _seed(R, reduction, w[i] if weighted else None, B)
                grad_models[key] = envelope(case, dense[i], pred[i], batch.params, dtype, upstream=U)[1]
            return grad_models[key]

        def value_band(i: int, with_kappa: bool):
            L, g = truth[i]
            k = ref.kappa_value(dense[i], pred[i], params, L, g) if with_kappa else 0.0
            return _band(L, VALUE_BASE, k, dtype)

        broadcast = _labels_broadcast(case, labels, n)
        g_dd = _grads_dd(truth, n)
        replayed = None if broadcast else _class_replay(case, labels, pred, batch.params, dtype)
        calls = iter(outputs)
        for reduction in REDUCTIONS:
            for weights in (None, w):
                got = next(calls)
                if got is None:  # Keras's class refused these parameters
                    continue
                value, grad = got
                tag = reduction + (" weighted" if weights is not None else "")
                if broadcast:
                    _classify_broadcast(
                        tally, case, ref, params, truth, labels, dense, pred, batch.params, value, grad, weights, reduction,
                        R, fmax, model_values, value_band, dtype, tag,
                    )
                    continue
                want = (B,) if reduction == "none" else (1,)
                if value.shape != want:  # not the loss of these rows at all (a broadcast)
                    tally.add(reduction, "value", "unexplained", int(np.prod(want)))
                    tally.add(reduction, "grad", "unexplained", int(np.size(pred)))
                    if len(tally.unexplained_examples) < 3:
                        tally.unexplained_examples.append(
                            f"{tag}: Keras's class returned shape {value.shape}, not {want}, on rows of {n} "
                            f"(labels {labels.shape}, predictions {pred.shape})"
                        )
                    continue
                rv = rg = None
                if replayed is not None:
                    rv, rg = replayed[0](reduction, weights), replayed[1](reduction, weights)
                _classify_values(tally, truth, value, weights, reduction, R, fmax, model_values, value_band, dtype, tag, rv)
                _classify_grads(
                    tally, ref, truth, dense, pred, params, grad, weights, reduction, R, grad_model, dtype, tag, rg,
                    _within_base(g_dd, grad, weights, reduction, dtype),
                )
    finally:
        iv.prec = old
    return tally


def _labels_broadcast(case: KernelCase, labels: np.ndarray, n: int) -> bool:
    """Keras's loss classes pair every label row with every prediction row here: class indices
    of shape (B,) against predictions of shape (B, 1). The wrapper's
    ``squeeze_or_expand_to_same_rank`` makes the labels (B, 1) (a last axis of 1 on the other
    side), the one-hot of that is (B, 1, 1), and its product with (B, 1) broadcasts to
    (B, B, 1): the values are a (B, B) matrix V[i, k] = L(label_i, pred_k). (The function form
    is given the labels as they are, and is right.) Only where the Keras function one-hots the
    labels as given (declared ``one_hot_as_given``): sparse cross-entropy squeezes the (B, 1)
    back to (B,) and is right."""
    return case.labels == "sparse" and labels.ndim == 1 and n == 1 and bool((case.keras or {}).get("one_hot_as_given"))


def _classify_broadcast(tally, case, ref, param_values, truth, labels, dense, pred, params, value, grad, weights, reduction, R, fmax, model_values, value_band, dtype, tag):
    """The outputs of a loss class that broadcast labels against predictions
    (:func:`_labels_broadcast`), against Keras's semantics modelled: V[i, k] = L_k (one class:
    every label is the same), sample weights multiplying along the last axis (w_k: Keras's
    ``squeeze_or_expand_to_same_rank`` leaves a (B,) weight against (B, B) values as it is), the
    reductions over all B² entries (sum: B·Σ w_k L_k; sum_over_batch_size: that over B², which
    is the mathematics' Σ w_k L_k / B), and d(output)/d pred_k = (Σ_i of the B seeds)·w_k·g_k.
    An output is exact where it is the mathematics' (sum_over_batch_size), explained where it is
    inside the envelope of that semantics, unexplained elsewhere."""
    B = len(truth)
    wts = [1.0] * B if weights is None else [float(x) for x in weights]
    if len({int(x) for x in labels}) != 1:  # rows of other labels would meet: not modelled
        tally.add(reduction, "value", "unexplained", int(np.size(value)))
        tally.add(reduction, "grad", "unexplained", int(np.size(pred)))
        return
    terms = functools.cache(lambda: [m if weights is None else R.mul(m, iv.mpf(wk)) for m, wk in zip(model_values(), wts)])
    never = lambda with_kappa: iv.mpf([mpmath.inf, mpmath.inf])  # noqa: E731 - not the mathematics' output at all
    with mpmath.workprec(256):
        weighted = [mpmath.mpf(wk) * L for wk, (L, _) in zip(wts, truth)]
    if reduction == "none":
        if np.shape(value) != (B, B):
            tally.add(reduction, "value", "unexplained", int(np.size(value)))
        else:
            for i in range(B):
                for k in range(B):
                    status = _judge(float(value[i, k]), never, lambda k=k: _overflow(terms()[k], fmax), dtype)
                    tally.add(reduction, "value", status)
                    tally.value_max_ulps = max(tally.value_max_ulps, ulp_error(value[i, k], weighted[k], dtype))
    else:
        def model():
            total = _overflow(R.gsum(terms() * B), fmax)
            return total if reduction == "sum" else R.div(total, iv.mpf(B * B))

        math_at = never if reduction == "sum" else (
            lambda kap: _reduce(R, [value_band(k, kap) for k in range(B)], weights, reduction, None)[0]
        )
        with mpmath.workprec(256):
            true = mpmath.fsum(weighted) / (1 if reduction == "sum" else B)
        status = _judge(float(value.reshape(-1)[0]), math_at, model, dtype)
        tally.add(reduction, "value", status)
        tally.value_max_ulps = max(tally.value_max_ulps, ulp_error(value.reshape(-1)[0], true, dtype))
    seed = iv.mpf(1) if reduction != "sum_over_batch_size" else R.div(iv.mpf(1), iv.mpf(B * B))
    upstream = R.gsum([seed] * B)  # the broadcast's gradient: its B seeds of column k summed
    for k in range(B):
        U = upstream if weights is None else R.mul(upstream, iv.mpf(wts[k]))
        model = lambda k=k, U=U: envelope(case, dense[k], pred[k], params, dtype, upstream=U)[1][0]  # noqa: E731
        L, g = truth[k]

        def math_at(with_kappa: bool, k=k, L=L, g=g):
            if reduction != "sum_over_batch_size":
                return never(with_kappa)
            kap = ref.kappa(dense[k], pred[k], param_values, L, g)[1][0] if with_kappa else 0.0
            return R.mul(_seed(R, reduction, None if weights is None else wts[k], B), _band(g[0], GRAD_BASE, kap, dtype))

        status = _judge(float(grad[k, 0]), math_at, model, dtype)
        tally.add(reduction, "grad", status)
        with mpmath.workprec(256):
            true = mpmath.mpf(wts[k]) * g[0] / (B if reduction == "sum_over_batch_size" else 1)
        tally.grad_max_ulps = max(tally.grad_max_ulps, ulp_error(grad[k, 0], true, dtype))
    if tally.value["unexplained"] and len(tally.unexplained_examples) < 3:
        tally.unexplained_examples.append(f"{tag}: Keras's class broadcast labels {np.shape(dense)} against predictions {np.shape(pred)} outside the model")


def _classify_values(tally, truth, value, weights, reduction, R, fmax, model_values, value_band, dtype, tag, replayed=None):
    """The value outputs of one reduction: against the exactly weighted and reduced reference;
    ``replayed``: the replay's outputs and bounds (:func:`_class_replay`), or None."""
    B = len(truth)
    wts = [1.0] * B if weights is None else [float(x) for x in weights]
    with mpmath.workprec(256):
        terms = [mpmath.mpf(wi) * L for wi, (L, _) in zip(wts, truth)]
        if reduction == "none":
            true = terms
        else:
            s = mpmath.fsum(terms)
            true = [s if reduction == "sum" else s / B]
    model = functools.cache(lambda: _reduce(R, model_values(), weights, reduction, fmax))
    bands: dict = {}

    def math_at(with_kappa: bool):
        if with_kappa not in bands:
            bands[with_kappa] = _reduce(R, [value_band(i, with_kappa) for i in range(B)], weights, reduction, None)
        return bands[with_kappa]

    for o, (k, t) in enumerate(zip(value, true)):
        close = None if replayed is None else near(replayed[0][o], replayed[1][o], dtype)
        status = _judge(float(k), lambda kap, o=o: math_at(kap)[o], lambda o=o: model()[o], dtype, close)
        tally.add(reduction, "value", status)
        tally.value_max_ulps = max(tally.value_max_ulps, ulp_error(k, t, dtype))
        if status == "unexplained" and len(tally.unexplained_examples) < 3:
            a, b = _ends(model()[o])
            tally.unexplained_examples.append(
                f"{tag} value[{o}]: Keras {float(k)!r}, mathematics {float(t)!r}, Keras's algorithm "
                f"[{float(a)!r}, {float(b)!r}] ({B} rows)"
            )


def _grads_dd(truth: list, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows' reference gradients as double-doubles (:func:`cesym.verify.truths.double_double`): ``(hi,
    lo)``, each (rows, n); hi NaN where float64 cannot hold an element to 106 bits."""
    dd = np.array([[double_double(t) for t in g] for _, g in truth], dtype=np.float64).reshape(len(truth), n, 2)
    return dd[..., 0], dd[..., 1]


def _within_base(g_dd, grad, weights, reduction: str, dtype) -> tuple[np.ndarray, np.ndarray]:
    """``(exact, errors)`` of the gradient elements of one reduction, the whole batch at once:
    ``exact`` where Keras's element lies within ``c_i·(g_ij ± 8 ulp(g_ij))``, ``c_i = w_i`` (1
    unweighted; ``/B`` for 'sum_over_batch_size'): inside the mathematics' band of
    :func:`_classify_grads` without κ, whatever TensorFlow's rounding of the seed ``U_i`` (the
    band is ``U_i`` times that interval, ``U_i`` an interval around ``c_i``); ``errors`` their
    ulps from ``c_i·g_ij``. ``c_i·g_ij`` is formed as a double-double (Dekker's TwoProduct, and
    the division's remainder), the tests as :mod:`cesym.verify.truths` makes them (errors within
    a relative 2^-51 of :func:`~cesym.verify.ulps.ulp_error`'s, decided only below
    ``FAST_MARGIN`` of the bound); an element outside that, not finite, or whose products would
    leave the range where TwoProduct is exact is left to the element-by-element judge."""
    g_hi, g_lo = g_dd
    B, n = g_hi.shape
    w = np.ones(B) if weights is None else np.asarray(weights, dtype=np.float64)
    k = np.asarray(grad, dtype=np.float64).reshape(B, n)
    top = format_top(dtype)[2]
    with np.errstate(all="ignore"):
        wc = w[:, None]
        t_hi = wc * g_hi
        t_hi, t_lo = two_sum(t_hi, two_prod_err(np.broadcast_to(wc, g_hi.shape), g_hi, t_hi) + wc * g_lo)
        c = w
        if reduction == "sum_over_batch_size":  # (w·g)/B: the quotient and its remainder's
            q = t_hi / B
            rem = ((t_hi - q * B) - two_prod_err(q, np.full_like(q, float(B)), q * B)) + t_lo
            t_hi, t_lo = two_sum(q, rem / B)
            c = w / B
        ulp_g = np.ldexp(1.0, ulp_exponents(g_hi, g_lo, dtype))
        d = np.abs((k - t_hi) - t_lo)
        a, ag = np.abs(t_hi), np.abs(g_hi)
        safe = np.isfinite(k) & np.isfinite(g_hi) & (ag < 2.0**900) & ((g_hi == 0) | (ag >= 2.0**-800))
        safe &= (t_hi == 0) | ((a >= 2.0**-800) & (a < top))
        exact = safe & (d <= GRAD_BASE * c[:, None] * ulp_g * FAST_MARGIN)
        errors = ulp_errors(k, t_hi, t_lo, dtype)
    return exact, errors


def _classify_grads(tally, ref, truth, dense, pred, params, grad, weights, reduction, R, grad_model, dtype, tag, replayed=None, fast=None):
    """The gradient of one reduction: element (i, j) against ``U_i·g_ij`` (its seed times the
    per-sample gradient), the replay seeded with ``U_i`` (``replayed``: its gradient and bound,
    or None) and the envelope seeded with ``U_i``. ``fast``: :func:`_within_base` of these
    elements, whose exact ones are tallied at once."""
    B, n = pred.shape
    D = B if reduction == "sum_over_batch_size" else 1
    exact = None
    if fast is not None:
        exact, errors = fast
        if exact.any():
            tally.add(reduction, "grad", "exact", int(np.count_nonzero(exact)))
            tally.grad_max_ulps = max(tally.grad_max_ulps, float(errors[exact].max()))
    for i in range(B):
        L, g = truth[i]
        wi = 1.0 if weights is None else float(weights[i])
        U = _seed(R, reduction, None if weights is None else wi, B)
        for j in range(n):
            if exact is not None and exact[i, j]:
                continue
            k = float(grad[i, j])

            def math_at(with_kappa: bool, i=i, j=j):
                kap = ref.kappa(dense[i], pred[i], params, L, g)[1][j] if with_kappa else 0.0
                return R.mul(U, _band(g[j], GRAD_BASE, kap, dtype))

            close = None if replayed is None else near(replayed[0][i, j], replayed[1][i, j], dtype)
            status = _judge(k, math_at, lambda i=i, j=j: grad_model(i, reduction, weights is not None)[j], dtype, close)
            tally.add(reduction, "grad", status)
            with mpmath.workprec(256):
                true = mpmath.mpf(wi) * g[j] / D
            tally.grad_max_ulps = max(tally.grad_max_ulps, ulp_error(k, true, dtype))
            if status == "unexplained" and len(tally.unexplained_examples) < 3:
                a, b = _ends(grad_model(i, reduction, weights is not None)[j])
                tally.unexplained_examples.append(
                    f"{tag} grad[{i}, {j}]: Keras {k!r}, mathematics {float(true)!r}, Keras's algorithm "
                    f"[{float(a)!r}, {float(b)!r}]; labels {[float(x) for x in dense[i]]} pred {[float(x) for x in pred[i]]}"
                )


# --- metrics --------------------------------------------------------------------------------------

#: The metrics checked on the points of a loss (probabilities, hard labels): (name, keywords).
_METRICS = {
    "binary_crossentropy": [("binary_accuracy", {})],
    "categorical_crossentropy": [
        ("categorical_accuracy", {}),
        ("top_k_categorical_accuracy", {"k": 1}),
        ("top_k_categorical_accuracy", {"k": 2}),
    ],
    "sparse_categorical_crossentropy": [
        ("sparse_categorical_accuracy", {}),
        ("sparse_top_k_categorical_accuracy", {"k": 1}),
        ("sparse_top_k_categorical_accuracy", {"k": 2}),
    ],
}

#: TensorFlow's InTopKV2 takes float32 only: top-k metrics run on float32 predictions.
_FLOAT32_ONLY = ("top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy")


def metrics_for(case: KernelCase) -> list[tuple[str, dict]]:
    """The metrics checked with ``case`` (on probability inputs; empty for the others)."""
    return _METRICS.get(case.kernel, []) if case.inputs == "probs" else []


#: Edge rows 0 and 1 hold a subnormal against zeros: labelled with its class and with class 0.
_SUBNORMAL_ROWS = 2


def _edge_rows(n: int, dtype) -> np.ndarray:
    """Rows where the tie and NaN rules decide: a subnormal against zeros (twice), every class
    tied, tied at the threshold 0.5, NaN, ±inf, a tie between the first and last class."""
    r = np.zeros(n)
    r[-1] = float(np.finfo(dtype).smallest_normal) / 4
    rows = [r, r, np.full(n, 0.5), np.full(n, 0.25)]
    r = np.full(n, 0.25)
    r[0] = np.nan
    rows.append(r)
    r = np.linspace(0.1, 0.9, n)
    r[-1] = np.inf
    rows.append(r)
    r = np.linspace(0.9, 0.1, n)
    r[0] = -np.inf
    rows.append(r)
    r = np.linspace(0.2, 0.4, n)
    r[0] = r[-1] = 0.6
    rows.append(r)
    return np.array(rows).astype(dtype)


def _flush(p: np.ndarray) -> np.ndarray:
    """``p`` with subnormal numbers read as zero, as TensorFlow's CPU kernels read them."""
    return np.where(np.abs(p) < np.finfo(p.dtype).smallest_normal, np.zeros_like(p), p)


def _metric_inputs(case: KernelCase, batch: Batch, rng) -> tuple[np.ndarray, np.ndarray]:
    """The batch's rows and the edge rows, with labels of the loss's kind."""
    B, n = batch.pred.shape
    edge = _edge_rows(n, batch.pred.dtype)
    pred = np.concatenate([batch.pred, edge])
    E = len(edge)
    if case.kernel == "binary_crossentropy":
        return np.concatenate([batch.labels, rng.integers(0, 2, (E, n)).astype(batch.labels.dtype)]), pred
    extra = np.concatenate([[n - 1, 0], rng.integers(0, n, E - _SUBNORMAL_ROWS)])
    if case.labels == "sparse":
        return np.concatenate([batch.labels, extra]), pred
    return np.concatenate([batch.labels, np.eye(n, dtype=batch.labels.dtype)[extra]]), pred


def check_metrics(case: KernelCase, batch: Batch, seed=0, metric_call: Callable | None = None) -> MetricTally:
    """Keras's metric function forms against cesym's kernels, and its classes (with seeded sample
    weights, fed in two ``update_state`` calls) against the exact weighted mean.

    ``metric_call(name, **kw)`` returns ``(function, weighted_mean)`` (default
    :func:`cesym.keras.calls.keras_metric`): replaceable, so that a wrong Keras can be fed in.
    """
    from cesym import kernels

    if metric_call is None:
        from .calls import keras_metric as metric_call
    tally = MetricTally()
    rng = np.random.default_rng(seed)
    labels, pred = _metric_inputs(case, batch, rng)
    B, n = pred.shape
    w = sample_weights(B, [*np.atleast_1d(seed), 1])
    for name, kw in metrics_for(case):
        mid = name + "".join(f"[{k}={v}]" for k, v in kw.items())
        tally.metrics.append(mid)
        p = pred.astype(np.float32) if name in _FLOAT32_ONLY else pred
        function, weighted_mean = metric_call(name, **kw)
        ours = np.asarray(getattr(kernels, name)(labels, p, **kw), dtype=np.float64)
        flushed = np.asarray(getattr(kernels, name)(labels, _flush(p), **kw), dtype=np.float64)
        theirs = np.asarray(function(labels, p), dtype=np.float64)
        if theirs.shape != ours.shape:
            tally.function["unexplained"] += ours.size
            tally.failures.append(f"keras.metrics.{mid}: shape {theirs.shape}, cesym {ours.shape}")
            continue
        exact = ours == theirs
        explained = ~exact & (flushed == theirs)
        tally.function["exact"] += int(exact.sum())
        tally.function["explained"] += int(explained.sum())
        tally.function["unexplained"] += int((~exact & ~explained).sum())
        for r in np.argwhere(~(exact | explained).reshape(B, -1).all(axis=1))[:3, 0]:
            tally.failures.append(
                f"keras.metrics.{mid} row {r}: cesym {ours[r].tolist()}, Keras {theirs[r].tolist()}; "
                f"labels {np.asarray(labels[r]).tolist()} pred {p[r].tolist()}"
            )
        for weights, chunks in ((None, 1), (w, 2)):
            k = float(weighted_mean(labels, p, weights, chunks))
            status, mean, err = _judge_mean(k, ours.reshape(B, -1), weights)
            if status == "unexplained" and (flushed != ours).any():  # Keras's values: subnormals as zero
                alt, alt_mean, alt_err = _judge_mean(k, flushed.reshape(B, -1), weights)
                if alt != "unexplained":
                    status, err = "explained", alt_err
            tally.classes[status] += 1
            tally.class_max_ulps = max(tally.class_max_ulps, err)
            if status == "unexplained" and len(tally.unexplained_examples) < 3:
                tally.unexplained_examples.append(
                    f"keras.metrics.{mid}{' weighted' if weights is not None else ''}: result() {k!r}, "
                    f"exact mean {float(mean)!r} ({B} rows)"
                )
    return tally


def check_loss_metrics(case: KernelCase, batch: Batch, seed=0) -> MetricTally:
    """The metric forms Keras builds on ``case``'s loss (its declaration's ``metrics``).

    A function form must be Keras's loss function itself: its values equal, bit for bit, those
    of the loss function (NaN where they are NaN). A class's ``result()`` (unweighted, and with
    seeded sample weights fed in two ``update_state`` calls) is judged against the weighted mean
    of Keras's own per-sample values (cast to the metric's float32, as Keras does): ``exact``
    where it is that mean correctly rounded, ``explained`` where the model of Keras's float32
    averaging (:class:`cesym.keras.model._Rounding`: products and the sum in any order, one
    division) contains it, ``unexplained`` otherwise. ``metric_of`` relations: ``-mean`` (the
    negated values), ``sqrt(mean)`` (``RootMeanSquaredError``: the inputs cast to float32,
    squared differences averaged over each sample's elements, then the square root).
    """
    from .calls import keras_kernel, keras_loss_metric

    tally = MetricTally()
    decl = case.keras or {}
    if not decl.get("metrics") or batch.labels is None:
        return tally
    labels = one_hot(batch.labels, batch.pred.shape[1]) if case.labels == "sparse" else batch.labels
    pred, params = batch.pred, dict(batch.params)
    B = len(pred)
    w = sample_weights(B, [*np.atleast_1d(seed), 2])
    values = np.asarray(keras_kernel(case)(batch.labels, pred, params), dtype=np.float64)
    for name in decl["metrics"]:
        mid = name.split(".")[-1]
        tally.metrics.append(mid)
        kind, call = keras_loss_metric(case, name, params)
        if kind == "function":
            theirs = np.asarray(call(batch.labels, pred), dtype=np.float64)
            same = (theirs.shape == values.shape) and ((theirs == values) | (np.isnan(theirs) & np.isnan(values)))
            n_same = int(np.sum(same)) if theirs.shape == values.shape else 0
            tally.function["exact"] += n_same
            tally.function["unexplained"] += B - n_same
            if n_same < B:
                tally.failures.append(f"keras.metrics.{mid}: not the loss function's values")
            continue
        relation = decl.get("metric_of", {}).get(name, "mean")
        for weights, chunks in ((None, 1), (w, 2)):
            k = call(batch.labels, pred, weights, chunks)
            status, exact, err = _judge_loss_mean(k, labels, pred, values, weights, relation)
            tally.classes[status] += 1
            tally.class_max_ulps = max(tally.class_max_ulps, err)
            if status == "unexplained" and len(tally.unexplained_examples) < 3:
                tally.unexplained_examples.append(
                    f"keras.metrics.{mid}{' weighted' if weights is not None else ''}: result() {k!r}, "
                    f"exact {float(exact)!r} ({B} rows)"
                )
    return tally


def _nonfinite_total(k: float, products: np.ndarray) -> str:
    """A weighted total holding inf (or inf·0 = NaN): ``explained`` where ``k`` is the same
    non-number (NaN, or that infinity) as the total, else ``unexplained``."""
    with np.errstate(invalid="ignore"):
        kind = float(np.sum(products))
    same = (math.isnan(kind) and math.isnan(k)) or (math.isinf(kind) and k == kind)
    return "explained" if same else "unexplained"


def _judge_loss_mean(k: float, labels, pred, values, weights, relation: str) -> tuple[str, Fraction, float]:
    """Classify a loss metric class's ``result()`` ``k`` (see :func:`check_loss_metrics`)."""
    B = len(pred)
    wts = [1.0] * B if weights is None else [float(x) for x in weights]
    R = _Rounding(np.float32)

    def f32(x: float) -> float:  # Keras casts to the metric's dtype (past its range: ±inf, meant)
        with np.errstate(over="ignore"):
            return float(np.float32(x))

    old = iv.prec
    iv.prec = 200
    try:
        fmax = mpmath.mpf(float(np.finfo(np.float32).max))
        if relation == "sqrt(mean)":
            with np.errstate(over="ignore"):
                y32, p32 = np.asarray(labels, np.float32), np.asarray(pred, np.float32)
            if not (np.all(np.isfinite(y32)) and np.all(np.isfinite(p32))):  # cast past float32's range
                return ("explained" if not math.isfinite(k) else "unexplained"), Fraction(0), 0.0
            with np.errstate(over="ignore", invalid="ignore"):
                sq32 = (p32 - y32) ** 2
                if not np.all(np.isfinite(sq32)):  # a square past the range: inf, and inf·0 = NaN
                    return _nonfinite_total(k, sq32 * np.asarray(wts, np.float32)[:, None]), Fraction(0), 0.0
            C = p32.shape[1]
            rows, exact_rows = [], []
            for i in range(B):
                diffs = (R.sub(iv.mpf(float(p32[i, c])), iv.mpf(float(y32[i, c]))) for c in range(C))
                sq = [_overflow(R.mul(d, d), fmax) for d in diffs]
                rows.append(_overflow(R.div(R.gsum([R.mul(s, iv.mpf(wts[i])) for s in sq]), iv.mpf(C)), fmax))
                exact_rows.append(sum((Fraction(float(p32[i, c])) - Fraction(float(y32[i, c]))) ** 2 for c in range(C)) / C)
            v_exact = exact_rows
        else:
            sign = -1.0 if relation == "-mean" else 1.0
            vals = [f32(sign * v) for v in values]
            if any(not math.isfinite(v) for v in vals):  # inf·w (NaN for w = 0) decides the result's kind
                with np.errstate(invalid="ignore"):
                    products = np.array(vals) * np.array(wts)
                return _nonfinite_total(k, products), Fraction(0), 0.0
            rows = [R.mul(iv.mpf(v), iv.mpf(wi)) for v, wi in zip(vals, wts)]
            v_exact = [Fraction(v) for v in vals]
        den = sum(Fraction(wi) for wi in wts)
        exact = sum(v * Fraction(wi) for v, wi in zip(v_exact, wts)) / den if den else Fraction(0)
        mean = R.div(_overflow(R.gsum(rows), fmax), R.gsum([iv.mpf(wi) for wi in wts]))
        if relation == "sqrt(mean)":
            a, b = _ends(mean)
            mean = R.r(iv.sqrt(iv.mpf([max(a, 0), max(b, 0)])))
            target = mpmath.sqrt(mpmath.mpf(exact.numerator) / exact.denominator)
        else:
            target = mpmath.mpf(exact.numerator) / exact.denominator
        err = ulp_error(k, target, np.float32) if math.isfinite(k) else math.inf
        if math.isfinite(k) and k == float(np.float32(float(target))) and err <= 0.5:
            return "exact", exact, err
        return ("explained" if _within(mean, k, np.float32) else "unexplained"), exact, err
    finally:
        iv.prec = old


def _nearest_float32(x: Fraction) -> float:
    """``x`` rounded to the nearest float32 (ties to even), exactly."""
    f = np.float32(float(x))
    cands = [f, np.nextafter(f, np.float32(-np.inf)), np.nextafter(f, np.float32(np.inf))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - x), int(np.array(c).view(np.int32)) & 1))
    return float(best)


def _judge_mean(k: float, values: np.ndarray, weights) -> tuple[str, Fraction, float]:
    """Classify a metric class's ``result()`` against the exact weighted mean of ``values``
    (per-sample rows of 0/1, averaged over the row as ``reduce_to_samplewise_values`` does).

    Keras in float32: ``m_i = fl(k_i/n)`` (a row of n values), ``total = Σ fl(m_i·w_i)``,
    ``count = Σ w_i`` (``B`` unweighted, exact), ``result = fl(total/count)``.
    """
    B, n = values.shape
    ks = [int(round(float(v.sum()))) for v in values]
    wts = [1.0] * B if weights is None else [float(x) for x in weights]
    num = sum(Fraction(kk, n) * Fraction(wi) for kk, wi in zip(ks, wts))
    den = sum(Fraction(wi) for wi in wts)
    exact = num / den if den else Fraction(0)
    err = ulp_error(k, mpmath.mpf(exact.numerator) / exact.denominator, np.float32)
    if k == _nearest_float32(exact):
        return "exact", exact, err
    R = _Rounding(np.float32)
    old = iv.prec
    iv.prec = 200
    try:
        means = [iv.mpf(kk) if n == 1 else R.div(iv.mpf(kk), iv.mpf(n)) for kk in ks]
        if weights is None:
            total, count = R.gsum(means), iv.mpf(B)
        else:
            total = R.gsum([R.mul(m, iv.mpf(wi)) for m, wi in zip(means, wts)])
            count = R.gsum([iv.mpf(wi) for wi in wts])
        a, b = _ends(count)
        if a <= 0:  # divide_no_nan: 0 where the count is 0
            return ("exact" if k == 0 else "unexplained"), exact, err
        inside = _within(R.div(total, count), k, np.float32)
    finally:
        iv.prec = old
    return ("explained" if inside else "unexplained"), exact, err
