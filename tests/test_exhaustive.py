"""cesym verify --exhaustive on small input ranges: the counts, the misrounded inputs and the
worst errors agree with a point-by-point check against the ball reference; a kernel that
rounds wrong and a first tier that encloses wrong are both caught."""

import json
import math

import numpy as np
import pytest
import sympy as sp

from cesym.cli import main
from cesym.verify import exhaustive as X
from cesym.verify import intervals
from cesym.verify.registry import CASES, case


def _f32(v: float) -> int:
    return int(np.array(v, dtype=np.float32).view(np.uint32))


def test_input_ranges_cover_the_domain_once():
    ranges = X.input_ranges(0.0, 1.0)  # +0 .. 1, and -0
    assert sum(e - s for s, e in ranges) == _f32(1.0) + 1 + 1
    ranges = X.input_ranges(-1.0, math.inf)
    assert sum(e - s for s, e in ranges) == (_f32(math.inf) + 1) + (_f32(-1.0) - 0x80000000 + 1)
    ranges = X.input_ranges(-math.inf, math.inf)  # every pattern but the NaNs
    assert sum(e - s for s, e in ranges) == 2**32 - 2 * (2**23 - 1)
    ranges = X.input_ranges(-2.0, -1.0)
    vals = np.concatenate([np.arange(s, e, dtype=np.uint64).astype(np.uint32).view(np.float32) for s, e in ranges])
    assert vals.min() == -2.0 and vals.max() == -1.0 and vals.size == _f32(-2.0) - _f32(-1.0) + 1


def test_eligible_kernels():
    names = {c.id for c in CASES if X.eligible(c) is None}
    assert "log_cosh" in names and "binary_crossentropy[from_logits=True]" in names and "sigmoid_cross_entropy_with_logits" in names
    assert X.eligible(case("categorical_crossentropy", from_logits=True)) is not None  # a class axis
    assert X.eligible(case("activity_penalty")) is not None  # a batch reduction


def _pointwise(setting: X.Setting, lo: float, hi: float):
    """The same check, input by input, against the ball reference alone."""
    problem = X._problem(setting)
    ranges = X.input_ranges(lo, hi)
    x32 = np.concatenate([np.arange(s, e, dtype=np.uint64).astype(np.uint32).view(np.float32) for s, e in ranges])
    k = X._kernel_outs([problem], x32)[0]
    bad, worst = 0, 0.0
    for xi, ki in zip(x32.tolist(), k.tolist()):
        r, true, _ = X.decide_float32(problem, xi)
        bad += not (r == ki)
        worst = max(worst, X._ulps_f32(ki, true))
    return x32.size, bad, worst


@pytest.mark.parametrize("name,kw,label,what,lo,hi,misrounded", [
    # misrounded by one rounding from float64 (σ(x) - 1 near -1/2; softplus near ln 2): now correct
    ("binary_crossentropy", {"from_logits": True}, 1.0, "grad", 1.788e-7, 1.7884e-7, False),
    ("binary_crossentropy", {"from_logits": True}, 0.0, "value", 4.4680e-4, 4.4681e-4, False),
    ("log_cosh", {}, 0.0, "value", 2.0, 2.0002, False),
    ("binary_crossentropy", {"from_logits": False}, 1.0, "grad", 0.0, 1e-44, False),  # -0, +0, subnormals: the edge
    # the row's scaled sums of squares of one element (SumSquares, Norm2, Scaled: no interval rule before)
    ("mean_squared_error", {}, 0.3, "value", 1.5, 1.5002, False),
    ("squared_hinge", {}, -1.0, "value", -0.9, -0.8999, False),
    ("mean_squared_logarithmic_error", {}, 1.0, "grad", 3.0, 3.0003, False),
    # a gradient's two guarded forms (Guarded: no interval rule before)
    ("dice", {}, 1.0, "grad", 0.25, 0.25003, False),
    ("tversky", {}, 0.3, "grad", 0.7, 0.70003, False),
    # a constant value (dice at label 0 is 1: a 0-d enclosure, an IndexError before)
    ("dice", {}, 0.0, "value", 0.5, 0.5001, False),
    ("mean_absolute_percentage_error", {}, 3.0, "value", 2.9999, 3.0001, False),
])
def test_agrees_with_the_reference_point_by_point(name, kw, label, what, lo, hi, misrounded):
    c = case(name, **kw)
    (st,) = X.settings_for(c, [label], what=(what,))
    s = X.run_setting(st, jobs=1, limit=(lo, hi), task_bits=12)
    n, bad, worst = _pointwise(st, lo, hi)
    assert s.inputs == n and s.tier1 + s.dd + s.reference == n
    assert s.not_correctly_rounded == bad and (bad > 0) == misrounded
    assert s.max_ulps == pytest.approx(worst, rel=1e-6, abs=1e-9)
    assert not s.unresolved


def test_a_misrounding_kernel_is_caught(monkeypatch):
    """One float32 ulp added to every 97th output: each is counted, and the worst is above 1/2."""
    c = case("log_cosh")
    (st,) = X.settings_for(c, [0.0], what=("value",))
    real = X._kernel_outs

    def off(problems, x32):
        outs = real(problems, x32)
        o = outs[0].copy()
        o[::97] = np.nextafter(o[::97], np.float32(np.inf))
        return [o]

    monkeypatch.setattr(X, "_kernel_outs", off)
    s = X.run_setting(st, jobs=1, limit=(1.5, 1.5002), task_bits=30)
    assert s.not_correctly_rounded == -(-s.inputs // 97) and s.max_ulps > 0.5


def test_a_wrong_first_tier_is_caught(monkeypatch):
    """The sampled re-checks of interval decisions against the ball reference fail the run when
    the tier encloses the wrong number (here log cosh off by one part in 10^6)."""
    c = case("log_cosh")
    (st,) = X.settings_for(c, [0.0], what=("value",))
    real = intervals._logcosh_value
    monkeypatch.setattr(intervals, "_logcosh_value", lambda u: real(u) * (1 + 1e-6))
    with pytest.raises(RuntimeError, match="disagree"):
        X.run_setting(st, jobs=1, limit=(1.5, 1.5002), task_bits=30)


def test_cli_exhaustive_json(tmp_path, capsys):
    out = tmp_path / "ex.json"
    code = main(["verify", "--exhaustive", "log_cosh", "--range", "3", "3.001", "--json", str(out), "--jobs", "1"])
    assert code == 0
    data = json.loads(out.read_text())
    assert [d["setting"]["what"] for d in data] == ["value", "grad"]
    assert all(d["inputs"] == _f32(3.001) - _f32(3.0) + 1 for d in data)
    text = capsys.readouterr().out
    assert "log_cosh value label=0" in text and "not correctly rounded" in text


@pytest.mark.parametrize("argv,message", [
    (["verify", "--label", "1", "log_cosh"], "--label goes with --exhaustive"),
    (["verify", "--exhaustive", "categorical_crossentropy"], "not a kernel of one float input"),
    (["verify", "--exhaustive"], "needs the kernel name"),
    (["verify", "--exhaustive", "huber", "--param", "delta"], "NAME=VALUE"),
    (["verify", "--exhaustive", "huber", "--param", "beta=2"], "no parameter 'beta'"),
    (["verify", "--exhaustive", "huber", "--range", "2", "1"], "LO <= HI"),
])
def test_cli_usage_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_recorded_runs_are_rendered_and_go_stale(tmp_path):
    """A recorded run appears in its family's report; one recorded for other kernel code is
    called stale by the reports' check (a kernel that changed must be run again)."""
    from cesym.report.check import stale_exhaustive
    from cesym.report.render import _exhaustive_section, load_exhaustive

    c = case("log_cosh")
    (st,) = X.settings_for(c, [0.0], what=("value",))
    s = X.run_setting(st, jobs=1, limit=(3.0, 3.0001), task_bits=30)
    X.record([s], reports_dir=tmp_path)
    records = load_exhaustive(tmp_path)
    assert list(records) == ["log_cosh.json"]
    text = "\n".join(_exhaustive_section("log_cosh", records))
    assert "## Every float32 input" in text and f"| {s.inputs} |" in text
    assert stale_exhaustive(records) == []
    (name, per), = records.items()
    per[st.name]["digest"] = "0" * 16
    assert "recorded for other kernel code; run cesym verify --exhaustive log_cosh --label 0.0 --record" in stale_exhaustive(records)[0]
    with pytest.raises(ValueError, match="part of the inputs"):
        X.record([s], partial=True, reports_dir=tmp_path)


def test_the_stale_records_command_runs_that_setting_again(capsys):
    """The command a stale record names runs its variant at its label and parameters, whatever
    they are (a soft float32 label, a parameter off its default): what was recorded, not the
    defaults."""
    import shlex

    from cesym.cli import main
    from cesym.report.check import rerun_command

    (st,) = X.settings_for(case("binary_crossentropy", from_logits=True), [0.3], params={"label_smoothing": 0.25}, what=("value",))
    cmd = rerun_command({"case": st.case, "label": st.label, "params": [list(p) for p in st.params], "what": st.what})
    argv = shlex.split(cmd)
    assert argv[:3] == ["cesym", "verify", "--exhaustive"] and argv[-1] == "--record"
    assert main([*argv[1:-1], "--output", "value", "--range", "2", "2", "--jobs", "1"]) == 0
    assert f"{st.name}: 1 float32 inputs" in capsys.readouterr().out


def test_soft_labels_are_the_float32_the_kernel_sees():
    """A label of 0.3 is float32(0.3) in the float32 arrays the kernel is given: the reference
    must take that number (0.3 itself gave half the inputs 'not correctly rounded')."""
    c = case("binary_crossentropy", from_logits=True)
    (st,) = X.settings_for(c, [0.3], what=("value",))
    assert st.label == float(np.float32(0.3))
    s = X.run_setting(st, jobs=1, limit=(2.0, 2.0002), task_bits=30)
    n, bad, _ = _pointwise(st, 2.0, 2.0002)
    assert s.not_correctly_rounded == bad <= 2


def test_exact_ties_are_decided_without_the_ball_reference():
    """Huber at δ = 1, label 0: |p| - 1/2 for |p| in [2^23, 2^24) lies exactly halfway between two
    float32 numbers (2^23 inputs a sign). The exact-ends pass sees each tie as one: no input of
    such a block goes to the ball reference, and each is rounded to even."""
    (st,) = X.settings_for(case("huber"), [0.0], what=("value",))
    s = X.run_setting(st, jobs=1, limit=(2.0**23, 2.0**23 + 2.0**10), task_bits=12)
    assert s.inputs > 0 and s.reference == 0 and s.tier1 == s.inputs
    assert s.not_correctly_rounded == 0 and not s.unresolved


@pytest.mark.parametrize("x, expected", [(-2560.0, 768.0000610351562), (-2.1267647932558654e+38, 6.380294886827836e+37)])
def test_a_boundary_beyond_2560_bits_is_decided_by_the_sign_of_the_rest(x, expected):
    """Label 0.3 (float32), logit x far below 0: the value is -t·x, exactly a float32 midpoint
    here, plus log1p(e^x) > 0, which no 2560-bit ball separates from it. The rational part is
    summed exactly and the rest's sign decides: the float32 above the midpoint."""
    (st,) = X.settings_for(case("sigmoid_cross_entropy_with_logits"), [0.3], what=("value",))
    problem = X._problem(st)
    got = X.decide_float32(problem, x)
    assert got is not None and got[0] == expected
    t = float(np.float32(0.3))
    below = float(np.nextafter(np.float32(expected), np.float32(0)))
    assert sp.Rational(-x) * sp.Rational(t) == (sp.Rational(below) + sp.Rational(expected)) / 2  # on the midpoint


@pytest.mark.parametrize("x, expected", [(1.25 * 2.0**-24, -33554432.0), (2.5 * 2.0**25, 1.0)])
def test_a_tie_the_stable_form_gives_as_a_rational_is_rounded_to_even(x, expected):
    """Poisson, label 2.5 (not a recorded setting): the gradient 1 - y/p is a rational at every
    float input, and a tie at these two, -33554431 and 1 - 2^-25, where the definition's ball
    straddles the midpoint at every precision. The rational decides: to even. (Both inputs were
    unresolved, and the exhaustive run failed, before the tie-break took an all-rational form.)"""
    (st,) = X.settings_for(case("poisson"), [2.5], what=("grad",))
    got = X.decide_float32(X._problem(st), x)
    assert got is not None and got[0] == expected
    assert np.float32(expected).view(np.uint32) & 1 == 0  # the even neighbour
    s = X.run_setting(st, jobs=1, limit=(x, float(np.nextafter(np.float32(x), np.float32(np.inf)))), task_bits=12)
    assert s.inputs == 2 and not s.unresolved and s.not_correctly_rounded == 0


@pytest.mark.parametrize("off, expected", [(sp.Rational(1, 2**40), None), (-sp.Rational(1, 2**40), None),
                                           (sp.exp(-2**20), -33554430.0), (-sp.exp(-2**20), -33554432.0)])
def test_the_tie_break_decides_only_where_the_split_meets_the_definitions_ball(monkeypatch, off, expected):
    """Poisson's gradient at label 2.5, p = 1.25·2^-24: the definition's 2560-bit ball straddles
    the tie -33554431. The split decides for the definition only where the two agree (their
    balls meet): a stable form moved off the exact value by 2^-40 (its ball disjoint from the
    definition's) decides nothing; one moved by
    ±e^(-2^20) (inside it, and far below any ball's width) is decided by that rest's sign, to
    the neighbour on its side."""
    import dataclasses

    (st,) = X.settings_for(case("poisson"), [2.5], what=("grad",))
    problem = X._problem(st)
    x = 1.25 * 2.0**-24
    seen = []
    tie_break = X._tie_break
    monkeypatch.setattr(X, "_tie_break", lambda *a: seen.append(a) or tie_break(*a))
    assert X.decide_float32(problem, x)[0] == -33554432.0  # the form as generated: the tie, to even
    ((_, _, a, b),) = seen
    got = tie_break(dataclasses.replace(problem, expr=problem.expr + off), x, a, b)
    assert (got if got is None else got[0]) == expected


def test_a_label_that_defines_no_loss_is_refused_and_not_the_default():
    """A percentage error divides by its label: at the real labels' default 0 it is defined
    nowhere (SymPy's complex infinity at every input), so the default is 1, and an explicit 0 is
    refused in words naming the label (it was a sweep of NaN against zoo)."""
    c = case("mean_absolute_percentage_error")
    assert {st.label for st in X.settings_for(c)} == {1.0}
    assert {st.label for st in X.settings_for(case("mean_squared_error"))} == {0.0}
    with pytest.raises(ValueError, match=r"label 0\.0: the loss is not defined at any input"):
        X.settings_for(c, [0.0])


def test_a_loss_of_the_rows_direction_is_not_swept():
    """The cosine similarity of a row of one element is -sign(y)·sign(p): its sweep would check
    two numbers, and at p = 0, where neither value nor gradient is defined, the one-element
    gradient SymPy simplifies to 0 was taken for the exact value (2 inputs "not correctly
    rounded"). It is refused with the reason; a loss that is not scale-invariant is not."""
    with pytest.raises(ValueError, match="depends on the sign of the prediction alone"):
        X.settings_for(case("cosine_similarity"), [1.0])
    assert X.settings_for(case("dice"), [1.0])


def test_cli_range_takes_negative_numbers_in_any_notation(capsys):
    """argparse takes -1e-44 for an option unless told: --range -1e-44 1e-44 was a usage error."""
    from cesym.cli import main

    assert main(["verify", "--exhaustive", "mean_squared_error", "--range", "-1e-44", "1e-44", "--label", "-2.5e-3", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "mean_squared_error value label=-0.0025" in out and "32 inputs in 2 setting(s); 0 not correctly rounded; 0 unresolved" in out


def test_cli_runs_one_variant_by_its_id(capsys):
    """A record names a variant (binary_crossentropy[from_logits=True]); --exhaustive takes that
    name and runs that variant alone, where the family's name runs both."""
    from cesym.cli import main

    one = "binary_crossentropy[from_logits=True]"
    assert main(["verify", "--exhaustive", one, "--label", "1", "--output", "value", "--range", "1", "1", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{one} value label=1" in out and "1 inputs in 1 setting(s)" in out
    assert main(["verify", one, "--quick"]) == 2  # a plain verify names families and kernels
    assert "unknown kernel name" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["ties", "distinct", "few", "none"])
def test_largest_errors_are_the_same_on_every_machine(kind):
    """The worst inputs kept per chunk are the largest errors above the floor, the first
    positions among equal ones: what sorting by (-error, position) keeps, whatever partition
    algorithm NumPy dispatches (a kernel exact everywhere has 2^22 ties per chunk)."""
    rng = np.random.default_rng(4)
    errs = {"ties": np.zeros(5000), "distinct": rng.random(5000), "few": np.r_[np.full(4990, -1.0), rng.integers(0, 3, 10) / 4],
            "none": np.full(50, -1.0)}[kind]
    errs[::7] = np.where(kind == "ties", errs[::7], 0.5)  # ties inside a spread too
    for floor in (-0.5, 0.25):
        got = X._largest(errs, floor, 8)
        above = np.flatnonzero(errs > floor)
        want = above[np.lexsort((above, -errs[above]))][:8]
        assert sorted(got.tolist()) == sorted(want.tolist())


def test_midpoints_of_a_product_past_float64s_reach_are_decided_by_double_doubles():
    """MAPE at label 1 is 100·|p - 1|. From |p| ≈ 2^45 on, 100 is below the float64 intervals'
    width there, and for one input in 32, 100·p is exactly a float32 midpoint (100 = 4·25): the
    exact value lies 100 below it. The definition on double-double intervals decides each (no
    input goes to the ball reference), rounding down; a sample agrees with the balls."""
    (st,) = X.settings_for(case("mean_absolute_percentage_error"), [1.0], what=("value",))
    s = X.run_setting(st, jobs=1, limit=(2.0**60, 2.0**60 + 2.0**50), task_bits=12)
    assert s.inputs > 0 and s.dd > 0 and s.reference == 0 and s.tier1 + s.dd == s.inputs
    assert s.not_correctly_rounded == 0 and not s.unresolved and s.sampled > 0
    problem = X._problem(st)
    x = 2.0**60 * (1 + 2.0**-20)  # 100·x = 25·(2^23 + 8)·2^39: 28 bits, the four past float32's 24 are 1000
    r, ok, lo, hi = X._dd_tier(problem, np.array([x]))
    m = 100 * x
    below = np.float32(m)
    below = below if float(below) < m else np.nextafter(below, np.float32(0))
    assert (float(below) + float(np.nextafter(below, np.float32(np.inf)))) / 2 == m  # a float32 midpoint
    assert ok[0] and float(r[0]) == X.decide_float32(problem, x)[0] == float(below)
