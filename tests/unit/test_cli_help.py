"""Every option of every `svyaz` command says what it does in --help."""

from __future__ import annotations

import argparse

from svyaz.cli import build_parser


def _parsers(parser: argparse.ArgumentParser, name: str = "svyaz"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_option_of_every_command_has_help():
    missing = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, parser in _parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
        and not (action.help or "").strip()
    ]
    assert missing == []


def test_every_command_is_listed():
    names = {name for name, _ in _parsers(build_parser())}
    for command in ("serve", "demo", "import", "report attribution", "erase", "bench", "package"):
        assert f"svyaz {command}" in names
