"""The ``cesym`` command: generate kernels from ``derivations/``, verify them against mpmath."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _generate(args: argparse.Namespace) -> int:
    from .define import DERIVATIONS_DIR, DerivationError
    from .generate import GENERATED_DIR, generate
    from .rewrite import RewriteError

    src = Path(args.derivations) if args.derivations else DERIVATIONS_DIR
    out = Path(args.out) if args.out else GENERATED_DIR
    if not src.is_dir():
        print(f"cesym generate: {src}: no such derivations directory", file=sys.stderr)
        return 2
    try:
        changed = generate(src, out, check=args.check)
    except (DerivationError, RewriteError) as e:
        print(f"cesym generate: {_one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - any failure of SymPy on a derivation: one line, no traceback
        print(f"cesym generate: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return 2
    return _changes("generate", "generated kernels", changed, out, args.check)


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


def _verify(args: argparse.Namespace) -> int:
    import json

    from . import verify

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
            f"{c.unresolved:>5} {c.grad_vs_mpmath_diff or 0:>7.1g}  ({c.seconds:.1f}s)",
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
        for f in c.failures[:3]:
            print(f"    FAIL {f}", flush=True)

    try:
        with_keras = args.keras and _have_tensorflow()
        configs = verify.run(
            args.names, points=args.points, quick=args.quick, seed=args.seed, progress=show, jobs=args.jobs,
            keras=with_keras,
        )
    except KeyError as e:
        print(f"cesym verify: {e.args[0]}", file=sys.stderr)
        return 2
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
        from .generate import _atomic_write

        _atomic_write(Path(args.json), json.dumps(verify.to_json(configs, env), indent=1, sort_keys=True, allow_nan=False) + "\n")
        print(f"cesym verify: wrote {args.json}")
    print(
        "cesym verify: "
        + ("all kernels within the contract" if not failed else f"{failed} point(s) outside the contract")
        + f"; {unresolved} reference value(s) unresolved"
        + "; columns: max ulps of the stable kernel, its largest error as a share of the contract's "
        "bound (error / (base + 4κ); <= 1 is within) among errors above base (4 or 8 ulps; '-': none), max ulps of the naive form, naive points outside the "
        "contract, failures, unresolved references, max relative difference of the symbolic "
        "gradient from mpmath.diff"
    )
    return 1 if failed or unresolved else 0


def _report(args: argparse.Namespace) -> int:
    from .report import REPORTS_DIR, write_reports

    out = Path(args.out) if args.out else REPORTS_DIR
    changed = write_reports(out, check=args.check, jobs=args.jobs, keras=args.keras and _have_tensorflow())
    return _changes("report", "reports", changed, out, args.check)


def _bench(args: argparse.Namespace) -> int:
    """Time every kernel against Keras eager, XLA, tf.nn and the naive form; exit 0 whatever the timings."""
    from . import bench

    over = dict(rows=args.rows, classes=args.classes, repeats=args.repeats, only=tuple(args.only or ()), seed=args.seed)
    over["dtypes"] = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    if args.no_sweep:
        over["sweep"] = False
    cfg = bench.Config.quick_config(**over) if args.quick else bench.Config(**{k: v for k, v in over.items() if v is not None})
    try:
        bench.benches(cfg.only)
    except KeyError as e:
        print(f"cesym bench: {e.args[0]}", file=sys.stderr)
        return 2
    res = bench.run(cfg)
    print(bench.format_text(res), end="")
    if args.markdown:
        bench.write_atomic(args.markdown, bench.format_markdown(res))
        print(f"cesym bench: wrote {args.markdown}")
    if args.json:
        bench.write_atomic(args.json, bench.to_json(res))
        print(f"cesym bench: wrote {args.json}")
    return 0


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return n


def _have_tensorflow() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None and importlib.util.find_spec("keras") is not None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cesym`` console script."""
    parser = argparse.ArgumentParser(prog="cesym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="regenerate cesym/kernels/_generated from derivations/")
    g.add_argument("--check", action="store_true", help="exit 1 when the generated kernels are stale; write nothing")
    g.add_argument("--derivations", help="derivations directory (default: the repository's derivations/)")
    g.add_argument("--out", help="output directory (default: cesym/kernels/_generated)")
    g.set_defaults(func=_generate)
    v = sub.add_parser("verify", help="check every kernel against the interval reference (ulps, κ)")
    v.add_argument("names", nargs="*", help="kernel names (default: all)")
    v.add_argument("--quick", action="store_true", help="a fast pass: 24 rows per configuration, rows of 2 and 3")
    v.add_argument("--points", type=int, help="rows per kernel and dtype (default 10000; --quick: 24 per label kind)")
    v.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    v.add_argument("--seed", type=int, default=2026, help="sampling seed")
    v.add_argument("--json", help="write every figure to this JSON file")
    v.add_argument(
        "--no-keras", dest="keras", action="store_false",
        help="skip Keras (by default it runs on the same points when TensorFlow is installed)",
    )
    v.set_defaults(func=_verify)
    r = sub.add_parser("report", help="measure and write the Markdown reports into reports/")
    r.add_argument("--check", action="store_true", help="exit 1 when the committed reports are stale; write nothing")
    r.add_argument("--out", help="output directory (default: the repository's reports/)")
    r.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    r.add_argument("--no-keras", dest="keras", action="store_false", help="leave Keras out")
    r.set_defaults(func=_report)
    b = sub.add_parser("bench", help="time every kernel against Keras eager, XLA, tf.nn and the naive form")
    b.add_argument("--rows", type=_positive, help="batch size of the main tables (default 2**20; --quick 256)")
    b.add_argument("--classes", type=_positive, help="classes of the main tables (default 10)")
    b.add_argument("--repeats", type=_positive, help="interleaved runs per implementation (default 7; --quick 2)")
    b.add_argument("--dtype", choices=("float32", "float64", "both"), default="both", help="dtype of the main tables (default both)")
    b.add_argument("--no-sweep", action="store_true", help="skip the sweep over batch size and classes")
    b.add_argument("--quick", action="store_true", help="tiny shapes, 1-2 runs: seconds (for tests)")
    b.add_argument("--only", nargs="+", metavar="NAME", help="kernel names or ids to time (default: all)")
    b.add_argument("--seed", type=int, help="input seed (default 2026)")
    b.add_argument("--markdown", metavar="PATH", help="also write the tables as Markdown")
    b.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    b.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
