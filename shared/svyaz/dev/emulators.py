"""Start and stop the real Firestore and Pub/Sub emulators (gcloud, Java 17) for tests,
benchmarks and ``svyaz bench --emulator``. Nothing is downloaded: they ship with the SDK."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

COMMANDS = {
    "firestore": ["gcloud", "emulators", "firestore", "start"],
    "pubsub": ["gcloud", "beta", "emulators", "pubsub", "start"],
}
ENV_VARS = {"firestore": "FIRESTORE_EMULATOR_HOST", "pubsub": "PUBSUB_EMULATOR_HOST"}


class EmulatorError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def available(kind: str) -> bool:
    return shutil.which("gcloud") is not None and shutil.which("java") is not None and kind in COMMANDS


@dataclass
class Emulator:
    kind: str  # "firestore" or "pubsub"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> Emulator:
        if not available(self.kind):
            raise EmulatorError(f"the {self.kind} emulator needs gcloud and java on PATH")
        args = [*COMMANDS[self.kind], f"--host-port={self.host}"]
        if self.kind == "pubsub":
            args.append(f"--data-dir={tempfile.mkdtemp(prefix='svyaz-pubsub-')}")
        self.log_path = Path(tempfile.mkstemp(prefix=f"svyaz-{self.kind}-", suffix=".log")[1])
        log = self.log_path.open("wb")
        # Own process group: gcloud starts a java child that must die with it.
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmulatorError(f"{self.kind} emulator exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as answer:  # noqa: S310
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise EmulatorError(f"{self.kind} emulator did not answer within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def export(self) -> None:
        os.environ[ENV_VARS[self.kind]] = self.host

    def reset_firestore(self, project: str) -> None:
        """Delete every document (the emulator's own reset endpoint)."""
        url = f"http://{self.host}/emulator/v1/projects/{project}/databases/(default)/documents"
        request = urllib.request.Request(url, method="DELETE")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
