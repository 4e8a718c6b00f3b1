"""The ``cesym`` command: generate kernels from ``derivations/``, verify them against mpmath."""

from __future__ import annotations

import argparse
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
    if args.check:
        if changed:
            print(f"cesym generate --check: stale generated kernels: {', '.join(changed)} (run `cesym generate`)")
            return 1
        print(f"cesym generate --check: kernels in {out} are up to date")
        return 0
    print(f"cesym generate: {len(changed)} file(s) written" + (f": {', '.join(changed)}" if changed else " (up to date)"))
    return 0


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _verify(args: argparse.Namespace) -> int:
    import numpy as np

    from .contract import check_batch
    from .registry import CASES, label_kinds
    from .sampling import sample

    cases = [c for c in CASES if not args.names or c.kernel in args.names or c.loss in args.names]
    if not cases:
        print(f"cesym verify: no kernel named {', '.join(args.names)}", file=sys.stderr)
        return 2
    rows = args.points or (24 if args.quick else 400)
    sizes = (2, 3) if args.quick else (1, 2, 3, 5, 8)
    failed = 0
    print(f"{'kernel':<58} {'dtype':<8} {'labels':<9} {'points':>6} {'value max':>10} {'grad max':>10} {'fail':>5} {'unres':>5}")
    for case in cases:
        for dtype in (np.float32, np.float64):
            for label_kind, soft, smooth in label_kinds(case):
                t0 = time.time()
                fails, unres, vmax, gmax, pts = [], 0, 0.0, 0.0, 0
                for n in (sizes if case.kernel != "activity_penalty" else (4,)):
                    batch = sample(case, dtype, n, max(1, rows // len(sizes)), seed=args.seed, soft=soft, smoothing=smooth)
                    res = check_batch(case, batch)
                    fails += res.failures
                    unres += res.unresolved
                    pts += len(res.value_ulps)
                    vmax = max([vmax, *res.value_ulps])
                    gmax = max([gmax, *res.grad_ulps])
                failed += len(fails)
                print(
                    f"{case.id:<58} {np.dtype(dtype).name:<8} {label_kind:<9} {pts:>6} {vmax:>10.3g} {gmax:>10.3g} "
                    f"{len(fails):>5} {unres:>5}  ({time.time() - t0:.1f}s)",
                    flush=True,
                )
                for f in fails[:3]:
                    print(f"    FAIL {f}")
    print("cesym verify: " + ("all kernels within the contract" if not failed else f"{failed} point(s) outside the contract"))
    return 1 if failed else 0


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
    v.add_argument("--quick", action="store_true", help="a fast pass: few points, rows of 2 and 3")
    v.add_argument("--points", type=int, help="rows per kernel, dtype and label kind")
    v.add_argument("--seed", type=int, default=2026, help="sampling seed")
    v.set_defaults(func=_verify)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
