"""Golden fixtures in functions-framework's input/output style: every input under
``tests/fixtures/channels/`` and ``tests/fixtures/vendors/<vendor>/`` has ``<case>.expected.json``
next to it (the case is the file name up to its first dot), stating what svyaz makes of it.

Two kinds of input, one check (:func:`check`):

* a vendor request (``<case>.request.json``: target, method, path, headers, raw body) is sent to
  its deployed function (:func:`tests.vendor_support.run_fixture`); expected: the answer and the
  canonical events queued;
* a channel payload (``<channel>_<case>.json`` or ``.txt``, the body exactly as the sender posts
  it) goes through its parser (:data:`PARSERS`, by the name's first word); expected: the
  canonical events. Two encodings of the same notification share one expected file.

``SVYAZ_WRITE_GOLDEN=1`` rewrites the expected files from what the code does: review the diff,
the files state what is right."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

from svyaz.app.config import Settings
from svyaz.channels import calltracking, crm, qr, telegram, whatsapp
from svyaz.domain.events import Event
from svyaz.entrypoints.registry import development_values
from tests.pipeline_support import FIXTURES
from tests.vendor_support import VENDOR_FIXTURES, run_fixture

CHANNEL_FIXTURES = FIXTURES / "channels"
ARRIVAL = "(time of arrival)"  # an event dated when it arrives (formats without a time of their own)
OUTPUTS = (".expected.json", ".rest.json")


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _call_fields(path: Path) -> dict:
    """A JSON notification, or a query string / URL-encoded form (flat: a form's view)."""
    if path.suffix == ".txt":
        return dict(parse_qsl(path.read_text(encoding="ascii")))
    return _json(path)


def _qr_scan(path: Path) -> list[Event]:
    """What the landing page hands the parser: the code's token (signed with the development key),
    the browser's cookies, svyaz's visitor id, the scan's id and time."""
    scan = _json(path)
    moment = datetime.fromisoformat(scan["time"])
    key = development_values()["SVYAZ_QR_SIGNING_KEY"].encode()
    code = qr.verify_code(scan["token"], key, moment.timestamp())
    return [qr.landing_event(code, scan["cookies"], scan["visitor_id"], moment, scan["scan_id"])]


# channel (the fixture name's first word) -> its parser, with the deployment's default settings
PARSERS: dict[str, Callable[[Path], list[Event]]] = {
    "whatsapp": lambda path: whatsapp.parse_webhook(_json(path), Settings().whatsapp_session_pattern),
    "telegram": lambda path: [e for e in [telegram.parse_update(_json(path))] if e],
    "calltouch": lambda path: [calltracking.parse_call(_call_fields(path))],
    "crm": lambda path: crm.parse_orders(_json(path)),
    "qr": _qr_scan,
}


@dataclass(frozen=True)
class Case:
    input: Path
    run: Callable[[Case], dict]

    @property
    def name(self) -> str:
        return self.input.name.split(".")[0]

    def sibling(self, kind: str) -> Path:
        return self.input.with_name(f"{self.name}.{kind}.json")

    @property
    def expected(self) -> Path:
        return self.sibling("expected")

    @property
    def id(self) -> str:
        return f"{self.input.parent.name}/{self.input.name}"


def _send_request(case: Case) -> dict:
    rest = case.sibling("rest")
    return run_fixture(_json(case.input), _json(rest) if rest.exists() else None)


def _parse_payload(case: Case) -> dict:
    events = PARSERS[case.name.split("_")[0]](case.input)
    return {"events": [json.loads(event.to_json()) for event in events]}


def cases() -> list[Case]:
    requests = [Case(path, _send_request) for path in sorted(VENDOR_FIXTURES.glob("*/*.request.json"))]
    payloads = [
        Case(path, _parse_payload)
        for path in sorted(CHANNEL_FIXTURES.iterdir())
        if path.suffix in (".json", ".txt") and not path.name.endswith(OUTPUTS)
    ]
    return requests + payloads


def check(case: Case) -> None:
    """Run the case; its output must equal the expected file (rewritten first when asked; an
    event the file dates ``(time of arrival)`` must be dated during the run, and stays so)."""
    before = datetime.now(UTC)
    got = case.run(case)
    expected = _json(case.expected) if case.expected.exists() else {"events": []}
    for mine, theirs in zip(got["events"], expected["events"], strict=False):
        if theirs["timestamp"] == ARRIVAL:
            assert before <= datetime.fromisoformat(mine["timestamp"]) <= datetime.now(UTC)
            mine["timestamp"] = ARRIVAL
    if os.environ.get("SVYAZ_WRITE_GOLDEN"):
        case.expected.write_text(json.dumps(got, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        expected = got
    assert got == expected
