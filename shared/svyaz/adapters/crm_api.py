"""Read a deal and its contacts from amoCRM's or Bitrix24's REST API (the deal webhooks carry
only ids). Plain ``urllib`` with a timeout and a response size cap; no retries here: a failure
is answered 503 so the CRM delivers the webhook again.

* amoCRM (API v4, long-lived token as ``Authorization: Bearer``):
  ``GET {base}/api/v4/leads/{id}?with=contacts``, then ``GET {base}/api/v4/contacts/{id}``.
* Bitrix24 (an inbound webhook URL ``https://<portal>/rest/<user>/<code>/`` whose code is the
  credential): ``crm.deal.get``, ``crm.deal.contact.items.get``, ``crm.contact.get``
  (``.json`` with ``?id=``), each answering ``{"result": ...}``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

MAX_RESPONSE = 1024 * 1024
MAX_CONTACTS = 5  # the main contact and a few more: enough to find a phone, bounded in calls


class CrmUnavailable(Exception):
    """The CRM could not be read now (network, 5xx, rate limit, bad answer): retry later."""


class DealNotFound(Exception):
    """The CRM says the deal does not exist (deleted since): retrying cannot help."""


def _get_json(url: str, headers: dict[str, str], timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - configured URL
            body = response.read(MAX_RESPONSE + 1)
    except urllib.error.HTTPError as exc:
        if exc.code in (400, 404):  # Bitrix24 answers 400 "Not found" for a deleted deal
            raise DealNotFound(f"HTTP {exc.code}") from None
        raise CrmUnavailable(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise CrmUnavailable(type(exc).__name__) from None
    if len(body) > MAX_RESPONSE:
        raise CrmUnavailable("answer too large")
    if not body.strip():
        raise DealNotFound("empty answer")
    try:
        return json.loads(body)
    except ValueError:
        raise CrmUnavailable("answer is not JSON") from None


@dataclass(frozen=True)
class AmoCrmClient:
    base_url: str  # https://<subdomain>.amocrm.ru
    token: str
    timeout: float = 10.0

    def _get(self, path: str) -> dict[str, Any]:
        answer = _get_json(
            self.base_url.rstrip("/") + path, {"Authorization": f"Bearer {self.token}"}, self.timeout
        )
        if not isinstance(answer, dict):
            raise CrmUnavailable("answer is not an object")
        return answer

    def deal(self, lead_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from svyaz.channels.crm_deals import amocrm_main_contact_ids

        lead = self._get(f"/api/v4/leads/{quote(lead_id)}?with=contacts")
        contacts = [
            self._get(f"/api/v4/contacts/{quote(c)}") for c in amocrm_main_contact_ids(lead)[:MAX_CONTACTS]
        ]
        return lead, contacts


@dataclass(frozen=True)
class Bitrix24Client:
    rest_url: str  # https://<portal>.bitrix24.ru/rest/<user id>/<webhook code>/
    timeout: float = 10.0

    def _call(self, method: str, **params: str) -> Any:
        answer = _get_json(f"{self.rest_url.rstrip('/')}/{method}.json?{urlencode(params)}", {}, self.timeout)
        if not isinstance(answer, dict) or "result" not in answer:
            raise CrmUnavailable(f"{method}: no result")
        return answer["result"]

    def deal(self, deal_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from svyaz.channels.crm_deals import bitrix_primary_contact_ids

        deal = self._call("crm.deal.get", id=deal_id)
        items = self._call("crm.deal.contact.items.get", id=deal_id)
        if not isinstance(deal, dict) or not isinstance(items, list):
            raise CrmUnavailable("unexpected answer shape")
        contacts = [
            self._call("crm.contact.get", id=c) for c in bitrix_primary_contact_ids(items)[:MAX_CONTACTS]
        ]
        return deal, [c for c in contacts if isinstance(c, dict)]
