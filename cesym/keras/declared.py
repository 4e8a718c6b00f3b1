r"""Keras's declared algorithm replayed in its dtype: values and TensorFlow's gradients, in NumPy,
each with a bound on the replay's distance from TensorFlow.

A derivation file declares what Keras computes (``Loss.keras``: its formula with its ε floors
and clips, op by op; by default the definition). :mod:`cesym.keras.model` encloses every value
that algorithm *can* return (intervals); this module computes the one it *does* return where
TensorFlow's arithmetic is plain IEEE: each ``+ - * /`` of two operands in the dtype, the row
reductions (``reduce_sum``/``reduce_mean`` summed left to right, ``/ n`` as a division), the
constants rounded to the dtype as TensorFlow makes them tensors, and for the gradient the ops
TensorFlow's autodiff runs backward (``Mul``: ``g·y``; ``RealDiv``: ``g/y`` and
``g·((-x/y)/y)``; ``Square``: ``g·(2x)``; ``Log``: ``g·reciprocal(x)``; ``Exp``: ``g·y``;
``Sigmoid``: ``g·y·(1 - y)``; ``Maximum``: ``g`` to the first operand where it is ``>=``;
``reduce_max``: ``g`` shared equally among the maxima; ``where``: ``g`` to the branch taken).

What the replay cannot know is bounded, per output, by ``δ`` (absolute, float64):

* ``exp``, ``log``, ``log1p``, ``expm1``, σ, ``pow``, ``tanh``, ``cosh``, rsqrt: NumPy's and
  TensorFlow's (Eigen's vectorised) implementations differ by up to :data:`TRANSCENDENTAL_ULPS`
  ulps of the result (each within a few ulps of the correctly rounded one), none at the points
  every libm gives exactly (exp(0) = cosh(0) = 1, log(1) = log1p(0) = expm1(0) = tanh(0) = 0);
* a sum or product of more than two operands (SymPy keeps no order; TensorFlow's row sums are
  Eigen's): ``(k - 1)·eps·Σ|terms|`` for k terms (each of the k - 1 roundings of either order
  within u of a partial sum); a row sum one term carries (the others and every δ below a
  quarter of its spacing) is that term in every order, within its own δ;
* an operand that differs by ``δ`` moves the result by ``|∂|·δ`` (first order) and one more
  rounding (an ulp of the result);
* a result that may be subnormal may be flushed to zero (TensorFlow's CPU kernels flush them);
* a branch (``where``, ``maximum``, ``reduce_max``) whose condition ``δ`` leaves undecided, and a
  result that is not finite where an input was uncertain: no bound (δ = inf).

Where δ is 0 the replay claims TensorFlow's output bit for bit; where it is finite, that Keras lies
within δ of it (:func:`cesym.keras.check.classify` then calls a deviation explained only when the
exact value lies outside). ``tests/test_keras_replay.py`` holds both against TensorFlow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from ..define.primitives import C as C_SYM
from ..define.primitives import MaxN, RowMax, RowSum, Rsqrt, Sigmoid, to_elementary

__all__ = ["replay_declared", "row_sum_ltr", "TRANSCENDENTAL_ULPS"]

#: NumPy's against TensorFlow's exp/log/σ/pow, in ulps of the result: each is within a few ulps of
#: the correctly rounded result (FIELD_NOTES: NumPy's SIMD float32 log <= 3.1 ulps; Eigen's float
#: exp/log/logistic are polynomial approximations of the same order), so they differ by at most
#: the sum; tests/test_keras_replay.py measures the distance against this.
TRANSCENDENTAL_ULPS = 8.0

#: TensorFlow's float32 ``reciprocal`` (the Log gradient's ``g·reciprocal(x)``) is not the
#: correctly rounded 1/x (measured here, TensorFlow 2.21 on AVX-512, 20000 x per binade): within
#: 2.5 ulps for |x| < 2^104 (4 allowed), then its accuracy falls (64 ulps at 2^108, 1.0e3 at 2^112, 4.6e3
#: from 2^116: a relative 2^-10.8), and from 2^126 it returns 0 where 1/x is still normal. Its
#: float64 reciprocal matched 1/x bit for bit in every binade. :meth:`_Walk.reciprocal_slack`.
RECIPROCAL_ULPS = 4.0

_INF = np.inf

#: exp(0) = cosh(0) = 1, log(1) = 0, log1p(0) = expm1(0) = tanh(0) = 0 in every libm (Eigen's
#: and NumPy's too): no allowance at an exact argument there (the softmax's top class:
#: exp(z_max - z_max) = 1, whose clip to 1 - ε is then decided).
_EXACT_AT = {sp.exp: 0.0, sp.log: 1.0, log1p: 0.0, expm1: 0.0, sp.tanh: 0.0, sp.cosh: 0.0}


def _order(roundings: int) -> int:
    """How many eps of the operands' magnitude two evaluations of one sum or product in different
    orders may differ by: 0 for one operation (a + b = b + a), else each of the ``roundings``
    of either order may err by u = eps/2 of a partial result, which its operands bound."""
    return roundings if roundings >= 2 else 0


def row_sum_ltr(a: np.ndarray) -> np.ndarray:
    """The sum of each row of ``a`` (rows, C), left to right in its dtype, keepdims."""
    s = a[:, 0:1].copy()
    for c in range(1, a.shape[1]):
        s = s + a[:, c : c + 1]
    return s


_ALGORITHMS: dict[int, tuple] = {}  # id(loss) -> (loss, expression, constants)


def _algorithm(loss) -> tuple[sp.Basic, dict]:
    """Keras's declared algorithm of ``loss`` as an expression of the row symbols (label, prediction),
    the parameters and C, with its decimal constants as Dummies (value: the float), so that SymPy
    folds none of them in binary64 (the replay rounds each to the dtype)."""
    got = _ALGORITHMS.get(id(loss))
    if got is None or got[0] is not loss:  # by identity; the entry holds the loss, so its id stays its own
        expr = loss.keras if loss.keras is not None else loss.value
        expr = to_elementary(expr.xreplace(loss.weight_definitions), keep=(Sigmoid,))
        floats = {f for f in expr.atoms(sp.Float) if not any(isinstance(p, sp.Pow) and p.exp == f for p in expr.atoms(sp.Pow))}
        consts = {f: sp.Dummy(f"const{i}") for i, f in enumerate(sorted(floats, key=float))}
        got = _ALGORITHMS[id(loss)] = (loss, expr.xreplace(consts), {d: float(f) for f, d in consts.items()})
    return got[1], got[2]


class _Walk:
    """One replay: forward values (memoised per node) and the backward pass, in ``dt``."""

    def __init__(self, dt, env: dict, n: int, rows: int):
        self.dt = dt
        self.env = env  # symbol -> (value array in dt, δ)
        self.n = n
        self.rows = rows
        self.eps = float(np.finfo(dt).eps)  # 2u: a rounding moves a result by at most eps·|result|
        self.tiny = float(np.finfo(dt).smallest_normal)
        self.memo: dict = {}

    # --- helpers ---------------------------------------------------------------------------------
    def ulp(self, v) -> np.ndarray:
        a = np.abs(np.asarray(v, dtype=self.dt))
        with np.errstate(invalid="ignore"):
            return np.where(np.isfinite(a), np.spacing(a).astype(np.float64), 0.0)

    def settle(self, v, d):
        """δ of a fresh result ``v``: flush-to-zero where it may be subnormal; where it is not
        finite, 0 if nothing was uncertain, else inf (TensorFlow may overflow where NumPy did not)."""
        v = np.asarray(v, dtype=self.dt)
        d = np.asarray(d, dtype=np.float64)
        av = np.abs(v).astype(np.float64)
        with np.errstate(invalid="ignore"):
            d = np.where((av < self.tiny) & (av > 0), np.maximum(d, av), d)
            d = np.where(np.isfinite(v) | np.isnan(v), d, np.where(d > 0, _INF, 0.0))
        return v, d

    def reciprocal_slack(self, x, r) -> np.ndarray:
        """How far TensorFlow's ``reciprocal(x)`` may lie from ``r = 1/x`` (see RECIPROCAL_ULPS)."""
        if self.dt is np.float64:
            return 0.0
        ax, ar = np.abs(np.asarray(x, dtype=np.float64)), np.abs(np.asarray(r, dtype=np.float64))
        return np.where(ax < 2.0**104, RECIPROCAL_ULPS * self.ulp(r), np.where(ax < 2.0**126, ar * 2.0**-10, ar))

    def row_sum_bound(self, x, d, s) -> np.ndarray:
        """δ of the row sum ``s`` (left to right) of ``x`` (rows, C) whose terms are δ-uncertain
        by ``d``: the propagated δ, an ulp for the rounding and (C - 1)·eps of the terms'
        magnitude for TensorFlow's other order; but where one term carries the row, the others
        with their δ below a quarter of its spacing and its own δ too, every order of TensorFlow's
        terms returns its top term, within that term's δ of ours: δ is that term's alone. (The
        others' magnitude is summed in float64, its own rounding allowed for: in float64 this
        rarely holds.)"""
        ax = np.abs(np.asarray(x)).astype(np.float64)
        dd = np.broadcast_to(np.asarray(d, dtype=np.float64), ax.shape)
        mag, din = np.sum(ax, axis=1, keepdims=True), np.sum(dd, axis=1, keepdims=True)
        standard = self.moved(s, din) + max(self.n - 1, 0) * self.eps * mag
        k = np.argmax(ax, axis=1)[:, None]
        top, dtop = np.take_along_axis(ax, k, axis=1), np.take_along_axis(dd, k, axis=1)
        with np.errstate(invalid="ignore", over="ignore"):
            total = mag + din
            rest = (total - top - dtop) + (self.n + 1) * 2.0**-52 * total
            quarter = 0.25 * np.spacing(top.astype(self.dt)).astype(np.float64)
            carried = (rest < quarter) & (dtop < quarter) & (np.asarray(s) == np.take_along_axis(np.asarray(x), k, axis=1))
        return np.where(carried, dtop, standard)

    def moved(self, v, din):
        """δ after one rounding of a result whose operands were δ-uncertain: the propagated part
        ``din`` plus an ulp of the result where ``din > 0``."""
        return din + np.where(din > 0, self.ulp(v), 0.0)

    # --- forward -------------------------------------------------------------------------------
    def val(self, e):
        if e not in self.memo:
            self.memo[e] = self.settle(*self._op(e))
        return self.memo[e]

    def _op(self, e):
        dt = self.dt
        if e in self.env:
            return self.env[e]
        if e == C_SYM:
            return dt(self.n), 0.0
        if e.is_Number:
            return dt(float(e)), 0.0
        if isinstance(e, sp.Add):
            return self._add(e)
        if isinstance(e, sp.Mul):
            return self._mul(e)
        if isinstance(e, sp.Pow):
            return self._pow(e)
        if isinstance(e, RowSum):
            x, d = (np.broadcast_to(a, (self.rows, self.n)) for a in self.val(e.args[0]))
            s = row_sum_ltr(x)
            return s, self.row_sum_bound(x, d, s)
        if isinstance(e, (RowMax, MaxN)):
            if isinstance(e, RowMax):
                x, d = (np.broadcast_to(a, (self.rows, self.n)) for a in self.val(e.args[0]))
                return np.max(x, axis=1, keepdims=True), np.max(d, axis=1, keepdims=True)
            vals = [self.val(a) for a in e.args]
            return functools.reduce(np.maximum, [v for v, _ in vals]), functools.reduce(np.maximum, [np.broadcast_to(d, np.shape(v)) for v, d in vals])
        if isinstance(e, (sp.Max, sp.Min)):
            vals = [self.val(a) for a in e.args]
            f = np.maximum if isinstance(e, sp.Max) else np.minimum
            return functools.reduce(f, [v for v, _ in vals]), functools.reduce(np.maximum, [np.asarray(d, dtype=np.float64) for _, d in vals])
        if isinstance(e, sp.Abs):
            v, d = self.val(e.args[0])
            return np.abs(v), d
        if isinstance(e, (sp.sign, sp.Heaviside)):
            v, d = self.val(e.args[0])
            out = np.sign(v) if isinstance(e, sp.sign) else (v > 0).astype(dt) + (v == 0) * dt(float(e.args[1]) if len(e.args) > 1 else 0.5)
            return out.astype(dt), np.where(np.abs(v).astype(np.float64) <= d, _INF, 0.0)
        if isinstance(e, sp.Piecewise):
            return self._piecewise(e)
        return self._transcendental(e)

    def _add(self, e):
        pos, neg = [], []
        for a in e.args:  # a - b as TensorFlow's Sub: the negated operand subtracted, not negated and added
            if isinstance(a, sp.Mul) and a.args[0] == -1:
                neg.append(sp.Mul(*a.args[1:]))
            elif a.is_Number and a < 0:
                neg.append(-a)
            else:
                pos.append(a)
        terms = [(self.val(a), 1) for a in pos] + [(self.val(a), -1) for a in neg]
        if not pos:  # -(a + b): the sum, negated (exact)
            terms[0] = ((-terms[0][0][0], terms[0][0][1]), 1)
        (out, d), _ = terms[0]
        mag = np.abs(np.asarray(out, dtype=np.float64))
        for (v, dv), s in terms[1:]:
            out = out + v if s > 0 else out - v
            d = d + dv
            mag = mag + np.abs(np.asarray(v, dtype=np.float64))
        slack = _order(len(terms) - 1) * self.eps * mag
        return out, self.moved(out, d) + slack

    def _factors(self, e) -> tuple[int, list, list]:
        """(sign, numerator factors, denominator factors) of a product, C's inverse a denominator."""
        sign, num, den = 1, [], []
        for a in e.args:
            if a == -1:
                sign = -sign
            elif isinstance(a, sp.Pow) and a.args[1].is_Integer and a.args[1] < 0:
                den.append(a.args[0] if a.args[1] == -1 else a.args[0] ** (-a.args[1]))
            elif a.is_Rational and not a.is_Integer and a.p in (1, -1):  # 1/2, -1/3: a division by q
                sign = sign * (1 if a.p > 0 else -1)
                den.append(sp.Integer(a.q))
            else:
                num.append(a)
        return sign, num, den

    def chain(self, vals: list, ordered: bool = False):
        """The product of ``vals`` ((value, δ) pairs) left to right, with its δ: first-order
        propagation, an ulp per rounding of uncertain operands and, unless the order is
        TensorFlow's own (``ordered``), ``(k - 2)·eps`` of the result for another association.
        A partial product that underflows or overflows where the exact one (long double) does
        not: TensorFlow's association may not, so no bound there (but where the exact result
        itself is below the normal range, both are within a flushed zero of it)."""
        out, d = vals[0]
        exact = np.abs(np.asarray(out, dtype=np.longdouble))
        lost = np.zeros(np.shape(out), bool)
        for v, dv in vals[1:]:
            d = d * np.abs(np.asarray(v, dtype=np.float64)) + dv * np.abs(np.asarray(out, dtype=np.float64))
            out = out * v
            d = self.moved(out, d)
            exact = exact * np.abs(np.asarray(v, dtype=np.longdouble))
            a = np.abs(np.asarray(out, dtype=np.float64))
            lost = lost | ((a < self.tiny) & (exact >= self.tiny)) | (~np.isfinite(a) & (exact <= float(np.finfo(self.dt).max)))
        slack = 0.0 if ordered else _order(len(vals) - 1) * self.eps * np.abs(np.asarray(out, dtype=np.float64))
        ex = exact.astype(np.float64)
        d = np.where(lost, np.where(ex < self.tiny, np.maximum(d, self.tiny), _INF), d + slack)
        return out, d

    def _product(self, parts):
        return self.chain([self.val(a) for a in parts])

    def _mul(self, e):
        sign, num, den = self._factors(e)
        if not num:
            num = [sp.Integer(1)]
        out, d = self._product(num)
        if den:
            b, db = self._product(den)
            q = out / b
            ab = np.abs(np.asarray(b, dtype=np.float64))
            with np.errstate(all="ignore"):
                dq = d / ab + np.abs(np.asarray(q, dtype=np.float64)) * db / ab
            rounds = len(num) - 1 + len(den) - 1 + 1
            out, d = q, self.moved(q, np.nan_to_num(dq, nan=_INF)) + _order(rounds) * self.eps * np.abs(np.asarray(q, dtype=np.float64))
        return (-out if sign < 0 else out), d

    def _pow(self, e):
        base, ex = e.args
        dt = self.dt
        b, db = self.val(base)
        fb = np.asarray(b, dtype=np.float64)
        if ex == 2:  # Square: x·x
            out = b * b
            return out, self.moved(out, 2 * np.abs(fb) * db)
        if ex == -1:
            out = dt(1) / b
            with np.errstate(all="ignore"):
                return out, self.moved(out, np.nan_to_num(db / fb**2, nan=_INF))
        if ex == sp.S.Half:
            out = np.sqrt(b)
            with np.errstate(all="ignore"):
                return out, self.moved(out, np.nan_to_num(db / (2 * np.sqrt(np.abs(fb))), nan=_INF))
        y, dy = self.val(ex)
        with np.errstate(all="ignore"):
            out = np.power(b, y)
            fy = np.asarray(y, dtype=np.float64)
            deriv = np.abs(fy * np.power(np.abs(fb), fy - 1))
            dd = np.nan_to_num(deriv * db, nan=_INF) + np.where(np.asarray(dy) > 0, _INF, 0.0)
        return out, dd + TRANSCENDENTAL_ULPS * self.ulp(out)

    def _transcendental(self, e):
        dt = self.dt
        x, dx = self.val(e.args[0])
        fx = np.asarray(x, dtype=np.float64)
        with np.errstate(all="ignore"):
            if e.func == sp.exp:
                out = np.exp(x)
                deriv = np.abs(np.asarray(out, dtype=np.float64))
            elif e.func == sp.log:
                out = np.log(x)
                deriv = 1 / np.abs(fx)
            elif e.func == log1p:
                out = np.log1p(x)
                deriv = 1 / np.abs(1 + fx)
            elif e.func == expm1:
                out = np.expm1(x)
                deriv = np.exp(fx)
            elif isinstance(e, Sigmoid):
                out = dt(1) / (dt(1) + np.exp(-x))
                s = np.asarray(out, dtype=np.float64)
                deriv = s * (1 - s)
            elif isinstance(e, Rsqrt):
                out = dt(1) / np.sqrt(x)
                deriv = 0.5 * np.abs(fx) ** -1.5
            elif e.func == sp.tanh:
                out = np.tanh(x)
                deriv = 1 - np.asarray(out, dtype=np.float64) ** 2
            elif e.func == sp.cosh:
                out = np.cosh(x)
                deriv = np.abs(np.sinh(fx))
            else:
                raise ValueError(f"no replay of {e.func.__name__} in Keras's declared algorithm")
            d = np.nan_to_num(deriv * dx, nan=_INF)
            at = _EXACT_AT.get(e.func)
            exact = np.zeros(np.shape(out), bool) if at is None else np.broadcast_to((fx == at) & (np.asarray(dx) == 0), np.shape(out))
        return out, d + np.where(exact, 0.0, TRANSCENDENTAL_ULPS * self.ulp(out))

    def _decided(self, c) -> tuple[np.ndarray, np.ndarray]:
        """(condition, undecided) of a relational: undecided where the operands' δ spans their gap."""
        (a, da), (b, db) = self.val(c.lhs), self.val(c.rhs)
        ops = {sp.LessThan: np.less_equal, sp.StrictLessThan: np.less, sp.GreaterThan: np.greater_equal, sp.StrictGreaterThan: np.greater}
        if type(c) not in ops:
            raise ValueError(f"no replay of the condition {c} in Keras's declared algorithm")
        gap = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
        return ops[type(c)](a, b), (np.asarray(da) + np.asarray(db) > 0) & (gap <= np.asarray(da) + np.asarray(db))

    def branches(self, e) -> tuple[list, np.ndarray]:
        """The selection mask of each piece of a Piecewise (first true condition) and where the
        selection is undecided."""
        taken = np.zeros((), bool)
        masks, undecided = [], np.zeros((), bool)
        for _, c in e.args:
            if c is sp.true:
                cond, und = np.ones((), bool), np.zeros((), bool)
            else:
                cond, und = self._decided(c)
            masks.append(cond & ~taken)
            undecided = undecided | (und & ~taken)
            taken = taken | cond
        return masks, undecided

    def _piecewise(self, e):
        masks, undecided = self.branches(e)
        vals = [self.val(v) for v, _ in e.args]
        out = np.select(masks, [v for v, _ in vals], default=np.nan).astype(self.dt)
        d = np.select(masks, [np.broadcast_to(d, np.shape(out)) for _, d in vals], default=_INF)
        return out, np.where(undecided, _INF, d)

    # --- backward --------------------------------------------------------------------------------
    def grad(self, e, g, dg, adj: dict) -> None:
        """Add ``g`` (δ ``dg``) times d(e)/d(input) into ``adj`` for every input below ``e``, by
        TensorFlow's gradient ops."""
        dt = self.dt
        if e.is_Number or e == C_SYM or (e in self.env and np.ndim(self.env[e][0]) == 0):
            return  # constants and parameters: no gradient asked for
        if isinstance(e, (sp.Symbol, sp.Dummy)) or not e.args:
            adj.setdefault(e, []).append((g, dg))
            return
        if np.shape(self.val(e)[0]) != np.shape(g) and np.ndim(g) == 2 and np.shape(g)[1] > 1:
            g, dg = self.unbroadcast(g, dg)
        if isinstance(e, sp.Add):
            for a in e.args:
                if isinstance(a, sp.Mul) and a.args[0] == -1:
                    self.grad(sp.Mul(*a.args[1:]), -g, dg, adj)
                else:
                    self.grad(a, g, dg, adj)
            return
        if isinstance(e, sp.Mul):
            self._mul_grad(e, g, dg, adj)
            return
        if isinstance(e, RowSum):  # Sum's gradient: g broadcast to the row
            self.grad(e.args[0], np.broadcast_to(g, (self.rows, self.n)), np.broadcast_to(dg, (self.rows, self.n)), adj)
            return
        if isinstance(e, RowMax):  # reduce_max: g shared equally among the maxima
            x, dx = (np.broadcast_to(a, (self.rows, self.n)) for a in self.val(e.args[0]))
            m, _ = self.val(e)
            top = x == m
            count = np.sum(top, axis=1, keepdims=True).astype(dt)
            share = np.where(top, g / count, dt(0))
            near = (np.asarray(dx) > 0) & (np.abs(x.astype(np.float64) - np.asarray(m, dtype=np.float64)) <= 2 * np.max(dx, axis=1, keepdims=True))
            undecided = np.any(near & ~top, axis=1, keepdims=True)
            self.grad(e.args[0], share, np.where(undecided, _INF, np.where(top, dg, 0.0)), adj)
            return
        if isinstance(e, (sp.Max, sp.Min, MaxN)):
            self._select_grad(e, g, dg, adj)
            return
        if isinstance(e, sp.Piecewise):
            masks, undecided = self.branches(e)
            for (v, _), mask in zip(e.args, masks):
                part = np.where(mask, g, dt(0))
                self.grad(v, part, np.where(undecided, _INF, np.where(mask, dg, 0.0)), adj)
            return
        if isinstance(e, (sp.sign, sp.Heaviside)):
            return
        if isinstance(e, sp.Pow):
            self._pow_grad(e, g, dg, adj)
            return
        x = e.args[0]
        xv, dx = self.val(x)
        y, dy = self.val(e)
        fg = np.abs(np.asarray(g, dtype=np.float64))
        with np.errstate(all="ignore"):
            if e.func == sp.exp:  # g·y
                out, dd = g * y, dg * np.abs(np.asarray(y, dtype=np.float64)) + fg * dy
            elif e.func == sp.log:  # g·reciprocal(x)
                r = dt(1) / xv
                fr = np.abs(np.asarray(r, dtype=np.float64))
                out, dd = g * r, dg * fr + fg * (self.moved(r, dx * fr**2) + self.reciprocal_slack(xv, r))
            elif e.func == log1p:  # g·reciprocal(1 + x)
                r = dt(1) / (dt(1) + xv)
                fr = np.abs(np.asarray(r, dtype=np.float64))
                out, dd = g * r, dg * fr + fg * (self.moved(r, dx * fr**2 + self.ulp(dt(1) + xv) * fr**2) + self.reciprocal_slack(dt(1) + xv, r))
            elif e.func == expm1:  # g·exp(x)
                ex = np.exp(xv)
                fe = np.abs(np.asarray(ex, dtype=np.float64))
                out, dd = g * ex, dg * fe + fg * (fe * dx + TRANSCENDENTAL_ULPS * self.ulp(ex))
            elif isinstance(e, sp.Abs):  # g·sign(x)
                s = np.sign(xv)
                near0 = (np.abs(np.asarray(xv, dtype=np.float64)) <= dx) & (np.asarray(dx) > 0)  # sign undecided
                out, dd = g * s, np.where(near0, _INF, dg)
            elif isinstance(e, Sigmoid):  # SigmoidGrad: g·y·(1 - y)
                one_y = dt(1) - y
                out = g * y * one_y
                fy, f1 = np.abs(np.asarray(y, dtype=np.float64)), np.abs(np.asarray(one_y, dtype=np.float64))
                dd = dg * fy * f1 + fg * dy * (fy + f1) + self.eps * 2 * np.abs(np.asarray(out, dtype=np.float64))
            elif isinstance(e, Rsqrt):  # RsqrtGrad, in Eigen's order: (((-0.5·g)·y)·y)·y
                out, dd = self.chain([(dt(-0.5) * g, 0.5 * dg), (y, dy), (y, dy), (y, dy)], ordered=True)
            elif e.func == sp.tanh:  # TanhGrad: g·(1 - y²)
                d1 = dt(1) - y * y
                fy = np.abs(np.asarray(y, dtype=np.float64))
                out = g * d1
                dd = dg * np.abs(np.asarray(d1, dtype=np.float64)) + fg * (2 * fy * dy + self.ulp(d1)) + self.ulp(out)
            elif e.func == sp.cosh:  # g·sinh(x)
                sh = np.sinh(xv)
                fs = np.abs(np.asarray(sh, dtype=np.float64))
                out, dd = g * sh, dg * fs + fg * (np.cosh(np.asarray(xv, dtype=np.float64)) * dx + TRANSCENDENTAL_ULPS * self.ulp(sh))
            else:
                raise ValueError(f"no gradient replay of {e.func.__name__} in Keras's declared algorithm")
        out, dd = self.settle(out, self.moved(out, np.nan_to_num(dd, nan=_INF)))
        self.grad(x, out, dd, adj)

    def unbroadcast(self, g, dg):
        """A row-level operand's gradient from an elementwise one: summed over the row (TensorFlow's
        broadcasting gradient, a reduce_sum in Eigen's order: (C - 1)·eps·Σ|g| for the order)."""
        g = np.asarray(g)
        s = row_sum_ltr(g)
        d = np.sum(np.broadcast_to(dg, g.shape), axis=1, keepdims=True)
        mag = np.sum(np.abs(g.astype(np.float64)), axis=1, keepdims=True)
        return self.settle(s, self.moved(s, d) + (g.shape[1] - 1) * self.eps * mag)

    def _mul_grad(self, e, g, dg, adj: dict) -> None:
        """Mul: each factor gets g times the product of the others (``g·y`` for two); a division
        ``a/b`` (RealDiv) gives ``a`` the gradient ``g/b`` and ``b`` the gradient ``g·((-a/b)/b)``."""
        dt = self.dt
        sign, num, den = self._factors(e)
        if sign < 0:
            g = -g
        fg = np.abs(np.asarray(g, dtype=np.float64))
        live = [a for a in num if not a.is_Number]
        for i, a in enumerate(num):
            if a.is_Number:
                continue
            others = num[:i] + num[i + 1 :]
            if others:
                o, do = self._product(others)
                out = g * o
                dd = dg * np.abs(np.asarray(o, dtype=np.float64)) + fg * do
            else:
                out, dd = g, dg
            if den:
                b, db = self._product(den)
                fb = np.abs(np.asarray(b, dtype=np.float64))
                with np.errstate(all="ignore"):
                    q = out / b
                    dd = dd / fb + np.abs(np.asarray(q, dtype=np.float64)) * db / fb
                out = q
            rounds = len(live) - 1 + (1 if den else 0) + max(len(den) - 1, 0)
            out, dd = self.settle(out, self.moved(out, np.nan_to_num(dd, nan=_INF)) + _order(rounds) * self.eps * np.abs(np.asarray(out, dtype=np.float64)))
            self.grad(a, out, dd, adj)
        if not den:
            return
        n_val, dn = self._product(num) if num else (dt(1), 0.0)
        b, db = self._product(den)
        fb = np.abs(np.asarray(b, dtype=np.float64))
        with np.errstate(all="ignore"):
            t = (-n_val / b) / b  # RealDiv's gradient for the divisor: g·((-x/y)/y)
            ft = np.abs(np.asarray(t, dtype=np.float64))
            dt_ = np.nan_to_num(dn / fb**2 + 2 * ft * db / fb, nan=_INF) + 2 * self.ulp(t)
            out = g * t
            dd = dg * ft + fg * dt_
        for j, a in enumerate(den):
            if a.is_Number or a == C_SYM:
                continue
            others = den[:j] + den[j + 1 :]
            o, do = self._product(others) if others else (dt(1), 0.0)
            part = out * o
            dpart = self.moved(part, dd * np.abs(np.asarray(o, dtype=np.float64)) + np.abs(np.asarray(out, dtype=np.float64)) * do)
            self.grad(a, *self.settle(part, np.nan_to_num(dpart, nan=_INF)), adj)

    def _pow_grad(self, e, g, dg, adj: dict) -> None:
        dt = self.dt
        base, ex = e.args
        b, db = self.val(base)
        fb = np.abs(np.asarray(b, dtype=np.float64))
        fg = np.abs(np.asarray(g, dtype=np.float64))
        with np.errstate(all="ignore"):
            if ex == 2:  # Square: g·(2x)
                out = g * (dt(2) * b)
                dd = dg * 2 * fb + fg * 2 * db
            elif ex == -1:  # Reciprocal: -g·y·y
                y, dy = self.val(e)
                fy = np.abs(np.asarray(y, dtype=np.float64))
                out = -g * y * y
                dd = dg * fy**2 + fg * 2 * fy * dy + 2 * self.eps * np.abs(np.asarray(out, dtype=np.float64))
            elif ex == sp.S.Half:  # SqrtGrad: 0.5·g/y
                y, dy = self.val(e)
                fy = np.abs(np.asarray(y, dtype=np.float64))
                out = dt(0.5) * g / y
                dd = dg * 0.5 / fy + fg * 0.5 * dy / fy**2 + self.eps * np.abs(np.asarray(out, dtype=np.float64))
            else:  # Pow: g·y·x^(y - 1)
                y, dy = self.val(ex)
                p = np.power(b, y - dt(1))
                fp = np.abs(np.asarray(p, dtype=np.float64))
                fy = np.abs(np.asarray(y, dtype=np.float64))
                out = g * y * p
                dp = np.nan_to_num(fy * np.abs(np.asarray(y, dtype=np.float64) - 1) * np.power(fb, np.asarray(y, dtype=np.float64) - 2) * db, nan=_INF)
                dd = dg * fy * fp + fg * fy * (dp + TRANSCENDENTAL_ULPS * self.ulp(p)) + np.where(np.asarray(dy) > 0, _INF, 0.0) + self.eps * np.abs(np.asarray(out, dtype=np.float64))
        out, dd = self.settle(out, self.moved(out, np.nan_to_num(dd, nan=_INF)))
        self.grad(base, out, dd, adj)

    def _select_grad(self, e, g, dg, adj: dict) -> None:
        """Maximum/Minimum: g to the first operand where it is taken (>= / <=), else to the second;
        MaxN (an expanded reduce_max): shared equally among the maxima; undecided (operands within
        their δ of each other, ties included: which operand TensorFlow sees first is Keras's
        code's order, not SymPy's): no bound."""
        dt = self.dt
        vals = [self.val(a) for a in e.args]
        if isinstance(e, MaxN):
            m, _ = self.val(e)
            tops = [v == m for v, _ in vals]
            count = functools.reduce(np.add, [t.astype(dt) for t in tops])
            dmax = functools.reduce(np.maximum, [np.asarray(d, dtype=np.float64) for _, d in vals])
            for a, (v, dv), top in zip(e.args, vals, tops):
                near = np.abs(np.asarray(v, dtype=np.float64) - np.asarray(m, dtype=np.float64)) <= 2 * dmax
                und = near & ((dmax > 0) | (count > 1))
                self.grad(a, np.where(top, g / count, dt(0)), np.where(und, _INF, np.where(top, dg, 0.0)), adj)
            return
        if len(vals) != 2:
            raise ValueError("Max/Min of more than two operands in Keras's declared algorithm")
        (a, da), (b, db) = vals
        first = (a >= b) if isinstance(e, sp.Max) else (a <= b)
        gap = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
        und = gap <= np.asarray(da) + np.asarray(db)  # ties included
        for arg, mask in ((e.args[0], first), (e.args[1], ~first)):
            if arg.is_Number or (arg in self.env and not isinstance(arg, sp.Symbol)):
                continue
            self.grad(arg, np.where(mask, g, dt(0)), np.where(und, _INF, np.where(mask, dg, 0.0)), adj)

    def gather(self, adj: dict, sym) -> tuple[np.ndarray, np.ndarray]:
        """The gradient of ``sym`` (rows, C): its contributions added (AddN: any order, so the
        order's roundings enter δ beyond two)."""
        parts = adj.get(sym, [])
        shape = (self.rows, self.n)
        if not parts:
            return np.zeros(shape, self.dt), np.zeros(shape)
        g, d = (np.broadcast_to(a, shape) for a in parts[0])
        g, d = np.array(g, dtype=self.dt), np.array(d, dtype=np.float64)
        mag = np.abs(g.astype(np.float64))
        for v, dv in parts[1:]:
            g = g + v
            d = self.moved(g, d + dv)
            mag = mag + np.abs(np.asarray(v, dtype=np.float64))
        d = d + _order(len(parts) - 1) * self.eps * mag
        return self.settle(g, d)


def replay_declared(loss, labels, pred: np.ndarray, params: dict, row_level: bool, seed: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Keras's declared algorithm of ``loss`` (:class:`cesym.define.loss.Loss`) on a batch: ``pred``
    (rows, C) in the dtype, ``labels`` dense (rows, C) or None, ``params`` by name. Elementwise
    losses (``row_level`` False) are replayed per element (rows × C rows of one). Returns
    (value, its bound, gradient, its bound): the value per row (rows,) (per element (rows, C)
    where elementwise), the gradient (rows, C), each bound absolute (float64). ``seed``: the
    upstream gradient of each row's value, in the dtype (rows,), where a loss class's reduction
    feeds the backward pass (:func:`cesym.keras.replay.class_seeds`); default 1."""
    pred = np.asarray(pred)
    dt = pred.dtype.type
    rows, n = pred.shape
    if not row_level:
        per_element = None if seed is None else np.repeat(np.asarray(seed, dtype=dt), n)  # each element's value has its row's seed
        out = replay_declared(loss, None if labels is None else np.asarray(labels).reshape(-1, 1), pred.reshape(-1, 1), params, True, per_element)
        return tuple(a.reshape(rows, n) for a in out)
    expr, consts = _algorithm(loss)
    env: dict = {}
    for d, f in consts.items():
        env[d] = (dt(f), 0.0)
    for q in loss.params:
        env[q] = (dt(float(params[q.name])), 0.0)
    tiny = float(np.finfo(dt).smallest_normal)

    def leaf(a):  # a subnormal input: TensorFlow's kernels may read it as 0
        a = np.asarray(a, dtype=dt)
        fa = np.abs(a.astype(np.float64))
        return a, np.where((fa > 0) & (fa < tiny), fa, 0.0)

    env[loss.prediction] = leaf(pred)
    if loss.label is not None:
        env[loss.label] = leaf(np.asarray(labels, dtype=dt))
    w = _Walk(dt, env, n, rows)
    with np.errstate(all="ignore"):
        v, dv = w.val(expr)
        v, dv = (np.broadcast_to(a, (rows, 1))[:, 0] for a in (v, dv))
        adj: dict = {}
        top = np.ones((rows, 1), dt) if seed is None else np.asarray(seed, dtype=dt).reshape(rows, 1)
        w.grad(expr, top, np.zeros((rows, 1)), adj)
        g, dg = w.gather(adj, loss.prediction)
    return np.array(v), np.array(dv, dtype=np.float64), g, dg
