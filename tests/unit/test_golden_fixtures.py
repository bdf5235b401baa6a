"""Every golden fixture (``tests/golden.py``): each vendor request under
tests/fixtures/vendors/<vendor>/ (written from the vendor's published documentation, cited in the
folder's README) sent to its deployed function exactly as the vendor sends it, and each channel
payload under tests/fixtures/channels/ through its parser, gives ``<case>.expected.json`` next to
it. ``SVYAZ_WRITE_GOLDEN=1`` rewrites the expected files (review the diff)."""

from __future__ import annotations

import pytest

from tests.golden import CHANNEL_FIXTURES, PARSERS, Case, cases, check

CASES = cases()


def test_every_fixture_folder_cites_its_sources_and_every_case_has_its_expected_output():
    folders = {case.input.parent for case in CASES}
    assert {f.name for f in folders} >= {
        "calltouch",
        "uis",
        "mango",
        "amocrm",
        "bitrix24",
        "whatsapp",
        "telegram",
        "channels",
    }
    for folder in folders:
        readme = (folder / "README.md").read_text(encoding="utf-8")
        assert "http" in readme, f"{folder.name}/README.md cites no source"
    for case in CASES:
        assert case.expected.exists(), case.id


def test_every_channel_payload_has_a_parser():
    channels = {case.name.split("_")[0] for case in CASES if case.input.parent == CHANNEL_FIXTURES}
    assert channels == set(PARSERS)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_fixture_gives_its_expected_output(case: Case):
    check(case)
