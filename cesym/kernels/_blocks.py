"""Blocked, multithreaded evaluation of the generated cores over the rows of a batch.

The generated cores are row-wise: each row (the class axis) depends on nothing outside it. So a
batch is cut into blocks of rows, each block is widened to float64, computed and rounded into
the preallocated output; the blocks run on a small thread pool (NumPy releases the GIL inside
its loops). Why:

* cache: a block's float64 temporaries (``BLOCK_ELEMENTS`` doubles each) stay in the L2 or L3
  cache, where a whole-batch float64 temporary costs a trip to memory for every operation (the
  size trades this against the GIL hand-offs of each NumPy call: see ``BLOCK_ELEMENTS``);
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

Thread safety: any kernel may be called from any number of threads at once, and
``set_num_threads`` may be called meanwhile. All calls share one pool of ``num_threads() - 1``
workers (a call hands it at most that many tasks and computes one share itself, so the pool's
size caps the threads, not the work). A pool is never shut down while it can be reached: a new
setting only replaces the module's reference, every call keeps its own reference to the pool it
submitted to until its tasks are done, and a replaced pool's idle threads end when it is
garbage-collected (``ThreadPoolExecutor`` wakes them then). Workers only compute blocks and never
wait on the pool, so no call can deadlock another. Everything else a call touches is its own:
the outputs, the float64 blocks, NumPy's error state (thread-local) and the malloc tuning (done
once, under a lock).

Memory and speed do not depend on the shape:

* elementwise kernels (``sigmoid_cross_entropy_with_logits``) see every element as a row of
  one, so a 1-D input is cut into blocks of ``BLOCK_ELEMENTS`` elements like any other (it
  was one float64 block: 6 copies of the input);
* a class axis that is not last is read through a view: the rows are the other axes, merged
  into two (the axes before and after the class axis of a C-contiguous array), and a block of
  rows is gathered from at most three slices of that strided view (:class:`RowView`), never
  from a whole copy of the input;
* a row longer than a block (a language model's vocabulary, a 1-D input to a loss that
  reduces over it) is computed in pieces of at most three quarters of a block of columns
  (:mod:`._pieces`): the generated core runs piece by piece, in passes, its row reductions
  (sums, maxima, the off-max sum, the label's element, ...) accumulated over the pieces and
  combined in piece order by a rule of each primitive (sums pairwise over the piece sums), then
  supplied to the next pass. Scratch memory stays a few pieces; the results are within the
  accuracy contract of the whole-row form (they differ from it in the order of summation
  only) and do not depend on the number of threads;
* zero rows (an empty leading axis): empty outputs of the right shape and dtype, without
  calling the core.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from ._limits import all_finite
from ._runtime import kink_log

__all__ = ["BLOCK_ELEMENTS", "block_elements", "local_arrays", "num_threads", "set_num_threads", "run_blocks"]

# Doubles per input block (2 MiB). Smaller blocks stay in L2 but make each NumPy call so short
# that two threads spend their time handing the GIL back and forth: every block costs a fixed
# hand-off time per NumPy call, which is large on virtual machines (2^16 was 1.4x slower than
# 2^18 on a 2-core Xeon VM with 2 MiB of L2 per core); larger ones work from L3 or memory and
# slow the value+grad kernels, which keep more temporaries (2^19: up to 1.3x slower there).
# Measured per kernel (2^20 x 10 float32, 2 threads): 2^18 was the fastest or within noise of
# it for every kernel on that Xeon and, with 2^17, on a 2-core EPYC VM.
BLOCK_ELEMENTS = 1 << 18
MIN_SPLIT = 1 << 15  # below this many elements per thread, one thread does all the blocks
# A core that keeps more block-sized float64 arrays alive than this gets blocks of half the
# size. Its working set (arrays x block x 8 bytes) is what spills out of the caches, and the
# GIL hand-offs per element do not depend on it. Measured at 2^20 x 10 float32, 2 threads, on
# a 2-core Xeon VM (2 MiB of L2 per core): every kernel of at most 12 local arrays was fastest
# at 2^18 (BCE from logits value+grad, 10: 162 ms against 184 at 2^17; cosine value+grad, 10:
# 135 against 156), every one of 14 or more at 2^17 (the binary focal value+grad cores,
# 14-18: 13-22 % faster).
MANY_ARRAYS = 12


def local_arrays(core: Callable) -> int:
    """How many local variables a generated core assigns (its temporaries and label weights, each
    block-sized), read from its code object; 0 for anything else."""
    code = getattr(core, "__code__", None)
    return 0 if code is None else code.co_nlocals - code.co_argcount


def block_elements(arrays: int) -> int:
    """The block size for a core that keeps ``arrays`` block-sized float64 arrays alive
    (see ``MANY_ARRAYS``)."""
    return BLOCK_ELEMENTS if arrays <= MANY_ARRAYS else BLOCK_ELEMENTS // 2


_current = threading.local()  # the first row of the block a thread is computing (block_start)


def block_range(b: np.ndarray, high: bool = True) -> tuple[float, float | None]:
    """(min, max) of a block the calling thread's core is computing (NaN where it holds NaN; max
    None unless ``high``), once per block: read from the rows it was widened from (float32:
    half the bytes of the block; the widening is exact, so the same numbers), and remembered
    for the block's other readers (the domain check and the float32 rounding test's box)."""
    memo = getattr(_current, "ranges", None)
    if memo is None:
        return float(np.min(b)), (float(np.max(b)) if high else None)
    key = id(b)
    lo, hi = memo.get(key, (None, None))
    if lo is None or (high and hi is None):
        src = _current.sources.get(key)
        src = b if src is None or src.shape != b.shape else src
        lo = float(np.min(src)) if lo is None else lo
        hi = float(np.max(src)) if high else hi
        memo[key] = (lo, hi)
    return lo, hi


class _Overflow:
    """``numpy.errstate``'s ``call`` for overflow in a block: notes that an operation of the
    block's core overflowed (NumPy calls it once per operation that did, so a block without
    overflow costs nothing)."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, kind: str, flag: int) -> None:
        self.seen = True


def block_overflowed() -> bool:
    """Whether an operation overflowed (to ±inf) in the block the calling thread is computing
    (its core, so far); True outside :func:`run_blocks`, where nothing was watched. Helpers that
    overflow on purpose and mend it (``numpy.errstate(over="ignore")`` inside) are not seen."""
    over = getattr(_current, "overflow", None)
    return True if over is None else over.seen


def block_start() -> int:
    """The index of the first row of the block the calling thread's core is computing (0 outside
    :func:`run_blocks`): for cores that note outputs to revisit once every block is done."""
    return getattr(_current, "start", 0)


_lock = threading.Lock()  # guards the three names below
_pool: ThreadPoolExecutor | None = None
_pool_workers = 0  # the size _pool was made with
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
    """Use ``n`` threads for the kernels (``None``: back to the default). Results do not change.

    Safe while other threads compute: calls already running finish on the pool they started
    with (it is dropped, not shut down); the next calls use ``n``.
    """
    global _threads, _pool
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n: expected a positive integer or None, got {n!r}")
    with _lock:
        _threads = n
        _pool = None  # never shutdown(): a caller may still be submitting to it


def _executor(workers: int) -> ThreadPoolExecutor:
    """The shared pool of ``workers`` threads; a pool of another size (another setting) is
    replaced by reference only. The caller must hold the returned reference until its tasks end."""
    global _pool, _pool_workers
    with _lock:
        if _pool is None or _pool_workers != workers:
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cesym")
            _pool_workers = workers
        return _pool


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_malloc_tuned = False
_malloc_lock = threading.Lock()


def positive_zero(p: np.ndarray) -> np.ndarray | None:
    """A copy of ``p`` with -0 replaced by +0, or None if it holds no -0 (x + 0.0 is +0 for
    x = -0 and x itself otherwise, NaN and inf included)."""
    if not np.any(np.signbit(p) & (p == 0)):
        return None
    return p + 0.0


def _tune_malloc() -> None:
    """Keep freed block temporaries in the heap (see the module docstring); glibc only. Once per
    process: the first caller tunes, concurrent first callers wait for it (a plain read after)."""
    global _malloc_tuned
    if _malloc_tuned:
        return
    with _malloc_lock:
        if not _malloc_tuned:
            _tune_malloc_now()
            _malloc_tuned = True


def _after_fork_in_child() -> None:
    """A forked child has only the forking thread: the inherited pool has no workers, and a lock
    another thread held at the fork would stay locked forever. Start afresh (the parent's
    malloc settings are inherited with its heap)."""
    global _lock, _pool, _malloc_lock
    _lock, _malloc_lock, _pool = threading.Lock(), threading.Lock(), None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _tune_malloc_now() -> None:
    if os.environ.get("CESYM_KEEP_MALLOC") or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
    except (OSError, AttributeError):  # not glibc: its allocator, its behaviour
        pass


class RowView:
    """The rows of an N-d array whose class axis was moved last, read block by block without a
    whole-array copy.

    ``v`` has shape ``lead + (C,)`` (e.g. ``numpy.moveaxis(a, axis, -1)``, a strided view); its
    rows are the ``lead`` indices in C order. The leading axes are merged into two (P, Q) as a
    view (always possible for a C-contiguous ``a``: the axes before and after the moved one);
    a block of rows is then at most three slices of that (P, Q, C) view, gathered into a fresh
    float64 block. (``reshape(-1, C)`` of such a view is a copy of the whole input.)
    """

    def __init__(self, v: np.ndarray):
        lead, C = v.shape[:-1], v.shape[-1]
        n = int(np.prod(lead, dtype=np.int64))
        self.shape = (n, C)
        self.dtype = v.dtype
        v3 = None
        for split in range(len(lead), -1, -1):  # the latest split whose merges are views
            try:
                v3 = np.reshape(v, (int(np.prod(lead[:split], dtype=np.int64)), int(np.prod(lead[split:], dtype=np.int64)), C), copy=False)
                break
            except ValueError:
                continue
        if v3 is None:  # a layout no two-axis view covers: one copy in the input's own dtype
            v3 = np.ascontiguousarray(v).reshape(1, n, C)
        self.v3 = v3

    def block(self, s: int, e: int, c0: int = 0, c1: int | None = None, dtype=np.float64) -> np.ndarray:
        """Rows ``s:e``, columns ``c0:c1``, as a C-contiguous block of ``dtype`` (float64)."""
        P, Q, C = self.v3.shape
        c1 = C if c1 is None else c1
        out = np.empty((e - s, c1 - c0), dtype=dtype)
        r = s
        while r < e:
            p, q = divmod(r, Q)
            if q == 0 and e - r >= Q:  # whole (Q, C) slabs
                n = (e - r) // Q
                out[r - s : r - s + n * Q].reshape(n, Q, c1 - c0)[...] = self.v3[p : p + n, :, c0:c1]
                r += n * Q
            else:
                m = min(Q - q, e - r)
                out[r - s : r - s + m] = self.v3[p, q : q + m, c0:c1]
                r += m
        return out


def _block(src, s: int, e: int, c0: int = 0, c1: int | None = None, dtype=np.float64) -> np.ndarray:
    """Rows ``s:e`` (columns ``c0:c1``) of ``src`` as a C-contiguous block of ``dtype`` (float64;
    a fresh array). A callable source (class-index labels) has no columns: it gives its rows whole."""
    if isinstance(src, RowView):
        return src.block(s, e, c0, c1, dtype)
    if callable(src):  # one-hot rows (float64: cast) or class indices (integers: as they are)
        b = src(s, e)
        return b.astype(dtype, copy=False) if b.dtype.kind == "f" else b
    if c1 is None and c0 == 0:
        return np.array(src[s:e], dtype=dtype, order="C")
    return np.array(src[s:e, c0:c1], dtype=dtype, order="C")


def _in_threads(work_all, starts: Sequence, threads: int | None = None) -> None:
    """``work_all(share)`` over ``starts`` split into one share per thread (the caller takes the first).

    The pool has ``threads - 1`` workers whatever the number of shares (one pool for every
    call; a pool sized per call would be replaced under concurrent calls of other sizes). The
    local ``pool`` keeps this call's pool alive until its tasks are done, even if
    ``set_num_threads`` drops it meanwhile. A worker's exception is re-raised here, after every
    task of the call has ended (no worker writes to the outputs once this returns).
    """
    threads = num_threads() if threads is None else threads
    n = min(threads, len(starts))
    if n <= 1:
        work_all(starts)
        return
    # One task per thread, each taking every n-th item: handing a task to a pool thread costs
    # tens of microseconds, as much as computing a block. The calling thread takes the first share.
    shares = [starts[i::n] for i in range(n)]
    pool = _executor(threads - 1)
    futures = [pool.submit(work_all, share) for share in shares[1:]]
    try:
        work_all(shares[0])
    except BaseException:
        for f in futures:
            f.cancel()  # the tasks not started yet; bad input raises as soon as it is seen
        raise
    finally:
        wait(futures)
    for f in futures:
        f.result()  # re-raises a worker's exception here
    del pool


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
    pieces: bool = False,
    limit: Callable[[list, tuple], tuple] | None = None,
    watch: Sequence[int] | None = None,
    compute=np.float64,
    zero_edge: bool = False,
) -> list[np.ndarray]:
    """Evaluate ``core(*blocks, *scalars)`` over blocks of rows; return the outputs.

    ``rows``: 2-D arrays of shape (n_rows, n_cols) (any real dtype; widened to float64 per
    block), :class:`RowView` s, or callables ``(start, stop) -> float64 block`` (e.g. one-hot
    rows from integer labels). ``outputs``: one ``(kind, dtype)`` per value the core returns,
    ``kind`` being ``"row"`` (one value per row: the core returns it with keepdims) or
    ``"elem"`` (one per element, broadcast to the block). ``precheck(block)``: called on every
    block of the last row input (the prediction) before the core; ``check(block)``: called on a
    block whose outputs are not all finite, to raise if that is bad input (both in the worker
    threads); ``limit(blocks, results)``: called after it on such a block, returns the results
    with the limits of rows whose inputs are not all finite (:mod:`._limits`). ``watch``: the
    outputs whose finiteness is tested (default: all), when the others cannot be non-finite
    alone. Blocks of finite outputs pay one summing pass per watched output, nothing else.
    ``pieces``: rows longer than ``BLOCK_ELEMENTS`` are evaluated in pieces (:mod:`._pieces`;
    the core must be a generated one); without it a long row is one block. ``block_elements``:
    the size of the blocks of shorter rows (default ``BLOCK_ELEMENTS``); it does not change the
    pieces, so a value computed alone and with its gradient, at other block sizes, is the same.
    Zero rows: empty outputs, the core is not called. ``compute``: the dtype the blocks are given
    in (float64; the naive forms take the inputs' own, to compute what a plain implementation in
    that dtype computes); rows in pieces are float64. ``zero_edge``: the predictions' domain
    starts at 0 (probabilities, rates), where -0 is the edge 0 itself: a block whose outputs are
    not all finite and whose predictions hold -0 is computed again with +0 there (1/p at -0
    would be -inf where the limit from inside the domain is +inf).
    """
    _tune_malloc()
    outs = [np.empty((n_rows,) if kind == "row" else (n_rows, n_cols), dtype=dt) for kind, dt in outputs]
    if n_rows == 0:
        return outs
    if pieces and n_cols > BLOCK_ELEMENTS:
        from ._pieces import piece_columns, run_pieces  # noqa: PLC0415 - the long-row path, rarely needed

        run_pieces(core, rows, scalars, n_rows, n_cols, outputs, outs, check, piece_columns(BLOCK_ELEMENTS), precheck, limit, zero_edge)
        return outs
    size = block_elements or BLOCK_ELEMENTS
    threads = num_threads()
    step = max(1, size // max(1, n_cols))
    if threads > 1 and n_rows <= step * (threads - 1) and n_rows * n_cols >= threads * MIN_SPLIT:
        step = -(-n_rows // threads)  # fewer blocks than threads: one block each
    starts = range(0, n_rows, step)

    def work(s: int) -> None:
        e = min(s + step, n_rows)
        blocks = [_block(src, s, e, dtype=compute) for src in rows]
        # the rows each block was widened from, for block_range (ids are unique while alive)
        _current.ranges = {}
        _current.sources = {id(b): src[s:e] for b, src in zip(blocks, rows) if isinstance(src, np.ndarray) and src.ndim == 2}
        # (and the gradient's kink arguments kept for ``limit.wants``: :func:`._runtime.kink_log`;
        # and whether an operation overflowed, for the rescue: :func:`block_overflowed`)
        _current.overflow = over = _Overflow()
        with np.errstate(all="ignore", over="call", call=over), kink_log(blocks[-1]):  # IEEE results: inf for log 0, overflow in the float32 cast
            # a precheck answering True saw NaN in the block: its rows go to ``limit`` even where
            # the outputs are finite (a zero label weight times a NaN term is 0 in the cores)
            nan_seen = precheck(blocks[-1]) if precheck is not None else None
            _current.start = s
            try:
                res = core(*blocks, *scalars)
            finally:  # no reference to the caller's arrays outlives the block
                _current.ranges, _current.sources = None, {}
            if len(outs) == 1:
                res = (res,)
            write(s, e, res)
            # bad input and infinite inputs show as inf or NaN: only then are they looked for.
            # The rounded outputs are tested (a float32 one is half the bytes of the float64
            # result; a finite result that rounds to inf only costs a look at the block)
            watched = outs if watch is None else [outs[i] for i in watch]
            # (or where ``limit.wants`` the block although it is finite: rows of tiny inputs, :mod:`._rescue`)
            wants = getattr(limit, "wants", None)
            if (check is not None or limit is not None) and (
                nan_seen or not all(all_finite(o[s:e]) for o in watched) or (wants is not None and wants(blocks))
            ):
                if check is not None:
                    check(blocks[-1])
                fixed = positive_zero(blocks[-1]) if zero_edge else None
                if fixed is not None:  # -0 predictions: the edge 0, as +0
                    blocks[-1] = fixed
                    res = core(*blocks, *scalars)
                    if len(outs) == 1:
                        res = (res,)
                    write(s, e, res)
                if limit is not None:
                    write(s, e, limit(blocks, res))
        _current.overflow = None

    def write(s: int, e: int, res) -> None:
        for out, (kind, _), r in zip(outs, outputs, res):
            if kind == "row":
                out[s:e] = np.broadcast_to(r, (e - s, 1))[:, 0]
            else:
                out[s:e] = r

    def work_all(share) -> None:
        for s in share:
            work(s)

    _in_threads(work_all, starts, threads)
    return outs
