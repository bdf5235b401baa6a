"""The ``svyaz`` command. Each feature registers its own subcommands (``register(commands)``)
in its module under ``svyaz.cli``; this file only assembles them."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Feature modules, in the order their commands are listed by --help.
COMMAND_MODULES = (
    "serve",
    "demo",
    "qr",
    "telegram",
    "imports",
    "reports",
    "exports",
    "split",
    "bench",
    "package",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svyaz", description="Identity stitching for online and offline touches"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        module_name = f"svyaz.cli.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # a feature not installed in this build
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
