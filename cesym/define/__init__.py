"""Define: the vocabulary a loss is written in, and the loaders of derivation files.

A derivation file imports what it needs from here: ``Loss`` (:mod:`.loss`), the row symbols and
stable primitives (:mod:`.primitives`: ``Elem``, ``RowSum``, ``C``, ``Sigmoid``, ...), the public
declaration (:mod:`.declare`: ``Public``, ``Variant``, ``Keyword``, ``Keras``, ``AXIS``);
:mod:`.evaluate` expands a row expression over concrete elements for mpmath.
"""

from .declare import *  # noqa: F401,F403 - the names a derivation file uses
from .declare import __all__ as _declare_all
from .loss import *  # noqa: F401,F403
from .loss import __all__ as _loss_all
from .primitives import *  # noqa: F401,F403
from .primitives import __all__ as _primitives_all

__all__ = [*_loss_all, *_declare_all, *_primitives_all]
