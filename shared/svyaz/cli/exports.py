"""``svyaz export conversions``: the period's offline conversions as the files Yandex Metrica and
Google Ads take, optionally uploaded to Metrica. See ``svyaz.exports`` and docs/conversions.md.

Like ``svyaz report``, it works on what the service holds: a running ``svyaz serve`` / ``svyaz demo
--keep`` (``--url``, ``SVYAZ_URL`` or the local one it finds; the export runs there, through
``POST /local/export``), or a store opened here (``--store firestore``). The export ledger lives
next to the store, so a conversion is exported once whichever run (this command or the scheduled
function) takes it first.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from svyaz.cli.reports import add_period, note_if_empty, period, tz_name


def _label(credit: dict[str, str] | None) -> str:
    if not credit:
        return "(none)"
    return " / ".join(v for v in (credit.get("source"), credit.get("medium"), credit.get("campaign")) if v)


def render(answer: dict[str, Any], written: list[tuple[str, pathlib.Path, int]], title: str) -> str:
    out = [title]
    for kind, path, count in written:
        out.append(f"  {kind} file: {path} ({count} conversion{'s' if count != 1 else ''})")
    if not written:
        out.append("  no file written: nothing new to export")
    failed = answer["upload_failed"]
    out.append(
        f"  exported: {answer['exported']}; exported before: {answer['exported_before']}; "
        f"refused: {answer['refused']}" + (f"; upload failed: {failed}" if failed else "")
    )
    for kind, upload in answer["uploads"].items():
        out.append(f"  uploaded {kind}: id {upload.get('id')}, status {upload.get('status')}")
    for kind, error in answer["errors"].items():
        out.append(f"  upload of {kind} failed (kept for the next run): {error}")
    for refused in answer["refused_rows"]:
        out.append(f"  refused {refused['key']}: {refused['reason']}")
    if answer["orders"]:
        out.append("  orders exported (credited first touch | last touch):")
        for order in answer["orders"]:
            first, last = (_label(order["credit"].get(by)) for by in ("first_touch", "last_touch"))
            out.append(
                f"    {order['order_id']:<10} {order['at']}  {order['amount']} {order['currency']}  "
                f"{order['channel']:<6} {first} | {last}"
            )
    return "\n".join(out)


def _uploader(rt, target: str):
    from svyaz.exports.metrica import MetricaClient

    if target != "metrica":
        raise ValueError(
            "--upload sends to Metrica only; import the Google Ads file in Google Ads "
            "(Goals > Conversions > Uploads) or from a scheduled file source"
        )
    settings = rt.settings
    client = MetricaClient(
        settings.metrica_oauth_token.get_secret_value(), settings.metrica_counter_id, settings.metrica_api_url
    )
    return client.uploader("svyaz export conversions")


def export_on(
    rt, target: str, first: date, last: date, tz: tzinfo, again: bool = False, upload: bool = False
) -> dict[str, Any]:
    """Run the export on a runtime's store and ledger (here, or inside the local service)."""
    from svyaz.exports.service import Options, export, run_details

    settings = rt.settings
    uploader = _uploader(rt, target) if upload else None
    start, end = period(first, last, tz)
    options = Options(settings.metrica_goal, settings.google_ads_conversion_name, again=again)
    run = export(rt.store, rt.ledger, target, start, end, datetime.now(UTC), options, uploader)
    return run_details(run)


def write_files(answer: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, pathlib.Path, int]]:
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, text in answer["file_contents"].items():
        path = out_dir / f"{args.target}-{kind}-{args.first}_{args.last}.csv"
        path.write_text(text, encoding="utf-8")
        written.append((kind, path, answer["files"][kind]))
    return written


def show(answer: dict[str, Any], args: argparse.Namespace) -> int:
    written = write_files(answer, args)
    if args.json:
        summary = {k: v for k, v in answer.items() if k not in ("file_contents", "orders", "refused_rows")}
        print(
            json.dumps(
                summary | {"written": {k: str(p) for k, p, _ in written}}, ensure_ascii=False, indent=2
            )
        )
    else:
        title = f"Offline conversions for {args.target}, {args.first} .. {args.last} ({tz_name(args.tz)})"
        print(render(answer, written, title))
    return 1 if answer["upload_failed"] else 0


def run(args: argparse.Namespace) -> int:
    from svyaz.cli.target import CommandError, open_target
    from svyaz.dev.client import ServiceError

    if args.last < args.first:
        print("svyaz export: --to is before --from", file=sys.stderr)
        return 2
    try:
        opened = open_target(args)
        note_if_empty(opened)
        if opened.client is not None:
            answer = opened.client.ok("POST", "/local/export", request_body(args))
        else:
            answer = export_on(
                opened.rt, args.target, args.first, args.last, args.tz, args.again, args.upload
            )
    except (CommandError, ServiceError, ValueError) as exc:
        print(f"svyaz export: {exc}", file=sys.stderr)
        return 2
    return show(answer, args)


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "target": args.target,
        "from": str(args.first),
        "to": str(args.last),
        "tz": tz_name(args.tz),
        "again": args.again,
        "upload": args.upload,
    }


def register(commands: argparse._SubParsersAction) -> None:
    from svyaz.cli.target import add_options

    parser = commands.add_parser("export", help="offline conversions for Yandex Metrica / Google Ads")
    exports = parser.add_subparsers(dest="export", required=True, metavar="WHAT")
    sub = exports.add_parser(
        "conversions",
        help="the period's orders (and calls) as the files Metrica / Google Ads import",
        description="Orders of the period as offline conversions in the file format of the ad system "
        "(Metrica: orders and calls CSV; Google Ads: click-id and enhanced-conversions CSV), each "
        "conversion exported once (the ledger). Works on the running service (--url, SVYAZ_URL or "
        "the local svyaz serve) or a store (--store).",
    )
    sub.add_argument(
        "--target", choices=["metrica", "google-ads"], required=True, help="the ad system to export for"
    )
    add_period(sub)
    sub.add_argument("--upload", action="store_true", help="upload to Metrica's management API")
    sub.add_argument("--out", default=".", help="directory for the files (default: here)")
    sub.add_argument("--again", action="store_true", help="export conversions exported before too")
    sub.add_argument("--json", action="store_true", help="machine-readable summary")
    add_options(sub)
    sub.set_defaults(run=run)
