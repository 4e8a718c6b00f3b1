r"""Every float32 input of a kernel of one float input: max ulps and correct rounding, proven.

For a kernel whose prediction is one float (a row of one element, or an elementwise loss) and
whose label and parameters are fixed, there are 2^32 float32 inputs, fewer the NaNs and those
outside the declared domain (probabilities: [0, 1], about 2^30). Each is checked:

1. the public float32 kernel computes its value (or gradient) for a block of inputs;
2. the first tier (:mod:`cesym.verify.intervals`) encloses the exact value from the kernel's
   stable form, the one the generator derived (an identity of the definition, checked as one
   when it was written), in float64 interval arithmetic. Where both ends round to the same
   float32, that is the correctly rounded result, proven: about all inputs but one in 10^6.
   The rest are enclosed again with exact sums and products kept exact (error-free
   transformations: :func:`cesym.verify.intervals.exact_ends`), which decides exact ties;
3. the rest are enclosed by the definition itself on double-double intervals
   (:mod:`cesym.verify.dd_intervals`, 106 bits, compiled loops over the inputs): a value a few
   float64 spacings beside a float32 rounding boundary, 100·(p - 1) for MAPE at |p| past 2^45
   (100·p exactly a midpoint for one input in 32), is decided there, not one by one;
4. the rest, and the inputs reached only as limits (±inf, a probability's edges), go to the
   ball reference of the definition itself (:class:`cesym.verify.reference.RowReference`, arb at
   rising precision until the rounding is fixed; an exact tie is seen as one), and where 2560
   bits still leave a rounding boundary inside the ball, the sign of the value's distance to
   it (:func:`_tie_break`);
5. a sample of the decisions of steps 2 and 3 is checked against that reference too, and the
   run fails if one disagrees: the tiers' forms and interval rules are not taken on trust.

The result per configuration: inputs checked, how each was decided, the largest error in ulps
of the exact value with its inputs, and the inputs whose result is not the correctly rounded
float32. Blocks run in worker processes (``jobs``); a run of 2^32 inputs takes minutes.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import mpmath
import numpy as np
import sympy as sp

from ..kernels._dd import round32
from . import processes

__all__ = ["Setting", "Summary", "eligible", "settings_for", "input_ranges", "run_settings", "run_setting", "decide_float32", "describe", "record"]

#: bit patterns per task (a worker process evaluates them in blocks of 2^16)
TASK_BITS = 22
_BLOCK = 1 << 16
_WORST = 8  # worst inputs kept per summary
_SAMPLE = 4  # first-tier decisions re-checked against the ball reference, per task and setting
_F32_MAX = float(np.finfo(np.float32).max)
_PRECISIONS = (80, 160, 320, 640, 1280, 2560)


@dataclass(frozen=True)
class Setting:
    """One exhaustive configuration: a kernel case, its fixed label and parameters, and which
    output (``"value"`` or ``"grad"``)."""

    case: str  # KernelCase.id
    label: float | None
    params: tuple[tuple[str, float], ...] = ()
    what: str = "value"

    @property
    def name(self) -> str:
        parts = [self.case, self.what]
        if self.label is not None:
            parts.append(f"label={self.label:g}")
        parts += [f"{k}={v:g}" for k, v in self.params]
        return " ".join(parts)


@dataclass
class Summary:
    """The outcome of one :class:`Setting` over its inputs."""

    setting: Setting
    domain: tuple[float, float]
    inputs: int = 0  # checked (NaN and inputs outside the domain excluded)
    tier1: int = 0  # decided by the float64 intervals
    dd: int = 0  # decided by the definition on double-double intervals (tier 1 could not)
    reference: int = 0  # decided by the ball reference (undecided by tier 1, limits)
    sampled: int = 0  # interval decisions (float64 and double-double) confirmed by the ball reference
    max_ulps: float = 0.0
    worst: list = field(default_factory=list)  # [(ulps, input, computed, true)], largest first
    not_correctly_rounded: int = 0
    misrounded: list = field(default_factory=list)  # [(input, computed, correctly rounded)], first few
    unresolved: list = field(default_factory=list)  # inputs the reference could not pin
    seconds: float = 0.0
    digest: str = ""  # kernel_digest: of the code the result depends on
    family: str = ""  # the derivation file of the loss
    loss: str = ""  # family.variant

    def as_json(self) -> dict:
        """As JSON data; an infinite or NaN number (an error of inf ulps) as its name, a string."""
        d = asdict(self)
        d["setting"] = asdict(self.setting)
        d["setting"]["name"] = self.setting.name
        return _finite_json(d)


def _finite_json(v):
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, dict):
        return {k: _finite_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite_json(x) for x in v]
    return v


# --- which kernels, which inputs ------------------------------------------------------------------


def eligible(case) -> str | None:
    """None if ``case`` is a kernel of one float input once its label and parameters are fixed
    (a row of one element, or an elementwise loss), else why not."""
    if case.reduction == "batch":
        return "a batch reduction (its value depends on the batch, not on one input)"
    if case.label_kind in ("index", "distribution"):
        return "labels over classes (a row of one class is a constant)"
    if case.domain == "simplex":
        return "a prediction on the simplex (one class: the constant 1)"
    return None


def _default_labels(case) -> list[float | None]:
    return {
        # a soft label of 0.3, not 0.25: (1 - 0.25)·x lands exactly halfway between two float32
        # numbers for every other large x, where the value's tail (softplus(-x)/4, 1e-18) decides
        # the rounding below the float64 intervals' width, and half the inputs go to the ball
        # reference (half an hour a sweep; a double-double first tier would decide them)
        "binary": [0.0, 1.0, 0.3],
        "count": [1.0],
        "real": [0.0],
        "sign": [1.0, -1.0],
        "none": [None],
    }.get(case.label_kind, [None])


def default_params(case) -> dict[str, float]:
    """The parameters of an exhaustive run when none are given: each at its default, one without
    a default at its range's middle."""
    return {name: float(default) if default is not None else (rng[0] + rng[1]) / 2 for name, default, rng in case.params}


def settings_for(case, labels: Sequence[float] | None = None, params: dict | None = None,
                 what: Sequence[str] = ("value", "grad"), directory: str | None = None) -> list[Setting]:
    """The settings of an exhaustive run of ``case``: each label (default: 0, 1 and the soft
    0.3 for binary labels; 1 for counts; 0 for real labels; ±1 for signs) times each output,
    the parameters at ``params`` or their defaults (:func:`default_params`). ``directory``: the
    derivations of a user's kernels (``--derivations``)."""
    why = eligible(case)
    if why is not None:
        raise ValueError(f"{case.id}: not a kernel of one float input: {why}")
    kw = default_params(case)
    for name, v in (params or {}).items():
        if name not in kw:
            raise ValueError(f"{case.id}: no parameter {name!r} (it has {sorted(kw) or 'none'})")
        kw[name] = float(v)
    fixed = tuple(sorted(kw.items()))
    labs = list(labels) if labels else _default_labels(case)
    if case.label_kind == "none":
        labs = [None]
    # the labels are float32 arrays, as the predictions: the kernel sees float32(0.3), and so
    # must the reference (0.3 itself is another loss, 1e-8 away)
    labs = [None if l is None else float(np.float32(l)) for l in labs]
    out = []
    for l in labs:
        for w in what:
            st = Setting(case.id, l, fixed, w)
            problem = _problem(st, directory)
            if _undefined(problem):
                if not labels and labs == [0.0]:
                    # a real label the loss divides by (a percentage error): 1, where 0 defines nothing
                    return settings_for(case, [1.0], params, what, directory)
                raise ValueError(f"{case.id}: label {l!r}: the loss is not defined at any input there "
                                 f"(its {w} is {problem.expr}); choose another --label")
            if w == "value" and _sign_only(problem):
                raise ValueError(f"{case.id}: at a row of one element the loss depends on the sign of the "
                                 f"prediction alone (a loss of the row's direction): nothing to sweep; "
                                 f"`cesym verify` checks it on rows")
            out.append(st)
    return out


def _undefined(problem: "_Problem") -> bool:
    """Whether the fixed label and parameters leave no number at any input (1/y at y = 0: SymPy's
    complex infinity, or NaN, as a factor)."""
    return problem.expr.has(sp.zoo, sp.nan)


def _sign_only(problem: "_Problem") -> bool:
    """Whether the value of one element is the same at x, 2x and 3x for x of either sign, and not
    the same for all x (the
    cosine similarity of a row of one: -sign(y)·sign(p), its gradient 0 but at p = 0, where
    neither is defined): a sweep of 2^32 inputs would check two numbers. Sampled at 30 digits:
    this decides what is worth running, not a result."""
    from .contract import reference_for

    ref = reference_for(problem.loss, 1)
    lab = [problem.setting.label] if problem.label is not None else None
    params = [problem.params[s] for s in problem.loss.params]
    lo, hi = _domain(problem.case)
    xs = [x for x in (0.1, -0.2, 0.3, -0.7, 1.9, -5.0) if lo < x and 3 * x < hi and lo < 3 * x and x < hi]
    firsts = []
    for x in xs:
        vals = [ref.value_and_grad(lab, [k * x], params)[0] for k in (1, 2, 3)]
        if any(not mpmath.isfinite(v) or abs(v - vals[0]) > 1e-25 * max(1, abs(vals[0])) for v in vals):
            return False
        firsts.append(vals[0])
    return len(set(firsts)) > 1  # a constant (Dice's 1 at label 0) is swept: one label of several


def _domain(case) -> tuple[float, float]:
    return {"unit": (0.0, 1.0), "positive": (0.0, math.inf), "log1p": (-1.0, math.inf)}.get(case.domain, (-math.inf, math.inf))


def _bits(x: float) -> int:
    return int(np.array(x, dtype=np.float32).view(np.uint32))


def input_ranges(lo: float, hi: float) -> list[tuple[int, int]]:
    """The float32 bit patterns of [lo, hi] (±0 both, NaN none) as half-open ranges of uint32."""
    out = []
    if hi >= 0:  # +0 .. hi: patterns 0x00000000 .. bits(hi), increasing with the value
        start = 0 if lo <= 0 else _bits(lo)
        out.append((start, _bits(hi) + 1))
    if lo < 0 or (lo == 0 and math.copysign(1.0, lo) < 0):  # -0 .. lo: 0x80000000 .. bits(lo)
        stop_val = min(hi, -0.0)
        start = 0x80000000 if stop_val == 0 else _bits(stop_val)
        out.append((start, _bits(lo) + 1))
    elif lo == 0:
        out.append((0x80000000, 0x80000001))  # -0: inside [0, ...]
    return out


def _tasks(ranges: list[tuple[int, int]], bits: int = TASK_BITS) -> list[tuple[int, int]]:
    step = 1 << bits
    return [(s, min(s + step, e)) for a, e in ranges for s in range(a, e, step)]


# --- the first tier's expression ------------------------------------------------------------------


def _one_element(expr: sp.Basic) -> sp.Basic:
    """A row expression for a row of one element (element 0), the symbols indexed as the ball
    reference indexes them."""
    from ..define.evaluate import expand_row
    from ..define.primitives import Norm2, Scaled, SumSquares, expand_row_primitives

    # the row's scaled sums of squares, of one element: u², |u| and x/s (the kernels scale them
    # against overflow; the interval tier needs no scale: a float32's square is a float64)
    expr = expr.replace(lambda e: isinstance(e, SumSquares), lambda e: e.args[0] ** 2)
    expr = expr.replace(lambda e: isinstance(e, Norm2), lambda e: sp.Abs(e.args[0]))
    expr = expr.replace(lambda e: isinstance(e, Scaled), lambda e: e.args[0] / e.args[1])
    return expand_row(expand_row_primitives(expr), 1, 0)


@dataclass
class _Problem:
    """What a worker needs for one setting (rebuilt in each process from plain data)."""

    setting: Setting
    case: object
    loss: object
    expr: sp.Basic
    pred: sp.Symbol
    label: sp.Symbol | None
    params: dict  # Symbol -> float
    unit: bool

    @property
    def index(self) -> int:
        return 0 if self.setting.what == "value" else 1


@functools.lru_cache(maxsize=64)
def _derived(case_id: str, directory: str | None):
    """(case, loss, derived) of a kernel case: read once for its value and gradient settings."""
    from ..derive.gradients import from_record
    from .contract import definition
    from .registry import CASES, load_cases

    cases = load_cases(directory) if directory else CASES
    matches = [c for c in cases if c.id == case_id]
    if not matches:
        raise ValueError(f"no kernel {case_id!r}; kernels: {', '.join(c.id for c in cases)}")
    case = matches[0]
    loss = definition(case)
    module = case.module or __import__(f"cesym.kernels._generated.{loss.name.split('.')[0]}", fromlist=["DERIVED"])
    return case, loss, from_record(loss, module.DERIVED[loss.variant])


def _problem(setting: Setting, directory: str | None = None) -> _Problem:
    from ..define.evaluate import indexed

    case, loss, derived = _derived(setting.case, directory)
    stable = derived.value if setting.what == "value" else derived.grad
    if stable is None:
        raise ValueError(f"{setting.case}: no gradient (not differentiable)")
    stable = stable.xreplace({w: d for w, d in loss.weights.items() if d != w})
    expr = _one_element(stable)
    params = {}
    by_name = dict(setting.params)
    for s in loss.params:
        if s.name not in by_name:
            raise ValueError(f"{setting.case}: parameter {s.name} not set")
        params[s] = by_name[s.name]
    label = indexed(loss.label, 0) if loss.label is not None else None
    # the label and parameters are fixed: put them in as exact numbers (a float is a binary
    # rational), so that their terms fold into constants (a zero label weight drops its term)
    fixed = {s: sp.Rational(v) for s, v in params.items()}
    if label is not None:
        fixed[label] = sp.Rational(setting.label)
    expr = expr.xreplace(fixed)
    return _Problem(setting, case, loss, expr, indexed(loss.prediction, 0), label, params, case.domain == "unit")


def kernel_digest(family: str, generated_dir=None) -> str:
    """A digest of what an exhaustive result depends on: the family's generated module, the
    kernels' runtime (every ``cesym/kernels/*.py``) and this checker's arithmetic: its first
    tier (``intervals`` and its compiled steps, ``exhaustive_loops``), the double-double
    intervals that decide most of the rest (``dd_intervals`` and the algebra it shares,
    ``interval_algebra``), the Arb balls of the reference that decides what is left (``balls``),
    and this module. A result recorded under another digest is stale. (The reference's
    printing and evaluation of the definition, ``reference`` and the code runner of
    ``float_intervals``, are held to mpmath by their own tests.)"""
    from pathlib import Path

    from ..files import file_digest

    package = Path(__file__).resolve().parents[1]
    gen = Path(generated_dir) if generated_dir else package / "kernels" / "_generated"
    verify = package / "verify"
    files = [gen / f"{family}.py", *sorted((package / "kernels").glob("*.py")), verify / "intervals.py", verify / "exhaustive_loops.py", verify / "dd_intervals.py",
             verify / "interval_algebra.py", verify / "balls.py", Path(__file__).resolve()]
    return hashlib.sha256("".join(f"{f.name}:{file_digest(f)};" for f in files).encode()).hexdigest()[:16]


def _digest(problem: _Problem) -> str:
    if problem.case.module is not None:  # a user's kernels, rendered in memory: their derivation file
        path = getattr(problem.case.module, "__file__", None)
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                return "user:" + hashlib.sha256(f.read()).hexdigest()[:16]
        return ""
    return kernel_digest(problem.loss.name.split(".")[0])


# --- float32 rounding of exact numbers --------------------------------------------------------------


def _round_f32(v: mpmath.mpf) -> float:
    """The float32 nearest ``v`` (ties to even), exactly, as a float (:func:`~cesym.verify.ulps.round_to`);
    ±inf beyond the range, NaN for NaN (an input without a limit)."""
    from .ulps import round_to

    return math.nan if mpmath.isnan(v) else round_to(v, np.float32)


def _ulps_f32(computed: float, true: mpmath.mpf) -> float:
    from .ulps import ulp_error

    return ulp_error(computed, true, np.float32)


def _fixed(problem: _Problem) -> tuple[list | None, list]:
    """The reference's fixed inputs of a problem: its label (None where the loss has none) and
    its parameters, in the loss's order."""
    lab = [problem.setting.label] if problem.label is not None else None
    return lab, [problem.params[s] for s in problem.loss.params]


def decide_float32(problem: _Problem, x: float) -> tuple[float, mpmath.mpf, tuple] | None:
    """At input ``x``: the correctly rounded float32 output, the exact value pinned to 2^-8 of a
    float32 ulp, and the ball's ends that enclose it, from the ball reference of the definition
    (rising precision until the rounding is fixed and the value pinned); None if still
    undecided at 2560 bits and by :func:`_tie_break`. Inputs reached only as limits: the limit,
    by the extended reals."""
    from .contract import extended_for, reference_for
    from .extended import needs_limit
    from .reference import Unresolved, _ends, _evaluate, _resolve, _working

    ref = reference_for(problem.loss, 1)
    lab, params = _fixed(problem)
    if needs_limit([x], problem.loss.domain, problem.unit) or not math.isfinite(x):
        try:
            v, g = extended_for(problem.loss, 1, problem.unit).value_and_grad(lab, [x], params, np.float32)
        except Unresolved:
            return None
        true = v if problem.index == 0 else g[0]
        return _round_f32(true), true, (true, true)
    inputs = ref._inputs(lab, [x], params)
    last = None  # the ends of the last ball, at the most bits
    for prec in _PRECISIONS:
        with _working(prec):
            out = _evaluate(ref._main, inputs)
            if out is None:
                continue
            ball = out[problem.index]
            a, b = _ends(ball)
            if mpmath.isnan(a) or mpmath.isnan(b):
                continue
            pinned = _resolve(ball, np.float32)
        last = (a, b)
        ra, rb = _round_f32(a), _round_f32(b)
        if ra == rb and pinned is not None:
            return ra, pinned, (a, b)
    return None if last is None else _tie_break(problem, x, *last)


def _split_softplus(e: sp.Basic) -> sp.Basic:
    """Softplus(u) as max(u, 0) + log1p(exp(-|u|)): at a fixed input the first is a number, the
    second the tiny rest."""
    from sympy.codegen.cfunctions import log1p

    from ..define.primitives import Softplus

    return e.replace(lambda f: isinstance(f, Softplus), lambda f: sp.Max(f.args[0], 0) + log1p(sp.exp(-sp.Abs(f.args[0]))))


def _tie_break(problem: _Problem, x: float, a: mpmath.mpf, b: mpmath.mpf) -> tuple[float, mpmath.mpf, tuple] | None:
    """Where 2560 bits leave the ball across a float32 rounding boundary M (the midpoint of two
    neighbours, or a tie): the exact value is M plus a rest far below 2^-2560 of it (a product of
    the label and x exactly on M, and e^x with x below -1774). At the fixed input the stable form
    is split into its rational part, summed exactly (SymPy's rationals), and the rest (each a
    ball, arb); the sign of (rational part - M) + rest, when the ball excludes 0, says on which
    side of M the exact value lies, hence its rounding (a form that is all rational there, 1 - y/p
    at y = 2.5, p = 1.25·2^-24: -33554431, has the exact rest 0, a tie to even). None where the
    form has no such split, the sign stays undecided, or the split's ball is disjoint from the
    definition's (the two forms must agree before one decides for the other)."""
    from ..define.primitives import to_elementary
    from .reference import _compile, _working

    ra, rb = _round_f32(a), _round_f32(b)
    if not (math.isfinite(ra) and math.isfinite(rb)) or ra == rb:
        return None
    if float(np.nextafter(np.float32(ra), np.float32(np.inf))) != rb:  # not neighbours: not one boundary
        return None
    M = (sp.Rational(ra) + sp.Rational(rb)) / 2
    e = sp.expand(to_elementary(_split_softplus(problem.expr), keep=()).xreplace({problem.pred: sp.Rational(x)}))
    terms = sp.Add.make_args(e)
    rational = sp.Add(*[t for t in terms if t.is_Rational]) - M
    rest = [t for t in terms if not t.is_Rational]
    if any(t.free_symbols for t in rest):
        return None
    fn = _compile([], [sp.Add(*rest)], "arb")
    for prec in (128, 512, 2560):
        with _working(prec):
            (ball,) = fn()
            lo, hi = _ball_ends(ball + _exact_ball(rational))
        tie = rational == 0 and lo == 0 and hi == 0
        if not (lo > 0 or hi < 0 or tie):
            continue
        m = mpmath.mpf(M.p) / M.q  # exact: the denominator is a power of two
        # (exact differences: a and b lie within 2^-2500 of m, while a rest such as e^x at
        # x = -1e38 as a rational would have 10^38 digits)
        if hi < mpmath.fsub(a, m, exact=True) or lo > mpmath.fsub(b, m, exact=True):
            return None  # the stable form's value lies outside the definition's ball: nothing decided
        if tie:  # to even
            r = ra if (np.float32(ra).view(np.uint32) & 1) == 0 else rb
        else:
            r = rb if lo > 0 else ra
        return r, m, (a, b)
    return None


def _exact_ball(q: sp.Rational):
    """A rational as a ball: exact for a dyadic one (sums of float32 products and halves: the
    numerator an integer of any size, the denominator a power of two), rounded outward by arb
    otherwise."""
    from flint import arb, fmpz

    return arb(fmpz(int(q.p))) / arb(fmpz(int(q.q)))


def _ball_ends(ball) -> tuple[mpmath.mpf, mpmath.mpf]:
    from .balls import ends

    return ends(ball)


# --- one task: a range of bit patterns ------------------------------------------------------------


_PROBLEMS: dict = {}


def _worker_problem(setting: Setting, directory: str | None) -> _Problem:
    key = (setting, directory)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = _problem(setting, directory)
        # In a worker process the problem (SymPy expressions, the compiled reference) lives as
        # long as the process: out of the collector's sight, which otherwise walks it on every
        # full collection, a seventh of a hard label's sweep (garbage first). Not in the
        # caller's own process (one job): its heap is not this module's to freeze.
        if multiprocessing.parent_process() is not None:
            gc.collect()
            gc.freeze()
    return _PROBLEMS[key]


def _kernel_outs(problems: Sequence[_Problem], x32: np.ndarray) -> list[np.ndarray]:
    """The public kernel's float32 outputs for ``problems`` (one setting each, same case, label
    and parameters) at the inputs ``x32``: value and gradient by one ``_value_and_grad`` call."""
    first = problems[0]
    n = x32.size
    labels = None if first.label is None else np.full((n, 1), first.setting.label, dtype=np.float32)
    kw = dict(first.setting.params)
    whats = [p.setting.what for p in problems]
    with np.errstate(all="ignore"):
        if len(set(whats)) == 2:
            v, g = first.case.call(labels, x32.reshape(n, 1), kw, grad="both")
            got = {"value": v, "grad": g}
        else:
            got = {whats[0]: first.case.call(labels, x32.reshape(n, 1), kw, grad=whats[0] == "grad")}
    return [np.asarray(got[w], dtype=np.float32).reshape(n) for w in whats]


def _ulps_vec(k: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """|k - v|/ulp32(v) with v the middle of [lo, hi] (width ~2^-45 of v: the ulps to 6 digits);
    0 where k and v are the same infinity or v is beyond the float32 range with k that inf.
    (One compiled pass, :data:`cesym.verify.exhaustive_loops.STEPS`, where Numba is loaded.)"""
    from .exhaustive_loops import STEPS

    if STEPS is not None:
        with np.errstate(all="ignore"):
            return STEPS.ulps32(k, lo, hi)
    with np.errstate(all="ignore"):
        # in place where it can be: this runs on every input of an exhaustive sweep
        v = np.multiply(lo, 0.5)
        v += np.multiply(hi, 0.5)
        # the float32 spacing at |v|, 2^(E - 23) for 2^E <= |v| < 2^(E+1), from v's exponent bits
        E = v.view(np.int64) >> 52
        E &= 0x7FF
        E -= 23
        np.maximum(E, 1, out=E)
        E <<= 52
        u = E.view(np.float64)
        np.maximum(u, 2.0**-149, out=u)
        err = k.astype(np.float64)  # (mixed float32-float64 operands cost 5x)
        err -= v
        np.abs(err, out=err)
        err /= u
        odd = ~np.isfinite(err) | (np.abs(v) >= _F32_MAX)
        if odd.any():  # infinities: the same one (or a value that rounds to it) is no error
            kk, vv = k[odd], v[odd]
            beyond = np.abs(vv) >= _F32_MAX * (1 + 2.0**-25)
            same_inf = np.isinf(kk) & (np.sign(kk) == np.sign(vv)) & (beyond | np.isinf(vv))
            e = np.where(same_inf, 0.0, err[odd])
            err[odd] = np.where(np.isnan(e), np.inf, e)
    return err


def _special(problem: _Problem, x64: np.ndarray) -> np.ndarray:
    """Inputs reached only as limits (±inf, a domain's closed edge): the ball reference's
    extended reals decide them."""
    out = ~np.isfinite(x64)
    dom = problem.case.domain
    if dom == "unit":
        out |= (x64 == 0) | (x64 == 1)
    elif dom == "positive":
        out |= x64 == 0
    elif dom == "log1p":
        out |= x64 == -1
    return out


def _fresh() -> dict:
    return {"inputs": 0, "tier1": 0, "dd": 0, "dd_sampled": 0, "reference": 0, "sampled": 0, "worst": [], "ncr": 0, "misrounded": [], "unresolved": [], "disagree": []}


def _largest(errs: np.ndarray, floor: float, m: int) -> np.ndarray:
    """Positions of the ``m`` largest errors above ``floor``, the first positions among equal
    errors: the same inputs on every machine. (``argpartition`` alone picks among ties by its
    algorithm, which NumPy dispatches by CPU: the records' worst inputs of a kernel exact
    everywhere differed between an AVX-512 and an AVX2 host.)"""
    above = errs > floor
    if int(np.count_nonzero(above)) <= m:
        return np.flatnonzero(above)
    t = np.partition(errs, -m)[-m]  # the m-th largest error: a value, whatever the algorithm
    top = np.flatnonzero(errs > t)
    return np.concatenate([top, np.flatnonzero(errs == t)[: m - top.size]])


def _dd_reference(problem: _Problem):
    """(the reference's printed function of the definition on double-double intervals, the index
    of the output, the input columns with None for the prediction), built once per problem;
    (None, ...) where that arithmetic is missing (no Numba) or does not model the definition."""
    got = problem.__dict__.get("_dd")
    if got is None:
        from .contract import reference_for
        from .first_tier import _compiled

        ref = reference_for(problem.loss, 1)
        lab, params = _fixed(problem)
        inputs = ref._inputs(lab, [0.0], params)
        at = len(ref.label_syms)  # the prediction's column (labels first, as _inputs orders them)
        columns = [None if j == at else float(v) for j, v in enumerate(inputs)]
        got = problem.__dict__["_dd"] = (_compiled(ref, "main", stage="dd"), problem.index, columns)
    return got


def _dd_tier(problem: _Problem, x: np.ndarray) -> tuple | None:
    """At the inputs ``x`` (float32 values as float64) the definition's enclosure on double-double
    intervals (:mod:`cesym.verify.dd_intervals`: each end h + l, 106 bits, rounded outward):
    ``(r32, ok, lo, hi)``, its correctly rounded float32 where both ends round alike (``ok``; NaN
    ends decide nothing) and the enclosure rounded outward to float64; None where the arithmetic
    is missing or does not model the definition."""
    fn, index, columns = _dd_reference(problem)
    if fn is None:
        return None
    from . import dd_intervals as dd

    with np.errstate(all="ignore"):
        out = dd.evaluate(fn, [x if c is None else np.full(x.shape, c) for c in columns])
        if out is None:
            return None
        v = out[index].v
        a, b = round32(v[0], v[1]), round32(v[2], v[3])
        iv = dd.to_interval(out[index])
    return a, (a == b) & ~np.isnan(a) & ~np.isnan(b), np.asarray(iv.lo), np.asarray(iv.hi)


def _task(args) -> list[dict]:
    """One range of bit patterns [start, stop) for settings of one case, label and parameters."""
    from ..kernels import set_num_threads
    from ..kernels._blocks import _tune_malloc
    from . import intervals

    settings, directory, start, stop, seed = args
    _tune_malloc()
    set_num_threads(1)  # the processes are the parallelism
    problems = [_worker_problem(st, directory) for st in settings]
    results = [_fresh() for _ in problems]
    rng = np.random.default_rng(seed)
    for s in range(start, stop, _BLOCK):
        # the ranges hold no NaN pattern and no input outside the domain (input_ranges)
        x32 = np.arange(s, min(s + _BLOCK, stop), dtype=np.uint64).astype(np.uint32).view(np.float32)
        x64 = x32.astype(np.float64)
        special = _special(problems[0], x64)
        for problem, res, k in zip(problems, results, _kernel_outs(problems, x32)):
            _check_block(problem, res, x32, x64, k, special, rng, intervals)
    return results


def _check_block(problem, res, x32, x64, k, special, rng, intervals) -> None:
    # views (a constant, Dice's 1 at label 0, is a 0-d enclosure), copied where written below;
    # an end past float64's range is inf by design (the rules keep it outward): no warning
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        lo, hi = (np.broadcast_to(e, x64.shape) for e in intervals.evaluate(problem.expr, {problem.pred: intervals.point(x64)}))
        r32, ok = intervals.rounds_to(lo, hi)
        ok &= ~special
        again = np.flatnonzero(~ok & ~special)
        if again.size:  # exact sums and products kept as points: exact ties (|p| - 1/2 at |p| in [2^23, 2^24)) decided here
            with intervals.exact_ends():
                elo, ehi = (np.broadcast_to(e, again.shape) for e in intervals.evaluate(problem.expr, {problem.pred: intervals.point(x64[again])}))
            er, eok = intervals.rounds_to(elo, ehi)
            now = again[eok]
            lo, hi = np.array(lo), np.array(hi)  # (the ends may be one array, or the input's)
            lo[now], hi[now], r32[now], ok[now] = elo[eok], ehi[eok], er[eok], True
    res["inputs"] += x32.size
    res["tier1"] += int(ok.sum())
    # the definition on double-double intervals, for what float64's could not round
    by_dd = np.zeros(0, dtype=np.intp)
    again = np.flatnonzero(~ok & ~special)
    if again.size:
        got = _dd_tier(problem, x64[again])
        if got is not None:
            dr, dok, dlo, dhi = got
            by_dd = again[dok]
            lo, hi = np.array(lo), np.array(hi)
            lo[by_dd], hi[by_dd], r32[by_dd], ok[by_dd] = dlo[dok], dhi[dok], dr[dok], True
            res["dd"] += by_dd.size
    # tier 1: errors and rounding
    errs = np.where(ok, _ulps_vec(k, lo, hi), -1.0)
    bad = ok & (k != r32) & ~(np.isnan(k) & np.isnan(r32))
    n_bad = int(bad.sum())
    if n_bad:
        res["ncr"] += n_bad
        for i in np.flatnonzero(bad)[: max(0, _WORST - len(res["misrounded"]))]:
            res["misrounded"].append((float(x32[i]), float(k[i]), float(r32[i])))
    floor = res["worst"][-1][0] if len(res["worst"]) >= _WORST else -0.5
    for i in _largest(errs, floor, _WORST):
        res["worst"].append((float(errs[i]), float(x32[i]), float(k[i]), repr(float(0.5 * lo[i] + 0.5 * hi[i]))))
    # a sample of the interval decisions (each tier's), re-decided by the ball reference
    def recheck(i: int) -> None:
        got = decide_float32(problem, float(x32[i]))
        if got is not None:
            res["sampled"] += 1
            r, true, (a, b) = got
            # both enclose the exact value: they must meet, and round alike
            meet = bool(a <= mpmath.mpf(float(hi[i])) and mpmath.mpf(float(lo[i])) <= b)
            if not (r == float(r32[i]) or (math.isnan(r) and math.isnan(float(r32[i])))) or not meet:
                res["disagree"].append((float(x32[i]), float(r32[i]), r, float(lo[i]), float(hi[i]), mpmath.nstr(true, 20)))

    if res["sampled"] < _SAMPLE and ok.any():
        recheck(int(rng.choice(np.flatnonzero(ok))))
    if by_dd.size and res["dd_sampled"] < _SAMPLE:
        res["dd_sampled"] += 1
        recheck(int(rng.choice(by_dd)))
    # the rest: the ball reference
    for i in np.flatnonzero(~ok):
        x = float(x32[i])
        got = decide_float32(problem, x)
        if got is None:
            res["unresolved"].append(x)
            continue
        res["reference"] += 1
        r, true, _ = got
        kk = float(k[i])
        err = _ulps_f32(kk, true) if not mpmath.isnan(true) else (0.0 if math.isnan(kk) else math.inf)
        res["worst"].append((float(err), x, kk, mpmath.nstr(true, 20)))
        if not (kk == r or (math.isnan(kk) and math.isnan(r))):
            res["ncr"] += 1
            if len(res["misrounded"]) < _WORST:
                res["misrounded"].append((x, kk, r))
    res["worst"] = sorted(res["worst"], key=lambda w: -w[0])[:_WORST]


# --- the run ----------------------------------------------------------------------------------------


def run_settings(settings: Sequence[Setting], directory: str | None = None, jobs: int | None = None,
                 progress: Callable[[str], None] | None = None, limit: tuple[float, float] | None = None,
                 task_bits: int = TASK_BITS, on_sweep: Callable[[list[Summary]], None] | None = None) -> list[Summary]:
    """Check every float32 input of ``settings`` (``limit``: only those in [lo, hi], within the
    domain); settings of one case, label and parameters share one sweep (value and gradient
    from one call), and ``on_sweep`` gets each sweep's summaries as it ends (to print or record
    them: an interrupted run keeps what it finished). Raises RuntimeError if a sampled
    first-tier decision disagrees with the reference."""
    groups: dict = {}
    for st in settings:
        groups.setdefault((st.case, st.label, st.params), []).append(st)
    out = {}
    for group in groups.values():
        done = _sweep(tuple(group), directory, jobs, progress, limit, task_bits)
        out.update(zip(group, done))
        if on_sweep is not None:
            on_sweep(done)
    return [out[st] for st in settings]


def run_setting(setting: Setting, **kw) -> Summary:
    return run_settings([setting], **kw)[0]


def _sweep(group: tuple[Setting, ...], directory, jobs, progress, limit, task_bits) -> list[Summary]:
    problems = [_problem(st, directory) for st in group]
    lo, hi = _domain(problems[0].case)
    if limit is not None:
        lo, hi = max(lo, limit[0]), min(hi, limit[1])
    tasks = _tasks(input_ranges(lo, hi), task_bits)
    summaries = [Summary(st, (lo, hi), digest=_digest(p), family=p.loss.name.split(".")[0], loss=p.loss.name) for st, p in zip(group, problems)]
    t0 = time.perf_counter()
    jobs = jobs or os.cpu_count() or 1
    args = [(group, directory, s, e, i) for i, (s, e) in enumerate(tasks)]
    total = sum(e - s for s, e in tasks)
    done = 0
    last = 0.0
    title = " + ".join(st.name for st in group)

    def absorb(rs: list[dict], width: int) -> None:
        nonlocal done, last
        for summary, r in zip(summaries, rs):
            summary.inputs += r["inputs"]
            summary.tier1 += r["tier1"]
            summary.dd += r["dd"]
            summary.reference += r["reference"]
            summary.sampled += r["sampled"]
            summary.not_correctly_rounded += r["ncr"]
            summary.misrounded = (summary.misrounded + [list(m) for m in r["misrounded"]])[:_WORST]
            summary.unresolved += r["unresolved"]
            summary.worst = sorted(summary.worst + [list(w) for w in r["worst"]], key=lambda w: -w[0])[:_WORST]
            if r["disagree"]:
                raise RuntimeError(f"{summary.setting.name}: the first tier and the ball reference disagree at "
                                   f"(x, tier-1 float32, reference float32, lo, hi, exact) = {r['disagree'][0]}")
        done += width
        now = time.perf_counter() - t0
        if progress is not None and (now - last > 5 or done == total):
            last = now
            eta = now / done * (total - done) if done else 0
            progress(f"{title}: {100 * done / total:.0f}% of {total} inputs, {now:.0f} s (about {eta:.0f} s left)")

    for a, r in zip(args, processes.imap(_task, args, jobs)):
        absorb(r, a[3] - a[2])
    for summary in summaries:
        summary.max_ulps = summary.worst[0][0] if summary.worst else 0.0
        summary.seconds = round(time.perf_counter() - t0, 1)
    return summaries


def describe(s: Summary) -> str:
    """One paragraph on a summary: what was checked, the worst error, the misrounded inputs."""
    lo, hi = s.domain
    head = (
        f"{s.setting.name}: {s.inputs} float32 inputs in [{lo:g}, {hi:g}] in {s.seconds:.0f} s "
        f"({s.tier1} decided by float64 intervals, {s.dd} by double-double intervals, {s.reference} by the ball reference, "
        f"{s.sampled} interval decisions re-checked there)"
    )
    if s.worst:
        u, x, k, true = s.worst[0]
        head += f"; max {u:.6g} ulps at x = {x!r} (computed {k!r}, exact {true})"
    if s.not_correctly_rounded:
        x, k, r = s.misrounded[0]
        head += f"; {s.not_correctly_rounded} not correctly rounded (e.g. x = {x!r}: {k!r}, correctly rounded {r!r})"
    else:
        head += "; every result correctly rounded"
    if s.unresolved:
        head += f"; {len(s.unresolved)} unresolved (e.g. x = {s.unresolved[0]!r})"
    return head


RECORD_DIR = "exhaustive"


def record(summaries: Sequence[Summary], partial: bool = False, reports_dir=None) -> list[str]:
    """Write each summary into ``reports/exhaustive/<kernel>.json`` (one file per kernel case,
    its settings by name, replacing a setting run again and keeping the others); a run over part
    of the inputs (``partial``) is refused: the reports state whole runs only."""
    import json
    from pathlib import Path

    from ..files import write_text
    from ..report.render import REPORTS_DIR

    if partial:
        raise ValueError("--record: a run over part of the inputs (--range) is not recorded")
    out_dir = Path(reports_dir or REPORTS_DIR) / RECORD_DIR
    by_case: dict[str, list[Summary]] = {}
    for s in summaries:
        by_case.setdefault(s.setting.case, []).append(s)
    written = []
    for case_id, ss in by_case.items():
        path = out_dir / (case_file(case_id) + ".json")
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        for s in ss:
            data[s.setting.name] = s.as_json()
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(dict(sorted(data.items())), indent=1, allow_nan=False, default=str) + "\n", what="--record")
        written.append(str(path))
    return written


def case_file(case_id: str) -> str:
    """A file name for a kernel id: ``binary_crossentropy[from_logits=True]`` ->
    ``binary_crossentropy.from_logits=True``."""
    return case_id.replace("[", ".").replace("]", "").replace(",", ".")
