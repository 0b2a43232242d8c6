"""Shared fixtures: where the real records live, and skipping with a reason when they are absent."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HEFEI_DIR = SHARED_DATA / "hefei_round2"
CINC_DIR = SHARED_DATA / "cinc2021"


@pytest.fixture(scope="session")
def hefei_dir() -> Path:
    if not (HEFEI_DIR / "hf_round2_train.txt").exists():
        pytest.skip(f"real Hefei round-2 records not found at {HEFEI_DIR} (a clone outside this workplace)")
    return HEFEI_DIR


@pytest.fixture(scope="session")
def cinc_dir() -> Path:
    if not any(CINC_DIR.glob("*.hea")):
        pytest.skip(f"real PhysioNet/CinC 2021 records not found at {CINC_DIR} (a clone outside this workplace)")
    return CINC_DIR
