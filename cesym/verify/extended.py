r"""Reference values over the extended reals: limits at ±inf (and at the probability edge 0).

Independent of the kernels' limit code (:mod:`cesym.kernels._limits`): the definition is
evaluated by :class:`~cesym.verify.reference.RowReference` (interval arithmetic, proven digits) at
finite stand-ins for the infinite inputs, further and further out, on several paths:

* a stand-in for a logit ±inf is ±r·M, for a probability +inf 2^{r·M} and for a probability
  0 the positive 2^{-r·M} (0 is the edge of the domain: its value is the limit from inside),
  with M = 2^k for k in :data:`KS`; a probability 1 bounded by 1 (binary cross-entropy) is
  taken as it is where the interval resolves it (log 1 = 0), else as the limit at 1 - 2^{-rk};
* the rates r: 1 for every infinite input, and with two or more of them, each in turn at
  r = 2 (it runs ahead of the others): a limit that depends on the path shows as a
  disagreement between these rays;
* on each ray, an output has the finite limit L when its values at the three M round to the
  same number of the format (every term that vanishes does so like e^{-M}: far below an
  ulp at M = 2^64), and the limit ±inf when it keeps growing (:math:`v_3 - v_2` of the sign
  of :math:`v_2 - v_1` and at least half its size, where a converging output shrinks its
  steps by e^{-M} or 2^{-16}; the step visible in the format);
  otherwise it has none;
* the limit is the rays' common one; if they differ, or a ray has none, there is no limit
  (NaN expected).

A NaN input has no limit (NaN expected everywhere); parameters, and labels in [0, 1], are taken
as given (the limit is in the predictions; such a label that is not finite has no limit); labels
on the real line (regression targets, signs, counts; ``label_rays``) are inputs like the
predictions: an infinite one is on the rays as a logit is (a count's -inf is off its domain).
A label on a finite end of the set where the definition is real in it (MSLE's y = -1; the set
is :mod:`cesym.derive.label_domain`'s) is taken as given where the interval resolves it, else it
joins the rays at end ± 2^{-rk} (at 0 beside probabilities, their 2^{-rM}): :class:`AsGivenOrLimit`.
Where an output does not resolve at a stand-in but the value's rays reach different limits,
the row has no limit and every output is NaN. Condition numbers are those of the stand-in at the
largest M on the first ray (the infinite inputs contribute x·∂f/∂x → 0 where the limit is
finite).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import mpmath
import numpy as np

from .reference import RowReference, Unresolved
from .ulps import round_to, ulp

__all__ = ["KS", "needs_limit", "ExtendedReference", "AsGivenOrLimit"]

#: M = 2**k for these k (rising): e^{-M} is far below any ulp, M far above any finite input's effect
KS = (64, 80, 96)
#: Further out, in turn, for a ray whose values decay like c·M^-a (:func:`_decays`: is the limit 0,
#: or a small number the decaying part hid at :data:`KS`?) or converge without reaching their
#: limit there (:func:`_shrinks`: a part like 2^-k beside a limit of 5e-31 needs k past 150).
FAR_KS = ((112, 128, 144), (240, 256, 272), (1008, 1024, 1040))
_EDGE_PREC = 640  # an input 1 that the interval resolves does so at a few hundred bits


def _special(x: float, domain: str, unit: bool = False) -> bool:
    return (
        not math.isfinite(x)
        or (domain == "probability" and (x == 0.0 or (unit and x == 1.0)))
        or (domain == "log1p" and x == -1.0)
    )


def needs_limit(pred: Sequence[float], domain: str, unit: bool = False) -> bool:
    """Whether a row's predictions hold an input that is reached only as a limit (``unit``:
    probabilities bounded by 1, whose edge 1 is one too)."""
    return any(_special(float(x), domain, unit) for x in pred)


@functools.lru_cache(maxsize=1 << 12)  # the same few per point: its value, each κ and each dtype
def _standin(x: float, domain: str, r: int, k: int) -> mpmath.mpf:
    M = mpmath.ldexp(r, k)
    if domain == "probability":
        if x == 0.0:
            return mpmath.ldexp(1, -int(M))
        if x == 1.0:  # the edge 1 of [0, 1]: 1 - 2^{-rk}, exactly (1 - 2^{-M} would need M bits)
            with mpmath.workprec(r * k + 8):
                return 1 - mpmath.ldexp(1, -r * k)
        return mpmath.ldexp(1, int(M))  # +inf
    if domain == "log1p" and x == -1.0:  # the edge -1 of [-1, inf): -1 + 2^{-rk}, exactly
        with mpmath.workprec(r * k + 8):
            return -1 + mpmath.ldexp(1, -r * k)
    return M if x > 0 else -M


@functools.lru_cache(maxsize=1 << 10)
def _edge_standin(end: float, direction: int, r: int, k: int) -> mpmath.mpf:
    """A label on the finite end of its domain approached from inside: end ± 2^{-rk}, exactly."""
    return mpmath.fadd(end, direction * mpmath.ldexp(1, -r * k), exact=True)


class ExtendedReference:
    """Limits of a :class:`RowReference` at inputs that are ±inf (or 0 for probabilities), and at
    labels on a finite end of the set where the definition is real (``label_ends``: pairs of the
    end and +1 for a lower end, -1 for an upper one; :mod:`cesym.derive.label_domain`), approached
    from inside on the rays beside the other special inputs."""

    def __init__(self, ref: RowReference, domain: str, unit: bool = False, label_rays: str | None = None,
                 label_ends: tuple[tuple[float, int], ...] = ()):
        self.ref, self.domain, self.unit, self.label_rays = ref, domain, unit, label_rays
        self.label_ends = dict(label_ends)
        self._memo: dict = {}
        self._modes: dict = {}  # per point: how its limit was taken, for κ at the same stand-ins

    def at_label_edge(self, labels) -> bool:
        """Whether a label lies on a finite end of its domain (MSLE's y = -1)."""
        return bool(self.label_ends) and labels is not None and any(float(y) in self.label_ends for y in labels)

    def _label_special(self, y: float, edges: bool) -> bool:
        return (self.label_rays is not None and not math.isfinite(y)) or (edges and y in self.label_ends)

    def _points(self, labels, pred, unit: bool = False, ks: Sequence[int] = KS, edges: bool = False) -> list[list[tuple]]:
        """Stand-in (labels, predictions) per ray, per k (``unit``: the edge 1 as a limit too;
        infinite labels are on the rays beside the predictions when ``label_rays``; ``edges``:
        labels on a finite end of their domain too)."""
        labels = list(labels) if labels is not None else None
        n_lab = len(labels) if labels is not None and (self.label_rays or self.label_ends) else 0
        inputs = (labels[:n_lab] if n_lab else []) + list(pred)
        special = [i for i, x in enumerate(inputs) if (self._label_special(float(x), edges) if i < n_lab else _special(float(x), self.domain, unit))]
        rays = [dict.fromkeys(special, 1)]
        if len(special) > 1:
            rays += [{j: (2 if j == i else 1) for j in special} for i in special]
        out = []
        for rates in rays:
            per_k = []
            for k in ks:
                w = [
                    (self._label_standin(float(x), rates[i], k) if i < n_lab else _standin(float(x), self.domain, rates[i], k))
                    if i in rates else mpmath.mpf(float(x))
                    for i, x in enumerate(inputs)
                ]
                per_k.append((w[:n_lab] if n_lab else labels, w[n_lab:]))
            out.append(per_k)
        return out

    def _label_standin(self, y: float, r: int, k: int) -> mpmath.mpf:
        if math.isfinite(y):  # on a finite end of the labels' domain
            if y == 0.0 and self.domain == "probability" and self.label_ends[y] > 0:
                # the predictions' own stand-in for 0, 2^{-rM}: a label and a prediction both at
                # 0 then meet on the ray r = 1 (log(p/y) = 0 there), so a limit that depends on
                # how they approach shows as rays that disagree, not as +inf on every ray
                return _standin(0.0, "probability", r, k)
            return _edge_standin(y, self.label_ends[y], r, k)
        return _standin(y, "real", r, k)

    def _eval(self, point: tuple, params, dtype, max_prec=None) -> list[mpmath.mpf]:
        inputs = self.ref._inputs(*point, params)
        v, g = self.ref.value_and_grad_inputs(inputs, dtype, max_prec)
        return [v, *g]

    def value_and_grad(self, labels, pred, params=(), dtype=np.float64):
        """The limit value and gradient (mpmath numbers; ``mpmath.nan`` where there is none)."""
        key = (tuple(float(x) for x in (labels if labels is not None else ())), tuple(float(x) for x in pred), tuple(params), np.dtype(dtype).name)
        if key in self._memo:
            hit = self._memo[key]
            if isinstance(hit, Unresolved):
                raise hit
            return hit
        # an earlier run's limit and how it was taken (the truths cache of the ``cesym`` command:
        # a limit costs dozens of evaluations at stand-ins of hundreds of bits)
        # (not where an input is NaN: NaN equals nothing, so such a key is never found again; its
        # limit, NaN, costs nothing)
        nan = any(x != x for part in key[:3] for x in part)
        kept_as = None if nan else ("limit", self.domain, self.unit, self.label_rays, tuple(sorted(self.label_ends.items())), key)
        kept = None if nan else self.ref._recall(kept_as)
        if kept is not None:
            out, mode = kept
            if mode is not None:
                self._modes[self._key(labels, pred, params)] = mode
            self._memo[key] = out
            return out
        try:
            out = self._limit(labels, pred, params, dtype)
        except Unresolved as e:  # (not kept: rare, and its partial outputs are not numbers to keep)
            self._memo[key] = e
            raise
        self._memo[key] = out
        if kept_as is not None:
            self.ref.keep_number(kept_as, (out, self._modes.get(self._key(labels, pred, params))))
        return out

    def _limit(self, labels, pred, params, dtype):
        n_out = 1 + self.ref.n_grad
        lab = [float(y) for y in labels] if labels is not None else []
        # labels in [0, 1] are fixed numbers: one that is not finite has no limit; labels on the
        # real line are on the rays (a count's -inf is off its domain)
        off = any(not math.isfinite(y) for y in lab) if not self.label_rays else any(
            math.isnan(y) or (self.label_rays == "count" and y == -math.inf) for y in lab
        )
        # infinite labels beside infinite predictions of [0, inf] (stand-ins 2^M, where a label's
        # is M): a limit is not claimed, as the kernels claim none (cesym.kernels._limits)
        off = off or (self.domain != "real" and any(math.isinf(y) for y in lab) and any(math.isinf(float(x)) for x in pred))
        if any(math.isnan(float(x)) for x in pred) or off:
            return mpmath.nan, [mpmath.nan] * (n_out - 1)
        try:
            rays, mode = self._rays(labels, pred, params, dtype)
        except Unresolved:
            if self._value_has_no_limit(labels, pred, params, dtype):
                return mpmath.nan, [mpmath.nan] * (n_out - 1)
            raise
        self._modes[self._key(labels, pred, params)] = mode
        limits = []
        points = self._points(labels, pred, mode[0], edges=mode[1])
        far: dict[tuple[int, int], list] = {}  # a ray's values at FAR_KS[i], evaluated once

        def further(n: int, j: int, lim):
            v = [vals[j] for vals in rays[n]]
            if not ((lim == 0 and _decays(v)) or (lim is None and _shrinks(v))):
                return lim
            for i, ks in enumerate(FAR_KS):
                if (n, i) not in far:
                    far[n, i] = [self._eval(p, params, dtype) for p in self._points(labels, pred, mode[0], ks, mode[1])[n]]
                w = [vals[j] for vals in far[n, i]]
                out = _ray_limit(w, dtype)
                if lim is None and out is not None and round_to(out, dtype) == 0:
                    # a slow decay to 0 (log M/M: MSLE's gradient at p = +inf) is left without a
                    # limit, as the kernels' own measured limits leave it (kernels/_limits.py): the
                    # two change together (open: the kernel gives NaN where the limit is 0)
                    return lim
                if out is not None:  # a limit; or 0 again, decaying at the same rate further out
                    return out
                if not _shrinks(w):
                    return lim
            return lim

        for j in range(n_out):
            per_ray = [further(n, j, _ray_limit([vals[j] for vals in ray], dtype)) for n, ray in enumerate(rays)]
            if j == 0:  # a value that rounds alike at every stand-in may still grow like a log
                # (the gradient is in the predictions: a ray whose labels move is left as it is)
                per_ray = [
                    lim if pts[0][0] != pts[1][0] else _log_growth(lim, ray, [q for _, q in pts], pred, dtype)
                    for lim, ray, pts in zip(per_ray, rays, points)
                ]
            first = per_ray[0]
            if first is None or any(r is None or not _same(r, first, dtype) for r in per_ray[1:]):
                limits.append(mpmath.nan)
            else:
                limits.append(first)
        return limits[0], limits[1:]

    def _rays(self, labels, pred, params, dtype) -> tuple[list, tuple[bool, bool]]:
        """Every output at every stand-in, per ray; and how: whether the edge 1, and labels on
        a finite end of their domain, were taken as limits (``(unit, edges)``)."""
        # the edges 1 and a label's end are numbers whose terms resolve (log 1 = 0, 0·log 0 =
        # 0) unless a term is infinite there (log(1 + y) at y = -1): then as limits too
        modes = [(False, False)]
        if self.unit:
            modes.append((True, False))
        if self.at_label_edge(labels):
            modes.append((self.unit, True))
        # (a quick attempt first where the edge 1 follows; a label's end is tried as given at
        # every precision: a value 2^(-2^64) beside a cancelled term resolves only at the last)
        quick = _EDGE_PREC if self.unit and any(float(x) == 1.0 for x in pred) else None
        for i, mode in enumerate(modes):
            try:
                prec = quick if i == 0 else None
                return [[self._eval(p, params, dtype, prec) for p in per_k] for per_k in self._points(labels, pred, mode[0], edges=mode[1])], mode
            except Unresolved:
                if i == len(modes) - 1:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _key(labels, pred, params) -> tuple:
        return (tuple(float(y) for y in (labels if labels is not None else ())), tuple(float(x) for x in pred), tuple(params))

    def _value_has_no_limit(self, labels, pred, params, dtype) -> bool:
        """Where an output did not resolve at a stand-in (a gradient that cancels across inputs
        2^(2^64) apart, on a ray where one runs ahead: the Tversky loss at β = 0 and p = 0 needs
        more than 40,960 bits), whether the value alone shows the row has no limit: two rays whose
        values reach different limits (a path-dependent 0/0). A value without a limit has no
        gradient either: every output is NaN. False where that is not shown (the caller then
        reports the point unresolved)."""
        found = []
        try:
            for per_k in self._points(labels, pred, self.unit, edges=self.at_label_edge(labels)):
                vals = [self.ref.value_inputs(self.ref._inputs(*p, params), dtype) for p in per_k]
                lim = _ray_limit(vals, dtype)
                if lim is not None:
                    found.append(lim)
        except Unresolved:
            return False
        return any(not _same(a, found[0], dtype) for a in found[1:])

    def kappa(self, labels, pred, params=(), value=None, grad=None):
        """κ of the value and of each gradient element at the first ray's farthest stand-in."""
        edges = self._modes.get(self._key(labels, pred, params), (False, False))[1]
        far = self._points(labels, pred, edges=edges)[0][-1]
        return self.ref.kappa(*far, params, value, grad)

    def kappa_value(self, labels, pred, params=(), value=None, grad=None) -> float:
        """κ of the value alone, at the same stand-in (first derivatives only)."""
        edges = self._modes.get(self._key(labels, pred, params), (False, False))[1]
        far = self._points(labels, pred, edges=edges)[0][-1]
        return self.ref.kappa_value(*far, params, value, grad)


def _log_growth(limit, ray: list, points: list, pred, dtype=np.float64) -> mpmath.mpf | None:
    """``limit`` (one ray's verdict on the value), or ±inf where the value grows like a log of
    the stand-ins although its three values round alike: a divergent term beside a finite one
    too large for its steps to show (Poisson's -y·log p at p → 0 beside a rate of 1e308: the
    value moves by 10^24 per stand-in, under an ulp of 9e307). Along the ray the value moves by
    about Σ_i e_i·ln(x_i'/x_i) from one stand-in to the next, with e_i = x_i·∂f/∂x_i the
    elasticity of each input that moves; for a finite limit every e_i dies out (like e^{-M} or
    M^{-a}), so e of one sign at all three stand-ins and not shrinking (|e_3| >= |e_1|/2) is a
    divergence, to the side of its sign times the direction of the log steps. The elasticities
    come from the gradient outputs, each pinned to its own digits; none is taken where a
    gradient element is not a finite number or rounds to 0 in the format (pinned as 0, its sign
    unknown), nor where the moving inputs' elasticities cancel
    to within 2^-20 of their sizes."""
    if limit is None or not mpmath.isfinite(limit):
        return limit
    moving = [i for i in range(len(pred)) if points[0][i] != points[1][i]]
    if any(abs(float(pred[i])) == 1.0 for i in moving):  # the edges 1 and -1, approached as 1 - 2^-rk
        return limit
    # log steps up (to ±inf) or down (to 0)
    steps = {i: 1 if abs(points[-1][i]) > abs(points[0][i]) else -1 for i in moving}
    rates = []
    for k in range(len(points)):
        grad = ray[k][1:]
        if len(grad) != len(pred):
            return limit
        e = size = mpmath.mpf(0)
        for i in moving:
            g = grad[i]
            if not mpmath.isfinite(g) or round_to(g, dtype) == 0:  # below the format: pinned to 0, not to a sign
                return limit
            e += steps[i] * points[k][i] * g
            size += abs(points[k][i] * g)
        # each gradient element is pinned to 2^-8 of an ulp of itself: a sum of elasticities that
        # cancels (a softmax row whose logits all move: Σ z_i·∂f/∂z_i = 0) says nothing
        if abs(e) <= size * mpmath.ldexp(1, -20):
            return limit
        rates.append(e)
    if all(r > 0 for r in rates) and rates[-1] >= rates[0] / 2:
        return mpmath.inf
    if all(r < 0 for r in rates) and rates[-1] <= rates[0] / 2:
        return -mpmath.inf
    return limit


def _same(a: mpmath.mpf, b: mpmath.mpf, dtype) -> bool:
    """One number of the format, or two resolved values of one limit: each is pinned to 2^-8 of
    an ulp, so they differ by at most 2^-7 ulp (a limit at a midpoint between two floats, such as
    α(t_0 + t_1), rounds its pinned values either way)."""
    if round_to(a, dtype) == round_to(b, dtype):
        return True
    if not (mpmath.isfinite(a) and mpmath.isfinite(b)):
        return False
    return abs(a - b) <= ulp(b, dtype) / 64


def _ray_limit(vals: list[mpmath.mpf], dtype) -> mpmath.mpf | None:
    """The limit along one ray from its values at rising M: finite, ±inf, or None (none)."""
    v1, v2, v3 = vals
    d1, d2 = v2 - v1, v3 - v2

    def spacing():  # of v3 in the format (asked for only where v3 is a number)
        return ulp(v3, dtype)

    if d1 != 0 and mpmath.sign(d1) == mpmath.sign(d2) and abs(d2) >= abs(d1) / 2:
        if abs(d2) >= 2 * spacing():  # growing, and visibly so in the format
            return mpmath.inf * mpmath.sign(d2)
    r = [round_to(v, dtype) for v in vals]
    if r[0] == r[1] == r[2] or (math.isinf(r[2]) and r[1] == r[2]) or (_same(v1, v3, dtype) and _same(v2, v3, dtype)):
        return v3
    if r[1] == r[2] == 0 and mpmath.sign(v1) * mpmath.sign(v2) >= 0:
        return mpmath.mpf(0)  # below the format's least subnormal from the second M on: 0
    if d1 != 0 and (d2 == 0 or 0 < d2 / d1 <= mpmath.ldexp(1, -8)):
        # algebraic convergence, v ~ L + c·M^-a: the steps shrink by the same factor (2^-16a) and
        # the last is far below an ulp of v3 (the cosine with the axis of an infinite element)
        if abs(d2) < spacing() / 16:
            return v3
    if _decays(vals):
        return mpmath.mpf(0)
    return None


def _shrinks(vals: list[mpmath.mpf]) -> bool:
    """Steps of one sign shrinking by 2^-8 or more, not yet below the format's spacing: a value
    converging to a limit the stand-ins at :data:`KS` do not reach (−log(1 − 2^-k) → 0 beside a
    term of 5e-31), asked again at :data:`FAR_KS`."""
    v1, v2, v3 = vals
    if not all(mpmath.isfinite(v) for v in vals):
        return False
    d1, d2 = v2 - v1, v3 - v2
    return bool(d1 != 0 and d2 != 0 and 0 < d2 / d1 <= mpmath.ldexp(1, -8))


def _decays(vals: list[mpmath.mpf]) -> bool:
    """Algebraic decay to 0, v ~ c·M^-a (a gradient of x/‖x‖ ~ 1/M): the same sign and the same
    ratio, at most 2^-8, from each M to the next (M grows by 2^16). A small limit beside the
    decaying part looks the same while that part is the larger (the binary focal loss at p = 1
    next to p = 1e-30: 2^-3k + 5e-91), so :class:`ExtendedReference` asks the stand-ins further
    out (:data:`FAR_KS`) before it takes 0."""
    v1, v2, v3 = vals
    if v1 == 0 or v2 == 0 or v3 == 0:
        return False
    q1, q2 = v2 / v1, v3 / v2
    return bool(0 < q1 <= mpmath.ldexp(1, -8) and 0 < q2 <= mpmath.ldexp(1, -8) and abs(q2 / q1 - 1) < mpmath.mpf(2) ** -6)


class AsGivenOrLimit:
    """The definition at a point holding a label on a finite end of its domain: as given where
    its interval resolves (KL's 0·log 0 = 0 under a zero label), else its limit from inside
    (:class:`ExtendedReference`: MSLE's log(1 + y) = -inf at y = -1). The choice is made once
    per point and kept, so that κ is taken where the value was."""

    def __init__(self, ref: RowReference, ext: ExtendedReference):
        self.ref, self.ext = ref, ext
        self._chosen: dict = {}  # per point and dtype
        self._last: dict = {}  # per point: the choice κ follows (κ is asked without a dtype)

    def _which(self, labels, pred, params, dtype):
        point = ExtendedReference._key(labels, pred, params)
        key = (point, np.dtype(dtype).name)
        if key not in self._chosen:
            try:
                self.ref.value_and_grad(labels, pred, params, dtype=dtype)
                self._chosen[key] = self.ref
            except Unresolved:
                self._chosen[key] = self.ext
        self._last[point] = self._chosen[key]
        return self._chosen[key]

    def value_and_grad(self, labels, pred, params=(), dtype=np.float64):
        return self._which(labels, pred, params, dtype).value_and_grad(labels, pred, params, dtype=dtype)

    def kappa(self, labels, pred, params=(), value=None, grad=None):
        return self._by_value(labels, pred, params, value).kappa(labels, pred, params, value, grad)

    def kappa_value(self, labels, pred, params=(), value=None, grad=None) -> float:
        return self._by_value(labels, pred, params, value).kappa_value(labels, pred, params, value, grad)

    def _by_value(self, labels, pred, params, value):
        return self._last.get(ExtendedReference._key(labels, pred, params), self.ref)
