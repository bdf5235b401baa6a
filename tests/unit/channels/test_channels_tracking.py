"""Golden tests of the tracking API parser: Segment's and RudderStack's published payloads
(``tests/fixtures/tracking/README.md`` names each source) as the canonical events they become."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from svyaz.channels import ChannelError
from svyaz.channels.tracking import TrackingKinds, call_for_path, event_time, parse_request, parse_time
from tests.pipeline_support import fixture

RECEIVED = datetime(2026, 11, 2, 10, 0, 5, tzinfo=UTC)
NS = "wk-test"


def parse(call, name_or_body, **options):
    body = fixture(f"tracking/{name_or_body}") if isinstance(name_or_body, str) else name_or_body
    return parse_request(call, body, namespace=NS, received_at=RECEIVED, **options)


def test_segment_identify_names_the_user_and_keeps_every_trait():
    [event] = parse("identify", "segment_identify.json")
    assert event.event_id == "wk-test:022bb90c-bbac-11e4-8dfc-aa07a5b093db"
    assert event.type == "identify" and event.channel == "web"
    assert event.identifiers == {
        "client_id": "507f191e810c19729de860ea",
        "user_id": "97980cfea0067",
        "email": "peter@example.com",
    }
    assert event.traits == {"name": "Peter Gibbons", "plan": "premium", "logins": 5, "city": "San Francisco"}
    assert event.properties["call"]["traits"]["address"]["postalCode"] == "94103"  # kept, not refused
    assert event.properties["call"]["channel"] == "browser" and event.properties["call"]["version"] == "1.1"
    assert (event.context.ip, event.context.user_agent[:11]) == ("8.8.8.8", "Mozilla/5.0")
    # timestamp == sentAt: the device's clock is trusted to the millisecond it sent the call.
    assert event.timestamp == RECEIVED


def test_segment_track_takes_the_event_name_as_type_and_the_page_as_context():
    [event] = parse("track", "segment_track.json")
    assert event.type == "course_clicked"
    assert event.properties["title"] == "Intro to Analytics"
    assert event.properties["call"]["event"] == "Course Clicked"
    assert event.identifiers == {"client_id": "23adfd82-aa0f-45a7-a756-24f2a7a4c895", "user_id": "AiUGstSDIg"}
    assert event.context.page_url == "https://segment.com/academy/"
    assert event.properties["call"]["context"]["library"] == {"name": "analytics.js", "version": "2.11.1"}
    # Skew-corrected: received - (sentAt - originalTimestamp) = 17 ms before receipt.
    assert event.timestamp == RECEIVED - timedelta(milliseconds=17)


def test_segment_page_uses_the_page_properties_as_url():
    [event] = parse("page", "segment_page.json")
    assert event.type == "page" and event.context.page_url == "http://www.example.com"
    assert event.properties["call"]["name"] == "Home"


def test_segment_alias_links_the_previous_id_and_the_user():
    [event] = parse("alias", "segment_alias.json")
    assert event.type == "alias"
    assert event.identifiers == {
        "client_id": ["507f191e810c19729de860ea", "39239-239239-239239-23923"],
        "user_id": "507f191e81",
    }


def test_segment_screen_is_a_screen_view_of_the_app_user():
    [event] = parse("screen", "segment_screen.json")
    assert event.type == "screen"
    assert event.identifiers == {
        "client_id": "3a12eab0-bca7-11e4-8dfc-aa07a5b093db",
        "user_id": "97980cfea0067",
    }
    assert event.properties == {
        "variation": "blue signup button",
        "call": {
            "channel": "mobile",
            "name": "Home",
            "version": "1.1",
        },
    }


def test_segment_group_traits_describe_the_company_not_the_person():
    [event] = parse("group", "segment_group.json")
    assert event.type == "group" and event.traits == {}
    assert event.identifiers == {"client_id": "507f191e810c19729de860ea", "user_id": "97980cfea0067"}
    assert event.properties["call"]["groupId"] == "0e8c78ea9d97a7b8185e8632"
    assert event.properties["call"]["group_traits"]["total billed"] == 830


def test_the_previous_id_kind_is_configurable():
    kinds = TrackingKinds.from_mapping({"previousId": "user_id", "anonymousId": "ym_client_id"})
    [event] = parse("alias", "segment_alias.json", kinds=kinds)
    assert event.identifiers == {
        "ym_client_id": "507f191e810c19729de860ea",
        "user_id": ["507f191e81", "39239-239239-239239-23923"],
    }


def test_common_fields_campaign_becomes_attribution_and_device_ids_identifiers():
    # The spec's common-fields example is a track call without an event name, which Segment
    # refuses ("Track event is missing name"); its fields are sent here as a page call.
    with pytest.raises(ChannelError, match="event"):
        parse(None, {"batch": [fixture("tracking/segment_common_fields.json")]})
    [event] = parse("page", "segment_common_fields.json")
    assert event.context.attribution() == {
        "source": "Newsletter",
        "medium": "email",
        "campaign": "TPS Innovation Newsletter",
        "term": "tps reports",
        "content": "image link",
    }
    assert event.identifiers["device_id"] == "B5372DB0-C21E-11E4-8DFC-AA07A5B093DB"
    assert event.identifiers["advertising_id"] == "7A3CBEA0-BDF5-11E4-8DFC-AA07A5B093DB"
    assert event.identifiers["push_token"].startswith("ff15bc0c")
    assert event.properties["call"]["context"]["location"]["city"] == "San Francisco"


def test_the_http_api_batch_merges_its_context_and_reads_its_odd_timestamps():
    events = parse(None, "segment_http_batch.json")
    assert [e.type for e in events] == ["identify", "song_played", "identify", "song_played"]
    assert events[0].identifiers == {"user_id": "019mr8mf4r", "email": "jake@yahoo.com"}
    assert events[2].timestamp == datetime(2015, 2, 2, 0, 30, 8, 276000, tzinfo=UTC)
    assert all(e.properties["call"]["context"]["device"]["name"] == "Apple iPhone 6" for e in events)
    # No messageId: the content names the call (a retried identical call is the same event).
    assert len({e.event_id for e in events}) == 4 and all(e.event_id.startswith("wk-test:h-") for e in events)


def test_rudderstack_common_fields_sample_with_original_timestamp_and_campaign():
    [event] = parse("track", "rudderstack_common_fields.json")
    assert event.type == "product_reviewed"
    assert event.identifiers == {"client_id": "7e32188a4dab669f", "device_id": "7e32188a4dab669f"}
    assert event.context.attribution()["source"] == "google"
    assert event.context.campaign == "some campaign"
    # received - (sentAt - originalTimestamp) = 9.699 s before receipt
    assert event.timestamp == RECEIVED - timedelta(seconds=9, milliseconds=699)
    assert "anonymousId" not in event.traits


def test_rudderstack_identify_reads_traits_from_the_context():
    [event] = parse("identify", "rudderstack_identify.json")
    assert event.identifiers == {"user_id": "27340af5c8819", "email": "rhedricks@example.com"}
    assert event.traits == {"name": "Richard Hendricks", "logins": 2}
    assert event.timestamp == RECEIVED  # no time in the call: the time it arrived


def test_rudderstack_gateway_batch_without_message_ids_names_identical_calls_alike():
    first, second = parse(None, "rudderstack_gateway_batch.json")
    assert first.event_id == second.event_id
    assert first.identifiers["device_id"] == "deviceID" and first.identifiers["user_id"] == "userId"
    assert first.traits["LATOKEN_ID"] == "latoken-id"


def test_an_analytics_js_batch_is_parsed_whole():
    events = parse(None, "analyticsjs_batch.json", write_key="YOUR_WRITE_KEY")
    assert [e.type for e in events] == ["page", "identify", "lead_created"]
    page, identify, lead = events
    assert page.event_id == "wk-test:ajs-next-6b1c8e52f0a34f0d9c6b8c1f54b7a1e2"
    assert page.context.attribution() == {"source": "yandex", "medium": "cpc", "campaign": "sofas-autumn"}
    assert page.properties["click_ids"] == {"yclid": "4617393728161"}
    assert page.context.referrer == "https://yandex.ru/"
    assert identify.identifiers == {
        "client_id": "0603629a-4f93-4c63-9464-06bc8a24dfae",
        "phone": "8 (909) 123-45-67",
    }
    assert identify.traits == {"first_name": "Василий"}
    assert "writeKey" not in str(lead.properties)  # the key is never stored
    # The batch's sentAt corrects every call: the last was made 4.482 s before the batch left.
    assert lead.timestamp == RECEIVED - timedelta(seconds=4, milliseconds=482)


def test_one_bad_call_refuses_the_batch_and_names_it():
    body = fixture("tracking/analyticsjs_batch.json")
    body["batch"][1]["timestamp"] = "yesterday"
    del body["batch"][2]["event"]
    with pytest.raises(ChannelError) as caught:
        parse(None, body)
    assert caught.value.reason == (
        "2 of 3 calls are invalid; none was accepted (first: batch[1].timestamp: expected an ISO-8601 time)"
    )
    assert [d["field"] for d in caught.value.details] == ["batch[1].timestamp", "batch[2].event"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"type": "track", "event": "x"}, "anonymousId"),
        ({"batch": []}, "batch"),
        ({"batch": [{"type": "explode", "userId": "u"}]}, "batch[0].type"),
        ({"batch": ["nope"]}, "batch[0]."),
        ({"batch": [{"type": "track", "userId": "u", "event": "e", "timestamp": 5}]}, "batch[0].timestamp"),
    ],
)
def test_calls_that_cannot_be_events_are_refused_with_the_field(body, field):
    call = None if "batch" in body else "track"
    with pytest.raises(ChannelError) as caught:
        parse(call, body)
    assert caught.value.details[0]["field"] == field


def test_a_call_in_a_batch_may_not_carry_another_write_key():
    body = fixture("tracking/analyticsjs_batch.json")
    body["batch"][2]["writeKey"] = "someone-else"
    with pytest.raises(ChannelError) as caught:
        parse(None, body, write_key="YOUR_WRITE_KEY")
    assert caught.value.details[0]["field"] == "batch[2].writeKey"


def test_a_call_past_the_per_call_size_is_refused():
    body = {"userId": "u", "event": "big", "properties": {"blob": "x" * 40_000}}
    with pytest.raises(ChannelError, match="larger than 32768 bytes"):
        parse("track", body)


def test_unknown_fields_are_kept_and_oversized_extras_give_way_to_the_properties():
    [event] = parse("track", {"userId": "u", "event": "Tapped", "sdkFlavour": "mine", "properties": {"a": 1}})
    assert event.properties == {"a": 1, "call": {"event": "Tapped", "sdkFlavour": "mine"}}
    big = {"userId": "u", "event": "Tapped", "properties": {"a": "y" * 9000}, "extra": "z" * 9000}
    [event] = parse("track", big)
    assert event.properties["a"] == "y" * 9000 and event.properties["call"] == {"truncated": True}


def test_auto_tagged_clicks_say_where_the_visit_came_from_without_utm():
    body = {"anonymousId": "a1", "context": {"page": {"url": "https://shop.example/?gclid=Cj0KCQ"}}}
    [event] = parse("page", body)
    assert event.context.attribution() == {"source": "google", "medium": "cpc"}
    assert event.properties["click_ids"] == {"gclid": "Cj0KCQ"}


def test_track_names_without_latin_letters_stay_track():
    [event] = parse("track", {"userId": "u", "event": "Заявка"})
    assert event.type == "track" and event.properties["call"]["event"] == "Заявка"


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/v1/track", (True, "track")),
        ("/v1/t", (True, "track")),
        ("/v1/p", (True, "page")),
        ("/v1/i", (True, "identify")),
        ("/v1/a", (True, "alias")),
        ("/v1/g", (True, "group")),
        ("/v1/s", (True, "screen")),
        ("/v1/batch", (True, None)),
        ("/v1/b", (True, None)),
        ("/v1/import", (True, None)),
        ("/beacon/v1/batch", (True, None)),
        ("/v1/nope", (False, None)),
        ("/v2/track", (False, None)),
    ],
)
def test_paths_of_the_sdks(path, expected):
    assert call_for_path(path) == expected


def test_times_as_the_sdks_write_them():
    assert parse_time("2015-2-02T00:30:08.276Z", "t") == datetime(2015, 2, 2, 0, 30, 8, 276000, tzinfo=UTC)
    assert parse_time("2022-09-28T20:34:54.664+06:00", "t") == datetime(
        2022, 9, 28, 14, 34, 54, 664000, tzinfo=UTC
    )
    with pytest.raises(ChannelError):
        parse_time("2015-13-40T00:00:00Z", "t")
    # A device whose clock is a day fast: its calls are placed at the server's time.
    fast = {"timestamp": "2026-11-03T10:00:00Z", "sentAt": "2026-11-03T10:00:01Z"}
    assert event_time(fast, None, RECEIVED) == RECEIVED - timedelta(seconds=1)
