"""The ``cesym`` command: generate kernels from ``derivations/``, verify them against mpmath."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import NoReturn

from . import files as _files
from .files import OutputError, check_output_dir, check_output_file

__all__ = ["console", "main"]


def _generate(args: argparse.Namespace) -> int:
    from .define.loss import DerivationError
    from .generate.codegen import generate, orphans
    from .rewrite.rules import RewriteError

    try:
        changed = _generate_and_prederive(args, generate)
    except (DerivationError, RewriteError) as e:
        raise UsageError(_one_line(e)) from None
    except (OutputError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - any failure of SymPy on a derivation: one line, no traceback
        raise UsageError(f"{type(e).__name__}: {_one_line(e)}{_where(e)}") from None
    kept = orphans(args.derivations, args.out)
    if kept:
        print(f"cesym generate: kept {len(kept)} generated module(s) with no derivation in {args.derivations}: "
              f"{', '.join(kept)} (generate never removes a module; delete it by hand if unwanted)")
    return _changes("generate", "generated kernels", changed, args.out, args.check)


def _generate_and_prederive(args: argparse.Namespace, generate) -> list[str]:
    """``generate`` and, for the shipped kernels (the default directories, never a user's), the
    reference's forms shipped with them (:mod:`cesym.verify.prederived`): those ``cesym verify``
    asks for and what this rendering compiled, written or checked."""
    from .define.loss import DERIVATIONS_DIR
    from .generate.codegen import GENERATED_DIR
    from .verify import codecache, prederived

    if Path(args.derivations).resolve() != DERIVATIONS_DIR.resolve() or Path(args.out).resolve() != GENERATED_DIR.resolve():
        return generate(args.derivations, args.out, check=args.check)
    with codecache.record() as compiled:
        changed = generate(args.derivations, args.out, check=args.check)
    stale = prederived.stale(generated=compiled) if args.check else prederived.write(generated=compiled)
    return changed + ([prederived.ARCHIVE.name] if stale else [])


def _changes(command: str, what: str, changed: list[str], out: Path, check: bool) -> int:
    """Say what ``cesym <command>`` changed, or with ``check`` what is stale (exit 1)."""
    if check:
        if changed:
            print(f"cesym {command} --check: stale {what}: {', '.join(changed)} (run `cesym {command}`)")
            return 1
        print(f"cesym {command} --check: {what} in {out} are up to date")
        return 0
    print(f"cesym {command}: {len(changed)} file(s) written" + (f": {', '.join(changed)}" if changed else " (up to date)"))
    return 0


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _where(e: BaseException) -> str:
    """`` (in cesym/…/file.py:line, function)``: the innermost frame of cesym's own code an
    unexpected exception passed through (an IndexError alone says nothing a report can act on)."""
    import traceback

    package = Path(__file__).resolve().parent
    frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename).resolve().is_relative_to(package)]
    if not frames:
        return ""
    f = frames[-1]
    return f" (in cesym/{Path(f.filename).resolve().relative_to(package)}:{f.lineno}, {f.name})"


def _exhaustive(args: argparse.Namespace) -> int:
    import json

    from .verify import exhaustive

    def ended(done: list) -> None:
        for s in done:
            print(exhaustive.describe(s), flush=True)
        if args.record:  # each sweep as it ends: an interrupted run keeps what it finished
            for path in exhaustive.record(done):
                print(f"cesym verify: wrote {path}", flush=True)

    summaries = exhaustive.run_settings(
        args.settings, directory=args.derivations, jobs=args.jobs, limit=tuple(args.range) if args.range else None,
        progress=lambda m: print(f"  ... {m}", file=sys.stderr, flush=True), on_sweep=ended,
    )
    if args.json:
        from .files import write_text

        write_text(args.json, json.dumps([s.as_json() for s in summaries], indent=1, allow_nan=False, default=str) + "\n", what="--json")
        print(f"cesym verify: wrote {args.json}")
    bad = sum(s.not_correctly_rounded for s in summaries)
    unresolved = sum(len(s.unresolved) for s in summaries)
    print(
        f"cesym verify --exhaustive: {sum(s.inputs for s in summaries)} inputs in {len(summaries)} setting(s); "
        f"{bad} not correctly rounded; {unresolved} unresolved"
    )
    return 1 if unresolved else 0


def _print_points(failures: list, unresolved_at: list, shown: int = 3) -> None:
    """The first failures and unresolved points of a result, and how many failures are not shown."""
    for f in failures[:shown]:
        print(f"    FAIL {f}", flush=True)
    if len(failures) > shown:
        print(f"    ... and {len(failures) - shown} more (all of them: --json)", flush=True)
    for u in unresolved_at[:shown]:
        print(f"    UNRESOLVED at {u}", flush=True)


def _extremes(args: argparse.Namespace) -> int:
    """``cesym verify --extremes``: the grid of extreme finite rows (:mod:`cesym.verify.extremes`)."""
    import contextlib
    import json

    from .verify import extremes
    from .verify.registry import CASES

    cases = [c for c in (args.cases if args.cases is not None else CASES) if not args.names or c.kernel in args.names or c.loss in args.names]
    results, failed = [], 0
    with contextlib.closing(extremes.check_cases(cases, args.jobs)) as per_case:
        for r in (r for per in per_case for r in per):
            results.append(r)
            failed += len(r.failures)
            params = ",".join(f"{k}={v:g}" for k, v in r.params.items())
            undefined = f"  {r.undefined:>4} undefined" if r.undefined else ""
            print(f"{r.kernel:<52} {r.dtype:<7} {params:<40} {r.points:>6} rows  {len(r.failures):>5} outside  "
                  f"{r.unresolved:>4} unresolved{undefined}  ({r.seconds:.1f}s)", flush=True)
            _print_points(r.failures, r.unresolved_at)
            for u in r.undefined_at[:1]:
                print(f"    undefined (NaN, as the definition at every precision) e.g. at {u}", flush=True)
    if args.json:
        from dataclasses import asdict

        from .files import write_text

        write_text(args.json, json.dumps([asdict(r) for r in results], indent=1, allow_nan=False) + "\n", what="--json")
    unresolved, undefined = sum(r.unresolved for r in results), sum(r.undefined for r in results)
    print(f"cesym verify --extremes: {sum(r.points for r in results)} rows in {len(results)} setting(s); "
          f"{failed} output(s) outside the contract; {unresolved} unresolved"
          + (f"; {undefined} undefined (NaN from the kernel, an indeterminate definition at every precision)" if undefined else "")
          + (" (those points are not proven: exit 1)" if unresolved else ""), flush=True)
    return 1 if failed or unresolved else 0


def _verify(args: argparse.Namespace) -> int:
    import json

    from .verify import run as verify

    if args.exhaustive:
        return _exhaustive(args)
    if args.extremes:
        return _extremes(args)

    header = (
        f"{'kernel':<52} {'dtype':<7} {'labels':<8} {'points':>6} {'value max':>9} {'grad max':>9} "
        f"{'of bound v/g':>13} {'naive v/g max':>17} {'outside':>7} {'fail':>4} {'unres':>5} {'d/dx':>7}"
    )
    print(header, flush=True)

    def show(c: "verify.Config") -> None:
        def mx(d, key):
            return d[key]["max"] if d.get(key) else 0.0

        naive = f"{mx(c.naive, 'value_ulps'):.2g}/{mx(c.naive, 'grad_ulps'):.2g}"
        def sh(key):  # "-": no error beyond the κ-free part of the bound
            d = c.stable.get(key)
            return "-" if not d else f"{d['max']:.2g}"

        share = f"{sh('value_share')}/{sh('grad_share')}"
        print(
            f"{c.kernel:<52} {c.dtype:<7} {c.labels:<8} {c.points:>6} {mx(c.stable, 'value_ulps'):>9.3g} "
            f"{mx(c.stable, 'grad_ulps'):>9.3g} {share:>13} {naive:>17} {c.naive_outside:>7} {len(c.failures):>4} "
            f"{c.unresolved:>5} {c.grad_vs_mpmath_diff or 0:>7.1g}  ({c.seconds:.1f}s{'' if c.judged else ', verdict kept'})",
            flush=True,
        )
        if c.keras:
            k = c.keras
            print(
                f"    keras: value exact/explained/unexplained {k['value']['exact']}/{k['value']['explained']}/"
                f"{k['value']['unexplained']}, grad {k['grad']['exact']}/{k['grad']['explained']}/"
                f"{k['grad']['unexplained']}; max ulps from the mathematics {k['value_max_ulps']:.3g} / {k['grad_max_ulps']:.3g}",
                flush=True,
            )
        if c.extended:
            x = c.extended
            print(f"    extended reals (±inf, 0/1, NaN): {x['points']} points, {x['failures']} off their limits, {x['unresolved']} unresolved", flush=True)
        _print_points(c.failures, c.unresolved_at)

    with_keras = args.keras and _have_tensorflow()
    configs = verify.run(
        args.names, points=args.points, quick=args.quick, seed=args.seed, progress=show, jobs=args.jobs,
        keras=with_keras, cases=args.cases,
    )
    env = verify.environment(keras=with_keras)
    floor = env["host_floor_ulps"]
    print(
        "host floor (max ulps of NumPy exp/log/log1p/expm1): "
        + "; ".join(f"{dt}: " + ", ".join(f"{k} {v['max_ulps']:.2f}" for k, v in fl.items()) for dt, fl in floor.items())
        + f"; SIMD {', '.join(env['simd']['dispatch'])}"
    )
    failed = sum(len(c.failures) for c in configs)
    unresolved = sum(c.unresolved for c in configs)
    if args.json:
        from .files import write_text

        write_text(args.json, json.dumps(verify.to_json(configs, env), indent=1, sort_keys=True, allow_nan=False) + "\n", what="--json")
        print(f"cesym verify: wrote {args.json}")
    print(
        "cesym verify: "
        + ("all kernels within the contract" if not failed else f"{failed} point(s) outside the contract")
        + f"; {unresolved} reference value(s) unresolved"
        + (" (those points are not proven: exit 1)" if unresolved else "")
        + (f"; {kept} of {len(configs)} verdicts kept from an earlier run that measured the same outputs with the same checker" if (kept := sum(not c.judged for c in configs)) else "")
        + "; columns: max ulps of the stable kernel, its largest error as a share of the contract's "
        "bound (error / (base + 4κ); <= 1 is within) among errors above base (4 or 8 ulps; '-': none), max ulps of the naive form, naive points outside the "
        "contract, failures, unresolved references, max relative difference of the symbolic "
        "gradient from mpmath.diff"
    )
    return 1 if failed or unresolved else 0


def _report(args: argparse.Namespace) -> int:
    from .report.render import write_reports

    changed = write_reports(
        args.out, check=args.check, jobs=args.jobs, keras=args.keras and _have_tensorflow(), derivations=args.derivations,
        remeasure=args.measure,
    )
    return _changes("report", "reports", changed, args.out, args.check)


def _bench(args: argparse.Namespace) -> int:
    """Time every kernel against Keras eager, XLA, tf.nn and the naive form; exit 0 whatever the timings."""
    from . import bench
    from .files import write_texts

    over = dict(rows=args.rows, classes=args.classes, repeats=args.repeats, only=tuple(args.only or ()), seed=args.seed)
    over["dtypes"] = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    if args.no_sweep:
        over["sweep"] = False
    if args.no_shapes:
        over["shapes"] = False
    if args.shapes_only:
        over["tables"] = False
    cfg = bench.Config.quick_config(**over) if args.quick else bench.Config(**{k: v for k, v in over.items() if v is not None})
    res = bench.run(cfg)
    print(bench.format_text(res), end="")
    files = {}
    if args.markdown:
        files[Path(args.markdown)] = bench.format_markdown(res)
    if args.json:
        files[Path(args.json)] = bench.to_json(res)
    write_texts(files, skip_unchanged=False)  # one step: both or neither on Ctrl-C
    for p in files:
        print(f"cesym bench: wrote {p}")
    return 0


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return n


def _seed(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if n < 0:  # numpy's SeedSequence takes non-negative integers only
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return n


def _have_tensorflow() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None and importlib.util.find_spec("keras") is not None


class UsageError(Exception):
    """A usage or environment error: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (``cesym verify: argument --points: ...``), exit 2."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: {_one_line(message)} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _check_generate(args: argparse.Namespace) -> None:
    from .define.loss import DERIVATIONS_DIR, DerivationError, derivation_files
    from .generate.codegen import GENERATED_DIR

    args.derivations = Path(args.derivations) if args.derivations else DERIVATIONS_DIR
    args.out = Path(args.out) if args.out else GENERATED_DIR
    try:
        derivation_files(args.derivations)
    except DerivationError as e:
        raise UsageError(_one_line(e)) from None
    if not args.check:
        check_output_dir(args.out, "--out")


def _check_verify(args: argparse.Namespace) -> None:
    from .define.loss import DerivationError
    from .verify.registry import CASES, load_cases

    args.cases = None
    if args.derivations:
        try:
            args.cases = load_cases(Path(args.derivations))
        except DerivationError as e:
            raise UsageError(_one_line(e)) from None
    cases = args.cases if args.cases is not None else CASES
    known = {c.kernel for c in cases} | {c.loss for c in cases}
    if args.exhaustive:  # one variant by its id, as its record names it: binary_crossentropy[from_logits=True]
        known |= {c.id for c in cases}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        raise UsageError(
            f"unknown kernel name(s): {', '.join(unknown)} (known: {', '.join(sorted({c.kernel for c in cases}))})"
        )
    if args.json:
        check_output_file(args.json, "--json")
    exhaustive_only = [o for o in ("label", "range") if getattr(args, o)] + (["param"] if args.param else []) + (["record"] if args.record else [])
    if exhaustive_only and not args.exhaustive:
        raise UsageError(f"--{exhaustive_only[0]} goes with --exhaustive")
    if args.extremes and (args.exhaustive or args.quick or args.points):
        raise UsageError("--extremes checks a fixed grid: not with " + ("--exhaustive" if args.exhaustive else "--quick" if args.quick else "--points"))
    if args.exhaustive:
        _check_exhaustive(args, cases)
        if args.record and (args.derivations or args.range):
            raise UsageError("--record writes the shipped kernels' whole runs into reports/exhaustive/: not with "
                             + ("--derivations" if args.derivations else "--range (part of the inputs)"))


def _check_exhaustive(args: argparse.Namespace, cases) -> None:
    from .verify.exhaustive import eligible, settings_for

    if not args.names:
        raise UsageError("--exhaustive needs the kernel name(s) to run")
    params = {}
    for item in args.param:
        name, eq, value = item.partition("=")
        try:
            params[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--param: expected NAME=VALUE with a number, got {item!r}") from None
        if not eq or not math.isfinite(params[name.strip()]):
            raise UsageError(f"--param: expected NAME=VALUE with a finite number, got {item!r}")
    if args.range and not (args.range[0] <= args.range[1]):
        raise UsageError(f"--range: expected LO <= HI, got {args.range[0]} {args.range[1]}")
    if args.label and not all(math.isfinite(x) for x in args.label):
        raise UsageError("--label: expected finite numbers")
    what = ("value", "grad") if args.output == "both" else (args.output,)
    settings = []
    for name in args.names:
        chosen = [c for c in cases if name in (c.id, c.kernel, c.loss)]
        ok = [c for c in chosen if eligible(c) is None]
        if not ok:
            raise UsageError(f"--exhaustive {name}: not a kernel of one float input ({eligible(chosen[0]) if chosen else 'unknown'})")
        for c in ok:
            try:
                settings += settings_for(c, args.label, params, what, directory=args.derivations)
            except ValueError as e:
                raise UsageError(f"--exhaustive {name}: {e}") from None
    args.settings = settings


def _check_report(args: argparse.Namespace) -> None:
    from .define.loss import DerivationError, derivation_files
    from .report.render import REPORTS_DIR

    if args.derivations:
        args.derivations = Path(args.derivations)
        if args.out is None:
            raise UsageError("--derivations needs --out DIR: the reports of your own losses go in a directory of your choice")
        try:
            derivation_files(args.derivations)
        except DerivationError as e:
            raise UsageError(_one_line(e)) from None
    if args.out is None and not REPORTS_DIR.is_dir():
        raise UsageError(
            f"no reports directory: {REPORTS_DIR} does not exist (an installed cesym has none; "
            "run from a source checkout or pass --out DIR)"
        )
    if not args.measure and not args.check:
        raise UsageError("--no-measure goes with --check: writing the reports needs a fresh measurement")
    args.out = Path(args.out) if args.out else REPORTS_DIR
    if args.check:
        if not args.out.is_dir():
            raise UsageError(f"--out {args.out}: no such reports directory")
    else:
        check_output_dir(args.out, "--out")


def _check_bench(args: argparse.Namespace) -> None:
    from . import bench

    try:
        bench.benches(args.only or ())
    except KeyError as e:
        raise UsageError(e.args[0]) from None
    if args.markdown:
        check_output_file(args.markdown, "--markdown")
    if args.json:
        check_output_file(args.json, "--json")
    if args.markdown and args.json and Path(args.markdown).resolve() == Path(args.json).resolve():
        raise UsageError("--markdown and --json name the same file")


#: Exit statuses: each means one thing.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cesym`` console script.

    Exit status: 0 ok; 1 a contract failure (``verify``) or stale files (``--check``); 2 a usage
    or environment error, with a one-line message on stderr (every argument and output path is
    checked before any work); 130 interrupted (Ctrl-C: workers stopped, nothing half-written).
    """
    parser = _Parser(prog="cesym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="regenerate cesym/kernels/_generated from derivations/")
    g.add_argument("--check", action="store_true", help="exit 1 when the generated kernels are stale; write nothing")
    g.add_argument("--derivations", help="derivations directory (default: the repository's derivations/)")
    g.add_argument("--out", help="output directory (default: cesym/kernels/_generated)")
    g.set_defaults(func=_generate, check_args=_check_generate)
    v = sub.add_parser("verify", help="check every kernel against the interval reference (ulps, κ)")
    v.add_argument("names", nargs="*", help="kernel names (default: all)")
    v.add_argument("--derivations", help="verify the losses of this derivations directory (your own), not the shipped kernels")
    v.add_argument("--quick", action="store_true", help="a fast pass: 24 rows per configuration, rows of 2 and 3")
    v.add_argument("--points", type=_positive, help="rows per kernel and dtype (default 10000; --quick: 24 per label kind)")
    v.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    v.add_argument("--seed", type=_seed, default=2026, help="sampling seed")
    v.add_argument("--json", help="write every figure to this JSON file")
    v.add_argument(
        "--no-keras", dest="keras", action="store_false",
        help="skip Keras (by default it runs on the same points when TensorFlow is installed)",
    )
    v.add_argument(
        "--exhaustive", action="store_true",
        help="every float32 input of the named kernels of one float input (fixed labels and parameters): "
        "max ulps and the inputs not correctly rounded, proven",
    )
    v.add_argument(
        "--extremes", action="store_true",
        help="check every row of two extreme finite inputs (±max, subnormals, 0, 1, ...) under every pair of grid labels "
        "and parameter settings against the reference, instead of the sampled rows",
    )
    v.add_argument("--label", type=float, action="append", help="with --exhaustive: a fixed label (repeat; default per label kind)")
    v.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="with --exhaustive: a parameter's value (repeat)")
    v.add_argument("--output", choices=("value", "grad", "both"), default="both", help="with --exhaustive: which output (default both)")
    v.add_argument("--range", nargs=2, type=float, metavar=("LO", "HI"), help="with --exhaustive: only the inputs in [LO, HI]")
    v.add_argument("--record", action="store_true", help="with --exhaustive: write the results into reports/exhaustive/ for the reports")
    # negative numbers in any float notation (--range -1e-30 1e-30, --label -2.5e-3, --range -inf 0)
    # are values: argparse's own test knows -1 and -.5 only, and took -1e-30 for an option
    v._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-inf(inity)?$", re.IGNORECASE)
    v.set_defaults(func=_verify, check_args=_check_verify)
    r = sub.add_parser("report", help="measure and write the Markdown reports into reports/")
    r.add_argument("--check", action="store_true", help="exit 1 when the committed reports are stale; write nothing")
    r.add_argument(
        "--no-measure", dest="measure", action="store_false",
        help="with --check: the sources, the rendering and the committed record only, no fresh run (seconds)",
    )
    r.add_argument("--out", help="output directory (default: the repository's reports/)")
    r.add_argument("--derivations", help="report the losses of this derivations directory (your own; needs --out)")
    r.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    r.add_argument("--no-keras", dest="keras", action="store_false", help="leave Keras out")
    r.set_defaults(func=_report, check_args=_check_report)
    b = sub.add_parser("bench", help="time every kernel against Keras eager, XLA, tf.nn and the naive form")
    b.add_argument("--rows", type=_positive, help="batch size of the main tables (default 2**20; --quick 256)")
    b.add_argument("--classes", type=_positive, help="classes of the main tables (default 10)")
    b.add_argument("--repeats", type=_positive, help="interleaved runs per implementation (default 7; --quick 2)")
    b.add_argument("--dtype", choices=("float32", "float64", "both"), default="both", help="dtype of the main tables (default both)")
    b.add_argument("--no-sweep", action="store_true", help="skip the sweep over batch size and classes")
    sh = b.add_mutually_exclusive_group()
    sh.add_argument("--no-shapes", action="store_true", help="skip the shapes section (1-D, rank 3, long rows)")
    sh.add_argument("--shapes-only", action="store_true", help="only the shapes section (no main tables, no sweep)")
    b.add_argument("--quick", action="store_true", help="tiny shapes, 1-2 runs: seconds (for tests)")
    b.add_argument("--only", nargs="+", metavar="NAME", help="kernel names or ids to time (default: all)")
    b.add_argument("--seed", type=_seed, help="input seed (default 2026)")
    b.add_argument("--markdown", metavar="PATH", help="also write the tables as Markdown")
    b.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    b.set_defaults(func=_bench, check_args=_check_bench)
    args = parser.parse_args(argv)
    name = f"cesym {args.command}"
    _files.reset_interrupt()
    # a Ctrl-C is noted as well as raised: one that lands in a weakref callback during an import
    # is printed and dropped by Python, and the command must still stop, writing nothing after it
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _files.on_interrupt) if main_thread else None
    quiet = contextlib.ExitStack()  # sys.unraisablehook is the process's: the main thread's command sets it
    if main_thread:
        quiet.enter_context(_files.quiet_dropped_interrupts())  # no "Exception ignored" traceback for it
    from . import keras
    from .verify import truthcache

    # for this command, its workers inherit them: no Keras plot drawn (keras.calls._without_pyplot),
    # the balls' numbers kept for the next run (verify.truthcache); as they were afterwards (a
    # process that calls main() and goes on, the tests' among them)
    flags = keras.HIDE_PYPLOT, truthcache.ENABLED
    keras.HIDE_PYPLOT = truthcache.ENABLED = True
    try:
        args.check_args(args)  # every argument and output path, before any work
        try:
            truthcache.prune(every=86400.0)  # the numbers of references no run has used for a while
        except ValueError as e:  # CESYM_CACHE_DAYS or CESYM_CACHE_MAX_MB not a number
            raise UsageError(str(e)) from None
        status = args.func(args)
        _files.raise_if_interrupted()
        return status
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # an output path that became unwritable, a full disk, ...: the environment
        print(f"{name}: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001
        from .define.loss import DerivationError

        if _files.interrupt_noted():
            # the Ctrl-C's KeyboardInterrupt, raised inside compiled code (a Numba loop of the
            # reference), comes out as another exception ("SystemError: ... returned a result
            # with an exception set"): the command was interrupted, not broken
            print(f"{name}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        if isinstance(e, DerivationError):  # e.g. a derivation that cannot be loaded
            print(f"{name}: {_one_line(e)}", file=sys.stderr)
            return EXIT_USAGE
        from .verify.intervals import NoIntervalRule

        if isinstance(e, NoIntervalRule):  # --exhaustive on a kernel whose stable form uses a primitive it cannot bound
            print(f"{name}: --exhaustive: {_one_line(e)}: the exhaustive first tier does not evaluate this "
                  "kernel's stable form; it is not checked (cesym verify checks it on sampled rows)", file=sys.stderr)
            return EXIT_USAGE
        # a bug: its traceback for the report, and not status 1, which means "contract failed / stale"
        import traceback

        traceback.print_exc()
        print(f"{name}: internal error: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        keras.HIDE_PYPLOT, truthcache.ENABLED = flags
        if main_thread:
            _files.reset_interrupt()  # the command is over: a process that goes on runs work of its own
            signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
        quiet.close()


def console(argv: list[str] | None = None) -> NoReturn:
    """The ``cesym`` program: :func:`main`, then exit with its status.

    After a Ctrl-C the process ends as soon as the streams are flushed (``os._exit``): the work
    has stopped, its workers are gone and nothing is half-written (``main`` saw to that), while
    the interpreter's teardown with TensorFlow loaded takes about a second on an idle machine
    and several on a loaded one (CI measured 6.8 s after ``cesym bench`` had printed
    "interrupted"). Any other status ends as usual.
    """
    status = main(argv)
    if status == EXIT_INTERRUPTED:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe or stream: nothing more to say
                pass
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    console()
