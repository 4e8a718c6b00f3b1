"""Non-smooth losses: the gradient at a kink is a convention, and cesym's is TensorFlow's.

|e| at 0 (``abs``'s gradient is ``sign``: 0), the hinge at t·p = 1 (``maximum`` passes the
gradient to its first argument on a tie: the active side's), the squared hinge there (0),
Huber at |e| = δ and at 0 (continuous: clip(e, -δ, δ)), the categorical hinge's row maximum
at a tie (``reduce_max`` shares the gradient equally among the maxima). Each is compared with
``tf.GradientTape`` through the Keras function, in float64 (one rounding of plain arithmetic:
the same numbers bit for bit), and with the interval reference, which takes the same conventions
(:class:`cesym.define.primitives.Relu`, ``sign``, ``Piecewise``). Also: the log1p domain of MSLE at
its edge -1, and MAPE at a zero target.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp

from cesym import kernels
from cesym.verify.contract import definition, reference_for
from cesym.define.evaluate import _namespace
from cesym.define.primitives import Relu
from cesym.verify.registry import case

#: (public name, keyword arguments, labels, predictions): each row puts an element on the kink.
KINKS = [
    ("mean_absolute_error", {}, [0.5, -2.0, 3.0], [0.5, 1.0, 3.0]),
    ("mean_absolute_percentage_error", {}, [0.5, -2.0, 3.0], [0.5, 1.0, 3.0]),
    ("hinge", {}, [1.0, -1.0, 1.0], [1.0, -1.0, 0.25]),
    ("squared_hinge", {}, [1.0, -1.0, 1.0], [1.0, -1.0, 0.25]),
    ("huber", {"delta": 1.0}, [0.0, 2.0, -1.0], [1.0, 1.0, -1.0]),
    ("huber", {"delta": 0.5}, [0.0, 2.0, 1.0], [-0.5, 2.5, 7.0]),
    ("categorical_hinge", {}, [0.0, 0.0, 1.0], [2.0, 2.0, 0.5]),  # a tie in the maximum: 1/2 each
    ("categorical_hinge", {}, [1.0, 0.0, 0.0], [1.5, 0.5, 0.25]),  # the margin exactly 0
    ("categorical_hinge", {}, [0.0, 1.0, 0.0], [3.0, 3.0, 3.0]),  # three-way tie, the true class in it
]


def _tf_grad(name: str, kw: dict, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    x = tf.Variable(p)
    with tf.GradientTape() as tape:
        v = getattr(keras.losses, name)(tf.constant(y), x, **kw)
    return tape.gradient(v, x).numpy()


@pytest.mark.parametrize("name,kw,y,p", KINKS, ids=[f"{k[0]}{k[1] or ''}" for k in KINKS])
def test_the_gradient_at_a_kink_is_tensorflows(name, kw, y, p):
    y, p = np.array([y]), np.array([p])
    g = getattr(kernels, name + "_grad")(y, p, **kw)
    np.testing.assert_array_equal(g, _tf_grad(name, kw, y, p))


@pytest.mark.parametrize("name,kw,y,p", KINKS, ids=[f"{k[0]}{k[1] or ''}" for k in KINKS])
def test_the_reference_takes_the_same_convention(name, kw, y, p):
    c = case(name)
    ref = reference_for(definition(c), 3)
    params = [kw.get(q, d) for q, d, _ in c.params]
    _, grad = ref.value_and_grad(y, p, params)
    g = getattr(kernels, name + "_grad")(np.array([y]), np.array([p]), **kw)[0]
    assert [float(v) for v in grad] == list(g)


def test_relu_is_max_with_a_step_derivative_that_is_one_at_the_kink():
    u = sp.Symbol("u", real=True)
    r = Relu(u)
    assert sp.diff(r, u) == sp.Heaviside(u, 1)
    for x in (-2.5, 0.0, 3.0):
        assert float(r.elementary().subs(u, x)) == max(x, 0.0)
    d = sp.diff(r.elementary(), u)  # the elementary form differentiates to the same step
    assert [d.subs(u, x) for x in (-1, 0, 1)] == [0, 1, 1]
    # SymPy's own Max does not: 1/2 at the kink, not TensorFlow's convention
    assert sp.diff(sp.Max(u, 0), u).subs(u, 0) == sp.S.Half


def test_interval_pieces_straddling_a_condition_give_the_hull():
    m = _namespace(mpmath.iv)["mpmath"]
    iv = mpmath.iv
    x = iv.mpf([0.5, 2.0])
    out = m.pick((x <= 1, x * 0 + 7), (True, x * 0 - 3))  # undecided: both pieces
    assert (float(out.a), float(out.b)) == (-3.0, 7.0)
    out = m.pick((iv.mpf(0.5) <= 1, iv.mpf(7)), (True, iv.mpf(-3)))
    assert (float(out.a), float(out.b)) == (7.0, 7.0)
    assert m.max_(iv.mpf([-1, 2]), 0).a == 0 and m.max_(iv.mpf([-1, 2]), 0).b == 2
    s = m.sign_(iv.mpf([-1, 2]))
    assert (float(s.a), float(s.b)) == (-1.0, 1.0)
    assert float(m.heaviside(iv.mpf(0), 1).a) == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_msle_near_its_edge_minus_one(dtype):
    """log1p(p) near p = -1 keeps every digit (Keras floors p at 1e-7 and computes log(p + 1))."""
    eps = float(np.finfo(dtype).eps)
    p = np.array([[-1 + eps, -0.5, -1.0]], dtype=dtype)
    y = np.array([[0.0, 1.0, 2.0]], dtype=dtype)
    v, g = kernels.mean_squared_logarithmic_error_value_and_grad(y, p)
    assert v[0] == np.inf and g[0, 2] == -np.inf
    q = np.array([[-1 + eps, -0.5]], dtype=dtype)
    v, g = kernels.mean_squared_logarithmic_error_value_and_grad(y[:, :2], q)
    with mpmath.workdps(60):
        lp = [mpmath.log1p(mpmath.mpf(float(x))) for x in q[0]]
        ly = [mpmath.log1p(mpmath.mpf(float(x))) for x in y[0, :2]]
        exact_v = sum((a - b) ** 2 for a, b in zip(lp, ly)) / 2
        exact_g = [2 * (a - b) / ((1 + mpmath.mpf(float(x))) * 2) for a, b, x in zip(lp, ly, q[0])]
    spacing = lambda x: float(np.spacing(dtype(abs(float(x)))))  # noqa: E731
    # a few roundings of log1p, a difference and a square: within 4 ulps
    assert abs(float(v[0]) - float(exact_v)) <= 4 * spacing(exact_v)
    for got, want in zip(g[0], exact_g):
        assert abs(float(got) - float(want)) <= 4 * spacing(want)
    with pytest.raises(ValueError, match="y_pred.*>= -1"):
        kernels.mean_squared_logarithmic_error(y, np.array([[-1.5, 0.0, 0.0]], dtype=dtype))


def test_mape_at_a_zero_target_is_its_limit():
    v = kernels.mean_absolute_percentage_error(np.array([[0.0, 1.0]]), np.array([[2.0, 1.0]]))
    assert v[0] == math.inf
