"""The verifier itself: exact identities, proven digits, and that it catches bad kernels and rewrites."""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.codegen.rewriting import logsumexp_2terms_opt

from cesym.verify.contract import check_batch, losses_by_name
from cesym.verify.reference import RowReference
from cesym.verify.registry import case
from cesym.rewrite.rules import RewriteError, check_equivalent
from cesym.verify.sampling import sample

from conftest import SEED


def test_reference_identities_are_exact():
    """The identities the reference applies to the definition hold symbolically."""
    X, R = sp.symbols("X R", positive=True)
    x = sp.Symbol("x", real=True)
    assert sp.simplify(sp.expand_log(sp.log(X / (X + R)) + sp.log(1 + R / X), force=True)) == 0
    assert sp.simplify(sp.log(1 / (1 + sp.exp(-x))) + sp.log(1 + sp.exp(-x))) == 0
    assert sp.simplify((sp.log(1 - 1 / (1 + sp.exp(-x))) + sp.log(1 + sp.exp(x))).rewrite(sp.exp)) == 0
    assert log1p(x).rewrite(sp.log) == sp.log(x + 1)
    assert sp.simplify(1 - sp.exp(x) / (sp.exp(x) + R) - R / (sp.exp(x) + R)) == 0  # 1 - softmax_j


def test_reference_pins_log_one_plus_tiny():
    """-log(p0/(p0+p1)) with p = (1, 1e-300) is 1e-300. A fixed precision, or two that agree, gives 0."""
    ref = RowReference(losses_by_name()["categorical_crossentropy.probs"], 2)
    v, g = ref.value_and_grad([1.0, 0.0], [1.0, 1e-300], [0.0])
    assert abs(v - mpmath.mpf(1e-300)) < mpmath.mpf(1e-315)
    for prec in (53, 106):
        with mpmath.workprec(prec):
            assert -mpmath.log(mpmath.mpf(1) / (1 + mpmath.mpf(1e-300))) == 0  # the trap


def test_reference_takes_one_minus_exp_as_expm1():
    """1 - e^u is -expm1(u) to the reference (the identity checked here): a ball of 1 - e^-s at a
    stand-in s = 2^-M for the edge 0 is 0 ± 2^-p at every precision (a binary cross-entropy on
    s = -log p: 32 of its --quick points unresolved), where expm1 keeps s."""
    from cesym.define import C, Elem, Loss, RowSum
    from cesym.verify.reference import _identities

    u = sp.Symbol("u", real=True)
    assert _identities(1 - sp.exp(u)) == -expm1(u) and sp.simplify((-expm1(u)).rewrite(sp.exp) - (1 - sp.exp(u))) == 0
    assert _identities(sp.log(1 - sp.exp(-u))) == sp.log(-expm1(-u))
    y, s = Elem("y"), Elem("s")
    loss = Loss(family="bce_nlp", variant="v", title="BCE on -log p", value=RowSum(-(y * -s + (1 - y) * sp.log(1 - sp.exp(-s)))) / C,
                prediction=s, label=y)
    ref = RowReference(loss, 1)
    tiny = mpmath.ldexp(1, -4000)  # below any float: a stand-in for the edge 0
    v, g = ref.value_and_grad([0.0], [tiny], [])
    assert abs(v - 4000 * mpmath.log(2)) < mpmath.mpf(10) ** -10 and abs(g[0] + mpmath.ldexp(1, 4000)) < mpmath.ldexp(1, 3980)


def test_reference_merges_powers_of_one_abs_in_the_gradient():
    """SymPy's d/dp |y - p|^q is q·|e|^q·sign(e)/|e|: 0/0 to the balls at y = p at every
    precision (a mean power error: 19 of its --quick points unresolved); merged, q·|e|^(q-1)·sign(e),
    an identity for e ≠ 0, is 0 there for q > 1."""
    from cesym.define import C, Elem, Loss, RowSum
    from cesym.verify.reference import _merge_abs_powers

    x, q = sp.symbols("x q", real=True)
    g = sp.diff(sp.Abs(x) ** q, x)
    assert _merge_abs_powers(g) == q * sp.Abs(x) ** (q - 1) * sp.sign(x)
    assert sp.simplify((_merge_abs_powers(g) - g).subs({x: sp.Rational(-3, 7), q: sp.Rational(5, 2)})) == 0
    y, p = Elem("y"), Elem("p")
    loss = Loss(family="mpe", variant="v", title="mean power error", value=RowSum(sp.Abs(y - p) ** q) / C,
                prediction=p, label=y, params=(q,), param_ranges={q: (1.0, 3.0)})
    v, g = RowReference(loss, 2).value_and_grad([1.5, -2.0], [1.5, 1.0], [1.4])
    assert g[0] == 0 and abs(v - mpmath.mpf(3) ** mpmath.mpf(1.4) / 2) < mpmath.mpf(10) ** -15


def test_reference_merges_powers_of_a_clipped_probability_in_the_gradient():
    """An asymmetric loss's max(p - m, 0)^γ·log(1 - max(p - m, 0)): SymPy's derivative holds
    γ·max(·)^γ/max(·), 0/0 below the clip, where generate called the definition's gradient not
    finite (and refused the loss); merged as for |u|, it is 0 there, the number."""
    from cesym.define import C, Elem, Loss, RowSum

    y, p = Elem("y"), Elem("p")
    g, m = sp.Symbol("g", positive=True), sp.Symbol("m", nonnegative=True)
    pm = sp.Max(p - m, 0)
    loss = Loss(family="asl", variant="v", title="clipped focal term", value=-RowSum((1 - y) * pm**g * sp.log(1 - pm)) / C,
                prediction=p, label=y, params=(g, m), param_ranges={g: (1.0, 4.0), m: (0.0, 0.2)}, domain="probability")
    v, grad = RowReference(loss, 2).value_and_grad([0.0, 0.0], [0.1, 0.5], [3.0, 0.2])
    assert grad[0] == 0 and abs(v - mpmath.mpf("0.3") ** 3 * -mpmath.log(mpmath.mpf("0.7")) / 2) < mpmath.mpf(10) ** -15


def test_reference_pins_huge_logits():
    ref = RowReference(losses_by_name()["binary_crossentropy.logits"], 1)
    v, g = ref.value_and_grad([1.0], [1e300], [0.0])  # softplus(-1e300) = e^-1e300, rounds to 0
    assert v > 0 and v < mpmath.mpf(2) ** -1075
    v, g = ref.value_and_grad([1.0], [-1e4], [0.0])
    assert abs(v - 1e4) < 1e-9 and abs(g[0] + 1) < 2.0**-60  # pinned to 2**-8 ulp of float64


def test_rewrite_check_catches_sympy_logsumexp_bug():
    """sympy.codegen.rewriting.logsumexp_2terms_opt: log(e^1 + e^0) -> 1.693, true 1.313."""
    x, y = sp.symbols("x y", real=True)
    before = sp.log(sp.exp(x) + sp.exp(y))
    after = logsumexp_2terms_opt(before)
    assert float(after.subs({x: 1, y: 0})) == pytest.approx(1.6931, abs=1e-4)
    with pytest.raises(RewriteError, match="changed the value"):
        check_equivalent(before, after)


def _naive(kernel_case):
    """The unrewritten definition, lambdified (cesym.kernels.naive): a deliberately inaccurate kernel."""
    from cesym.kernels import naive

    def call(labels, pred, params, grad=False):
        fn = getattr(naive, kernel_case.kernel + ("_grad" if grad else ""))
        with np.errstate(all="ignore"):
            return fn(labels, pred, **kernel_case.keywords, **params)

    return call


@pytest.mark.parametrize("kernel,logits", [("categorical_crossentropy", True), ("binary_crossentropy", True), ("categorical_crossentropy", False)])
def test_checker_catches_naive_kernels(kernel, logits):
    c = case(kernel, from_logits=logits)
    batch = sample(c, np.float64, 3, 24, seed=SEED)
    assert not check_batch(c, batch).failures  # the generated kernel passes ...
    res = check_batch(c, batch, kernel=_naive(c))
    assert res.failures  # ... the naive definition does not
    assert any(f.what.startswith("grad") for f in res.failures)


def test_checker_catches_a_wrong_gradient():
    c = case("categorical_crossentropy", from_logits=True)
    batch = sample(c, np.float64, 3, 12, seed=SEED)

    def wrong(labels, pred, params, grad=False):
        out = c.call(labels, pred, params, grad)
        if grad:
            out = out[:, ::-1]  # elements of the gradient in the wrong places
        return out

    res = check_batch(c, batch, kernel=wrong)
    assert res.failures and all(f.what.startswith("grad") for f in res.failures)

    def slightly_off(labels, pred, params, grad=False):
        out = c.call(labels, pred, params, grad)
        return out * (1 + 64 * np.finfo(np.float64).eps) if not grad else out

    res = check_batch(c, batch, kernel=slightly_off)
    assert any(f.what == "value" for f in res.failures)
    # a failure's text (formatted when shown) names the row's inputs and the exact value, as
    # they were when it failed: changing the batch afterwards changes nothing
    f = next(f for f in res.failures if f.what == "value")
    pred, labels = batch.pred[f.row].copy(), batch.labels[f.row].copy()
    ref, params = contract_ref(c, batch)
    true, _ = ref.value_and_grad(labels, pred, params, dtype=np.float64)
    batch.pred[:] = 0.0
    text = str(f)
    assert f"pred=[{', '.join(repr(float(v)) for v in pred)}]" in text
    assert f"true {true}" in text and f"labels=[{', '.join(repr(float(v)) for v in labels)}]" in text


def contract_ref(c, batch):
    from cesym.verify.contract import definition, reference_for

    loss = definition(c)
    return reference_for(loss, batch.pred.shape[1]), [batch.params[p.name] for p in loss.params]


def test_known_traps_of_the_naive_forms():
    """What the issue measured, on the naive kernels; the generated kernels get each right."""
    from cesym.kernels._generated import binary_crossentropy as B, categorical_crossentropy as CC

    with np.errstate(all="ignore"):
        x = np.array([[800.0]])
        assert np.isnan(B.logits_naive_grad(np.array([[1.0]]), x, 0.0)).all()  # NaN past 709
        assert np.isinf(np.log1p(np.exp(x))).all()  # log1p(exp(x)) overflows past 709.78
        z = np.array([[0.0, -300.0]])
        y = np.array([[1.0, 0.0]])
        lse_minus = np.log(np.sum(np.exp(z))) - z[0, 0]
        assert lse_minus == 0.0  # true value ~ e^-300
    v = CC.logits_value(y, z, 0.0)[0, 0]
    assert v == pytest.approx(math.exp(-300), rel=1e-15)
    g = CC.logits_grad(y, z, 0.0)
    assert g[0, 0] == pytest.approx(-math.exp(-300), rel=1e-15)
    # sigma(x) - y at y = 1, x = 40: naive 0 (or all bits lost); the kernel -sigma(-40)
    gb = B.logits_grad(np.array([[1.0]]), np.array([[40.0]]), 0.0)[0, 0]
    assert gb == pytest.approx(-1 / (1 + math.exp(40)), rel=1e-15)


def test_kappa_of_a_tiny_gradient_is_not_zero():
    """κ's derivatives are negligible relative to the quantity they condition, not below an
    absolute size: at logits [-22.5, 33.6] (labels [0, 1]) the categorical focal gradient is
    5.2e-74 and its Hessian entries about 1e-72; an absolute 2^-40 threshold made them 0 and
    κ = 0, and `cesym verify` flagged errors of 71 ulps that are within 8 + 4κ (κ = 282)."""
    import numpy as np

    from cesym.verify.contract import definition
    from cesym.verify.reference import RowReference
    from cesym.verify.registry import CASES

    case = next(c for c in CASES if c.id.startswith("categorical_focal_crossentropy[from_logits=True]"))
    ref = RowReference(definition(case), 2)
    lab, pred, params = [0.0, 1.0], [-22.535447418182915, 33.618421021635434], [0.0, 0.25, 2.0]
    v, g = ref.value_and_grad(lab, pred, params, dtype=np.float64)
    assert 1e-75 < abs(float(g[0])) < 1e-72
    _, kg = ref.kappa(lab, pred, params, v, g)
    assert all(250 < k < 320 for k in kg), kg  # Σ|z_i ∂g/∂z_i|/|g| ≈ (22.5 + 33.6)·5: not 0


@pytest.mark.parametrize(
    "name",
    ["categorical_focal_crossentropy.logits", "categorical_hinge.margin", "huber.smooth_l1",
     "cosine_similarity.cosine", "kl_divergence.probs", "binary_focal_crossentropy.logits", "tf_nn.sparse_softmax"],
)
def test_second_derivatives_by_the_chain_rule_are_sympy_diffs(name):
    """The condition numbers' second derivatives and the value's other partials (forward-mode
    chain rule over common subexpressions, jacobian_assignments) are sympy.diff's: the same
    numbers at every second-derivative entry that neither form declares negligible, and the
    same κ of the value and of every gradient element, on seeded rows with hard and
    soft labels (Piecewise conditions, MaxN, Abs, log, powers)."""
    from cesym.verify.reference import _compile, jacobian_assignments

    loss = losses_by_name()[name]
    n = 3 if loss.row_level else 1
    ref = RowReference(loss, n)
    syms = ref.pred_syms + ref.label_syms + list(loss.params)
    steps, outs = jacobian_assignments(ref.grad_exprs, syms)
    assert not any(e.has(sp.Derivative) for _, e in steps) and not any(e.has(sp.Derivative) for e in outs)
    old = _compile(ref.args, [sp.diff(g, s) for g in ref.grad_exprs for s in syms], ref.kind)
    old.n_out, old.backend = len(outs), ref.kind
    new = ref._hessian  # what κ uses (built by jacobian_assignments, or read from the disk cache)
    others = ref.label_syms + list(loss.params)  # the value's other partials (κ of the value, soft labels)
    old_vp = _compile(ref.args, [sp.diff(ref.value_expr, s) for s in others] or [sp.S.Zero], ref.kind)
    old_vp.n_out, old_vp.backend = max(len(others), 1), ref.kind
    new_vp = ref._value_partials
    rng = np.random.default_rng(SEED)
    compared = 0
    for k in range(12):
        z = rng.standard_normal(n) * rng.choice([0.5, 3.0, 30.0])
        pred = np.exp(z) / np.exp(z).sum() if loss.domain == "probability" else z  # a softmax row: in every probability domain
        labels = rng.random(n) if k % 2 else (rng.random(n) < 0.5).astype(float)
        params = [float(rng.uniform(0.1, 0.9)) for _ in loss.params]
        inputs = ref._inputs(labels if ref.label_syms else [], pred, params)
        a, b = ref._approx(new, inputs), ref._approx(old, inputs)
        for x, y in zip(a, b):
            if min(abs(x), abs(y)) > 1e-9:  # below that, either may be declared negligible (0)
                assert abs(x - y) <= 2**-9 * max(abs(x), abs(y)), (inputs, x, y)
                compared += 1
        kappas = []
        for h, vp in ((new, new_vp), (old, old_vp)):
            ref._memo.clear()
            ref.__dict__["_hessian"], ref.__dict__["_value_partials"] = h, vp
            k_value, k_grad = ref.kappa(labels if ref.label_syms else [], pred, params)
            kappas.append([k_value, *k_grad])
        for x, y in zip(*kappas):
            assert x == y or abs(x - y) <= 2**-9 * max(abs(x), abs(y)), (inputs, kappas)
    assert compared > 0


def test_kappa_stops_rising_where_the_rest_is_negligible(monkeypatch):
    """Logits of 1e240 beside 1e-90 (soft labels, focal loss): the Hessian's terms of the huge
    logits are small only at about 1000 bits. κ stops where the terms not yet pinned are below
    2^-12 of the pinned ones (KAPPA_REST) and agrees to 2^-10 with κ computed as before
    (KAPPA_REST = 0: every term pinned or negligible against its own scale), at lower precision;
    with hard labels, the label columns (in no κ) are not pinned at all."""
    from cesym.verify import reference as R
    from cesym.verify.reference import RowReference

    loss = losses_by_name()["categorical_focal_crossentropy.logits"]
    row = [0.3642717458349496, 0.01910709424624457, 0.2976070595937671, 0.17287703057436388, 0.40685716396646254,
           0.7388546259732452, 0.5003591872877248, 0.9173303148003406, 1.0149857487519277e-07, -1.7519793644739714e+213,
           2.9747091192548396e+22, 1.6746337811764323e+211, -6.963184088982513e-90, -4.7038415031566155e+98,
           3.0063313876299022e+19, 2.7361793366539273e+240, 0.0, 0.25, 2.0]
    y, z, params = row[:8], row[8:16], row[16:]
    top = {}
    real = R._evaluate

    def evaluate(fn, inputs):
        if fn.n_out > 100:  # the Hessian
            top[0] = max(top.get(0, 0), R.balls.flint.ctx.prec)
        return real(fn, inputs)

    monkeypatch.setattr(R, "_evaluate", evaluate)
    got = RowReference(loss, 8).kappa(y, z, params)
    fast_prec = top.pop(0)
    monkeypatch.setattr(R, "KAPPA_REST", mpmath.mpf(0))
    want = RowReference(loss, 8).kappa(y, z, params)
    assert top.pop(0) > fast_prec
    for a, b in zip([got[0], *got[1]], [want[0], *want[1]]):
        assert a <= b * (1 + 2**-30) and abs(a - b) <= 2**-10 * abs(b), (a, b)
    # an output of weight 0 (a label's column under hard labels) enters no κ: 0 at once, never pinned
    ref = RowReference(loss, 8)
    inputs = ref._inputs(y, [0.5, -1.25, 3.0, 0.75, -2.0, 1.5, 0.25, -0.5], params)
    w = [mpmath.mpf(1)] * ref._hessian.n_out
    w[5] = mpmath.mpf(0)
    h = ref._approx(ref._hessian, inputs, None, w, len(inputs))
    assert h[5] == 0 and any(v != 0 for v in h[:5])
    assert ref._approx(ref._hessian, inputs, None, [mpmath.mpf(1)] * len(w), len(inputs))[5] != 0
