r"""The reference's first tier: a batch of points decided at once where float64 intervals suffice.

:class:`~cesym.verify.reference.RowReference` pins each point's value and gradient on arb balls,
one point at a time (about a hundred Python calls per point, more at rising precision), and its
condition numbers from second derivatives on balls. Here the same printed code runs on
:mod:`cesym.verify.float_intervals` (every point of a batch in one NumPy pass per operation),
and what that decides goes into the reference's memo under the keys its own methods use:

* a point's value and gradient, where every output's interval is within 2^-8 of the format's
  spacing (the reference's own test, :func:`~cesym.verify.float_intervals.pinned`): most float32
  points; a float64 point only where its intervals are single numbers (float64's 2^-8 ulp is
  below a float64 interval's width); the middle of the interval, exactly, as the balls give
  the middle of theirs;
* condition numbers :math:`\kappa = \sum_i |x_i\,\partial f/\partial x_i|/|f|` (with
  :meth:`RowReference._kappa`'s conventions: a zero input's term is 0, label and parameter terms
  only for soft labels or a non-zero parameter, a term negligible against its scale is 0),
  where every term is known to 2^-10 and nothing left float64's normal range. They are computed
  at the first κ the reference is asked for in the batch (value κ alone needs no second
  derivatives), so a batch that needs none derives and evaluates none.

``CESYM_FIRST_TIER=off`` leaves everything to the balls (to compare the two, or to time them).

What is not decided here (cancellations beyond float64, exponentials past its range, float64
values) the balls compute as before: the first tier only removes work, never a decision
(``tests/test_float_intervals.py``).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Sequence

import mpmath
import numpy as np

from . import float_intervals as fi
from .ulps import FORMATS

#: The wide format's arithmetic (:class:`_Kappas`): True, float64 intervals times a power of two
#: in compiled loops (:mod:`.scaled_intervals`); False, NumPy's long double; None (the default),
#: the first where Numba is installed, decided at the first wide stage (importing Numba costs a
#: quarter of a second, which a process that never needs the wide stage, ``--quick``, does not pay).
SCALED: bool | None = None


#: The precise stage (:mod:`.dd_intervals`, double-double ends): None (the default) where Numba is
#: installed, decided at the first batch that needs it; False leaves those points to the balls.
PRECISE: bool | None = None


def _precise() -> bool:
    if PRECISE is not None:
        return PRECISE
    from . import dd_intervals as dd

    return dd.AVAILABLE


def _scaled() -> bool:
    if SCALED is not None:
        return SCALED
    from . import scaled_intervals as si

    return si.AVAILABLE

__all__ = ["prefill"]


def _kept(ref, what: str, stage: str, dtype, pts: np.ndarray, compute):
    """``compute()``, a function of the points ``pts`` alone on ``stage``'s format of ``dtype``
    (every other argument is derived from them), kept in the truths cache for the next run of
    the ``cesym`` command (:mod:`.truthcache`), keyed by a digest of the points: the κ stages
    cost a default ``cesym verify`` about a sixth of its time, and read back in milliseconds.
    The same code then runs on the same numbers, so a run with the cache warm decides, memoises
    and records exactly what one without it does (off: ``compute()``)."""
    from . import truthcache

    if truthcache.directory(ref) is None:
        return compute()
    digest = hashlib.sha256(np.ascontiguousarray(pts).tobytes()).hexdigest()[:40]
    return ref.kept(("first tier", _host(), what, stage, np.dtype(dtype).name, pts.shape, digest), compute)


@functools.cache
def _host() -> str:
    """What else decides the first tier's numbers on this host: its interval ends come from
    NumPy's exp and log, whose last bits differ between SIMD paths; its wide stage is long
    double (80 bits on x86, 128 on aarch64) or the compiled scaled intervals, where Numba is
    installed. A cache directory shared by several hosts keeps each one's numbers apart, so
    that a run reads back exactly what it would compute."""
    import platform

    from .hostfloor import simd

    parts = (platform.machine(), np.finfo(np.longdouble).nmant, simd(), _scaled(), _precise())
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:16]


def prefill(ref, inputs: np.ndarray, dtype) -> int:
    """Memoise in ``ref`` (a :class:`~cesym.verify.reference.RowReference`) what the first tier
    decides of the points ``inputs`` (one row per point: labels, pred, params) for ``dtype``;
    the number of points whose values it decided."""
    if os.environ.get("CESYM_FIRST_TIER", "on").strip().lower() in ("off", "0", "no"):
        return 0
    pts = np.asarray(inputs, dtype=np.float64).reshape(-1, len(ref.args))
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if _compiled(ref, "main") is None or not len(pts):
        return 0
    stamp = (np.dtype(dtype).name, pts.shape, hash(pts.tobytes()))
    if ref.__dict__.get("_tier1_stamp") == stamp:  # the same batch again (the naive form's check)
        return 0
    ref._tier1_stamp = stamp
    ends = _kept(ref, "main", "float", np.float64, pts, lambda: _ends(_evaluate(ref, "main", pts, np.float64)))
    if ends is None:
        return 0
    out = [fi.Interval(lo, hi) for lo, hi in ends]
    p, emin, _ = FORMATS[np.dtype(dtype)]
    dn = np.dtype(dtype).name
    keys = [tuple(r) for r in pts.tolist()]
    done = np.logical_and.reduce([fi.pinned(o, p, emin) for o in out])
    # kept as arrays: a point's numbers become the reference's (mpmath, memoised) when it asks
    # for them (:func:`lookup`), the batch's as arrays when the contract check does (:func:`pinned_middles`)
    index = {k: i for i, k in enumerate(keys)}
    ref._tier1 = Pinned(dn, index, out, done)
    if not done.all() and _precise():
        ref._tier1.precise(*_kept(ref, "precise", "dd", dtype, pts, lambda: _pin_precisely(ref, pts, ~done, p, emin)))
    if ref.n_grad:
        ref._pending = _Kappas(ref, pts, keys, out, index=index)
    return int(done.sum())


class Pinned:
    """What the first tier pinned of the last batch prefilled: its dtype's name, each point's
    index by its inputs, the float64 output intervals, where they pin every output, and where
    the precise stage does (``dd``: its middles as double-doubles, hi and lo, each (points,
    outputs))."""

    __slots__ = ("dtype", "index", "out", "done", "dd_done", "dd_hi", "dd_lo")

    def __init__(self, dtype: str, index: dict, out: list, done: np.ndarray):
        self.dtype, self.index, self.out, self.done = dtype, index, out, done
        self.dd_done = self.dd_hi = self.dd_lo = None

    def precise(self, done: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> None:
        self.dd_done, self.dd_hi, self.dd_lo = done & ~self.done, hi, lo


def _pin_precisely(ref, pts: np.ndarray, todo: np.ndarray, p: int, emin: int):
    """The precise stage (:mod:`.dd_intervals`) at the points ``todo`` of the batch ``pts``:
    where it pins every output, and the middles (double-doubles, (points, outputs), 0 elsewhere)."""
    m = len(pts)
    done = np.zeros(m, dtype=bool)
    hi = lo = None
    fn = _compiled(ref, "main", stage="dd")
    idx = np.flatnonzero(todo)
    if fn is not None:
        from . import dd_intervals as dd

        out = dd.evaluate(fn, list(pts[idx].T))
        if out is not None:
            ok = np.logical_and.reduce([dd.pinned(o, p, emin) for o in out])
            mids = [dd.middles(o) for o in out]
            ok &= np.logical_and.reduce([np.isfinite(a) for a, _ in mids])  # (a middle is a number, or nothing is pinned)
            done[idx] = ok
            hi, lo = np.zeros((m, len(out))), np.zeros((m, len(out)))
            hi[idx] = np.stack([a for a, _ in mids], axis=1)
            lo[idx] = np.stack([b for _, b in mids], axis=1)
    return done, hi, lo


def lookup(ref, key: tuple) -> tuple | None:
    """The value and gradient the first tier pinned at the memo key ``(inputs, dtype name)`` of
    :meth:`RowReference.value_and_grad_inputs`, as it memoises them (the exact middles), or None."""
    tier = ref.__dict__.get("_tier1")
    if tier is None or tier.dtype != key[1]:
        return None
    i = tier.index.get(key[0])
    if i is None:
        return None
    if tier.done[i]:
        vals = [_middle(o.lo[i], o.hi[i]) for o in tier.out]
    elif tier.dd_done is not None and tier.dd_done[i]:
        vals = [mpmath.fadd(a, b, exact=True) for a, b in zip(tier.dd_hi[i].tolist(), tier.dd_lo[i].tolist())]
    else:
        return None
    return vals[0], vals[1:]


def pinned_middles(ref, rows: list, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """For the points ``rows`` (input tuples): where the first tier pinned every output, and the
    exact middles of the output intervals as double-double arrays (hi, lo), each (points,
    outputs): the numbers :func:`lookup` gives, exactly (a TwoSum of the halved ends; ends below
    2^-1021 are left out, where halving would round)."""
    tier = ref.__dict__.get("_tier1")
    if tier is None or tier.dtype != np.dtype(dtype).name:
        return None
    idx = np.array([tier.index.get(r, -1) for r in rows], dtype=np.int64)
    have = idx >= 0
    safe = np.where(have, idx, 0)
    ok = have & tier.done[safe]
    a = np.stack([o.lo[safe] for o in tier.out], axis=1)
    b = np.stack([o.hi[safe] for o in tier.out], axis=1)
    with np.errstate(all="ignore"):
        s, err = fi.two_sum(a / 2, b / 2)  # a/2 + b/2 = s + err exactly
    one = a == b
    hi = np.where(one, a, s)
    lo = np.where(one, 0.0, err)
    tiny = ~one & ((np.abs(a) < 2.0**-1021) | (np.abs(b) < 2.0**-1021))
    ok &= ~np.any(tiny, axis=1)
    if tier.dd_done is not None:  # the precise stage's middles, where the float64 one had none
        more = have & tier.dd_done[safe] & ~ok
        hi = np.where(more[:, None], tier.dd_hi[safe], hi)
        lo = np.where(more[:, None], tier.dd_lo[safe], lo)
        ok |= more
    return ok, hi, lo


def _compiled(ref, what: str, stage: str = "float"):
    """The first tier's version of one of ``ref``'s compiled forms, on float intervals
    (``"float"``), on :mod:`.scaled_intervals` (``"scaled"``) or on :mod:`.dd_intervals`
    (``"dd"``); None where not available."""
    fns = ref.__dict__.setdefault("_tier1_fns", {})
    name = what if stage == "float" else f"{what} {stage}"
    if name not in fns:
        if ref.kind != "arb":
            fns[name] = None
        else:
            fn = {"main": lambda: ref._main, "partials": lambda: ref._value_partials, "hessian": lambda: ref._hessian}[what]()
            if stage == "scaled":
                from . import scaled_intervals as si

                fns[name] = si.compile_source(fn)
            elif stage == "dd":
                from . import dd_intervals as dd

                fns[name] = dd.compile_source(fn)
            else:
                fns[name] = fi.compile_source(fn)
    return fns[name]


def _wide_dtype():
    """The dtype of the wide stage's outputs and κ: ``long double`` where it has a wider exponent
    than float64; else float64 where the printed code runs on :mod:`.scaled_intervals` (its
    intermediates, e^x of a logit of 800, are what leaves float64's range most often); else None
    (no wide stage)."""
    if fi.WIDE is not None:
        return fi.WIDE
    return np.dtype(np.float64) if _scaled() else None


def _evaluate(ref, what: str, pts: np.ndarray, dtype, stage: str = "float") -> list | None:
    """One of ``ref``'s forms at the points ``pts`` as intervals of ``dtype``: on float64's
    (``"float"``); on the wide format (``"wide"``): :mod:`.scaled_intervals` where
    :data:`SCALED` (:func:`_scaled`), else long double's; or on double-double ends (``"dd"``,
    :mod:`.dd_intervals`), rounded outward to float64 (what cancelled inside is then known to
    float64's precision)."""
    if stage == "dd":
        fn = _compiled(ref, what, stage="dd")
        if fn is None:
            return None
        from . import dd_intervals as dd

        out = dd.evaluate(fn, list(pts.T))
        return None if out is None else [dd.to_interval(o) for o in out]
    fmt = "scaled" if stage == "wide" and _scaled() else "float"
    fn = _compiled(ref, what, fmt)
    if fn is None:
        return None
    if fmt == "scaled":
        from . import scaled_intervals as si

        return si.evaluate(fn, list(pts.T), dtype)
    return fi.evaluate(fn, list(pts.T), dtype)


def _middle(lo: float, hi: float) -> mpmath.mpf:
    """The exact middle of two floats (at most 160 bits: the balls' middles are rounded so)."""
    from .reference import _short

    if lo == hi:
        return mpmath.mpf(lo)
    return _short(mpmath.ldexp(mpmath.fadd(lo, hi, exact=True), -1))


class _Kappas:
    """The condition numbers of one prefilled batch, each stage computed once at its first need;
    the value's κ, computed by the first, is reused by the second.

    What float64 intervals leave unknown, at the points a check asks for in one batch
    (:meth:`_escalate`), is computed again for those points on later formats. Where a term left
    float64's range (e^x of a logit in the thousands, 1/p² of a probability of 1e-200: most of
    what the balls computed before), on the wide format: the printed code on
    :mod:`.scaled_intervals` (float64 intervals times 2^e, any exponent; NumPy's long double
    where Numba is missing), its outputs and κ's few operations on the platform's ``long double``
    where it has a wider exponent than float64 (:data:`~cesym.verify.float_intervals.WIDE`), else
    on float64 (:func:`_wide_dtype`: Apple silicon's and Windows' long double is float64).
    Measured on a 2-core Zen 4 VM, 2026-12-05 (categorical focal, binary and categorical
    cross-entropies, ``cesym verify`` of those, one process): this stage 13.1 s on long double,
    4.4 s here, and 6944 points left to the balls' κ against 7038 (e^x of logits past 11356
    now decided; a few cancelling Hessian terms that long double's 11 more bits decided now
    are not): 88.4 s → 75.8 s in all. What is still unknown there (a term that cancels below
    float64's precision), on double-double ends (:mod:`.dd_intervals`)."""

    def __init__(self, ref, pts: np.ndarray, keys: list, main: list, dtype=np.float64, stage: str = "float", index: dict | None = None):
        self.ref, self.pts, self.keys, self.main, self.dtype, self.stage = ref, pts, keys, main, dtype, stage
        self.index = {k: i for i, k in enumerate(keys)} if index is None else index  # (the batch's own, from prefill)
        self.value = None  # (k_value, known, grads, soft, gknown) of the value stage
        self.full_known = None  # where the gradient stage knew every κ
        self.tried = {False: np.zeros(len(keys), dtype=bool), True: np.zeros(len(keys), dtype=bool)}

    def __call__(self, key: tuple, full: bool, need: Sequence[tuple] | None = None) -> None:
        """Compute the batch's κ of the value (``full``: and of the gradient) on this stage's
        format, if not done yet; then, on the float64 stage, the points ``need`` (input tuples)
        that it left unknown on the next formats (a point asked for alone goes to the balls:
        one point costs these formats thousands of Python calls)."""
        if key[1] not in self.index:
            return
        if self.value is None:
            self.value = _kept(self.ref, "value kappas", self.stage, self.dtype, self.pts, lambda: _value_kappas(self.ref, self.pts, self.main, self.dtype, self.stage))
            if not full:
                k_value, known = self.value[:2]
                for i in np.flatnonzero(known):
                    self.ref._memo.setdefault(("kappa_value", self.keys[i]), float(k_value[i]))
        if full and self.full_known is None:
            self.full_known = _grad_kappas(self.ref, self.pts, self.keys, *self.value, dtype=self.dtype, stage=self.stage)
        if self.stage == "float" and need is not None:
            self._escalate(need, full)

    def _escalate(self, need: Sequence[tuple], full: bool) -> None:
        """The points ``need`` the float64 stage left unknown, once each: first on the wide
        format (what left float64's range: its operations cost a few float64 ones), then what
        is still unknown on double-double ends (what cancelled below float64's precision: an
        elementary function there costs a microsecond). Only points a check asks for: most
        points' errors are within their bound's constant term, and need no κ."""
        sel = np.zeros(len(self.keys), dtype=bool)
        sel[[self.index[k] for k in need if k in self.index]] = True
        sel &= ~(self.full_known if full else self.value[1]) & ~self.tried[full]
        self.tried[full] |= sel
        if not sel.any():
            return
        name = "kappa" if full else "kappa_value"
        memo = self.ref._memo
        dt = _wide_dtype()
        if dt is not None:
            self._again(sel, full, "wide", dt)
            for i in np.flatnonzero(sel):
                sel[i] = (name, self.keys[i]) not in memo
        if _precise() and sel.any():
            self._again(sel, full, "dd", np.float64)

    def _again(self, unknown: np.ndarray, full: bool, stage: str, dt) -> None:
        """This stage's numbers of the ``unknown`` points on another format."""
        pts = self.pts[unknown]
        ends = _kept(self.ref, "main", stage, dt, pts, lambda: _ends(_evaluate(self.ref, "main", pts, dt, stage)))
        if ends is None:
            return
        main = [fi.Interval(lo, hi) for lo, hi in ends]
        # κ needs a few digits of the value and of the gradient elements (:func:`_value_kappas`):
        # where the format cannot give them either (an output past its range, a term that
        # cancels below its precision), the balls decide
        few = fi.approx(main[0])[1]
        if not few.any():
            return
        keys = [self.keys[i] for i in np.flatnonzero(unknown)[few]]
        _Kappas(self.ref, pts[few], keys, [fi.Interval(o.lo[few], o.hi[few]) for o in main], dt, stage)(("kappa", keys[0]), full)


def _columns(ref, pts: np.ndarray):
    """(pred, labels and parameters) columns of the points."""
    n, n_lab, n_par = ref.n, len(ref.label_syms), len(ref.loss.params)
    ys, xs, ps = pts[:, :n_lab], pts[:, n_lab : n_lab + n], pts[:, n_lab + n : n_lab + n + n_par]
    return xs, ys, ps, np.concatenate([ys, ps], axis=1)


@np.errstate(over="ignore", invalid="ignore")  # a sum of terms past the format's range: not known (_ratios)
def _value_kappas(ref, pts: np.ndarray, main: list, dtype=np.float64, stage: str = "float"):
    """:meth:`RowReference._kappa_value` of every point: (κ, where known, the gradient's few
    digits, where labels are soft, where each gradient element has them), known where the first
    tier gives the value and every term a few digits, or the terms it does not are negligible by
    the balls' rule (:func:`_rest_negligible`: a gradient element within 2^-12 of the rest, e.g.
    one past the format's range toward 0)."""
    xs, ys, ps, others = _columns(ref, pts)
    m = len(pts)
    val, known = fi.approx(main[0])
    grads, gknown = [], []
    for o in main[1:]:
        g, k = fi.approx(o)
        grads.append(g)
        gknown.append(k)
    soft = np.zeros(m, dtype=bool)
    if ys.shape[1]:
        soft |= np.any((ys != 0) & (ys != 1), axis=1)
    if ps.shape[1]:
        soft |= np.any(ps != 0, axis=1)
    num_v, rest = np.zeros(m), np.zeros(m)
    pinned = np.ones(m, dtype=bool)
    for i in range(ref.n):
        num_v = num_v + _term(xs[:, i], grads[i])
        rest = rest + _bound(xs[:, i], main[1 + i], gknown[i])
        pinned &= gknown[i]
    if others.shape[1] and soft.any():
        part = _evaluate(ref, "partials", pts, dtype, stage)
        if part is None:
            known = known & ~soft
        else:
            for i, o in enumerate(part[: others.shape[1]]):
                d, k = fi.approx(o, _scale(val, others[:, i]))
                num_v = num_v + np.where(soft, _term(others[:, i], d), 0.0)
                rest = rest + np.where(soft, _bound(others[:, i], o, k), 0.0)
                pinned &= k | ~soft
    k_value, known = _ratios(num_v, val, known & _rest_negligible(pinned, num_v, rest))
    gk = np.stack(gknown, axis=1) if gknown else np.zeros((m, 0), dtype=bool)
    return k_value, known, grads, soft, gk


@np.errstate(over="ignore", invalid="ignore")
def _grad_kappas(ref, pts: np.ndarray, keys: list, k_value, known, grads, soft, gknown=None, dtype=np.float64, stage: str = "float") -> np.ndarray:
    """:meth:`RowReference._kappa` of every point whose terms the first tier gives a few digits
    of, into the memo (the value's κ from :func:`_value_kappas`); where they were known.
    The Hessian is evaluated at the points whose value stage was known only: every number is
    per point, and the others' κ stays unknown whatever it gives. Where the value's κ and some
    gradient elements' are known but not all (an element the format cannot give, e.g. past its
    range toward 0, whose κ a check rarely needs: its error is within the bound's constant term),
    those are kept apart (``("kappa_partial", key)``, NaN for the unknown ones) for the batch
    decisions (:func:`cesym.verify.contract.decide_by_kappa`), not for the point-by-point check,
    which asks the balls for a whole κ."""
    if gknown is None:
        gknown = np.ones((len(pts), len(grads)), dtype=bool)
    sel = np.flatnonzero(known)
    if len(sel) < len(pts):
        out = np.zeros(len(pts), dtype=bool)
        if len(sel):
            out[sel] = _grad_kappas(
                ref, pts[sel], [keys[i] for i in sel], k_value[sel], known[sel], [g[sel] for g in grads], soft[sel], gknown[sel], dtype, stage
            )
        return out
    got = _kept(ref, "grad kappas", stage, dtype, pts, lambda: _hessian_kappas(ref, pts, known, grads, soft, gknown, dtype, stage))
    if got is None:
        return np.zeros(len(pts), dtype=bool)
    k_grad, each = got
    full = np.logical_and.reduce(each) if each else known.copy()
    memo = ref._memo
    for i in np.flatnonzero(full):
        memo.setdefault(("kappa", keys[i]), (float(k_value[i]), [float(k[i]) for k in k_grad]))
    for i in np.flatnonzero(~full & np.logical_or.reduce(each)) if each else ():
        got = [float(k[i]) if e[i] else math.nan for k, e in zip(k_grad, each)]
        old = memo.get(("kappa_partial", keys[i]))
        if old is not None:  # an earlier format's elements where this one has none
            got = [a if a == a else b for a, b in zip(got, old[1])]
        memo[("kappa_partial", keys[i])] = (float(k_value[i]), got)
        memo.setdefault(("kappa_value", keys[i]), float(k_value[i]))
    return full


def _ends(out: list | None) -> list | None:
    """The (lo, hi) arrays of intervals (what :func:`_kept` keeps of them)."""
    return None if out is None else [(o.lo, o.hi) for o in out]


@np.errstate(over="ignore", invalid="ignore")
def _hessian_kappas(ref, pts: np.ndarray, known, grads, soft, gknown, dtype, stage: str):
    """The gradient elements' κ at every point (all ``known``) from the Hessian, and where each
    is known: (κ per element, known per element), or None where the Hessian has no interval form."""
    h = _evaluate(ref, "hessian", pts, dtype, stage)
    if h is None:
        return None
    xs, _, _, others = _columns(ref, pts)
    n, m = ref.n, len(pts)
    width = n + others.shape[1]
    variables = [xs[:, i] for i in range(n)] + [others[:, i] for i in range(others.shape[1])]
    k_grad, each = [], []
    for j, gj in enumerate(grads):
        num, rest = np.zeros(m), np.zeros(m)
        pinned = np.ones(m, dtype=bool)
        for i, x in enumerate(variables):
            o = h[j * width + i]
            d, k = fi.approx(o, _scale(gj, x))
            t, bound = _term(x, d), _bound(x, o, k)
            if i >= n:
                t, k, bound = np.where(soft, t, 0.0), k | ~soft, np.where(soft, bound, 0.0)
            num, rest = num + t, rest + bound
            pinned = pinned & k
        r, kj = _ratios(num, gj, known & gknown[:, j] & _rest_negligible(pinned, num, rest))
        k_grad.append(r)
        each.append(kj)
    return k_grad, each


#: :data:`cesym.verify.reference.KAPPA_REST` as a float.
_KAPPA_REST = 2.0**-12


def _bound(x: np.ndarray, o, known: np.ndarray) -> np.ndarray:
    """|x|·max|o| for the terms not pinned (``known`` false), 0 for the others: what a term of
    κ the format could not give a few digits of can add at most (NaN where its interval is
    unbounded or NaN)."""
    return np.where(known, 0.0, _term(x, np.maximum(np.abs(o.lo), np.abs(o.hi))))


def _rest_negligible(pinned: np.ndarray, num: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """The balls' rule for the terms of a κ not pinned (:func:`cesym.verify.reference._negligible_rest`):
    they are 0 where their bounds sum to at most KAPPA_REST of the pinned terms' sum (never where
    a bound is NaN or infinite); every term pinned is known as it is."""
    return pinned | ((num > 0) & (rest <= _KAPPA_REST * num))


def _term(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """|x·∂f/∂x|: 0 for x = 0 whatever ∂f/∂x (:func:`cesym.verify.reference._term`)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(x == 0, 0.0, np.abs(x * d))


def _scale(f: np.ndarray, x: np.ndarray) -> np.ndarray:
    """|f|/|x|: inf for x = 0, 1 for a zero or non-finite f (:func:`cesym.verify.reference._scale`);
    the format's largest number where the quotient overflows (a bound below it: an entry under
    :data:`~cesym.verify.float_intervals.NEGLIGIBLE` of it still contributes under that to κ)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = np.abs(f) / np.abs(x)
    s = np.where(np.isinf(s), np.finfo(s.dtype).max, s)
    return np.where(x == 0, np.inf, np.where((f == 0) | ~np.isfinite(f), 1.0, s))


def _ratios(num: np.ndarray, den: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """num/|den| as :func:`cesym.verify.reference._ratio` (0/0 = 0, x/0 = inf), and where it is
    known: also cleared where the format cannot give a few digits of it (a term that overflowed,
    a number in or near the subnormal range)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = num / np.abs(den)
    r = np.where(den == 0, np.where(num == 0, 0.0, np.inf), r)
    a = np.abs(den)
    dt = np.result_type(num, den)
    big = np.ldexp(np.ones((), dt), np.finfo(dt).maxexp - 64)  # float64: 2^960
    small = 1 / big
    safe = np.isfinite(num) & ((num == 0) | ((num > small) & (num < big)))
    safe &= (den == 0) | ((a > small) & (a < big))
    return r, known & safe
