"""Report: one Markdown file per loss family in ``reports/``, and an index, from what was measured.

Each family report gives the definition and its conventions, the gradient as SymPy derived it,
the rewrites that made it stable and why, the generated code, the overflow thresholds of the
naive forms per dtype (derived symbolically), and what this run measured: the kernels' and
the naive forms' errors in ulps and bits, and how Keras deviates (exact / explained by its own
algorithm / unexplained). Nothing is asserted that the run did not measure.

Rendering is a pure function of the sources (``derivations/``, the generated kernels) and the
record of what the host measured (:mod:`cesym.report.record`, committed as
``reports/measured.json``): the same sources and record give the same bytes, SVGs included (no
dates, a fixed hash salt). ``cesym report --check`` (:mod:`cesym.report.check`) compares the
rendering exactly and the measurements by what they promise. Files are written atomically and
only when their bytes change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sympy as sp

from ..define.loss import DERIVATIONS_DIR, load_all
from ..derive.gradients import Derived, derive, from_record
from ..generate.codegen import GENERATED_DIR
from ..define.primitives import Elem, RestSum, RowMax, RowSum
from ..keras.model import CLIP_EDGES_NOTE, semantic_notes
from ..verify.contract import GRAD_BASE, VALUE_BASE
from ..files import write_text
from .record import ERR_CAP, RECORD_NAME, dumps, measure
from .thresholds import confirm, family_thresholds

__all__ = ["REPORTS_DIR", "render_reports", "write_reports", "REPORT_POINTS", "REPORT_SEED"]

REPORTS_DIR = Path(__file__).resolve().parents[2] / "reports"
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


def _family_thresholds(derived: Sequence[Derived]) -> list:
    """The thresholds of the family's naive values and gradients (label weights written out)."""
    exprs = [e for d in derived for e in (d.naive_value, d.naive_grad)]
    weights = {w: defn for d in derived for w, defn in d.loss.weight_definitions.items()}
    return family_thresholds(exprs, weights)


def _panel_thresholds(derived: Sequence[Derived], record: dict) -> dict[str, list]:
    """Each plotted kernel's own thresholds (of its loss variant), by kernel id."""
    by_loss = {}
    for d in derived:
        w = d.loss.weight_definitions
        by_loss[d.loss.name] = family_thresholds([d.naive_value, d.naive_grad], w)
    return {c["kernel"]: by_loss[c["loss"]] for c in record["configs"] if c.get("loss") in by_loss}


def _threshold_section(derived: Sequence[Derived]) -> list[str]:
    """The family's own thresholds (:mod:`cesym.report.thresholds`), each with its confirmation
    in float32 and float64."""
    found = _family_thresholds(derived)
    lines = ["## Where the naive forms break (derived from this family's expressions, per dtype)", ""]
    if not found:
        return lines + [
            "None of the operations looked for (exp, 1 + exp, log(1 ± x), an integer power, cosh, 1/x, of an input "
            "or a difference of two) appears in this family's naive value or gradient.",
            "",
        ]
    lines += [
        "The operations of the naive value and gradient (the definition in elementary functions, as written) that "
        "overflow, underflow or round an argument away at finite inputs, and the inputs where they do: the exact "
        "solution, rounded. Each is confirmed by the operation computed in that dtype just beyond the threshold and "
        "just inside it (1 % of the input away, or a factor 2 for the thresholds that are powers); the class of the "
        "result is shown (`cesym/report/thresholds.py`).",
        "",
        "| operation | breaks | float32 | float64 | computed in float32 | computed in float64 |",
        "|---|---|---|---|---|---|",
    ]
    for t in found:
        cells = []
        for dt in (np.float32, np.float64):
            ok, text = confirm(t, dt)
            cells.append(text if ok else f"**not confirmed**: {text}")
        row = [f"`{t.operation}`", t.breaks, t.condition(np.float32), t.condition(np.float64), *cells]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")  # |x| inside a table cell
    return lines + [""]


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


def _family_of(cfg: dict) -> str:
    return cfg["loss"].split(".")[0]


def _points(c: dict, points: int) -> str:
    """The points cell: a batch reduction is one value per batch, and its sample is many small batches."""
    from ..verify.sampling import PENALTY_LAMS, PENALTY_MAX_BATCH

    if not c["batch"]:
        return str(c["points"])
    rows = -(-points // c["label_kinds"])
    lams = ", ".join(f"{v:g}" for v in PENALTY_LAMS)
    return (
        f"{c['points']} (the penalties of batches of 1 to {PENALTY_MAX_BATCH} of {rows} rows, "
        f"λ in {{{lams}}}; gradient: every element)"
    )


#: At most this many chain-rule steps per kernel (the outermost first).
MAX_STEPS = 10


def _chain_steps(d: Derived) -> list[str]:
    """The derivative of each function node, row reduction and quotient of the stable value with
    respect to the prediction's element, outermost first, as SymPy computes it: what the chain
    rule multiplies together into the derivative shown next."""
    x = d.loss.prediction
    out, seen = [], set()
    # (siblings in SymPy's sort order: the args of And, and of Add and Mul in some builds, follow
    # the hash seed, and the report must be the same in every process)
    for node in sp.preorder_traversal(d.value, keys=True):
        if node in seen or not node.has(x):
            continue
        if isinstance(node, (RowSum, RowMax)) or type(node).__name__ in ("SumSquares", "Norm2"):
            kind = "row reduction (of its terms, only the one at c = j depends on the element)"
        elif isinstance(node, sp.Pow) and node.exp.is_negative:
            kind = "quotient"
        elif isinstance(node, sp.Function):
            kind = type(node).__name__
        else:
            continue
        seen.add(node)
        try:
            dn = sp.diff(node, x)
        except Exception:  # noqa: BLE001 - a node SymPy cannot differentiate alone is left out
            continue
        if dn == 0 or dn.has(sp.Derivative):
            continue
        out.append(f"- {kind}: $\\frac{{\\partial}}{{\\partial {_tex(x)}}} {_tex(node)} = {_tex(dn)}$")
        if len(out) == MAX_STEPS:
            break
    return out


def _measured_table(configs: Sequence[dict], points: int) -> list[str]:
    lines = [
        "| kernel | dtype | labels | points | value ulps avg / p99 / max | gradient ulps avg / p99 / max | "
        "max share of the bound (value / gradient) | value bits max | failures | unresolved |",
        "|---|---|---|---:|---|---|---|---:|---:|---:|",
    ]
    for c in configs:
        st = c["stable"]
        share = f"{_share([st.get('value_share')])} / {_share([st.get('grad_share')])}"
        lines.append(
            f"| `{c['kernel']}` | {c['dtype']} | {c['labels']} | {_points(c, points)} | {_stats(st, 'value_ulps')} | "
            f"{_stats(st, 'grad_ulps')} | {share} | {_fmt((st.get('value_bits') or {}).get('max'))} | "
            f"{c['failures']} | {c['unresolved']} |"
        )
    lines += [
        "",
        "The naive forms on the same points (the definition as written, computed in the input's dtype):",
        "",
        "| kernel | dtype | labels | naive value ulps max | naive gradient ulps max | points outside the contract |",
        "|---|---|---|---:|---:|---:|",
    ]
    for c in configs:
        nv = c["naive"]
        lines.append(
            f"| `{c['kernel']}` | {c['dtype']} | {c['labels']} | {_fmt((nv.get('value_ulps') or {}).get('max'))} | "
            f"{_fmt((nv.get('grad_ulps') or {}).get('max'))} | {c['naive_outside']} |"
        )
    worst = [w for c in configs for w in _worst_lines(c)]
    if worst:
        lines += ["", "Where each maximum above was measured (the inputs of the worst point, what was computed, the exact "
                  "value to 17 digits, and the point's condition number κ; no κ where the exact value is not finite):", ""]
        lines += worst
    return lines


def _worst_lines(c: dict) -> list[str]:
    """One line per maximum of a configuration: the kernel's and the naive form's, value and gradient."""
    out = []
    for series, key in (("kernel", "stable"), ("naive form", "naive")):
        for what in ("value", "grad"):
            w = (c.get(key) or {}).get(f"{what}_worst")
            if not w:
                continue
            kappa = "" if not np.isfinite(w["kappa"]) else f", κ = {w['kappa']:.3g}"
            label = "gradient" if what == "grad" else "value"
            out.append(
                f"- `{c['kernel']}` {c['dtype']} {c['labels']}, {series} {label}: {_fmt(w['ulps'])} ulps at {w['at']}: "
                f"computed {w['computed']!r}, exact {w['exact']}{kappa}"
            )
    return out


def _keras_table(configs: Sequence[dict], keras_ran: bool, family_seeds: bool) -> list[str]:
    rows = [c for c in configs if c["keras"] and (sum(c["keras"]["value"].values()) or sum(c["keras"]["grad"].values()))]
    if not keras_ran:
        return ["Keras was not run (TensorFlow not installed)."]
    if not rows:
        return [
            "Keras has no loss function for this family, so none is compared on these points"
            + ("; its nearest form is compared in the seeds' table below." if family_seeds else ".")
        ]
    lines = [
        "| Keras path | dtype | labels | value: exact / explained / ambiguous / unexplained | gradient: exact / explained / ambiguous / unexplained | "
        "max ulps from the mathematics (value / gradient) | reproduced bit for bit by the replay (value / gradient) |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        k = c["keras"]
        v, g = k["value"], k["grad"]
        lines.append(
            f"| `{c['kernel']}` | {c['dtype']} | {c['labels']} | {v['exact']} / {v['explained']} / {v.get('ambiguous', 0)} / {v['unexplained']} | "
            f"{g['exact']} / {g['explained']} / {g.get('ambiguous', 0)} / {g['unexplained']} | {_fmt(k['value_max_ulps'])} / {_fmt(k['grad_max_ulps'])} | "
            f"{_replayed_share(k.get('replayed', 0), k.get('replay_compared', 0))} / {_replayed_share(k.get('grad_replayed', 0), k.get('grad_replay_compared', 0))} |"
        )
    examples = [e for c in rows for e in c["keras"].get("unexplained_examples", [])]
    if examples:
        lines += ["", "Unexplained deviations (first few):", ""] + [f"- {e}" for e in examples[:6]]
    else:
        lines += ["", "Every deviation of Keras from the mathematics on these points is explained by its algorithm."]
    verdicts = _keras_verdicts(rows)
    if verdicts:
        lines += ["", "In words, per Keras path and dtype (all label kinds together):", ""] + verdicts
    return lines


def _replayed_share(same: int, compared: int) -> str:
    """``same`` of ``compared`` as a percentage (— where nothing was replayed)."""
    return "—" if not compared else f"{100 * same / compared:.0f} % ({same}/{compared})"


def _keras_verdicts(rows: Sequence[dict]) -> list[str]:
    """One sentence per (Keras path, dtype): how much of it is within the contract, what the
    rest is, and the worst value and gradient deviation with its point, in ulps and absolute."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for c in rows:
        groups[(c["kernel"], c["dtype"])].append(c)
    out = []
    for (kernel, dtype), cs in groups.items():
        parts = []
        for part, noun in (("value", "values"), ("grad", "gradient elements")):
            tot = {k: sum(c["keras"][part].get(k, 0) for c in cs) for k in ("exact", "explained", "ambiguous", "unexplained")}
            n = sum(tot.values())
            if not n:
                continue
            text = f"{tot['exact']} of {n} {noun} within the contract of the mathematics"
            if tot["explained"] or tot["unexplained"] or tot["ambiguous"]:
                text += f", {tot['explained']} explained by Keras's algorithm"
                if tot["ambiguous"]:
                    text += f", {tot['ambiguous']} where the model's bound also holds the exact value (explained by nothing)"
                text += f", {tot['unexplained']} unexplained"
            worst = [(c["keras"].get(f"{part}_worst"), c["labels"]) for c in cs if c["keras"].get(f"{part}_worst")]
            if worst:
                w, labels = max(worst, key=lambda t: (np.nan_to_num(t[0]["ulps"], nan=np.inf)))
                if w["ulps"] > (VALUE_BASE if part == "value" else GRAD_BASE):
                    text += (
                        f"; the largest deviation {_fmt(w['ulps'])} ulps (absolute {_fmt(w['abs'])}, {w['status']}, "
                        f"{labels} labels) at {w['at']}: Keras {w['keras']!r}, exact {w['exact']}"
                    )
                else:
                    text += f"; at most {_fmt(w['ulps'])} ulps (absolute {_fmt(w['abs'])})"
            parts.append(text)
        said = []
        for pre, noun in (("", "values"), ("grad_", "gradient elements")):
            compared = sum(c["keras"].get(pre + "replay_compared", 0) for c in cs)
            if compared:
                same = sum(c["keras"].get(pre + "replayed", 0) for c in cs)
                apart = max(c["keras"].get(pre + "replay_apart", 0.0) for c in cs)
                said.append(f"{same} of {compared} {noun}" + (
                    f" (the others within {_fmt(100 * apart)} % of its bound)" if same < compared and apart <= 1 else
                    f" (the others up to {_fmt(apart)} times its bound)" if same < compared and apart > 1 else ""))
        if said:
            parts.append(f"Keras's algorithm replayed in {dtype} reproduces " + " and ".join(said) + " bit for bit")
        if parts:
            out.append(f"- `{kernel}` {dtype}: " + "; ".join(parts) + ".")
    return out


#: What each declared prediction domain admits (cesym.define.declare.DOMAINS), as the public
#: functions check it.
_DOMAIN_WORDS = {
    "real": "any real number",
    "unit": "probabilities in [0, 1] (0 and 1 included: the domain's edges)",
    "simplex": "non-negative numbers, each row renormalised to sum to 1 (0 included: the domain's edge)",
    "positive": "non-negative numbers (0 included: the domain's edge)",
    "log1p": "numbers >= −1 (−1 included: the domain's edge, where log(1 + p) is −inf)",
}
_LABEL_WORDS = {
    "binary": "any real numbers (hard 0/1 or soft labels in [0, 1]; others are taken as given)",
    "distribution": "any real numbers (one-hot or soft rows; a row need not sum to 1: the mathematics is computed as given)",
    "index": "integer classes in 0..C − 1 (where the function takes `ignore_class`, a row with that label costs 0)",
    "real": "any real numbers",
    "count": "any real numbers (counts: non-negative in Poisson's model)",
    "sign": "any real numbers (±1 classes, or 0/1, converted as Keras converts them)",
}


def _data(text: str, name: str, default):
    """The plain-data assignment ``name`` of a generated module's text (read, not imported)."""
    import ast

    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    return default


def _public(text: str) -> list[dict]:
    """The ``PUBLIC`` list of a generated module's text."""
    return _data(text, "PUBLIC", [])


def _label_words(kind: str, domain: dict | None, arg: str) -> str:
    """What the public functions accept as labels: the kind's words, or the set where the
    definition is real (:mod:`cesym.derive.label_domain`), which they check."""
    if not domain:
        return _LABEL_WORDS.get(kind, kind)
    from ..kernels._validate import _words

    return f"{_words(domain['intervals'], 'y')}, where `{domain['because']}` is real (others are refused, naming `{arg}`)"


def _validity(d: Derived, generated: str, configs: Sequence[dict]) -> list[str]:
    """Where the kernel of ``d`` is valid: the inputs its public functions accept (declared and
    checked), what ±inf and NaN give (the function's own words), how float32 is computed, and
    what this run measured at the extended reals. ``generated``: its generated module's text."""
    variant = d.loss.variant
    public = _public(generated)
    label_domain = _data(generated, "CORES", {}).get(variant, {}).get("label_domain")
    out = []
    for pub in public:
        for v in pub["variants"]:
            if v["loss"] != variant:
                continue
            args = pub["args"]
            when = ", ".join(f"{k}={val!r}" for k, val in v["when"].items())
            pred = args[-1]
            text = f"`{pub['name']}({', '.join(args)}{', ' + when if when else ''})`: `{pred}` {_DOMAIN_WORDS.get(v['domain'], v['domain'])}"
            if pub["labels"] != "none":
                text += f"; `{args[0]}` {_label_words(pub['labels'], label_domain, args[0])}"
            ranged = [f"`{k['name']}` in [{k['range'][0]:g}, {k['range'][1]:g}]" for k in pub["keywords"] if k.get("range")]
            if ranged:
                text += "; " + ", ".join(ranged)
            out.append(f"- {text}.")
    if not out:
        return []
    mine = [c for c in configs if c.get("loss") == d.loss.name]
    ext = [c["extended"] for c in mine if c.get("extended")]
    tested = sum(x["points"] for x in ext)
    off = sum(x["failures"] for x in ext)
    docs = [_doc_to_markdown(p["doc"]).strip().replace("\n", " ") for p in public if any(v["loss"] == variant for v in p["variants"])]
    tested_parts = [k for k in ("value", "grad") if f"def {variant}_{k}_checked(" in generated]
    outside = sum(int(c.get("failures") or 0) for c in mine)
    unresolved = sum(int(c.get("unresolved") or 0) for c in mine)
    points = sum(int(c.get("points") or 0) for c in mine)
    # the claim is the run's: a kernel with outputs outside the contract is said to miss it
    if not mine:
        claim = ("**Where it is valid.** The kernels are built to the accuracy contract on every finite input in the "
                 "domain below (not measured in this run); anything outside it is an error naming the argument:")
    elif outside:
        claim = (f"**Where it is valid.** The kernels do **not** meet the accuracy contract: this run measured {outside} "
                 f"output(s) outside it (the table below; `cesym verify` fails). The public functions accept the domain "
                 "below; anything outside it is an error naming the argument:")
    else:
        claim = (f"**Where it is valid.** The kernels are built to the accuracy contract on every finite input in the "
                 f"domain below, and this run measured no output outside it ({points} sampled points"
                 + (f"; {unresolved} reference value(s) unresolved" if unresolved else "")
                 + "); anything outside the domain is an error naming the argument:")
    lines = [claim, ""] + out + [""]
    lines += [f"> {doc}" for doc in docs if doc] + ([""] if any(docs) else [])
    if ext:
        lines += [f"At ±inf, the domain's edges and NaN, measured in this run: {tested} points, {off} output(s) (values and "
                  "gradient elements) off the limits of the mathematics (`cesym/verify/extended.py`).", ""]
    if tested_parts:
        what = " and ".join({"value": "values" + (" (rows of up to 16 classes; wider rows rounded once)" if d.loss.row_level else ""),
                             "grad": "gradients"}[k] for k in tested_parts)
        lines += [f"float32 inputs are computed in float64; the float32 {what} are correctly rounded: each output is "
                  "tested against the float64 error bound and the few too close to a float32 rounding boundary are "
                  "recomputed exactly (`cesym/kernels/_rounding.py`).", ""]
    else:
        lines += ["float32 inputs are computed in float64 and the result rounded once to float32 (no rounding test: "
                  "within the contract, not always the correctly rounded float32).", ""]
    return lines


def _code(d: Derived, text: str) -> str:
    """The generated functions of ``d``, read from the generated module's text, docstrings dropped."""
    import ast

    lines = text.splitlines()
    functions = {n.name: n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef)}
    out = []
    for suffix in ("value", "grad"):
        fn = functions.get(f"{d.loss.variant}_{suffix}")
        if fn is None:
            continue
        body = lines[fn.lineno - 1 : fn.end_lineno]
        # drop the docstring (shown as mathematics above)
        start = next(i for i, line in enumerate(body) if line.strip().startswith('r"""'))
        end = next(i for i in range(start + 1, len(body)) if body[i].strip() == '"""')
        out.append("\n".join(body[:start] + body[end + 1 :]))
    return "\n\n".join(out)


#: Stated once, in the index; every family report links to them.
CONVENTIONS = (
    "- Rows along `axis` (moved last); inside a sum $x_c$ runs over the row, outside it $x_j$ is the element "
    "at which a gradient is taken. $C$ is the row's length (the number of classes).",
    "- 0·log 0 = 0; a zero probability under a positive label gives +inf (no clipping).",
    "- Gradients are d(sum of the returned per-sample values)/d(y_pred).",
    "- $\\varepsilon$ is a loss's label smoothing; Keras's clip constant $10^{-7}$ is written as a number.",
    "- Each kernel's domain (probabilities in [0, 1], positive rates, any real) is in its docstring; ±inf "
    "inputs give the mathematics' limits, NaN propagates, and anything else outside the domain is an error "
    "that names the argument.",
)


def _float32_rounding(generated_dir: Path = GENERATED_DIR) -> str:
    """Which float32 kernels are correctly rounded (a rounding test, ``_checked`` forms) and which
    round their float64 result once, read from the generated modules."""
    import ast

    tested, once = [], []
    for path in sorted(Path(generated_dir).glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        cores = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                      and any(getattr(t, "id", None) == "CORES" for t in n.targets)), {})
        for variant in cores:
            (tested if f"{variant}_value_checked" in names else once).append(f"`{path.stem}.{variant}`")
    return (
        "- float32 inputs are computed in float64. Kernels with a rounding test "
        f"({', '.join(tested)}) test each float32 output against the float64 error bound and recompute the "
        "few that lie too close to a float32 rounding boundary exactly: their outputs are correctly rounded "
        "(values of rows up to 16 classes; wider rows' values are rounded once); the exhaustive sections check "
        "every float32 input of the one-input kernels. The others "
        f"({', '.join(once)}) round their float64 result once."
    )


def render_family(
    family: str, derived: Sequence[Derived], record: dict, doc: str, generated: str, generated_name: str, keras: bool = True
) -> str:
    """One family's report from its derivations, its generated module's text and the measured
    ``record``; ``keras``: the family declares a Keras counterpart (else no Keras section)."""
    configs = [c for c in record["configs"] if _family_of(c) == family]
    lines = [f"# {family}", "", _doc_to_markdown(doc), ""]
    lines += ["Notation and conventions, the same for every family: [README.md](README.md#conventions).", ""]
    for d in derived:
        loss = d.loss
        lines += [f"## {loss.title} (`{loss.name}`)", ""]
        lines += ["Definition:", "", f"$$L = {_tex(d.naive_value)}$$", ""]
        for w, defn in loss.weights.items():
            if defn != w:
                lines += [f"with label weight ${_tex(w)} = {_tex(defn)}$", ""]
        if d.naive_grad is not None:
            lines += ["Gradient, as SymPy differentiates the definition (the naive gradient):", ""]
            lines += [f"$$\\frac{{\\partial L}}{{\\partial {_tex(loss.prediction)}}} = {_tex(d.naive_grad)}$$", ""]
        lines += ["Stable value, after the rewrites:", "", f"$$L = {_tex(d.value)}$$", ""]
        if d.value_rules:
            lines += [f"- **{r.name}**: {r.why}" for r in d.value_rules] + [""]
        if d.grad is not None:
            steps = _chain_steps(d)
            if steps:
                lines += ["The chain rule, node by node: each function, row reduction and quotient of the stable "
                          "value, differentiated by SymPy (the primitives' derivatives are their `fdiff`):", ""]
                lines += steps + [""]
            if any(r.name == "one-minus-ratio" for r in d.value_rules):
                lines += ["SymPy's derivative of the stable value, each quotient of one-minus-ratio differentiated as the "
                          "-N/D it stands for ((D - N)/D = F/D differentiates into F'/D - F·D'/D², two terms that cancel "
                          "where a label is 0):", ""]
            else:
                lines += ["SymPy's derivative of the stable value (through the primitives' exact derivatives):", ""]
            lines += [f"$$\\frac{{\\partial L}}{{\\partial {_tex(loss.prediction)}}} = {_tex(d.raw_grad)}$$", ""]
            lines += ["Stable gradient, after the rewrites:", "", f"$${_tex(d.grad)}$$", ""]
            if d.grad_rules:
                lines += [f"- **{r.name}**: {r.why}" for r in d.grad_rules] + [""]
        lines += [f"Generated code (`{generated_name}`):", "", "```python", _code(d, generated), "```", ""]
        lines += _validity(d, generated, configs)
    lines += _threshold_section(derived)
    lines += ["## Measured in this run", ""]
    lines += [
        f"Seeded stratified sample ({record['points']} rows per kernel and dtype, seed {record['seed']}), against the "
        "mpmath interval reference. Contract: value ≤ 4 + 4κ ulps, gradient ≤ 8 + 4κ ulps. Share of the bound: "
        "for the errors above 4 (value) or 8 ulps (gradient), where κ decides, the largest error divided by its "
        "point's bound (≤ 1: within; –: no error above 4 or 8 ulps, within whatever κ); a huge error in ulps with a small share is a result the "
        "inputs' condition cannot pin down (κ as huge), not a kernel's fault. Naive: the "
        "definition lambdified without rewrites, on the same points.",
        "",
    ]
    lines += _measured_table(configs, record["points"]) + [""]
    if keras:
        lines += _keras_section(family, configs, record)
    else:
        lines += ["## Keras", "", "No Keras counterpart is declared for this loss (`PUBLIC` in its derivation file): nothing to compare.", ""]
    lines += ["## Versions", "", _versions(record["versions"]), ""]
    return "\n".join(lines).rstrip() + "\n"


def _keras_section(family: str, configs: Sequence[dict], record: dict) -> list[str]:
    """The Keras comparison of a family: its table, Keras's clip at the edges, the seeds' numbers."""
    lines = ["## Keras", ""]
    lines += [
        "Keras 3 function forms and tf.nn ops on the same points (plain tensors, so the hidden `_keras_logits` shortcut "
        "cannot apply). *Exact*: within the contract of the mathematics; *explained*: outside it but within the bound of "
        "Keras's algorithm replayed in its dtype, operation by operation (the cross-entropies' values: "
        "`cesym/keras/replay.py`, 16 ulps of the terms' scale; their gradients, TensorFlow's autodiff through Keras's ops "
        "or the fused softmax ops' softmax − y, and every other loss's declared algorithm, values and "
        "TensorFlow's gradient ops: `cesym/keras/declared.py`, where the bound counts what the replay cannot know: "
        "8 ulps per exp/log/σ/pow for TensorFlow's own implementations, the order of sums of more than two terms, "
        "flushed subnormals, and no bound where a branch is undecided) or, where there is no replay or its bound does "
        "not hold, inside the envelope of "
        "Keras's own algorithm (clip to [1e-7, 1 − 1e-7], renormalisation order, the fused softmax gradient "
        "softmax − y, every float rounding and flush to zero it may commit; `cesym/keras/model.py`) and the exact "
        "value outside it; *ambiguous*: inside that bound or envelope, but so is the exact value (the model is too wide "
        "there to tell Keras's algorithm from the mathematics: it explains nothing); *unexplained*: neither.",
        "",
    ]
    mine = [s for s in record["seeds"] if s["family"] == family]
    lines += _keras_table(configs, record["keras"], bool(mine)) + [""]
    notes = semantic_notes(family, configs)
    if notes:
        lines += ["### Where Keras computes another function", ""] + notes + [""]
    caps = [r for r in record["caps"] if r.get("family") == family]
    if caps:
        lines += ["### Keras's clip at the edges", ""]
        lines += [CLIP_EDGES_NOTE[family], ""]
        lines += _keras_caps(caps) + [""]
    if mine:
        lines += ["## The seeds", ""] + _seed_table(mine) + [""]
    return lines


def _keras_caps(rows: Sequence[dict]) -> list[str]:
    """What Keras's clip does at the edges, measured against the model (the cross-entropies on probabilities)."""
    lines = [
        "| input (p, label) | dtype | Keras value | Keras gradient | the model says | the mathematics |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        where = r.get("row") or f"({r['p']:g}, {r['y']:g})"
        lines.append(
            f"| {where} | {r['dtype']} | {r['value']:.8g} | {r['grad']:.3g} | {r['model']} | {r['math']} |"
        )
    return lines


def _seed_table(rows: Sequence[dict]) -> list[str]:
    lines = ["| seed | call | printed in the post | Keras today | mathematics | cesym | explanation |", "|---|---|---|---|---|---|---|"]
    keys = ("seed", "what", "printed", "keras_today", "mathematics", "cesym", "explanation")
    for s in rows:
        lines.append("| " + " | ".join(s[k].replace("|", "\\|") for k in keys) + " |")
    return lines


def render_seeds(record: dict) -> str:
    from .seeds import POSTS

    lines = [
        "# The seeds, reproduced",
        "",
        "Every number printed in the posts this project grew from (copies kept outside the repository):",
        "",
    ]
    lines += [f"- {seed}: {post}" for seed, post in POSTS.items()]
    lines += [
        "",
        "For each: what the post printed, what Keras returns today for the same call, the mathematics (mpmath, "
        "exact, from the inputs the post used: float64 NumPy arrays, or float32 tensors where it made them), cesym's "
        "kernels, and why they differ. Checks written as formulas were computed in this run (\"holds\").",
        "",
    ]
    lines += _seed_table(record["seeds"])
    lines += ["", "## Versions", "", _versions(record["versions"]), ""]
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


def _keras_counts(cs: Sequence[dict], part: str) -> tuple[int, int, int, float, str]:
    """Keras's exact / explained / unexplained counts of ``part`` ("value", "grad") over
    configurations ``cs``, its largest error in ulps and the label kind where it is largest."""
    ks = [(c["labels"], c["keras"]) for c in cs if c["keras"]]
    e = sum(k[part]["exact"] for _, k in ks)
    x = sum(k[part]["explained"] + k[part].get("ambiguous", 0) for _, k in ks)  # the deviations the model holds
    u = sum(k[part]["unexplained"] for _, k in ks)
    worst = max(ks, key=lambda lk: lk[1][f"{part}_max_ulps"], default=(None, None))
    mx = worst[1][f"{part}_max_ulps"] if worst[1] else 0.0
    return e, x, u, mx, worst[0] or "–"


def _answers(record: dict, limits: dict | None = None) -> list[str]:
    """The three questions a reader comes with (:data:`cesym.report.seeds.QUESTIONS`), answered
    from this run's record, with links."""
    from .seeds import QUESTIONS

    lines = ["## Three questions, answered", ""]
    number, fam = QUESTIONS["seed"]
    seed = next((s for s in record["seeds"] if s["seed"] == number and s["family"] == fam), None)
    if seed is not None:
        lines.append(
            f"- **Why is my loss {seed['printed']} and not −ln 0.3?** {seed['explanation']} Keras 3 today: "
            f"{seed['keras_today']}; the mathematics: {seed['mathematics']}; cesym: {seed['cesym']} "
            "([seeds.md](seeds.md))."
        )
    family, title = QUESTIONS["keras_family"]
    dtype = QUESTIONS["dtype"]
    asked = [c for c in record["configs"] if _family_of(c) == family and c["dtype"] == dtype]
    parts = []
    for kernel in sorted({c["kernel"] for c in asked}):
        cs = [c for c in asked if c["kernel"] == kernel]
        if not any(c["keras"] for c in cs):
            continue
        source = "logits" if "from_logits=True" in kernel else "probabilities"
        ve, vx, vu, vm, vl = _keras_counts(cs, "value")
        ge, gx, gu, gm, gl = _keras_counts(cs, "grad")
        parts.append(
            f"from {source}, {ve} of {ve + vx + vu} values within the contract (4 ulps + 4κ of the mathematics), "
            f"{vx} off by up to {_fmt(vm)} ulps ({vl} labels); {ge} of {ge + gx + gu} gradient elements within it, "
            f"{gx} off by up to {_fmt(gm)} ulps ({gl} labels); {vu + gu} not explained by Keras's own algorithm"
        )
    if parts:
        lines.append(
            f"- **Is Keras's {title} accurate in {dtype}?** Measured on this run's points (hard, soft and "
            "smoothed labels): " + "; ".join(parts) + ". Where it departs, its clip of the probabilities "
            "to [1e-7, 1 − 1e-7] and its fused gradient softmax − y (which assumes labels summing to 1) are the "
            f"causes ([{family}.md]({family}.md#keras))."
        )
    naive = [c for c in record["configs"] if c["dtype"] == dtype and c["naive"].get("value_ulps")]
    inf = sorted({c["kernel"] for c in naive if not np.isfinite(c["naive"]["value_ulps"]["max"])})
    big = sorted({c["kernel"] for c in naive if np.isfinite(c["naive"]["value_ulps"]["max"]) and c["naive"]["value_ulps"]["max"] > 4}
                 - set(inf))
    ok = sorted({c["kernel"] for c in naive} - set(inf) - set(big))
    lines.append(
        f"- **Where does the naive formula break in {dtype}?** The definition evaluated as written in {dtype} "
        f"(column 'naive' below) overflows or loses every digit (inf ulps) in {len(inf)} kernels "
        f"({', '.join(f'`{k}`' for k in inf)}), exceeds 4 ulps in {len(big)} more ({', '.join(f'`{k}`' for k in big)}) "
        f"and stays within 4 ulps in {len(ok)}. "
        + (f"The {dtype} limits behind it, each derived from the families' own naive expressions and confirmed by the "
           f"operation computed in {dtype} on both sides (each report's section 'Where the naive forms break' gives "
           "its own, in float32 and float64):" if limits else
           "Each report's section 'Where the naive forms break' gives its limits, in float32 and float64.")
    )
    for (op, breaks, cond), fams in (limits or {}).items():
        lines.append(f"  - `{op}`: {breaks} at {cond} ({', '.join(f'[{f}]({f}.md)' for f in fams)})")
    return lines + [""]


def index_limits(derived_by_family: dict[str, Sequence[Derived]], dtype=np.float32) -> dict[tuple, list[str]]:
    """The naive forms' thresholds of every family confirmed in ``dtype`` (:func:`confirm`), one
    entry per (operation, what happens, where) with the families it appears in."""
    out: dict[tuple, list[str]] = {}
    for family, derived in derived_by_family.items():
        for t in _family_thresholds(derived):
            if confirm(t, dtype)[0]:
                out.setdefault((t.operation, t.breaks, t.condition(dtype)), []).append(family)
    return out


def render_index(record: dict, limits: dict | None = None) -> str:
    points, seed = record["points"], record["seed"]
    lines = [
        "# cesym reports",
        "",
        *_answers(record, limits),
        "One report per loss family: definition, derivation, stable rewrite, generated code, naive-form thresholds, "
        f"measured errors and the Keras comparison. Generated by `cesym report` ({points} rows per kernel and "
        f"dtype, seed {seed}). Max share of the bound: among the errors above 4 ulps (value) or 8 ulps "
        "(gradient), where κ decides, the largest error divided by the contract's bound at its point, "
        "4 + 4κ or 8 + 4κ ulps (≤ 1: within the contract; –: no error above 4 or 8 ulps); it tells an error "
        "from a result the inputs cannot determine, where ulps alone cannot (a gradient that cancels to almost "
        "nothing can be 10^58 ulps off with κ as large).",
        "",
        "The measured figures are those of the machine that ran `cesym report`: NumPy's SIMD exp/log and "
        "TensorFlow's kernels differ in the last bits between CPUs, so another machine measures other last digits. "
        f"They are recorded in `{RECORD_NAME}`; "
        "`cesym report --check` re-renders every file from the sources and that record (byte for byte) and checks "
        "the committed and a fresh measurement by what they promise: every point within the contract, no reference "
        "unresolved, no unexplained Keras deviation, the same points and series.",
        "",
        "## Conventions",
        "",
        *CONVENTIONS,
        _float32_rounding(),
        "",
        "## Every kernel",
        "",
        "| kernel | dtype | value max ulps (all label kinds) | gradient max ulps | max share of the bound (value / gradient) | "
        "naive value / gradient max ulps | contract | Keras max ulps from the mathematics (value / gradient) | "
        "Keras deviations unexplained |",
        "|---|---|---:|---:|---|---|---|---|---:|",
    ]
    by_family: dict[str, list[dict]] = defaultdict(list)
    for c in record["configs"]:
        by_family[_family_of(c)].append(c)
    for family in sorted(by_family):
        merged: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for c in by_family[family]:
            merged[(c["kernel"], c["dtype"])].append(c)
        for (kernel, dtype), cs in merged.items():
            def mx(part, key):
                vals = [(c[part].get(key) or {}).get("max") for c in cs]
                vals = [v for v in vals if v is not None]
                return max(vals) if vals else None

            ok = all(not c["failures"] and c["unresolved"] == 0 for c in cs)
            kv = [c["keras"] for c in cs if c["keras"] and sum(c["keras"]["value"].values())]
            keras_dev = (
                f"{_fmt(max(k['value_max_ulps'] for k in kv))} / {_fmt(max(k['grad_max_ulps'] for k in kv))}" if kv else "–"
            )
            unexplained = sum(k["value"]["unexplained"] + k["grad"]["unexplained"] for k in kv) if kv else "–"
            lines.append(
                f"| [`{kernel}`]({family}.md) | {dtype} | {_fmt(mx('stable', 'value_ulps'))} | {_fmt(mx('stable', 'grad_ulps'))} | "
                f"{_share([c['stable'].get('value_share') for c in cs])} / {_share([c['stable'].get('grad_share') for c in cs])} | "
                f"{_fmt(mx('naive', 'value_ulps'))} / {_fmt(mx('naive', 'grad_ulps'))} | {'within' if ok else '**outside**'} | "
                f"{keras_dev} | {unexplained} |"
            )
    if record["seeds"]:
        lines += ["", "The seed posts' numbers, reproduced and explained: [seeds.md](seeds.md).", ""]
    else:
        lines += [""]
    lines += ["## Versions", "", _versions(record["versions"]), ""]
    return "\n".join(lines)


#: Resolution of the plots' markers, which are drawn as an image inside the SVG (axes, ticks and
#: text stay vectors and text): a few thousand markers as SVG elements took 0.6-1.1 MB a file.
PLOT_DPI = 64  # 90 made an 8-panel per-element figure 236 KB (the limit is 200 KB)


#: How a threshold's line is labelled in the plots: what the operation becomes past it.
_BECOMES = {"exp_over": "inf", "exp_under": "0", "one_plus_exp": "1", "one_minus": "1", "one_plus": "1",
            "pow_over": "inf", "pow_under": "0", "cosh_over": "inf", "recip_over": "inf"}


#: SVGs drawn in this process, by the digest of what they were drawn from (a drawing is a pure
#: function of its data: ``tests/test_report.py`` checks it). Rendering the reports again with the
#: same plots (``report --check`` after ``report``; a check of a record whose table changed but
#: whose points did not) then costs no drawing: matplotlib's layout is 80 % of a rendering.
_DRAWN: OrderedDict[str, str] = OrderedDict()
_DRAWN_MAX = 128  # about 100 KB each
_DRAWN_LOCK = threading.Lock()


def _plain(o):
    """NumPy arrays and scalars as lists and numbers, whole (``repr`` elides long arrays)."""
    return o.tolist() if hasattr(o, "tolist") else repr(o)


def _plot_file(key: str) -> Path | None:
    """Where a drawing is kept across processes: ``plots/`` beside the reference's code cache
    (:func:`cesym.verify.codecache.cache_dir`), named by ``key`` (the data's digest), this
    module's source (the drawing code) and the versions of matplotlib (its layout, its bundled
    fonts) and NumPy. None: the cache is off, or this module's source cannot be read."""
    import matplotlib

    from ..verify import codecache

    d, source = codecache.cache_dir(), codecache._source_digest(__name__)
    if d is None or source is None:
        return None
    name = hashlib.sha256("|".join([key, source, matplotlib.__version__, np.__version__]).encode()).hexdigest()[:40]
    return d.parent / "plots" / f"{name}.svg"


#: Drawings kept on disk at most (about 100 KB each: a report's 40 plots, six times over); past
#: it, the least recently used go.
PLOTS_KEPT = 256


def _evict_plots(directory: Path, keep: int | None = None) -> None:
    """Remove the least recently used drawings of the plot cache past ``keep`` (default
    :data:`PLOTS_KEPT`); only files named as this cache names them (40 hex digits, ``.svg``)."""
    keep = PLOTS_KEPT if keep is None else keep
    entries = []
    for p in directory.glob("*.svg"):
        if len(p.stem) == 40 and all(c in "0123456789abcdef" for c in p.stem):
            with contextlib.suppress(OSError):
                entries.append((p.stat().st_mtime, p.name, p))
    for _, _, p in sorted(entries)[: max(0, len(entries) - keep)]:
        with contextlib.suppress(OSError):  # another process removed it first
            p.unlink()


def _draw_plot(panels: Sequence[dict], thresholds: dict | None = None, part: str = "value") -> str:
    """:func:`_draw_svg` of these data, drawn once per process and kept on disk for the next
    (``cesym report --check`` after ``cesym report``, the test that checks the committed reports
    after another): by the digest of the data, of the drawing code and of matplotlib's and NumPy's
    versions; an entry that does not read back as an SVG is drawn again."""
    key = hashlib.sha256(json.dumps([list(panels), thresholds, part], sort_keys=True, default=_plain).encode()).hexdigest()
    with _DRAWN_LOCK:
        svg = _DRAWN.get(key)
        if svg is not None:
            _DRAWN.move_to_end(key)
            return svg
    path = _plot_file(key)
    svg = None
    if path is not None:
        try:
            svg = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            svg = None
        if svg is not None and not (svg.startswith("<?xml") and svg.rstrip().endswith("</svg>")):
            svg = None
        if svg is not None:
            with contextlib.suppress(OSError):
                os.utime(path)  # used: the last to go (_evict_plots)
    if svg is None:
        svg = _draw_svg(panels, thresholds, part)  # outside the lock: two threads may both draw it, alike
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_text(path, svg, what="plot cache entry")  # atomic: concurrent writers write the same text
                _evict_plots(path.parent)
            except OSError:  # OutputError included: not writable, drawn again next time
                pass
    with _DRAWN_LOCK:
        _DRAWN[key] = svg
        while len(_DRAWN) > _DRAWN_MAX:
            _DRAWN.popitem(last=False)
    return svg


def _draw_svg(panels: Sequence[dict], thresholds: dict | None = None, part: str = "value") -> str:
    """SVG of the value error (``part`` "grad": the gradient's; a row's largest element's) as
    log10(1 + ulps) against the largest input (log10) per kernel × dtype,
    one series each for the kernel, the naive form and Keras: deterministic bytes for given panels.
    The family's derived thresholds (:mod:`.thresholds`) are drawn as vertical lines at their
    magnitude in the panel's dtype, and the band where infinite and capped errors are drawn is
    labelled. Text is SVG ``<text>`` (searchable, no glyph outlines); the markers are one image
    per panel (:data:`PLOT_DPI`), so that a file stays under 200 KB."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"cesym kernel": ("o", 12), "naive form": ("x", 14), "Keras": ("+", 18)}
    rows = -(-len(panels) // 2)
    with plt.rc_context({"svg.hashsalt": "cesym", "svg.fonttype": "none", "savefig.dpi": PLOT_DPI}):
        fig, axes = plt.subplots(rows, 2, figsize=(10, 3.2 * rows), squeeze=False)
        for k, panel in enumerate(panels):
            i, j = divmod(k, 2)
            ax = axes[i][j]
            # log10 on linear axes: matplotlib's log axes overflow near 1e308
            mags = np.asarray(panel["mags"], dtype=float)
            signed = bool(panel.get("signed"))
            floor = np.floor(np.log10(np.min(np.abs(mags[mags != 0])))) if np.any(mags != 0) else 0.0

            def place(v, floor=floor, signed=signed):  # signed: ±(log10|v| - floor + 1), 0 at 0
                a = np.log10(np.maximum(np.abs(np.asarray(v, dtype=float)), 1e-320))
                return np.where(np.asarray(v) == 0, 0.0, np.sign(v) * (a - floor + 1)) if signed else a

            x = place(mags)
            for s in panel["series"]:
                if _errors(s, part) is None:
                    continue
                marker, size = styles[s["label"]]
                ax.scatter(x, np.log10(1 + np.asarray(_errors(s, part), dtype=float)), s=size, marker=marker, label=s["label"],
                           alpha=0.6, linewidths=0.8, rasterized=True)
            ax.set_ylim(-0.5, 22.5)
            cap = np.log10(1 + ERR_CAP)
            ax.axhspan(cap - 0.3, cap + 0.3, color="0.85", zorder=0)
            ax.text(0.99, cap + 0.45, "inf, NaN or > 1e20 ulps", transform=ax.get_yaxis_transform(), ha="right",
                    va="bottom", fontsize=6, color="0.35")
            lines: dict[float, list[str]] = {}
            for t in (thresholds or {}).get(panel["case"], ()):  # one line per place, its operations named once
                v = t.value(panel["dtype"])
                where = [abs(v)] if not signed else ([v] if t.side in ("above", "below") else [abs(v), -abs(v)])
                for w in where:
                    if w != 0:
                        lines.setdefault(round(float(place(w)), 3), []).append(f"{t.operation} → {_BECOMES[t.kind]}")
            lo, hi = (float(np.min(x)), float(np.max(x))) if len(x) else (0.0, 1.0)
            merged: list[tuple[float, list[str]]] = []  # lines closer than 3 % of the axis share one label
            for xv, names in sorted(lines.items()):
                if merged and xv - merged[-1][0] < 0.03 * max(hi - lo, 1.0):
                    merged[-1][1].extend(names)
                else:
                    merged.append((xv, list(names)))
            for xv, names in merged:
                if lo - 1 <= xv <= hi + 1:
                    ax.axvline(xv, color="0.5", linestyle="--", linewidth=0.7, zorder=0)
                    ax.text(xv, 0.93, "\n".join(dict.fromkeys(names)), rotation=90, fontsize=5, color="0.3",
                            ha="right", va="top", transform=ax.get_xaxis_transform())
            ax.set_title(f"{panel['case']}, {panel['dtype']}", fontsize=9)
            if signed:
                top = int(np.ceil(np.max(np.abs(x)))) if len(x) else 1
                signs = [sg for sg in (-1, 1) if np.any(np.sign(mags) == sg)]
                ks = np.unique(np.linspace(0, top - 1, 5 if len(signs) == 1 else 3).round().astype(int))
                if len(signs) == 2:  # the innermost ticks of the two sides would print over each other
                    ks = ks[ks > 0.1 * top] if np.any(ks > 0.1 * top) else ks
                ticks = [(float(sg * (k + 1)), f"{'−' if sg < 0 else ''}1e{int(k + floor)}") for sg in signs for k in ks]
                if np.any(mags == 0):
                    ticks.append((0.0, "0"))
                ax.set_xticks([t for t, _ in ticks], [lab for _, lab in ticks], fontsize=6)
                ax.set_xlabel("the element's input (log scale on each side of 0, sign kept)")
            else:
                ax.set_xlabel("log10 of the largest |input| of the row")
            ax.set_ylabel("log10(1 + error in ulps)")
            ax.grid(True, which="major", alpha=0.3)
            if k == 0:
                ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
    return buf.getvalue()


def _errors(series: dict, part: str):
    """A plotted series' errors of ``part`` ("value", "grad"); None where it has none."""
    return series.get("err" if part == "value" else "grad_err")


def _plot_table(panels: Sequence[dict], part: str = "value") -> list[str]:
    """Where each series first exceeds its contract's base (4 ulps value, 8 gradient) on the plotted points."""
    base = 4 if part == "value" else 8
    table = [
        f"| kernel | dtype | series | points > {base} ulps | smallest \\|input\\| with an error > {base} ulps | largest \\|input\\| sampled |",
        "|---|---|---|---:|---:|---:|",
    ]
    for panel in panels:
        m = np.abs(np.asarray(panel["mags"], dtype=float))
        for s in panel["series"]:
            if _errors(s, part) is None:
                continue
            err = np.asarray(_errors(s, part), dtype=float)
            bad = err > base
            first = f"{np.min(m[bad]):.4g}" if np.any(bad) else "none"
            table.append(
                f"| `{panel['case']}` | {panel['dtype']} | {s['label']} | {int(np.sum(bad))} of {len(err)} | {first} | {np.max(m):.3g} |"
            )
    return table


def _unshown(panels: Sequence[dict], family: str, shown: dict[str, str]) -> tuple[list[dict], list[tuple[dict, str]]]:
    """The panels no earlier report plotted, and the others with the family that did (one kernel
    under two public names, e.g. ``tf.nn``'s sparse softmax and sparse categorical
    cross-entropy from logits: the same points, the same errors)."""
    import json

    keep, elsewhere = [], []
    for panel in panels:
        key = json.dumps([panel["dtype"], panel["mags"], panel["series"]], sort_keys=True)
        if key in shown:
            elsewhere.append((panel, shown[key]))
        else:
            shown[key] = family
            keep.append(panel)
    return keep, elsewhere


def _with_plot(family: str, text: str, panels: Sequence[dict], plot_rows: int, elsewhere: Sequence = ()) -> str:
    same = "".join(
        f"`{p['case']}`, {p['dtype']}: the same kernel and points as in [{f}.md]({f}.md#error-against-input-magnitude-value), "
        "plotted there.\n\n"
        for p, f in elsewhere
    )
    section = (
        "### Error against input magnitude (value)\n\n"
        f"![value error of the kernel, the naive form and Keras against the input]({family}_error.svg)\n\n"
        + same
        + _plot_caption(panels, plot_rows)
        + f" log10(1 + ulps); infinite errors (NaN, overflow) and errors above {ERR_CAP:.0e} ulps in the grey band at 20 "
        "(points kept to 6 digits). Dashed lines: the thresholds derived above, in the panel's dtype. Where each "
        "series first exceeds 4 ulps on these points (an error above 4 ulps is within the contract only where κ "
        "allows it):\n\n"
        + "\n".join(_plot_table(panels))
        + "\n\n"
    )
    if _has_grad(panels):
        section += (
            "### Error against input magnitude (gradient)\n\n"
            f"![gradient error of the kernel, the naive form and Keras against the input]({family}_grad_error.svg)\n\n"
            "The same points and panels as the value's, each point's gradient error (a row of three: its largest "
            "element's), on the same scales. Where each series first exceeds 8 ulps (the gradient's base; above it, "
            "within the contract only where κ allows it):\n\n"
            + "\n".join(_plot_table(panels, "grad"))
            + "\n\n"
        )
    return text.replace("## Keras\n", section + "## Keras\n", 1)


def _has_grad(panels: Sequence[dict]) -> bool:
    return any(_errors(s, "grad") is not None for p in panels for s in p["series"])


def _plot_caption(panels: Sequence[dict], plot_rows: int) -> str:
    """What the plotted points are: per element, sign kept (separable losses), or rows of three."""
    signed = [p["case"] for p in panels if p.get("signed")]
    rows = [p["case"] for p in panels if not p.get("signed")]
    parts = []
    if signed:
        parts.append(f"{', '.join(f'`{c}`' for c in dict.fromkeys(signed))}: {3 * plot_rows} seeded elements per dtype "
                     "(a row's loss is the mean of one term per element: rows of one element), hard labels, against "
                     "the element's input, its sign kept (the axis is logarithmic on each side of 0);")
    if rows:
        parts.append(f"{', '.join(f'`{c}`' for c in dict.fromkeys(rows))}: {plot_rows} seeded rows of 3 per dtype, hard "
                     "labels, against log10 of the largest |input| of the row;")
    return " ".join(parts)


def _derived(losses, code: str) -> list:
    """Each loss's derivation as the generated module recorded it (``DERIVED``), not derived
    again; derived where the module has no record of it."""
    import ast

    record = {}
    for node in ast.parse(code).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DERIVED" for t in node.targets):
            record = ast.literal_eval(node.value)
    return [from_record(l, record[l.variant]) if l.variant in record else derive(l) for l in losses]


def load_exhaustive(out_dir: Path) -> dict[str, dict]:
    """The exhaustive runs recorded in ``out_dir/exhaustive/*.json`` (``cesym verify --exhaustive
    --record``), by file name: {setting name: summary}."""
    import json

    folder = Path(out_dir) / "exhaustive"
    return {f.name: json.loads(f.read_text(encoding="utf-8")) for f in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def _exhaustive_section(family: str, exhaustive: dict[str, dict]) -> list[str]:
    rows = [r for per_file in exhaustive.values() for r in per_file.values() if r.get("family") == family]
    if not rows:
        return []
    lines = [
        "## Every float32 input (exhaustive)",
        "",
        "Each float32 input of the kernel (NaN and inputs outside its domain excluded; ±inf and the domain's "
        "edges against their limits), its label and parameters fixed, against the exact value: enclosed in float64 "
        "interval arithmetic from the stable form (the points it leaves open enclosed again with exact sums and "
        "products kept exact: exact ties), then by the definition on double-double intervals (106 bits: a value a few "
        "float64 spacings beside a rounding boundary), and by the ball reference of the definition where neither "
        "fixes the rounding (a sample of each tier's decisions is re-checked there too); where 2560 bits still leave a "
        "rounding boundary inside the ball, by the sign of the value's rest beyond its exact rational part. Correctly rounded: the "
        "float32 nearest the exact value (ties to even). Measured by `cesym verify --exhaustive NAME --record`. The "
        "float32 kernels compute in float64, test whether that value lies within its error bound of a float32 rounding "
        "boundary, and recompute those inputs exactly (rational forms in tracked float64, then in double-doubles with an error bound; the rest in decimal arithmetic at "
        "rising precision; `cesym.kernels._rounding`). The table states what the recorded run found.",
        "",
        "| kernel | output | label, parameters | inputs | max ulps | at x | not correctly rounded | e.g. x: computed, correctly rounded | by double-doubles | by the ball reference | unresolved | s |",
        "|:---|:---|:---|---:|---:|---:|---:|:---|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: (r["setting"]["case"], r["setting"]["label"] if r["setting"]["label"] is not None else 0, r["setting"]["what"])):
        st = r["setting"]
        fixed = ", ".join(([f"label {st['label']:g}"] if st["label"] is not None else []) + [f"{k} {v:g}" for k, v in st["params"]]) or "–"
        # "inf" (an infinite error) is stored as a string
        worst, at = (_fmt(float(r["worst"][0][0])), repr(float(r["worst"][0][1]))) if r["worst"] else ("–", "–")
        eg = "–"
        if r["misrounded"]:
            x, k, c = r["misrounded"][0]
            eg = f"{x!r}: {k!r}, {c!r}"
        lines.append(
            f"| `{st['case']}` | {st['what']} | {fixed} | {r['inputs']} | {worst} | {at} | {r['not_correctly_rounded']} | {eg} | "
            f"{r.get('dd', 0)} | {r['reference']} | {len(r['unresolved'])} | {r['seconds']:.0f} |"
        )
    unresolved = sorted({x for r in rows for x in r["unresolved"]}, key=abs)
    if unresolved:
        lines += ["", f"Unresolved (the ball reference did not fix the rounding at 2560 bits; not counted above): {len(unresolved)} "
                  f"input(s), e.g. x = {', '.join(repr(x) for x in unresolved[:4])}. Where a product of the label and x is exactly "
                  "halfway between two float32 numbers, a term like e^x decides the rounding thousands of bits down "
                  "(e^-2560 is 2^-3693)."]
    return lines + [""]


def render_reports(
    record: dict, derivations_dir: Path = DERIVATIONS_DIR, generated_dir: Path = GENERATED_DIR, svg: bool = True,
    generated: dict[str, str] | None = None, exhaustive: dict[str, dict] | None = None,
) -> dict[str, str]:
    """Every report file (name -> text) from the sources and the measured ``record``; pure.
    ``svg=False`` leaves the plots out (the Markdown only; drawing them takes most of the time).
    ``generated``: the generated modules' texts by file name (a user's, rendered in memory;
    default: read from ``generated_dir``). ``exhaustive``: the recorded exhaustive runs
    (:func:`load_exhaustive`), each shown in its family's report."""
    import ast

    out = {}
    shown: dict[str, str] = {}  # a plotted panel's data -> the family whose report shows it
    derived_by_family: dict[str, list] = {}
    for family, losses in load_all(derivations_dir).items():
        path = Path(derivations_dir) / f"{family}.py"
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if generated is None:
            code = (Path(generated_dir) / f"{family}.py").read_text(encoding="utf-8")
            name = f"cesym/kernels/_generated/{family}.py"
        else:
            code, name = generated[f"{family}.py"], f"{family}.py, as `cesym generate --derivations` writes it"
        declared = any(c.get("keras_declared") for c in record["configs"] if _family_of(c) == family)
        derived = derived_by_family[family] = _derived(losses, code)
        text = render_family(family, derived, record, doc, code, name, keras=declared)
        extra = _exhaustive_section(family, exhaustive or {})
        if extra:
            text = text.replace("\n## Versions\n", "\n" + "\n".join(extra) + "\n## Versions\n", 1)
        panels, elsewhere = _unshown(record["plots"].get(family) or [], family, shown)
        if panels:
            if svg:
                out[f"{family}_error.svg"] = _draw_plot(panels, _panel_thresholds(derived, record))
                if _has_grad(panels):
                    out[f"{family}_grad_error.svg"] = _draw_plot(panels, _panel_thresholds(derived, record), "grad")
            text = _with_plot(family, text, panels, record["plot_rows"], elsewhere)
        out[f"{family}.md"] = text
    out["README.md"] = render_index(record, index_limits(derived_by_family))
    if record["seeds"]:
        out["seeds.md"] = render_seeds(record)
    return out


def write_reports(
    out_dir: Path = REPORTS_DIR, check: bool = False, points: int = REPORT_POINTS, seed: int = REPORT_SEED,
    jobs: int = 1, keras: bool = True, derivations: Path | None = None, remeasure: bool = True,
) -> list[str]:
    """Measure, then write the reports and their record into ``out_dir``; return the names written.

    With ``check``, write nothing and return what is wrong with the committed files instead
    (:func:`cesym.report.check.check`): files that differ from their rendering, measurements
    (committed or fresh) that break a promise, a fresh run that measured other points, a record
    measured with other sources. ``remeasure=False`` (with ``check``): no fresh run, the sources
    and the committed record only (seconds instead of minutes).
    Everything is measured and rendered first; the files are then written as one step
    (:func:`cesym.files.write_texts`: atomic, the umask's mode, all or none on Ctrl-C).
    """
    from ..files import check_output_dir, write_texts

    out_dir = Path(out_dir)
    if not check:
        check_output_dir(out_dir, "reports directory")
    cases = generated = None
    if derivations is not None:  # a user's losses: their kernels rendered in memory
        from ..generate.codegen import render_all
        from ..verify.registry import load_cases

        cases = load_cases(derivations)
        generated = render_all(derivations)
    fresh = None if check and not remeasure else measure(
        points=points, seed=seed, jobs=jobs, keras=keras, cases=cases, derivations=derivations
    )
    if check:
        from .check import check as check_reports

        return check_reports(out_dir, fresh, derivations=derivations, generated=generated)
    rendered = render_reports(
        fresh, exhaustive=load_exhaustive(out_dir),
        **({} if derivations is None else {"derivations_dir": Path(derivations), "generated": generated}),
    )
    rendered[RECORD_NAME] = dumps(fresh)
    out_dir.mkdir(exist_ok=True)
    changed = write_texts({out_dir / name: text for name, text in sorted(rendered.items())}, what="report")
    return [p.name for p in changed]
