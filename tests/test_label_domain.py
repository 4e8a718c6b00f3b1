"""The labels' domain (:mod:`cesym.derive.label_domain`): where a definition is real in its label,
derived from the mathematics; the public functions refuse labels outside it, and verify draws
inside it."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import sympy as sp

from cesym import kernels
from cesym.define import C, Elem, Loss, RowSum
from cesym.derive.label_domain import label_domain
from cesym.kernels import _validate as V
from cesym.verify import registry, sampling

y, p, x = Elem("y"), Elem("p"), Elem("x")
a = sp.Symbol("a", real=True)


def _loss(value, domain="probability", **kw) -> Loss:
    pred = x if domain == "real" else p
    return Loss(family="t", variant="v", title="t", value=value, prediction=pred, label=y, domain=domain, **kw)


@pytest.mark.parametrize(
    "value, domain, weights, expected",
    [
        (RowSum(y * sp.log(y / p)), "probability", {y: y}, [[0.0, None]]),  # y·log(y/p): y >= 0
        (RowSum((sp.log(1 + p) - sp.log(1 + y)) ** 2) / C, "log1p", {}, [[-1.0, None]]),
        (RowSum((sp.sqrt(p) - sp.sqrt(y)) ** 2), "probability", {}, [[0.0, None]]),
        (RowSum(y * sp.log(y) + (1 - y) * sp.log(1 - y) - y * sp.log(p)), "probability", {}, [[0.0, 1.0]]),
        (RowSum(sp.log(y ** 2 - 1) * p), "probability", {}, [[None, -1.0], [1.0, None]]),
        # log(p/y): SymPy's inequality solver cannot take p/y > 0 (NotImplementedError); p·y > 0 it can
        (RowSum(2 * (sp.log(p / y) + y / p - 1)) / C, "probability", {}, [[0.0, None]]),
    ],
)
def test_derived_from_the_definition(value, domain, weights, expected):
    d = label_domain(_loss(value, domain, weights=weights))
    assert d is not None and d["intervals"] == expected
    lo = d["intervals"][0][0]
    if lo is not None:  # the float end lies in the closed set
        assert sp.Rational(lo) >= sp.Rational(expected[0][0])


def test_a_declared_sign_is_the_domain_where_the_solver_finds_none():
    """A part whose set SymPy cannot find (log(y - p) depends on the prediction) claims nothing
    beyond the label's own declaration: a label declared positive is refused below 0 and drawn
    at or above it, where it had been drawn negative (a gamma deviance's references unresolved)."""
    yp = Elem("y", positive=True)
    loss = Loss(family="t", variant="v", title="t", value=RowSum(sp.log(yp - p) + yp), prediction=p, label=yp, domain="probability")
    d = label_domain(loss)
    assert d is not None and d["intervals"] == [[0.0, None]] and "declared positive" in d["because"]


def test_one_third_end_is_the_least_float_in_the_set():
    d = label_domain(_loss(RowSum(sp.sqrt(3 * y - 1) * p)))
    lo = d["intervals"][0][0]
    assert sp.Rational(lo) >= sp.Rational(1, 3) and sp.Rational(math.nextafter(lo, -1.0)) < sp.Rational(1, 3)


@pytest.mark.parametrize(
    "value, domain",
    [
        (RowSum(y * sp.log(p) + (1 - y) * sp.log(1 - p)), "probability"),  # polynomial in y
        (RowSum(sp.Abs(y - p) / sp.Abs(y)), "probability"),  # a hole at 0 is a limit, not a restriction
        (RowSum(sp.log(y - p)), "probability"),  # depends on the prediction: nothing claimed
        (sp.log(RowSum(y)) - RowSum(p), "probability"),  # a row sum inside the log: not per element
        (RowSum(sp.log(1 + sp.exp(-(2 * y - 1) * x))), "real"),
        (RowSum(sp.log(a * y + p)), "probability"),  # depends on a parameter
    ],
)
def test_unrestricted_or_undecided(value, domain):
    params = tuple(s for s in value.free_symbols if s == a)
    assert label_domain(_loss(value, domain, params=params, param_ranges={a: (-1.0, 1.0)} if params else {})) is None


def test_public_functions_refuse_labels_outside_and_name_them():
    pred = np.array([[0.5, 0.5]])
    with pytest.raises(ValueError, match=r"y_true: label -0\.1 is outside the loss's domain: expected y_true >= 0\.0"):
        kernels.kl_divergence(np.array([[-0.1, 1.1]]), pred)
    for fn in (kernels.kl_divergence_grad, kernels.kl_divergence_value_and_grad):
        with pytest.raises(ValueError, match="y_true"):
            fn(np.array([[1.0, -np.inf]], np.float32), pred.astype(np.float32))
    with pytest.raises(ValueError, match=r"label -2\.0 .* expected y_true >= -1\.0"):
        kernels.mean_squared_logarithmic_error(np.array([[-2.0, 1.0]]), pred)
    # the closed ends are limits, NaN propagates, integer labels are compared as numbers
    assert kernels.mean_squared_logarithmic_error(np.array([[-1.0, 1.0]]), pred)[0] == np.inf
    assert np.isnan(kernels.kl_divergence(np.array([[np.nan, 1.0]]), pred)[0])
    assert kernels.kl_divergence(np.array([[0, 1]]), pred)[0] == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="y_true"):
        kernels.kl_divergence(np.array([[0, -1]], np.int8), pred)


def test_labels_in_domain_unions_and_dtypes():
    dom = {"intervals": [[None, -1.0], [1.0, None]], "because": "log(y**2 - 1)"}
    V.labels_in_domain(np.array([-3.0, -1.0, 1.0, np.inf, -np.inf, np.nan]), dom)
    with pytest.raises(ValueError, match=r"expected y_true <= -1\.0 or y_true >= 1\.0 \(where log\(y\*\*2 - 1\) is real\)"):
        V.labels_in_domain(np.array([2.0, 0.5]), dom)
    # float64(1/3) lies below 1/3, float32(1/3) above: each judged by its own value, in float64
    third = label_domain(_loss(RowSum(sp.sqrt(3 * y - 1) * p)))
    assert sp.Rational(1 / 3) < sp.Rational(1, 3) < sp.Rational(float(np.float32(1 / 3)))
    with pytest.raises(ValueError):
        V.labels_in_domain(np.array([1 / 3]), third)
    V.labels_in_domain(np.array([1 / 3], np.float32), third)


def test_verify_samples_labels_inside_the_domain():
    base = next(c for c in registry.cases([kernels._generated.mean_squared_error]) if c.label_kind == "real")
    for dom in ({"intervals": [[0.5, None]], "because": "sqrt(2*y - 1)"}, {"intervals": [[-2.0, 3.0]], "because": "sqrt((y + 2)*(3 - y))"}):
        case = dataclasses.replace(base, label_domain=dom)
        (lo, hi), = dom["intervals"]
        for dtype in (np.float32, np.float64):
            b = sampling.sample(case, dtype, 4, 60, seed=3)
            assert np.all(b.labels >= lo) and (hi is None or np.all(b.labels <= hi))
            e = sampling.sample_extended(case, dtype, 4, 60, seed=3)
            lab = e.labels[~np.isnan(e.labels)]
            assert np.all(lab >= lo) and (hi is None or np.all(lab <= hi))
    # a case whose labels are inside draws the same rows as before (nothing consumed)
    plain = sampling.sample(base, np.float64, 4, 30, seed=5)
    inside = sampling.sample(dataclasses.replace(base, label_domain={"intervals": [[None, None]], "because": ""}), np.float64, 4, 30, seed=5)
    np.testing.assert_array_equal(plain.labels, inside.labels)


def test_a_label_on_the_end_of_its_domain_is_taken_as_given_or_as_the_limit():
    """MSLE at y = -1: log(1 + y) = -inf, so the interval never resolves the point as given; the
    reference takes the limit from inside (y = -1 + 2^-k), +inf for the value and the gradient,
    as the kernel gives. KL at y = 0 resolves as given (0·log 0 = 0 under the weight). The
    extremes grid holds MSLE's -1."""
    import mpmath

    from cesym.verify import extremes
    from cesym.verify.contract import _pick, definition, reference_for
    from cesym.verify.extended import AsGivenOrLimit
    from cesym.verify.registry import case

    c = case("mean_squared_logarithmic_error")
    loss = definition(c)
    ref = reference_for(loss, 2)
    picked = _pick(ref, loss, [-1.0, 0.5], [0.5, 0.25], False, c.label_kind)
    assert isinstance(picked, AsGivenOrLimit)
    v, g = picked.value_and_grad([-1.0, 0.5], [0.5, 0.25], [])
    assert v == mpmath.inf and g[0] == mpmath.inf and mpmath.isfinite(g[1])
    kv, kg = kernels.mean_squared_logarithmic_error_value_and_grad(np.array([[-1.0, 0.5]]), np.array([[0.5, 0.25]]))
    assert kv[0] == np.inf and kg[0, 0] == np.inf and float(kg[0, 1]) == pytest.approx(float(g[1]), rel=1e-15)
    assert -1.0 in extremes.label_values(c, np.float64)

    k = case("kl_divergence")
    kl = definition(k)
    picked = _pick(reference_for(kl, 2), kl, [0.0, 1.0], [0.5, 0.5], True, k.label_kind)
    v, _ = picked.value_and_grad([0.0, 1.0], [0.5, 0.5], [])
    assert picked._which([0.0, 1.0], [0.5, 0.5], [], np.float64) is picked.ref
    assert float(v) == pytest.approx(math.log(2), rel=1e-15)


LOG_RATIO = '''
from sympy import log
from cesym.define import C, Elem, Loss, Public, RowSum, Variant
y = Elem("y"{assume})
p = Elem("p")
LOSSES = [Loss(family="log_ratio_sq", variant="lr", title="squared log ratio",
               value=RowSum((log(p) - log(y)) ** 2) / C, prediction=p, label=y, domain="probability")]
PUBLIC = [Public(name="log_ratio_sq", summary="squared log ratio", variants=(Variant("lr", domain="positive"),), labels="count")]
'''


def test_a_label_infinite_at_the_end_of_its_domain_is_refused_with_the_way_out(tmp_path, capsys):
    """(log p - log y)²: infinite at the label 0, the end of its domain; generate refuses it
    naming the way out (a label declared positive), and with it generates a kernel that refuses
    y_true = 0 and computes log(p/y) without the logs' cancellation (the log-difference rule)."""
    import importlib.util

    from cesym import cli

    src = tmp_path / "plain"
    src.mkdir()
    (src / "log_ratio_sq.py").write_text(LOG_RATIO.format(assume=""))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(tmp_path / "o1")]) == 2
    assert "declare Elem('y', positive=True)" in capsys.readouterr().err
    src = tmp_path / "positive"
    src.mkdir()
    (src / "log_ratio_sq.py").write_text(LOG_RATIO.format(assume=", positive=True"))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(tmp_path / "o2")]) == 0
    spec = importlib.util.spec_from_file_location("log_ratio_sq_t", tmp_path / "o2" / "log_ratio_sq.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with pytest.raises(ValueError, match="y_true: label -1.0 is outside"):
        mod.log_ratio_sq([[-1.0]], [[0.5]])
    y, p = 6.730538120568558e-18, 6.7305302827926874e-18
    exact = float(sp.log(sp.Rational(p) / sp.Rational(y)).evalf(40)) ** 2
    assert mod.log_ratio_sq([[y]], [[p]])[0] == pytest.approx(exact, rel=1e-14)
