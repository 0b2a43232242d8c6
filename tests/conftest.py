"""Shared fixtures: where the real records live, and skipping with a reason when they are absent; the environment
the commands under test run in; the order the test files run in."""
from __future__ import annotations

import os
from collections.abc import Iterator
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


PTBXL_STATEMENTS = SHARED_DATA / "ptbxl_meta" / "scp_statements.csv"
PTBXL_LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")
# scp_codes cycled over the records: diagnostic + rhythm, diagnostic only (no rhythm label), rhythm + form
# only (no diagnostic label), and likelihoods from 0 to 100, so every task keeps some records and leaves
# some out. The aggregation tests in tests/ecg/data/test_ptbxl.py count on exactly this cycle.
PTBXL_CODES = (
    {"NORM": 100.0, "SR": 0.0},
    {"IMI": 50.0, "LVH": 100.0, "SR": 0.0},
    {"ASMI": 100.0, "ABQRS": 0.0},
    {"AFIB": 0.0, "PVC": 100.0},
    {"CLBBB": 100.0, "NDT": 15.0, "STACH": 0.0},
    {"NORM": 80.0, "SBRAD": 0.0},
)


def write_ptbxl(root: Path, n: int, *, rates: tuple[int, ...] = (100, 500), seed: int = 0) -> Path:
    """A PTB-XL-layout folder: the real statement table, a ptbxl_database.csv of `n` records (scp_codes
    from PTBXL_CODES in turn, strat_fold 1-10 in turn) and 12-lead 10 s WFDB records at each of `rates`."""
    import shutil

    import numpy as np
    import pandas as pd
    import wfdb

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(PTBXL_STATEMENTS, root / "scp_statements.csv")
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        ecg_id = i + 1
        names = {rate: f"records{rate}/00000/{ecg_id:05d}_{'lr' if rate == 100 else 'hr'}" for rate in (100, 500)}
        for rate in rates:
            t = np.arange(10 * rate) / rate
            beat = np.sin(2 * np.pi * (1.0 + 0.1 * (i % 5)) * t)[:, None]  # mV, a different rate per record
            signal = beat * rng.uniform(0.2, 1.5, size=12) + rng.normal(0, 0.05, size=(len(t), 12))
            folder = root / names[rate]
            folder.parent.mkdir(parents=True, exist_ok=True)
            wfdb.wrsamp(folder.name, fs=rate, units=["mV"] * 12, sig_name=list(PTBXL_LEADS), p_signal=signal,
                        fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder.parent))
        rows.append({"ecg_id": ecg_id, "patient_id": 1000 + i,
                     "age": [300.0, float("nan"), 63.0][i % 3] if i < 3 else 40.0 + i % 40,
                     "sex": i % 2, "scp_codes": repr(PTBXL_CODES[i % len(PTBXL_CODES)]),
                     "strat_fold": i % 10 + 1, "filename_lr": names[100], "filename_hr": names[500]})
    pd.DataFrame(rows).to_csv(root / "ptbxl_database.csv", index=False)
    return root


@pytest.fixture(scope="session")
def ptbxl_statements() -> Path:
    if not PTBXL_STATEMENTS.exists():
        pytest.skip(f"the PTB-XL statement table was not found at {PTBXL_STATEMENTS} (a clone outside this workplace)")
    return PTBXL_STATEMENTS


@pytest.fixture(scope="session")
def ptbxl_dir(tmp_path_factory: pytest.TempPathFactory, ptbxl_statements: Path) -> Path:
    """60 records at 100 and 500 Hz in the PTB-XL layout (written once per test session)."""
    return write_ptbxl(tmp_path_factory.mktemp("ptbxl"), 60)


def session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of this test session that its processes share: pytest-xdist gives each worker its own base
    temp folder (popen-gw0, ...) inside it; a serial run (`-n 0`) has only its own."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def user_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment a command under test runs in, as a user's shell has it after `pip install -e .`: the
    installed project and no PYTHONPATH (so a packaging mistake shows), none of the caller's Ray auth or address
    variables or fault hook, and a HOME, XDG config folder and ECG cache of this test session's own, shared by
    its workers: Ray's token file (~/.ray/auth_token) and the run-state digest key are written there, never in
    the real HOME."""
    home = session_root(tmp_path_factory) / "home"
    (home / ".config").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith(("RAY_AUTH", "ECG_")) and k != "RAY_ADDRESS"}
    return {**env, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "ECG_CACHE_DIR": str(home / ".cache" / "ecg-autosearch"), "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="session", autouse=True)
def _session_home(user_env: dict[str, str]) -> Iterator[None]:
    """The tests' own process uses the session's HOME, XDG config folder and ECG cache too (what it runs in-process:
    the cache, Ray's token file of an in-process cluster, the digest key): nothing of the user's is read or
    changed."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("HOME", "XDG_CONFIG_HOME", "ECG_CACHE_DIR"):
            patch.setenv(name, user_env[name])
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with end-to-end runs (marked slow or faults) first, in their usual order: the parallel workers
    take a file at a time (`--dist loadfile`), so the long ones start at once and the quick ones fill the end."""
    long_files = {item.path for item in items if item.get_closest_marker("slow") or item.get_closest_marker("faults")}
    items.sort(key=lambda item: item.path not in long_files)  # a stable sort keeps each file's own order
