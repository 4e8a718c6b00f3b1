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

    from cesym.registry import CASES, label_kinds

    for case in CASES:
        for dtype in (np.float32, np.float64):
            for name, soft, smooth in label_kinds(case):
                yield pytest.param(case, dtype, soft, smooth, id=f"{case.id}-{np.dtype(dtype).name}-{name}")
