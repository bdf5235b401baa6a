"""``svyaz qr create`` and ``svyaz telegram link``, run through the real CLI parser."""

from __future__ import annotations

import io
import time
from urllib.parse import urlsplit

import pytest
import segno

from svyaz import cli
from svyaz.channels import qr

KEY = "store-codes-signing-key-0123456789"
ARGS = [
    "qr",
    "create",
    "--store-id",
    "msk-tverskaya",
    "--campaign",
    "warranty-2026",
    "--offer",
    "ext-warranty",
    "--target",
    "https://shop.example/warranty?from=qr",
]


@pytest.fixture(autouse=True)
def env(monkeypatch):
    for name in ("SVYAZ_QR_SIGNING_KEY", "SVYAZ_QR_ALLOWED_HOSTS", "SVYAZ_TELEGRAM_BOT_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SVYAZ_QR_SIGNING_KEY", KEY)
    monkeypatch.setenv("SVYAZ_QR_ALLOWED_HOSTS", "shop.example, localhost")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_qr_create_prints_a_landing_url_that_verifies_and_writes_png_and_svg(capsys, tmp_path):
    status, out, err = run(capsys, *ARGS, "--expires-days", "30", "--out", str(tmp_path / "codes"))

    assert status == 0
    url = out.strip()
    assert "\n" not in url
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname) == ("https", "shop.example")  # default: the target's origin
    token = parts.path.removeprefix("/qr/")
    code = qr.verify_code(token, KEY.encode(), time.time(), allowed_hosts=["shop.example"])
    assert code == qr.QrCode(
        "msk-tverskaya",
        "warranty-2026",
        "ext-warranty",
        "https://shop.example/warranty?from=qr",
        code.expires_at,
    )
    assert code.expires_at is not None and abs(code.expires_at - (time.time() + 30 * 86400)) < 60
    with pytest.raises(qr.InvalidQrCode, match="expired"):
        qr.verify_code(token, KEY.encode(), time.time() + 31 * 86400)

    png = tmp_path / "codes" / "qr-msk-tverskaya-warranty-2026-ext-warranty.png"
    svg = png.with_suffix(".svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    # The PNG is exactly the QR code of the printed URL.
    expected = io.BytesIO()
    segno.make(url, error="m", micro=False).save(expected, kind="png", scale=10, border=4)
    assert png.read_bytes() == expected.getvalue()
    assert str(png) in err and "expires" in err


def test_qr_create_with_base_url_and_no_expiry(capsys, tmp_path):
    status, out, _ = run(capsys, *ARGS, "--base-url", "https://go.shop.example/", "--out", str(tmp_path))
    assert status == 0
    assert out.startswith("https://go.shop.example/qr/")
    token = out.strip().rsplit("/", 1)[1]
    assert qr.verify_code(token, KEY.encode(), time.time() + 10 * 365 * 86400).expires_at is None


def test_qr_create_without_signing_key_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SVYAZ_QR_SIGNING_KEY", "")
    status, out, err = run(capsys, *ARGS, "--out", str(tmp_path))
    assert status == 2
    assert out == ""
    assert "SVYAZ_QR_SIGNING_KEY is not set" in err
    assert list(tmp_path.iterdir()) == []


def test_qr_create_target_off_the_allow_list_names_the_host(capsys, tmp_path):
    argv = [*ARGS[:-1], "https://evil.example/phish", "--out", str(tmp_path)]
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert "'evil.example' is not allowed" in err and "SVYAZ_QR_ALLOWED_HOSTS" in err
    assert list(tmp_path.iterdir()) == []


def test_qr_create_lookalike_host_is_refused(capsys, tmp_path):
    argv = [*ARGS[:-1], "https://shop.example.evil.example/", "--out", str(tmp_path)]
    status, _, err = run(capsys, *argv)
    assert status == 2 and "'shop.example.evil.example' is not allowed" in err


def test_qr_create_refuses_plain_http(capsys, tmp_path):
    status, _, err = run(capsys, *ARGS[:-1], "http://shop.example/warranty", "--out", str(tmp_path))
    assert status == 2 and "https" in err


def test_qr_create_without_allow_list(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SVYAZ_QR_ALLOWED_HOSTS", "")
    status, _, err = run(capsys, *ARGS, "--out", str(tmp_path))
    assert status == 2 and "SVYAZ_QR_ALLOWED_HOSTS is not set" in err


def test_qr_create_rejects_zero_expiry(capsys, tmp_path):
    status, _, err = run(capsys, *ARGS, "--expires-days", "0", "--out", str(tmp_path))
    assert status == 2 and "--expires-days" in err


def test_telegram_link_uses_the_configured_bot(capsys, monkeypatch):
    assert run(capsys, "telegram", "link", "--session-id", "1980094328") == (
        0,
        "https://t.me/svyaz_bot?start=1980094328\n",
        "",
    )
    monkeypatch.setenv("SVYAZ_TELEGRAM_BOT_USERNAME", "divan_shop_bot")
    status, out, _ = run(capsys, "telegram", "link", "--session-id", "1980094328")
    assert (status, out) == (0, "https://t.me/divan_shop_bot?start=1980094328\n")
    status, out, _ = run(capsys, "telegram", "link", "--session-id", "abc_DEF-1", "--bot", "@other_bot")
    assert (status, out) == (0, "https://t.me/other_bot?start=abc_DEF-1\n")


@pytest.mark.parametrize("session", ["has space", "x" * 65, "сессия"])
def test_telegram_link_refuses_an_unusable_session_id(capsys, session):
    status, out, err = run(capsys, "telegram", "link", "--session-id", session)
    assert status == 2 and out == "" and "start payload" in err
