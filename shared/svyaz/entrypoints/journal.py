"""``/journal/``: the customer journal for people, on the profiles function (docs/journal.md).

Server-rendered pages (Jinja2 templates and one stylesheet in ``journal_web/``, no JavaScript):
totals and the customer list with search and filters, the customer card with its touch history,
why its identifiers are linked (``app.explain``), and actions on a customer (erase; split, which
blocks a value and re-partitions the customer from its evidence), each a confirmation page and a
POST with a CSRF token. Sign-in: see ``journal_auth``. The read side goes through the customer
directory port (``adapters.customers``): nothing here streams every profile.

Personal data never goes in a URL: search is a POST; card URLs carry the random profile id.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import flask
import jinja2

from svyaz.adapters.customers import directory_for
from svyaz.adapters.customers.base import Cursor, CustomerFilter, Period, Search, name_spellings
from svyaz.adapters.queue import QueueUnavailable, erase_message
from svyaz.app.explain import explain
from svyaz.app.journal import (
    LANGUAGES,
    Locale,
    card,
    chosen,
    customer_row,
    links_view,
    split_choices,
    split_view,
    totals_view,
    touch_view,
)
from svyaz.app.runtime import Runtime
from svyaz.app.splits import queue_split
from svyaz.app.views import history
from svyaz.domain.model import Identifier, Profile
from svyaz.domain.validation import HARD_EARLIEST, HARD_LATEST
from svyaz.entrypoints import journal_auth as auth
from svyaz.entrypoints.http import HttpError
from svyaz.identity.normalize import Rejected, normalize
from svyaz.identity.policy import UnknownKind

BASE = "/journal"
WEB = Path(__file__).with_name("journal_web")
PAGE = 25  # customers per page
HISTORY_PAGE = 50  # touches per page of the card
LANG_COOKIE = "svyaz_journal_lang"
PROFILE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SEARCH_KINDS = ("phone", "email", "loyalty_card", "client_id", "user_id", "ym_client_id", "ga_client_id")
SEARCH_KINDS += ("session_id", "telegram_id", "ct_client_id")
MAX_FIELD = 200
MAX_REASON = 500  # as the profiles API's split
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class Action:
    """Something done to a customer from the card: a confirmation page (with the fields of
    ``form``, a template, filled by ``prepare``), then a POST carrying a CSRF token and the
    profile id again. ``perform`` returns where the person goes next."""

    name: str
    label: str  # text keys (app.journal.TEXTS)
    title: str
    text: str
    button: str
    perform: Callable[[Visit, Profile], str]
    style: str = "danger"
    form: str | None = None
    prepare: Callable[[Visit, Profile], dict[str, Any]] | None = None


def _erase(visit: Visit, profile: Profile) -> str:
    rt = visit.rt
    try:
        rt.publisher.publish(rt.settings.events_topic, [erase_message(profile.profile_id)])
    except QueueUnavailable:
        raise HttpError(503, "queue_unavailable", "the erasure could not be queued; retry later") from None
    return _url({"notice": "erase_queued"})


def _split_form(visit: Visit, profile: Profile) -> dict[str, Any]:
    rt = visit.rt
    view = explain(rt.store, profile)
    return {"choices": split_choices(profile, view, rt.policy, rt.store.keys.identifier, visit.locale)}


def _split(visit: Visit, profile: Profile) -> str:
    """Block the chosen value and queue the split, as ``POST /profiles/<id>/split`` does; then
    the request's page, which follows it to the resulting customers."""
    rt, form = visit.rt, visit.request.form
    block = chosen(profile, form.get("block", "")[:MAX_FIELD], rt.policy, rt.store.keys.identifier)
    reason = form.get("reason", "").strip()
    if block is None or not reason or len(reason) > MAX_REASON:
        raise HttpError(400, "invalid_form", visit.locale.t("split_missing"))
    try:
        request = queue_split(
            rt.store, rt.publisher, rt.settings.events_topic, profile.profile_id, block, reason
        )
    except QueueUnavailable:
        raise HttpError(503, "queue_unavailable", "the split could not be queued; retry later") from None
    return f"{BASE}/splits/{request.request_id}"


# The card's actions, in order.
ACTIONS: dict[str, Action] = {
    "split": Action(
        "split",
        "split",
        "split_title",
        "split_text",
        "split_confirm",
        _split,
        "secondary",
        "split_form.html",
        _split_form,
    ),
    "erase": Action("erase", "erase", "erase_title", "erase_text", "erase_confirm", _erase),
}


# --- rendering -------------------------------------------------------------------------------


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(WEB / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def _stylesheet() -> tuple[bytes, str]:
    data = (WEB / "journal.css").read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:12]


def _secure(response: flask.Response) -> flask.Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" makes form POSTs say Origin: null
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@dataclass
class Visit:
    """One request to the journal: who, in which language, with which runtime."""

    request: flask.Request
    rt: Runtime
    locale: Locale
    person: auth.Person | None = None
    notice: str | None = None

    @property
    def signer(self) -> auth.Signer:
        return auth.Signer(self.rt.settings.journal_secret_bytes)

    def csrf(self) -> str:
        return self.signer.bound("csrf", self.person.sid) if self.person else ""

    def page(
        self, template: str, status: int = 200, reads: int | None = None, **context: Any
    ) -> flask.Response:
        body = (
            _templates()
            .get_template(template)
            .render(
                base=BASE,
                locale=self.locale,
                t=self.locale.t,
                person=self.person,
                csrf=self.csrf(),
                notice=self.locale.t(self.notice) if self.notice else None,
                reads=reads,
                css_version=_stylesheet()[1],
                **context,
            )
        )
        return _secure(flask.Response(body, status, mimetype="text/html"))


def redirect(location: str) -> flask.Response:
    response = flask.Response("", 303)
    response.headers["Location"] = location
    return _secure(response)


def _cookie(response: flask.Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=auth.COOKIE_PATH, secure=True, httponly=True, samesite="Strict"
    )


# --- entry -----------------------------------------------------------------------------------


def is_journal(request: flask.Request) -> bool:
    path = request.path or "/"
    return path == BASE or path.startswith(BASE + "/")


def handle(request: flask.Request, rt: Runtime) -> flask.Response:
    lang = request.cookies.get(LANG_COOKIE) or rt.settings.journal_language
    settings = rt.settings
    visit = Visit(request, rt, Locale(lang, settings.journal_timezone, settings.journal_currency))
    try:
        return _route(visit, request.path[len(BASE) :] or "/")
    except HttpError as exc:
        return visit.page("error.html", exc.status, code=exc.status, message=exc.reason)


PUBLIC = {("GET", "/static/journal.css"), ("GET", "/signin"), ("POST", "/signin")}


def _route(visit: Visit, path: str) -> flask.Response:
    request = visit.request
    method = "GET" if request.method == "HEAD" else request.method
    if method not in ("GET", "POST"):
        error = HttpError(405, "method_not_allowed", "use GET or POST")
        error.headers["Allow"] = "GET, POST"
        raise error
    if path == "/static/journal.css":
        return _css()
    if path.startswith("/lang/"):
        return _language(path.removeprefix("/lang/"))
    if visit.rt.settings.journal_auth == "key" and path.startswith("/signin"):
        return _signin(visit, path, method)
    visit.person = _person(visit)
    if visit.person is None:
        return redirect(
            f"{BASE}/signin?expired=1" if request.cookies.get(auth.SESSION_COOKIE) else f"{BASE}/signin"
        )
    if method == "POST":
        _check_csrf(visit)
    return _signed_in(visit, path, method)


def _signed_in(visit: Visit, path: str, method: str) -> flask.Response:
    parts = [p for p in path.split("/") if p]
    if not parts and method == "GET":
        return _list(visit)
    if parts == ["search"] and method == "POST":
        return _list(visit, search_text=visit.request.form.get("q", "")[:MAX_FIELD])
    if parts == ["signout"] and method == "POST":
        response = redirect(f"{BASE}/signin")
        _cookie(response, auth.SESSION_COOKIE, "", 0)
        return response
    if len(parts) == 2 and parts[0] == "customers" and method == "GET":
        return _card(visit, parts[1])
    if len(parts) == 3 and parts[0] == "customers" and parts[2] in ACTIONS:
        return _action(visit, parts[1], ACTIONS[parts[2]], method)
    if len(parts) == 2 and parts[0] == "splits" and method == "GET":
        return _split_result(visit, parts[1])
    raise HttpError(404, "not_found", visit.locale.t("not_found"))


def _css() -> flask.Response:
    data, _ = _stylesheet()
    response = flask.Response(data, 200, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return _secure(response)


def _language(code: str) -> flask.Response:
    if code not in LANGUAGES:
        raise HttpError(404, "not_found", "unknown language")
    response = redirect(f"{BASE}/")
    response.set_cookie(
        LANG_COOKIE,
        code,
        max_age=365 * 86400,
        path=auth.COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite="Lax",
    )
    return response


# --- who -------------------------------------------------------------------------------------


def _sessions(rt: Runtime, signer: auth.Signer) -> auth.Sessions:
    settings = rt.settings
    return auth.Sessions(
        signer, settings.journal_session_minutes, lambda: [*settings.journal_keys, *settings.api_keys]
    )


def _person(visit: Visit) -> auth.Person | None:
    settings, headers = visit.rt.settings, visit.request.headers
    if settings.journal_auth == "iap":
        email = _iap(settings.journal_iap_audience or "").email(headers.get(auth.IAP_JWT_HEADER))
    elif settings.journal_auth == "iap_header":
        email = auth.iap_header_email(headers.get(auth.IAP_EMAIL_HEADER))
    else:
        return _sessions(visit.rt, visit.signer).person(visit.request.cookies.get(auth.SESSION_COOKIE))
    return auth.Person(email, f"iap:{email}", "iap") if email else None


_verifiers: dict[str, auth.IapVerifier] = {}


def _iap(audience: str) -> auth.IapVerifier:
    """One verifier per audience for the process: it caches Google's keys."""
    if audience not in _verifiers:
        _verifiers[audience] = auth.IapVerifier(audience)
    return _verifiers[audience]


def _check_csrf(visit: Visit) -> None:
    request = visit.request
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        raise HttpError(403, "cross_site", "cross-site request refused")
    origin = request.headers.get("Origin")
    if origin and origin != request.host_url.rstrip("/") and origin != _forwarded_origin(request):
        raise HttpError(403, "cross_site", "cross-site request refused")
    assert visit.person is not None
    if not visit.signer.check_bound("csrf", visit.person.sid, request.form.get("csrf")):
        raise HttpError(403, "csrf", "the form expired or did not come from the journal; reload the page")


def _forwarded_origin(request: flask.Request) -> str:
    """Behind the load balancer the browser's origin is the public https host."""
    return f"https://{request.headers.get('X-Forwarded-Host') or request.host}"


def _signin(visit: Visit, path: str, method: str) -> flask.Response:
    request, rt = visit.request, visit.rt
    sessions = _sessions(rt, visit.signer)
    if path.startswith("/signin/") and method == "GET":
        token = path.removeprefix("/signin/")
        if not rt.sign_in_links.redeem(token):
            return redirect(f"{BASE}/signin?expired=1")
        return _open_session(sessions.open_for(None, "link"), rt)
    if path != "/signin":
        raise HttpError(404, "not_found", visit.locale.t("not_found"))
    if method == "POST":
        nonce = request.cookies.get(auth.SIGNIN_COOKIE, "")
        if not nonce or not visit.signer.check_bound("signin", nonce, request.form.get("csrf")):
            return _signin_form(visit, 403, "signin_expired")
        key = sessions.key_accepted(request.form.get("key", "")[:MAX_FIELD])
        if key is None:
            return _signin_form(visit, 401, "signin_wrong")
        return _open_session(sessions.open_for(key, "key"), rt)
    return _signin_form(visit, 200, "signin_expired" if request.args.get("expired") else None)


def _signin_form(visit: Visit, status: int, error: str | None) -> flask.Response:
    nonce = auth.secrets.token_urlsafe(16)
    response = visit.page(
        "signin.html",
        status,
        error=visit.locale.t(error) if error else None,
        signin_csrf=visit.signer.bound("signin", nonce),
    )
    _cookie(response, auth.SIGNIN_COOKIE, nonce, 3600)
    return response


def _open_session(cookie: str, rt: Runtime) -> flask.Response:
    response = redirect(f"{BASE}/")
    _cookie(response, auth.SESSION_COOKIE, cookie, rt.settings.journal_session_minutes * 60)
    _cookie(response, auth.SIGNIN_COOKIE, "", 0)
    return response


# --- the list --------------------------------------------------------------------------------


def _date(visit: Visit, name: str, plus_days: int = 0) -> datetime | None:
    text = visit.request.args.get(name, "")
    if not text:
        return None
    try:
        day = datetime.strptime(text[:10], "%Y-%m-%d").date()
    except ValueError:
        raise HttpError(400, "invalid_query", f"{name}: a date YYYY-MM-DD") from None
    # The times an event may have (as the API's attribution report): no customer is active
    # outside them, and the day after 9999-12-31 is no date (it was an OverflowError, a 500).
    if not HARD_EARLIEST.date() <= day < HARD_LATEST.date():
        raise HttpError(400, "invalid_query", f"{name}: out of range")
    day += timedelta(days=plus_days)
    return datetime.combine(day, time(), tzinfo=visit.locale.zone)


def _filters(visit: Visit) -> CustomerFilter:
    args = visit.request.args
    text = {
        name: (args.get(name) or "").strip()[:MAX_FIELD] or None for name in ("source", "medium", "campaign")
    }
    return CustomerFilter(
        **text,
        channel=(args.get("channel") or "").strip()[:MAX_FIELD] or None,
        has_orders=args.get("orders") == "1",
        active_from=_date(visit, "from"),
        active_to=_date(visit, "to", plus_days=1),
    )


def search_for(text: str, rt: Runtime) -> Search:
    """What a typed text may be: each identifier kind it normalizes as (a phone typed as
    ``8 (909) 123-45-67`` is ``+79091234567``, as everywhere), a name, a profile id."""
    text = text.strip()
    identifiers = []
    for kind in SEARCH_KINDS:
        try:
            identifiers.append(Identifier(kind, normalize(rt.policy, kind, text)))
        except (Rejected, UnknownKind):
            continue
    names = name_spellings(text) if re.search(r"[^\W\d_]", text) and "@" not in text else ()
    profile_id = text if PROFILE_ID.match(text) else None
    return Search(tuple(identifiers), names, profile_id)


def _list(visit: Visit, search_text: str | None = None) -> flask.Response:
    args = visit.request.args
    filters = _filters(visit)
    directory = directory_for(visit.rt.store)
    totals = directory.totals(Period(filters.active_from, filters.active_to))
    next_url = None
    if search_text is not None:
        customers = directory.search(search_for(search_text, visit.rt)) if search_text.strip() else []
    else:
        page = directory.customers(filters, PAGE, Cursor.decode(args.get("after")))
        customers = page.customers
        if page.next is not None:
            next_url = _url({**args.to_dict(), "after": page.next.encode()})
    kept = [(k, v) for k, v in args.items() if k in ("source", "medium", "campaign", "channel", "orders")]
    visit.notice = args.get("notice") if args.get("notice") in ("erase_queued",) else None
    return visit.page(
        "list.html",
        reads=directory.reads if _counts_reads(visit.rt) else None,
        totals=totals_view(totals, visit.locale),
        rows=[customer_row(p, visit.locale) for p in customers],
        query=search_text,
        args=args,
        keep_filters=kept,
        filtered=bool(kept),
        next_url=next_url,
        first_page_url=_url({k: v for k, v in args.items() if k != "after"}),
    )


def _url(params: dict[str, str], path: str = "/") -> str:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v})
    return f"{BASE}{path}" + (f"?{query}" if query else "")


def _counts_reads(rt: Runtime) -> bool:
    return rt.settings.store == "firestore" or type(rt.store).__name__ == "FirestoreStore"


# --- the card --------------------------------------------------------------------------------


def _customer(visit: Visit, profile_id: str) -> Profile:
    """The active profile with its identifiers and the aggregates the fold job keeps on its
    document (not ``store.resolve``, which derives them from every touchpoint: a read each)."""
    store = visit.rt.store
    profile = store.active_profile(profile_id) if PROFILE_ID.match(profile_id) else None
    if profile is None:
        raise HttpError(404, "not_found", visit.locale.t("not_found"))
    store.with_identifiers(profile)
    return profile


def _card(visit: Visit, profile_id: str) -> flask.Response:
    profile = _customer(visit, profile_id)
    if profile.profile_id != profile_id:  # merged away: its survivor's card
        return redirect(f"{BASE}/customers/{profile.profile_id}")
    args = visit.request.args
    try:
        before = datetime.fromisoformat(args["before"]) if args.get("before") else None
        skip = max(0, int(args.get("skip", "0")))
    except ValueError:
        raise HttpError(400, "invalid_query", "before: an ISO time; skip: a number") from None
    if before is not None and before.tzinfo is None:
        raise HttpError(400, "invalid_query", "before must carry a time zone")
    family = [profile.profile_id, *profile.merged_from]
    touches = history(visit.rt.store, profile, HISTORY_PAGE + 1, before)
    directory = directory_for(visit.rt.store)
    before_order = (
        directory.touches_before(family, profile.first_order_at) if profile.first_order_at else None
    )
    total = int(profile.counters.get("events", 0))
    shown = touches[:HISTORY_PAGE]
    older_url = None
    if len(touches) > HISTORY_PAGE:
        older_url = _url(
            {"before": shown[-1].timestamp.isoformat(), "skip": str(skip + HISTORY_PAGE)},
            f"/customers/{profile.profile_id}",
        )
    return visit.page(
        "card.html",
        card=card(profile, visit.locale, before_order),
        touches=[touch_view(t, max(total - skip - i, 1), visit.locale) for i, t in enumerate(shown)],
        older_url=older_url,
        newest_url=f"{BASE}/customers/{profile.profile_id}" if before else None,
        actions=list(ACTIONS.values()),
        explanation=links_view(explain(visit.rt.store, profile), visit.locale),
    )


def _action(visit: Visit, profile_id: str, action: Action, method: str) -> flask.Response:
    profile = _customer(visit, profile_id)
    if method == "GET":
        fields = action.prepare(visit, profile) if action.prepare else {}
        return visit.page("confirm.html", action=action, card=card(profile, visit.locale, None), **fields)
    if visit.request.form.get("confirm") != profile.profile_id:
        raise HttpError(400, "not_confirmed", "confirm on the confirmation page first")
    return redirect(action.perform(visit, profile))


def _split_result(visit: Visit, request_id: str) -> flask.Response:
    """A split request's page: queued or under way (the page refreshes itself, no script), then
    the resulting customers with their identifiers. The request id is random: no personal data."""
    store = visit.rt.store
    request = store.get_split(request_id) if PROFILE_ID.match(request_id) else None
    if request is None:
        raise HttpError(404, "not_found", visit.locale.t("not_found"))
    customers = []
    for profile_id in request.result.get("profile_ids", []) if request.state == "done" else []:
        profile = store.active_profile(profile_id)
        if profile is not None:
            store.with_identifiers(profile)
        customers.append(profile)
    return visit.page("split.html", split=split_view(request, customers, visit.locale))
