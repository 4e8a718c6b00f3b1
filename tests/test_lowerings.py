"""Every lowering of the printer is an identity, checked in one place.

:func:`cesym.generate.codegen.print_form` rewrites a derived value and gradient into printing forms before
``cse`` (softplus and σ in their exp(-|x|) forms, the softmax parts shared, ``a·Σ`` as a weighted
row sum, ``v_j + Σ_{c≠j} v_c`` as ``Σ v``, ...). Each printing form has the mathematics it
computes (:func:`cesym.generate.edges._math_form`): read back, the lowered expression must equal the
derived one, for every kernel of every shipped family, in 60 digits at random rows
(:func:`cesym.rewrite.rules.check_equivalent`, as every rewrite rule is checked). A lowering that
changed a value (a sign, a forgotten term) fails here before any kernel is run.
"""

from __future__ import annotations

import pytest

from cesym.define.loss import load_all
from cesym.derive.gradients import derive
from cesym.generate.edges import _math_form
from cesym.generate.codegen import GENERATED_DIR, print_form
from cesym.report.render import _derived
from cesym.rewrite.rules import RewriteError, check_equivalent

LOSSES = [loss for losses in load_all().values() for loss in losses]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda l: l.name)
def test_every_lowering_is_an_identity(loss):
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
        lowered = print_form(expr)  # dense labels: the class-index look-ups are the kernels' own
        check_equivalent(expr, _math_form(lowered))


def test_the_check_fails_a_wrong_lowering():
    """The same check on a lowering with a sign flipped: refused."""
    loss = next(l for l in LOSSES if l.name == "binary_crossentropy.logits")
    d = derive(loss)
    wrong = _math_form(print_form(d.value)).replace(lambda e: e.is_Number and e == -1, lambda e: e * -1)
    with pytest.raises(RewriteError):
        check_equivalent(d.value, wrong)
