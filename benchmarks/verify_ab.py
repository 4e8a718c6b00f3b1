"""`cesym verify` at two git revisions, timed in turns: what a change to the verifier costs or saves.

Each revision runs from its own worktree (a detached checkout in a temporary directory) with its
own code cache, warmed by one untimed run first: the cache's keys hold the sources of
``cesym/verify/reference.py``, ``balls.py`` and ``cesym/define/evaluate.py``, so the first run
after a change to one of them derives every reference's printed forms again (tens of seconds
that a timing would otherwise charge to the change). Every timed run starts with an empty truths
cache (the balls' numbers kept between runs), as a fresh machine does. The runs alternate
A, B, A, B, ...: this VM's speed drifts by up to 1.5x within the hour, and turns keep a pair
fair where they cannot keep a time.

Prints, per run, wall and CPU seconds (the command and its workers) and the sum of its
configurations' seconds; per kernel, each revision's mean of those; and whether the two
revisions' JSON agree in everything but timings (a speed change should change no number;
condition numbers are claimed to 2^-10, and their last bits can move with the first tier's
batches: those differences are listed, not hidden).

    python benchmarks/verify_ab.py REV_A REV_B [--repeat N] [--keep DIR] [-- VERIFY_ARGS ...]

e.g. ``python benchmarks/verify_ab.py main~1 main -- categorical_focal_crossentropy --jobs 1``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAIN = "import sys; from cesym.cli import main; sys.exit(main())"


def _worktree(rev: str, where: Path) -> Path:
    path = where / f"rev-{rev.replace('/', '_').replace('~', '-')}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), rev], check=True)
    return path


def _run(tree: Path, code_cache: Path, scratch: Path, args: list[str], tag: str) -> dict:
    """One ``cesym verify --json`` in ``tree``: a fresh truths cache beside the shared code cache."""
    run_dir = scratch / tag
    shutil.rmtree(run_dir, ignore_errors=True)
    (run_dir / "c").mkdir(parents=True)
    (run_dir / "c" / "reference").symlink_to(code_cache, target_is_directory=True)
    out = run_dir / "out.json"
    env = dict(os.environ, CESYM_CACHE_DIR=str(run_dir / "c"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", MAIN, "verify", *args, "--json", str(out)], cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode not in (0, 1) or not out.exists():
        raise SystemExit(f"{tag}: cesym verify exited {r.returncode}\n{r.stderr[-2000:]}")
    data = json.loads(out.read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "exit": r.returncode, "json": data}


def _kernel_seconds(data: dict) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for c in data["configurations"]:
        out[c["kernel"]] += c["seconds"]
    return out


def _paths(a, b, at: str) -> list[str]:
    """The leaves where two JSON values differ, as ``path: A -> B``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in _paths(a.get(k), b.get(k), f"{at}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _paths(x, y, f"{at}[{i}]")]
    return [] if a == b else [f"{at}: {str(a)[:90]} -> {str(b)[:90]}"]


def _differences(a: dict, b: dict) -> list[str]:
    """Where two runs' configurations differ in anything but their seconds."""
    diffs = []
    ka = {(c["kernel"], c["dtype"], c["labels"]): c for c in a["configurations"]}
    for c in b["configurations"]:
        key = (c["kernel"], c["dtype"], c["labels"])
        o = ka.get(key)
        if o is None:
            diffs.append(f"{key}: only in B")
            continue
        diffs += _paths({k: v for k, v in o.items() if k != "seconds"}, {k: v for k, v in c.items() if k != "seconds"}, "/".join(key))
    diffs += [f"{k}: only in A" for k in ka.keys() - {(c["kernel"], c["dtype"], c["labels"]) for c in b["configurations"]}]
    return diffs


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, verify_args = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rev_a")
    ap.add_argument("rev_b")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per revision (default 2)")
    ap.add_argument("--keep", metavar="DIR", help="copy each timed run's JSON into DIR (A1.json, B1.json, ...)")
    opts = ap.parse_args(ours)
    scratch = Path(tempfile.mkdtemp(prefix="verify-ab-"))
    keep = Path(opts.keep) if opts.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    trees = {}
    try:
        for name, rev in (("A", opts.rev_a), ("B", opts.rev_b)):
            trees[name] = _worktree(rev, scratch)
            cache = scratch / f"code-{name}"
            cache.mkdir()
            print(f"{name} = {rev}: warming its code cache (untimed)", flush=True)
            _run(trees[name], cache, scratch, verify_args, f"warm-{name}")
        runs: dict[str, list[dict]] = {"A": [], "B": []}
        for i in range(opts.repeat):
            for name in ("A", "B"):
                res = _run(trees[name], scratch / f"code-{name}", scratch, verify_args, f"{name}{i + 1}")
                runs[name].append(res)
                if keep is not None:
                    (keep / f"{name}{i + 1}.json").write_text(json.dumps(res["json"], indent=1))
                total = sum(_kernel_seconds(res["json"]).values())
                print(f"{name}{i + 1}: {res['wall']:.1f} s wall, {res['cpu']:.1f} s CPU, configurations {total:.1f} s, exit {res['exit']}", flush=True)
        print(f"\n{'kernel':<76} {'A':>8} {'B':>8}")
        means = {n: defaultdict(float) for n in runs}
        for n, rs in runs.items():
            for res in rs:
                for k, s in _kernel_seconds(res["json"]).items():
                    means[n][k] += s / len(rs)
        for k in sorted(means["A"], key=lambda k: -means["A"][k]):
            print(f"{k[:76]:<76} {means['A'][k]:8.1f} {means['B'].get(k, float('nan')):8.1f}")
        print(f"{'all':<76} {sum(means['A'].values()):8.1f} {sum(means['B'].values()):8.1f}")
        diffs = _differences(runs["A"][0]["json"], runs["B"][0]["json"])
        print("\nA and B agree in everything but timings" if not diffs else f"\nA and B differ in {len(diffs)} field(s):\n  " + "\n  ".join(diffs[:40]))
        return 0
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
