"""launch.py refuses each bad value in one line, exit code 2, before Ray starts; --help shows every default."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("argv, message", [
    (["--space", "transformer"], "--space 'transformer' is unknown; choose one of"),
    (["--max-epochs", "-3"], "--max-epochs must be an integer >= 1, got -3"),
    (["--num-samples", "0"], "--num-samples must be an integer >= 1, got 0"),
    (["--grace-period", "5", "--max-epochs", "3"], "--grace-period 5 is larger than --max-epochs 3"),
    (["--gpus-per-trial", "2"], "--gpus-per-trial 2 is more than this machine has (0 GPUs)"),
    (["--gpus-per-trial", "-1"], "--gpus-per-trial must be >= 0"),
    (["--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
    (["--data", "/no/such/records"], "--data /no/such/records: no such file or folder"),
    (["--labels", "x.csv"], "--labels needs --data"),
    (["--scheduler", "hyperband"], "argument --scheduler: invalid choice: 'hyperband'"),
    (["--max-epochs", "ten"], "argument --max-epochs: invalid int value: 'ten'"),
    (["--resume", "/no/such/run"], "--resume: /no/such/run: no such folder"),
])
def test_bad_values_are_refused_in_one_line_before_ray_starts(argv, message, capsys, monkeypatch, launch) -> None:
    import search.environment

    monkeypatch.setattr(search.environment, "local_gpu_count", lambda: 0)
    try:
        code = launch.main(argv)
    except SystemExit as stop:  # argparse's own refusals (type and choice errors)
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("launch.py: error: ")
    assert message in err
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


def _can_create_in(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("where", ["under a file", "in sysfs"])
def test_a_results_dir_that_cannot_be_written_is_refused_before_ray_or_any_file(where, tmp_path, capsys,
                                                                                  launch) -> None:
    """Fault 8a of docs/reliability.md: a --results-dir under a regular file, or in a folder the kernel refuses
    new files in even to root (sysfs: the tests run as root, for whom chmod 555 stops nothing, so the check
    meets a real refusal, not a mock): one line, exit 2, before Ray starts or anything is written."""
    if where == "under a file":
        blocker = tmp_path / "a_file"
        blocker.write_text("not a folder")
        results = blocker / "results"
        message = f"--results-dir {results}: {blocker} is a file, not a folder"
    else:
        if _can_create_in(Path("/sys")):
            pytest.skip("/sys accepts new files on this machine: no unwritable folder to try")
        results = Path("/sys/ecg-results")
        message = "--results-dir /sys/ecg-results: /sys is not writable ("
    code = launch.main(["--results-dir", str(results), "--n-records", "20", "--num-samples", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"launch.py: error: {message}"), err
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    assert not results.exists() and (where != "under a file" or blocker.read_text() == "not a folder")


def test_help_documents_every_option_with_its_default(capsys, launch) -> None:
    with pytest.raises(SystemExit):
        launch.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--space", "--data", "--labels", "--n-records", "--num-samples", "--max-epochs", "--grace-period",
                 "--reduction-factor", "--scheduler", "--sampler", "--metric", "--seed", "--cpus-per-trial",
                 "--gpus-per-trial", "--max-concurrent", "--top-k", "--results-dir", "--storage-path", "--address",
                 "--dashboard-host", "--max-failures", "--resume", "--list-spaces"):
        assert flag in text
    assert text.count("default:") >= 22
    assert "(default: 3)" in text and "(default: 2)" in text and "(default: 127.0.0.1)" in text
    assert "default: 6 without a GPU, 60 with GPUs" in text


def test_list_spaces_prints_parameters_and_ranges(capsys, launch) -> None:
    assert launch.main(["--list-spaces"]) == 0
    out = capsys.readouterr().out
    for name in ("ecgnet", "resnet", "resnext", "seresnet", "lstm", "gru", "hybrid", "all"):
        assert f"\n{name}\n" in out
    assert "optim/lr" in out and "[0.0001, 0.01] log" in out
    assert "gru/model/version" in out  # the all space, family-qualified
    # Every space samples the input rate (spaces.rate); this machine's choices, never above the records' rate.
    blocks = dict(block.split("\n", 1) for block in out.split("\n\n")[1:])
    assert set(blocks) == {"ecgnet", "resnet", "resnext", "seresnet", "lstm", "gru", "hybrid", "all"}
    import torch

    rates = ["{100,", "250,", "500}"] if torch.cuda.device_count() else ["{100,", "250}"]
    for name, lines in blocks.items():
        assert any(line.split() == ["data/fs", *rates] for line in lines.splitlines()), name


def test_every_search_option_is_a_launch_flag_and_nothing_else(launch) -> None:
    import dataclasses

    options = {f.name for f in dataclasses.fields(launch.SearchOptions) if "help" in f.metadata}
    dests = {a.dest for a in launch.parser()._actions} - {"help", "list_spaces"}
    assert dests == options
    assert {"gpu", "length"} & dests == set()  # filled by resolved(), never given


@pytest.mark.parametrize("argv", [["--help"], ["--max-epochs", "-3"], ["--dashboard-host", "my laptop"],
                                  ["--seed", "-1"], ["--leads", "10"]])
def test_help_and_a_refused_value_import_neither_ray_nor_torch(argv) -> None:
    import subprocess

    # -X importtime lists every module imported: the heavy ones (bench/results/cli) must wait for a good command.
    proc = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "launch.py"), *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert proc.returncode == (0 if argv == ["--help"] else 2)
    heavy = {"ray", "torch", "search.runner", "ray.tune", "optuna", "pandas"}
    assert imported and not imported & heavy, sorted(imported & heavy)
