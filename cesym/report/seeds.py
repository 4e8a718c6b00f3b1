"""Every number the seed posts print (:data:`POSTS`), reproduced and explained.

For each: the number the post printed, what Keras 3 returns today for the same call (measured
in this run), the mathematics (mpmath, exact, from the inputs the post used: float64 NumPy
arrays, or the float32 values of the tensors it made with ``dtype=tf.float32``), what cesym's
kernel returns, and the explanation, itself checked by computation where it is a formula (for
example the Keras 2 value 1.2039724588394165 is float32(−ln(0.3 + 1e-7)), and the check says
whether that holds).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import mpmath
import numpy as np

from cesym import kernels as K

__all__ = ["SeedNumber", "seed_numbers", "POSTS", "QUESTIONS"]

#: The posts this project grew from, by seed number: title (as published), date, what it computes.
#: Copies are kept outside the repository; the reports name them and do not link them.
POSTS = {
    "000": "“loss funtion” (a Korean blog post, category DL: a 10-class MNIST model on raw pixels, "
    "tf.nn and Keras cross-entropies with and without from_logits)",
    "001": "“[딥러닝] 케라스 손실 함수 (Loss Function)” (a Korean blog post, last modified 2021-05-23: the Keras "
    "loss classes and their arguments)",
    "002": "an untitled Jupyter notebook (Korean comments: BinaryCrossentropy, CategoricalCrossentropy, "
    "SparseCategoricalCrossentropy, CategoricalAccuracy and SparseCategoricalAccuracy on small NumPy arrays, "
    "each against a manual NumPy computation; then MNIST from tensorflow_datasets)",
    "003": "“Custom loss와 model.fit()을 같이 사용해보자!” (a Korean blog post, 2021-12-02: an activity "
    "penalty through model.add_loss, after the TensorFlow segmentation tutorial)",
    "004": "“[ML] TensorFlow Losses and Metrics” (a Korean blog post, last modified 2021-11-29, TensorFlow 2.6.0: "
    "the same losses and accuracies on float32 tensors, against manual tf.math computations)",
}


#: The three questions ``reports/README.md`` answers first (the reader's, from the seeds): the
#: seed row behind "why is my loss 1.2039724588394165", the family whose Keras accuracy is asked
#: about (its display name, its report) and in which dtype.
QUESTIONS = {
    "seed": ("002", "binary_crossentropy"),
    "keras_family": ("categorical_crossentropy", "categorical cross-entropy"),
    "dtype": "float32",
}


@dataclass
class SeedNumber:
    seed: str
    family: str
    what: str
    printed: str
    keras_today: str
    mathematics: str
    cesym: str
    explanation: str


def _r(x) -> str:
    return repr(float(x))


def _tf():
    from ..keras.calls import _tf as tensorflow

    tf = tensorflow()
    import keras

    return tf, keras


def _mean_neg_log(ps) -> mpmath.mpf:
    """mean(−ln p) over ``ps``, exactly from the floats given (float32 values stay float32 values)."""
    with mpmath.workdps(30):
        return mpmath.fsum(-mpmath.log(mpmath.mpf(float(p))) for p in ps) / len(ps)


def _mean_cce(P, labels) -> mpmath.mpf:
    """mean over the rows of −ln(p_y / Σ_c p_c): the categorical mathematics Keras defines
    (rows renormalised), exactly from the floats given."""
    with mpmath.workdps(30):
        terms = []
        for row, y in zip(P, labels):
            r = [mpmath.mpf(float(v)) for v in row]
            terms.append(-mpmath.log(r[int(y)] / mpmath.fsum(r)))
        return mpmath.fsum(terms) / len(terms)


def _row_sums(P) -> str:
    with mpmath.workdps(30):
        return ", ".join(mpmath.nstr(mpmath.fsum(mpmath.mpf(float(v)) for v in row), 17) for row in P)


def _argmax_text(P, labels) -> str:
    """Which rows an argmax accuracy counts right: the rows' argmax against the labels, 1-based."""
    am = [int(i) for i in np.argmax(P, axis=1)]
    wrong = [r + 1 for r, (a, y) in enumerate(zip(am, labels)) if a != y]
    right = [r + 1 for r in range(len(am)) if r + 1 not in wrong]

    def rows(rs):
        return "row " + str(rs[0]) if len(rs) == 1 else "rows " + " and ".join(str(r) for r in rs)

    parts = [f"{rows([r])} predicts class {am[r - 1]} ({float(P[r - 1][am[r - 1]]):g}) for label {int(labels[r - 1])}" for r in wrong]
    return (
        f"The rows' argmax is {am} against labels {[int(y) for y in labels]}: " + "; ".join(parts)
        + f" → wrong; {rows(right)} right."
    )


def _mean_neg_bce(y, p) -> mpmath.mpf:
    """mean over the rows of −(y ln p + (1 − y) ln(1 − p)), exactly from the floats given."""
    with mpmath.workdps(30):
        terms = []
        for yi, pi in zip(np.ravel(y), np.ravel(p)):
            q = mpmath.mpf(float(pi))
            terms.append(-mpmath.log(q) if yi == 1 else -mpmath.log(1 - q))
        return mpmath.fsum(terms) / len(terms)


def _raises(call) -> str:
    """What cesym says when ``call`` is refused (the first clause of the message)."""
    try:
        return f"returns {call()!r}"
    except (TypeError, ValueError) as e:
        return f"{type(e).__name__}: {str(e).split(';')[0]}"


def _check(ok: bool) -> str:
    return "holds" if ok else "does NOT hold"


def _evaluate(keras, loss, y: np.ndarray, p: np.ndarray) -> float:
    """``model.compile(loss=loss)`` then ``model.evaluate`` on a model that outputs its input:
    the loss as ``fit`` reports it for predictions ``p`` (one batch)."""
    model = keras.Sequential([keras.Input(p.shape[1:]), keras.layers.Identity()])
    model.compile(loss=loss)
    return float(model.evaluate(p, y, verbose=0, batch_size=len(p)))


def _seed000_runs(tf, keras) -> list[SeedNumber]:
    """Seed 000's training numbers come from MNIST (not in this repository, and not downloadable
    here) and from one model trained on through several losses from a random start: their values
    cannot be reproduced. What they show can, and is run here: the three spellings of one loss
    compute the same numbers, and the ln 10 plateau is a state that training cannot leave."""
    L = keras.losses
    z = np.array([[3.0, 1.0, -2.0], [0.5, 2.5, 0.1]], np.float32)
    lab = np.array([0, 1])
    spellings = {
        "SparseCategoricalCrossentropy(from_logits=True)": float(L.SparseCategoricalCrossentropy(from_logits=True)(lab, z)),
        "partial(sparse_categorical_crossentropy, from_logits=True)": float(np.mean(
            functools.partial(L.sparse_categorical_crossentropy, from_logits=True)(lab, z))),
        "nested function loss3()": float(np.mean((lambda yt, yp: L.sparse_categorical_crossentropy(yt, yp, from_logits=True))(lab, z))),
    }
    with mpmath.workdps(30):
        exact = mpmath.fsum(
            mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(float(v))) for v in row)) - mpmath.mpf(float(row[k]))
            for row, k in zip(z, lab)) / len(lab)
    out = [SeedNumber(
        "000", "sparse_categorical_crossentropy", "loss1, loss2 = partial(…, from_logits=True), loss3() (a nested "
        "function): one epoch each on MNIST, one model trained on", "2.7764 (loss2), 2.6502 (loss3)",
        "; ".join(f"{k} {v!r}" for k, v in spellings.items()) + " on logits [[3, 1, −2], [0.5, 2.5, 0.1]], labels [0, 1]",
        mpmath.nstr(exact, 17), _r(np.mean(K.sparse_categorical_crossentropy(lab, z, from_logits=True))),
        f"The three spellings are one loss: {'identical, bit for bit' if len(set(spellings.values())) == 1 else 'NOT identical'} "
        "(measured). The printed numbers differ because the model went on training between them (on MNIST, from a "
        "random start): they cannot be reproduced here, only that the loss is the same.",
    )]
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(256, 28, 28)).astype(np.float32)  # stand-in images: raw pixels in [0, 255]
    y = rng.integers(0, 10, size=256)
    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28))
    h = keras.layers.Dense(128, activation="relu")(keras.layers.Flatten()(inp))
    # the post's state at epochs 4-5: every output of the last Dense layer negative
    out_layer = keras.layers.Dense(10, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(-1.0))
    model = keras.Model(inp, out_layer(h))
    before = [w.copy() for w in model.get_weights()]
    model.compile(loss=L.SparseCategoricalCrossentropy(from_logits=False), optimizer="rmsprop")
    hist = model.fit(X, y, epochs=2, batch_size=32, verbose=0).history["loss"]
    still = all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    out.append(SeedNumber(
        "000", "sparse_categorical_crossentropy", "the plateau, run: model.fit with SparseCategoricalCrossentropy("
        "from_logits=False) on the post's model (Flatten, Dense(128, relu), Dense(10)) once every output is negative, "
        "on 256 stand-in images of raw pixels", "2.3026, 2.3026 (epochs 4–5)",
        f"epoch losses {[float(v) for v in hist]}; every weight unchanged after 2 epochs: {_check(still)}",
        f"ln 10 = {math.log(10):.7g}", "—",
        "Every output is clipped up to 1e-7, the clipped row is uniform, the loss is ln 10 and tf.clip_by_value passes "
        "a zero gradient: the optimizer has nothing to follow and the weights stay where they are. The post's "
        "3.8974, 2.3095, 2.3037 are its model drifting into that state (outputs turning negative); its 3.0797, 0.5858, "
        "0.4708, 0.4371, 0.3952 (from_logits=True) and 0.2545, 0.1194, 0.0877, 0.0717, 0.0611 (pixels / 255) are MNIST "
        "training curves from that model's weights: "
        "not reproducible without MNIST and its random start. Their first-epoch drop with pixels / 255 is the scale "
        "of the logits (see the 496111.78 row).",
    ))
    return out


def _seed001(tf, keras) -> list[SeedNumber]:
    """Seed 001 prints no number; its table and usage blocks make claims, measured here: the three
    ways to name a loss, ``from_logits=True`` after a sigmoid layer, the call with no arguments,
    and the table's regression and multi-label rows."""
    L = keras.losses
    out = []
    y = np.array([[1], [0], [1], [0]], np.float32)
    p = np.array([[0.9], [0.2], [0.6], [0.35]], np.float32)
    forms = {
        "class": float(L.BinaryCrossentropy()(y, p)),
        "function (mean)": float(np.mean(L.binary_crossentropy(y, p))),
        "compile('binary_crossentropy')": _evaluate(keras, "binary_crossentropy", y, p),
        "compile(BinaryCrossentropy())": _evaluate(keras, L.BinaryCrossentropy(), y, p),
        "compile(binary_crossentropy)": _evaluate(keras, L.binary_crossentropy, y, p),
    }
    same = len(set(forms.values())) == 1
    out.append(SeedNumber(
        "001", "binary_crossentropy", "the three ways to name a loss (class, function, string) on labels [1, 0, 1, 0], "
        "probabilities [0.9, 0.2, 0.6, 0.35] (float32)", "(no number printed)",
        "; ".join(f"{k} {v!r}" for k, v in forms.items()),
        mpmath.nstr(_mean_neg_bce(y, p), 17), _r(np.mean(K.binary_crossentropy(y, p))),
        f"The string resolves to the function ({getattr(L.get('binary_crossentropy'), '__name__', '?')}), which compile "
        f"wraps with the class's default reduction (the batch mean): the five values are "
        f"{'identical, bit for bit' if same else 'NOT identical'} (measured).",
    ))
    y1, p1 = np.array([[1], [0]], np.float32), np.array([[1.0], [0.0]], np.float32)
    best = float(L.BinaryCrossentropy(from_logits=True)(y1, p1))
    per = L.binary_crossentropy(y1, p1, from_logits=True).numpy()
    with mpmath.workdps(30):
        floor1, floor0 = mpmath.log1p(mpmath.exp(-1)), mpmath.log(2)
    out.append(SeedNumber(
        "001", "binary_crossentropy", "BinaryCrossentropy(from_logits=True) after Dense(1, activation='sigmoid') "
        "(the post's first usage block), at perfect predictions p = 1 (label 1) and p = 0 (label 0)",
        "(no number printed)", f"{best!r} (per sample {[float(v) for v in per]})",
        f"softplus(−1) = {mpmath.nstr(floor1, 17)}, ln 2 = {mpmath.nstr(floor0, 17)}",
        str([float(v) for v in K.binary_crossentropy(y1, p1, from_logits=True)]),
        "The probabilities are read as logits: σ is applied twice. A perfect prediction then costs softplus(−1) "
        "(label 1) or ln 2 (label 0), never 0; the gradient through σ(σ(z)) is damped by both slopes. "
        "from_logits=True belongs with a Dense layer without activation.",
    ))
    try:
        L.sparse_categorical_crossentropy()  # the post's `loss=...sparse_categorical_crossentropy()`
        called = "returns a value"
    except TypeError as e:
        called = f"TypeError: {e}"
    out.append(SeedNumber(
        "001", "sparse_categorical_crossentropy", "compile(loss=tf.keras.losses.sparse_categorical_crossentropy()) "
        "(the post's usage block: the function called with no arguments)", "(no number printed)", called, "—",
        _raises(lambda: K.sparse_categorical_crossentropy()),
        "The function form is passed uncalled (loss=sparse_categorical_crossentropy) or the class is called "
        "(SparseCategoricalCrossentropy()); the post's line fails before compile.",
    ))
    ys = np.array([[0.3]], np.float32)
    x = tf.constant(ys)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(L.binary_crossentropy(ys, x))
    gk = float(tape.gradient(total, x).numpy()[0, 0])
    with mpmath.workdps(30):
        t = mpmath.mpf(float(ys[0, 0]))
        H = -(t * mpmath.log(t) + (1 - t) * mpmath.log(1 - t))
    out.append(SeedNumber(
        "001", "binary_crossentropy", "the table's 'regression to values between 0 and 1: mse or binary_crossentropy': "
        "target 0.3 predicted exactly (p = y = float32(0.3))", "(no number printed)",
        f"binary_crossentropy {float(L.binary_crossentropy(ys, ys).numpy()[0])!r} (gradient {gk!r}); "
        f"mean_squared_error {float(L.mean_squared_error(ys, ys).numpy()[0])!r}",
        f"H(0.3) = {mpmath.nstr(H, 17)}; 0", f"{float(K.binary_crossentropy(ys, ys)[0])!r} (gradient "
        f"{float(K.binary_crossentropy_grad(ys, ys)[0, 0])!r}); {float(K.mean_squared_error(ys, ys)[0])!r}",
        "On a soft target the cross-entropy's minimum is at p = y, where it equals the entropy of y, not 0: "
        "a loss of 0.61 is the best possible there (both gradients are 0 at p = y). mse's minimum is 0.",
    ))
    ym, pm = np.zeros((1, 2), np.float32), np.array([[2e19, 0.0]], np.float32)
    out.append(SeedNumber(
        "001", "mean_squared_error", "the table's 'regression to arbitrary values: mse', with a float32 error of 2e19 "
        "(labels [0, 0], predictions [2e19, 0])", "(no number printed)",
        f"mean_squared_error {float(L.mean_squared_error(ym, pm).numpy()[0])!r}",
        f"p²/2 = {mpmath.nstr(mpmath.mpf(float(pm[0, 0])) ** 2 / 2, 17)} (p = float32(2e19); below float32's 3.4e38)",
        repr(float(K.mean_squared_error(ym, pm)[0])),
        "Keras squares in float32: (2e19)² = 4e38 overflows, the mean is inf; cesym sums the squares scaled "
        "(the largest |p − y| factored out) and returns the float32 mean, 2e38.",
    ))
    yt, pt = np.array([[1, 0, 1]], np.float32), np.array([[0.9, 0.2, 0.6]], np.float32)
    out.append(SeedNumber(
        "001", "binary_crossentropy", "the table's multi-label row (sigmoid + binary_crossentropy): tags [1, 0, 1], "
        "probabilities [0.9, 0.2, 0.6]", "(no number printed)",
        repr(float(L.binary_crossentropy(yt, pt).numpy()[0])), mpmath.nstr(_mean_neg_bce(yt, pt), 17),
        repr(float(K.binary_crossentropy(yt, pt)[0])),
        "One value per sample: the mean over its tags (the last axis) of each tag's binary cross-entropy, not the sum.",
    ))
    return out


def seed_numbers() -> list[SeedNumber]:
    """Compute every row (needs TensorFlow and Keras)."""
    tf, keras = _tf()
    L, M = keras.losses, keras.metrics
    out: list[SeedNumber] = []

    # --- seed 002: BinaryCrossentropy on (1, 0.3) ---------------------------------------------
    p, y = np.array([0.3]).reshape(-1, 1), np.array([1])
    k2 = float(np.float32(-math.log(0.3 + 1e-7)))
    out.append(SeedNumber(
        "002", "binary_crossentropy", "BinaryCrossentropy()(labels=[1], predictions=[[0.3]])", "1.2039724588394165",
        _r(L.BinaryCrossentropy()(y, p)), mpmath.nstr(-mpmath.log(mpmath.mpf(0.3)), 17),
        _r(K.binary_crossentropy(y.reshape(-1, 1).astype(float), p)[0]),
        "Keras 2 computed log(p + 1e-7) in float32: float32(−ln(0.3 + 1e-7)) = "
        f"{k2!r} ({_check(k2 == 1.2039724588394165)}). Keras 3's class form casts to float32 and clips instead: "
        "float32 of −ln float32(0.3). The blog's manual value [[1.2039728]] is the float64 value −ln 0.3 as NumPy "
        "prints a float64 array (8 significant digits by default): "
        f"{np.array2string(-np.log(np.array([[0.3]])))} "
        f"({_check(np.array2string(-np.log(np.array([[0.3]]))) == '[[1.2039728]]')}).",
    ))
    p2, y2 = np.array([0.3, 0.7]).reshape(-1, 1), np.array([1, 0]).reshape(-1, 1)
    out.append(SeedNumber(
        "002", "binary_crossentropy", "the same as a column: labels [[1], [0]], predictions [[0.3], [0.7]]",
        "1.2039724588394165 (manual 1.2039728043259361)", _r(L.BinaryCrossentropy()(y2, p2)),
        mpmath.nstr(-mpmath.log(mpmath.mpf(0.3)), 17), _r(np.mean(K.binary_crossentropy(y2.astype(float), p2))),
        "Both rows cost −ln 0.3 (label 0 with p = 0.7 is −ln(1 − 0.7)); the mean is −ln 0.3.",
    ))
    P = np.array([[0.3, 0.7], [0.4, 0.6], [0.1, 0.9]])
    Y = np.array([[0, 1], [1, 0], [1, 0]])
    eps = 1e-7
    k2b = np.mean(np.mean(-(Y * np.log(P + eps) + (1 - Y) * np.log(1 - P + eps)), axis=1))
    with mpmath.workdps(30):
        exact = mpmath.fsum(-mpmath.log(mpmath.mpf(v)) for v in (0.7, 0.4, 0.1)) / 3
    out.append(SeedNumber(
        "002", "binary_crossentropy", "BinaryCrossentropy() on the batch [[0.3,0.7],[0.4,0.6],[0.1,0.9]]",
        "1.1918498277664185 (manual 1.1918502562689777)", _r(L.BinaryCrossentropy()(Y, P)), mpmath.nstr(exact, 17),
        _r(np.mean(K.binary_crossentropy(Y.astype(float), P))),
        f"Keras 2's log(p + 1e-7) formula gives {float(k2b)!r} in float64 and float32 {float(np.float32(k2b))!r} "
        f"({_check(float(np.float32(k2b)) == 1.1918498277664185)}: the printed float64 tensor held a float32 "
        "result). The mathematics is the mean of −ln 0.7, −ln 0.4, −ln 0.1: the post's manual per-sample terms "
        f"{np.array2string(np.sum(-Y * np.log(P), axis=1))} (NumPy's 8 digits; the post prints "
        f"[0.35667494 0.91629073 2.30258509]: {_check(np.array2string(np.sum(-Y * np.log(P), axis=1)) == '[0.35667494 0.91629073 2.30258509]')}).",
    ))
    P3 = np.array([[0.2, 0.1, 0.7], [0.4, 0.3, 0.3], [0.1, 0.8, 0.1]])
    Y3 = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]])
    f32 = float(np.mean(-np.log(np.array([0.7, 0.3, 0.1], np.float32))))
    out.append(SeedNumber(
        "002", "categorical_crossentropy", "CategoricalCrossentropy() on 3 rows, one-hot labels",
        "1.2877442836761475 (manual 1.2877442804195713)", _r(L.CategoricalCrossentropy()(Y3, P3)),
        mpmath.nstr(_mean_cce(P3, [2, 1, 0]), 17), _r(np.mean(K.categorical_crossentropy(Y3.astype(float), P3))),
        f"The class form computes in float32: mean of float32 −ln(0.7, 0.3, 0.1) = {f32!r} "
        f"({_check(f32 == 1.2877442836761475)}); the manual value is the float64 mean of −ln(0.7, 0.3, 0.1). "
        f"The mathematics renormalises each row, as Keras defines it: the float64 rows sum to {_row_sums(P3)}.",
    ))
    out.append(SeedNumber(
        "002", "sparse_categorical_crossentropy", "SparseCategoricalCrossentropy() with labels [2, 1, 0]",
        "1.2877442836761475", _r(L.SparseCategoricalCrossentropy()(np.array([2, 1, 0]), P3)),
        mpmath.nstr(_mean_cce(P3, [2, 1, 0]), 17), _r(np.mean(K.sparse_categorical_crossentropy(np.array([2, 1, 0]), P3))),
        "The same three probabilities as the categorical case, in float32.",
    ))
    Yacc = np.array([[0, 0, 1], [1, 0, 0], [1, 0, 0]])
    out.append(SeedNumber(
        "002", "metrics", "CategoricalAccuracy / SparseCategoricalAccuracy (labels [2, 0, 0]) ×100",
        "0.6666667 / 66.66667", f"{float(M.CategoricalAccuracy()(Yacc, P3)):.7g} / {float(M.SparseCategoricalAccuracy()(np.array([2, 0, 0]), P3) * 100):.7g}",
        "2/3", f"{float(np.mean(K.categorical_accuracy(Yacc.astype(float), P3))):.7g} / "
        f"{100 * float(np.mean(K.sparse_categorical_accuracy(np.array([2, 0, 0]), P3))):.7g}",
        _argmax_text(P3, [2, 0, 0]),
    ))

    # --- seed 004 ---------------------------------------------------------------------------
    pb = np.array([[0.3], [0.8]], np.float32)
    yb = np.array([[0], [1]], np.float32)
    out.append(SeedNumber(
        "004", "binary_crossentropy", "BinaryCrossentropy() on [[0.3], [0.8]] with labels [[0], [1]] (float32)",
        "0.2899", f"{float(L.BinaryCrossentropy()(yb, pb)):.4f}", mpmath.nstr(_mean_neg_bce(yb, pb), 17),
        f"{float(np.mean(K.binary_crossentropy(yb, pb))):.4f}",
        "mean(−ln(1 − p₁), −ln p₂) of the float32 inputs p = float32(0.3) = "
        f"{float(pb[0, 0])!r}, float32(0.8) = {float(pb[1, 0])!r} (exactly; from the decimals 0.3 and 0.8 it would be "
        f"{mpmath.nstr(_mean_neg_log([0.7, 0.8]), 17)}).",
    ))
    pc = np.array([[0.1, 0.6, 0.3], [0.2, 0.7, 0.1]], np.float32)
    yc = np.array([[0, 0, 1], [0, 1, 0]], np.float32)
    out.append(SeedNumber(
        "004", "categorical_crossentropy", "CategoricalCrossentropy() / SparseCategoricalCrossentropy() ([2, 1])",
        "0.7803 / 0.7803", f"{float(L.CategoricalCrossentropy()(yc, pc)):.4f} / {float(L.SparseCategoricalCrossentropy()(np.array([2, 1]), pc)):.4f}",
        mpmath.nstr(_mean_cce(pc, [2, 1]), 17),
        f"{float(np.mean(K.categorical_crossentropy(yc, pc))):.4f} / {float(np.mean(K.sparse_categorical_crossentropy(np.array([2, 1]), pc))):.4f}",
        f"mean(−ln(p_y / Σp)) of the float32 inputs, exactly: p_y = float32(0.3) = {float(pc[0, 2])!r} and float32(0.7) "
        f"= {float(pc[1, 1])!r}, the rows summing to {_row_sums(pc)} (renormalised, as Keras defines the loss; from the "
        f"decimals 0.3 and 0.7 it would be mean(−ln 0.3, −ln 0.7) = {mpmath.nstr(_mean_neg_log([0.3, 0.7]), 17)}).",
    ))
    out.append(SeedNumber(
        "004", "metrics", "CategoricalAccuracy / SparseCategoricalAccuracy, ×100", "50.00% / 50.00%",
        f"{100 * float(M.CategoricalAccuracy()(yc, pc)):.2f}% / {100 * float(M.SparseCategoricalAccuracy()(np.array([2, 1]), pc)):.2f}%",
        "1/2", f"{100 * float(np.mean(K.categorical_accuracy(yc, pc))):.2f}% / {100 * float(np.mean(K.sparse_categorical_accuracy(np.array([2, 1]), pc))):.2f}%",
        _argmax_text(pc, [2, 1]),
    ))

    out += _seed001(tf, keras)

    # --- seed 000 ---------------------------------------------------------------------------
    raw = -np.abs(np.random.default_rng(0).normal(size=(4, 10))).astype(np.float32)  # raw outputs, all negative
    lab = np.array([1, 2, 3, 4])
    x = tf.constant(raw)
    with tf.GradientTape() as tape:
        tape.watch(x)
        lv = keras.losses.sparse_categorical_crossentropy(lab, x)
        total = tf.reduce_sum(lv)  # inside the tape: a sum taken after it is not recorded (its gradient is None)
    g = tape.gradient(total, x)
    gmax = float(np.max(np.abs(g.numpy())))
    gtxt = f"gradient {'identically 0' if gmax == 0 else f'max |g| {gmax:.3g}'}"
    inside = tf.constant(np.full((1, 10), 0.1, np.float32))  # a row inside [ε, 1 - ε]: the clip passes its gradient
    with tf.GradientTape() as tape:
        tape.watch(inside)
        t_in = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(lab[:1], inside))
    g_in = float(np.max(np.abs(tape.gradient(t_in, inside).numpy())))
    out.append(SeedNumber(
        "000", "sparse_categorical_crossentropy", "plateau: SparseCategoricalCrossentropy(from_logits=False) on raw "
        "(negative) outputs of a 10-class Dense layer", "2.3026 (epochs 4–5)", f"{float(np.mean(lv.numpy())):.7g}; {gtxt}",
        f"ln 10 = {math.log(10):.7g}", _raises(lambda: K.sparse_categorical_crossentropy(lab, raw)),
        "Keras clips every negative output up to 1e-7, so the row becomes uniform after renormalising: "
        "the loss is ln 10 whatever the outputs, and tf.clip_by_value passes a zero gradient outside [1e-7, 1 − 1e-7] "
        f"(measured: {gtxt}; a row inside it, 0.1 everywhere, gets max |g| {g_in:.3g}) — training stops on the plateau. "
        "The gradient is 0, not None: a None comes from a tape that did not record the loss's reduction. "
        "cesym refuses negative probabilities instead of computing a loss of nothing.",
    ))
    out += _seed000_runs(tf, keras)
    big = np.array([[3.0e5, 0.0, -2.0e5]])
    out.append(SeedNumber(
        "000", "sparse_categorical_crossentropy", "huge losses (496111.78) with from_logits=True on unscaled pixels",
        "496111.7812", f"{float(keras.losses.sparse_categorical_crossentropy(np.array([1]), big, from_logits=True)[0]):.7g} "
        "for logits [3e5, 0, -2e5], label 1", "max z − z_y + log1p(…) = 300000",
        _r(K.sparse_categorical_crossentropy(np.array([1]), big, from_logits=True)[0]),
        "Inputs in [0, 255] make logits of order 1e5; −log softmax_y ≈ max z − z_y is of that order. Scaling the "
        "inputs (X/255) brings it to 0.25 as the post found.",
    ))
    zz = np.array([[1.0, 2.0, 3.0], [0.5, 0.1, -1.0]], np.float32)
    col = np.array([[2.0], [0.0]], np.float32)
    tfv = tf.nn.softmax_cross_entropy_with_logits(labels=col, logits=zz).numpy()
    nls = -tf.nn.log_softmax(zz).numpy()
    expect = col[:, 0] * nls.sum(axis=1)
    out.append(SeedNumber(
        "000", "tf_nn", "tf.nn.softmax_cross_entropy_with_logits given sparse labels of shape (N, 1)", "733138.9375",
        f"{[float(v) for v in tfv]} for labels [[2], [0]]", "not a loss: labels are not distributions",
        _raises(lambda: K.softmax_cross_entropy_with_logits(labels=col, logits=zz)),
        f"The labels broadcast along the classes: a row [k, k, …, k], so the loss is k·Σ_c(−log softmax_c) "
        f"({_check(bool(np.allclose(tfv, expect, rtol=1e-6)))}: {[float(v) for v in expect]}): zero for class 0, large otherwise. "
        "A rank-1 (N,) label is refused by TensorFlow ('logits and labels must be broadcastable').",
    ))

    # --- seed 003 ---------------------------------------------------------------------------
    inp = keras.Input((4,))
    h = keras.layers.Dense(3)(inp)
    model = keras.Model(inp, h)
    try:
        model.add_loss(keras.ops.sum(h))
        add_loss = "accepted"
    except Exception as e:  # noqa: BLE001 - we record what Keras does
        add_loss = f"{type(e).__name__}: {' '.join(str(e).split())[:120]}"
    reg = keras.layers.ActivityRegularization(l2=0.1)
    hh = np.arange(12, dtype=np.float32).reshape(3, 4)
    reg(hh)
    keras_pen = float(reg.losses[0])
    out.append(SeedNumber(
        "003", "activity_penalty", "model.add_loss(λ·mean_batch Σ h²) on a functional model; λ = 0.1, h = arange(12) as (3, 4)",
        "(no number printed)", f"Functional.add_loss: {add_loss}; ActivityRegularization(l2=0.1): {keras_pen!r}",
        _r(0.1 * np.mean(np.sum(hh.astype(np.float64) ** 2, axis=1))), _r(K.activity_penalty(hh, 0.1)),
        "Keras 3 has no add_loss on a functional model's symbolic tensors; a layer that calls self.add_loss in call(), "
        "or ActivityRegularization / activity_regularizer=L2(λ), gives λ·mean_batch Σh² — the seed's formula "
        f"({_check(abs(keras_pen - 0.1 * float(np.mean(np.sum(hh.astype(np.float64) ** 2, axis=1)))) < 1e-5)}).",
    ))
    return out
