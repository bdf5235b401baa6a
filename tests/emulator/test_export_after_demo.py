"""The issue's acceptance, as a user types it: `svyaz demo --store firestore`, then
`svyaz export conversions --target metrica` (two processes, the Firestore emulator between them)
writes Metrica's file with Ekaterina's showroom order keyed by her ClientID, credited to VK; a
second export finds nothing new (the ledger is in Firestore too)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from tests.conftest import PROJECT

pytestmark = pytest.mark.emulator
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def svyaz(*args: str, cwd) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SVYAZ_") and k != "PUBSUB_EMULATOR_HOST"}
    env |= {"SVYAZ_GCP_PROJECT": PROJECT, "PYTHONPATH": os.path.join(REPO, "shared")}
    done = subprocess.run(
        [sys.executable, "-m", "svyaz.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_demo_then_export_conversions_for_metrica(firestore_emulator, tmp_path):
    firestore_emulator.reset_firestore(PROJECT)
    assert "Ekaterina's unified profile" in svyaz("demo", "--store", "firestore", cwd=tmp_path)
    period = ("--from", "2026-11-01", "--to", "2026-11-30", "--store", "firestore")
    out = svyaz("export", "conversions", "--target", "metrica", *period, cwd=tmp_path)
    lines = (tmp_path / "metrica-orders-2026-11-01_2026-11-30.csv").read_text().splitlines()
    showroom = int(datetime(2026, 11, 10, 10, 14, 24, tzinfo=UTC).timestamp())
    assert lines[0] == "ClientId,Target,DateTime,Price,Currency"
    assert f"1702385561118374409,offline_order,{showroom},129000.00,RUB" in lines
    s77 = next(line for line in out.splitlines() if line.strip().startswith("S-77"))
    assert "vk / social / kitchens-promo |" in s77
    again = svyaz("export", "conversions", "--target", "metrica", *period, "--out", "again", cwd=tmp_path)
    assert "exported: 0; exported before: 2; refused: 0" in again
