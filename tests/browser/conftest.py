"""The browser ring: Debian's Chromium driven by Playwright for Python, against ``svyaz serve``.

Playwright uses the machine's own browser (``executable_path``); nothing is downloaded at run
time (``.ci/run`` installs the ``chromium`` package when it is missing). Fixtures, for any
browser test (web tag, journal app):

* ``svyaz_service`` (``tests/conftest.py``): a ``LocalService`` (every function under its path +
  the worker) on a free port, memory store, keys ``WRITE_KEY`` / ``API_KEY`` of
  ``tests.pipeline_support``, settings overridable with ``@pytest.mark.svyaz_settings(...)``;
* ``site``: a second origin (``http://localhost:<port>``, the customer's web site) serving pages
  the test adds, so requests to the service are cross-origin as in production;
* ``page``: a fresh browser context and page; ``page_errors`` lists its uncaught JS errors.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


def chromium_path() -> str | None:
    for candidate in (os.environ.get("SVYAZ_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the session (each test gets its own context)."""
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if path is None or sync_playwright is None:
        missing = "chromium (apt-get install chromium)" if path is None else "playwright (pip)"
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need {missing}; .ci/run installs it")
        pytest.skip(f"browser tests need {missing}")
    manager = sync_playwright().start()
    browser = manager.chromium.launch(
        executable_path=path, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
    )
    try:
        yield browser
    finally:
        browser.close()
        manager.stop()


@dataclass
class Site:
    """The customer's web site: pages by path, on its own origin."""

    pages: dict[str, tuple[str, str]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    port: int = 0

    def add(self, path: str, body: str, content_type: str = "text/html; charset=utf-8") -> str:
        self.pages[path] = (body, content_type)
        return self.url(path)

    def url(self, path: str = "/") -> str:
        return f"http://localhost:{self.port}{path}"


@pytest.fixture
def site() -> Iterator[Site]:
    pages = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            pages.hits.append(path)
            body, content_type = pages.pages.get(path, ("not found", "text/plain"))
            self.send_response(200 if path in pages.pages else 404)
            self.send_header("Content-Type", content_type)
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body.encode())

        def do_POST(self) -> None:  # noqa: N802 (a form posts to a page; its body is not kept)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    pages.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="test-site")
    thread.start()
    try:
        yield pages
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def page_errors() -> list[str]:
    return []


@pytest.fixture
def page(chromium: Any, page_errors: list[str]) -> Iterator[Any]:
    context = chromium.new_context()
    browser_page = context.new_page()
    browser_page.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        yield browser_page
    finally:
        context.close()
