"""`--skip-bad-records` as a user meets it: a Hefei-layout folder with one record garbled. Without the flag
launch.py and ecg.train refuse it in one line (exit 2, no run folder); with it they load the rest, and the
skipped record and its reason are in run.json (search) or skipped_records.csv (ecg.train)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def garbled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """120 synthetic records in the Hefei layout, the first record file replaced by binary garbage."""
    folder = tmp_path_factory.mktemp("hefei") / "data"
    root = Path(__file__).resolve().parents[2]
    made = subprocess.run([sys.executable, "-m", "ecg.synthetic", "--out", str(folder), "--n", "120", "--seed", "0"],
                          cwd=root, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    record = sorted((folder / "ecg_train").glob("*.txt"))[0]
    record.write_bytes(bytes(range(256)) * 4)
    return folder, record.name


def test_launch_refuses_a_bad_record_in_one_line_and_skips_it_when_asked(garbled, tmp_path, cli, ray_cluster) -> None:
    folder, bad = garbled
    common = ("--data", str(folder), "--fs", "250", "--num-samples", "1", "--max-epochs", "1", "--top-k", "1",
              "--cpus-per-trial", "1")
    refused = cli.launch(*common, "--results-dir", str(tmp_path / "refused"))
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and bad in lines[0] and "1 " in lines[0], refused.stderr
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())

    # The search itself joins the session's `ray start` cluster (tests/search/conftest.py): a Ray start saved.
    proc = cli.launch(*common, "--skip-bad-records", "--results-dir", str(tmp_path / "runs"),
                      "--address", ray_cluster.address, env=ray_cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = cli.only_run(tmp_path / "runs")
    info = json.loads((run_dir / "run.json").read_text())
    skipped = info["data"]["skipped_records"]
    assert [entry["record"] for entry in skipped] == [bad.removesuffix(".txt")]  # Hefei ids drop ".txt"
    assert skipped[0]["reason"] and info["data"]["records"] == 119
    assert len(pd.read_csv(run_dir / "split.csv")) == 119


def test_ecg_train_skips_a_bad_record_when_asked_and_lists_it(garbled, tmp_path, cli) -> None:
    folder, bad = garbled
    args = [sys.executable, "-m", "ecg.train", "--family", "ecgnet", "--model", "width=4", "--model", "width_1d=16",
            "--data", str(folder), "--fs", "250", "--length", "2500", "--epochs", "1", "--threads", "1"]
    refused = subprocess.run([*args, "--out", str(tmp_path / "refused")], cwd=cli.root, env=cli.env(),
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and bad in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "refused").exists()
    proc = subprocess.run([*args, "--skip-bad-records", "--out", str(tmp_path / "out")], cwd=cli.root, env=cli.env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    listed = pd.read_csv(tmp_path / "out" / "skipped_records.csv")
    assert listed["record"].astype(str).tolist() == [bad.removesuffix(".txt")] and listed["reason"][0]
    assert len(pd.read_csv(tmp_path / "out" / "split.csv")) == 119
