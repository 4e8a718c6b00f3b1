"""`cesym report`: the committed reports are what today's sources render from the committed record
of measurements, and every measurement (committed, and fresh on this host) keeps its promises."""

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cesym.generate.codegen import GENERATED_DIR
from cesym.define.loss import DERIVATIONS_DIR
from cesym.report.render import load_exhaustive, render_reports
from cesym.report.check import record_problems, stale_files
from cesym.report.record import RECORD_NAME, dumps, loads

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports"


def test_committed_reports_are_fresh():
    """`cesym report --check --no-measure` passes: every file is its rendering from today's sources
    and the committed record, the record keeps its promises, and it was measured with today's
    sources (their digests). A fresh measurement on this host (`cesym report --check`, minutes)
    is not repeated here: the contract on this host is the contract tests' and
    `cesym verify --quick`'s (tests/test_verify.py); and what another CPU computes is checked by
    running the whole suite under ``NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"``
    before a change lands (README, ``cesym report``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "cesym.cli", "report", "--check", "--no-measure"], cwd=ROOT, env=dict(os.environ),
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"


def test_a_record_measured_with_other_sources_is_stale(committed):
    from cesym.report.check import stale_sources

    assert stale_sources(committed) == []
    other = copy.deepcopy(committed)
    other["sources"]["verify/sampling.py"] = "0" * 16
    del other["sources"]["derivations/dice.py"]
    other["sources"]["keras/gone.py"] = "1" * 16
    (problem,) = stale_sources(other)
    assert "changed: verify/sampling.py; new: derivations/dice.py; gone: keras/gone.py" in problem, problem
    assert "run cesym report" in problem


def test_the_record_names_every_file_a_measurement_runs(committed):
    """The kernels, the reference, the sampler, the Keras model and every derivation file."""
    from cesym.define.loss import DERIVATIONS_DIR

    names = set(committed["sources"])
    for f in ("kernels/_generated/dice.py", "kernels/_runtime.py", "verify/reference.py", "verify/sampling.py",
              "keras/model.py", "define/primitives.py", "report/record.py"):
        assert f in names
    assert {f"derivations/{p.name}" for p in DERIVATIONS_DIR.glob("*.py")} <= names
    assert not any(n.startswith(("report/render", "report/check", "bench", "cli", "generate/")) for n in names)


@pytest.fixture(scope="module")
def committed():
    return loads((REPORTS / RECORD_NAME).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rendered_markdown(committed):
    return render_reports(committed, svg=False, exhaustive=load_exhaustive(REPORTS))


def _markdown_problems(problems):
    return [p for p in problems if ".md" in p]


def test_the_markdown_is_its_rendering_from_the_sources_and_the_record(rendered_markdown):
    assert _markdown_problems(stale_files(REPORTS, rendered_markdown)) == []


def test_check_fails_when_a_source_changes(committed, tmp_path):
    """A derivation's docstring and a line of generated code edited (in a copy): their reports are stale."""
    deriv, gen = tmp_path / "derivations", tmp_path / "generated"
    shutil.copytree(DERIVATIONS_DIR, deriv)
    shutil.copytree(GENERATED_DIR, gen)
    f = deriv / "binary_crossentropy.py"
    f.write_text(f.read_text(encoding="utf-8").replace('"""', '"""Edited. ', 1), encoding="utf-8")
    g = gen / "categorical_crossentropy.py"
    text = g.read_text(encoding="utf-8")
    assert "    return " in text
    g.write_text(text.replace("    return ", "    return 1.0 + ", 1), encoding="utf-8")
    problems = _markdown_problems(stale_files(REPORTS, render_reports(committed, deriv, gen, svg=False, exhaustive=load_exhaustive(REPORTS))))
    assert problems == [
        f"{name}.md (differs from its rendering from the sources and {RECORD_NAME})"
        for name in ("binary_crossentropy", "categorical_crossentropy")
    ]


def test_check_fails_when_a_markdown_figure_is_edited(rendered_markdown, tmp_path):
    """A measured figure changed in a report but not in the record: the report is stale."""
    for p in REPORTS.glob("*.md"):
        shutil.copy(p, tmp_path / p.name)
    assert _markdown_problems(stale_files(tmp_path, rendered_markdown)) == []
    f = tmp_path / "categorical_crossentropy.md"
    text = f.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `categorical_crossentropy[from_logits=True]` | float64 | hard"))
    cells = row.split(" | ")
    cells[4] = "0 / 0 / 0"  # the value ulps avg / p99 / max
    f.write_text(text.replace(row, " | ".join(cells)), encoding="utf-8")
    problems = _markdown_problems(stale_files(tmp_path, rendered_markdown))
    assert problems == [f"categorical_crossentropy.md (differs from its rendering from the sources and {RECORD_NAME})"]


def _config(record, kernel, dtype, labels):
    return next(c for c in record["configs"] if (c["kernel"], c["dtype"], c["labels"]) == (kernel, dtype, labels))


BREAKS = {
    "a share of the bound above 1": (
        lambda r: next(c for c in r["configs"] if c["stable"].get("value_share"))["stable"]["value_share"].update(max=1.5),
        "value share of the bound 1.5 > 1",
    ),
    "an error above 4 ulps with no share": (
        lambda r: _config(r, "binary_crossentropy[from_logits=False]", "float64", "hard")["stable"].update(
            value_ulps={"avg": 1.0, "p99": 2.0, "max": 64.0}, value_share=None),
        "value error 64 ulps > 4 with no share of the bound",
    ),
    "a point outside the contract": (
        lambda r: _config(r, "sparse_categorical_crossentropy[from_logits=True]", "float32", "hard").update(failures=2),
        "2 point(s) outside the contract",
    ),
    "an unexplained Keras deviation": (
        lambda r: _config(r, "binary_crossentropy[from_logits=True]", "float32", "soft")["keras"]["grad"].update(unexplained=1),
        "1 Keras deviation(s) unexplained",
    ),
    "a plotted kernel point outside the contract": (
        lambda r: r["plots"]["tf_nn"][0]["series"][0].update(outside=1),
        "kernel point(s) outside the contract",
    ),
    "Keras off its clip": (lambda r: r["caps"][0].update(value=16.2), "the model says"),
    "a seed explanation that does not hold": (
        lambda r: r["seeds"][0].update(explanation=r["seeds"][0]["explanation"].replace("holds", "does NOT hold")),
        "an explanation does not hold",
    ),
}


@pytest.mark.parametrize("what", sorted(BREAKS))
def test_check_fails_when_a_measurement_breaks_its_promise(committed, what):
    """A record whose figures break a promise fails the check, committed (a stale report measured
    with an older kernel, rendered consistently) or fresh (this host's run)."""
    assert record_problems(committed, committed) == []
    edit, message = BREAKS[what]
    broken = copy.deepcopy(committed)
    edit(broken)
    broken = loads(dumps(broken))  # what a committed record reads back as
    as_committed = record_problems(broken, committed)
    assert any(p.startswith(f"{RECORD_NAME}: ") and message in p for p in as_committed), as_committed
    as_fresh = record_problems(committed, broken)
    assert any(p.startswith("this host's run: ") and message in p for p in as_fresh), as_fresh


def test_check_end_to_end_on_a_copy(committed, tmp_path):
    """check(): the committed reports re-rendered, in a copy, from a record whose share breaks the
    contract are consistent files but fail by the promise, and by nothing else (so the copy's
    other files are fresh: the committed directory's own check is test_committed_reports_are_fresh);
    no record: stale."""
    from cesym.report.check import check

    for p in REPORTS.iterdir():
        (shutil.copytree if p.is_dir() else shutil.copy)(p, tmp_path / p.name)
    broken = copy.deepcopy(committed)
    BREAKS["a share of the bound above 1"][0](broken)
    (tmp_path / RECORD_NAME).write_text(dumps(broken), encoding="utf-8")
    # the Markdown only: the plots are the record's plot data, which the break leaves as committed
    for name, text in render_reports(broken, svg=False, exhaustive=load_exhaustive(REPORTS)).items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    problems = check(tmp_path, committed)
    assert len(problems) == 1 and "value share of the bound 1.5 > 1" in problems[0], problems
    (tmp_path / RECORD_NAME).unlink()
    assert check(tmp_path, committed) == [f"{RECORD_NAME} (missing)"]


def test_check_fails_when_a_fresh_run_measures_other_points(committed):
    other = copy.deepcopy(committed)
    _config(other, "binary_crossentropy[from_logits=False]", "float32", "hard")["points"] = 199
    assert f"{RECORD_NAME}: configurations differ from a fresh run's" in record_problems(committed, other)
    other = copy.deepcopy(committed)
    other["plots"]["tf_nn"][1]["mags"].pop()
    assert any("plots differ" in p for p in record_problems(committed, other))
    other = copy.deepcopy(committed)
    assert other["seeds"][3]["cesym"] == "1.2877442804195713"
    other["seeds"][3]["cesym"] = "1.2877"  # a seed's host figure moved by far more than a few float32 ulps
    assert any("seed 002" in p and "cesym" in p for p in record_problems(committed, other))
    other["seeds"][3]["cesym"] = "1.2877442804195711"  # the last digits another CPU may give: fine
    assert record_problems(committed, other) == []
    other["seeds"][3]["cesym"] = "ValueError: 1.2877442804195713"  # other text
    assert any("seed 002" in p and "cesym" in p for p in record_problems(committed, other))


def test_svgs_are_deterministic_given_their_data(committed):
    from cesym.report.render import _draw_plot, _draw_svg

    panels = committed["plots"]["tf_nn"][:2]
    assert _draw_svg(panels) == _draw_svg(copy.deepcopy(panels))  # drawn twice, not cached
    assert _draw_plot(panels) == _draw_svg(panels)
    other = copy.deepcopy(panels)
    other[0]["case"] += " (other)"  # other data: drawn anew, not the cached drawing
    assert _draw_plot(other) != _draw_plot(panels)


def test_a_drawing_is_kept_on_disk_for_the_next_process(committed, tmp_path, monkeypatch):
    """The drawing read back from the plot cache (another process: the memo cleared) is the
    drawing; a damaged entry is drawn again; CESYM_CACHE_DIR=off keeps nothing."""
    from cesym.report import render

    panels = committed["plots"]["tf_nn"][:1]
    drawn = render._draw_svg(panels)
    monkeypatch.setattr(render, "_DRAWN", type(render._DRAWN)())
    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path))
    assert render._draw_plot(panels) == drawn
    (entry,) = (tmp_path / "plots").glob("*.svg")
    assert entry.read_text(encoding="utf-8") == drawn
    render._DRAWN.clear()
    with monkeypatch.context() as m:
        m.setattr(render, "_draw_svg", lambda *a, **k: pytest.fail("drawn again"))
        assert render._draw_plot(panels) == drawn  # read back, not drawn
    entry.write_text(drawn[: len(drawn) // 2], encoding="utf-8")  # cut short: not an SVG
    render._DRAWN.clear()
    assert render._draw_plot(panels) == drawn and entry.read_text(encoding="utf-8") == drawn
    monkeypatch.setenv("CESYM_CACHE_DIR", "off")
    render._DRAWN.clear()
    other = copy.deepcopy(panels)
    other[0]["case"] += " (other)"
    render._draw_plot(other)
    assert len(list((tmp_path / "plots").glob("*.svg"))) == 1


def test_the_plot_cache_keeps_the_most_recently_used(tmp_path):
    """Past PLOTS_KEPT drawings the least recently used go, and nothing the cache did not name."""
    import os

    from cesym.report.render import _evict_plots

    names = [f"{i:040x}.svg" for i in range(5)]
    for t, name in enumerate(names):
        (tmp_path / name).write_text("<svg/>", encoding="utf-8")
        os.utime(tmp_path / name, (1000 + t, 1000 + t))
    os.utime(tmp_path / names[0], (2000, 2000))  # read back lately
    (tmp_path / "mine.svg").write_text("x", encoding="utf-8")
    _evict_plots(tmp_path, keep=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names[0], names[3], names[4], "mine.svg"])


def test_plots_are_small_and_their_text_is_text():
    """Every committed plot under 200 KB, its labels SVG text (searchable), no glyph outlines."""
    svgs = sorted(REPORTS.glob("*.svg"))
    assert svgs
    for f in svgs:
        text = f.read_text()
        assert f.stat().st_size < 200_000, (f.name, f.stat().st_size)
        assert "<text" in text and ("log10 of the largest |input| of the row" in text or "the element's input" in text), f.name
        assert 'id="DejaVuSans-' not in text, f.name  # matplotlib's glyph outlines


def test_no_panel_is_plotted_twice(committed):
    """One kernel under two public names (tf.nn's sparse softmax, sparse categorical
    cross-entropy from logits) is plotted once; the other report points to it."""
    from cesym.report.render import _unshown

    shown: dict = {}
    kept = {fam: _unshown(panels, fam, shown) for fam, panels in committed["plots"].items()}
    assert sum(len(k) for k, _ in kept.values()) == len(shown)
    moved = [(p["case"], fam, where) for fam, (_, elsewhere) in kept.items() for p, where in elsewhere]
    assert ("sparse_softmax_cross_entropy_with_logits", "tf_nn", "sparse_categorical_crossentropy") in moved
    tf = (REPORTS / "tf_nn.md").read_text()
    assert "the same kernel and points as in [sparse_categorical_crossentropy.md]" in tf


def test_reports_cover_every_family_and_say_what_was_measured():
    names = {p.name for p in REPORTS.glob("*.md")}
    families = {p.stem for p in (ROOT / "derivations").glob("*.py")}
    assert names == {f"{f}.md" for f in families} | {"README.md", "seeds.md"}
    index = (REPORTS / "README.md").read_text()
    assert "keras 3.15.1" in index and "sympy 1.14.0" in index
    cce = (REPORTS / "categorical_crossentropy.md").read_text()
    for needle in ("$$L =", "Generated code", "709.783", "88.7228", "## Measured in this run", "## Keras"):
        assert needle in cce


def test_every_seed_number_appears_with_its_explanation():
    seeds = (REPORTS / "seeds.md").read_text()
    for number in (
        "1.2039724588394165", "1.2039728043259361", "1.1918498277664185", "1.1918502562689777",
        "1.2877442836761475", "1.2877442804195713", "66.66667", "0.2899", "0.7803", "50.00%",
        "2.3026", "496111.7812", "733138.9375",
    ):
        assert number in seeds, number
    assert "does NOT hold" not in seeds  # every explanation that is a formula was checked and holds


# --- issue 9, item 10: the reports' factual errors -------------------------------------------------


def _seed_rows(seed: str, needle: str) -> list[str]:
    text = (REPORTS / "seeds.md").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.startswith(f"| {seed} |") and needle in line]


def test_seed002_accuracy_names_row_3_as_the_wrong_one():
    """Labels [2, 0, 0], argmax [2, 0, 1]: row 3 is wrong, not row 2."""
    (row,) = _seed_rows("002", "CategoricalAccuracy")
    explanation = row.split(" | ")[-1]
    assert "[2, 0, 1]" in explanation and "row 3 predicts class 1 (0.8) for label 0 → wrong" in explanation
    assert "Row 2" not in explanation


def test_seed002_manual_value_is_the_float64_value_as_numpy_prints_it():
    (row,) = _seed_rows("002", "labels=[1], predictions=[[0.3]]")
    assert "printed in float32" not in row
    assert "[[1.2039728]] is the float64 value −ln 0.3 as NumPy prints a float64 array (8 significant digits" in row


def test_seed004_mathematics_is_from_the_float32_inputs():
    """The post made float32 tensors: the mathematics of those inputs (categorical: renormalised rows)."""
    (bce,) = _seed_rows("004", "BinaryCrossentropy()")
    assert bce.split(" | ")[4] == "0.28990924869083985"
    (cce,) = _seed_rows("004", "CategoricalCrossentropy()")
    assert cce.split(" | ")[4] == "0.78032387768022981"


def test_seeds_name_the_posts_and_do_not_link_outside_the_repository():
    from cesym.report.seeds import POSTS

    text = (REPORTS / "seeds.md").read_text(encoding="utf-8")
    assert "../shared" not in text and "shared/seeds" not in text
    for title in ("“loss funtion”", "“[딥러닝] 케라스 손실 함수 (Loss Function)”", "untitled Jupyter notebook",
                  "“Custom loss와 model.fit()을 같이 사용해보자!”", "“[ML] TensorFlow Losses and Metrics”"):
        assert title in text
    assert sorted(POSTS) == ["000", "001", "002", "003", "004"]


def test_activity_penalty_report_says_what_was_run():
    """Keras ran (the seeds' table shows its output): the report must not say it was not; the
    points cell says what one point of a batch penalty is."""
    text = (REPORTS / "activity_penalty.md").read_text(encoding="utf-8")
    assert "ActivityRegularization(l2=0.1): 16.86666" in text  # Keras's output, shown
    assert "TensorFlow not installed" not in text and "Keras was not run" not in text
    rows = [line for line in text.splitlines() if line.startswith("| `activity_penalty` |")]
    assert len(rows) == 4  # the kernel's table, then the naive form's
    for row in rows[:2]:  # many small batches, each one penalty (cesym.verify.sampling._penalty_sample)
        cell = row.split(" | ")[3]
        assert cell.endswith(" (the penalties of batches of 1 to 4 of 600 rows, λ in {0.1, 0.001, 1e+06}; gradient: every element)")
        assert int(cell.split(" ")[0]) >= 600 // 4


def test_no_number_a_seed_post_prints_is_missing():
    """seeds.md says it holds every number the posts print: every decimal number in the posts
    (../shared/seeds, beside the repository) is in it, but for what is not a computed number: a
    version (``tensorflow 2.0``, the ``TensorFlow-2.6.0`` badge), a dataset's download size in MiB,
    the pixel scale ``/ 255.0`` in code."""
    import re

    posts = ROOT.parent / "shared" / "seeds"
    if not posts.is_dir():
        pytest.skip("the seed posts are not beside the repository")
    seeds = (REPORTS / "seeds.md").read_text(encoding="utf-8")
    not_computed = re.compile(r"tensorflow \d|TensorFlow-\d|MiB|/ 255\.0", re.IGNORECASE)
    missing = []
    for post in sorted(posts.glob("*.txt")):
        for line in post.read_text(encoding="utf-8").splitlines():
            if not_computed.search(line):
                continue
            missing += [(post.name[:3], n) for n in re.findall(r"-?\d+\.\d+(?:e[-+]?\d+)?%?", line) if n not in seeds]
    assert not missing, missing
