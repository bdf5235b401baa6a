"""Synthetic customers and the event streams they leave, for benchmarks and end-to-end tests.

``generate_population(customers, seed)`` builds ``customers`` true customers, each with the
identifiers real people leave (browser cookies, Metrica / GA ids, site sessions, an app, a phone
written the way Russians write it, emails with case and space noise, a loyalty card, a Telegram id,
a user id once they register) and their multi-channel journeys as canonical ``Event`` objects:
ad visits, logins, leads, call-tracking calls, WhatsApp messages carrying the site session,
Telegram ``/start`` with the session, QR scans in stores and offline orders.

The journeys are built so that every customer's identifiers are connected through co-occurrences
the default policy accepts (a perfect engine reaches recall 1.0), and no event joins two
customers except the deliberate noise below, which a correct engine must refuse:

* a family phone: two registered customers use one phone, always next to their own ``user_id``
  (the ``user_id`` limit refuses the link);
* an in-store tablet: one ``device_id`` on the logins of several customers (devices move, they
  never merge);
* a second-hand phone: a device used by one customer, then by another one who reinstalls the app
  (new ``user_pseudo_id``) and logs in (the device moves to the second customer).

Other noise: duplicated deliveries (the same event object twice), out-of-order delivery (local
jitter and a few far moves) and garbage values (``undefined``, ``null``, ``[object Object]``, ...)
added next to real identifiers. Everything derives from ``random.Random(seed)`` and a fixed base
time, so the same seed gives the same events, ids and timestamps.
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from svyaz.domain.events import Event
from svyaz.identity.normalize import Rejected, normalize
from svyaz.identity.policy import Policy

Key = tuple[str, str]
Link = tuple[Key, Key]

BASE_TIME = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
JOURNEY_START_SPREAD = 75 * 86_400  # customers arrive during the first 75 days
DAY = 86_400

_POLICY = Policy.default()

# Noise rates (only when noise=True).
GARBAGE_RATE = 0.04  # share of events that get one garbage value next to the real ones
DUPLICATE_RATE = 0.03  # share of events delivered more than once
FAR_MOVE_RATE = 0.005  # share of events delivered far from their time position
JITTER_WINDOW = 40  # events swap places within about this many positions

GARBAGE_ANY = ("undefined", "null", "0", "[object Object]", "None", '"undefined"', "")
GARBAGE_KINDS = ("user_id", "client_id", "ym_client_id", "ga_client_id", "session_id", "email", "phone")
GARBAGE_BY_KIND = {"email": ("test@test.com",), "phone": ("+70000000000",)}

# Russian mobile operator codes (DEF 9xx) that libphonenumber treats as valid mobile ranges.
MOBILE_CODES = (
    *range(900, 907),
    *range(908, 940),
    *range(950, 954),
    958,
    *range(960, 970),
    *range(977, 990),
    *range(991, 998),
    999,
)
EMAIL_DOMAINS = ("mail.ru", "yandex.ru", "gmail.com", "bk.ru", "inbox.ru", "list.ru", "ya.ru", "rambler.ru")
FIRST_NAMES = (
    "Sergey",
    "Ivan",
    "Pavel",
    "Dmitry",
    "Alexey",
    "Andrey",
    "Vasily",
    "Nikolay",
    "Mikhail",
    "Oleg",
    "Ekaterina",
    "Anna",
    "Maria",
    "Olga",
    "Tatiana",
    "Natalia",
    "Elena",
    "Irina",
    "Svetlana",
    "Daria",
)
LAST_NAMES = (
    "Ivanov",
    "Semenov",
    "Petrov",
    "Smirnov",
    "Kuznetsov",
    "Popov",
    "Sokolov",
    "Lebedev",
    "Kozlov",
    "Novikov",
    "Morozov",
    "Volkov",
    "Mrykin",
    "Sysoev",
    "Egorov",
    "Pavlov",
    "Orlov",
    "Fedorov",
)

# (source, medium, campaign, weight): where visits come from.
AD_SOURCES: tuple[tuple[str, str, str | None, int], ...] = (
    ("yandex", "cpc", "direct_search_sofas", 22),
    ("yandex", "cpc", "rsya_retargeting", 8),
    ("vk", "social", "vk_ads_spring_sale", 12),
    ("google", "organic", None, 10),
    ("yandex", "organic", None, 12),
    ("direct", "none", None, 14),
    ("telegram", "cpc", "tg_channel_post", 6),
    ("avito", "classified", "avito_listing", 4),
    ("email", "newsletter", "weekly_digest", 5),
    ("2gis", "referral", None, 3),
)
RETURN_SOURCES = tuple(s for s in AD_SOURCES if s[1] in ("organic", "none", "newsletter", "cpc"))
LANDING_PAGES = (
    "/",
    "/catalog/sofas",
    "/catalog/beds",
    "/promo/spring",
    "/product/sofa-oslo-3",
    "/blog/23-ways",
)
INNER_PAGES = (
    "/catalog/sofas",
    "/product/sofa-oslo-3",
    "/product/bed-nord",
    "/cart",
    "/contacts",
    "/delivery",
)
STORES = ("store_tverskaya", "store_aviapark", "store_mega_khimki", "showroom_kazan")
SITE = "https://divan.example.ru"


@dataclass
class Population:
    """A generated population: the events to deliver and the truth to score against."""

    events: list[Event]
    truth: dict[Key, int]
    shared: set[Key] = field(default_factory=set)
    refusable_links: list[Link] = field(default_factory=list)
    customers: int = 0
    unique_events: int = 0
    duplicates: int = 0
    garbage_values: int = 0

    def identifiers_by_customer(self) -> list[set[Key]]:
        """The scored identifiers of each true customer, indexed by customer."""
        grouped: list[set[Key]] = [set() for _ in range(self.customers)]
        for key, owner in self.truth.items():
            grouped[owner].add(key)
        return grouped


@dataclass
class _Browser:
    client_id: str
    ym_client_id: str
    ga_cid: str | None
    ga_prefix: str
    mobile: bool


@dataclass
class _Customer:
    index: int
    first_name: str
    browsers: list[_Browser] = field(default_factory=list)
    user_id: str | None = None
    phone: str | None = None  # canonical E.164
    family_phone: bool = False  # the phone is shared: it only ever travels with the user_id
    emails: list[tuple[str, str]] = field(default_factory=list)  # (as typed, canonical)
    loyalty_card: str | None = None
    telegram_id: str | None = None
    app: tuple[str, str] | None = None  # (user_pseudo_id, device_id as the device reports it)
    tablet: str | None = None  # device id of the store tablet this customer logs in on


def generate_population(customers: int, seed: int = 1, *, noise: bool = True) -> Population:
    """``customers`` true customers and their event stream, fully determined by ``seed``."""
    if customers < 0:
        raise ValueError("customers must be >= 0")
    # Hundreds of thousands of long-lived models: the cyclic GC would rescan them over and over
    # (half the run time) although nothing here makes cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _Builder(customers, seed, noise).build()
    finally:
        if collecting:
            gc.enable()


class _Builder:
    def __init__(self, customers: int, seed: int, noise: bool) -> None:
        self.customers = customers
        self.seed = seed
        self.noise = noise
        self.rng = random.Random(seed)  # noqa: S311 - reproducible benchmark data, not security
        self.events: list[Event] = []
        self.used: set[Key] = set()
        self.truth: dict[Key, int] = {}
        self.shared: set[Key] = set()
        self.refusable: list[Link] = []
        self.garbage = 0
        self.tablet_logins: dict[int, datetime] = {}
        self.sources = [s[:3] for s in AD_SOURCES]
        self.source_weights = [s[3] for s in AD_SOURCES]

    # ---- identifiers -------------------------------------------------------------------------

    def _register(self, kind: str, make: Any, owner: int | None) -> str:
        """A fresh identifier value (normalized form unique in the population), recorded in the
        truth for ``owner`` or as shared when ``owner`` is None. Returns the value as generated."""
        while True:
            raw = make()
            try:
                key = (kind, normalize(_POLICY, kind, raw))
            except Rejected:
                continue
            if key not in self.used:
                break
        self.used.add(key)
        if owner is None:
            self.shared.add(key)
        else:
            self.truth[key] = owner
        return raw

    def _hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(digits * 4):0{digits}x}"

    def _digits(self, count: int) -> str:
        return str(self.rng.randint(10 ** (count - 1), 10**count - 1))

    def _unix_ts(self) -> int:
        return int(BASE_TIME.timestamp()) - self.rng.randint(0, 900 * DAY)

    def _browser(self, owner: int) -> _Browser:
        rng = self.rng
        client_id = self._register("client_id", lambda: self._hex(32), owner)
        ym = self._register(
            "ym_client_id", lambda: f"{self._unix_ts()}{self._digits(rng.randint(6, 10))}", owner
        )
        ga = None
        if rng.random() < 0.8:  # the rest block Google Analytics
            ga = self._register(
                "ga_client_id", lambda: f"{rng.randint(100_000_000, 2_147_483_647)}.{self._unix_ts()}", owner
            )
        return _Browser(client_id, ym, ga, rng.choice(("GA1.1.", "GA1.2.")), mobile=rng.random() < 0.6)

    def _phone(self, owner: int | None) -> str:
        rng = self.rng
        return self._register("phone", lambda: f"+7{rng.choice(MOBILE_CODES)}{self._digits(7)}", owner)

    def _email(self, customer: _Customer) -> tuple[str, str]:
        rng = self.rng
        last = rng.choice(LAST_NAMES)
        if customer.first_name.endswith(("a", "ia")) and not last.endswith("a"):
            last += "a"

        def make() -> str:
            style = rng.randrange(4)
            number = str(rng.randint(1, 99)) if rng.random() < 0.6 else ""
            first = customer.first_name
            local = (
                f"{first}.{last}{number}",
                f"{first[0]}{last}{number}",
                f"{last}{rng.randint(60, 99)}",
                f"{first}_{last[:4]}{number}",
            )[style]
            domain = rng.choice(EMAIL_DOMAINS)
            return f"{local}@{domain.capitalize() if rng.random() < 0.2 else domain}"

        typed = self._register("email", make, customer.index)
        return typed, typed.lower()

    def _session(self, owner: int) -> str:
        return self._register(
            "session_id", lambda: str(self.rng.randint(1_000_000_000, 2_999_999_999)), owner
        )

    def _device(self, owner: int | None) -> str:
        rng = self.rng
        if rng.random() < 0.5:  # Android ID
            make = lambda: self._hex(16)  # noqa: E731
        else:  # iOS identifierForVendor, reported upper-case
            make = lambda: (  # noqa: E731
                "-".join(self._hex(n) for n in (8, 4, 4, 4, 12)).upper()
            )
        return self._register("device_id", make, owner)

    # ---- raw forms -----------------------------------------------------------------------------

    def _phone_raw(self, phone: str) -> str:
        d = phone[2:]
        a, b, c, e = d[:3], d[3:6], d[6:8], d[8:]
        return self.rng.choice(
            (
                f"8 ({a}) {b}-{c}-{e}",
                f"+7 {a} {b} {c} {e}",
                f"7{d}",
                f"+7({a}){b}{c}{e}",
                f"8{d}",
                f"+7 ({a}) {b}-{c}-{e}",
                f"8-{a}-{b}-{c}-{e}",
                phone,
            )
        )

    def _email_raw(self, email: tuple[str, str]) -> str:
        typed, canonical = email
        return self.rng.choice((typed, typed, canonical, canonical.upper(), f" {typed} ", f"{canonical}  "))

    def _web_ids(self, browser: _Browser, session: str) -> dict[str, Any]:
        ids: dict[str, Any] = {
            "client_id": browser.client_id,
            "ym_client_id": browser.ym_client_id,
            "session_id": session,
        }
        if browser.ga_cid is not None:
            # The _ga cookie and its bare cid are one value after normalization.
            ids["ga_client_id"] = (
                browser.ga_prefix + browser.ga_cid if self.rng.random() < 0.5 else browser.ga_cid
            )
        return ids

    # ---- events --------------------------------------------------------------------------------

    def _emit(
        self,
        type_: str,
        at: datetime,
        identifiers: dict[str, Any],
        *,
        channel: str = "web",
        context: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        traits: dict[str, Any] | None = None,
    ) -> None:
        if self.noise and self.rng.random() < GARBAGE_RATE:
            identifiers = dict(identifiers)
            kind = self.rng.choice(GARBAGE_KINDS)
            junk = self.rng.choice(GARBAGE_ANY + GARBAGE_BY_KIND.get(kind, ()))
            present = identifiers.get(kind)
            if present is None:
                identifiers[kind] = junk
            elif isinstance(present, list):
                identifiers[kind] = [*present, junk]
            else:
                identifiers[kind] = [present, junk]
            self.garbage += 1
        self.events.append(
            Event(
                event_id=f"bench-{self.seed}-{len(self.events):07d}",
                type=type_,
                timestamp=at,
                channel=channel,
                identifiers=identifiers,
                traits=traits or {},
                context=context or {},
                properties=properties or {},
            )
        )

    def _attribution(self, returning: bool = False) -> dict[str, Any]:
        if returning:
            source, medium, campaign, _ = self.rng.choice(RETURN_SOURCES)
        else:
            source, medium, campaign = self.rng.choices(self.sources, self.source_weights)[0]
        context: dict[str, Any] = {"source": source, "medium": medium}
        if campaign is not None:
            context["campaign"] = campaign
        return context

    def _visit(
        self, customer: _Customer, browser: _Browser, at: datetime, *, returning: bool = False, pages: int = 0
    ) -> tuple[str, dict[str, Any], datetime]:
        """One site session on ``browser``: a few page views. Returns (session, attribution, time)."""
        rng = self.rng
        session = self._session(customer.index)
        attribution = self._attribution(returning)
        pages = pages or rng.choice((1, 1, 2, 2, 3, 4))
        path = rng.choice(LANDING_PAGES)
        for page in range(pages):
            context = dict(attribution)
            if page == 0 and "campaign" in attribution:
                query = f"?utm_source={attribution['source']}&utm_medium={attribution['medium']}"
                context["page_url"] = f"{SITE}{path}{query}&utm_campaign={attribution['campaign']}"
            else:
                context["page_url"] = f"{SITE}{path}"
            self._emit("page", at, self._web_ids(browser, session), context=context)
            at += timedelta(seconds=rng.randint(15, 240))
            path = rng.choice(INNER_PAGES)
        return session, attribution, at

    # ---- the journey of one customer ---------------------------------------------------------

    def _journey(self, c: _Customer) -> None:
        rng = self.rng
        at = BASE_TIME + timedelta(seconds=rng.randint(0, JOURNEY_START_SPREAD))
        for browser in c.browsers:  # first visits, mostly from ads
            _, _, at = self._visit(c, browser, at)
            at += timedelta(seconds=rng.randint(600, 5 * DAY))
        actions = [*self._hub_links(c), *self._other_links(c), *self._touches(c)]
        rng.shuffle(actions)
        steps = self._steps()
        for action, arg in actions:
            at += timedelta(seconds=rng.randint(1800, 6 * DAY))
            at = steps[action](c, arg, at)

    def _steps(self) -> dict[str, Any]:
        """What each planned action does (one method per action)."""
        return {
            "login": self._do_login,
            "login_phone": self._do_login_phone,
            "lead_phone": self._do_lead_phone,
            "lead_email": self._do_lead_email,
            "call": self._do_call,
            "whatsapp": self._do_whatsapp,
            "telegram": self._do_telegram,
            "app_link": self._do_app_link,
            "app_open": self._do_app_open,
            "loyalty_link": self._do_loyalty_link,
            "order": self._do_order,
            "qr_scan": self._do_qr_scan,
            "return_visit": self._do_return_visit,
            "direct_call": self._do_direct_call,
            "tablet_login": self._do_tablet_login,
        }

    def _hub_links(self, c: _Customer) -> list[tuple[str, Any]]:
        """Every browser tied to the customer's hub (user_id, else phone, else email), and every
        email linked once."""
        rng, actions, linked_emails = self.rng, [], set()
        for position, browser in enumerate(c.browsers):
            if c.user_id is not None:
                signup_email = position == 0 and bool(c.emails) and rng.random() < 0.5
                if signup_email:
                    linked_emails.add(0)
                actions.append(("login", (browser, 0 if signup_email else None)))
            elif c.phone is not None:
                actions.append((rng.choice(("lead_phone", "call", "whatsapp")), browser))
            elif c.emails:
                linked_emails.add(0)
                actions.append(("lead_email", (browser, 0)))
        if c.phone is not None and c.user_id is not None:
            if c.family_phone:
                actions.append(("login_phone", rng.choice(c.browsers)))
            else:
                kind = rng.choice(("lead_phone", "call", "whatsapp", "login_phone"))
                actions.append((kind, rng.choice(c.browsers)))
        for number in range(len(c.emails)):
            if number not in linked_emails:
                actions.append(("lead_email", (rng.choice(c.browsers), number)))
        return actions

    def _other_links(self, c: _Customer) -> list[tuple[str, Any]]:
        rng, actions = self.rng, []
        if c.telegram_id is not None:
            actions.append(("telegram", rng.choice(c.browsers)))
        if c.app is not None:
            actions.append(("app_link", None))
            actions.extend(("app_open", None) for _ in range(rng.randint(0, 3)))
        if c.loyalty_card is not None:
            actions.append(("loyalty_link", rng.choice(c.browsers)))
        if c.tablet is not None:
            actions.append(("tablet_login", None))
        return actions

    def _touches(self, c: _Customer) -> list[tuple[str, Any]]:
        """Extra touches that link nothing new, and orders."""
        rng = self.rng
        actions: list[tuple[str, Any]] = [
            ("return_visit", rng.choice(c.browsers)) for _ in range(rng.choice((0, 0, 1, 1, 2, 3)))
        ]
        if rng.random() < 0.25:
            actions.append(("qr_scan", rng.choice(c.browsers)))
        if c.phone is not None and not c.family_phone:
            if rng.random() < 0.2:
                actions.append(("direct_call", None))
            if rng.random() < 0.2:
                actions.append((rng.choice(("call", "whatsapp")), rng.choice(c.browsers)))
        if (c.phone is not None and not c.family_phone) or c.loyalty_card is not None:
            actions.extend(("order", None) for _ in range(rng.choice((0, 0, 1, 1, 2))))
        return actions

    def _do_login(self, c: _Customer, arg: tuple[_Browser, int | None], at: datetime) -> datetime:
        browser, email = arg
        session, attribution, at = self._visit(c, browser, at, returning=True)
        ids = {"user_id": c.user_id, **self._web_ids(browser, session)}
        traits: dict[str, Any] = {"first_name": c.first_name}
        if email is not None:
            ids["email"] = self._email_raw(c.emails[email])
        self._emit("identify", at, ids, context=attribution, traits=traits, properties={"method": "password"})
        return at

    def _do_login_phone(self, c: _Customer, browser: _Browser, at: datetime) -> datetime:
        """A logged-in customer fills the phone in the account (the user_id travels along)."""
        session, attribution, at = self._visit(c, browser, at, returning=True)
        ids = {
            "user_id": c.user_id,
            "phone": self._phone_raw(c.phone or ""),
            **self._web_ids(browser, session),
        }
        self._emit("identify", at, ids, context=attribution, properties={"method": "profile_update"})
        return at

    def _do_lead_phone(self, c: _Customer, browser: _Browser, at: datetime) -> datetime:
        session, attribution, at = self._visit(c, browser, at)
        ids = {"phone": self._phone_raw(c.phone or ""), **self._web_ids(browser, session)}
        if c.emails and self.rng.random() < 0.3:
            ids["email"] = self._email_raw(c.emails[0])
        self._emit(
            "lead",
            at,
            ids,
            context=attribution,
            traits={"first_name": c.first_name},
            properties={"form": self.rng.choice(("callback", "order_form", "consultation"))},
        )
        return at

    def _do_lead_email(self, c: _Customer, arg: tuple[_Browser, int], at: datetime) -> datetime:
        browser, number = arg
        session, attribution, at = self._visit(c, browser, at)
        ids: dict[str, Any] = {"email": self._email_raw(c.emails[number]), **self._web_ids(browser, session)}
        if c.phone is not None and not c.family_phone and self.rng.random() < 0.4:
            ids["phone"] = self._phone_raw(c.phone)
        if c.user_id is not None and self.rng.random() < 0.3:
            ids["user_id"] = c.user_id  # logged in while subscribing
        self._emit(
            "lead",
            at,
            ids,
            context=attribution,
            properties={"form": self.rng.choice(("subscribe", "order_form"))},
        )
        return at

    def _do_call(self, c: _Customer, browser: _Browser, at: datetime) -> datetime:
        """Call tracking: the dynamic number shown in the session gives the call its session id."""
        session, attribution, at = self._visit(c, browser, at)
        at += timedelta(seconds=self.rng.randint(30, 900))
        raw_session: Any = int(session) if self.rng.random() < 0.5 else session
        self._emit(
            "call",
            at,
            {"phone": self._phone_raw(c.phone or ""), "session_id": raw_session},
            channel="call",
            context=attribution,
            properties={"duration_s": self.rng.randint(20, 600), "tracking_number": "+74951234567"},
        )
        return at

    def _do_whatsapp(self, c: _Customer, browser: _Browser, at: datetime) -> datetime:
        """A WhatsApp message from the site's template, which carries the session id."""
        session, attribution, at = self._visit(c, browser, at)
        at += timedelta(seconds=self.rng.randint(10, 300))
        text = (
            f"Сообщение отправлено с сайта divan.example.ru. Отправьте ваш номер заявки {session} менеджеру."
        )
        self._emit(
            "message",
            at,
            {"phone": self._phone_raw(c.phone or ""), "session_id": session},
            channel="whatsapp",
            context=attribution,
            properties={"text": text, "direction": "in"},
        )
        return at

    def _do_telegram(self, c: _Customer, browser: _Browser, at: datetime) -> datetime:
        """The site's Telegram button opens the bot with ``/start <session>``."""
        session, attribution, at = self._visit(c, browser, at)
        at += timedelta(seconds=self.rng.randint(5, 120))
        telegram: Any = int(c.telegram_id or 0) if self.rng.random() < 0.5 else c.telegram_id
        self._emit(
            "message",
            at,
            {"telegram_id": telegram, "session_id": session},
            channel="telegram",
            context=attribution,
            properties={"text": f"/start {session}", "direction": "in"},
        )
        for _ in range(self.rng.randint(0, 2)):
            at += timedelta(seconds=self.rng.randint(60, 2 * DAY))
            self._emit(
                "message",
                at,
                {"telegram_id": c.telegram_id},
                channel="telegram",
                properties={"text": "Есть ли диван Осло в наличии?", "direction": "in"},
            )
        return at

    def _do_app_link(self, c: _Customer, arg: None, at: datetime) -> datetime:
        pseudo, device = c.app or ("", "")
        ids: dict[str, Any] = {"user_pseudo_id": pseudo, "device_id": device}
        self._emit("app_open", at, dict(ids), channel="app", context={"source": "app_store", "medium": "app"})
        at += timedelta(seconds=self.rng.randint(20, 600))
        if c.user_id is not None:
            ids["user_id"] = c.user_id
            self._emit("identify", at, ids, channel="app", properties={"method": "password"})
        else:
            ids["phone"] = self._phone_raw(c.phone or "")
            self._emit("lead", at, ids, channel="app", properties={"form": "callback"})
        return at

    def _do_app_open(self, c: _Customer, arg: None, at: datetime) -> datetime:
        pseudo, device = c.app or ("", "")
        ids: dict[str, Any] = {"user_pseudo_id": pseudo, "device_id": device}
        if c.user_id is not None and self.rng.random() < 0.5:
            ids["user_id"] = c.user_id  # still logged in
        self._emit("app_open", at, ids, channel="app", context={"source": "push", "medium": "app"})
        return at

    def _do_loyalty_link(self, c: _Customer, browser: _Browser, at: datetime) -> datetime:
        card = c.loyalty_card or ""
        if c.user_id is not None and (c.family_phone or c.phone is None or self.rng.random() < 0.5):
            session, attribution, at = self._visit(c, browser, at, returning=True)
            ids = {"user_id": c.user_id, "loyalty_card": card, **self._web_ids(browser, session)}
            self._emit("identify", at, ids, context=attribution, properties={"method": "card_added"})
            return at
        # The card is issued at the till against the phone number.
        return self._order(c, at, {"phone": self._phone_raw(c.phone or ""), "loyalty_card": card})

    def _do_order(self, c: _Customer, arg: None, at: datetime) -> datetime:
        ids: dict[str, Any] = {}
        if c.loyalty_card is not None and (c.family_phone or c.phone is None or self.rng.random() < 0.6):
            ids["loyalty_card"] = c.loyalty_card
        if c.phone is not None and not c.family_phone and (not ids or self.rng.random() < 0.3):
            ids["phone"] = self._phone_raw(c.phone)
        return self._order(c, at, ids)

    def _order(self, c: _Customer, at: datetime, ids: dict[str, Any]) -> datetime:
        store = self.rng.choice(STORES)
        self._emit(
            "order",
            at,
            ids,
            channel="store",
            context={"source": "showroom", "medium": "offline"},
            properties={
                "order_id": f"ORD-{self._digits(8)}",
                "amount": self.rng.randint(19, 250) * 1000 - 10,
                "currency": "RUB",
                "store": store,
            },
        )
        return at

    def _do_qr_scan(self, c: _Customer, browser: _Browser, at: datetime) -> datetime:
        """In the store the customer scans a QR code (extended warranty); Metrica knows the cookie."""
        store = self.rng.choice(STORES)
        self._emit(
            "qr_scan",
            at,
            {"client_id": browser.client_id, "ym_client_id": browser.ym_client_id},
            channel="store",
            context={"source": "qr", "medium": "offline", "campaign": store},
            properties={"store": store, "offer": "extended_warranty"},
        )
        return at

    def _do_return_visit(self, c: _Customer, browser: _Browser, at: datetime) -> datetime:
        _, _, at = self._visit(c, browser, at, returning=True)
        return at

    def _do_direct_call(self, c: _Customer, arg: None, at: datetime) -> datetime:
        """A call to the number on the business card: only the phone is known."""
        self._emit(
            "call",
            at,
            {"phone": self._phone_raw(c.phone or "")},
            channel="call",
            context={"source": "business_card", "medium": "offline"},
            properties={"duration_s": self.rng.randint(20, 600), "tracking_number": "+74957654321"},
        )
        return at

    def _do_tablet_login(self, c: _Customer, arg: None, at: datetime) -> datetime:
        """The store's shared tablet: a consultant logs the customer in to show the cart."""
        self.tablet_logins[c.index] = at
        self._emit(
            "identify",
            at,
            {"device_id": c.tablet, "user_id": c.user_id},
            channel="store",
            context={"source": "store_tablet", "medium": "offline"},
            properties={"method": "consultant"},
        )
        return at

    # ---- the population ------------------------------------------------------------------------

    def _roles(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[list[int]]]:
        """Customers chosen for the shared-identifier scenarios (disjoint groups)."""
        if not self.noise or self.customers < 2:
            return [], [], []
        pool = self.rng.sample(range(self.customers), self.customers)
        families: list[tuple[int, int]] = []
        moves: list[tuple[int, int]] = []
        tablets: list[list[int]] = []
        for _ in range(max(1, self.customers // 200)):
            if len(pool) >= 2:
                families.append((pool.pop(), pool.pop()))
        for _ in range(max(1, self.customers // 250)):
            if len(pool) >= 2:
                moves.append((pool.pop(), pool.pop()))
        for _ in range(max(1, self.customers // 1000)):
            size = min(self.rng.randint(3, 6), len(pool))
            if size >= 2:
                tablets.append([pool.pop() for _ in range(size)])
        return families, moves, tablets

    def _customer(self, index: int, role: str | None) -> _Customer:
        """One customer's identifiers. ``role`` forces what a noise scenario needs:
        ``family`` (registered, the phone comes later), ``device_giver`` (app and phone),
        ``device_taker`` (registered, app on a device given later), ``tablet`` (registered)."""
        rng = self.rng
        c = _Customer(index=index, first_name=rng.choice(FIRST_NAMES))
        registered = role in ("family", "device_taker", "tablet") or rng.random() < 0.45
        has_phone = role == "device_giver" or (role != "family" and rng.random() < 0.75)
        has_email = rng.random() < (0.8 if registered else 0.45)
        if registered:
            c.user_id = self._register("user_id", lambda: str(rng.randint(1000, 99_999_999)), index)
        if has_phone:
            c.phone = self._phone(index)
        if has_email:
            c.emails.append(self._email(c))
            if rng.random() < 0.15:
                c.emails.append(self._email(c))
        hub = c.user_id is not None or c.phone is not None or bool(c.emails)
        browsers = rng.choices((1, 2, 3), (60, 30, 10))[0] if hub else 1
        c.browsers = [self._browser(index) for _ in range(browsers)]
        linkable = c.user_id is not None or c.phone is not None or role == "family"
        if role in ("device_giver", "device_taker") or (linkable and rng.random() < 0.25):
            pseudo = self._register("user_pseudo_id", lambda: self._hex(32), index)
            c.app = (
                pseudo,
                "" if role == "device_taker" else self._device(None if role == "device_giver" else index),
            )
        if linkable and rng.random() < 0.3:
            c.loyalty_card = self._register(
                "loyalty_card", lambda: rng.choice(("2", "98")) + self._digits(rng.choice((9, 11))), index
            )
        if rng.random() < 0.15:
            c.telegram_id = self._register(
                "telegram_id", lambda: str(rng.randint(10**8, 7_999_999_999)), index
            )
        return c

    def build(self) -> Population:
        families, moves, tablets = self._roles()
        roles: dict[int, str] = {}
        for a, b in families:
            roles[a] = roles[b] = "family"
        for a, b in moves:
            roles[a], roles[b] = "device_giver", "device_taker"
        for group in tablets:
            roles.update(dict.fromkeys(group, "tablet"))
        people = [self._customer(i, roles.get(i)) for i in range(self.customers)]

        for a, b in families:
            phone = self._phone(None)
            people[a].phone = people[b].phone = phone
            people[a].family_phone = people[b].family_phone = True
            self.refusable.append(
                (("user_id", people[a].user_id or ""), ("user_id", people[b].user_id or ""))
            )
        for a, b in moves:
            # b got a's phone second-hand: a reinstalled app (new pseudo id) on the same hardware id.
            giver, taker = people[a].app or ("", ""), people[b].app or ("", "")
            people[b].app = (taker[0], giver[1])
            self.refusable.append((("user_pseudo_id", giver[0]), ("user_pseudo_id", taker[0])))
        for group in tablets:
            tablet = self._device(None)
            for i in group:
                people[i].tablet = tablet

        for person in people:
            self._journey(person)
        for group in tablets:
            # Consecutive logins on the tablet are the links the device tempts an engine into.
            order = sorted(group, key=lambda i: self.tablet_logins[i])
            self.refusable.extend(
                (("user_id", people[x].user_id or ""), ("user_id", people[y].user_id or ""))
                for x, y in zip(order, order[1:], strict=False)
            )
        unique = len(self.events)
        delivered = self._deliver()
        return Population(
            events=delivered,
            truth=self.truth,
            shared=self.shared,
            refusable_links=self.refusable,
            customers=self.customers,
            unique_events=unique,
            duplicates=len(delivered) - unique,
            garbage_values=self.garbage,
        )

    def _deliver(self) -> list[Event]:
        """Delivery order: event time, then (with noise) local jitter, far moves and redeliveries."""
        ordered = sorted(self.events, key=lambda e: e.timestamp)
        if not self.noise:
            return ordered
        rng = self.rng
        n = len(ordered)
        keyed: list[tuple[float, int, Event]] = []
        for position, event in enumerate(ordered):
            if rng.random() < FAR_MOVE_RATE:
                key = rng.uniform(0, n)
            else:
                key = position + rng.uniform(0, JITTER_WINDOW)
            keyed.append((key, len(keyed), event))
            if rng.random() < DUPLICATE_RATE:
                for _ in range(1 if rng.random() < 0.85 else 2):
                    keyed.append((position + rng.uniform(1, 50 * JITTER_WINDOW), len(keyed), event))
        keyed.sort(key=lambda item: (item[0], item[1]))
        return [event for _, _, event in keyed]
