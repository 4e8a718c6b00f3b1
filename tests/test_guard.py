"""The guarded unsplit gradient (``guard-split``): written where it is sound and pays, an identity
both ways, and a runtime that keeps the split form's numbers wherever its test fails.

:mod:`cesym.rewrite.guard` keeps a gradient's unsplit form Σ_k t_k beside its split form (rest
sums) when every row sum in the unsplit terms adds terms of one sign on the declared domain and
two or more rest sums of the prediction are spared; the kernels take the unsplit sum where
Σ|t_k| <= 4|Σ t_k| and the split form on every other row
(:func:`cesym.kernels._runtime.guarded`).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from cesym.define.loss import Loss
from cesym.define.primitives import Elem, Guarded, RestSum, RowSum, nan_or_forms
from cesym.derive.gradients import derive
from cesym.kernels import _pieces
from cesym.kernels import _runtime as rt
from cesym.rewrite.rules import RewriteError, check_equivalent

y, p, x = Elem("y"), Elem("p"), Elem("x")
alpha = sp.Symbol("alpha")

# a smoothed overlap score written anew (not a catalog file): -(2Σyp + 1)/(Σy + Σp + 1), the
# loss 1 - (2Σyp + 1)/(Σy + Σp + 1) less its constant (which one-minus-ratio takes over one denominator)
OVERLAP = Loss(family="guard", variant="overlap", title="smoothed overlap",
               value=-(2 * RowSum(y * p) + 1) / (RowSum(y) + RowSum(p) + 1), prediction=p, label=y, domain="probability")


def _rules(loss: Loss) -> list[str]:
    return [r.name for r in derive(loss).grad_rules]


def _guarded_parts(expr: sp.Basic) -> list[Guarded]:
    return list(expr.atoms(Guarded))


def test_written_for_a_probability_loss_with_two_rest_sums():
    d = derive(OVERLAP)
    assert "guard-split" in _rules(OVERLAP)
    (g,) = _guarded_parts(d.grad)
    unsplit, split = g.args
    assert isinstance(unsplit, sp.Add) and not unsplit.has(RestSum) and split.has(RestSum)
    for form in nan_or_forms(d.grad):  # both forms are the derivative of the definition
        check_equivalent(d.naive_grad, form)


def test_a_value_taken_over_one_denominator_keeps_its_guarded_gradient():
    """one-minus-ratio writes a Tversky-like 1 - TP/D as F/D (F = D - TP) for the value. The
    gradient is taken from 1 - TP/D: F/D differentiates to F'/D - F·D'/D², two terms of opposite
    sign wherever a label is 0 (α/D - αF/D² for α·TP/D²), which the guard's test sends to the
    split form on every row with few true positives (the shipped Tversky's value + gradient took
    1.6 times Keras's time)."""
    tp = RowSum(y * p)
    tversky = Loss(family="guard", variant="tversky", title="a Tversky index written anew", prediction=p, label=y,
                   domain="probability", params=(alpha,),
                   value=1 - tp / (tp + alpha * RowSum(p * (1 - y)) + (1 - alpha) * RowSum(y * (1 - p))))
    d = derive(tversky)
    assert "one-minus-ratio" in [r.name for r in d.value_rules] and "guard-split" in _rules(tversky)
    (g,) = _guarded_parts(d.grad)
    sums = {r: sp.Symbol(f"S{i}") for i, r in enumerate(g.args[0].atoms(RowSum))}
    at_label_0 = sp.expand(g.args[0].xreplace(sums).xreplace({y: 0}))
    assert len(sp.Add.make_args(at_label_0)) == 1  # one term: nothing cancels
    for form in nan_or_forms(d.grad):
        check_equivalent(d.naive_grad, form)


def test_not_written_where_a_row_sum_can_cancel():
    """On the real line Σ y p has terms of both signs: a cancellation inside a term the test
    cannot see. The same mathematics stays split."""
    signed = Loss(family="guard", variant="signed", title="overlap on reals", value=OVERLAP.value, prediction=p, label=y)
    d = derive(signed)
    assert d.grad.has(RestSum) and not _guarded_parts(d.grad)


def test_not_written_where_a_term_holds_a_difference_of_row_sums():
    """The Jaccard loss 1 - Σyp/(Σy + Σp - Σyp): its denominator is positive, but no interval
    shows it (a difference of row sums could cancel inside a term, unseen by the test)."""
    jaccard = Loss(family="guard", variant="jaccard", title="Jaccard", prediction=p, label=y, domain="probability",
                   value=1 - RowSum(y * p) / (RowSum(y) + RowSum(p) - RowSum(y * p)))
    d = derive(jaccard)
    assert d.grad.has(RestSum) and not _guarded_parts(d.grad)


def test_not_written_for_one_rest_sum():
    """The guard costs about as much as one rest sum: Σt/Σp - t_j/p_j keeps its split form."""
    ce = Loss(family="guard", variant="ce", title="cross-entropy of renormalised p",
              value=-RowSum(y * sp.log(p / RowSum(p))), prediction=p, label=y, domain="probability")
    d = derive(ce)
    assert "guard-split" not in _rules(ce) and not _guarded_parts(d.grad)


def test_a_wrong_second_form_is_refused():
    d = derive(OVERLAP)
    (g,) = _guarded_parts(d.grad)
    wrong = d.grad.xreplace({g: Guarded(g.args[0], 2 * g.args[1])})
    with pytest.raises(RewriteError):
        check_equivalent(d.naive_grad, wrong)


# --- the runtime ------------------------------------------------------------------------------

R, C = 500, 6


def _split_calls():
    calls = []

    def split(a, k):
        calls.append(a.shape[0])
        return a * 1000.0 + k  # recognisable numbers: a row taken from here is visibly so

    return split, calls


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


@pytest.fixture(autouse=True)
def _quiet():
    with np.errstate(all="ignore"):  # as the kernels' blocks run (inf - inf in the test is meant)
        yield


def test_sum_where_the_terms_do_not_cancel():
    rng = np.random.default_rng(0)
    a, r = rng.random((R, C)) + 1.0, rng.random((R, 1))
    split, calls = _split_calls()
    out = rt.guarded(lambda: (a, r), split, a, 3.0)
    assert calls == [] and _same(out, a + r)


@pytest.mark.parametrize("ratio, falls_back", [(3.9, False), (4.1, True), (np.inf, True)])
def test_the_test_is_the_cancellation_ratio(ratio, falls_back):
    """Σ|t| / |Σt| of a = -b·(ratio - 1)/(ratio + 1) against b: below 4 kept, above 4 the split form."""
    a = np.ones((R, C))
    lam = (ratio - 1) / (ratio + 1) if np.isfinite(ratio) else 1.0
    a[7, 2] = -lam
    split, calls = _split_calls()
    out = rt.guarded(lambda: (a, np.ones((R, 1))), split, a, 0.0)
    assert (calls == [1]) == falls_back
    assert _same(out[7], a[7] * 1000.0) == falls_back
    assert _same(np.delete(out, 7, axis=0), np.delete(a + 1.0, 7, axis=0))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_nan_or_an_inf_term_takes_the_split_form(bad):
    a = np.ones((R, C))
    a[11, 0] = bad
    split, calls = _split_calls()
    out = rt.guarded(lambda: (a, np.ones((R, 1))), split, a, 2.0)
    assert calls == [1] and _same(out[11], a[11] * 1000.0 + 2.0)


def test_rows_are_the_same_whether_gathered_or_taken_from_the_whole_block():
    """Above a quarter of the rows, the split form runs on the whole block and its failing rows
    are taken: every row's numbers are those of the per-row choice, whatever the block."""
    rng = np.random.default_rng(1)
    a = rng.random((R, C)) + 1.0
    bad = rng.random(R) < 0.5
    a[bad, 1] = -0.95  # against 1.0: ratio 39
    split, calls = _split_calls()
    whole = rt.guarded(lambda: (a, np.ones((R, 1))), split, a, 0.0)
    assert calls == [R]
    rows = []
    for lo in range(0, R, 50):  # blocks of 50 rows: some under a quarter, each gathered
        part = a[lo : lo + 50]
        rows.append(rt.guarded(lambda part=part: (part, np.ones((50, 1))), split, part, 0.0))
    assert _same(np.concatenate(rows), whole)
    assert _same(whole[bad], a[bad] * 1000.0) and _same(whole[~bad], a[~bad] + 1.0)


def test_a_row_in_pieces_takes_the_split_form(monkeypatch):
    split, calls = _split_calls()
    monkeypatch.setattr(rt, "_piece", lambda: object())
    terms_called = []
    out = rt.guarded(lambda: terms_called.append(1) or (np.ones((1, 4)),), split, np.ones((1, 4)), 0.0)
    assert calls == [1] and terms_called == [] and _same(out, np.full((1, 4), 1000.0))
    assert _pieces.active() is None  # the real state was never touched


def test_scale_and_divide_rows_are_the_plain_operations():
    """The printer's row-level products and quotients: a row value repeated along the row, the
    same numbers as NumPy's broadcast."""
    rng = np.random.default_rng(2)
    v = rng.standard_normal((R, C)) * 10.0 ** rng.uniform(-300, 300, (R, C))
    k = rng.standard_normal((R, 1)) * 10.0 ** rng.uniform(-300, 300, (R, 1))
    with np.errstate(all="ignore"):
        assert _same(rt.scale_rows(v, k), v * k) and _same(rt.scale_rows(v, -k), v * -k)
        assert _same(rt.divide_rows(v, k), v / k) and _same(rt.divide_rows(v, k, 2), (v / k) / k)
        assert _same(rt.scale_rows(v, 0.5), v * 0.5)
