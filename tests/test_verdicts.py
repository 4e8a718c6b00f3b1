"""The contract's verdicts kept by the exact numbers judged (cesym.verify.verdicts): a second run
that measures the same outputs takes them and reports the same; an output measured differently,
other code or another setting is judged again; the check judges the outputs it is given as it
judges the kernel's own; and nothing is kept unless the command turns the cache on."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from cesym.verify import contract, truthcache, verdicts
from cesym.verify import run as vrun
from cesym.verify.registry import CASES
from cesym.verify.sampling import sample

from conftest import SEED


@pytest.fixture
def kept(monkeypatch, tmp_path):
    """The command's caches in a directory of the test's, with references of the test's own
    (the process's keep the directory they first found)."""
    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(truthcache, "ENABLED", True)
    monkeypatch.setattr(verdicts, "_loaded", {})
    monkeypatch.setattr(verdicts, "_fresh", {})
    refs: dict = {}
    monkeypatch.setattr(contract, "_REFS", refs)
    monkeypatch.setattr(contract, "_EXT", {})
    monkeypatch.setattr(vrun, "_REFS", refs)
    return tmp_path


def _case(kernel: str):
    return next(c for c in CASES if c.id == kernel)


def _on_disk(root: Path) -> set:
    """Every kept entry under the cache ``root``: (directory, key)."""
    return {(p.parent.name, repr(k)) for p in (root / "truths").glob("*/*.pkl") for k in truthcache._read(p)}


def _plain(configs) -> list[dict]:
    return [{k: v for k, v in dataclasses.asdict(c).items() if k not in ("seconds", "judged")} for c in configs]


@pytest.mark.parametrize("kernel", ["categorical_crossentropy[from_logits=True]", "activity_penalty", "huber"])
def test_the_check_judges_given_outputs_as_it_judges_the_kernels_own(kernel, monkeypatch):
    """``check_batch(..., outputs=kernel_outputs(...))`` is ``check_batch(...)``: the same calls
    (one batch, or each of the penalty's independent batches), the same errors; for the naive
    form too. (Each on references of its own: what a reference's memo holds decides whether a
    point gets the first tier's pinned number or the balls', equal to 2^-8 ulp.)"""
    case = _case(kernel)
    batch = sample(case, np.float64, 3, 120, seed=SEED)
    naive = vrun.naive_kernel(case)

    def fresh():
        monkeypatch.setattr(contract, "_REFS", {})
        monkeypatch.setattr(contract, "_EXT", {})

    for kern in (None, naive):
        fresh()
        want = contract.check_batch(case, batch, kernel=kern)
        fresh()
        got = contract.check_batch(case, batch, kernel=kern, outputs=contract.kernel_outputs(case, batch, kern))
        assert repr(got.summary()) == repr(want.summary())  # (NaN: equal as text)
        assert got.value_ulps == want.value_ulps and got.grad_ulps == want.grad_ulps
        assert [str(f) for f in got.failures] == [str(f) for f in want.failures]
    outs = contract.kernel_outputs(case, batch)
    assert len(outs) == (len(batch.groups) if case.reduction == "batch" else 1)


def test_a_second_run_takes_the_verdicts_and_reports_the_same(kept, monkeypatch):
    first = vrun.run(["categorical_crossentropy.logits", "activity_penalty.l2_batch_mean"], points=240)
    entries = _on_disk(kept)
    assert entries

    def judged(*a, **k):
        raise AssertionError("judged again")

    # read back from disk, as another process would: the verdicts and the reference's numbers
    refs: dict = {}
    monkeypatch.setattr(verdicts, "_loaded", {})
    monkeypatch.setattr(contract, "_REFS", refs)
    monkeypatch.setattr(contract, "_EXT", {})
    monkeypatch.setattr(vrun, "_REFS", refs)
    monkeypatch.setattr(vrun, "check_batch", judged)
    second = vrun.run(["categorical_crossentropy.logits", "activity_penalty.l2_batch_mean"], points=240)
    assert repr(_plain(second)) == repr(_plain(first))
    assert all(c.judged for c in first) and not any(c.judged for c in second)
    assert _on_disk(kept) == entries  # nothing new to keep (a loading process may merge shards)


def test_an_output_measured_differently_is_judged_again(kept, monkeypatch):
    """One gradient element one ulp away from what the first run measured: another key, judged
    (and the verdict, another one, kept beside the first)."""
    name = "categorical_crossentropy.logits"
    vrun.run([name], points=120)
    before = _on_disk(kept)
    real = vrun.kernel_outputs
    moved = []

    def one_ulp_off(case, batch, kernel=None, grad=True):
        outs = real(case, batch, kernel, grad)
        if kernel is None and not moved:
            value, g = outs[0]
            g = g.copy()
            g.flat[0] = np.nextafter(g.flat[0], np.inf)
            outs[0] = (value, g)
            moved.append(True)
        return outs

    calls = []
    real_check = vrun.check_batch
    monkeypatch.setattr(vrun, "kernel_outputs", one_ulp_off)
    monkeypatch.setattr(vrun, "check_batch", lambda *a, **k: calls.append(1) or real_check(*a, **k))
    monkeypatch.setattr(verdicts, "_loaded", {})
    vrun.run([name], points=120)
    assert moved and calls  # the configuration with the moved element was judged
    assert _on_disk(kept) > before  # the other verdict kept beside the first


def test_the_verdicts_follow_the_code_and_the_settings(kept, monkeypatch, tmp_path_factory):
    """Another byte in the checker's code (the contract, the sampler, Keras's model, the
    kernels' ``_api.py`` whose constant the sampler reads), or a setting that decides a number,
    is another directory; a setting that only places the caches is not, nor a change to the code
    that makes the outputs judged (a kernel, a generated module, the code generator: their
    outputs are measured and keyed)."""
    here = verdicts._directory()
    assert here is not None and here.parent == kept / "truths"
    monkeypatch.setenv("CESYM_CACHE_DAYS", "3")
    assert verdicts._directory() == here
    monkeypatch.setenv("CESYM_FIRST_TIER", "off")
    assert verdicts._directory() != here
    monkeypatch.delenv("CESYM_FIRST_TIER")
    package = Path(verdicts.__file__).resolve().parents[1]
    copy = tmp_path_factory.mktemp("pkg") / "cesym"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    assert verdicts.code_digest(copy) == verdicts.code_digest()
    here = verdicts.code_digest()
    for part in ("kernels/_generated/huber.py", "kernels/_rescue.py", "generate/codegen.py", "report/render.py", "bench.py"):
        f = copy / part
        f.write_bytes(f.read_bytes() + b"\n")
        verdicts.code_digest.cache_clear()
        assert verdicts.code_digest(copy) == here, part
    # the seeded batches follow the sampler's code alone: a change to the checker keeps them
    sampler = verdicts.code_digest(copy, verdicts._SAMPLER)
    assert verdicts._directory(samples=True) not in (None, verdicts._directory())
    for part in ("verify/contract.py", "keras/model.py", "define/evaluate.py", "rewrite/rules.py", "verify/sampling.py", "kernels/_api.py"):
        f = copy / part
        f.write_bytes(f.read_bytes() + b"\n")
        verdicts.code_digest.cache_clear()
        assert verdicts.code_digest(copy) != here, part
        here = verdicts.code_digest(copy)
        moved = verdicts.code_digest(copy, verdicts._SAMPLER) != sampler
        assert moved == (part in verdicts._SAMPLER), part
        sampler = verdicts.code_digest(copy, verdicts._SAMPLER)


def test_nothing_is_kept_or_taken_unless_the_command_turns_it_on(monkeypatch, tmp_path):
    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(truthcache, "ENABLED", False)
    monkeypatch.setattr(verdicts, "_loaded", {})
    verdicts.keep("k", {"points": 1})
    assert verdicts.recall("k") is None
    assert not (tmp_path / "truths").exists()


def test_keras_forms_are_judged_with_the_contract(kept, monkeypatch):
    """With Keras: its function forms' and loss classes' outputs are measured in every run (the
    classes on the rows the judging run chose: those whose reference resolved) and are part of
    the key; their tallies are taken with the verdict, the gradient's spot check too, and
    nothing reads the reference; the metrics (which read none) are judged in every run. A class
    output one ulp off is judged again."""
    pytest.importorskip("tensorflow")
    from cesym.keras import check, forms

    name = "binary_crossentropy.logits"
    first = vrun.run([name], points=60, keras=True)

    def fresh():
        refs: dict = {}
        monkeypatch.setattr(verdicts, "_loaded", {})
        monkeypatch.setattr(contract, "_REFS", refs)
        monkeypatch.setattr(contract, "_EXT", {})
        monkeypatch.setattr(vrun, "_REFS", refs)

    def judged(*a, **k):
        raise AssertionError("judged again")

    fresh()
    spared = [(check, "classify"), (vrun, "check_batch"), (forms, "check_classes"), (forms, "class_rows"), (vrun, "prefill_batch"),
              (vrun, "_gradient_spot_check"), (contract, "reference_for"), (forms, "reference_for")]
    real = {(m, f): getattr(m, f) for m, f in spared}
    for m, f in spared:
        monkeypatch.setattr(m, f, judged)
    calls = {"keras_outputs": [], "class_outputs": [], "check_metrics": [], "check_loss_metrics": []}
    mods = {"keras_outputs": check, "class_outputs": forms, "check_metrics": forms, "check_loss_metrics": forms}
    for f, seen in calls.items():
        monkeypatch.setattr(mods[f], f, lambda *a, _f=getattr(mods[f], f), _seen=seen, **k: _seen.append(1) or _f(*a, **k))
    second = vrun.run([name], points=60, keras=True)
    assert calls["keras_outputs"] and calls["class_outputs"] and calls["check_metrics"] + calls["check_loss_metrics"], calls
    assert repr(_plain(second)) == repr(_plain(first))
    assert all(c.keras is not None and c.keras_classes is not None and not c.judged for c in second)

    fresh()
    for (m, f), fn in real.items():
        monkeypatch.setattr(m, f, fn)
    judging = []
    monkeypatch.setattr(forms, "check_classes", lambda *a, _f=real[forms, "check_classes"], **k: judging.append(1) or _f(*a, **k))
    real_outputs = forms.class_outputs

    def moved(*a, **k):
        outs = real_outputs(*a, **k)
        value, grad = outs[0]
        return [(np.nextafter(value, np.inf), grad)] + outs[1:]

    monkeypatch.setattr(forms, "class_outputs", moved)
    third = vrun.run([name], points=60, keras=True)
    assert judging and all(c.judged for c in third)


def test_another_definition_is_judged_again(kept, monkeypatch):
    """The same outputs under a definition that is not the same data (here its notes: a user's
    derivation outside the package, edited without regenerating the kernels) miss the verdict."""
    name = "categorical_crossentropy.logits"
    vrun.run([name], points=120)
    real = vrun.definition
    monkeypatch.setattr(vrun, "definition", lambda case: dataclasses.replace(real(case), notes=real(case).notes + " (edited)"))
    calls = []
    real_check = vrun.check_batch
    monkeypatch.setattr(vrun, "check_batch", lambda *a, **k: calls.append(1) or real_check(*a, **k))
    monkeypatch.setattr(verdicts, "_loaded", {})
    vrun.run([name], points=120)
    assert calls


def test_a_sample_is_drawn_once_per_code_state_and_given_whole(kept):
    """The seeded batches are kept beside the verdicts, in a directory of their own: the same
    arrays, strata, parameters and groups come back without drawing, each caller its own copy;
    other arguments are another key."""
    case = _case("activity_penalty")
    args = ("float64", 4, 50, SEED, False, False)
    want = sample(case, np.float64, 4, 50, seed=SEED)
    got = verdicts.kept_sample("sample", case, args, lambda: sample(case, np.float64, 4, 50, seed=SEED))

    def no_draw():
        raise AssertionError("drawn again")

    again = verdicts.kept_sample("sample", case, args, no_draw)
    for b in (got, again):
        assert b.pred.tobytes() == want.pred.tobytes() and b.strata == want.strata
        assert b.params == want.params and b.groups == want.groups
    again.pred[0, 0] = 123.0
    assert verdicts.kept_sample("sample", case, args, no_draw).pred[0, 0] == want.pred[0, 0]
    with pytest.raises(AssertionError, match="drawn again"):
        verdicts.kept_sample("sample", case, ("float64", 4, 50, SEED + 1, False, False), no_draw)
    verdicts.flush()
    assert {d for d, _ in _on_disk(kept)} == {verdicts._directory(samples=True).name}
