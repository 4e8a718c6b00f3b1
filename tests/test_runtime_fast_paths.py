"""The runtime's fast paths give the same bits as the general forms they stand for.

The kernels' speed comes from exact shortcuts (one-hot label rows looked up instead of summed,
the rest of a row computed at the label only, dominant elements recomputed row by row); each
claims to reproduce the general computation exactly. These tests hold them to it, on blocks
with dominant elements, zero rows, ties, ignored labels and non-finite values.
"""

from __future__ import annotations

import numpy as np
import pytest

from cesym.kernels import _runtime as rt

R, C = 600, 10


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bits, NaN positions included (the sign of a NaN carries no meaning)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.all((a == b) & (np.signbit(a) == np.signbit(b)) | (np.isnan(a) & np.isnan(b))))


def _probabilities(rng: np.random.Generator) -> np.ndarray:
    z = rng.standard_normal((R, C)) * rng.choice([0.1, 3.0, 40.0], (R, 1))
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    p[::17, 3] = 0.0  # zero probabilities
    p[5::23] = 0.1  # uniform rows
    p[7::29, :] = 0.0
    p[7::29, 2] = 0.7  # a single non-zero element
    return p


def _labels(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    k = rng.integers(0, C, R)
    t = np.eye(C)[k]
    t[::11] = 0.0  # rows without a label
    return k, t


def _cross_rest_definition(t, e, s, S):
    """N_j = e_j·(T - t_j) - t_j·re_j, re_j = S - e_j (the off-max sum s at a maximal element)."""
    re = np.where(e == 1.0, s, S - e)
    T = rt.row_sum(t)
    return e * (T - t) - t * re


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_neg_log_normalized_one_hot_rows_match_the_general_form(seed):
    rng = np.random.default_rng(seed)
    p = _probabilities(rng)
    _, t = _labels(rng)
    S = rt.row_sum(p)
    with np.errstate(all="ignore"):
        fast = rt.weighted_neg_log_normalized(t, p, S)
        general = rt.row_sum(rt.xmul(t, rt.neg_log_normalized(p, rt.rest_sum(p, S))))
    assert np.isinf(fast).any() and (fast == 0).any()  # the domain reached p_k = 0 and empty rows
    assert _same(fast, general)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rest_at_label_is_rest_sum_read_at_the_label(seed):
    rng = np.random.default_rng(seed)
    p = _probabilities(rng)
    k, _ = _labels(rng)
    k = k[:, None].copy()
    k[::13] = -1  # ignored rows
    S = rt.row_sum(p)
    dominant = (S - np.take_along_axis(p, np.maximum(k, 0), -1)) < 0.25 * S
    assert dominant.any()  # the recomputed branch is exercised
    assert _same(rt.rest_at_label(k, p, S), rt.at_label(k, rt.rest_sum(p, S)))
    q = p.copy()
    q[::31, 1] = -0.5  # outside the fast path's domain: the general rest_sum
    assert _same(rt.rest_at_label(k, q, rt.row_sum(q)), rt.at_label(k, rt.rest_sum(q, rt.row_sum(q))))


@pytest.mark.parametrize("seed", [0, 1])
def test_rest_sum_dominant_rows_are_summed_without_the_dominant_element(seed):
    rng = np.random.default_rng(seed)
    p = _probabilities(rng)
    S = rt.row_sum(p)
    out = rt.rest_sum(p, S)
    # the definition: S - p_j, except at an element above 3S/4, where the other elements are summed
    expected = S - p
    for r, j in zip(*np.nonzero(expected < 0.25 * S)):
        expected[r, j] = rt.row_sum(np.where(np.arange(C) == j, 0.0, p[r : r + 1]))[0, 0]
    assert (expected < 0.25 * S).any()
    assert _same(out, expected)


def _element_test_rest_sum(v: np.ndarray) -> np.ndarray:
    """rest_sum by its definition, element by element: S - v_j, except at an element above 3/4 of
    Σ|v|, where the other elements are summed (whole numbers: S - v_j, which is that sum)."""
    S = rt.row_sum(v)
    out = S - v
    if np.fmin.reduce(v, axis=None) >= 0 and np.all(S < 2.0**53) and np.array_equal(v, np.rint(v)):
        return out
    risky = np.abs(v) > 0.75 * rt.row_sum(np.abs(v))
    for r, j in zip(*np.nonzero(risky)):
        out[r, j] = rt.row_sum(np.where(np.arange(v.shape[1]) == j, 0.0, v[r : r + 1]))[0, 0]
    return out


KINDS = ["signed", "nonnegative", "carried", "signed carried", "threshold", "barely carried", "edges", "one per row",
         "one per row, signed"]


@pytest.mark.parametrize("kind", KINDS)
def test_rest_sum_is_its_element_test_at_every_magnitude(kind):
    """rest_sum's blocks give the bits of its definition, row by row, at magnitudes from 1e-300 to
    1e300, at the 3/4 threshold itself (±1 ulp), just above it with the rest spread thin (Σv²
    near 9/16·(Σ|v|)²: the row-level filter's margin) in a few rows of a block, with zeros, subnormals, the largest floats,
    inf and NaN, and on blocks of at most one non-zero per row (one-hot labels times scores:
    rest_sum's shortcut), where one row with two sends the block the general way."""
    rng = np.random.default_rng(KINDS.index(kind))
    for _ in range(60):
        n, rows = int(rng.integers(1, 12)), int(rng.integers(1, 40))
        v = rng.standard_normal((rows, n)) * 10.0 ** rng.uniform(-300, 300, (rows, 1))
        j = rng.integers(0, n, rows)
        if kind in ("nonnegative", "carried", "threshold"):
            v = np.abs(v)
        if kind in ("carried", "signed carried"):
            with np.errstate(over="ignore"):  # past the largest float: inf elements, meant
                v[np.arange(rows), j] *= 10.0 ** rng.uniform(0, 15, rows) * (rng.choice([-1, 1], rows) if kind == "signed carried" else 1)
        if kind == "threshold":  # v_j = 3·Σ_{c≠j} v_c: S - v_j = S/4, give or take an ulp or two
            v[rng.random((rows, n)) < 0.3] = 0.0
            rest = np.where(np.arange(n) == j[:, None], 0.0, v).sum(1)
            v[np.arange(rows), j] = np.nextafter(3 * rest, rng.choice([0.0, np.inf], rows))
            v[::2, :] *= rng.choice([-1.0, 1.0], (1, n))
        if kind == "barely carried":  # v_j = 3(1 + 2^-20)·Σ_{c≠j}|v_c| in one row of ten, the rest of many small terms
            n, rows, some = max(n, 8), max(rows, 20), rng.random(max(rows, 20)) < 0.1
            j = rng.integers(0, n, rows)  # magnitudes whose squares stay in range: the filter decides
            v = rng.standard_normal((rows, n)) * 10.0 ** rng.uniform(-100, 100, (rows, 1))
            rest = np.where(np.arange(n) == j[:, None], 0.0, np.abs(v)).sum(1)
            v[some, j[some]] = 3.0 * (1 + 2.0**-20) * rest[some] * rng.choice([-1.0, 1.0], int(some.sum()))
        if kind == "edges":
            mask = rng.random((rows, n)) < 0.25
            v[mask] = rng.choice([np.nan, np.inf, -np.inf, 0.0, 1.7e308, -1.7e308, 5e-324, 2.0**-1000], int(mask.sum()))
        if kind.startswith("one per row"):
            v = np.where(np.arange(n) == j[:, None], v, 0.0 * np.sign(v))  # ±0 elsewhere
            v[rng.random(rows) < 0.2] = 0.0  # rows of zeros
            if kind == "one per row":
                v = np.abs(v)
            if rng.random() < 0.3:
                v[::5, j[0]] = rng.choice([5e-324, np.inf, -np.inf, np.nan, 1.7e308])
            if rng.random() < 0.3 and n > 1:
                v[rows // 2, :2] = 1.0  # two in a row
        with np.errstate(all="ignore"):
            assert _same(rt.rest_sum(v), _element_test_rest_sum(v)), v


@pytest.mark.parametrize("seed", [0, 1])
def test_cross_rest_one_hot_rows_match_the_definition(seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((R, C)) * rng.choice([0.1, 3.0, 800.0], (R, 1))
    z[::19, 4] = z[::19, 6] = z[::19].max(-1) + 1.0  # ties at the maximum
    z[3::37, 2] = np.nan
    z[4::41, 5] = -np.inf
    _, t = _labels(rng)
    with np.errstate(all="ignore"):
        e = np.exp(z - rt.row_max(z))
        S = rt.row_sum(e)
        s = rt.off_max_sum(e, S)
        fast = rt.cross_rest(t, z, e, s, S)
        expected = _cross_rest_definition(t, e, s, S)
    assert np.isnan(fast).any()
    assert _same(fast, expected)


def test_index_label_primitives_match_their_dense_definitions():
    rng = np.random.default_rng(3)
    k = rng.integers(0, C, (R, 1))
    k[::7] = -1
    valid = k >= 0
    dense = (k == np.arange(C)) & valid
    f = rng.standard_normal((R, C))
    g = rng.standard_normal((R, 1))
    assert _same(rt.at_label(k, f), np.where(valid, np.take_along_axis(f, np.maximum(k, 0), -1), 0.0))
    assert _same(rt.at_label(k, g), np.where(valid, g, 0.0))
    assert _same(rt.at_label(k, 1), valid.astype(float))
    assert _same(rt.one_hot(k, C), dense.astype(float))
    assert _same(rt.one_hot_rest(k, C), (valid & ~dense).astype(float))
    assert _same(rt.scatter_label(k, g, C), np.where(dense, g, 0.0))
    e = np.exp(f - rt.row_max(f))
    S = rt.row_sum(e)
    s = rt.off_max_sum(e, S)
    ek = np.take_along_axis(e, np.maximum(k, 0), -1)
    at_k = -np.where(ek == 1.0, s, S - ek)
    expected = np.where(dense, at_k, np.where(valid, e, 0.0))
    assert _same(rt.one_hot_cross_rest(k, e, s, S), expected)


def test_off_max_sum_leaves_out_one_maximum_exactly():
    e = np.array([[1.0, 0.5, 0.25, 2.0**-60], [1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [np.nan, 1.0, 0.5, 0.5]])
    S = rt.row_sum(e)
    assert _same(rt.off_max_sum(e, S), np.array([[0.75 + 2.0**-60], [2.0], [0.0], [np.nan]]))


@pytest.mark.parametrize("seed", [0, 1])
def test_sum_squares_in_range_rows_are_the_plain_sum(seed):
    """Rows whose plain Σx² is in range (finite, >= 2^-900; zeros, ±inf and NaN rows too) give
    exactly ``a*row_sum(x**2)``, the numbers of the kernel before the scaled sum, also in a block
    whose other rows need scaling (those alone are recomputed, within the contract's 4 + 4κ
    ulps, κ = 2, of a·Σx² in 300-bit arithmetic)."""
    import mpmath

    from cesym.verify.ulps import ulp_error

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((R, C)) * 10.0 ** rng.uniform(-100, 100, (R, 1))
    x[::13] = 0.0
    x[5::31, 2] = np.inf
    x[7::37, 4] = np.nan
    scaled = np.zeros(R, dtype=bool)
    scaled[3::17] = scaled[4::19] = True
    y = x.copy()
    y[3::17] = rng.standard_normal((len(y[3::17]), C)) * 1e154  # squares summing past 1.8e308
    y[4::19] = rng.standard_normal((len(y[4::19]), C)) * 1e-157  # squares in the subnormals
    for a in (0.05, 1e-3 / 7):
        with np.errstate(invalid="ignore", over="ignore"):
            assert _same(rt.sum_squares(x, a), a * rt.row_sum(x**2))
            mixed = rt.sum_squares(y, a)
            assert _same(mixed[~scaled], (a * rt.row_sum(y**2))[~scaled])
        with mpmath.workprec(300):
            for r in np.flatnonzero(scaled):
                exact = mpmath.mpf(a) * mpmath.fsum(mpmath.mpf(v) ** 2 for v in y[r])
                assert ulp_error(mixed[r, 0], exact, np.float64) <= 12


@pytest.mark.parametrize("cond", ["none", "all", "some", "rows", "few", "most"])
def test_where_is_numpy_where(cond):
    """``_rt.where`` skips numpy.where where the condition is the same everywhere and blends the
    bits where it is mixed: the same values, shape and dtype as numpy.where in every case (a
    Python scalar branch, a row-level branch, NaN, infinities and signed zeros included)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((R, C))
    odd = x.copy()
    odd.flat[rng.choice(x.size, 200, replace=False)] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324], 200)
    c = {"none": np.zeros((R, 1), bool), "all": np.ones((R, 1), bool),
         "some": x > 0, "rows": rng.random((R, 1)) < 0.1,
         "few": rng.random((R, C)) < 0.02, "most": rng.random((R, C)) < 0.9}[cond]
    for a, b in ((0, x), (x, 0), (1, rt.row_sum(x)), (x * 2, x), (odd, -odd), (-0.0, odd), (odd, x[:1])):
        got, want = rt.where(c, a, b), np.where(c, a, b)
        assert got.dtype == want.dtype and _same(got, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fn", ["maximum", "minimum"])
def test_maximum_and_minimum_are_numpys(fn, dtype):
    """``_rt.maximum``/``_rt.minimum`` (a constant 0 given to NumPy as an array of zeros) give
    NumPy's bits and dtype in either operand order: at ±0 (NumPy's choice between equal
    operands), NaN, ±inf and subnormals, on rows, columns (strided), 1-D, empty and 0-d
    arrays, on arrays past the zeros' size, and beside -0.0, 0.5 and arrays (left to NumPy)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((R, C)).astype(dtype)
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -5e-324, 1e-40, -1e-40]
    x.flat[rng.choice(x.size, 600, replace=False)] = rng.choice(np.array(specials, dtype), 600)
    big = np.repeat(x, rt._ZERO_ELEMENTS // x.size + 1, axis=0)
    ours, numpys = getattr(rt, fn), getattr(np, fn)
    for v in (x, x[:, 3], x[:, 3:4], x.reshape(-1), x[:0], big, dtype(-0.0), np.array(-0.0, dtype)):
        for c in (0, 0.0, -0.0, 0.5, x if v.shape == x.shape else v):
            for a, b in ((c, v), (v, c)):
                got, want = ours(a, b), numpys(a, b)
                assert np.asarray(got).dtype == np.asarray(want).dtype and _same(got, want), (a, b)
    assert ours(0, x).flags.writeable and not rt._ZEROS[np.dtype(dtype)].flags.writeable


@pytest.mark.parametrize("h0", [1.0, 0.0, 0.5])
def test_heaviside_is_numpy_heaviside(h0):
    """``_rt.heaviside`` (a comparison written into float64) gives numpy.heaviside's bits: 0 below
    zero, h0 at either zero, 1 above, NaN at NaN, on ±inf too."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((R, C))
    x.flat[rng.choice(x.size, 300, replace=False)] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, -5e-324], 300)
    for v in (x, x[:, 3], x[:0], np.float64(-0.0)):
        assert _same(rt.heaviside(v, h0), np.heaviside(v, h0))


def test_scale_quotient_is_nan_or_times_k_except_where_that_overflows():
    """``_rt.scale_quotient(n, d, k, b)`` is ``scale_rows(nan_or(n/d, b), k)`` bit for bit wherever
    that is finite or NaN (row-level and scalar k, zeros, infinities and NaN among the inputs);
    where it is ±inf at a finite n it is ``(n·k)/d``: finite where the exact n·k/d is below the
    largest float64, the same ±inf at d = 0."""
    rng = np.random.default_rng(8)
    n = rng.standard_normal((R, C))
    d = rng.random((R, C))
    n.flat[rng.choice(n.size, 100, replace=False)] = rng.choice([np.nan, np.inf, -np.inf, 0.0, 1e300, -1e308], 100)
    d.flat[rng.choice(d.size, 100, replace=False)] = rng.choice([0.0, np.inf, 1e-300, 5e-324], 100)
    for k in (1 / rng.integers(1, 9, (R, 1)), 1 / 3):
        with np.errstate(all="ignore"):
            got, kk = rt.scale_quotient(n, d, k, lambda: 7.0), np.broadcast_to(k, n.shape)
            want, redone = rt.scale_rows(rt.nan_or(n / d, 7.0), k), n * kk / d
        plain = np.isfinite(want) | np.isnan(want) | ~np.isfinite(n)
        assert _same(got[plain], want[plain])
        assert _same(got[~plain], redone[~plain]) and np.any(np.isfinite(got[~plain]))


def test_nan_or_evaluates_its_second_form_only_where_needed():
    calls = []

    def second():
        calls.append(1)
        return np.full((R, C), 7.0)

    a = np.ones((R, C))
    assert _same(rt.nan_or(a, second), a) and calls == []  # no NaN: never computed
    a[3, 4] = np.nan
    out = rt.nan_or(a, second)
    assert calls == [1] and out[3, 4] == 7.0 and np.count_nonzero(out == 7.0) == 1


def test_one_non_zero_per_row_test():
    g = np.zeros((R, C))
    g[np.arange(R), np.arange(R) % C] = 2.0
    assert rt._at_most_one_per_row(g)
    g[::7] = 0.0
    assert rt._at_most_one_per_row(g)
    g[5, 0] = g[5, 1] = 1.0
    assert not rt._at_most_one_per_row(g)
    f = np.random.default_rng(1).standard_normal((R, C))
    assert _same(rt.max_minus_sum(f, g), rt.row_max((f - g) - rt.rest_sum(g)))
    wide = np.zeros((3, 300))  # past 255 columns the counts are not bytes
    wide[0, :256] = 1.0
    wide[1, 7] = -3.0
    assert not rt._at_most_one_per_row(wide) and rt._at_most_one_per_row(wide[1:])


def test_divide_rows_by_one_is_the_rows_themselves():
    x = np.random.default_rng(2).standard_normal((R, C))
    x[3] = [np.nan, np.inf, -np.inf, -0.0, 5e-324, 1.7e308, 0.0, 1.0, -1.0, 2.0]
    ones, d = np.ones((R, 1)), np.ones((R, 1))
    d[4] = 3.0
    assert _same(rt.divide_rows(x, ones), x / ones)
    assert _same(rt.divide_rows(x, d), x / d)
    assert _same(rt.divide_rows(x, ones, 2), x / ones / ones)


@pytest.mark.parametrize("kind", ["dense", "hard", "soft-sparse", "zero-late", "nan", "negative-zero"])
def test_log_nonzero_is_log_of_w_plus_its_zero_indicator(kind):
    """Each path of ``log_nonzero`` (hard labels: no log; a zero in the first row: zeros made
    ones; otherwise the whole log, zeros set afterwards) gives the bits of log(w + [w = 0])."""
    rng = np.random.default_rng(3)
    w = rng.random((R, C))
    if kind == "hard":
        w = np.eye(C)[rng.integers(0, C, R)]
    elif kind == "soft-sparse":
        w[w < 0.6] = 0.0
        w[0, 0] = 0.0
    elif kind == "zero-late":  # the first row has none: the dense path meets them later
        w[1:][w[1:] < 0.2] = 0.0
    elif kind == "nan":
        w[::7, 2] = np.nan
        w[0, 1] = 0.0
        w[3] = np.eye(C)[4]
    elif kind == "negative-zero":
        w[4, :3] = -0.0
    with np.errstate(all="ignore"):
        assert _same(rt.log_nonzero(w), np.log(w + (w == 0)))


def test_xmul_fast_path_keeps_the_zero_guard():
    """The summing pass that skips the NaN search must not skip a 0·inf, nor a NaN the sum hides."""
    a = np.array([[0.0, 1.0, 2.0, 0.0]])
    b = np.array([[np.inf, 3.0, 4.0, np.nan]])
    with np.errstate(all="ignore"):
        assert _same(rt.xmul(a, b), np.array([[0.0, 3.0, 8.0, 0.0]]))
        big = np.full((1, 4), 1e308)  # finite products whose sum overflows: looked at one by one
        assert _same(rt.xmul(big, np.full((1, 4), 1.5)), np.full((1, 4), 1.5e308))
        assert _same(rt.xmul(np.ones((1, 2)), np.array([[np.nan, 1.0]])), np.array([[np.nan, 1.0]]))


def test_log_ratio_is_accurate_to_itself_and_block_independent():
    """``_rt.log_ratio(w, v)`` is log(w/v) within 4 ulps of itself against mpmath (where w and v
    agree to a float32 ulp, where they are decades apart, at subnormals and at 2^±1000 ratios),
    -log v wherever w = 1, and (``log_ratio_nonzero``, inside a zero-guarded product) each
    element of non-zero weight the same number in a block of hard labels (all 0 and 1) as in a
    block of mixed labels; 0 at w = v, -inf at w = 0 < v, inf at v = 0 < w."""
    import mpmath

    from cesym.verify.ulps import ulp_error

    rng = np.random.default_rng(8)
    v = np.exp(rng.uniform(-700, 700, (R, C)))
    v[::3] = rng.random((len(v[::3]), C))
    w = v * np.exp(rng.normal(0, 3, (R, C)))
    v[1::4] = rng.random((len(v[1::4]), C))
    w[1::4] = np.nextafter(v[1::4].astype(np.float32), np.float32(2)).astype(np.float64)  # a float32 ulp apart
    w[2::5, 1] = 1.0
    w[5, :3] = [5e-324, 1e-310, 1e300]
    w = np.minimum(w, 1e308)
    got = rt.log_ratio(w, v)
    with mpmath.workdps(60):
        for a, b, g in zip(w.reshape(-1), v.reshape(-1), got.reshape(-1)):
            exact = mpmath.log(mpmath.mpf(a) / mpmath.mpf(b))
            assert ulp_error(g, exact, np.float64) <= 4, (a, b, g)
    ones = w == 1
    assert _same(got[ones], -np.log(v[ones]))
    hard = (rng.random((R, C)) < 0.2).astype(np.float64)
    hard[0, 0] = 0.0
    mixed = hard.copy()
    mixed[-1, -1] = 0.5
    a, b = rt.log_ratio_nonzero(hard, v), rt.log_ratio_nonzero(mixed, v)
    nz = hard[:-1] != 0  # where the weight is 0 the printing form may give any number
    assert _same(a[:-1][nz], b[:-1][nz]) and _same(a[:-1][nz], rt.log_ratio(hard, v)[:-1][nz])
    with np.errstate(all="ignore"):
        edge = rt.log_ratio(np.array([[0.3, 0.0, 2.0, 0.0]]), np.array([[0.3, 0.7, 0.0, 0.0]]))
    assert edge[0, 0] == 0 and not np.signbit(edge[0, 0]) and edge[0, 1] == -np.inf and edge[0, 2] == np.inf


def test_log_ratio_given_its_difference_keeps_its_digits():
    """``_rt.log_ratio(w, v, d)`` with d = w - v in a shorter form (Jensen–Shannon's
    log(2p/(p + y)), d = p - y) is within 4 ulps of itself where p is near y, where p + y rounds
    away the difference (p = 1 - 2^-53, y = 1: log(2p/(p + y)) = -5.55e-17, where
    ``log_ratio(2p, p + y)`` gives -1.11e-16), and at p = 5e-324 beside y = 0 (log 2); the
    shortcut of ``log_ratio_nonzero`` for hard labels (-log v) is not taken, v being computed."""
    import mpmath

    from cesym.verify.ulps import ulp_error

    rng = np.random.default_rng(12)
    y = rng.random((R, C))
    p = y * (1 + rng.normal(0, 1, (R, C)) * 10.0 ** rng.integers(-16, 0, (R, C)))
    p[0, :3], y[0, :3] = [1 - 2.0**-53, 5e-324, 0.5], [1.0, 0.0, 0.5]
    p, y = np.clip(p, 0, 1), np.clip(y, 0, 1)
    got = rt.log_ratio(2 * p, p + y, p - y)
    with mpmath.workdps(60):
        for a, b, g in zip(p.reshape(-1), y.reshape(-1), got.reshape(-1)):
            a, b = mpmath.mpf(a), mpmath.mpf(b)
            exact = mpmath.log(2 * a / (a + b))
            assert ulp_error(g, exact, np.float64) <= 4, (a, b, g)
    assert got[0, 1] == np.log(2) and got[0, 2] == 0
    hard = np.array([[1.0, 0.0, 1.0]])
    v = np.array([[1.0 + 2.0**-60, 0.5, 1.0]])  # y + p at p = 2^-60: 1.0, its p rounded away
    d = np.array([[-(2.0**-60), -0.5, 0.0]])  # y - (y + p) = -p, as the printed form gives it
    got = rt.log_ratio_nonzero(hard, v, d)
    assert got[0, 0] == -(2.0**-60) and got[0, 2] == 0  # -log v: 0 at the first
