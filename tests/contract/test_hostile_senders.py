"""Issue 11: what a hostile or careless sender sees, and what the customer sees after it, on
both stores (memory, and Firestore through the emulator: the ``store`` fixture).

Each test goes through the deployed functions exactly as GCP calls them (functions-framework
test clients) and applies what was queued through ``process_event``."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote

import pytest

from svyaz.adapters.store.memory import MemoryStore
from svyaz.domain.model import Identifier
from svyaz.domain.validation import MAX_TEXT_LENGTH
from tests.pipeline_support import API_KEY, WRITE_KEY, client, deliver_all, install

WEB = {"Authorization": f"Bearer {WRITE_KEY}"}
READ = {"Authorization": f"Bearer {API_KEY}"}
CRM_KEY = "test-crm-key"
CRM = {"Authorization": f"Bearer {CRM_KEY}"}
WRITE_KEY_2 = "test-write-key-of-the-app"


@pytest.fixture
def rt(store):
    """The ``rt`` of tests/conftest.py on both stores."""
    return install(store, crm_keys=[CRM_KEY], write_keys=[WRITE_KEY, WRITE_KEY_2])


def collect(body, headers=WEB):
    return client("collect").post("/collect", json=body, headers=headers)


def crm_order(order_id: str, phone: str, status: str = "paid", amount: str = "1000.00", time: str = "10:00"):
    body = {
        "order_id": order_id,
        "phone": phone,
        "status": status,
        "amount": amount,
        "time": f"2026-11-02T{time}:00Z",
    }
    return client("crm_webhook").post("/webhooks/crm", json=body, headers=CRM)


def page(event_id: str, **extra) -> dict:
    body = {"event_id": event_id, "type": "page", "timestamp": "2026-11-02T09:00:00Z"}
    return body | {"identifiers": {"client_id": "visitor-1"}} | extra


def profile(rt, kind: str, value: str):
    return rt.store.lookup(Identifier(kind, value))


# --- 1. event ids are namespaced by their sender --------------------------------------------


def test_a_web_event_cannot_squat_the_id_of_a_later_crm_order(rt):
    squat = collect(page("order:S-900:paid"))
    assert squat.status_code == 202 and squat.json["accepted"] == ["order:S-900:paid"]
    assert crm_order("S-900", "+79091112233").status_code == 202
    deliver_all(rt)
    customer = profile(rt, "phone", "+79091112233")
    assert customer is not None and customer.counters["orders"] == 1
    assert customer.counters["revenue"] == 1000.0


@pytest.mark.parametrize(
    "squatted", ["tg:902345671", "call:4711", "wa:wamid.HBgL", "qr:scan-1", "import:x:1"]
)
def test_no_channel_derived_id_is_reachable_from_collect(rt, squatted):
    assert collect(page(squatted)).status_code == 202
    [message] = rt.publisher.drain(rt.settings.events_topic)
    stored = json.loads(message.data)["event_id"]
    assert stored != squatted and stored.endswith(":" + squatted)


def test_two_write_keys_never_collide_but_each_keeps_exactly_once(rt):
    site = page("ev-1")
    app = page("ev-1", identifiers={"client_id": "visitor-2"})
    assert collect(site).status_code == 202
    assert collect(site).status_code == 202  # the site's retry
    assert collect(app, {"Authorization": f"Bearer {WRITE_KEY_2}"}).status_code == 202
    deliver_all(rt)
    assert profile(rt, "client_id", "visitor-1").counters["events"] == 1
    assert profile(rt, "client_id", "visitor-2").counters["events"] == 1


# --- 2. orders belong to who reported them -----------------------------------------------------


def test_the_site_cannot_take_over_or_alter_a_crm_order(rt):
    crm_order("S-901", "+79091112233", amount="1500.00")
    deliver_all(rt)
    forged = page(
        "o-1",
        type="order",
        properties={"order_id": "S-901", "amount": "99999999.99", "status": "refunded"},
    )
    assert collect(forged).status_code == 202
    deliver_all(rt)
    customer = profile(rt, "phone", "+79091112233")
    assert (customer.counters["orders"], customer.counters["revenue"]) == (1, 1500.0)
    history = rt.store.touchpoints([customer.profile_id], 10)
    assert [t.properties["order_id"] for t in history if t.type == "order"] == ["S-901"]
    # The site's own report is its own order, in its own namespace, on the visitor's profile.
    visitor = profile(rt, "client_id", "visitor-1")
    assert visitor.profile_id != customer.profile_id
    [site_order] = [t for t in rt.store.touchpoints([visitor.profile_id], 10) if t.type == "order"]
    assert site_order.name.endswith(":order:S-901") and site_order.name != "order:S-901"


def test_a_crm_order_id_reused_for_another_customer_is_a_conflict_not_a_move(rt):
    crm_order("S-902", "+79091112233", status="new", amount="700.00", time="10:00")
    deliver_all(rt)
    crm_order("S-902", "+79094445566", status="paid", amount="700.00", time="11:00")
    [message] = rt.publisher.drain(rt.settings.events_topic)
    from tests.pipeline_support import deliver

    deliver(message, rt)
    [update] = rt.publisher.drain(rt.settings.profile_updates_topic)[-1:]
    outcome = json.loads(update.data)
    assert outcome["status"] == "conflict"
    assert outcome["conflicts"][0]["kind"] == "order_id"
    first = profile(rt, "phone", "+79091112233")
    assert (first.counters["orders"], first.counters["revenue"]) == (1, 700.0)
    assert [t.type for t in rt.store.touchpoints([first.profile_id], 10)] == ["order"]
    second = profile(rt, "phone", "+79094445566")
    assert second is None or second.counters.get("revenue", 0) >= 0


def test_a_status_update_carried_by_an_unlinked_customer_changes_neither(rt):
    crm_order("S-903", "+79091112233", status="paid", amount="300.00", time="10:00")
    collect(page("v-1", identifiers={"phone": "+79094445566", "client_id": "visitor-9"}))
    deliver_all(rt)
    crm_order("S-903", "+79094445566", status="refunded", amount="300.00", time="12:00")
    deliver_all(rt)
    first, other = profile(rt, "phone", "+79091112233"), profile(rt, "phone", "+79094445566")
    assert (first.counters["orders"], first.counters["revenue"]) == (1, 300.0)
    assert other.counters.get("orders", 0) == 0 and other.counters.get("revenue", 0) == 0


@pytest.mark.parametrize("amount", ["-5", -5, "NaN", "1e30", True, "abc"])
def test_an_order_amount_is_never_negative_or_absurd(rt, amount):
    answer = collect(page("o-2", type="order", properties={"order_id": "W-1", "amount": amount}))
    assert answer.status_code == 400 and answer.json["error"] == "invalid_event"


# --- 3. event times ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    [
        "9999-12-31T23:59:59.999999Z",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:00:00-05:00",
        "1999-12-31T23:59:59Z",
        "2126-01-01T00:00:00Z",
    ],
)
def test_an_event_time_outside_the_window_is_a_400_and_the_customer_stays_readable(rt, timestamp):
    assert collect(page("t-0", timestamp="2026-11-02T08:00:00Z")).status_code == 202
    answer = collect(page("t-1", timestamp=timestamp))
    assert answer.status_code == 400, answer.json
    assert answer.json["events"][0]["errors"][0]["field"] == "timestamp"
    deliver_all(rt)
    customer = profile(rt, "client_id", "visitor-1")
    assert client("profiles").get(f"/profiles/{customer.profile_id}", headers=READ).status_code == 200
    assert client("profiles").delete(f"/profiles/{customer.profile_id}", headers=READ).status_code == 202
    deliver_all(rt)
    assert profile(rt, "client_id", "visitor-1") is None


def test_a_webhook_event_outside_the_window_is_ignored_with_its_reason(rt):
    answer = crm_order("S-904", "+79091112233", time="10:00")
    assert answer.status_code == 202
    old = client("crm_webhook").post(
        "/webhooks/crm",
        json={"order_id": "S-905", "phone": "+79091112233", "time": "1990-01-01T00:00:00Z"},
        headers=CRM,
    )
    assert old.status_code == 202 and old.json["accepted"] == []
    assert "timestamp is before" in old.json["ignored"][0]["reason"]


# --- 4. only what every store can hold is accepted --------------------------------------------


UNSTORABLE = [
    {"traits": {"__name__": "x"}},
    {"traits": {"__x__": "x"}},
    {"traits": {"": "x"}},
    {"traits": {"a.b": "x"}},
    {"properties": {"__name__": 1}},
    {"properties": {"": 1}},
    {"properties": {"big": 2**63}},
    {"properties": {"small": -(2**63) - 1}},
    {"traits": {"age": 2**64}},
    {"properties": {"deep": json.loads("[" * 25 + "]" * 25)}},
    {"properties": {"nested": [[1, 2], [3]]}},
    {"properties": {"text": "x" * (MAX_TEXT_LENGTH + 1)}},
    {"identifiers": {"client_id": "x" * 600}},
]


@pytest.mark.parametrize("extra", UNSTORABLE, ids=lambda e: json.dumps(e)[:40])
def test_what_a_store_cannot_hold_is_a_400_never_accepted_then_lost(rt, extra):
    answer = collect(page("u-1", **extra))
    assert answer.status_code == 400 and answer.json["error"] == "invalid_event", answer.json
    assert rt.publisher.drain(rt.settings.events_topic) == []


@pytest.mark.parametrize("depth", [33, 200, 499, 5000, 200_000])
def test_deeply_nested_json_is_a_400_on_every_json_endpoint(rt, depth):
    body = ("[" * depth + "]" * depth).encode()
    rt.settings.max_body_bytes = 1_000_000
    for target, path, headers in [
        ("collect", "/collect", WEB),
        ("crm_webhook", "/webhooks/crm", CRM),
    ]:
        answer = client(target).post(path, data=body, headers={**headers, "Content-Type": "application/json"})
        assert answer.status_code == 400 and answer.json["error"] == "invalid_json"


@pytest.mark.parametrize("nested", ["[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000])
def test_deeply_nested_json_in_a_signed_mango_form_is_a_400(rt, nested):
    """Mango's event is JSON inside a form field, checked by its signature: a deep one was read
    by a plain parser and answered 500 (RecursionError) even with a valid signature."""
    rt.settings.mango_api_key = type(rt.settings.pepper)("mango-key")
    rt.settings.mango_api_salt = type(rt.settings.pepper)("mango-salt")
    sign = hashlib.sha256(f"mango-key{nested}mango-salt".encode()).hexdigest()
    body = f"vpbx_api_key=mango-key&sign={sign}&json={quote(nested)}"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    path = "/webhooks/calltracking/mango/events/summary"
    answer = client("mango_webhook").post(path, data=body, headers=form)
    assert answer.status_code == 400 and answer.json["reason"] == "json: nested deeper than 32 levels"
    assert rt.publisher.drain(rt.settings.events_topic) == []


def test_a_call_time_out_of_utc_range_is_a_400_from_the_call_tracker(rt):
    """Calltouch sends account-local times: year 1 in Moscow overflowed in UTC, a 500."""
    rt.settings.calltracking_token = type(rt.settings.pepper)("ct-token")
    query = "token=ct-token&id=1&callerphone=79161234567&calltime=0001-01-01+00%3A00%3A00"
    answer = client("calltracking_webhook").get(f"/webhooks/calltracking/calltouch?{query}")
    assert answer.status_code == 400 and answer.json["reason"] == "time: out of range", answer.data
    assert rt.publisher.drain(rt.settings.events_topic) == []


def test_json_true_as_an_identifier_is_refused_and_links_nobody(rt):
    answer = collect(page("b-1", identifiers={"client_id": "visitor-1", "user_id": True}))
    assert answer.status_code == 400
    assert answer.json["events"][0]["errors"][0]["field"].startswith("identifiers")


# --- 6. invalid Unicode, malformed bodies, unknown paths: JSON 4xx -------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        '{"event_id": "\\ud800", "type": "page", "identifiers": {"client_id": "x"}}',
        '{"event_id": "e1", "type": "page", "identifiers": {"\\ud800": "x"}}',
        '{"event_id": "e1", "type": "page", "identifiers": {"client_id": "x"}, "traits": {"n": "\\udfff"}}',
        '{"event_id": "e1", "type": "page", "identifiers": {"client_id": "x"}, "properties": {"\\ud834": 1}}',
        '{"event_id": "e1", "type": "page", "identifiers": {"client_id": NaN}}',
    ],
)
def test_invalid_unicode_and_nan_are_a_json_400(rt, raw):
    answer = client("collect").post("/collect", data=raw.encode(), headers=WEB)
    assert answer.status_code == 400 and answer.json["error"] == "invalid_json"


def test_a_lone_surrogate_in_a_telegram_name_is_a_json_400(rt):
    rt.settings.telegram_secret_token = type(rt.settings.pepper)("tg-secret")
    update = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 1772373600,
            "text": "/start 1980094328",
            "from": {"id": 5, "is_bot": False, "first_name": "\ud800"},
            "chat": {"id": 5, "type": "private"},
        },
    }
    raw = json.dumps(update).encode()  # json.dumps writes the surrogate as \\ud800
    answer = client("telegram_webhook").post(
        "/webhooks/telegram", data=raw, headers={"X-Telegram-Bot-Api-Secret-Token": "tg-secret"}
    )
    assert answer.status_code == 400 and answer.json["error"] == "invalid_json"


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("collect", "/collect/x"),
        ("collect", "/robots.txt"),
        ("profiles", "/profiles/a/b/c"),
        ("profiles", "/favicon.ico/x/y"),
        ("crm_webhook", "/webhooks/crm/admin"),
        ("telegram_webhook", "/webhooks/telegram/x"),
        ("whatsapp_webhook", "/webhooks/whatsapp/x"),
        ("calltracking_webhook", "/webhooks/calltracking/x"),
    ],
)
def test_an_unknown_path_under_any_function_is_a_json_404(rt, target, path):
    answer = client(target).post(path, json={}, headers=READ if target == "profiles" else WEB)
    assert answer.status_code == 404 and answer.json["error"] == "not_found"


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for level in range(depth - 1):
        value = {f"level{level}": value}
    return value


def test_whatever_the_validation_accepts_every_store_holds_and_reads_back(store, policy):
    from svyaz.app.service import IdentityService
    from svyaz.domain.validation import MAX_DEPTH, MAX_INT, MAX_KEY_LENGTH, MIN_INT
    from tests.helpers import event

    properties = {
        "deep": _nested(MAX_DEPTH),
        "ints": [MAX_INT, MIN_INT, 0],
        "a.b": "dots are literal key names",
        "a/b": "so are slashes",
        "`x`": "and backticks",
        "ключ": "and Cyrillic",
        "__x": "not reserved",
        "x__": "nor this",
        "k" * MAX_KEY_LENGTH: "long key",
        "text": "я" * 4000,  # 8000 bytes: the whole of properties is capped at 16 KiB
        "rows": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1.5}],
        "empty": {"map": {}, "list": []},
    }
    traits = {f"t{n:02d}_" + "x" * 120: "ж" * 1000 for n in range(50)}
    traits |= {"age": MAX_INT, "vip": True, "score": 0.5, "none": None}
    from svyaz.domain.events import MAX_TRAITS

    traits = dict(list(traits.items())[:MAX_TRAITS])
    service = IdentityService(store, policy)
    outcome = service.apply(event({"client_id": "c-edge"}, properties=properties, traits=traits))
    profile = store.get_profile(outcome.profile_id)
    assert {name: t.value for name, t in profile.traits.items()} == traits
    [touch] = store.touchpoints([outcome.profile_id], 5)
    assert touch.properties == properties


# --- nothing accepted is silently lost: poison is acknowledged, counted and published ----------


def test_a_queued_event_that_can_never_apply_is_acknowledged_counted_and_published(rt):
    from svyaz.adapters.queue import Message
    from tests.pipeline_support import deliver

    # Accepted under a wider window, applied under today's: it can never apply.
    poison = {
        "event_id": "web-0123456789:old",
        "type": "page",
        "timestamp": "1990-05-01T00:00:00Z",
        "identifiers": {"client_id": "visitor-1"},
    }
    message = Message(json.dumps(poison).encode(), {"kind": "event", "event_id": poison["event_id"]})
    assert deliver(message, rt).status_code == 200  # acknowledged: Pub/Sub never redelivers it
    assert rt.rejected.count == 1 and rt.rejected.labels() == ["web-0123456789:old"]
    [update] = rt.publisher.drain(rt.settings.profile_updates_topic)
    body = json.loads(update.data)
    assert (update.attributes["status"], body["event_id"]) == ("rejected", "web-0123456789:old")
    assert "timestamp" in body["reason"]
    assert profile(rt, "client_id", "visitor-1") is None


def test_a_write_the_store_refuses_for_good_is_poison_not_a_retry_loop(rt, monkeypatch):
    from svyaz.adapters.store.base import Unstorable

    def refuse(*args, **kwargs):
        raise Unstorable("apply event: Firestore cannot hold it (InvalidArgument)")

    monkeypatch.setattr(rt.store, "transact", refuse)
    assert collect(page("p-1", traits={"city": "Kazan"})).status_code == 202
    deliver_all(rt)  # every delivery answers 200: nothing loops
    assert rt.rejected.count == 1 and rt.rejected.labels()[0].endswith(":p-1")


def test_firestore_refusing_a_document_is_classified_as_unstorable(store):
    from datetime import UTC, datetime

    from svyaz.adapters.store.base import StoreError, Unstorable
    from svyaz.domain.merge import Plan
    from svyaz.domain.model import Outcome, Profile, Trait

    at = datetime(2026, 11, 2, tzinfo=UTC)
    huge = Profile("p-huge", "active", at, at, traits={f"t{n}": Trait("ж" * 200_000, at) for n in range(4)})

    def decide(snapshot):
        return Plan(outcome=Outcome("ev-huge", "created", "p-huge"), profiles=[huge])

    if isinstance(store, MemoryStore):
        pytest.skip("only Firestore limits a document's size; the engine keeps profiles below it")
    with pytest.raises(Unstorable):
        store.transact([], "ev-huge", decide)
    assert issubclass(Unstorable, StoreError) and store.get_profile("p-huge") is None


# --- 4b. a profile never grows past what the store holds -----------------------------------------


def test_trait_names_past_the_profiles_cap_are_refused_as_conflicts(rt):
    from svyaz.domain.merge import MAX_PROFILE_TRAITS

    for batch in range(3):  # 50 new names per event: the third event finds the profile full
        traits = {f"trait_{batch}_{n:02d}": "x" * 1000 for n in range(50)}
        assert collect(page(f"tr-{batch}", traits=traits)).status_code == 202
    deliver_all(rt)
    outcomes = [json.loads(m.data) for m in rt.publisher.drain(rt.settings.profile_updates_topic)]
    assert [o["status"] for o in outcomes] == ["created", "unchanged", "conflict"]
    refused = outcomes[-1]["conflicts"]
    assert len(refused) == 50 and all(c["kind"] == "trait" for c in refused)
    assert "at most" in refused[0]["reason"] and "x" * 10 not in json.dumps(refused)
    customer = profile(rt, "client_id", "visitor-1")
    assert len(customer.traits) == MAX_PROFILE_TRAITS
    assert client("profiles").get(f"/profiles/{customer.profile_id}", headers=READ).status_code == 200
    # A known trait is still updated: only new names are refused.
    collect(page("tr-3", timestamp="2026-11-02T10:00:00Z", traits={"trait_0_00": "new"}))
    deliver_all(rt)
    assert profile(rt, "client_id", "visitor-1").traits["trait_0_00"].value == "new"


def test_an_event_that_would_grow_a_profile_past_the_safe_size_is_a_conflict(rt, monkeypatch):
    from svyaz.domain import merge

    assert collect(page("s-1", traits={"city": "Kazan"})).status_code == 202
    deliver_all(rt)
    monkeypatch.setattr(merge, "SAFE_PROFILE_BYTES", 3_000)
    grow = page("s-2", timestamp="2026-11-02T10:00:00Z", traits={"about": "ж" * 1000, "bio": "ж" * 1000})
    assert collect(grow).status_code == 202
    deliver_all(rt)
    [outcome] = [json.loads(m.data) for m in rt.publisher.drain(rt.settings.profile_updates_topic)][-1:]
    assert outcome["status"] == "conflict" and outcome["conflicts"][0]["kind"] == "profile"
    customer = profile(rt, "client_id", "visitor-1")
    assert set(customer.traits) == {"city"}  # nothing of the refused event was written
    assert client("profiles").delete(f"/profiles/{customer.profile_id}", headers=READ).status_code == 202
