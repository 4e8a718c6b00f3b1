"""A normal install works (issue 9, item 6): `pip install .` (not editable), run from elsewhere.

The package is built from a copy of the sources (so that the build leaves nothing in the
repository) and installed with `pip install --no-deps --target`; the commands then run from a
directory outside the repository with only that install on the path.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    setuptools = pytest.importorskip("setuptools")  # the build backend (pyproject.toml), built offline
    if tuple(int(x) for x in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.importorskip("wheel")  # bdist_wheel lives in `wheel` before setuptools 70.1
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("cesym", "derivations"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    site = base / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(src)],
        capture_output=True, text=True, cwd=base,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    work = base / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(site)
    env["CESYM_CACHE_DIR"] = str(base / "cache")  # empty: a fresh machine's
    return site, work, env


def _cesym(installed, *args):
    site, work, env = installed
    # the console script pip wrote (its shebang is this interpreter)
    return subprocess.run([sys.executable, str(site / "bin" / "cesym"), *args], capture_output=True, text=True, cwd=work, env=env)


def test_the_install_is_what_runs(installed):
    site, work, env = installed
    r = subprocess.run([sys.executable, "-c", "import cesym; print(cesym.__file__)"], capture_output=True, text=True, cwd=work, env=env)
    assert Path(r.stdout.strip()).resolve().is_relative_to(site.resolve()), r.stdout + r.stderr
    shipped = sorted(p.name for p in (site / "cesym" / "derivations").glob("*.py"))
    assert shipped == sorted(p.name for p in (ROOT / "derivations").glob("*.py"))
    assert (site / "cesym" / "verify" / "prederived.zip").read_bytes() == (ROOT / "cesym" / "verify" / "prederived.zip").read_bytes()


def test_installed_verify_quick(installed):
    r = _cesym(installed, "verify", "--quick", "--no-keras")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "all kernels within the contract" in r.stdout
    # the reference's forms came with the install (cesym.verify.prederived): nothing derived
    assert not list((installed[0].parent / "cache" / "reference").glob("*.py"))


def test_installed_generate_check(installed):
    r = _cesym(installed, "generate", "--check")
    assert r.returncode == 0 and "up to date" in r.stdout, r.stdout + r.stderr


def test_installed_report_check_without_reports(installed):
    """An installed package has no reports/: one line, exit 2 (not a traceback, not 1 = stale)."""
    r = _cesym(installed, "report", "--check")
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no reports directory" in lines[0] and "Traceback" not in r.stderr, r.stderr
