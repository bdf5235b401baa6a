"""``svyaz report attribution``: revenue and orders by credited ad source, offline vs online.

The report reads the store the service writes to: run it with ``--store firestore`` (or
``SVYAZ_STORE=firestore``). In the default memory mode this process has its own, empty store;
``svyaz import FILE --report`` shows the report for what an import just applied.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def parse_tz(text: str) -> tzinfo:
    if text.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown time zone {text!r} (e.g. Europe/Moscow)") from None


def period(first: date, last: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """``[first 00:00, the day after last 00:00)`` in ``tz``, as UTC times."""
    start = datetime.combine(first, time(), tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tz).astimezone(UTC)
    return start, end


def attribution_text(store, first: date, last: date, tz: tzinfo, by: str, as_json: bool) -> str:
    from svyaz.app.reports import attribution

    start, end = period(first, last, tz)
    report = attribution(store.touchpoints_between("order", start, end), by, start, end)  # type: ignore[arg-type]
    if as_json:
        return json.dumps(report.as_dict(), ensure_ascii=False, indent=2)
    return report.render_text(f"{first} .. {last} ({getattr(tz, 'key', 'UTC')})")


def run_attribution(args: argparse.Namespace) -> int:
    if args.last < args.first:
        print("svyaz report: --to is before --from", file=sys.stderr)
        return 2
    import os

    from svyaz.app.config import ConfigError
    from svyaz.app.runtime import build

    if args.store:
        os.environ["SVYAZ_STORE"] = args.store
    try:
        rt = build()
        rt.store  # noqa: B018 - built now: a missing secret stops here, named
    except (ConfigError, ValueError) as exc:
        print(f"svyaz report: cannot start: {exc}", file=sys.stderr)
        return 2
    if rt.settings.store == "memory":
        print(
            "note: the memory store of this process is empty; report on the service's data with "
            "--store firestore (SVYAZ_STORE=firestore), or run `svyaz import FILE --report`",
            file=sys.stderr,
        )
    print(attribution_text(rt.store, args.first, args.last, args.tz, args.by, args.json))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="reports over the touch history (attribution of sales)")
    reports = parser.add_subparsers(dest="report", required=True, metavar="REPORT")
    sub = reports.add_parser(
        "attribution",
        help="revenue and orders by credited source/medium/campaign, offline vs online",
        description="Revenue and orders of the period by the ad source credited with each order, "
        "split offline (channel crm/store) vs online. Reads --store firestore (or SVYAZ_STORE).",
    )
    sub.add_argument("--from", dest="first", type=parse_day, required=True, metavar="YYYY-MM-DD")
    sub.add_argument(
        "--to", dest="last", type=parse_day, required=True, metavar="YYYY-MM-DD", help="inclusive"
    )
    sub.add_argument("--by", choices=["first_touch", "last_touch"], default="first_touch")
    sub.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_argument("--tz", type=parse_tz, default=UTC, help="time zone of the dates (default: UTC)")
    sub.add_argument(
        "--store", choices=["memory", "firestore"], default=None, help="default: SVYAZ_STORE or memory"
    )
    sub.set_defaults(run=run_attribution)
