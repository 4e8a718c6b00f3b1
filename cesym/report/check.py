"""``cesym report --check``: exact where the sources decide, by their promises where the host measures.

Four checks, each one a list of problems (empty: the committed reports are fresh):

1. **Rendering, exact.** Every committed report file must be byte for byte what
   :func:`cesym.report.render.render_reports` makes of today's sources (derivations, generated kernels,
   the seeds' code) and the committed record ``reports/measured.json``. A derivation's docstring,
   a rewrite, a line of generated code or a derived threshold that changed makes a file differ;
   so does a measured figure edited in a Markdown file but not in the record.
2. **Promises, on both records.** The committed record and a fresh run on this host must each
   keep what the reports promise (:func:`broken_promises`): every point within the accuracy
   contract (shares of the bound ≤ 1), no reference unresolved, no unexplained Keras deviation,
   no plotted kernel point outside the contract, Keras's clip where its model puts it, every
   seed explanation that is a formula holding. A stale record measured with an older kernel that
   broke the contract is caught, whatever host wrote it.
3. **Shape, exact.** What the sources decide about the measurement (:func:`skeleton`): the
   sample (points, seed), the configurations and their numbers of points, the plotted panels,
   series and numbers of points, Keras's counts per configuration in total, the pinned SymPy and
   mpmath versions, the seeds' calls, printed numbers and exact mathematics; and the seeds' host
   figures agree with the fresh run to :data:`SEED_RTOL` (their text exactly, their numbers
   to a few float32 ulps).

4. **Sources, exact.** The record names a digest of every file the measurement ran
   (:func:`cesym.report.record.source_digests`): a kernel, a derivation, the sampler, the
   reference or the Keras model changed since makes the record stale, measured or not. This
   check and the first two on the committed record take seconds (``cesym report --check
   --no-measure``, the test suite's check); the fresh run, minutes.

Host-measured figures (ulps, shares, Keras's exact/explained split, plotted points, Keras's
float outputs) are never compared by their last digit: NumPy's SIMD exp/log and TensorFlow's
kernels differ in the last bits between CPUs (AVX-512 vs AVX2), and so do inputs sampled with
``10 ** u``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ..verify.contract import GRAD_BASE, VALUE_BASE
from ..define.loss import DERIVATIONS_DIR
from ..generate.codegen import GENERATED_DIR
from .record import RECORD_NAME, loads

__all__ = [
    "check", "stale_files", "stale_sources", "record_problems", "broken_promises", "skeleton", "SEED_RTOL", "CAP_ULPS",
]

#: Relative agreement of a seed's host figures with a fresh run: 2^-20, eight float32 ulps.
#: The seeds compute a handful of float32/float64 logs and means, each within a few ulps of its
#: rounding on any host (NumPy's SIMD float32 log ≤ 3.1 ulps, FIELD_NOTES); a different formula
#: or kernel moves them by far more.
SEED_RTOL = 2.0**-20
#: Keras's value at its clip is one log of the clipped input in the dtype and a negation
#: (TensorFlow's float32 log within about 2 ulps): within 4 ulps of the model's number.
CAP_ULPS = 4


def _name(c: dict) -> str:
    return f"`{c['kernel']}` {c['dtype']} {c['labels']}"


def _max(stats: dict | None) -> float | None:
    return None if not stats else stats.get("max")


def _config_promises(c: dict) -> list[str]:
    out = []
    if c["failures"]:
        out.append(f"{_name(c)}: {c['failures']} point(s) outside the contract")
    if c["unresolved"]:
        out.append(f"{_name(c)}: {c['unresolved']} reference(s) unresolved")
    st = c["stable"]
    for part, base in (("value", VALUE_BASE), ("grad", GRAD_BASE)):
        share, ulps = _max(st.get(f"{part}_share")), _max(st.get(f"{part}_ulps"))
        if share is not None and not share <= 1:
            out.append(f"{_name(c)}: {part} share of the bound {share:.3g} > 1 (outside the contract)")
        if ulps is not None and (math.isnan(ulps) or ulps > base) and share is None:
            out.append(f"{_name(c)}: {part} error {ulps:.3g} ulps > {base:g} with no share of the bound")
    k = c.get("keras")
    if k:
        unexplained = k["value"]["unexplained"] + k["grad"]["unexplained"]
        if unexplained:
            out.append(f"{_name(c)}: {unexplained} Keras deviation(s) unexplained")
        if k.get("unresolved"):
            out.append(f"{_name(c)}: {k['unresolved']} Keras reference(s) unresolved")
    return out


def _plot_promises(family: str, panel: dict) -> list[str]:
    out = []
    where = f"{family} plot `{panel['case']}` {panel['dtype']}"
    for s in panel["series"]:
        if len(s["err"]) != len(panel["mags"]):
            out.append(f"{where}: {s['label']} has {len(s['err'])} points for {len(panel['mags'])} inputs")
        if s["label"] == "cesym kernel" and s["outside"]:
            out.append(f"{where}: {s['outside']} kernel point(s) outside the contract")
    return out


def _cap_promises(r: dict) -> list[str]:
    where = f"Keras's clip ({r['family']}) at {r.get('row') or (r['p'], r['y'])} {r['dtype']}"
    out = []
    if r["model_value"] is not None:
        spacing = float(np.spacing(np.array(abs(r["model_value"]), dtype=r["dtype"])))
        if not abs(r["value"] - r["model_value"]) <= CAP_ULPS * spacing:
            out.append(f"{where}: Keras value {r['value']!r}, the model says {r['model_value']!r}")
    if r["model_grad"] is not None and r["grad"] != r["model_grad"]:
        out.append(f"{where}: Keras gradient {r['grad']!r}, the model says {r['model_grad']!r}")
    return out


def broken_promises(record: dict) -> list[str]:
    """What ``record`` measured that breaks a promise of the reports (empty: none)."""
    out = [p for c in record["configs"] for p in _config_promises(c)]
    out += [p for family, panels in sorted(record["plots"].items()) for panel in panels for p in _plot_promises(family, panel)]
    out += [p for r in record["caps"] for p in _cap_promises(r)]
    out += [f"seed {s['seed']} ({s['what']}): an explanation does not hold" for s in record["seeds"] if "does NOT hold" in s["explanation"]]
    return out


def skeleton(record: dict) -> dict:
    """What the sources decide about a record: compared exactly between committed and fresh."""

    def keras_total(k, part):
        return None if not k else sum(k[part].values())

    return {
        "sample": [record["points"], record["seed"], record["plot_rows"], record["keras"]],
        "pinned versions": {k: record["versions"].get(k) for k in ("sympy", "mpmath")},
        "configurations": [
            [c["kernel"], c["dtype"], c["labels"], c["points"], keras_total(c["keras"], "value"), keras_total(c["keras"], "grad")]
            for c in record["configs"]
        ],
        "plots": {
            f: [[p["case"], p["dtype"], len(p["mags"]), [s["label"] for s in p["series"]]] for p in panels]
            for f, panels in sorted(record["plots"].items())
        },
        "Keras's clip": [[r["p"], r["y"], r["dtype"], r["model"], r["math"]] for r in record["caps"]],
        "seeds": [[s[k] for k in ("seed", "family", "what", "printed", "mathematics")] for s in record["seeds"]],
    }


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _split_numbers(text: str) -> tuple[str, list[float]]:
    return _NUMBER.sub("#", text), [float(m) for m in _NUMBER.findall(text)]


def _close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= SEED_RTOL * max(abs(a), abs(b))


def _seed_figures(committed: dict, fresh: dict) -> list[str]:
    """The seeds' host figures (Keras today, cesym, the explanations' computed numbers): the same
    text and numbers within :data:`SEED_RTOL` of a fresh run."""
    out = []
    for a, b in zip(committed["seeds"], fresh["seeds"]):
        for key in ("keras_today", "cesym", "explanation"):
            (ta, na), (tb, nb) = _split_numbers(a[key]), _split_numbers(b[key])
            if ta != tb or len(na) != len(nb) or not all(_close(x, y) for x, y in zip(na, nb)):
                out.append(f"seed {a['seed']} ({a['what']}): {key} {a[key]!r}, a fresh run {b[key]!r}")
    return out


def stale_files(out_dir: Path, rendered: dict[str, str]) -> list[str]:
    """The files of ``out_dir`` that are not byte for byte their rendering (or are missing)."""
    out = []
    for name, text in sorted(rendered.items()):
        target = Path(out_dir) / name
        if not target.exists():
            out.append(f"{name} (missing)")
        elif target.read_bytes() != text.encode("utf-8"):
            out.append(f"{name} (differs from its rendering from the sources and {RECORD_NAME})")
    return out


def stale_sources(committed: dict, derivations: Path | None = None) -> list[str]:
    """The files a measurement runs that differ from those ``committed`` was measured with."""
    from .record import source_digests

    then, now = committed.get("sources", {}), source_digests(derivations)
    changed = sorted(k for k in then.keys() & now.keys() if then[k] != now[k])
    new, gone = sorted(now.keys() - then.keys()), sorted(then.keys() - now.keys())
    parts = [f"{what}: {', '.join(files)}" for what, files in (("changed", changed), ("new", new), ("gone", gone)) if files]
    if not parts:
        return []
    return [f"{RECORD_NAME} (measured with other sources; {'; '.join(parts)}: run cesym report)"]


def record_problems(committed: dict, fresh: dict | None) -> list[str]:
    """Broken promises of either record, and where a fresh run's shape differs from the committed
    one (``fresh`` None: the committed record's promises only)."""
    problems = [f"{RECORD_NAME}: {p}" for p in broken_promises(committed)]
    if fresh is None:
        return problems
    problems += [f"this host's run: {p}" for p in broken_promises(fresh)]
    a, b = skeleton(committed), skeleton(fresh)
    problems += [f"{RECORD_NAME}: {key} differ from a fresh run's" for key in a if a[key] != b[key]]
    if a["seeds"] == b["seeds"]:
        problems += [f"{RECORD_NAME}: {p}" for p in _seed_figures(committed, fresh)]
    return problems


def check(
    out_dir: Path, fresh: dict | None, derivations_dir: Path = DERIVATIONS_DIR, generated_dir: Path = GENERATED_DIR,
    derivations: Path | None = None, generated: dict[str, str] | None = None,
) -> list[str]:
    """Problems of the reports committed in ``out_dir`` against today's sources and the ``fresh``
    record measured on this host (empty: fresh; ``fresh`` None: none measured, see check 4).
    ``derivations``/``generated``: a user's derivations directory and its kernels rendered in memory."""
    if derivations is not None:
        derivations_dir = Path(derivations)
    from .render import load_exhaustive, render_reports

    out_dir = Path(out_dir)
    path = out_dir / RECORD_NAME
    if not path.exists():
        return [f"{RECORD_NAME} (missing)"]
    try:
        committed = loads(path.read_text(encoding="utf-8"))
        exhaustive = load_exhaustive(out_dir)
        rendered = render_reports(committed, derivations_dir, generated_dir, generated=generated, exhaustive=exhaustive)
    except (ValueError, KeyError, TypeError) as e:
        return [f"{RECORD_NAME} (not a record the reports can be rendered from: {type(e).__name__} {' '.join(str(e).split())})"]
    problems = stale_files(out_dir, rendered)
    problems += [
        f"{p.name} (no longer rendered)" for p in sorted(out_dir.glob("*")) if p.suffix in (".md", ".svg") and p.name not in rendered
    ]
    return problems + stale_sources(committed, derivations) + record_problems(committed, fresh) + stale_exhaustive(exhaustive, derivations)


def stale_exhaustive(exhaustive: dict[str, dict], derivations: Path | None = None) -> list[str]:
    """Recorded exhaustive runs whose kernel (or runtime, or checker) changed since: run again."""
    if derivations is not None:
        return []
    from ..verify.exhaustive import kernel_digest

    out = []
    for name, per in exhaustive.items():
        for setting, r in per.items():
            if r.get("digest") != kernel_digest(r.get("family", "")):
                out.append(f"exhaustive/{name} ({setting}: recorded for other kernel code; run {rerun_command(r['setting'])})")
    return out


def rerun_command(setting: dict) -> str:
    """The command that records a setting of ``reports/exhaustive/`` again: its variant, label
    and parameters exactly (repr: a float32 label such as 0.30000001192092896 reads back as
    itself), value and gradient together (one sweep gives both)."""
    import shlex

    argv = ["cesym", "verify", "--exhaustive", setting["case"]]
    if setting.get("label") is not None:
        argv += ["--label", repr(float(setting["label"]))]
    for k, v in setting.get("params", []):
        argv += ["--param", f"{k}={float(v)!r}"]
    return shlex.join(argv + ["--record"])
