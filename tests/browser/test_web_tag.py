"""The site tag in a real browser: a shop's pages (their own origin) load ``svyaz.js`` from
``svyaz serve`` with the one-line install, and the customer ends up as one profile."""

from __future__ import annotations

import time

import pytest

from svyaz.domain.model import Identifier, Profile
from svyaz.identity.normalize import normalize
from svyaz.identity.policy import Policy
from tests.pipeline_support import WRITE_KEY

pytestmark = pytest.mark.browser

GA_COOKIE = "GA1.1.471788507.1650790107"
YM_UID = "1681971876942937034"
CALLTOUCH_SESSION = "1980094328"
CALLTOUCH_CLIENT = "4471922"
STUB = "<script>window.svyaz=window.svyaz||function(){(svyaz.q=svyaz.q||[]).push(arguments)}</script>"


def tag(service_url: str, **attributes: str) -> str:
    extra = "".join(f' data-{name.replace("_", "-")}="{value}"' for name, value in attributes.items())
    return f'<script async src="{service_url}/svyaz.js" data-write-key="{WRITE_KEY}"{extra}></script>'


def landing(service_url: str, head: str = "", **attributes: str) -> str:
    """A shop's landing page: the site's analytics already set their cookies, Calltouch's script
    is on the page, and the callback form reports the lead to svyaz."""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Диваны — распродажа</title>
<script>
  document.cookie = "_ga={GA_COOKIE}; path=/";
  document.cookie = "_ym_uid={YM_UID}; path=/";
  window.ct = function (method) {{
    if (method === "calltracking_params")
      return {{sessionId: "{CALLTOUCH_SESSION}", clientId: "{CALLTOUCH_CLIENT}"}};
  }};
</script>
{STUB}{head}{tag(service_url, **attributes)}</head>
<body><h1>Sofas</h1>
<form id="lead" method="post" action="/thanks"
      onsubmit="svyaz('identify', {{phone: this.phone.value}}); svyaz('track', 'lead', {{form: 'callback'}})">
  <input name="phone" value="8 (909) 123-45-67"><button type="submit">Call me back</button>
</form></body></html>"""


def thanks(service_url: str) -> str:
    return f"<!doctype html><title>Спасибо</title>{tag(service_url)}<p id='done'>Мы перезвоним</p>"


def wait_for_profile(service, kind: str, raw: str, until, timeout: float = 15.0) -> Profile:
    """The profile holding the identifier once ``until(profile)`` holds (the browser sends
    asynchronously and the worker applies in the background)."""
    identifier = Identifier(kind, normalize(Policy.default(), kind, raw))
    deadline = time.monotonic() + timeout
    profile = None
    while time.monotonic() < deadline:
        profile = service.rt.store.lookup(identifier)
        if profile is not None and until(profile):
            return profile
        time.sleep(0.1)
    raise AssertionError(f"no profile for {kind} satisfying the check; last seen: {profile}")


def test_a_visitor_from_an_ad_who_leaves_a_phone_is_one_profile_with_the_ad_as_first_touch(
    svyaz_service, site, page, page_errors
):
    site.add("/sofas", landing(svyaz_service.url))
    site.add("/thanks", thanks(svyaz_service.url))
    sent = []
    page.on("request", lambda r: sent.append(r) if r.url.endswith("/v1/batch") else None)
    page.goto(site.url("/sofas?utm_source=yandex&utm_medium=cpc&utm_campaign=sofas-autumn&yclid=7761"))
    page.wait_for_function("window.svyaz && window.svyaz.version")
    page.click("button[type=submit]")  # identify + lead, then the browser leaves for /thanks
    page.wait_for_selector("#done")

    cookies = {c["name"]: c for c in page.context.cookies()}
    svyaz_id = cookies["svyaz_id"]
    assert len(svyaz_id["value"]) == 32 and svyaz_id["sameSite"] == "Lax" and not svyaz_id["httpOnly"]
    assert svyaz_id["expires"] - time.time() > 399 * 86400  # 400 days: the most Chromium keeps

    profile = wait_for_profile(
        svyaz_service,
        "phone",
        "8 (909) 123-45-67",
        until=lambda p: p.counters.get("type_page", 0) >= 2 and p.counters.get("type_lead") == 1,
    )
    assert profile.identifiers["client_id"] == [svyaz_id["value"]]
    assert profile.identifiers["ga_client_id"] == ["471788507.1650790107"]
    assert profile.identifiers["ym_client_id"] == [YM_UID]
    assert profile.identifiers["session_id"] == [CALLTOUCH_SESSION]
    assert profile.identifiers["ct_client_id"] == [CALLTOUCH_CLIENT]
    assert profile.identifiers["phone"] == ["+79091234567"]
    assert profile.first_touch.attribution == {
        "source": "yandex",
        "medium": "cpc",
        "campaign": "sofas-autumn",
    }
    # The thank-you page view is the same visitor: the cookie was kept, not made again.
    assert profile.counters["type_page"] == 2 and profile.counters["type_identify"] == 1
    # Beacons (Chromium's "ping" requests): no header of ours, the write key in the body.
    assert sent and all(r.resource_type == "ping" and r.method == "POST" for r in sent)
    assert all("authorization" not in r.headers and f'"writeKey":"{WRITE_KEY}"' in r.post_data for r in sent)
    assert page_errors == []


def test_calls_queued_before_the_tag_loads_are_sent_and_broken_neighbours_throw_nothing(
    svyaz_service, site, page, page_errors
):
    # Metrica that never answers getClientID and a call-tracking script that throws: the page
    # view still goes out (after the tag's wait for Metrica), and nothing reaches the page.
    broken = """<script>
      window.ym = function () { (window.ym.a = window.ym.a || []).push(arguments); };
      ym(98765, "init", {});
      window.ct = function () { throw new Error("calltouch is down"); };
      svyaz('identify', {email: 'Vasily.P@shop-mail.ru', user_id: 'crm-77'});
    </script>"""
    page_html = f"<!doctype html><title>Кухни</title>{STUB}{broken}{tag(svyaz_service.url)}<p>ok</p>"
    page.goto(site.add("/kitchens", page_html) + "?utm_source=vk&utm_medium=social")
    profile = wait_for_profile(
        svyaz_service, "user_id", "crm-77", until=lambda p: p.counters.get("type_page") == 1
    )
    assert profile.identifiers["email"] == ["vasily.p@shop-mail.ru"]
    assert profile.first_touch.attribution == {"source": "vk", "medium": "social"}
    assert "ym_client_id" not in profile.identifiers
    assert page_errors == []
    assert page.evaluate("svyaz('track'); svyaz(null); svyaz('identify', 42); 'still here'") == "still here"
    assert page_errors == []


def test_metrica_client_id_comes_from_ym_when_there_is_no_cookie(svyaz_service, site, page, page_errors):
    metrica = """<script>
      window.ym = function (counter, method, callback) {
        if (method === "getClientID") setTimeout(function () { callback("1702385561118374409"); }, 50);
      };
    </script>"""
    page_html = f"<!doctype html><title>Шкафы</title>{metrica}{tag(svyaz_service.url, ym_counter='98765')}"
    page.goto(site.add("/wardrobes", page_html))
    svyaz_id = page.wait_for_function("document.cookie.match(/svyaz_id=([0-9a-f]{32})/)[1]").json_value()
    profile = wait_for_profile(svyaz_service, "client_id", svyaz_id, until=lambda p: True)
    assert profile.identifiers["ym_client_id"] == ["1702385561118374409"]
    assert page_errors == []


def test_the_page_still_works_when_the_tag_is_blocked(svyaz_service, site, page, page_errors):
    page.route("**/svyaz.js*", lambda route: route.abort())  # an ad blocker
    site.add("/sofas", landing(svyaz_service.url))
    site.add("/thanks", thanks(svyaz_service.url))
    page.goto(site.url("/sofas?utm_source=yandex"))
    page.click("button[type=submit]")  # the stub queues the calls; nothing sends them
    page.wait_for_selector("#done")
    assert page_errors == []
    assert svyaz_service.worker.wait_idle(2) and svyaz_service.worker.applied == 0


def test_the_page_still_works_when_the_service_is_unreachable(svyaz_service, site, page, page_errors):
    page.route("**/v1/batch", lambda route: route.abort())  # the tag loads, its calls are blocked
    site.add("/sofas", landing(svyaz_service.url))
    site.add("/thanks", thanks(svyaz_service.url))
    page.goto(site.url("/sofas"))
    page.wait_for_function("window.svyaz && window.svyaz.version")
    page.click("button[type=submit]")
    page.wait_for_selector("#done")
    assert page_errors == []


def test_when_a_beacon_is_refused_the_tag_falls_back_to_fetch_keepalive(
    svyaz_service, site, page, page_errors
):
    page.add_init_script("navigator.sendBeacon = function () { return false; };")  # e.g. over quota
    sent = []
    page.on("request", lambda r: sent.append(r) if r.url.endswith("/v1/batch") else None)
    page.goto(site.add("/sofas", landing(svyaz_service.url)) + "?utm_source=yandex")
    profile = wait_for_profile(svyaz_service, "ym_client_id", YM_UID, until=lambda p: True)
    assert profile.first_touch.attribution == {"source": "yandex"}
    assert sent and all(r.resource_type == "fetch" and "authorization" not in r.headers for r in sent)
    assert page_errors == []
