"""The three bridge functions (``qr_landing``, ``whatsapp_webhook``, ``telegram_webhook``) called
exactly as GCP calls them: the functions-framework app of each target in ``functions/main.py``,
with a runtime on the in-memory store and the in-process queue."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import functions_framework
import pytest

from svyaz.adapters.queue import LocalQueue, Message
from svyaz.app import runtime
from svyaz.app.config import Settings
from svyaz.app.views import history
from svyaz.channels import qr
from svyaz.domain.events import Event
from svyaz.domain.model import Identifier
from svyaz.identity.normalize import normalize
from tests.pipeline_support import install

ROOT = Path(__file__).resolve().parents[2]
SOURCE = str(ROOT / "functions" / "main.py")
CHANNELS = ROOT / "tests" / "fixtures" / "channels"
BRIDGES = ROOT / "tests" / "fixtures" / "bridges"

QR_KEY = "qr-signing-key-for-tests-0123456789"
WA_SECRET = "whatsapp-app-secret-for-tests"
WA_VERIFY = "whatsapp-verify-token-for-tests"
TG_SECRET = "telegram-secret-token-for-tests"
MAX_BODY = 4096
TARGET = "https://shop.example/warranty?from=qr"
YM_UID = "1702385561118374409"
GA_COOKIE = "GA1.1.471788507.1650790107"


@dataclass
class Bridge:
    rt: runtime.Runtime
    queue: LocalQueue

    def client(self, target: str):
        # No cookie jar: each request carries exactly the Cookie header the test gives it.
        return functions_framework.create_app(target, SOURCE).test_client(use_cookies=False)

    def queued(self) -> list[Message]:
        return self.queue.drain(self.rt.settings.events_topic)

    def queued_events(self) -> list[Event]:
        return [Event.from_json(m.data) for m in self.queued()]


@pytest.fixture
def bridge() -> Bridge:
    settings = Settings(
        qr_signing_key=QR_KEY,
        qr_allowed_hosts=["shop.example"],
        whatsapp_app_secret=WA_SECRET,
        whatsapp_verify_token=WA_VERIFY,
        telegram_secret_token=TG_SECRET,
        max_body_bytes=MAX_BODY,
    )
    queue = LocalQueue()
    return Bridge(install(publisher=queue, config=settings), queue)


def fixture_bytes(path: Path) -> bytes:
    return path.read_bytes()


def wa_signature(raw: bytes, secret: str = WA_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def apply_through_worker(bridge: Bridge, messages: list[Message]) -> None:
    """Each message delivered to the deployed ``process_event`` target, as Pub/Sub would."""
    from svyaz.dev.local import Worker

    worker = Worker(bridge.rt)
    for message in messages:
        worker.deliver(message)
    assert worker.applied == len(messages)


def profile_holding(bridge: Bridge, kind: str, value: str):
    policy = bridge.rt.service.policy
    profile = bridge.rt.store.lookup(Identifier(kind, normalize(policy, kind, value)))
    assert profile is not None, f"no profile holds {kind}"
    return profile


# --------------------------------------------------------------------------------------------- QR


def token_for(
    *, expires_at: int | None = None, key: str = QR_KEY, target: str = TARGET, hosts=("shop.example",)
) -> str:
    code = qr.QrCode("msk-tverskaya", "warranty-2026", "ext-warranty", target, expires_at)
    return qr.sign_code(code, key.encode(), allowed_hosts=list(hosts))


def set_cookies(response) -> dict[str, dict[str, str | bool]]:
    """``Set-Cookie`` headers as {name: {"value": ..., attribute: value or True}}."""
    cookies: dict[str, dict[str, str | bool]] = {}
    for header in response.headers.getlist("Set-Cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        parsed: dict[str, str | bool] = {"value": value}
        for attribute in attributes:
            key, eq, val = attribute.partition("=")
            parsed[key.lower()] = val if eq else True
        cookies[name] = parsed
    return cookies


def test_qr_scan_redirects_to_the_signed_target_and_sets_the_id_cookie(bridge):
    client = bridge.client("qr_landing")
    response = client.get(f"/qr/{token_for()}", headers={"Cookie": f"_ym_uid={YM_UID}; _ga={GA_COOKIE}"})

    assert response.status_code == 302
    assert response.headers["Location"] == TARGET
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    cookie = set_cookies(response)["svyaz_id"]
    assert len(cookie["value"]) == 32
    assert cookie["secure"] is True and cookie["httponly"] is True
    assert str(cookie["samesite"]).lower() == "lax"
    assert int(cookie["max-age"]) >= 365 * 24 * 3600
    assert cookie["path"] == "/"

    [event] = bridge.queued_events()
    assert event.type == "qr_scan" and event.channel == "qr"
    assert event.identifiers == {
        "client_id": cookie["value"],
        "ym_client_id": YM_UID,
        "ga_client_id": GA_COOKIE,
    }
    assert event.properties == {"store_id": "msk-tverskaya", "offer": "ext-warranty"}
    assert (event.context.source, event.context.medium, event.context.campaign) == (
        "store",
        "qr",
        "warranty-2026",
    )


def test_qr_scan_with_our_cookie_keeps_it_and_sets_none(bridge):
    visitor = "0123456789abcdef0123456789abcdef"
    response = bridge.client("qr_landing").get(
        f"/qr/{token_for()}", headers={"Cookie": f"svyaz_id={visitor}; _ym_uid={YM_UID}"}
    )

    assert response.status_code == 302
    assert "svyaz_id" not in set_cookies(response)
    [event] = bridge.queued_events()
    assert event.identifiers == {"client_id": visitor, "ym_client_id": YM_UID}


def test_qr_scan_replaces_a_cookie_that_is_not_ours(bridge):
    response = bridge.client("qr_landing").get(
        f"/qr/{token_for()}", headers={"Cookie": "svyaz_id=<script>alert(1)</script>"}
    )

    assert response.status_code == 302
    new = set_cookies(response)["svyaz_id"]["value"]
    assert len(new) == 32 and all(c in "0123456789abcdef" for c in new)
    [event] = bridge.queued_events()
    assert event.identifiers == {"client_id": new}


def test_two_scans_are_two_distinct_events(bridge):
    client = bridge.client("qr_landing")
    for _ in range(2):
        assert client.get(f"/qr/{token_for()}").status_code == 302
    ids = [e.event_id for e in bridge.queued_events()]
    assert len(ids) == 2 and len(set(ids)) == 2 and all(i.startswith("qr:") for i in ids)


def _tampered_payload(token: str) -> str:
    body, _, tag = token.partition(".")
    forged = json.loads(qr._b64decode(body))
    forged["t"] = "https://evil.example/phish"
    return qr._b64encode(json.dumps(forged, separators=(",", ":")).encode()) + "." + tag


def _flip_last(token: str) -> str:
    return token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]


@pytest.mark.parametrize(
    ("make_token", "status"),
    [
        pytest.param(lambda: _tampered_payload(token_for()), 404, id="payload-tampered"),
        pytest.param(lambda: _flip_last(token_for()), 404, id="tag-tampered"),
        pytest.param(lambda: token_for(key="another-brand-key-0123456789"), 404, id="unknown-key"),
        pytest.param(lambda: token_for(expires_at=int(time.time()) - 60), 410, id="expired"),
        pytest.param(lambda: "eyJzIjoiMSJ9.AAAAAAAAAAAAAAAAAAAAAA", 404, id="unknown-code"),
        pytest.param(lambda: "", 404, id="no-code"),
        pytest.param(
            lambda: token_for(target="https://partner.example/x", hosts=("shop.example", "partner.example")),
            404,
            id="target-no-longer-allowed",
        ),
    ],
)
def test_bad_codes_get_a_short_page_no_redirect_nothing_queued(bridge, make_token, status):
    response = bridge.client("qr_landing").get(f"/qr/{make_token()}", headers={"Cookie": f"_ym_uid={YM_UID}"})

    assert response.status_code == status
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert page.startswith("<!doctype html>") and len(page) < 1000
    assert "evil.example" not in page and "shop.example" not in page
    assert "svyaz_id" not in set_cookies(response)
    assert bridge.queued() == []


def test_qr_post_is_405_and_queues_nothing(bridge):
    response = bridge.client("qr_landing").post(f"/qr/{token_for()}")

    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"
    assert "Location" not in response.headers
    assert bridge.queued() == []


def test_qr_head_probe_of_a_link_previewer_records_no_visit(bridge):
    response = bridge.client("qr_landing").head(f"/qr/{token_for()}")
    assert response.status_code == 302 and response.headers["Location"] == TARGET
    assert "svyaz_id" not in set_cookies(response)
    assert bridge.queued() == []


def test_qr_landing_on_the_functions_own_url_without_prefix(bridge):
    """Deployed alone, the function sees ``/<token>`` (no load balancer prefix)."""
    response = bridge.client("qr_landing").get(f"/{token_for()}")
    assert response.status_code == 302 and response.headers["Location"] == TARGET
    assert len(bridge.queued()) == 1


# --------------------------------------------------------------------------------------- WhatsApp


def wa_post(bridge: Bridge, raw: bytes, signature: str | None = "auto"):
    headers = {"Content-Type": "application/json"}
    if signature == "auto":
        signature = wa_signature(raw)
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return bridge.client("whatsapp_webhook").post("/", data=raw, headers=headers)


def test_whatsapp_handshake_echoes_the_challenge_as_plain_text(bridge):
    response = bridge.client("whatsapp_webhook").get(
        "/",
        query_string={"hub.mode": "subscribe", "hub.verify_token": WA_VERIFY, "hub.challenge": "1158201444"},
    )
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong-token", "hub.challenge": "1158201444"},
        {"hub.mode": "unsubscribe", "hub.verify_token": WA_VERIFY, "hub.challenge": "1158201444"},
        {"hub.mode": "subscribe", "hub.challenge": "1158201444"},
        {"hub.mode": "subscribe", "hub.verify_token": WA_VERIFY, "hub.challenge": "<script>"},
    ],
    ids=["wrong-token", "wrong-mode", "no-token", "unsafe-challenge"],
)
def test_whatsapp_handshake_refused(bridge, params):
    response = bridge.client("whatsapp_webhook").get("/", query_string=params)
    assert response.status_code == 403
    assert "1158201444" not in response.get_data(as_text=True)


def test_whatsapp_signed_message_is_queued_with_phone_and_session(bridge):
    raw = fixture_bytes(CHANNELS / "whatsapp_text_message.json")
    response = wa_post(bridge, raw)

    assert response.status_code == 200
    message_id = json.loads(raw)["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    assert response.get_json() == {"accepted": [f"wa:{message_id}"], "ignored": []}
    [event] = bridge.queued_events()
    assert event.event_id == f"wa:{message_id}"
    assert event.type == "message" and event.channel == "whatsapp"
    assert event.identifiers["phone"] == "+79091234567"
    assert event.identifiers["session_id"] == "1980094328"
    assert event.traits == {"name": "Мария Иванова"}


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        wa_signature(b"{}"),
        wa_signature(fixture_bytes(CHANNELS / "whatsapp_text_message.json"), "another-app-secret"),
        "sha1=" + hashlib.sha1(b"x").hexdigest(),  # noqa: S324 - the legacy header format
    ],
    ids=["missing", "empty", "zeros", "other-body", "other-secret", "sha1"],
)
def test_whatsapp_bad_signature_is_401_and_nothing_queued(bridge, signature):
    response = wa_post(bridge, fixture_bytes(CHANNELS / "whatsapp_text_message.json"), signature)
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert bridge.queued() == []


def test_whatsapp_signature_covers_the_raw_bytes_not_the_json(bridge):
    """A signature over the same JSON re-serialized is not the signature of what was sent."""
    raw = fixture_bytes(CHANNELS / "whatsapp_text_message.json")
    reserialized = json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False).encode()
    assert reserialized != raw
    assert wa_post(bridge, raw, wa_signature(reserialized)).status_code == 401
    assert bridge.queued() == []


def test_whatsapp_status_only_delivery_is_200_and_nothing_queued(bridge):
    response = wa_post(bridge, fixture_bytes(CHANNELS / "whatsapp_status.json"))
    assert response.status_code == 200
    assert response.get_json() == {"accepted": [], "ignored": []}
    assert bridge.queued() == []


def test_whatsapp_cyrillic_text_signed_over_utf8_bytes(bridge):
    raw = fixture_bytes(BRIDGES / "whatsapp_cyrillic_template.json")
    assert "Мой номер заявки".encode() in raw  # raw UTF-8 on the wire, not \\u escapes
    response = wa_post(bridge, raw)

    assert response.status_code == 200
    [event] = bridge.queued_events()
    assert event.identifiers == {"phone": "+79165550102", "session_id": "2011873356"}
    assert event.traits == {"name": "Екатерина Смирнова"}
    body = json.loads(raw)["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"]
    assert event.properties["text_length"] == len(body)


def test_whatsapp_template_edited_away_still_records_the_phone(bridge):
    response = wa_post(bridge, fixture_bytes(BRIDGES / "whatsapp_edited_away.json"))

    assert response.status_code == 200
    [event] = bridge.queued_events()
    assert event.identifiers == {"phone": "+79031234455"}
    assert "session_id" not in event.identifiers


def test_whatsapp_replay_is_one_event_counted_once(bridge):
    raw = fixture_bytes(CHANNELS / "whatsapp_text_message.json")
    first, second = wa_post(bridge, raw), wa_post(bridge, raw)

    assert first.status_code == second.status_code == 200
    assert first.get_json()["accepted"] == second.get_json()["accepted"]
    messages = bridge.queued()
    assert len(messages) == 2  # both deliveries queued; the pipeline dedupes
    assert messages[0].attributes["event_id"] == messages[1].attributes["event_id"]

    apply_through_worker(bridge, messages)
    profile = profile_holding(bridge, "phone", "+79091234567")
    assert profile.counters["events"] == 1
    assert profile.counters["type_message"] == 1
    assert len(history(bridge.rt.store, profile)) == 1


def test_whatsapp_oversized_body_is_413_even_when_signed(bridge):
    raw = json.dumps({"object": "whatsapp_business_account", "entry": [], "pad": "я" * MAX_BODY}).encode()
    response = wa_post(bridge, raw)
    assert response.status_code == 413
    assert response.get_json()["error"] == "too_large"
    assert bridge.queued() == []


def test_whatsapp_signed_garbage_is_400(bridge):
    for raw in (b"not json", b'{"object": "page", "entry": []}'):
        response = wa_post(bridge, raw)
        assert response.status_code == 400
    assert bridge.queued() == []


def test_whatsapp_without_app_secret_is_503(bridge):
    bridge.rt.settings.whatsapp_app_secret = type(bridge.rt.settings.whatsapp_app_secret)("")
    response = wa_post(bridge, fixture_bytes(CHANNELS / "whatsapp_text_message.json"))
    assert response.status_code == 503
    assert bridge.queued() == []


# --------------------------------------------------------------------------------------- Telegram


def tg_post(bridge: Bridge, raw: bytes, secret: str | None = TG_SECRET):
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return bridge.client("telegram_webhook").post("/", data=raw, headers=headers)


def test_telegram_start_is_queued_with_telegram_id_and_session(bridge):
    response = tg_post(bridge, fixture_bytes(CHANNELS / "telegram_start.json"))

    assert response.status_code == 200
    assert response.get_json() == {"accepted": ["tg:902345671"], "ignored": []}
    [event] = bridge.queued_events()
    assert event.type == "messenger_start" and event.channel == "telegram"
    assert event.identifiers == {"telegram_id": "5523401987", "session_id": "1980094328"}
    assert event.traits["first_name"] == "Дмитрий"


@pytest.mark.parametrize(
    "secret", [None, "", "wrong-secret", TG_SECRET + "x"], ids=["missing", "empty", "wrong", "longer"]
)
def test_telegram_wrong_or_missing_secret_is_401(bridge, secret):
    response = tg_post(bridge, fixture_bytes(CHANNELS / "telegram_start.json"), secret)
    assert response.status_code == 401
    assert bridge.queued() == []


def test_telegram_bot_sender_is_ignored(bridge):
    response = tg_post(bridge, fixture_bytes(BRIDGES / "telegram_bot_sender.json"))
    assert response.status_code == 200
    assert response.get_json() == {"accepted": [], "ignored": []}
    assert bridge.queued() == []


def test_telegram_replay_is_one_event_counted_once(bridge):
    raw = fixture_bytes(CHANNELS / "telegram_start.json")
    assert tg_post(bridge, raw).status_code == 200
    assert tg_post(bridge, raw).status_code == 200
    messages = bridge.queued()
    assert [m.attributes["event_id"] for m in messages] == ["tg:902345671", "tg:902345671"]

    apply_through_worker(bridge, messages)
    profile = profile_holding(bridge, "telegram_id", "5523401987")
    assert profile.counters["events"] == 1
    assert profile.counters["type_messenger_start"] == 1
    assert len(history(bridge.rt.store, profile)) == 1


def test_telegram_oversized_body_is_413(bridge):
    update = json.loads(fixture_bytes(CHANNELS / "telegram_start.json"))
    update["message"]["pad"] = "x" * MAX_BODY
    response = tg_post(bridge, json.dumps(update).encode())
    assert response.status_code == 413
    assert bridge.queued() == []


def test_telegram_get_is_405(bridge):
    response = bridge.client("telegram_webhook").get(
        "/", headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    )
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_qr_target_is_never_taken_from_the_request(bridge):
    """No query parameter or header changes where a valid code leads (no open redirect)."""
    response = bridge.client("qr_landing").get(
        f"/qr/{token_for()}",
        query_string={"target": "https://evil.example/", "next": "https://evil.example/", "t": "x"},
        headers={"Referer": "https://evil.example/", "X-Forwarded-Host": "evil.example"},
    )
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).hostname == "shop.example"


class _Recorder(LocalQueue):
    """Records how the landing hands the scan over: waited for, and with which deadline."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.calls: list[tuple[str, float | None]] = []
        self.fail = fail

    def publish_within(self, topic, messages, seconds):
        self.calls.append(("within", seconds))
        if self.fail:
            from svyaz.adapters.queue import QueueUnavailable

            raise QueueUnavailable("broker slower than the deadline")
        self.publish(topic, messages)

    def publish_nowait(self, topic, messages):
        self.calls.append(("nowait", None))
        self.publish(topic, messages)


def _landing_with(publisher: LocalQueue, **overrides) -> Bridge:
    settings = Settings(qr_signing_key=QR_KEY, qr_allowed_hosts=["shop.example"], **overrides)
    return Bridge(install(publisher=publisher, config=settings), publisher)


def test_the_scan_is_published_before_the_answer_within_a_short_deadline():
    """A CPU-throttled platform may never run a publish left for after the response."""
    recorder = _Recorder()
    bridge = _landing_with(recorder)
    response = bridge.client("qr_landing").get(f"/qr/{token_for()}")
    assert response.status_code == 302
    assert recorder.calls == [("within", 2.0)]
    assert [e.type for e in bridge.queued_events()] == ["qr_scan"]

    recorder.calls.clear()
    _landing_with(recorder, qr_publish_deadline_seconds=0)  # an always-allocated CPU
    assert bridge.client("qr_landing").get(f"/qr/{token_for()}").status_code == 302
    assert recorder.calls == [("nowait", None)]


def test_a_broker_past_the_deadline_costs_the_scan_not_the_redirect_and_is_logged(caplog):
    import logging

    recorder = _Recorder(fail=True)
    bridge = _landing_with(recorder)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("svyaz.qr").addHandler(handler)
    response = bridge.client("qr_landing").get(f"/qr/{token_for()}")
    logging.getLogger("svyaz.qr").removeHandler(handler)
    assert response.status_code == 302 and response.headers["Location"] == TARGET
    [record] = [r for r in records if "qr scan not recorded" in r.getMessage()]
    assert record.levelname == "ERROR"
    assert record.svyaz["store_id"] == "msk-tverskaya" and len(record.svyaz["scan_id"]) == 32
