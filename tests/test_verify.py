"""`cesym verify`: the quick pass exits 0, writes strict JSON, and reports what it measured."""

import json
import os
import subprocess
import sys

import pytest


def test_verify_quick_json(tmp_path):
    out = tmp_path / "out.json"
    env = dict(os.environ, CESYM_CACHE_DIR=str(tmp_path / "cache"))  # empty: a fresh machine's
    r = subprocess.run(
        [sys.executable, "-m", "cesym.cli", "verify", "--quick", "--json", str(out)], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    # every compiled form of the reference it needed was shipped (cesym.verify.prederived):
    # nothing derived, nothing written to the code cache
    assert not list((tmp_path / "cache" / "reference").glob("*.py"))
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
    # (Keras's checks are test_verify_quick_json's: here only the choice of kernels)
    r = subprocess.run([sys.executable, "-m", "cesym.cli", "verify", "--quick", "--no-keras", "binary_crossentropy"], capture_output=True, text=True)
    assert r.returncode == 0 and "categorical" not in r.stdout
    r = subprocess.run([sys.executable, "-m", "cesym.cli", "verify", "nonexistent"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown kernel name(s): nonexistent" in r.stderr


def _spot(monkeypatch, scale_grad, labels, pred):
    """The spot check on one row, the reference's symbolic gradient multiplied by ``scale_grad``."""
    import numpy as np

    from cesym.verify import run
    from cesym.verify.registry import case
    from cesym.verify.sampling import Batch

    from cesym.verify.contract import reference_for as real

    class Wrong:
        def __init__(self, ref):
            self.ref = ref

        def value_and_grad(self, *a):
            v, g = self.ref.value_and_grad(*a)
            return v, [x * scale_grad for x in g]

        def numeric_grad(self, *a):
            return self.ref.numeric_grad(*a)

        def checked_pair(self, *a):
            v, g = self.value_and_grad(*a)
            return v, g, self.numeric_grad(*a)

    monkeypatch.setattr(run, "reference_for", lambda loss, n: Wrong(real(loss, n)))
    c = case("poisson")
    return run._gradient_spot_check(c, Batch(np.array([labels]), np.array([pred]), {}, ["moderate"]))


def test_gradient_spot_check_finds_a_wrong_derivative_and_not_noise_at_an_exact_zero(monkeypatch):
    # a gradient off by 1e-9 relative is seen (the reference's gradient here: its digits to 53 bits)
    assert _spot(monkeypatch, 1 + 1e-9, [1.0, 2.0], [1.5, 0.5]) > 1e-10
    assert _spot(monkeypatch, 1, [1.0, 2.0], [1.5, 0.5]) < 1e-15
    # y = p: the gradient 1 - y/p is exactly 0; central differences give noise, not a difference
    assert _spot(monkeypatch, 1, [1.5, 0.7], [1.5, 0.7]) == 0.0
    # but a wrong non-zero gradient there is still seen
    assert _spot(monkeypatch, 1 + 1e-9, [1.5, 0.7], [1.6, 0.7]) > 1e-10


def test_the_host_floor_is_measured_once_per_process(monkeypatch):
    """NumPy's SIMD paths are fixed at import: a process's second ``cesym verify`` reads the host
    floor it measured (16,000 points at 40 digits) instead of measuring again, and each caller
    gets its own copy."""
    from cesym.verify import hostfloor

    first = hostfloor.measure()

    def measured_again(*a, **k):
        raise AssertionError("measured again")

    monkeypatch.setattr(hostfloor, "ulp_error", measured_again)
    second = hostfloor.measure()
    assert second == first and second is not first
    second["float64"]["log"]["max_ulps"] = -1.0
    assert hostfloor.measure() == first
    with pytest.raises(AssertionError, match="measured again"):
        hostfloor.measure(n=10)  # another sample: measured
