"""The customer journal in a real browser (Debian's Chromium through Playwright) against
``svyaz serve``: what a marketer does, click by click.

The service gets the seed's journeys through its real ``/collect`` endpoint, as ``svyaz demo
--url`` sends them; the Secure session cookie is set over http://127.0.0.1, which Chromium treats
as a secure context."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta

import pytest
import requests

from svyaz.dev.demo import JOURNEYS, ekaterina
from svyaz.entrypoints import journal_auth
from tests.pipeline_support import WRITE_KEY

pytestmark = [pytest.mark.browser, pytest.mark.svyaz_settings(journal_keys=["journal-password"])]
PASSWORD = "journal-password"


def send(service, events) -> None:
    for event in events:
        answer = requests.post(
            f"{service.url}/collect",
            data=event.to_json(),
            headers={"Authorization": f"Bearer {WRITE_KEY}", "Content-Type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
    assert service.worker.wait_idle(20) and service.worker.dead_letters == []


@pytest.fixture
def shop(svyaz_service):
    send(svyaz_service, [e for journey in JOURNEYS.values() for e in journey()])
    return svyaz_service


def sign_in(page, service, password=PASSWORD) -> None:
    page.goto(f"{service.url}/journal/")
    assert page.url.endswith("/journal/signin")
    page.fill("#key", password)
    page.click("button[type=submit]")


def test_a_marketer_finds_ekaterina_by_phone_and_sees_the_vk_ad_credited_with_the_showroom_sale(shop, page):
    sign_in(page, shop)
    assert page.url == f"{shop.url}/journal/"
    cookie = next(c for c in page.context.cookies() if c["name"] == "svyaz_journal")
    assert (cookie["secure"], cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (
        True,
        True,
        "Strict",
        "/journal",
    )
    # Totals at the top, as in Calltouch's journal.
    assert page.inner_text("#total-customers dd") == "2"
    assert page.inner_text("#total-with_orders dd") == "2"
    assert "Екатерина" in page.inner_text("#total-top")

    page.fill("#q", "8 (916) 555-01-02")  # as a shop assistant types it
    page.click("form.search button")
    rows = page.locator("a.customer")
    assert rows.count() == 1 and rows.inner_text() == "Екатерина"
    assert "q=" not in page.url and "555" not in page.url  # the phone never goes in a URL

    rows.click()
    assert page.inner_text("#customer-name") == "Екатерина"
    assert page.inner_text("#fact-first-touch dd").startswith("vk / social / kitchens-promo — Посещение")
    assert page.inner_text("#fact-revenue dd") == "129\xa0000\xa0₽"
    history = page.locator("ol.history > li")
    assert history.count() == 5
    qr = page.locator("li.touch.qr_scan")
    assert "Скан QR-кода" in qr.inner_text() and "msk-tverskaya" in qr.inner_text()
    order = page.locator("li.touch.order").inner_text()
    assert "S-77" in order and "129\xa0000\xa0₽" in order
    assert re.search(r"Выручка засчитана первому касанию\s+vk / social / kitchens-promo", order)


def test_the_history_pages_past_the_first_touches(shop, page):
    from svyaz.domain.events import Event

    visits = [
        Event(
            event_id=f"ekaterina-visit-{n}",
            type="page",
            timestamp=ekaterina()[1].timestamp + timedelta(minutes=n + 1),  # before the showroom
            identifiers={"client_id": "a81d03c4f6"},
            context={"page_url": f"https://shop.example/p/{n}"},
        )
        for n in range(70)
    ]
    send(shop, visits)
    sign_in(page, shop)
    page.fill("#q", "+7 916 555 01 02")
    page.click("form.search button")
    page.click("a.customer")
    first = page.locator("ol.history span.n").all_inner_texts()
    assert len(first) == 50 and first[0] == "75"
    page.click("#older")
    second = page.locator("ol.history span.n").all_inner_texts()
    assert second == [str(n) for n in range(25, 0, -1)]
    assert "vk" in page.locator("li.touch").last.inner_text()  # the first touch, the VK ad
    assert page.locator("#older").count() == 0


def test_erasing_a_customer_asks_first_then_removes_them(shop, page):
    sign_in(page, shop)
    page.fill("#q", "Екатерина")
    page.click("form.search button")
    page.click("a.customer")
    page.click("a.button.danger")
    assert page.inner_text("h1") == "Удалить все данные клиента?"
    page.click("form button.danger")
    assert "Удаление клиента поставлено в очередь" in page.inner_text(".notice")
    assert shop.worker.wait_idle(10)
    page.fill("#q", "8 (916) 555-01-02")
    page.click("form.search button")
    assert page.locator("a.customer").count() == 0
    assert page.inner_text("#total-customers dd") == "1"


def test_a_wrong_key_is_refused(shop, page):
    sign_in(page, shop, "not-the-password")
    assert "Неверный пароль или ключ" in page.inner_text("p.error")
    assert not [c for c in page.context.cookies() if c["name"] == "svyaz_journal"]
    page.goto(f"{shop.url}/journal/")
    assert page.url.endswith("/journal/signin")


def test_the_session_expires(shop, page, monkeypatch):
    sign_in(page, shop)
    assert page.url == f"{shop.url}/journal/"
    later = journal_auth.now() + 8 * 3600 + 1  # the default session is 8 hours
    monkeypatch.setattr(journal_auth, "now", lambda: later)
    page.goto(f"{shop.url}/journal/")
    assert page.url.endswith("/journal/signin?expired=1")
    assert "Сессия истекла" in page.inner_text("p.error")


def test_a_form_without_its_csrf_token_is_refused(shop, page):
    sign_in(page, shop)
    page.locator("form.search input[name=csrf]").evaluate("field => field.value = 'forged'")
    page.fill("#q", "8 (916) 555-01-02")
    with page.expect_response(lambda r: r.url.endswith("/journal/search")) as answer:
        page.click("form.search button")
    assert answer.value.status == 403
    assert "Ошибка 403" in page.inner_text("h1")


def test_sign_out_and_english(shop, page):
    sign_in(page, shop)
    page.click("a.lang[hreflang=en]")
    assert page.inner_text("#total-customers dt") == "Customers"
    page.click("text=Sign out")
    assert page.url.endswith("/journal/signin")
    page.goto(f"{shop.url}/journal/")
    assert page.url.endswith("/journal/signin")


def test_the_one_time_link_signs_in_once(shop, page, chromium):
    link = f"{shop.url}/journal/signin/{shop.rt.sign_in_links.issue()}"
    page.goto(link)
    assert page.url == f"{shop.url}/journal/"
    other = chromium.new_context().new_page()
    other.goto(link)
    assert other.url.endswith("/journal/signin?expired=1")
    other.context.close()


def test_the_page_runs_no_script_and_loads_nothing_from_elsewhere(shop, page, page_errors):
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page, shop)
    assert all(url.startswith(shop.url) for url in requested), requested
    assert page.evaluate("document.scripts.length") == 0 and page_errors == []
    csp = requests.get(f"{shop.url}/journal/signin", timeout=5).headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp


def test_screenshots_are_regenerated_by_the_command(tmp_path):
    # Its own process: the session's Playwright already runs in this one.
    command = [sys.executable, "-m", "svyaz.cli", "journal", "screenshots", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr
    for name in ("journal-list.png", "journal-card.png", "journal-card-phone.png", "journal-links.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- why identifiers are linked, and splitting a customer -------------------------------------


@pytest.fixture
def family(svyaz_service):
    """Anna and Boris, each with a browser cookie, an email, a lead and an order, linked into
    one customer by the family phone both typed into the lead form."""
    from tests.split_support import shared_phone_events

    send(svyaz_service, shared_phone_events())
    return svyaz_service


def open_card(page, service, typed: str) -> None:
    sign_in(page, service)
    page.fill("#q", typed)
    page.click("form.search button")
    page.click("a.customer")


def choice(page, label: str):
    """The split form's choice of the value shown as ``label`` (its own name, not what it carried)."""
    name = page.locator("strong", has_text=re.compile(f"^{re.escape(label)}$"))
    return page.locator("label.choice").filter(has=name)


def identifiers_on(section) -> list[str]:
    return sorted(section.locator("span.id").all_inner_texts())


def test_a_marketer_sees_why_two_people_are_one_customer_and_splits_them(family, page):
    open_card(page, family, "8 909 123 45 67")
    assert identifiers_on(page.locator("details.ids")) == sorted(
        ["cookie-anna", "cookie-boris", "anna@mail.ru", "boris@mail.ru", "+7 909 123-45-67"]
    )
    # Why: Boris's email came with his lead, through the phone Anna had typed a minute before.
    why = page.locator("#links")
    assert why.locator("summary").inner_text() == "Почему идентификаторы связаны"
    boris = why.locator("li", has_text="boris@mail.ru").inner_text()
    assert boris == (
        "Почта boris@mail.ru — связан событием Заявка, сайт, 01.03.2026 15:05:00 "
        "через Телефон +7 909 123-45-67"
    )
    assert "Объединение профилей · 01.03.2026 15:05:00 · Заявка, сайт" in why.inner_text()

    page.click("#action-split")
    assert page.inner_text("h1") == "Разделить клиента?"
    phone = choice(page, "Телефон +7 909 123-45-67")
    # The value that linked them, with what came through it.
    assert phone.inner_text() == (
        "Телефон +7 909 123-45-67\nчерез него связаны: ID браузера (cookie) cookie-boris, Почта boris@mail.ru"
    )
    assert "79091234567" not in phone.locator("input").get_attribute("value")  # a keyed hash
    phone.locator("input").check()
    page.fill("#reason", "общий семейный телефон")
    page.click("form[action$='/split'] button[type=submit]")

    # The request's page refreshes itself (a meta refresh, no script) until the worker is done.
    assert re.search(r"/journal/splits/\w+$", page.url)
    page.wait_for_selector("#split-status:has-text('Клиентов после разделения: 2')", timeout=30_000)
    assert page.locator("meta[http-equiv=refresh]").count() == 0
    facts = page.locator("section.card dl.facts").first.inner_text()
    assert "Телефон +7 909 123-45-67" in facts and "общий семейный телефон" in facts
    customers = {
        section.locator("a.customer").inner_text(): identifiers_on(section)
        for section in page.locator("section.split-result").all()
    }
    assert customers == {  # the phone is blocked: it stays with neither
        "Анна": ["anna@mail.ru", "cookie-anna"],
        "Борис": ["boris@mail.ru", "cookie-boris"],
    }
    page.click("a.customer:text('Борис')")
    assert page.inner_text("#customer-name") == "Борис"
    assert identifiers_on(page.locator("details.ids")) == ["boris@mail.ru", "cookie-boris"]
    assert page.inner_text("#fact-revenue dd") == "900\xa0₽"


def test_cancelling_a_split_changes_nothing(family, page):
    open_card(page, family, "boris@mail.ru")
    card_url = page.url
    page.click("#action-split")
    choice(page, "Телефон +7 909 123-45-67").locator("input").check()
    page.fill("#reason", "общий семейный телефон")
    page.click("text=Отмена")
    assert page.url == card_url
    assert len(page.locator("details.ids span.id").all_inner_texts()) == 5
    assert family.worker.wait_idle(10)
    assert family.rt.store.blocklist() == []
    page.goto(f"{family.url}/journal/")
    assert page.inner_text("#total-customers dd") == "1"


def test_a_split_without_its_csrf_token_is_refused(family, page):
    open_card(page, family, "anna@mail.ru")
    page.click("#action-split")
    choice(page, "Телефон +7 909 123-45-67").locator("input").check()
    page.fill("#reason", "общий семейный телефон")
    page.locator("form[action$='/split'] input[name=csrf]").evaluate("field => field.remove()")
    with page.expect_response(lambda r: r.url.endswith("/split")) as answer:
        page.click("form[action$='/split'] button[type=submit]")
    assert answer.value.status == 403 and "Ошибка 403" in page.inner_text("h1")
    assert family.worker.wait_idle(10)
    assert family.rt.store.blocklist() == []
