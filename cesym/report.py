"""Report: one Markdown file per loss family in ``reports/``, and an index, from what was measured.

Each family report gives the definition and its conventions, the gradient as SymPy derived it,
the rewrites that made it stable and why, the generated code, the overflow thresholds of the
naive forms per dtype (derived symbolically), and what this run measured: the kernels' and
the naive forms' errors in ulps and bits, and how Keras deviates (exact / explained by its own
algorithm / unexplained). Nothing is asserted that the run did not measure.

Deterministic: a fixed seed and sample size, sorted output, no timestamps; files are written
atomically and only when their bytes change. ``cesym report --check`` says when they are stale.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sympy as sp

from .define import load_all
from .derive import Derived, derive
from .primitives import Elem, RestSum, RowMax, RowSum
from .registry import CASES
from .verify import Config, environment, run

__all__ = ["REPORTS_DIR", "render_reports", "write_reports", "REPORT_POINTS", "REPORT_SEED"]

REPORTS_DIR = Path(__file__).resolve().parent.parent / "reports"
#: Sample of the reports' measurements: rows per kernel × dtype, and the seed.
REPORT_POINTS = 600
REPORT_SEED = 2026


# --- mathematics for display ----------------------------------------------------------------------


_INDICES = ("c", "k", "l", "m")


def _display(expr: sp.Basic) -> sp.Basic:
    """Element symbols as ``x_{j}`` at element level, ``x_{c}``, ``x_{k}``... in nested reductions."""

    def sub(e, idx, depth):
        if isinstance(e, Elem):
            return sp.Symbol(f"{e.name}_{{{idx}}}")
        if isinstance(e, (RowSum, RowMax, RestSum)):
            inner = "c" if isinstance(e, RestSum) else _INDICES[depth]
            return e.func(*[sub(a, inner, depth + 1) for a in e.args], evaluate=False)
        if not e.args:
            return e
        args = [sub(a, idx, depth) for a in e.args]
        return e.func(*args, evaluate=False) if isinstance(e, (sp.Add, sp.Mul, sp.Pow)) else e.func(*args)

    return sub(expr, "j", 0)


#: How parameters print in the reports' mathematics.
_NAMES = {sp.Symbol("label_smoothing", real=True): r"\varepsilon", sp.Symbol("lam", real=True): r"\lambda"}


def _tex(expr: sp.Basic) -> str:
    return sp.latex(_display(expr), symbol_names=_NAMES)


# --- overflow thresholds of the naive forms, derived symbolically ---------------------------------


def _thresholds(dtype) -> dict[str, float]:
    fi = np.finfo(dtype)
    x = sp.Symbol("x", real=True)
    big = sp.Float(float(fi.max), 30)
    tiny = sp.Float(float(fi.smallest_normal), 30)
    eps = sp.Float(float(fi.eps), 30)
    return {
        "exp overflows (exp(x) > max)": float(sp.solve(sp.Eq(sp.exp(x), big), x)[0]),
        "exp underflows below the normals (exp(x) < smallest normal)": float(sp.solve(sp.Eq(sp.exp(x), tiny), x)[0]),
        "1 + exp(-x) rounds to 1 (σ(x) = 1, log σ(x) = 0 exactly)": float(sp.solve(sp.Eq(sp.exp(-x), eps / 2), x)[0]),
        "1 - p rounds to 1 (log(1 - p) = 0 for p below)": float(eps / 4),
    }


# --- rendering -------------------------------------------------------------------------------------


def _fmt(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if not np.isfinite(x):
        return "inf"
    return f"{x:.3g}"


def _stats(d: dict | None, key: str) -> str:
    s = (d or {}).get(key)
    if not s:
        return "–"
    return f"{_fmt(s['avg'])} / {_fmt(s['p99'])} / {_fmt(s['max'])}"


def _share(stats: Sequence[dict | None]) -> str:
    """The largest share of the bound among summaries ("–": no error beyond the κ-free part)."""
    found = [s["max"] for s in stats if s]
    return _fmt(max(found)) if found else "–"


def _family_of(cfg: Config) -> str:
    kernel = cfg.kernel
    case = next(c for c in CASES if c.id == kernel)
    return case.loss.split(".")[0]


def _measured_table(configs: Sequence[Config]) -> list[str]:
    lines = [
        "| kernel | dtype | labels | points | value ulps avg / p99 / max | gradient ulps avg / p99 / max | "
        "max share of the bound (value / gradient) | "
        "value bits max | naive value ulps max | naive gradient ulps max | naive points outside | failures | unresolved |",
        "|---|---|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in configs:
        share = f"{_share([c.stable.get('value_share')])} / {_share([c.stable.get('grad_share')])}"
        lines.append(
            f"| `{c.kernel}` | {c.dtype} | {c.labels} | {c.points} | {_stats(c.stable, 'value_ulps')} | "
            f"{_stats(c.stable, 'grad_ulps')} | {share} | {_fmt((c.stable.get('value_bits') or {}).get('max'))} | "
            f"{_fmt((c.naive.get('value_ulps') or {}).get('max'))} | {_fmt((c.naive.get('grad_ulps') or {}).get('max'))} | "
            f"{c.naive_outside} | {len(c.failures)} | {c.unresolved} |"
        )
    return lines


def _keras_table(configs: Sequence[Config]) -> list[str]:
    rows = [c for c in configs if c.keras and (sum(c.keras["value"].values()) or sum(c.keras["grad"].values()))]
    if not rows:
        return ["Keras was not run (TensorFlow not installed)."]
    lines = [
        "| Keras path | dtype | labels | value: exact / explained / unexplained | gradient: exact / explained / unexplained | "
        "max ulps from the mathematics (value / gradient) |",
        "|---|---|---|---|---|---|",
    ]
    for c in rows:
        k = c.keras
        v, g = k["value"], k["grad"]
        lines.append(
            f"| `{c.kernel}` | {c.dtype} | {c.labels} | {v['exact']} / {v['explained']} / {v['unexplained']} | "
            f"{g['exact']} / {g['explained']} / {g['unexplained']} | {_fmt(k['value_max_ulps'])} / {_fmt(k['grad_max_ulps'])} |"
        )
    examples = [e for c in rows for e in c.keras.get("unexplained_examples", [])]
    if examples:
        lines += ["", "Unexplained deviations (first few):", ""] + [f"- {e}" for e in examples[:6]]
    else:
        lines += ["", "Every deviation of Keras from the mathematics on these points is explained by its algorithm."]
    return lines


def _code(d: Derived) -> str:
    from cesym.kernels import _generated

    module = getattr(_generated, d.loss.family)
    out = []
    for suffix in ("value", "grad"):
        fn = getattr(module, f"{d.loss.variant}_{suffix}", None)
        if fn is None:
            continue
        src = inspect.getsource(fn)
        body = [line for line in src.splitlines()]
        # drop the docstring (shown as mathematics above)
        start = next(i for i, line in enumerate(body) if line.strip().startswith('r"""'))
        end = next(i for i in range(start + 1, len(body)) if body[i].strip() == '"""')
        out.append("\n".join(body[:start] + body[end + 1 :]))
    return "\n\n".join(out)


def render_family(
    family: str, derived: Sequence[Derived], configs: Sequence[Config], doc: str, env: dict, seeds: Sequence = ()
) -> str:
    lines = [f"# {family}", "", _doc_to_markdown(doc), ""]
    lines += ["## Conventions", ""]
    lines += [
        "- Rows along `axis` (moved last); inside a sum $x_c$ runs over the row, outside it $x_j$ is the element "
        "at which a gradient is taken.",
        "- 0·log 0 = 0; a zero probability under a positive label gives +inf (no clipping).",
        "- Gradients are d(sum of the returned per-sample values)/d(y_pred).",
        "",
    ]
    for d in derived:
        loss = d.loss
        lines += [f"## {loss.title} (`{loss.name}`)", ""]
        lines += ["Definition:", "", f"$$L = {_tex(d.naive_value)}$$", ""]
        for w, defn in loss.weights.items():
            if defn != w:
                lines += [f"with label weight $${_tex(w)} = {_tex(defn)}$$", ""]
        if d.naive_grad is not None:
            lines += ["Gradient, as SymPy differentiates the definition (the naive gradient):", ""]
            lines += [f"$$\\frac{{\\partial L}}{{\\partial {_tex(loss.prediction)}}} = {_tex(d.naive_grad)}$$", ""]
        lines += ["Stable value, after the rewrites:", "", f"$$L = {_tex(d.value)}$$", ""]
        if d.value_rules:
            lines += [f"- **{r.name}**: {r.why}" for r in d.value_rules] + [""]
        if d.grad is not None:
            lines += ["SymPy's derivative of the stable value (through the primitives' exact derivatives):", ""]
            lines += [f"$$\\frac{{\\partial L}}{{\\partial {_tex(loss.prediction)}}} = {_tex(d.raw_grad)}$$", ""]
            lines += ["Stable gradient, after the rewrites:", "", f"$${_tex(d.grad)}$$", ""]
            if d.grad_rules:
                lines += [f"- **{r.name}**: {r.why}" for r in d.grad_rules] + [""]
        lines += ["Generated code (`cesym/kernels/_generated/" + family + ".py`):", "", "```python", _code(d), "```", ""]
    lines += ["## Where the naive forms break (derived symbolically, per dtype)", ""]
    lines += ["| threshold | float32 | float64 |", "|---|---:|---:|"]
    t32, t64 = _thresholds(np.float32), _thresholds(np.float64)
    for k in t32:
        lines.append(f"| {k} | {t32[k]:.6g} | {t64[k]:.6g} |")
    lines += [""]
    lines += ["## Measured in this run", ""]
    lines += [
        f"Seeded stratified sample ({REPORT_POINTS} rows per kernel and dtype, seed {REPORT_SEED}), against the "
        "mpmath interval reference. Contract: value ≤ 4 + 4κ ulps, gradient ≤ 8 + 4κ ulps. Share of the bound: "
        "for the errors above 4 (value) or 8 ulps (gradient), where κ decides, the largest error divided by its "
        "point's bound (≤ 1: within; –: no error above 4 or 8 ulps, within whatever κ); a huge error in ulps with a small share is a result the "
        "inputs' condition cannot pin down (κ as huge), not a kernel's fault. Naive: the "
        "definition lambdified without rewrites, on the same points.",
        "",
    ]
    lines += _measured_table(configs) + [""]
    lines += ["## Keras", ""]
    lines += [
        "Keras 3 function forms and tf.nn ops on the same points (plain tensors, so the hidden `_keras_logits` shortcut "
        "cannot apply). *Exact*: within the contract of the mathematics; *explained*: outside it but inside the envelope of "
        "Keras's own algorithm (clip to [1e-7, 1 − 1e-7], renormalisation order, the fused softmax gradient "
        "softmax − y, every float rounding and flush to zero it may commit; `cesym/keras_model.py`); *unexplained*: neither.",
        "",
    ]
    lines += _keras_table(configs) + [""]
    if family == "binary_crossentropy" and seeds:  # seeds present: Keras ran
        lines += ["### Keras's clip at the edges", ""]
        lines += [
            "`keras.losses.binary_crossentropy` clips p to [ε, 1 − ε], ε = 1e-7 cast to the dtype (float32: 1 − ε = 1 − 2⁻²³):",
            "",
        ]
        lines += _keras_caps() + [""]
    mine = [s for s in seeds if s.family == family]
    if mine:
        lines += ["## The seeds", ""] + _seed_table(mine) + [""]
    lines += ["## Versions", "", _versions(env), ""]
    return "\n".join(lines).rstrip() + "\n"


def _keras_caps() -> list[str]:
    """What Keras's clip does at the edges, measured against the model (binary cross-entropy)."""
    import math

    from .keras_calls import keras_kernel
    from .keras_model import bounds
    from .registry import case as case_of

    c = case_of("binary_crossentropy", from_logits=False)
    call = keras_kernel(c)
    lines = [
        "| input (p, label) | dtype | Keras value | Keras gradient | the model says | the mathematics |",
        "|---|---|---|---|---|---|",
    ]
    for dtype in (np.float32, np.float64):
        lo, hi = bounds(dtype)
        for p, y, model, math_v in (
            (0.0, 1.0, f"−ln ε = {-math.log(lo):.8g}", "+inf"),
            (1.0, 0.0, f"−ln(1 − (1−ε)) = {-math.log(1 - hi):.8g}" + (" = 23·ln 2" if dtype == np.float32 else ""), "+inf"),
            (1.0, 1.0, f"−ln(1−ε) = {-math.log(hi):.3g}", "0"),
            (1e-12, 1.0, "gradient 0 (clipped)", f"gradient {-1 / 1e-12:.3g}"),
        ):
            pa = np.array([[p]], dtype=dtype)
            ya = np.array([[y]], dtype=dtype)
            v = float(call(ya, pa, {"label_smoothing": 0.0})[0])
            g = float(call(ya, pa, {"label_smoothing": 0.0}, grad=True)[0, 0])
            lines.append(f"| ({p:g}, {y:g}) | {np.dtype(dtype).name} | {v:.8g} | {g:.3g} | {model} | {math_v} |")
    return lines


def _seed_table(rows) -> list[str]:
    lines = ["| seed | call | printed in the post | Keras today | mathematics | cesym | explanation |", "|---|---|---|---|---|---|---|"]
    for s in rows:
        cells = [s.seed, s.what, s.printed, s.keras_today, s.mathematics, s.cesym, s.explanation]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def render_seeds(seeds, env: dict) -> str:
    lines = [
        "# The seeds, reproduced",
        "",
        "Every number printed in `../shared/seeds` (the posts this project grew from): what the post printed, what "
        "Keras returns today for the same call, the mathematics (mpmath, from the same inputs), cesym's kernels, "
        "and why they differ. Checks written as formulas were computed in this run (\"holds\").",
        "",
    ]
    lines += _seed_table(seeds)
    lines += ["", "## Versions", "", _versions(env), ""]
    return "\n".join(lines)


def _doc_to_markdown(doc: str) -> str:
    """The derivation file's docstring, its reStructuredText math turned into GitHub math."""
    import re

    text = doc.strip()
    text = re.sub(r"\.\. math::[ \t]*\n((?:[ \t]+\S.*\n?)+)", lambda m: "$$" + " ".join(m.group(1).split()) + "$$\n", text)
    text = re.sub(r"\.\. math::[ \t]+(\S.*)", lambda m: "$$" + m.group(1).strip() + "$$", text)
    text = re.sub(r":math:`([^`]+)`", r"$\1$", text)
    return text


def _versions(env: dict) -> str:
    keys = ["numpy", "sympy", "mpmath", "tensorflow", "keras"]  # what the numbers depend on
    return ", ".join(f"{k} {env[k]}" for k in keys if k in env)


def render_index(families: dict[str, list[Config]], env: dict) -> str:
    lines = [
        "# cesym reports",
        "",
        "One report per loss family: definition, derivation, stable rewrite, generated code, naive-form thresholds, "
        f"measured errors and the Keras comparison. Generated by `cesym report` ({REPORT_POINTS} rows per kernel and "
        f"dtype, seed {REPORT_SEED}). Max share of the bound: among the errors above 4 ulps (value) or 8 ulps "
        "(gradient), where κ decides, the largest error divided by the contract's bound at its point, "
        "4 + 4κ or 8 + 4κ ulps (≤ 1: within the contract; –: no error above 4 or 8 ulps); it tells an error "
        "from a result the inputs cannot determine, where ulps alone cannot (a gradient that cancels to almost "
        "nothing can be 10^58 ulps off with κ as large).",
        "",
        "| kernel | dtype | value max ulps (all label kinds) | gradient max ulps | max share of the bound (value / gradient) | "
        "naive value / gradient max ulps | contract | Keras max ulps from the mathematics (value / gradient) | "
        "Keras deviations unexplained |",
        "|---|---|---:|---:|---|---|---|---|---:|",
    ]
    for family in sorted(families):
        merged: dict[tuple[str, str], list[Config]] = defaultdict(list)
        for c in families[family]:
            merged[(c.kernel, c.dtype)].append(c)
        for (kernel, dtype), cs in merged.items():
            def mx(attr, key):
                vals = [(getattr(c, attr).get(key) or {}).get("max") for c in cs]
                vals = [v for v in vals if v is not None]
                return max(vals) if vals else None

            ok = all(not c.failures and c.unresolved == 0 for c in cs)
            kv = [c.keras for c in cs if c.keras and sum(c.keras["value"].values())]
            keras_dev = (
                f"{_fmt(max(k['value_max_ulps'] for k in kv))} / {_fmt(max(k['grad_max_ulps'] for k in kv))}" if kv else "–"
            )
            unexplained = sum(k["value"]["unexplained"] + k["grad"]["unexplained"] for k in kv) if kv else "–"
            lines.append(
                f"| [`{kernel}`]({family}.md) | {dtype} | {_fmt(mx('stable', 'value_ulps'))} | {_fmt(mx('stable', 'grad_ulps'))} | "
                f"{_share([c.stable.get('value_share') for c in cs])} / {_share([c.stable.get('grad_share') for c in cs])} | "
                f"{_fmt(mx('naive', 'value_ulps'))} / {_fmt(mx('naive', 'grad_ulps'))} | {'within' if ok else '**outside**'} | "
                f"{keras_dev} | {unexplained} |"
            )
    lines += ["", "The seed posts' numbers, reproduced and explained: [seeds.md](seeds.md).", ""]
    lines += ["## Versions", "", _versions(env), ""]
    return "\n".join(lines)


#: Sample of the error plots: rows per kernel and dtype (hard labels, rows of 3).
PLOT_ROWS = 240


def _plot_family(family: str, keras: bool) -> tuple[str, list[str]] | None:
    """SVG of the value error (log10(1 + ulps)) against the largest input (log10) for kernel, naive
    form and Keras; and a table of where each first exceeds 4 ulps on those points."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .contract import check_batch
    from .sampling import sample
    from .verify import naive_kernel

    cases = [c for c in CASES if c.loss.split(".")[0] == family and c.kernel != "activity_penalty"]
    if not cases:
        return None
    plt.rcParams["svg.hashsalt"] = "cesym"
    fig, axes = plt.subplots(len(cases), 2, figsize=(10, 3.2 * len(cases)), squeeze=False)
    table = [
        "| kernel | dtype | series | points > 4 ulps | smallest \\|input\\| with an error > 4 ulps | largest \\|input\\| sampled |",
        "|---|---|---|---:|---:|---:|",
    ]
    for i, case in enumerate(cases):
        for j, dtype in enumerate((np.float32, np.float64)):
            ax = axes[i][j]
            batch = sample(case, dtype, 3, PLOT_ROWS, seed=REPORT_SEED)
            mags = np.max(np.abs(batch.pred.astype(np.float64)), axis=1)
            if case.elementwise:
                mags = np.abs(batch.pred.astype(np.float64)).ravel()
            series = [("cesym kernel", None, "o", 12), ("naive form", naive_kernel(case), "x", 14)]
            if keras:
                from .keras_calls import keras_kernel

                series.append(("Keras", keras_kernel(case), "+", 18))
            for label, kern, marker, size in series:
                res = check_batch(case, batch, grad=False, kernel=kern)
                err = np.minimum(np.asarray(res.value_ulps, dtype=float), 1e20)  # inf (NaN, overflow) drawn at 1e20
                # log10 on linear axes: matplotlib's log axes overflow near 1e308
                with np.errstate(divide="ignore"):
                    x = np.log10(np.maximum(mags[: len(err)], 1e-320))
                ax.scatter(x, np.log10(1 + err), s=size, marker=marker, label=label, alpha=0.6, linewidths=0.8)
                m = mags[: len(err)]
                bad = err > 4
                first = f"{np.min(m[bad]):.4g}" if np.any(bad) else "none"
                table.append(
                    f"| `{case.id}` | {np.dtype(dtype).name} | {label} | {int(np.sum(bad))} of {len(err)} | {first} | {np.max(m):.3g} |"
                )
            ax.set_ylim(-0.5, 21)
            ax.set_title(f"{case.id}, {np.dtype(dtype).name}", fontsize=9)
            ax.set_xlabel("log10 of the largest |input| of the row")
            ax.set_ylabel("log10(1 + error in ulps)")
            ax.grid(True, which="major", alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue(), table


def render_reports(points: int = REPORT_POINTS, seed: int = REPORT_SEED, jobs: int = 1, keras: bool = True) -> dict[str, str]:
    """Measure and render every report: file name -> Markdown."""
    import ast

    from .define import DERIVATIONS_DIR

    configs = run(points=points, seed=seed, jobs=jobs, keras=keras)
    seeds = []
    if keras:
        from .seeds import seed_numbers

        seeds = seed_numbers()
    env = environment(keras=keras)
    env = {k: v for k, v in env.items() if k not in ("host_floor_ulps", "simd", "machine")}
    by_family: dict[str, list[Config]] = defaultdict(list)
    for c in configs:
        by_family[_family_of(c)].append(c)
    out = {}
    for family, losses in load_all().items():
        path = DERIVATIONS_DIR / f"{family}.py"
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        text = render_family(family, [derive(l) for l in losses], by_family.get(family, []), doc, env, seeds)
        plotted = _plot_family(family, keras)
        if plotted is not None:
            svg, table = plotted
            out[f"{family}_error.svg"] = svg
            text = text.replace(
                "## Keras\n",
                "### Error against input magnitude (value)\n\n"
                f"![value error of the kernel, the naive form and Keras against the largest input of the row]({family}_error.svg)\n\n"
                f"{PLOT_ROWS} seeded rows of 3 per dtype, hard labels; log10(1 + ulps) against log10 of the largest input; "
                "infinite errors (NaN, overflow) at 20. Where each first exceeds 4 ulps on these points (the thresholds "
                "above, measured; an error above 4 ulps is within the contract only where κ allows it):\n\n"
                + "\n".join(table)
                + "\n\n## Keras\n",
                1,
            )
        out[f"{family}.md"] = text
    out["README.md"] = render_index(by_family, env)
    if seeds:
        out["seeds.md"] = render_seeds(seeds, env)
    return out


def write_reports(out_dir: Path = REPORTS_DIR, check: bool = False, **kw) -> list[str]:
    """Write (or, with ``check``, compare) the reports; return the names that changed.

    Everything is measured and rendered first; the files are then written as one step
    (:func:`cesym.files.write_texts`: atomic, the umask's mode, all or none on Ctrl-C).
    """
    from .files import check_output_dir, write_texts

    out_dir = Path(out_dir)
    if not check:
        check_output_dir(out_dir, "reports directory")
    rendered = render_reports(**kw)
    if check:
        return [
            name for name, text in sorted(rendered.items())
            if not (out_dir / name).exists() or (out_dir / name).read_text(encoding="utf-8") != text
        ]
    out_dir.mkdir(exist_ok=True)
    changed = write_texts({out_dir / name: text for name, text in sorted(rendered.items())}, what="report")
    return [p.name for p in changed]
