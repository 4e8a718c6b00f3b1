"""Reference values with proven digits: the definition, expanded per row, in interval arithmetic.

For a loss and a row length ``n`` the definition (``Loss.value``, with its label weights written
out and the 0·log 0 = 0 convention as :class:`~cesym.define.primitives.XMul`) is expanded into plain
SymPy over the ``n`` elements and differentiated there by plain ``sympy.diff`` — independently
of the row chain rule and of every rewrite that made the kernels. The expressions are compiled
for interval arithmetic, python-flint's arb balls (:mod:`cesym.verify.balls`, the default) or
:mod:`mpmath.iv` (``CESYM_REFERENCE=iv``; generate's domain and edge checks, which read mpmath's
intervals), and evaluated from the exact binary values of the inputs at rising precision (80,
160, 320, … bits) until every interval pins its value to within 2**-8 ulp of the target format.
Two precisions that agree prove nothing (both give 0 for log(1 + 1e-300) written naively); an
interval that is narrow does. The two back ends pin the same digits (``tests/test_balls.py``).

Condition numbers :math:`\\kappa = \\sum_i |x_i\\,\\partial f/\\partial x_i| / |f|` use the same
expansion (second derivatives for gradient elements, by the forward-mode chain rule over the
gradient's common subexpressions: :func:`jacobian_assignments`) and are computed on demand.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp
from sympy.logic.boolalg import Boolean

from ..define.loss import N, Loss
from ..define.evaluate import _namespace, _Printer, expand_row, indexed
from sympy.codegen.cfunctions import expm1, log1p

from ..define.primitives import Sigmoid, to_elementary
from ..define.conventions import guard_zero_weights
from . import balls
from . import truthcache
from . import codecache
from .codecache import cached_source
from .ulps import FORMATS

#: Modules besides this one whose source decides the compiled forms' printed code (their names).
_FORM_MODULES = (balls.__name__,)
#: How the forms are derived from the value, in the code cache's key: a change here (the powers
#: of one |u| or max(u, 0) merged in the gradient) must not find the forms compiled before it.
_FORMS = "forms-3"

__all__ = ["RowReference", "Unresolved", "Indeterminate", "PRECISIONS"]

#: Working precisions tried in turn (bits).
PRECISIONS = (80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 40960)


class Unresolved(ArithmeticError):
    """The interval did not pin the value at the highest precision tried."""


class Indeterminate(Unresolved):
    """Unresolved because an output was an indeterminate ball (NaN: 0/0, 0·inf, log of a ball
    reaching 0) at every precision tried, up to the highest, for inputs that are exact numbers:
    the definition most likely has no value there (a zero row's direction, 0/0), which a finite
    precision cannot prove; :func:`cesym.verify.contract.check_batch` counts it apart only where
    the kernel gives NaN there too. ``partial``: the outputs that resolved (None for the others)."""


def backend() -> str:
    """The interval arithmetic the reference runs on: ``arb`` (python-flint's balls, about twenty
    times faster) unless ``CESYM_REFERENCE=iv`` asks for :mod:`mpmath.iv`; both are rigorous,
    and the tests hold them to the same digits."""
    choice = os.environ.get("CESYM_REFERENCE", "arb").strip().lower()
    if choice not in ("arb", "iv"):
        raise ValueError(f"CESYM_REFERENCE: expected 'arb' or 'iv', got {choice!r}")
    return choice


def _namespace_of(kind: str) -> dict:
    return balls.namespace() if kind == "arb" else _namespace(mpmath.iv)


def _compile(args: Sequence[sp.Symbol], exprs: Sequence[sp.Basic], kind: str | None = None, steps=None):
    """``exprs`` of ``args`` as one function for interval arithmetic (``kind``), their common
    subexpressions computed once (SymPy's ``cse``; or ``steps``, assignments (symbol, expression)
    in order that ``exprs`` are written in: :func:`jacobian_assignments`)."""
    kind = kind or backend()
    printer = balls.BallPrinter if kind == "arb" else _Printer
    cse = True if steps is None else (lambda _exprs: (list(steps), list(exprs)))
    # docstring_limit=0: no str(expr) for a docstring nothing reads (:func:`cesym.define.evaluate.compile_row_exprs`)
    fn = sp.lambdify(list(args), list(exprs), modules=[_namespace_of(kind)], printer=printer, cse=cse, docstring_limit=0)
    fn.n_out, fn.backend = len(exprs), kind
    return fn


def jacobian_assignments(exprs: Sequence[sp.Basic], syms: Sequence[sp.Symbol]) -> tuple[list, list]:
    r"""The derivatives :math:`\partial e_j/\partial s_i` of every expression by every symbol, flattened
    ``j``-major, as straight-line code: ``(steps, outs)``, assignments ``(symbol, expression)`` in
    order and the outputs written in their symbols.

    Forward-mode differentiation of ``sympy.cse(exprs)``: for each assignment :math:`t = f(u, \dots)`
    its partials :math:`\partial f/\partial u` by ``sympy.diff`` (small expressions, once each), and
    :math:`dt/ds_i = \sum_u \partial f/\partial u \cdot du/ds_i` per symbol, a new assignment where it
    is not 0. The expressions are the same derivatives as ``sympy.diff(e_j, s_i)`` (the chain
    rule, exactly); deriving them this way costs a derivative per edge of the shared expression
    graph, where ``sympy.diff`` of each expanded gradient element by each symbol walks the whole
    tree n² times (the second derivatives of the categorical focal loss at a row of 8: 22 s by
    ``sympy.diff``). The symbols it introduces are real, as every subexpression of a loss on
    its domain is (``Abs``, ``sign`` and ``Max`` differentiate as real functions).
    """
    names = sp.numbered_symbols("_cse", real=True)
    repl, reduced = sp.cse(list(exprs), symbols=names, order="none")
    steps: list[tuple[sp.Symbol, sp.Basic]] = list(repl)
    dnames = sp.numbered_symbols("_dfw", real=True)
    # derivative of each symbol: {symbol: {i: d symbol / d s_i}} (absent: 0); s_i's own is 1
    deriv: dict[sp.Symbol, dict[int, sp.Basic]] = {s: {i: sp.S.One} for i, s in enumerate(syms)}

    def chain(e: sp.Basic) -> dict[int, sp.Basic]:
        out: dict[int, list] = {}
        for u in e.free_symbols:
            if not deriv.get(u):
                continue
            pu = sp.diff(e, u)
            if pu == 0:
                continue
            for i, du in deriv[u].items():
                out.setdefault(i, []).append(pu * du)
        return {i: sp.Add(*terms) for i, terms in sorted(out.items())}  # sorted: the same code in every process

    for t, e in repl:
        if isinstance(e, Boolean):  # a Piecewise's condition: constant where it is defined
            deriv[t] = {}
            continue
        d = {}
        for i, de in chain(e).items():
            if de == 0:
                continue
            if de.is_Atom:
                d[i] = de
            else:
                name = next(dnames)
                steps.append((name, de))
                d[i] = name
        deriv[t] = d
    outs = []
    for e in reduced:
        d = chain(e)
        outs.extend(d.get(i, sp.S.Zero) for i in range(len(syms)))
    return steps, outs


class _working:
    """Both interval contexts at ``prec`` bits inside the block (global to the process, as
    mpmath's): mpmath.iv's and the balls' (:class:`cesym.verify.balls.precision`). A class rather
    than a generator: it is entered for every evaluation of the reference."""

    __slots__ = ("prec", "old", "balls")

    def __init__(self, prec: int):
        self.prec, self.balls = prec, balls.precision(prec)

    def __enter__(self) -> None:
        self.old = mpmath.iv.prec
        mpmath.iv.prec = self.prec
        self.balls.__enter__()

    def __exit__(self, *exc) -> None:
        self.balls.__exit__(*exc)
        mpmath.iv.prec = self.old


def real_intervals(out) -> bool:
    """Every output a real interval or number (mpmath.iv gives a complex interval for a power of
    an interval reaching below 0: a cancellation at too few bits, resolved with more)."""
    return not any(isinstance(o, (mpmath.iv.mpc, complex)) for o in out)


def _evaluate(fn, inputs) -> list | None:
    """``fn`` at the current interval precision, or None where the intervals need more bits: an
    interval straddling 0 by cancellation reached a log or a root (ValueError), or a power
    (a complex interval)."""
    if getattr(fn, "backend", "iv") == "arb":  # balls: an undefined operation gives NaN, not an error
        return list(fn(*[balls.as_ball(x) for x in inputs]))
    try:
        out = fn(*[mpmath.iv.mpf(x) for x in inputs])
    except ValueError:
        return None
    return out if real_intervals(out) else None


def _ends(iv_value) -> tuple[mpmath.mpf, mpmath.mpf]:
    """The end points of an interval (or ball) as exact mpf numbers."""
    if isinstance(iv_value, balls.arb):
        return balls.ends(iv_value)
    if not hasattr(iv_value, "_mpi_"):  # a constant output (e.g. a zero second derivative)
        iv_value = mpmath.iv.mpf(iv_value)
    lo, hi = iv_value._mpi_
    return mpmath.mp.make_mpf(lo), mpmath.mp.make_mpf(hi)


def _short(x: mpmath.mpf) -> mpmath.mpf:
    """``x`` rounded to 160 bits: far below a float's spacing, and cheap to work with. A number
    of at most 160 bits already (mpmath keeps mantissas without trailing zeros: ``bc`` is its
    bit count; 0 and the specials have none) is itself: most midpoints of the first precision."""
    if x._mpf_[3] <= 160:
        return x
    with mpmath.workprec(160):
        return +x


def _resolve(iv_value, dtype) -> mpmath.mpf | None:
    """The value pinned by an interval, or None if it is still too wide for ``dtype``."""
    if isinstance(iv_value, balls.arb):
        # most balls are decided from their exponents alone: a radius below 2^-(p+9) of the
        # midpoint (rad < 2^(top(rad)+1) <= 2^(top(mid)-p-9)) keeps the smaller end above
        # 2^(top(mid)-1), where the spacing is at least 2^(top(mid)-p), and the width 2·rad
        # below 2^(top(mid)-p-8): 2^-8 of that spacing, the test below
        mid = balls.close(iv_value, FORMATS[np.dtype(dtype)][0] + 9)
        if mid is not None:
            return _short(mid)
    a, b = _ends(iv_value)
    if mpmath.isnan(a) or mpmath.isnan(b):
        return None
    if a == b:
        return _short(a)
    if not (mpmath.isfinite(a) and mpmath.isfinite(b)):
        return None
    p, emin, _ = FORMATS[np.dtype(dtype)]
    with mpmath.workprec(mpmath.iv.prec + 8):
        mid = (a + b) / 2
    mag = max(abs(a), abs(b))
    # width below 2**-8 of the spacing at the smaller end (or of the subnormal spacing)
    lo = min(abs(a), abs(b)) if (a > 0) == (b > 0) and a != 0 and b != 0 else mpmath.mpf(0)
    spacing = mpmath.ldexp(1, emin) if lo == 0 else mpmath.ldexp(1, max(int(mpmath.frexp(lo)[1]) - p, emin))
    if b - a <= spacing / 256 and mag < mpmath.inf:
        return _short(mid)
    return None


@dataclass
class _Compiled:
    args: list[sp.Symbol]
    fn: object


class RowReference:
    """Reference value, gradient and condition numbers of ``loss`` on rows of length ``n``.

    Inputs per row: ``labels`` (length ``n``, or None for a loss without labels), ``pred``
    (length ``n``) and the scalar parameters in ``loss.params`` order, plus the batch size
    ``N`` when the loss uses it. ``kind``: the interval arithmetic, ``"arb"`` or ``"iv"``
    (default: :func:`backend`).
    """

    def __init__(self, loss: Loss, n: int, kind: str | None = None):
        self.loss, self.n = loss, n
        self.kind = kind or backend()  # the interval arithmetic: "arb" or "iv" (see backend())
        v = loss.value
        if loss.domain == "probability":
            v = guard_zero_weights(v, list(loss.weights))
        v = to_elementary(v.replace(*_LOG_SIGMOID))
        # per element, before the row is expanded (one denominator per element: no swell), the
        # label weights still symbols: multiplied out, (1 - y)·e^x would be e^x - y·e^x, which
        # cancels at y = 1 in about 1.44·x bits
        v = v.replace(_has_fraction, _one_fraction)
        v = v.xreplace(loss.weight_definitions)
        self.row_level = loss.row_level
        lab = loss.label
        self.pred_syms = [indexed(loss.prediction, c) for c in range(n)]
        self.label_syms = [indexed(lab, c) for c in range(n)] if lab is not None else []
        self.param_syms = list(loss.params) + ([N] if v.has(N) else [])
        if self.row_level:
            self.value_expr = _identities(expand_row(v, n, None))
        else:  # elementwise loss: one value per element; use rows of length 1
            if n != 1:
                raise ValueError("an elementwise loss is referenced on rows of length 1")
            self.value_expr = _identities(expand_row(v, 1, 0))
        self.args = self.label_syms + self.pred_syms + self.param_syms
        #: the gradient's length; the expressions themselves are derived only where needed (a
        #: cache miss of the compiled forms below, the condition numbers)
        self.n_grad = len(self.pred_syms) if loss.differentiable else 0
        self._memo: dict = {}
        #: what the balls decided since the last flush (:mod:`cesym.verify.truthcache`)
        self._fresh: dict = {}
        #: the first tier's condition numbers of the last prefilled batch, computed at the first
        #: κ asked for (:mod:`cesym.verify.first_tier`): called with a memo key and ``full``
        self._pending: Callable | None = None

    @functools.cached_property
    def _main(self):
        """Value and gradient, one interval function (compiled at the first use: a reference
        built for its forms' names, :meth:`form_names`, compiles nothing)."""
        return self._cached("value and gradient", lambda: _compile(self.args, [self.value_expr, *self.grad_exprs], self.kind), 1 + self.n_grad)

    @functools.cached_property
    def _value_only(self):
        """The value alone, one interval function: asked where the gradient did not resolve
        (a row whose value has no limit has no gradient to resolve, :mod:`.extended`)."""
        return self._cached("value", lambda: _compile(self.args, [self.value_expr], self.kind), 1)

    def value_inputs(self, inputs: list, dtype=np.float64) -> mpmath.mpf:
        """The value alone at the flat inputs of :meth:`_inputs` (pinned for ``dtype``; not memoised)."""
        return self._rising(self._value_only, inputs, dtype)[0]

    @functools.cached_property
    def _disk(self) -> dict:
        """What the balls decided in earlier runs (:mod:`cesym.verify.truthcache`: the ``cesym``
        command's), asked after the first tier (whose numbers a run takes where it has them) and
        before the balls; read at the first point that asks."""
        return truthcache.load(self)

    @functools.cached_property
    def grad_exprs(self) -> list[sp.Basic]:
        """d value / d pred_c by ``sympy.diff`` of the expanded row, powers of one |u| merged
        (:func:`_merge_abs_powers`)."""
        return [_merge_abs_powers(sp.diff(self.value_expr, s)) for s in self.pred_syms] if self.n_grad else []

    def _cached(self, what: str, build, n_out: int):
        """``build()`` (a :func:`_compile` of forms derived from the value), its printed code kept
        on disk (:mod:`cesym.verify.codecache`) keyed by the value's expression, the symbols and
        ``what``: a process that finds it differentiates nothing (seconds per loss and row length
        for the second derivatives, a large share of ``verify --quick``)."""
        fn = cached_source(self.args, self._form_key(what), build, _namespace_of(self.kind), modules=_FORM_MODULES)
        fn.n_out, fn.backend = n_out, self.kind
        return fn

    @functools.cached_property
    def value_srepr(self) -> str:
        """``srepr`` of the expanded definition, once: it names the compiled forms (three keys)
        and the truths cache's directory (milliseconds to tens of them for a row of 8)."""
        return sp.srepr(self.value_expr)

    def _form_key(self, what: str) -> str:
        """What names a form in the code cache, with the symbols and the sources."""
        return "|".join([what, _FORMS, self.value_srepr, sp.srepr(self.pred_syms), str(self.n_grad), self.kind])

    def _partials_syms(self) -> list[sp.Symbol]:
        return self.label_syms + list(self.loss.params)

    def _hessian_syms(self) -> list[sp.Symbol]:
        return self.pred_syms + self.label_syms + list(self.loss.params)

    @classmethod
    def form_names(cls, loss: Loss, n: int, kind: str | None = None) -> dict[str, str | None]:
        """The code-cache names (:func:`cesym.verify.codecache.key`) of the three compiled forms
        of ``loss`` on rows of ``n``: ``"value and gradient"``, ``"partials"``, ``"hessian"``
        (None: a source cannot be read). Nothing is derived or compiled."""
        ref = cls(loss, n, kind)
        whats = {
            "value and gradient": "value and gradient",
            "partials": "partials " + sp.srepr(ref._partials_syms()),
            "hessian": "hessian " + sp.srepr(ref._hessian_syms()),
        }
        return {form: codecache.key(ref.args, ref._form_key(w), __name__, _FORM_MODULES) for form, w in whats.items()}

    # --- evaluation ---------------------------------------------------------------------------

    def _inputs(self, labels, pred, params) -> list:
        vals = (list(labels) if self.label_syms else []) + list(pred) + list(params)
        if len(vals) != len(self.args):
            raise ValueError(f"expected {len(self.args)} inputs, got {len(vals)}")
        # floats are exact binary values; mpmath numbers (stand-ins beyond any float, see
        # cesym.verify.extended) are kept as they are
        return [x if isinstance(x, mpmath.mpf) else float(x) for x in vals]

    def _rising(self, fn, inputs, dtype, precisions: Sequence[int] = PRECISIONS) -> list[mpmath.mpf]:
        pending = None
        # indeterminate: evaluated at every precision, and every output left unresolved a NaN
        # ball at each of them (an output that resolves only at a later precision, a gradient
        # element of 4e-308 beside a 0/0 element, does not count against the others)
        evaluated, nan_always = True, None
        for prec in precisions:
            with _working(prec):
                out = _evaluate(fn, inputs)
                if out is None:
                    evaluated = False
                    continue
                res = [_resolve(o, dtype) for o in out]
                nans = [r is None and mpmath.isnan(_ends(o)[0]) for o, r in zip(out, res)]
                nan_always = nans if nan_always is None else [a and b for a, b in zip(nan_always, nans)]
            if all(r is not None for r in res):
                return res
            pending = res
        indeterminate = evaluated and pending is not None and all(nan for nan, r in zip(nan_always, pending) if r is None)
        err = (Indeterminate if indeterminate else Unresolved)(
            f"{self.loss.name}: interval not resolved at {precisions[-1]} bits for inputs {inputs} "
            + (f"({sum(r is None for r in pending)} of {len(pending)} outputs)" if pending else "(a log or root of a negative interval)")
        )
        err.partial = pending  # the outputs that did resolve (None for the others), or None
        raise err

    def value_and_grad(self, labels, pred, params=(), dtype=np.float64) -> tuple[mpmath.mpf, list[mpmath.mpf]]:
        """True value and gradient (pinned to 2**-8 ulp of ``dtype``) at exact float inputs.

        Memoised per input: the stable kernel, the naive form and Keras are checked on the same
        points, and the reference is the expensive part.
        """
        return self.value_and_grad_inputs(self._inputs(labels, pred, params), dtype)

    def value_and_grad_inputs(self, inputs: list, dtype=np.float64, max_prec: int | None = None) -> tuple[mpmath.mpf, list[mpmath.mpf]]:
        """:meth:`value_and_grad` on the flat inputs of :meth:`_inputs` (labels, pred, params).

        ``max_prec``: give up (Unresolved) past this precision, not memoised: a quick attempt.
        """
        if max_prec is not None:
            out = self._rising(self._main, inputs, dtype, [p for p in PRECISIONS if p <= max_prec])
            return out[0], out[1:]
        # memo, first tier, balls, in that order; the key is hashed as few times as can be
        # (a limit's stand-ins are mpmath numbers, whose hash is computed in Python every time)
        key = (tuple(inputs), np.dtype(dtype).name)
        hit = self._memo.get(key)
        if hit is None:
            if self.__dict__.get("_tier1") is not None:
                from .first_tier import lookup

                hit = lookup(self, key)
            if hit is None:
                try:
                    out = self._rising(self._main, inputs, dtype)
                    hit = (out[0], out[1:])
                except Unresolved as e:
                    hit = e
                self._memo[key] = hit
            else:
                self._memo[key] = hit
        if isinstance(hit, Unresolved):
            raise hit
        return hit

    # --- the first tier: many points at once on float64 intervals ------------------------------

    def prefill(self, inputs: np.ndarray, dtype=np.float64) -> int:
        """Decide what the first tier (:mod:`cesym.verify.first_tier`) can for many points at
        once, ``inputs`` one row per point (labels, pred, params, as :meth:`_inputs` orders
        them): memoised as :meth:`value_and_grad` and :meth:`kappa` would memoise them; the rest
        is left to the balls. Returns how many points' values it decided."""
        from . import first_tier

        return first_tier.prefill(self, inputs, dtype)

    # --- an independent check of the symbolic gradient ----------------------------------------

    @functools.cached_property
    def _value_mp(self):
        ns = _namespace(mpmath.mp)
        return sp.lambdify(self.args, self.value_expr, modules=[ns], printer=_Printer, cse=True, docstring_limit=0)

    def checked_pair(self, labels, pred, params=()) -> tuple[mpmath.mpf, list[mpmath.mpf], list[mpmath.mpf]]:
        """(value, gradient, :meth:`numeric_grad`) at a point, for the gradient's spot check
        (:func:`cesym.verify.run._gradient_spot_check`): memoised, and kept on disk by the
        ``cesym`` command (:mod:`cesym.verify.truthcache`; mpmath.diff evaluates the value at
        many points of 256 bits, milliseconds each). Raises :class:`Unresolved` as
        :meth:`value_and_grad` does."""
        key = ("checked pair", tuple(self._inputs(labels, pred, params)))
        if key not in self._memo:

            def pair():
                v, g = self.value_and_grad(labels, pred, params)
                return v, list(g), self.numeric_grad(labels, pred, params)

            self._memo[key] = self.kept(key, pair)
        return self._memo[key]

    def numeric_grad(self, labels, pred, params=(), prec: int = 256) -> list[mpmath.mpf]:
        """d value / d pred_i by mpmath.diff (central differences at ``prec`` bits, relative steps).

        Independent of the symbolic derivative: a cross-check of ``sympy.diff``, not a proof.
        """
        inputs = self._inputs(labels, pred, params)
        k0 = len(self.label_syms)
        out = []
        with mpmath.workprec(prec):
            args = [mpmath.mpf(x) for x in inputs]
            for i in range(len(self.pred_syms)):
                def f(x, i=i):
                    a = list(args)
                    a[k0 + i] = x
                    return self._value_mp(*a)

                x0 = args[k0 + i]
                h = mpmath.ldexp(abs(x0) if x0 != 0 else 1, -prec // 3)  # a relative step
                out.append(mpmath.diff(f, x0, h=h))
        return out

    # --- condition numbers --------------------------------------------------------------------

    @functools.cached_property
    def _value_partials(self):
        """d value / d(labels, params): with the gradient, every partial of the value."""
        syms = self._partials_syms()

        def build():
            if not syms:
                return _compile(self.args, [sp.S.Zero], self.kind)
            steps, outs = jacobian_assignments([self.value_expr], syms)  # the chain rule, as for _hessian
            return _compile(self.args, outs, self.kind, steps=steps)

        return self._cached("partials " + sp.srepr(syms), build, max(len(syms), 1))

    @functools.cached_property
    def _hessian(self):
        """d grad_j / d(pred, labels, params) for every j, flattened row by row (forward-mode
        chain rule over the gradient's common subexpressions: :func:`jacobian_assignments`)."""
        syms = self._hessian_syms()

        def build():
            steps, outs = jacobian_assignments(self.grad_exprs, syms)
            return _compile(self.args, outs, self.kind, steps=steps)

        # the printed code is cached on disk (a process that finds it derives nothing)
        return self._cached("hessian " + sp.srepr(syms), build, self.n_grad * len(syms))

    def _soft(self, labels, params) -> bool:
        """Labels count in κ only when soft: smoothing on or a label other than 0/1."""
        if any(float(p) != 0.0 for p in list(params)[: len(self.loss.params)]) and self.loss.params:
            return True
        return any(float(y) not in (0.0, 1.0) for y in (labels if self.label_syms else []))

    def kappa(self, labels, pred, params=(), value=None, grad=None) -> tuple[float, list[float]]:
        """κ of the value and of each gradient element (inf where the true value is 0)."""
        inputs = self._inputs(labels, pred, params)
        key = ("kappa", tuple(inputs))
        if key not in self._memo and self._pending is not None:
            self._pending(key, full=True)  # the first tier's κ of the whole batch, at the first need
        if key not in self._memo:
            recalled = self._recall(key)
            self._memo[key] = recalled if recalled is not None else self._kappa(labels, pred, params, inputs, value, grad)
            if recalled is None:
                self._keep(key)
        return self._memo[key]

    def kappa_value(self, labels, pred, params=(), value=None, grad=None) -> float:
        """κ of the value alone (no second derivatives): what a sum of per-sample values needs."""
        inputs = self._inputs(labels, pred, params)
        full = self._memo.get(("kappa", tuple(inputs)))
        if full is not None:
            return full[0]
        key = ("kappa_value", tuple(inputs))
        if key not in self._memo and self._pending is not None:
            self._pending(key, full=False)
        if key not in self._memo:
            recalled = self._recall(key)
            if recalled is not None:
                self._memo[key] = recalled
            else:
                if value is None:
                    value, grad = self.value_and_grad(labels, pred, params)
                self._memo[key] = self._kappa_value(labels, pred, params, inputs, value, grad)
                self._keep(key)
        return self._memo[key]

    def _recall(self, key):
        """An earlier run's number for ``key`` (:mod:`cesym.verify.truthcache`), or None: asked
        where this run has none yet, after the first tier and before the balls."""
        return self._disk.get(key) if self._disk else None

    def _keep(self, key) -> None:
        """Note a number the balls decided, for the disk cache (:mod:`cesym.verify.truthcache`):
        condition numbers (a Hessian on balls, milliseconds); not values as mpmath numbers (kept,
        they were 150 MB for a default run, slower to read back than to compute): the batch
        check keeps its double-doubles instead, the extended reals their limits (:meth:`keep_number`)."""
        if truthcache.ENABLED:
            self._fresh[key] = self._memo[key]

    def kept(self, key, compute: Callable[[], object]):
        """An earlier run's number for ``key`` (:meth:`_recall`), else ``compute()``, noted for the
        next run (:meth:`keep_number`)."""
        got = self._recall(key)
        if got is None:
            got = compute()
            self.keep_number(key, got)
        return got

    def keep_number(self, key, value) -> None:
        """Note ``value``, derived from the reference's numbers alone at the inputs in ``key``,
        for the disk cache (:mod:`cesym.verify.truthcache`; read back by :meth:`_recall`): the
        batch check's double-doubles of the balls' values (:func:`cesym.verify.truths.batch_truths`,
        float tuples, a few dozen bytes a point), the gradient spot check's pair, the limits at
        ±inf inputs (:class:`cesym.verify.extended.ExtendedReference`)."""
        if truthcache.ENABLED:
            self._fresh[key] = value

    def _split(self, inputs) -> tuple[list, list, list]:
        """(pred, labels, params) of the flat inputs, as mpmath numbers."""
        n_lab, n_par = len(self.label_syms), len(self.loss.params)
        vals = [mpmath.mpf(x) for x in inputs]
        return vals[n_lab : n_lab + self.n], vals[:n_lab], vals[n_lab + self.n : n_lab + self.n + n_par]

    def _kappa_value(self, labels, pred, params, inputs, value, grad) -> float:
        xs, ys, ps = self._split(inputs)
        num = sum(_term(x, g) for x, g in zip(xs, grad))
        if self._soft(labels, params) and (self.label_syms or self.loss.params):
            others = ys + ps
            part = self._approx(self._value_partials, inputs, lambda i: _scale(value, others[i]))
            num += sum(_term(y, d) for y, d in zip(ys + ps, part))
        return _ratio(num, value)

    def _kappa(self, labels, pred, params, inputs, value, grad) -> tuple[float, list[float]]:
        if value is None:
            value, grad = self.value_and_grad(labels, pred, params)
        soft = self._soft(labels, params)
        xs, ys, ps = self._split(inputs)
        n_lab, n_par = len(self.label_syms), len(self.loss.params)
        k_value = self._kappa_value(labels, pred, params, inputs, value, grad)
        k_grad: list[float] = []
        if self.n_grad:
            width = self.n + n_lab + n_par
            variables = xs + ys + ps
            # a label or parameter column enters κ only for soft labels: its entries need no digits
            # otherwise; each gradient element's κ is a group of terms |x_i·∂g_j/∂x_i|
            weights = [mpmath.mpf(0) if (c >= self.n and not soft) else abs(x) for c, x in enumerate(variables)] * len(grad)
            h = self._approx(self._hessian, inputs, lambda i: _scale(grad[i // width], variables[i % width]), weights, width)
            for j, gj in enumerate(grad):
                rowp = h[j * width : (j + 1) * width]
                num = sum(_term(x, d) for x, d in zip(xs, rowp[: self.n]))
                if soft:
                    num += sum(_term(y, d) for y, d in zip(ys + ps, rowp[self.n :]))
                k_grad.append(_ratio(num, gj))
        return k_value, k_grad

    def _approx(
        self, fn, inputs, scales: Callable[[int], mpmath.mpf] | None = None, weights: Sequence[mpmath.mpf] | None = None, group: int = 0
    ) -> list[mpmath.mpf]:
        """Values good to a few digits (enough for a condition number), at rising precision, each
        output on its own (one that cannot be pinned, e.g. infinite at an edge element, is inf:
        no bound claimed from it, and it leaves the others' alone). An output whose interval
        stays within 2^(-prec/2)·scale of 0 is 0: ``scales(i)`` is the size it is negligible
        against, computed only for an output that reaches this test (for a term x·∂f/∂x of κ,
        |f|/|x|; default 1). An absolute 2^-40 took the
        Hessian of a gradient of 5e-74 for 0, and κ with it.

        ``weights`` and ``group`` (the Hessian's κ): output i enters the κ of group i // ``group``
        as the term weights[i]·|output|. An output of weight 0 (a label's column, hard labels)
        enters no κ: 0 at once. The outputs of a group not pinned at a precision are 0 where the
        sum of their terms' bounds (weight times the interval's larger magnitude) is at most
        :data:`KAPPA_REST` of the sum of its pinned terms: κ is then known to that share, below
        the 2^-10 of each term, and lower, never higher (a stricter bound). Logits of 1e285
        beside 1e-67 need about 1000 bits for any term of x_i = 1e285 to be small, and about
        1900 for one to be negligible against its scale: the balls rose to 5120 bits there."""
        res: list = [None] * fn.n_out
        if scales is not None:  # each output's scale once, whatever the precisions it reaches
            scales = functools.cache(scales)
        if weights is not None:
            for i, w in enumerate(weights):
                if w == 0:
                    res[i] = mpmath.mpf(0)
        for prec in _from_magnitudes(inputs):
            with _working(prec):
                out = _evaluate(fn, inputs)
                if out is None:
                    continue
                bounds: dict[int, mpmath.mpf] = {}
                tiny = mpmath.mpf(2) ** (-prec // 2)
                for i, o in enumerate(out):
                    if res[i] is not None:
                        continue
                    if isinstance(o, balls.arb):  # most balls: their midpoint, from exponents alone
                        res[i] = balls.close(o, 11)
                        if res[i] is not None:
                            continue
                    a, b = _ends(o)
                    if a == b:
                        res[i] = a
                    elif mpmath.isfinite(a) and mpmath.isfinite(b):
                        mag = max(abs(a), abs(b))
                        if (b - a) <= _FEW * mag:
                            res[i] = (a + b) / 2
                        elif mag < tiny * (1 if scales is None else scales(i)):
                            res[i] = mpmath.mpf(0)  # negligible against everything else in κ
                        else:
                            bounds[i] = mag
                if weights is not None and group:
                    _negligible_rest(res, bounds, weights, group)
            if all(r is not None for r in res):
                return res
        return [mpmath.inf if r is None else r for r in res]


# --- exact identities that let interval arithmetic pin every digit --------------------------------
#
# Interval arithmetic is rigorous but cannot see through cancellation at a fixed precision: for
# x = 1e300, 1 - σ(x) needs about 1.4e300 bits. These identities are exact (each is checked
# symbolically in the tests) and remove such cancellations from the *definition*; they are
# applied to the expanded expression, so the row chain rule and the kernels' rewrites play no part.


def _is_one_minus_sigmoid(a) -> bool:
    return isinstance(a, sp.Add) and len(a.args) == 2 and sp.S.One in a.args and isinstance(-(a - 1), Sigmoid)


_LOG_SIGMOID = (
    lambda e: isinstance(e, sp.log) and (isinstance(e.args[0], Sigmoid) or _is_one_minus_sigmoid(e.args[0])),
    # log σ(x) = -log1p(e^{-x});  log(1 - σ(x)) = log σ(-x) = -log1p(e^{x})
    lambda e: -log1p(sp.exp(-e.args[0].args[0]))
    if isinstance(e.args[0], Sigmoid)
    else -log1p(sp.exp((-(e.args[0] - 1)).args[0])),
)


def _share_of_sum(a: sp.Basic) -> tuple[sp.Basic, sp.Basic] | None:
    """``(X, R)`` for ``a = X/(X + R)`` with X a term of the denominator's sum, else None."""
    if not isinstance(a, sp.Mul):
        return None
    dens = [f for f in a.args if isinstance(f, sp.Pow) and f.exp == -1 and isinstance(f.base, sp.Add)]
    if len(dens) != 1:
        return None
    num = sp.Mul(*[f for f in a.args if f is not dens[0]])
    return (num, dens[0].base - num) if num in dens[0].base.args else None


def _log_ratio(e: sp.Basic) -> sp.Basic | None:
    """log(X/(X + R)) = -log1p(R/X) for a term X of the denominator's sum."""
    share = _share_of_sum(e.args[0])
    return None if share is None else -log1p(share[1] / share[0])


def _has_fraction(a: sp.Basic) -> bool:
    """A sum with a term holding 1/(a sum with an exponential): 1 - 1/(1 + e^{-x}) and the like."""
    return isinstance(a, sp.Add) and any(
        isinstance(f, sp.Pow) and f.exp == -1 and isinstance(f.base, sp.Add) and f.base.has(sp.exp)
        for t in a.args for f in sp.Mul.make_args(t)
    )


def _one_fraction(a: sp.Add) -> sp.Basic:
    """The sum over one denominator, its numerator expanded: the exact cancellations (the 1s of
    1 + e^{-x} - 1) happen in algebra, and what is left has no cancelling part at x = 1e300."""
    n, d = sp.fraction(sp.together(a))
    return sp.expand(n) / d


def _one_minus_ratio(e: sp.Basic) -> sp.Basic | None:
    """1 - X/(X + R) = R/(X + R) for X a term of the denominator's sum (in any sum): 1 - softmax_j
    or 1 - p_j/Σp, which cancels for a dominant j (about 1.44 bits per unit a logit wins by; at
    a stand-in 2^-M for a probability 0, M bits)."""
    if not isinstance(e, sp.Add) or sp.S.One not in e.args:
        return None
    for a in e.args:
        share = _share_of_sum(-a)
        # a softmax's share or a renormalised probability's (X one element): where X is a
        # product (y·p of an overlap) the rest's derivative would cancel as 1/p - 1/p instead
        if share is not None and (share[0].has(sp.exp) or isinstance(share[0], sp.Symbol)):
            X, R = share
            return e - 1 - a + R / (X + R)
    return None


def _expm1_pair(e: sp.Basic) -> sp.Basic | None:
    """``a ± (1 - e^u)`` -> ``a ∓ expm1(u)``: a ball of 1 - e^u at a tiny u (a stand-in 2^-M for
    the edge 0) is 0 ± 2^-p at every precision, where expm1 keeps u's digits."""
    if not isinstance(e, sp.Add):
        return None
    for one, sign in ((sp.S.One, -1), (sp.S.NegativeOne, 1)):
        if one not in e.args:
            continue
        for t in e.args:
            if isinstance(t, sp.exp) and sign == 1 or (isinstance(-t, sp.exp) and sign == -1 and t.could_extract_minus_sign()):
                u = (t if sign == 1 else -t).args[0]
                return e - one - t + sign * expm1(u)
    return None


def _nonnegative_base(b: sp.Basic) -> bool:
    """``|u|``, or a maximum with a non-negative argument (``max(u, 0)``): a base that is 0
    where its power's derivative is 0/0."""
    return isinstance(b, sp.Abs) or (isinstance(b, sp.Max) and any(a.is_nonnegative for a in b.args))


def _merge_abs_powers(expr: sp.Basic) -> sp.Basic:
    """Products of powers of one ``|u|`` (or ``max(u, 0)``) as one power: SymPy's derivative of
    ``|u|^q`` is ``q·|u|^q·sign(u)/|u|``, 0/0 at u = 0 to the balls at every precision (a mean
    power error at y = p), where ``q·|u|^(q - 1)·sign(u)`` is the number (0 for q > 1); likewise
    ``max(u, 0)^q`` (an asymmetric loss's clipped probability, 0 below its clip). An identity
    for u ≠ 0."""

    def merge(m: sp.Mul) -> sp.Basic:
        powers: dict = {}
        rest = []
        for f in m.args:
            b, e = f.as_base_exp()
            if _nonnegative_base(b):
                powers[b] = powers.get(b, 0) + e
            else:
                rest.append(f)
        return sp.Mul(*rest, *[b**e for b, e in powers.items()])

    def several(e: sp.Basic) -> bool:
        if not isinstance(e, sp.Mul):
            return False
        bases = [f.as_base_exp()[0] for f in e.args]
        return any(_nonnegative_base(b) and bases.count(b) > 1 for b in bases)

    return expr.replace(several, merge)


def _identities(expr: sp.Basic) -> sp.Basic:
    expr = expr.replace(lambda e: _expm1_pair(e) is not None, _expm1_pair)
    expr = expr.replace(lambda e: _one_minus_ratio(e) is not None, _one_minus_ratio)
    expr = expr.replace(lambda e: isinstance(e, sp.log) and _log_ratio(e) is not None, _log_ratio)
    # log(1 + a) = log1p(a)
    return expr.replace(
        lambda e: isinstance(e, sp.log) and isinstance(e.args[0], sp.Add) and sp.S.One in e.args[0].args,
        lambda e: log1p(e.args[0] - 1),
    )


def _scale(f, x) -> mpmath.mpf:
    """The size below which ∂f/∂x is negligible in κ = Σ|x·∂f/∂x|/|f|: |f|/|x| (inf for x = 0,
    whose term is 0 whatever ∂f/∂x; 1 for a non-finite or zero f). An entry within 2^-40 of it
    of 0 contributes less than 2^-40 to κ, whose bound allows 4κ ulps on top of 4 or 8."""
    x = abs(mpmath.mpf(x))
    f = abs(mpmath.mpf(f)) if mpmath.isfinite(f) else mpmath.mpf(0)
    if x == 0:
        return mpmath.inf
    if f == 0:
        return mpmath.mpf(1)
    return f / x


#: An output of :meth:`RowReference._approx` is known to a few digits where its interval's width
#: is at most this share of its larger magnitude.
_FEW = mpmath.mpf(2) ** -10

#: The share of a κ's pinned terms below which its terms not yet pinned are 0
#: (:meth:`RowReference._approx`): 2^-12, below the 2^-10 each term is known to.
KAPPA_REST = mpmath.mpf(2) ** -12


def _negligible_rest(res: list, bounds: dict, weights: Sequence, group: int) -> None:
    """Set to 0 the outputs of each group (``group`` consecutive outputs, one κ) still None in
    ``res`` whose terms' bounds (``weights[i]``·``bounds[i]``; an output without a finite bound
    stops its group) sum to at most :data:`KAPPA_REST` of the group's pinned terms."""
    for g0 in range(0, len(res), group):
        idx = range(g0, min(g0 + group, len(res)))
        open_ = [i for i in idx if res[i] is None]
        if not open_ or any(i not in bounds for i in open_):
            continue
        pinned = sum((weights[i] * abs(res[i]) for i in idx if res[i] is not None), mpmath.mpf(0))
        rest = sum((weights[i] * bounds[i] for i in open_), mpmath.mpf(0))
        if pinned > 0 and rest <= KAPPA_REST * pinned:
            for i in open_:
                res[i] = mpmath.mpf(0)


def _from_magnitudes(inputs) -> tuple[int, ...]:
    """The precisions :meth:`RowReference._approx` tries for κ at ``inputs``: the first, then from
    the least one at or above the largest binary exponent of a float input (|x| = 2^E). A term
    x·∂f/∂x with |x| = 2^E beside terms near 1 is not resolved below about E bits where the two
    meet (a softmax row spanning 2^E), and the climb's evaluations between are spent; where they
    do not meet (an elementwise loss: each element's terms apart) the first precision resolves
    it. Logits of 1e230 beside 1e19 take two evaluations (80, 1280 bits) instead of five.
    Measured (2-core Zen 4, 2026-12-05, the default ``cesym verify``): starting at the exponent's
    precision outright took categorical focal from 44.0 to 36.7 configuration-seconds and binary
    focal, elementwise, from 55.5 to 64.5 (its rows resolve at 80 bits). Values, whose climb is
    short, start at the first. Stand-ins past any float (:mod:`cesym.verify.extended`, mpmath
    numbers) do not count."""
    e = 0
    for x in inputs:
        if type(x) is float and x != 0.0 and x - x == 0.0:
            e = max(e, abs(math.frexp(x)[1]))
    return PRECISIONS[:1] + tuple(p for p in PRECISIONS[1:] if p >= e or p == PRECISIONS[-1])


def _term(x, d) -> mpmath.mpf:
    """|x·∂f/∂x| in κ: 0 for x = 0 (a zero input is not perturbed relatively), whatever ∂f/∂x."""
    return mpmath.mpf(0) if x == 0 else abs(x * d)


def _ratio(num, den) -> float:
    if den == 0:
        return 0.0 if num == 0 else math.inf
    if not mpmath.isfinite(den):
        return 0.0
    return float(num / abs(den))
