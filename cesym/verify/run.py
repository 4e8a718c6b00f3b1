"""Verify: every kernel, dtype and label kind against the interval reference, in one run.

For each configuration: the generated kernel and the naive form on the same seeded stratified
points (errors in ulps and Herbie bits: average, p99, max), the points outside the contract
(which fail the run; for the naive form they are what the rewrite buys), references the
interval could not pin, and a spot check of the symbolic gradient against mpmath.diff of the
reference value. With the host's floor (NumPy's exp/log/log1p/expm1) and the versions used.

With Keras: its function forms on the same points (:mod:`cesym.keras.check`), its loss classes
with every reduction, sample weights and the class dtype, and its metrics
(:mod:`cesym.keras.forms`, on the first rows of each batch).
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import mpmath
import numpy as np

from . import processes, truthcache, verdicts
from .contract import _REFS, UNRESOLVED_SHOWN, check_batch, definition, kernel_outputs, prefill_batch, reference_for
from .reference import Unresolved
from .registry import CASES, KernelCase, label_kinds, one_hot
from .sampling import sample, sample_extended

__all__ = ["Config", "run", "naive_kernel"]


@dataclass
class Config:
    """Results of one kernel × dtype × label kind."""

    kernel: str
    dtype: str
    labels: str
    points: int
    stable: dict
    naive: dict
    failures: list[str] = field(default_factory=list)
    naive_outside: int = 0
    unresolved: int = 0
    unresolved_at: list[str] = field(default_factory=list)  # the inputs of the first unresolved points
    grad_vs_mpmath_diff: float | None = None  # max relative difference, symbolic vs numerical
    keras: dict | None = None  # cesym.keras.check.KerasTally as a dict, when Keras was run
    keras_classes: dict | None = None  # cesym.keras.forms.ClassTally: loss classes, reductions, weights
    keras_metrics: dict | None = None  # cesym.keras.forms.MetricTally: metrics on these points
    extended: dict | None = None  # the extended reals: points, outputs with a finite/infinite/no limit, failures
    seconds: float = 0.0
    #: False: the contract's verdict, Keras's function-form and loss-class tallies and the
    #: gradient's spot check were taken from an earlier run that measured the same outputs on
    #: the same inputs with the same checker (.verdicts)
    judged: bool = True

    @property
    def passed(self) -> bool:
        return not self.failures and self.unresolved == 0


def naive_kernel(case: KernelCase) -> Callable:
    """The unrewritten definition (:mod:`cesym.kernels.naive`) with ``KernelCase.call``'s signature."""
    from cesym.kernels import naive

    def call(labels, pred, params, grad=False):
        with np.errstate(all="ignore"):
            return case.call(labels, pred, params, grad, module=naive)

    return call


def _gradient_spot_check(case: KernelCase, batch, rows: int = 3) -> float:
    """Max relative difference between the symbolic gradient and mpmath.diff of the value.

    On rows of the first stratum (moderate logits, uniform probabilities): finite differences
    of e^{-1e300} say nothing, and the check is of the derivation, not of the extremes. Nor do
    they resolve a derivative below their rounding noise, about 2^-171·|f|/|x| at 256 bits
    (steps of 2^-85·|x|): a gradient of exactly 0 (a label equal to the prediction) against
    numerical noise is no difference where both lie under 2^-150·|f|/|x|.
    """
    loss = definition(case)
    if not loss.differentiable or case.reduction == "batch":
        return 0.0
    labels = one_hot(batch.labels, batch.pred.shape[1]) if case.labels == "sparse" else batch.labels
    params = [batch.params[p.name] for p in loss.params]
    worst = mpmath.mpf(0)
    for r in [r for r in range(batch.pred.shape[0]) if batch.strata[r] == batch.strata[0]][:rows]:
        pred = batch.pred[r, :1] if case.elementwise else batch.pred[r]
        lab = None if labels is None else (labels[r, :1] if case.elementwise else labels[r])
        ref = reference_for(loss, len(pred))
        try:
            v, g, num = ref.checked_pair(lab, pred, params)
        except Unresolved:  # no proven digits to compare (|e|^q at e = 0): the contract check counts it
            continue
        for a, b, x in zip(g, num, pred):
            scale = max(abs(a), abs(b))
            floor = mpmath.ldexp(abs(mpmath.mpf(v)) / (abs(mpmath.mpf(float(x))) or 1), -150)
            if scale > floor:
                worst = max(worst, abs(a - b) / scale)
    return float(worst)


def _run_config(task: tuple) -> Config:
    """One kernel × dtype × label kind (a unit of work for the process pool)."""
    (token, case_index), dtype_name, kind, soft, smooth, rows, sizes, seed, with_keras, class_rows = task
    case = processes.shared_get(token)[case_index]
    dtype = np.dtype(dtype_name).type
    t0 = time.time()
    stable, naive, ext = [], [], []
    ext_rows = QUICK_EXT_ROWS if rows <= QUICK_ROWS else EXT_ROWS
    grad_diff = 0.0
    keras = classes = metrics = None
    naive_call = naive_kernel(case)
    # every batch sampled and every output of the stable kernel and the naive form measured
    # first: a verdict kept for exactly these numbers and this code is taken (.verdicts), the
    # same one judging them again would give
    runs = []
    if with_keras:
        from ..keras.calls import keras_kernel
        from ..keras.check import KerasTally, classify, keras_outputs

        keras_call = keras_kernel(case)
    for n in sizes:
        per = max(1, rows // len(sizes))
        batch = verdicts.kept_sample("sample", case, (dtype_name, n, per, seed, soft, smooth), lambda: sample(case, dtype, n, per, seed=seed, soft=soft, smoothing=smooth))
        ext_batch = verdicts.kept_sample("extended", case, (dtype_name, n, ext_rows, seed, soft, smooth), lambda: sample_extended(case, dtype, n, ext_rows, seed=seed, soft=soft, smoothing=smooth))
        ko = keras_outputs(case, batch, keras_call) if with_keras else None
        runs.append((n, batch, ext_batch, kernel_outputs(case, batch), kernel_outputs(case, batch, naive_call), kernel_outputs(case, ext_batch), ko))
    # Keras's loss classes on the first rows of the batches of these lengths (the quick pass: its
    # longest rows only; their cost is TensorFlow's per call, whatever the rows)
    class_ns = [n for n in sizes if with_keras and class_rows and (rows > QUICK_ROWS or n == sizes[-1])]
    class_call = None
    if class_ns:
        from ..keras.calls import keras_class_kernel, loss_class

        class_call = keras_class_kernel(case) if loss_class(case) is not None else None
    key = verdict = task_id = measured = None
    judged = True
    if truthcache.ENABLED:
        numbers = []
        for _, b, x, so, no, xo, ko in runs:
            numbers += [(b, so), (b, no), (x, xo)] + ([(b, [ko])] if ko is not None else [])
        # the case and its definition as data: a user's derivation (or the checkout's derivations/)
        # lies outside the package whose sources the verdicts' directory digests
        task_id = (repr(case), repr(case.label_domain), repr(definition(case)), dtype_name, kind, soft, smooth, rows, tuple(sizes), seed, ext_rows, with_keras, class_rows)
        # Keras's loss classes measured too, on the rows an earlier run chose (those whose
        # reference resolves: choosing them reads the reference, which a taken verdict spares)
        measured = _measured_classes(case, runs, class_ns, class_rows, class_call, seed, task_id) if class_call is not None else []
        if measured is not None:
            key = _verdict_key(task_id, numbers, measured)
            verdict = verdicts.recall(key)
        judged = verdict is None
    if verdict is None:
        # judged in this order (what a taken verdict spares all goes): the reference's memo is
        # shared (an elementwise loss has one reference for every row length), and whether a
        # point gets the first tier's number or the balls' (equal to 2^-8 ulp, not bit for bit)
        # depends on what asked first
        known = {n: (keep, outs) for n, keep, _, outs in measured or []}
        measured = []
        for n, batch, *_ in runs:
            if case.reduction != "batch":
                prefill_batch(case, batch)
            grad_diff = max(grad_diff, _gradient_spot_check(case, batch))
            if n in class_ns and class_call is not None:
                classes, found = _keras_classes(case, batch, class_rows, class_call, _forms_seed(seed, n, dtype), classes, known.get(n))
                measured.append((n, *found))
        if with_keras:
            for n, batch, ext_batch, so, no, xo, ko in runs:
                keras = (keras or KerasTally()).merge(classify(case, batch, keras_call, outputs=ko))
        for n, batch, ext_batch, so, no, xo, ko in runs:
            stable.append(check_batch(case, batch, outputs=so))
            naive.append(check_batch(case, batch, kernel=naive_call, outputs=no))
            ext.append(check_batch(case, ext_batch, outputs=xo))
        verdict = _verdict(_merge(stable), _merge(naive), _merge(ext))
        verdict["keras"] = None if keras is None else asdict(keras)
        verdict["keras_classes"] = None if classes is None else asdict(classes)
        verdict["grad_vs_mpmath_diff"] = grad_diff
        if task_id is not None:
            for n, keep, _, _ in measured:
                verdicts.keep(_rows_key(task_id, n), keep)
            key = _verdict_key(task_id, numbers, measured)
            verdicts.keep(key, verdict)
    # Keras's metrics, measured and judged in every run (they read no reference)
    for n, batch, *_ in runs:
        if n in class_ns:
            metrics = _keras_metrics(case, batch, kind, class_rows, _forms_seed(seed, n, dtype), metrics)
    # the balls' numbers of this configuration, its batches and verdict, on disk for the next
    # run (the cesym command only)
    truthcache.flush(_REFS.values())
    verdicts.flush()
    return Config(
        kernel=case.id,
        dtype=dtype_name,
        labels=kind,
        points=verdict["points"],
        stable=verdict["stable"],
        naive=verdict["naive"],
        failures=verdict["failures"] + (metrics.failures if metrics else []) + verdict["extended_failures"],
        naive_outside=verdict["naive_outside"],
        unresolved=verdict["unresolved"],
        unresolved_at=verdict["unresolved_at"],
        grad_vs_mpmath_diff=verdict["grad_vs_mpmath_diff"],
        extended=verdict["extended"],
        keras=verdict["keras"],
        keras_classes=verdict["keras_classes"],
        keras_metrics=None if metrics is None else asdict(metrics),
        seconds=round(time.time() - t0, 2),
        judged=judged,
    )


def _verdict(s, nv, x) -> dict:
    """What a configuration reports of its contract checks (stable kernel ``s``, naive form
    ``nv``, extended reals ``x``: merged :class:`~.contract.Result`), plain data to keep
    (:mod:`.verdicts`)."""
    return {
        "points": len(s.value_ulps),
        "stable": s.summary(),
        "naive": nv.summary(),
        "failures": [str(f) for f in s.failures],
        "extended_failures": [f"extended reals: {f}" for f in x.failures],
        "naive_outside": len(nv.failures),
        "unresolved": s.unresolved + x.unresolved,
        "unresolved_at": (s.unresolved_at + [f"extended reals: {u}" for u in x.unresolved_at])[:UNRESOLVED_SHOWN],
        "extended": {"points": len(x.value_ulps), "failures": len(x.failures), "unresolved": x.unresolved},
    }


def _forms_seed(seed: int, n: int, dtype) -> list[int]:
    """The seed of Keras's loss classes' and metrics' sample weights on the rows of length ``n``."""
    return [seed, n, np.dtype(dtype).itemsize]


def _rows_key(task_id: tuple, n: int) -> str:
    return verdicts.config_key(task_id + ("class rows", n), [])


def _verdict_key(task_id: tuple, numbers: list, measured: list) -> str:
    """The verdict's key: the configuration, the numbers the contract and Keras's function forms
    judge, and Keras's loss class on its chosen rows (a refused call as no arrays)."""
    classes = [(sub, [(None, None) if o is None else o for o in outs]) for _, _, sub, outs in measured]
    return verdicts.config_key(task_id + tuple((n, tuple(keep)) for n, keep, _, _ in measured), numbers + classes)


def _measured_classes(case: KernelCase, runs: list, class_ns: list, class_rows: int, class_call, seed, task_id) -> list | None:
    """Keras's loss class measured on the rows an earlier run chose for each row length in
    ``class_ns`` (:func:`cesym.keras.forms.class_rows`, kept with the verdicts): ``(n, rows,
    batch, outputs)`` each, or None where no run chose them yet (the configuration is judged)."""
    from ..keras.forms import class_outputs, head

    out = []
    for n, batch, *_ in runs:
        if n not in class_ns:
            continue
        keep = verdicts.recall(_rows_key(task_id, n))
        if keep is None:
            return None
        sub = head(batch, class_rows)
        out.append((n, keep, sub, class_outputs(case, sub, keep, class_call, _forms_seed(seed, n, batch.pred.dtype))))
    return out


def _keras_classes(case: KernelCase, batch, rows: int | None, class_call, seed, classes, known=None):
    """Keras's loss class on the first ``rows`` rows, merged into ``classes``; and what was
    measured, ``(rows chosen, batch, outputs)``, to key the verdict by (``known``: measured
    already on the rows an earlier run chose, ``(rows, outputs)``: taken where those are the
    rows chosen now)."""
    from ..keras.forms import ClassTally, check_classes, class_outputs, class_rows, head

    sub = head(batch, rows)
    keep = class_rows(case, sub)
    if known is not None and known[0] == keep:
        outs = known[1]
    else:
        outs = class_outputs(case, sub, keep, class_call, seed)
    classes = (classes or ClassTally()).merge(check_classes(case, sub, class_call, seed=seed, outputs=outs))
    return classes, (keep, sub, outs)


def _keras_metrics(case: KernelCase, batch, kind: str, rows: int | None, seed, metrics):
    """Keras's metrics (hard labels) on the first ``rows`` rows, merged into ``metrics``."""
    from ..keras.forms import MetricTally, check_loss_metrics, check_metrics, head, metrics_for

    sub = head(batch, rows)
    if kind == "hard" and metrics_for(case):
        metrics = (metrics or MetricTally()).merge(check_metrics(case, sub, seed=seed))
    if kind == "hard" and (case.keras or {}).get("metrics"):
        metrics = (metrics or MetricTally()).merge(check_loss_metrics(case, sub, seed=seed))
    return metrics


#: Default sample: rows per kernel × dtype, shared among its label kinds (hard, soft, smoothed).
DEFAULT_ROWS = 10_000
QUICK_ROWS = 24
#: Row lengths of a run's batches (an elementwise loss's references are of one element), of a
#: ``--quick`` run's, and of a loss reduced over the whole batch.
SIZES, QUICK_SIZES, BATCH_SIZES = (1, 2, 3, 5, 8), (2, 3), (4,)
EXT_ROWS, QUICK_EXT_ROWS = 28, 7  # rows per row length at ±inf, 0/1 and NaN inputs (cesym.verify.extended)


def run(
    names: Sequence[str] = (),
    points: int | None = None,
    quick: bool = False,
    seed: int = 2026,
    progress: Callable[[Config], None] | None = None,
    jobs: int = 1,
    keras: bool = False,
    forms: bool = True,
    cases: Sequence[KernelCase] | None = None,
) -> list[Config]:
    """Check the kernels named (all by default).

    ``cases``: the kernel cases to choose from (default :data:`cesym.verify.registry.CASES`, the shipped
    kernels; :func:`cesym.verify.registry.load_cases` gives a user's). A case without a declared Keras
    counterpart is checked without Keras.

    ``points``: rows per kernel × dtype (default 10^4, ``quick``: 24 per label kind), split
    evenly over the row lengths 1, 2, 3, 5, 8 (``quick``: 2, 3) and the label kinds.
    Each configuration also checks, per row length, ``EXT_ROWS`` rows (``quick``:
    ``QUICK_EXT_ROWS``) at ±inf, probability 0/1 and NaN inputs (:func:`sample_extended`)
    against their limits (:mod:`cesym.verify.extended`): ``Config.extended``; their failures and
    unresolved limits count as the configuration's.
    ``jobs`` > 1 runs configurations in that many processes (results in the same order).
    ``keras``: also run Keras on the same points and classify its outputs (cesym.keras.check),
    its loss classes and metrics on the first rows of each batch (cesym.keras.forms:
    ``CLASS_ROWS``; ``quick``: ``QUICK_CLASS_ROWS`` of its rows of 3 only). ``progress`` is called with each configuration as it completes; the lines
    of the loss classes and metrics are printed after it (:func:`describe_forms`) and their
    totals at the end. ``forms=False`` leaves the loss classes and metrics out (Keras's function
    forms only).
    """
    pool_cases = list(CASES if cases is None else cases)
    chosen = [i for i, c in enumerate(pool_cases) if not names or c.kernel in names or c.loss in names]
    if not chosen:
        raise KeyError(f"no kernel named {', '.join(names)}")
    with processes.shared(pool_cases) as token:  # read by _run_config, here and in the forked workers
        return _run_tasks(pool_cases, chosen, token, points, quick, seed, progress, jobs, keras, forms)



def _run_tasks(pool_cases, chosen, token, points, quick, seed, progress, jobs, keras, forms) -> list[Config]:
    from ..keras.forms import CLASS_ROWS, QUICK_CLASS_ROWS

    sizes = QUICK_SIZES if quick else SIZES
    tasks = []
    for i in chosen:
        case = pool_cases[i]
        kinds = label_kinds(case)
        rows = QUICK_ROWS if quick and not points else -(-(points or DEFAULT_ROWS) // len(kinds))
        case_sizes = BATCH_SIZES if case.reduction == "batch" else sizes
        for dtype in ("float32", "float64"):
            for kind, soft, smooth in kinds:
                with_keras = keras and case.keras is not None
                tasks.append(((token, i), dtype, kind, soft, smooth, rows, case_sizes, seed, with_keras, 0 if not forms else QUICK_CLASS_ROWS if quick else CLASS_ROWS))
    if progress is not None:
        progress = _with_forms(progress)
    out: list[Config] = []
    with contextlib.closing(processes.imap(_run_config, tasks, jobs)) as results:  # Ctrl-C: the workers end at once
        for cfg in results:
            out.append(cfg)
            if progress:
                progress(cfg)
    if progress is not None and keras:
        print(describe_totals(forms_totals(out)), flush=True)
    return out


def _with_forms(progress: Callable[[Config], None]) -> Callable[[Config], None]:
    """``progress``, then the lines of the loss classes and metrics of the configuration."""

    def show(cfg: Config) -> None:
        progress(cfg)
        for line in describe_forms(cfg):
            print(line, flush=True)

    return show


def _t(d: dict, keys=("exact", "explained", "unexplained")) -> str:
    return "/".join(str(d[k]) for k in keys)


def describe_forms(cfg: Config) -> list[str]:
    """Lines saying what the loss classes and metrics of ``cfg`` gave (exact/explained/unexplained)."""
    lines = []
    c = cfg.keras_classes
    if c and c["rows"]:
        lines.append(
            f"    keras classes ({c['class_dtype']}; {', '.join(c['reductions'])}; unweighted and weighted; "
            f"{c['rows']} rows): value exact/explained/unexplained {_t(c['value'])}, grad {_t(c['grad'])}; "
            f"max ulps from the mathematics {c['value_max_ulps']:.3g} / {c['grad_max_ulps']:.3g}"
        )
        lines += [f"    UNEXPLAINED {e}" for e in c["unexplained_examples"]]
    m = cfg.keras_metrics
    if m:
        lines.append(
            f"    keras metrics ({', '.join(m['metrics'])}): functions exact/explained/unexplained {_t(m['function'])}, "
            f"classes exact/explained/unexplained {_t(m['classes'])}; max ulps of result() {m['class_max_ulps']:.3g}"
        )
        lines += [f"    UNEXPLAINED {e}" for e in m["unexplained_examples"]]
    return lines


def forms_totals(configs: list[Config]) -> dict:
    """Totals over all configurations of the loss-class and metric tallies."""
    from ..keras.forms import REDUCTIONS

    z = lambda *ks: {k: 0 for k in ks}  # noqa: E731
    tot = {
        "keras_classes": {"value": z("exact", "explained", "unexplained"), "grad": z("exact", "explained", "unexplained"),
                          "reductions": {r: {"value": z("exact", "explained", "unexplained"),
                                             "grad": z("exact", "explained", "unexplained")} for r in REDUCTIONS},
                          "value_max_ulps": 0.0, "grad_max_ulps": 0.0, "unresolved": 0},
        "keras_metrics": {"function": z("exact", "explained", "unexplained"), "classes": z("exact", "explained", "unexplained"),
                          "class_max_ulps": 0.0},
    }
    for c in configs:
        if c.keras_classes:
            t, k = tot["keras_classes"], c.keras_classes
            for what in ("value", "grad"):
                for s in t[what]:
                    t[what][s] += k[what][s]
                for r in REDUCTIONS:
                    for s in t[what]:
                        t["reductions"][r][what][s] += k["reductions"][r][what][s]
            t["value_max_ulps"] = max(t["value_max_ulps"], k["value_max_ulps"])
            t["grad_max_ulps"] = max(t["grad_max_ulps"], k["grad_max_ulps"])
            t["unresolved"] += k["unresolved"]
        if c.keras_metrics:
            t, k = tot["keras_metrics"], c.keras_metrics
            for what in ("function", "classes"):
                for s in t[what]:
                    t[what][s] += k[what][s]
            t["class_max_ulps"] = max(t["class_max_ulps"], k["class_max_ulps"])
    return tot


def describe_totals(tot: dict) -> str:
    """One line: the totals of :func:`forms_totals`."""
    c, m = tot["keras_classes"], tot["keras_metrics"]
    return (
        f"keras loss classes (every reduction, unweighted and weighted): value exact/explained/unexplained "
        f"{_t(c['value'])}, grad {_t(c['grad'])}; keras metrics: functions exact/explained/unexplained "
        f"(accuracy: equal to cesym, with subnormals as zero, neither; a loss's metric function: equal to its Keras loss function, -, not) {_t(m['function'])}, classes exact/explained/unexplained {_t(m['classes'])}"
    )


def _merge(results):
    from .contract import Result

    m = Result()
    for r in results:
        m.value_ulps += r.value_ulps
        m.grad_ulps += r.grad_ulps
        m.value_bits += r.value_bits
        m.grad_bits += r.grad_bits
        m.value_share += r.value_share
        m.grad_share += r.grad_share
        m.failures += r.failures
        m.unresolved += r.unresolved
        m.unresolved_at += r.unresolved_at[: UNRESOLVED_SHOWN - len(m.unresolved_at)]
        m.merge_worst(r)
    return m


def environment(keras: bool = False) -> dict:
    """Versions and host facts recorded with every verification."""
    import sympy

    from .hostfloor import measure, simd

    extra = {}
    if keras:
        from ..keras.calls import versions

        extra = versions()
    return {
        **extra,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "sympy": sympy.__version__,
        "mpmath": mpmath.__version__,
        "simd": simd(),
        "host_floor_ulps": measure(),
    }


def to_json(configs: list[Config], env: dict) -> dict:
    """Everything measured, as strict JSON (non-finite numbers as the strings "inf", "-inf", "nan")."""
    return _finite({
        "passed": all(c.passed for c in configs),
        "environment": env,
        "configurations": [dict(asdict(c), passed=c.passed) for c in configs],
        **forms_totals(configs),
    })


def _finite(x):
    if isinstance(x, float) and not np.isfinite(x):
        return "nan" if np.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x
