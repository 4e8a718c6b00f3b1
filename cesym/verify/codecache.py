"""A disk cache of the reference's compiled forms (and of the rows the rewrite checks compile,
:func:`cesym.define.evaluate.compile_row_exprs`), shared by processes and runs.

The reference (:class:`cesym.verify.reference.RowReference`) differentiates each loss's expanded
row with ``sympy.diff``: once for the gradient, again for the value's other partials and for the
second derivatives of the condition numbers (those by the chain rule over common
subexpressions, :func:`cesym.verify.reference.jacobian_assignments`). For a row of 8 that is
seconds per loss (the categorical focal loss from logits: 1.4 s for the gradient, 3.5 s for the
second derivatives, 22.9 s by ``sympy.diff``), paid again by every process:
each worker of ``cesym verify``/``cesym report``, each test process. What the derivation
produces is the Python source that ``sympy.lambdify`` prints; this module keeps that text, keyed
by what decides it: the SymPy form it derives from and the symbols (``srepr``), the SymPy and
mpmath versions and the source of the printer and namespace (:mod:`cesym.define.evaluate`) and
of the module that derives (:mod:`cesym.verify.reference`). A different expression, printer or
SymPy is a different key: no entry is ever reused for something else, and nothing is
invalidated by hand. A process whose entries exist differentiates nothing.
Where: ``$CESYM_CACHE_DIR``, else ``$XDG_CACHE_HOME/cesym``, else ``~/.cache/cesym``
(one ``.py`` file per entry under ``reference/``). An entry not found there is looked up in the
catalog's forms shipped with cesym (:mod:`cesym.verify.prederived`, the same names and text)
before anything is derived. Entries are written whole (a temporary file renamed into place:
concurrent writers of one key write the same text) and an entry that does not read back as a
function is derived again. A directory that cannot be created or written leaves the reference
as it was: derived in every process (but for the shipped forms). ``CESYM_CACHE_DIR=off`` turns
the cache off, shipped forms included: everything is derived in-process.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import hashlib
import inspect
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import mpmath
import sympy as sp

from ..define import evaluate
from ..files import write_text
from . import prederived

__all__ = ["cache_dir", "cached_source", "record"]

_FORMAT = "cesym-reference-code-1"


def cache_dir() -> Path | None:
    """The cache directory (None: off)."""
    env = os.environ.get("CESYM_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env) / "reference"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cesym" / "reference"


@functools.cache
def _source_digest(module: str) -> str | None:
    """The digest of a module's source (None where it has none to read: then no cache)."""
    try:
        return hashlib.sha256(inspect.getsource(sys.modules[module]).encode("utf-8")).hexdigest()
    except (OSError, TypeError, KeyError):
        return None


def key(args: list[sp.Symbol], exprs_srepr: str, deriving_module: str, modules: Sequence[str] = ()) -> str | None:
    """The entry's name: a digest of everything that decides the printed source (None: the
    sources cannot be read, nothing is cached). ``modules``: others whose source prints it."""
    sources = [_source_digest(evaluate.__name__), _source_digest(deriving_module), *(_source_digest(m) for m in modules)]
    if None in sources:
        return None
    h = hashlib.sha256()
    for part in (_FORMAT, sp.__version__, mpmath.__version__, *sources, sp.srepr(args), exprs_srepr):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:40]


def _load(path: Path, namespace: dict) -> Callable | None:
    try:
        src = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return _load_text(src, str(path), namespace)


def _load_text(src: str, filename: str, namespace: dict) -> Callable | None:
    try:
        g = dict(namespace, builtins=builtins, range=range)
        exec(compile(src, filename, "exec"), g)  # noqa: S102 - our own printed code, keyed by its inputs
        fn = g.get("_lambdifygenerated")
        if not callable(fn):
            return None
        fn.printed_source = src  # the whole entry: what inspect.getsource would find, without tokenizing it
        return fn
    except Exception:  # noqa: BLE001 - whatever a damaged entry raises, it is derived again
        return None


def _store(path: Path, src: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, src, what="reference cache entry")  # atomic, the umask's mode
    except OSError:  # OutputError included: not writable, derived again next time
        pass


def cached_source(
    args: list[sp.Symbol], inputs_srepr: str, build: Callable[[], Callable], namespace: dict, modules: Sequence[str] = ()
) -> Callable:
    """The function ``build()`` makes (a ``sympy.lambdify`` of ``args``), from the cache when an
    entry for ``(args, inputs_srepr)`` exists; ``inputs_srepr`` names what ``build`` derives from
    (its result is a function of it and of the source of ``build``'s module and of ``modules``).
    ``namespace``: the modules the printed code calls."""
    d = cache_dir()
    name = None if d is None else key(args, inputs_srepr, build.__module__, modules)
    fn = _cached_source(d, name, build, namespace)
    rec = _recording
    if rec is not None:
        name = name or key(args, inputs_srepr, build.__module__, modules)
        src = getattr(fn, "printed_source", None)
        if src is None:
            try:
                src = inspect.getsource(fn)
            except (OSError, TypeError):
                src = None
        if name is not None and src is not None:
            rec[name] = src
    return fn


def _cached_source(d: Path | None, name: str | None, build: Callable[[], Callable], namespace: dict) -> Callable:
    if d is None or name is None:
        return build()
    path = d / f"{name}.py"
    if path.exists():
        fn = _load(path, namespace)
        if fn is not None:
            return fn
    shipped = prederived.read(name)  # the catalog's forms, shipped with cesym
    if shipped is not None:
        fn = _load_text(shipped, f"<cesym prederived {name}>", namespace)
        if fn is not None:
            return fn
    fn = build()
    try:
        src = inspect.getsource(fn)
    except (OSError, TypeError):
        return fn
    _store(path, src)
    fn.printed_source = src
    return fn


_recording: dict[str, str] | None = None


@contextlib.contextmanager
def record() -> Iterator[dict[str, str]]:
    """``{name: printed source}`` of every entry :func:`cached_source` is asked for inside the
    block, by any thread of the process (one recording at a time: ``cesym generate`` collects
    what the catalog's rewrite and domain checks compile, :mod:`cesym.verify.prederived`)."""
    global _recording
    out: dict[str, str] = {}
    if _recording is not None:
        raise RuntimeError("a recording of the code cache is already under way")
    _recording = out
    try:
        yield out
    finally:
        _recording = None
