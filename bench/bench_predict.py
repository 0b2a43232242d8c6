#!/usr/bin/env python
"""Records per second of `python -m ecg.predict` on the CPU: a single model and an ensemble, from new records
in an .npz at 500 Hz x 5,000 samples to predictions.csv.

    python bench/bench_predict.py            # 1,000 records; ECGNet (the family's defaults) and a 3-member ensemble
    python bench/bench_predict.py --smoke    # CI: 24 records, small networks

The models are packages (`ecg.predict.package`) built here with random weights (speed does not depend on the
weights): the records' rate is 500 Hz (a `--data` search's default), so each member's input is resampled to
its own rate. Rows:
- `single`: ECGNet at 250 Hz, no hand-made features;
- `single+features`: the same network joining the features (computed from every record at 500 Hz, standardised);
- `ensemble`: ECGNet at 250 Hz with the features, ECGNet at 100 Hz, and a GRU at 100 Hz, weights 0.5/0.3/0.2.
Each row is timed end to end through the command (`ecg.predict.__main__.main`, in this process, a fresh
dataset cache each time, so the records are parsed again), and split into its phases by the same library calls:
reading (.npz parse, resampled to 500 Hz x 5,000 when needed), the features, resampling to each member's rate,
and the networks' forward passes. Writes predict.csv and README.md into --out.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecg.data import HEFEI_LEADS  # noqa: E402
from ecg.predict import ChosenModel, Manifest, Member, MemberSpec, ModelSpec, export_package, load_model  # noqa: E402
from ecg.predict.__main__ import main as predict_main  # noqa: E402
from ecg.predict.records import read_records  # noqa: E402
from ecg.synthetic import generate  # noqa: E402
from ecg.synthetic.diagnoses import SYNTHETIC_CLASSES  # noqa: E402

FS, LENGTH = 500, 5000
SMALL = {"ecgnet": {"width": 4, "width_1d": 16, "blocks_2d": 1, "blocks_1d": 2, "downsamples_1d": 2},
         "gru": {"hidden": 16, "fc_hidden": 16}}


def member(member_id: str, family: str, fs: int, smoke: bool, **options: object) -> MemberSpec:
    config = {"family": family, "data/fs": fs, **{f"model/{k}": v for k, v in
                                                   {**(SMALL[family] if smoke else {}), **options}.items()}}
    return MemberSpec(id=member_id, config=config, fs=fs, length=LENGTH * fs // FS, weights="")


def package(folder: Path, name: str, specs: list[MemberSpec], weights: list[float],
            scaling: dict | None) -> Path:
    """A package of `specs` with random weights and 0.5 thresholds, written to folder/name."""
    classes = [str(c) for c in SYNTHETIC_CLASSES]
    model = ModelSpec(name=name, members=[(s.id, w) for s, w in zip(specs, weights)], rule="0.5",
                      thresholds={"0.5": [0.5] * len(classes)})
    manifest = Manifest(classes=classes, leads=list(HEFEI_LEADS), fs=FS, length=LENGTH,
                        members={s.id: s for s in specs}, models={name: model}, chosen=name, feature_scaling=scaling)
    torch.manual_seed(0)
    members = [Member(s, s.trial.build_model(n_leads=len(HEFEI_LEADS), n_classes=len(classes), length=s.length).eval(),
                      len(HEFEI_LEADS)) for s in specs]
    export_package(ChosenModel(manifest, model, "0.5", members), folder / name)
    return folder / name


def scaling_for() -> dict:
    """Feature statistics of the records themselves (a stand-in for a run's training split)."""
    from ecg.features.cache import compute
    from ecg.features.standardise import FeatureScaling

    probe = generate(64, seed=1, fs=FS, length=LENGTH)
    raw = compute(probe)
    return FeatureScaling.fit(raw.stats, raw.clinical, np.ones(len(probe), dtype=bool)).to_dict()


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


def measure(package_dir: Path, records: Path, scratch: Path) -> dict[str, float]:
    """The command end to end, then its phases, each with a fresh dataset cache."""
    os.environ["ECG_CACHE_DIR"] = tempfile.mkdtemp(dir=scratch)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # its own lines
        total, _ = timed(lambda: predict_main([str(package_dir), "--data", str(records), "--out",
                                               str(scratch / "p.csv")]))
    os.environ["ECG_CACHE_DIR"] = tempfile.mkdtemp(dir=scratch)
    model = load_model(package_dir)
    read_s, data = timed(lambda: read_records(records, model.manifest))
    features_s, prepared = timed(lambda: model.prepare(data))
    resample_s, inputs = timed(lambda: [model.at_rate(prepared, m) for m in model.members])
    network_s, _ = timed(lambda: [m.predict(x) for m, x in zip(model.members, inputs)])
    return {"records": len(data), "command_s": total, "read_s": read_s, "features_s": features_s,
            "resample_s": resample_s, "networks_s": network_s, "records_per_s": len(data) / total,
            "networks_records_per_s": len(data) / network_s}


def _load() -> str:
    """The 1, 5 and 15-minute load averages (the machine is shared: figures are read beside them)."""
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CI: 24 records, small networks")
    parser.add_argument("--records", type=int, help="records to predict (default 1,000; --smoke 24)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "predict")
    args = parser.parse_args()
    n = args.records or (24 if args.smoke else 1000)
    load_start = _load()
    scratch = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    data = generate(n, seed=3, fs=FS, length=LENGTH)
    records = scratch / "new.npz"
    np.savez(records, signals=data.signals, fs=FS, lead_names=np.array(data.lead_names), age=data.age, sex=data.sex)
    scaling = scaling_for()
    smoke = args.smoke
    models = {
        "single": ([member("ecgnet250", "ecgnet", 250, smoke)], [1.0]),
        "single+features": ([member("ecgnet250f", "ecgnet", 250, smoke, features="both", use_age_sex=True)], [1.0]),
        "ensemble": ([member("ecgnet250f", "ecgnet", 250, smoke, features="both", use_age_sex=True),
                      member("ecgnet100", "ecgnet", 100, smoke), member("gru100", "gru", 100, smoke)],
                     [0.5, 0.3, 0.2]),
    }
    rows = []
    for name, (specs, weights) in models.items():
        folder = package(scratch, name, specs, weights, scaling)
        figures = measure(folder, records, scratch)
        rows.append({"model": name, "members": " + ".join(f"{s.config['family']}@{s.fs}Hz" for s in specs),
                     "params": sum(int(m.params) for m in load_model(folder).members), **figures})
        print(f"{name:16s} {rows[-1]['members']:40s} {figures['records_per_s']:8.1f} records/s "
              f"(read {figures['read_s']:.2f} s, features {figures['features_s']:.2f} s, resampling "
              f"{figures['resample_s']:.2f} s, networks {figures['networks_s']:.2f} s for {figures['records']} "
              "records)", flush=True)
    frame = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "predict.csv", index=False)
    command = "python bench/bench_predict.py" + (" --smoke" if smoke else "") + \
        (f" --records {args.records}" if args.records else "")
    (args.out / "README.md").write_text(
        f"# Prediction speed on the CPU (`python -m ecg.predict`)\n\nCommand: `{command}`; torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; load average {load_start} at the start, "
        f"{_load()} at the end.\n\n"
        f"{n} synthetic records in an .npz at {FS} Hz x {LENGTH} samples, predicted through the command "
        "(parse, resample, features, networks, predictions.csv). See the script's docstring for the models.\n\n"
        f"```\n{frame.to_string(index=False, float_format=lambda v: f'{v:.2f}')}\n```\n\n"
        "`networks_s` is the forward passes alone (resampling to each member's rate is `resample_s`); "
        "`records_per_s` is the whole command. The features (their delineation at 500 Hz) cost about as much as "
        "an ECGNet's forward pass; a model without them skips them.\n")
    print(f"written {args.out / 'predict.csv'} and README.md")


if __name__ == "__main__":
    main()
