"""The disk cache of the reference's compiled forms (cesym.verify.codecache): value and gradient,
the value's other partials, the second derivatives; an entry read back is the function derived,
a bad entry is derived again, no directory is no cache."""

import os
from pathlib import Path

import pytest

from cesym.verify import codecache, prederived
from cesym.verify.contract import losses_by_name
from cesym.verify.reference import RowReference

LOSS = "binary_focal_crossentropy.logits"
LABELS, PRED, PARAMS = [0.0, 1.0, 0.25], [-3.5, 40.0, 1e-3], [0.1, 2.0]


@pytest.fixture(autouse=True)
def no_shipped_forms(monkeypatch, tmp_path_factory):
    """These tests are of the user's cache: the forms shipped for the catalog
    (cesym.verify.prederived, tests/test_prederived.py) would be found instead of derived."""
    monkeypatch.setattr(prederived, "ARCHIVE", tmp_path_factory.getbasetemp() / "no-such-archive.zip")


def _kappa(n: int = 3):
    ref = RowReference(losses_by_name()[LOSS], n)
    return ref.kappa(LABELS[:n], PRED[:n], PARAMS), ref._hessian


@pytest.fixture
def derived(monkeypatch):
    monkeypatch.setenv("CESYM_CACHE_DIR", "off")
    return _kappa()[0]


def _entries(d: Path) -> list[Path]:
    return sorted((d / "reference").glob("*.py"))


def test_an_entry_read_back_gives_the_derived_numbers(derived, tmp_path, monkeypatch):
    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path))
    first, _ = _kappa()
    entries = _entries(tmp_path)
    assert len(entries) == 3  # value and gradient, the other partials, the second derivatives
    second, fn = _kappa()
    assert first == second == derived
    assert fn.__code__.co_filename in [str(e) for e in entries]  # the second reference read the entry


def test_another_expression_is_another_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path))
    _kappa(3)
    _kappa(2)
    assert len(_entries(tmp_path)) == 6


@pytest.mark.parametrize("text", ["", "def _lambdifygenerated(:\n", "x = 1\n", "raise ValueError\n", "1/0\n", "import nosuchmodule\n"])
def test_a_bad_entry_is_derived_again(derived, tmp_path, monkeypatch, text):
    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path))
    _kappa()
    for entry in _entries(tmp_path):
        entry.write_text(text, encoding="utf-8")
    assert _kappa()[0] == derived
    for entry in _entries(tmp_path):
        assert entry.read_text(encoding="utf-8").startswith("def _lambdifygenerated(")  # and rewritten


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_an_unwritable_directory_is_no_cache(derived, tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setenv("CESYM_CACHE_DIR", str(ro))
    try:
        assert _kappa()[0] == derived
        assert not (ro / "reference").exists()
    finally:
        ro.chmod(0o700)


def test_a_directory_that_is_a_file_is_no_cache(derived, tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("", encoding="utf-8")
    monkeypatch.setenv("CESYM_CACHE_DIR", str(f))
    assert _kappa()[0] == derived


def test_the_key_names_the_sources(monkeypatch):
    """A change to the printer's or the deriving module's source is another key."""
    import sympy as sp

    args = [sp.Symbol("x")]
    k = codecache.key(args, "e", "cesym.verify.reference")
    assert k == codecache.key(args, "e", "cesym.verify.reference")
    assert k != codecache.key(args, "f", "cesym.verify.reference")
    monkeypatch.setattr(codecache, "_source_digest", lambda m: "other" if m == "cesym.verify.reference" else "p")
    assert k != codecache.key(args, "e", "cesym.verify.reference")
    monkeypatch.setattr(codecache, "_source_digest", lambda m: None)
    assert codecache.key(args, "e", "cesym.verify.reference") is None


def test_off_and_default_locations(monkeypatch, tmp_path):
    monkeypatch.setenv("CESYM_CACHE_DIR", "off")
    assert codecache.cache_dir() is None
    monkeypatch.delenv("CESYM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert codecache.cache_dir() == tmp_path / "cesym" / "reference"


def test_compiled_rows_of_the_rewrite_checks_are_cached(tmp_path, monkeypatch):
    """compile_row_exprs (the rewrite checks', most of `cesym generate`'s time) keeps its printed
    code: a second compile of the same rows reads the entry and gives the same numbers; another
    row length, context or expression is another entry."""
    import mpmath
    import sympy as sp

    from cesym.define.evaluate import compile_row_exprs
    from cesym.define.primitives import Elem, RowSum, Softplus

    x, y = Elem("x", real=True), Elem("y", real=True)
    expr = RowSum(y * Softplus(x))
    rows = ([0.5, -2.0, 30.0], [1.0, 0.0, 0.25])

    monkeypatch.setenv("CESYM_CACHE_DIR", "off")
    derived = compile_row_exprs([expr], [y, x], [], 3)(rows[::-1])
    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path))
    first = compile_row_exprs([expr], [y, x], [], 3)(rows[::-1])
    assert len(_entries(tmp_path)) == 1
    second = compile_row_exprs([expr], [y, x], [], 3)(rows[::-1])
    assert len(_entries(tmp_path)) == 1 and first == second == derived
    compile_row_exprs([expr], [y, x], [], 2)
    compile_row_exprs([expr], [y, x], [], 3, ctx=mpmath.iv)
    compile_row_exprs([expr + sp.Integer(1)], [y, x], [], 3)
    compile_row_exprs([y * Softplus(x)], [y, x], [], 3, per_element=[True])
    assert len(_entries(tmp_path)) == 5


def test_a_recording_collects_every_entry_asked_for(tmp_path, monkeypatch):
    """codecache.record (what `cesym generate` ships, cesym.verify.prederived): every entry asked
    for inside the block, derived or read back, by name with its printed text; one at a time."""
    monkeypatch.setenv("CESYM_CACHE_DIR", str(tmp_path))
    with codecache.record() as first:
        _kappa(2)
        with pytest.raises(RuntimeError, match="already under way"):
            with codecache.record():
                pass
    entries = {p.stem: p.read_text(encoding="utf-8") for p in _entries(tmp_path)}
    assert len(first) == 3 and first == entries  # derived: the text written
    with codecache.record() as second:
        _kappa(2)
    assert second == first  # read back: the same names and text
    _kappa(3)
    assert len(second) == 3  # outside the block: not recorded
