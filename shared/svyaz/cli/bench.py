"""``svyaz bench``: throughput, latency and accuracy on a synthetic population, against the raw
limit of the same store measured in the same run."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys


def _sizes(text: str) -> list[int]:
    if text.strip().lower() in ("", "none", "0"):
        return []
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected sizes like 10,100,1000: {text!r}") from exc
    if any(size < 4 for size in sizes):
        raise argparse.ArgumentTypeError("profile sizes start at 4 identifiers")
    return sizes


def _populations(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected customer counts like 2000,20000: {text!r}") from exc
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("customer counts start at 1")
    return sizes


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def run_scale(args: argparse.Namespace) -> int:
    """``--scale``: the embedded default at several population sizes (``bench.embedded``)."""
    from svyaz.bench.embedded import format_scale, scale_report

    if args.store != "memory":
        print("svyaz bench: --scale measures the memory store (--store memory)", file=sys.stderr)
        return 2
    log = (
        (lambda _m: None)
        if args.quiet
        else (lambda m: print(f"svyaz bench: {m}", file=sys.stderr, flush=True))
    )
    report = scale_report(args.scale, seed=args.seed, io_ms=args.io_ms, log=log)
    print(json.dumps(report, indent=2) if args.json else format_scale(report))
    return 1 if any(r["dead_lettered"] for size in report["sizes"] for r in size["runs"]) else 0


def run(args: argparse.Namespace) -> int:
    if args.scale:
        return run_scale(args)
    from svyaz.bench.harness import BenchConfig, run_bench
    from svyaz.bench.report import format_report
    from svyaz.bench.stores import BENCH_PROJECT, open_store

    if args.store == "firestore" and not (args.emulator or os.environ.get("FIRESTORE_EMULATOR_HOST")):
        if not args.project:
            print(
                "svyaz bench: --store firestore needs --emulator, FIRESTORE_EMULATOR_HOST, or --project "
                "(a real Firestore project the benchmark may fill with synthetic data)",
                file=sys.stderr,
            )
            return 2
    config = BenchConfig(
        store=args.store,
        customers=args.customers,
        workers=args.workers,
        seed=args.seed,
        noise=not args.no_noise,
        growth_sizes=args.growth,
        raw=not args.no_raw,
        progress=False if args.no_progress or args.quiet else (True if sys.stderr.isatty() else "lines"),
        project=args.project or BENCH_PROJECT,
        ordering=not args.no_ordering,
        hot_customer=args.hot_customer,
    )

    def log(message: str) -> None:
        if not args.quiet:
            print(f"svyaz bench: {message}", file=sys.stderr, flush=True)

    if args.emulator and args.store == "firestore" and not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        log("starting the Firestore emulator")
        # A terminated run still stops the emulator it started (the context manager's finally).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with open_store(args.store, project=config.project, start_emulator=args.emulator) as store:
        report = run_bench(config, store, log=log)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        print(format_report(report))
    return 1 if report.svyaz.dead_lettered else 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench",
        help="benchmark throughput and accuracy on a synthetic population",
        description="Replay a synthetic population through the service with concurrent workers; "
        "report throughput, latency, contention, accuracy against ground truth, the raw limit of "
        "the same store and the cost growth with profile size.",
    )
    parser.add_argument(
        "--store",
        choices=("memory", "firestore"),
        default="memory",
        help="store to benchmark (default: %(default)s; the ratio goals apply to firestore only)",
    )
    parser.add_argument("--customers", type=_positive, default=300, help="(default: %(default)s)")
    parser.add_argument(
        "--workers", type=_positive, default=8, help="concurrent workers (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=1, help="population seed (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--emulator",
        action="store_true",
        help="start a Firestore emulator when FIRESTORE_EMULATOR_HOST is not set",
    )
    parser.add_argument(
        "--project", default=None, help="Firestore project (default on an emulator: svyaz-bench)"
    )
    parser.add_argument(
        "--growth",
        type=_sizes,
        default=[10, 100, 1000, 10000],
        metavar="SIZES",
        help="profile sizes for the cost-growth check, or 'none' (default: 10,100,1000,10000)",
    )
    parser.add_argument("--no-raw", action="store_true", help="skip the raw-limit baseline")
    parser.add_argument("--no-noise", action="store_true", help="no duplicates, garbage or shared devices")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (or progress lines when not a terminal)"
    )
    parser.add_argument("--quiet", action="store_true", help="no step messages on stderr")
    parser.add_argument(
        "--no-ordering",
        action="store_true",
        help="deliver a customer's events concurrently (no Pub/Sub ordering keys)",
    )
    parser.add_argument(
        "--hot-customer",
        type=int,
        default=0,
        metavar="N",
        help="then N events of one customer at 20/s, with and without ordering keys (default: none)",
    )
    parser.add_argument(
        "--scale",
        type=_populations,
        default=[],
        metavar="CUSTOMERS",
        help="instead: the memory store at these population sizes, 1 and 2 workers, bytes per "
        "event and identifier (e.g. 2000,20000)",
    )
    parser.add_argument(
        "--io-ms",
        type=float,
        default=1.0,
        help="with --scale: simulated I/O per delivery and per commit, 0 for none (default: %(default)s)",
    )
    parser.set_defaults(run=run)
