"""Generation: committed kernels are fresh and reproducible; broken derivations fail cleanly."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cesym.define.loss import DERIVATIONS_DIR, DerivationError, load_derivation
from cesym.generate.codegen import GENERATED_DIR, generate

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "cesym.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_committed_kernels_are_fresh():
    """`cesym generate --check` passes: the committed kernels are what the derivations give."""
    r = _cli("generate", "--check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_generation_is_byte_identical(tmp_path):
    """A run in this process writes, byte for byte, the committed files of the families it
    renders (a fresh process reproduces the whole catalog: ``generate --check`` above), and a
    second run changes nothing. On two families: the whole catalog takes 7-15 s a run, and its
    in-process run checked nothing the subprocess does not."""
    src, small = tmp_path / "two", tmp_path / "gen2"
    src.mkdir()
    for name in ("tf_nn.py", "hinge.py"):
        shutil.copy(DERIVATIONS_DIR / name, src / name)
    assert generate(src, small)  # first run writes every file
    written = {p.name: p.read_bytes() for p in small.glob("*.py")}
    assert set(written) == {"__init__.py", "tf_nn.py", "hinge.py"}
    for name in ("tf_nn.py", "hinge.py"):
        assert written[name] == (GENERATED_DIR / name).read_bytes(), name
    assert generate(src, small) == []  # second run: nothing changes
    assert {p.name: p.read_bytes() for p in small.glob("*.py")} == written


def test_check_reports_stale(tmp_path):
    src, out = tmp_path / "two", tmp_path / "gen"
    src.mkdir()
    for name in ("tf_nn.py", "hinge.py"):
        shutil.copy(DERIVATIONS_DIR / name, src / name)
    generate(src, out)
    target = out / "tf_nn.py"
    target.write_text(target.read_text() + "\n# edited\n")
    r = _cli("generate", "--check", "--derivations", str(src), "--out", str(out))
    assert r.returncode == 1 and "tf_nn.py" in r.stdout


BROKEN = {
    "syntax": ("x = (\n", "syntax error"),
    "undefined": ("LOSSES[0] = LOSSES[0].__class__(**{**LOSSES[0].__dict__, 'value': undefined_symbol})\n", "NameError"),
    "undeclared": (
        "from sympy import Symbol\nimport dataclasses\nLOSSES[0] = dataclasses.replace(LOSSES[0], value=LOSSES[0].value + Symbol('q'))\n",
        "undeclared symbol(s) q",
    ),
    "an unknown function": (
        "from sympy import Function\nimport dataclasses\nLOSSES[0] = dataclasses.replace(LOSSES[0], value=Function('f')(LOSSES[0].prediction))\n",
        "value uses f, which cesym does not support",
    ),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_broken_derivation_one_line_exit_2_kernels_untouched(tmp_path, kind):
    """Two families (the broken one and another, whose kernels must stay as they were)."""
    src = tmp_path / "derivations"
    src.mkdir()
    for name in ("tf_nn.py", "hinge.py"):
        shutil.copy(DERIVATIONS_DIR / name, src / name)
    out = tmp_path / "gen"
    generate(src, out)
    before = {p.name: p.read_bytes() for p in out.glob("*.py")}
    code, expected = BROKEN[kind]
    with open(src / "tf_nn.py", "a") as f:
        f.write(code)
    r = _cli("generate", "--derivations", str(src), "--out", str(out))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "tf_nn" in lines[0] and expected in lines[0], lines[0]
    assert {p.name: p.read_bytes() for p in out.glob("*.py")} == before


def test_loader_names_the_file(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("LOSSES = 3\n")
    with pytest.raises(DerivationError, match="bad.py"):
        load_derivation(bad)


def test_generated_code_is_readable():
    """Docstrings carry the formula and the rewrites; the code calls the runtime primitives (the
    committed module: what generation writes, test_committed_kernels_are_fresh)."""
    src = (GENERATED_DIR / "categorical_crossentropy.py").read_text()
    assert "Rewrites applied:" in src and "log-softmax" in src and "split-rowsum" in src
    # -log softmax printed as log1p(off-max sum) - (z - max z), sharing exp(z - max z) with the
    # gradient; max, exp, sum and off-max sum of a softmax come from one call (one reduction for
    # a row in pieces), the operations of its parts
    assert "tmp0, tmp1, tmp2, tmp3 = _rt.softmax_parts(z)" in src and "numpy.log1p(tmp3)" in src
    assert "_rt.cross_rest(t, z, tmp1, tmp3, tmp2)" in src
    assert "def logits_value_and_grad(y, z, label_smoothing):" in src
    compile(src, "categorical_crossentropy.py", "exec")


# --- issue 9, item 4: generate never destroys kernels ---------------------------------------------


def _snapshot(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.fixture
def kernels_copy(tmp_path):
    """A copy of the committed kernels, as a target that must come out untouched."""
    out = tmp_path / "gen"
    shutil.copytree(GENERATED_DIR, out, ignore=shutil.ignore_patterns("__pycache__"))
    return out


@pytest.mark.parametrize("which", ["empty", "missing", "no derivation files"])
def test_missing_or_empty_derivations_refused(tmp_path, kernels_copy, which):
    src = tmp_path / "derivations"
    if which != "missing":
        src.mkdir()
    if which == "no derivation files":
        (src / "notes.txt").write_text("not a derivation\n")
        (src / "_private.py").write_text("LOSSES = []\n")
    before = _snapshot(kernels_copy)
    r = _cli("generate", "--derivations", str(src), "--out", str(kernels_copy))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(src) in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == "" and _snapshot(kernels_copy) == before


def test_generate_never_removes_a_module(tmp_path, kernels_copy):
    """A derivations directory holding one family rewrites that family only; the other modules
    stay, and __init__.py still imports them all."""
    src = tmp_path / "derivations"
    src.mkdir()
    shutil.copy(DERIVATIONS_DIR / "tf_nn.py", src / "tf_nn.py")
    before = _snapshot(kernels_copy)
    r = _cli("generate", "--derivations", str(src), "--out", str(kernels_copy))
    assert r.returncode == 0, r.stdout + r.stderr
    assert _snapshot(kernels_copy) == before  # same bytes everywhere: tf_nn unchanged, nothing removed
    from cesym.define.loss import derivation_files

    assert f"kept {len(derivation_files()) - 1} generated module(s) with no derivation" in r.stdout
    # and with a family really regenerated into a directory of older kernels
    (kernels_copy / "tf_nn.py").write_text("# stale\n")
    assert generate(src, kernels_copy) == ["tf_nn.py"]
    assert _snapshot(kernels_copy) == before


NOT_A_LOSS = {
    # + log(-1): SymPy makes it I*pi; printed, the kernel would compute 1j*numpy.pi
    "log(-1)": (
        "binary_crossentropy.py",
        "import dataclasses\nfrom sympy import log as _log\n"
        "LOSSES[1] = dataclasses.replace(LOSSES[1], value=LOSSES[1].value + _log(-1))\n",
        "binary_crossentropy.logits",
        "not real",
    ),
    # log(p - 2) on probabilities: NaN values, while the derived gradient 1/(p - 2) is finite
    "log(p - 2)": (
        "categorical_crossentropy.py",
        "import dataclasses\n"
        "LOSSES[0] = dataclasses.replace(LOSSES[0], value=LOSSES[0].value + RowSum(log(p - 2)))\n",
        "categorical_crossentropy.probs",
        "not real",
    ),
}


@pytest.mark.parametrize("kind", list(NOT_A_LOSS))
def test_loss_not_real_and_finite_on_its_domain_refused(tmp_path, kernels_copy, kind):
    """The broken family and one that renders before it (``activity_penalty.py``): nothing is
    written although a family was rendered and checked first (the whole catalog: 3 s a case)."""
    fname, code, loss, problem = NOT_A_LOSS[kind]
    src = tmp_path / "derivations"
    src.mkdir()
    for name in ("activity_penalty.py", fname):
        shutil.copy(DERIVATIONS_DIR / name, src / name)
    with open(src / fname, "a") as f:
        f.write(code)
    before = _snapshot(kernels_copy)
    r = _cli("generate", "--derivations", str(src), "--out", str(kernels_copy))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert fname in lines[0] and loss in lines[0] and problem in lines[0], lines[0]
    assert " at " in lines[0] and "=[" in lines[0], lines[0]  # the input point
    assert _snapshot(kernels_copy) == before


def test_domain_check_passes_every_committed_loss():
    from cesym.define.loss import load_all
    from cesym.derive.gradients import derive
    from cesym.generate.domain import check_domain

    for losses in load_all().values():
        for loss in losses:
            check_domain(loss, derive(loss))  # raises on a problem


def test_magnitudes_keep_the_sums_of_the_expression():
    """The float32 rounding test's magnitude of an output is printed beside the output and
    shares its temporaries through ``cse``: a power of a sum that ``Abs`` had rewritten
    (``signsimp``: ``t·(1 - p) + p·u`` as ``p·u - t·(p - 1)``) was a second ``pow`` per element
    (the class-balanced binary focal loss). No magnitude of a committed kernel holds a power
    whose base is one of the output's sums written another way."""
    import importlib

    import sympy as sp

    from cesym.define.loss import load_families
    from cesym.derive.gradients import from_record
    from cesym.generate import codegen
    from cesym.generate.exact import magnitude, needs_magnitude

    checked = 0
    for name, fam in load_families().items():
        mod = importlib.import_module(f"cesym.kernels._generated.{name}")
        for loss in fam.losses:
            d = from_record(loss, mod.DERIVED[loss.variant])
            for box in codegen._boxes(loss, fam.public):
                for e in (d.value, d.grad):
                    if e is None or box is None or not needs_magnitude(e, box):
                        continue
                    own = {p.base for p in e.atoms(sp.Pow) if isinstance(p.base, sp.Add)}
                    new = {p.base for p in magnitude(e, box).atoms(sp.Pow) if isinstance(p.base, sp.Add)} - own
                    assert not [b for b in new if any(sp.expand(b - c) == 0 for c in own)], (name, loss.variant)
                    checked += bool(own)
    assert checked >= 4  # the binary focal losses' (1 - p_t)^γ at least
