"""``cesym bench``: time every kernel against Keras eager, XLA, tf.nn and the naive NumPy form.

One run times, for each public kernel (the cases of :data:`cesym.verify.registry.CASES` and the accuracy
metrics) and each mode (``value``; ``value+grad`` for the losses), these implementations:

- ``cesym``: :mod:`cesym.kernels` (value+grad: ``<name>_value_and_grad`` when it exists, else
  ``<name>`` then ``<name>_grad``; the table says which);
- ``naive``: :mod:`cesym.kernels.naive` (value, then ``_grad``);
- ``keras``: Keras eager, the ``keras.losses``/``keras.metrics`` function form (for the tf.nn
  kernels the ``tf.nn`` op, for ``activity_penalty`` its TensorFlow expression); value+grad with
  ``tf.GradientTape``;
- ``keras_t``: the same Keras call given ``tf`` tensors made before timing, its outputs left as
  tensors (the framing of a training step: no NumPy conversion on Keras's side);
- ``xla``: the same function (and the same tape) inside ``tf.function(jit_compile=True)``;
- ``tfnn``: for a from_logits Keras loss, the ``tf.nn`` op computing it.

A section of its own, "shapes", times cesym alone on the same number of elements laid out as
rows of 10 (the main table's shape), a 1-D array, a rank-3 array with the classes on axis 1, a
few rows of a vocabulary and one huge row (float32, interleaved; value+grad of the logits and
the probability paths, and the value alone of some): time per element relative to the rows of
10 of the same kernel and mode, and scratch memory relative to y_pred.

Every implementation goes from NumPy inputs to NumPy outputs inside the timed region: TensorFlow
gets the NumPy arrays as a user would pass them (their conversion is timed; for the tape,
``tf.convert_to_tensor`` + ``watch``), and its results are converted with ``.numpy()``. Each
implementation is called once before timing (this first call, XLA's compilation included, is
reported apart). Repeats are interleaved: every repeat runs each implementation once, starting
at a rotating one, so drift of the machine hits all alike; the median is reported.

Peak memory of one call: ``tracemalloc`` for the NumPy implementations (NumPy reports its
buffers to it: exact, outputs included) and, for all, growth of the process's RSS high-water mark
(``VmHWM`` after resetting it through ``/proc/self/clear_refs``; approximate: memory the
allocator reuses is not seen).

TensorFlow is imported on first use only. Timings are measurements, not assertions: nothing here
fails on a slow kernel.
"""

from __future__ import annotations

import datetime
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TextIO

import numpy as np

from .files import raise_if_interrupted
from .keras.calls import BENCH_NOTES
from .verify.registry import CASES, KernelCase

__all__ = ["Bench", "Config", "IMPLS", "benches", "run", "format_text", "format_markdown", "write_atomic"]

#: Implementations, in table order.
IMPLS = ("cesym", "naive", "keras", "keras_t", "xla", "tfnn")
IMPL_TITLES = {"cesym": "cesym", "naive": "naive", "keras": "Keras eager", "keras_t": "Keras eager (tensors)",
               "xla": "XLA", "tfnn": "tf.nn"}
#: Implementations of the sweep (the naive form is left out: it adds minutes and answers nothing
#: about growth that the main table does not).
SWEEP_IMPLS = ("cesym", "keras", "xla")
#: Ratio columns, cesym over each: the target (Keras eager) first.
RATIO_IMPLS = ("keras", "keras_t", "xla", "tfnn", "naive")
#: Modes of the shapes section: value+grad for every kernel of it, then value for some.
SHAPE_MODES = ("value+grad", "value")
#: The layouts of the shapes section, the reference (rows of 10) first.
SHAPES = ("rows", "1-D", "rank 3, axis 1", "vocabulary", "one row")
#: Relative spread (max - min)/median above which a timing is flagged as noisy.
NOISY = 0.25


@dataclass(frozen=True)
class Bench:
    """One kernel in one configuration, with the inputs it takes."""

    kernel: str  # public name in cesym.kernels
    keywords: tuple[tuple[str, Any], ...] = ()
    labels: str = "onehot"  # "binary" (0/1 per element), "onehot", "sparse" (int per row), "real", "none"
    pred: str = "logits"  # "logits", "sigmoid" (probabilities per element), "softmax" (per row), "positive"
    nn_keywords: bool = False  # tf.nn style: labels=, logits=
    metric: bool = False  # value only
    axis: bool = False  # takes axis= (the shapes section moves the class axis)
    case: KernelCase | None = field(default=None, compare=False, repr=False)  # its kernel case (losses)

    @property
    def kw(self) -> dict[str, Any]:
        return dict(self.keywords)

    @property
    def id(self) -> str:
        kw = ",".join(f"{k}={v}" for k, v in self.keywords)
        return f"{self.kernel}[{kw}]" if kw else self.kernel

    @property
    def modes(self) -> tuple[str, ...]:
        return ("value",) if self.metric else ("value", "value+grad")

    @property
    def from_logits_keras(self) -> bool:
        """A Keras loss on logits that a tf.nn op computes too."""
        from .keras.calls import has_tfnn

        return not self.nn_keywords and not self.metric and self.case is not None and has_tfnn(self.case)


def _from_case(c: KernelCase) -> Bench:
    """The bench of a kernel case, its inputs from the declaration: labels by kind, predictions
    by domain (probabilities: a sigmoid's per element, a softmax's per row), parameters at
    their defaults (a required one at the middle of its range, or 1)."""
    labels = {"none": "none", "index": "sparse", "binary": "binary", "distribution": "onehot", "real": "real", "count": "count", "sign": "sign"}[c.label_kind]
    pred = {"unit": "sigmoid", "simplex": "softmax", "positive": "positive", "log1p": "positive"}.get(c.domain, "logits")
    kw = c.call_kw  # a parameter without a default at the middle of its range
    return Bench(c.kernel, tuple(kw.items()), labels, pred, c.nn_keywords, axis=c.has_axis, case=c)


def _ids(keep) -> tuple[str, ...]:
    return tuple(b.id for b in map(_from_case, CASES) if keep(b))


#: Losses of the sweep (value+grad), by bench id: the Keras losses on logits.
SWEEP_IDS = _ids(lambda b: b.from_logits_keras and b.case.keras is not None)
#: Kernels of the shapes section (value+grad, cesym only), by bench id: those whose class axis
#: can move (an ``axis`` keyword), the elementwise ones and the batch reductions.
SHAPE_IDS = _ids(lambda b: b.axis or b.case.reduction in ("element", "batch"))
#: Kernels of the shapes section also timed value alone (a value takes fewer passes over a long
#: row than value+grad, so its ratio is not implied by the fused call's): the row reductions.
SHAPE_VALUE_IDS = _ids(lambda b: b.axis)


METRICS = (
    Bench("binary_accuracy", (), "binary", "sigmoid", metric=True),
    Bench("categorical_accuracy", (), "onehot", "softmax", metric=True),
    Bench("sparse_categorical_accuracy", (), "sparse", "softmax", metric=True),
    Bench("top_k_categorical_accuracy", (("k", 5),), "onehot", "softmax", metric=True),
    Bench("sparse_top_k_categorical_accuracy", (("k", 5),), "sparse", "softmax", metric=True),
)


def benches(only: Iterable[str] | None = None) -> list[Bench]:
    """Every kernel configuration (registry cases, then metrics); ``only`` keeps kernel names or ids."""
    every = [_from_case(c) for c in CASES] + list(METRICS)
    if not only:
        return every
    wanted = set(only)
    unknown = wanted - {b.kernel for b in every} - {b.id for b in every}
    if unknown:
        raise KeyError(f"unknown kernel(s): {', '.join(sorted(unknown))} (known: {', '.join(sorted({b.kernel for b in every}))})")
    return [b for b in every if b.kernel in wanted or b.id in wanted]


# --- inputs ---------------------------------------------------------------------------------------


class Inputs:
    """Seeded inputs of one shape and dtype; derived arrays are made on first use.

    Logits ~ N(0, 3²); probabilities are their sigmoid (binary) or row softmax (categorical),
    computed in float64 and rounded once; hard labels: one integer class per row (sparse), its
    one-hot row (dense, of the prediction's dtype), or 0/1 per element (binary).
    """

    def __init__(self, rows: int, classes: int, dtype: np.dtype, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.dtype = np.dtype(dtype)
        self.shape = (rows, classes)
        # drawn in a fixed order, so that every array is the same whichever benches run
        self._z = rng.standard_normal((rows, classes), dtype=np.float64)
        self._z *= 3.0
        self.sparse = rng.integers(0, classes, rows)  # int64
        self.binary = rng.integers(0, 2, (rows, classes), dtype=np.int8).astype(self.dtype)

    @cached_property
    def logits(self) -> np.ndarray:
        return self._z.astype(self.dtype)

    @cached_property
    def sigmoid(self) -> np.ndarray:
        return (0.5 + 0.5 * np.tanh(0.5 * self._z)).astype(self.dtype)

    @cached_property
    def softmax(self) -> np.ndarray:
        e = np.exp(self._z - self._z.max(axis=-1, keepdims=True))
        e /= e.sum(axis=-1, keepdims=True)
        return e.astype(self.dtype)

    @cached_property
    def real(self) -> np.ndarray:
        """Regression targets: the logits reversed along the batch, so that they differ from them."""
        return self._z[::-1].astype(self.dtype)

    @cached_property
    def count(self) -> np.ndarray:
        """Non-negative targets: the magnitudes of :attr:`real`."""
        return np.abs(self.real)

    @cached_property
    def sign(self) -> np.ndarray:
        """-1/+1 class labels: the signs of :attr:`real`."""
        return np.where(self.real < 0, -1, 1).astype(self.dtype)

    @cached_property
    def positive(self) -> np.ndarray:
        """Positive predictions: e^{z/3}, log-normal about 1."""
        return np.exp(self._z / 3).astype(self.dtype)

    @cached_property
    def onehot(self) -> np.ndarray:
        y = np.zeros(self.shape, dtype=self.dtype)
        y[np.arange(self.shape[0]), self.sparse] = 1
        return y

    def for_bench(self, b: Bench) -> tuple[np.ndarray | None, np.ndarray]:
        """(labels, prediction) of ``b``."""
        labels = None if b.labels == "none" else getattr(self, b.labels)
        return labels, getattr(self, b.pred)


# --- implementations ------------------------------------------------------------------------------

Call = Callable[[], Any]


@dataclass
class Impl:
    """One implementation of one row: the call, or why there is none."""

    call: Call | None = None
    entry: str = ""  # what is called (for the cesym column: which entry point)
    error: str | None = None  # it could not be built or its first call failed


def _numpy_fn(module: Any, b: Bench, suffix: str, labels, pred) -> Call | None:
    fn = getattr(module, b.kernel + suffix, None)
    if fn is None:
        return None
    kw = b.kw
    if b.nn_keywords:
        return lambda: fn(labels=labels, logits=pred, **kw)
    if b.labels == "none":
        return lambda: fn(pred, **kw)
    return lambda: fn(labels, pred, **kw)


def _numpy_impl(module: Any, b: Bench, mode: str, labels, pred, fused: bool) -> Impl | None:
    """A NumPy implementation; value+grad fused when ``fused`` and the module has it."""
    value = _numpy_fn(module, b, "", labels, pred)
    if value is None:
        return None
    if mode == "value":
        return Impl(value, "value")
    both = _numpy_fn(module, b, "_value_and_grad", labels, pred) if fused else None
    if both is not None:
        return Impl(both, "value_and_grad")
    grad = _numpy_fn(module, b, "_grad", labels, pred)
    if grad is None:
        return None
    return Impl(lambda: (value(), grad()), "value, grad")


def _tf():
    from .keras.calls import _tf as tensorflow

    tf = tensorflow()

    # one tf.function per row is meant: its "retracing" warning is noise here
    tf.get_logger().setLevel("ERROR")
    return tf


def _have_tf() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None and importlib.util.find_spec("keras") is not None


def _tf_value_fn(b: Bench, impl: str) -> Callable | None:
    """``f(labels, pred) -> tensor`` of the eager/XLA reference (``impl`` "keras") or the tf.nn
    equivalent of a from_logits Keras loss (``impl`` "tfnn"); None when there is none."""
    _tf()  # TensorFlow imported and quietened before Keras
    import keras

    from .keras.calls import loss_fn, tfnn_fn

    kw = b.kw
    if impl == "tfnn":
        return tfnn_fn(b.case) if b.from_logits_keras else None
    if b.metric:
        fn = getattr(keras.metrics, b.kernel)
        return lambda y, p: fn(y, p, **kw)
    return loss_fn(b.case, {**{n: d for n, d, _ in b.case.params if d is not None}, **kw})


def _tape_fn(value_fn: Callable) -> Callable:
    """``f(labels, pred) -> (value, d(sum value)/d pred)`` with tf.GradientTape."""
    tf = _tf()

    def both(y, p):
        x = tf.convert_to_tensor(p)
        with tf.GradientTape() as tape:
            tape.watch(x)
            v = value_fn(y, x)
            total = tf.reduce_sum(v)
        return v, tape.gradient(total, x)

    return both


def _tf_impl(b: Bench, mode: str, impl: str, labels, pred) -> Impl | None:
    """Keras eager / XLA / tf.nn for one row (NumPy in, NumPy out); ``keras_t``: Keras eager fed
    tensors made before timing, its outputs left as tensors (what a training step does)."""
    tf = _tf()
    value_fn = _tf_value_fn(b, "tfnn" if impl == "tfnn" else "keras")
    if value_fn is None:
        return None
    fn = value_fn if mode == "value" else _tape_fn(value_fn)
    entry = "function form" if mode == "value" else "GradientTape"
    if impl == "keras_t":
        ty = None if labels is None else tf.constant(labels)
        tp = tf.constant(pred)
        return Impl(lambda: fn(ty, tp), entry + ", tensors in and out")
    if impl == "xla":
        fn = tf.function(fn, jit_compile=True)
        entry = "tf.function(jit_compile=True)"
    if mode == "value":
        return Impl(lambda: fn(labels, pred).numpy(), entry)

    def call():
        v, g = fn(labels, pred)
        return v.numpy(), g.numpy()

    return Impl(call, entry)


def implementations(b: Bench, mode: str, inp: Inputs, which: Iterable[str] = IMPLS) -> dict[str, Impl]:
    """The implementations of one row that exist (the others are left out: not applicable)."""
    from cesym import kernels
    from cesym.kernels import naive

    labels, pred = inp.for_bench(b)
    out: dict[str, Impl | None] = {}
    for name in which:
        try:
            if name == "cesym":
                out[name] = _numpy_impl(kernels, b, mode, labels, pred, fused=True)
            elif name == "naive":
                out[name] = _numpy_impl(naive, b, mode, labels, pred, fused=False)
            elif not _have_tf():
                out[name] = Impl(error="TensorFlow/Keras not installed")
            else:
                out[name] = _tf_impl(b, mode, name, labels, pred)
        except Exception as e:  # noqa: BLE001 - a missing or broken implementation is reported, not fatal
            out[name] = Impl(error=_one_line(e))
    return {k: v for k, v in out.items() if v is not None}


def _one_line(e: BaseException, limit: int = 160) -> str:
    """The error's type and message on one line; for a traced TensorFlow function, which
    prefixes the user-code traceback, the message's last line (the error itself)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    msg = lines[-1] if lines and lines[0].startswith("in user code") else " ".join(lines)
    name = type(e).__name__
    s = msg if msg.startswith(name + ":") else f"{name}: {msg}"  # traced errors repeat their type
    return s if len(s) <= limit else s[: limit - 1] + "…"


# --- measuring --------------------------------------------------------------------------------------


def _first_calls(impls: dict[str, Impl]) -> dict[str, float]:
    """Call each implementation once (warm-up; XLA compiles here); failures become errors."""
    first: dict[str, float] = {}
    for name, im in impls.items():
        if im.call is None:
            continue
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(action="ignore"):
                im.call()
        except Exception as e:  # noqa: BLE001 - e.g. TensorFlow's InTopKV2 has no float64 kernel
            im.error, im.call = _one_line(e), None
            continue
        first[name] = time.perf_counter() - t0
    return first


def time_interleaved(calls: dict[str, Call], repeats: int) -> dict[str, list[float]]:
    """Seconds per call, ``repeats`` rounds; each round calls every implementation once,
    starting at a rotating one (no implementation always runs first, after the same one)."""
    names = list(calls)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        gc.collect()
        s = r % len(names) if names else 0
        for name in names[s:] + names[:s]:
            fn = calls[name]
            with warnings.catch_warnings(action="ignore"):
                t0 = time.perf_counter()
                out = fn()
                t1 = time.perf_counter()
            del out  # freed outside the timed region: a user keeps the results
            samples[name].append(t1 - t0)
    return samples


def _nbytes(out: Any) -> int:
    """Bytes of the arrays a call returned (an array or a tuple of them)."""
    if isinstance(out, (tuple, list)):
        return sum(_nbytes(o) for o in out)
    return int(getattr(out, "nbytes", 0))


def tracemalloc_peak(fn: Call) -> tuple[int, int]:
    """(peak bytes NumPy and Python allocate during one call of ``fn``, outputs included;
    bytes of the outputs)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return max(peak - base, 0), _nbytes(out)


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux: "5" to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_peak(fn: Call) -> int | None:
    """Growth of the RSS high-water mark over one call of ``fn`` in bytes; None where the
    high-water mark cannot be reset. A lower bound: memory the allocator reuses is not seen."""
    gc.collect()
    if not _reset_hwm():
        return None
    before = _status_kb("VmRSS")
    out = fn()
    hwm = _status_kb("VmHWM")
    del out
    if before is None or hwm is None:
        return None
    return max(hwm - before, 0) * 1024


def _stats(samples: list[float]) -> dict[str, Any]:
    med = statistics.median(samples)
    return {
        "samples_s": samples,
        "median_s": med,
        "min_s": min(samples),
        "spread": (max(samples) - min(samples)) / med if med > 0 else 0.0,
    }


def _ratios(times: dict[str, dict]) -> dict[str, dict[str, float | None]]:
    """cesym's median over each other implementation's, and the median of per-round ratios."""
    out: dict[str, dict[str, float | None]] = {}
    c = times.get("cesym")
    for name in RATIO_IMPLS:
        o = times.get(name)
        if not c or not o or o["median_s"] <= 0:
            continue
        paired = [a / b for a, b in zip(c["samples_s"], o["samples_s"]) if b > 0]
        out[name] = {
            "of_medians": c["median_s"] / o["median_s"],
            "paired_median": statistics.median(paired) if paired else None,
        }
    return out


def measure_row(b: Bench, mode: str, inp: Inputs, repeats: int, which: Iterable[str] = IMPLS, memory: bool = True) -> dict:
    """Time one kernel × mode on ``inp`` (and measure its peak memory); every figure, JSON-able."""
    impls = implementations(b, mode, inp, which)
    first = _first_calls(impls)
    calls = {n: im.call for n, im in impls.items() if im.call is not None}
    samples = time_interleaved(calls, repeats)
    times = {n: _stats(s) | {"first_call_s": first[n]} for n, s in samples.items()}
    _, pred = inp.for_bench(b)
    row = {
        "id": b.id,
        "kernel": b.kernel,
        "keywords": b.kw,
        "mode": mode,
        "metric": b.metric,
        "entries": {n: im.entry for n, im in impls.items()},
        "errors": {n: im.error for n, im in impls.items() if im.error},
        "times": times,
        "ratios": _ratios(times),
        "input_bytes": int(pred.nbytes),
    }
    if memory:
        row["memory"] = _memory(calls, pred.nbytes)
    return row


def _memory(calls: dict[str, Call], input_bytes: int) -> dict[str, dict]:
    mem: dict[str, dict] = {}
    for name, fn in calls.items():
        m: dict[str, Any] = {}
        if name in ("cesym", "naive"):  # tracemalloc sees NumPy's buffers, not TensorFlow's allocator
            peak, outputs = tracemalloc_peak(fn)
            # the target counts scratch memory: value+grad must return a gradient of y_pred's size
            m |= {"tracemalloc_bytes": peak, "tracemalloc_ratio": peak / input_bytes, "output_bytes": outputs,
                  "scratch_bytes": max(peak - outputs, 0), "scratch_ratio": max(peak - outputs, 0) / input_bytes}
        r = rss_peak(fn)
        m["rss_bytes"] = r
        m["rss_ratio"] = None if r is None else r / input_bytes
        mem[name] = m
    return mem


# --- shapes ---------------------------------------------------------------------------------------


def shape_inputs(b: Bench, shape: str, inp: "Inputs") -> tuple[Any, np.ndarray, dict, tuple[int, ...]]:
    """(labels, prediction, extra keywords, shape) of ``b`` on ``inp``'s B×10 elements laid out as
    ``shape`` (one of :data:`SHAPES`): the B×10 rows; one 1-D array; (B/64, 10, 64) with the
    classes on axis 1 (C-contiguous, channels first); 10 rows of B classes; 1 row of 10·B."""
    B, C = inp.shape
    labels, pred = inp.for_bench(b)
    E = B * C
    kw: dict = {}
    if shape == "rows":
        return labels, pred, kw, pred.shape
    if shape == "rank 3, axis 1":
        if B % 64:
            raise ValueError(f"rank 3 needs a batch divisible by 64, got {B}")
        to3 = lambda a: np.ascontiguousarray(a.reshape(B // 64, 64, C).swapaxes(1, 2))  # noqa: E731
        if b.axis:
            kw = {"axis": 1}
        lab = None if labels is None else (labels.reshape(B // 64, 64) if b.labels == "sparse" else to3(labels))
        return lab, to3(pred), kw, (B // 64, C, 64)
    dims = {"1-D": (E,), "vocabulary": (C, B), "one row": (1, E)}[shape]
    p = pred.reshape(dims)
    if labels is None:
        return None, p, kw, dims
    if b.labels == "sparse":  # one class index per row of the new layout
        lead = dims[:-1]
        return inp.sparse[: int(np.prod(lead, dtype=np.int64))].reshape(lead), p, kw, dims
    if b.labels == "onehot":  # one-hot rows of the new layout
        y = np.zeros(dims, dtype=pred.dtype).reshape(-1, dims[-1])
        y[np.arange(y.shape[0]), inp.sparse[: y.shape[0]]] = 1
        return y.reshape(dims), p, kw, dims
    return labels.reshape(dims), p, kw, dims


def shape_benches(only: Iterable[str] | None = None) -> list[Bench]:
    """The kernels of the shapes section (restricted by ``only`` as :func:`benches` is)."""
    return [b for b in benches(only) if b.id in SHAPE_IDS]


def shape_runs(only: Iterable[str] | None = None) -> list[tuple[Bench, str]]:
    """(kernel, mode) of the shapes section: every kernel's value+grad, then the values of
    :data:`SHAPE_VALUE_IDS`."""
    chosen = shape_benches(only)
    return [(b, "value+grad") for b in chosen] + [(b, "value") for b in chosen if b.id in SHAPE_VALUE_IDS]


def measure_shapes(b: Bench, inp: "Inputs", repeats: int, mode: str = "value+grad") -> list[dict]:
    """cesym's ``mode`` (value+grad or value) of ``b`` on every layout of :data:`SHAPES`, timed
    interleaved; scratch memory."""
    from cesym import kernels

    if mode not in SHAPE_MODES:
        raise ValueError(f"mode: expected one of {', '.join(SHAPE_MODES)}, got {mode!r}")
    calls, meta = {}, {}
    for shape in SHAPES:
        labels, pred, kw, dims = shape_inputs(b, shape, inp)
        bb = Bench(b.kernel, tuple(dict(b.keywords, **kw).items()), b.labels, b.pred, b.nn_keywords, axis=b.axis, case=b.case)
        calls[shape] = _numpy_fn(kernels, bb, "_value_and_grad" if mode == "value+grad" else "", labels, pred)
        meta[shape] = (dims, kw.get("axis", -1), int(pred.nbytes), int(pred.size))
    for fn in calls.values():
        fn()  # warm-up
    samples = time_interleaved(calls, repeats)
    base = statistics.median(samples["rows"]) / meta["rows"][3]
    out = []
    for shape in SHAPES:
        dims, axis, nbytes, size = meta[shape]
        st = _stats(samples[shape])
        peak, outputs = tracemalloc_peak(calls[shape])
        scratch = max(peak - outputs, 0)
        out.append({
            "id": b.id, "mode": mode, "shape": shape, "dims": list(dims), "axis": axis, "times": {"cesym": st},
            "ns_per_element": st["median_s"] * 1e9 / size, "vs_rows": st["median_s"] / size / base,
            "input_bytes": nbytes, "memory": {"scratch_bytes": scratch, "scratch_ratio": scratch / nbytes},
        })
    return out


def shapes_table(s: dict) -> tuple[list[str], list[list[str]]]:
    head = ["kernel", "mode", "shape", "dims", "axis", "cesym ms", "ns/elem", "× rows of 10", "scratch MB (× y_pred)"]
    rows = []
    for r in s["results"]:
        m = r["memory"]
        rows.append([r["id"], r.get("mode", "value+grad"), r["shape"], "×".join(map(str, r["dims"])), str(r["axis"]), _ms(r["times"]["cesym"]),
                     f"{r['ns_per_element']:.3g}", f"{r['vs_rows']:.2f}",
                     f"{_mb(m['scratch_bytes'])} ({m['scratch_ratio']:.2f}×)"])
    return head, rows


def shapes_summary(s: dict) -> str:
    rs = [r for r in s["results"] if r["shape"] != "rows"]
    t = sum(r["vs_rows"] <= 1.5 for r in rs)
    m = sum(r["memory"]["scratch_ratio"] <= 1.0 for r in s["results"])
    return (f"shapes ({s['dtype']}, {s['elements']} elements): time per element within 1.5× of rows of 10 in "
            f"{t} of {len(rs)}; scratch memory ≤ 1× y_pred in {m} of {len(s['results'])}")


# --- the run ----------------------------------------------------------------------------------------


@dataclass
class Config:
    """What one ``cesym bench`` run measures."""

    rows: int = 2**20
    classes: int = 10
    repeats: int = 7
    dtypes: tuple[str, ...] = ("float32", "float64")
    only: tuple[str, ...] = ()
    seed: int = 2026
    sweep: bool = True
    sweep_batches: tuple[int, ...] = tuple(2**k for k in range(10, 23, 2))
    sweep_classes: tuple[int, ...] = (2, 10, 1000)
    sweep_repeats: int = 3
    sweep_max_elements: int = 2**26
    sweep_dtype: str = "float32"
    tables: bool = True  # the main tables (and the sweep); False: the shapes section alone
    shapes: bool = True
    shapes_rows: int = 2**20  # the shapes hold shapes_rows x 10 elements
    shapes_repeats: int = 5
    quick: bool = False

    @classmethod
    def quick_config(cls, **over: Any) -> "Config":
        """Tiny shapes, 2 repeats (1 in the sweep): seconds, for tests; the cap skips one shape."""
        base = dict(rows=256, classes=10, repeats=2, sweep_batches=(16, 64), sweep_classes=(2, 10),
                    sweep_repeats=1, sweep_max_elements=512, shapes_rows=2**15, shapes_repeats=1, quick=True)
        base.update({k: v for k, v in over.items() if v is not None})
        return cls(**base)


class Progress:
    """One line per step on ``stream``, with the elapsed time."""

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total, self.done, self.stream, self.t0 = total, 0, stream, time.perf_counter()

    def step(self, what: str) -> None:
        # a Ctrl-C the command noted stops the bench here, one Python dropped too (handled in a
        # weakref callback or an at-fork hook, printed as "Exception ignored": the bench went on)
        raise_if_interrupted()
        self.done += 1
        if self.stream is not None:
            print(f"cesym bench [{self.done:>3}/{self.total}] {time.perf_counter() - self.t0:7.1f}s  {what}", file=self.stream, flush=True)


def sweep_shapes(cfg: Config) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(shapes measured, shapes skipped because N·C exceeds the cap)."""
    keep, skip = [], []
    for c in cfg.sweep_classes:
        for n in cfg.sweep_batches:
            (keep if n * c <= cfg.sweep_max_elements else skip).append((n, c))
    return keep, skip


def run(cfg: Config, progress: TextIO | None = sys.stderr) -> dict:
    """Measure everything ``cfg`` asks for; the result holds every figure (see :func:`format_text`)."""
    t_start = time.perf_counter()
    machine = machine_info()  # imports TensorFlow, if installed, before anything is timed
    # TensorFlow's import leaves ~10^6 objects: a full gc.collect() would take 0.2 s each time
    # (before every round and memory probe); frozen, the collector only sees our garbage
    gc.collect()
    gc.freeze()
    try:
        return _run(cfg, progress, machine, t_start)
    finally:
        gc.unfreeze()


def _run(cfg: Config, progress: TextIO | None, machine: dict, t_start: float) -> dict:
    chosen = benches(cfg.only) if cfg.tables else []
    sweep_benches = [b for b in chosen if b.id in SWEEP_IDS] if cfg.sweep else []
    shaped = shape_runs(cfg.only) if cfg.shapes else []
    keep, skip = sweep_shapes(cfg)
    rows_per_dtype = sum(len(b.modes) for b in chosen)
    prog = Progress(rows_per_dtype * len(cfg.dtypes) + len(sweep_benches) * len(keep) + len(shaped), progress)
    tables = []
    for dt in cfg.dtypes if cfg.tables else ():
        inp = Inputs(cfg.rows, cfg.classes, np.dtype(dt), cfg.seed)
        results = []
        for b in chosen:
            for mode in b.modes:
                prog.step(f"{dt} {cfg.rows}x{cfg.classes} {b.id} {mode}")
                results.append(measure_row(b, mode, inp, cfg.repeats))
        del inp
        tables.append({"dtype": dt, "rows": cfg.rows, "classes": cfg.classes, "repeats": cfg.repeats, "results": results})
    sweep = None
    if sweep_benches:
        sweep = {"dtype": cfg.sweep_dtype, "mode": "value+grad", "repeats": cfg.sweep_repeats, "impls": list(SWEEP_IMPLS),
                 "max_elements": cfg.sweep_max_elements, "skipped": [list(s) for s in skip], "results": []}
        for n, c in keep:
            inp = Inputs(n, c, np.dtype(cfg.sweep_dtype), cfg.seed)
            for b in sweep_benches:
                prog.step(f"sweep {cfg.sweep_dtype} {n}x{c} {b.id} value+grad")
                r = measure_row(b, "value+grad", inp, cfg.sweep_repeats, SWEEP_IMPLS, memory=False)
                sweep["results"].append(r | {"rows": n, "classes": c})
            del inp
    shapes = None
    if shaped:
        inp = Inputs(cfg.shapes_rows, 10, np.dtype("float32"), cfg.seed)
        shapes = {"dtype": "float32", "mode": "value+grad; value", "rows": cfg.shapes_rows, "elements": cfg.shapes_rows * 10,
                  "repeats": cfg.shapes_repeats, "results": []}
        for b, mode in shaped:
            prog.step(f"shapes float32 {cfg.shapes_rows * 10} elements {b.id} {mode}")
            shapes["results"] += measure_shapes(b, inp, cfg.shapes_repeats, mode)
        del inp
    return {
        "machine": machine,
        "config": {k: v for k, v in cfg.__dict__.items()},
        "notes": NOTES,
        "tables": tables,
        "sweep": sweep,
        "shapes": shapes,
        "summary": summary(tables),
        "elapsed_s": time.perf_counter() - t_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def machine_info() -> dict[str, Any]:
    """CPU, cores, versions, date: what the figures depend on."""
    cpu, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "unknown":
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "simd": [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f") if f in flags],
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        # other processes competing for the cores make every figure noisier
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(unset: TensorFlow's default)"),
    }
    if _have_tf():
        tf = _tf()
        import keras

        info["tensorflow"] = tf.__version__
        info["keras"] = keras.__version__
        info["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads() or "default (all cores)"
    return info


NOTES = [
    "value: the per-sample loss (metrics: per-sample accuracy). value+grad: the loss and d(sum of the values)/d(y_pred).",
    "cesym value+grad calls `<name>_value_and_grad` when cesym.kernels has it, else `<name>` then `<name>_grad` (column 'cesym entry'); naive calls value then grad.",
    BENCH_NOTES[0],
    "XLA: the same function, or the same tape, inside tf.function(jit_compile=True); compiled by a first call before timing (compile time excluded; in the JSON as first_call_s).",
    BENCH_NOTES[1],
    "Timed region: NumPy inputs to NumPy outputs. TensorFlow gets the NumPy arrays (conversion timed) and its results go through .numpy() (timed). "
    "Keras eager (tensors): the same Keras call given tf tensors made before timing, its outputs left as tensors (what a training step feeds it and keeps); cesym has no such shortcut (NumPy in, NumPy out).",
    "Interleaved: each repeat calls every implementation once, round robin from a rotating start, after one untimed warm-up call each; medians of the repeats. Ratios: cesym median / other median (< 1: cesym faster).",
    "Threads: TensorFlow runs ops on its intra-op pool (all cores); cesym's kernels run blocks of rows on cesym.kernels.num_threads() threads (the usable cores); the naive form goes through the same blocked driver; NumPy's ufuncs themselves are single-threaded.",
    "Inputs: seed 2026 (default), logits ~ N(0, 3^2); probabilities: sigmoid (binary) or softmax (categorical) of the logits, in float64 rounded once; hard labels: one-hot rows of y_pred's dtype, int64 class indices, 0/1 per element for binary.",
    "Shapes: cesym value+grad, float32, the same elements as rows of 10, as one 1-D array, as (B/64, 10, 64) with axis=1 (C-contiguous; elementwise kernels: no axis), as 10 rows of B classes and as 1 row; interleaved; time per element over that of the rows of 10; scratch memory by tracemalloc.",
    "Memory of one call, relative to y_pred's size: peak by tracemalloc (NumPy implementations only: NumPy reports its buffers to it; exact; outputs included), scratch = that peak minus the returned arrays (the target: ≤ 1× y_pred), and RSS high-water growth (all implementations: VmHWM after resetting it with /proc/self/clear_refs; approximate, a lower bound when the allocator reuses freed memory, which hides small figures).",
]


def summary(tables: list[dict]) -> list[dict]:
    """Per dtype: how many rows meet the targets (informational; never the exit status)."""
    out = []
    for t in tables:
        rs = t["results"]

        def count(impl: str, limit: float) -> tuple[int, int]:
            vals = [r["ratios"][impl]["of_medians"] for r in rs if impl in r["ratios"]]
            return sum(v <= limit for v in vals), len(vals)

        mem = [r["memory"]["cesym"]["scratch_ratio"] for r in rs if "scratch_ratio" in r.get("memory", {}).get("cesym", {})]
        out.append({
            "dtype": t["dtype"], "shape": [t["rows"], t["classes"]],
            "cesym_le_keras": count("keras", 1.0), "cesym_within_1_5_xla": count("xla", 1.5),
            "cesym_peak_le_input": (sum(m <= 1.0 for m in mem), len(mem)),
        })
    return out


# --- output -------------------------------------------------------------------------------------------


def _ms(t: dict | None) -> str:
    if not t:
        return "—"
    v = t["median_s"] * 1e3
    s = f"{v:.3g}" if v < 1000 else f"{v:.0f}"
    return s + ("~" if t["spread"] > NOISY else "")


def _ratio(r: dict, impl: str) -> str:
    x = r["ratios"].get(impl)
    return f"{x['of_medians']:.2f}" if x else "—"


def _cell(r: dict, impl: str) -> str:
    if impl in r["errors"]:
        return "err"
    return _ms(r["times"].get(impl))


def _mb(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:.1f}"


def _mem_cell(m: dict | None, key: str) -> str:
    if not m or m.get(key + "_bytes") is None:
        return "—"
    return f"{_mb(m[key + '_bytes'])} ({m[key + '_ratio']:.2f}×)"


def main_table(t: dict) -> tuple[list[str], list[list[str]]]:
    head = ["kernel", "mode", "cesym entry"] + [IMPL_TITLES[i] + " ms" for i in IMPLS] + [
        "cesym/" + IMPL_TITLES[i] for i in RATIO_IMPLS]
    rows = [[r["id"], r["mode"], r["entries"].get("cesym", "—")] + [_cell(r, i) for i in IMPLS]
            + [_ratio(r, i) for i in RATIO_IMPLS] for r in t["results"]]
    return head, rows


def memory_table(t: dict) -> tuple[list[str], list[list[str]]]:
    head = ["kernel", "mode", "y_pred MB", "cesym peak", "cesym scratch", "naive peak", "naive scratch"] + [
        IMPL_TITLES[i] + " RSS" for i in IMPLS]
    rows = []
    for r in t["results"]:
        m = r.get("memory", {})
        rows.append([r["id"], r["mode"], _mb(r["input_bytes"])]
                    + [_mem_cell(m.get(i), k) for i in ("cesym", "naive") for k in ("tracemalloc", "scratch")]
                    + [_mem_cell(m.get(i), "rss") for i in IMPLS])
    return head, rows


def sweep_table(s: dict) -> tuple[list[str], list[list[str]]]:
    impls = s["impls"]
    head = ["kernel", "N", "C", "N·C"] + [IMPL_TITLES[i] + " ms" for i in impls] + [
        IMPL_TITLES[i] + " ns/elem" for i in impls] + ["cesym/" + IMPL_TITLES[i] for i in impls[1:]]
    rows = []
    for r in sorted(s["results"], key=lambda r: (SWEEP_IDS.index(r["id"]), r["classes"], r["rows"])):
        el = r["rows"] * r["classes"]
        per = [f"{r['times'][i]['median_s'] * 1e9 / el:.3g}" if i in r["times"] else "—" for i in impls]
        rows.append([r["id"], str(r["rows"]), str(r["classes"]), str(el)] + [_cell(r, i) for i in impls] + per
                    + [_ratio(r, i) for i in impls[1:]])
    return head, rows


def _elements(n: int) -> str:
    """``2^26 = 67108864`` for a power of two, else the number."""
    return f"2^{n.bit_length() - 1} = {n}" if n > 0 and n & (n - 1) == 0 else str(n)


def _text(head: list[str], rows: list[list[str]]) -> str:
    w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(cells)).rstrip()
    return "\n".join([fmt(head), fmt(["-" * x for x in w])] + [fmt(r) for r in rows])


def _md(head: list[str], rows: list[list[str]]) -> str:
    esc = lambda c: c.replace("|", "\\|")
    line = lambda cells: "| " + " | ".join(esc(c) for c in cells) + " |"
    align = "|" + "|".join(":---" if i < 2 else "---:" for i in range(len(head))) + "|"
    return "\n".join([line(head), align] + [line(r) for r in rows])


def _errors(res: dict) -> list[str]:
    seen: dict[str, list[str]] = {}
    for t in res["tables"]:
        for r in t["results"]:
            for impl, e in r["errors"].items():
                seen.setdefault(f"{IMPL_TITLES[impl]}: {e}", []).append(f"{t['dtype']} {r['id']} {r['mode']}")
    return [f"{k} ({'; '.join(v)})" for k, v in seen.items()]


def _summary_lines(res: dict) -> list[str]:
    out = [shapes_summary(res["shapes"])] if res.get("shapes") else []
    for s in res["summary"]:
        a, b = s["cesym_le_keras"]
        c, d = s["cesym_within_1_5_xla"]
        e, f = s["cesym_peak_le_input"]
        out.append(f"{s['dtype']} {s['shape'][0]}×{s['shape'][1]}: cesym ≤ Keras eager in {a} of {b} rows; "
                   f"≤ 1.5× XLA in {c} of {d}; scratch memory (tracemalloc peak − outputs) ≤ 1× y_pred in {e} of {f}")
    return out


def _sections(res: dict, render: Callable, heading: Callable[[str], str]) -> list[str]:
    parts = []
    for t in res["tables"]:
        mb = t["rows"] * t["classes"] * np.dtype(t["dtype"]).itemsize / 2**20
        parts += [heading(f"{t['dtype']}, {t['rows']} × {t['classes']} (y_pred {mb:.0f} MB): median ms of "
                          f"{t['repeats']} interleaved runs, ratios cesym/other"), render(*main_table(t)),
                  heading(f"{t['dtype']}: memory of one call, MB (× y_pred): peak and scratch (peak − outputs) by tracemalloc, RSS high-water growth"), render(*memory_table(t))]
    s = res["sweep"]
    if s:
        skipped = ", ".join(f"{n}×{c}" for n, c in s["skipped"]) or "none"
        parts += [heading(f"Sweep, {s['dtype']} {s['mode']}: median ms of {s['repeats']} interleaved runs"),
                  render(*sweep_table(s)),
                  f"Skipped (N·C above {_elements(s['max_elements'])} elements, to bound memory and time): {skipped}."]
    sh = res.get("shapes")
    if sh:
        parts += [heading(f"Shapes, {sh['dtype']} {sh['mode']}, {sh['elements']} elements each: median ms of "
                          f"{sh['repeats']} interleaved runs, cesym alone"), render(*shapes_table(sh))]
    return parts


def format_text(res: dict) -> str:
    """The plain-text tables."""
    parts = _sections(res, _text, lambda s: "\n" + s)
    tail = ["", "~ marks a median whose runs spread more than "
            f"{NOISY:.0%} ((max-min)/median); — not applicable; err: see below."] + _summary_lines(res)
    tail += ["error: " + e for e in _errors(res)]
    tail.append(f"cesym bench: {res['elapsed_s']:.0f} s")
    return "\n".join(parts + tail).lstrip("\n") + "\n"


def format_markdown(res: dict) -> str:
    """The same tables in Markdown, with the machine and the method, for the README."""
    m = res["machine"]
    info = [f"{m['cpu']} ({m['usable_cores']} of {m['cores']} cores usable; {', '.join(m['simd'])}), "
            f"Python {m['python']}, NumPy {m['numpy']}, TensorFlow {m.get('tensorflow', 'n/a')}, "
            f"Keras {m.get('keras', 'n/a')}, TF_ENABLE_ONEDNN_OPTS {m['TF_ENABLE_ONEDNN_OPTS']}; {m['date']}; "
            f"the whole run took {res['elapsed_s']:.0f} s (load average {m['load_average_at_start']} at the start, "
            f"{res['load_average_at_end']} at the end)."]
    parts = ["## Benchmark (`cesym bench`)", "\n".join(info), "\n".join("- " + n for n in res["notes"])]
    parts += _sections(res, _md, lambda s: "### " + s)
    parts.append("\n".join(
        ["`~` marks a median whose runs spread more than "
         f"{NOISY:.0%} ((max − min)/median); — not applicable; err: the implementation failed (below)."]
        + ["- " + s for s in _summary_lines(res)] + ["- error: " + e for e in _errors(res)]))
    return "\n\n".join(parts) + "\n"


def _finite(x: Any) -> Any:
    """JSON without NaN/inf: non-finite floats become null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def to_json(res: dict) -> str:
    return json.dumps(_finite(res), indent=1, sort_keys=True, allow_nan=False) + "\n"


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`cesym.files.write_text`: the umask's mode, a
    read-only target or a missing directory refused)."""
    from .files import write_text

    write_text(path, text)
