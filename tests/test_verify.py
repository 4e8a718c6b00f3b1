"""`cesym verify`: the quick pass exits 0, writes strict JSON, and reports what it measured."""

import json
import subprocess
import sys


def test_verify_quick_json(tmp_path):
    out = tmp_path / "out.json"
    r = subprocess.run(
        [sys.executable, "-m", "cesym.cli", "verify", "--quick", "--json", str(out)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "all kernels within the contract" in r.stdout and "host floor" in r.stdout
    data = json.loads(out.read_text())  # strict JSON: no NaN/Infinity literals
    assert data["passed"] is True
    configs = data["configurations"]
    from cesym.verify.registry import CASES, label_kinds

    assert len(configs) == 2 * sum(len(label_kinds(c)) for c in CASES) and all(c["passed"] for c in configs)
    assert {c["dtype"] for c in configs} == {"float32", "float64"}
    # the naive forms are measured on the same points, and lose somewhere
    assert sum(c["naive_outside"] for c in configs) > 0
    # the symbolic gradient agrees with mpmath.diff of the reference
    assert max(c["grad_vs_mpmath_diff"] for c in configs) < 1e-20
    # Keras's loss classes (every reduction, unweighted and weighted) and metrics, on the same points
    classes, metrics = data["keras_classes"], data["keras_metrics"]
    assert set(classes["reductions"]) == {"sum_over_batch_size", "sum", "none"}
    assert classes["value"]["unexplained"] == 0 and classes["grad"]["unexplained"] == 0
    assert classes["value"]["explained"] > 0 and classes["grad"]["exact"] > 0
    assert metrics["function"]["exact"] > 0 and metrics["function"]["unexplained"] == 0
    assert metrics["classes"]["unexplained"] == 0
    from cesym.keras.calls import loss_class

    with_class = 2 * sum(len(label_kinds(c)) for c in CASES if loss_class(c) is not None)
    assert sum(c["keras_classes"] is not None for c in configs) == with_class and "keras loss classes" in r.stdout
    floor = data["environment"]["host_floor_ulps"]
    assert floor["float64"]["log"]["max_ulps"] < 1.0


def test_verify_one_kernel_and_unknown_name():
    r = subprocess.run([sys.executable, "-m", "cesym.cli", "verify", "--quick", "binary_crossentropy"], capture_output=True, text=True)
    assert r.returncode == 0 and "categorical" not in r.stdout
    r = subprocess.run([sys.executable, "-m", "cesym.cli", "verify", "nonexistent"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown kernel name(s): nonexistent" in r.stderr
