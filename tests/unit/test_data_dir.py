"""The files of ``svyaz serve --data-dir``: what a crash leaves is read back to the documents the
commits that returned wrote, and nothing else (``adapters/datadir.py``, ``store/journal.py``,
``queue.DurableLocalQueue``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from svyaz.adapters.datadir import DataDirError, decode, encode
from svyaz.adapters.queue import DurableLocalQueue, Message
from svyaz.adapters.store.base import PROFILES, Write
from svyaz.adapters.store.journal import JournaledStore
from svyaz.app.service import IdentityService
from svyaz.domain.model import Identifier
from svyaz.identity.policy import Policy
from tests.conftest import PEPPER
from tests.helpers import event

AT = datetime(2026, 11, 2, 10, tzinfo=UTC)


def fill(store, customers: int = 20) -> None:
    service = IdentityService(store, Policy.default())
    for n in range(customers):
        service.apply(event({"client_id": f"c-{n}", "phone": f"+7909000{n:04d}"}, minutes=n))


def journal_of(tmp_path):
    return sorted((tmp_path / "store").glob("journal.*.jsonl"))[-1]


def test_values_round_trip_and_a_sender_cannot_forge_a_datetime():
    doc = {"at": AT, "nested": [{"$dt": "2020-01-01T00:00:00"}, {"$map": 1}], "n": 1.5, "s": "жук"}
    assert decode(encode(doc)) == doc
    assert isinstance(decode(encode(doc))["nested"][0], dict)


def test_a_torn_last_line_is_ignored_with_a_warning_and_cut_off(tmp_path, caplog):
    store = JournaledStore(PEPPER, tmp_path)
    fill(store)
    live = {c: dict(d) for c, d in store.docs.items()}
    store.close()
    with journal_of(tmp_path).open("ab") as file:  # a crash in the middle of the next commit
        file.write(encode([[PROFILES, "p-torn", "set", {"status": "active"}]])[:-9])
    logger = logging.getLogger("svyaz.adapters.datadir")
    logger.addHandler(caplog.handler)  # whatever logging setup an earlier test left on "svyaz"
    try:
        reopened = JournaledStore(PEPPER, tmp_path)
    finally:
        logger.removeHandler(caplog.handler)
    assert "torn last line" in caplog.text
    assert reopened.docs == live
    reopened._commit([Write(PROFILES, "p-next", {"status": "active"})])  # appended after valid lines
    reopened.reopen()
    assert "p-next" in reopened.profiles and "p-torn" not in reopened.profiles
    reopened.close()


def test_a_damaged_line_before_the_last_stops_the_start(tmp_path):
    store = JournaledStore(PEPPER, tmp_path)
    fill(store, 3)
    store.close()
    path = journal_of(tmp_path)
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join([lines[0], b"{not json", *lines[1:]]))
    with pytest.raises(DataDirError, match="line 2 is damaged"):
        JournaledStore(PEPPER, tmp_path)


def test_another_pepper_or_a_second_process_is_refused(tmp_path):
    store = JournaledStore(PEPPER, tmp_path)
    with pytest.raises(DataDirError, match="in use by another process"):
        JournaledStore(PEPPER, tmp_path)
    store.close()
    with pytest.raises(DataDirError, match="another SVYAZ_PEPPER"):
        JournaledStore(b"another-pepper-0123456789abcdef0123456789", tmp_path)


def test_compaction_and_a_crash_at_each_of_its_steps_read_back_the_same_documents(tmp_path, monkeypatch):
    from svyaz.adapters.store import journal

    folder = tmp_path / "store"
    store = JournaledStore(PEPPER, tmp_path, compact_bytes=10**9)
    fill(store)
    first = journal_of(tmp_path).read_bytes()

    def crash(path, lines):
        raise OSError("the process died before the snapshot was renamed")

    monkeypatch.setattr(journal, "write_atomic", crash)
    with pytest.raises(OSError):
        store.compact()  # the new journal began, no snapshot
    fill(store, 30)
    live = {c: dict(d) for c, d in store.docs.items()}
    journals = sorted(p.name for p in folder.glob("journal.*"))
    assert journals == ["journal.000001.jsonl", "journal.000002.jsonl"]
    store.reopen()  # both journals, in order
    assert store.docs == live

    monkeypatch.undo()
    store.compact()
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["LOCK", "journal.000003.jsonl", "meta.json", "snapshot.jsonl"]
    (folder / "journal.000001.jsonl").write_bytes(first)  # a crash before the old journal was deleted
    store.reopen()
    assert store.docs == live and not (folder / "journal.000001.jsonl").exists()
    store.close()


def test_a_growing_journal_is_folded_into_a_snapshot_while_commits_go_on(tmp_path):
    store = JournaledStore(PEPPER, tmp_path, compact_bytes=16 * 1024)
    fill(store, 200)
    store.close()  # waits for a compaction under way
    assert (tmp_path / "store" / "snapshot.jsonl").exists()
    assert len(list((tmp_path / "store").glob("journal.*.jsonl"))) == 1
    reopened = JournaledStore(PEPPER, tmp_path)
    assert reopened.docs == store.docs
    assert all(reopened.lookup(Identifier("phone", f"+7909000{n:04d}")) for n in range(200))
    reopened.close()


def message(n: int) -> Message:
    return Message(f'{{"n": {n}}}'.encode(), {"kind": "event", "event_id": f"ev-{n}"}, ordering_key=f"k{n}")


def test_the_queue_gives_back_what_was_accepted_and_never_acknowledged(tmp_path):
    queue = DurableLocalQueue(tmp_path, ("events",), {"events": 100})
    sent = [message(n) for n in range(5)]
    queue.publish("events", sent)
    queue.publish("updates", [message(99)])  # not a durable topic
    for _ in range(2):
        queue.ack(queue.topic("events").get())
    queue.ack(sent[3])  # applied out of order (a retry), then the process dies: no close
    queue._dir_lock.release()

    again = DurableLocalQueue(tmp_path, ("events",), {"events": 100})
    waiting = again.drain("events")
    assert again.recovered == 2 and [m.attributes["event_id"] for m in waiting] == ["ev-2", "ev-4"]
    assert waiting[0].data == b'{"n": 2}' and waiting[0].ordering_key == "k2"
    assert again.drain("updates") == []
    again.close()


def test_the_queue_journal_is_rewritten_with_the_waiting_messages_only(tmp_path):
    queue = DurableLocalQueue(tmp_path, ("events",), compact_bytes=2048)
    for n in range(40):
        queue.publish("events", [message(n)])
        if n != 7:
            queue.ack(queue.topic("events").get())
        else:
            kept = queue.topic("events").get()
    assert (tmp_path / "queue" / "queue.jsonl").stat().st_size < 2048
    queue.close()
    again = DurableLocalQueue(tmp_path, ("events",))
    assert [m.message_id for m in again.drain("events")] == [kept.message_id]
    again.close()



def test_a_command_on_a_directory_svyaz_serve_holds_says_so_in_one_line(tmp_path):
    import subprocess
    import sys

    from tests.pipeline_support import user_environment

    held = JournaledStore(PEPPER, tmp_path)  # as svyaz serve --data-dir holds it
    try:
        result = subprocess.run(
            [sys.executable, "-m", "svyaz.cli", "erase", "--profile-id", "p-1"],
            capture_output=True,
            text=True,
            env=user_environment(SVYAZ_DATA_DIR=str(tmp_path)),
            timeout=60,
        )
    finally:
        held.close()
    assert result.returncode == 2 and "in use by another process" in result.stderr, result
    assert result.stderr.count("\n") == 1, result.stderr
