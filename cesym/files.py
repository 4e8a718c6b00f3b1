"""Files the tool writes: kernels, reports, ``--json`` and ``--markdown`` outputs.

One helper for every writer, so that they all behave alike:

* **atomic**: the text goes to a temporary file in the target's directory, then ``os.replace``
  puts it in place; a reader sees the old file or the new one, never a part, and an
  interruption (Ctrl-C included) removes the temporary file;
* **the mode ``open()`` would give**: a new file gets ``0o666 & ~umask`` (the temporary file is
  created with ``os.open(..., 0o666)``, so the kernel applies the umask itself: nothing reads or
  changes the process umask, which would race other threads); an existing file keeps its mode,
  as it would when ``open(path, "w")`` rewrites it;
* **a read-only target is refused** (:class:`OutputError`), not replaced behind its owner's back
  (``os.replace`` would only need the directory to be writable). Read-only means: ``os.access``
  says it is not writable, or no write bit is set (so that root, for whom ``os.access`` always
  says yes, is refused too);
* **missing parent directories are not created**: a typo in an output path is an error, not a
  new directory tree.

:func:`check_output_file` and :func:`check_output_dir` make the same checks up front, so that
a command refuses a bad path before any work rather than losing an hour's results at the end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import stat
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = [
    "file_digest", "OutputError", "check_output_file", "check_output_dir", "write_text", "write_texts", "deferred_interrupt",
    "on_interrupt", "reset_interrupt", "interrupt_noted", "raise_if_interrupted", "quiet_dropped_interrupts",
]

def file_digest(path: Path) -> str:
    """16 hex digits of SHA-256 of a file's bytes, line ends normalised (a checkout that writes
    CRLF digests as one that writes LF); ``"(missing)"`` for a file that is not there."""
    import hashlib

    path = Path(path)
    if not path.exists():
        return "(missing)"
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()[:16]


#: Set by :func:`on_interrupt`: a Ctrl-C that came, even one an ignoring context swallowed (a
#: KeyboardInterrupt raised inside a weakref callback during an import is printed and dropped).
_INTERRUPTED = threading.Event()


def on_interrupt(signum, frame) -> None:
    """The command line's SIGINT handler: note the interrupt, then raise KeyboardInterrupt as
    Python's own handler does."""
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def reset_interrupt() -> None:
    """Forget an earlier Ctrl-C (a new command starts)."""
    _INTERRUPTED.clear()


def interrupt_noted() -> bool:
    """A Ctrl-C came since the command started (:func:`on_interrupt` noted it)."""
    return _INTERRUPTED.is_set()


def raise_if_interrupted() -> None:
    """KeyboardInterrupt if a Ctrl-C came, even one swallowed on its way: nothing is written after it."""
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def quiet_dropped_interrupts() -> Iterator[None]:
    """During the block, a KeyboardInterrupt that Python drops is not printed, once noted.

    Python cannot raise out of an at-fork hook, a weakref callback or ``__del__``: an exception
    there goes to :data:`sys.unraisablehook`, which prints "Exception ignored in ..." and a
    traceback. A Ctrl-C whose handler runs there (logging's lock release after a fork, in the
    parent, while a pool forks its workers) is one: :func:`on_interrupt` noted it, and the
    command stops at its next :func:`raise_if_interrupted`, so the traceback says nothing the
    user needs. Every other unraisable exception goes to the hook that was there before.
    """
    import sys

    before = sys.unraisablehook

    def hook(unraisable) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt) and _INTERRUPTED.is_set():
            return
        before(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = before


class OutputError(OSError):
    """A path the tool was asked to write cannot be written; the message names it and why."""


def _read_only(path: Path, st: os.stat_result, directory: bool) -> bool:
    need = os.W_OK | (os.X_OK if directory else 0)
    return not os.access(path, need) or not (st.st_mode & 0o222)


def _target(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` changes: a symlink's target, as ``open()`` would write it."""
    p = Path(path)
    return Path(os.path.realpath(p)) if p.is_symlink() else p


def check_output_file(path: str | os.PathLike, what: str = "output") -> Path:
    """Raise :class:`OutputError` unless a file can be written at ``path``; return the path.

    The parent must be an existing, writable directory; ``path`` must not be a directory, and if
    it exists it must be a writable regular file. ``what`` names the argument in the message.
    """
    p = _target(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.name in ("", ".", ".."):
        raise OutputError(f"{what} {path}: expected a file path, got a directory")
    if not parent.exists():
        raise OutputError(f"{what} {path}: directory {parent} does not exist (it is not created)")
    if not parent.is_dir():
        raise OutputError(f"{what} {path}: {parent} is not a directory")
    if _read_only(parent, parent.stat(), directory=True):
        raise OutputError(f"{what} {path}: directory {parent} is read-only")
    if p.exists():
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{what} {path}: is a directory, expected a file path")
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{what} {path}: is not a regular file")
        if _read_only(p, st, directory=False):
            raise OutputError(f"{what} {path}: is read-only (not replaced; make it writable or choose another path)")
    return p


def check_output_dir(path: str | os.PathLike, what: str = "output directory", create: bool = True) -> Path:
    """Raise :class:`OutputError` unless files can be written into the directory ``path``.

    With ``create``, a missing directory is accepted when its parent exists and is writable
    (the writer creates it, the parent never); without, it must exist.
    """
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise OutputError(f"{what} {path}: is not a directory")
        if _read_only(p, p.stat(), directory=True):
            raise OutputError(f"{what} {path}: is read-only")
        return p
    parent = p.parent if str(p.parent) else Path(".")
    if not create or not parent.is_dir():
        raise OutputError(f"{what} {path}: no such directory")
    if _read_only(parent, parent.stat(), directory=True):
        raise OutputError(f"{what} {path}: cannot be created: {parent} is read-only")
    return p


def write_text(path: str | os.PathLike, text: str, *, skip_unchanged: bool = False, what: str = "output") -> bool:
    """Write ``text`` (UTF-8) to ``path`` atomically, with the mode ``open()`` would give.

    Returns False (and touches nothing) when ``skip_unchanged`` and the file already holds these
    bytes, True otherwise. Raises :class:`OutputError` for a read-only target, a missing parent
    or a directory in the way, before anything is created.
    """
    return write_bytes(path, text.encode("utf-8"), skip_unchanged=skip_unchanged, what=what)


def write_bytes(path: str | os.PathLike, data: bytes, *, skip_unchanged: bool = False, what: str = "output") -> bool:
    """:func:`write_text` for bytes."""
    raise_if_interrupted()
    p = _target(path)
    if skip_unchanged and p.is_file():
        try:
            if p.read_bytes() == data:
                return False
        except OSError:
            pass  # unreadable: check_output_file below says why it cannot be written either
    check_output_file(p, what)
    mode = stat.S_IMODE(p.stat().st_mode) if p.exists() else None
    tmp = None
    try:
        fd, tmp = _create_temporary(p)
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)  # an existing file keeps its mode, as with open()
            f.write(data)
        os.replace(tmp, p)
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return True


def _create_temporary(p: Path) -> tuple[int, str]:
    """A new file next to ``p``, created 0o666 & ~umask (O_EXCL: never someone else's file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = str(p.parent / f".{p.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def write_texts(files: Mapping[Path, str], *, skip_unchanged: bool = True, what: str = "output") -> list[Path]:
    """Write several files as one step: every path is checked first, Ctrl-C waits until all are
    written (a few milliseconds), so an interrupted run leaves the old set or the new one.

    Returns the paths whose bytes changed.
    """
    for p in files:
        check_output_file(p, what)
    raise_if_interrupted()
    changed = []
    with deferred_interrupt():
        for p, text in files.items():
            if write_text(p, text, skip_unchanged=skip_unchanged, what=what):
                changed.append(p)
    return changed


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold SIGINT back during the block and raise KeyboardInterrupt after it, if one came.

    Only in the main thread (the only one Python delivers signals to); elsewhere a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if received:
        raise KeyboardInterrupt
