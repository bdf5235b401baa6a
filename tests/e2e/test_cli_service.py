"""The command line against a running local service, and failing fast: `svyaz import`,
`svyaz report` and `svyaz erase` by URL (and by discovery of the running `svyaz serve`),
one-line errors for a missing emulator or credentials, events the worker gives up on reported."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import subprocess
import sys
from datetime import date

import pytest

from svyaz.adapters.store.base import StoreError
from svyaz.cli import main
from svyaz.cli.serve import stop_summary
from svyaz.dev import client
from svyaz.dev.local import MAX_ATTEMPTS, LocalService
from svyaz.domain.model import Identifier
from tests.pipeline_support import API_KEY, FIXTURES, WRITE_KEY, build, svyaz_running, user_environment
from tests.pipeline_support import served as serving

CALLS = FIXTURES / "calls_orders"


@pytest.fixture
def served(monkeypatch):
    monkeypatch.setenv("SVYAZ_API_KEYS", API_KEY)
    monkeypatch.setenv("SVYAZ_WRITE_KEYS", WRITE_KEY)
    monkeypatch.delenv("SVYAZ_STORE", raising=False)
    with serving(build()) as service:
        yield service


@pytest.fixture
def files(tmp_path):
    shutil.copy(CALLS / "customers.jsonl", tmp_path / "customers.jsonl")
    shutil.copy(CALLS / "orders_till_export.csv", tmp_path / "orders.csv")
    return tmp_path


def test_import_and_report_reach_the_running_service_by_url(served, files, capsys):
    code = main(
        ["import", str(files / "orders.csv"), "--url", served.url, "--tz", "Europe/Moscow", "--no-progress"]
    )
    out, err = capsys.readouterr()
    assert "(orders, via url)" in out and "events applied: 4 (already applied before: 0)" in out
    # Rows were rejected: the command says so on stderr, with the first reason, and fails.
    assert code == 1
    assert "6 of 10 rows of" in err and "(first: line 4, amount: Input should be a valid decimal)" in err
    # The rows went to the service's own store, not to an empty store of this process.
    assert served.rt.store.lookup(Identifier("phone", "+79091234567")) is not None

    assert (
        main(["report", "attribution", "--url", served.url, "--from", "2026-03-01", "--to", "2026-03-31"])
        == 0
    )
    out, err = capsys.readouterr()
    assert "(none) / (none)" in out and "total                       RUB        4    182480.50" in out
    assert "empty" not in err

    again = main(["import", str(files / "orders.csv"), "--url", served.url, "--tz", "Europe/Moscow"])
    assert again == 1 and "events applied: 0 (already applied before: 4)" in capsys.readouterr().out


def test_commands_find_the_running_serve_without_being_told(served, files, capsys, monkeypatch):
    monkeypatch.setenv("SVYAZ_STATE_DIR", str(files / "state"))
    assert client.discover() is None
    client.announce(served.url, "memory")
    assert client.discover() == served.url
    assert main(["import", str(files / "customers.jsonl"), "--time", "2026-01-01T00:00:00Z"]) == 1
    out, err = capsys.readouterr()
    assert "via url" in out and f"(svyaz serve at {served.url})" in err
    assert served.rt.store.lookup(Identifier("email", "maria@example.ru")) is not None

    profile = served.rt.store.lookup(Identifier("phone", "+79165550102"))
    assert main(["erase", "--kind", "phone", "--value", "8 916 555-01-02"]) == 0
    assert f"erasure of profile {profile.profile_id} queued" in capsys.readouterr().out
    assert served.worker.wait_idle(10)
    assert served.rt.store.lookup(Identifier("phone", "+79165550102")) is None

    # Another process's announcement that is gone is not a running service.
    (files / "state" / "serve.json").write_text('{"url": "http://127.0.0.1:9", "pid": 999999999}')
    assert client.discover() is None


def test_report_on_the_service_equals_the_report_on_its_store(served, files, capsys):
    main(["import", str(files / "orders.csv"), "--url", served.url, "--tz", "Europe/Moscow"])
    capsys.readouterr()
    main(
        ["report", "attribution", "--url", served.url, "--from", "2026-03-01", "--to", "2026-03-31", "--json"]
    )
    remote = capsys.readouterr().out
    from svyaz.cli.reports import attribution_text, parse_tz

    here = attribution_text(
        served.rt.store, date(2026, 3, 1), date(2026, 3, 31), parse_tz("UTC"), "first_touch", True
    )
    assert remote.strip() == here.strip()


def test_a_binary_file_or_a_wrong_encoding_fails_with_the_reason(served, files, capsys):
    (files / "photo.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert main(["import", str(files / "photo.csv"), "--url", served.url]) == 1
    assert "is not a text file" in capsys.readouterr().err

    text = (CALLS / "orders_till_export.csv").read_text(encoding="utf-8-sig")
    (files / "cp1251.csv").write_bytes(text.replace("order_id", "Номер").encode("cp1251"))
    assert main(["import", str(files / "cp1251.csv"), "--url", served.url]) == 1
    assert "--encoding cp1251" in capsys.readouterr().err

    (files / "rows.csv").write_bytes(text.encode("cp1251"))
    assert main(["import", str(files / "rows.csv"), "--url", served.url, "--tz", "Europe/Moscow"]) == 1
    out, err = capsys.readouterr()
    assert "rejected: 10" in out and "not valid utf-8 text (see --encoding)" in err


def test_progress_lines_on_a_non_terminal(served, files, capsys, monkeypatch):
    from svyaz.imports import run

    monkeypatch.setattr(run, "PROGRESS_EVERY", 0.0)
    rows = "order_id,time,amount,phone\n" + "".join(
        f"A{n},2026-03-01T10:00:00Z,10,+7916123{n:04d}\n" for n in range(30)
    )
    (files / "many.csv.gz").write_bytes(gzip.compress(rows.encode()))
    assert main(["import", str(files / "many.csv.gz"), "--url", served.url, "--batch-size", "10"]) == 0
    err = capsys.readouterr().err
    assert "import many.csv.gz: 10 rows" in err and "import many.csv.gz: 30 rows" in err


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_the_worker_counts_and_names_the_events_it_gives_up(monkeypatch):
    records = _Records()
    logging.getLogger("svyaz.dev.local").addHandler(records)
    rt = build()
    service = LocalService("127.0.0.1", 0, rt, quiet=True).start()
    monkeypatch.setattr("svyaz.dev.local.time.sleep", lambda _s: None)

    def broken(*_args, **_kwargs):
        raise StoreError("down")

    monkeypatch.setattr(rt.service, "apply", broken)
    try:
        from tests.e2e.test_local_service import call, page_view

        assert call(f"{service.url}/collect", WRITE_KEY, page_view(7, client_id="c7"))[0] == 202
        assert service.worker.wait_idle(10)
    finally:
        left = service.stop()
    [label] = service.worker.given_up  # the stored id: the client's under its write key's namespace
    assert label.endswith(":view-7")
    summary = stop_summary(service.worker, left)
    assert summary.startswith("stopped: 0 events applied, 0 rejected, 1 given up, 0 left unapplied")
    assert "view-7" in summary
    logging.getLogger("svyaz.dev.local").removeHandler(records)
    assert f"gave up on {label} after {MAX_ATTEMPTS} attempts (StoreError): not applied" in records.messages


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "svyaz.cli", *args],
        env=user_environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FIRESTORE_EMULATOR_HOST": "127.0.0.1:9"}, "FIRESTORE_EMULATOR_HOST"),
        ({"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/key.json"}, "GOOGLE_APPLICATION_CREDENTIALS"),
    ],
)
def test_a_missing_firestore_is_one_line_naming_what_to_set(env, named, tmp_path):
    served = _run("serve", "--store", "firestore", "--port", "0", **env)
    assert served.returncode == 2 and served.stdout == ""
    assert served.stderr.count("\n") == 1 and named in served.stderr
    assert served.stderr.startswith("svyaz serve: cannot start:")
    (tmp_path / "o.csv").write_text("order_id,time,phone\nA,2026-03-01T10:00:00Z,+79161234567\n")
    for args in (
        ("report", "attribution", "--store", "firestore", "--from", "2026-03-01", "--to", "2026-03-02"),
        ("import", str(tmp_path / "o.csv"), "--store", "firestore"),
        ("erase", "--store", "firestore", "--profile-id", "x"),
    ):
        result = _run(*args, **env)
        assert result.returncode == 2, result
        assert result.stderr.count("\n") == 1 and named in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_a_pubsub_emulator_that_is_not_there_stops_serve():
    result = _run("serve", "--port", "0", PUBSUB_EMULATOR_HOST="127.0.0.1:9")
    assert result.returncode == 2 and "PUBSUB_EMULATOR_HOST" in result.stderr
    assert result.stderr.count("\n") == 1


def test_demo_keep_leaves_its_profiles_open_until_ctrl_c(tmp_path, monkeypatch):
    import signal

    running = svyaz_running("demo", "--keep", until="Ctrl-C stops it", SVYAZ_STATE_DIR=str(tmp_path))
    with running as (demo, lines):
        announced = next(line for line in lines if "keeps running on" in line)
        url = announced.split("keeps running on ")[1].split()[0]
        # The person opening the journal is told the development password the demo filled in.
        assert any(f"{url}/journal/  (sign in with password dev-journal-key)" in line for line in lines)
        monkeypatch.setenv("SVYAZ_STATE_DIR", str(tmp_path))
        assert client.discover() == url  # `svyaz report`, `svyaz import` find it
        profile = client.ServiceClient(url).lookup("phone", "+79165550102")
        assert profile["traits"]["first_name"] == "Екатерина"
        demo.send_signal(signal.SIGINT)
        demo.communicate(timeout=30)
    assert demo.returncode == 0
    assert client.discover() is None


def test_explain_and_split_work_on_the_running_service(served, capsys):
    from tests.e2e.test_local_service import call

    for n, identifiers in enumerate(
        (
            {"client_id": "anna-phone", "phone": "+79091234567"},
            {"client_id": "boris-pc", "email": "boris@mail.ru"},
        ),
        1,
    ):
        event = {"event_id": f"x-{n}", "type": "identify", "timestamp": f"2026-03-0{n}T10:00:00Z"}
        assert call(f"{served.url}/collect", WRITE_KEY, {**event, "identifiers": identifiers})[0] == 202
    family = {"event_id": "x-3", "type": "identify", "timestamp": "2026-03-03T10:00:00Z"}
    family["identifiers"] = {"phone": "+79091234567", "email": "boris@mail.ru"}
    assert call(f"{served.url}/collect", WRITE_KEY, family)[0] == 202
    assert served.worker.wait_idle(10)

    assert main(["explain", "--url", served.url, "--kind", "phone", "--value", "8 909 123-45-67"]) == 0
    tree = capsys.readouterr().out
    assert "+79091234567" in tree and "boris@mail.ru" in tree
    assert main(["explain", "--url", served.url, "--kind", "phone", "--value", "+79990000000"]) != 0

    profile = served.rt.store.lookup(Identifier("phone", "+79091234567"))
    code = main(
        ["split", "--url", served.url, "--profile", profile.profile_id, "--block", "email=boris@mail.ru"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "done (email blocked): 2 profiles" in out


# --- commands configure themselves with explicit settings, never by writing the environment ---


def svyaz_variables() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith("SVYAZ_")}


def test_serve_fills_only_unset_secrets_with_development_values_and_writes_no_variable(monkeypatch):
    from svyaz.cli.serve import development_defaults, local_settings

    monkeypatch.setenv("SVYAZ_WRITE_KEYS", "a-real-site-key")
    monkeypatch.delenv("SVYAZ_API_KEYS", raising=False)
    before = svyaz_variables()
    filled = development_defaults()
    settings = local_settings(filled, store="firestore")
    assert "SVYAZ_WRITE_KEYS" not in filled and filled["SVYAZ_API_KEYS"] == "dev-api-key"
    assert settings.write_keys == ["a-real-site-key"] and settings.api_keys == ["dev-api-key"]
    assert settings.store == "firestore"
    assert svyaz_variables() == before
    monkeypatch.setenv("SVYAZ_ENV", "production")
    assert development_defaults() == {}  # production never gets a development secret


def test_demo_and_a_direct_import_leave_the_environment_as_they_found_it(files, capsys, monkeypatch):
    monkeypatch.delenv("SVYAZ_STORE", raising=False)
    monkeypatch.delenv("SVYAZ_WRITE_KEYS", raising=False)
    monkeypatch.delenv("SVYAZ_API_KEYS", raising=False)
    before = svyaz_variables()
    assert main(["demo"]) == 0
    assert "== Ekaterina's unified profile" in capsys.readouterr().out
    assert svyaz_variables() == before
    code = main(
        ["import", str(files / "customers.jsonl"), "--store", "memory", "--time", "2026-01-01T00:00:00Z"]
    )
    assert code in (0, 1) and "(customers, via direct)" in capsys.readouterr().out
    assert svyaz_variables() == before
