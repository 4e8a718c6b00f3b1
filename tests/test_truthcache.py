"""The disk cache of the balls' numbers (cesym.verify.truthcache): what a run decided on the balls
is read back by the next, the first tier still answers first, nothing is reused for another
definition, a damaged shard is ignored, and the cache stays off unless the command turns it on."""

import pickle

import numpy as np
import pytest

from cesym.verify import reference as R
from cesym.verify import truthcache
from cesym.verify.contract import losses_by_name
from cesym.verify.reference import RowReference

# softmax cross-entropy from logits at logits far past float64's e^x: κ on the balls
HUGE = ([0.0, 1.0, 0.0], [3.0e4, -2.0e4, 1.5], [0.0])  # labels, logits, label smoothing


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(truthcache, "ENABLED", True)
    return tmp_path


def _cce():
    return losses_by_name()["categorical_crossentropy.logits"]


def test_a_run_reads_back_what_the_balls_decided(cache, monkeypatch):
    first = RowReference(_cce(), 3)
    want = first.kappa(*HUGE)
    v, g = first.value_and_grad(*HUGE)
    assert truthcache.flush([first]) >= 1
    assert not first._fresh
    shards = list((cache / "truths").glob("*/*.pkl"))
    assert len(shards) == 1

    def no_balls(*a, **k):
        raise AssertionError("computed again")

    second = RowReference(_cce(), 3)
    monkeypatch.setattr(RowReference, "_kappa", no_balls)
    assert second.kappa(*HUGE) == want
    # values at float inputs are not kept (the balls give them faster than they read back)
    assert second.value_and_grad(*HUGE) == (v, g)
    assert truthcache.flush([second]) == 0


def test_the_first_tier_answers_first_and_its_stages_are_kept_whole(cache, monkeypatch):
    """A κ the first tier decides is not asked of the balls; what is kept of it are its stages'
    arrays for the batch (:func:`cesym.verify.first_tier._kept`: the intervals of the value and
    gradient, the double-double stage's middles, the κ stages), which a second reference reads
    back instead of evaluating anything, into the same memo."""
    from cesym.verify import first_tier

    pts = np.array([[0.0, 1.0, 0.0, 0.5, -1.25, 2.0, 0.0], [0.0, 0.0, 1.0, 3.0, 1.0, -7.5, 0.1]])
    ref = RowReference(_cce(), 3)
    ref.prefill(pts, np.float64)
    want = ref.kappa([0.0, 1.0, 0.0], [0.5, -1.25, 2.0], [0.0])
    assert {k[0] for k in ref._fresh} == {"first tier"}  # decided by float64 intervals: no balls
    assert {k[2] for k in ref._fresh} >= {"main", "value kappas", "grad kappas"}
    ref.kappa(*HUGE)
    assert ("kappa", tuple(HUGE[0] + HUGE[1] + HUGE[2])) in ref._fresh
    assert truthcache.flush([ref]) >= 3

    def no_stage(*a, **k):
        raise AssertionError("computed again")

    second = RowReference(_cce(), 3)
    monkeypatch.setattr(first_tier, "_value_kappas", no_stage)
    monkeypatch.setattr(first_tier, "_hessian_kappas", no_stage)
    monkeypatch.setattr(first_tier, "_evaluate", no_stage)
    monkeypatch.setattr(first_tier, "_pin_precisely", no_stage)
    second.prefill(pts, np.float64)
    assert second.kappa([0.0, 1.0, 0.0], [0.5, -1.25, 2.0], [0.0]) == want
    tier = {k: v for k, v in ref._memo.items() if isinstance(k[0], str) and k[0].startswith("kappa") and k[1] in set(map(tuple, pts.tolist()))}
    assert tier and all(second._memo.get(k) == v for k, v in tier.items())


def test_another_definition_another_directory(cache):
    a = RowReference(_cce(), 3)
    b = RowReference(_cce(), 4)
    c = RowReference(losses_by_name()["categorical_focal_crossentropy.logits"], 3)
    dirs = {truthcache.directory(r) for r in (a, b, c)}
    assert len(dirs) == 3 and None not in dirs


def test_a_damaged_shard_is_ignored_and_many_are_merged(cache, monkeypatch):
    ref = RowReference(_cce(), 3)
    d = truthcache.directory(ref)
    d.mkdir(parents=True)
    (d / "broken.pkl").write_bytes(b"not a pickle")
    assert truthcache.load(ref) == {}
    monkeypatch.setattr(truthcache, "MAX_SHARDS", 3)
    for i in range(4):
        truthcache._write(d, {("kappa", (float(i),)): (1.0, [])})
    got = truthcache.load(ref)
    assert sorted(k[1][0] for k in got) == [0.0, 1.0, 2.0, 3.0]
    assert len(list(d.glob("*.pkl"))) == 2  # the merged shard, and the damaged one left alone
    assert truthcache.load(ref) == got


def test_off_unless_the_command_turns_it_on(monkeypatch, tmp_path):
    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path))
    assert truthcache.ENABLED is False  # a library user's process, and the tests
    ref = RowReference(_cce(), 3)
    ref.kappa(*HUGE)
    assert not ref._fresh and truthcache.flush([ref]) == 0
    monkeypatch.setattr(truthcache, "ENABLED", True)
    monkeypatch.setenv("CESYM_CACHE_DIR", "off")
    assert truthcache.directory(RowReference(_cce(), 3)) is None
    assert not (tmp_path / "truths").exists()


def test_the_command_turns_it_on_for_its_own_run_only(capsys):
    """``cesym.cli.main`` sets the flags for the command and its workers, and puts them back:
    a process that calls it and goes on (the tests) computes as before."""
    from cesym import cli
    from cesym import keras as K

    assert cli.main(["verify", "no_such_loss"]) == 2  # a usage error, after the flags were set
    assert truthcache.ENABLED is False and K.HIDE_PYPLOT is False


def test_a_limit_is_read_back(cache, monkeypatch):
    """A limit at a ±inf input (cesym.verify.extended: dozens of evaluations at stand-ins of
    hundreds of bits) is kept with how it was taken: a second reference gives it, and κ at the
    same stand-in, without the balls."""
    from cesym.verify.extended import ExtendedReference

    def fresh():
        ref = RowReference(_cce(), 3)
        return ExtendedReference(ref, "real")

    labels, logits, smoothing = HUGE
    row = (labels, [np.inf, logits[1], logits[2]], smoothing)
    first = fresh()
    want = first.value_and_grad(*row)
    kappa = first.kappa(*row, *want)
    assert any(k[0] == "limit" for k in first.ref._fresh)
    assert truthcache.flush([first.ref]) >= 1

    def no_balls(*a, **k):
        raise AssertionError("computed again")

    second = fresh()
    monkeypatch.setattr(RowReference, "_rising", no_balls)
    monkeypatch.setattr(RowReference, "_kappa", no_balls)
    assert second.value_and_grad(*row) == want
    assert second.kappa(*row, *want) == kappa


def test_unused_directories_are_pruned_by_age_then_size(cache, monkeypatch):
    """prune() removes the directories unused past CESYM_CACHE_DAYS, then the least recently used
    past CESYM_CACHE_MAX_MB, never one used in the last hour, and nothing but digest-named
    directories of ``truths``; loading a directory marks it used."""
    import os

    truths = cache / "truths"
    now = 1.9e9
    ages_days = {"a": 0.01, "b": 2, "c": 5, "d": 40, "e": 0.0}
    dirs = {}
    for k, age in ages_days.items():
        d = truths / (k * 40)
        d.mkdir(parents=True)
        (d / "1-x.pkl").write_bytes(b"\0" * (3 << 20))  # 3 MB each
        os.utime(d, (now - age * 86400, now - age * 86400))
        dirs[k] = d
    other = truths / "notes"  # not a cache directory: left alone, however old
    other.mkdir()
    os.utime(other, (0, 0))
    (cache / "reference").mkdir(exist_ok=True)
    monkeypatch.setenv("CESYM_CACHE_DAYS", "30")
    monkeypatch.setenv("CESYM_CACHE_MAX_MB", "7")  # room for two of them
    assert truthcache.prune(now) == 3  # d by age; then b and c past 7 MB (a and e: the last hour)
    assert sorted(p.name[0] for p in truths.iterdir() if p.is_dir() and p.name != "notes") == ["a", "e"] and other.is_dir()
    monkeypatch.setenv("CESYM_CACHE_MAX_MB", "0")
    assert truthcache.prune(now) == 0  # used in the last hour: kept whatever the budget
    assert truthcache.prune(now + 7200) == 2
    # a pass within ``every`` of the last is skipped (the command's: once a day)
    old = truths / ("f" * 40)
    old.mkdir()
    os.utime(old, (now - 40 * 86400, now - 40 * 86400))
    assert truthcache.prune(now + 2 * 86400 + 7200, every=86400.0) == 1  # the last pass was 2 days ago
    old.mkdir()
    os.utime(old, (now - 40 * 86400, now - 40 * 86400))
    assert truthcache.prune(now + 2 * 86400 + 7300, every=86400.0) == 0 and old.is_dir()  # 100 s after it
    # a reference's own directory is touched when loaded
    ref = RowReference(_cce(), 3)
    ref.kappa(*HUGE)
    truthcache.flush([ref])
    d = truthcache.directory(ref)
    os.utime(d, (1.0, 1.0))
    truthcache.load(ref)
    assert d.stat().st_mtime > 1.5e9


@pytest.mark.parametrize("name, value", [("CESYM_CACHE_DAYS", "a month"), ("CESYM_CACHE_MAX_MB", "-1"), ("CESYM_CACHE_MAX_MB", "nan")])
def test_a_bad_cache_limit_is_a_usage_error_naming_it(monkeypatch, tmp_path, capsys, name, value):
    from cesym.cli import EXIT_USAGE, main

    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(name, value)
    assert main(["generate", "--check"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert name in err and repr(value) in err and "non-negative number" in err


def test_the_batch_checks_numbers_of_the_balls_are_read_back(cache, monkeypatch):
    """The double-doubles ``batch_truths`` took from the balls (a float64 point the first tier
    leaves: without a prefill, every point) and the gradient spot check's pair are kept: a second
    reference gives the same arrays and numbers with the balls and mpmath.diff switched off."""
    from cesym.verify.truths import batch_truths

    pts = np.array([[0.0, 1.0, 0.0, 30.0, -20.0, 1.5, 0.0], [0.0, 0.0, 1.0, 0.5, -1.25, 2.0, 0.1]])
    first = RowReference(_cce(), 3)
    want = batch_truths(first, pts, np.float64)
    pair = first.checked_pair(HUGE[0], [30.0, -20.0, 1.5], HUGE[2])
    assert want.ok.all()
    assert any(k[0] == "dd" for k in first._fresh) and ("checked pair", tuple(pts[0])) in first._fresh
    assert truthcache.flush([first]) >= 2

    def no_balls(*a, **k):
        raise AssertionError("computed again")

    second = RowReference(_cce(), 3)
    monkeypatch.setattr(RowReference, "_rising", no_balls)
    monkeypatch.setattr(RowReference, "numeric_grad", no_balls)
    got = batch_truths(second, pts, np.float64)
    for a, b in ((want.ok, got.ok), (want.v_hi, got.v_hi), (want.v_lo, got.v_lo), (want.g_hi, got.g_hi), (want.g_lo, got.g_lo)):
        assert np.array_equal(a, b)
    assert second.checked_pair(HUGE[0], [30.0, -20.0, 1.5], HUGE[2]) == pair
    assert truthcache.flush([second]) == 0


def test_the_first_tiers_numbers_are_kept_per_host(monkeypatch):
    """The first tier's interval ends come from NumPy's exp and log (last bits per SIMD path) and
    its wide stage from the platform's long double: a cache shared by two hosts keeps them apart."""
    from cesym.verify import first_tier, hostfloor

    first_tier._host.cache_clear()
    here = first_tier._host()
    monkeypatch.setattr(hostfloor, "simd", lambda: {"dispatch": ["another CPU"]})
    first_tier._host.cache_clear()
    try:
        assert first_tier._host() != here
    finally:
        first_tier._host.cache_clear()


def test_a_second_run_of_the_command_reads_back_and_finds_the_same(tmp_path, monkeypatch):
    """``cesym verify`` twice on one cache directory: the second run reads the first one's numbers
    (the first tier's stages of batches of 100 rows and more, the balls' κ, the limits) and its
    JSON is the first one's but for the seconds. (The first run's verdicts, :mod:`cesym.verify.verdicts`,
    are removed before the second: it judges again, on the numbers read back.)"""
    import json
    import os
    import shutil
    import subprocess
    import sys

    from cesym.verify import verdicts

    env = dict(os.environ, CESYM_CACHE_DIR=str(tmp_path / "cache"))
    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path / "cache"))
    judged = verdicts._directory()
    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}.json"
        r = subprocess.run(
            [sys.executable, "-m", "cesym.cli", "verify", "categorical_crossentropy", "--points", "1500", "--no-keras", "--jobs", "1", "--json", str(out)],
            capture_output=True, text=True, env=env,
        )
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        runs.append(json.loads(out.read_text()))
        if i == 0:
            assert judged.is_dir()
            shutil.rmtree(judged)
            shards = list((tmp_path / "cache" / "truths").glob("*/*.pkl"))
            assert shards
            kinds = set()
            for p in shards:
                kinds |= {k[0] if isinstance(k[0], str) else "value" for k in truthcache._read(p)}
            assert {"first tier", "limit"} <= kinds
    # everything the second run asked for was there: it computed nothing new to keep
    assert sorted(p for p in (tmp_path / "cache" / "truths").glob("*/*.pkl") if p.parent != judged) == sorted(shards)

    def drop_seconds(x):
        if isinstance(x, dict):
            return {k: drop_seconds(v) for k, v in x.items() if k != "seconds"}
        if isinstance(x, list):
            return [drop_seconds(v) for v in x]
        return x

    assert drop_seconds(runs[0]["configurations"]) == drop_seconds(runs[1]["configurations"])


def test_keras_models_envelope_is_read_back_by_its_exact_inputs(cache, monkeypatch):
    """Keras's model of a row (:func:`cesym.keras.model.envelope`, for outputs past the contract) is
    kept with the reference's numbers and read back without walking the algorithm again, the
    same intervals; a seed is part of the key, and so is the sign of a zero input."""
    from mpmath import iv

    from cesym.keras import model
    from cesym.verify import contract
    from cesym.verify.registry import CASES

    case = next(c for c in CASES if c.kernel == "poisson")  # Keras's algorithm as declared, walked op by op
    lab, pred, U = np.array([0.0, 2.5, 1.0]), np.array([1e-300, 3.0, 0.0]), iv.mpf(0.25)
    want = [model.envelope(case, lab, pred, {}, np.float32, upstream=u) for u in (None, U)]
    kept = {k: v for r in contract._REFS.values() for k, v in r._fresh.items() if k[0] == "keras model"}
    assert len(kept) == 2 and b"gmpy2" not in pickle.dumps(kept)  # plain ints: any mpmath back end reads them
    assert truthcache.flush(contract._REFS.values()) >= 2

    def walked(*a, **k):
        raise AssertionError("walked again")

    monkeypatch.setattr(contract, "_REFS", {})  # a new process's references: the numbers from disk
    monkeypatch.setattr(model, "_envelope", walked)
    for u, (v, g) in zip((None, U), want):
        got_v, got_g = model.envelope(case, lab, pred, {}, np.float32, upstream=u)
        assert (got_v.a, got_v.b) == (v.a, v.b) and [(x.a, x.b) for x in got_g] == [(x.a, x.b) for x in g]
    with pytest.raises(AssertionError, match="walked again"):
        model.envelope(case, lab, np.array([1e-300, 3.0, -0.0]), {}, np.float32)
    with pytest.raises(AssertionError, match="walked again"):
        model.envelope(case, lab, pred, {}, np.float64)


def test_one_process_at_a_time_merges_a_directory(cache):
    """Past ``MAX_SHARDS`` a loading process merges the shards into one, unless another holds the
    merge (``.merging``, fresh): then it reads them as they are; a claim left by a merge that
    died (older than ``_STALE``) is taken over, and released after."""
    import os
    import time

    d = cache / "truths" / ("ab" * 20)
    for i in range(truthcache.MAX_SHARDS + 1):
        assert truthcache._write(d, {("k", i): i}) is not None
    want = {("k", i): i for i in range(truthcache.MAX_SHARDS + 1)}
    claim = d / truthcache._MERGING
    claim.touch()
    assert truthcache.load_dir(d) == want
    assert len(list(d.glob("*.pkl"))) == truthcache.MAX_SHARDS + 1 and claim.exists()
    old = time.time() - 2 * truthcache._STALE
    os.utime(claim, (old, old))
    assert truthcache.load_dir(d) == want
    assert len(list(d.glob("*.pkl"))) == 1 and not claim.exists()
    assert truthcache.load_dir(d) == want
