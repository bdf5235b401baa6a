"""``svyaz telegram link``: the bot deep link that carries a site session id."""

from __future__ import annotations

import argparse
import sys


def link(args: argparse.Namespace) -> int:
    from svyaz.channels import ChannelError
    from svyaz.channels.telegram import deep_link

    bot = args.bot
    if bot is None:
        from svyaz.app.config import Settings

        bot = Settings().telegram_bot_username
    try:
        print(deep_link(bot, args.session_id))
    except ChannelError as exc:
        print(f"svyaz telegram link: error: {exc}", file=sys.stderr)
        return 2
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("telegram", help="Telegram bot deep links")
    actions = parser.add_subparsers(dest="telegram_command", required=True, metavar="ACTION")
    link_parser = actions.add_parser("link", help="print https://t.me/<bot>?start=<session id>")
    link_parser.add_argument("--session-id", required=True, help="the site session id (1-64 of A-Za-z0-9_-)")
    link_parser.add_argument(
        "--bot", default=None, help="bot username (default: SVYAZ_TELEGRAM_BOT_USERNAME, else svyaz_bot)"
    )
    link_parser.set_defaults(run=link)
