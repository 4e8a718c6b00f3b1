"""The reference's compiled forms shipped for the catalog (cesym.verify.prederived): a shipped
form is the form the reference derives, text and numbers; with it a reference of the catalog
derives nothing; a missing or damaged archive is derived around; `stale` and `write` keep the
archive to what verify asks for. (That the committed archive is fresh: `cesym generate --check`,
tests/test_generate.py; that a quick verify derives nothing: tests/test_verify.py.)"""

import inspect
import shutil
import zipfile

import pytest

from cesym.verify import prederived
from cesym.verify import reference as R
from cesym.verify.contract import losses_by_name
from cesym.verify.reference import RowReference

# binary focal loss from logits at rows of 2 (a size of the quick run): κ at a logit of 40 and
# a soft label, on the balls (the Hessian) for a point the first tier is not asked
LOSS, N = "binary_focal_crossentropy.logits", 2
LABELS, PRED, PARAMS = [0.25, 1.0], [40.0, -3.5], [0.1, 2.0]
FORMS = ("value and gradient", "partials", "hessian")


def _forms(ref: RowReference) -> dict:
    return {"value and gradient": ref._main, "partials": ref._value_partials, "hessian": ref._hessian}


@pytest.fixture(scope="module")
def derived():
    """The forms and numbers derived in this process, no cache of any kind."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CESYM_CACHE_DIR", "off")
    try:
        ref = RowReference(losses_by_name()[LOSS], N)
        sources = {f: inspect.getsource(fn) for f, fn in _forms(ref).items()}
        return sources, ref.value_and_grad(LABELS, PRED, PARAMS), ref.kappa(LABELS, PRED, PARAMS)
    finally:
        mp.undo()


def test_the_manifest_holds_the_catalog_at_verifys_row_lengths():
    from cesym.verify.run import QUICK_SIZES, SIZES

    refs = {(loss.name, n) for loss, n in prederived.manifest()}
    assert (LOSS, N) in refs and ("categorical_focal_crossentropy.logits", max(SIZES)) in refs
    assert {n for _, n in refs} >= set(SIZES) | set(QUICK_SIZES)
    from cesym.verify.contract import definition
    from cesym.verify.registry import CASES

    elementwise = {definition(c).name for c in CASES if c.elementwise}
    assert elementwise and all(n == 1 for name, n in refs if name in elementwise)  # of one element


def test_a_shipped_form_is_the_derived_form(derived):
    names = RowReference.form_names(losses_by_name()[LOSS], N)
    assert set(names) == set(FORMS)
    for form in FORMS:
        assert prederived.read(names[form]) == derived[0][form], form


def test_a_reference_of_the_catalog_derives_nothing(derived, tmp_path, monkeypatch):
    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path))

    def no(*a, **k):
        raise AssertionError("derived")

    monkeypatch.setattr(R, "jacobian_assignments", no)
    monkeypatch.setattr(R, "_compile", no)
    ref = RowReference(losses_by_name()[LOSS], N)
    assert ref.value_and_grad(LABELS, PRED, PARAMS) == derived[1]
    assert ref.kappa(LABELS, PRED, PARAMS) == derived[2]
    assert all(fn.printed_source == derived[0][f] for f, fn in _forms(ref).items())
    assert not list(tmp_path.rglob("*.py"))  # nothing derived, nothing written


@pytest.mark.parametrize("content", [None, b"", b"PK\x03\x04 not a zip"])
def test_a_missing_or_damaged_archive_is_derived_around(derived, tmp_path, monkeypatch, content):
    archive = tmp_path / "prederived.zip"
    if content is not None:
        archive.write_bytes(content)
    monkeypatch.setattr(prederived, "ARCHIVE", archive)
    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path / "cache"))
    ref = RowReference(losses_by_name()[LOSS], N)
    assert ref.kappa(LABELS, PRED, PARAMS) == derived[2]
    assert len(list((tmp_path / "cache").rglob("*.py"))) == 3  # derived, into the user's cache


def test_a_damaged_member_is_derived_again(derived, tmp_path, monkeypatch):
    names = RowReference.form_names(losses_by_name()[LOSS], N)
    archive = tmp_path / "prederived.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for form in FORMS:
            z.writestr(f"verify/{names[form]}.py", "def _lambdifygenerated(:\n")
    monkeypatch.setattr(prederived, "ARCHIVE", archive)
    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path / "cache"))
    assert RowReference(losses_by_name()[LOSS], N).kappa(LABELS, PRED, PARAMS) == derived[2]


def _contents(archive) -> dict:
    with zipfile.ZipFile(archive) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_stale_and_write_keep_the_archive_to_what_verify_asks_for(tmp_path, monkeypatch):
    """A copy of the committed archive without one reference's forms and with a member nothing
    asks for: `stale` names both, `write` derives the missing forms (only those: the others are
    kept), drops the unused one, keeps the generate part as it is, and gives the committed content
    back; a second write changes nothing."""
    monkeypatch.setenv("CESYM_CACHE_DIR", "off")
    names = RowReference.form_names(losses_by_name()[LOSS], N)
    archive = tmp_path / "prederived.zip"
    committed = _contents(prederived.ARCHIVE)
    assert any(n.startswith("generate/") for n in committed)
    with zipfile.ZipFile(archive, "w") as z:
        for n, data in committed.items():
            if n[len("verify/"):-3] not in names.values():
                z.writestr(n, data)
        z.writestr("verify/" + "0" * 40 + ".py", "x = 1\n")
    stale = prederived.stale(archive)
    assert len(stale) == 4 and stale[-1] == f"unused verify/{'0' * 40}"
    assert all(s.startswith(f"missing {LOSS}, rows of {N}: ") for s in stale[:3])
    assert prederived.write(archive) is True
    assert _contents(archive) == committed
    with zipfile.ZipFile(archive) as z:
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in z.infolist())
    assert prederived.stale(archive) == [] and prederived.write(archive) is False


def test_the_generate_part_is_what_generate_compiled(tmp_path):
    """Given what a rendering compiled (codecache.record), `stale` names the entries missing from
    the generate part and those it holds that the rendering did not ask for; `write` makes the
    part exactly that, and the verify part is left alone."""
    archive = tmp_path / "prederived.zip"
    shutil.copy(prederived.ARCHIVE, archive)
    committed = _contents(archive)
    generated = {n[len("generate/"):-3]: data.decode() for n, data in committed.items() if n.startswith("generate/")}
    assert prederived.stale(archive, generated) == []
    gone = sorted(generated)[0]
    fewer = {k: v for k, v in generated.items() if k != gone} | {"1" * 40: "def _lambdifygenerated():\n    return [1]\n"}
    assert prederived.stale(archive, fewer) == [f"missing compiled by cesym generate ({'1' * 40})", f"unused generate/{gone}"]
    assert prederived.write(archive, fewer) is True
    after = _contents(archive)
    assert {n for n in after if n.startswith("generate/")} == {f"generate/{k}.py" for k in fewer}
    assert {n: d for n, d in after.items() if n.startswith("verify/")} == {n: d for n, d in committed.items() if n.startswith("verify/")}
