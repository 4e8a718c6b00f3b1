r"""A model of Keras 3's own algorithm, with every rounding it may commit, in interval arithmetic.

What Keras 3.15 (TensorFlow backend) computes, step by step, for each loss (function forms):

* ``binary_crossentropy``, probabilities: ``q = clip(p, ε, 1-ε)``; ``-(t·log q + (1-t)·log(1-q))``;
  mean over ``axis``. Logits: ``tf.nn.sigmoid_cross_entropy_with_logits`` =
  ``max(x, 0) - x·t + log1p(exp(-|x|))``, mean over ``axis``.
* ``categorical_crossentropy``, probabilities: ``r = p/Σp`` (renormalise), ``q = clip(r)``,
  ``-Σ t·log q``. Logits: the fused softmax op: ``m = max z``, ``s = z - m``,
  ``loss = Σ_c t_c (log Σ e^{s} - s_c)`` and, as its gradient, ``softmax(z) - t`` — which
  assumes labels summing to 1.
* ``sparse_categorical_crossentropy``, probabilities: ``q = clip(p)`` then the sparse softmax op on
  ``log q``: ``-log(q_k/Σq)`` (renormalised *after* clipping). Logits: the sparse softmax op.
* any other loss: the algorithm its derivation file declares (``Loss.keras``: Keras's own
  formula, ε floors and clips as ``Max``/``Min``; by default the definition itself), op by op.

``ε = 1e-7`` cast to the input's dtype (float32: ``1-ε`` is ``1 - 2**-23``); ``tf.clip_by_value``
passes the gradient where ``ε <= x <= 1-ε``, else 0. Gradients of the probability paths are
TensorFlow's autodiff of those steps.

Each step is evaluated in :mod:`mpmath.iv` from the exact inputs and its result widened by the
rounding it may commit: a relative ``u`` (2**-24 or 2**-53) per ``+ - * /``, ``4u`` per exp/log
(TensorFlow's vectorised float32 exp and log are not correctly rounded), ``(n-1)u·Σ|x|`` for a sum
of ``n`` terms in any order, and 0 joined in wherever a result may be subnormal (TensorFlow's CPU
kernels flush subnormals to zero). The resulting interval holds every value Keras's algorithm
can return on these inputs: a Keras output inside it (to within an ulp) deviates from the
mathematics *because of that algorithm* (explained); one outside is unexplained.

``upstream``: a loss class (``keras.losses.BinaryCrossentropy`` …) seeds the backward pass of each
sample with its weight times the reduction's factor, ``U = fl(fl(1/B)·w)`` for
'sum_over_batch_size', instead of 1. With ``upstream`` the gradient follows TensorFlow's backward
ops one by one (``Mean``: ``U/n``; ``Mul``: ``grad·y``; ``Log``: ``grad·reciprocal(x)``; ``Log1p``:
``grad·reciprocal(1 + x)``; ``Exp``: ``grad·exp(x)``; the fused softmax ops: ``U·(softmax - y)``;
``RealDiv``: ``grad/y`` and ``grad·((-x/y)/y)``; gradients of a tensor with several consumers
added), each a rounding, because a seed other than 1 makes roundings of terms that then cancel
(``-t/q + (1-t)/(1-q)``) matter where a seed of 1 leaves them exact.
"""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
from mpmath.libmp import mpf_gt, mpf_lt

from ..verify.registry import KernelCase

__all__ = ["EPSILON", "bounds", "envelope", "contains", "clip_edges", "CLIP_EDGES_NOTE"]

EPSILON = 1e-7
iv = mpmath.iv


def _ends(x) -> tuple[mpmath.mpf, mpmath.mpf]:
    """The end points of an interval (or a number) as exact mpf numbers."""
    if not hasattr(x, "_mpi_"):
        x = iv.mpf(x)
    a, b = x._mpi_
    return mpmath.mp.make_mpf(a), mpmath.mp.make_mpf(b)


def bounds(dtype) -> tuple[float, float]:
    """The clip bounds as Keras casts them to ``dtype``."""
    dt = np.dtype(dtype).type
    return float(dt(EPSILON)), float(dt(1.0 - EPSILON))


class _Rounding:
    """Interval operations widened by one rounding each (the standard model of float arithmetic)."""

    def __init__(self, dtype):
        fi = np.finfo(dtype)
        self.single = np.dtype(dtype) == np.float32
        self.u = mpmath.mpf(float(fi.eps)) / 2
        self.tiny = mpmath.mpf(float(fi.smallest_normal))
        self.fmax = mpmath.mpf(float(fi.max))
        self._tiny_raw, self._neg_tiny_raw = self.tiny._mpf_, (-self.tiny)._mpf_
        self._factors: dict[int, object] = {}

    def _hull0(self, x):
        if not hasattr(x, "_mpi_"):
            x = iv.mpf(x)
        a, b = x._mpi_  # raw end points, compared without making numbers of them
        if mpf_gt(b, self._neg_tiny_raw) and mpf_lt(a, self._tiny_raw):  # may be subnormal: flushed to zero
            lo, hi = _ends(x)
            return iv.mpf([min(lo, 0), max(hi, 0)])
        return x

    def r(self, x, k: int = 1):
        """``x`` with a relative rounding error of ``k·u`` (and flush-to-zero) joined in."""
        factor = self._factors.get(k)
        if factor is None:  # [1 - k·u, 1 + k·u], exact (1 + u is not a 53-bit number: 300 bits)
            with mpmath.workprec(300):
                factor = self._factors[k] = iv.mpf([1 - k * self.u, 1 + k * self.u])
        return self._hull0(x * factor)

    def add(self, a, b):
        return self.r(a + b)

    def sub(self, a, b):
        return self.r(a - b)

    def mul(self, a, b):
        return self.r(a * b)

    def div(self, a, b):
        return self.r(a / b)

    def recip(self, a):
        """TensorFlow's ``Reciprocal`` (the gradient of ``Log``): float64 correctly rounded;
        float32 vectorised within 3 ulps for |x| < 2^103, then off by up to 5e3 ulps (measured:
        16 at 2^106, 1e3 at 2^112, 4.9e3 at 2^120: relative 2^-10 bounds it) and anywhere in
        [0, 1/x] once 1/x nears the least normal (|x| >= 2^125: 8.4e6 ulps at 2^126)."""
        if not self.single:
            return self.r(iv.mpf(1) / a)
        lo, hi = _ends(a)
        mag = max(abs(lo), abs(hi))
        q = iv.mpf(1) / a
        if mag < mpmath.ldexp(1, 103):
            return self.r(q, 3)
        if mag < mpmath.ldexp(1, 125) and (lo > 0 or hi < 0):
            with mpmath.workprec(300):
                return self._hull0(q * iv.mpf([1 - mpmath.ldexp(1, -10), 1 + mpmath.ldexp(1, -10)]))
        qa, qb = _ends(q)
        return iv.mpf([min(qa, 0) * 2, max(qb, 0) * 2])

    def const(self, c: float):
        """A Python float as TensorFlow makes it a tensor of the dtype: rounded to nearest
        (float32: ``1 - 1e-7`` is ``1 - 2**-23``)."""
        return iv.mpf(float((np.float32 if self.single else np.float64)(c)))

    def pow(self, b, e):
        """``Pow`` of a non-negative base (TensorFlow's pow: within 1.5 ulps in float32 and 2 in
        float64, measured; 6u bounds it), monotone in the base: 0^e is 0 for e > 0, 1 for e = 0
        and inf for e < 0. A base interval reaching below 0 by rounding is cut at 0 (Keras's
        bases, 1 - p_t, are not negative; a NaN of a negative one stays unexplained)."""
        lo, hi = _ends(b)
        elo, ehi = _ends(e)
        lo = max(lo, mpmath.mpf(0))
        hi = max(hi, mpmath.mpf(0))

        def p(x, y):
            if x == 0:
                return mpmath.mpf(0) if y > 0 else (mpmath.mpf(1) if y == 0 else mpmath.inf)
            return mpmath.power(x, y)

        with mpmath.workprec(iv.prec):
            vals = [p(x, y) for x in (lo, hi) for y in (elo, ehi)]
            out = iv.mpf([min(vals), max(vals)])
        return self.r(out, 6)

    def sigmoid(self, a):
        """TensorFlow's ``Sigmoid``: measured within 6.2 ulps in float32 (6·10^6 points in
        [-120, 120]; Eigen's rational approximation) and 2.1 ulps in float64; results below the
        least normal are 0 (flushed). Bounded by 16u and 6u relative (8 and 3 ulps)."""
        return self.r(1 / (1 + iv.exp(-a)), 16 if self.single else 6)

    def exp(self, a):
        return self.r(iv.exp(a), 4)

    def log(self, a):
        return self.r(iv.log(a), 4)

    def log1p(self, a):
        return self.r(iv.log1p(a), 4)

    def gsum(self, xs):
        """A sum of n terms in any order (any summation tree, with flush-to-zero): exact sum
        ± γ_{n-1}·Σ|x_i| ± (n-1)·tiny, γ_k = k·u/(1 - k·u) (Higham, *Accuracy and Stability*, §4.2;
        each term takes part in at most n-1 additions; a flushed partial sum moves it by < tiny)."""
        s = iv.mpf(0)
        mag = mpmath.mpf(0)
        for x in xs:
            s = s + x
            a, b = _ends(x)
            mag += max(abs(a), abs(b))
        k = len(xs) - 1
        with mpmath.workprec(300):
            w = k * self.u / (1 - k * self.u) * mag + k * self.tiny
        return self._hull0(s + iv.mpf([-w, w]))

    def fsum_ends(self, xs):
        """A sum of n terms in any order, bounded end by end: each term's share of the error,
        (n-1)·u·|x_i|, is taken at the end it moves (x - k·u·|x| rises with x), so a term whose
        interval spans orders of magnitude does not widen the sum by its largest end."""
        k = len(xs) - 1
        with mpmath.workprec(300):
            lo = mpmath.fsum(a - k * self.u * abs(a) for a, _ in map(_ends, xs))
            hi = mpmath.fsum(b + k * self.u * abs(b) for _, b in map(_ends, xs))
        return self._hull0(iv.mpf([lo, hi]))

    def fsum(self, xs):
        """A sum of n terms in any order: exact sum ± (n-1)·u·Σ|x_i|."""
        s = iv.mpf(0)
        mag = mpmath.mpf(0)
        for x in xs:
            s = s + x
            a, b = _ends(x)
            mag += max(abs(a), abs(b))
        w = (len(xs) - 1) * self.u * mag
        return self._hull0(s + iv.mpf([-w, w]))


def _clip(R, x, lo, hi):
    """clip_by_value of an interval and its gradient mask: 1 inside [lo, hi], 0 outside, and the
    interval [0, 1] where the rounded input may fall on either side of a bound."""
    a, b = _ends(x)
    if b < lo:
        return iv.mpf(lo), 0
    if a > hi:
        return iv.mpf(hi), 0
    if lo <= a and b <= hi:
        return x, 1
    return iv.mpf([max(a, lo), min(b, hi)]), iv.mpf([0, 1])


def envelope(case: KernelCase, labels, pred, params: dict, dtype, upstream=None):
    """Intervals holding Keras's value and each gradient element on one row (exact inputs).

    ``labels`` is a dense row (one-hot for sparse labels). Elementwise losses take rows of 1.
    ``upstream`` (an interval, or None for a seed of exactly 1): the gradient is that of
    ``upstream × loss`` as TensorFlow backpropagates it (the gradient of a weighted, reduced
    loss class; see the module's docstring). The value does not depend on it.

    Kept on disk by the ``cesym`` command with the reference's numbers
    (:mod:`cesym.verify.truthcache`): a second ``cesym verify`` on the same seed asks for the
    same rows, and the walk costs milliseconds a row (a sixth of a warm run's Keras work). The
    key holds the exact inputs (their bytes: -0.0 is not 0.0), the seed's ends, and a digest of
    this module's source, of the row expansion's and of Keras's algorithm for the loss
    (:func:`_model_digest`): a changed model is a new key, the reference's numbers stay.
    """
    ref = _keeper(case, len(pred))
    digest = None if ref is None else _model_digest(ref.loss, len(pred))
    if digest is None:
        return _envelope(case, labels, pred, params, dtype, upstream)
    key = (
        "keras model", digest, case.id, np.dtype(dtype).name,
        np.asarray(labels, dtype=np.float64).tobytes(), np.asarray(pred, dtype=np.float64).tobytes(),
        tuple(sorted((k, repr(v)) for k, v in params.items())), None if upstream is None else _portable(upstream),
    )
    value, grads = ref.kept(key, lambda: _raw_ends(*_envelope(case, labels, pred, params, dtype, upstream)))
    return _interval(value), [_interval(g) for g in grads]


def _keeper(case: KernelCase, n: int):
    """The reference whose disk cache keeps this row's envelope (None: the cache is off)."""
    from ..verify import truthcache

    if not truthcache.ENABLED:
        return None
    from ..verify.contract import definition, reference_for

    return reference_for(definition(case), n)


def _raw_ends(value, grads) -> tuple:
    """The envelope as mpmath's raw interval ends (:func:`_portable`)."""
    return _portable(value), [_portable(g) for g in grads]


def _portable(x) -> tuple:
    """An interval's raw ends, ``(sign, mantissa, exponent, bits)`` each, the mantissas as Python
    ints (not gmpy2's mpz, which mpmath uses where gmpy2 is installed): they pickle small and fast,
    and read back in a process without gmpy2."""
    return tuple((s, int(m), e, bc) for s, m, e, bc in iv.convert(x)._mpi_)


def _interval(ends: tuple):
    """The interval of :func:`_portable`'s ends, its mantissas in mpmath's integer type."""
    from mpmath.libmp import MPZ

    return iv.make_mpf(tuple((s, MPZ(m), e, bc) for s, m, e, bc in ends))


_DIGESTS: dict[tuple[int, int], str] = {}


def _model_digest(loss, n: int) -> str | None:
    """A digest of what the envelope of ``loss`` on rows of ``n`` is computed from: the sources of
    this module and of the row expansion it uses, and Keras's algorithm for the loss
    (:func:`_algorithm`: its expression and constants, its Dummy symbols by name, since their
    indices differ between processes). None where a source cannot be read."""
    key = (id(loss), n)
    if key not in _DIGESTS:
        import hashlib

        import sympy as sp

        from ..verify.codecache import _source_digest

        expr, labels, preds, consts = _algorithm(loss, n)  # (imports the row expansion's modules)
        sources = [_source_digest(m) for m in (__name__, "cesym.define.evaluate", "cesym.define.primitives")]
        if None in sources:
            return None
        h = hashlib.sha256("\0".join(sources).encode())
        named = {d: sp.Symbol(f"dummy {d.name}") for d in expr.atoms(sp.Dummy) | set(consts)}
        h.update(sp.srepr((expr.xreplace(named), labels, preds)).encode())
        h.update(repr(sorted((named[c].name, f) for c, f in consts.items())).encode())
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def _envelope(case: KernelCase, labels, pred, params: dict, dtype, upstream=None):
    R = _Rounding(dtype)
    lo, hi = bounds(dtype)
    old = iv.prec
    iv.prec = 200
    try:
        p = [iv.mpf(float(v)) for v in pred]
        y = [iv.mpf(float(v)) for v in labels]
        n = len(p)
        ls = float(params.get("label_smoothing", 0.0))
        k = case.kernel
        U = None if upstream is None else (upstream if hasattr(upstream, "_mpi_") else iv.mpf(upstream))
        if k == "binary_crossentropy":
            t = [R.add(R.mul(yc, iv.mpf(1 - ls)), iv.mpf(0.5 * ls)) if ls else yc for yc in y]
            if U is not None:  # Mean's gradient seeds every element with U/n
                G = R.div(U, iv.mpf(n))
                if case.keywords.get("from_logits"):
                    vals, grads = zip(*[_sigmoid_xent_seeded(R, tc, x, G) for tc, x in zip(t, p)])
                else:
                    vals, grads = zip(*[_bce_probs_seeded(R, tc, x, lo, hi, G) for tc, x in zip(t, p)])
                return R.div(R.fsum(list(vals)), iv.mpf(n)), list(grads)
            if case.keywords.get("from_logits"):
                vals, grads = zip(*[_sigmoid_xent(R, tc, x) for tc, x in zip(t, p)])
            else:
                vals, grads = zip(*[_bce_probs(R, tc, x, lo, hi) for tc, x in zip(t, p)])
            value = R.div(R.fsum(list(vals)), iv.mpf(n))
            return value, [R.div(g, iv.mpf(n)) for g in grads]
        if k == "sigmoid_cross_entropy_with_logits":
            v, g = _sigmoid_xent(R, y[0], p[0])
            return v, [g]
        if k in ("categorical_crossentropy", "softmax_cross_entropy_with_logits"):
            t = y
            if ls:
                t = [R.add(R.mul(yc, iv.mpf(1 - ls)), iv.mpf(ls / n)) for yc in y]
            if case.keywords.get("from_logits", True):
                return _softmax_xent(R, t, p, U)
            return _cce_probs(R, t, p, lo, hi, U)
        if k in ("sparse_categorical_crossentropy", "sparse_softmax_cross_entropy_with_logits"):
            if case.keywords.get("from_logits", True):
                return _softmax_xent(R, y, p, U)
            qs = [_clip(R, x, lo, hi) for x in p]
            logits = [R.log(q) for q, _ in qs]
            v, g = _softmax_xent(R, y, logits, U)
            if U is not None:  # Log's gradient: grad·reciprocal(q)
                return v, [R.mul(gc, R.div(iv.mpf(1), q)) * mask for gc, (q, mask) in zip(g, qs)]
            return v, [R.div(gc, q) * mask for gc, (q, mask) in zip(g, qs)]
        return _declared_algorithm(case, R, labels, pred, params, U)
    finally:
        iv.prec = old


# --- any other loss: Keras's algorithm as its derivation file declares it ---------------------------
#
# ``Loss.keras`` (default: the definition) is evaluated op by op with one rounding each, as
# Keras's TensorFlow ops compute it; the gradient is the exact derivative of that algorithm,
# evaluated the same way and widened by one more rounding per operation of the value
# (backpropagation runs the same operations in another order, each of them rounded).

_ALGORITHMS: dict[tuple[int, int], tuple] = {}


@functools.cache
def _inv_c():
    """The symbol of 1/C, a mean's 1/n (see :func:`_algorithm`)."""
    import sympy as sp

    return sp.Dummy("inverse_C", positive=True)


def constants(consts: dict, R, n: int) -> dict:
    """The walk's values of an algorithm's constants (:func:`_algorithm`) on a row of ``n``: each
    decimal constant rounded to the dtype, as TensorFlow makes it a tensor, and the mean's 1/n
    to the working precision (its division's one rounding is the product's in the walk)."""
    env = {c: R.const(f) for c, f in consts.items()}
    env[_inv_c()] = iv.mpf(1) / iv.mpf(n)
    return env


def _algorithm(loss, n: int):
    """(value, label symbols, prediction symbols, constants) of Keras's algorithm for ``loss`` on
    a row of ``n``. Its gradient is not derived here: :func:`_backward` takes it through the same
    operations, as TensorFlow does."""
    import sympy as sp

    from ..define.evaluate import expand_row, indexed
    from ..define.primitives import C as C_SYM
    from ..define.primitives import Sigmoid, to_elementary

    key = (id(loss), n)
    if key not in _ALGORITHMS:
        expr = loss.keras if loss.keras is not None else loss.value
        expr = to_elementary(expr.xreplace(loss.weight_definitions), keep=(Sigmoid,))
        # decimal constants (not exponents) as symbols: on a row of one class p/Σp is 1, and SymPy
        # would fold min(max(1, ε), 1 - ε) and then 1 - (1 - ε) in binary64 (1e-7, where float32
        # TensorFlow gets 2^-23); the walk rounds each constant to the dtype (_Rounding.const)
        consts = {f: sp.Dummy(f"const{i}") for i, f in enumerate(sorted(
            {f for f in expr.atoms(sp.Float) if not any(isinstance(p, sp.Pow) and p.exp == f for p in expr.atoms(sp.Pow))},
            key=float))}
        expr = expr.xreplace(consts)
        # 1/C as a symbol bound to 1/n: a mean stays (1/n)·(x_0 + ... + x_{n-1}), the sum first
        # as TensorFlow's reduce_mean takes it (it overflows where the sum does); SymPy would
        # distribute the number 1/n over the sum, a sum of x_i/n that cannot overflow
        expr = expr.xreplace({C_SYM: 1 / _inv_c()})
        expr = expand_row(expr, n, None) if loss.row_level else expand_row(expr, 1, 0)
        labels = [indexed(loss.label, c) for c in range(n)] if loss.label is not None else []
        preds = [indexed(loss.prediction, c) for c in range(n)]
        _ALGORITHMS[key] = (expr, labels, preds, {c: float(f) for f, c in consts.items()})
    return _ALGORITHMS[key]


def _walk(e, env: dict, R):
    """``e`` evaluated in interval arithmetic, each operation widened by one rounding (``R``)
    and by the format's range: an end past the largest float may be ±inf. Each node's value
    is kept in ``env`` (the backward pass reads the same forward values)."""
    if e not in env:
        env[e] = _in_range(_op(e, env, R), R)
    return env[e]


def _in_range(x, R):
    a, b = _ends(x)
    if -R.fmax <= a and b <= R.fmax:
        return x
    lo = a if a >= -R.fmax else (-mpmath.inf if b < -R.fmax else -mpmath.inf)
    hi = b if b <= R.fmax else mpmath.inf
    if a > R.fmax:  # every value overflows: the largest float or inf
        lo = R.fmax
    if b < -R.fmax:
        hi = -R.fmax
    return iv.mpf([lo, hi])


def _op(e, env: dict, R):
    import sympy as sp
    from sympy.codegen.cfunctions import expm1, log1p

    from ..define.primitives import MaxN, Rsqrt, Sigmoid

    if e.is_Number:  # exact rationals (1/n, 1/2); a decimal constant becomes a tensor of the dtype
        return iv.mpf(sp.Rational(e).p) / iv.mpf(sp.Rational(e).q) if e.is_Rational else R.const(float(e))
    if isinstance(e, sp.Piecewise):  # ops.where: the selected piece (the hull where undecided)
        ends = [_ends(_walk(v, env, R)) for v in _pieces(e, env, R)]
        return iv.mpf([min(a for a, _ in ends), max(b for _, b in ends)])
    args = [_walk(a, env, R) for a in e.args]
    if isinstance(e, sp.Add):  # two terms: one rounding of their exact sum (1 - q near q = 1 is exact)
        return R.add(*args) if len(args) == 2 else R.fsum_ends(args)
    if isinstance(e, sp.Mul):
        out = args[0]
        for a in args[1:]:
            out = R.mul(out, a)
        return out
    if isinstance(e, sp.Pow):
        b, x = args[0], e.args[1]
        if x == -1:
            return R.div(iv.mpf(1), b)
        if x.is_Integer and x > 0:
            out = b
            for _ in range(int(x) - 1):
                out = R.mul(out, b)
            return out
        if x == sp.S.Half:
            return R.r(iv.sqrt(b))
        return R.pow(b, args[1])
    if isinstance(e, Sigmoid):
        return R.sigmoid(args[0])
    elementary = {
        sp.exp: R.exp, sp.log: R.log, log1p: R.log1p, expm1: lambda a: R.r(iv.expm1(a), 4),
        # mpmath.iv has no cosh/tanh: their exponential forms (wider, never narrower)
        sp.cosh: lambda a: R.r((iv.exp(a) + iv.exp(-a)) / 2, 4),
        sp.tanh: lambda a: R.r(1 - 2 / (iv.exp(2 * a) + 1), 4),
    }
    if e.func in elementary:
        return elementary[e.func](args[0])
    if isinstance(e, sp.Abs):
        lo, hi = _ends(args[0])
        return iv.mpf([0 if lo <= 0 <= hi else min(abs(lo), abs(hi)), max(abs(lo), abs(hi))])
    if isinstance(e, Rsqrt):  # 1/sqrt(x): 0 at +inf (an overflowed square)
        lo, hi = _ends(args[0])
        return R.r(iv.mpf([0 if hi == mpmath.inf else 1 / mpmath.sqrt(hi), mpmath.inf if lo <= 0 else 1 / mpmath.sqrt(lo)]), 2)
    if isinstance(e, (sp.Max, sp.Min, MaxN)):
        ends = [_ends(a) for a in args]
        pick = min if isinstance(e, sp.Min) else max
        return iv.mpf([pick(a for a, _ in ends), pick(b for _, b in ends)])
    if isinstance(e, (sp.sign, sp.Heaviside)):
        lo, hi = _ends(args[0])
        one, zero = (1, 0) if isinstance(e, sp.Heaviside) else (1, -1)
        if lo > 0:
            return iv.mpf(one)
        if hi < 0:
            return iv.mpf(zero)
        return iv.mpf([min(zero, 0), one])  # 0 itself: TensorFlow's convention is 0 for both
    raise ValueError(f"no interval rule for {e.func.__name__} in Keras's declared algorithm")


def _pieces(e, env: dict, R) -> list:
    """The pieces of a ``Piecewise`` that may be selected: up to the first whose condition surely
    holds, skipping those whose condition surely fails (conditions compare intervals)."""
    import sympy as sp

    live = []
    for v, c in e.args:
        if c is sp.true:
            sure, never = True, False
        elif isinstance(c, sp.core.relational.Relational):
            (la, lb), (ra, rb) = _ends(_walk(c.lhs, env, R)), _ends(_walk(c.rhs, env, R))
            if isinstance(c, (sp.LessThan, sp.StrictLessThan)):
                strict = isinstance(c, sp.StrictLessThan)
                sure, never = (lb < ra if strict else lb <= ra), (la >= rb if strict else la > rb)
            elif isinstance(c, (sp.GreaterThan, sp.StrictGreaterThan)):
                strict = isinstance(c, sp.StrictGreaterThan)
                sure, never = (la > rb if strict else la >= rb), (lb <= ra if strict else lb < ra)
            else:
                raise ValueError(f"no interval rule for the condition {c} in Keras's declared algorithm")
        else:
            raise ValueError(f"no interval rule for the condition {c} in Keras's declared algorithm")
        if never:
            continue
        live.append(v)
        if sure:
            break
    return live


def _declared_algorithm(case: KernelCase, R, labels, pred, params: dict, upstream=None):
    """Keras's declared algorithm forward (op by op) and its gradient as TensorFlow's autodiff
    takes it: backward through the same operations, each of TensorFlow's gradient ops rounded
    (:func:`_backward`), seeded with ``upstream`` (1 for the function form)."""
    from ..verify.contract import definition

    loss = definition(case)
    n = len(pred)
    value, lab_syms, pred_syms, consts = _algorithm(loss, n)
    env = constants(consts, R, n)
    env.update({s: iv.mpf(float(v)) for s, v in zip(lab_syms, labels)})
    env.update({s: iv.mpf(float(v)) for s, v in zip(pred_syms, pred)})
    for q in loss.params:
        env[q] = iv.mpf(float(params[q.name]))
    v = _walk(value, env, R)
    adj: dict = {}
    _backward(value, iv.mpf(1) if upstream is None else upstream, env, R, adj)
    return v, [adj.get(x, iv.mpf(0)) for x in pred_syms]


def _backward(e, g, env: dict, R, adj: dict) -> None:
    """Add ``g`` times d(e)/d(input) into ``adj`` for every input below ``e``, as TensorFlow's
    registered gradients compute it (``Add``: g to each; ``Mul``: g·(product of the others);
    ``Pow``: g·y·x^(y-1), the exponent y - 1 rounded; ``Exp``: g·exp(x); ``Log``: g·(1/x);
    ``Log1p``: g·(1/(1 + x)); ``Abs``: g·sign(x); ``Maximum``/``Minimum``: g where the input is
    taken, 0 elsewhere ([0, g] where the interval straddles the other), each product rounded.
    ``env`` holds the forward values (:func:`_walk` keeps them there)."""
    import sympy as sp
    from sympy.codegen.cfunctions import expm1, log1p

    from ..define.primitives import MaxN, Rsqrt, Sigmoid

    if e.is_Number:
        return
    if not e.args:  # an input symbol
        adj[e] = g if e not in adj else R.add(adj[e], g)
        return
    val = lambda x: _walk(x, env, R)  # noqa: E731 - the forward values, computed once
    if isinstance(e, sp.Piecewise):  # where's gradient: g to the selected piece, 0 to the others
        live = _pieces(e, env, R)
        part = g if len(live) == 1 else iv.mpf([min(0, _ends(g)[0]), max(0, _ends(g)[1])])
        for v in live:
            _backward(v, part, env, R, adj)
        return
    if isinstance(e, sp.Add):
        for a in e.args:
            _backward(a, g, env, R, adj)
        return
    if isinstance(e, sp.Mul):
        for i, a in enumerate(e.args):
            if a.is_Number and not e.args[:i] + e.args[i + 1:]:
                continue
            other = iv.mpf(1)
            for j, b in enumerate(e.args):
                if j != i:
                    other = R.mul(other, val(b))
            _backward(a, R.mul(g, other), env, R, adj)
        return
    if isinstance(e, sp.Pow):
        base, ex = e.args
        y = val(ex)
        if ex == -1:  # Reciprocal: -g·(1/x)²
            r = R.div(iv.mpf(1), val(base))
            _backward(base, -R.mul(g, R.mul(r, r)), env, R, adj)
        elif ex.is_Integer and ex > 0:  # Square and integer powers: g·k·x^(k-1), by products
            b, d = val(base), iv.mpf(int(ex))
            for _ in range(int(ex) - 1):
                d = R.mul(d, b)
            _backward(base, R.mul(g, d), env, R, adj)
        else:
            _backward(base, R.mul(g, R.mul(y, _in_range(R.pow(val(base), R.sub(y, iv.mpf(1))), R))), env, R, adj)
        return
    x = e.args[0]
    if e.func == sp.exp:
        _backward(x, R.mul(g, val(e)), env, R, adj)
    elif e.func == expm1:
        _backward(x, R.mul(g, R.exp(val(x))), env, R, adj)
    elif e.func == sp.log:  # grad·reciprocal(x)
        _backward(x, R.mul(g, R.recip(val(x))), env, R, adj)
    elif e.func == log1p:
        _backward(x, R.mul(g, R.recip(R.add(iv.mpf(1), val(x)))), env, R, adj)
    elif isinstance(e, sp.Abs):
        _backward(x, R.mul(g, val(sp.sign(x))), env, R, adj)
    elif isinstance(e, Sigmoid):  # SigmoidGrad: g·(y·(1 - y)), y the forward output
        y = val(e)
        _backward(x, R.mul(g, R.mul(y, R.sub(iv.mpf(1), y))), env, R, adj)
    elif isinstance(e, Rsqrt):  # RsqrtGrad: g·(-0.5·y³), y the forward output
        y = val(e)
        _backward(x, R.mul(g, R.mul(iv.mpf(-0.5), R.mul(R.mul(y, y), y))), env, R, adj)
    elif isinstance(e, MaxN):  # reduce_max: g shared equally among the maxima
        ends = [_ends(val(t)) for t in e.args]
        top = max(a for a, _ in ends)
        live = [i for i, (_, b) in enumerate(ends) if b >= top]
        if all(ends[i] == ends[live[0]] and ends[i][0] == ends[i][1] for i in live):  # exact ties
            part = R.div(g, iv.mpf(len(live)))
        else:  # undecided which are maxima: anything from 0 to all of g
            part = iv.mpf([min(0, _ends(g)[0]), max(0, _ends(g)[1])])
        for i in live:
            _backward(e.args[i], part, env, R, adj)
    elif isinstance(e, (sp.Max, sp.Min)):
        if len(e.args) != 2:
            raise ValueError("Max/Min of more than two arguments in Keras's declared algorithm")
        a, b = (_ends(val(t)) for t in e.args)
        first = (a[0] >= b[1]) if isinstance(e, sp.Max) else (a[1] <= b[0])  # surely the first
        second = (b[0] > a[1]) if isinstance(e, sp.Max) else (b[1] < a[0])
        for t, sure, never in ((e.args[0], first, second), (e.args[1], second, first)):
            if never:
                continue
            _backward(t, g if sure else iv.mpf([min(0, _ends(g)[0]), max(0, _ends(g)[1])]), env, R, adj)
    elif e.func in (sp.cosh, sp.tanh):
        d = (lambda a: (iv.exp(a) - iv.exp(-a)) / 2) if e.func == sp.cosh else (lambda a: 1 - (1 - 2 / (iv.exp(2 * a) + 1)) ** 2)
        _backward(x, R.mul(g, R.r(d(val(x)), 4)), env, R, adj)
    else:
        raise ValueError(f"no gradient rule for {e.func.__name__} in Keras's declared algorithm")


def _bce_probs(R, t, x, lo, hi):
    q, mask = _clip(R, x, lo, hi)
    one_t = R.sub(iv.mpf(1), t)
    one_q = R.sub(iv.mpf(1), q)
    value = R.add(R.mul(t, R.log(q)), R.mul(one_t, R.log(one_q)))
    value = -value
    # autodiff: d/dq -(t log q + (1-t) log(1-q)) = -t/q + (1-t)/(1-q)
    g = R.add(-R.div(t, q), R.div(one_t, one_q)) * mask
    return value, g


def _bce_probs_seeded(R, t, x, lo, hi, G):
    """``_bce_probs`` with the backward pass seeded by ``G``: TensorFlow's ops on
    ``-(t·log q + (1-t)·log(1-q))``: ``(-G·t)·(1/q)`` and ``-((-G·(1-t))·(1/(1-q)))``, added."""
    q, mask = _clip(R, x, lo, hi)
    one_t = R.sub(iv.mpf(1), t)
    one_q = R.sub(iv.mpf(1), q)
    value = -R.add(R.mul(t, R.log(q)), R.mul(one_t, R.log(one_q)))
    a = R.mul(R.mul(-G, t), R.div(iv.mpf(1), q))
    b = -R.mul(R.mul(-G, one_t), R.div(iv.mpf(1), one_q))
    return value, R.add(a, b) * mask


def _sigmoid_xent_seeded(R, t, x, G):
    """``_sigmoid_xent`` with the backward pass seeded by ``G``: the three paths into x of
    ``where(x>=0, x, 0) - x·t + log1p(exp(where(x>=0, -x, x)))`` (``G`` or 0; ``-G·t``;
    ``±(G·(1/(1+e)))·e``), added."""
    v = _ends(x)[0]
    relu = x if v >= 0 else iv.mpf(0)
    neg_abs = -x if v >= 0 else x
    e = R.exp(neg_abs)
    value = R.add(R.sub(relu, R.mul(x, t)), R.log1p(e))
    h = R.mul(R.mul(G, R.div(iv.mpf(1), R.add(iv.mpf(1), e))), e)
    terms = [G if v >= 0 else iv.mpf(0), -R.mul(G, t), -h if v >= 0 else h]
    return value, R.fsum(terms)


def _sigmoid_xent(R, t, x):
    v = _ends(x)[0]
    relu = x if v >= 0 else iv.mpf(0)
    neg_abs = -x if v >= 0 else x
    e = R.exp(neg_abs)
    value = R.add(R.sub(relu, R.mul(x, t)), R.log1p(e))
    # autodiff: relu' - t + (e/(1+e))·sign, with sign = -1 where x >= 0
    sig = R.div(e, R.add(iv.mpf(1), e))
    g = R.sub(iv.mpf(1) if v >= 0 else iv.mpf(0), t)
    g = R.add(g, -sig if v >= 0 else sig)
    return value, g


def _softmax_xent(R, t, z, U=None):
    """TensorFlow's fused (sparse) softmax cross-entropy: loss and its built-in gradient
    (times the seed ``U`` when given: one more rounding)."""
    m = max(_ends(x)[1] for x in z)
    s = [R.sub(x, iv.mpf(m)) for x in z]
    e = [R.exp(x) for x in s]
    se = R.fsum(e)
    lse = R.log(se)
    value = R.fsum([R.mul(tc, R.sub(lse, sc)) for tc, sc in zip(t, s)])
    grad = [R.sub(R.div(ec, se), tc) for ec, tc in zip(e, t)]  # softmax - labels
    if U is not None:
        grad = [R.mul(U, g) for g in grad]
    return value, grad


def _cce_probs(R, t, p, lo, hi, U=None):
    S = R.fsum(p)
    r = [R.div(x, S) for x in p]
    qs = [_clip(R, x, lo, hi) for x in r]
    value = -R.fsum([R.mul(tc, R.log(q)) for tc, (q, _) in zip(t, qs)])
    # autodiff: g_c = -t_c/q_c through the clip; r = p/S: dp_j = g_j/S + Σ_c g_c·(-p_c/S/S)
    if U is None:
        g = [(-R.div(tc, q)) * mask for tc, (q, mask) in zip(t, qs)]
    else:  # seeded: Mul's gradient (-U)·t, then Log's ·reciprocal(q)
        g = [R.mul(R.mul(-U, tc), R.div(iv.mpf(1), q)) * mask for tc, (q, mask) in zip(t, qs)]
    common = R.fsum([R.mul(gc, -R.div(R.div(pc, S), S)) for gc, pc in zip(g, p)])
    return value, [R.add(R.div(gc, S), common) for gc in g]


def contains(interval, value: float, dtype) -> bool:
    """True when ``value`` lies in ``interval`` widened by one ulp of ``dtype`` at each end.

    NaN only in ``[-inf, +inf]``: an algorithm whose interval is that has overflowed into an
    indeterminate form (inf - inf, 0·inf: a sample's infinite loss under a zero weight)."""
    v = float(value)
    a, b = _ends(interval)
    if np.isnan(v):
        return mpmath.isinf(a) and mpmath.isinf(b) and a < 0 < b
    fmax = mpmath.mpf(float(np.finfo(dtype).max))
    if np.isinf(v):
        return (v > 0 and b >= fmax) or (v < 0 and a <= -fmax)
    dt = np.dtype(dtype).type

    def spacing(e):  # one ulp at an end; none needed past the largest float (and NaN there would fail every test)
        return mpmath.mpf(float(np.spacing(dt(abs(float(e)))))) if mpmath.isfinite(e) and abs(e) <= fmax else 0

    return a - spacing(a) <= v <= b + spacing(b)


#: The heading line of each family's clip-edges table in the reports.
CLIP_EDGES_NOTE = {
    "binary_crossentropy": "`keras.losses.binary_crossentropy` clips p to [1e-7, 1 − 1e-7], the constant cast to the "
    "dtype (float32: 1 − 1e-7 rounds to 1 − 2⁻²³; ε is label smoothing in these reports):",
    "categorical_crossentropy": "`keras.losses.categorical_crossentropy` renormalises p over the row, then clips it to "
    "[1e-7, 1 − 1e-7] (the constant cast to the dtype); rows of two classes, label on class 0:",
    "sparse_categorical_crossentropy": "`keras.losses.sparse_categorical_crossentropy` clips p to [1e-7, 1 − 1e-7] "
    "first and renormalises after (the sparse softmax op on log q); rows of two classes, label 0:",
}


def _edges(family: str, dtype) -> list[tuple]:
    """(prediction row, label, what the model says, its value or None, its gradient at the
    labelled class or None, the mathematics) at the edges of the clip of ``family``."""
    lo, hi = bounds(dtype)
    if family == "binary_crossentropy":
        return [
            ([0.0], [1.0], f"−ln 1e-7 = {-math.log(lo):.8g}", -math.log(lo), None, "+inf"),
            ([1.0], [0.0], f"−ln(1 − (1 − 1e-7)) = {-math.log(1 - hi):.8g}" + (" = 23·ln 2" if dtype == np.float32 else ""),
             -math.log(1 - hi), None, "+inf"),
            ([1.0], [1.0], f"−ln(1 − 1e-7) = {-math.log(hi):.3g}", -math.log(hi), None, "0"),
            ([1e-12], [1.0], "gradient 0 (clipped)", None, 0.0, f"gradient {-1 / 1e-12:.3g}"),
        ]
    one_hot = [1.0, 0.0] if family == "categorical_crossentropy" else [0]
    if family == "categorical_crossentropy":
        return [
            ([0.0, 1.0], one_hot, f"−ln 1e-7 = {-math.log(lo):.8g}", -math.log(lo), None, "+inf"),
            ([1.0, 0.0], one_hot, f"−ln(1 − 1e-7) = {-math.log(hi):.3g}", -math.log(hi), None, "0"),
            ([1e-12, 1.0], one_hot, "gradient 0 (clipped)", None, 0.0, f"gradient {-1 / 1e-12 + 1:.3g}"),
        ]
    # sparse: -log(q_k / Σq) with q = clip(p); what the sparse softmax op then rounds is not modelled here
    return [
        ([0.0, 1.0], one_hot, f"−ln(1e-7 / (1e-7 + 1 − 1e-7)) ≈ {-math.log(lo / (lo + hi)):.8g}", None, None, "+inf"),
        ([1.0, 0.0], one_hot, f"−ln((1 − 1e-7) / (1 − 1e-7 + 1e-7)) ≈ {-math.log(hi / (lo + hi)):.3g}"
         + ("; in float32 the op's sum of the two rounds to 1: −ln(1 − 2⁻²³) = 1.19e-07" if dtype == np.float32 else ""),
         None, None, "0"),
        ([1e-12, 1.0], one_hot, "gradient 0 (clipped)", None, 0.0, f"gradient {-1 / 1e-12 + 1:.3g}"),
    ]


def clip_edges() -> list[dict]:
    """Keras's cross-entropies on probabilities at the edges of their clip, with what the model
    of their algorithm says (``model_value``/``model_grad``: the number it predicts, None where
    it predicts only a sign of life) and the mathematics' value."""
    from .calls import keras_kernel
    from ..verify.registry import case as case_of

    rows = []
    for family in CLIP_EDGES_NOTE:
        case = case_of(family, from_logits=False)
        call = keras_kernel(case)
        params = {"label_smoothing": 0.0} if family != "sparse_categorical_crossentropy" else {}
        for dtype in (np.float32, np.float64):
            for p, y, model, model_value, model_grad, math_v in _edges(family, dtype):
                pa = np.array([p], dtype=dtype)
                ya = np.array(y, dtype=np.int64) if family == "sparse_categorical_crossentropy" else np.array([y], dtype=dtype)
                rows.append({
                    "family": family, "p": p[0], "y": 1.0 if family != "binary_crossentropy" else y[0],
                    "row": None if family == "binary_crossentropy" else f"p = {p}, label class 0",
                    "dtype": np.dtype(dtype).name,
                    "value": float(call(ya, pa, params)[0]),
                    "grad": float(call(ya, pa, params, grad=True)[0, 0]),
                    "model": model, "model_value": model_value, "model_grad": model_grad, "math": math_v,
                })
    return rows


def _max_ulps(configs, kernel: str, labels: str, dtype: str, part: str) -> float | None:
    for c in configs:
        if c["kernel"] == kernel and c["labels"] == labels and c["dtype"] == dtype and c.get("keras"):
            return c["keras"][f"{part}_max_ulps"]
    return None


def semantic_notes(family: str, configs) -> list[str]:
    """Where Keras computes another function than the mathematics (not a rounding), as report
    bullets, with the deviations this run measured where it measured them (``configs``: the
    record's configurations of ``family``). Such points count as *explained* when the model
    replays Keras's formula: these notes say what that explanation is."""

    def ulps(kernel, labels, part):
        got = [_max_ulps(configs, kernel, labels, dt, part) for dt in ("float32", "float64")]
        return " and ".join(f"{'inf' if g == math.inf else f'{g:.3g}'} ulps in {dt}" for g, dt in zip(got, ("float32", "float64")) if g is not None)

    if family == "categorical_crossentropy":
        measured = ulps("categorical_crossentropy[from_logits=True]", "soft", "grad")
        return [
            "- **From logits, the gradient assumes labels that sum to 1.** Keras's fused op returns "
            "$\\operatorname{softmax}(z) - y$, the gradient of $-\\sum_c y_c \\log\\operatorname{softmax}(z)_c$ only where "
            "$\\sum_c y_c = 1$; the gradient is $(\\sum_c y_c)\\operatorname{softmax}(z) - y$. On this run's soft labels "
            f"(which do not sum to 1) Keras's gradient is off by up to {measured or 'no measured amount'}: "
            "another function's gradient, counted as explained because the model replays that formula.",
            "- **Renormalise, then clip.** On probabilities Keras divides p by its row sum and then clips to "
            "[1e-7, 1 − 1e-7]; `sparse_categorical_crossentropy` clips first and renormalises after, so the two "
            "Keras losses differ on the same row wherever a probability lies outside the clip.",
        ]
    if family == "sparse_categorical_crossentropy":
        return [
            "- **Clip, then renormalise.** On probabilities Keras clips p to [1e-7, 1 − 1e-7] and renormalises the "
            "clipped row (the sparse softmax op on log q): $-\\log(q_k / \\sum_c q_c)$ with $q = \\operatorname{clip}(p)$, "
            "where `categorical_crossentropy` renormalises first and clips after; a row with a probability outside "
            "the clip gets another value from each.",
        ]
    if family == "binary_crossentropy":
        return [
            "- **`from_logits=True` after a sigmoid layer** (seed 001): the layer's probabilities are read as "
            "logits, so the loss is that of $\\sigma(\\sigma(x))$: between $\\ln(1 + e^{-1})$ ≈ 0.313 and $\\ln 2$ for "
            "label 1, between $\\ln 2$ and $\\ln(1 + e)$ ≈ 1.313 for label 0, however good the prediction: another "
            "loss, not a rounding ([seeds.md](seeds.md)).",
        ]
    return []
