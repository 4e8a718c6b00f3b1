r"""Edge check: the kernel that will be printed, run at the edges of its declared domain.

A rewrite can miss a shape: ``log(1 + exp(u))`` left as it is prints a kernel that returns inf
at u = 800.5 where the loss is 800.5. Before anything is written, :func:`check_edges` runs the
printed module (the generated text itself, executed with :mod:`cesym.kernels._runtime`), value
and gradient in float64, at adversarial points of the declared domain, and compares each output
with the definition evaluated in interval arithmetic (:class:`~cesym.verify.reference.RowReference`:
the definition expanded per row, independent of the rewrites):

* real inputs: rows mixing 0, tiny magnitudes (2^-1022, 1e-300, 1e-200: squares underflow),
  ±30 (a dominant class), ±800 (e^800 overflows, e^-800 underflows), ties at 800, ±1e5 and
  ±1e200 (squares overflow); one value of each for an elementwise loss;
* probabilities: 0, 5e-324, 1e-300, 2^-53, 1/2, 1 - 2^-53, 1;
* labels hard (one-hot rows, and an ignored row for a class-index label) and soft (summing to 1
  and not); every parameter at both ends of its declared range (``Loss.param_range``).

Where the definition's interval pins a finite value (its width below 2^-64 of it, at up to
5120 bits) the kernel must give a finite number within

.. math::  |\hat f - f| \le 2^{29}\,(b + 4\kappa)\ \mathrm{ulp}_{64}(f), \qquad b = 4 \text{ (value)}, 8 \text{ (gradient)},

the accuracy contract (``cesym.verify.contract``) with float32's precision in float64's range: 2^29 is
the ratio of float32's spacing to float64's, so this is what the float64 kernel must meet for
its float32 output, rounded once, to keep within a few ulps of the float32 contract. It is
generous on purpose: a stable form that is a few roundings worse than the best one passes; a
form that overflows, returns NaN, or loses more than half of float64's digits to cancellation
does not. A true value beyond float64's range must come out as the infinity of its sign.
Real inputs stop at the smallest normal number: a subnormal one keeps a few bits through any
product with a constant (``c·x/‖x‖``, printed ``(c·x)/‖x‖``, is 73% off at x = 5e-324), a
limit of the format and of the order of the operations rather than of the stable form; a
subnormal probability (5e-324, whose reciprocal overflows) is kept.
A row holding an edge of the domain (a probability 0) where the definition itself is not a
number there (0·log 0 in a loss that does not declare its label weights) is held to the
definition's limit from inside the domain, as ``cesym verify`` holds it
(:class:`~cesym.verify.extended.ExtendedReference`). Other points whose definition is infinite,
not real, or not pinned at 5120 bits (1 - σ(1e5) cancels in about 144000 bits) are skipped: ±800 already puts every exponential past float64's
range, and is pinned in about 1200 bits.

A point that fails raises :class:`~cesym.define.loss.DerivationError` with one line naming the loss,
the output, the input and the offending subexpression: the first subexpression of the printed
stable form (evaluated in float64 through the same printer and runtime, and in interval
arithmetic) that is inf or NaN where its exact value is a finite float, or, for a finite but
inaccurate output, the first that lost more than half of its digits.
"""

from __future__ import annotations

import math
import types
from collections.abc import Sequence

import mpmath
import numpy as np
import sympy as sp

from ..define.loss import N, DerivationError, Loss
from ..derive.gradients import Derived
from ..define.primitives import element_symbols
from .lowerings import math_form
from ..verify.extended import needs_limit
from ..verify.reference import real_intervals
from ..verify.ulps import FORMATS, ulp_error
from ..define.conventions import label_times_log

__all__ = ["check_edges", "edge_points", "load_module", "RELAX", "EDGE_PRECISIONS"]

#: float32's spacing over float64's: the contract's bound is relaxed by this factor.
RELAX = 2.0**29
#: Working precisions of the reference (bits); a point not pinned at the last is skipped.
EDGE_PRECISIONS = (80, 320, 1280, 5120)
#: Relative width at which an interval pins a value (far below the bound's 2^-24).
_PIN = mpmath.mpf(2) ** -64
_VALUE_BASE, _GRAD_BASE = 4.0, 8.0
#: A subexpression this many float64 ulps off has lost more than half of its 53 bits.
_HALF_THE_DIGITS = 2.0**27
#: The batch size used for a loss that takes one (N), as the domain check does.
_BATCH = 4.0

_TINY = 2.0**-1022  # the smallest normal; see the module docstring for subnormal inputs
_REAL_ROWS = (
    (0.0, 0.0, 0.0),
    (1e-300, -1e-300, _TINY),
    (1e-200, -1e-200, 1e-200),
    (30.0, -30.0, 0.0),
    (800.0, -800.0, 3.0),
    (-800.0, 3.0, 800.0),
    (800.0, 800.0, -800.0),
    (1e5, -1e5, 1.0),
    (1e200, -1e200, 1e200),
)
_REAL_VALUES = (0.0, _TINY, -_TINY, 1e-300, -1e-300, 30.0, -30.0, 800.0, -800.0, 1e5, -1e5, 1e200, -1e200)
_ONE_MINUS = 1.0 - 2.0**-53
_PROB_ROWS = (
    (0.0, 0.5, 0.5),
    (1.0, 0.0, 0.0),
    (1e-300, _ONE_MINUS, 0.5),
    (5e-324, 0.25, 1.0),
    (2.0**-53, _ONE_MINUS, 1e-300),
    (0.3, 0.3, 0.4),
)
_PROB_VALUES = (0.0, 5e-324, 1e-300, 2.0**-53, 0.5, _ONE_MINUS, 1.0)
_SOFT_ROWS = ((0.25, 0.5, 0.25), (0.3, 0.0, 0.9))
_LABEL_VALUES = (0.0, 1.0, 0.25)


def edge_points(loss: Loss, n: int) -> list[tuple[list, list, list]]:
    """(labels, prediction, params) rows at the edges of ``loss``'s domain, rows of ``n`` (3, or 1
    for an elementwise loss).

    Each prediction row three times: with a one-hot label on its largest element (the
    dominant class, where lse(z) - z_k and softmax_k - 1 cancel), on its smallest, and soft
    (an ignored row for a class-index label), the parameters at the low end, the high end, and
    each in turn; each elementwise prediction with the labels 0, 1 and 1/4. A loss without
    labels: each prediction at both ends of the parameters.
    """
    if n == 1:
        preds = [[v] for v in (_PROB_VALUES if loss.domain == "probability" else _REAL_VALUES)]
    else:
        rows = _PROB_ROWS if loss.domain == "probability" else _REAL_ROWS
        preds = [[r[c % len(r)] for c in range(n)] for r in rows]
    ends = [[loss.param_range(q)[k] for q in loss.params] for k in (0, 1)]
    out = []
    for i, pred in enumerate(preds):
        if loss.label is None:
            out += [([], pred, ends[k]) for k in ((0, 1) if loss.params else (0,))]
            continue
        if n == 1:
            labels = [[v] for v in _LABEL_VALUES]
        else:
            hot = [[float(c == int(np.argmax(pred))) for c in range(n)], [float(c == int(np.argmin(pred))) for c in range(n)]]
            soft = [0.0] * n if loss.label_index else list(_SOFT_ROWS[i % len(_SOFT_ROWS)][:n])
            labels = hot + [soft]
        for k, lab in enumerate(labels):
            out.append((lab, pred, ends[k if k < 2 else i % 2]))
    return out


def load_module(text: str, family: str) -> dict:
    """The names of a rendered module's text, executed as a module of ``cesym.kernels._generated``
    (so that its ``from .. import _runtime as _rt`` is the runtime's)."""
    namespace = {"__name__": f"cesym.kernels._generated._check_{family}", "__package__": "cesym.kernels._generated"}
    exec(compile(text, f"<generated {family}.py>", "exec"), namespace)  # noqa: S102 - our own rendering
    return namespace


def _fmt(x: float) -> str:
    return repr(float(x))


def _describe(loss: Loss, labels: Sequence, pred: Sequence, params: Sequence) -> str:
    parts = []
    if loss.label is not None:
        parts.append(f"{loss.label.name}=[{', '.join(_fmt(v) for v in labels)}]")
    parts.append(f"{loss.prediction.name}=[{', '.join(_fmt(v) for v in pred)}]")
    parts += [f"{q.name}={_fmt(v)}" for q, v in zip(loss.params, params)]
    return ", ".join(parts)


def _pinned(iv_value):
    """The value an interval pins: an mpf, ``±inf`` (both ends the same infinity), or None
    (NaN, not finite at one end only, or still too wide)."""
    if not hasattr(iv_value, "_mpi_"):
        iv_value = mpmath.iv.mpf(iv_value)
    a, b = (mpmath.mp.make_mpf(e) for e in iv_value._mpi_)
    if mpmath.isnan(a) or mpmath.isnan(b):
        return None
    if a == b:
        return a
    if not (mpmath.isfinite(a) and mpmath.isfinite(b)):
        return None
    mag = max(abs(a), abs(b))
    if b - a <= _PIN * min(abs(a), abs(b)) or mag < mpmath.ldexp(1, -1100):
        with mpmath.workprec(mpmath.iv.prec + 8):
            return (a + b) / 2
    return None


def _exact(fn, inputs: list, count: int) -> list:
    """``fn``'s outputs pinned at rising precision: mpf, ±inf, or None where not pinned."""
    old = mpmath.iv.prec
    out: list = [None] * count
    try:
        for prec in EDGE_PRECISIONS:
            mpmath.iv.prec = prec
            try:
                res = list(fn(*[mpmath.iv.mpf(x) for x in inputs]))
            except (ArithmeticError, ValueError, TypeError, ZeroDivisionError):
                return out  # not real, or undefined there (0·log 0 in the definition)
            if not real_intervals(res):
                continue  # a power of an interval straddling 0 by cancellation: more bits
            out = [_pinned(r) for r in res]
            if all(o is not None for o in out):
                break
        return out
    finally:
        mpmath.iv.prec = old


def _call(fn, loss: Loss, labels, pred, params, uses_n: bool):
    """The generated function on one row (float64, or the class index for a class-index label)."""
    args = []
    if loss.label is not None:
        if loss.label_index:
            k = int(np.argmax(labels)) if any(labels) else -1
            args.append(np.array([[k]], dtype=np.int64))
        else:
            args.append(np.array([labels], dtype=np.float64))
    args.append(np.array([pred], dtype=np.float64))
    args += [float(v) for v in params]
    if uses_n:
        args.append(_BATCH)
    with np.errstate(all="ignore"):
        return fn(*args)


def _at_kinks(loss: Loss, module, labels, pred, params, uses_n: bool, res: tuple) -> tuple:
    """``res`` (value and gradient of one row) with the gradient elements at a kink, where its
    computed argument lies within its rounding of 0, decided exactly as the public kernels decide
    them (:func:`cesym.kernels._rescue.rescuer`: the wing loss's |x - y| < w at y = 1,
    x = 1e-300, w = 1, which the rounded difference puts on the far side). ``module``: the
    rendered module's names as attributes."""
    from ..kernels import _rescue

    if loss.label_index:
        return res
    scalars = tuple(float(v) for v in params) + ((_BATCH,) if uses_n else ())
    rescue = _rescue.rescuer(module, loss.variant, ("value", "grad"), scalars, False, loss.domain == "real")
    if rescue is None:
        return res
    blocks = ([np.array([labels], dtype=np.float64)] if loss.label is not None else []) + [np.array([pred], dtype=np.float64)]
    with np.errstate(all="ignore"):
        return tuple(rescue(blocks, tuple(np.asarray(r, dtype=np.float64) for r in res)))


def check_edges(loss: Loss, derived: Derived, namespace: dict, where: str = "", ref=None) -> None:
    """Raise :class:`DerivationError` (one line) where the printed kernel of ``loss``, in
    ``namespace`` (:func:`load_module`), overflows, returns NaN or loses its digits at an edge
    point of the declared domain at which the definition is a finite float."""
    from ..verify.reference import RowReference

    n = 3 if loss.row_level else 1
    ref = ref if ref is not None and ref.n == n else RowReference(loss, n, kind="iv")
    uses_n = N in ref.param_syms
    grad = derived.grad is not None
    fn = namespace[f"{loss.variant}_value_and_grad" if grad else f"{loss.variant}_value"]
    kinked = types.SimpleNamespace(**namespace) if grad and f"{loss.variant}_kinks" in namespace else None
    prefix = f"{where}: " if where else ""
    for labels, pred, params in edge_points(loss, n):
        full = list(params) + ([_BATCH] if uses_n else [])
        inputs = ref._inputs(labels, pred, full)
        exact = _exact(ref._main, inputs, 1 + (n if grad else 0))
        limit = exact[0] is None and needs_limit(pred, loss.domain)
        if limit:  # undefined at the edge itself (0·log 0 without declared weights): its limit from inside
            exact = _edge_limit(ref, loss.domain, labels, pred, full, 1 + (n if grad else 0))
        try:
            res = _call(fn, loss, labels, pred, params, uses_n)
        except Exception as e:  # noqa: BLE001 - the printed code failing is the problem to report
            raise DerivationError(
                f"{prefix}{loss.name}: the printed kernel raised {type(e).__name__}: {' '.join(str(e).split())} "
                f"at {_describe(loss, labels, pred, params)}"
            ) from None
        if kinked is not None:
            res = _at_kinks(loss, kinked, labels, pred, params, uses_n, res)
        value, g = (res if grad else (res, None))
        got = [float(np.asarray(value).reshape(-1)[0])] + (list(np.asarray(g, dtype=float).reshape(-1)) if grad else [])
        names = ["value"] + [f"gradient d/d{loss.prediction.name}[{j}]" for j in range(n)] * grad
        kappa = None
        for i, (name, y, f) in enumerate(zip(names, got, exact)):
            if f is None or mpmath.isinf(f):
                continue  # not pinned, or infinite: nothing to hold the kernel to
            err = ulp_error(y, f, np.float64)
            base = _VALUE_BASE if i == 0 else _GRAD_BASE
            if err <= RELAX * base:
                continue
            if math.isfinite(y):
                if kappa is None:
                    kappa = _kappas(ref, labels, pred, full, exact)
                if err <= RELAX * (base + 4.0 * kappa[i]):
                    continue
            what = "nan" if math.isnan(y) else ("inf" if math.isinf(y) else None)
            culprit = _culprit(loss, derived, min(i, 1), labels, pred, full, uses_n, nonfinite=what is not None)
            gives = "'s limit from inside the domain is" if limit else " gives"
            found = f"{what} where the definition{gives} {mpmath.nstr(f, 10)}" if what else (
                f"{_fmt(y)}, {err:.3g} ulps from the definition's {mpmath.nstr(f, 10)} "
                f"(bound 2^29·({base:g} + 4κ) = {RELAX * (base + 4.0 * kappa[i]):.3g} at κ = {kappa[i]:.3g})"
            )
            hint = ""
            zero_params = [q.name for q, v in zip(loss.params, params) if float(v) == 0.0]
            if limit and what and loss.label is not None and loss.label not in loss.weights and any(float(v) == 0.0 for v in labels):
                zero = "0·log 0" if label_times_log(loss.value, loss.label, loss.prediction) else "0·inf"
                hint = (f"; the definition is {zero} at this edge, and a zero label's term vanishes inside the domain: "
                        f"declare weights={{{loss.label.name}: {loss.label.name}}} on the Loss for the convention 0·f = 0")
            elif limit and what and zero_params:
                hint = (f"; {', '.join(zero_params)} = 0 {'multiplies' if len(zero_params) == 1 else 'multiply'} a term infinite at this edge (0·inf, whose "
                        f"limit inside the domain is 0): the convention 0·f = 0 holds for label weights; declare "
                        f"param_ranges without 0, or make it part of a label weight (α·y, as the focal losses do)")
            raise DerivationError(
                f"{prefix}{loss.name}: stable {name} is {found} at {_describe(loss, labels, pred, params)}"
                f"{culprit} (edges of domain {loss.domain!r}){hint}"
            )


def _edge_limit(ref, domain: str, labels, pred, params, count: int) -> list:
    """The definition's limits at a row holding an edge of its domain (a probability 0), as
    ``cesym verify`` takes them (:class:`~cesym.verify.extended.ExtendedReference`: stand-ins
    2^-M along several rays); None where there is none or it is not resolved."""
    from ..verify.extended import ExtendedReference
    from ..verify.reference import Unresolved

    try:
        v, g = ExtendedReference(ref, domain).value_and_grad(labels, pred, params)
    except Unresolved:
        return [None] * count
    out = [v, *g][:count]
    return [None if mpmath.isnan(x) else x for x in out] + [None] * (count - len(out))


def _kappas(ref, labels, pred, params, exact) -> list[float]:
    """κ of the value and of each gradient element (0, no allowance, where it cannot be computed)."""
    if any(f is None or not mpmath.isfinite(f) for f in exact):
        grads = [f if f is not None and mpmath.isfinite(f) else mpmath.mpf(0) for f in exact[1:]]
    else:
        grads = exact[1:]
    try:
        kv, kg = ref.kappa(labels, pred, params, value=exact[0], grad=grads)
    except Exception:  # noqa: BLE001 - no κ: no allowance from it
        return [0.0] * len(exact)
    return [kv] + list(kg)


def _culprit(loss: Loss, derived: Derived, which: int, labels, pred, params, uses_n: bool, nonfinite: bool) -> str:
    """``: in <function>, `<code>` is <number> (exact ...)`` for the first subexpression of the
    printed code of the output ``which`` (0: value, 1: gradient), temporaries first, children
    before parents, that is inf or NaN (``nonfinite``) or has lost more than half of its digits,
    where its exact value is a finite float; "" if none is."""
    from ..define.evaluate import compile_row_exprs
    from .codegen import KernelPrinter, printed_form
    from ..kernels import _runtime as rt

    grad = derived.grad is not None
    kept, outs = printed_form(loss, (derived.value, derived.grad) if grad else derived.value, index_label=False)
    fn_name = f"{loss.variant}_value_and_grad" if grad else f"{loss.variant}_value"
    n = len(pred)
    weights = loss.weight_definitions
    elems = ([loss.label] if loss.label is not None else []) + [loss.prediction]
    scalars = list(loss.params) + ([N] if uses_n else [])
    flat = ([float(v) for v in labels] if loss.label is not None else []) + [float(v) for v in pred] + [float(v) for v in params]
    printer = KernelPrinter()
    env = {"numpy": np, "_rt": rt, "C": n, loss.prediction.name: np.array([pred], dtype=np.float64)}
    if loss.label is not None:
        env[loss.label.name] = np.array([labels], dtype=np.float64)
    env.update({q.name: float(v) for q, v in zip(scalars, params)})
    with np.errstate(all="ignore"):
        for w, d in weights.items():
            env[w.name] = eval(printer.doprint(d), dict(env))  # noqa: S307 - printed by us
    full: dict = {}  # temporary -> its expression in the inputs

    def check(node: sp.Basic) -> str | None:
        code = printer.doprint(node)
        with np.errstate(all="ignore"):
            got = np.asarray(eval(code, dict(env)), dtype=float)  # noqa: S307 - printed by us
        math_node = math_form(node.xreplace(full).xreplace(weights))
        level = bool(element_symbols(math_node))
        call = compile_row_exprs([math_node], elems, scalars, n, ctx=mpmath.iv, per_element=[level])
        exact = _exact(lambda *a: call([a[k * n : (k + 1) * n] for k in range(len(elems))], a[len(elems) * n :]), flat, n if level else 1)
        got = np.broadcast_to(got, (1, n) if level else (1, 1)).reshape(-1)
        for y, f in zip(got, exact):
            if f is None or mpmath.isinf(f) or abs(f) > FORMATS[np.dtype(np.float64)][2]:
                continue
            if (not math.isfinite(y)) if nonfinite else ulp_error(y, f, np.float64) > _HALF_THE_DIGITS:
                need = {t for t, _ in kept if node.has(t)}
                for t, d in reversed(kept):  # and the temporaries those are made of (kept in order)
                    if t in need:
                        need |= {u for u, _ in kept if d.has(u)}
                temps = [f"{t} = {printer.doprint(d)}" for t, d in kept if t in need]
                where_ = f" ({'; '.join(temps)})" if temps else ""
                text = f"`{code}`{where_}"
                text = text if len(text) <= 240 else text[:237] + "..."
                return f": in {fn_name}, {text} is {_fmt(y)} there (exact {mpmath.nstr(f, 10)})"
        return None

    seen: set = set()
    for target in [sub for _, sub in kept] + [outs[which]]:
        for node in sp.postorder_traversal(target):
            if node in seen or node.is_Atom:
                continue
            seen.add(node)
            try:
                found = check(node)
            except Exception:  # noqa: BLE001 - a node that cannot be evaluated on its own
                continue
            if found:
                return found
        for t, d in kept:
            if d is target and t not in full:
                full[t] = d.xreplace(full)
                with np.errstate(all="ignore"):
                    env[t.name] = eval(printer.doprint(d), dict(env))  # noqa: S307 - printed by us
    return ""
