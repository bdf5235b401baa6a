"""amoCRM and Bitrix24 deal webhooks: their PHP-style forms in, canonical ``order`` events out.

Both CRMs post ``application/x-www-form-urlencoded`` bodies whose keys are PHP array paths:

* amoCRM: ``leads[status][0][id]=...&leads[status][0][status_id]=142&leads[status][0][pipeline_id]=...``
  (also ``leads[update]``/``leads[add]``) plus ``account[subdomain]``/``account[id]``;
* Bitrix24 outgoing webhook: ``event=ONCRMDEALUPDATE&data[FIELDS][ID]=759&ts=...&auth[domain]=...&
  auth[application_token]=...``.

:func:`parse_php_form` rebuilds the nesting with hard bounds (number of fields, key length,
depth), then :func:`amocrm_deal_ids` / :func:`bitrix_deal_id` pick the deal ids. The webhooks
carry ids only, so the entry point fetches the deal and its contacts from the CRM's REST API
(``svyaz.adapters.crm_api``) and hands the documented JSON to :func:`amocrm_order` /
:func:`bitrix_order`, which build the order through the same ``Order`` model as ``/webhooks/crm``.

Event ids are namespaced per CRM: ``order:amocrm:<lead id>:<status>``,
``order:bitrix24:<deal id>:<status>``. Won deals are ``completed`` orders, lost ones
``cancelled``, open ones ``new`` (counted once they are won).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from svyaz.channels import ChannelError, clip, from_unix
from svyaz.channels.crm import Order
from svyaz.domain.events import Event

MAX_FIELDS = 1000
MAX_KEY_LENGTH = 200
MAX_DEPTH = 6
MAX_DEALS = 100
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
_DEAL_ID = re.compile(r"^\d{1,20}$")

# amoCRM's two system statuses, the same in every pipeline: 142 "won", 143 "lost".
AMOCRM_WON, AMOCRM_LOST = "142", "143"
BITRIX_DEAL_EVENTS = frozenset({"ONCRMDEALADD", "ONCRMDEALUPDATE"})


def parse_php_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``a[b][0][c]=v`` pairs as nested dicts (list indices stay string keys), bounded."""
    root: dict[str, Any] = {}
    for count, (key, value) in enumerate(pairs, start=1):
        if count > MAX_FIELDS:
            raise ChannelError(f"form: more than {MAX_FIELDS} fields")
        if len(key) > MAX_KEY_LENGTH:
            raise ChannelError(f"form: a field name is longer than {MAX_KEY_LENGTH} characters")
        match = _KEY.match(key)
        if match is None:
            raise ChannelError("form: a field name is not name[part][part]...")
        path = [match.group(1), *_PART.findall(match.group(2))]
        if len(path) > MAX_DEPTH:
            raise ChannelError(f"form: fields nest deeper than {MAX_DEPTH} levels")
        _put(root, path, value)
    return root


def _put(root: dict[str, Any], path: list[str], value: str) -> None:
    node = root
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ChannelError("form: a field is both a value and a list")
        node = child
    last = path[-1] or str(len(node))  # "a[]=x": PHP appends
    if isinstance(node.get(last), dict):
        raise ChannelError("form: a field is both a value and a list")
    node[last] = value


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _deal_id(value: object, where: str) -> str:
    text = clip(value, 20)
    if not text or not _DEAL_ID.match(text):
        raise ChannelError(f"{where}: expected a numeric deal id")
    return text


def amocrm_deal_ids(form: Mapping[str, Any]) -> list[str]:
    """Lead ids of an amoCRM webhook (status changes, updates, additions), in order, once each."""
    leads = _dict(form.get("leads"))
    ids: list[str] = []
    for action in ("status", "update", "add"):
        for index, lead in _dict(leads.get(action)).items():
            lead_id = _deal_id(_dict(lead).get("id"), f"leads[{action}][{index}][id]")
            if lead_id not in ids:
                ids.append(lead_id)
    if not ids:
        raise ChannelError("no leads[status], leads[update] or leads[add] in the webhook")
    if len(ids) > MAX_DEALS:
        raise ChannelError(f"at most {MAX_DEALS} leads per webhook")
    return ids


def bitrix_deal_id(form: Mapping[str, Any]) -> str | None:
    """The deal id of a Bitrix24 deal event; None for events that are not about a deal change."""
    event = clip(form.get("event"), 64)
    if not event or event.upper() not in BITRIX_DEAL_EVENTS:
        return None
    return _deal_id(_dict(_dict(form.get("data")).get("FIELDS")).get("ID"), "data[FIELDS][ID]")


def bitrix_application_token(form: Mapping[str, Any]) -> str | None:
    token = _dict(form.get("auth")).get("application_token")
    return token if isinstance(token, str) else None


# --- whose account a delivery is about -------------------------------------------------------


def _named_host(url: str) -> tuple[str, str] | None:
    """(host name, host[:port]) of a configured URL, lower-case; None for an address or
    ``localhost`` (a local stand-in of the API: it has no account name to compare with)."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").rstrip(".")
        netloc = host + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if not host or host == "localhost" or host.endswith(".localhost"):
        return None
    return host, netloc


def amocrm_account_matches(form: Mapping[str, Any], base_url: str) -> bool:
    """``account[subdomain]`` (every amoCRM webhook names its account) is the subdomain of the
    configured ``https://<subdomain>.amocrm.ru``: another account's lead ids would otherwise be
    read back from ours."""
    host = _named_host(base_url)
    if host is None:
        return True
    subdomain = clip(_dict(form.get("account")).get("subdomain"), 100)
    return bool(subdomain) and subdomain.lower() == host[0].split(".")[0]


def bitrix_portal_matches(form: Mapping[str, Any], rest_url: str) -> bool:
    """``auth[domain]`` (the portal the event happened on, sent with every event) is the host of
    the configured inbound webhook URL ``https://<portal>/rest/<user>/<code>/``."""
    host = _named_host(rest_url)
    if host is None:
        return True
    domain = clip(_dict(form.get("auth")).get("domain"), 300)
    return bool(domain) and domain.lower().rstrip(".") in host


# --- the REST answers -> orders -------------------------------------------------------------


def _amount(value: object) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise ChannelError("deal amount: not a number") from None


def _order_event(fields: dict[str, Any], properties: Mapping[str, Any], now: datetime | None) -> Event:
    try:
        order = Order.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "deal"
        raise ChannelError(f"deal {where}: {first['msg']}") from None
    event = order.to_event(now)
    event.properties.update({k: v for k, v in properties.items() if v not in (None, "")})
    return event


def _amocrm_values(contact: Mapping[str, Any], code: str) -> list[str]:
    values = []
    for field in contact.get("custom_fields_values") or []:
        if isinstance(field, dict) and field.get("field_code") == code:
            values += [
                v["value"] for v in field.get("values") or [] if isinstance(v, dict) and v.get("value")
            ]
    return [str(v) for v in values]


def amocrm_main_contact_ids(lead: Mapping[str, Any]) -> list[str]:
    """Contact ids of a lead (``?with=contacts``), the main contact first."""
    contacts = [c for c in _dict(lead.get("_embedded")).get("contacts") or [] if isinstance(c, dict)]
    contacts.sort(key=lambda c: not c.get("is_main"))
    return [str(c["id"]) for c in contacts if isinstance(c.get("id"), int)]


def amocrm_status(status_id: object) -> str:
    status = str(status_id)
    return "completed" if status == AMOCRM_WON else "cancelled" if status == AMOCRM_LOST else "new"


def amocrm_order(
    lead: Mapping[str, Any], contacts: list[Mapping[str, Any]], now: datetime | None = None
) -> Event:
    """The order of one amoCRM lead (``GET /api/v4/leads/{id}?with=contacts``) and its contacts
    (``GET /api/v4/contacts/{id}``, the main contact first)."""
    lead_id = _deal_id(lead.get("id"), "lead.id")
    phones = [p for c in contacts for p in _amocrm_values(c, "PHONE")]
    emails = [e for c in contacts for e in _amocrm_values(c, "EMAIL")]
    moment = lead.get("closed_at") or lead.get("updated_at")
    fields = {
        "order_id": f"amocrm:{lead_id}",
        "time": from_unix(moment, "lead.closed_at") if moment else None,
        "amount": _amount(lead.get("price")),
        "status": amocrm_status(lead.get("status_id")),
        "phone": phones[0] if phones else None,
        "email": emails[0] if emails else None,
        "name": clip(contacts[0].get("name"), 200) if contacts else None,
    }
    properties = {
        "crm": "amocrm",
        "pipeline_id": clip(lead.get("pipeline_id"), 20),
        "crm_status_id": clip(lead.get("status_id"), 20),
    }
    return _order_event(fields, properties, now)


def _bitrix_values(contact: Mapping[str, Any], field: str) -> list[str]:
    return [str(v["VALUE"]) for v in contact.get(field) or [] if isinstance(v, dict) and v.get("VALUE")]


def bitrix_status(deal: Mapping[str, Any]) -> str:
    """``STAGE_SEMANTIC_ID`` S (success) / F (failure); else the stage code (``WON``, ``C2:LOSE``)."""
    semantic = str(deal.get("STAGE_SEMANTIC_ID") or "").upper()
    stage = str(deal.get("STAGE_ID") or "").upper().rsplit(":", 1)[-1]
    if semantic == "S" or stage == "WON":
        return "completed"
    if semantic == "F" or stage in ("LOSE", "APOLOGY"):
        return "cancelled"
    return "new"


def bitrix_primary_contact_ids(items: list[Mapping[str, Any]]) -> list[str]:
    """``crm.deal.contact.items.get`` result: contact ids, the primary one first."""
    rows = [i for i in items if isinstance(i, dict) and str(i.get("CONTACT_ID", "")).isdigit()]
    rows.sort(key=lambda i: i.get("IS_PRIMARY") != "Y")
    return [str(i["CONTACT_ID"]) for i in rows]


def _bitrix_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ChannelError("deal date: not ISO 8601") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def bitrix_order(
    deal: Mapping[str, Any], contacts: list[Mapping[str, Any]], now: datetime | None = None
) -> Event:
    """The order of one Bitrix24 deal (``crm.deal.get``) and its contacts (``crm.contact.get``,
    the primary contact first)."""
    deal_id = _deal_id(deal.get("ID"), "deal.ID")
    phones = [p for c in contacts for p in _bitrix_values(c, "PHONE")]
    emails = [e for c in contacts for e in _bitrix_values(c, "EMAIL")]
    closed = str(deal.get("CLOSED") or "").upper() == "Y"
    name = (
        " ".join(filter(None, (clip(contacts[0].get(k), 100) for k in ("NAME", "LAST_NAME"))))
        if contacts
        else ""
    )
    fields = {
        "order_id": f"bitrix24:{deal_id}",
        "time": _bitrix_time(deal.get("CLOSEDATE") if closed else None)
        or _bitrix_time(deal.get("DATE_MODIFY")),
        "amount": _amount(deal.get("OPPORTUNITY")),
        "currency": clip(deal.get("CURRENCY_ID"), 3) or "RUB",
        "status": bitrix_status(deal),
        "phone": phones[0] if phones else None,
        "email": emails[0] if emails else None,
        "name": name or None,
    }
    properties = {
        "crm": "bitrix24",
        "pipeline_id": clip(deal.get("CATEGORY_ID"), 20),
        "crm_stage_id": clip(deal.get("STAGE_ID"), 50),
    }
    return _order_event(fields, properties, now)
