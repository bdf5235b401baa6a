"""The customer journal's read model: what a marketer sees of customers and their touches, in
their language (Russian by default), the account's time zone and money format.

Pure: the entry point (``entrypoints/journal.py``) reads through the customer directory and the
store, and renders these dicts with the templates. Labels follow the Calltouch customer journal
(the seed's "Журнал клиентов"): totals on top, then the list, then the customer card.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from svyaz.adapters.customers.base import Totals
from svyaz.domain.model import Identifier, Profile, Touchpoint
from svyaz.domain.split import SplitRequest
from svyaz.identity.policy import Policy, UnknownKind

LANGUAGES = ("ru", "en")
NBSP = "\u00a0"
CURRENCY_SIGNS = {"RUB": "₽", "USD": "$", "EUR": "€", "KZT": "₸", "BYN": "Br", "UZS": "сўм"}
DEVICE_IDS = ("session_id", "client_id", "ym_client_id", "ga_client_id", "ct_client_id", "device_id")
SHOWN_PROPERTIES = ("order_id", "amount", "currency", "status", "store_id", "tracked_phone", "duration")
SHOWN_PROPERTIES += ("successful",)

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "title": "Журнал клиентов",
        "customers": "Всего клиентов",
        "with_orders": "Со сделками",
        "with_leads": "С лидами",
        "with_neither": "Без сделок и лидов",
        "returning": "Вернувшиеся",
        "average_ltv": "Средний LTV клиента",
        "average_days_to_first_order": "Среднее время до первой сделки, дни",
        "average_orders": "Среднее количество сделок одного клиента",
        "average_chain": "Средняя длина цепочки, касания",
        "average_span_days": "Средняя продолжительность касаний, дни",
        "top": "Топ клиентов по выручке",
        "period_note": "Итоги — по клиентам, чьё первое касание попало в период; "
        "список — по клиентам с активностью в периоде.",
        "search": "Поиск",
        "search_hint": "телефон, почта, карта лояльности, ID клиента или имя",
        "find": "Найти",
        "filters": "Фильтры",
        "source": "Источник",
        "medium": "Канал (medium)",
        "campaign": "Кампания",
        "content": "Объявление",
        "term": "Ключевая фраза",
        "channel": "Точка контакта",
        "has_orders": "Только со сделками",
        "from": "С",
        "to": "По",
        "apply": "Показать",
        "reset": "Сбросить",
        "client": "Клиент",
        "first_last": "Первое и последнее касание",
        "touches": "Касания",
        "orders": "Сделки",
        "ltv": "LTV",
        "no_customers": "Клиентов не найдено.",
        "next_page": "Следующая страница →",
        "first_page": "← В начало",
        "nameless": "Без имени",
        "phone": "Телефон",
        "email": "Почта",
        "profile_id": "ID клиента",
        "first_touch_at": "Дата и время первого касания",
        "last_touch_at": "Дата и время последнего касания",
        "span_days": "Продолжительность касаний, дни",
        "touches_total": "Кол-во касаний всего",
        "touches_before_order": "Кол-во касаний до первой сделки",
        "revenue": "Выручка с клиента (LTV)",
        "identifiers": "Идентификаторы",
        "traits": "Данные клиента",
        "first_touch": "Первое касание",
        "last_touch": "Последнее касание",
        "history": "История касаний",
        "older": "Более ранние касания →",
        "newest": "← К последним касаниям",
        "merged": "Объединённые профили",
        "links": "Почему идентификаторы связаны",
        "erase": "Удалить клиента",
        "erase_title": "Удалить все данные клиента?",
        "erase_text": "Будут удалены профиль, все идентификаторы и вся история касаний, "
        "включая объединённые профили. Это необратимо.",
        "erase_confirm": "Да, удалить навсегда",
        "cancel": "Отмена",
        "erase_queued": "Удаление клиента поставлено в очередь и скоро будет выполнено.",
        "signin": "Вход",
        "signin_key": "Пароль журнала или API-ключ",
        "signin_button": "Войти",
        "signin_wrong": "Неверный пароль или ключ.",
        "signin_expired": "Сессия истекла или ссылка уже использована. Войдите снова.",
        "signout": "Выйти",
        "back": "← К списку клиентов",
        "credited": "Выручка засчитана",
        "credit_first_touch": "первому касанию",
        "credit_last_touch": "последнему касанию",
        "answered": "да",
        "not_answered": "нет",
        "timezone": "Время",
        "cost": "Чтений Firestore на этой странице",
        "search_results": "Результаты поиска",
        "not_found": "Не найдено",
        "error": "Ошибка",
        "days": "д",
        "via_link": "вход по ссылке",
        "links_none": "Связей нет: у клиента один идентификатор.",
        "linked_by": "связан событием",
        "linked_through": "через",
        "seen_first": "впервые в событии",
        "event_gone": "событие удалено",
        "audit_merges": "Объединение профилей",
        "audit_splits": "Разделение",
        "audit_blocks": "Блокировка значения",
        "audit_moves": "Перенос устройства",
        "audit_conflicts": "Связь отклонена (лимит)",
        "split": "Разделить клиента",
        "split_title": "Разделить клиента?",
        "split_text": "Выберите значение, которое ошибочно связало разных людей (например, общий "
        "семейный телефон). Оно будет заблокировано и больше ничего не свяжет; клиент пересоберётся "
        "из своих касаний без него: идентификаторы и касания, связанные только через это значение, "
        "станут отдельными клиентами.",
        "split_choose": "Какое значение связало разных людей",
        "split_carried": "через него связаны",
        "split_reason": "Причина",
        "split_reason_hint": "например: общий семейный телефон",
        "split_confirm": "Заблокировать значение и разделить",
        "split_none": "У клиента нет значений, связывающих профили: разделять нечего.",
        "split_missing": "Выберите значение и укажите причину.",
        "split_heading": "Разделение клиента",
        "split_queued": "Разделение в очереди. Страница обновится сама.",
        "split_moving": "Разделение выполняется: частей {applied} из {parts}. Страница обновится сама.",
        "split_done": "Готово. Клиентов после разделения: {n}.",
        "split_failed": "Разделение не удалось: {error}",
        "split_blocked": "Заблокировано",
        "split_unplaced": "Идентификаторов без подтверждающих событий (остались у первого клиента): {n}.",
        "split_gone": "Клиент удалён.",
        "refresh": "Обновить",
    },
    "en": {
        "title": "Customer journal",
        "customers": "Customers",
        "with_orders": "With orders",
        "with_leads": "With leads",
        "with_neither": "With neither",
        "returning": "Returning",
        "average_ltv": "Average LTV",
        "average_days_to_first_order": "Average days to the first order",
        "average_orders": "Average orders per customer",
        "average_chain": "Average chain length, touches",
        "average_span_days": "Average span of touches, days",
        "top": "Top customers by revenue",
        "period_note": "Totals count customers whose first touch falls in the period; "
        "the list shows customers active in it.",
        "search": "Search",
        "search_hint": "phone, email, loyalty card, client id or name",
        "find": "Find",
        "filters": "Filters",
        "source": "Source",
        "medium": "Medium",
        "campaign": "Campaign",
        "content": "Ad",
        "term": "Keyword",
        "channel": "Channel",
        "has_orders": "Only with orders",
        "from": "From",
        "to": "To",
        "apply": "Show",
        "reset": "Reset",
        "client": "Customer",
        "first_last": "First and last touch",
        "touches": "Touches",
        "orders": "Orders",
        "ltv": "LTV",
        "no_customers": "No customers found.",
        "next_page": "Next page →",
        "first_page": "← First page",
        "nameless": "No name",
        "phone": "Phone",
        "email": "Email",
        "profile_id": "Customer ID",
        "first_touch_at": "First touch",
        "last_touch_at": "Last touch",
        "span_days": "Span of touches, days",
        "touches_total": "Touches in total",
        "touches_before_order": "Touches before the first order",
        "revenue": "Revenue from the customer (LTV)",
        "identifiers": "Identifiers",
        "traits": "Customer data",
        "first_touch": "First touch",
        "last_touch": "Last touch",
        "history": "Touch history",
        "older": "Older touches →",
        "newest": "← Newest touches",
        "merged": "Merged profiles",
        "links": "Why these identifiers are linked",
        "erase": "Erase customer",
        "erase_title": "Erase all of this customer's data?",
        "erase_text": "The profile, every identifier and the whole touch history, merged profiles "
        "included, will be deleted. This cannot be undone.",
        "erase_confirm": "Yes, erase for good",
        "cancel": "Cancel",
        "erase_queued": "The erasure is queued and will be carried out shortly.",
        "signin": "Sign in",
        "signin_key": "Journal password or API key",
        "signin_button": "Sign in",
        "signin_wrong": "Wrong password or key.",
        "signin_expired": "The session expired or the link was used already. Sign in again.",
        "signout": "Sign out",
        "back": "← Back to customers",
        "credited": "Revenue credited to",
        "credit_first_touch": "the first touch",
        "credit_last_touch": "the last touch",
        "answered": "yes",
        "not_answered": "no",
        "timezone": "Times",
        "cost": "Firestore reads for this page",
        "search_results": "Search results",
        "not_found": "Not found",
        "error": "Error",
        "days": "d",
        "via_link": "signed in by link",
        "links_none": "No links: the customer has one identifier.",
        "linked_by": "linked by",
        "linked_through": "through",
        "seen_first": "first seen in",
        "event_gone": "event erased",
        "audit_merges": "Profiles merged",
        "audit_splits": "Split",
        "audit_blocks": "Value blocked",
        "audit_moves": "Device moved",
        "audit_conflicts": "Link refused (limit)",
        "split": "Split customer",
        "split_title": "Split this customer?",
        "split_text": "Choose the value that wrongly linked different people (a shared family phone, "
        "say). It is blocked and links nothing from now on; the customer is rebuilt from their "
        "touches without it: identifiers and touches linked only through that value become "
        "customers of their own.",
        "split_choose": "Which value linked different people",
        "split_carried": "linked through it",
        "split_reason": "Reason",
        "split_reason_hint": "e.g. shared family phone",
        "split_confirm": "Block the value and split",
        "split_none": "Nothing here links profiles: there is nothing to split.",
        "split_missing": "Choose a value and give a reason.",
        "split_heading": "Splitting a customer",
        "split_queued": "The split is queued. This page refreshes by itself.",
        "split_moving": "The split is under way: {applied} of {parts} parts. This page refreshes by itself.",
        "split_done": "Done. Customers after the split: {n}.",
        "split_failed": "The split failed: {error}",
        "split_blocked": "Blocked",
        "split_unplaced": "Identifiers no event supports (kept with the first customer): {n}.",
        "split_gone": "Customer erased.",
        "refresh": "Refresh",
    },
}

TOUCH_TYPES = {
    "ru": {
        "page": "Посещение",
        "lead": "Заявка",
        "call": "Звонок",
        "message": "Сообщение",
        "order": "Сделка",
        "qr_scan": "Скан QR-кода",
        "identify": "Авторизация",
        "messenger_start": "Старт в мессенджере",
    },
    "en": {
        "page": "Visit",
        "lead": "Lead",
        "call": "Call",
        "message": "Message",
        "order": "Order",
        "qr_scan": "QR scan",
        "identify": "Sign-in",
        "messenger_start": "Messenger start",
    },
}

CHANNELS = {
    "ru": {
        "web": "сайт",
        "app": "приложение",
        "qr": "QR-код",
        "store": "магазин",
        "crm": "CRM",
        "calltracking": "коллтрекинг",
        "whatsapp": "WhatsApp",
        "telegram": "Telegram",
        "import": "импорт",
    },
    "en": {},
}

KINDS = {
    "ru": {
        "phone": "Телефон",
        "email": "Почта",
        "loyalty_card": "Карта лояльности",
        "user_id": "ID пользователя",
        "client_id": "ID браузера (cookie)",
        "session_id": "SessionID",
        "ym_client_id": "ЯМ ID",
        "ga_client_id": "GA cid",
        "ct_client_id": "Calltouch ID",
        "device_id": "ID устройства",
        "telegram_id": "Telegram ID",
        "whatsapp_id": "WhatsApp ID",
    },
    "en": {
        "phone": "Phone",
        "email": "Email",
        "loyalty_card": "Loyalty card",
        "user_id": "User id",
        "client_id": "Browser id (cookie)",
        "session_id": "Session id",
        "ym_client_id": "Yandex Metrica id",
        "ga_client_id": "GA client id",
        "ct_client_id": "Calltouch id",
        "device_id": "Device id",
    },
}

DETAILS = {
    "ru": {
        "page_url": "Страница входа",
        "referrer": "Реферер",
        "ip": "IP",
        "user_agent": "Браузер",
        "tracked_phone": "Номер, на который звонили",
        "duration": "Длительность",
        "successful": "Отвечен",
        "messenger": "Мессенджер",
        "order_id": "Номер заказа",
        "amount": "Сумма",
        "status": "Статус",
        "store_id": "Магазин",
        "offer": "Предложение",
        "form": "Форма",
        "page": "Страница",
        "waiting": "Ожидание",
        "city": "Город",
    },
    "en": {
        "page_url": "Landing page",
        "referrer": "Referrer",
        "ip": "IP",
        "user_agent": "Browser",
        "tracked_phone": "Number called",
        "duration": "Duration",
        "successful": "Answered",
        "messenger": "Messenger",
        "order_id": "Order",
        "amount": "Amount",
        "status": "Status",
        "store_id": "Store",
        "offer": "Offer",
        "form": "Form",
        "page": "Page",
        "waiting": "Waiting",
        "city": "City",
    },
}


@dataclass
class Locale:
    """Language, time zone and default currency of the journal's account."""

    lang: str = "ru"
    timezone: str = "Europe/Moscow"
    currency: str = "RUB"
    zone: ZoneInfo = field(init=False)

    def __post_init__(self) -> None:
        self.lang = self.lang if self.lang in LANGUAGES else "ru"
        self.zone = ZoneInfo(self.timezone)

    def t(self, key: str) -> str:
        return TEXTS[self.lang].get(key, key)

    def label(self, table: dict[str, dict[str, str]], key: str) -> str:
        return table[self.lang].get(key) or table["en"].get(key) or key

    def number(self, value: float | None, digits: int = 0) -> str:
        if value is None:
            return "—"
        text = f"{value:,.{digits}f}"
        return text.replace(",", NBSP).replace(".", ",") if self.lang == "ru" else text

    def money(self, amount: Any, currency: str | None = None) -> str:
        try:
            value = Decimal(str(amount if amount is not None else 0))
        except InvalidOperation:
            return str(amount)
        currency = (currency or self.currency).upper()
        digits = 0 if value == value.to_integral_value() else 2
        number = self.number(float(value), digits)
        sign = CURRENCY_SIGNS.get(currency)
        if sign is None:
            return f"{number}{NBSP}{currency}"
        return f"{number}{NBSP}{sign}" if self.lang == "ru" else f"{sign}{number}"

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.zone)

    def date(self, at: datetime | None) -> str:
        if at is None:
            return "—"
        return self.local(at).strftime("%d.%m.%Y" if self.lang == "ru" else "%Y-%m-%d")

    def datetime(self, at: datetime | None) -> str:
        if at is None:
            return "—"
        return self.local(at).strftime("%d.%m.%Y %H:%M:%S" if self.lang == "ru" else "%Y-%m-%d %H:%M:%S")

    def duration(self, seconds: Any) -> str:
        try:
            total = int(float(seconds))
        except (TypeError, ValueError):
            return str(seconds)
        return f"{total // 60}:{total % 60:02d}"


# --- customers -------------------------------------------------------------------------------


def display_name(profile: Profile) -> str | None:
    traits = {name: str(t.value).strip() for name, t in profile.traits.items() if t.value}
    full = " ".join(part for part in (traits.get("first_name"), traits.get("last_name")) if part)
    return full or traits.get("name") or None


def format_phone(value: str) -> str:
    """``+79165550102`` as ``+7 916 555-01-02``; other numbers as stored."""
    match = re.fullmatch(r"\+7(\d{3})(\d{3})(\d{2})(\d{2})", value)
    return f"+7 {match[1]} {match[2]}-{match[3]}-{match[4]}" if match else value


def mask_phone(value: str) -> str:
    """As Calltouch's list shows a phone: the last four digits hidden."""
    shown = format_phone(value)
    digits = [i for i, c in enumerate(shown) if c.isdigit()][-4:]
    return "".join("x" if i in digits else c for i, c in enumerate(shown))


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[:2]}•••@{domain}" if domain else "•••"


def _first(profile: Profile, kind: str) -> str | None:
    values = sorted(profile.identifiers.get(kind, []))
    return values[0] if values else None


def _source(attribution: dict[str, str] | None) -> str:
    if not attribution:
        return ""
    return " / ".join(attribution[k] for k in ("source", "medium") if attribution.get(k))


def customer_row(profile: Profile, locale: Locale) -> dict[str, Any]:
    phone, email = _first(profile, "phone"), _first(profile, "email")
    return {
        "profile_id": profile.profile_id,
        "name": display_name(profile) or locale.t("nameless"),
        "named": display_name(profile) is not None,
        "phone": mask_phone(phone) if phone else "",
        "email": mask_email(email) if email else "",
        "first_at": locale.date(profile.first_seen),
        "last_at": locale.date(profile.last_seen),
        "span_days": span_days(profile),
        "first_source": _source(profile.first_touch.attribution if profile.first_touch else None),
        "last_source": _source(profile.last_touch.attribution if profile.last_touch else None),
        "touches": int(profile.counters.get("events", 0)),
        "orders": int(profile.counters.get("orders", 0)),
        "ltv": locale.money(profile.counters.get("revenue", 0)),
    }


def span_days(profile: Profile) -> int:
    return max(0, (profile.last_seen - profile.first_seen).days)


def totals_view(totals: Totals, locale: Locale) -> dict[str, Any]:
    n = locale.number
    return {
        "tiles": [
            ("customers", n(totals.customers)),
            ("with_orders", n(totals.with_orders)),
            ("with_leads", n(totals.with_leads)),
            ("with_neither", n(totals.with_neither)),
            ("returning", n(totals.returning)),
            (
                "average_ltv",
                locale.money(round(totals.average_ltv)) if totals.average_ltv is not None else "—",
            ),
            ("average_days_to_first_order", n(totals.average_days_to_first_order, 1)),
            ("average_orders", n(totals.average_orders, 1)),
            ("average_chain", n(totals.average_chain, 1)),
            ("average_span_days", n(totals.average_span_days, 1)),
        ],
        "top": [customer_row(p, locale) for p in totals.top],
    }


# --- the customer card -----------------------------------------------------------------------


def card(profile: Profile, locale: Locale, touches_before_first_order: int | None) -> dict[str, Any]:
    name = display_name(profile)
    identifiers = [
        (locale.label(KINDS, kind), kind, [format_phone(v) if kind == "phone" else v for v in sorted(values)])
        for kind, values in sorted(profile.identifiers.items())
    ]
    traits = [
        (locale.label(DETAILS, k), str(t.value))
        for k, t in sorted(profile.traits.items())
        if k not in ("first_name", "last_name", "name")
    ]
    return {
        "profile_id": profile.profile_id,
        "name": name or locale.t("nameless"),
        "phones": [format_phone(v) for v in sorted(profile.identifiers.get("phone", []))],
        "emails": sorted(profile.identifiers.get("email", [])),
        "facts": [
            ("profile_id", profile.profile_id),
            ("first_touch_at", locale.datetime(profile.first_seen)),
            ("last_touch_at", locale.datetime(profile.last_seen)),
            ("span_days", locale.number(span_days(profile))),
            ("touches_total", locale.number(profile.counters.get("events", 0))),
            (
                "touches_before_order",
                locale.number(touches_before_first_order) if touches_before_first_order is not None else "—",
            ),
            ("orders", locale.number(profile.counters.get("orders", 0))),
            ("revenue", locale.money(profile.counters.get("revenue", 0))),
        ],
        "first_touch": _touch_line(profile.first_touch, locale),
        "last_touch": _touch_line(profile.last_touch, locale),
        "identifiers": identifiers,
        "traits": traits,
        "merged": sorted(profile.merged_from),
    }


def _touch_line(touch: Any, locale: Locale) -> str | None:
    if touch is None:
        return None
    where = " / ".join(touch.attribution.get(k, "") for k in ("source", "medium", "campaign")).strip(" /")
    kind = locale.label(TOUCH_TYPES, touch.type)
    return f"{where} — {kind}, {locale.label(CHANNELS, touch.channel)}, {locale.datetime(touch.at)}"


def touch_view(touchpoint: Touchpoint, number: int, locale: Locale) -> dict[str, Any]:
    """One row of the history, with everything the API has about the touch."""
    details: list[tuple[str, str]] = []
    for key in ("source", "medium", "campaign", "content", "term"):
        if value := touchpoint.attribution.get(key):
            details.append((locale.t(key), value))
    for key in ("page_url", "referrer", "ip", "user_agent"):
        if value := touchpoint.context.get(key):
            details.append((locale.label(DETAILS, key), value))
    details += _kind_details(touchpoint, locale)
    for identifier in touchpoint.identifiers:
        if identifier.kind in DEVICE_IDS:
            details.append((locale.label(KINDS, identifier.kind), identifier.value))
    others = sorted(k for k in touchpoint.properties if k not in SHOWN_PROPERTIES)
    details += [(locale.label(DETAILS, k), str(touchpoint.properties[k])) for k in others]
    contacts = [
        (locale.label(KINDS, i.kind), format_phone(i.value) if i.kind == "phone" else i.value)
        for i in touchpoint.identifiers
        if i.kind not in DEVICE_IDS
    ]
    credit = [
        (
            locale.t(f"credit_{by}"),
            " / ".join(v for v in (c.get("source"), c.get("medium"), c.get("campaign")) if v),
        )
        for by, c in sorted(touchpoint.credit.items())
    ]
    return {
        "number": number,
        "type": touchpoint.type,
        "title": locale.label(TOUCH_TYPES, touchpoint.type),
        "channel": locale.label(CHANNELS, touchpoint.channel),
        "at": locale.datetime(touchpoint.timestamp),
        "details": details,
        "contacts": contacts,
        "credit": credit,
    }


def _kind_details(touchpoint: Touchpoint, locale: Locale) -> list[tuple[str, str]]:
    """Calls: the number called, duration, answered; messages: the messenger; orders: the
    order, its amount with currency, status and store."""
    p, label = touchpoint.properties, lambda key: locale.label(DETAILS, key)
    details = []
    if touchpoint.type == "call":
        if p.get("tracked_phone"):
            details.append((label("tracked_phone"), format_phone(str(p["tracked_phone"]))))
        if p.get("duration") is not None:
            details.append((label("duration"), locale.duration(p["duration"])))
        if p.get("successful") is not None:
            details.append((label("successful"), locale.t("answered" if p["successful"] else "not_answered")))
    if touchpoint.type in ("message", "messenger_start"):
        details.append((label("messenger"), locale.label(CHANNELS, touchpoint.channel)))
    if touchpoint.type == "order":
        for key in ("order_id", "status", "store_id"):
            if p.get(key):
                details.append((label(key), str(p[key])))
        if p.get("amount") is not None:
            details.append((label("amount"), locale.money(p["amount"], p.get("currency"))))
    elif p.get("store_id"):
        details.append((label("store_id"), str(p["store_id"])))
    return details


# --- why identifiers are linked, and splitting a customer ------------------------------------


def _shown(locale: Locale, kind: str, value: str) -> str:
    return f"{locale.label(KINDS, kind)} {format_phone(value) if kind == 'phone' else value}"


def _event_line(event: dict[str, Any] | None, locale: Locale) -> str:
    if not event or "at" not in event:
        return locale.t("event_gone")
    at = datetime.fromisoformat(event["at"].replace("Z", "+00:00"))
    kind = locale.label(TOUCH_TYPES, event["type"])
    return f"{kind}, {locale.label(CHANNELS, event['channel'])}, {locale.datetime(at)}"


def links_view(explanation: dict[str, Any], locale: Locale) -> dict[str, Any]:
    """The explanation (``app.explain.explain``) as the card shows it: each identifier with the
    event that linked it and the identifier it came through; then merges, splits, blocks."""
    links = []
    for item in explanation["identifiers"]:
        through = item["linked_through"]
        links.append(
            {
                "identifier": _shown(locale, item["kind"], item["value"]),
                "how": locale.t("linked_by" if through else "seen_first"),
                "event": _event_line(item["linked_by"], locale),
                "through": _shown(locale, through["kind"], through["value"]) if through else None,
            }
        )
    history = []
    for name in ("merges", "moves", "conflicts", "blocks", "splits"):
        for entry in explanation.get(name, []):
            at = datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
            what = _event_line(entry["event"], locale) if "event" in entry else entry.get("reason", "")
            history.append((at, f"{locale.t('audit_' + name)} · {locale.datetime(at)} · {what}"))
    return {"links": links, "history": [line for _, line in sorted(history)]}


def _links(policy: Policy, kind: str) -> bool:
    try:
        return policy.kind(kind).links
    except UnknownKind:
        return False


def split_choices(
    profile: Profile,
    explanation: dict[str, Any],
    policy: Policy,
    key_of: Callable[[Identifier], str],
    locale: Locale,
) -> list[dict[str, Any]]:
    """The values a person may block to split the customer: every identifier it holds whose kind
    links profiles, each with the identifiers that were linked through it. A choice is named by
    its keyed hash (``key_of``), so no value travels in the form."""
    carried: dict[tuple[str, str], list[str]] = {}
    for item in explanation["identifiers"]:
        if through := item["linked_through"]:
            shown = _shown(locale, item["kind"], item["value"])
            carried.setdefault((through["kind"], through["value"]), []).append(shown)
    return [
        {
            "key": key_of(Identifier(kind, value)),
            "label": _shown(locale, kind, value),
            "carried": carried.get((kind, value), []),
        }
        for kind, values in sorted(profile.identifiers.items())
        if _links(policy, kind)
        for value in values
    ]


def chosen(
    profile: Profile, key: str, policy: Policy, key_of: Callable[[Identifier], str]
) -> Identifier | None:
    """The identifier of the profile a split form's choice names (None if it names none)."""
    for kind, values in profile.identifiers.items():
        for value in values if _links(policy, kind) else ():
            if key and key_of(Identifier(kind, value)) == key:
                return Identifier(kind, value)
    return None


def split_view(request: SplitRequest, customers: list[Profile | None], locale: Locale) -> dict[str, Any]:
    """A split request as the journal shows it: its state, the blocked value and, when done,
    the resulting customers (``None`` for one erased since) with their identifiers."""
    t = locale.t
    status = {
        "queued": t("split_queued"),
        "moving": t("split_moving").format(applied=request.cursor, parts=max(request.parts, 0)),
        "done": t("split_done").format(n=len(customers)),
        "failed": t("split_failed").format(error=request.error or ""),
    }[request.state]
    unplaced = int(request.result.get("unplaced_identifiers", 0)) if request.state == "done" else 0
    return {
        "status": status,
        "pending": request.state in ("queued", "moving"),
        "blocked": _shown(locale, request.block.kind, request.block.value),
        "reason": request.reason,
        "unplaced": t("split_unplaced").format(n=unplaced) if unplaced else None,
        "customers": [
            {**customer_row(p, locale), "identifiers": card(p, locale, None)["identifiers"]} if p else None
            for p in customers
        ],
    }
