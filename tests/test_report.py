"""`cesym report`: the committed reports are what a run measures now (deterministic, not stale)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_committed_reports_are_fresh():
    r = subprocess.run([sys.executable, "-m", "cesym.cli", "report", "--check"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_reports_cover_every_family_and_say_what_was_measured():
    names = {p.name for p in (ROOT / "reports").glob("*.md")}
    families = {p.stem for p in (ROOT / "derivations").glob("*.py")}
    assert names == {f"{f}.md" for f in families} | {"README.md", "seeds.md"}
    index = (ROOT / "reports" / "README.md").read_text()
    assert "keras 3.15.1" in index and "sympy 1.14.0" in index
    cce = (ROOT / "reports" / "categorical_crossentropy.md").read_text()
    for needle in ("$$L =", "Generated code", "709.783", "88.7228", "## Measured in this run", "## Keras"):
        assert needle in cce


def test_every_seed_number_appears_with_its_explanation():
    seeds = (ROOT / "reports" / "seeds.md").read_text()
    for number in (
        "1.2039724588394165", "1.2039728043259361", "1.1918498277664185", "1.1918502562689777",
        "1.2877442836761475", "1.2877442804195713", "66.66667", "0.2899", "0.7803", "50.00%",
        "2.3026", "496111.7812", "733138.9375",
    ):
        assert number in seeds, number
    assert "does NOT hold" not in seeds  # every explanation that is a formula was checked and holds
