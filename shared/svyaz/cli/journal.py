"""``svyaz journal screenshots``: regenerate the customer journal's screenshots in docs/."""

from __future__ import annotations

import argparse
from pathlib import Path


def screenshots(args: argparse.Namespace) -> int:
    from svyaz.dev.journal_shots import take

    for path in take(Path(args.out), args.lang):
        print(f"wrote {path}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("journal", help="the customer journal: screenshots for the docs")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    shots = actions.add_parser(
        "screenshots", help="the list and a customer card in Chromium (Playwright), saved as PNG"
    )
    shots.add_argument("--out", default="docs", help="folder for journal-list.png, journal-card*.png")
    shots.add_argument(
        "--lang", choices=["ru", "en"], default="ru", help="language of the pages (default ru)"
    )
    shots.set_defaults(run=screenshots)
