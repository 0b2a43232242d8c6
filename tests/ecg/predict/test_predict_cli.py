"""`python -m ecg.predict` on one tiny search, end to end: the run's own test split scored again exactly as
test_results.csv scored it (single models and ensembles, at 100 and 250 Hz, with the hand-made features, every
threshold rule), new records at 500 Hz x 5,000 samples in three formats, an exported package used after the run
folder is moved away, ONNX graphs checked against PyTorch, `python -m ecg.train --export`, and bad input refused
in one line with nothing written. Slow: one Ray run (3 trials, 1 epoch) shared by the module."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecg.data.hefei import write_hefei
from ecg.data.rates import resample_signals
from ecg.metrics import binarize, evaluate
from ecg.predict.__main__ import main
from ecg.synthetic import generate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
# Three ECGNet trials fixed by a warm-start file: the features and age/sex at 100 Hz, the per-lead statistics
# at 250 Hz (the records' rate), nothing at 100 Hz. --top-k 3: rank1-3, their mean (100 + 250 Hz) and the greedy
# ensemble are all evaluated.
STARTS = "family,data/fs,model/features,model/use_age_sex\necgnet,100,both,True\necgnet,250,stats,False\n" \
         "ecgnet,100,none,True\n"
RUN = ("--space", "ecgnet", "--n-records", "120", "--cpus-per-trial", "1", "--seed", "0", "--num-samples", "3",
       "--max-epochs", "1", "--grace-period", "1", "--top-k", "3")


def command(*args: str, cache: Path, module: str = "ecg.predict") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ECG_CACHE_DIR": str(cache), "RAY_DEDUP_LOGS": "0"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, text=True, capture_output=True,
                          timeout=600)


def refused(capsys, *args: str) -> str:
    """`python -m ecg.predict ARGS` in this process: exit 2 and the one line it printed."""
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in args])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ECG_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, cache) -> Path:
    root = tmp_path_factory.mktemp("search")
    (root / "starts.csv").write_text(STARTS)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ECG_CACHE_DIR": str(cache), "RAY_DEDUP_LOGS": "0"}
    proc = subprocess.run([sys.executable, str(ROOT / "launch.py"), *RUN, "--warm-start", str(root / "starts.csv"),
                           "--results-dir", str(root / "runs")], cwd=ROOT, env=env, text=True, capture_output=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (root / "runs").iterdir()
    return run


@pytest.fixture(scope="module")
def new_records(tmp_path_factory) -> dict[str, Path]:
    """Twelve synthetic records at 500 Hz x 5,000 samples, the run's records being at 250 Hz: an .npz without
    labels, the same records in the Hefei layout, and the same signals resampled to 250 Hz in an .npz."""
    folder = tmp_path_factory.mktemp("new")
    data = generate(12, seed=7, fs=500, length=5000)
    ids = np.array([f"new{i:02d}" for i in range(len(data))])
    data.record_ids = list(ids)
    np.savez(folder / "new500.npz", signals=data.signals, fs=500, lead_names=np.array(data.lead_names),
             record_ids=ids, age=data.age, sex=data.sex)
    np.savez(folder / "new250.npz", signals=resample_signals(data.signals, 500, 250), fs=250,
             lead_names=np.array(data.lead_names), record_ids=ids, age=data.age, sex=data.sex)
    np.savez(folder / "six_leads.npz", signals=data.signals[:, :6], fs=500, lead_names=np.array(data.lead_names[:6]))
    write_hefei(data, folder / "hefei")
    return {"npz": folder / "new500.npz", "npz250": folder / "new250.npz", "hefei": folder / "hefei",
            "six_leads": folder / "six_leads.npz"}


def models_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "models.json").read_text())


def test_the_search_records_every_evaluated_model_for_prediction(run_dir) -> None:
    manifest = models_json(run_dir)
    results = pd.read_csv(run_dir / "test_results.csv", dtype={"trial_id": str, "thresholds": str})
    assert list(manifest["models"]) == list(dict.fromkeys(results["model"]))
    assert manifest["chosen"] == json.loads((run_dir / "run.json").read_text())["chosen_model"]["model"]
    assert (manifest["fs"], manifest["length"]) == (250, 2500)
    rates = {member["fs"] for member in manifest["members"].values()}
    assert rates == {100, 250}
    features = {m["config"]["model/features"] for m in manifest["members"].values()}
    assert features == {"both", "stats", "none"} and manifest["feature_scaling"] is not None
    for name, model in manifest["models"].items():
        chosen = results[(results["model"] == name) & results["chosen"]]
        assert model["rule"] == chosen["thresholds"].item()
        for member, _ in model["members"]:
            weights = manifest["members"][member]["weights"]
            assert not Path(weights).is_absolute() and (run_dir / "tune" / weights / "model.safetensors").is_file()
    assert sum(w for _, w in manifest["models"]["ensemble_topk"]["members"]) == pytest.approx(1.0)
    assert f"python -m ecg.predict {run_dir} --data DIR_OR_FILE" in (run_dir / "report.html").read_text()


def test_the_test_split_gives_test_results_csv_figures_exactly(run_dir, tmp_path, capsys) -> None:
    results = pd.read_csv(run_dir / "test_results.csv", dtype={"trial_id": str, "thresholds": str})
    manifest = models_json(run_dir)
    # The chosen model with its chosen rule, through the command as a user types it.
    out = tmp_path / "chosen.csv"
    proc = command(str(run_dir), "--split", "test", "--out", str(out), cache=Path(os.environ["ECG_CACHE_DIR"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    chosen = results[(results["model"] == manifest["chosen"]) & results["chosen"]].iloc[0]
    assert f"test micro-F1 {chosen['test_micro_f1']:.6f} ({manifest['chosen']}, thresholds {chosen['thresholds']}); " \
           f"test_results.csv: {chosen['test_micro_f1']:.6f}" in proc.stdout
    frame = pd.read_csv(out, dtype={"record_id": str}, keep_default_na=False)
    assert len(frame) == chosen["n_test_records"]
    # Every model (rank1 at 100 Hz with features and age/sex, rank2-3, both ensembles across rates) under the
    # per-class rule and its chosen one: the micro-F1 of predictions.csv's probabilities is test_results.csv's.
    checked = set()
    for (name, rule), row in results.set_index(["model", "thresholds"]).iterrows():
        if rule not in ("per_class", manifest["models"][name]["rule"]):
            continue
        checked.add((name, rule))
        out = tmp_path / f"{name}-{rule}.csv"
        assert main([str(run_dir), "--split", "test", "--model", name, "--thresholds", rule, "--out", str(out)]) == 0
        frame = pd.read_csv(out, dtype={"record_id": str}, keep_default_na=False)
        classes = manifest["classes"]
        probs = frame[classes].to_numpy()
        truth = np.array([[c in labels.split(";") for c in classes] for labels in frame["true_labels"]], dtype=np.uint8)
        thresholds = manifest["models"][name]["thresholds"][rule]
        assert evaluate(truth, probs, thresholds)["micro_f1"] == pytest.approx(row["test_micro_f1"], abs=1e-12), name
        assert truth.sum() == row["test_positives"]
        predicted = binarize(probs, thresholds)
        assert list(frame["labels"]) == [";".join(c for c, p in zip(classes, r) if p) for r in predicted]
    assert checked == {(name, rule) for name, model in manifest["models"].items() for rule in ("per_class", model["rule"])}
    assert "test_results.csv" in capsys.readouterr().out


def test_new_records_at_500_hz_in_any_format_are_brought_to_each_members_rate(run_dir, new_records, tmp_path,
                                                                              ptbxl_dir) -> None:
    outputs = {}
    for name in ("npz", "hefei", "npz250"):
        outputs[name] = tmp_path / f"{name}.csv"
        assert main([str(run_dir), "--data", str(new_records[name]), "--out", str(outputs[name])]) == 0
    frames = {name: pd.read_csv(path, dtype={"record_id": str}, keep_default_na=False) for name, path in outputs.items()}
    manifest = models_json(run_dir)
    classes = manifest["classes"]
    new = frames["npz"]
    assert list(new.columns) == ["record_id", *classes, "labels"]
    assert list(new["record_id"]) == [f"new{i:02d}" for i in range(12)]
    probs = new[classes].to_numpy()
    assert ((probs > 0) & (probs < 1)).all()
    thresholds = manifest["models"][manifest["chosen"]]["thresholds"][manifest["models"][manifest["chosen"]]["rule"]]
    assert list(new["labels"]) == [";".join(c for c, p in zip(classes, r) if p) for r in binarize(probs, thresholds)]
    # The same int16 records from a Hefei folder: the same predictions, to the last digit.
    pd.testing.assert_frame_equal(frames["hefei"], new)
    # The reader resampled 500 Hz to the run's 250 Hz with the filter the search used: the same signals resampled
    # beforehand give the same probabilities (up to a rounding of the int16 values).
    assert np.abs(frames["npz250"][classes].to_numpy() - probs).max() < 1e-3

    # A PTB-XL folder (12 leads at 500 Hz, the model's 8 chosen by name) and its records500/ as a plain WFDB folder
    # (headers without diagnoses, age or sex): the same records, the same predictions of a model that does not
    # read age and sex.
    blind = next(name for name, model in manifest["models"].items() if name.startswith("rank") and not
                 manifest["members"][model["members"][0][0]]["config"]["model/use_age_sex"])
    for data, out in ((ptbxl_dir, tmp_path / "ptbxl.csv"), (ptbxl_dir / "records500", tmp_path / "wfdb.csv")):
        assert main([str(run_dir), "--model", blind, "--data", str(data), "--out", str(out)]) == 0
    ptb, wfdb_ = (pd.read_csv(tmp_path / f"{n}.csv", dtype={"record_id": str}, keep_default_na=False)
                  for n in ("ptbxl", "wfdb"))
    assert len(ptb) == len(wfdb_) == 60
    np.testing.assert_array_equal(ptb[classes].to_numpy(), wfdb_[classes].to_numpy())


def test_an_exported_package_predicts_identically_after_the_run_folder_is_moved_away(run_dir, new_records,
                                                                                      tmp_path) -> None:
    cache = Path(os.environ["ECG_CACHE_DIR"])
    before = tmp_path / "before.csv"
    assert main([str(run_dir), "--model", "ensemble_topk", "--data", str(new_records["npz"]), "--out", str(before)]) == 0
    package = tmp_path / "package"
    assert main([str(run_dir), "--model", "ensemble_topk", "--export", str(package)]) == 0
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["kind"] == "package" and list(manifest["models"]) == ["ensemble_topk"]
    assert sorted(manifest["files"]) == sorted(f"members/{m}.safetensors" for m in manifest["members"])
    assert len(manifest["members"]) == 3 and manifest["fingerprint"] == models_json(run_dir)["fingerprint"]
    away = tmp_path / "elsewhere"
    shutil.move(str(run_dir), str(away))
    try:
        after = tmp_path / "after.csv"
        proc = command(str(package), "--data", str(new_records["npz"]), "--out", str(after), cache=cache)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert after.read_bytes() == before.read_bytes()
        # The moved run folder itself still works where it is now (nothing in it names where it was).
        moved = tmp_path / "moved.csv"
        assert main([str(away), "--model", "ensemble_topk", "--data", str(new_records["npz"]),
                     "--out", str(moved)]) == 0
        assert moved.read_bytes() == before.read_bytes()
    finally:
        shutil.move(str(away), str(run_dir))


def test_onnx_graphs_match_pytorch_on_the_test_records(run_dir, tmp_path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime", reason="the export extra (pip install -e '.[export]')")
    from ecg.predict import load_model, run_split
    from ecg.predict.onnx import TOLERANCE, graph_inputs
    from ecg.data.rates import resample_dataset
    from ecg.run_folder import RunFolder

    package = tmp_path / "package"
    assert main([str(run_dir), "--model", "rank1", "--export", str(package), "--onnx"]) == 0
    manifest = json.loads((package / "manifest.json").read_text())
    (member,) = manifest["members"].values()
    assert member["onnx"] in manifest["files"] and member["onnx_max_abs_diff"] <= TOLERANCE
    # Checked again here, independently: the graph on the run's test records against the package's PyTorch.
    model = load_model(package)
    test = model.prepare(run_split(RunFolder.open(run_dir), model.manifest, "test"))
    at_rate = resample_dataset(test, model.members[0].spec.fs)
    session = onnxruntime.InferenceSession(str(package / member["onnx"]))
    feed = graph_inputs(model.members[0], at_rate)
    logits = session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})[0]
    torch_probs = model.members[0].predict(at_rate)
    assert np.abs(1 / (1 + np.exp(-logits)) - torch_probs).max() <= TOLERANCE


def test_a_retrained_winner_exports_a_package_that_reproduces_its_test_figure(run_dir, tmp_path) -> None:
    cache = Path(os.environ["ECG_CACHE_DIR"])
    best = pd.read_csv(run_dir / "best_configs.csv", dtype={"trial_id": str})
    row = int(best.index[best["model/features"] == "both"][0])  # the 100 Hz winner with features and age/sex
    out, package = tmp_path / "retrained", tmp_path / "package"
    proc = command("--config-csv", str(run_dir / "best_configs.csv"), "--row", str(row), "--out", str(out),
                   "--export", str(package), cache=cache, module="ecg.train")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The retrain's test split as an unlabelled .npz at the run's rate, predicted through the package.
    from ecg.data.source import load, split
    from ecg.run_folder import RunFolder

    folder = RunFolder.open(run_dir)
    parts = split(load(folder.data_spec()), seed=0, existing=out / "split.csv")
    test = parts.test
    np.savez(tmp_path / "test.npz", signals=test.signals, fs=test.fs, lead_names=np.array(test.lead_names),
             record_ids=np.array(test.record_ids), age=test.age, sex=test.sex)
    predictions = tmp_path / "predictions.csv"
    assert main([str(package), "--data", str(tmp_path / "test.npz"), "--out", str(predictions)]) == 0
    frame = pd.read_csv(predictions, dtype={"record_id": str}, keep_default_na=False)
    metrics = pd.read_csv(out / "test_metrics.csv")
    chosen = metrics[metrics["chosen"]].iloc[0]
    manifest = json.loads((package / "manifest.json").read_text())
    thresholds = manifest["models"]["trained"]["thresholds"][chosen["thresholds"]]
    assert manifest["models"]["trained"]["rule"] == chosen["thresholds"]
    score = evaluate(test.labels, frame[manifest["classes"]].to_numpy(), thresholds)["micro_f1"]
    assert score == pytest.approx(chosen["test_micro_f1"], abs=1e-12)


def test_bad_input_is_refused_in_one_line_with_nothing_written(run_dir, new_records, tmp_path, capsys) -> None:
    out = tmp_path / "predictions.csv"
    line = refused(capsys, run_dir, "--data", new_records["six_leads"], "--out", out)
    assert line.endswith("the records lack lead(s) V5, V6 that the model takes (it takes I II V1 V2 V3 V4 V5 V6; "
                         "the first record has I II V1 V2 V3 V4)")
    assert "six_leads.npz" in line

    # One unreadable record in a Hefei folder: refused, or skipped with --skip-bad-records.
    hefei = tmp_path / "hefei"
    shutil.copytree(new_records["hefei"], hefei)
    bad = sorted((hefei / "ecg_train").glob("*.txt"))[3]
    bad.write_text("I II V1 V2 V3 V4 V5 V6\n1 2 3\n")
    line = refused(capsys, run_dir, "--data", hefei, "--out", out)
    assert "1 of 12 records cannot be read" in line and bad.name in line and "--skip-bad-records" in line
    assert not out.exists()
    assert main([str(run_dir), "--data", str(hefei), "--out", str(out), "--skip-bad-records"]) == 0
    assert bad.stem not in set(pd.read_csv(out, dtype={"record_id": str})["record_id"]) and \
        len(pd.read_csv(out)) == 11
    out.unlink()

    # A package whose weights changed after export.
    package = tmp_path / "package"
    assert main([str(run_dir), "--model", "rank2", "--export", str(package)]) == 0
    capsys.readouterr()
    assert "--split and --onnx need the run folder" in refused(capsys, package, "--split", "test", "--out", out)
    weights = next((package / "members").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    line = refused(capsys, package, "--data", new_records["npz"], "--out", out)
    assert line.endswith(f"{weights} does not match the checksum in manifest.json (changed or damaged after export); "
                         "export the package again")
    # Exporting over it, a model or rule the run did not evaluate, --split on a package.
    assert refused(capsys, run_dir, "--export", package).endswith(f"{package} already exists; export into a new folder")
    assert "the evaluated models are: rank1, rank2, rank3, ensemble_topk, ensemble_greedy" in \
        refused(capsys, run_dir, "--model", "rank9", "--data", new_records["npz"], "--out", out)
    assert "its rules are: 0.5, global, per_class" in \
        refused(capsys, run_dir, "--thresholds", "0.3", "--data", new_records["npz"], "--out", out)
    assert not out.exists()


def test_a_run_folder_from_before_the_manifest_says_how_to_write_it(run_dir, new_records, tmp_path, capsys) -> None:
    cache = Path(os.environ["ECG_CACHE_DIR"])
    saved = (run_dir / "models.json").read_text()
    (run_dir / "models.json").unlink()
    try:
        out = tmp_path / "predictions.csv"
        line = refused(capsys, run_dir, "--data", new_records["npz"], "--out", out)
        assert line == (f"python -m ecg.predict: error: {run_dir} has no models.json (the run was made before its "
                        f"models were recorded for prediction); write it with: python -m search.winners {run_dir} "
                        "(re-evaluates the winners from their checkpoints), then try again")
        assert not out.exists()
        proc = command(str(run_dir), cache=cache, module="search.winners")
        assert proc.returncode == 0, proc.stderr[-2000:]
        # Evaluated again from the checkpoints: the manifest the search wrote, to the last digit.
        assert json.loads((run_dir / "models.json").read_text()) == json.loads(saved)
    finally:
        (run_dir / "models.json").write_text(saved)
