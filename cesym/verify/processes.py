"""Work spread over forked processes, as ``cesym verify`` and its exhaustive runs do it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from ..files import raise_if_interrupted

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["imap", "shared", "shared_get"]


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def imap(fn: Callable[[T], R], tasks: Sequence[T], jobs: int) -> Iterator[R]:
    """``fn(task)`` for each task, in order, in ``jobs`` forked processes (in this one for one job
    or one task).

    ``multiprocessing.Pool``, not ``ProcessPoolExecutor``: on Ctrl-C, an error, or the consumer
    stopping early, ``terminate()`` stops the workers at once, where the executor's shutdown
    waits for the running tasks (half a minute). The workers ignore SIGINT: a terminal sends it
    to the whole process group, and the parent alone decides. A consumer that may stop early
    closes the iterator (``contextlib.closing``): the workers end then, not when the traceback
    holding the generator is freed.

    A Ctrl-C the command line noted (:func:`cesym.files.raise_if_interrupted`) stops the run at
    the next task, even one whose KeyboardInterrupt Python dropped: a SIGINT handled inside an
    at-fork hook (logging's lock release in the parent, while the pool forks its workers) is
    printed as "Exception ignored" and the run would go on to its end.
    """
    if jobs <= 1 or len(tasks) <= 1:
        for t in tasks:
            raise_if_interrupted()
            yield fn(t)
        return
    import multiprocessing as mp

    before = set(mp.active_children())
    try:
        pool = mp.get_context("fork").Pool(min(jobs, len(tasks)), initializer=_ignore_sigint)
    except BaseException:  # Ctrl-C while forking: Pool.__init__ cleans up after an Exception only
        for p in set(mp.active_children()) - before:
            p.terminate()
        raise
    try:
        raise_if_interrupted()  # one that landed while the workers were forked
        for r in pool.imap(fn, tasks):
            raise_if_interrupted()
            yield r
        pool.close()
    except BaseException:  # GeneratorExit too: a consumer that stopped
        pool.terminate()
        raise
    finally:
        pool.join()


#: Objects the tasks of a run in progress refer to by token (a task carries its token and an
#: index, not the object: cases hold modules, which do not pickle; forked workers inherit it).
_SHARED: dict[int, object] = {}


@contextmanager
def shared(obj) -> Iterator[int]:
    """A token for ``obj`` while the block runs (:func:`shared_get` finds it, here and in the
    workers :func:`imap` forks inside the block). Tokens are ids of live objects: distinct for
    concurrent runs."""
    token = id(obj)
    _SHARED[token] = obj
    try:
        yield token
    finally:
        _SHARED.pop(token, None)


def shared_get(token: int):
    """The object :func:`shared` registered under ``token``."""
    return _SHARED[token]
