"""Blocked, multithreaded evaluation of the generated cores over the rows of a batch.

The generated cores are row-wise: each row (the class axis) depends on nothing outside it. So a
batch is cut into blocks of rows, each block is widened to float64, computed and rounded into
the preallocated output; the blocks run on a small thread pool (NumPy releases the GIL inside
its loops). Why:

* cache: a block's float64 temporaries (``BLOCK_ELEMENTS`` doubles each) stay in the L2 cache,
  where a whole-batch float64 temporary costs a trip to memory for every operation;
* memory: the extra memory of a call is a few blocks, not a float64 copy of every input;
* cores: TensorFlow uses every core for the same work; NumPy alone uses one.

Every block allocates NumPy temporaries of the same few sizes, freed at once. glibc's malloc
returns such memory to the system (its trim threshold follows its mmap threshold, 128 KiB to
32 MiB) and faults it in again on the next block: measured here, that tripled the time of a
kernel on some block sizes. So on the first blocked call the thresholds are fixed
(``mallopt``: memory up to 32 MiB comes from the heap, and up to 64 MiB of free heap is kept).
This is process-wide; set ``CESYM_KEEP_MALLOC=1`` to leave malloc as it is.

The result does not depend on the number of threads or on the block size: every row is
computed by the same operations in the same order whatever block it falls in.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._limits import all_finite

__all__ = ["BLOCK_ELEMENTS", "num_threads", "set_num_threads", "run_blocks"]

# Doubles per input block (2 MiB). Measured on 2 cores, CCE from logits, 2^20 x 10: smaller blocks
# stay in L2 but make each NumPy call so short that two threads spend their time handing the
# GIL back and forth (2^15: slower on 2 threads than on 1); larger ones work from L3 or memory.
# 2^17 and 2^18 were the fastest on 2 threads (2^17: 1 MiB per temporary).
BLOCK_ELEMENTS = 1 << 17
MIN_SPLIT = 1 << 15  # below this many elements per thread, one thread does all the blocks

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0  # a pool inherited through fork() has no threads: make a new one
_threads: int | None = None


def num_threads() -> int:
    """Threads the kernels use: ``set_num_threads``, else ``CESYM_NUM_THREADS``, else the usable cores."""
    if _threads is not None:
        return _threads
    env = os.environ.get("CESYM_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"CESYM_NUM_THREADS: expected a positive integer, got {env!r}") from None
        if n < 1:
            raise ValueError(f"CESYM_NUM_THREADS: expected a positive integer, got {env!r}")
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads for the kernels (``None``: back to the default). Results do not change."""
    global _threads, _pool
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n: expected a positive integer or None, got {n!r}")
    with _lock:
        _threads = n
        if _pool is not None and _pool_pid == os.getpid():
            _pool.shutdown(wait=True)
        _pool = None


def _executor(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid() or _pool._max_workers != n:  # noqa: SLF001
            if _pool is not None and _pool_pid == os.getpid():
                _pool.shutdown(wait=True)
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="cesym")
            _pool_pid = os.getpid()
        return _pool


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_malloc_tuned = False


def _tune_malloc() -> None:
    """Keep freed block temporaries in the heap (see the module docstring); glibc only."""
    global _malloc_tuned
    if _malloc_tuned:
        return
    _malloc_tuned = True
    if os.environ.get("CESYM_KEEP_MALLOC") or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
    except (OSError, AttributeError):  # not glibc: its allocator, its behaviour
        pass


def _block(src, s: int, e: int) -> np.ndarray:
    """Rows ``s:e`` of ``src`` as a C-contiguous float64 block (a fresh array)."""
    if callable(src):
        return src(s, e)
    return np.array(src[s:e], dtype=np.float64, order="C")


def run_blocks(
    core: Callable,
    rows: Sequence,
    scalars: tuple,
    n_rows: int,
    n_cols: int,
    outputs: Sequence[tuple[str, np.dtype]],
    check: Callable[[np.ndarray], None] | None = None,
    block_elements: int | None = None,
    precheck: Callable[[np.ndarray], None] | None = None,
    limit: Callable[[list, tuple], tuple] | None = None,
    watch: Sequence[int] | None = None,
) -> list[np.ndarray]:
    """Evaluate ``core(*blocks, *scalars)`` over blocks of rows; return the outputs.

    ``rows``: 2-D arrays of shape (n_rows, n_cols) (any real dtype; widened to float64 per
    block) or callables ``(start, stop) -> float64 block`` (e.g. one-hot rows from integer
    labels). ``outputs``: one ``(kind, dtype)`` per value the core returns, ``kind`` being
    ``"row"`` (one value per row: the core returns it with keepdims) or ``"elem"`` (one per
    element, broadcast to the block). ``precheck(block)``: called on every block of the last
    row input (the prediction) before the core; ``check(block)``: called on a block whose
    outputs are not all finite, to raise if that is bad input (both in the worker threads);
    ``limit(blocks, results)``: called after it on such a block, returns the results with the
    limits of rows whose inputs are not all finite (:mod:`._limits`). ``watch``: the outputs
    whose finiteness is tested (default: all), when the others cannot be non-finite alone.
    Blocks of finite outputs pay one summing pass per watched output, nothing else.
    """
    _tune_malloc()
    outs = [np.empty((n_rows,) if kind == "row" else (n_rows, n_cols), dtype=dt) for kind, dt in outputs]
    threads = num_threads()
    step = max(1, (block_elements or BLOCK_ELEMENTS) // max(1, n_cols))
    if threads > 1 and n_rows <= step * (threads - 1) and n_rows * n_cols >= threads * MIN_SPLIT:
        step = -(-n_rows // threads)  # fewer blocks than threads: one block each
    starts = range(0, n_rows, step)

    def work(s: int) -> None:
        e = min(s + step, n_rows)
        blocks = [_block(src, s, e) for src in rows]
        with np.errstate(all="ignore"):  # IEEE results: inf for log 0, overflow in the float32 cast
            if precheck is not None:
                precheck(blocks[-1])
            res = core(*blocks, *scalars)
            if len(outs) == 1:
                res = (res,)
            watched = res if watch is None else [res[i] for i in watch]
            if (check is not None or limit is not None) and not all(all_finite(r) for r in watched):
                # bad input and infinite inputs show as inf or NaN: only then are they looked for
                if check is not None:
                    check(blocks[-1])
                if limit is not None:
                    res = limit(blocks, res)
            for out, (kind, _), r in zip(outs, outputs, res):
                if kind == "row":
                    out[s:e] = np.broadcast_to(r, (e - s, 1))[:, 0]
                else:
                    out[s:e] = r

    def work_all(share) -> None:
        for s in share:
            work(s)

    n = min(threads, len(starts))
    if n <= 1:
        work_all(starts)
    else:
        # One task per thread, each taking every n-th block: handing a task to a pool thread
        # costs tens of microseconds, as much as computing a block. The calling thread takes
        # the first share. map() re-raises a worker's exception here (the outputs go with it).
        shares = [starts[i::n] for i in range(n)]
        pending = _executor(n - 1).map(work_all, shares[1:])
        work_all(shares[0])
        list(pending)
    return outs
