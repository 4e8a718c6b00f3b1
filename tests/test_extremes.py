"""The extremes grid (:mod:`cesym.verify.extremes`, ``cesym verify --extremes``): every row of two
extreme finite inputs under every pair of grid labels, value and gradient within the contract.

Found this way (2026-12-05) and fixed, each checked here:

* the softmax cross-entropies from logits (Keras's categorical, tf.nn's) returned inf or NaN on
  rows spanning more than 1.8e308 with soft or zero labels (0.5·(z_max - z_c) is finite where
  z_max - z_c is not); their rows now have decimal forms (:mod:`cesym.kernels._rescue`);
* the categorical focal gradient from logits was NaN on equal logits past about 1e16
  (ν = lse - z_j rounded to 0, where the focal weight's derivative is 0/0);
* the categorical cross-entropy gradient on a renormalised row of a 0 and a subnormal was NaN
  where it is -inf (-t/p at p = 0): decimal's infinities are now kept.

* the categorical focal loss with α = 0 was NaN at a zero probability of a labelled class
  (α·(-inf)); α is now part of the label weight α·t, whose 0 guards its term;
* the cosine similarity's gradient on rows whose norm is past 1.8e308 (or below 2^-1022) was 0
  where it is about 1e-309: the division by the norm now takes it as 2^e·r
  (:func:`cesym.kernels._runtime.divide_by_norm`); and the first tier had decided the cosine of a
  zero label row (0/0) as 0 next to such a norm (∞·0, then 0·NaN).

* the decimal rescue now takes a float64 only where two precisions agree (the categorical
  cross-entropy's gradient on two least subnormals: 0, not 1e273); for probabilities every
  row of tiny predictions whatever its labels (Tversky's index on [0, 5e-324] with labels
  [0, 1/2]: 1/3, not 1); for logits rows of tiny inputs at 400 digits and more (the softmax
  of [0, 2e-308]: e^x is 1 + x there, which 50 and 100 digits both round to 1).

* the sparse categorical cross-entropy's gradient on probabilities [0, 5e-324] was NaN (1/Σp
  overflows, times the 0 of the other classes' labels); class-index kernels now have the decimal
  rescue too, their labels as one-hot rows;
* the binary cross-entropy and binary focal gradients from logits at label smoothing 1 (every
  target 1/2): σ(x) - 1/2 cancelled to 0 at x = 2.2e-308 (:class:`SigmoidDiff`: tanh(x/2)/2);
* Tversky's gradient with β = 0 and the cosine's on a label row spanning 2^2000: a product of an
  input below 2^-969 with a weight lost its bits among the subnormals; such rows take the rescue.

* the categorical hinge's kink crossed by rounding (labels [1, 1], scores [1, 1e-30]: Σ y·p =
  1 + 1e-30 rounds to 1 and the margin to 0, where it is -1e-30 and the gradient 0): where a
  Heaviside argument lies within its rounding of 0, the rescue decides its side exactly.

MAPE's zero target is outside its definition (its divisor is ``Elem("y", nonzero=True)``): the
grid leaves it out. A zero label row of the cosine has no direction (0/0): NaN from the kernel,
an indeterminate ball from the reference at every precision, counted as undefined; any
other unresolved point makes ``--extremes`` exit 1, as ``cesym verify`` does.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cesym import cli
from cesym.verify import extremes
from cesym.verify.contract import check_batch
from cesym.verify.registry import case


CASES = [
    ("categorical_crossentropy", {"from_logits": True}, {"label_smoothing": 0.0}),
    ("categorical_crossentropy", {"from_logits": False}, {"label_smoothing": 0.0}),
    ("categorical_crossentropy", {"from_logits": False}, {"label_smoothing": 1.0}),
    ("softmax_cross_entropy_with_logits", {}, {}),
    ("categorical_focal_crossentropy", {"from_logits": True}, {"label_smoothing": 0.0, "alpha": 0.25, "gamma": 2.0}),
    ("categorical_focal_crossentropy", {"from_logits": True}, {"label_smoothing": 0.0, "alpha": 1.0, "gamma": 0.0}),
    ("categorical_focal_crossentropy", {"from_logits": False}, {"label_smoothing": 0.0, "alpha": 0.25, "gamma": 5.0}),
    ("categorical_focal_crossentropy", {"from_logits": False}, {"label_smoothing": 0.0, "alpha": 0.0, "gamma": 2.0}),
    ("binary_crossentropy", {"from_logits": True}, {"label_smoothing": 0.0}),
    ("dice", {}, {}),
    ("tversky", {}, {"alpha": 0.5, "beta": 0.5}),
    ("categorical_crossentropy", {"from_logits": True}, {"label_smoothing": 1.0}),
    ("sparse_categorical_crossentropy", {"from_logits": False}, {}),
    ("sparse_categorical_crossentropy", {"from_logits": True}, {}),
    ("binary_crossentropy", {"from_logits": True}, {"label_smoothing": 1.0}),
    ("categorical_hinge", {}, {}),
    ("binary_focal_crossentropy", {"from_logits": True, "apply_class_balancing": False}, {"label_smoothing": 1.0, "alpha": 0.25, "gamma": 2.0}),
    ("binary_focal_crossentropy", {"from_logits": True, "apply_class_balancing": True}, {"label_smoothing": 1.0, "alpha": 0.25, "gamma": 2.0}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel,flags,params", CASES, ids=[f"{k}{f}{p}" for k, f, p in CASES])
def test_extreme_rows_are_within_the_contract(kernel, flags, params, dtype):
    c = case(kernel, **flags)
    batch = extremes.grid(c, dtype, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = check_batch(c, batch)
    assert res.unresolved == 0
    assert not res.failures, "\n".join(str(f) for f in res.failures[:5])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cosine_rows_past_the_largest_norm(dtype):
    """Every cosine output of the grid is within the contract (the float64 gradients whose label
    row spans more than 2^2000 too: a unit label element of 1e-616 underflowed before the
    division by a subnormal norm brought it back; such rows now take the decimal rescue); a row
    without a direction (all zeros) is undefined, and unresolved, whatever the other row."""
    c = case("cosine_similarity")
    batch = extremes.grid(c, dtype, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = check_batch(c, batch)
    assert not res.failures, "\n".join(str(f) for f in res.failures[:5])
    zero = np.all(batch.labels == 0, axis=1) | np.all(batch.pred == 0, axis=1)
    assert res.unresolved == np.count_nonzero(zero)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tversky_without_false_negatives(dtype):
    """β = 0: the index TP/(TP + α·FP), whose gradient α·FP/(TP + α·FP)² at p = [5e-324, 1e-30],
    labels [0, 1] is -2.5e-264 where α·5e-324 rounds to 0 (it was 0): rows holding an input
    below 2^-969 take the decimal rescue. Where every prediction is 0 under a label the
    denominator is 0: 0/0 with no limit (NaN, proven from the value's rays: the gradient there
    cancels across stand-ins 2^(2^64) apart, past any precision), except under equal labels,
    where TP/(TP + α·FP) is the same in every direction (the limit α/(1 + α) exists, the kernel
    gives NaN, and the gradient's limit is not proven: unresolved, not counted a failure)."""
    c = case("tversky")
    batch = extremes.grid(c, dtype, {"alpha": 0.5, "beta": 0.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = check_batch(c, batch)
    assert not res.failures, "\n".join(str(f) for f in res.failures[:5])
    zero = np.all(batch.pred == 0, axis=1)
    equal = (batch.labels[:, 0] == batch.labels[:, 1]) & (batch.labels[:, 0] != 0)
    assert res.unresolved == np.count_nonzero(zero & equal)


def test_cosine_gradient_divides_by_a_norm_past_the_largest_float():
    """‖[M, M]‖ = √2·M overflows; the gradient, about 1e-309, is not 0 (exact: mpmath)."""
    import mpmath

    import cesym.kernels as K

    M = float(np.finfo(np.float64).max)
    for y, p in (([1.0, -3.0], [M, M]), ([M / 2, 1.0], [M, M / 2]), ([1.0, 2.0], [M, -M / 3])):
        g = K.cosine_similarity_grad(np.array([y]), np.array([p]))[0]
        with mpmath.workprec(200):
            Y, P = [mpmath.mpf(v) for v in y], [mpmath.mpf(v) for v in p]
            ny, np_ = mpmath.sqrt(sum(v * v for v in Y)), mpmath.sqrt(sum(v * v for v in P))
            dot = sum(a * b for a, b in zip(Y, P))
            exact = [P[j] * dot / (np_**3 * ny) - Y[j] / (np_ * ny) for j in range(2)]
        for gj, ej in zip(g, exact):
            # subnormal results: within 1 unit of 2^-1074 (one rounding more than a normal result)
            assert abs(mpmath.mpf(float(gj)) - ej) <= mpmath.mpf(2.0**-1074), (y, p, g, exact)
            assert gj != 0


def test_decimal_rescue_takes_a_value_two_precisions_agree_on():
    """The categorical cross-entropy's gradient on a renormalised row of two least subnormals
    is 0 (-t/p + Σt/Σp); IEEE gives inf - inf, and decimal at 50 digits the roundings' noise,
    1e273 (within the contract, whose κ is infinite at a zero, but not the gradient): the rescue
    now takes a float64 only where two precisions agree, here 0 at 800 and 1600 digits."""
    import cesym.kernels as K

    g = K.categorical_crossentropy_grad(np.array([[0.5, 0.5], [0.25, 0.75]]), np.array([[5e-324, 5e-324]] * 2))
    assert np.array_equal(g[0], [0.0, 0.0]), g
    assert np.array_equal(g[1], [np.inf, -np.inf])  # ±0.25/5e-324 = ±5.1e322: past the largest float


def test_soft_labels_on_logits_past_the_largest_float():
    """0.5·(1e308 - (-1e308)) = 1e308: finite, although the difference is not."""
    import cesym.kernels as K

    y, z = np.array([[0.5, 0.5]]), np.array([[1e308, -1e308]])
    assert K.categorical_crossentropy(y, z, from_logits=True)[0] == 1e308
    assert K.softmax_cross_entropy_with_logits(labels=y, logits=z)[0] == 1e308
    assert K.categorical_crossentropy(np.array([[0.0, 0.0]]), z, from_logits=True)[0] == 0.0  # not 0·inf
    g = K.categorical_crossentropy_grad(y, z, from_logits=True)
    assert np.array_equal(g, [[0.5, -0.5]])


def test_focal_gradient_on_equal_huge_logits_is_zero():
    import cesym.kernels as K

    for v in (1e300, 1.7976931348623157e308, 1e17):
        g = K.categorical_focal_crossentropy_grad(np.array([[1.0, 1.0]]), np.array([[v, v]]), from_logits=True)
        assert np.array_equal(g, [[0.0, 0.0]]), (v, g)


def test_the_grid_holds_every_pair_once():
    c = case("categorical_crossentropy", from_logits=True)
    b = extremes.grid(c, np.float64, {"label_smoothing": 0.0})
    vals, labs = extremes.values(c.inputs, np.float64), extremes.label_values(c, np.float64)
    assert len(b.pred) == len(vals) ** 2 * len(labs) ** 2
    assert len({(tuple(p), tuple(y)) for p, y in zip(b.pred.tolist(), b.labels.tolist())}) == len(b.pred)
    s = case("sparse_categorical_crossentropy", from_logits=True)
    bs = extremes.grid(s, np.float32)
    assert bs.labels.dtype == np.int64 and set(bs.labels.tolist()) == {0, 1} and bs.pred.dtype == np.float32
    focal = case("categorical_focal_crossentropy", from_logits=True)
    sets = extremes.settings(focal)
    assert len({tuple(sorted(x.items())) for x in sets}) == len(sets)  # each setting once (a default at an end: once)
    for name, _, rng in focal.params:  # every end of every range, the others at their defaults
        for end in rng or ():
            assert any(x[name] == end and all(x[k] == sets[0][k] for k in x if k != name) for x in sets)


def test_cli_extremes(tmp_path, capsys):
    out = tmp_path / "x.json"
    assert cli.main(["verify", "--extremes", "dice", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "dice" in text and "0 output(s) outside the contract" in text
    import json

    rows = json.loads(out.read_text())
    assert {r["dtype"] for r in rows} == {"float64", "float32"} and all(r["failures"] == [] for r in rows)
    assert cli.main(["verify", "--extremes", "--quick", "dice"]) == 2
    assert "--extremes checks a fixed grid" in capsys.readouterr().err


@pytest.mark.parametrize("y, p", [
    ([1.0, 1.0], [1.7976931348623157e308, 1.7976931348623157e308]),  # ‖p‖ past the largest float
    ([8.988465674311579e307, 1.0], [1.7976931348623157e308, 1e308]),
    ([1.0, 2.0], [3e-320, 6e-320]),  # ‖p‖ subnormal: x/‖x‖ loses the norm's digits
    ([5e-324, 5e-324], [1.0, 3.0]),
])
def test_cosine_of_rows_whose_norm_leaves_the_normal_floats(y, p):
    """x/‖x‖ where ‖x‖ is inf or subnormal: the row scaled by a power of two first
    (``_rt.unit_rows``); the value within the contract's 4 ulps (κ about 1 here)."""
    import mpmath

    import cesym.kernels as K

    got = float(K.cosine_similarity(np.array([y]), np.array([p]))[0])
    with mpmath.workdps(60):
        ym, pm = [mpmath.mpf(v) for v in y], [mpmath.mpf(v) for v in p]
        want = -sum(a * b for a, b in zip(ym, pm)) / (mpmath.sqrt(sum(a * a for a in ym)) * mpmath.sqrt(sum(b * b for b in pm)))
    assert abs(got - float(want)) <= 4 * np.spacing(abs(float(want))), (got, want)


def test_float32_focal_gradient_at_the_edge_p_1_has_the_sign_of_the_limit():
    """∂/∂p of -(1 - y)·p^γ·log(1 - p) at p = 1, y = 0 is +inf (1/(1 - p) from inside [0, 1]).
    The float32 path (the rounding test's form, whose cse shared |p - 1| with the value) wrote
    1 - p as -(p - 1): -0 at p = 1, and -inf; a negated difference is now printed as written."""
    import cesym.kernels as K

    for dtype in (np.float32, np.float64):
        for gamma in (0.0, 2.0):
            g = K.binary_focal_crossentropy_grad(np.array([[0.0]], dtype), np.array([[1.0]], dtype), gamma=gamma)
            assert g[0, 0] == np.inf, (dtype, gamma, g)


def test_grid_labels_respect_the_definitions_assumptions():
    """A label symbol declared nonzero (MAPE's divisor) has no 0 on the grid; others keep it."""
    mape, mse = case("mean_absolute_percentage_error"), case("mean_squared_error")
    assert 0.0 not in extremes.label_values(mape, np.float64) and 1.0 in extremes.label_values(mape, np.float64)
    assert 0.0 in extremes.label_values(mse, np.float64)


def test_indeterminate_points_are_undefined_only_where_the_kernel_gives_nan():
    """The cosine of a zero label row is 0/0: the reference's ball is NaN at every precision
    (:class:`~cesym.verify.reference.Indeterminate`) and the kernel gives NaN: undefined, not
    unresolved. A kernel that gives a number there is not believed: unresolved (exit 1)."""
    from cesym.verify.contract import check_batch
    from cesym.verify.sampling import Batch

    cos = case("cosine_similarity")
    batch = Batch(np.zeros((2, 2)), np.array([[1.0, 2.0], [1e308, -3.0]]), {}, ["extremes"] * 2)
    res = check_batch(cos, batch, indeterminate=True)
    assert (res.undefined, res.unresolved, len(res.failures)) == (2, 0, 0)
    zero = check_batch(cos, batch, indeterminate=True, kernel=lambda lab, p, params, grad: np.zeros(p.shape if grad else p.shape[:1]))
    assert (zero.undefined, zero.unresolved) == (0, 2)
    assert check_batch(cos, batch).unresolved == 2  # without the flag (sampled points): unresolved


def test_cli_extremes_exits_1_on_unresolved_points(monkeypatch, capsys):
    """An unresolved reference value is a point not proven: exit 1, as ``cesym verify``."""
    real = extremes.check_case

    def one_unresolved(c, dtype):
        out = real(c, dtype)
        out[0].unresolved += 1
        return out

    monkeypatch.setattr(extremes, "check_case", one_unresolved)
    assert cli.main(["verify", "--extremes", "dice"]) == 1
    assert "not proven: exit 1" in capsys.readouterr().out
