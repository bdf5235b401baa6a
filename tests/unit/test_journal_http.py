"""The customer journal (``/journal/`` on the profiles function) through the functions-framework
test client: sign-in, sessions, CSRF, the pages a marketer sees, erase after confirming, and
Identity-Aware Proxy in front. The real browser runs the same story in tests/browser."""

from __future__ import annotations

import re
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from svyaz.adapters.store.memory import MemoryStore
from svyaz.app import runtime
from svyaz.dev.demo import JOURNEYS
from svyaz.domain.model import Identifier
from svyaz.entrypoints import journal, journal_auth
from tests.conftest import PEPPER
from tests.pipeline_support import API_KEY, client, deliver_all, install
from tests.split_support import PHONE, shared_phone_events

HTTPS = "https://localhost"
JOURNAL_KEY = "journal-test-password"


@pytest.fixture
def rt():
    rt = install(MemoryStore(PEPPER), journal_keys=[JOURNAL_KEY], journal_secret="s" * 40)
    for journey in JOURNEYS.values():
        for event in journey():
            rt.service.apply(event)
    deliver_all(rt)  # the follow-up jobs: order credit, the fold of the aggregates
    yield rt
    runtime.install(None)


@pytest.fixture
def web():
    return client("profiles")


def form_token(page) -> str:
    return re.search(r'name="csrf" value="([^"]*)"', page.get_data(as_text=True))[1]


def text(page) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.get_data(as_text=True))).replace("\xa0", " ")


def listed(page) -> list[str]:
    """The names in the customer list (not the top customers above it)."""
    return re.findall(r'class="customer" href="/journal/customers/\w+">([^<]+)<', page.get_data(as_text=True))


def sign_in(web, key=JOURNAL_KEY):
    form = web.get("/journal/signin", base_url=HTTPS)
    return web.post("/journal/signin", data={"csrf": form_token(form), "key": key}, base_url=HTTPS)


def ekaterina(rt) -> str:
    return rt.store.lookup(Identifier("phone", "+79165550102")).profile_id


def test_the_journal_asks_to_sign_in_first(rt, web):
    answer = web.get("/journal/", base_url=HTTPS)
    assert answer.status_code == 303 and answer.headers["Location"] == "/journal/signin"
    assert web.get(f"/journal/customers/{ekaterina(rt)}", base_url=HTTPS).status_code == 303


def test_sign_in_with_the_journal_password_opens_a_strict_secure_session(rt, web):
    answer = sign_in(web)
    assert answer.status_code == 303 and answer.headers["Location"] == "/journal/"
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith("svyaz_journal="))
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/journal", "Max-Age=28800"):
        assert flag in cookie
    page = web.get("/journal/", base_url=HTTPS)
    assert page.status_code == 200 and "Всего клиентов" in text(page)


def test_an_api_key_signs_in_too_and_a_wrong_key_is_refused(rt, web):
    assert sign_in(web, "nope").status_code == 401
    assert "Неверный пароль или ключ" in text(sign_in(web, "nope"))
    assert sign_in(web, API_KEY).status_code == 303


def test_the_sign_in_form_needs_its_own_token(rt, web):
    web.get("/journal/signin", base_url=HTTPS)
    answer = web.post("/journal/signin", data={"csrf": "forged", "key": JOURNAL_KEY}, base_url=HTTPS)
    assert answer.status_code == 403


def test_an_expired_session_is_refused(rt, web):
    signer = journal_auth.Signer(rt.settings.journal_secret_bytes)
    expired = signer.sign({"sid": "s1", "exp": int(time.time()) - 1, "via": "key", "key": ""})
    web.set_cookie("svyaz_journal", expired, domain="localhost", path="/journal", secure=True)
    answer = web.get("/journal/", base_url=HTTPS)
    assert answer.status_code == 303 and answer.headers["Location"] == "/journal/signin?expired=1"


def test_a_forged_or_tampered_cookie_is_refused(rt, web):
    signer = journal_auth.Signer(b"another secret")
    forged = signer.sign({"sid": "s1", "exp": int(time.time()) + 60, "via": "link", "key": ""})
    web.set_cookie("svyaz_journal", forged, domain="localhost", path="/journal", secure=True)
    assert web.get("/journal/", base_url=HTTPS).status_code == 303


def test_removing_a_key_ends_the_sessions_opened_with_it(rt, web):
    sign_in(web)
    assert web.get("/journal/", base_url=HTTPS).status_code == 200
    rt.settings.journal_keys = ["a-new-password"]
    assert web.get("/journal/", base_url=HTTPS).status_code == 303


def test_a_sign_in_link_works_once(rt, web):
    token = rt.sign_in_links.issue()
    answer = web.get(f"/journal/signin/{token}", base_url=HTTPS)
    assert answer.status_code == 303 and answer.headers["Location"] == "/journal/"
    assert web.get("/journal/", base_url=HTTPS).status_code == 200
    other = client("profiles")
    assert other.get(f"/journal/signin/{token}", base_url=HTTPS).headers["Location"].endswith("expired=1")


def test_sign_out_needs_the_csrf_token_then_ends_the_session(rt, web):
    sign_in(web)
    assert web.post("/journal/signout", data={}, base_url=HTTPS).status_code == 403
    token = form_token(web.get("/journal/", base_url=HTTPS))
    assert web.post("/journal/signout", data={"csrf": token}, base_url=HTTPS).status_code == 303
    assert web.get("/journal/", base_url=HTTPS).status_code == 303


def test_totals_and_the_list_as_a_marketer_reads_them(rt, web):
    sign_in(web)
    page = text(web.get("/journal/", base_url=HTTPS))
    assert "Всего клиентов 2" in page and "Со сделками 2" in page and "С лидами 1" in page
    assert "Средний LTV клиента 87 495 ₽" in page
    assert "Екатерина +7 916 555-xx-xx" in page and "vk / social → store / qr" in page
    assert "Василий +7 909 123-xx-xx va•••@example.ru" in page
    assert "+79165550102" not in page and "555-01-02" not in page  # masked in the list


def test_search_by_a_phone_typed_with_spaces_and_brackets_is_a_post(rt, web):
    sign_in(web)
    token = form_token(web.get("/journal/", base_url=HTTPS))
    found = web.post("/journal/search", data={"csrf": token, "q": "8 (916) 555-01-02"}, base_url=HTTPS)
    assert found.status_code == 200
    rows = re.findall(r'class="customer" href="/journal/customers/(\w+)"', found.get_data(as_text=True))
    assert rows == [ekaterina(rt)]
    by_name = web.post("/journal/search", data={"csrf": token, "q": "василий"}, base_url=HTTPS)
    assert listed(by_name) == ["Василий"]
    assert web.post("/journal/search", data={"q": "8 (916) 555-01-02"}, base_url=HTTPS).status_code == 403


def test_filters_by_first_touch_source_and_orders(rt, web):
    sign_in(web)
    assert listed(web.get("/journal/?source=vk&orders=1", base_url=HTTPS)) == ["Екатерина"]
    assert listed(web.get("/journal/?medium=cpc", base_url=HTTPS)) == ["Василий"]


def test_the_card_shows_ekaterinas_journey_in_moscow_time(rt, web):
    sign_in(web)
    page = text(web.get(f"/journal/customers/{ekaterina(rt)}", base_url=HTTPS))
    assert "Екатерина Телефон +7 916 555-01-02" in page
    assert "Первое касание vk / social / kitchens-promo — Посещение, сайт, 03.11.2026 13:00:00" in page
    assert "Кол-во касаний до первой сделки 4" in page and "Выручка с клиента (LTV) 129 000 ₽" in page
    assert "Скан QR-кода QR-код 10.11.2026 13:00:00" in page and "Магазин msk-tverskaya" in page
    assert "Сделка магазин 10.11.2026 13:14:24 Номер заказа S-77" in page and "Сумма 129 000 ₽" in page
    assert "Выручка засчитана первому касанию vk / social / kitchens-promo" in page


def test_english_is_one_click_away(rt, web):
    sign_in(web)
    answer = web.get("/journal/lang/en", base_url=HTTPS)
    assert answer.status_code == 303
    page = text(web.get(f"/journal/customers/{ekaterina(rt)}", base_url=HTTPS))
    assert "Revenue from the customer (LTV) ₽129,000" in page and "First touch vk / social" in page


def test_a_merged_id_opens_its_survivors_card(rt, web):
    sign_in(web)
    survivor = ekaterina(rt)
    answer = web.get("/journal/customers/unknown-id", base_url=HTTPS)
    assert answer.status_code == 404 and "Ошибка 404" in text(answer)
    assert web.get(f"/journal/customers/{survivor}", base_url=HTTPS).status_code == 200


def test_history_pages_beyond_one_page_of_touches(rt, web):
    pid = ekaterina(rt)
    from tests.helpers import event

    for n in range(120):
        rt.service.apply(event({"phone": "+79165550102"}, minutes=n))
    deliver_all(rt)
    sign_in(web)
    first = web.get(f"/journal/customers/{pid}", base_url=HTTPS)
    older = re.search(r'id="older" href="([^"]+)"', first.get_data(as_text=True))[1].replace("&amp;", "&")
    second = web.get(older, base_url=HTTPS)
    third_link = re.search(r'id="older" href="([^"]+)"', second.get_data(as_text=True))[1].replace(
        "&amp;", "&"
    )
    third = web.get(third_link, base_url=HTTPS)
    numbers = [
        int(n)
        for page in (first, second, third)
        for n in re.findall(r'<span class="n">(\d+)</span>', page.get_data(as_text=True))
    ]
    assert numbers == list(range(125, 0, -1))
    assert 'id="older"' not in third.get_data(as_text=True)


def test_erase_asks_for_confirmation_then_needs_the_csrf_token(rt, web):
    sign_in(web)
    pid = ekaterina(rt)
    confirm = web.get(f"/journal/customers/{pid}/erase", base_url=HTTPS)
    assert confirm.status_code == 200 and "Удалить все данные клиента?" in text(confirm)
    token = form_token(confirm)
    no_token = web.post(f"/journal/customers/{pid}/erase", data={"confirm": pid}, base_url=HTTPS)
    assert no_token.status_code == 403
    unconfirmed = web.post(f"/journal/customers/{pid}/erase", data={"csrf": token}, base_url=HTTPS)
    assert unconfirmed.status_code == 400
    assert deliver_all(rt) == 0  # nothing queued so far
    done = web.post(f"/journal/customers/{pid}/erase", data={"csrf": token, "confirm": pid}, base_url=HTTPS)
    assert done.status_code == 303 and done.headers["Location"] == "/journal/?notice=erase_queued"
    assert deliver_all(rt) == 1
    assert rt.store.lookup(Identifier("phone", "+79165550102")) is None


def test_a_cross_site_post_is_refused_even_with_a_token(rt, web):
    sign_in(web)
    token = form_token(web.get("/journal/", base_url=HTTPS))
    answer = web.post(
        "/journal/search",
        data={"csrf": token, "q": "x"},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        base_url=HTTPS,
    )
    assert answer.status_code == 403


def test_pages_carry_a_strict_content_security_policy_and_no_cache(rt, web):
    sign_in(web)
    page = web.get("/journal/", base_url=HTTPS)
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'; style-src 'self'")
    assert page.headers["Cache-Control"] == "no-store" and page.headers["X-Frame-Options"] == "DENY"
    assert (
        "<script" not in page.get_data(as_text=True) and "http" not in page.headers["Content-Security-Policy"]
    )
    css = web.get("/journal/static/journal.css", base_url=HTTPS)
    assert (
        css.status_code == 200 and css.mimetype == "text/css" and "@import" not in css.get_data(as_text=True)
    )


def test_customer_text_is_escaped(rt, web):
    from tests.helpers import event

    rt.service.apply(event({"client_id": "x1"}, traits={"first_name": "<script>alert(1)</script>"}))
    deliver_all(rt)
    sign_in(web)
    body = web.get("/journal/", base_url=HTTPS).get_data(as_text=True)
    assert "<script>" not in body and "&lt;script&gt;" in body


# --- Identity-Aware Proxy --------------------------------------------------------------------

AUDIENCE = "/projects/123456/global/backendServices/987"


def iap_token(key, claims: dict, kid="k1") -> str:
    from google.auth import crypt, jwt

    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = crypt.ES256Signer.from_string(pem, key_id=kid)
    return jwt.encode(signer, claims).decode()


@pytest.fixture
def iap_key(monkeypatch):
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    monkeypatch.setattr(journal_auth, "_fetch_iap_keys", lambda: {"k1": public.decode()})
    journal._verifiers.clear()
    return key


def claims(**changes) -> dict:
    now = int(time.time())
    base = {
        "iss": journal_auth.IAP_ISSUER,
        "aud": AUDIENCE,
        "email": "anna@shop.example",
        "iat": now,
        "exp": now + 600,
    }
    return base | changes


def test_behind_iap_the_verified_jwt_is_the_person(iap_key, web):
    install(MemoryStore(PEPPER), journal_auth="iap", journal_iap_audience=AUDIENCE)
    good = web.get(
        "/journal/", headers={"x-goog-iap-jwt-assertion": iap_token(iap_key, claims())}, base_url=HTTPS
    )
    assert good.status_code == 200 and "anna@shop.example" in text(good)
    assert "signout" not in good.get_data(as_text=True)  # IAP signs people out, not us
    refused = {
        "no header": {},
        "wrong audience": {"x-goog-iap-jwt-assertion": iap_token(iap_key, claims(aud="/projects/1/x"))},
        "expired": {"x-goog-iap-jwt-assertion": iap_token(iap_key, claims(exp=int(time.time()) - 600))},
        "wrong issuer": {"x-goog-iap-jwt-assertion": iap_token(iap_key, claims(iss="https://evil.example"))},
        "unknown key": {
            "x-goog-iap-jwt-assertion": iap_token(ec.generate_private_key(ec.SECP256R1()), claims())
        },
        "email header alone": {"x-goog-authenticated-user-email": "accounts.google.com:boss@shop.example"},
    }
    for why, headers in refused.items():
        assert web.get("/journal/", headers=headers, base_url=HTTPS).status_code == 303, why
    runtime.install(None)


def test_iap_header_mode_trusts_the_identity_header_only_when_configured(web):
    install(MemoryStore(PEPPER), journal_auth="iap_header")
    header = {"x-goog-authenticated-user-email": "accounts.google.com:boss@shop.example"}
    page = web.get("/journal/", headers=header, base_url=HTTPS)
    assert page.status_code == 200 and "boss@shop.example" in text(page)
    runtime.install(None)


def test_iap_mode_needs_its_audience():
    from pydantic import ValidationError

    from svyaz.app.config import Settings

    with pytest.raises(ValidationError, match="SVYAZ_JOURNAL_IAP_AUDIENCE"):
        Settings(journal_auth="iap")


@pytest.fixture
def family():
    """Anna and Boris, merged by the family phone both typed into the lead form (alone: the
    demo's Vasily has that phone too)."""
    rt = install(MemoryStore(PEPPER), journal_keys=[JOURNAL_KEY], journal_secret="s" * 40)
    for event in shared_phone_events():
        rt.service.apply(event)
    deliver_all(rt)
    yield rt, rt.store.lookup(PHONE).profile_id
    runtime.install(None)


def test_the_card_says_which_event_linked_which_identifier(web, family):
    _, family = family
    sign_in(web)
    page = text(web.get(f"/journal/customers/{family}", base_url=HTTPS))
    assert "Почему идентификаторы связаны" in page
    # Boris's email came with his lead, through the phone Anna had typed a minute before.
    lead = "связан событием Заявка, сайт, 01.03.2026"
    assert f"Почта boris@mail.ru — {lead} 15:05:00 через Телефон +7 909 123-45-67" in page
    assert f"Телефон +7 909 123-45-67 — {lead} 15:04:00 через ID браузера (cookie) cookie-anna" in page
    assert "Объединение профилей · 01.03.2026 15:05:00 · Заявка, сайт" in page


def test_split_asks_which_value_to_block_then_shows_the_two_customers(web, family):
    rt, family = family
    sign_in(web)
    confirm = web.get(f"/journal/customers/{family}/split", base_url=HTTPS)
    assert confirm.status_code == 200 and "Разделить клиента?" in text(confirm)
    html = confirm.get_data(as_text=True)
    choices = dict(re.findall(r'name="block" value="(\w+)" required> <span><strong>([^<]+)<', html))
    assert sorted(choices.values()) == [
        "ID браузера (cookie) cookie-anna",
        "ID браузера (cookie) cookie-boris",
        "Почта anna@mail.ru",
        "Почта boris@mail.ru",
        "Телефон +7 909 123-45-67",
    ]
    assert "+79091234567" not in html  # choices are keyed hashes, not values
    phone = next(key for key, label in choices.items() if label.startswith("Телефон"))
    form = {"csrf": form_token(confirm), "confirm": family, "block": phone, "reason": "общий телефон"}
    url = f"/journal/customers/{family}/split"
    assert web.post(url, data={**form, "csrf": "forged"}, base_url=HTTPS).status_code == 403
    no_token = {k: v for k, v in form.items() if k != "csrf"}
    assert web.post(url, data=no_token, base_url=HTTPS).status_code == 403
    unconfirmed = {k: v for k, v in form.items() if k != "confirm"}
    assert web.post(url, data=unconfirmed, base_url=HTTPS).status_code == 400
    assert web.post(url, data={**form, "block": "0" * 64}, base_url=HTTPS).status_code == 400
    assert web.post(url, data={**form, "reason": " "}, base_url=HTTPS).status_code == 400
    assert deliver_all(rt) == 0  # nothing queued so far
    done = web.post(url, data=form, base_url=HTTPS)
    assert done.status_code == 303 and done.headers["Location"].startswith("/journal/splits/")
    queued = web.get(done.headers["Location"], base_url=HTTPS)
    assert "Разделение в очереди" in text(queued) and 'http-equiv="refresh"' in queued.get_data(as_text=True)
    assert deliver_all(rt) == 1
    result = web.get(done.headers["Location"], base_url=HTTPS)
    page = result.get_data(as_text=True)
    assert "Клиентов после разделения: 2" in text(result) and 'http-equiv="refresh"' not in page
    customers = re.findall(r'<h2><a class="customer" href="/journal/customers/(\w+)">([^<]+)<', page)
    assert sorted(name for _, name in customers) == ["Анна", "Борис"]
    for pid, name in customers:
        card = web.get(f"/journal/customers/{pid}", base_url=HTTPS).get_data(as_text=True)
        identifiers = re.findall(r'<span class="id">([^<]+)</span>', card)
        mine = "anna" if name == "Анна" else "boris"
        assert sorted(identifiers) == sorted([f"cookie-{mine}", f"{mine}@mail.ru"])  # the phone is blocked


def test_a_split_request_page_of_no_request_is_not_found(rt, web):
    sign_in(web)
    assert web.get("/journal/splits/" + "0" * 32, base_url=HTTPS).status_code == 404
    assert web.get("/journal/splits/..%2f", base_url=HTTPS).status_code == 404


def test_an_identifier_an_order_brought_names_that_order(rt, web):
    """Vasily's phone, email and loyalty card came with his order: an order's touchpoint is
    keyed by its order id, not its event id, and the card must still find it (it said "event
    deleted")."""
    sign_in(web)
    vasily = rt.store.lookup(Identifier("phone", "+79091234567")).profile_id
    page = text(web.get(f"/journal/customers/{vasily}", base_url=HTTPS))
    order = "связан событием Сделка, сайт, 02.11.2026 13:28:48 через ID пользователя crm-10442"
    assert f"Телефон +7 909 123-45-67 — {order}" in page
    assert f"Карта лояльности 7700123456 — {order}" in page
    assert "событие удалено" not in page


@pytest.mark.parametrize("query", ["to=9999-12-31", "from=0001-01-01&to=9999-12-31", "from=0001-01-01"])
def test_a_period_outside_the_times_an_event_may_have_is_a_400_page(rt, web, query):
    """The day after 9999-12-31 was an OverflowError: a 500 instead of the list."""
    sign_in(web)
    answer = web.get(f"/journal/?{query}", base_url=HTTPS)
    assert answer.status_code == 400 and answer.mimetype == "text/html", answer.data[:300]
    assert "out of range" in text(answer)


def test_confirming_a_split_twice_queues_it_once_and_answers_the_first_request(web, family):
    rt, family = family
    sign_in(web)
    url = f"/journal/customers/{family}/split"
    confirm = web.get(url, base_url=HTTPS)
    phone = rt.store.keys.identifier(PHONE)
    form = {"csrf": form_token(confirm), "confirm": family, "block": phone, "reason": "общий телефон"}
    first = web.post(url, data=form, base_url=HTTPS)
    second = web.post(url, data=form, base_url=HTTPS)  # a double click, or a second tab
    assert first.status_code == second.status_code == 303
    assert second.headers["Location"] == first.headers["Location"]
    request_id = first.headers["Location"].rsplit("/", 1)[1]
    assert [key for key, _ in rt.store._scan("splits")] == [request_id]  # one request
    deliver_all(rt)  # (a queued request is queued again by a repeat: its message may have been lost)
    assert rt.store.get_split(request_id).state == "done"
    assert len(rt.store.get_split(request_id).result["profile_ids"]) == 2
    assert rt.store.block_entry(PHONE).request_id == request_id
