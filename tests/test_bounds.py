"""The magnitudes' bounds over a block (cesym.generate.bounds, cesym.kernels._iv): sound, and the
float32 outputs they lead to are those the per-element magnitudes give."""

import math
import zlib

import mpmath
import numpy as np
import pytest

from cesym.kernels import _iv, _rounding

from conftest import generated_modules, random_block


def _bounds():
    for fam, mod in generated_modules():
        for name in sorted(vars(mod)):
            if "_bound" in name and callable(getattr(mod, name)):
                variant = next(v for v in sorted(mod.CORES, key=len, reverse=True) if name.startswith(v + "_"))
                kind = name[len(variant) + 1 :].split("_bound")[0]
                yield pytest.param(mod, variant, kind, name.endswith("_unit"), id=f"{fam}.{name}")


@pytest.mark.parametrize("mod, variant, kind, unit", list(_bounds()))
def test_the_bound_holds_every_magnitude_of_the_block(mod, variant, kind, unit):
    """Over blocks of varied boxes (small blocks: narrow boxes; labels outside [0, 1] for the
    general bound), the bound is at least every magnitude the checked core computes."""
    bound = getattr(mod, f"{variant}_{kind}_bound" + ("_unit" if unit else ""))
    checked = getattr(mod, f"{variant}_{kind}_checked" + ("_unit" if unit else ""))
    n = 2 if kind == "value_and_grad" else 1
    rng = np.random.default_rng(zlib.crc32(bound.__name__.encode()))
    finite = 0
    for trial in range(60):
        lab, pred, scalars = random_block(mod, variant, rng, int(rng.integers(1, 40)), int(rng.integers(1, 9)))
        if not unit and trial % 2:
            lab = lab * 4 - 1.5  # labels the public functions accept outside [0, 1]
        box = [(float(np.min(b)), float(np.max(b))) for b in (lab, pred)]
        with np.errstate(all="ignore"):
            mags = checked(lab, pred, *scalars)[n:]
            bounds = bound(box, *scalars, pred.shape[1])
        for m, b in zip(mags, bounds):
            assert (m is None) == (b is None)
            if m is None or not b < math.inf:
                continue
            finite += 1
            m = np.asarray(m)
            ok = np.isfinite(m)
            assert np.all(m[ok] <= b), (trial, float(np.max(m[ok])), b)
    assert finite > 0  # a bound that is never finite would test nothing


_POINTS = sorted(np.concatenate([np.linspace(-30, 30, 61), [-1e300, -800.0, -1e-300, 0.0, 1e-300, 800.0, 1e300]]).tolist())
mp = mpmath.mp


@pytest.mark.parametrize(
    "rule, f, domain",
    [
        (_iv.log, lambda v: mp.log(v) if v else -mp.inf, (0.0, math.inf)),
        (_iv.exp, mp.exp, (-math.inf, 700.0)),
        (_iv.log1p, mp.log1p, (-1 + 1e-16, math.inf)),
        (_iv.expm1, mp.expm1, (-math.inf, 700.0)),
        (_iv.softplus, lambda v: mp.log1p(mp.exp(v)), (-math.inf, math.inf)),
        (_iv.sigmoid, lambda v: 1 / (1 + mp.exp(-v)), (-math.inf, math.inf)),
        (_iv.logcosh, lambda v: mp.log(mp.cosh(v)), (-math.inf, math.inf)),
        (_iv.tanh, mp.tanh, (-math.inf, math.inf)),
        (_iv.abs_, abs, (-math.inf, math.inf)),
        (_iv.xlog, lambda v: v * mp.log(v) if v else mp.mpf(0), (0.0, math.inf)),
        (_iv.xabslog, lambda v: abs(v * mp.log(v)) if v else mp.mpf(0), (0.0, math.inf)),
        (lambda x: _iv.pow_(x, 2.0), lambda v: v * v, (-1e150, 1e150)),
        (lambda x: _iv.pow_(x, -1.0), lambda v: 1 / v, (1e-300, math.inf)),
        (lambda x: _iv.pow_(x, 0.5), mp.sqrt, (0.0, math.inf)),
    ],
)
def test_each_interval_rule_holds_its_function(rule, f, domain):
    """Every point of an interval maps inside the rule's result (ends at ±30, at 1e±300, at 0;
    at 1/e, where w·log w turns), the function evaluated at 60 digits."""
    pts = [v for v in _POINTS + [math.exp(-1)] if domain[0] <= v <= domain[1]]
    pts.sort()
    with mpmath.workdps(60):
        for i, a in enumerate(pts):
            for b in pts[i:]:
                lo, hi = rule((a, b))
                for v in {a, b, 0.5 * a + 0.5 * b, math.exp(-1) if a <= math.exp(-1) <= b else a}:
                    y = f(mp.mpf(v))
                    assert lo <= y <= hi, (a, b, v, y, lo, hi)


def test_products_and_sums_hold_their_ends():
    xs = [(-3.0, 2.0), (0.0, 0.0), (1e-300, 1e300), (-math.inf, -1.0), (0.1, 0.3)]
    for a in xs:
        for b in xs:
            lo, hi = _iv.mul(a, b)
            for u in a:
                for v in b:
                    p = 0.0 if u == 0 or v == 0 else u * v
                    assert lo <= p <= hi
            lo, hi = _iv.add(a, b, (0.1, 0.1))
            assert lo <= a[0] + b[0] + 0.1 and a[1] + b[1] + 0.1 <= hi or math.isnan(a[0] + b[0])


def _kernels_with_bounds():
    import cesym.kernels as K

    for fam, mod in generated_modules():
        if not any("_bound" in n for n in vars(mod)):
            continue
        for pub in mod.PUBLIC:
            for v in pub["variants"]:
                if any(n.startswith(v["loss"] + "_") and "_bound" in n for n in vars(mod)):
                    yield pytest.param(getattr(K, pub["name"]), getattr(K, pub["name"] + "_value_and_grad"), mod, v,
                                       pub, id=f"{pub['name']}.{v['loss']}")


@pytest.mark.parametrize("value, value_and_grad, mod, variant, pub", list(_kernels_with_bounds()))
def test_bounds_change_no_float32_output(monkeypatch, value, value_and_grad, mod, variant, pub):
    """The float32 outputs with the block's bound are bit for bit those with every output's own
    magnitude: the outputs the bound leaves open are tested again with their own."""
    rng = np.random.default_rng(zlib.crc32(variant["loss"].encode()))
    lab, pred, scalars = random_block(mod, variant["loss"], rng, 3000, 10)
    kw = dict(variant["when"])
    for name, s in zip(mod.CORES[variant["loss"]]["args"][2:], scalars):
        if any(k["name"] == name for k in pub["keywords"]):
            kw[name] = s
    args = (lab.astype(np.float32), pred.astype(np.float32))
    if pub["keyword_only"]:  # tf.nn's (labels=, logits=)
        kw.update(zip(pub["args"], args))
        args = ()
    with_bounds = [value(*args, **kw), *value_and_grad(*args, **kw)]
    real_init = _rounding._Rounder.__init__

    def init(self, *a):
        real_init(self, *a)
        self.bound = self.unit_bound = None

    monkeypatch.setattr(_rounding._Rounder, "__init__", init)
    without = [value(*args, **kw), *value_and_grad(*args, **kw)]
    for a, b in zip(with_bounds, without):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_a_nan_input_leaves_the_bound_out_of_its_block(monkeypatch):
    """A NaN in a block makes its box NaN: the interval rules assume ordered ends (Python's min
    and max of NaN depend on the order), so such a block takes the per-element magnitudes; its
    finite rows round as in a block without the NaN."""
    import cesym.kernels as K

    rng = np.random.default_rng(11)
    y = (rng.random((64, 10)) < 0.5).astype(np.float32)
    p = rng.exponential(1, (64, 10)).astype(np.float32)
    clean = K.poisson(y, p)
    p[3, 4] = np.nan
    used = []
    real_init = _rounding._Rounder.__init__

    def init(self, *a):
        real_init(self, *a)
        bound = self.bound
        self.bound = lambda *b: used.append(b[0]) or bound(*b)

    monkeypatch.setattr(_rounding._Rounder, "__init__", init)
    got = K.poisson(y, p)
    assert not used  # never called with a NaN box
    assert np.isnan(got[3]) and np.array_equal(np.delete(got, 3), np.delete(clean, 3))
