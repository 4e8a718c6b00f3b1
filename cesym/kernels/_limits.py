r"""The kernels over the extended reals: limits at ±inf inputs, NaN only where there is none.

The generated cores compute the finite domain; IEEE arithmetic gives them NaN at infinite
inputs (0·inf in a weighted term, inf - inf in ``z - max z``). Rows whose inputs are not all
finite are recomputed here, by the rule of :mod:`cesym.kernels`:

* labels in [0, 1] (binary, distributions) and ``label_smoothing``, ``lam`` are fixed numbers;
  the limit is taken in the predictions, each infinite element on its own path (independent
  rates), and a value exists only when every path gives the same one; labels on the real line
  (regression targets, signs, counts at +inf) are inputs like the predictions: an infinite one
  is on the paths too (:func:`numeric_rows`);
* a label weight that is exactly 0 times a term that tends to infinity is 0 (as 0·log 0 = 0);
* NaN in a row's inputs, or a label in [0, 1] that is not finite, makes that row NaN; a row ignored by
  ``ignore_class`` is 0 with a zero gradient whatever its predictions.

Softmax rows (logits z, label weights t, T = Σt; value :math:`\sum_c t_c D_c` with
:math:`D_c = \operatorname{lse}(z) - z_c \ge 0`, gradient :math:`T s_j - t_j`, s = softmax):
with P the number of +inf logits,

* P = 0, some finite: s is the softmax of the finite logits, 0 at -inf; the value is the
  finite row's with ``t_c·(+inf)`` for each -inf logit (+inf for t_c > 0; 0 for t_c = 0);
* P = 1 (at k): s is one-hot at k; ``D_k -> 0``, the value is
  :math:`(\sum_{c\ne k} t_c) z_k - \sum_{c\ne k} t_c z_c`: ±inf by the sign of what grows,
  0 when no label weight sits off k; gradient ``T [j = k] - t_j``;
* one class: the value and gradient are 0 for every logit (softmax is 1);
* P ≥ 2 or every logit -inf (two classes or more): s has no limit where it is not 0, so the gradient is NaN there
  (``-t_j`` at the other elements, ``-t`` everywhere when T = 0); the value is +inf when
  a positive label sits off the +inf logits (labels ≥ 0), 0 when every label is 0, NaN
  otherwise.

Probability rows (``from_logits=False``; :math:`p_c \in [0, +\infty]`, renormalised) are the
same with :math:`z = \log p`; their gradient :math:`T/S - t_j/p_j` has a limit at every
element (:math:`T/S \to 0`). Sigmoid terms :math:`t\,\mathrm{softplus}(-x) + u\,\mathrm{softplus}(x)`
tend to ``u·(+inf)`` at x = +inf and ``t·(+inf)`` at x = -inf (0 for a zero weight), their
gradient :math:`u\sigma(x) - t\sigma(-x)` to u and -t: the cores already give that gradient.

Each output of a row is replaced only where the core's output is not finite there (a finite
output at an infinite input is already the limit: for example -inf logits under zero labels
in the gradient), so the numbers do not depend on which rows share a block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from . import _runtime as _rt

__all__ = ["all_finite", "repair", "nan_rows", "sigmoid_rows", "softmax_rows", "probs_rows", "penalty_rows", "numeric_rows"]


all_finite = _rt.all_finite  # the limit rules' test, shared with the runtime's fast paths


def _finite_rows(a: np.ndarray) -> np.ndarray:
    return np.isfinite(a).all(axis=-1)


def repair(
    kinds: Sequence[str],
    res: Sequence[np.ndarray],
    bad_rows: np.ndarray,
    limits: Callable[[np.ndarray], tuple],
    shape: tuple[int, int],
    elementwise_value: bool = False,
    every: bool = False,
) -> tuple[np.ndarray, ...]:
    """``res`` with the limits filled in where an output is not finite and its row's inputs are not
    (``every``: in every such row, finite outputs too, where ``force`` marks them).

    ``bad_rows``: rows whose inputs are not all finite (or ignored rows); ``limits(idx)``:
    (value (n, 1) or (n, C) if ``elementwise_value``, gradient (n, C) or None, force) of those
    rows, ``force`` (n, C) marking the elements whose limit replaces even a finite output (the
    gradient of a row holding NaN, an ignored row), or None.
    """
    R, C = shape
    out = list(res)
    need = []
    for i, (kind, r) in enumerate(zip(kinds, res)):
        full = (R, C) if kind.endswith("grad") or elementwise_value else (R, 1)
        r = np.array(np.broadcast_to(r, full), dtype=np.float64)
        out[i] = r
        need.append(bad_rows if every else ~_finite_rows(r) & bad_rows)
    idx = np.flatnonzero(np.logical_or.reduce(need))
    if not idx.size:
        return tuple(out)
    lv, lg, force = limits(idx)
    for i, kind in enumerate(kinds):
        lim = lg if kind.endswith("grad") else lv
        if lim is None:  # the core's output is the limit wherever one exists
            continue
        sub = out[i][idx]
        keep = np.isfinite(sub)  # a finite output of the core is the limit already
        if force is not None:
            keep &= ~(force if sub.shape[-1] == C else force.any(axis=-1, keepdims=True))
        out[i][idx] = np.where(keep, sub, lim)
    return tuple(out)


def _nan_rows(v: np.ndarray, rows: np.ndarray) -> np.ndarray:
    if np.any(rows):
        v[rows] = np.nan
    return v


# --- sigmoid terms (tf.nn.sigmoid_cross_entropy_with_logits, binary cross-entropy on logits) ----


def sigmoid_terms(t: np.ndarray, u: np.ndarray, x: np.ndarray) -> np.ndarray:
    """t·softplus(-x) + u·softplus(x) per element, a zero weight times an infinite softplus 0.

    The cores' expressions (``log1p(exp(-|x|)) + max(0, ±x)``), each product an :func:`xmul`;
    NaN where x or a weight is NaN.
    """
    lp = np.log1p(np.exp(-abs(x)))
    v = _rt.xmul(t, lp + np.maximum(0, -x)) + _rt.xmul(u, lp + np.maximum(0, x))
    nan = np.isnan(x) | ~np.isfinite(t) | ~np.isfinite(u)
    if np.any(nan):
        v[nan] = np.nan
    return v


def sigmoid_rows(t: np.ndarray, u: np.ndarray, x: np.ndarray, C: int | None):
    """Limits of the sigmoid losses on rows ``x``: value ``t·softplus(-x) + u·softplus(x)``
    (:func:`sigmoid_terms`) and gradient ``u σ(x) - t σ(-x)`` (σ(+inf) = 1, σ(-inf) = 0; the
    cores give the same there), NaN where x is NaN or a weight is not finite.

    ``C``: mean over the row (binary cross-entropy: a row holding NaN is NaN throughout);
    None: elementwise (each element its own sample).
    """
    v = sigmoid_terms(t, u, x)
    with np.errstate(invalid="ignore"):
        g = u * _rt.sigmoid(x) - t * _rt.sigmoid(-x)
    bad = np.isnan(x) | ~np.isfinite(t) | ~np.isfinite(u)
    if C is None:
        g[bad] = np.nan
        return v, g, bad
    bad = np.broadcast_to(bad.any(axis=-1, keepdims=True), x.shape)
    g = np.where(bad, np.nan, g / C)
    return (1 / C) * _rt.row_sum(v), g, bad


def nan_rows(t: np.ndarray, x: np.ndarray):
    """Rows whose inputs are finite but for NaN (probabilities in [0, 1]): a row holding NaN
    is NaN throughout; the others are the core's."""
    nan = (np.isnan(x) | ~np.isfinite(t)).any(axis=-1)
    v = np.where(nan[:, None], np.nan, 0.0)
    return v, np.broadcast_to(v, x.shape), np.broadcast_to(nan[:, None], x.shape)


# --- softmax rows -------------------------------------------------------------------------------


def _signed_inf(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """+inf where only ``pos``, -inf where only ``neg``, NaN where both, 0 where neither (rows)."""
    out = np.zeros(pos.shape)
    out[pos] = np.inf
    out[neg] = -np.inf
    out[pos & neg] = np.nan
    return out


def _finite_dot(t: np.ndarray, z: np.ndarray, fin: np.ndarray) -> np.ndarray:
    """Σ t_c z_c over the finite z_c (row-level)."""
    return _rt.row_sum(np.where(fin, t * np.where(fin, z, 0.0), 0.0))


def softmax_value(t: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Limit of Σ_c t_c (lse(z) - z_c) over rows of z in [-inf, +inf] (no NaN), labels finite."""
    if z.shape[-1] == 1:  # one class: lse(z) = z, the value is 0 for every z
        return np.zeros((z.shape[0], 1))
    up, down = z == np.inf, z == -np.inf
    fin = ~(up | down)
    P = np.count_nonzero(up, axis=-1)
    any_fin = fin.any(axis=-1)
    T = np.sum(t, axis=-1)
    nz = t != 0

    # T = 0: the value is -Σ t_c z_c exactly (no lse): each infinite z_c pushes by -t_c·z_c
    zero_T = T == 0
    lin = _signed_inf(((nz & up & (t < 0)) | (nz & down & (t > 0))).any(-1), ((nz & up & (t > 0)) | (nz & down & (t < 0))).any(-1))
    lin_val = np.where(lin == 0, 0.0 - _finite_dot(t, z, fin)[:, 0], lin)

    # P = 0 with finite logits: the finite row's D, and t_c·(+inf) at -inf (the cores' expression)
    m = np.max(np.where(fin, z, -np.inf), axis=-1, keepdims=True)
    d = np.where(fin, z - m, -np.inf)
    e = np.exp(d)
    S = _rt.row_sum(e)
    s = _rt.off_max_sum(e, S)
    D = np.where(fin, (m - np.where(fin, z, 0.0)) + np.log1p(s), np.inf)
    p0 = _rt.row_sum(_rt.xmul(t, D))[:, 0]

    # P = 1 at k: (Σ_{c≠k} t_c)·z_k - Σ_{c≠k} t_c z_c
    k = np.argmax(up, axis=-1)
    rest = _rt.rest_sum(t)[np.arange(len(k)), k]  # Σ_{c≠k} t_c, without cancellation
    grow_pos = (rest > 0) | (nz & down & (t > 0)).any(-1)
    grow_neg = (rest < 0) | (nz & down & (t < 0)).any(-1)
    one = _signed_inf(grow_pos, grow_neg)
    off_k = np.arange(z.shape[-1]) != k[:, None]
    p1 = np.where(one == 0, 0.0 - _finite_dot(np.where(off_k, t, 0.0), z, fin & off_k)[:, 0], one)

    # P >= 2, or every logit -inf: +inf only if a positive label sits off the +inf logits
    nonneg, nonpos = (t >= 0).all(-1), (t <= 0).all(-1)
    off_up = (nz & ~up).any(-1) & (P >= 2)
    many = np.where(nonneg & off_up, np.inf, np.where(nonpos & off_up, -np.inf, np.nan))

    v = np.where(P == 0, np.where(any_fin, p0, many), np.where(P == 1, p1, many))
    v = np.where(zero_T, lin_val, v)
    return v[:, None]


def softmax_grad(t: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Limit of T·softmax(z)_j - t_j (rows of z in [-inf, +inf], no NaN; finite labels).

    Rows with a finite logit and no +inf have a finite core gradient (e = exp(-inf) = 0 exactly:
    the finite row's softmax), which :func:`repair` keeps (here they get -t, not used); here: one +inf at k gives ``T [j = k] - t_j`` (``Σ_{c≠k} t_c`` at k, summed without
    cancellation), several +inf (or all -inf) give ``-t_j`` where softmax tends to 0 and NaN
    where it has no limit; T = 0 gives -t.
    """
    if z.shape[-1] == 1:  # one class: softmax is 1, the gradient T - t = 0
        return np.zeros(z.shape)
    up = z == np.inf
    P = np.count_nonzero(up, axis=-1)
    T = np.sum(t, axis=-1)
    g = 0.0 - t
    all_down = (z == -np.inf).all(-1)
    g[((P >= 2)[:, None] & up) | all_down[:, None]] = np.nan
    one = np.flatnonzero(P == 1)
    if one.size:
        k = np.argmax(up[one], axis=-1)
        g[one, k] = _rt.rest_sum(t[one])[np.arange(one.size), k]
    g[T == 0] = 0.0 - t[T == 0]
    return g


def softmax_rows(t: np.ndarray, z: np.ndarray, ignored: np.ndarray | None = None):
    """(value, gradient) limits of softmax cross-entropy rows (labels t, logits z)."""
    nan = np.isnan(z).any(-1) | ~_finite_rows(t)
    zz = np.where(np.isnan(z), 0.0, z)
    tt = np.where(np.isfinite(t), t, 0.0)
    v = _nan_rows(softmax_value(tt, zz), nan)
    g = _nan_rows(softmax_grad(tt, zz), nan)
    return _ignore(v, g, nan, ignored)


def _ignore(v: np.ndarray, g: np.ndarray, nan: np.ndarray, ignored: np.ndarray | None):
    """Ignored rows 0 (value and gradient); (v, g, force): NaN and ignored rows replace the core's."""
    if ignored is not None and np.any(ignored):
        v[ignored] = 0.0
        g[ignored] = 0.0
        nan = nan | ignored
    return v, g, np.broadcast_to(nan[:, None], g.shape)


def probs_rows(t: np.ndarray, p: np.ndarray, ignored: np.ndarray | None = None):
    """(value, gradient) limits of renormalised-probability rows, p in [0, +inf] (z = log p).

    Gradient ``T/S - t_j/p_j`` with S = +inf: ``-t_j/p_j`` (0 where t_j = 0 or p_j = +inf).
    """
    nan = np.isnan(p).any(-1) | ~_finite_rows(t)
    pp = np.where(np.isnan(p), 1.0, p)
    tt = np.where(np.isfinite(t), t, 0.0)
    with np.errstate(divide="ignore"):
        v = softmax_value(tt, np.log(pp))
        g = 0.0 - _rt.xmul(tt, 1.0 / pp)
    return _ignore(_nan_rows(v, nan), _nan_rows(g, nan), nan, ignored)


def penalty_rows(h: np.ndarray, lam: float, size: int):
    """λ·Σh²/N and 2λh/N at ±inf: ±inf by the signs of λ (and h), and 0 when λ = 0 (a zero
    weight times an infinite term). A sample (``size`` elements; a row holds whole samples)
    holding NaN is NaN throughout; the value then is NaN."""
    R = h.shape[0]
    nan = np.isnan(h).reshape(R, -1, size).any(axis=-1)  # per sample
    force = np.repeat(nan, size, axis=-1)
    sl = np.sign(lam)
    v = np.full((R, 1), sl * np.inf if lam != 0 else 0.0)
    g = np.where(np.isinf(h), np.sign(h) * sl * np.inf, 0.0) if lam != 0 else np.zeros(h.shape)
    g[force] = np.nan
    return _nan_rows(v, nan.any(axis=-1)), g, force


# --- any loss: the limits measured along rays of stand-ins ---------------------------------------

#: Stand-ins ±r·2^k for an infinite input, k rising (as :mod:`cesym.verify.extended`'s reference takes them).
RAY_KS = (64, 80, 96)
#: For renormalised probabilities (a scale-free row): +inf as 2^k, k up to where three such
#: elements still sum below the float64 maximum; the others' shares p/S then vanish like 2^-k,
#: and a term in share·log(share) is below an ulp (at 2^64 it is still 5 ulps of the limit).
SIMPLEX_RAY_KS = (512, 640, 768)
#: At most this many rays with one infinite input running ahead (rate 2) per row.
MAX_RAYS = 8
_STANDIN_ELEMENTS = 1 << 20  # stand-in elements evaluated at once (rows are chunked to this)


def _ray_limit(v: np.ndarray, dtype) -> np.ndarray:
    """Per output element, the limit along a ray from its values ``v`` (3, ...) at rising k:
    ±inf when the steps keep their sign and do not shrink (and show in ``dtype``), the value
    when the three round to one number of ``dtype`` within 4 of its ulps (or the last two to the
    same infinity) or converge algebraically (the steps shrinking by 2^-8 or more, the last
    below 1/16 of an ulp),
    0 when they decay algebraically (c·M^-a: the same sign and the same ratio, at most 2^-8,
    from each k to the next; the gradient of x/‖x‖ falls as 1/M), NaN otherwise (no limit)."""
    v1, v2, v3 = v
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        d1, d2 = v2 - v1, v3 - v2
        # (an output past dtype's largest float is spaced as that float: its steps still show)
        spacing = np.spacing(np.minimum(np.abs(v3), np.finfo(dtype).max).astype(dtype)).astype(np.float64)
        growing = (d1 != 0) & (np.sign(d1) == np.sign(d2)) & (np.abs(d2) >= np.abs(d1) / 2) & (np.abs(d2) >= 2 * spacing)
        r1, r2, r3 = (x.astype(dtype) for x in (v1, v2, v3))
        # the same number but for the cores' own rounding at three far inputs (a few ulps: a
        # limit approached as c/M lies far below an ulp at M = 2^64)
        near = 4 * spacing
        same = ((np.abs(v1 - v3) <= near) & (np.abs(v2 - v3) <= near)) | (np.isinf(r3) & (r2 == r3))
        # algebraic convergence, v ~ L + c·M^-a: the steps shrink by 2^-16a and the last is far
        # below an ulp (the cosine's gradient beside an infinite label, its other labels in the
        # thousands: 100 ulps off the limit at M = 2^64), as the reference takes it
        q = d2 / d1
        converging = (d1 != 0) & ((d2 == 0) | ((q > 0) & (q <= 2.0**-8))) & (np.abs(d2) < spacing / 16)
        q1, q2 = v2 / v1, v3 / v2
        decaying = (q1 > 0) & (q1 <= 2.0**-8) & (q2 > 0) & (q2 <= 2.0**-8) & (np.abs(q2 / q1 - 1) < 2.0**-6)
    out = np.where(decaying, np.copysign(0.0, v3), np.where(converging, v3, np.nan))
    return np.where(growing, np.sign(d2) * np.inf, np.where(same, v3, out))


def numeric_rows(
    vg: Callable, lab: np.ndarray | None, x: np.ndarray, dtype, elementwise: bool, ks: Sequence[int] = RAY_KS, label_rays: str | None = None,
    mixed: bool = True,
):
    """The limits of any loss at ±inf predictions, measured: the row is evaluated (``vg(lab,
    x)`` -> value, gradient: the stable cores) with each infinite element replaced by
    ±r·2^k for k in ``ks`` (:data:`RAY_KS`), on the ray r = 1 for all and, with two or more infinite
    elements, on rays where one of them (the first :data:`MAX_RAYS`) runs ahead at r = 2. An
    output has a limit when every ray gives the same one (:func:`_ray_limit`): a path-dependent
    limit is none (NaN). ``label_rays``: the label kind when the labels are numbers on the real
    line (``"real"`` a regression target, ``"sign"``, ``"count"`` a number >= 0): an infinite
    label is one more input on the rays (a count's -inf is off its domain: NaN); None (labels in
    [0, 1]): a label that is not finite has no limit to take, and its row is NaN. ``mixed``:
    infinite labels beside infinite predictions are on the same rays; False (predictions on
    [0, inf], whose reference stand-ins for +inf are 2^M, not M: the two rates are different
    paths) makes such a row NaN, a limit not claimed. NaN in a row's inputs makes it NaN.

    Returns (value, gradient, force): the limits replace the core's outputs on every row
    holding a special input."""
    R, C = x.shape
    bad_nan = np.isnan(x).any(axis=-1)
    # labels on the real line take part: an infinite label is one more input on the rays
    dense = label_rays is not None and lab is not None and lab.shape == x.shape
    if lab is not None and lab.dtype.kind == "f":
        bad_nan |= np.isnan(lab).any(axis=-1) if dense else ~np.isfinite(lab).all(axis=-1)
        if dense and label_rays == "count":  # -inf is off the domain of counts
            bad_nan |= np.isneginf(lab).any(axis=-1)
        if dense and not mixed:  # infinite labels beside infinite predictions: no path claimed
            bad_nan |= np.isinf(lab).any(axis=-1) & np.isinf(x).any(axis=-1)
    v_out = np.full((R, C if elementwise else 1), np.nan)
    g_out = np.full((R, C), np.nan)
    w = np.concatenate([lab, x], axis=-1) if dense else x  # the inputs on the rays: labels, predictions
    inf = np.isinf(w) & ~bad_nan[:, None]
    rows = np.flatnonzero(inf.any(axis=-1))
    n_rays = 1 + min(MAX_RAYS, int(inf.sum(axis=-1).max(initial=0))) if rows.size else 1
    step = max(1, _STANDIN_ELEMENTS // (w.shape[-1] * 3 * n_rays))
    for s in range(0, rows.size, step):
        idx = rows[s : s + step]
        wi, ii = w[idx], inf[idx]
        order = np.cumsum(ii, axis=-1) * ii  # 1, 2, ... at the infinite elements of each row
        several = ii.sum(axis=-1, keepdims=True) >= 2
        W = []
        for j in range(n_rays):
            rate = np.where(several & (order == j), 2.0, 1.0) if j else np.ones(wi.shape)
            for k in ks:
                W.append(np.where(ii, np.sign(wi) * rate * 2.0**k, wi))
        W = np.concatenate(W)
        if dense:
            L, X = W[:, :C], W[:, C:]
        else:
            X, L = W, None if lab is None else np.concatenate([lab[idx]] * (n_rays * len(ks)))
        with np.errstate(all="ignore"):
            v, g = vg(L, X)
        v = np.broadcast_to(v, (X.shape[0], v_out.shape[1])).reshape(n_rays, len(ks), idx.size, -1)
        g = np.asarray(g).reshape(n_rays, len(ks), idx.size, C)
        lv = np.stack([_ray_limit(v[j], dtype) for j in range(n_rays)])
        lg = np.stack([_ray_limit(g[j], dtype) for j in range(n_rays)])
        # rays that coincide with the first (rows with fewer infinite elements) agree with it
        v_out[idx] = _agree(lv, dtype)
        g_out[idx] = _agree(lg, dtype)
    force = np.broadcast_to((bad_nan | inf.any(axis=-1))[:, None], x.shape)
    return v_out, g_out, force


def _agree(per_ray: np.ndarray, dtype) -> np.ndarray:
    """The rays' common limit, NaN where any ray differs or has none: equal in ``dtype`` or, as
    in :func:`_ray_limit`, within 4 of its ulps (the cores' own rounding at different inputs:
    ``(w·S)/S`` with the row sum S of each ray)."""
    first = per_ray[0]
    with np.errstate(invalid="ignore", over="ignore"):
        r = per_ray.astype(dtype)
        near = 4 * np.spacing(np.abs(r[0])).astype(np.float64)
        same = np.all((r == r[0]) | (np.abs(per_ray - first) <= near), axis=0)
    return np.where(same, first, np.nan)
