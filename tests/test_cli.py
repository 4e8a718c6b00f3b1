"""Command-line arguments and Ctrl-C (issue 9, item 7).

Every argument and output path is checked before any work: a bad one gives one line on stderr
and exit status 2, nothing on stdout (verify prints its table header before its first
measurement) and nothing created. Ctrl-C stops a command within about a second with one line
and exit status 130, its worker processes included, nothing half-written.
"""

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cesym.cli import main

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _stop_group(p: subprocess.Popen) -> None:
    """Kill what is left of the command's process group (its workers, when a test failed)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    p.wait()


def _run_main(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def paths(tmp_path):
    ro_file = tmp_path / "ro.json"
    ro_file.write_text("keep")
    ro_file.chmod(0o444)
    ro_dir = tmp_path / "rodir"
    ro_dir.mkdir()
    ro_dir.chmod(0o555)
    empty = tmp_path / "empty"
    empty.mkdir()
    yield {"tmp": tmp_path, "ro_file": ro_file, "ro_dir": ro_dir, "missing": tmp_path / "missing" / "x.json", "empty": empty}
    ro_dir.chmod(0o755)


BAD = {
    "verify --points 0": (["verify", "--points", "0"], "--points"),
    "verify --points -5": (["verify", "--points", "-5"], "--points"),
    "verify --points x": (["verify", "--points", "x"], "--points"),
    "verify typo": (["verify", "binary_crossentropy", "nosuchloss"], "nosuchloss"),
    "verify --jobs 0": (["verify", "--jobs", "0"], "--jobs"),
    "verify --seed -1": (["verify", "--seed", "-1"], "--seed"),
    "bench --seed -1": (["bench", "--seed", "-1"], "--seed"),
    "verify --json missing parent": (["verify", "--json", "{missing}"], "does not exist"),
    "verify --json directory": (["verify", "--json", "{tmp}"], "is a directory"),
    "verify --json read-only file": (["verify", "--json", "{ro_file}"], "read-only"),
    "verify --json read-only directory": (["verify", "--json", "{ro_dir}/x.json"], "read-only"),
    "report --jobs 0": (["report", "--jobs", "0"], "--jobs"),
    "report --out read-only": (["report", "--out", "{ro_dir}"], "read-only"),
    "report --out missing parent": (["report", "--out", "{missing}"], "no such directory"),
    "report --check --out missing": (["report", "--check", "--out", "{tmp}/nothing"], "no such reports directory"),
    "report --no-measure without --check": (["report", "--no-measure"], "--no-measure goes with --check"),
    "bench --rows 0": (["bench", "--rows", "0"], "--rows"),
    "bench --only typo": (["bench", "--only", "nosuchloss"], "nosuchloss"),
    "bench --json missing parent": (["bench", "--quick", "--json", "{missing}"], "does not exist"),
    "bench --markdown directory": (["bench", "--quick", "--markdown", "{tmp}"], "is a directory"),
    "bench --markdown read-only": (["bench", "--quick", "--markdown", "{ro_file}"], "read-only"),
    "generate --derivations empty": (["generate", "--derivations", "{empty}"], "no derivation files"),
    "generate --out read-only": (["generate", "--out", "{ro_dir}"], "read-only"),
    "generate --out missing parent": (["generate", "--out", "{tmp}/a/b"], "no such directory"),
}


#: A refusal takes an interpreter start and an import; a command that went ahead with the work
#: (a full verify, report or bench) takes minutes and is stopped here.
REFUSED_WITHIN = 30


@pytest.mark.parametrize("case", list(BAD))
def test_bad_argument_refused_before_any_work(case, paths):
    argv, expected = BAD[case]
    argv = [a.format(**paths) for a in argv]
    before = sorted(p.name for p in paths["tmp"].iterdir())
    p = subprocess.Popen(
        [sys.executable, "-m", "cesym.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=ENV, cwd=paths["tmp"], start_new_session=True,
    )
    try:
        out, err = p.communicate(timeout=REFUSED_WITHIN)
    except subprocess.TimeoutExpired:
        pytest.fail(f"cesym {' '.join(argv)}: not refused, still working after {REFUSED_WITHIN} s")
    finally:
        _stop_group(p)
    assert p.returncode == 2, (p.returncode, out[-1000:], err[-1000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and lines[0].startswith("cesym"), err
    assert out == ""  # refused before the first measurement (verify prints its header first)
    assert sorted(p.name for p in paths["tmp"].iterdir()) == before  # nothing created
    assert paths["ro_file"].read_text() == "keep"


def test_exit_codes_are_distinct(tmp_path, capsys):
    """0 ok, 1 stale (--check), 2 usage. On two families (the whole catalog's ``generate --check``
    is tests/test_generate.py's and tests/test_install.py's: 7 s a run, twice here before)."""
    import shutil

    from cesym.define.loss import DERIVATIONS_DIR

    src, out = tmp_path / "two", tmp_path / "gen"
    src.mkdir()
    for name in ("tf_nn.py", "hinge.py"):
        shutil.copy(DERIVATIONS_DIR / name, src / name)
    assert _run_main(["generate", "--derivations", str(src), "--out", str(out)], capsys)[0] == 0
    assert _run_main(["generate", "--check", "--derivations", str(src), "--out", str(out)], capsys)[0] == 0
    (out / "tf_nn.py").write_text("# stale\n")
    assert _run_main(["generate", "--check", "--derivations", str(src), "--out", str(out)], capsys)[0] == 1
    assert _run_main(["generate", "--derivations", str(tmp_path / "none")], capsys)[0] == 2


# --- Ctrl-C --------------------------------------------------------------------------------------

#: Seconds from SIGINT to exit. "About a second": the work stops at once (workers terminated),
#: the margin is for a loaded 2-core machine; today's main takes 31-57 s for verify.
STOP_WITHIN = 3.0


def _interrupt(argv, started, tmp_path, delay=0.0, watch="stdout"):
    """Start ``cesym argv``, wait until ``started(line)`` holds for a line of ``watch`` (stdout
    or stderr: the work is under way), send SIGINT, and return (exit status, seconds to stop,
    stdout, stderr, the command's child processes just before the signal, those of them still
    alive after it)."""
    # Python's own SIGINT handler, as under a terminal: a test run started in the background
    # by a non-interactive shell (nohup, `cmd &`) inherits SIGINT ignored, and cesym honours that
    code = (
        "import signal, sys, cesym.cli; signal.signal(signal.SIGINT, signal.default_int_handler); "
        f"print('ready', flush=True); cesym.cli.console({argv!r})"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path,
        start_new_session=True,
    )
    lines = []
    try:
        for line in p.stdout if watch == "stdout" else p.stderr:
            lines.append(line)
            if started(line):
                break
        else:
            pytest.fail("the command ended before it was interrupted: " + "".join(lines) + p.stderr.read())
        time.sleep(delay)
        kids = _children_of(p.pid)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        seconds = time.monotonic() - t0
        time.sleep(0.2)
        survivors = [k for k in kids if _alive(k)]  # before the clean-up below kills them
        if watch == "stdout":
            out = "".join(lines) + out
        else:
            err = "".join(lines) + err
        return p.returncode, seconds, out, err, kids, survivors
    finally:
        _stop_group(p)


def test_the_program_is_console():
    """The interrupt tests run :func:`cesym.cli.console`, what the installed ``cesym`` runs."""
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"cesym": "cesym.cli:console"}


def _children_of(pid: int) -> list[int]:
    """Child process ids of ``pid`` (Linux /proc; empty elsewhere)."""
    kids = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat_file.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("jobs", [2, 1])
def test_ctrl_c_stops_verify(tmp_path, jobs):
    out = tmp_path / "v.json"
    argv = ["verify", "--no-keras", "--points", "3000", "--jobs", str(jobs), "--json", str(out)]
    # the first result line: the (worker) processes are in the middle of the run
    code, seconds, stdout, stderr, kids, survivors = _interrupt(
        argv, lambda line: line.startswith("binary_crossentropy"), tmp_path
    )
    assert code == 130, (code, stderr[-2000:])
    if jobs > 1 and Path("/proc").is_dir():
        assert len(kids) >= jobs and not survivors  # the workers were running, and are gone
    assert seconds < STOP_WITHIN, seconds
    assert stderr.strip().splitlines() == ["cesym verify: interrupted"], stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no JSON, no temporary file


def test_ctrl_c_stops_generate_report_bench(tmp_path):
    """The bench is interrupted at its first timing (its progress line, on stderr), not a fixed
    delay after the start: it imports TensorFlow first, about 4.6 s on a 2-core AMD EPYC VM
    (2026-12-07), and a SIGINT that lands while TensorFlow's shared libraries load waits for
    them (CI once saw 6.7 s)."""
    gen, rep, js = tmp_path / "gen", tmp_path / "rep", tmp_path / "b.json"
    ready = lambda line: line.startswith("ready")  # noqa: E731
    for argv, delay, started, watch in (
        (["generate", "--out", str(gen)], 0.5, ready, "stdout"),
        (["report", "--out", str(rep), "--no-keras", "--jobs", "2"], 1.0, ready, "stdout"),
        (["bench", "--quick", "--no-sweep", "--only", "binary_crossentropy", "--json", str(js)], 0.0,
         lambda line: line.startswith("cesym bench ["), "stderr"),
    ):
        code, seconds, stdout, stderr, _, _ = _interrupt(argv, started, tmp_path, delay, watch)
        assert code == 130, (argv, code, stdout[-1000:], stderr[-2000:])
        assert seconds < STOP_WITHIN, (argv, seconds)
        assert stderr.strip().splitlines()[-1] == f"cesym {argv[0]}: interrupted" and "Traceback" not in stderr, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, nothing half-written


def test_a_ctrl_c_dropped_while_the_pool_forks_stops_the_run():
    """A SIGINT whose handler runs inside an at-fork hook (logging's lock release in the parent,
    while the pool forks its workers) raises a KeyboardInterrupt Python prints as "Exception
    ignored" and drops: CI once saw ``report --jobs 2`` run on for over a minute after its
    Ctrl-C. The interrupt the command line noted stops the run before the first task ends."""
    import multiprocessing as mp
    import signal

    from cesym import files
    from cesym.verify import processes

    real = mp.get_context("fork")

    class Forking:
        def Pool(self, *args, **kwargs):
            pool = real.Pool(*args, **kwargs)
            try:  # the command's handler, run inside the hook...
                files.on_interrupt(signal.SIGINT, None)
            except KeyboardInterrupt:  # ...whose exception Python drops
                pass
            return pool

    files.reset_interrupt()
    before = set(mp.active_children())
    t0 = time.monotonic()
    try:
        with pytest.MonkeyPatch.context() as mpatch:
            mpatch.setattr(mp, "get_context", lambda method=None: Forking())
            with pytest.raises(KeyboardInterrupt):
                list(processes.imap(time.sleep, [20.0] * 4, jobs=2))
        assert time.monotonic() - t0 < 10.0  # not 40 s: the tasks' own time
        assert set(mp.active_children()) <= before  # the workers stopped
        # one process, the same: the next task does not start
        with pytest.raises(KeyboardInterrupt):
            list(processes.imap(time.sleep, [20.0], jobs=1))
    finally:
        files.reset_interrupt()
    assert list(processes.imap(abs, [-1, -2], jobs=2)) == [1, 2]  # and without one, the run goes on


def test_a_ctrl_c_dropped_before_a_timing_stops_the_bench():
    """The bench, too, stops at its next timing on a Ctrl-C the command line noted, one whose
    KeyboardInterrupt Python dropped included (nothing is timed after it)."""
    import signal

    from cesym import bench, files

    cfg = bench.Config.quick_config(only=["binary_crossentropy"], sweep=False, shapes=False)
    files.reset_interrupt()
    try:
        try:  # the command's handler, run where Python drops its exception
            files.on_interrupt(signal.SIGINT, None)
        except KeyboardInterrupt:
            pass
        lines = io.StringIO()
        with pytest.raises(KeyboardInterrupt):
            bench._run(cfg, lines, {}, time.perf_counter())
        assert lines.getvalue() == ""  # not one timing started
    finally:
        files.reset_interrupt()


def test_a_ctrl_c_inside_compiled_code_is_an_interrupt(tmp_path, monkeypatch, capsys):
    """The Ctrl-C's KeyboardInterrupt raised while a Numba-compiled loop runs comes out of it
    as "SystemError: CPUDispatcher(...) returned a result with an exception set" (CI saw
    ``verify --jobs 1`` exit 2 with an internal error): with the interrupt noted, that is an
    interrupt (130, one line), and the same error without one is still an internal error (2)."""
    import signal

    from cesym import cli
    from cesym.verify import run

    def compiled_loop_interrupted(*args, **kwargs):
        try:
            signal.raise_signal(signal.SIGINT)  # cesym's handler notes it and raises
        except KeyboardInterrupt as e:
            raise SystemError("CPUDispatcher(<function _finish>) returned a result with an exception set") from e

    def broken(*args, **kwargs):
        raise SystemError("CPUDispatcher(<function _finish>) returned a result with an exception set")

    out = tmp_path / "v.json"
    argv = ["verify", "--quick", "--no-keras", "--jobs", "1", "--json", str(out)]
    monkeypatch.setattr(run, "run", compiled_loop_interrupted)
    assert cli.main(argv) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["cesym verify: interrupted"]
    monkeypatch.setattr(run, "run", broken)
    assert cli.main(argv) == 2
    assert "internal error: SystemError" in capsys.readouterr().err
    assert not out.exists()


def test_a_ctrl_c_python_drops_still_stops_the_command(tmp_path, monkeypatch, capsys):
    """A KeyboardInterrupt raised inside a weakref callback (importlib's module locks run one on
    every import) is printed and dropped by Python: the command goes on. cesym notes the Ctrl-C
    as well, so it still exits 130 and writes nothing after it (CI caught `cesym generate`
    finishing with status 0 after a Ctrl-C that landed in an import). The dropped exception is
    not printed either ("Exception ignored in ..." and a traceback above "interrupted": CI saw
    one from an at-fork hook): it never reaches the unraisable hook the command found."""
    import signal
    import weakref

    from cesym import cli
    from cesym.generate import codegen

    real = codegen.render_all

    def render_all_dropping_a_ctrl_c(*args, **kwargs):
        class Doomed:
            pass

        doomed = Doomed()
        ref = weakref.ref(doomed, lambda _: signal.raise_signal(signal.SIGINT))  # raised inside the callback
        del doomed
        assert ref() is None
        return real(*args, **kwargs)

    import shutil

    from cesym.define.loss import DERIVATIONS_DIR

    src, out = tmp_path / "two", tmp_path / "gen"  # two families: the mechanism, not the catalog
    src.mkdir()
    for name in ("tf_nn.py", "hinge.py"):
        shutil.copy(DERIVATIONS_DIR / name, src / name)
    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)  # where Python would print it
    monkeypatch.setattr(codegen, "render_all", render_all_dropping_a_ctrl_c)
    assert cli.main(["generate", "--derivations", str(src), "--out", str(out)]) == 130
    assert dropped == [] and sys.unraisablehook == dropped.append  # none printed; the hook put back
    assert capsys.readouterr().err.strip().splitlines() == ["cesym generate: interrupted"]
    assert not out.exists() or not any(out.iterdir())
    monkeypatch.undo()
    assert cli.main(["generate", "--derivations", str(src), "--out", str(out)]) == 0  # the next command starts afresh
    assert sorted(p.name for p in out.glob("*.py")) == ["__init__.py", "hinge.py", "tf_nn.py"]


def test_an_unexpected_error_in_generate_says_where_in_cesym(tmp_path, monkeypatch, capsys):
    """A failure that is not the derivation's (an IndexError out of cesym's own code) stays one
    line, exit 2, and names the innermost cesym frame it passed through: "IndexError: list index
    out of range" alone was all a user could report."""
    import shutil

    from cesym.define.loss import DERIVATIONS_DIR
    from cesym.generate import codegen

    def broken(*args, **kwargs):
        return [][0]

    src = tmp_path / "one"
    src.mkdir()
    shutil.copy(DERIVATIONS_DIR / "hinge.py", src / "hinge.py")
    monkeypatch.setattr(codegen, "render_all", broken)
    code, out, err = _run_main(["generate", "--derivations", str(src), "--out", str(tmp_path / "gen")], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "IndexError: list index out of range (in cesym/generate/codegen.py:" in lines[0] and ", generate)" in lines[0], lines[0]
