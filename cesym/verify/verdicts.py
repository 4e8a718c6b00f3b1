"""The contract checks' verdicts of a configuration, kept by the exact numbers they judged.

A default ``cesym verify`` spends most of a warm run (its reference's numbers read back from
:mod:`.truthcache`) judging: the batch path's errors against double-doubles, the points it
leaves checked one by one against pinned balls, condition numbers, the penalty's groups in
mpmath. That judgement is a pure function of

- the checker's code and the libraries it runs on (every source file of the ``cesym`` package
  but the code that makes the outputs judged, :func:`code_digest`; the versions of Python,
  NumPy, mpmath, SymPy, python-flint and gmpy2, the machine and NumPy's CPU features, the
  ``CESYM_*`` and ``NPY_*`` settings of the environment);
- the configuration (kernel, dtype, label kind, rows, row lengths, seed) and the case and its
  definition as data (the loss's expressions, domain, parameters and their ranges, the label
  domain, the declared Keras counterpart: a user's derivation file, and the checkout's
  ``derivations/``, lie outside the package);
- the numbers judged: every sampled batch's inputs (bytes, dtype, shape, strata, parameters,
  groups) and every output the stable kernel, the naive form and Keras's function form gave on
  them, and Keras's loss class on the rows it is checked on, **measured in this run**
  (:func:`cesym.verify.contract.kernel_outputs`, :func:`cesym.keras.check.keras_outputs`,
  :func:`cesym.keras.forms.class_outputs`).

So the ``cesym`` command keeps each configuration's verdict (the summaries, failures and counts
:class:`cesym.verify.run.Config` reports) under a digest of all of that, and a run that
measures the same outputs on the same inputs with the same code takes the verdict instead of
judging them again: the same report, bit for bit. A kernel that now computes one output
differently, any change to the checker's code, another library version or another machine is
another digest, judged afresh; a change to a kernel leaves the verdicts of every configuration
whose outputs it did not change (they are measured in every run, so the kernels' code need not
be digested: a fix to one kernel judges that kernel again, not the catalog).

The verdict holds everything that reads the reference: the contract's summaries, the tallies
of Keras's function forms (:mod:`cesym.keras.check`) and loss classes (:mod:`cesym.keras.forms`),
the gradient's spot check against ``mpmath.diff``. A run that takes it reads no reference at
all; one that does not judges all of it, in the order a run always judges it: the reference's
memo is shared, and whether a point gets the first tier's number or the balls' (equal to 2^-8
ulp, not bit for bit) depends on what asked first. The loss classes are called on the rows
whose reference resolves (:func:`cesym.keras.forms.class_rows`): the judging run keeps which
those were, and a later run measures the class on the same rows to key the verdict by (where
none are kept, it judges). Keras's metrics read no reference and are judged in every run.

The seeded batches themselves are kept too (:func:`kept_sample`), in a directory that follows the
sampler's code alone: NumPy's generator drawn row by row costs about 30 µs a row, 15 % of a run
that takes its verdicts, 11 % of one that judges after a change to the checker.

The verdicts live beside the reference's numbers (:func:`cesym.verify.truthcache.load_dir`: one
directory per code state, named by the digest of everything above but the configuration and
its numbers; shards written whole; dropped when unused as those are, by
:func:`cesym.verify.truthcache.prune`). Opt-in with the truths cache
(:data:`cesym.verify.truthcache.ENABLED`): a library user's process and the tests judge everything.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import platform
import sys
import threading
from pathlib import Path

import numpy as np

from . import truthcache

__all__ = ["code_digest", "config_key", "recall", "keep", "kept_sample", "flush"]

_FORMAT = "cesym-verdicts-1"
#: Settings of the environment that only place or size the caches (they decide no number).
_PLACEMENT = frozenset({"CESYM_CACHE_DIR", "CESYM_CACHE_DAYS", "CESYM_CACHE_MAX_MB"})
_lock = threading.Lock()
_loaded: dict[Path, dict] = {}
_fresh: dict[Path, dict] = {}  # kept since the last flush, by directory


#: Parts of the package that make the outputs a verdict judges, not the judgement: the kernels
#: (``kernels/``, but ``_api.py``, whose ``LABELS_ON_RAYS`` the sampler and the checker read),
#: the code generator (a user's kernels are rendered by it), the reports and the bench. Their
#: outputs are measured in every run and are part of each verdict's key (:func:`config_key`).
_OUTPUT_MAKERS = ("kernels/", "generate/", "report/", "bench.py")


def _judging(rel: str) -> bool:
    return rel == "kernels/_api.py" or not rel.startswith(_OUTPUT_MAKERS)


#: The sampler's code: a seeded batch is a function of these files (the kernels' ``_api.py`` for
#: its ``LABELS_ON_RAYS``), the case as data, NumPy's version and the machine (:func:`kept_sample`).
_SAMPLER = ("verify/sampling.py", "verify/registry.py", "kernels/_api.py")


@functools.lru_cache(maxsize=8)
def code_digest(package: Path | None = None, files: tuple[str, ...] | None = None) -> str | None:
    """A digest of the checker's code: every ``.py`` file of the installed ``cesym`` package
    (``package``: another copy of it) by its path inside the package and its bytes, but the
    kernels, the code generator, the reports and the bench (:data:`_OUTPUT_MAKERS`), None where
    one cannot be read: the contract, the reference and its balls, the first tier, the sampler,
    the definitions' machinery, Keras's model. Taken once per process (the code a process runs
    is the code it imported). ``files``: these files of the package only (paths inside it)."""
    package = Path(__file__).resolve().parents[1] if package is None else Path(package)
    h = hashlib.sha256()
    try:
        for f in sorted(package.rglob("*.py")) if files is None else [package / f for f in sorted(files)]:
            if files is None and not _judging(f.relative_to(package).as_posix()):
                continue
            h.update(f.relative_to(package).as_posix().encode("utf-8") + b"\0")
            h.update(f.read_bytes())
            h.update(b"\0")
    except OSError:
        return None
    return h.hexdigest()


def _versions() -> list[str]:
    import mpmath
    import sympy

    parts = [sys.version, platform.machine(), np.__version__, mpmath.__version__, sympy.__version__, mpmath.libmp.BACKEND]
    for name in ("flint", "gmpy2"):
        try:
            parts.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            parts.append(f"{name} -")
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # (another NumPy layout: its version is in the digest)
        features = {}
    parts.append(",".join(sorted(k for k, on in features.items() if on)))
    parts += sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith(("CESYM_", "NPY_")) and k not in _PLACEMENT)
    return parts


def _directory(samples: bool = False) -> Path | None:
    """The verdicts' directory (``samples``: the seeded batches', which follows the sampler's
    code only: a change to the checker judges again on the batches already drawn)."""
    from . import codecache

    root = codecache.cache_dir()
    code = code_digest(None, _SAMPLER) if samples else code_digest()
    if root is None or code is None:
        return None
    h = hashlib.sha256()
    for part in (_FORMAT + (" samples" if samples else ""), code, *_versions()):
        h.update(part.encode("utf-8") + b"\0")
    return root.parent / "truths" / h.hexdigest()[:40]


def _array(h, a) -> None:
    if a is None:
        h.update(b"none\0")
        return
    a = np.asarray(a)
    h.update(f"{a.dtype.str}{a.shape}\0".encode())
    h.update(np.ascontiguousarray(a).tobytes())


def config_key(task: tuple, judged: list) -> str:
    """The digest of a configuration (``task``: its kernel, dtype, label kind and run
    parameters, as text-representable values) and of the numbers judged: ``judged`` holds
    ``(batch, outputs)`` pairs, a :class:`~.sampling.Batch` and the list of ``(value, gradient)``
    arrays :func:`cesym.verify.contract.kernel_outputs` gave on it."""
    h = hashlib.sha256()
    h.update(repr(task).encode("utf-8") + b"\0")
    for batch, outputs in judged:
        _array(h, batch.labels)
        _array(h, batch.pred)
        h.update(repr(sorted(batch.params.items())).encode("utf-8") + b"\0")
        h.update("\0".join(batch.strata).encode("utf-8") + b"\0")
        h.update(repr(batch.groups).encode("utf-8") + b"\0")
        for value, grad in outputs:
            _array(h, value)
            _array(h, grad)
    return h.hexdigest()


def _entries(samples: bool = False) -> tuple[Path | None, dict]:
    d = _directory(samples) if truthcache.ENABLED else None
    if d is None:
        return None, {}
    with _lock:
        if d not in _loaded:
            _loaded[d] = truthcache.load_dir(d)
        return d, _loaded[d]


def recall(key: str) -> dict | None:
    """The verdict kept for ``key`` (:func:`config_key`), a copy of its own, or None (none kept,
    or the cache off)."""
    got = _entries()[1].get(key)
    return None if got is None else copy.deepcopy(got)


def keep(key: str, value, samples: bool = False) -> None:
    """Keep ``value`` (a verdict; ``samples``: a batch) for ``key``: readable at once in this
    process, on disk at the next :func:`flush` (nothing where the cache is off)."""
    d, entries = _entries(samples)
    if d is None:
        return
    with _lock:
        entries[key] = value
        _fresh.setdefault(d, {})[key] = value


def flush() -> None:
    """Write what was kept since the last flush, one shard per directory (a configuration's
    batches in one, its verdict in the other: a shard per batch made a judging run's directory
    1,300 files)."""
    with _lock:
        pending = list(_fresh.items())
        _fresh.clear()
    for d, entries in pending:
        truthcache._write(d, entries)


def kept_sample(what: str, case, args: tuple, draw):
    """``draw()`` (a seeded :class:`~.sampling.Batch` of ``case``), kept in a directory of its
    own beside the verdicts': a pure function of the sampler's code (:data:`_SAMPLER`), NumPy's
    version and the machine (all in that directory's digest), the case as data (its label
    domain too) and ``args`` (dtype name, row length, rows, seed, label and parameter flags);
    per-row draws of NumPy's generator cost about 30 µs a row, 15 % of a run that takes its
    verdicts and 11 % of one that judges. Without the cache, ``draw()``."""
    d, entries = _entries(samples=True)
    if d is None:
        return draw()
    key = hashlib.sha256(repr((what, repr(case), repr(case.label_domain), args)).encode("utf-8")).hexdigest()
    got = entries.get(key)
    if got is None:
        got = draw()
        keep(key, got, samples=True)
    return copy.deepcopy(got)
