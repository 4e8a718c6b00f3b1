"""A disk cache of the reference's proven numbers at a run's points, shared by processes and
runs of the ``cesym`` command.

``cesym verify`` draws its points from a seed, so a second run (after a change to a kernel, to
Keras's model, to a report) asks the reference for the same numbers at the same inputs: values
and gradients pinned to 2^-8 ulp, condition numbers, limits. What costs is decided point by
point on Arb balls at rising precision (milliseconds each: the Hessians of κ at logits of 1e4
and beyond, most of all), and the first tier's stages on whole batches (float64, wide and
double-double intervals of the value, the gradient and the Hessian: a third of a default run
with nothing kept). Those results are kept here: one directory per
:class:`~cesym.verify.reference.RowReference`, named by a digest of everything that decides its
numbers (the expanded definition and its symbols, the backend, the sources of the reference, of
the balls, of the printer, of :mod:`.truths`, :mod:`.extended` and the first tier's interval
modules, the SymPy, mpmath and python-flint versions), holding pickled ``{memo key: result}``
shards; a key is the exact inputs (floats, or mpmath numbers for the limits' stand-ins) and
what was asked: κ, κ of the value; ``("dd", inputs, dtype)``, the double-doubles of the balls'
value and gradient that :func:`~.truths.batch_truths` took (float tuples, read back in
microseconds where the balls take a millisecond); ``("checked pair", inputs)``, the gradient
spot check's value, gradient and mpmath.diff; ``("limit", ...)``, a limit at ±inf inputs and
how it was taken; ``("first tier", host, stage, ...)``, a stage's arrays for a batch, keyed by a
digest of its points (:func:`cesym.verify.first_tier._kept`); ``("keras model", digest, ...)``,
the intervals of Keras's algorithm on a row (:func:`cesym.keras.model.envelope`), keyed by a
digest of the model's source and of Keras's algorithm for the loss, so that a change to the
model is a new key and leaves the reference's numbers in place. The contract's verdicts of whole
configurations (:mod:`.verdicts`) have a directory here too, one per code state, read with
:func:`load_dir`. A different definition or
reference code is a different directory: nothing is ever reused for something else, nothing is
invalidated by hand. The numbers are the reference's own, so a run with the cache warm gives the
same verdicts as one without it; a reference value it prints (a worst example's ``exact``) may
differ below its pinning, 2^-8 ulp of the dtype (measured at stop 73: a float32 value's
``exact`` 0.69314625860763748 in a run whose cache was partly stale, ...746 with it warm; the
first tier's numbers and the balls' agree to 2^-8 ulp, not bit for bit, and which one a point
gets may depend on what the cache holds; not pinned down).

Directories are dropped when unused: each is touched when a process loads it, and the ``cesym``
command (:func:`prune`, at most once a day) removes those not used for :data:`MAX_DAYS` days
(``CESYM_CACHE_DAYS``), then, past :data:`MAX_MB` megabytes in all (``CESYM_CACHE_MAX_MB``), the
least recently used, never one used in the last hour (another process may be reading it; a
shard that vanishes is computed again, as a damaged one is). Every change to the reference, the
balls or the library versions starts new directories, so without this they would pile up.

Opt-in: the ``cesym`` command turns it on (:data:`ENABLED`, :func:`cesym.cli.main`); a library
user's process and the tests compute everything. ``CESYM_CACHE_DIR`` places it as it places the
compiled forms' cache (:func:`cesym.verify.codecache.cache_dir`), ``off`` turns both off. Shards
are written whole (a temporary file renamed into place) by each process at the end of each
configuration; a shard that does not read back is ignored (its numbers are computed again);
past :data:`MAX_SHARDS` in a directory, a loading process merges them into one.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path

from ..files import write_bytes

__all__ = ["ENABLED", "MAX_SHARDS", "MAX_DAYS", "MAX_MB", "directory", "load", "load_dir", "flush", "prune"]

#: Set by the ``cesym`` command; off for a library user's process (and the tests).
ENABLED = False
#: Shards a directory may hold before a loading process merges them.
MAX_SHARDS = 16
#: Directories unused this many days are removed by :func:`prune` (``CESYM_CACHE_DAYS``).
MAX_DAYS = 30.0
#: The directories' total size :func:`prune` keeps below, least recently used first (``CESYM_CACHE_MAX_MB``).
MAX_MB = 1024.0
_RECENT = 3600.0  # seconds: a directory used this recently is never removed
_FORMAT = "cesym-truths-1"
_lock = threading.Lock()  # one flush at a time per process (threads share the references)


def directory(ref) -> Path | None:
    """The directory of ``ref``'s numbers (None: off, or a source that cannot be read); worked
    out once per reference (the definition's ``srepr`` costs milliseconds to tens of them)."""
    if not ENABLED:
        return None
    if "_truths_dir" not in ref.__dict__:
        ref._truths_dir = _directory(ref)
    return ref._truths_dir


def _directory(ref) -> Path | None:
    from . import balls, codecache, reference

    root = codecache.cache_dir()
    if root is None:
        return None
    sources = [codecache._source_digest(m) for m in (reference.__name__, balls.__name__, "cesym.define.evaluate")]
    sources += [_file_digest(m) for m in _KEPT_BY]
    if None in sources:
        return None
    import mpmath
    import sympy as sp

    try:
        import flint
    except ImportError:  # the mpmath.iv backend alone
        flint = None
    h = hashlib.sha256()
    for part in (
        _FORMAT, sp.__version__, mpmath.__version__, getattr(flint, "__version__", "-"), *sources, ref.kind,
        ref.value_srepr, sp.srepr(ref.args), str(ref.n_grad), repr(reference.PRECISIONS),
    ):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return root.parent / "truths" / h.hexdigest()[:40]


#: What else decides the kept numbers: the batch check's double-doubles of the balls' values
#: (:mod:`.truths`), the limits (:mod:`.extended`) and the first tier's stages
#: (:func:`cesym.verify.first_tier._kept`); read from their files, not imported (the compiled
#: stages import Numba, which ``--quick`` never needs).
_KEPT_BY = ("truths", "extended", "first_tier", "float_intervals", "scaled_intervals", "dd_intervals", "interval_loops", "interval_algebra")


def _file_digest(module: str) -> str | None:
    """The digest of the source file of ``cesym.verify.<module>`` (None: it cannot be read)."""
    try:
        return hashlib.sha256((Path(__file__).parent / f"{module}.py").read_bytes()).hexdigest()
    except OSError:
        return None


def _read(path: Path) -> dict | None:
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)  # noqa: S301 - our own cache, as the compiled forms' source is
        return data if isinstance(data, dict) else None
    except Exception:  # noqa: BLE001 - a damaged or vanished shard: its numbers are computed again
        return None


def _write(d: Path, entries: dict) -> Path | None:
    """``entries`` as a new shard of ``d``, whole or not at all (:func:`cesym.files.write_bytes`:
    a temporary file renamed into place, the umask's mode)."""
    path = d / f"{os.getpid()}-{secrets.token_hex(6)}.pkl"
    try:
        d.mkdir(parents=True, exist_ok=True)
        write_bytes(path, pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL), what="truths cache shard")
        return path
    except OSError:  # OutputError included: not writable, computed again next time
        return None


def load(ref) -> dict:
    """The numbers kept for ``ref`` (empty where there are none or the cache is off); merges the
    shards into one past :data:`MAX_SHARDS` (a shard read by another process meanwhile is still
    whole: it is removed only after the merged one is in place)."""
    return load_dir(directory(ref))


def load_dir(d: Path | None) -> dict:
    """The entries of the shards of directory ``d`` (:func:`load`; :mod:`.verdicts` keeps its
    own directory here, dropped by :func:`prune` as the references' are)."""
    if d is None or not d.is_dir():
        return {}
    try:
        os.utime(d)  # used now (prune keeps what is used)
    except OSError:
        pass
    shards = sorted(d.glob("*.pkl"))
    out: dict = {}
    read = []
    for p in shards:
        data = _read(p)
        if data is not None:
            out.update(data)
            read.append(p)
    if len(read) > MAX_SHARDS and _claim(d):
        try:
            if _write(d, out) is not None:
                for p in read:
                    try:
                        p.unlink()
                    except OSError:
                        pass
        finally:
            _release(d)
    return out


#: The file a process holds while it merges a directory's shards; older than this many seconds,
#: a claim is taken to be a merge that died (a merge writes one shard: seconds at most).
_MERGING, _STALE = ".merging", 600.0


def _claim(d: Path) -> bool:
    """Whether this process may merge ``d``'s shards: it created ``d/.merging``. The workers of a
    run load a directory at about the same time; each merging it wrote the whole of it once
    more (a 31 MB directory became 62 MB in two shards)."""
    import time

    for _ in range(2):
        try:
            os.close(os.open(d / _MERGING, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return True
        except FileExistsError:
            try:
                if time.time() - (d / _MERGING).stat().st_mtime < _STALE:
                    return False
                (d / _MERGING).unlink()  # left by a merge that died: taken over
            except OSError:
                return False
        except OSError:  # not writable: read-only, nothing to merge into either
            return False
    return False


def _release(d: Path) -> None:
    try:
        (d / _MERGING).unlink()
    except OSError:
        pass


def flush(refs: Iterable) -> int:
    """Write each reference's numbers computed since its last flush as a new shard; the number
    of entries written."""
    if not ENABLED:
        return 0
    written = 0
    with _lock:
        for ref in list(refs):
            if not ref.__dict__.get("_fresh"):
                continue
            fresh, ref._fresh = ref._fresh, {}
            d = directory(ref)
            if d is not None and _write(d, fresh) is not None:
                written += len(fresh)
    return written


def _limit(name: str, default: float, unit: str) -> float:
    """The environment's ``name`` as a non-negative number (``default`` where unset)."""
    env = os.environ.get(name)
    if env is None or not env.strip():
        return default
    try:
        value = float(env)
    except ValueError:
        value = math.nan
    if not value >= 0:  # NaN too
        raise ValueError(f"{name}: expected a non-negative number of {unit}, got {env!r}")
    return value


def prune(now: float | None = None, every: float = 0.0) -> int:
    """Remove the directories of numbers unused for :data:`MAX_DAYS` days, then the least
    recently used past :data:`MAX_MB` megabytes in all, keeping any used in the last hour; the
    number removed. Nothing outside the cache's ``truths`` directory is touched, and only its
    directories of shards (named by a 40-digit digest). A limit in the environment that is not
    a non-negative number is a ValueError naming it. ``every``: seconds; a pass is skipped
    where the last one (its marker file, ``truths/.pruned``) is more recent than that (the walk
    stats every shard: 0.43 s with 659 directories not in the page cache, measured on this
    project's 2-core VM, too much for every command)."""
    from . import codecache

    root = codecache.cache_dir()
    if root is None:
        return 0
    max_age = _limit("CESYM_CACHE_DAYS", MAX_DAYS, "days") * 86400.0
    budget = _limit("CESYM_CACHE_MAX_MB", MAX_MB, "megabytes") * 2.0**20
    if not (root.parent / "truths").is_dir():
        return 0
    import shutil
    import time

    now = time.time() if now is None else now
    marker = root.parent / "truths" / ".pruned"
    try:
        if every and now - marker.stat().st_mtime < every:
            return 0
    except OSError:  # no marker yet: a first pass
        pass
    dirs = []
    try:
        entries = list((root.parent / "truths").iterdir())
    except OSError:  # removed or unreadable meanwhile
        return 0
    for d in entries:
        if len(d.name) != 40 or not all(c in "0123456789abcdef" for c in d.name) or d.is_symlink() or not d.is_dir():
            continue
        try:
            used = d.stat().st_mtime
            size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
        except OSError:  # removed meanwhile
            continue
        dirs.append((used, size, d))
    dirs.sort(key=lambda t: -t[0])  # most recently used first
    removed, total = 0, 0
    for used, size, d in dirs:
        total += size
        recent = now - used < _RECENT
        if not recent and (now - used > max_age or total > budget):
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
            total -= size
    try:
        marker.touch()
        os.utime(marker, (now, now))
    except OSError:  # a read-only cache: the next command walks it again
        pass
    return removed
