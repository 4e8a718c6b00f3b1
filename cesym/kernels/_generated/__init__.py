"""Generated kernels, one module per derivation family (``cesym generate``). Do not edit."""

from . import activity_penalty
from . import binary_crossentropy
from . import categorical_crossentropy
from . import kl_divergence
from . import log_cosh
from . import mean_squared_error
from . import poisson
from . import sparse_categorical_crossentropy
from . import tf_nn

__all__ = ["activity_penalty", "binary_crossentropy", "categorical_crossentropy", "kl_divergence", "log_cosh", "mean_squared_error", "poisson", "sparse_categorical_crossentropy", "tf_nn"]
