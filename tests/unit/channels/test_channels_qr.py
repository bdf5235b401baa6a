import base64
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from svyaz.channels import ChannelError
from svyaz.channels.qr import (
    InvalidQrCode,
    QrCode,
    landing_event,
    landing_url,
    render,
    sign_code,
    target_allowed,
    verify_code,
)

KEY = b"k" * 32
ALLOWED = ["shop.ru"]
CODE = QrCode(
    store_id="msk-014",
    campaign="warranty-2026",
    offer="ext-warranty",
    target="https://shop.ru/warranty?from=qr",
    expires_at=1_800_000_000,
)
NOW = 1_772_370_000.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_round_trip():
    token = sign_code(CODE, KEY, allowed_hosts=ALLOWED)
    assert verify_code(token, KEY, NOW) == CODE


def test_token_is_short_and_url_safe():
    token = sign_code(CODE, KEY, allowed_hosts=ALLOWED)
    assert len(token) < 200
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert len(landing_url("https://shop.ru", token)) < 220


def test_cyrillic_fields_round_trip():
    code = replace(CODE, campaign="весна-2026", offer="гарантия", expires_at=None)
    token = sign_code(code, KEY, allowed_hosts=ALLOWED)
    assert verify_code(token, KEY, NOW) == code


def test_wrong_key_rejected():
    token = sign_code(CODE, KEY, allowed_hosts=ALLOWED)
    with pytest.raises(InvalidQrCode, match="signature"):
        verify_code(token, b"x" * 32, NOW)


def test_empty_key_refused():
    with pytest.raises(ChannelError):
        sign_code(CODE, b"", allowed_hosts=ALLOWED)
    token = sign_code(CODE, KEY, allowed_hosts=ALLOWED)
    with pytest.raises(InvalidQrCode):
        verify_code(token, b"", NOW)


def test_tampered_payload_rejected():
    token = sign_code(CODE, KEY, allowed_hosts=ALLOWED)
    body, tag = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["t"] = "https://evil.com/"
    with pytest.raises(InvalidQrCode, match="signature"):
        verify_code(b64(json.dumps(forged).encode()) + "." + tag, KEY, NOW)


def test_extended_expiry_rejected():
    token = sign_code(CODE, KEY, allowed_hosts=ALLOWED)
    body, tag = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged.pop("e")
    with pytest.raises(InvalidQrCode):
        verify_code(b64(json.dumps(forged, separators=(",", ":")).encode()) + "." + tag, KEY, NOW)


def test_tampered_tag_rejected():
    token = sign_code(CODE, KEY, allowed_hosts=ALLOWED)
    body, tag = token.split(".")
    flipped = ("A" if tag[0] != "A" else "B") + tag[1:]
    with pytest.raises(InvalidQrCode):
        verify_code(f"{body}.{flipped}", KEY, NOW)


def test_expired_code_rejected():
    token = sign_code(CODE, KEY, allowed_hosts=ALLOWED)
    assert verify_code(token, KEY, CODE.expires_at - 1) == CODE
    with pytest.raises(InvalidQrCode, match="expired"):
        verify_code(token, KEY, CODE.expires_at)


def test_code_without_expiry_never_expires():
    code = replace(CODE, expires_at=None)
    token = sign_code(code, KEY, allowed_hosts=ALLOWED)
    assert verify_code(token, KEY, 4_000_000_000).expires_at is None


@pytest.mark.parametrize(
    "token",
    ["", ".", "abc", "abc.", ".abc", "a.b.c", "abc!.def", "a" * 1025, "eyJ9.AAAAAAAAAAAAAAAAAAAAAA", "€.€"],
)
def test_bad_format_rejected(token):
    with pytest.raises(InvalidQrCode):
        verify_code(token, KEY, NOW)


def test_oversized_token_rejected_before_decoding():
    token = sign_code(CODE, KEY, allowed_hosts=ALLOWED)
    with pytest.raises(InvalidQrCode, match="malformed"):
        verify_code(token + "A" * 1024, KEY, NOW)


def test_validly_signed_garbage_payload_rejected():
    import hashlib
    import hmac

    body = b64(b'["not", "an", "object"]')
    tag = b64(hmac.new(KEY, b"svyaz-qr-v1." + body.encode(), hashlib.sha256).digest()[:16])
    with pytest.raises(InvalidQrCode, match="malformed"):
        verify_code(f"{body}.{tag}", KEY, NOW)


def test_allow_list_rechecked_on_verify():
    token = sign_code(CODE, KEY, allowed_hosts=ALLOWED)
    with pytest.raises(InvalidQrCode):
        verify_code(token, KEY, NOW, allowed_hosts=["other.ru"])
    assert verify_code(token, KEY, NOW, allowed_hosts=ALLOWED) == CODE


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.ru",
        "https://shop.ru/",
        "https://shop.ru/warranty?x=1#top",
        "https://www.shop.ru/path",
        "https://m.shop.ru:8443/path",
        "HTTPS://SHOP.RU/Path",
        "http://localhost:8080/landing",
        "http://127.0.0.1/landing",
    ],
)
def test_allowed_targets(url):
    assert target_allowed(url, ["shop.ru", "localhost", "127.0.0.1"]) is True


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.com",
        "https://shop.ru.evil.com",
        "https://evilshop.ru",
        "https://evil.com@shop.ru",
        "https://shop.ru@evil.com",
        "https://user:pass@shop.ru/",
        "//evil.com",
        "///evil.com",
        "/\\evil.com",
        "https:/evil.com",
        "https:///shop.ru",
        "https://shop.ru\\@evil.com",
        "https://shop.ru\\.evil.com",
        "javascript:alert(1)",
        "javascript://shop.ru/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http://shop.ru/",
        "ftp://shop.ru/",
        "https://shop.ru%2F@evil.com",
        "https://evil.com%2F.shop.ru",
        "https://shop.ru:notaport/",
        "https://shop.ru./",
        "https://[::1]/",
        " https://shop.ru",
        "https://shop.ru/\nSet-Cookie:x",
        "https://shop.ru\t.evil.com",
        "shop.ru/warranty",
        "",
    ],
)
def test_open_redirect_attempts_refused(url):
    assert target_allowed(url, ["shop.ru", "localhost"]) is False


def test_http_localhost_needs_allow_list_entry():
    assert target_allowed("http://localhost/x", ["shop.ru"]) is False


def test_empty_allow_list_allows_nothing():
    assert target_allowed("https://shop.ru/", []) is False


def test_comma_separated_setting_string_is_a_list():
    assert target_allowed("https://shop.ru/", "shop.ru, other.ru") is True
    assert target_allowed("https://s.ru/", "shop.ru") is False


@pytest.mark.parametrize(
    "target",
    ["https://evil.com", "https://shop.ru.evil.com", "https://evil.com@shop.ru", "//evil.com", "javascript:"],
)
def test_sign_refuses_target_not_allowed(target):
    with pytest.raises(ChannelError, match="target"):
        sign_code(replace(CODE, target=target), KEY, allowed_hosts=ALLOWED)


@pytest.mark.parametrize(
    "change",
    [
        {"store_id": ""},
        {"campaign": "x" * 101},
        {"offer": "a\nb"},
        {"expires_at": "soon"},
        {"expires_at": True},
    ],
)
def test_sign_refuses_bad_fields(change):
    with pytest.raises(ChannelError):
        sign_code(replace(CODE, **change), KEY, allowed_hosts=ALLOWED)


def test_landing_url():
    assert landing_url("https://shop.ru/", "abc.def") == "https://shop.ru/qr/abc.def"
    with pytest.raises(ChannelError):
        landing_url("https://shop.ru", "abc.def/../../x")
    with pytest.raises(ChannelError):
        landing_url("javascript:x", "abc.def")


def test_render_writes_png_and_svg(tmp_path):
    url = landing_url("https://shop.ru", sign_code(CODE, KEY, allowed_hosts=ALLOWED))
    png, svg = tmp_path / "code.png", tmp_path / "code.svg"
    render(url, png, svg)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert b"<svg" in svg.read_bytes()
    import struct

    width = struct.unpack(">I", png.read_bytes()[16:20])[0]
    assert width >= (21 + 2 * 4) * 8  # at least version 1 + quiet zone at scale 8


def test_landing_event_with_cookies():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    cookies = {"_ym_uid": "1772358812104712345", "_ga": "GA1.1.1351291232.1772360000", "other": "x"}
    event = landing_event(CODE, cookies, "b7f1c2d0-9a34-4e1e-8f0a-2c6b5d4e3f21", now, "scan-01HQZ")
    assert event.event_id == "qr:scan-01HQZ"
    assert event.type == "qr_scan"
    assert event.channel == "qr"
    assert event.timestamp == now
    assert event.identifiers == {
        "client_id": "b7f1c2d0-9a34-4e1e-8f0a-2c6b5d4e3f21",
        "ym_client_id": "1772358812104712345",
        "ga_client_id": "GA1.1.1351291232.1772360000",
    }
    assert (event.context.source, event.context.medium, event.context.campaign) == (
        "store",
        "qr",
        "warranty-2026",
    )
    assert event.properties == {"store_id": "msk-014", "offer": "ext-warranty"}


def test_landing_event_without_analytics_cookies():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    event = landing_event(CODE, {"_ga": "  "}, "visitor-1", now, "scan-2")
    assert event.identifiers == {"client_id": "visitor-1"}


def test_landing_event_needs_visitor_and_scan_ids():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(ChannelError):
        landing_event(CODE, {}, "", now, "scan-3")
    with pytest.raises(ChannelError):
        landing_event(CODE, {}, "visitor-1", now, "scan with spaces")
