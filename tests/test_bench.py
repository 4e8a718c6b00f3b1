"""`cesym bench --quick`: every kernel and implementation in the tables, JSON and Markdown written.

Timings are measurements, never assertions: these tests check the bench's output, not its speed.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from cesym import bench


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One quick run through the command line (a few seconds, most of it XLA compiling). XLA
    compiles without LLVM's optimisations here: what is tested is the tables, not XLA's speed
    (the run took 18.2–18.8 s against 22.6–24.9 s with them, 2-core Zen 4 VM, 2026-12-05)."""
    d = tmp_path_factory.mktemp("bench")
    md, js = d / "bench.md", d / "bench.json"
    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip())
    r = subprocess.run(
        [sys.executable, "-m", "cesym.cli", "bench", "--quick", "--markdown", str(md), "--json", str(js)],
        capture_output=True, text=True, timeout=900, env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r, md, json.loads(js.read_text())


def _expected_impls(b: bench.Bench) -> set[str]:
    impls = {"cesym", "keras", "keras_t", "xla"}
    if not b.metric:
        impls.add("naive")
    if b.from_logits_keras:
        impls.add("tfnn")
    return impls


def test_every_kernel_mode_and_implementation(quick):
    _, _, res = quick
    want = {(b.id, m) for b in bench.benches() for m in b.modes}
    by_id = {b.id: b for b in bench.benches()}
    assert [t["dtype"] for t in res["tables"]] == ["float32", "float64"]
    for t in res["tables"]:
        assert {(r["id"], r["mode"]) for r in t["results"]} == want
        for r in t["results"]:
            expected = _expected_impls(by_id[r["id"]])
            # TensorFlow's InTopKV2 has no float64 kernel: the only failure the run may report
            if t["dtype"] == "float64" and "top_k" in r["id"]:
                assert set(r["errors"]) <= {"keras", "keras_t", "xla"}
            else:
                assert r["errors"] == {}, r["errors"]
            assert set(r["times"]) | set(r["errors"]) == expected, r["id"]
            assert r["entries"]["cesym"] in ("value", "value_and_grad", "value, grad")


def test_ratios_and_memory_are_positive_and_finite(quick):
    _, _, res = quick
    for t in res["tables"]:
        for r in t["results"]:
            assert "keras" in r["ratios"] or r["errors"]
            for x in r["ratios"].values():
                assert x["of_medians"] > 0 and math.isfinite(x["of_medians"])
            for impl, tm in r["times"].items():
                assert len(tm["samples_s"]) == t["repeats"] and tm["median_s"] > 0, impl
            assert r["memory"]["cesym"]["tracemalloc_bytes"] > 0
            assert r["memory"]["cesym"]["scratch_bytes"] >= 0


def test_sweep_and_skips(quick):
    _, _, res = quick
    s = res["sweep"]
    assert {r["id"] for r in s["results"]} == set(bench.SWEEP_IDS)
    assert s["skipped"], "the quick sweep's cap skips one shape, to exercise the skip"
    for r in s["results"]:
        assert r["rows"] * r["classes"] <= s["max_elements"]
        assert set(r["times"]) == set(bench.SWEEP_IMPLS)


def test_text_and_markdown_list_everything(quick):
    r, md, res = quick
    text = md.read_text()
    for b in bench.benches():
        assert b.id in r.stdout and b.id in text
    for title in bench.IMPL_TITLES.values():
        assert f"{title} ms" in r.stdout and f"{title} ms" in text
    assert "| kernel | mode |" in text
    for key in ("tensorflow", "keras", "numpy", "cpu"):
        assert str(res["machine"][key]) in text
    assert "Skipped" in r.stdout and "Skipped" in text


def test_unknown_name_exits_2():
    from cesym.cli import main

    assert main(["bench", "--quick", "--only", "no_such_kernel"]) == 2


def test_only_keeps_names_and_ids():
    assert {b.kernel for b in bench.benches(["binary_crossentropy"])} == {"binary_crossentropy"}
    assert [b.id for b in bench.benches(["binary_crossentropy[from_logits=True]"])] == ["binary_crossentropy[from_logits=True]"]


def test_write_atomic(tmp_path):
    p = tmp_path / "sub" / "x.md"
    p.parent.mkdir()  # a missing directory is refused, not created (tests/test_files.py)
    bench.write_atomic(p, "one\n")
    bench.write_atomic(p, "two\n")
    assert p.read_text() == "two\n"
    assert [q.name for q in p.parent.iterdir()] == ["x.md"]  # no temporary file left


def test_bench_module_imports_no_tensorflow():
    code = "import sys, cesym.bench; print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_shapes_section(quick):
    """The quick run includes the shapes section: every kernel of it (logits and probability paths,
    value+grad, and some values alone) on every layout (1-D, rank 3 with axis 1, vocabulary rows,
    one row), time per element against the rows of 10, scratch memory."""
    r, md, res = quick
    s = res["shapes"]
    assert s["elements"] == s["rows"] * 10
    want = {(i, "value+grad") for i in bench.SHAPE_IDS} | {(i, "value") for i in bench.SHAPE_VALUE_IDS}
    assert {(x["id"], x["mode"], x["shape"]) for x in s["results"]} == {(i, m, sh) for i, m in want for sh in bench.SHAPES}
    # the probability paths (other primitives on long rows than the logits') and values alone are measured
    assert {"categorical_crossentropy[from_logits=False]", "sparse_categorical_crossentropy[from_logits=False]",
            "binary_crossentropy[from_logits=False]"} <= {i for i, m in want if m == "value+grad"}
    assert "categorical_crossentropy[from_logits=False]" in {i for i, m in want if m == "value"}
    for x in s["results"]:
        assert math.prod(x["dims"]) == s["elements"]
        assert x["ns_per_element"] > 0 and math.isfinite(x["vs_rows"])
        assert x["memory"]["scratch_bytes"] >= 0
        assert x["vs_rows"] == 1.0 if x["shape"] == "rows" else x["vs_rows"] > 0
    assert {x["axis"] for x in s["results"] if x["shape"] == "rank 3, axis 1"} == {1, -1}
    text = md.read_text()
    assert "Shapes, float32" in r.stdout and "### Shapes, float32" in text
    assert "time per element within 1.5× of rows of 10" in text


def test_shape_inputs_hold_the_same_elements():
    """Each layout of the shapes section is the same number of elements, with labels that fit it."""
    inp = bench.Inputs(128, 10, np.dtype("float32"), 2026)
    for b in bench.shape_benches():
        for shape in bench.SHAPES:
            labels, pred, kw, dims = bench.shape_inputs(b, shape, inp)
            assert pred.shape == dims and pred.size == 1280
            if b.labels == "sparse":
                assert labels.shape == tuple(d for i, d in enumerate(dims) if i != kw.get("axis", -1) % len(dims))
            elif labels is not None:
                assert labels.shape == pred.shape


def test_shapes_only_skips_the_tables(tmp_path):
    js = tmp_path / "b.json"
    from cesym.cli import main

    assert main(["bench", "--quick", "--shapes-only", "--only", "binary_crossentropy", "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    assert res["tables"] == [] and res["sweep"] is None
    assert {(x["id"], x["mode"]) for x in res["shapes"]["results"]} == {
        ("binary_crossentropy[from_logits=True]", "value+grad"), ("binary_crossentropy[from_logits=False]", "value+grad"),
        ("binary_crossentropy[from_logits=False]", "value"), ("binary_crossentropy[from_logits=True]", "value")}
