"""Uploads to the Yandex Metrica management API (standard library only: it runs in the scheduled
function).

* Orders: ``POST https://api-metrika.yandex.net/management/v1/counter/{counterId}/offline_conversions/upload``
  https://yandex.com/dev/metrika/en/management/openapi/offline_conversions/upload_1
* Calls: ``POST .../management/v1/counter/{counterId}/offline_conversions/upload_calls``
  https://yandex.com/dev/metrika/en/management/openapi/call/uploadCalls

Both take the CSV as ``multipart/form-data`` in a part named ``file`` (the documented request
shows ``Content-Disposition: form-data; name="file"; filename="data.csv"`` and
``Content-Type: text/csv``), an optional ``comment`` query parameter (at most 255 characters),
and the OAuth token in the ``Authorization: OAuth <token>`` header (tokens are not accepted in
URL parameters). A 200 answers ``{"uploading": {"id": ..., "status": ..., ...}}``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from svyaz.exports.formats import Rows

API_URL = "https://api-metrika.yandex.net"
PATHS = {"orders": "offline_conversions/upload", "calls": "offline_conversions/upload_calls"}
MAX_ERROR_CHARS = 300


class MetricaError(RuntimeError):
    """Metrica refused the upload or could not be reached (the message never holds the token)."""


def multipart(csv_bytes: bytes, filename: str = "data.csv") -> tuple[bytes, str]:
    """The request body with one ``file`` part, and its Content-Type."""
    boundary = "svyaz" + uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    body = head + csv_bytes + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class MetricaClient:
    def __init__(self, token: str, counter_id: str, base_url: str = API_URL, timeout: float = 60.0) -> None:
        if not token or not str(counter_id).isdigit():
            raise ValueError("Metrica upload needs an OAuth token and a numeric counter id")
        self.token = token
        self.counter_id = str(counter_id)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def url(self, kind: str, comment: str) -> str:
        query = urllib.parse.urlencode({"comment": comment[:255]}) if comment else ""
        path = f"/management/v1/counter/{self.counter_id}/{PATHS[kind]}"
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def upload(self, kind: str, rows: Rows, comment: str = "") -> dict[str, Any]:
        body, content_type = multipart(rows.to_bytes())
        request = urllib.request.Request(self.url(kind, comment), data=body, method="POST")  # noqa: S310
        request.add_header("Authorization", f"OAuth {self.token}")
        request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 - https API
                payload = json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise MetricaError(f"Metrica answered {exc.code}: {_reason(exc)}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise MetricaError(f"Metrica unreachable: {type(exc).__name__}") from None
        except ValueError:
            raise MetricaError("Metrica answered something that is not JSON") from None
        if not isinstance(payload, dict) or "uploading" not in payload:
            raise MetricaError("Metrica's answer has no 'uploading'")
        return payload["uploading"]

    def uploader(self, comment: str = "svyaz"):
        """The ``exports.service.Uploader`` for this counter."""

        def upload(target: str, kind: str, rows: Rows) -> dict[str, Any]:
            return self.upload(kind, rows, comment)

        return upload


def _reason(error: urllib.error.HTTPError) -> str:
    try:
        data = json.loads(error.read() or b"{}")
    except ValueError:
        return error.reason or ""
    message = data.get("message") if isinstance(data, dict) else None
    return str(message or error.reason or "")[:MAX_ERROR_CHARS]
