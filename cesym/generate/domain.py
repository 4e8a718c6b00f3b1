r"""Domain check: a loss must be real and finite on the interior of its declared domain.

A derivation can be valid SymPy and still not a loss: ``+ log(-1)`` is :math:`i\pi` (the printed
kernel would compute ``1j*numpy.pi`` and drop it with a ComplexWarning), ``log(p - 2)`` on
probabilities is the log of a negative number (NaN values, while the derived gradient
``1/(p - 2)`` is finite). Before anything is written, :func:`check_domain` evaluates, in
interval arithmetic (:mod:`mpmath.iv`), at a few seeded interior points of the declared domain:

* the definition and its gradient as the reference expands them (:class:`~cesym.verify.reference.RowReference`:
  plain ``sympy.diff`` of the expanded row, independent of the rewrites);
* the stable value and gradient that will be printed (:class:`~cesym.derive.gradients.Derived`).

Every output must be an interval of reals with finite ends. A complex result (mpmath raises
``ComplexResult``), an infinite or NaN end, or any error of the evaluation refuses the loss with
one line naming the loss, the input point and the problem.

Interior points: probabilities in [0.05, 0.95], logits and other real predictions N(0, 2²),
labels hard (the first point) and soft in [0, 1] (a label symbol declared ``nonzero``: ±1,
then ±[0.5, 1.5]; ``positive``: +1, [0.5, 1.5]), moved into the set where the
definition is real in its label (:mod:`cesym.derive.label_domain`), a class-index label as its
one-hot row,
parameters in [0.05, 0.5], the batch size N = 4; rounded to 3 decimals so that a message can
quote them. Interior points cannot prove a loss finite everywhere; they catch a definition that
is wrong almost everywhere, which is what a typo gives.
"""

from __future__ import annotations

import mpmath
import sympy as sp
import numpy as np

from ..define.conventions import label_times_log
from ..define.loss import N, DerivationError, Loss
from ..derive.gradients import Derived
from ..derive.label_domain import label_domain, moved_inside

__all__ = ["check_domain", "interior_points", "DOMAIN_SEED", "DOMAIN_POINTS"]

DOMAIN_SEED = 2026
DOMAIN_POINTS = 3
#: Row length of the check (1 for an elementwise loss).
DOMAIN_ROW = 3
#: Precisions (bits): an interval wider than finite at the first is retried at the second.
_PRECISIONS = (80, 640)


def _inside(labels, domain: dict | None):
    """``labels`` outside the label domain where the definition is real moved into it
    (:func:`cesym.derive.label_domain.moved_inside`). A label on an end stays (KL's 0: the
    0·log 0 convention is what the first point checks; log y at 0 is infinite there, and the
    refusal says so)."""
    if not domain or len(labels) == 0:
        return labels
    return np.array([moved_inside(float(v), domain) for v in labels])


def interior_points(loss: Loss, n: int, points: int = DOMAIN_POINTS, seed: int = DOMAIN_SEED) -> list[tuple[list, list, list]]:
    """Seeded (labels, prediction, params) rows inside ``loss``'s declared domain."""
    rng = np.random.default_rng(seed)
    domain = label_domain(loss)
    out = []
    for i in range(points):
        if loss.domain == "probability":
            pred = rng.uniform(0.05, 0.95, n)
        elif loss.domain == "log1p":
            pred = rng.uniform(-0.95, 3.0, n)
        else:
            pred = rng.normal(0.0, 2.0, n)
        labels: list = []
        if loss.label is not None:
            if loss.label_index:
                labels = np.eye(n)[rng.integers(0, n)]
            elif i == 0:
                labels = rng.integers(0, 2, n).astype(float)
            else:
                labels = rng.uniform(0.0, 1.0, n)
            if loss.label.is_nonzero:  # a label declared non-zero (a divisor): ±1, ±[0.5, 1.5]
                signs = np.ones(n) if loss.label.is_positive else rng.choice([-1.0, 1.0], n)
                labels = signs * (1.0 if i == 0 else rng.uniform(0.5, 1.5, n))
            labels = _inside(labels, domain)
        # within each declared range, away from its ends (a γ of (1, 5) drawn at 0.46 put the
        # check where the user's loss is not defined); (0.05, 0.5) for a parameter without one
        ranges = [loss.param_ranges.get(q, (0.05, 0.5)) if loss.param_ranges else (0.05, 0.5) for q in loss.params]
        params = [rng.uniform(lo + (hi - lo) / 20, hi - (hi - lo) / 20) for lo, hi in ranges]
        r = lambda a: [float(round(float(x), 3)) for x in a]  # noqa: E731
        out.append((r(labels), r(pred), r(params)))
    return out


def _describe(loss: Loss, labels: list, pred: list, params: list, uses_n: bool) -> str:
    parts = []
    if loss.label is not None:
        parts.append(f"{loss.label.name}={labels}")
    parts.append(f"{loss.prediction.name}={pred}")
    parts += [f"{p.name}={v}" for p, v in zip(loss.params, params)]
    if uses_n:
        parts.append("N=4")
    return ", ".join(parts)


def _problem(fn, inputs: list[float], names: list[str]) -> str | None:
    """None when every output of ``fn`` is a real interval with finite ends, else what is wrong."""
    old = mpmath.iv.prec
    try:
        problem = None
        for prec in _PRECISIONS:
            mpmath.iv.prec = prec
            try:
                outs = list(fn(*[mpmath.iv.mpf(x) for x in inputs]))
            except mpmath.libmp.ComplexResult as e:
                return f"not real ({e})"
            except Exception as e:  # noqa: BLE001 - any failure to evaluate is the problem to report
                return f"cannot be evaluated ({type(e).__name__}: {' '.join(str(e).split())})"
            problem = None
            for name, o in zip(names, outs):
                if isinstance(o, (int, float)) and not isinstance(o, bool):
                    o = mpmath.iv.mpf(o)  # a constant output
                if not hasattr(o, "_mpi_"):
                    imag = getattr(o, "imag", None)
                    return f"{name} is not real" + (f" (imaginary part {float(imag.mid):.6g})" if hasattr(imag, "mid") else f" ({o!r})")
                a, b = (mpmath.mp.make_mpf(e) for e in o._mpi_)
                if mpmath.isnan(a) or mpmath.isnan(b):
                    return f"{name} is NaN"
                if not (mpmath.isfinite(a) and mpmath.isfinite(b)):
                    problem = f"{name} is not finite ({mpmath.nstr(a, 5)} .. {mpmath.nstr(b, 5)})"
                    break
            if problem is None:
                return None
        return problem
    finally:
        mpmath.iv.prec = old


def _stable_fn(loss: Loss, d: Derived, n: int):
    """The stable value and gradient of ``d`` expanded for rows of ``n``, for :mod:`mpmath.iv`."""
    from ..define.evaluate import compile_row_exprs

    subs = loss.weight_definitions
    exprs = [d.value.xreplace(subs)] + ([d.grad.xreplace(subs)] if d.grad is not None else [])
    elems = ([loss.label] if loss.label is not None else []) + [loss.prediction]
    scalars = list(loss.params) + ([N] if any(e.has(N) for e in exprs) else [])
    per = [not loss.row_level] + ([True] if d.grad is not None else [])
    call = compile_row_exprs(exprs, elems, scalars, n, ctx=mpmath.iv, per_element=per)
    n_lab = n if loss.label is not None else 0
    n_par = len(scalars)

    def fn(*flat):
        rows = ([list(flat[:n_lab])] if n_lab else []) + [list(flat[n_lab : n_lab + n])]
        return call(rows, list(flat[n_lab + n : n_lab + n + n_par]))

    n_value = 1 if loss.row_level else n
    names = ["value" if n_value == 1 else f"value[{j}]" for j in range(n_value)]
    names += [f"gradient d/d{loss.prediction.name}[{j}]" for j in range(n)] if d.grad is not None else []
    return fn, names, N in scalars


def check_domain(loss: Loss, derived: Derived, where: str = ""):
    """Raise :class:`DerivationError` (one line) unless ``loss``, and the stable forms derived
    from it, are real and finite at every interior point of its declared domain. Returns the
    :class:`~cesym.verify.reference.RowReference` it built (the edge check uses the same)."""
    from ..verify.reference import RowReference

    n = DOMAIN_ROW if loss.row_level else 1
    prefix = f"{where}: " if where else ""
    try:
        ref = RowReference(loss, n, kind="iv")
    except Exception as e:  # noqa: BLE001 - SymPy failing on the expansion: the definition is at fault
        raise DerivationError(f"{prefix}{loss.name}: cannot expand the definition ({type(e).__name__}: {e})") from None
    ref_names = ["value"] + [f"gradient d/d{loss.prediction.name}[{j}]" for j in range(n)] * bool(ref.n_grad)
    stable, stable_names, stable_n = _stable_fn(loss, derived, n)
    uses_n = bool(ref.param_syms[len(loss.params):]) or stable_n
    for labels, pred, params in interior_points(loss, n):
        at = _describe(loss, labels, pred, params, uses_n)
        extra = [4.0] if uses_n else []
        inputs = ref._inputs(labels, pred, list(params) + extra[: len(ref.param_syms) - len(loss.params)])
        problem = _problem(ref._main, inputs, ref_names)
        if problem is not None:
            raise DerivationError(f"{prefix}{loss.name}: definition: {problem} at {at} (domain {loss.domain!r}){_hint(loss, problem, labels)}")
        s_inputs = list(labels) + list(pred) + list(params) + (extra if stable_n else [])
        problem = _problem(stable, s_inputs, stable_names)
        if problem is not None:
            raise DerivationError(f"{prefix}{loss.name}: stable form: {problem} at {at} (domain {loss.domain!r})")
    return ref


def _divides_by(value: sp.Basic, label) -> bool:
    """Whether ``value`` holds a negative power of an expression in ``label`` outside any log."""
    return any(p.exp.is_negative and p.base.has(label) for p in value.atoms(sp.Pow)
               if not any(isinstance(a, sp.log) and a.has(p) for a in value.atoms(sp.log)))


def _hint(loss: Loss, problem: str, labels) -> str:
    """What a definition that fails on its interior usually lacks, said where the failure shows it:
    a log of a negative number on the real line (probabilities or rates need the domain
    'probability'), or 0·log 0 at a zero label (the convention needs the label among the
    weights)."""
    if loss.domain == "real" and "negative" in problem:
        return ("; Loss(domain='real') takes predictions anywhere on the real line: probabilities or rates "
                "(>= 0, logs infinite at 0) are Loss(domain='probability'); a prediction that must be <= 0 "
                "(a log-probability l) has no domain of its own: write the loss in s = -l with a PUBLIC "
                "Variant(domain='positive')")
    zero_label = loss.label is not None and any(float(y) == 0.0 for y in labels)
    if "not finite" in problem and zero_label and _divides_by(loss.value, loss.label):
        return (f"; the definition divides by the label {loss.label.name}, 0 here: cesym's label kinds all "
                f"include 0 (there is no strictly positive label kind)")
    if "not finite" in problem and zero_label and not label_times_log(loss.value, loss.label, loss.prediction):
        dom = label_domain(loss)
        if dom and any(lo == 0.0 for lo, _ in dom["intervals"]):
            return (f"; a label 0 is the end of the set where the definition is real in it ({dom['because']}), "
                    f"infinite there: if 0 is not one of its values, declare Elem({loss.label.name!r}, positive=True)")
    if "not finite" in problem and zero_label and loss.label not in loss.weights and loss.domain == "probability":
        what = ("an infinite log (0·log 0)" if label_times_log(loss.value, loss.label, loss.prediction)
                else "a term infinite at this edge (0·inf)")
        return (f"; a zero label where the definition multiplies it into {what}: declare "
                f"weights={{{loss.label.name}: {loss.label.name}}} on the Loss for the convention 0·f = 0")
    if "not finite" in problem and zero_label and loss.domain != "probability":
        return (f"; a zero label where the definition multiplies it into an infinite log (0·log 0): the weights' "
                f"convention 0·f = 0 holds on Loss(domain='probability') only (a term such as "
                f"{loss.label.name}·log {loss.label.name}, constant in the prediction, can be left out of a loss on logits)")
    return ""
