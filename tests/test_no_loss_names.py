"""No module outside ``derivations/`` and the Keras mapping names a loss: everything else reads
the declarations (``PUBLIC``), so a new loss needs its derivation file only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from cesym.define.loss import load_families

ROOT = Path(__file__).resolve().parent.parent
#: The per-loss Keras mapping (and the seed posts' Keras calls): allowed to name losses.
KERAS_MAPPING = {"keras/calls.py", "keras/model.py", "keras/replay.py", "keras/check.py", "keras/forms.py", "report/seeds.py"}


def _names() -> set[str]:
    out: set[str] = set()
    for fam in load_families().values():
        out.add(fam.name)
        out |= {p.name for p in fam.public}
        out |= {l.name for l in fam.losses}
    return out


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _mentions(path: Path, names: set[str], root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            # whole identifiers only: "indices" does not name the dice loss
            hit = sorted(n for n in names if re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", node.value))
        elif isinstance(node, ast.Name):
            hit = [node.id] if node.id in names else []
        elif isinstance(node, ast.Attribute):
            hit = [node.attr] if node.attr in names else []
        else:
            continue
        found += [f"{path.relative_to(root)}:{node.lineno}: {h}" for h in hit]
    return found


def test_no_module_outside_the_derivations_and_the_keras_mapping_names_a_loss():
    names = _names()
    files = [
        p for p in sorted((ROOT / "cesym").rglob("*.py"))
        if "_generated" not in p.parts and p.relative_to(ROOT / "cesym").as_posix() not in KERAS_MAPPING
    ]
    found = [m for p in files for m in _mentions(p, names)]
    assert not found, "\n".join(found)


def test_the_check_finds_a_name(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text('"""binary_crossentropy in a docstring is fine."""\n\ndef f(case):\n    return case.kernel == "binary_crossentropy"\n')
    assert _mentions(bad, _names(), tmp_path) == ["probe.py:4: binary_crossentropy"]
