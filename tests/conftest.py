"""Shared test settings: quiet TensorFlow, deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

#: Seed of every sampled test input (the hidden contract check uses others).
SEED = 20261122


def contract_variants():
    """pytest params (case, dtype, soft, smooth) of every kernel × dtype × label kind."""
    import numpy as np
    import pytest

    from cesym.verify.registry import CASES, label_kinds

    for case in CASES:
        for dtype in (np.float32, np.float64):
            for name, soft, smooth in label_kinds(case):
                yield pytest.param(case, dtype, soft, smooth, id=f"{case.id}-{np.dtype(dtype).name}-{name}")


def pred_from(case, z):
    """Predictions of ``case``'s declared domain from logits ``z`` (float64, rows along the last
    axis): a softmax's rows (renormalised probabilities), a sigmoid's elements (probabilities in
    [0, 1]), magnitudes (non-negative rates; minus 1 for the log1p domain), or the logits themselves."""
    import numpy as np

    with np.errstate(over="ignore"):  # 1/(1 + exp(300)) = 0 is meant
        if case.domain == "simplex":
            p = np.exp(z - z.max(-1, keepdims=True))
            return p / p.sum(-1, keepdims=True)
        if case.domain == "unit":
            return 1 / (1 + np.exp(-z))
    if case.domain == "log1p":  # >= -1: magnitudes shifted down by one
        return np.abs(z) - 1
    return np.abs(z) if case.domain == "positive" else z


def generated_modules():
    """(family, module) of every generated kernel module, by family name."""
    import importlib
    from pathlib import Path

    gen = Path(__file__).resolve().parents[1] / "cesym" / "kernels" / "_generated"
    for fam in sorted(f.stem for f in gen.glob("*.py") if not f.stem.startswith("_")):
        yield fam, importlib.import_module(f"cesym.kernels._generated.{fam}")


def random_block(mod, variant: str, rng, rows: int, C: int):
    """Float32-valued (as float64) labels, predictions and scalar parameters for the core
    ``variant`` of the generated module ``mod``: predictions in its public domain over several
    decades, labels half 0/1 and half in [0, 1], each parameter in its keyword's range (1.0
    where it has none)."""
    import numpy as np

    domain = next(v["domain"] for pub in mod.PUBLIC for v in pub["variants"] if v["loss"] == variant)
    shape = (rows, C)
    scale = 10.0 ** rng.integers(-4, 3, shape)
    pred = {"unit": lambda: rng.uniform(0, 1, shape) ** 3, "real": lambda: rng.standard_normal(shape) * scale,
            "positive": lambda: rng.exponential(1, shape) * scale, "log1p": lambda: rng.exponential(1, shape) * scale - 0.5}[domain]()
    lab = np.where(rng.random(shape) < 0.5, rng.integers(0, 2, shape), rng.uniform(0, 1, shape))
    kws = {kw["name"]: kw for pub in mod.PUBLIC for kw in pub["keywords"]}
    scalars = [float(rng.uniform(*kws[a]["range"])) if kws[a]["range"] is not None else 1.0 for a in mod.CORES[variant]["args"][2:]]
    return lab.astype(np.float32).astype(np.float64), pred.astype(np.float32).astype(np.float64), scalars


#: The files that take longest, longest first (seconds of one worker, a 2-core Intel Xeon VM,
#: 2026-12-05, stop 59: 39, 35, 29, 26, 26, 25, 20, 16, 15, 13, 12, 11, 6, 6; the rest below 5).
#: pytest-xdist (pyproject: ``--dist loadfile --no-loadscope-reorder``) hands whole files to
#: whichever worker runs low, in this order: longest first, so that the short files fill the
#: gaps at the end instead of a long one running alone (``test_shapes.py``, alphabetically
#: late, was a 40 s tail). Only the order depends on these figures, never a result.
LONG_FILES = (
    "test_contract.py", "test_extremes.py", "test_blocks.py", "test_bench.py", "test_verify.py", "test_cli.py",
    "test_generate.py", "test_shapes.py", "test_install.py", "test_user_loss.py", "test_report.py",
    "test_threads.py", "test_keras_forms.py", "test_stable_forms.py",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return LONG_FILES.index(name) if name in LONG_FILES else len(LONG_FILES)

    items.sort(key=rank)  # stable: the order within a file and among the other files is kept
