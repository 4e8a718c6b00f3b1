"""The naive forms' thresholds (cesym.report.thresholds): derived from each family's own
expressions, equal to the float limits they come from, and confirmed in the dtype they claim
(the operation breaks just beyond the threshold and not just inside it), in the committed
reports too."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp

from cesym.define.loss import load_all
from cesym.define.primitives import Elem, RowSum, Sigmoid
from cesym.generate.codegen import GENERATED_DIR
from cesym.report.render import REPORTS_DIR, _derived
from cesym.report.thresholds import Threshold, confirm, family_thresholds

x, p, y, h = Elem("x"), Elem("p"), Elem("y"), Elem("h")
F32, F64 = np.finfo(np.float32), np.finfo(np.float64)


def _by(found, op, kind):
    (t,) = [t for t in found if t.operation == op and t.kind == kind]
    return t


def test_the_sigmoid_cross_entropy_thresholds_are_the_float_limits():
    """log σ(x) written out: exp(-x) overflows at x < -ln(max), σ rounds to 1 at x > -ln(u)."""
    found = family_thresholds([RowSum(-y * sp.log(Sigmoid(x)) - (1 - y) * sp.log(1 - Sigmoid(x)))])
    over = _by(found, "exp(-x)", "exp_over")
    assert over.side == "below"
    for fi, dt in ((F32, np.float32), (F64, np.float64)):
        assert math.isclose(over.value(dt), -math.log(float(fi.max)), rel_tol=1e-15)
        assert math.isclose(_by(found, "1 + exp(-x)", "one_plus_exp").value(dt), -math.log(float(fi.eps) / 2), rel_tol=1e-15)
        assert math.isclose(_by(found, "exp(-x)", "exp_under").value(dt), -math.log(float(fi.smallest_normal)), rel_tol=1e-15)
    assert _by(found, "1 + exp(-x)", "one_plus_exp").condition(np.float32) == "x > 16.6355"


def test_powers_reciprocals_and_one_minus():
    found = family_thresholds([(p - y) ** 2 + 1 / p + sp.log(1 - p) + sp.log(1 + y) + h**3])
    assert _by(found, "(p - y)**2", "pow_over").value(np.float32) == pytest.approx(math.sqrt(float(F32.max)), rel=1e-15)
    assert _by(found, "h**3", "pow_over").value(np.float64) == float(mpmath.cbrt(mpmath.mpf(float(F64.max))))
    assert _by(found, "1/p", "recip_over").value(np.float32) == pytest.approx(1 / float(F32.max), rel=1e-15)
    assert _by(found, "log(1 - p)", "one_minus").value(np.float32) == 2.0**-25  # 1 - x: the floats below 1 are 2^-24 apart
    assert _by(found, "log(1 + y)", "one_plus").value(np.float32) == 2.0**-24  # 1 + x: 2^-23 apart


def test_label_weights_are_written_out_and_functions_of_sums_are_not_matched():
    t = sp.Symbol("t", real=True)
    found = family_thresholds([t * sp.log(p)], {t: 1 - y})
    assert found == []  # log p: a domain edge, not a threshold
    assert family_thresholds([sp.exp(RowSum(x))]) == []  # exp of a row sum: not one input


def test_confirmation_can_fail():
    """A threshold moved off its true value is not confirmed: the check measures, it does not echo."""
    t = _by(family_thresholds([sp.exp(x)]), "exp(x)", "exp_over")

    class Wrong(Threshold):
        def value(self, dtype) -> float:
            return 50.0

    wrong = Wrong(**{f.name: getattr(t, f.name) for f in dataclasses.fields(t)})
    ok, text = confirm(wrong, np.float32)
    assert not ok and "finite" in text
    assert confirm(t, np.float32) == (True, "x = 89.61: inf; 87.84: finite")


@pytest.mark.parametrize("family", sorted(load_all()))
def test_every_family_threshold_is_confirmed_in_both_dtypes(family):
    losses = load_all()[family]
    code = (GENERATED_DIR / f"{family}.py").read_text(encoding="utf-8")
    derived = _derived(losses, code)
    weights = {w: d for dd in derived for w, d in dd.loss.weights.items() if d != w}
    for t in family_thresholds([e for d in derived for e in (d.naive_value, d.naive_grad)], weights):
        for dt in (np.float32, np.float64):
            ok, text = confirm(t, dt)
            assert ok, f"{family}: {t.operation} {t.breaks} at {t.condition(dt)} not confirmed in {np.dtype(dt)}: {text}"


def test_committed_reports_state_only_confirmed_thresholds():
    """Every committed report has the section, its own rows (the sigmoid rows only where the
    family has a sigmoid), and no unconfirmed threshold."""
    for path in sorted(Path(REPORTS_DIR).glob("*.md")):
        text = path.read_text(encoding="utf-8")
        if path.stem not in load_all():
            continue
        assert "## Where the naive forms break (derived from this family's expressions, per dtype)" in text, path.name
        section = text.split("## Where the naive forms break", 1)[1].split("\n## ", 1)[0]
        assert "not confirmed" not in section, path.name
        has_sigmoid = bool(re.search(r"1 \+ exp\(-?x\)", section))
        assert has_sigmoid == (path.stem in {"binary_crossentropy", "binary_focal_crossentropy", "tf_nn"}), path.name


def test_the_answers_box_lists_the_confirmed_float32_limits_of_every_family():
    """reports/README.md's third answer: every family's naive-form thresholds confirmed in
    float32, each with the families it comes from; none that is not confirmed."""
    from pathlib import Path

    from cesym.define.loss import load_all
    from cesym.generate.codegen import GENERATED_DIR
    from cesym.report.render import REPORTS_DIR, _derived, index_limits

    derived = {f: _derived(losses, (Path(GENERATED_DIR) / f"{f}.py").read_text(encoding="utf-8")) for f, losses in load_all().items()}
    limits = index_limits(derived)
    assert limits
    readme = (Path(REPORTS_DIR) / "README.md").read_text(encoding="utf-8")
    answer = readme[readme.index("**Where does the naive formula break in float32?**"):readme.index("\n\n", readme.index("**Where does the naive formula break"))]
    for (op, breaks, cond), fams in limits.items():
        assert f"`{op}`: {breaks} at {cond} (" in answer
        for f in fams:
            assert f"[{f}]({f}.md)" in answer
    assert answer.count("\n  - ") == len(limits)
