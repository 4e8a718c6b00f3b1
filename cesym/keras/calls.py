"""Keras and tf.nn as kernels: the same calling convention as :meth:`KernelCase.call`.

``keras_kernel(case)`` returns ``call(labels, pred, params, grad=False)`` that runs the Keras 3
function form of the same name (``keras.losses.<name>``) or the ``tf.nn`` op, on plain tensors
of the input's dtype (function forms keep float32/float64; called on plain tensors, Keras's hidden
``_keras_logits`` shortcut cannot apply), and for ``grad`` the gradient of the sum of the returned
values with ``tf.GradientTape`` (``grad="both"``: values and gradient from one tape). TensorFlow is imported on first use, never by
:mod:`cesym.kernels`.

``keras_class_kernel(case)`` does the same for the loss class (``keras.losses.BinaryCrossentropy``
…) with a reduction, sample weights and the class's dtype; ``keras_metric(name)`` returns the
metric's function form and class.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator

import numpy as np

from ..verify.registry import KernelCase

__all__ = ["keras_kernel", "keras_class_kernel", "keras_metric", "loss_fn", "tfnn_fn", "BENCH_NOTES", "loss_class", "METRIC_CLASSES", "versions"]


@contextlib.contextmanager
def _without_pyplot() -> Iterator[None]:
    """Keras's import tries ``matplotlib.pyplot`` for its image-gallery plots
    (``keras.src.visualization``): 0.8 s of TensorFlow's 4.5 s import on a 2-core EPYC, paid by
    every ``cesym`` process that runs Keras (each verify worker, each report), for plots cesym
    never draws. Where :data:`cesym.keras.HIDE_PYPLOT` is set and pyplot is not imported yet, it is hidden
    while Keras imports (``sys.modules`` entry None: the import fails at once, without importing
    matplotlib, and Keras leaves those plots without it); afterwards the process imports pyplot
    as usual (the reports' figures do)."""
    from . import HIDE_PYPLOT

    if not HIDE_PYPLOT or "matplotlib.pyplot" in sys.modules or "keras" in sys.modules:
        yield
        return
    sys.modules["matplotlib.pyplot"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if "matplotlib.pyplot" in sys.modules and sys.modules["matplotlib.pyplot"] is None:
            del sys.modules["matplotlib.pyplot"]


def _tf():
    """TensorFlow, imported (with Keras) and quietened on first use."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _without_pyplot():
        import tensorflow as tf

        import keras  # noqa: F401 - imported here, where pyplot may be hidden

    return tf


def versions() -> dict[str, str]:
    """Versions of TensorFlow and Keras that the calls use: the modules' own where this process
    imported them, else the installed distributions' (a parent whose workers ran Keras need not
    pay TensorFlow's import, seconds, for two strings), else imported."""
    import sys
    from importlib import metadata

    out = {}
    for name, dists in (("tensorflow", ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos")), ("keras", ("keras",))):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__version__", None):
            out[name] = mod.__version__
            continue
        for d in dists:
            try:
                out[name] = metadata.version(d)
                break
            except metadata.PackageNotFoundError:
                continue
    if len(out) < 2:
        tf = _tf()
        import keras

        out = {"tensorflow": tf.__version__, "keras": keras.__version__}
    return out


def _declared(case: KernelCase, what: str, prefix: str) -> str | None:
    """The declared Keras counterpart's ``what`` (``"function"``, ``"loss_class"``) if it is
    under ``prefix`` (``"keras.losses."``), as the name there."""
    name = (case.keras or {}).get(what)
    return name[len(prefix):] if name and name.startswith(prefix) else None


def _loss_fn(case: KernelCase, params: dict) -> Callable:
    """The declared counterpart: ``keras.losses.<f>(y, p, **kw)`` or ``tf.nn.<f>(labels=, logits=)``;
    seed 003's penalty as the TensorFlow expression the post writes."""
    tf = _tf()
    import keras

    kw = dict(case.keywords)
    kw.update((case.keras or {}).get("keywords", {}))
    kw.update(params)
    if case.kernel == "activity_penalty":
        lam = kw["lam"]
        return lambda _, h: lam * tf.reduce_mean(tf.reduce_sum(tf.square(h), axis=list(range(1, len(h.shape)))))
    name = _declared(case, "function", "keras.losses.")
    if name is not None:
        fn = getattr(keras.losses, name)
        return lambda y, p: fn(y, p, **kw)
    name = _declared(case, "function", "tf.nn.")
    if name is not None:
        fn = getattr(tf.nn, name)
        return lambda y, p: fn(labels=y, logits=p, **kw)
    raise KeyError(f"{case.kernel}: no Keras function form declared")


def loss_fn(case: KernelCase, params: dict) -> Callable:
    """``f(labels, pred) -> tensor``: the Keras function form (or ``tf.nn`` op, or TensorFlow
    expression) of ``case`` with its keywords and ``params``."""
    return _loss_fn(case, params)


#: The Keras losses whose from_logits form a tf.nn op computes (tfnn_fn).
_TFNN = ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy")


def has_tfnn(case: KernelCase) -> bool:
    """A from_logits Keras loss that a ``tf.nn`` op computes (without importing TensorFlow)."""
    return not case.keyword_only and case.keywords.get("from_logits") is True and case.kernel in _TFNN


def tfnn_fn(case: KernelCase) -> Callable | None:
    """The ``tf.nn`` op equal to a from_logits Keras loss, ``f(labels, logits)``, or None."""
    tf = _tf()
    if not has_tfnn(case):
        return None
    if case.kernel == "binary_crossentropy":
        return lambda y, x: tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=x), axis=-1)
    if case.kernel == "categorical_crossentropy":
        return lambda y, x: tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=x)
    if case.kernel == "sparse_categorical_crossentropy":
        return lambda y, x: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=x)
    return None


#: What the bench's Keras and tf.nn columns call, in words.
BENCH_NOTES = (
    "Keras eager: the keras.losses / keras.metrics function form (tf.nn kernels: the tf.nn op; activity_penalty: "
    "lam*reduce_mean(reduce_sum(square(h), axis=1))); value+grad with tf.GradientTape over y_pred (tf.convert_to_tensor + watch).",
    "tf.nn: the tf.nn op equal to a from_logits Keras loss (BCE: mean over the last axis of "
    "sigmoid_cross_entropy_with_logits; CCE: softmax_cross_entropy_with_logits; SCCE: "
    "sparse_softmax_cross_entropy_with_logits), eager.",
)


def keras_kernel(case: KernelCase) -> Callable:
    """A callable ``(labels, pred, params, grad=False)`` running Keras/TF for ``case``: the
    values, the gradient of their sum (``grad=True``), or both from one tape (``grad="both"``:
    one forward pass, the same numbers as the two calls)."""

    def call(labels, pred, params: dict, grad: bool | str = False):
        tf = _tf()
        pred = np.asarray(pred)
        fn = _loss_fn(case, params)
        if labels is None:
            y = None
        elif case.labels == "sparse":
            y = tf.constant(np.asarray(labels))
        else:
            y = tf.constant(np.asarray(labels, dtype=pred.dtype))
        x = tf.constant(pred)  # watched, not a Variable: a millisecond less per call, the same numbers
        with tf.GradientTape() as tape, warnings.catch_warnings(action="ignore"):  # one-class rows are meant
            tape.watch(x)
            v = fn(y, x)
            total = tf.reduce_sum(v)
        value = np.asarray(v.numpy(), dtype=pred.dtype)
        if grad:
            g = np.asarray(tape.gradient(total, x).numpy(), dtype=pred.dtype)
            return (value, g) if grad == "both" else g
        return value

    return call


def _fed_in_chunks(m, labels, pred, sample_weight, chunks: int) -> np.ndarray:
    """``m.result()`` after ``update_state`` on ``chunks`` consecutive slices of the batch (the
    metric's running total and count accumulate across them)."""
    B = len(pred)
    cuts = [B * i // chunks for i in range(chunks + 1)]
    for a, b in zip(cuts, cuts[1:]):
        sw = None if sample_weight is None else np.asarray(sample_weight)[a:b]
        m.update_state(np.asarray(labels)[a:b], np.asarray(pred)[a:b], sample_weight=sw)
    return np.asarray(m.result())


def keras_loss_metric(case: KernelCase, name: str, params: dict) -> tuple[str, Callable]:
    """A metric form of ``case``'s loss, by its dotted name (``keras.metrics.RootMeanSquaredError``):
    ``("function", f(labels, pred) -> per-sample values)`` or ``("class", weighted_mean(labels,
    pred, sample_weight, chunks) -> result())``, the class fed in ``chunks`` consecutive slices."""
    _tf()
    import keras

    import inspect

    obj = getattr(keras.metrics, name[len("keras.metrics."):])
    kw = dict(case.keywords, **(case.keras or {}).get("keywords", {}), **params)
    if not isinstance(obj, type):

        def function(labels, pred):
            with warnings.catch_warnings(action="ignore"):  # Keras's advice on rows of one class, which are meant
                return np.asarray(obj(np.asarray(labels), np.asarray(pred), **kw))

        return "function", function
    accepted = inspect.signature(obj.__init__).parameters
    ctor = {k: v for k, v in kw.items() if k in accepted}  # from_logits, label_smoothing, axis, ...

    def weighted_mean(labels, pred, sample_weight=None, chunks: int = 1):
        with warnings.catch_warnings(action="ignore"):
            return float(_fed_in_chunks(obj(**ctor), labels, pred, sample_weight, chunks))

    return "class", weighted_mean


def loss_class(case: KernelCase) -> str | None:
    """The name in ``keras.losses`` of the declared loss class of ``case``, or None."""
    return _declared(case, "loss_class", "keras.losses.")


def keras_class_kernel(case: KernelCase) -> Callable:
    """A callable ``(labels, pred, params, reduction, sample_weight, dtype) -> (value, grad)``.

    Runs ``keras.losses.<Class>(**keywords, reduction=reduction, dtype=dtype)`` on a watched
    tensor holding ``pred``; ``grad`` is ``tape.gradient(value, pred)`` (of the sum of the values for
    'none'). ``dtype=None`` is the class's default (floatx: float32, inputs cast to it).
    """

    def call(labels, pred, params: dict, reduction: str, sample_weight=None, dtype=None):
        tf = _tf()
        import keras

        cls = getattr(keras.losses, loss_class(case))
        kw = dict(case.keywords, **(case.keras or {}).get("keywords", {}), **params)
        loss = cls(reduction=reduction, dtype=dtype, **kw)
        pred = np.asarray(pred)
        y = tf.constant(np.asarray(labels))
        x = tf.constant(pred)  # watched, not a Variable (see keras_kernel)
        sw = None if sample_weight is None else tf.constant(np.asarray(sample_weight))
        with tf.GradientTape() as tape, warnings.catch_warnings(action="ignore"):  # one-class rows are meant
            tape.watch(x)
            v = loss(y, x, sample_weight=sw)
        g = tape.gradient(v, x)
        return np.asarray(v.numpy()), np.asarray(g.numpy())

    return call


#: Metric function forms and their classes (``keras.metrics``).
METRIC_CLASSES = {
    "binary_accuracy": "BinaryAccuracy",
    "categorical_accuracy": "CategoricalAccuracy",
    "sparse_categorical_accuracy": "SparseCategoricalAccuracy",
    "top_k_categorical_accuracy": "TopKCategoricalAccuracy",
    "sparse_top_k_categorical_accuracy": "SparseTopKCategoricalAccuracy",
}


def keras_metric(name: str, **kw) -> tuple[Callable, Callable]:
    """``(function, weighted_mean)`` for the metric ``name`` with keywords ``kw`` (k, threshold).

    ``function(labels, pred)`` is the function form's per-sample values; ``weighted_mean(labels,
    pred, sample_weight, chunks)`` feeds the class ``update_state`` in ``chunks`` consecutive
    slices of the batch (its running total and count accumulate across them) and returns
    ``result()``.
    """
    _tf()
    import keras

    fn = getattr(keras.metrics, name)
    cls = getattr(keras.metrics, METRIC_CLASSES[name])

    def function(labels, pred):
        return np.asarray(fn(np.asarray(labels), np.asarray(pred), **kw))

    def weighted_mean(labels, pred, sample_weight=None, chunks: int = 1):
        return _fed_in_chunks(cls(**kw), labels, pred, sample_weight, chunks)

    return function, weighted_mean
