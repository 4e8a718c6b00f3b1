"""Files the tool writes (issue 9, item 5): atomic, the mode open() would give, read-only refused.

Every writer goes through cesym.files.write_text: the generated kernels, `verify --json`,
`bench --json/--markdown` (bench.write_atomic) and the reports.
"""

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cesym import bench
from cesym.files import OutputError, write_text

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _in_child(code: str, umask: int) -> None:
    """Run ``code`` in a fresh interpreter under ``umask`` (the test process's umask is left alone)."""
    subprocess.run([sys.executable, "-c", f"import os; os.umask({umask:#o}); {code}"], check=True, env=ENV, cwd=ROOT)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_bench_and_report_writer_use_the_umask(tmp_path, umask):
    p = tmp_path / "x.md"
    _in_child(f"from cesym import bench; bench.write_atomic({str(p)!r}, 'one')", umask)
    assert _mode(p) == 0o666 & ~umask, oct(_mode(p))


def test_generated_kernels_are_readable_by_others(tmp_path):
    """On a shared install other users import cesym.kernels: the kernels must not be 0600 (two
    families: the writing is the same for the catalog, whose generation takes 6 s)."""
    import shutil

    from cesym.define.loss import DERIVATIONS_DIR

    src, out = tmp_path / "two", tmp_path / "gen"
    src.mkdir()
    for name in ("tf_nn.py", "hinge.py"):
        shutil.copy(DERIVATIONS_DIR / name, src / name)
    _in_child(
        "from pathlib import Path; from cesym.generate.codegen import generate; "
        f"generate(Path({str(src)!r}), Path({str(out)!r}))",
        0o022,
    )
    files = sorted(out.glob("*.py"))
    assert [p.name for p in files] == ["__init__.py", "hinge.py", "tf_nn.py"]
    assert all(_mode(p) == 0o644 for p in files), [(p.name, oct(_mode(p))) for p in files]


def test_verify_json_mode(tmp_path):
    out = tmp_path / "v.json"
    code = (
        "import sys; from cesym.cli import main; "
        f"sys.exit(main(['verify', '--quick', '--no-keras', '--jobs', '1', 'activity_penalty', '--json', {str(out)!r}]))"
    )
    _in_child(code, 0o022)
    assert json.loads(out.read_text())["passed"] is True and _mode(out) == 0o644


def test_existing_file_keeps_its_mode(tmp_path):
    p = tmp_path / "x.md"
    p.write_text("old")
    p.chmod(0o640)
    assert write_text(p, "new") and p.read_text() == "new" and _mode(p) == 0o640


def test_read_only_target_is_refused_not_replaced(tmp_path):
    p = tmp_path / "x.md"
    p.write_text("keep me")
    p.chmod(0o444)
    with pytest.raises(OutputError, match="read-only"):
        bench.write_atomic(p, "new")
    assert p.read_text() == "keep me" and [q.name for q in tmp_path.iterdir()] == ["x.md"]


def test_read_only_directory_and_missing_directory(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="read-only"):
            write_text(d / "x.json", "{}")
    finally:
        d.chmod(0o755)
    with pytest.raises(OutputError, match="does not exist"):
        write_text(tmp_path / "missing" / "x.json", "{}")
    assert not (tmp_path / "missing").exists()  # a missing directory is not created
    with pytest.raises(OutputError, match="is a directory"):
        write_text(d, "{}")


def test_skip_unchanged_touches_nothing(tmp_path):
    p = tmp_path / "x.py"
    assert write_text(p, "same", skip_unchanged=True)
    before = p.stat().st_mtime_ns, p.stat().st_ino
    assert not write_text(p, "same", skip_unchanged=True)
    assert (p.stat().st_mtime_ns, p.stat().st_ino) == before


def test_failure_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    p = tmp_path / "x.json"
    p.write_text("old")

    def fail(*a):
        raise KeyboardInterrupt  # as Ctrl-C between writing and renaming

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        write_text(p, "new")
    assert p.read_text() == "old" and [q.name for q in tmp_path.iterdir()] == ["x.json"]


def test_concurrent_writers(tmp_path):
    """Many threads writing one path: it always holds one whole text, and no temporary is left."""
    p = tmp_path / "x.txt"
    texts = [str(i) * 10000 for i in range(16)]
    errors = []

    def work(t):
        try:
            for _ in range(20):
                write_text(p, t)
                assert p.read_text() in texts
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and p.read_text() in texts and [q.name for q in tmp_path.iterdir()] == ["x.txt"]


def test_only_a_noted_interrupt_is_kept_from_the_unraisable_hook(monkeypatch):
    """:func:`cesym.files.quiet_dropped_interrupts` keeps back a dropped KeyboardInterrupt only
    once :func:`on_interrupt` noted it; every other exception Python drops (one in ``__del__``,
    a KeyboardInterrupt no Ctrl-C noted) still reaches the hook that was there before, and that
    hook is back after the block."""
    import signal

    from cesym import files

    class Raises:
        def __init__(self, make):
            self.make = make

        def __del__(self):
            raise self.make()

    def on_ctrl_c():
        files.on_interrupt(signal.SIGINT, None)  # notes it, then raises KeyboardInterrupt

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_type))
    before = sys.unraisablehook
    files.reset_interrupt()
    try:
        with files.quiet_dropped_interrupts():
            Raises(ValueError)  # dropped by Python in __del__: forwarded
            Raises(KeyboardInterrupt)  # not noted: forwarded
            Raises(on_ctrl_c)  # noted: kept back
            Raises(ValueError)  # forwarded after it too
            assert sys.unraisablehook is not before
    finally:
        files.reset_interrupt()
    assert seen == [ValueError, KeyboardInterrupt, ValueError]
    assert sys.unraisablehook is before
