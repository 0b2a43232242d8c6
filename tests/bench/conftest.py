"""The GPU check's dry run, once per test session: it runs bench_train.py and bench_models.py in their smoke
modes among its steps, so the smoke tests of those two benches read what that run printed instead of running
them again (all in tests/bench/test_gpu_check.py, so one parallel worker runs it once)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def gpu_dry_run(tmp_path_factory: pytest.TempPathFactory,
                user_env: dict[str, str]) -> tuple[Path, subprocess.CompletedProcess]:
    """`bash bench/gpu_check.sh --dry-run --out DIR` in the session's user environment, with OUT set as the lent
    GPU machine sets it (the folder sent back): the folder it wrote and how it ended; OUT is `DIR/../sent`."""
    out = tmp_path_factory.mktemp("gpu-check") / "gpu"
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run", "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=1200,
                            env={**user_env, "RAY_DEDUP_LOGS": "0", "OUT": str(out.parent / "sent")})
    return out, result
