"""Screenshots of the customer journal as a person sees it (``svyaz journal screenshots``):
the list and Ekaterina's card, in Debian's Chromium through Playwright, from a local service
holding the seed's two journeys and a few more customers. The README shows them."""

from __future__ import annotations

import os
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from svyaz.adapters.queue import LocalQueue
from svyaz.adapters.store.memory import MemoryStore
from svyaz.app import runtime as runtime_module
from svyaz.app.config import Settings
from svyaz.dev.demo import JOURNEYS, START
from svyaz.dev.local import LocalService
from svyaz.domain.events import Event

EKATERINA_PHONE_AS_TYPED = "8 (916) 555-01-02"
SHOTS = {
    "journal-list.png": (1280, 900),
    "journal-card.png": (1280, 900),
    "journal-card-phone.png": (390, 844),
    "journal-links.png": (1280, 900),
}
FAMILY_PHONE = "+79035557711"  # not Vasily's: the family stays two people
NAMES = ["Алина", "Дмитрий", "Ольга", "Сергей", "Мария", "Игорь", "Наталья", "Павел", "Елена", "Антон"]
SOURCES = [
    {"source": "yandex", "medium": "cpc", "campaign": "sofas-autumn"},
    {"source": "vk", "medium": "social", "campaign": "kitchens-promo"},
    {"source": "google", "medium": "cpc", "campaign": "brand"},
    {"source": "telegram", "medium": "cpc", "campaign": "book-23-sposoba"},
    {"source": "blog.calltouch.ru", "medium": "referral", "campaign": ""},
]


def family_phone(digits: str = "9091234567") -> list[Event]:
    """Anna and Boris, each with a browser cookie, a lead and an order, wrongly joined into one
    customer by the family phone (``+7`` and ten ``digits``) both typed into the lead form, each
    spelling it their way (the split tests use them too)."""
    d = digits
    base = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def event(event_id: str, minutes: int, identifiers: dict, **fields) -> Event:
        at = base + timedelta(minutes=minutes)
        return Event(event_id=event_id, timestamp=at, identifiers=identifiers, **fields)

    anna, boris = {"client_id": "cookie-anna"}, {"client_id": "cookie-boris"}
    return [
        event("anna-ad", 0, anna, type="page", context={"source": "yandex", "medium": "cpc"}),
        event("boris-ad", 1, boris, type="page", context={"source": "vk", "medium": "social"}),
        event("anna-view", 2, anna, type="page"),
        event("boris-view", 3, boris, type="page"),
        event(
            "anna-lead",
            4,
            {**anna, "email": "anna@mail.ru", "phone": f"8 {d[:3]} {d[3:6]}-{d[6:8]}-{d[8:]}"},
            type="lead",
            traits={"name": "Анна", "city": "Казань"},
        ),
        event(
            "boris-lead",
            5,
            {**boris, "email": "boris@mail.ru", "phone": f"+7 {d[:3]} {d[3:6]} {d[6:8]} {d[8:]}"},
            type="lead",
            traits={"name": "Борис"},
        ),
        event(
            "anna-order",
            6,
            {"email": "anna@mail.ru"},
            type="order",
            channel="crm",
            properties={"order_id": "A-1", "amount": 1500, "status": "paid"},
        ),
        event(
            "boris-order",
            7,
            {"email": "boris@mail.ru"},
            type="order",
            channel="crm",
            properties={"order_id": "B-1", "amount": 900, "status": "paid"},
        ),
    ]


def population() -> list[Event]:
    """The seed's journeys, Anna and Boris joined by their family phone and ten more customers
    (deterministic), in time order."""
    rng = random.Random(17)  # noqa: S311 - sample data
    events = [e for journey in JOURNEYS.values() for e in journey()] + family_phone(FAMILY_PHONE[2:])
    for n, name in enumerate(NAMES):
        browser = {"client_id": f"demo-{n:02d}"}
        at = START + timedelta(days=rng.uniform(0, 20))
        ad = {k: v for k, v in SOURCES[n % len(SOURCES)].items() if v}
        events.append(
            Event(event_id=f"demo-{n}-visit", type="page", timestamp=at, identifiers=browser, context=ad)
        )
        phone = (
            f"+7 9{rng.randint(10, 99)} {rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}"
        )
        contact = {**browser, "phone": phone, "email": f"client{n}@example.ru"}
        if n % 3 != 2:
            events.append(
                Event(
                    event_id=f"demo-{n}-lead",
                    type="lead",
                    timestamp=at + timedelta(hours=rng.uniform(0.1, 30)),
                    identifiers=contact,
                    traits={"first_name": name},
                )
            )
        if n % 2 == 0:
            events.append(
                Event(
                    event_id=f"demo-{n}-order",
                    type="order",
                    timestamp=at + timedelta(days=rng.uniform(1, 9)),
                    # At the till by phone after a lead; else a web order from the same browser.
                    channel="crm" if n % 3 != 2 else "web",
                    identifiers={"phone": phone} if n % 3 != 2 else contact,
                    properties={"order_id": f"D-{100 + n}", "amount": f"{rng.randint(9, 180) * 1000}.00"},
                )
            )
    return sorted(events, key=lambda e: e.timestamp)


def chromium() -> str:
    for candidate in (os.environ.get("SVYAZ_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.path.exists(candidate):
            return candidate
    raise RuntimeError("Chromium not found: apt-get install chromium (or set SVYAZ_CHROMIUM)")


def take(out: Path, lang: str = "ru") -> list[Path]:
    """Start a local service with the sample customers, sign in with a one-time link and save
    the screenshots in ``out``."""
    from playwright.sync_api import sync_playwright

    settings = Settings(journal_keys=["screenshots"], write_keys=["w"], api_keys=["a"], journal_language=lang)
    rt = runtime_module.build(settings, store=MemoryStore(), publisher=LocalQueue())
    for event in population():
        rt.service.apply(event)
    service = LocalService("127.0.0.1", 0, rt, quiet=True).start()
    service.worker.wait_idle(30)  # the follow-up jobs the events queued (order credit, folds)
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium(),
                args=["--no-sandbox", f"--lang={'ru-RU' if lang == 'ru' else 'en-GB'}"],
            )
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(f"{service.url}/journal/signin/{rt.sign_in_links.issue()}")
            saved.append(_shot(page, out / "journal-list.png"))
            page.fill("#q", EKATERINA_PHONE_AS_TYPED)
            page.click("form.search button")
            page.click("a.customer")
            saved.append(_shot(page, out / "journal-card.png"))
            page.set_viewport_size({"width": 390, "height": 844})
            saved.append(_shot(page, out / "journal-card-phone.png", full_page=False))
            # Why Anna and Boris are one customer: the card's explanation of its links.
            page.set_viewport_size({"width": 1280, "height": 900})
            page.goto(f"{service.url}/journal/")
            page.fill("#q", FAMILY_PHONE)
            page.click("form.search button")
            page.click("a.customer")
            page.locator("#links").screenshot(path=str(out / "journal-links.png"))
            saved.append(out / "journal-links.png")
            browser.close()
    finally:
        service.stop()
        runtime_module.install(None)
    return saved


def _shot(page, path: Path, full_page: bool = True) -> Path:
    page.screenshot(path=str(path), full_page=full_page)
    return path
