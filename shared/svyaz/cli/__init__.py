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
    "journal",
    "qr",
    "telegram",
    "imports",
    "reports",
    "erase",
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
    except Exception as exc:
        message = missing_backend(exc)
        if message is None:
            raise
        print(f"svyaz {args.command}: {message}", file=sys.stderr)
        return 2


def missing_backend(exc: BaseException) -> str | None:
    """One line for a store, queue or credentials that are not there (instead of a traceback)."""
    from svyaz.adapters.datadir import DataDirError
    from svyaz.dev.preflight import FIRESTORE_HELP, Unavailable

    if isinstance(exc, Unavailable | DataDirError):  # e.g. the data directory svyaz serve holds
        return str(exc)
    try:
        from google.auth.exceptions import DefaultCredentialsError
    except ImportError:  # pragma: no cover - the google libraries are runtime dependencies
        return None
    if isinstance(exc, DefaultCredentialsError):
        return f"no Google Cloud credentials: {FIRESTORE_HELP}"
    return None


if __name__ == "__main__":
    sys.exit(main())
