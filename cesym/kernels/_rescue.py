r"""Outputs that overflow in float64 where the exact result does not: recomputed in decimal.

A float64 core can overflow where its result does not:

- a mean whose terms pass the largest float: Poisson's :math:`y\log p` at
  :math:`y \approx p \approx 2.8\cdot10^{305}` in a row of two is :math:`-2\cdot10^{308}` per
  term, the mean :math:`-10^{308}`; Huber's :math:`\delta|e|` past :math:`1.8\cdot10^{308}/\delta`;
- a difference of two inputs near :math:`\pm1.8\cdot10^{308}` (:math:`e = p - y` is inf) under
  a square, an absolute value or a gradient :math:`2e/C`;
- a quotient such as :math:`y/p` past the largest float, divided by :math:`C` after;
- NaN from :math:`\infty - \infty` between such terms.

:func:`rescuer` gives the ``limit`` hook of :func:`cesym.kernels._blocks.run_blocks` a second
job: the rows (values) and elements (gradients) whose inputs are all finite and whose float64
outputs are not are recomputed by the kernel's decimal form (``<variant>_value_exact``,
``<variant>_grad_exact``: the same stable form in :mod:`decimal`, with an exponent range of
:math:`10^{9}`, so nothing overflows), and rounded once: for float64 outputs at
:data:`DIGITS` significant digits and at twice as many (up to :data:`MAX_DIGITS`), until two
precisions round to the same float64 (each operation errs by :math:`10^{1-D}` in place of
:math:`2^{-53}`; a result that cancels, 0 in the mathematics, moves with D until the noise
falls below the least subnormal, and is 0 then; where the precisions never agree the core's
output stays), correctly rounded for float32 (:func:`cesym.kernels._exact.solve`). Where the
exact result overflows, the rounding gives ±inf, as the core did; a result that is not a real
number (a NaN input was screened before) keeps the core's output.

A third job, for float64 inputs: an intermediate can overflow where the output is finite, and
the output is then finite and wrong. A Cauchy loss's gradient c·u/(1 + u²), u = (x − y)/c, is
0 where x − y or u overflows, for c²/(x − y) (1e-310 at c = 0.1, y = 0, x = 1e308). In a block
where an operation overflowed (NumPy's overflow flag, :func:`._blocks.block_overflowed`), the
elements holding a finite input of :data:`HUGE` magnitude or more (for a row's value or a row
form: their rows) are recomputed too, the core's output taken as the level before the first
precision (one decimal evaluation where it was right).

Kernels whose gradient couples the row's elements (row sums, maxima and shares of the
maximum inside it: Dice, Tversky, the categorical hinge) have row forms instead
(``<variant>_value_rescue``, ``<variant>_grad_rescue``: one row of Decimals in, the row's value
or its C gradient elements out), used by the float64 rescue only (they are no float32 path:
a float32 output is their float64 result rounded again). For float64 inputs these also take
the rows of tiny inputs (every magnitude below :data:`TINY`; for probabilities or positive
predictions, every prediction, whatever the labels), whose products fall among the subnormal
numbers while the ratios they enter do not: the Dice and Tversky gradients on rows of 1e-209
(Σ y·p underflows: -1 where the gradient is -0.5), Tversky's index at p = [0, 5e-324] with
labels [0, 1/2] (1 where it is 2/3); for logits those start at :data:`TINY_DIGITS` digits (e^x
of a tiny logit is 1 + x). The categorical hinge at labels of 1e200 (Σ y·p and (1 − y)·p
overflow, NaN where the value is 0) is a non-finite output, rescued as the others.

Only kernels with a decimal form are rescued (the generated module says which), and rows of
at most ``BLOCK_ELEMENTS`` (2^18) elements: a longer row, computed in
pieces, keeps IEEE's result. The cost is the decimal form's, about 30 µs per element (0.3 ms for
a focal loss's gradient), on the rows that need it: a batch whose every row truly overflows (a float64 MSE of errors past 1e154)
pays it on every row. Its answers are remembered (:func:`_remembered`, the last
:data:`REMEMBERED` of them, for every kernel and thread; rows of at most :data:`REMEMBERED_ROW`
elements): an input met again costs a lookup. A
batch of probabilities meets the same few again and again where a prediction saturates to 1 or 0
(binary cross-entropy at p = 1 is +inf for every label below 1, each an infinite output to confirm).
"""

from __future__ import annotations

import math
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from types import ModuleType

import numpy as np

from . import _blocks, _exact
from . import _runtime as _rt

__all__ = ["DIGITS", "rescuer", "decimal_float64"]

#: How many of the decimal forms' answers :func:`_remembered` keeps (the least recently used go
#: first), and the longest row remembered (a key holds the row's bits: at most 3·64·8 bytes).
REMEMBERED = 1 << 12
REMEMBERED_ROW = 64
_answers: OrderedDict = OrderedDict()
_answers_lock = threading.Lock()
_MISSING = object()


def _remembered(key: tuple | None, compute: Callable[[], object]):
    """``compute()``, or what it gave before for ``key``: a decimal form's answer is a function of
    the form and the bits of its inputs alone (``key`` holds both, and the evaluation's settings),
    so a remembered one has the bytes a new evaluation would. Two threads that miss at once both
    compute, and store the same answer. ``key`` None: computed and not kept (a row longer than
    :data:`REMEMBERED_ROW`: rarely met twice, and its key and answer would be large)."""
    if key is None or REMEMBERED <= 0:
        return compute()
    with _answers_lock:
        got = _answers.get(key, _MISSING)
        if got is not _MISSING:
            _answers.move_to_end(key)
            return got
    got = compute()
    with _answers_lock:
        _answers[key] = got
        if len(_answers) > REMEMBERED:
            _answers.popitem(last=False)
    return got


def forget_answers() -> None:
    """Forget every remembered answer (:func:`_remembered`): the next input met is evaluated."""
    with _answers_lock:
        _answers.clear()


def _bits(values) -> bytes:
    """The float64 bits of ``values`` (-0.0 apart from 0.0, as the decimal forms keep them)."""
    values = [float(v) for v in values]
    return struct.pack(f"{len(values)}d", *values)


def _after_fork_in_child() -> None:
    global _answers_lock
    _answers_lock = threading.Lock()  # (one another thread held at the fork would stay locked)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

#: Significant digits of the decimal evaluation of a float64 output (the first of the
#: precisions that must agree), and the most it is raised to: a result that is 0 in the
#: mathematics comes out as the roundings' noise, 10^-D times the terms that cancelled (up to
#: about 10^632 for a quotient by a subnormal of a huge number), which needs D past 1000 to fall
#: below float64's least subnormal, where two precisions agree on 0.
DIGITS = 50
MAX_DIGITS = 1600
#: The precisions that decide the side of a kink (:func:`rescuer`'s ``near_kinks``): sums and
#: products of float64 numbers are exact at MAX_DIGITS (their exponents span fewer than 1300
#: digits), and again at twice that, where the two agree.
KINK_DIGITS = (MAX_DIGITS, 2 * MAX_DIGITS)
#: The first precision for a row of tiny predictions (:func:`_tiny_rows`): 1 + x for any float64
#: x (down to 5e-324) is exact in it, so two precisions cannot agree on a rounding of 1 + x to 1.
TINY_DIGITS = 400


def decimal_float64(fn: Callable[..., Decimal], args: tuple, start: int = DIGITS) -> float | None:
    """``fn(*args)`` (Decimal arguments) rounded to float64 (±inf past the largest float, and
    where decimal's own result is infinite: a log of 0, a quotient by 0, where IEEE arithmetic
    may have met 0·inf first), once two precisions (:data:`DIGITS`, then twice as many, up to
    :data:`MAX_DIGITS`) round to the same float64 (a result that cancels to 0 in the
    mathematics is the roundings' noise until it falls below the least subnormal); None where
    they never do (the core's output stays) or where it is NaN."""
    return _agreed(decimal_rows(fn, args, lambda v: [v], start))[0]


def decimal_rows(fn: Callable, args: tuple, outputs: Callable = lambda vs: vs, start: int = DIGITS, stop: int = MAX_DIGITS) -> list:
    """``outputs(fn(*args))`` at ``start``, 2·``start``, … digits up to ``stop`` (a generator of
    lists of Decimals, one list per precision), for :func:`_agreed`."""
    digits = start
    while digits <= stop:
        with localcontext(_context(digits)):
            yield outputs(fn(*args))
        digits *= 2


def _agreed(levels, core: list[float] | None = None, to: Callable[[Decimal], float] = float) -> list[float | None]:
    """Each output's float64 (``to``: its rounding) where two successive precisions agree on it
    (None: never, or NaN). ``core``: the float64 core's outputs, taken as the level before the
    first: where the first precision rounds to the core's number, two computations agree and no
    second one is made (the rows of tiny predictions, most of which the core computed well)."""
    out: list[float | None] | None = None
    prev: list[float] | None = list(core) if core is not None else None
    for vs in levels:
        cur = [math.nan if v.is_nan() else to(v) for v in vs]
        if out is None:
            out = [None] * len(cur)
        if prev is not None:
            for i, (a, b) in enumerate(zip(prev, cur)):
                if out[i] is None and a == b and not math.isnan(a):
                    out[i] = a
            if all(o is not None or math.isnan(c) for o, c in zip(out, cur)):
                break
        prev = cur
    return out or []


def rescuer(
    module: ModuleType, variant: str, kinds: Sequence[str], scalars: tuple, float32: bool, logits: bool = True,
    label_index: bool = False,
) -> Callable[[list, tuple], tuple] | None:
    """``rescue(blocks, res)``: ``res`` (the core's float64 outputs on ``blocks``: labels first
    if any, predictions last) with the outputs that are not finite, where their rows' inputs
    are, recomputed by the decimal form (module docstring); for the row forms of float64
    inputs, also the rows of tiny inputs. None when the kernel has no decimal form for any of
    ``kinds``. ``float32``: the outputs will be float32 (correctly rounded where the form is
    elementwise). ``logits``: the predictions are any real numbers (a row is tiny where every
    input is, labels too, and its decimal form starts at :data:`TINY_DIGITS`: e^x of a tiny
    logit is 1 + x); else probabilities or positive numbers (a row is tiny where its predictions
    are, whatever the labels, from :data:`DIGITS`: their products underflow, nothing adds 1).
    ``label_index``: the label block holds class indices (rows × 1), given to the decimal form as
    one-hot rows (whose 1 keeps a row of logits from being tiny)."""
    fns: dict[str, Callable | None] = {}
    whole_rows: dict[str, bool] = {}  # a row form: one call gives the row's value or every gradient element
    for k in kinds:
        fn = getattr(module, f"{variant}_{k}_exact", None)
        row_fn = getattr(module, f"{variant}_{k}_rescue", None) if fn is None else None
        fns[k], whole_rows[k] = fn or row_fn, row_fn is not None
    if all(f is None for f in fns.values()):
        return None
    row_level = module.CORES[variant]["row_level"]
    dscalars = tuple(Decimal(float(s)) for s in scalars)
    fscalars = tuple(float(s) for s in scalars)
    scalar_bits = _bits(fscalars)
    kinks = getattr(module, f"{variant}_kinks", None) if "grad" in kinds and fns.get("grad") is not None else None
    kink_scales = getattr(module, f"{variant}_kink_scales", None)

    def near_kinks(blocks: list, R: int, C: int) -> np.ndarray | None:
        """The gradient elements (R × C) where a Heaviside argument lies within (C + 8)·2^-50 of
        the bound of the magnitudes its rounding scales with (``<variant>_kinks`` and
        ``<variant>_kink_scales``; a sum of C terms errs by (C - 1)·2^-53 of its bound, products
        by a few), or None where there is none. The bounds grow with each input's magnitude, so
        one row of the block's largest magnitudes bounds them all: only the rows that screen
        leaves (rarely any) have theirs computed, and the answer is the elementwise test's."""
        if kinks is None or R == 0:
            return None
        slack = (C + 8) * 2.0**-50
        with np.errstate(all="ignore"):
            top = [np.full((1, b.shape[-1]), max(b.max(), -b.min())) for b in blocks]
            caps = [np.max(c) for c in kink_scales(*top, *fscalars)]
            # the arguments the gradient computed on this block (:func:`._runtime.kink_log`), else here
            args = _rt.logged_kinks(blocks[-1], len(caps)) or kinks(*blocks, *fscalars)
            args = [np.broadcast_to(np.asarray(a, dtype=np.float64), (R, C)) for a in args]
            rows = np.zeros(R, dtype=bool)
            for a, cap in zip(args, caps):
                if not slack * cap < np.inf:  # an inf or NaN input: every row is looked at
                    rows[:] = True
                    break
                close = np.abs(a) <= slack * cap
                if close.any():
                    rows |= close.any(axis=1)
            if not rows.any():
                return None
            rows = np.flatnonzero(rows)
            bounds = kink_scales(*(b[rows] if b.shape[0] == R else b for b in blocks), *fscalars)
        near = np.zeros((R, C), dtype=bool)
        for a, bound in zip(args, bounds):
            a = a[rows]
            near[rows] |= np.isfinite(a) & (np.abs(a) <= slack * np.broadcast_to(bound, a.shape))
        return near if near.any() else None

    def evaluate(fn: Callable[..., Decimal], args: tuple, whole: bool, start: int = DIGITS, core: float | None = None, kink: bool = False) -> float | None:
        """The float64 (or correctly rounded float32) of ``fn(*args)``; ``core``: the core's
        output, the level before the first precision (:func:`_agreed`). ``kink``: an element at
        a kink, evaluated at :data:`KINK_DIGITS`, where its side is decided exactly."""
        core_level = None if core is None else [core]
        if kink:
            to = (lambda v: _exact.round_float32(v)[0]) if float32 and not whole else float
            return _agreed(decimal_rows(fn, args, lambda v: [v], *KINK_DIGITS), core_level, to)[0]
        if float32 and not whole:
            return _exact.solve(fn, args)
        # a row form has no correctly rounded float32 path: its float64 rounding, rounded again
        return _agreed(decimal_rows(fn, args, lambda v: [v], start), core_level)[0]

    def sized(blocks: list) -> list:
        """The label block of class indices as one-hot rows (``label_index``)."""
        if not label_index:
            return blocks
        k = blocks[0].reshape(-1)
        C = blocks[-1].shape[-1]
        hot = np.zeros((len(k), C))
        valid = (k >= 0) & (k < C)
        hot[np.flatnonzero(valid), k[valid]] = 1.0
        return [hot, *blocks[1:]]

    def tiny_of(blocks: list) -> list | None:
        """The blocks whose magnitudes make a row tiny: for logits every input (a one-hot label
        never is), for probabilities the predictions alone (:func:`_tiny_rows`)."""
        if logits:
            return None if label_index else blocks
        return blocks[-1:]

    def rescue(blocks: list, res: tuple) -> tuple:
        blocks = sized(blocks)
        x = blocks[-1]
        R, C = x.shape
        if C > _blocks.BLOCK_ELEMENTS:  # a row in pieces: C decimal terms a row is too slow a path
            return res
        finite = np.ones(R, dtype=bool)
        for b in blocks:
            finite &= np.isfinite(b).all(axis=-1)
        tiny = small = None
        if not float32 and any(whole_rows.values()):
            tiny, small = _fragile_rows(blocks, tiny_of(blocks), R, C)
            tiny, small = tiny & finite, small & finite
        kink = near_kinks(blocks, R, C)
        if kink is not None:
            kink &= finite[:, None]
        huge = None if float32 or not _blocks.block_overflowed() else _huge_elements(blocks, R, C)
        out = list(res)
        dC = (Decimal(C),)
        settings = (C, scalar_bits)  # what a decimal form reads besides the inputs
        keep_rows = C <= REMEMBERED_ROW  # (a row's key holds its bits)
        full = [np.broadcast_to(b, (R, C)) for b in blocks]
        for i, k in enumerate(kinds):
            fn = fns[k]
            if fn is None:
                continue
            whole = whole_rows[k]
            row = k == "value" and row_level
            r = np.broadcast_to(res[i], (R, 1) if row else (R, C))
            need = ~np.isfinite(r) & finite[:, None]
            if whole and tiny is not None:
                need |= (tiny | small)[:, None]
            at_kink = kink if k == "grad" else None
            if at_kink is not None:
                need |= at_kink
            if huge is not None:  # (a row's value, a row form's gradient: the rows holding one)
                need |= huge.any(axis=1)[:, None] if whole or row else huge
            if not need.any():
                continue
            r = np.array(r, dtype=np.float64)
            if whole or row:
                for a in np.flatnonzero(need.any(axis=1)):
                    args = lambda a=a: tuple([Decimal(float(v)) for v in b[a]] for b in full) + dscalars + dC  # noqa: E731 (built on a miss only)
                    # a row of tiny or small logits: e^x at x = 2e-308 is 1 + x, which 50 or
                    # 100 digits round to 1 alike (and would agree on): digits past the subnormals
                    start = TINY_DIGITS if logits and tiny is not None and (tiny[a] or small[a]) else DIGITS
                    if row:
                        core = float(r[a, 0])
                        key = (fn, float32, start, _bits([core]), settings, *(_bits(b[a]) for b in full)) if keep_rows else None
                        v = _remembered(key, lambda args=args, start=start, core=core: evaluate(fn, args(), whole, start, core))
                        if v is not None:
                            r[a, 0] = v
                        continue
                    cols = np.flatnonzero(need[a])
                    stop = MAX_DIGITS
                    if at_kink is not None and at_kink[a].any():  # the side of a kink, exactly
                        start, stop = KINK_DIGITS
                    cores = [float(r[a, c]) for c in cols]
                    key = (fn, start, stop, tuple(cols.tolist()), _bits(cores), settings, *(_bits(b[a]) for b in full)) if keep_rows else None
                    vs = _remembered(
                        key,
                        lambda args=args, cols=cols, start=start, stop=stop, cores=cores: _agreed(
                            decimal_rows(fn, args(), lambda vs: [vs[c] for c in cols], start, stop), cores
                        ),
                    )
                    for c, v in zip(cols, vs):
                        if v is not None:
                            r[a, c] = v
            else:
                for a, c in zip(*np.nonzero(need)):
                    inputs = [float(b[a, c]) for b in full]
                    sided = at_kink is not None and bool(at_kink[a, c])
                    # a finite output at a huge input: the core's number is the level before the first
                    seen = sided or (huge is not None and huge[a, c] and bool(np.isfinite(r[a, c])))
                    core = float(r[a, c]) if seen else None
                    v = _remembered(
                        (fn, float32, sided, None if core is None else _bits([core]), settings, _bits(inputs)),
                        lambda inputs=inputs, core=core, sided=sided: evaluate(fn, tuple(Decimal(x) for x in inputs) + dscalars + dC, whole, core=core, kink=sided),
                    )
                    if v is not None:
                        r[a, c] = v
            out[i] = r
        return tuple(out)

    fragile = not float32 and any(whole_rows.values())
    if fragile or kinks is not None or not float32:
        def wants(blocks: list) -> bool:
            """Whether a block holds a finite input of :data:`HUGE` magnitude or more (float64
            inputs), a row :func:`_fragile_rows` names, or an element at a kink
            (``near_kinks``). The second needs a nonzero input under :data:`TINY`, looked for
            first, on the magnitudes' bits: (bits << 1) - 1 drops the sign and takes 0 to the
            top, so one minimum answers 0 < |x| < TINY (about three passes over a block)."""
            if not float32 and _blocks.block_overflowed() and _huge_elements(blocks, *blocks[-1].shape) is not None:
                return True
            if near_kinks(blocks, *blocks[-1].shape) is not None:
                return True
            if not fragile:
                return False
            floats = [b for b in blocks if b.dtype == np.float64]  # (not class indices)
            if not any(_below(b, _TWICE_TINY_BITS) for b in floats):
                return False
            tiny, small = _fragile_rows(blocks, tiny_of(blocks), *blocks[-1].shape)
            return bool((tiny | small).any())

        rescue.wants = wants
    return rescue


def _below(b: np.ndarray, twice_bits: np.uint64) -> bool:
    """Whether float64 ``b`` holds a nonzero magnitude under the float whose bits, shifted left
    once, are ``twice_bits``."""
    m = b.view(np.uint64) << np.uint64(1)
    m -= np.uint64(1)
    return m.size > 0 and m.min() < twice_bits - np.uint64(1)


def _huge_elements(blocks: list, R: int, C: int) -> np.ndarray | None:
    """The elements (R × C) where a float64 input is finite and of :data:`HUGE` magnitude or
    more, or None where there is none: looked for on the magnitudes' bits first (one maximum
    of bits << 1, which drops the sign), then finite ones among them."""
    found = None
    for b in blocks:
        if b.dtype != np.float64 or b.size == 0:
            continue
        hi, lo = b.max(), b.min()
        if hi < HUGE and lo > -HUGE:  # (NaN: looked at below)
            continue
        m = b.view(np.uint64) << np.uint64(1)
        h = (m >= _TWICE_HUGE_BITS) & (m < _TWICE_INF_BITS)
        if h.any():
            h = np.broadcast_to(h, (R, C))
            found = h.copy() if found is None else found | h
    return found


def _fragile_rows(blocks: list, tiny_blocks: list | None, R: int, C: int) -> tuple[np.ndarray, np.ndarray]:
    """(tiny, small): the rows of tiny inputs (:func:`_tiny_rows` over ``tiny_blocks``; none
    where that is None), and the rows holding a nonzero input under :data:`SMALL` in any float
    block (a label, a prediction)."""
    tiny = np.zeros(R, dtype=bool) if tiny_blocks is None else _tiny_rows(tiny_blocks, R, C)
    small = np.zeros(R, dtype=bool)
    for b in blocks:
        if b.dtype == np.float64 and _below(b, _TWICE_SMALL_BITS):
            a = np.abs(np.broadcast_to(b, (R, C)))
            small |= ((a > 0) & (a < SMALL)).any(axis=-1)
    return tiny, small


#: A row whose every input (for probabilities: every prediction) lies below this in magnitude (and
#: is not all zeros) is rescued by a row form in float64: its products of two elements fall below 2^-920, where those of the
#: elements near the row's largest start to lose bits among the subnormal numbers (at 2^-1022)
#: while the ratios they enter are of order 1 (the Dice gradient's Σyp/(Σy + Σp)² on a row of
#: 1e-209s: 0 where it is 0.5). At and above it, each such product is off by at most 2^-1074,
#: 2^-154 of the square of the row's largest element.
TINY = 2.0**-460
_TWICE_TINY_BITS = np.uint64(np.float64(TINY).view(np.uint64)) << np.uint64(1)
#: A row holding a nonzero input below this in magnitude is rescued by a row form in float64 too,
#: whatever its other elements: its product with a factor of 2^-53 or more (a label, a weight such
#: as Tversky's α) falls among the subnormal numbers and loses bits, while the ratio it enters
#: may be normal: Tversky's gradient α·FP/(TP + α·FP)² on p = [5e-324, 1e-30], labels [0, 1],
#: α = 1/2 (0.5·5e-324 rounds to 0: 0 where it is -2.5e-264); the categorical hinge's
#: max_c (1 - y_c)·p_c, whose products of subnormals tie in rounding where they do not.
SMALL = 2.0**-969
_TWICE_SMALL_BITS = np.uint64(np.float64(SMALL).view(np.uint64)) << np.uint64(1)


#: An element (for a row's value or a row form's gradient: a row) holding a finite input of this
#: magnitude or more is recomputed in decimal for float64 inputs, whatever its output, in a
#: block where an operation overflowed (:func:`._blocks.block_overflowed`: NumPy's overflow
#: flag, so a block without one pays nothing): an intermediate of the stable form may overflow
#: where the output does not, and the float64 output is then finite and wrong. A Cauchy loss's gradient c·u/(1 + u²), u = (x − y)/c,
#: computed as c·HypotShare(u)/Hypot1(u), is 0 where x − y or u is inf: at c = 0.1, y = 0,
#: x = 1e308, the gradient is c²/x = 1e-310. Past 2^960 an input times a factor of 2^64 (a
#: quotient by a parameter down to 2^-60, a difference, a sum of up to 2^60 terms) overflows.
#: Squares overflow from 2^512: the stable forms keep them out (Hypot1, log1p of a square).
HUGE = 2.0**960
_TWICE_HUGE_BITS = np.uint64(np.float64(HUGE).view(np.uint64)) << np.uint64(1)
_TWICE_INF_BITS = np.uint64(np.float64(np.inf).view(np.uint64)) << np.uint64(1)


def _context(digits: int = DIGITS) -> Context:
    return Context(prec=digits, rounding=ROUND_HALF_EVEN, Emin=-(10**9), Emax=10**9, traps=[])


def _tiny_rows(blocks: list, R: int, C: int) -> np.ndarray:
    """Rows whose largest input magnitude over ``blocks`` lies in (0, :data:`TINY`) (the
    predictions alone, for probabilities: a label of 1/2 times a subnormal prediction underflows
    as a product of two tiny numbers does, Tversky's Σ y·p on the row p = [0, 5e-324] with labels
    [0, 1/2] is 0, the index 1 where it is 2/3), column by column (a reduction along short rows
    costs NumPy a loop per row)."""
    m = np.zeros(R)
    for b in blocks:
        b2 = np.broadcast_to(b, (R, C))
        if C > 16:
            np.maximum(m, np.max(np.abs(b2), axis=-1), out=m)
            continue
        for c in range(C):
            np.maximum(m, np.abs(b2[:, c]), out=m)
    return (m > 0) & (m < TINY)
