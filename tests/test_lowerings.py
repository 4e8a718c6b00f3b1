"""Every lowering of the printer is an identity, checked in one place.

:mod:`cesym.generate.lowerings` rewrites a derived value and gradient into printing forms before
``cse`` (softplus and σ in their exp(-|x|) forms, the softmax parts shared, ``a·Σ`` as a weighted
row sum, ``v_j + Σ_{c≠j} v_c`` as ``Σ v``, ...), one named rule at a time. Each printing form
knows the mathematics it computes (``math()``, :func:`cesym.generate.lowerings.math_form`): read
back, every lowering that fires must leave the expression equal to what it was, for every
kernel of every shipped family, in 60 digits at random rows
(:func:`cesym.rewrite.rules.check_equivalent`, as every rewrite rule is checked). A lowering
that changed a value (a sign, a forgotten term) fails here, naming itself, before any kernel
is run. The class-index look-ups hold for one-hot labels only: the sparse kernels' contract
tests hold them to the reference.
"""

from __future__ import annotations

import pytest

from cesym.define.loss import load_all
import sympy as sp

from cesym.define.primitives import Elem, LogRatio, LogSumExp, RestSum, RowSum, Softplus, XMul
from cesym.derive.gradients import derive
from cesym.generate.codegen import GENERATED_DIR
from cesym.generate.lowerings import LogRatioDiff, LogRatioNonzero, LogRatioNonzeroDiff, lower, lowerings, math_form
from cesym.report.render import _derived
from cesym.rewrite.rules import RewriteError, check_equivalent

LOSSES = [loss for losses in load_all().values() for loss in losses]


def _steps(expr, means=True):
    """(rule, before, after) for each lowering that changes ``expr`` (dense labels)."""
    out = []
    for rule in lowerings(None, means):
        new = rule(expr)
        if new != expr:
            out.append((rule, expr, new))
            expr = new
    return out


def _evaluable(expr):
    """The mathematics of ``expr``, with each rest sum as Σ v - v: between two lowerings a rest
    sum can sit inside a row reduction, where the evaluator takes row sums only."""
    return math_form(expr).replace(lambda e: isinstance(e, RestSum), lambda e: RowSum(e.args[0]) - e.args[0])


@pytest.fixture(scope="module")
def fired():
    return set()


def _check_steps(expr, fired):
    steps = _steps(expr)
    for rule, before, after in steps:
        try:
            check_equivalent(_evaluable(before), _evaluable(after))
        except RewriteError as err:
            raise AssertionError(f"lowering {rule.name} is not an identity: {err}") from None
        fired.add(rule.name)
    assert (steps[-1][2] if steps else expr) == lower(expr)  # the steps are what generation prints


_Z, _P, _Y = Elem("z", real=True), Elem("p"), Elem("y")
_R = sp.Symbol("r", positive=True)
#: Shapes a user's loss reaches that no shipped one does (a log-sum-exp left as it is; the log
#: of a ratio whose difference is shorter than its terms: Jensen–Shannon's, and one zero-guarded).
USER_SHAPES = [
    LogSumExp(_Z), LogSumExp(2 * _Z) / 2 + RowSum(_Z**2),
    RowSum(XMul(_P, LogRatio(2 * _P, _P + _Y)) + XMul(_Y, LogRatio(2 * _Y, _P + _Y))) / 2,
    RowSum(XMul(_Y, LogRatio(_Y, _Y + _P))),
    # a negative binomial's r·log(e^z + r) as the softplus rule writes it (softplus-pair)
    RowSum(_Y * Softplus(sp.log(_R) - _Z) + _R * sp.log(_R) + _R * Softplus(_Z - sp.log(_R))),
]


def test_a_log_ratio_takes_its_shorter_difference():
    """log(2p/(p + y)) is given p - y (the rounded p + y loses it where p is near y); the
    zero-guarded log(y/(y + p)) is given -p; log(y/p) is printed as it was."""
    jsd, guarded, kl = (lower(e) for e in USER_SHAPES[2:4] + [RowSum(XMul(_Y, LogRatio(_Y, _P)))])
    assert {f.args[2] for f in jsd.atoms(LogRatioDiff)} == {_P - _Y, _Y - _P}
    assert [f.args[2] for f in guarded.atoms(LogRatioNonzeroDiff)] == [-_P]
    assert not kl.atoms(LogRatioDiff, LogRatioNonzeroDiff) and kl.atoms(LogRatioNonzero)


@pytest.mark.parametrize("expr", USER_SHAPES, ids=str)
def test_lowerings_of_user_shapes_are_identities(expr, fired):
    _check_steps(expr, fired)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda l: l.name)
def test_every_lowering_is_an_identity(loss, fired):
    d = derive(loss)
    # the record the generated module keeps, read back as the reports read it, is the derivation
    code = (GENERATED_DIR / f"{loss.family}.py").read_text(encoding="utf-8")
    (back,) = _derived([loss], code)
    assert (back.value, back.grad, back.naive_value, back.naive_grad, back.raw_grad) == (
        d.value, d.grad, d.naive_value, d.naive_grad, d.raw_grad)
    assert [(r.name, r.why) for r in back.value_rules + back.grad_rules] == [(r.name, r.why) for r in d.value_rules + d.grad_rules]
    for expr in (d.value, d.grad):
        if expr is None:
            continue
        _check_steps(expr, fired)


def test_every_dense_lowering_fires_on_the_catalog(fired):
    """Runs after the identities (same module): a lowering that neither a shipped kernel nor a
    user's shape needs is dead code or a pattern that stopped matching."""
    if len(fired) == 0:
        pytest.skip("run with the identity tests")
    names = {r.name for r in lowerings(None, True)}
    assert names - fired == set()


def test_the_check_fails_a_wrong_lowering():
    """The same check on a lowering with a sign flipped: refused."""
    loss = next(l for l in LOSSES if l.name == "binary_crossentropy.logits")
    d = derive(loss)
    wrong = math_form(lower(d.value)).replace(lambda e: e.is_Number and e == -1, lambda e: e * -1)
    with pytest.raises(RewriteError):
        check_equivalent(d.value, wrong)


def test_a_zero_guarded_negative_term_is_printed_as_a_subtraction():
    """a + XMul(w, -b) is printed a - xmul(w, b) (one negation pass fewer), and both give the same
    numbers, zero guard included; a lone XMul(w, -b) keeps its form (its zero stays +0)."""
    import numpy as np
    import sympy as sp

    from cesym.define.primitives import Elem, XMul
    from cesym.generate.codegen import KernelPrinter
    from cesym.kernels import _runtime as _rt

    y, p = Elem("y", real=True), Elem("p", real=True)
    pr = KernelPrinter()
    text = pr.doprint(p + XMul(y, -sp.log(p)))
    assert text == "p - _rt.xmul(y, numpy.log(p))"
    assert pr.doprint(XMul(y, -sp.log(p))) == "_rt.xmul(y, -numpy.log(p))"
    yv = np.array([0.0, 0.0, 2.0, 1.0, 0.0])
    pv = np.array([0.0, 3.0, 0.5, np.inf, 1.0])
    with np.errstate(all="ignore"):
        folded = eval(text, {"_rt": _rt, "numpy": np, "y": yv, "p": pv})  # noqa: S307
        plain = pv + _rt.xmul(yv, -np.log(pv))
    assert np.array_equal(folded, plain, equal_nan=True) and np.array_equal(np.signbit(folded), np.signbit(plain))
