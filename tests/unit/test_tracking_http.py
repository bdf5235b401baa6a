"""The collect function speaking the Segment / RudderStack tracking API and serving the site tag,
called as GCP calls it; events applied through process_event. Payloads: tests/fixtures/tracking."""

from __future__ import annotations

import base64
import json

import pytest

from svyaz.domain.model import Identifier
from svyaz.entrypoints.tag import tag_body
from tests.pipeline_support import WRITE_KEY, client, deliver_all, fixture, install


def basic(key: str, password: str = "") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:{password}".encode()).decode()}


BASIC = basic(WRITE_KEY)


@pytest.fixture
def rt_both(store):
    """On memory, and on the Firestore emulator (marked ``emulator``): what the mapping keeps
    (nested call metadata, SDK keys such as ``_metadata``) must be storable on both."""
    return install(store)


def post(path: str, body, headers=None, **kwargs):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client("collect").post(path, data=data, headers=headers or {}, **kwargs)


def applied(rt) -> int:
    return deliver_all(rt)


def profile(rt, kind: str, value: str):
    found = rt.store.lookup(Identifier(kind, value))
    assert found is not None, f"{kind}:{value} has no profile"
    return found


# --- each Segment call ends in the right profile ----------------------------------------------


def test_segment_page_with_a_campaign_is_the_profiles_first_touch(rt_both):
    rt = rt_both
    answer = post("/v1/page", fixture("tracking/segment_common_fields.json"), BASIC)
    assert answer.status_code == 200 and answer.json == {"success": True, "accepted": 1}
    assert applied(rt) == 1
    customer = profile(rt, "user_id", "97980cfea0067")
    assert customer.identifiers["client_id"] == ["507f191e810c19729de860ea"]
    assert customer.first_touch.attribution == {
        "source": "Newsletter",
        "medium": "email",
        "campaign": "TPS Innovation Newsletter",
        "term": "tps reports",
        "content": "image link",
    }
    assert customer.identifiers["device_id"] == ["b5372db0-c21e-11e4-8dfc-aa07a5b093db"]


def test_segment_identify_links_the_browser_user_and_email(rt):
    assert post("/v1/identify", fixture("tracking/segment_identify.json"), BASIC).status_code == 200
    assert applied(rt) == 1
    customer = profile(rt, "email", "peter@example.com")
    assert customer.identifiers["user_id"] == ["97980cfea0067"]
    assert customer.identifiers["client_id"] == ["507f191e810c19729de860ea"]
    assert customer.traits["name"].value == "Peter Gibbons"
    assert customer.traits["city"].value == "San Francisco"


def test_segment_track_keeps_its_own_visitor_apart(rt):
    assert post("/v1/track", fixture("tracking/segment_track.json"), BASIC).status_code == 200
    assert applied(rt) == 1
    customer = profile(rt, "user_id", "AiUGstSDIg")
    assert customer.identifiers["client_id"] == ["23adfd82-aa0f-45a7-a756-24f2a7a4c895"]
    assert customer.counters["type_course_clicked"] == 1
    [touch] = rt.store.touchpoints([customer.profile_id], limit=10)
    assert touch.properties["title"] == "Intro to Analytics"


def test_segment_alias_brings_the_earlier_browser_and_its_ad_to_the_user(rt_both):
    rt = rt_both
    # Before sign-up, browser 39239-... came from an ad; the alias says it was user 507f191e81.
    earlier = {
        "anonymousId": "39239-239239-239239-23923",
        "messageId": "m-early",
        "context": {"campaign": {"source": "vk", "medium": "social", "name": "kitchens-promo"}},
    }
    assert post("/v1/p", earlier, BASIC).status_code == 200
    alias = fixture("tracking/segment_alias.json")
    del alias["anonymousId"]  # as a server library sends it: only the two ids to link
    assert post("/v1/alias", alias, BASIC).status_code == 200
    assert applied(rt) == 2
    customer = profile(rt, "user_id", "507f191e81")
    assert customer.identifiers["client_id"] == ["39239-239239-239239-23923"]
    assert customer.first_touch.attribution == {
        "source": "vk",
        "medium": "social",
        "campaign": "kitchens-promo",
    }


def test_an_analytics_js_batch_is_accepted_whole_and_makes_one_customer(rt_both):
    rt = rt_both
    # analytics.js batching: text/plain, the write key in the body, no Authorization header.
    body = fixture("tracking/analyticsjs_batch.json")
    for call in body["batch"]:
        call["writeKey"] = WRITE_KEY
    body["writeKey"] = WRITE_KEY
    answer = post("/v1/b", body, {"Content-Type": "text/plain"})
    assert answer.status_code == 200 and answer.json == {"success": True, "accepted": 3}
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert applied(rt) == 3
    customer = profile(rt, "phone", "+79091234567")
    assert customer.identifiers["client_id"] == ["0603629a-4f93-4c63-9464-06bc8a24dfae"]
    assert customer.first_touch.attribution == {
        "source": "yandex",
        "medium": "cpc",
        "campaign": "sofas-autumn",
    }
    assert customer.counters["type_lead_created"] == 1 and customer.traits["first_name"].value == "Василий"


def test_the_segment_http_api_batch_and_rudderstack_payloads_are_accepted(rt):
    assert post("/v1/batch", fixture("tracking/segment_http_batch.json"), BASIC).json["accepted"] == 4
    assert post("/v1/track", fixture("tracking/rudderstack_common_fields.json"), BASIC).status_code == 200
    assert post("/v1/identify", fixture("tracking/rudderstack_identify.json"), BASIC).status_code == 200
    assert post("/v1/batch", fixture("tracking/rudderstack_gateway_batch.json"), BASIC).status_code == 400
    assert applied(rt) == 6
    assert profile(rt, "email", "cindy@example.com").counters["type_song_played"] == 1
    assert profile(rt, "user_id", "27340af5c8819").identifiers["email"] == ["rhedricks@example.com"]


def test_rudderstacks_gateway_batch_with_its_own_write_key_applies_identical_calls_once(rt):
    rt.settings.write_keys.append("writekey")  # the key its calls carry
    answer = post("/v1/batch", fixture("tracking/rudderstack_gateway_batch.json"), basic("writekey"))
    assert answer.status_code == 200 and answer.json["accepted"] == 2
    deliver_all(rt)
    assert profile(rt, "user_id", "userId").counters["events"] == 1  # no messageId: content names it


# --- idempotency, authentication, limits -------------------------------------------------------


def test_a_message_id_is_applied_once_per_write_key(rt):
    rt.settings.write_keys.append("other-site-key")
    call = {"userId": "u-1", "event": "Signed Up", "messageId": "same-id"}
    for headers in (BASIC, BASIC, basic("other-site-key")):
        assert post("/v1/t", call, headers).status_code == 200
    deliver_all(rt)
    # The retry is one event; the other site's call with the same messageId is its own.
    assert profile(rt, "user_id", "u-1").counters["type_signed_up"] == 2


@pytest.mark.parametrize(
    "path, headers, where",
    [
        ("/v1/track", basic(WRITE_KEY, "ignored"), "basic with a password"),
        (
            "/v1/track",
            {"Authorization": "Basic " + base64.b64encode(WRITE_KEY.encode()).decode()},
            "no colon",
        ),
        ("/v1/track", {"Authorization": f"Bearer {WRITE_KEY}"}, "bearer"),
        (f"/beacon/v1/batch?writeKey={WRITE_KEY}", {}, "query (RudderStack beacon)"),
        ("/collect/v1/track", BASIC, "under the function's own prefix"),
    ],
)
def test_the_write_key_as_each_sdk_sends_it(rt, path, headers, where):
    body = {"userId": "u-2", "event": "Opened"}
    if "batch" in path:
        body = {"batch": [{**body, "type": "track"}]}
    assert post(path, body, headers).status_code == 200, where


def test_a_wrong_or_missing_key_is_401_and_nothing_is_queued(rt):
    for headers in ({}, basic("guess"), {"Authorization": "Basic !!!"}):
        answer = post("/v1/track", {"userId": "u", "event": "e", "writeKey": "guess"}, headers)
        assert answer.status_code == 401 and answer.json["error"] == "unauthorized"
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="svyaz"'
    assert applied(rt) == 0


def test_without_configured_keys_the_api_is_503(rt):
    rt.settings.write_keys.clear()
    assert post("/v1/track", {"userId": "u", "event": "e"}, BASIC).status_code == 503


def test_a_batch_with_a_bad_call_is_refused_whole_naming_it(rt):
    body = fixture("tracking/segment_http_batch.json")
    body["batch"][3]["timestamp"] = "soon"
    answer = post("/v1/batch", body, BASIC)
    assert answer.status_code == 400 and answer.json["error"] == "invalid_payload"
    assert answer.json["details"] == [{"field": "batch[3].timestamp", "reason": "expected an ISO-8601 time"}]
    assert applied(rt) == 0


def test_a_call_whose_ids_are_all_garbage_is_refused(rt):
    answer = post("/v1/page", {"anonymousId": "undefined"}, BASIC)
    assert answer.status_code == 400 and answer.json["error"] == "invalid_event"
    assert applied(rt) == 0


def test_size_caps_fit_the_sdks_limits(rt):
    big = {"userId": "u", "event": "e", "properties": {"blob": "x" * 33_000}}
    assert post("/v1/track", big, BASIC).status_code == 413  # one call: 32 KB
    answer = post("/v1/batch", {"batch": [{**big, "type": "track"}]}, BASIC)
    assert answer.status_code == 400 and "larger than 32768 bytes" in answer.json["reason"]
    many = {"batch": [{"type": "track", "userId": "u", "event": "e"}] * 21}  # test settings: 20
    assert post("/v1/batch", many, BASIC).status_code == 413
    assert applied(rt) == 0


def test_browsers_may_send_from_any_origin_without_credentials(rt):
    answer = client("collect").options("/v1/batch", headers={"Origin": "https://shop.example"})
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "AnonymousId" in answer.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in answer.headers


def test_unknown_paths_and_methods_are_clear_4xx(rt):
    assert post("/v1/nope", {}, BASIC).status_code == 404
    assert client("collect").get("/v1/track", headers=BASIC).status_code == 405
    answer = post("/v1/track", b"{not json", BASIC)
    assert answer.status_code == 400 and answer.json["error"] == "invalid_json"


# --- the site tag ---------------------------------------------------------------------------------


def test_the_tag_is_served_small_cacheable_and_content_hashed(rt):
    body, digest = tag_body(rt.settings.cookie_name)
    answer = client("collect").get("/svyaz.js")
    assert answer.status_code == 200 and answer.data == body
    assert answer.headers["Content-Type"].startswith("application/javascript")
    assert answer.headers["Cache-Control"] == "public, max-age=3600, stale-while-revalidate=86400"
    assert answer.headers["ETag"] == f'"{digest}"'
    assert len(body) < 10_000  # a few KB, unminified
    pinned = client("collect").get(f"/svyaz.js?v={digest}")
    assert pinned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    stale = client("collect").get("/svyaz.js?v=0000")
    assert stale.headers["Cache-Control"].startswith("public, max-age=3600")
    assert client("collect").get("/svyaz.js", headers={"If-None-Match": f'"{digest}"'}).status_code == 304
    assert client("collect").head("/svyaz.js").data == b""
    assert client("collect").post("/svyaz.js").status_code == 405


def test_the_tag_uses_the_configured_cookie_name(rt):
    rt.settings.cookie_name = "shop_visitor"
    body = client("collect").get("/svyaz.js").data.decode()
    assert 'var COOKIE = "shop_visitor";' in body and '"svyaz_id"' not in body
    assert tag_body("shop_visitor")[1] != tag_body("svyaz_id")[1]
