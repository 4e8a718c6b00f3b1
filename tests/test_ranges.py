"""The range evaluator that lets the float32 rounding test skip magnitudes
(:mod:`cesym.generate.ranges`): its ranges enclose sampled values, and every sign claim it makes
for the generated ``_checked_unit`` cores holds on random labels in [0, 1] (and fails for a label
outside, which is why the runtime looks at the labels first)."""

import math
import zlib

import mpmath
import numpy as np
import pytest
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from cesym.define.primitives import to_elementary, Elem, LogCosh, Relu, RowSum, Sigmoid, Softplus, XMul
from cesym.generate.ranges import FULL, value_range
from cesym.kernels import _rounding
from conftest import generated_modules, random_block

x, y, p, t, u = (Elem(n) for n in "xyptu")
g = sp.Symbol("gamma", real=True)
C = sp.Symbol("C", positive=True, integer=True)

_BOX = {x: FULL, y: (0.0, 1.0), p: (0.0, 1.0), t: (0.0, 1.0), u: (0.0, 1.0), g: (0.0, 5.0)}

_EXPRS = [
    t * Softplus(-x) + u * Softplus(x),
    XMul(y, -sp.log(p)),
    -(p * u + t * (1 - p)) ** g * sp.log(p),
    u * Sigmoid(x) - t * Sigmoid(-x),
    LogCosh(x - y),
    log1p(-p) + sp.exp(x) * y,
    1 / (p * C) - y,
    Relu(1 - x * (2 * y - 1)) ** 2,
    sp.Piecewise(((x - y) ** 2 / 2, sp.Abs(x - y) <= 1), (sp.Abs(x - y) - sp.Rational(1, 2), True)),
    sp.tanh(x) * y - expm1(-p),
    RowSum(XMul(t, -sp.log(p))) / C,
]


def _sample(rng, lo: float, hi: float, n: int) -> np.ndarray:
    if math.isinf(lo) and math.isinf(hi):
        v = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 3, n)
    elif math.isinf(hi):
        v = lo + rng.exponential(1, n) * 10.0 ** rng.integers(-3, 3, n)
    else:
        v = rng.uniform(lo, hi, n)
    ends = [e for e in (lo, hi) if math.isfinite(e)]
    return np.concatenate([v, ends])


@pytest.mark.parametrize("k", range(len(_EXPRS)))
def test_ranges_enclose_sampled_values(k):
    e = _EXPRS[k]
    lo, hi = value_range(e, {**_BOX, C: (1.0, math.inf)})
    rng = np.random.default_rng(k)
    syms = sorted(e.free_symbols, key=str)
    box = {**_BOX, C: (1.0, 20.0)}
    samples = {s: _sample(rng, *box[s], 200) for s in syms}
    n = min(len(v) for v in samples.values())
    body = e.replace(lambda a: isinstance(a, RowSum), lambda a: a.args[0])  # a row of one
    f = sp.lambdify(syms, _plain(body), "mpmath")
    mpmath.mp.prec = 80
    seen = 0
    for i in range(n):
        with np.errstate(all="ignore"):
            try:
                v = f(*[mpmath.mpf(float(samples[s][i])) for s in syms])
            except (ZeroDivisionError, ValueError):
                continue
        if not mpmath.isfinite(v) or isinstance(v, mpmath.mpc):
            continue
        assert lo - 1e-12 * abs(v) <= v <= hi + 1e-12 * abs(v), (sp.sstr(e), i, v, lo, hi)
        seen += 1
    assert seen >= n // 2  # the samples mostly lie where the expression is real


def _plain(e: sp.Expr) -> sp.Expr:
    """The primitives in elementary functions, for mpmath."""
    return to_elementary(e, keep=())


def _unit_kernels():
    return [pytest.param(fam, name[: -len("_checked_unit")], id=f"{fam}.{name}") for fam, mod in generated_modules()
            for name in sorted(vars(mod)) if name.endswith("_checked_unit")]


@pytest.mark.parametrize("fam,kernel", _unit_kernels())
def test_unit_claims_hold_for_labels_in_the_unit_interval(fam, kernel):
    """Where the ``_unit`` core returns None (no magnitude: the sums add terms of one sign), the
    general core's magnitude is the output's own absolute value, up to rounding."""
    mod = dict(generated_modules())[fam]
    variant = next(kernel[: -len(k)] for k in ("_value_and_grad", "_value", "_grad") if kernel.endswith(k))
    general, unit = getattr(mod, f"{kernel}_checked"), getattr(mod, f"{kernel}_checked_unit")
    rng = np.random.default_rng(zlib.crc32(kernel.encode()))
    lab, pred, scalars = random_block(mod, variant, rng, 400, 7)
    with np.errstate(all="ignore"):
        g_out, u_out = general(lab, pred, *scalars), unit(lab, pred, *scalars)
    n = len(g_out) // 2
    assert any(um is None and gm is not None for um, gm in zip(u_out[n:], g_out[n:]))
    for out, um, gm in zip(g_out[:n], u_out[n:], g_out[n:]):
        if um is None and gm is not None:
            r, m = np.broadcast_arrays(np.abs(out), gm)
            ok = np.isfinite(r) & np.isfinite(m)
            assert np.all(m[ok] <= r[ok] * (1 + 2.0**-40) + 1e-300), (kernel, float(np.max(m[ok] / np.maximum(r[ok], 1e-300))))


def test_a_label_outside_the_unit_interval_cancels_and_takes_the_general_core(monkeypatch):
    """With label smoothing, a label of 2 makes u = 1 - t negative: binary cross-entropy's two
    terms then cancel (magnitude above |value|), and the rounder takes the general core."""
    from cesym.kernels import binary_crossentropy
    from cesym.kernels._generated import binary_crossentropy as B

    rng = np.random.default_rng(5)
    lab = np.full((300, 4), 2.0)
    x = rng.standard_normal((300, 4)) * 4
    r, m = B.logits_value_checked(lab, x, 0.0)
    assert np.any(m > np.abs(r) * 1.5)
    calls = []
    real_init = _rounding._Rounder.__init__

    def init(self, *a):
        real_init(self, *a)
        for name, kind in (("checked", "general"), ("bound", "general"), ("unit", "unit"), ("unit_bound", "unit")):
            f = getattr(self, name)
            if f is not None:  # the block's magnitudes, or their bound over the block, of either kind
                setattr(self, name, lambda *b, f=f, kind=kind: calls[-1].add(kind) or f(*b))

    monkeypatch.setattr(_rounding._Rounder, "__init__", init)
    calls.append(set())
    binary_crossentropy(lab.astype(np.float32), x.astype(np.float32), from_logits=True)
    calls.append(set())
    binary_crossentropy((lab / 2).astype(np.float32), x.astype(np.float32), from_logits=True)
    assert calls == [{"general"}, {"unit"}]
