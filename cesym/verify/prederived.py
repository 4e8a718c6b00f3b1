"""The reference's compiled forms for the shipped catalog, derived once and shipped with cesym.

The reference (:class:`cesym.verify.reference.RowReference`) differentiates each loss's expanded
row with ``sympy.diff``: the gradient, the value's other partials and the second derivatives of
the condition numbers. :mod:`cesym.verify.codecache` keeps what that prints on the user's disk,
keyed by everything that decides it; a fresh machine or a fresh install still pays it once per
form and process: 5 s of CPU for ``cesym verify --quick`` (a third of its time there), 23 s for
the default run, more than 60 s for the test suite on an empty cache. This module ships those
entries for the catalog in one archive, ``prederived.zip`` beside it, written by
``cesym generate`` (the shipped derivations only) and read as a second, read-only layer of the
code cache: the user's directory first, then the archive, then ``sympy.diff``.

Entries are the code cache's own (same names, same text), so nothing here is trusted that the
cache would not trust: a name is a digest of the form's expression and symbols, of the SymPy and
mpmath versions and of the sources of the printer and of the deriving modules. An edit to any of
those makes the archive's names stale; they are then never found (every form is derived again
where it is needed, as without the archive) and ``cesym generate --check`` says so, as a test
does. What is shipped: the three forms of every reference ``cesym verify`` builds for the shipped
kernels (:func:`manifest`: default and quick row lengths, the default interval back end), and
every entry ``cesym generate`` compiles rendering the catalog (its rewrite, domain and edge
checks: recorded by :func:`cesym.verify.codecache.record` around the rendering).
``CESYM_CACHE_DIR=off`` turns this layer off with the other: everything is derived in-process.
"""

from __future__ import annotations

import functools
import inspect
import io
import threading
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["ARCHIVE", "read", "manifest", "expected", "stale", "write"]

#: The archive. Members ``verify/<name>.py``: the forms of :func:`manifest`'s references;
#: ``generate/<name>.py``: what ``cesym generate`` compiles for the catalog (the rewrite checks'
#: rows, the domain and edge checks' references). ``<name>``: the code-cache entry's name.
ARCHIVE = Path(__file__).with_name("prederived.zip")
PARTS = ("verify", "generate")
#: The forms of a reference, by the name :class:`~cesym.verify.reference.RowReference` gives them.
FORMS = ("value and gradient", "partials", "hessian")
_lock = threading.Lock()
_members: dict[str, dict[str, str]] = {}  # archive path -> {entry name: text}, read once


def _read_archive(path: Path) -> dict[str, dict[str, str]]:
    """``{part: {entry name: text}}`` (empty: no archive, a checkout before its first
    ``cesym generate``, or a damaged one: everything is derived)."""
    out: dict[str, dict[str, str]] = {part: {} for part in PARTS}
    try:
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                part, _, file = member.partition("/")
                if part in out and file.endswith(".py"):
                    out[part][file[: -len(".py")]] = z.read(member).decode("utf-8")
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, ValueError, EOFError):
        return {part: {} for part in PARTS}
    return out


def read(name: str, archive: Path | None = None) -> str | None:
    """The printed source of the code-cache entry ``name`` from the archive (None: not shipped)."""
    path = ARCHIVE if archive is None else archive
    key = str(path)
    members = _members.get(key)
    if members is None:
        with _lock:  # one read of the archive per process, whichever thread asks first
            members = _members.get(key)
            if members is None:
                parts = _read_archive(path)
                members = _members[key] = {**parts["generate"], **parts["verify"]}
    return members.get(name)


def manifest() -> list[tuple[object, int]]:
    """The ``(loss, row length)`` of every reference ``cesym verify`` builds for the shipped
    kernels, default and ``--quick`` runs: each case's row lengths (one for an elementwise
    loss, the batch reduction's own), in a fixed order."""
    from .contract import definition
    from .registry import _shipped
    from .run import BATCH_SIZES, QUICK_SIZES, SIZES

    refs: dict[tuple[str, int], tuple[object, int]] = {}
    for case in _shipped():
        loss = definition(case)
        if case.reduction == "batch":
            ns: Iterable[int] = BATCH_SIZES
        elif case.elementwise:
            ns = (1,)
        else:
            ns = sorted(set(SIZES) | set(QUICK_SIZES))
        for n in ns:
            refs.setdefault((loss.name, n), (loss, n))
    return [refs[k] for k in sorted(refs)]


@functools.cache
def _named() -> list[tuple[object, int, dict[str, str]]]:
    """:func:`manifest` with each reference's ``{form: code-cache name}`` (names only: nothing
    is derived; once per process, about 2 s: the definitions' expansions and ``srepr``)."""
    from .reference import RowReference

    out = []
    for loss, n in manifest():
        names = RowReference.form_names(loss, n)
        if None in names.values():
            raise RuntimeError(f"{loss.name}: the code cache has no name for its forms (sources not readable)")
        out.append((loss, n, names))
    return out


def expected() -> dict[str, str]:
    """``{code-cache name: what it is}`` of every form :func:`manifest` asks for."""
    return {name: f"{loss.name}, rows of {n}: {form}" for loss, n, names in _named() for form, name in names.items()}


def stale(archive: Path | None = None, generated: Mapping[str, str] | None = None) -> list[str]:
    """What differs between the archive and what is asked for: :func:`expected`'s forms and, with
    ``generated`` (:func:`cesym.verify.codecache.record` around ``cesym generate``'s rendering of
    the catalog), the entries generate compiled; forms missing, and members nothing asks for (an
    edit to the reference's or the printer's sources renames every form)."""
    path = ARCHIVE if archive is None else archive
    have = _read_archive(path)
    want = {"verify": expected()}
    if generated is not None:
        want["generate"] = {k: "compiled by cesym generate" for k in generated if k not in want["verify"]}
    out = []
    for part, names in want.items():
        out += [f"missing {names[k]} ({k})" for k in sorted(names) if k not in have[part]]
        out += [f"unused {part}/{k}" for k in sorted(set(have[part]) - set(names))]
    return out


def write(archive: Path | None = None, generated: Mapping[str, str] | None = None) -> bool:
    """Write the archive: :func:`expected`'s forms (members already in it and still asked for are
    kept, the others derived, or read from the user's code cache: the same text) and, with
    ``generated``, those entries as the generate part (without it the part stays as it is). True
    when its content changed. Deterministic bytes for one zlib: sorted members, fixed dates."""
    from ..files import write_bytes
    from .reference import RowReference

    path = ARCHIVE if archive is None else archive
    old = _read_archive(path)
    texts: dict[str, dict[str, str]] = {"verify": {}, "generate": dict(old["generate"])}
    for loss, n, names in _named():
        if all(k in old["verify"] for k in names.values()):
            texts["verify"].update({k: old["verify"][k] for k in names.values()})
            continue
        ref = RowReference(loss, n)
        fns = {"value and gradient": ref._main, "partials": ref._value_partials, "hessian": ref._hessian}
        # the text the code cache would keep (with it off, what it would have printed)
        texts["verify"].update({names[f]: getattr(fns[f], "printed_source", None) or inspect.getsource(fns[f]) for f in FORMS})
    if generated is not None:
        texts["generate"] = {k: v for k, v in generated.items() if k not in texts["verify"]}
    if texts == old:
        return False
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for part in PARTS:
            for name in sorted(texts[part]):
                info = zipfile.ZipInfo(f"{part}/{name}.py", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, texts[part][name].encode("utf-8"), compresslevel=9)
    write_bytes(path, buf.getvalue(), what="prederived forms")
    with _lock:
        _members.pop(str(path), None)
    return True
