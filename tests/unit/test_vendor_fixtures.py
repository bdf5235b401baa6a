"""Every vendor fixture under tests/fixtures/vendors/<vendor>/ (written from the vendor's published
documentation, cited in the folder's README) is sent to its deployed function exactly as the
vendor sends it; the answer and the canonical events queued must equal ``<case>.expected.json``
next to it. ``SVYAZ_WRITE_GOLDEN=1`` rewrites the expected files (review the diff)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.vendor_support import VENDOR_FIXTURES, run_fixture

ARRIVAL = "(time of arrival)"
CASES = sorted(VENDOR_FIXTURES.glob("*/*.request.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_vendor_folder_cites_its_sources_and_every_case_has_its_expected_output():
    folders = {case.parent for case in CASES}
    assert {f.name for f in folders} >= {
        "calltouch",
        "uis",
        "mango",
        "amocrm",
        "bitrix24",
        "whatsapp",
        "telegram",
    }
    for folder in folders:
        readme = (folder / "README.md").read_text(encoding="utf-8")
        assert "http" in readme, f"{folder.name}/README.md cites no source"
    for case in CASES:
        assert case.with_name(case.name.replace(".request.json", ".expected.json")).exists(), case


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.name.split('.')[0]}" for c in CASES])
def test_vendor_fixture_gives_its_expected_canonical_events(case: Path):
    rest_path = case.with_name(case.name.replace(".request.json", ".rest.json"))
    expected_path = case.with_name(case.name.replace(".request.json", ".expected.json"))
    before = datetime.now(UTC)
    got = run_fixture(_load(case), _load(rest_path) if rest_path.exists() else None)
    if os.environ.get("SVYAZ_WRITE_GOLDEN"):
        expected_path.write_text(json.dumps(got, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    expected = _load(expected_path)
    for mine, theirs in zip(got["events"], expected["events"], strict=False):
        if theirs["timestamp"] == ARRIVAL:  # formats without a time of their own (callback_query)
            assert before <= datetime.fromisoformat(mine["timestamp"]) <= datetime.now(UTC)
            mine["timestamp"] = ARRIVAL
    assert got == expected
