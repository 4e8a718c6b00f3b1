"""Concurrency is part of the contract: any kernel may be called from many threads at once, and
``set_num_threads`` may be called meanwhile; every result has the bytes of a single-threaded call."""

import gc
import os
import signal
import threading
import time

import numpy as np
import pytest

from cesym import kernels
from cesym.kernels import _blocks, _rescue
from cesym.verify.registry import CASES

from conftest import SEED, pred_from

CALLERS = 8  # Python threads calling the kernels
KERNEL_THREADS = 8  # kernels.set_num_threads(8): 7 pool workers shared by every caller
#: Caller i calls the tasks whose index is i modulo SPREAD, in its own random order: 8 callers
#: racing the pool, each task called by CALLERS // SPREAD = 4 of them.
SPREAD = 2


def _batch(case, dtype, shape, axis, rng):
    """Labels and prediction of ``shape`` with the classes along ``axis``."""
    z = rng.standard_normal(shape) * rng.choice([0.1, 3.0, 30.0], size=shape[:-1] + (1,))
    pred = pred_from(case, z)
    if case.labels == "sparse":
        labels = rng.integers(0, shape[-1], shape[:-1])
    elif case.labels == "dense":
        labels = (rng.random(shape) < 0.3).astype(dtype)
        labels[: shape[0] // 2] = rng.random((shape[0] // 2,) + shape[1:])  # soft rows too
        labels = np.moveaxis(labels, -1, axis)
    else:
        labels = None
    return labels, np.moveaxis(pred.astype(dtype), -1, axis)


def _call(case, fn, labels, pred, kw):
    kw = {**case.call_kw, **kw}
    if case.nn_keywords:
        return fn(labels=labels, logits=pred, **kw)
    if case.labels == "none":
        return fn(pred, **kw)
    return fn(labels, pred, **kw)


def _tasks():
    """(name, thunk) pairs: every loss case x value/grad/value_and_grad, both dtypes, mixed
    shapes (a class axis not last among them), and the metrics."""
    rng = np.random.default_rng(SEED)
    shapes = [(600, 10), (257, 33), (1500, 3), (40, 6, 9)]
    suffixes = ["", "_grad", "_value_and_grad"]
    tasks = []
    i = 0
    for case in CASES:
        for dtype in (np.float32, np.float64):
            for suffix in suffixes:
                shape = shapes[i % len(shapes)]
                i += 1
                axis = 1 if len(shape) == 3 and case.has_axis else -1
                if axis == -1 and len(shape) == 3 and case.labels == "sparse" and case.has_axis:
                    shape = shape[:2] + (7,)
                labels, pred = _batch(case, dtype, shape, axis, rng)
                kw = {"axis": axis} if axis != -1 else {}
                fn = getattr(kernels, case.kernel + suffix)
                tasks.append((f"{case.id}{suffix}[{np.dtype(dtype).name}{shape}]", lambda c=case, f=fn, y=labels, p=pred, k=kw: _call(c, f, y, p, k)))
    for dtype in (np.float32, np.float64):
        p = rng.standard_normal((900, 12)).astype(dtype)
        p[::7, 3] = p[::7, 5]  # ties
        k = rng.integers(0, 12, 900)
        y = np.eye(12, dtype=dtype)[k]
        yb = (rng.random((900, 12)) < 0.5).astype(dtype)
        tasks += [
            (f"binary_accuracy[{dtype.__name__}]", lambda y=yb, p=p: kernels.binary_accuracy(y, p, threshold=0.0)),
            (f"categorical_accuracy[{dtype.__name__}]", lambda y=y, p=p: kernels.categorical_accuracy(y, p)),
            (f"sparse_categorical_accuracy[{dtype.__name__}]", lambda k=k, p=p: kernels.sparse_categorical_accuracy(k, p)),
            (f"top_k_categorical_accuracy[{dtype.__name__}]", lambda y=y, p=p: kernels.top_k_categorical_accuracy(y, p, k=3)),
            (f"sparse_top_k_categorical_accuracy[{dtype.__name__}]", lambda k=k, p=p: kernels.sparse_top_k_categorical_accuracy(k, p, k=4)),
        ]
    return tasks


def _bytes(result) -> list[tuple[str, tuple, bytes]]:
    parts = result if isinstance(result, tuple) else (result,)
    return [(a.dtype.str, a.shape, a.tobytes()) for a in parts]


def _cesym_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("cesym")]


@pytest.fixture
def small_blocks():
    """Blocks of 1024 elements (and no minimum per thread): batches of a few thousand elements
    become many blocks, so every call of the test hands work to the pool."""
    saved = _blocks.BLOCK_ELEMENTS, _blocks.MIN_SPLIT
    _blocks.BLOCK_ELEMENTS, _blocks.MIN_SPLIT = 1024, 256
    yield
    _blocks.BLOCK_ELEMENTS, _blocks.MIN_SPLIT = saved
    _blocks.set_num_threads(None)


def test_concurrent_calls_with_set_num_threads_racing(small_blocks):
    tasks = _tasks()
    saved = _blocks.BLOCK_ELEMENTS, _blocks.MIN_SPLIT
    _blocks.BLOCK_ELEMENTS, _blocks.MIN_SPLIT = 1 << 20, 1 << 15  # the reference: one thread, few blocks
    _blocks.set_num_threads(1)
    reference = {name: _bytes(call()) for name, call in tasks}
    _rescue.forget_answers()  # the callers evaluate the rescued outputs again, racing each other
    _blocks.BLOCK_ELEMENTS, _blocks.MIN_SPLIT = saved
    _blocks.set_num_threads(KERNEL_THREADS)

    failures: list[str] = []
    done = threading.Event()
    start = threading.Barrier(CALLERS + 1)

    def caller(i: int) -> None:
        mine = np.arange(i % SPREAD, len(tasks), SPREAD)
        order = np.random.default_rng(SEED + i).permutation(mine)
        start.wait()
        for j in order:
            name, call = tasks[j]
            try:
                got = _bytes(call())
            except Exception as e:  # noqa: BLE001 - every failure is reported below
                failures.append(f"{name}: {type(e).__name__}: {e}")
                continue
            if got != reference[name]:
                failures.append(f"{name}: bytes differ from the single-threaded call")

    def racer() -> None:
        sizes = [KERNEL_THREADS, 3, 1, 5, None, 2, KERNEL_THREADS, 4]
        start.wait()
        i = 0
        while not done.is_set():
            _blocks.set_num_threads(sizes[i % len(sizes)])
            i += 1
            time.sleep(0.002)

    callers = [threading.Thread(target=caller, args=(i,)) for i in range(CALLERS)]
    race = threading.Thread(target=racer)
    for t in (*callers, race):
        t.start()
    for t in callers:
        t.join()
    done.set()
    race.join()
    assert not failures, f"{len(failures)} of {CALLERS * len(tasks) // SPREAD} calls failed, e.g. {failures[:5]}"

    # the replaced pools' threads end once nothing refers to their pool: no thread leaks
    _blocks.set_num_threads(None)
    deadline = time.monotonic() + 5
    while _cesym_threads() and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert not _cesym_threads(), f"{len(_cesym_threads())} pool threads outlive their pool"


def test_two_sizes_at_eight_threads():
    """The issue's case: two callers whose batches need different numbers of blocks, at 8 kernel
    threads (each call used to replace the pool, shutting it down under the other caller)."""
    _blocks.set_num_threads(KERNEL_THREADS)
    try:
        rng = np.random.default_rng(SEED)
        batches = []
        for rows in (20000, 50000):
            z = rng.standard_normal((rows, 10)).astype(np.float32)
            y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, rows)]
            batches.append((y, z, kernels.categorical_crossentropy(y, z, from_logits=True).tobytes()))
        failures = []

        def run(y, z, ref, times):
            for _ in range(times):
                try:
                    if kernels.categorical_crossentropy(y, z, from_logits=True).tobytes() != ref:
                        failures.append("bytes differ")
                except Exception as e:  # noqa: BLE001
                    failures.append(repr(e))

        ts = [threading.Thread(target=run, args=(*b, n)) for b, n in zip(batches, (40, 16))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not failures, failures[:3]
    finally:
        _blocks.set_num_threads(None)


def test_a_worker_error_reaches_its_caller_only(small_blocks):
    """Bad input in a block a pool worker computes raises in the caller that passed it; a caller
    running at the same time on good input is unaffected."""
    _blocks.set_num_threads(4)
    p = np.full((4000, 4), 0.25, dtype=np.float32)
    p[3999] = 0  # the last block: a worker's share
    y = np.eye(4, dtype=np.float32)[np.arange(4000) % 4]
    good = np.full((4000, 4), 0.25, dtype=np.float32)
    ref = kernels.categorical_crossentropy(y, good).tobytes()
    errors, wrong = [], []

    def bad_caller():
        for _ in range(30):
            try:
                kernels.categorical_crossentropy(y, p)
            except ValueError as e:
                errors.append(str(e))

    def good_caller():
        for _ in range(30):
            if kernels.categorical_crossentropy(y, good).tobytes() != ref:
                wrong.append(1)

    ts = [threading.Thread(target=bad_caller), threading.Thread(target=good_caller)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(errors) == 30 and all("sums to 0" in e for e in errors)
    assert not wrong


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_fork_child_computes(small_blocks):
    """A child forked while another thread held the pool's lock, after the parent used its pool
    (inherited without workers), computes the same bytes instead of hanging."""
    _blocks.set_num_threads(4)
    z = np.random.default_rng(SEED).standard_normal((3000, 7))
    y = np.eye(7)[np.arange(3000) % 7]
    want = kernels.categorical_crossentropy_grad(y, z, from_logits=True).tobytes()
    with _blocks._lock:  # as if another thread were replacing the pool at the fork
        pid = os.fork()
        if pid == 0:  # the child: exit at once whatever happens, never back into pytest
            code = 1
            try:
                code = 0 if kernels.categorical_crossentropy_grad(y, z, from_logits=True).tobytes() == want else 2
            finally:
                os._exit(code)
    deadline = time.monotonic() + 15  # the child needs well under a second
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung")
    assert os.waitstatus_to_exitcode(done[1]) == 0
