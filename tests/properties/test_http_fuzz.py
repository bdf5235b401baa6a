"""Issue 11: a property-based fuzz test of every HTTP operation of ``entrypoints/openapi.json``
(``tests/http_space.py`` enumerates them), through the functions exactly as GCP calls them
(functions-framework test clients) on the memory store and the in-process queue.

Each operation gets hostile variants of a valid request (its vendor's or our own documented
fixture): valid and invalid credentials, random and mutated JSON (deep nesting, huge integers,
NaN and Infinity, lone surrogates, booleans where strings go), forms and query strings, wrong
content types, empty and oversized bodies, unknown paths below its prefix, every method. What
every answer must be:

* never a 5xx (every secret, the CRM APIs and the queue are configured and up);
* an error is JSON with a ``reason``, except the pages openapi.json documents as HTML;
* a ``HEAD`` answer has no body;
* its status is one openapi.json documents for the operation; on a path or a method it does not
  describe, a JSON 404 or 405;
* nothing half-written: after a 4xx nothing is queued; after a 2xx every queued message
  applies through ``process_event``'s code (none rejected, no exception).

A second property sends well-formed events (random, valid) with the right key and applies them:
accepted means applied, never an exception, never silently dropped.

CI runs a fixed, derandomized set of examples; run it long by hand with
``SVYAZ_FUZZ_EXAMPLES=2000`` (examples per operation, random seeds each run)."""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import os
import re
import string
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svyaz.adapters.store.memory import MemoryStore
from svyaz.app import runtime
from svyaz.channels.qr import QrCode, sign_code
from svyaz.domain.events import client_event_id
from svyaz.domain.model import Identifier
from svyaz.entrypoints.process import PoisonMessage, apply_message
from tests.conftest import PEPPER
from tests.helpers import check_invariants
from tests.http_space import SETTINGS, Operation, auth_headers, call, operations
from tests.pipeline_support import FIXTURES, WRITE_KEY, client, install
from tests.vendor_support import BITRIX24_REST_PATH, VENDOR_FIXTURES, CrmRest

LONG = int(os.environ.get("SVYAZ_FUZZ_EXAMPLES", "0"))


def examples(default: int) -> settings:
    """``default`` fixed examples in CI; ``SVYAZ_FUZZ_EXAMPLES`` random ones by hand."""
    return settings(
        max_examples=LONG or default,
        derandomize=not LONG,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )


MAX_BODY = 64 * 1024  # the test settings' max_body_bytes
QR_KEY = SETTINGS["qr_signing_key"].encode()
KNOWN_PROFILE = "{known-profile}"  # replaced by a profile the store holds
FUZZ_SETTINGS = SETTINGS | {
    # the vendor fixtures' body-borne credentials are the development ones
    "bitrix24_application_token": "dev-bitrix24-application-token",
    "mango_api_key": "dev-mango-api-key",
    "mango_api_salt": "dev-mango-api-salt",
    "amocrm_token": "dev-amocrm-token",
}
# Pages openapi.json documents as HTML (QR landing, journal): (template, status) -> media types
MAX_SEGMENT = 300


# --- valid requests (the seeds every hostile variant starts from) ------------------------------


def _vendor_requests() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(VENDOR_FIXTURES.glob("*/*.request.json"))]


def _json_fixture(*parts: str) -> bytes:
    return FIXTURES.joinpath(*parts).read_bytes()


def _seeds() -> dict[str, list[tuple[str, bytes, str]]]:
    """Path prefix -> valid (query, body, content type) examples, from the documented fixtures."""
    seeds: dict[str, list[tuple[str, bytes, str]]] = {}

    def add(prefix: str, body: bytes, content_type: str = "application/json", query: str = "") -> None:
        seeds.setdefault(prefix, []).append((query, body, content_type))

    for name in ("web_page_view.json", "app_batch.json", "lead_with_garbage.json"):
        add("/collect", _json_fixture("collect", name))
    for path in sorted((FIXTURES / "tracking").glob("*.json")):
        add("/v1", path.read_bytes())
    add("/beacon", _json_fixture("tracking", "rudderstack_gateway_batch.json"))
    add("/profiles/lookup", b'{"kind": "client_id", "value": "5f3a9c2e7d1b4a60"}')
    add("/profiles/split", b'{"block": {"kind": "client_id", "value": "5f3a9c2e7d1b4a60"}, "reason": "x"}')
    for name in ("whatsapp_referral.json", "whatsapp_text_message.json", "whatsapp_status.json"):
        add("/webhooks/whatsapp", _json_fixture("channels", name))
    for name in ("telegram_start.json", "telegram_text.json"):
        add("/webhooks/telegram", _json_fixture("channels", name))
    add("/webhooks/calltracking", _json_fixture("channels", "calltouch_call.json"))
    for name in ("crm_order_paid.json", "crm_batch.json", "crm_orders.json"):
        folder = "channels" if name == "crm_orders.json" else "calls_orders"
        add("/webhooks/crm", _json_fixture(folder, name))
    for request in _vendor_requests():
        parts = urlsplit(request["path"])
        query = "&".join(
            f"{k}={quote(v)}" for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"
        )
        prefix = re.sub(r"/(dev-amocrm-secret|calltouch|uis|events/.*)$", "", parts.path)
        add(prefix, request.get("body", "").encode(), request["headers"].get("Content-Type", ""), query)
    return seeds


SEEDS = _seeds()


def seeds_for(operation: Operation) -> list[tuple[str, bytes, str]]:
    template = operation.template
    if template.endswith("/split"):
        return SEEDS["/profiles/split"]
    for prefix in sorted(SEEDS, key=len, reverse=True):
        if template == prefix or template.startswith(prefix + "/"):
            return SEEDS[prefix]
    return [("", b"", "")]


def qr_token(target: str = "https://shop.example/sofas", expires: int | None = None) -> str:
    code = QrCode("msk-1", "sofas", "spring", target, expires)
    return sign_code(code, QR_KEY, allowed_hosts=SETTINGS["qr_allowed_hosts"])


# --- hostile values ---------------------------------------------------------------------------

NAN = "\x00nan\x00"  # replaced in the JSON text by a bare NaN / Infinity token


def nested(depth: int) -> Any:
    value: Any = "x"
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


SPECIAL = st.sampled_from(
    [
        True, False, None, 0, -1, 2**63, -(2**63) - 1, 10**30, 1e308, -0.0, 1.5,
        "", " ", "\ud800", "a\udfffb", "\x00", "true", "null", "NaN", "x" * 20_000, "+79161234567",
        "9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00+05:00", "2026-11-02T10:00:00Z",
        "1e309", "-5", "1 000,00", "__name__", "a.b/c", "order:1:paid", "<script>", "%00",
        {}, [], [[[]]], {"__x__": 1}, {"": 1}, nested(33), nested(12), nested(300), NAN,
    ]
)  # fmt: skip
TEXT = st.text(st.characters(codec="utf-8") | st.sampled_from('\ud800\udc00\x00{}[]"\\:/?#%&='), max_size=40)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | TEXT
    | SPECIAL
)
JSON_VALUES = st.deferred(lambda: _JSON_VALUES.map(copy.deepcopy))  # SPECIAL's dicts and lists are shared
_JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(TEXT | SPECIAL.filter(lambda v: isinstance(v, str)), children, max_size=4)
    ),
    max_leaves=12,
)


# JSON nested past the parser's own recursion limit (json.dumps cannot write it)
DEEP_TEXT = st.integers(1000, 4000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n) | st.integers(
    1000, 8000
).map(lambda n: b"[" * n + b"]" * n)


def dump(value: Any, ascii_only: bool) -> bytes:
    """JSON text of ``value`` (NaN and infinities as the bare tokens Python writes)."""
    text = json.dumps(value, ensure_ascii=ascii_only, default=str)
    text = text.replace(json.dumps(NAN), "NaN")
    return text.encode("utf-8", "surrogatepass")


def _paths(value: Any, prefix: tuple = (), depth: int = 0) -> list[tuple]:
    found = [prefix]
    if depth < 5:
        items = (
            value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        )
        for key, child in items:
            found += _paths(child, (*prefix, key), depth + 1)
    return found


@st.composite
def mutated_json(draw: st.DrawFn, seed: Any) -> Any:
    """The seed with a few of its values replaced, removed, or keys added."""
    value = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(value)))
        if not path:
            if draw(st.booleans()):
                value = draw(JSON_VALUES)
            continue
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(JSON_VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(TEXT | SPECIAL.filter(lambda v: isinstance(v, str)))] = draw(JSON_VALUES)
    return value


FORM_TEXT = st.one_of(
    TEXT.map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")),
    st.sampled_from(["%ED%A0%80", "%FF%FE", "%", "%zz", "a" * 5000, "[]", "1e400", "-1", "", "+"]),
)


@st.composite
def mutated_form(draw: st.DrawFn, seed: bytes) -> bytes:
    pairs = [p.split("=", 1) + [""] for p in seed.decode().split("&") if p]
    pairs = [[k, v] for k, v, *_ in pairs]
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "delete", "add", "deep"]))
        if pairs and action in ("replace", "delete"):
            index = draw(st.integers(0, len(pairs) - 1))
            if action == "replace":
                pairs[index][1] = draw(FORM_TEXT)
            else:
                del pairs[index]
        elif action == "add":
            pairs.append([draw(FORM_TEXT), draw(FORM_TEXT)])
        else:  # PHP-style brackets, deep
            pairs.append(["a" + "%5Bx%5D" * draw(st.integers(1, 300)), draw(FORM_TEXT)])
    return "&".join(f"{k}={v}" for k, v in pairs).encode()


CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "",
    ]
)


@st.composite
def mango_resigned(draw: st.DrawFn, seed: bytes) -> bytes:
    """Mango's form with its ``json`` field mutated, then signed again (what only Mango, or
    whoever holds the key and salt, can send)."""
    form = dict(parse_qsl(seed.decode()))
    value = dump(draw(mutated_json(json.loads(form["json"])) | SPECIAL), draw(st.booleans()))
    text = draw(st.just(value) | DEEP_TEXT).decode("utf-8", "surrogatepass")
    key, salt = FUZZ_SETTINGS["mango_api_key"], FUZZ_SETTINGS["mango_api_salt"]
    sign = hashlib.sha256(f"{key}{text}{salt}".encode("utf-8", "surrogatepass")).hexdigest()
    return urlencode({"vpbx_api_key": key, "sign": sign, "json": text}, errors="surrogatepass").encode()


@st.composite
def mutated(draw: st.DrawFn, query: str, seed: bytes, content_type: str) -> tuple[str, bytes]:
    """(query, body): the seed's JSON, signed JSON, form or query string mutated."""
    if content_type == "application/json":
        return query, dump(draw(mutated_json(json.loads(seed))), draw(st.booleans()))
    if seed.startswith(b"vpbx_api_key="):
        return query, draw(mango_resigned(seed) | mutated_form(seed))
    if seed:
        return query, draw(mutated_form(seed))
    if query:
        return draw(mutated_form(query.encode())).decode("latin-1"), seed
    return query, seed


@st.composite
def bodies(draw: st.DrawFn, operation: Operation) -> tuple[str, bytes, str]:
    """(query, body, content type): a seed mutated, random JSON or forms, empty, oversized."""
    query, seed, content_type = draw(st.sampled_from(seeds_for(operation)))
    kind = draw(
        st.sampled_from(["seed", "mutated", "mutated", "mutated", "json", "form", "empty", "large", "bytes"])
    )
    body = seed
    if kind == "mutated":
        query, body = draw(mutated(query, seed, content_type))
    elif kind == "json":
        body = draw(JSON_VALUES.map(lambda v: dump(v, ascii_only=False)) | DEEP_TEXT)
    elif kind == "form":
        body = urlencode(
            draw(st.dictionaries(TEXT, TEXT, max_size=5)), encoding="utf-8", errors="surrogatepass"
        ).encode()
    elif kind == "empty":
        body = b""
    elif kind == "large":
        body = b'{"event_id": "' + b"x" * (MAX_BODY + draw(st.integers(0, 10))) + b'"}'
    elif kind == "bytes":
        body = draw(st.binary(max_size=200))
    if draw(st.integers(0, 4)) == 0:
        content_type = draw(CONTENT_TYPES)
    return query, body, content_type


def _documented_query(operation: Operation) -> list[str]:
    names = [p["name"] for p in operation.doc.get("parameters", []) if p["in"] == "query"]
    for requirement in operation.doc.get("security", []):
        for scheme in requirement:
            definition = operation_scheme(scheme)
            if definition.get("in") == "query":
                names.append(definition["name"])
    return names


def operation_scheme(name: str) -> dict[str, Any]:
    from tests.http_space import spec

    return spec()["components"]["securitySchemes"][name]


# Query values at the edges of what parsers take: dates, times and numbers past their range.
EDGE_VALUES = st.sampled_from(
    ["9999-12-31", "0001-01-01", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00%2B05:00",
     "0001-01-01+00%3A00%3A00", "1e400", "-1", "99999999999999999999", "NaN", "phone", "client_id"]
)  # fmt: skip


@st.composite
def queries(draw: st.DrawFn, operation: Operation, base: str) -> str:
    names = _documented_query(operation) + ["x", "writeKey", "token", "key", "kind", "value"]
    extra = draw(st.lists(st.tuples(st.sampled_from(names), FORM_TEXT | EDGE_VALUES), max_size=3))
    valid = {"writeKey": WRITE_KEY, "token": SETTINGS["calltracking_token"]}
    parts = [base] if base else []
    for name in _documented_query(operation) if draw(st.booleans()) else ():
        if name in valid:
            parts.append(f"{name}={quote(valid[name])}")
    parts += [f"{quote(name)}={value}" for name, value in extra]
    return "&".join(p for p in parts if p)


def _param_values(operation: Operation, name: str) -> st.SearchStrategy[str]:
    enum = [
        e
        for p in operation.doc.get("parameters", []) + _path_params(operation)
        if p["name"] == name
        for e in p["schema"].get("enum", [])
    ]
    specific = {
        "profile_id": st.sampled_from([KNOWN_PROFILE, "abc123", "a" * 65, "..", "%2E%2E"]),
        "code": st.sampled_from([qr_token(), qr_token(expires=1), qr_token()[:-2] + "AA", "abc", "a" * 2000]),
        "secret": st.sampled_from(
            [SETTINGS["amocrm_webhook_secret"], SETTINGS["bitrix24_webhook_secret"], "wrong"]
        ),
        "entry_id": st.sampled_from(["0" * 64, "g" * 64, "0"]),
        "request_id": st.sampled_from(["abc", "0" * 32, "%00"]),
        "event": st.sampled_from(["events/summary", "events/summary", "events/call", "summary"]),
    }
    strategy = st.sampled_from(enum) if enum else specific.get(name, st.just("abc123"))
    return strategy | FORM_TEXT.filter(bool)


def _path_params(operation: Operation) -> list[dict[str, Any]]:
    from tests.http_space import spec

    return spec()["paths"][operation.template].get("parameters", [])


@st.composite
def paths(draw: st.DrawFn, operation: Operation) -> str:
    """The documented path (its parameters valid or not), or an unknown one below its prefix."""
    values = {name: draw(_param_values(operation, name)) for name in operation.params}
    path = operation.path(values)
    if draw(st.integers(0, 5)) == 0:
        tail = draw(
            st.sampled_from(["/x", "/", "//", "/%2F", "/../x", "/a/b/c", "/.json"])
            | FORM_TEXT.map(lambda t: "/" + t)
        )
        path = path.rstrip("/") + tail
    return path[: 4 * MAX_SEGMENT]


BAD_AUTH = st.sampled_from(
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:").decode()},
        {"Authorization": f"Bearer {WRITE_KEY} extra"},
        {"X-Hub-Signature-256": "sha256=00"},
        {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
        {"X-Svyaz-Token": ""},
    ]
)


@st.composite
def hostile_requests(draw: st.DrawFn, operation: Operation) -> dict[str, Any]:
    query, body, content_type = draw(bodies(operation))
    method = draw(
        st.sampled_from([operation.method] * 5 + ["get", "post", "put", "patch", "delete", "head", "options"])
    )
    headers = auth_headers(operation, body) if draw(st.integers(0, 3)) else draw(BAD_AUTH)
    if content_type:
        headers = headers | {"Content-Type": content_type}
    return {
        "path": draw(paths(operation)),
        "method": method,
        "body": body,
        "headers": headers,
        "query": draw(queries(operation, query)),
    }


# --- what every answer must be ----------------------------------------------------------------

TEMPLATES = {op.template for op in operations()}
# Parameters a sender may fill with slashes: Mango appends "events/call", a secret is the rest.
MULTI_SEGMENT = {"event", "secret"}
HTML_APPS = ("/journal/",)  # every page below is the journal's (its template describes them all)


def documented(path: str) -> str | None:
    """The template of openapi.json that ``path`` is, if any (a parameter is one segment unless
    in ``MULTI_SEGMENT``; trailing slashes may be the same path)."""
    for app in HTML_APPS:
        if path.startswith(app) or path == app.rstrip("/"):
            return app
    path = re.sub("/{2,}", "/", path)  # empty segments are skipped, as the handlers do
    path = path if path in TEMPLATES else path.rstrip("/") or "/"
    for template in sorted(TEMPLATES, key=lambda t: ("{" in t, t)):
        pattern = re.escape(template)
        for name in re.findall(r"{(\w+)}", template):
            pattern = pattern.replace(re.escape("{" + name + "}"), ".+" if name in MULTI_SEGMENT else "[^/]+")
        if re.fullmatch(pattern, path):
            return template
    return None


def family(path: str) -> list[Operation]:
    """The operations of the longest documented prefix of ``path`` (whose errors it shares)."""
    prefixes = {op.template.split("{")[0].rstrip("/") for op in operations()}
    best = max((p for p in prefixes if path == p or path.startswith(p + "/")), key=len, default=None)
    return [op for op in operations() if op.template.split("{")[0].rstrip("/") == best]


def check_answer(request: dict[str, Any], answer: Any) -> None:
    """The properties of one answer (see the module's docstring)."""
    status, method = answer.status_code, request["method"]
    what = f"{method.upper()} {request['path'][:150]} -> {status} {answer.data[:300]!r}"
    assert status < 500, what
    if method == "head":
        assert answer.data == b"", what
    path = unquote(urlsplit(request["path"]).path)
    template = documented(path)
    ops = {op.method: op for op in operations() if op.template == template}
    described = ops.get(method) or (ops.get("get") if method == "head" else None)  # HEAD is GET's
    if described is not None:
        # A trailing slash may be the same path or an unknown one.
        slash = path.endswith("/") and not (template or "").endswith("/")
        assert status in described.statuses | ({401, 404, 405} if slash else set()), what
        media = described.media(status)
    else:
        # A path or method openapi.json does not describe: not found, not allowed, or (the key
        # is checked before the path) unauthorized; a CORS preflight is answered anywhere.
        allowed = {404, 405, 401} | ({204} if method == "options" else set())
        assert status in allowed, what
        media = set().union(*(op.media(status) for op in family(path)))
    if status < 400 or method == "head":
        return
    if media and "application/json" not in media:  # a documented HTML page
        assert answer.mimetype in media, what
        return
    assert answer.is_json, what
    body = answer.get_json()
    assert isinstance(body, dict) and isinstance(body.get("reason"), str) and body["reason"], what


def apply_all(rt: runtime.Runtime) -> list[Any]:
    """Everything queued, applied through process_event's code; a rejected message fails."""
    outcomes = []
    while messages := rt.publisher.drain(rt.settings.events_topic):
        for message in messages:
            try:
                outcomes.append(apply_message(message, rt))
            except PoisonMessage as exc:
                pytest.fail(f"accepted, then rejected by the worker: {exc} ({message.data[:300]!r})")
    rt.publisher.drain(rt.settings.profile_updates_topic)
    return outcomes


@pytest.fixture(scope="module")
def crm_rest():
    with CrmRest() as crm:
        for vendor in ("amocrm/lead_status_won", "bitrix24/deal_update_won"):
            crm.routes.update(json.loads((VENDOR_FIXTURES / f"{vendor}.rest.json").read_text()))
        yield crm


@pytest.fixture
def fuzz_rt(crm_rest):
    rt = install(
        MemoryStore(PEPPER),
        **FUZZ_SETTINGS,
        amocrm_base_url=crm_rest.url,
        bitrix24_rest_url=crm_rest.url + BITRIX24_REST_PATH,
        crm_api_timeout_seconds=5,
    )
    answer = client("collect").post(
        "/collect", data=SEEDS["/collect"][0][1], headers={"Authorization": f"Bearer {WRITE_KEY}"}
    )
    assert answer.status_code == 202, answer.data
    apply_all(rt)
    rt.known_profile = rt.store.lookup(Identifier("client_id", "5f3a9c2e7d1b4a60")).profile_id
    yield rt
    runtime.install(None)


@pytest.mark.parametrize("operation", operations(), ids=lambda o: f"{o.method.upper()} {o.template}")
def test_no_request_gets_a_5xx_a_non_json_error_or_a_half_written_answer(fuzz_rt, operation):
    rt = fuzz_rt

    @examples(12)
    @given(request=hostile_requests(operation))
    def exchange(request: dict[str, Any]) -> None:
        apply_all(rt)
        path = request["path"].replace(KNOWN_PROFILE, rt.known_profile)
        request = request | {"path": path}
        answer = call(
            operation, path, request["method"], request["body"], request["headers"], request["query"]
        )
        check_answer(request, answer)
        if 400 <= answer.status_code < 500:
            assert rt.publisher.drain(rt.settings.events_topic) == [], "a 4xx answer queued messages"
        else:
            apply_all(rt)

    exchange()


# --- well-formed events: accepted means applied -----------------------------------------------

KIND_VALUES = {
    "client_id": st.uuids().map(str),
    "email": st.builds(
        lambda u, d: f"{u}@{d}.example",
        st.text(string.ascii_lowercase + string.digits + "._+", min_size=1, max_size=20),
        st.text(string.ascii_lowercase, min_size=1, max_size=10),
    ),
    "phone": st.integers(10**9, 10**10 - 1).map(lambda n: f"+79{n}"[:12]),
    "ym_client_id": st.integers(10**15, 10**19 - 1).map(str),
    "session_id": st.text(string.ascii_letters + string.digits, min_size=1, max_size=30),
    "user_id": st.integers(1, 2**62)
    | st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=30),
}
KEYS = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20).filter(
    lambda k: not re.match(r"^__.*__$", k)
)
STORABLE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda children: (
        st.lists(children.filter(lambda v: not isinstance(v, list)), max_size=3)
        | st.dictionaries(KEYS, children, max_size=3)
    ),
    max_leaves=8,
)
EVENT_IDS = itertools.count()
TRAIT_NAMES = st.from_regex(r"\A[a-z][a-z0-9_-]{0,15}\Z").filter(lambda k: not re.match(r"^__.*__$", k))


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    identifiers = draw(
        st.dictionaries(st.sampled_from(sorted(KIND_VALUES)), st.none(), min_size=1, max_size=4)
    )
    identifiers = {kind: draw(KIND_VALUES[kind]) for kind in identifiers} | {
        "client_id": draw(KIND_VALUES["client_id"])
    }
    kind = draw(st.sampled_from(["page", "track", "identify", "order", "lead"]))
    now = datetime.now(UTC)
    moment = draw(
        st.datetimes(min_value=datetime(2000, 1, 2), max_value=(now - timedelta(days=1)).replace(tzinfo=None))
    )
    offset = draw(st.integers(-14 * 60, 14 * 60))
    timestamp = (
        (moment.replace(tzinfo=UTC) + timedelta(minutes=offset))
        .isoformat()
        .replace("+00:00", f"{'+' if offset >= 0 else '-'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}")
    )
    event: dict[str, Any] = {
        # unique: a client reusing an id is deduplicated (exactly once), not the property here
        "event_id": draw(st.text(string.ascii_letters + string.digits + ":-_.", min_size=1, max_size=60))
        + f"-{next(EVENT_IDS)}",
        "type": kind,
        "timestamp": timestamp,
        "identifiers": identifiers,
        "traits": draw(
            st.dictionaries(
                TRAIT_NAMES,
                st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=30),
                max_size=4,
            )
        ),
        "properties": draw(st.dictionaries(KEYS, STORABLE, max_size=4)),
    }
    if kind == "order":
        event["properties"] |= {
            "order_id": draw(st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=20)),
            "amount": draw(
                st.decimals(0, 10**9, places=2, allow_nan=False, allow_infinity=False).map(str)
                | st.integers(0, 10**9)
            ),
            "status": draw(st.sampled_from(["new", "paid", "cancelled", "refunded"])),
        }
    return event


def test_well_formed_events_accepted_are_applied_never_lost():
    """Random valid /collect batches with the site's key: each is accepted (202), each event
    then has an outcome of its own (not a duplicate): applied (its client id finds a profile)
    or an explicit conflict (an order id another customer holds), never an exception."""
    rt = install(MemoryStore(PEPPER), **FUZZ_SETTINGS)
    key = {"Authorization": f"Bearer {WRITE_KEY}", "Content-Type": "application/json"}

    @examples(40)
    @given(batch=st.lists(valid_events(), min_size=1, max_size=4))
    def send(batch: list[dict[str, Any]]) -> None:
        answer = client("collect").post("/collect", data=json.dumps({"batch": batch}), headers=key)
        assert answer.status_code == 202, answer.data[:1000]
        outcomes = [o for o in apply_all(rt) if o is not None]
        assert [client_event_id(o.event_id) for o in outcomes] == [e["event_id"] for e in batch]
        for event, outcome in zip(batch, outcomes, strict=True):
            assert not outcome.duplicate, outcome
            if outcome.status == "conflict":  # refused explicitly (an order of another customer)
                assert outcome.conflicts, outcome
                continue
            client_id = event["identifiers"]["client_id"]
            assert rt.store.lookup(Identifier("client_id", client_id)) is not None, event

    send()
    check_invariants(rt.store, rt.policy)
