"""Generated kernels, one module per derivation family (``cesym generate``). Do not edit.

A module listed here but missing (deleted by hand) is skipped with a warning, so that
``cesym generate`` itself, which imports the kernels, can still run and rewrite this file.
"""

import importlib as _importlib
import warnings as _warnings

_MODULES = (
    "activity_penalty",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "categorical_generalized_cross_entropy",
    "categorical_hinge",
    "cosine_similarity",
    "dice",
    "hinge",
    "huber",
    "kl_divergence",
    "log_cosh",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
    "poisson",
    "sparse_categorical_crossentropy",
    "tf_nn",
    "tversky",
)

__all__ = []
for _name in _MODULES:
    try:
        globals()[_name] = _importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _e:
        if _e.name != f"{__name__}.{_name}":
            raise
        _warnings.warn(f"cesym.kernels: generated module {_name} is missing; run `cesym generate`", RuntimeWarning)
    else:
        __all__.append(_name)
