"""One shopper across four channels, through the local service over real HTTP.

A web visit (Metrica cookie, site session), then a QR code scanned in the store (the landing sees
the same ``_ym_uid``), a WhatsApp message whose prefilled text carries the session id, and a
Telegram ``/start <session id>``: the profile API must show one profile holding all of them and
the four touches. Run on the embedded default (memory store, in-process queue) and on the real
Firestore and Pub/Sub emulators.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from svyaz.adapters.queue import PubSubPublisher
from svyaz.app.config import Settings
from svyaz.channels import qr
from tests.conftest import PROJECT, make_firestore_store
from tests.pipeline_support import build, http, served

BRIDGES = Path(__file__).resolve().parents[1] / "fixtures" / "bridges"

WRITE_KEY = "journey-write-key"
API_KEY = "journey-api-key"
QR_KEY = "journey-qr-signing-key-0123456789"
WA_SECRET = "journey-whatsapp-app-secret"
TG_SECRET = "journey-telegram-secret"
TARGET = "https://shop.example/warranty?from=qr"

SESSION_ID = "4070021455"
YM_UID = "1702385561118374409"
CLIENT_ID = "a81d03c4f6"
PHONE = "+79165550102"
TELEGRAM_ID = "5523401987"


def settings() -> Settings:
    return Settings(
        gcp_project=PROJECT,
        write_keys=[WRITE_KEY],
        api_keys=[API_KEY],
        qr_signing_key=QR_KEY,
        qr_allowed_hosts=["shop.example"],
        whatsapp_app_secret=WA_SECRET,
        whatsapp_verify_token="journey-verify-token",
        telegram_secret_token=TG_SECRET,
    )


def fixture_with_session(name: str) -> dict[str, Any]:
    return json.loads((BRIDGES / name).read_bytes().replace(b"{sessionId}", SESSION_ID.encode()))


def wire(payload: dict[str, Any]) -> bytes:
    """UTF-8 JSON as the vendors send it (Cyrillic unescaped)."""
    return json.dumps(payload, ensure_ascii=False).encode()


def send_journey(url: str) -> dict[str, Any]:
    """The four touches over HTTP; each answer checked as the sender would."""
    answers: dict[str, Any] = {}
    now = int(time.time())

    visit = {
        "event_id": f"web-{uuid.uuid4().hex}",
        "type": "page",
        "timestamp": now - 3600,
        "identifiers": {"client_id": CLIENT_ID, "session_id": SESSION_ID, "ym_client_id": YM_UID},
        "context": {"source": "vk", "medium": "social", "campaign": "kitchens-promo"},
    }
    answer = http(f"{url}/collect", visit, key=WRITE_KEY)
    assert answer.status == 202, answer.body
    assert answer.json["accepted"] == [visit["event_id"]]

    code = qr.QrCode("msk-tverskaya", "warranty-2026", "ext-warranty", TARGET, int(time.time()) + 86400)
    token = qr.sign_code(code, QR_KEY.encode(), allowed_hosts=["shop.example"])
    answer = http(f"{url}/qr/{token}", headers={"Cookie": f"_ym_uid={YM_UID}"})
    assert answer.status == 302
    assert answer.headers["Location"] == TARGET
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("svyaz_id=") and "Secure" in cookie and "HttpOnly" in cookie
    answers["svyaz_id"] = cookie.split(";", 1)[0].split("=", 1)[1]

    message = fixture_with_session("whatsapp_journey.json")
    message["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(now + 60)
    raw = wire(message)
    signature = "sha256=" + hmac.new(WA_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    answer = http(
        f"{url}/webhooks/whatsapp",
        raw,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
    )
    assert answer.status == 200, answer.body
    assert len(answer.json["accepted"]) == 1

    update = fixture_with_session("telegram_journey.json")
    update["message"]["date"] = now + 120
    answer = http(
        f"{url}/webhooks/telegram",
        wire(update),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
    )
    assert answer.status == 200, answer.body
    assert answer.json["accepted"] == ["tg:902345700"]
    return answers


def api(url: str) -> tuple[int, Any]:
    answer = http(url, key=API_KEY)
    return answer.status, answer.json


def lookup(url: str, kind: str, value: str) -> tuple[int, Any]:
    return api(f"{url}/profiles/lookup?{urlencode({'kind': kind, 'value': value})}")


def check_one_profile(url: str, svyaz_id: str) -> None:
    status, profile = lookup(url, "ym_client_id", YM_UID)
    assert status == 200, profile
    identifiers = profile["identifiers"]
    assert identifiers["ym_client_id"] == [YM_UID]
    assert identifiers["phone"] == [PHONE]
    assert identifiers["telegram_id"] == [TELEGRAM_ID]
    assert identifiers["session_id"] == [SESSION_ID]
    assert sorted(identifiers["client_id"]) == sorted([CLIENT_ID, svyaz_id])
    assert profile["first_touch"]["source"] == "vk"  # the offline scan keeps the online first touch

    for kind, value in (
        ("phone", "8 (916) 555-01-02"),
        ("telegram_id", TELEGRAM_ID),
        ("client_id", svyaz_id),
    ):
        status, same = lookup(url, kind, value)
        assert status == 200 and same["profile_id"] == profile["profile_id"], kind

    status, page = api(f"{url}/profiles/{quote(profile['profile_id'])}/touchpoints")
    assert status == 200, page
    touches = {t["type"]: t for t in page["touchpoints"]}
    assert sorted(t["type"] for t in page["touchpoints"]) == ["message", "messenger_start", "page", "qr_scan"]
    assert {t["channel"] for t in page["touchpoints"]} == {"web", "qr", "whatsapp", "telegram"}
    assert touches["qr_scan"]["properties"]["store_id"] == "msk-tverskaya"
    assert touches["qr_scan"]["attribution"]["medium"] == "qr"
    assert profile["counters"]["events"] == 4


def touch_count(url: str) -> int:
    status, profile = lookup(url, "ym_client_id", YM_UID)
    if status != 200:
        return 0
    status, page = api(f"{url}/profiles/{quote(profile['profile_id'])}/touchpoints")
    return len(page["touchpoints"]) if status == 200 else 0


def test_journey_on_the_embedded_default():
    with served(build(config=settings())) as service:
        answers = send_journey(service.url)
        assert service.worker.wait_idle(10)
        assert service.worker.applied == 4 and service.worker.dead_letters == []
        check_one_profile(service.url, answers["svyaz_id"])


@pytest.mark.emulator
def test_journey_on_firestore_and_pubsub_emulators(firestore_emulator, pubsub_emulator):
    store = make_firestore_store(firestore_emulator)
    with served(build(store, PubSubPublisher(PROJECT), config=settings())) as service:
        started = time.monotonic()
        answers = send_journey(service.url)
        # Worker.pending() counts the local queue only: with Pub/Sub, poll until the four touches
        # are applied (the subscription may also hold messages of other tests, so count ours).
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and touch_count(service.url) < 4:
            time.sleep(0.1)
        check_one_profile(service.url, answers["svyaz_id"])
        assert service.worker.dead_letters == []
        assert time.monotonic() - started < 30
