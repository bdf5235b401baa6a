"""``svyaz bench --store firestore`` on the real emulator: a tiny population, end to end through
the command (the emulator of the session, its bench project emptied first). Its time is printed,
never asserted.

One worker: on the emulator two transactions of one customer deadlock until its 2 s lock timeout,
and a tiny population is nearly all one customer at a time, so more workers only make the run
slow and its time random. Concurrency itself is covered on the memory store
(``tests/unit/bench``) and by ``tests/emulator/test_concurrency.py``."""

from __future__ import annotations

import json
import time

import pytest

from svyaz.cli import main

pytestmark = pytest.mark.emulator


def test_bench_on_the_firestore_emulator(firestore_emulator, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    code = main(
        ["bench", "--store", "firestore", "--customers", "6", "--workers", "1", "--seed", "2"]
        + ["--growth", "10", "--json", "--quiet", "--no-progress"]
    )
    elapsed = time.perf_counter() - started
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["config"]["store"] == "firestore"
    svyaz = report["svyaz"]
    assert svyaz["dead_lettered"] == 0 and svyaz["applied"] == report["config"]["deliveries"]
    assert svyaz["transaction_give_ups"] == 0 and svyaz["contention"]["lock_timeouts"] == 0
    assert report["accuracy"]["precision"] == 1.0 and report["accuracy"]["over_merges"] == 0
    assert report["accuracy"]["inconsistent_records"] == 0
    assert report["raw"]["events_per_s"] > 0 and report["ratios"]["linking"] is not None
    assert report["growth"][0]["no_change"]["path"] == "fast_path"
    print(f"\n[bench smoke] {elapsed:.1f} s")  # reported, never asserted: shared machines are noisy
