"""A user's own loss: one file of mathematics gives kernels, verification and a report.

The loss written here exists nowhere in the repository; nothing but the file is written. The
shipped ``examples/`` go through the same commands.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import mpmath
import numpy as np
import pytest

from cesym import cli
from cesym.define.loss import DerivationError, load_family
from cesym.verify.ulps import ulp_error

ROOT = Path(__file__).resolve().parent.parent

# The Brier score of σ(x) against a label, σ written out as people write it.
BRIER = textwrap.dedent(
    r'''
    r"""The Brier score on logits: :math:`\frac1C \sum_c (\sigma(x_c) - y_c)^2`."""

    from sympy import exp

    from cesym.define.declare import AXIS, Public, Variant
    from cesym.define.loss import Loss
    from cesym.define.primitives import C, Elem, RowSum

    y = Elem("y")
    x = Elem("x")

    LOSSES = [Loss(family="brier_logits", variant="logits", title="Brier score on logits",
                   value=RowSum((1 / (1 + exp(-x)) - y) ** 2) / C, prediction=x, label=y)]

    PUBLIC = [Public(name="brier_score", summary="The Brier score of σ(y_pred) against y_true, mean over ``axis``.",
                     variants=(Variant("logits"),), labels="binary", keywords=(AXIS,))]
    '''
)


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(f"user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generated(tmp_path: Path, name: str, text: str):
    """``text`` written as ``<tmp>/mine/<name>.py``, generated into ``<tmp>/kernels`` (exit 0) and
    imported: (the derivations directory, the module)."""
    src, out = tmp_path / "mine", tmp_path / "kernels"
    src.mkdir()
    (src / f"{name}.py").write_text(text)
    assert cli.main(["generate", "--derivations", str(src), "--out", str(out)]) == 0
    return src, _import(out / f"{name}.py")


def _brier(y: float, x: float) -> mpmath.mpf:
    with mpmath.workdps(50):
        return (1 / (1 + mpmath.exp(-mpmath.mpf(x))) - y) ** 2


def test_a_new_loss_end_to_end(tmp_path):
    src, out, rep = tmp_path / "mine", tmp_path / "kernels", tmp_path / "reports"
    src.mkdir()
    (src / "brier_logits.py").write_text(BRIER)
    assert not any("brier" in p.name for p in ROOT.rglob("*.py") if ".venv" not in p.parts)

    assert cli.main(["generate", "--derivations", str(src), "--out", str(out)]) == 0
    mod = _import(out / "brier_logits.py")
    assert mod.__all__ == ["brier_score", "brier_score_grad", "brier_score_value_and_grad"]
    # stable where the written-out form is not: σ(40) - 1 rounds to 0, the loss is e^-80
    y = np.array([[1.0, 0.0, 1.0]])
    x = np.array([[40.0, -40.0, 3.0]])
    v = mod.brier_score(y, x)
    exact = sum(_brier(a, b) for a, b in zip(y[0], x[0])) / 3
    assert abs(v[0] - float(exact)) <= 4 * np.spacing(float(exact))
    v32, g32 = mod.brier_score_value_and_grad(y.astype(np.float32), x.astype(np.float32))
    assert v32.dtype == g32.dtype == np.float32 and g32.shape == (1, 3)
    with pytest.raises(ValueError, match="y_true"):
        mod.brier_score(np.ones((1, 2)), x)
    assert np.isnan(mod.brier_score([[1.0]], [[np.nan]])[0])
    assert mod.brier_score([[1.0, 0.0]], [[np.inf, -np.inf]])[0] == 0.0  # the limits at ±inf

    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras", "--jobs", "1"]) == 0
    from cesym.report.render import write_reports

    written = write_reports(rep, points=48, keras=False, derivations=src)
    assert {"README.md", "brier_logits.md", "measured.json"} <= set(written)
    text = (rep / "brier_logits.md").read_text()
    assert "No Keras counterpart is declared" in text and "sigmoid-minus-label" in text
    assert write_reports(rep, check=True, points=48, keras=False, derivations=src) == []


def test_a_user_module_needs_numpy_only(tmp_path):
    src, out = tmp_path / "mine", tmp_path / "kernels"
    src.mkdir()
    (src / "brier_logits.py").write_text(BRIER)
    assert cli.main(["generate", "--derivations", str(src), "--out", str(out)]) == 0
    code = (
        f"import sys; sys.path.insert(0, {str(out)!r}); import brier_logits; "
        "print(float(brier_logits.brier_score([[1.0]], [[0.0]])[0])); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sympy', 'mpmath', 'tensorflow', 'keras'}))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert r.stdout.split() == ["0.25", "[]"]


def test_the_examples_generate_and_verify(tmp_path):
    assert cli.main(["generate", "--derivations", str(ROOT / "examples"), "--out", str(tmp_path)]) == 0
    assert cli.main(["verify", "--derivations", str(ROOT / "examples"), "--quick", "--no-keras", "--jobs", "1"]) == 0


def test_a_file_without_public_gets_one_function_per_loss(tmp_path):
    import inspect

    fam = load_family(ROOT / "examples" / "margin_logistic.py")
    (pub,) = fam.public
    assert pub.name == "margin_logistic" and [k.name for k in pub.keywords] == ["margin", "axis"]
    assert cli.main(["generate", "--derivations", str(ROOT / "examples"), "--out", str(tmp_path)]) == 0
    mod = _import(tmp_path / "margin_logistic.py")
    assert str(inspect.signature(mod.margin_logistic)) == "(y_true, y_pred, margin, axis=-1)"
    with pytest.raises(ValueError, match=r"margin: expected a value in \[0, 4\]"):
        mod.margin_logistic([[1.0]], [[0.0]], margin=5.0)


def test_labels_without_public_follow_the_mathematics(tmp_path):
    """A loss affine in its label (BCE written out: the labels weigh its terms) gets labels in
    [0, 1]; one that is not (the margin logistic loss, a regression loss) real ones. With real
    labels, BCE written out was measured at labels of -1578, where its terms cancel."""
    (tmp_path / "bce.py").write_text(textwrap.dedent(
        '''
        from sympy import exp, log
        from cesym.define import C, Elem, Loss, RowSum
        y, x = Elem("y"), Elem("x")
        LOSSES = [Loss(family="bce", variant="logits", title="BCE written out",
                       value=-RowSum(y * log(exp(x) / (1 + exp(x))) + (1 - y) * log(1 / (1 + exp(x)))) / C,
                       prediction=x, label=y),
                  Loss(family="bce", variant="mse", title="squared error", value=RowSum((x - y) ** 2) / C,
                       prediction=x, label=y)]
        '''
    ))
    assert [p.labels for p in load_family(tmp_path / "bce.py").public] == ["binary", "real"]
    assert load_family(ROOT / "examples" / "margin_logistic.py").public[0].labels == "real"


@pytest.mark.parametrize(
    "public, message",
    [
        ('[Public(name="f", summary="", variants=(Variant("nope"),), labels="binary")]', "variant 'nope' is not in LOSSES"),
        ('[Public(name="logits_value", summary="", variants=(Variant("logits"),), labels="binary")]', "is a generated kernel's too"),
        ('[Public(name="f", summary="", variants=(Variant("logits", {"from_logits": True}),), labels="binary")]', "not a flag keyword"),
        ('[Public(name="f", summary="", variants=(Variant("logits"),), labels="dense")]', "labels must be one of"),
    ],
)
def test_a_bad_declaration_is_one_line_naming_the_file(tmp_path, public, message):
    text = BRIER.replace(BRIER[BRIER.index("PUBLIC = ") :], f"PUBLIC = {public}\n")
    path = tmp_path / "brier_logits.py"
    path.write_text(text)
    with pytest.raises(DerivationError, match=message) as e:
        load_family(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_flag_value_without_a_kernel_is_a_clear_error(tmp_path):
    """A file may offer a kernel for one value of a flag only (logits, not probabilities): the
    other value is a ValueError naming the flag and what is offered, not a StopIteration."""
    text = BRIER.replace(
        'variants=(Variant("logits"),), labels="binary", keywords=(AXIS,))',
        'variants=(Variant("logits", {"from_logits": True}),), labels="binary", '
        'keywords=(Keyword("from_logits", False, "flag"), AXIS))',
    ).replace("from cesym.define.declare import AXIS, Public, Variant", "from cesym.define.declare import AXIS, Keyword, Public, Variant")
    _, mod = _generated(tmp_path, "brier_logits", text)
    assert float(mod.brier_score([[1.0]], [[0.0]], from_logits=True)[0]) == 0.25
    with pytest.raises(ValueError, match=r"brier_score: no kernel for from_logits=False; available: from_logits=True"):
        mod.brier_score([[1.0]], [[0.0]])


# A Jensen-Shannon divergence as people write it, in three states of declaration.
JS = textwrap.dedent(
    r'''
    from cesym.define import Elem, Loss, RowSum

    y = Elem("y")
    p = Elem("p")
    m = (y + p) / 2

    LOSSES = [Loss(family="js_div", variant="probs", title="Jensen-Shannon divergence",
                   value=RowSum(y * log(y / m) + p * log(p / m)) / 2, prediction=p, label=y{extra})]
    '''
).replace("from cesym.define import", "from sympy import log\nfrom cesym.define import")


def test_a_definition_failing_on_its_domain_says_what_it_lacks(tmp_path, capsys):
    """The domain check's one line names the loss, the point, and the declaration that usually
    fixes it: probabilities declared as reals. Declared on probabilities without weights, the
    label multiplied into a log is taken as a weight (0·log 0 = 0: the generate line had asked
    for weights={y: y}), and the kernel is the one of the declared weights."""
    src = tmp_path / "mine"
    src.mkdir()
    (src / "js_div.py").write_text(JS.replace("{extra}", ""))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(tmp_path / "k")]) == 2
    err = capsys.readouterr().err
    assert "js_div.probs: definition:" in err
    assert re.search(r"not real \(logarithm of a negative number\).*Loss\(domain='real'\) takes predictions anywhere on the real line", err), err
    (tmp_path / "plain").mkdir()
    (tmp_path / "declared").mkdir()
    _, plain = _generated(tmp_path / "plain", "js_div", JS.replace("{extra}", ', domain="probability"'))
    _, declared = _generated(tmp_path / "declared", "js_div", JS.replace("{extra}", ', domain="probability", weights={y: y}'))
    for y, p in (([0.0, 1.0, 0.0], [0.0, 0.5, 0.5]), ([0.3, 0.7, 0.0], [1e-300, 0.2, 0.8])):
        a, b = plain.js_div_value_and_grad([y], [p]), declared.js_div_value_and_grad([y], [p])
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and np.isfinite(a[1]).all()


def test_a_zero_label_weight_on_logits_says_where_the_convention_holds(tmp_path, capsys):
    """KL(y || softmax(x)) with its entropy term y·log y, on logits: the weights' 0·log 0 = 0
    holds on probabilities only, and the line says so (and that the term can go)."""
    src = tmp_path / "mine"
    src.mkdir()
    (src / "kl_logits.py").write_text(textwrap.dedent(
        '''
        from sympy import exp, log
        from cesym.define import Elem, Loss, RowSum

        y, x = Elem("y"), Elem("x")
        LOSSES = [Loss(family="kl_logits", variant="logits", title="KL divergence from logits",
                       value=RowSum(y * log(y)) - RowSum(y * log(exp(x) / RowSum(exp(x)))),
                       prediction=x, label=y, weights={y: y})]
        '''
    ))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(tmp_path / "k")]) == 2
    err = capsys.readouterr().err
    assert re.search(r"not finite.*0·log 0.*holds on Loss\(domain='probability'\) only", err), err


PSEUDO_HUBER = textwrap.dedent(
    r'''
    from sympy import Symbol, sqrt

    from cesym.define import C, Elem, Loss, RowSum

    y = Elem("y")
    x = Elem("x")
    delta = Symbol("delta", positive=True)

    LOSSES = [Loss(family="pseudo_huber", variant="real", title="pseudo-Huber loss",
                   value=RowSum(delta**2 * (sqrt(1 + ((x - y) / delta) ** 2) - 1)) / C,
                   prediction=x, label=y, params=(delta,), param_ranges={delta: (0.1, 4.0)})]
    '''
)


def test_a_pseudo_huber_loss_written_with_a_square_root(tmp_path):
    """δ²(√(1 + (e/δ)²) - 1) as people write it: generate finds hypot forms (it refused the
    loss before, e² overflowing at e = 1e200), the values hold at both ends, and the extremes
    grid passes."""
    src, mod = _generated(tmp_path, "pseudo_huber", PSEUDO_HUBER)
    assert "hypot" in mod.DERIVED["real"]["value_rules"]
    for e in (1e200, 1e-8, 1.0, -3.5):
        got = float(mod.pseudo_huber([[0.0]], [[e]], delta=0.5)[0])
        with mpmath.workdps(60):
            u = mpmath.mpf(e) / mpmath.mpf(0.5)
            want = mpmath.mpf(0.25) * u * u / (mpmath.sqrt(1 + u * u) + 1)
        assert abs(got - float(want)) <= 2 * np.spacing(float(want)), (e, got, want)
    g = mod.pseudo_huber_grad([[0.0]], [[1e300]], delta=0.1)
    assert g[0, 0] == 0.1  # δ·u/√(1 + u²) with u = 1e301 past the largest float: its limit
    assert cli.main(["verify", "--derivations", str(src), "--extremes"]) == 0


HELLINGER = textwrap.dedent(
    '''
    from sympy import sqrt
    from cesym.define import Elem, Loss, RowSum

    y, p = Elem("y"), Elem("p")
    LOSSES = [Loss(family="hellinger", variant="probabilities", title="squared Hellinger distance",
                   value=RowSum((sqrt(p) - sqrt(y)) ** 2) / 2, prediction=p, label=y, domain="probability")]
    '''
)


def test_a_hellinger_distance_has_its_limit_where_a_class_is_absent(tmp_path):
    """d/dp of (√p - √y)²/2 is (√p - √y)/(2√p): 0/0 = NaN at p = y = 0 (a class absent from both
    distributions), where the limit in p is 1/2; -inf at p = 0 under y > 0. The split-quotient
    rule gives both, and verify's extended reals (which found the NaN) pass."""
    src, mod = _generated(tmp_path, "hellinger", HELLINGER)
    assert "split-quotient" in mod.DERIVED["probabilities"]["grad_rules"]
    g = mod.hellinger_grad([[0.0, 0.25, 0.75]], [[0.0, 0.0, 1.0]])
    assert g[0, 0] == 0.5 and g[0, 1] == -np.inf
    want = 0.5 - np.sqrt(0.75) / 2  # (√1 - √0.75)/(2√1): the first form, where it is a number
    assert abs(g[0, 2] - want) <= 2 * np.spacing(want)
    assert cli.main(["verify", "--derivations", str(src), "--quick"]) == 0


GAUSSIAN = textwrap.dedent(
    '''
    from sympy import exp
    from cesym.define import C, Elem, Loss, RowSum

    y, s = Elem("y"), Elem("s")
    LOSSES = [Loss(family="gaussian_logvar", variant="logvar", title="Gaussian NLL in the log variance",
                   value=RowSum((y ** 2 * exp(-s) + s) / 2) / C, prediction=s, label=y)]
    '''
)


def test_a_gaussian_likelihood_in_the_log_variance(tmp_path, capsys):
    """(y²e^(-s) + s)/2 as people write it. Its gradient (1 - y²e^(-s))/2 cancels where the
    variance fits the residual (generate refused the loss: 0 for 5e-301 at y = 1, s = 1e-300);
    0·e^800 at y = 0 is 0; y²e^(-s) past the largest float but within the mean's 1/C is finite."""
    src, mod = _generated(tmp_path, "gaussian_logvar", GAUSSIAN)
    rules = mod.DERIVED["logvar"]["grad_rules"]
    assert {"one-minus-scaled-exp", "scale-inside"} <= set(rules)

    def exact_grad(yv, sv, c):  # 1 - y²e^(-s) = -expm1(log y² - s), which mpmath keeps at s = 1e-300
        with mpmath.workdps(60):
            if yv == 0:
                return mpmath.mpf(1) / (2 * c)
            return -mpmath.expm1(2 * mpmath.log(abs(mpmath.mpf(yv))) - mpmath.mpf(sv)) / (2 * c)

    for row_y, row_s in (([1.0], [1e-300]), ([3.0], [float(np.log(9.0))]), ([0.0, 72.28841470554136, 2.0], [-800.0, -703.2896076049268, 0.5])):
        g = mod.gaussian_logvar_grad([row_y], [row_s])[0]
        for j, (yv, sv) in enumerate(zip(row_y, row_s)):
            want = exact_grad(yv, sv, len(row_y))
            kappa = abs(sv) * abs(mpmath.mpf(yv) ** 2 * mpmath.exp(-mpmath.mpf(sv))) / abs(2 * len(row_y) * want)
            assert ulp_error(float(g[j]), want, np.float64) <= 8 + 4 * float(kappa), (yv, sv, g[j], want)
    v = mod.gaussian_logvar([[0.0, 1.0]], [[-800.0, 0.0]])
    assert float(v[0]) == -199.75  # (0·e^800 - 800)/2 and (1 + 0)/2, over 2
    assert cli.main(["verify", "--derivations", str(src), "--quick"]) == 0
    # the exhaustive first tier has no interval rule for ScaledExp yet: one line, exit 2, no traceback
    capsys.readouterr()
    args = ["verify", "--derivations", str(src), "--exhaustive", "gaussian_logvar", "--label", "3", "--range", "2", "2.5", "--jobs", "1"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "no interval rule for ScaledExp" in err and "internal error" not in err and "Traceback" not in err, err


ROBUST = textwrap.dedent(
    '''
    from sympy import Symbol, log, sqrt
    from cesym.define import C, Elem, Loss, RowSum

    y, p = Elem("y"), Elem("p")
    eps, nu = Symbol("eps", positive=True), Symbol("nu", positive=True)
    LOSSES = [
        Loss(family="robust", variant="charbonnier", title="Charbonnier loss",
             value=RowSum(sqrt((y - p) ** 2 + eps ** 2) - eps) / C, prediction=p, label=y,
             params=(eps,), param_ranges={eps: (1e-3, 1.0)}),
        Loss(family="robust", variant="student", title="Student-t negative log likelihood",
             value=RowSum((nu + 1) / 2 * log(1 + (y - p) ** 2 / nu)) / C, prediction=p, label=y,
             params=(nu,), param_ranges={nu: (1.0, 30.0)}),
    ]
    '''
)


def test_a_charbonnier_and_a_student_t_loss_generate(tmp_path):
    """√(e² + ε²) - ε and log(1 + e²/ν), with the constant beside the square: generate refused
    both (e² overflows at e = 1e200); they are ε·(√(1 + (e/ε)²) - 1) and log1p((e/√ν)²) now."""
    src, mod = _generated(tmp_path, "robust", ROBUST)
    assert "hypot" in mod.DERIVED["charbonnier"]["value_rules"]
    assert "log1p-square" in mod.DERIVED["student"]["value_rules"]
    got = float(mod.robust_charbonnier([[0.0]], [[1e200]], eps=0.5)[0])
    assert abs(got - 1e200) <= 2 * np.spacing(1e200)
    got = float(mod.robust_student([[0.0]], [[1e200]], nu=4.0)[0])
    with mpmath.workdps(40):
        want = mpmath.mpf(2.5) * mpmath.log(1 + mpmath.mpf(1e200) ** 2 / 4)
    assert abs(got - float(want)) <= 2 * np.spacing(float(want))
    assert cli.main(["verify", "--derivations", str(src), "--quick"]) == 0


FOCAL_WRITTEN = textwrap.dedent(
    '''
    from sympy import Symbol, exp, log
    from cesym.define import AXIS, C, Elem, Keyword, Loss, Public, RowSum, Variant

    y, x, g = Elem("y"), Elem("x"), Symbol("g", nonnegative=True)
    p = 1 / (1 + exp(-x))
    LOSSES = [Loss(family="focal_written", variant="logits", title="binary focal, sigma written out",
                   value=-RowSum(y * (1 - p) ** g * log(p) + (1 - y) * p ** g * log(1 - p)) / C,
                   prediction=x, label=y, params=(g,), param_ranges={g: (0.0, 5.0)})]
    PUBLIC = [Public(name="focal_written", summary="binary focal loss", variants=(Variant("logits"),),
                     labels="binary", keywords=(Keyword("g", 2.0, "real", (0.0, 5.0), doc="gamma"), AXIS))]
    '''
)


def test_a_focal_loss_with_sigma_written_out(tmp_path):
    """p^γ with p = 1/(1 + e^{-x}) is (1 + e^{-x})^(-γ) to SymPy: written as exp(-γ·softplus(-x))
    (the pow-sigmoid rule), not (1 + e^{-x})^(-γ) through log1p, whose gradient at x = -800 was
    e^{800}·0 = NaN and made generate refuse the loss. Values at ±800 are the mathematics'."""
    src, mod = _generated(tmp_path, "focal_written", FOCAL_WRITTEN)
    y, x = np.array([[1.0, 0.0, 0.0]]), np.array([[800.0, -800.0, 3.0]])
    for gamma in (0.0, 0.5, 2.0):
        v = float(mod.focal_written(y, x, g=gamma)[0])
        gr = mod.focal_written_grad(y, x, g=gamma)
        with mpmath.workdps(60):
            def term(t, z):  # σ(±z) and log σ(±z) without 1 - σ(z), which rounds to 0 at z = 800
                def sig(u):
                    return 1 / (1 + mpmath.exp(-u))

                def log_sig(u):
                    return -mpmath.log1p(mpmath.exp(-u))

                a = t * sig(-z) ** gamma * log_sig(z) if t else 0
                b = (1 - t) * sig(z) ** gamma * log_sig(-z) if t != 1 else 0
                return -(a + b) / 3
            want = sum(term(t, z) for t, z in zip(y[0], x[0]))
            dwant = [mpmath.diff(lambda z, t=t: term(t, z), mpmath.mpf(z)) for t, z in zip(y[0], x[0])]
        assert abs(v - float(want)) <= 4 * np.spacing(float(want)), (gamma, v, want)
        assert np.all(np.isfinite(gr)), (gamma, gr)
        for a, b in zip(gr[0], dwant):
            assert abs(a - float(b)) <= 8 * np.spacing(abs(float(b))) + 1e-300, (gamma, gr, dwant)
    assert cli.main(["verify", "--derivations", str(src), "--extremes"]) == 0


def test_a_distance_of_unit_vectors_generates(tmp_path):
    """Σ(p/‖p‖ - y/‖y‖)², the unit vectors inside a row sum: its gradient moves every element
    through ‖p‖ (generate had refused it, its derivative taken as if ‖p‖ were the element's
    own); the value at tiny rows of one element is 0, not the decimal rescue's 1e-100."""
    src, out = tmp_path / "mine", tmp_path / "kernels"
    src.mkdir()
    (src / "unit_l2.py").write_text(textwrap.dedent(
        '''
        from sympy import sqrt
        from cesym.define import Elem, Loss, RowSum
        y, p = Elem("y"), Elem("p")
        LOSSES = [Loss(family="unit_l2", variant="vec", title="distance of unit vectors",
                       value=RowSum((p / sqrt(RowSum(p ** 2)) - y / sqrt(RowSum(y ** 2))) ** 2), prediction=p, label=y)]
        '''
    ))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(out)]) == 0
    mod = _import(out / "unit_l2.py")
    assert mod.unit_l2([[-7.752344047604153e-192]], [[-7.752344047604163e-192]])[0] == 0.0
    y, p = np.array([[1.0, 2.0, -0.5]]), np.array([[0.3, -1.0, 4.0]])
    g = mod.unit_l2_grad(y, p)
    with mpmath.workdps(50):
        Y, P = [mpmath.mpf(v) for v in y[0]], [mpmath.mpf(v) for v in p[0]]

        def f(*q):
            nq, ny = mpmath.sqrt(sum(v * v for v in q)), mpmath.sqrt(sum(v * v for v in Y))
            return sum((a / nq - b / ny) ** 2 for a, b in zip(q, Y))

        want = [mpmath.diff(lambda t, j=j: f(*[t if i == j else P[i] for i in range(3)]), P[j]) for j in range(3)]
    assert np.allclose(g[0], [float(w) for w in want], rtol=1e-13, atol=0)


def test_log_one_minus_exp_gradient_past_the_overflow_of_expm1(tmp_path):
    """-y·log(1 - e^{-x}) + (1 - y)·x (the event at rate x happened at least once): the gradient
    -y/expm1(x) + 1 - y is e^{-x}/expm1(-x) (Log1mexp's derivative, which does not overflow past
    x = 709.8, where it had been 0 for about -1e-310), and 1 - y is summed before the
    prediction's term (at y = 1, a·y - y + 1 rounded a tiny a·y away)."""
    src, out = tmp_path / "mine", tmp_path / "kernels"
    src.mkdir()
    (src / "atleastone.py").write_text(textwrap.dedent(
        '''
        from sympy import exp, log
        from cesym.define import C, Elem, Loss, RowSum
        y, x = Elem("y"), Elem("x")
        LOSSES = [Loss(family="atleastone", variant="rate", title="at-least-one-event NLL",
                       value=RowSum(-y * log(1 - exp(-x)) + (1 - y) * x) / C, prediction=x, label=y,
                       domain="probability")]
        from cesym.define import AXIS, Public, Variant
        PUBLIC = [Public(name="atleastone", summary="at-least-one-event NLL", labels="binary",
                         variants=(Variant("rate", domain="positive"),), keywords=(AXIS,))]
        '''
    ))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(out)]) == 0
    mod = _import(out / "atleastone.py")
    for x in (30.0, 64.9, 730.0):
        g = float(mod.atleastone_grad([[1.0]], [[x]])[0, 0])
        want = -1 / mpmath.expm1(mpmath.mpf(x))
        assert g != 0 and abs(g - float(want)) <= 2 * np.spacing(abs(float(want))), (x, g, want)


def test_log_cosh_written_with_exponentials(tmp_path):
    """log((e^d + e^{-d})/2) is log cosh d (the cosh-sum rule): as a log of a sum of exponentials
    it had been |d| + log1p(e^{-2|d|}) - log 2, 0 at d = 2.7e-13 where the loss is 3.8e-26."""
    src, out = tmp_path / "mine", tmp_path / "kernels"
    src.mkdir()
    (src / "lc.py").write_text(textwrap.dedent(
        '''
        from sympy import exp, log
        from cesym.define import C, Elem, Loss, RowSum
        y, p = Elem("y"), Elem("p")
        LOSSES = [Loss(family="lc", variant="reg", title="log-cosh via exp",
                       value=RowSum(log((exp(p - y) + exp(y - p)) / 2)) / C, prediction=p, label=y)]
        '''
    ))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(out)]) == 0
    mod = _import(out / "lc.py")
    for d in (2.7e-13, 1e-4, 0.7, 30.0, 800.0):
        got = float(mod.lc([[0.0]], [[d]])[0])
        with mpmath.workdps(80):
            want = float(mpmath.log(mpmath.cosh(mpmath.mpf(d))))
        assert abs(got - want) <= 2 * np.spacing(want), (d, got, want)


def test_a_cauchy_loss_written_as_a_log_of_one_plus_a_square(tmp_path):
    """log(1 + (e/c)²): refused before (u² overflowed at e = 1e200); now Log1pSquare, within
    2 ulps of the mathematics from e = 1e-200 to 1e300, its gradient 2u/(1 + u²)/c finite.
    Past e = 9e307 (u = e/c overflows) and where p - y does (y = -9e307, p = 1.7e308) the
    float64 gradient was 0 for 2/e: an element of huge inputs in a block that overflowed is
    recomputed in decimal (:data:`cesym.kernels._rescue.HUGE`)."""
    src, out = tmp_path / "mine", tmp_path / "kernels"
    src.mkdir()
    (src / "cauchy.py").write_text(textwrap.dedent(
        '''
        from sympy import Symbol, log
        from cesym.define import C, Elem, Loss, RowSum
        y, p, c = Elem("y"), Elem("p"), Symbol("c", positive=True)
        LOSSES = [Loss(family="cauchy", variant="reg", title="Cauchy loss", value=RowSum(log(1 + ((p - y) / c) ** 2)) / C,
                       prediction=p, label=y, params=(c,), param_ranges={c: (0.1, 10.0)})]
        '''
    ))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(out)]) == 0
    mod = _import(out / "cauchy.py")
    for y, e in ((0.0, 1e-200), (0.0, 1e-8), (0.0, 0.3), (0.0, 2.0), (0.0, 1e200), (0.0, 1e300), (0.0, 1e308), (-9e307, 1.7e308), (1e308, -1e308)):
        got = float(mod.cauchy([[y]], [[e]], c=0.5)[0])
        g = float(mod.cauchy_grad([[y]], [[e]], c=0.5)[0, 0])
        with mpmath.workdps(80):
            u = (mpmath.mpf(e) - mpmath.mpf(y)) / mpmath.mpf(0.5)
            want, dwant = float(mpmath.log1p(u * u)), float(2 * u / (1 + u * u) / mpmath.mpf(0.5))
        assert abs(got - want) <= 2 * np.spacing(want), (e, got, want)
        assert abs(g - dwant) <= 4 * abs(np.spacing(dwant)), (y, e, g, dwant)


def test_a_softmax_with_a_temperature(tmp_path):
    """-Σ y·log(e^{z/T}/Σ e^{z/T}): its gradient's exponentials are shifted by max z/T as a plain
    softmax's are by max z (generate had refused it: e^{800/0.1} overflowed, NaN)."""
    src, out = tmp_path / "mine", tmp_path / "kernels"
    src.mkdir()
    (src / "temp_ce.py").write_text(textwrap.dedent(
        '''
        from sympy import Symbol, exp, log
        from cesym.define import AXIS, Elem, Keyword, Loss, Public, RowSum, Variant
        y, z, T = Elem("y"), Elem("z"), Symbol("T", positive=True)
        LOSSES = [Loss(family="temp_ce", variant="logits", title="tempered softmax CE",
                       value=-RowSum(y * log(exp(z / T) / RowSum(exp(z / T)))), prediction=z, label=y,
                       params=(T,), param_ranges={T: (0.1, 10.0)})]
        PUBLIC = [Public(name="temp_ce", summary="tempered CE", variants=(Variant("logits"),), labels="distribution",
                         keywords=(Keyword("T", 1.0, "real", (0.1, 10.0), doc="temperature"), AXIS))]
        '''
    ))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(out)]) == 0
    mod = _import(out / "temp_ce.py")
    y, z = np.array([[0.25, 0.75, 0.0]]), np.array([[800.0, -800.0, 3.0]])
    v, g = mod.temp_ce_value_and_grad(y, z, T=0.1)
    with mpmath.workdps(60):
        u = [mpmath.mpf(a) / mpmath.mpf(0.1) for a in z[0]]
        lse = max(u) + mpmath.log(sum(mpmath.exp(a - max(u)) for a in u))
        want = sum(t * (lse - a) for t, a in zip(y[0], u))
        sm = [mpmath.exp(a - lse) for a in u]
        dwant = [(s * sum(y[0]) - t) / mpmath.mpf(0.1) for s, t in zip(sm, y[0])]
    assert abs(float(v[0]) - float(want)) <= 2 * np.spacing(float(want))
    assert np.all(np.isfinite(g)) and np.allclose(g[0], [float(d) for d in dwant], rtol=1e-14, atol=1e-300)


def test_a_value_with_float_constants_clipped_as_keras_clips(tmp_path):
    """min(max(p, 1e-7), 1 - 1e-7) inside a user's BCE: the float constants are printed for the
    interval evaluations as man·2^exp (SymPy's raw mpf tuple made the domain check fail with an
    empty NotImplementedError), and the loss generates and verifies."""
    src, out = tmp_path / "mine", tmp_path / "kernels"
    src.mkdir()
    (src / "clipped.py").write_text(textwrap.dedent(
        '''
        from sympy import Float, Max, Min, log
        from cesym.define import C, Elem, Loss, RowSum
        y, p = Elem("y"), Elem("p")
        q = Min(Max(p, Float(1e-7)), 1 - Float(1e-7))
        LOSSES = [Loss(family="clipped", variant="probs", title="clipped BCE",
                       value=-RowSum(y * log(q) + (1 - y) * log(1 - q)) / C, prediction=p, label=y, domain="probability")]
        '''
    ))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(out)]) == 0
    mod = _import(out / "clipped.py")
    got = float(mod.clipped([[1.0]], [[0.0]])[0])
    assert abs(got + float(mpmath.log(mpmath.mpf(1e-7)))) <= 2 * np.spacing(got)


def test_a_pinball_loss_decides_its_kink_exactly(tmp_path):
    """max(q·e, (q - 1)·e), e = y - p: its gradient is a Heaviside of a ring expression, so
    generate writes ``reg_kinks`` and the rescue decides the side exactly. The subnormal
    residual e = 5e-324 with q = 1/2 made q·e and (q - 1)·e round to 0 and -0, a tie, and the
    gradient the tie's where it is -q/C."""
    src, out = tmp_path / "mine", tmp_path / "kernels"
    src.mkdir()
    (src / "pinball.py").write_text(textwrap.dedent(
        '''
        from sympy import Max, Symbol
        from cesym.define import C, Elem, Loss, RowSum
        y, p, q = Elem("y"), Elem("p"), Symbol("q", positive=True)
        LOSSES = [Loss(family="pinball", variant="reg", title="pinball loss", value=RowSum(Max(q * (y - p), (q - 1) * (y - p))) / C,
                       prediction=p, label=y, params=(q,), param_ranges={q: (0.05, 0.95)})]
        '''
    ))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(out)]) == 0
    mod = _import(out / "pinball.py")
    assert hasattr(mod, "reg_kinks") and hasattr(mod, "reg_kink_scales")
    # the gradient hands its kink arguments to the rescue instead of the rescue computing them
    assert "_rt.kink(0, " in inspect.getsource(mod.reg_grad) and "_rt.kink(0, " in inspect.getsource(mod.reg_value_and_grad)
    y, p = np.array([[5e-324, 0.0, 1.0]]), np.array([[0.0, 5e-324, 1.0 - 2**-53]])
    g = mod.pinball_grad(y, p, q=0.5)[0]
    # e = 5e-324 > 0: d/dp q·e = -q; e = -5e-324 < 0: d/dp (q - 1)·e = 1 - q; e = 2^-53 > 0: -q
    assert g.tolist() == [-0.5 / 3, 0.5 / 3, -0.5 / 3], g


JENSEN_SHANNON = textwrap.dedent(
    '''
    from sympy import log
    from cesym.define import Elem, Loss, RowSum

    y, p = Elem("y"), Elem("p")
    m = (y + p) / 2
    LOSSES = [Loss(family="jensen_shannon", variant="probabilities", title="Jensen-Shannon divergence",
                   value=RowSum(y * log(y / m) + p * log(p / m)) / 2, prediction=p, label=y,
                   weights={y: y}, domain="probability")]
    '''
)


def test_a_jensen_shannon_divergence_written_with_its_mixture(tmp_path):
    """JS(y‖p) with m = (y + p)/2 as people write it. Generate refused it: m underflows at
    p = 5e-324 beside y = 0 (log(p/m) inf, exact log 2); then, its 1/2 taken onto the numerator
    (log(2p/(p + y))), p + y rounds away p - y where p is near y (a divergence of 3.8e-17 came out
    -1.7e-17): the log is given p - y. Its gradient's label terms cancel to log(2p/(p + y))/2,
    0/0 at p = y = 0, where the limit in p is log 2/2."""
    src, mod = _generated(tmp_path, "jensen_shannon", JENSEN_SHANNON)
    assert "log-ratio-at-zero" in mod.DERIVED["probabilities"]["grad_rules"]
    y, p = [[0.0, 1.0, 0.0]], [[1.1102230246251565e-16, 1 - 2.0**-53, 1e-300]]
    with mpmath.workdps(60):
        Y, P = ([mpmath.mpf(v) for v in r[0]] for r in (y, p))
        want = sum((a * mpmath.log(2 * a / (a + b)) if a else 0) + (b * mpmath.log(2 * b / (a + b)) if b else 0) for a, b in zip(Y, P)) / 2
        wgrad = [mpmath.log(2 * b / (a + b)) / 2 for a, b in zip(Y, P)]
    v, g = mod.jensen_shannon_value_and_grad(y, p)
    assert ulp_error(v[0], want, np.float64) <= 8, (v, want)
    assert all(ulp_error(a, b, np.float64) <= 8 for a, b in zip(g[0], wgrad)), (g, wgrad)
    v, g = mod.jensen_shannon_value_and_grad([[0.0, 0.0, 1.0]], [[5e-324, 0.0, 1.0]])
    assert 0 <= v[0] <= 5e-324  # p·log 2/2 = 1.7e-324: below the least subnormal
    assert g[0, 0] == g[0, 1] == np.log(2) / 2 and g[0, 2] == 0
    assert cli.main(["verify", "--derivations", str(src), "--quick"]) == 0


TUKEY = textwrap.dedent(
    '''
    from sympy import Abs, Piecewise, Symbol
    from cesym.define import C, Elem, Loss, RowSum

    y, p, c = Elem("y"), Elem("p"), Symbol("c", positive=True)
    e = y - p
    rho = Piecewise(((c**2 / 6) * (1 - (1 - (e / c) ** 2) ** 3), Abs(e) <= c), (c**2 / 6, True))
    LOSSES = [Loss(family="tukey", variant="biweight", title="Tukey's biweight loss", value=RowSum(rho) / C,
                   prediction=p, label=y, params=(c,), param_ranges={c: (1.0, 6.0)})]
    '''
)


def test_tukeys_biweight_as_written(tmp_path):
    """c²/6·(1 - (1 - (e/c)²)³) inside |e| <= c, c²/6 outside. 1 - (1 - u)³ cancelled (0 at
    e = 1e-9, c = 1, where the value is 2.5e-19): expm1(3·log1p(-u)). A NaN input took the
    outer branch (every comparison with NaN is false): 1/3 where NaN is the answer."""
    src, mod = _generated(tmp_path, "tukey", TUKEY)
    assert mod.CORES["biweight"].get("nan_masked")
    v = mod.tukey([[0.0, 0.0]], [[1e-9, 0.0]], c=1.0)[0]
    assert abs(v - 2.5e-19) <= 4 * np.spacing(2.5e-19)
    for e in (1e-9, 0.3, 1.7):
        with mpmath.workdps(60):
            E = mpmath.mpf(e)
            want = -E * (1 - (E / 2) ** 2) ** 2  # d/dp of c²/6·(1 - (1 - (e/c)²)³) at c = 2, over C = 1
        assert ulp_error(mod.tukey_grad([[e]], [[0.0]], c=2.0)[0, 0], want, np.float64) <= 8
    assert np.isnan(mod.tukey([[0.0, 0.0]], [[np.nan, 0.0]], c=2.0)[0])
    assert np.isnan(mod.tukey([[np.nan, 0.0]], [[0.0, 0.0]], c=2.0)[0])
    assert np.isnan(mod.tukey_grad([[0.0, 0.0]], [[np.nan, 0.0]], c=2.0)).all()
    assert mod.tukey([[1e300, 0.0]], [[0.0, 0.0]], c=2.0)[0] == pytest.approx(1 / 3, rel=1e-15)
    # an infinite target is on the rays as an infinite prediction is: c²/6 past the kink; beside an
    # infinite prediction y - p is inf - inf, NaN, which the outer branch hid (c²/6, a limit that
    # depends on the path: none)
    assert mod.tukey([[np.inf, 0.0]], [[0.0, 0.0]], c=2.0)[0] == pytest.approx(1 / 3, rel=1e-15)
    assert np.isnan(mod.tukey([[np.inf, 0.0]], [[np.inf, 0.0]], c=2.0)[0])
    assert cli.main(["verify", "--derivations", str(src), "--quick"]) == 0


HUBER_WRITTEN = textwrap.dedent(
    '''
    from sympy import Abs, Piecewise, Symbol
    from cesym.define import C, Elem, Loss, RowSum

    y, p, delta = Elem("y"), Elem("p"), Symbol("delta", positive=True)
    e = y - p
    h = Piecewise((e**2 / 2, Abs(e) <= delta), (delta * Abs(e) - delta**2 / 2, True))
    LOSSES = [Loss(family="huber_written", variant="value", title="Huber loss written with e = y - p",
                   value=RowSum(h) / C, prediction=p, label=y, params=(delta,), param_ranges={delta: (0.1, 5.0)})]
    '''
)


def test_the_decimal_path_subtracts_without_rounding_a_negated_input(tmp_path):
    """e = y - p printed for decimal arithmetic as -p + y: Decimal's unary minus rounds to the
    context's precision, so y = p = 1e300 gave e of about 5e257 there, and the rescued mean of
    [0, 5·(1e300 + 6e307) - 12.5]/2 was inf (exact 1.498e308). Printed as y - p, and a negation
    as copy_negate (exact)."""
    src, mod = _generated(tmp_path, "huber_written", HUBER_WRITTEN)
    text = (tmp_path / "kernels" / "huber_written.py").read_text()
    exact = text[text.index("def value_value_exact"):].split("\ndef ")[0]
    assert "-p[_c] + y[_c]" not in exact and "(y[_c] - p[_c])" in exact
    v = mod.huber_written([[1e300, 0.0]], [[1e300, -5.992310449541053e307]], delta=5.0)[0]
    with mpmath.workdps(400):
        want = (5 * (mpmath.mpf(5.992310449541053e307)) - mpmath.mpf(12.5)) / 2
    assert ulp_error(v, want, np.float64) <= 4
    from cesym.define import Elem
    from cesym.generate.exact import DecimalPrinter

    y, p = Elem("y"), Elem("p")
    assert DecimalPrinter().doprint(-p * y) == "(p*y).copy_negate()"
    assert DecimalPrinter().doprint(-p - y) == "((p + y)).copy_negate()"


GAUSS_KL_PRIOR = textwrap.dedent(
    '''
    from sympy import Symbol, exp
    from cesym.define import Elem, Loss

    mu, logvar = Elem("mu"), Symbol("logvar", real=True)
    LOSSES = [Loss(family="gauss_kl_prior", variant="value", title="KL(N(mu, exp(logvar)) || N(0, 1)) per element",
                   value=(exp(logvar) + mu**2 - 1 - logvar) / 2, prediction=mu, params=(logvar,),
                   param_ranges={logvar: (-5.0, 5.0)})]
    '''
)


def test_a_loss_of_one_element_without_a_label_verifies(tmp_path):
    """A per-element loss with no label (a VAE's KL term against its prior): verify indexed the
    missing labels (internal error: 'NoneType' object is not subscriptable)."""
    src, mod = _generated(tmp_path, "gauss_kl_prior", GAUSS_KL_PRIOR)
    assert mod.gauss_kl_prior([[3.0]], logvar=0.0)[0] == pytest.approx(4.5)
    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras"]) == 0


def test_a_report_says_when_its_kernels_miss_the_contract(tmp_path):
    """The report's "Where it is valid" claims the contract only where the run measured no output
    outside it; with outputs outside, it says the kernels do not meet it (it said they did, beside a
    table of failures)."""
    from cesym.define.loss import load_derivation
    from cesym.derive.gradients import derive
    from cesym.report.render import _validity

    src, _ = _generated(tmp_path, "tukey", TUKEY)
    text = (tmp_path / "kernels" / "tukey.py").read_text()
    (loss,) = load_derivation(src / "tukey.py")
    d = derive(loss)
    run = {"loss": loss.name, "points": 100, "unresolved": 0, "extended": {"points": 10, "failures": 0}}
    bad = "\n".join(_validity(d, text, [dict(run, failures=3)]))
    good = "\n".join(_validity(d, text, [dict(run, failures=0)]))
    assert "do **not** meet the accuracy contract" in bad and "3 output(s) outside" in bad
    assert "no output outside it (100 sampled points)" in good and "not" not in good.split("\n")[0]


CONTRASTIVE = textwrap.dedent(
    '''
    from sympy import Max, Symbol
    from cesym.define import AXIS, C, Elem, Keyword, Loss, Public, RowSum, Variant

    y, d, margin = Elem("y"), Elem("d"), Symbol("margin", positive=True)
    LOSSES = [Loss(family="contrastive", variant="distance", title="contrastive loss on distances",
                   value=RowSum(y * d**2 + (1 - y) * Max(0, margin - d) ** 2) / C,
                   prediction=d, label=y, params=(margin,), param_ranges={margin: (0.5, 2.0)})]
    PUBLIC = [Public(name="contrastive", summary="Contrastive loss on distances.",
                     variants=(Variant("distance", domain="positive"),), labels="binary",
                     keywords=(Keyword("margin", 1.0, "real", (0.5, 2.0), doc="the margin"), AXIS))]
    '''
)

GAMMA = textwrap.dedent(
    '''
    from sympy import exp
    from cesym.define import C, Elem, Loss, RowSum

    y, s = Elem("y"), Elem("s")
    LOSSES = [Loss(family="gamma_loglink", variant="logmean", title="Gamma NLL with a log link",
                   value=RowSum(y * exp(-s) + s) / C, prediction=s, label=y)]
    '''
)

SOFT_DICE = textwrap.dedent(
    '''
    from sympy import Symbol
    from cesym.define import Elem, Loss, RowSum

    y, p, smooth = Elem("y"), Elem("p"), Symbol("smooth", positive=True)
    LOSSES = [Loss(family="soft_dice", variant="probs", title="soft Dice loss",
                   value=1 - (2 * RowSum(y * p) + smooth) / (RowSum(y) + RowSum(p) + smooth),
                   prediction=p, label=y, params=(smooth,), param_ranges={smooth: (1e-6, 1.0)}, domain="probability")]
    '''
)


def test_a_contrastive_loss_on_declared_positive_distances(tmp_path):
    """Its PUBLIC declares non-negative distances, its Loss the real line: generate tested
    d = -1e200 and refused the kernel (0·inf in y·d² at y = 0). The declared domain is used."""
    src, mod = _generated(tmp_path, "contrastive", CONTRASTIVE)
    assert mod.contrastive([[1.0, 0.0]], [[2.0, 0.25]], margin=1.0)[0] == pytest.approx((4 + 0.75**2) / 2)
    assert mod.contrastive([[0.0, 0.0]], [[1e200, 0.0]], margin=1.0)[0] == 0.5
    with pytest.raises(ValueError, match="y_pred"):
        mod.contrastive([[0.0]], [[-1.0]])
    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras"]) == 0


def test_a_gamma_likelihood_with_a_log_link(tmp_path):
    """y·e^(-s) + s: the gradient 1 - y·e^(-s) cancels where y·e^(-s) is near 1 (generate refused
    it: 0 for 3.3e-301 at y = 1, s = 1e-300); y may be of either sign, log y NaN below 0, where
    the difference, which cannot cancel there, is taken."""
    src, mod = _generated(tmp_path, "gamma_loglink", GAMMA)
    g = mod.gamma_loglink_grad([[1.0, 0.0, -2.0]], [[1e-300, -1e-300, 3.0]])[0]
    assert abs(g[0] - 1e-300 / 3) <= 4 * np.spacing(1e-300 / 3)
    assert g[1] == pytest.approx(1 / 3, rel=1e-15) and g[2] == pytest.approx((1 + 2 * np.exp(-3.0)) / 3, rel=1e-15)
    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras"]) == 0


def test_a_soft_dice_loss_where_every_label_is_zero(tmp_path):
    """1 - (2Σyp + s)/(Σy + Σp + s) at labels of 0 is Σp/(Σp + s): 1 - N/D was 0 for 1e-30."""
    src, mod = _generated(tmp_path, "soft_dice", SOFT_DICE)
    assert "one-minus-ratio" in mod.DERIVED["probs"]["value_rules"]
    assert mod.soft_dice([[0.0, 0.0]], [[0.0, 1e-30]], smooth=1.0)[0] == pytest.approx(1e-30, rel=1e-15)
    assert mod.soft_dice([[1.0, 0.0]], [[1.0, 0.0]], smooth=1e-6)[0] == 0
    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras"]) == 0


VAE_KL = textwrap.dedent(
    '''
    from sympy import exp
    from cesym.define import C, Elem, Loss, RowSum

    mu, s = Elem("mu"), Elem("s")
    LOSSES = [Loss(family="vae_kl", variant="logvar", title="a VAE's KL term in the log variance",
                   value=RowSum(exp(s) + mu**2 - 1 - s) / (2 * C), prediction=s, label=mu)]
    '''
)


def test_a_vae_kl_term_in_the_log_variance(tmp_path):
    """(e^s + mu² - 1 - s)/2: e^s - 1 - s keeps no digit at s = 1e-8 (2.5e-17 where the naive form
    gives 0 or a few 1e-17 of either sign); as Expm1mx, every digit; e^710.7 past the largest
    float inside a mean that is not is rescued in decimal arithmetic."""
    src, mod = _generated(tmp_path, "vae_kl", VAE_KL)
    assert "expm1mx" in mod.DERIVED["logvar"]["value_rules"]
    with mpmath.workdps(60):
        want = (mpmath.expm1(mpmath.mpf(1e-8)) - mpmath.mpf(1e-8)) / 2
    assert ulp_error(mod.vae_kl([[0.0]], [[1e-8]])[0], want, np.float64) <= 4
    with mpmath.workdps(60):
        want = (mpmath.exp(mpmath.mpf(710.5)) - 1 - mpmath.mpf(710.5)) / 4
    assert ulp_error(mod.vae_kl([[0.0, 0.0]], [[710.5, 0.0]])[0], want, np.float64) <= 4
    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras"]) == 0


def test_generate_checks_parameters_within_their_declared_ranges():
    """The domain check's interior points draw each parameter inside its declared range (a γ of
    (1, 5) was drawn at 0.46, where a loss clipped to max(p - m, 0)^γ has an infinite derivative),
    and in (0.05, 0.5) where none is declared."""
    import sympy as sp

    from cesym.define import C, Elem, Loss, RowSum
    from cesym.generate.domain import interior_points

    y, p = Elem("y"), Elem("p")
    g, a = sp.Symbol("g", positive=True), sp.Symbol("a", positive=True)
    loss = Loss(family="ranged", variant="v", title="t", value=RowSum(y * p**g * a) / C, prediction=p, label=y,
                params=(g, a), param_ranges={g: (1.0, 5.0)})
    for _, _, (gv, av) in interior_points(loss, 3, points=50):
        assert 1.2 <= gv <= 4.8 and 0.05 <= av <= 0.5


LSE_HINGE = textwrap.dedent(
    '''
    from sympy import exp, log
    from cesym.define import Elem, Loss, RowSum

    y, x = Elem("y"), Elem("x")
    LOSSES = [Loss(family="lse_hinge", variant="logits", title="a log-sum-exp hinge, the margin inside the softmax",
                   value=-RowSum(y * log(exp(x + 1 - y) / RowSum(exp(x + 1 - y)))), prediction=x, label=y)]
    '''
)


def test_a_compound_logit_inside_a_softmax_is_computed_once(tmp_path):
    """-Σ y·log softmax(x + 1 - y): the value's max z - z_j was printed as max z - x + (y - 1),
    whose rounded terms cancel where z_j is the maximum (146 ulps at κ = 2, a term of 2e-12
    with an error of 3.5e-15); z computed once, the difference is exact there."""
    src, mod = _generated(tmp_path, "lse_hinge", LSE_HINGE)
    y = [-0.017789394628231037, -17.025992839158327]
    x = [-2.3237590481669947, 7.586239323007803]
    with mpmath.workdps(60):
        z = [mpmath.mpf(a) + 1 - mpmath.mpf(b) for a, b in zip(x, y)]
        lse = mpmath.log(sum(mpmath.exp(v) for v in z))
        exact = sum(mpmath.mpf(b) * (lse - v) for b, v in zip(y, z))
    got = mod.lse_hinge([y], [x])[0]
    assert ulp_error(got, exact, np.float64) <= 2
    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras"]) == 0


LOG_POISSON = textwrap.dedent(
    '''
    from sympy import exp
    from cesym.define import C, Elem, Loss, RowSum

    y, x = Elem("y"), Elem("x")
    LOSSES = [Loss(family="log_poisson", variant="logrates", title="Poisson likelihood in the log rate",
                   value=RowSum(exp(x) - y * x) / C, prediction=x, label=y)]
    '''
)


@pytest.mark.parametrize("y, x", [(1e30, 69.0776), (288.36787235967466, 15.77941751456224), (1.0, 1e-300), (0.3, -1.2039728043259361), (7.0, 1e10), (-2.0, 0.5)])
def test_a_log_rate_gradient_for_counts_above_one(tmp_path, y, x):
    """e^x - y for a count y: written (1 - y)·e^x + y·expm1(x), it cancelled for y > 1 (0 for
    4.7e25 at y = 1e30; 88 ulps at κ = 16); y·expm1(x - log y) where e^x is near y and |log y| < 2,
    the difference elsewhere: within the contract everywhere, and exact at y = 1, x = 1e-300."""
    src, mod = _generated(tmp_path, "log_poisson", LOG_POISSON)
    with mpmath.workdps(60):
        exact = mpmath.expm1(mpmath.mpf(x)) - (mpmath.mpf(y) - 1)
        kappa = (abs(mpmath.mpf(x)) * mpmath.exp(mpmath.mpf(x)) + abs(mpmath.mpf(y))) / abs(exact)
    got = mod.log_poisson_grad([[y]], [[x]])[0][0]
    assert ulp_error(got, exact, np.float64) <= (2 if y == 1 else 4 + 4 * kappa)  # the contract's bound (exact at y = 1)


POWER_ERROR = textwrap.dedent(
    '''
    from sympy import Abs, Symbol
    from cesym.define import C, Elem, Loss, RowSum

    y, p = Elem("y"), Elem("p")
    q = Symbol("q", real=True)
    LOSSES = [Loss(family="power_error", variant="real", title="mean power error", value=RowSum(Abs(y - p) ** q) / C,
                   prediction=p, label=y, params=(q,), param_ranges={q: (1.0, 3.0)})]
    '''
)


def test_a_power_of_an_absolute_error(tmp_path, capsys):
    """|y - p|^q: at y = p the reference cannot resolve |0|^q's derivative (an interval about
    0): verify's gradient spot check raised it as an internal error; it is an unresolved point
    (exit 1). In float32 the limit at p = ±inf was NaN: the rays' values at p = 2^96 overflow
    float32, and the test of their growth spaced them as NaN."""
    src, mod = _generated(tmp_path, "power_error", POWER_ERROR)
    for dt in (np.float32, np.float64):
        v = mod.power_error(np.array([[-5319.9765625, -17.4]], dt), np.array([[np.inf, -1.97]], dt), q=1.4)
        g = mod.power_error_grad(np.array([[13.0, 11.9]], dt), np.array([[-np.inf, 0.0063]], dt), q=1.4)
        assert v[0] == np.inf and g[0][0] == -np.inf and np.isfinite(g[0][1])
    capsys.readouterr()
    status = cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras"])
    out = capsys.readouterr()
    assert status in (0, 1) and "internal error" not in out.err
    if status == 1:  # unresolved points are named by their inputs, as failures are
        assert "UNRESOLVED at labels=" in out.out


BONUS = textwrap.dedent(
    '''
    from sympy import Symbol, exp, log
    from cesym.define import C, Elem, Loss, RowSum

    y, x = Elem("y"), Elem("x")
    beta = Symbol("beta", nonnegative=True)
    p = 1 / (1 + exp(-x))
    LOSSES = [Loss(family="entropy_bonus", variant="logits", title="BCE less an entropy bonus",
                   value=RowSum(-y * log(p) - (1 - y) * log(1 - p) + beta * (p * log(p) + (1 - p) * log(1 - p))) / C,
                   prediction=x, label=y, params=(beta,))]
    '''
)


def test_a_parameter_without_a_declared_range(tmp_path):
    """A parameter with no param_ranges is in [0, 1] (Loss.param_range): generate checks it
    there, the public function takes it there, and verify draws it there (its sampler found no
    range and left it out: an internal KeyError)."""
    src, mod = _generated(tmp_path, "entropy_bonus", BONUS)
    assert mod.PUBLIC[0]["keywords"][0]["range"] == (0.0, 1.0)
    with pytest.raises(ValueError, match="beta"):
        mod.entropy_bonus([[1.0]], [[0.5]], beta=2.0)
    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras"]) == 0


NEG_LOG_PROB = textwrap.dedent(
    '''
    from sympy import exp, log
    from cesym.define import AXIS, C, Elem, Loss, Public, RowSum, Variant

    y, s = Elem("y"), Elem("s")
    LOSSES = [Loss(family="bce_neglogprob", variant="neglogprob", title="BCE on s = -log p",
                   value=RowSum(-(y * -s + (1 - y) * log(1 - exp(-s)))) / C, prediction=s, label=y)]
    PUBLIC = [Public(name="bce_neglogprob", summary="BCE on s = -log p >= 0", variants=(Variant("neglogprob", domain="positive"),),
                     labels="binary", keywords=(AXIS,))]
    '''
)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_edge_of_a_positive_domain_keeps_the_sign_of_its_infinity(tmp_path, dtype):
    """d/ds -log(1 - e^{-s}) = -1/expm1(s) is -inf at s = 0. The core gives -inf (expm1(-0) =
    -0); the rescue recomputed that infinity in decimal arithmetic, whose expm1 of -0 was +0
    (the series' sum starts at +0, and unary plus makes -0 into 0): +inf."""
    src, mod = _generated(tmp_path, "bce_neglogprob", NEG_LOG_PROB)
    for y in (0.0, 0.3):
        assert mod.bce_neglogprob_grad(np.array([[y]], dtype), np.array([[0.0]], dtype))[0][0] == -np.inf


def test_decimal_functions_keep_the_sign_of_zero():
    from decimal import Decimal

    from cesym.kernels import _exact

    for f in (_exact.expm1, _exact.log1p):
        assert f(Decimal("-0")).is_signed() and f(Decimal("-0")) == 0
        assert not f(Decimal("0")).is_signed()
    assert not _exact.expm1mx(Decimal("-0")).is_signed()


FOCAL_TVERSKY = textwrap.dedent(
    '''
    from sympy import Symbol
    from cesym.define import Elem, Loss, RowSum

    y, p = Elem("y"), Elem("p")
    gamma, a, b = Symbol("gamma", real=True), Symbol("a", real=True), Symbol("b", real=True)
    tp = RowSum(y * p)
    TI = tp / (tp + a * RowSum((1 - y) * p) + b * RowSum(y * (1 - p)))
    LOSSES = [Loss(family="focal_tversky", variant="probs", title="focal Tversky loss", value=(1 - TI) ** gamma,
                   prediction=p, label=y, params=(gamma, a, b), domain="probability",
                   param_ranges={gamma: (0.5, 3.0), a: (0.0, 1.0), b: (0.0, 1.0)})]
    '''
)


@pytest.mark.parametrize("gamma", [0.75, 2.0])
def test_a_power_of_one_minus_a_ratio(tmp_path, gamma):
    """(1 - TI)^γ: pow1p(-TI, γ) took 1 - TI in rounding (value 0 for 7.2e-14, gradient ±inf
    at γ = 0.75); one-minus-ratio now comes first, (F/D)^γ, and its gradient is taken as
    γ(F/D)^(γ-1)·d(-TP/D) (F'/D - F·D'/D² would cancel; γ(F/D)^γ·D/F would be 0/0 at F = 0)."""
    src, mod = _generated(tmp_path, "focal_tversky", FOCAL_TVERSKY)
    y, p, a, b = [1.0, 0.0], [1.0, 1e-17], 0.3, 0.7
    with mpmath.workdps(60):
        Y, P = [mpmath.mpf(v) for v in y], [mpmath.mpf(v) for v in p]

        def loss(P):
            tp = sum(u * v for u, v in zip(Y, P))
            F = a * sum((1 - u) * v for u, v in zip(Y, P)) + b * sum(u * (1 - v) for u, v in zip(Y, P))
            return (F / (tp + F)) ** gamma

        exact = loss(P)
        grad = [mpmath.diff(lambda t, j=j: loss([t if k == j else P[k] for k in range(2)]), P[j]) for j in range(2)]
    v, g = mod.focal_tversky_value_and_grad([y], [p], gamma=gamma, a=a, b=b)
    assert ulp_error(v[0], exact, np.float64) <= 8
    assert all(ulp_error(g[0][j], grad[j], np.float64) <= 16 for j in range(2))
    v, g = mod.focal_tversky_value_and_grad([[1.0, 0.0]], [[1.0, 0.0]], gamma=1.75, a=0.5, b=0.5)
    assert v[0] == 0 and list(g[0]) == [0, 0]  # TI = 1: 0^γ, and 0^(γ - 1) times the ratio's derivative


SMOOTHED_CE = textwrap.dedent(
    '''
    from sympy import Symbol, exp, log
    from cesym.define import C, Elem, Loss, RowSum

    y, x = Elem("y"), Elem("x")
    eps = Symbol("eps", real=True)
    LOSSES = [Loss(family="smoothed_ce", variant="logits", title="label-smoothed cross-entropy written out",
                   value=-RowSum(((1 - eps) * y + eps / C) * log(exp(x) / RowSum(exp(x)))), prediction=x, label=y,
                   params=(eps,))]
    '''
)


@pytest.mark.parametrize("x0, eps", [(1e-20, 0.0), (1e-10, 0.0), (1e-6, 1.0)])
def test_a_smoothed_label_written_out_takes_the_cross_rest(tmp_path, x0, eps):
    """-Σ((1 - ε)y + ε/C)·log softmax(x): its gradient's numerator is C·Σ_{c≠j}(t_c e_j - t_j e_c)
    over one denominator, with t written out; cross-rest matched a label symbol only, and the
    split form cancelled for two equal weights at close logits (0 for ±2.5e-21)."""
    src, mod = _generated(tmp_path, "smoothed_ce", SMOOTHED_CE)
    assert "CrossRest" in mod.DERIVED["logits"]["grad"]
    g = mod.smoothed_ce_grad([[0.5, 0.5]], [[x0, 0.0]], eps=eps)[0]
    with mpmath.workdps(60):
        exact = 1 / (1 + mpmath.exp(-mpmath.mpf(x0))) - mpmath.mpf(1) / 2  # softmax_0·Σt - t_0, Σt = 1
    assert ulp_error(g[0], exact, np.float64) <= 8 and ulp_error(g[1], -exact, np.float64) <= 8


@pytest.mark.parametrize("fn", ["atan", "erf"])
def test_a_function_cesym_does_not_know_is_named(tmp_path, capsys, fn):
    """atan or erf in a definition: generate said "cannot be evaluated (AttributeError:
    'types.SimpleNamespace' object has no attribute 'atan')"; it names the function and what
    cesym supports."""
    src = tmp_path / "mine"
    src.mkdir()
    (src / "odd.py").write_text(textwrap.dedent(f'''
        from sympy import {fn}
        from cesym.define import C, Elem, Loss, RowSum

        y, p = Elem("y"), Elem("p")
        LOSSES = [Loss(family="odd", variant="real", title="odd", value=RowSum({fn}((y - p)**2)) / C, prediction=p, label=y)]
    '''))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(tmp_path / "k")]) == 2
    err = capsys.readouterr().err
    assert f"value uses {fn}, which cesym does not support" in err and "AttributeError" not in err


NEG_BINOMIAL = textwrap.dedent(
    '''
    from sympy import Symbol, exp, log
    from cesym.define import C, Elem, Loss, RowSum

    y, s = Elem("y"), Elem("s")
    r = Symbol("r", positive=True)
    LOSSES = [Loss(family="neg_binomial", variant="log", title="negative binomial NLL, log link",
                   value=RowSum(-(y * log(exp(s)) - (y + r) * log(exp(s) + r))) / C,
                   prediction=s, label=y, params=(r,), param_ranges={r: (0.01, 100.0)})]
    '''
)


def test_log_of_an_exponential_plus_a_positive_parameter(tmp_path):
    """log(e^s + r), r > 0 a parameter: refused (e^800 overflows where the value is 800); now
    log r + softplus(s - log r), and its derivative σ(s - log r)."""
    src, mod = _generated(tmp_path, "neg_binomial", NEG_BINOMIAL)
    v, g = mod.neg_binomial_value_and_grad([[3.0]], [[800.0]], r=2.0)
    with mpmath.workdps(60):
        s, y, r = mpmath.mpf(800), mpmath.mpf(3), mpmath.mpf(2)
        exact_v = -(y * s - (y + r) * mpmath.log(mpmath.exp(s) + r))
        exact_g = -y + (y + r) * mpmath.exp(s) / (mpmath.exp(s) + r)
    assert ulp_error(v[0], exact_v, np.float64) <= 4 and ulp_error(g[0][0], exact_g, np.float64) <= 4
    # -y·s beside (y + r)·softplus(s - log r) is y·softplus(log r - s) + r·softplus(s - log r) + r·log r
    # (softplus-minus-weighted, the term affine in s): -y·s + y·(s - log r) cancelled, 0 at
    # s = 1e308 where the value is y·log r + r·(s - log r) + ...; now 1 ulp
    assert "Softplus(-s + log(r))" in mod.log_value.__doc__
    for s_, y_, r_ in ((1e308, 3.0, 2.0), (40.0, 1e6, 0.5), (-50.0, 7.0, 0.01)):
        v = mod.neg_binomial([[y_]], [[s_]], r=r_)[0]
        with mpmath.workdps(400):
            s, y, r = (mpmath.mpf(x) for x in (s_, y_, r_))
            exact_v = -(y * s - (y + r) * (s + mpmath.log1p(r * mpmath.exp(-s))))
        assert ulp_error(v, exact_v, np.float64) <= 4, (s_, y_, r_, v, exact_v)
    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras"]) == 0


@pytest.mark.parametrize("value, domain, says", [
    # an inverse Gaussian deviance divides by the label: the hint spoke of an infinite log
    ("RowSum((y - p)**2/(p**2*y))/C", "probability", "divides by the label y"),
    # a KL on logits with its entropy term: the first hint asked for weights={y: y}, the second
    # (after declaring them) said the convention holds on probabilities only
    ("RowSum(y*(log(y) - log(exp(p)/RowSum(exp(p)))))", "real", "holds on Loss(domain='probability') only"),
])
def test_a_refusal_at_a_zero_label_says_what_fails(tmp_path, capsys, value, domain, says):
    src = tmp_path / "mine"
    src.mkdir()
    (src / "zl.py").write_text(textwrap.dedent(f'''
        from sympy import exp, log
        from cesym.define import C, Elem, Loss, RowSum

        y, p = Elem("y"), Elem("p")
        LOSSES = [Loss(family="zl", variant="v", title="zl", value={value}, prediction=p, label=y, domain="{domain}")]
    '''))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(tmp_path / "k")]) == 2
    err = capsys.readouterr().err
    assert says in err and (domain == "real" or "infinite log" not in err)


GEMAN_MCCLURE = textwrap.dedent(
    '''
    from sympy import Symbol
    from cesym.define import Elem, Loss

    y, p = Elem("y"), Elem("p")
    c = Symbol("c", positive=True)
    LOSSES = [Loss(family="geman_mcclure", variant="real", title="Geman–McClure loss", value=(y - p)**2 / ((y - p)**2 + c**2),
                   prediction=p, label=y, params=(c,), param_ranges={c: (0.1, 10.0)})]
    '''
)


def test_a_ratio_of_squares(tmp_path):
    """e²/(e² + c²): refused (its gradient 2e/(e² + c²) - 2e³/(e² + c²)² cancelled: 4.6e10 ulps at
    e = 1e5, c = 0.1; then e² overflowed at 1e200); now HypotShare(e/c)² and its derivative."""
    src, mod = _generated(tmp_path, "geman_mcclure", GEMAN_MCCLURE)
    v, g = mod.geman_mcclure_value_and_grad([[0.0, 0.0]], [[1e5, 1e200]], c=0.1)
    with mpmath.workdps(60):
        e, c = mpmath.mpf(-1e5), mpmath.mpf(0.1)
        exact = -2 * e * c**2 / (e**2 + c**2) ** 2  # d/dp, e = y - p
    assert ulp_error(g[0][0], exact, np.float64) <= 8 and v[0][1] == 1.0
    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras"]) == 0


SYMMETRIC_CE = textwrap.dedent(
    '''
    from sympy import Max, Symbol, exp, log
    from cesym.define import Elem, Loss, RowSum

    y, p = Elem("y"), Elem("p")
    alpha, beta = Symbol("alpha", real=True), Symbol("beta", real=True)
    ce = -RowSum(y * log(p))
    rce = -RowSum(p * log(Max(y, exp(-4))))
    LOSSES = [Loss(family="symmetric_ce", variant="probs", title="symmetric cross-entropy (Wang et al. 2019)",
                   value=alpha * ce + beta * rce, prediction=p, label=y, params=(alpha, beta), domain="probability",
                   param_ranges={alpha: (ALPHA_LO, 1.0), beta: (0.0, 1.0)})]
    '''
)


def test_a_cross_entropy_written_without_weights_at_a_zero_probability(tmp_path, capsys):
    """-Σ y·log p with no weights declared: the kernel gave 0·(-inf) = NaN at p = 0 under a zero
    label, where the limit from inside the domain is finite (--quick: 64 points outside, all
    of them there); generate's edge check did not hold it to that limit. The label is now taken
    as a weight where it multiplies a log of the prediction (the convention 0·f = 0), and the
    edge check holds an edge row to the definition's limit: with α allowed to be 0 (α·CE at
    p = 0 is 0·inf) generate refuses and says which parameter."""
    src = tmp_path / "refused"
    src.mkdir()
    (src / "symmetric_ce.py").write_text(SYMMETRIC_CE.replace("ALPHA_LO", "0.0"))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(tmp_path / "k0")]) == 2
    err = capsys.readouterr().err
    assert "limit from inside the domain is 0.0" in err and "alpha, beta = 0 multiply" in err and "param_ranges without 0" in err
    src, mod = _generated(tmp_path, "symmetric_ce", SYMMETRIC_CE.replace("ALPHA_LO", "0.01"))
    v, g = mod.symmetric_ce_value_and_grad([[0.0, 1.0]], [[0.0, 1.0]], alpha=0.5, beta=0.5)
    # α·(-1·log 1) + β·(-(0·log e^-4 + 1·log 1)) = 0; d/dp_0 = -α·0/p_0 - β·log(e^-4) = 4β
    assert v[0] == 0.0 and g[0, 0] == pytest.approx(2.0, rel=1e-15) and np.isfinite(g).all()
    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras"]) == 0


BARRON = textwrap.dedent(
    '''
    from sympy import Abs, Symbol
    from cesym.define import C, Elem, Loss, RowSum

    y, p = Elem("y"), Elem("p")
    alpha, c = Symbol("alpha", real=True), Symbol("c", positive=True)
    e = y - p
    rho = (Abs(alpha - 2) / alpha) * (((e / c) ** 2 / Abs(alpha - 2) + 1) ** (alpha / 2) - 1)
    LOSSES = [Loss(family="barron", variant="real", title="Barron's general robust loss, fixed alpha",
                   value=RowSum(rho) / C, prediction=p, label=y, params=(alpha, c),
                   param_ranges={alpha: (0.5, 1.5), c: (0.1, 10.0)})]
    '''
)


def test_barrons_general_loss_as_written(tmp_path):
    """(|α - 2|/α)·(((e/c)²/|α - 2| + 1)^(α/2) - 1): generate refused it (pow1p of (e/c)²/|α - 2|,
    which overflows at e = 1e200 where the value is 8.6e100; SymPy does not know |α - 2| > 0). Now
    (1 + u²)^a is exp(a·Log1pSquare(u)) (pow1p-square; a non-negative constant's root is taken),
    expm1 after it."""
    src, mod = _generated(tmp_path, "barron", BARRON)
    assert "pow1p-square" in mod.DERIVED["real"]["value_rules"]
    with mpmath.workdps(80):
        def exact(yv, pv, a, cv):
            E, A, Cc = mpmath.mpf(yv) - mpmath.mpf(pv), mpmath.mpf(a), mpmath.mpf(cv)
            k = abs(A - 2)
            v = (k / A) * (((E / Cc) ** 2 / k + 1) ** (A / 2) - 1)
            g = -(E / Cc**2) * ((E / Cc) ** 2 / k + 1) ** (A / 2 - 1)  # d/dp
            return v, g
        for yv, pv, a, cv in ((1.0, 1e200, 0.5, 0.1), (0.0, 3e-9, 1.5, 2.0), (0.0, 2.0**96, 1.0, 1.0), (-4.0, 7.5, 1.25, 0.3)):
            v, g = mod.barron_value_and_grad([[yv]], [[pv]], alpha=a, c=cv)
            want_v, want_g = exact(yv, pv, a, cv)
            # the contract's bound, base + 4κ ulps, κ over every input (α's: about α/2·log1p(u²),
            # 230 at e = 1e200, the exponential's argument carrying its rounding)
            point = [mpmath.mpf(x) for x in (yv, pv, a, cv)]
            for i, (got, want) in enumerate(((v[0], want_v), (g[0, 0], want_g))):
                f = (lambda *q: exact(*q)[i])
                kappa = sum(abs(point[j] * mpmath.diff(f, point, tuple(int(j == m) for m in range(4))) / want) for j in range(4))
                assert ulp_error(got, want, np.float64) <= (4 if i == 0 else 8) + 4 * kappa, (yv, pv, a, i, got, want, kappa)


NB_NLL = textwrap.dedent(
    '''
    from sympy import Symbol, exp, log
    from cesym.define import C, Elem, Loss, RowSum

    y, s = Elem("y"), Elem("s")
    r = Symbol("r", positive=True)
    LOSSES = [Loss(family="nb_nll", variant="log", title="negative binomial NLL with log link",
                   value=RowSum(-(y * s - (y + r) * log(exp(s) + r))) / C,
                   prediction=s, label=y, params=(r,), param_ranges={r: (0.01, 100.0)})]
    '''
)


def test_a_log_of_exp_plus_a_constant_adds_the_larger_first(tmp_path):
    """The negative binomial NLL: r·log(e^s + r) was printed as r·(log r + softplus(s - log r)),
    which cancels where e^s + r is near 1 (r = 0.01, s = 0: 50 ulps, κ about 1); the
    softplus-pair lowering prints max(s, log r) + log1p(e^-|s - log r|)."""
    src, mod = _generated(tmp_path, "nb_nll", NB_NLL)
    assert "maximum(s, " in (tmp_path / "kernels" / "nb_nll.py").read_text()
    # (points where κ is about 1; at s = -0.01 the sum e^s + r is within 5e-5 of 1 and κ is 400)
    for y, s, r in ((0.0, 0.0, 0.01), (3.0, 1e-3, 0.05), (1.0, 40.0, 0.01), (0.0, 2.0, 0.5)):
        with mpmath.workdps(60):
            S, R, Y = mpmath.mpf(s), mpmath.mpf(r), mpmath.mpf(y)
            exact = -Y * S + (Y + R) * mpmath.log(mpmath.exp(S) + R)
            d = -Y + (Y + R) * mpmath.exp(S) / (mpmath.exp(S) + R)
        v, g = mod.nb_nll_value_and_grad([[y]], [[s]], r=r)
        assert ulp_error(v[0], exact, np.float64) <= 4, (y, s, r, v[0], exact)
        assert ulp_error(g[0][0], d, np.float64) <= 8


GENERALISED_KL = textwrap.dedent(
    '''
    from sympy import log
    from cesym.define import Elem, Loss, Public, RowSum, Variant

    y, p = Elem("y"), Elem("p")
    LOSSES = [Loss(family="gen_kl", variant="gkl", title="generalised KL", value=RowSum(y * log(y / p) - y + p),
                   prediction=p, label=y, domain="probability", weights={y: y})]
    PUBLIC = [Public(name="gen_kl", summary="generalised KL", variants=(Variant("gkl", domain="positive"),), labels="real")]
    '''
)


def test_a_value_next_to_the_largest_float_is_a_number_not_a_missing_limit(tmp_path):
    """The generalised KL y·log(y/p) - y + p at p = fmax is fmax - 710 (1.797e308, finite): the
    extremes grid's 35 rows there were "true: no limit (NaN)" because the reference's precise
    stage took the middle of its interval as the sum of the ends (which overflowed)."""
    src, mod = _generated(tmp_path, "gen_kl", GENERALISED_KL)
    big = np.finfo(np.float64).max
    assert float(mod.gen_kl([[1.0, 1.0]], [[1.0, big]])[0]) == big
    assert cli.main(["verify", "--derivations", str(src), "--extremes"]) == 0


TWEEDIE = textwrap.dedent(
    '''
    from sympy import Symbol
    from cesym.define import AXIS, C, Elem, Keyword, Loss, Public, RowSum, Variant

    y, p = Elem("y"), Elem("p")
    q = Symbol("q", positive=True)
    LOSSES = [Loss(family="tweedie", variant="dev", title="Tweedie deviance, 1 < q < 2",
                   value=RowSum(2 * (y ** (2 - q) / ((1 - q) * (2 - q)) - y * p ** (1 - q) / (1 - q) + p ** (2 - q) / (2 - q))) / C,
                   prediction=p, label=y, params=(q,), param_ranges={q: (1.2, 1.8)}, domain="probability", weights={y: y})]
    PUBLIC = [Public(name="tweedie", summary="Tweedie deviance", variants=(Variant("dev", domain="positive"),), labels="count",
                     keywords=(Keyword("q", 1.5, "real", (1.2, 1.8)), AXIS))]
    '''
)

BETA_DIVERGENCE = textwrap.dedent(
    '''
    from sympy import Symbol
    from cesym.define import AXIS, Elem, Keyword, Loss, Public, RowSum, Variant

    y, p = Elem("y"), Elem("p")
    b = Symbol("beta", positive=True)
    LOSSES = [Loss(family="beta_div", variant="beta", title="beta divergence",
                   value=RowSum((y ** b + (b - 1) * p ** b - b * y * p ** (b - 1)) / (b * (b - 1))),
                   prediction=p, label=y, params=(b,), param_ranges={b: (1.25, 3.0)}, domain="probability")]
    PUBLIC = [Public(name="beta_divergence", summary="beta divergence", variants=(Variant("beta", domain="positive"),), labels="count",
                     keywords=(Keyword("beta", 1.5, "real", (1.25, 3.0)), AXIS))]
    '''
)


def _tweedie(y, p, q):
    with mpmath.workdps(80):
        y, p, q = (mpmath.mpf(v) for v in (y, p, q))
        return 2 * (y ** (2 - q) / ((1 - q) * (2 - q)) - y * p ** (1 - q) / (1 - q) + p ** (2 - q) / (2 - q))


def test_a_tweedie_deviance_and_a_beta_divergence_near_their_minimum_and_at_zero(tmp_path):
    """Sums of powers homogeneous in y and p that vanish with their slope at p = y (power-gap):
    the Tweedie deviance gave -4.4e-16 (a negative deviance) for 7.1e-19 near p = y; its gradient
    2p^(1-q) - 2y·p^(-q) was inf - inf = NaN at p = 0, where the limit is -inf (common-power); its
    coefficient 1/((1 - q)(2 - q)) multiplied out cancelled near q = 1 (44 ulps at q = 1.2); and
    the extremes grid found 1,272 outputs outside the contract. The β-divergence cancelled alike,
    and without weights declared its gradient's y·p^(β - 2) was 0·inf = NaN at y = p = 0 (its
    label is now taken as a weight, as where it multiplies a log)."""
    src = tmp_path / "mine"
    src.mkdir()
    (src / "tweedie.py").write_text(TWEEDIE)
    (src / "beta_div.py").write_text(BETA_DIVERGENCE)
    assert cli.main(["generate", "--derivations", str(src), "--out", str(tmp_path / "kernels")]) == 0
    tw, bd = _import(tmp_path / "kernels" / "tweedie.py"), _import(tmp_path / "kernels" / "beta_div.py")
    assert "power-gap" in tw.DERIVED["dev"]["value_rules"] and "common-power" in tw.DERIVED["dev"]["grad_rules"]
    for y, p, q in ((1.5843000475390852, 1.5843000478089504, 1.5), (0.03887410145778765, 0.03887410145792458, 1.2), (3.0, 2.5, 1.8)):
        got, want = float(tw.tweedie([[y]], [[p]], q=q)[0]), _tweedie(y, p, q)
        assert ulp_error(got, want, np.float64) <= 4, (y, p, q, got, want)
    g = tw.tweedie_grad([[1.0, 0.0, 9e307]], [[0.0, 0.0, 1.7976931348623157e308]], q=1.5)
    assert g[0, 0] == -np.inf and g[0, 1] == np.inf
    with mpmath.workdps(80):  # 2p^(-q)(p - y)/C: y·p^(-q) underflows there, taken alone
        y, p = mpmath.mpf(9e307), mpmath.mpf(1.7976931348623157e308)
        want = 2 * p ** mpmath.mpf(-1.5) * (p - y) / 3
    assert ulp_error(g[0, 2], want, np.float64) <= 8
    with mpmath.workdps(80):  # β = 3 at p/y = 1 + 1e-9: (β - 1)/2·y^β·(r - 1)² to first order
        y, p = mpmath.mpf(2.0), mpmath.mpf(2.000000002)
        want = (y**3 + 2 * p**3 - 3 * y * p**2) / 6
    assert ulp_error(float(bd.beta_divergence([[2.0]], [[2.000000002]], beta=3.0)[0]), want, np.float64) <= 4
    assert bd.beta_divergence_grad([[1.0, 0.0]], [[1e-300, 0.0]], beta=3.0)[0, 0] == -1e-300  # factored, it was -0
    assert bd.beta_divergence_grad([[0.0, 2.0]], [[0.0, 0.0]], beta=1.5).tolist() == [[0.0, -np.inf]]
    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras"]) == 0


def test_a_power_gap_whose_terms_have_one_sign_reaches_past_a_ratio_of_four(tmp_path):
    """A Tweedie deviance over the whole of q in [1.1, 1.9] and a β-divergence with β < 1: the
    coefficients of their powers of p have one sign over the declared ranges, so the power-gap
    form's terms cannot cancel, and it is taken wherever the terms as written cancel by more than a
    factor 2, not only where 1/4 < p/y < 4. As written, at p = 4.5y, q = 1.9 they cancel by a
    factor 16 (6.4 ulps, and 17-20 on the extremes grid: 13 outputs outside the contract); at
    p = y/4.5, q = 1.1, 6.8 ulps; the β-divergence at β = 0.9, p = 4.5y: 8.9 ulps."""
    src = tmp_path / "mine"
    src.mkdir()
    (src / "tweedie.py").write_text(TWEEDIE.replace("(1.2, 1.8)", "(1.1, 1.9)"))
    (src / "beta_div.py").write_text(BETA_DIVERGENCE.replace("(1.25, 3.0)", "(0.2, 0.9)").replace("1.5, \"real\"", "0.5, \"real\""))
    assert cli.main(["generate", "--derivations", str(src), "--out", str(tmp_path / "kernels")]) == 0
    tw, bd = _import(tmp_path / "kernels" / "tweedie.py"), _import(tmp_path / "kernels" / "beta_div.py")

    def beta_div(y, p, b):
        with mpmath.workdps(80):
            y, p, b = (mpmath.mpf(v) for v in (y, p, b))
            return (y**b + (b - 1) * p**b - b * y * p ** (b - 1)) / (b * (b - 1))

    # the terms that are taken cancel by at most a factor 2 (a few roundings each, doubled), and
    # the form's e^x errs by about 1.5·|x| ulps of itself, x = β·log(p/y) rounded: 4 ulps for the
    # Tweedie deviance (measured at most 4.6 over p/y in [e^-12, e^12], q in [1.1, 1.9]), 5 for
    # the β-divergence, whose Expm1mx(x) at x = 1.05 (β = 0.3, p = y/4.5) is 0.81 of an e^x of
    # 2.9 (3.6 ulps of that term; 4.3 measured)
    for y, r in ((0.7, 1 / 60), (0.7, 1 / 4.5), (0.2, 4.5), (0.015, 60.0), (0.5, 0.8)):
        for q in (1.1, 1.5, 1.9):
            got, want = float(tw.tweedie([[y]], [[y * r]], q=q)[0]), _tweedie(y, y * r, q)
            assert ulp_error(got, want, np.float64) <= 4, (y, r, q, got, want)
        for b in (0.3, 0.9):
            got, want = float(bd.beta_divergence([[y]], [[y * r]], beta=b)[0]), beta_div(y, y * r, b)
            assert ulp_error(got, want, np.float64) <= 5, (y, r, b, got, want)
    # where y = 0 or p = 0 the window is closed (its log ratio is infinite): the terms as written
    for q in (1.1, 1.9):
        assert ulp_error(float(tw.tweedie([[0.0]], [[0.5]], q=q)[0]), _tweedie(0.0, 0.5, q), np.float64) <= 2
        assert float(tw.tweedie([[0.5]], [[0.0]], q=q)[0]) == np.inf


SMAPE = textwrap.dedent(
    '''
    from sympy import Abs
    from cesym.define import C, Elem, Loss, RowSum

    y, p = Elem("y"), Elem("p")
    LOSSES = [Loss(family="smape", variant="sym", title="symmetric MAPE", value=RowSum(2 * Abs(p - y) / (Abs(y) + Abs(p))) / C,
                   prediction=p, label=y)]
    '''
)


def test_a_symmetric_mape_past_the_overflow_of_its_denominator(tmp_path):
    """2|p - y|/(|y| + |p|): |y| + |p| overflowed at y = 1e308, p = 1.7e308 and its reciprocal
    gave 0 for 0.26, a silent wrong number (magnitude-range); the gradient's numerator
    sign(p - y)(|p| + |y|) - |p - y|·sign(p) cancelled where |p| >> |y| (310 ulps at κ = 3;
    abs-sign), and its square overflowed past 1.3e154 (0 for 2.7e-309 at the first row)."""
    src, mod = _generated(tmp_path, "smape", SMAPE)
    assert "magnitude-range" in mod.DERIVED["sym"]["value_rules"] and "abs-sign" in mod.DERIVED["sym"]["grad_rules"]

    def exact(y, p):
        with mpmath.workdps(60):
            pairs = [(mpmath.mpf(a), mpmath.mpf(b)) for a, b in zip(y, p)]
            v = [2 * abs(b - a) / (abs(a) + abs(b)) / len(y) for a, b in pairs]
            g = [2 * a * (mpmath.sign(b) + mpmath.sign(a)) * mpmath.sign(b - a) / (abs(a) + abs(b)) ** 2 / len(y) for a, b in pairs]
            return mpmath.fsum(v), g

    for y, p in (([1e308, 1.0], [1.7e308, 1.0]), ([-1.4666806378062773, -10.984997694868635], [-769.3956486327337, -1.9276218397679292]),
                 ([3e-310, 1e200], [-5e-324, 1.0000001e200])):
        v, g = mod.smape([y], [p]), mod.smape_grad([y], [p])
        want_v, want_g = exact(y, p)
        assert ulp_error(float(v[0]), want_v, np.float64) <= 4, (y, p, v, want_v)
        for j in range(2):
            assert ulp_error(g[0, j], want_g[j], np.float64) <= 8, (y, p, j, g, want_g)
    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras"]) == 0
    # a row with one 0/0 element has no value; the other element's partial derivative has one:
    # NaN where the definition is indeterminate and the rest right is "undefined", not unresolved
    from cesym.verify.contract import check_batch
    from cesym.verify.registry import load_cases
    from cesym.verify.sampling import Batch

    # (the third: the partial derivative 4.5e-308 resolves only past the first precision, where
    # it was an unresolved ball that is not NaN, and the row was "unresolved": 30 such rows on
    # the extremes grid, exit 1)
    case = load_cases(src)[0]
    rows = (np.array([[8.988465674311579e307, 0.0], [-1.0, 0.0], [2.2250738585072014e-308, 0.0]]),
            np.array([[1.7976931348623157e308, 0.0], [3.0, 0.0], [1.0, 0.0]]))
    res = check_batch(case, Batch(rows[0], rows[1], {}, ["extremes"] * 3), indeterminate=True)
    assert (res.undefined, res.unresolved, len(res.failures)) == (3, 0, 0)
    assert cli.main(["verify", "--derivations", str(src), "--extremes"]) == 0


WING = textwrap.dedent(
    '''
    from sympy import Abs, Piecewise, Symbol, log
    from cesym.define import AXIS, C, Elem, Keyword, Loss, Public, RowSum, Variant

    y, x = Elem("y"), Elem("x")
    w, eps = Symbol("w", positive=True), Symbol("eps", positive=True)
    e = Abs(x - y)
    LOSSES = [Loss(family="wing", variant="wing", title="wing loss",
                   value=RowSum(Piecewise((w * log(1 + e / eps), e < w), (e - (w - w * log(1 + w / eps)), True))) / C,
                   prediction=x, label=y, params=(w, eps), param_ranges={w: (1.0, 20.0), eps: (0.5, 5.0)})]
    PUBLIC = [Public(name="wing_loss", summary="wing loss", variants=(Variant("wing", domain="real"),), labels="real",
                     keywords=(Keyword("w", 10.0, "real", (1.0, 20.0)), Keyword("eps", 2.0, "real", (0.5, 5.0)), AXIS))]
    '''
)


def test_a_wing_loss_takes_the_side_of_its_kink_exactly(tmp_path):
    """The wing loss's gradient jumps from w/(ε + w) to 1 at |x - y| = w: on the rounded |x - y|
    the kernel took the far side within rounding of the kink (-1/3 for -2/9 at y = 1, x = 1e-300,
    w = 1, ε = 1/2), and generate refused the loss there, or accepted it where its grid missed the
    kink (kink-branch: the condition as a kink, decided exactly by the decimal rescue)."""
    src, mod = _generated(tmp_path, "wing", WING)
    assert "kink-branch" in mod.DERIVED["wing"]["grad_rules"]
    g = mod.wing_loss_grad([[1.0, 10.0, 3.0]], [[1e-300, -1e-300, -7.0]], w=1.0, eps=0.5)
    # |e| = 1 - 1e-300 < w: -w/(ε + |e|)/3; |e| = 10 + 1e-300 and |e| = 10 >= w: sign(e)/3
    assert g.tolist() == [[-1 / 1.5 / 3, -1 / 3, -1 / 3]]
    g = mod.wing_loss_grad([[10.0]], [[1e-300]], w=10.0, eps=2.0)
    assert g[0, 0] == -10 / 12
    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras"]) == 0


def test_the_same_files_are_derived_once_in_a_process(tmp_path, monkeypatch):
    """``cesym generate`` then ``cesym verify --derivations`` on the same files derive them once
    (render_all remembers its texts by the files' bytes): a changed file is derived again, a
    failure is not remembered, and threads asking at once get the same texts."""
    import threading

    from cesym.generate import codegen

    calls = []
    real = codegen._render_all
    monkeypatch.setattr(codegen, "_render_all", lambda d, keep: calls.append(d) or real(d, keep))
    src = tmp_path / "mine"
    src.mkdir()
    (src / "brier_logits.py").write_text(BRIER)
    assert cli.main(["generate", "--derivations", str(src), "--out", str(tmp_path / "k")]) == 0
    assert cli.main(["verify", "--derivations", str(src), "--quick", "--no-keras", "--jobs", "1"]) == 0
    assert len(calls) == 1
    first = codegen.render_all(src)
    first["brier_logits.py"] = "changed by the caller"  # a copy: the remembered texts stay as rendered
    assert codegen.render_all(src)["brier_logits.py"] != "changed by the caller" and len(calls) == 1
    (src / "brier_logits.py").write_text(BRIER.replace("The Brier score", "The Brier score (edited)"))
    edited = codegen.render_all(src)
    assert len(calls) == 2 and "(edited)" in edited["brier_logits.py"]
    (src / "broken.py").write_text("LOSSES = [1/0]\n")
    for _ in range(2):
        with pytest.raises(DerivationError):
            codegen.render_all(src)
    assert len(calls) == 4  # a failure is derived again, not remembered
    (src / "broken.py").unlink()
    got = []
    threads = [threading.Thread(target=lambda: got.append(codegen.render_all(src))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(g == edited for g in got) and len(calls) == 4


def test_a_tweedie_likelihood_on_log_means_past_the_overflow_of_a_term(tmp_path):
    """-y·e^((1-ρ)x)/(1-ρ) + e^((2-ρ)x)/(2-ρ): its gradient's fallback form (InfOr, where a term
    within a factor C of the largest float overflows) holds ScaledExp, which the decimal printer
    lacked outside row forms, and SymPy's printer does not take NanOr's method for InfOr: the
    gradient had no decimal form, and was -inf at x = -788.86, y = 1, ρ = 1.9 in a row of 3
    where it is -7.25e307 (`cesym verify` found 2 such points in 3000 rows)."""
    src, mod = _generated(tmp_path, "twlog", textwrap.dedent(
        '''
        from sympy import Symbol, exp
        from cesym.define import C, Elem, Loss, RowSum
        y, x = Elem("y"), Elem("x")
        rho = Symbol("rho", positive=True)
        LOSSES = [Loss(family="twlog", variant="t", title="Tweedie NLL, log input",
                       value=RowSum(-y * exp((1 - rho) * x) / (1 - rho) + exp((2 - rho) * x) / (2 - rho)) / C,
                       prediction=x, label=y, params=(rho,), param_ranges={rho: (1.1, 1.9)})]
        '''
    ))
    assert callable(getattr(mod, "t_grad_exact", None))  # also the correctly rounded float32 path
    y, x = [[1.0, 1.0, 0.0]], [[-788.8597382718308, -518.4722193800854, -1.3972263791046546]]
    g = mod.twlog_grad(y, x, rho=1.9)
    with mpmath.workdps(60):
        r = mpmath.mpf(1.9)
        want = [float((-yy * mpmath.exp((1 - r) * xx) + mpmath.exp((2 - r) * xx)) / 3) for yy, xx in zip(map(mpmath.mpf, y[0]), map(mpmath.mpf, x[0]))]
    # the first element's term overflows: recomputed in decimal from the inputs as given, to
    # the float64 nearest; the others carry (1 - ρ)'s rounding times x (κ ≈ 470), within the
    # contract, which the verify run below checks
    assert np.isfinite(g).all() and abs(g[0, 0] - want[0]) <= abs(np.spacing(want[0])) / 2, (g, want)
    assert cli.main(["verify", "--derivations", str(src), "--no-keras", "--points", "400", "--seed", "3"]) == 0


def test_a_power_loss_of_the_absolute_error_at_a_zero_error(tmp_path):
    """|e|^q/q: SymPy's derivative |e|^q·sign(e)/|e| is 0/0 at e = 0, where it is 0 for q > 1;
    generate refused the loss (NaN at x = y). The powers of |e| are merged: |e|^(q - 1)·sign(e)."""
    src, mod = _generated(tmp_path, "powl", textwrap.dedent(
        '''
        from sympy import Abs, Symbol
        from cesym.define import C, Elem, Loss, RowSum
        y, x = Elem("y"), Elem("x")
        q = Symbol("q", positive=True)
        LOSSES = [Loss(family="powl", variant="p", title="power loss", value=RowSum(Abs(x - y) ** q / q) / C,
                       prediction=x, label=y, params=(q,), param_ranges={q: (1.1, 3.0)})]
        '''
    ))
    y, x = [[1.0, 0.5, -2.0]], [[1.0, 0.75, 1e100]]
    for q in (1.1, 1.5, 3.0):
        g = mod.powl_grad(y, x, q=q)[0]
        with mpmath.workdps(60):
            want = [float(mpmath.sign(mpmath.mpf(b) - mpmath.mpf(a)) * abs(mpmath.mpf(b) - mpmath.mpf(a)) ** (mpmath.mpf(q) - 1) / 3) for a, b in zip(y[0], x[0])]
        assert g[0] == 0.0
        for got, w in zip(g[1:], want[1:]):  # κ ≈ q - 1 in the error: a few roundings
            assert abs(got - w) <= 8 * abs(np.spacing(w)), (q, got, w)


def test_a_sparse_focal_loss_on_logits_at_a_dominant_class(tmp_path):
    """-(1 - s_k)^γ·log s_k with class-index labels: its -log softmax at the label was printed
    (max z + log1p(s)) - z_k, because cse took max z + log1p(s) out of it to share with the
    gradient's ν over the row; at a class ahead by 30 that cancels (1.3 % off) and generate
    refused the loss. One node now (LabelLogSoftmax): (max z - z_k) + log1p(s)."""
    src, mod = _generated(tmp_path, "sfocal", textwrap.dedent(
        '''
        from sympy import Symbol, exp, log
        from cesym.define import Elem, Loss, RowSum
        y, z = Elem("y"), Elem("z")
        g = Symbol("g", positive=True)
        s = exp(z) / RowSum(exp(z))
        LOSSES = [Loss(family="sfocal", variant="f", title="sparse focal CE", value=-RowSum(y * (1 - s) ** g * log(s)),
                       prediction=z, label=y, weights={y: y}, label_index=True, params=(g,), param_ranges={g: (0.5, 5.0)}, domain="real")]
        '''
    ))
    z = [[30.0, -30.0, 0.0]]
    got = float(mod.sfocal([0], z, g=0.5)[0])
    with mpmath.workdps(60):
        zs = [mpmath.mpf(v) for v in z[0]]
        sk = mpmath.exp(zs[0]) / sum(mpmath.exp(v) for v in zs)
        want = float(-mpmath.sqrt(1 - sk) * mpmath.log(sk))
    assert abs(got - want) <= 8 * np.spacing(want), (got, want)


def test_a_generalised_cross_entropy_on_logits_at_a_dominant_class(tmp_path):
    """Σ y·(1 - softmax^q)/q: 1 - s^q as powm1 of a share that rounds next to 1 kept 3 digits at a
    class ahead by 30 (1.2e12 ulps: generate refused it); s^q - 1 is expm1(-q·(-log s)) now."""
    src, mod = _generated(tmp_path, "gcel", textwrap.dedent(
        '''
        from sympy import Symbol, exp
        from cesym.define import Elem, Loss, RowSum
        y, z = Elem("y"), Elem("z")
        q = Symbol("q", positive=True)
        LOSSES = [Loss(family="gcel", variant="g", title="GCE on logits", value=RowSum(y * (1 - (exp(z) / RowSum(exp(z))) ** q) / q),
                       prediction=z, label=y, weights={y: y}, params=(q,), param_ranges={q: (0.1, 1.0)}, domain="real")]
        '''
    ))
    z = [[30.0, -30.0, 0.0]]
    got = float(mod.gcel([[1.0, 0.0, 0.0]], z, q=0.1)[0])
    with mpmath.workdps(60):
        zs = [mpmath.mpf(v) for v in z[0]]
        s0 = mpmath.exp(zs[0]) / sum(mpmath.exp(v) for v in zs)
        want = float((1 - s0 ** mpmath.mpf(0.1)) / mpmath.mpf(0.1))
    assert abs(got - want) <= 8 * np.spacing(want), (got, want)
