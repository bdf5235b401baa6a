"""Every ```console block of README.md and docs/*.md is run, and its output compared with the page.

How to write a tested example (any document, any section):

* a fenced block whose info string is ``console``: lines starting with ``$ `` are commands (a line
  ending in ``\\`` or inside open quotes continues on the next one); the lines after a command, up
  to the next ``$ ``,
  are its output (standard output and standard error, as a terminal shows them);
* a line of output may contain ``...``, which matches any text (run-time values: times of "now",
  cookie expiry dates, a QR token that embeds its expiry); 32-hex ids (profile ids, cookies) and
  ``seconds: 0.0 (743 rows/s)`` timings are compared as placeholders, so they need no ``...``;
* a page whose examples need a setting of the service says so once, in an HTML comment:
  ``<!-- docs-test serve env: NAME='value' ... -->`` (shell words);
* blocks that must not run (they need a real cloud, a bot token, or `svyaz serve` itself) are
  ``sh`` or ``text``, not ``console``.

Each document is one session, in order: a fresh `svyaz serve` (memory store, development
secrets) on a free port that the commands reach as ``http://127.0.0.1:8080`` (the port is
substituted both ways), one bash shell (so ``export`` and variables carry over), a temporary
working directory where ``tests/`` of the repository is visible, and `svyaz` on ``PATH`` running
this checkout. Before each command the session waits until the service's worker has applied what
was queued, as a person typing would.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOC_PORT = 8080
FENCE = re.compile(r"^```console[ \t]*$(.*?)^```[ \t]*$", re.M | re.S)
SERVE_ENV = re.compile(r"<!--\s*docs-test serve env:(.*?)-->", re.S)
HEX_ID = re.compile(r"\b[0-9a-f]{32}\b")
TIMING = re.compile(r"seconds: \d+(\.\d+)? \([\d,]+ rows/s\)")


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)
    line: int = 0  # in the document, for messages


def parse(text: str) -> list[Step]:
    """The commands of every console block of a document, in order, with their expected output."""
    steps: list[Step] = []
    for block in FENCE.finditer(text):
        body = block.group(1)
        # 1-based line number in the page of the block's first line (after the fence and blank lines)
        first_line = text[: block.start(1)].count("\n") + 1 + (len(body) - len(body.lstrip("\n")))
        lines = body.strip("\n").split("\n")
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                raise AssertionError(f"line {first_line + i}: output before any command in a console block")
            command, start = lines[i][2:], i
            while _incomplete(command) and i + 1 < len(lines):
                i += 1
                command += "\n" + lines[i]
            i += 1
            step = Step(command, line=first_line + start)
            while i < len(lines) and not lines[i].startswith("$ "):
                step.expected.append(lines[i])
                i += 1
            steps.append(step)
    return steps


def _incomplete(command: str) -> bool:
    """A command continues on the next line after a trailing backslash or inside open quotes."""
    if command.endswith("\\"):
        return True
    try:
        shlex.split(command)
    except ValueError:
        return True
    return False


def normalize(line: str) -> str:
    line = HEX_ID.sub("<id>", line.rstrip())
    return TIMING.sub("seconds: <t>", line)


def matches(expected: list[str], actual: list[str]) -> bool:
    if len(expected) != len(actual):
        return False
    for want, got in zip(expected, actual, strict=True):
        want, got = normalize(want), normalize(got)
        pattern = ".*".join(re.escape(part) for part in want.split("..."))
        if not re.fullmatch(pattern, got):
            return False
    return True


def test_the_parser_reads_commands_continuations_and_outputs():
    text = "x\n```console\n$ echo a \\\n  b\na b\n$ true\n```\n```sh\n$ not run\n```\n"
    steps = parse(text)
    assert [(s.command, s.expected) for s in steps] == [("echo a \\\n  b", ["a b"]), ("true", [])]
    assert matches(["id <x> at ..."], ["id <x> at 2026-12-01T10:00:00Z"])
    assert matches(["profile 0123456789abcdef0123456789abcdef"], ["profile ffffffffffffffffffffffffffffffff"])
    assert not matches(["a"], ["a", "b"]) and not matches(["yandex / cpc"], ["(none) / (none)"])


# --------------------------------------------------------------------------- the session


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Session:
    """A served instance and one bash shell for one document."""

    def __init__(self, workdir: Path, serve_env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        bin_dir = workdir / ".bin"
        bin_dir.mkdir()
        shim = bin_dir / "svyaz"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m svyaz.cli "$@"\n')
        shim.chmod(0o755)
        for entry in ("tests", "benchmarks", "functions", "shared", "pyproject.toml"):
            (workdir / entry).symlink_to(ROOT / entry)
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
        self.env = {k: v for k, v in os.environ.items() if k in keep}
        self.env.update(
            PATH=f"{bin_dir}:{os.environ.get('PATH', '')}",
            PYTHONPATH=str(ROOT / "shared"),
            SVYAZ_STATE_DIR=str(workdir / ".state"),
            LC_ALL="C.UTF-8",
            COLUMNS="100",
        )
        self.workdir = workdir
        self.log = (workdir / ".serve.log").open("w")
        self.server = subprocess.Popen(
            [sys.executable, "-m", "svyaz.cli", "serve", "--port", str(self.port)],
            cwd=workdir,
            env={**self.env, **(serve_env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_up()

    def _status(self) -> dict | None:
        request = urllib.request.Request(f"{self.url}/local/status")
        request.add_header("Authorization", "Bearer dev-api-key")
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                return json.loads(answer.read())
        except OSError:
            return None

    def _wait_up(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise AssertionError(f"svyaz serve exited: {(self.workdir / '.serve.log').read_text()}")
            if self._status() is not None:
                return
            time.sleep(0.1)
        raise AssertionError("svyaz serve did not answer within 30 s")

    def wait_idle(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = self._status()
            if status is not None and status["pending"] == 0:
                return
            time.sleep(0.05)

    def run_all(self, steps: list[Step]) -> list[tuple[list[str], int]]:
        """Run the commands in one shell; returns each one's output lines and exit status."""
        script, marker = ["set +e"], "@@svyaz-docs-step"
        for n, step in enumerate(steps):
            command = step.command.replace(f"127.0.0.1:{DOC_PORT}", f"127.0.0.1:{self.port}")
            script.append(f"printf '{marker}-wait %d@@\\n' {n}; read -r _go")
            script.append(f"{{\n{command}\n}} 2>&1")
            script.append(f"printf '\\n{marker} %d %d@@\\n' {n} $?")
        shell = subprocess.Popen(
            ["bash", "-c", "\n".join(script)],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        results: list[tuple[list[str], int]] = []
        current: list[str] = []
        assert shell.stdout is not None and shell.stdin is not None
        for raw in shell.stdout:
            line = raw.rstrip("\n")
            if line.startswith(f"{marker}-wait "):
                self.wait_idle()  # as a person typing the next command: the worker is done
                shell.stdin.write("go\n")
                shell.stdin.flush()
                current = []
                continue
            if line.startswith(f"{marker} "):
                _, _, status = line.removesuffix("@@").split()
                if current and current[-1] == "":
                    current.pop()  # the newline printed before the marker
                results.append((current, int(status)))
                continue
            current.append(line.replace(f"127.0.0.1:{self.port}", f"127.0.0.1:{DOC_PORT}"))
        shell.wait(timeout=600)
        return results

    def close(self) -> None:
        self.server.terminate()
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
        self.log.close()


# Pages whose examples are being rewritten to run as shown (issue 18): expected to fail until then.
NOT_YET: set[str] = set()


def serve_env(text: str) -> dict[str, str]:
    """The settings a page asks its served instance to start with."""
    pairs = [word for found in SERVE_ENV.findall(text) for word in shlex.split(found)]
    return dict(pair.split("=", 1) for pair in pairs)


def _documents() -> list:
    return [
        pytest.param(path, marks=pytest.mark.xfail(reason="examples being rewritten", strict=False))
        if path.name in NOT_YET
        else path
        for path in DOCS
        if FENCE.search(path.read_text(encoding="utf-8"))
    ]


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("curl")), reason="needs bash and curl")
@pytest.mark.parametrize("document", _documents(), ids=lambda p: getattr(p, "name", str(p)))
def test_the_commands_of_the_document_print_what_it_shows(document: Path, tmp_path: Path):
    text = document.read_text(encoding="utf-8")
    steps = parse(text)
    session = Session(tmp_path, serve_env(text))
    try:
        results = session.run_all(steps)
    finally:
        session.close()
    assert len(results) == len(steps), f"the shell stopped after {len(results)} of {len(steps)} commands"
    wrong = []
    for step, (actual, _status) in zip(steps, results, strict=True):
        if not matches(step.expected, actual):
            wrong.append(
                f"{document.name}:{step.line}: $ {step.command}\n--- the page shows:\n"
                + "\n".join(step.expected)
                + "\n--- the command printed:\n"
                + "\n".join(actual)
            )
    assert not wrong, "\n\n".join(wrong)


# --------------------------------------------------------------------------- refreshing a page


def refresh(document: Path, workdir: Path) -> int:
    """Run a page's commands and write their real output into it, keeping each shown output that
    still matches (its ``...`` stay). Returns how many outputs changed: review them before
    committing. ``python3 -m tests.docs.test_docs docs/connecting.md``"""
    text = document.read_text(encoding="utf-8")
    steps = parse(text)
    session = Session(workdir, serve_env(text))
    try:
        results = session.run_all(steps)
    finally:
        session.close()
    lines, changed = text.split("\n"), 0
    # From the last step up, so earlier line numbers stay valid.
    for step, (actual, _status) in reversed(list(zip(steps, results, strict=True))):
        if matches(step.expected, actual):
            continue
        changed += 1
        start = step.line - 1 + step.command.count("\n") + 1  # 0-based index of the first output line
        lines[start : start + len(step.expected)] = actual
    document.write_text("\n".join(lines), encoding="utf-8")
    return changed


if __name__ == "__main__":
    import tempfile

    for name in sys.argv[1:]:
        with tempfile.TemporaryDirectory() as scratch:
            print(f"{name}: {refresh(Path(name).resolve(), Path(scratch))} outputs rewritten")
