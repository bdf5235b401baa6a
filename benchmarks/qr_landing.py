"""How much the QR landing costs over a bare redirect, on the same local server set-up.

Starts, in this process, (a) the local service (``LocalService``: every function on werkzeug's
threaded server, memory store, in-process queue and its worker applying each scan) and (b) a bare
functions-framework function that only answers 302, served the same way (werkzeug
``make_server(..., threaded=True)``, no access log). A separate client process (so the load
generator does not share the servers' interpreter lock) then sends the same number of GETs to
each, at 1 and at 32 concurrent clients, one new connection per request as werkzeug's HTTP/1.0
server requires, and prints requests/s, p50 and p95 latency and the ratio svyaz/bare.

Only 127.0.0.1 is contacted. Each run stops at ``--requests`` or ``--max-seconds``, whichever first.

    python3 benchmarks/qr_landing.py [--requests 2000] [--clients 1 32] [--max-seconds 60]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import platform
import random
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

TARGET = "https://shop.example/warranty?from=qr"
HOST = "127.0.0.1"
WARM_UP = 50

BARE_FUNCTION = f"""
import flask
import functions_framework


@functions_framework.http
def bare_redirect(request):
    return flask.redirect({TARGET!r}, 302)
"""


@dataclass
class Run:
    name: str
    clients: int
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def load(
    port: int, path: str, total: int, clients: int, max_seconds: float
) -> tuple[int, int, float, list[float]]:
    """Runs in the client process: ``clients`` threads share ``total`` GETs (each a new connection,
    a fresh ``_ym_uid`` cookie: a new shopper per scan). Returns (sent, errors, seconds, latencies)."""
    lock = threading.Lock()
    state = {"left": total, "errors": 0}
    latencies: list[float] = []
    deadline = time.monotonic() + max_seconds

    def one(rng: random.Random) -> tuple[float, bool]:
        cookie = f"_ym_uid={rng.randrange(10**18, 10**19)}"
        started = time.perf_counter()
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            connection.request("GET", path, headers={"Cookie": cookie, "User-Agent": "qr-bench"})
            response = connection.getresponse()
            response.read()
            ok = response.status == 302 and response.getheader("Location") == TARGET
        except OSError:
            ok = False
        finally:
            connection.close()
        return time.perf_counter() - started, ok

    def client(seed: int) -> None:
        rng = random.Random(f"{time.time_ns()}-{seed}")  # noqa: S311 - distinct shoppers, not secrets
        while time.monotonic() < deadline:
            with lock:
                if state["left"] <= 0:
                    return
                state["left"] -= 1
            elapsed, ok = one(rng)
            with lock:
                latencies.append(elapsed)
                if not ok:
                    state["errors"] += 1

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies), state["errors"], time.perf_counter() - started, latencies


def start_bare(directory: Path):
    import functions_framework
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args, **kwargs) -> None:
            pass

    source = directory / "main.py"
    source.write_text(BARE_FUNCTION)
    app = functions_framework.create_app("bare_redirect", str(source))
    server = make_server(HOST, 0, app, threaded=True, request_handler=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True, name="bare-http").start()
    return server


def start_svyaz(deadline: float = 2.0, pubsub: bool = False, subscription: str = "svyaz-events-local"):
    from svyaz.adapters.queue import LocalQueue, PubSubPublisher
    from svyaz.adapters.store.memory import MemoryStore
    from svyaz.app import runtime
    from svyaz.app.config import Settings
    from svyaz.channels import qr
    from svyaz.dev.local import LocalService

    key = "benchmark-qr-signing-key-0123456789"
    settings = Settings(
        qr_signing_key=key,
        qr_allowed_hosts=["shop.example"],
        qr_publish_deadline_seconds=deadline,
        gcp_project="svyaz-bench",
    )
    publisher = PubSubPublisher(settings.gcp_project) if pubsub else LocalQueue()
    rt = runtime.build(settings, store=MemoryStore(b"benchmark-pepper"), publisher=publisher)
    service = LocalService(HOST, 0, rt, quiet=True, subscription=subscription).start()
    code = qr.QrCode("msk-tverskaya", "warranty-2026", "ext-warranty", TARGET, int(time.time()) + 86400)
    token = qr.sign_code(code, key.encode(), allowed_hosts=["shop.example"])
    return service, f"/qr/{token}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per run (default: %(default)s)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 32], help="concurrency levels")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time bound of each run")
    parser.add_argument(
        "--pubsub",
        action="store_true",
        help="publish to a Pub/Sub emulator (started here) and compare publishing before the answer "
        "(deadline 2 s, the default) with publishing in the background after it (deadline 0)",
    )
    args = parser.parse_args()
    if args.pubsub:
        return compare_publish_modes(args)

    import logging

    logging.disable(logging.WARNING)  # the functions' JSON logs would measure the terminal
    with tempfile.TemporaryDirectory(prefix="svyaz-bench-") as tmp:
        bare = start_bare(Path(tmp))
        service, qr_path = start_svyaz()
        targets = {"bare": (bare.server_port, "/"), "svyaz": (service.port, qr_path)}
        print(
            f"QR landing benchmark: {args.requests} GETs per run, 127.0.0.1, werkzeug threaded server, "
            f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
        )
        runs: list[Run] = []
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            for port, path in targets.values():  # warm-up: imports, first requests
                pool.submit(load, port, path, WARM_UP, 4, 30).result()
            service.worker.wait_idle(30)
            for clients in args.clients:
                for name, (port, path) in targets.items():
                    service.worker.wait_idle(60)  # the previous run's scans are applied first
                    sent, errors, seconds, latencies = pool.submit(
                        load, port, path, args.requests, clients, args.max_seconds
                    ).result()
                    runs.append(Run(name, clients, sent, errors, seconds, latencies))
        drain_started = time.monotonic()
        drained = service.worker.wait_idle(120)
        drain_seconds = time.monotonic() - drain_started
        applied = service.worker.applied
        profiles = sum(1 for p in service.rt.store.iter_profiles() if p.status == "active")
        service.stop()
        bare.shutdown()

    print(f"{'target':<8}{'clients':>8}{'requests':>10}{'errors':>8}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}")
    for run in runs:
        print(
            f"{run.name:<8}{run.clients:>8}{run.requests:>10}{run.errors:>8}{run.rate:>10.0f}"
            f"{run.percentile(50):>9.2f}{run.percentile(95):>9.2f}"
        )
    print("svyaz/bare:")
    for clients in args.clients:
        bare_run = next(r for r in runs if r.name == "bare" and r.clients == clients)
        svyaz_run = next(r for r in runs if r.name == "svyaz" and r.clients == clients)
        print(
            f"  {clients:>2} clients: throughput x{svyaz_run.rate / bare_run.rate:.2f}, "
            f"p50 x{svyaz_run.percentile(50) / bare_run.percentile(50):.2f}, "
            f"p95 x{svyaz_run.percentile(95) / bare_run.percentile(95):.2f}"
        )
    print(
        f"worker: {applied} scan events applied ({profiles} profiles), queue "
        f"{'drained' if drained else 'NOT drained'} {drain_seconds:.1f} s after the last request"
    )
    return 0 if drained and not any(r.errors for r in runs) else 1


def compare_publish_modes(args: argparse.Namespace) -> int:
    """The QR landing on the Pub/Sub emulator: the scan published before the answer (waited for,
    at most 2 s) against handed to the background batching (not waited for)."""
    import logging

    from svyaz.dev.emulators import Emulator

    logging.disable(logging.WARNING)
    with Emulator("pubsub") as emulator:
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        print(
            f"QR landing, Pub/Sub emulator: {args.requests} GETs per run, Python "
            f"{platform.python_version()}, {os.cpu_count()} CPUs"
        )
        runs: list[Run] = []
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            for name, deadline in (("background", 0.0), ("before", 2.0)):
                service, path = start_svyaz(deadline, pubsub=True, subscription=f"bench-{name}")
                pool.submit(load, service.port, path, WARM_UP, 4, 30).result()
                for clients in args.clients:
                    sent, errors, seconds, latencies = pool.submit(
                        load, service.port, path, args.requests, clients, args.max_seconds
                    ).result()
                    runs.append(Run(name, clients, sent, errors, seconds, latencies))
                service.worker.wait_idle(60)
                service.stop()
    print(
        f"{'publish':<11}{'clients':>8}{'requests':>10}{'errors':>8}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}"
    )
    for run in runs:
        print(
            f"{run.name:<11}{run.clients:>8}{run.requests:>10}{run.errors:>8}{run.rate:>10.0f}"
            f"{run.percentile(50):>9.2f}{run.percentile(95):>9.2f}"
        )
    for clients in args.clients:
        background = next(r for r in runs if r.name == "background" and r.clients == clients)
        before = next(r for r in runs if r.name == "before" and r.clients == clients)
        p50 = before.percentile(50) - background.percentile(50)
        p95 = before.percentile(95) - background.percentile(95)
        print(
            f"  {clients:>2} clients: before - background: p50 {p50:+.2f} ms, p95 {p95:+.2f} ms, "
            f"throughput x{before.rate / background.rate:.2f}"
        )
    return 0 if not any(r.errors for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
