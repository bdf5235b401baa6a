"""`svyaz export conversions` after the demo's journeys, the export ledger (nothing exported
twice), erased customers, and the upload to a local stand-in of Metrica's management API."""

from __future__ import annotations

import argparse
import contextlib
import email.parser
import email.policy
import io
import json
import logging
import threading
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from svyaz.app.config import Settings
from svyaz.cli import demo, exports
from svyaz.cli.serve import local_settings
from svyaz.domain.model import Identifier
from svyaz.entrypoints import registry
from svyaz.exports.metrica import MetricaClient, MetricaError
from svyaz.exports.service import export
from tests.pipeline_support import build

EKATERINA_YM = "1702385561118374409"
VASILY_YM = "1681971876942937034"
TOKEN, COUNTER = "y0_test-oauth-token", "12606739"


@pytest.fixture
def demo_runtime(monkeypatch):
    """A runtime on one memory store with the demo's two journeys applied through the real
    HTTP endpoints (what `svyaz demo --store firestore` leaves in Firestore)."""
    rt = build(config=local_settings(registry.development_values()))  # what `svyaz demo` fills in
    level = logging.getLogger("svyaz").level
    with contextlib.redirect_stdout(io.StringIO()):
        assert demo.run_on(rt) == 0
    logging.getLogger("svyaz").setLevel(level)  # the demo quiets the service's logs
    return rt


def args(tmp_path, target="metrica", **extra) -> argparse.Namespace:
    base = dict(target=target, first=date(2026, 11, 1), last=date(2026, 11, 30), tz=UTC, out=str(tmp_path))
    return argparse.Namespace(**(base | {"again": False, "json": False} | extra))


def run_export(rt, tmp_path, capsys, **extra) -> str:
    ns = args(tmp_path, **extra)
    answer = exports.export_on(rt, ns.target, ns.first, ns.last, ns.tz, ns.again)
    assert exports.show(answer, ns) == 0
    return capsys.readouterr().out


def test_after_the_demo_metrica_gets_ekaterinas_showroom_order_by_her_client_id(
    demo_runtime, tmp_path, capsys
):
    out = run_export(demo_runtime, tmp_path, capsys)
    csv_text = (tmp_path / "metrica-orders-2026-11-01_2026-11-30.csv").read_text()
    lines = csv_text.splitlines()
    assert lines[0] == "ClientId,Target,DateTime,Price,Currency"
    showroom = int(datetime(2026, 11, 10, 10, 14, 24, tzinfo=UTC).timestamp())
    assert f"{EKATERINA_YM},offline_order,{showroom},129000.00,RUB" in lines
    assert any(line.startswith(f"{VASILY_YM},offline_order,") for line in lines)
    # The showroom sale is credited to the VK campaign that brought her (first touch).
    s77 = next(line for line in out.splitlines() if line.strip().startswith("S-77"))
    assert "store" in s77 and "vk / social / kitchens-promo |" in s77
    # No phone, e-mail or name in the Metrica file.
    assert "7916" not in csv_text and "@" not in csv_text


def test_svyaz_export_reaches_the_running_local_service(demo_runtime, tmp_path, capsys):
    """`svyaz demo --keep` (or `svyaz serve`) holds the journeys in its memory store: the command
    runs the export there (POST /local/export) and writes the files here."""
    from svyaz.cli import main
    from svyaz.dev.local import LocalService

    service = LocalService("127.0.0.1", 0, demo_runtime, quiet=True).start()
    try:
        period = ["--from", "2026-11-01", "--to", "2026-11-30", "--url", service.url, "--out", str(tmp_path)]
        assert main(["export", "conversions", "--target", "metrica", *period]) == 0
        first = capsys.readouterr().out
        assert main(["export", "conversions", "--target", "metrica", *period]) == 0
        second = capsys.readouterr().out
    finally:
        service.stop()
    assert EKATERINA_YM in (tmp_path / "metrica-orders-2026-11-01_2026-11-30.csv").read_text()
    assert "exported: 2; exported before: 0" in first
    assert "exported: 0; exported before: 2" in second  # the service's ledger


def test_a_rerun_exports_nothing_twice(demo_runtime, tmp_path, capsys):
    run_export(demo_runtime, tmp_path / "first", capsys)
    out = run_export(demo_runtime, tmp_path / "again", capsys)
    assert "exported: 0; exported before: 2; refused: 0" in out
    assert list((tmp_path / "again").glob("*.csv")) == []
    out = run_export(demo_runtime, tmp_path / "forced", capsys, again=True)
    assert "exported: 2; exported before: 0" in out


def test_google_ads_file_carries_hashes_only(demo_runtime, tmp_path, capsys):
    run_export(demo_runtime, tmp_path, capsys, target="google-ads")
    text = (tmp_path / "google-ads-enhanced-2026-11-01_2026-11-30.csv").read_text()
    assert text.startswith("Parameters:TimeZone=+0000\nEmail,Phone Number,Conversion Name,")
    assert "+7916" not in text and "example.ru" not in text.lower() and len(text.splitlines()) == 4


def test_an_erased_customer_is_never_exported_after_the_erasure(demo_runtime, tmp_path, capsys):
    katya = demo_runtime.store.lookup(Identifier("ym_client_id", EKATERINA_YM))
    demo_runtime.store.erase(katya.profile_id)
    run_export(demo_runtime, tmp_path, capsys, again=True)
    text = (tmp_path / "metrica-orders-2026-11-01_2026-11-30.csv").read_text()
    assert EKATERINA_YM not in text and VASILY_YM in text


# --------------------------------------------------------------------------- the upload


class MetricaStandIn(BaseHTTPRequestHandler):
    """Answers as the documented endpoint does: POST .../offline_conversions/upload with the
    OAuth header and a multipart `file` part -> 200 {"uploading": {...}}; else 4xx with a JSON
    error ({"errors": [...], "code": ..., "message": ...})."""

    received: list[dict] = []
    fail_with: int | None = None

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Authorization") != f"OAuth {TOKEN}":
            return self._answer(403, {"code": 403, "message": "Access is denied"})
        if self.fail_with:
            return self._answer(
                self.fail_with, {"code": self.fail_with, "message": "Temporarily unavailable"}
            )
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        parts = [
            p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file"
        ]
        if message.get_content_type() != "multipart/form-data" or len(parts) != 1:
            return self._answer(400, {"code": 400, "message": "Expected multipart/form-data with a file"})
        part = parts[0]
        csv_text = part.get_payload(decode=True).decode()
        self.received.append(
            {
                "path": self.path,
                "filename": part.get_filename(),
                "type": part.get_content_type(),
                "csv": csv_text,
            }
        )
        lines = csv_text.strip().splitlines()
        uploading = {
            "id": len(self.received),
            "create_time": "2026-12-01T03:00:00Z",
            "source_quantity": len(lines) - 1,
            "line_quantity": len(lines) - 1,
            "comment": "svyaz",
            "type": "BASIC",
            "status": "UPLOADED",
        }
        return self._answer(200, {"uploading": uploading})


@pytest.fixture
def metrica():
    MetricaStandIn.received = []
    MetricaStandIn.fail_with = None
    server = ThreadingHTTPServer(("127.0.0.1", 0), MetricaStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", MetricaStandIn
    server.shutdown()
    server.server_close()


def period():
    return datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


def test_the_upload_posts_the_file_as_documented(demo_runtime, metrica):
    url, stand_in = metrica
    uploader = MetricaClient(TOKEN, COUNTER, url).uploader("svyaz daily export")
    run = export(
        demo_runtime.store, demo_runtime.ledger, "metrica", *period(), datetime.now(UTC), uploader=uploader
    )
    assert run.exported == 2 and run.failed == 0
    (request,) = stand_in.received  # no calls in the demo: only the orders file
    assert (
        request["path"]
        == f"/management/v1/counter/{COUNTER}/offline_conversions/upload?comment=svyaz+daily+export"
    )
    assert request["filename"] == "data.csv" and request["type"] == "text/csv"
    assert request["csv"].splitlines()[0] == "ClientId,Target,DateTime,Price,Currency"
    assert EKATERINA_YM in request["csv"]
    assert run.summary()["uploads"]["orders"]["status"] == "UPLOADED"


def test_a_failed_upload_keeps_the_rows_for_the_next_run(demo_runtime, metrica):
    url, stand_in = metrica
    uploader = MetricaClient(TOKEN, COUNTER, url).uploader()
    stand_in.fail_with = 503
    failed = export(
        demo_runtime.store, demo_runtime.ledger, "metrica", *period(), datetime.now(UTC), uploader=uploader
    )
    assert failed.failed == 2 and failed.exported == 0
    assert "503: Temporarily unavailable" in failed.files[0].error
    stand_in.fail_with = None
    retried = export(
        demo_runtime.store, demo_runtime.ledger, "metrica", *period(), datetime.now(UTC), uploader=uploader
    )
    assert retried.exported == 2 and retried.exported_before == 0


def test_a_wrong_token_is_an_error_that_does_not_show_the_token(metrica):
    url, _ = metrica
    from svyaz.exports.formats import Rows

    with pytest.raises(MetricaError) as caught:
        MetricaClient("wrong-token", COUNTER, url).upload("orders", Rows(header=["ClientId"]))
    assert "403" in str(caught.value) and "wrong-token" not in str(caught.value)


def test_calls_go_to_the_calls_endpoint(metrica):
    url, stand_in = metrica
    from svyaz.exports.formats import Rows

    MetricaClient(TOKEN, COUNTER, url).upload(
        "calls", Rows(header=["ClientId", "DateTime"], rows=[["1", "2"]])
    )
    assert (
        stand_in.received[0]["path"] == f"/management/v1/counter/{COUNTER}/offline_conversions/upload_calls"
    )


def test_calls_and_google_click_ids_from_the_touch_history(tmp_path, capsys):
    """A Direct click (yclid) and a call from that site session: Metrica gets the call keyed by the
    ClientID, the order with the yclid; a Google Ads click (gclid) puts its order in the click file."""
    from svyaz.adapters.queue import event_message
    from svyaz.domain.events import Event
    from svyaz.entrypoints.process import apply_message

    rt = build(config=Settings())
    at = datetime(2026, 11, 5, 10, 0, tzinfo=UTC)
    landing = "https://shop.example/sofas?utm_source=yandex&utm_medium=cpc&yclid=7391823641827364"
    events = [
        Event(
            event_id="olga-landing",
            type="page",
            timestamp=at,
            identifiers={"ym_client_id": "1690000000111222333", "session_id": "1980094999"},
            context={"source": "yandex", "medium": "cpc", "page_url": landing},
        ),
        Event(
            event_id="call:555",
            type="call",
            timestamp=at.replace(minute=20),
            channel="calltracking",
            identifiers={"phone": "+79031112233", "session_id": "1980094999"},
            properties={"duration": 212, "successful": True},
        ),
        Event(
            event_id="olga-order",
            type="order",
            timestamp=at.replace(day=9),
            channel="store",
            identifiers={"phone": "+79031112233"},
            properties={"order_id": "T-1", "amount": "50000", "currency": "RUB"},
        ),
        Event(
            event_id="gleb-landing",
            type="page",
            timestamp=at,
            identifiers={"client_id": "gleb-c"},
            context={
                "source": "google",
                "medium": "cpc",
                "page_url": "https://shop.example/?gclid=Cj0KCQiAxyz",
            },
        ),
        Event(
            event_id="gleb-order",
            type="order",
            timestamp=at.replace(hour=11),
            identifiers={"client_id": "gleb-c"},
            properties={"order_id": "W-5", "amount": "1000.50", "currency": "RUB"},
        ),
    ]
    for event in events:
        apply_message(event_message(event), rt)
    run_export(rt, tmp_path, capsys)
    orders = (tmp_path / "metrica-orders-2026-11-01_2026-11-30.csv").read_text().splitlines()
    calls = (tmp_path / "metrica-calls-2026-11-01_2026-11-30.csv").read_text().splitlines()
    assert orders[0] == "ClientId,Yclid,Target,DateTime,Price,Currency"
    assert orders[1].startswith("1690000000111222333,7391823641827364,offline_order,")
    assert calls == [
        "ClientId,Yclid,DateTime,StaticCall,TalkDuration,CallMissed",
        f"1690000000111222333,7391823641827364,{int(at.replace(minute=20).timestamp())},0,212,0",
    ]
    out = run_export(rt, tmp_path, capsys, target="google-ads")
    assert "refused order:T-1" not in out  # Olga has a phone: enhanced conversion
    gclid = (tmp_path / "google-ads-gclid-2026-11-01_2026-11-30.csv").read_text().splitlines()
    assert gclid[2] == "Cj0KCQiAxyz,Offline order,2026-11-05 11:00:00,1000.50,RUB"
    enhanced = (tmp_path / "google-ads-enhanced-2026-11-01_2026-11-30.csv").read_text()
    assert len(enhanced.splitlines()) == 3 and "+7903" not in enhanced
