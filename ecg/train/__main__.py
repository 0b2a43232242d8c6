"""Train one model without a search: `python -m ecg.train --family ecgnet --model version=v3 --lr 1e-4 ...`.

Takes the options a search config has (family, `--model key=value` for model options, one flag per
TrainConfig field), or a row of a run's best_configs.csv (`--config-csv ... --row 0`) with flags overriding
it. A --config-csv inside a run folder (next to its run.json) trains on that run's records and split.csv, with
the trial's CPU threads, unless flags say otherwise. Writes into `--out`: metrics.csv (one row per epoch),
checkpoint/ (the latest epoch, for `--resume`), best/ (the best epoch's weights with the tuned thresholds),
test_metrics.csv, per_class.csv, thresholds.csv, split.csv and config.csv (one flat row, which `--config-csv`
reads back). A config with `data/fs` (a search winner's input rate) trains on the records resampled to that
rate, as its trial did. `--export DIR` also writes the trained model as a package that `python -m ecg.predict
DIR --data ...` applies (docs/predict.md). See docs/training.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ecg.cli import Parser, add_options, refuse
from ecg.data.dataset import HEFEI_LEADS, ECGDataset
from ecg.data.rates import resample_dataset
from ecg.data.source import DataSpec, load as load_records, split as split_records
from ecg.synthetic.cache import DEFAULT_RECORDS
from ecg.data.weights import class_weights
from ecg.evaluation import evaluate_on_test
from ecg.models.registry import resolve_options
from ecg.run_folder import RUN_FILE, SPLIT, RunFolder
from ecg.train.checkpoint import load_checkpoint, save_checkpoint
from ecg.train.config import TrainConfig, TrialConfig
from ecg.train.device import DeviceSplit, bf16_enabled, resolve_device
from ecg.train.loop import EpochReport, fit
from ecg.train.optim import make_loss
from ecg.train.predict import infer_logits


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip(), value.strip()


def _data_help(f: dataclasses.Field) -> str:
    """A data option's help with its default, as the synthetic set or the first read of --data has it."""
    if str(f.type) == "bool" or "(default" in f.metadata["help"]:
        return f.metadata["help"]
    default = DEFAULT_RECORDS if f.name == "n_records" else f.default
    if default is None:
        return f.metadata["help"]
    shown = "8" if default == HEFEI_LEADS else default
    return f"{f.metadata['help']} (default {shown})"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m ecg.train", description="Train one model (no search) and evaluate it on the test split.")
    what = parser.add_argument_group("model and settings")
    what.add_argument("--family", help="model family (ecg.models.list_models()); required without --config-csv")
    what.add_argument("--model", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                      help="a model option, repeatable: --model version=v3 --model kernels=3,5,7")
    what.add_argument("--version", help="shorthand for --model version=VERSION")
    what.add_argument("--config-csv", type=Path, help="a best_configs.csv / trials.csv / config.csv to start from")
    what.add_argument("--row", type=int, default=0, help="row of --config-csv (0-based, default 0)")
    optim = parser.add_argument_group("training settings (TrainConfig; default: the config row, else the defaults)")
    for f in dataclasses.fields(TrainConfig):
        optim.add_argument(f"--{f.name.replace('_', '-')}", dest=f"optim_{f.name}", metavar=f.name.upper(),
                           help=f"default {f.default!r}")
    data = parser.add_argument_group(
        "data (default: with a --config-csv inside a run folder, that run's records and split; else the synthetic set)")
    add_options(data, DataSpec, describe=_data_help)
    data.add_argument("--split", type=Path, help="split.csv to use (default: the run's, else a new stratified split)")
    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, help="output folder (default results/train-<family>-<time>)")
    run.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"),
                     help="cpu or cuda")
    run.add_argument("--resume", type=Path, help="a checkpoint/ folder of an earlier run to continue from")
    run.add_argument("--at-least-one", action="store_true",
                     help="also report test metrics where every record gets at least its most probable label")
    run.add_argument("--export", type=Path, metavar="DIR",
                     help="also write the trained model as a package in DIR (a new folder), which python -m "
                          "ecg.predict DIR --data ... applies (docs/predict.md)")
    run.add_argument("--onnx", action="store_true",
                     help="with --export: an ONNX graph too, checked against PyTorch on the test split "
                          "(pip install -e \".[export]\")")
    return parser


def trial_from_args(args: argparse.Namespace) -> TrialConfig:
    """The config row (if any) overridden by the flags given, typed by the family's option defaults."""
    flat = TrialConfig.from_csv(args.config_csv, args.row).to_flat() if args.config_csv else {}
    if args.family and args.family != flat.get("family"):
        flat = {k: v for k, v in flat.items() if not k.startswith("model/")}  # another family's options
        flat["family"] = args.family
    if not flat.get("family"):
        raise ValueError("give --family (or --config-csv with a family column)")
    if args.version:
        flat["model/version"] = args.version
    flat.update({f"model/{key}": value for key, value in args.model})
    flat.update({f"optim/{f.name}": getattr(args, f"optim_{f.name}") for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f"optim_{f.name}") is not None})
    return TrialConfig.from_flat(flat)


@dataclass
class DataChoice:
    """The records and split a training run uses, and the run folder they came from (if any)."""

    spec: DataSpec
    split: Path | None
    split_seed: int
    run_dir: Path | None = None
    threads: int | None = None  # the trial's CPU threads, so that a retrained winner computes as it did


def run_folder_of(config_csv: Path | None) -> RunFolder | None:
    """The run folder a config CSV sits in (best_configs.csv / trials.csv next to run.json), else None."""
    if config_csv is None or not (config_csv.parent / RUN_FILE).is_file():
        return None
    return RunFolder.open(config_csv.parent)


def _run_choice(folder: RunFolder) -> DataChoice:
    """The records and split of the run in `folder`, as its run.json and split.csv record them (ValueError, one
    line, for a run.json that cannot be read)."""
    record = folder.record  # RunFolderError (a ValueError) for a cut or foreign run.json
    spec = folder.data_spec()
    split = folder.file(SPLIT)
    threads = max(1, int(record.args.get("cpus_per_trial") or 1))
    return DataChoice(spec, split if split.is_file() else None, int(record.seed or 0), folder.path, threads)


def choose_data(args: argparse.Namespace) -> DataChoice:
    """The run folder's records and split when --config-csv sits in one, else the defaults; flags override.

    Naming other records (--data, --labels, --task, --n-records, --fs, --length, --leads, --split-seed) drops the
    run's split.csv, which lists that run's records, unless --split names one.
    """
    folder = run_folder_of(args.config_csv)
    choice = _run_choice(folder) if folder else DataChoice(DataSpec(n_records=DEFAULT_RECORDS), None, 0)
    overrides: dict[str, Any] = {name: getattr(args, name)
                                 for name in ("data", "labels", "task", "n_records", "fs", "length", "leads", "seed")
                                 if getattr(args, name) is not None}
    if args.seed is not None:
        choice.split_seed = args.seed
    if overrides:
        choice.spec = dataclasses.replace(choice.spec, **overrides)
        choice.split = None
    if args.split is not None:
        choice.split = args.split
    if args.skip_bad_records:  # the same records otherwise, so the run's split still applies
        choice.spec = dataclasses.replace(choice.spec, skip_bad_records=True)
    return choice


def logits_and_loss(model: torch.nn.Module, dataset: ECGDataset, criterion: torch.nn.Module,
                    device: torch.device, bf16: bool) -> tuple[np.ndarray, float]:
    split = DeviceSplit.from_dataset(dataset, device)
    logits = infer_logits(model, split, batch_size=256, bf16=bf16)
    return torch.sigmoid(logits).cpu().numpy(), float(criterion(logits, split.labels))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as err:  # bad input or a diverged run: one line
        parser.exit(refuse(parser.prog, err))  # one line, always
    return 0


def run(args: argparse.Namespace) -> Path:
    """Train, evaluate and write everything into the output folder; returns it."""
    if args.onnx and args.export is None:
        raise ValueError("--onnx goes with --export DIR")
    if args.export is not None:
        from ecg.predict.package import check_target

        check_target(args.export)  # refused before any training
    trial = trial_from_args(args)
    resolve_options(trial.family, trial.model)  # an unknown or ill-typed model option: refused before the data load
    choice = choose_data(args)
    if args.optim_threads is None and choice.threads is not None:
        trial.optim = dataclasses.replace(trial.optim, threads=choice.threads)
    config = trial.optim
    device = resolve_device(args.device)

    if args.fs is not None:
        trial.fs = args.fs  # records read at --fs: the model is for that rate
    dataset = load_records(choice.spec)
    splits = split_records(dataset, seed=choice.split_seed, existing=choice.split, spec=choice.spec)  # PTB-XL: official
    if trial.model.get("features", "none") != "none":
        from ecg.features import attach_features

        # From the records at their own rate, standardised on this split's training records, as in the search.
        attach_features(splits, dataset)
    train, val, test = splits.train, splits.val, splits.test
    if trial.fs is not None and trial.fs != dataset.fs:
        # A search winner trained on its run's splits resampled to its data/fs: the same filter, the same records.
        train, val, test = (resample_dataset(part, trial.fs) for part in (train, val, test))
    # Seeded before building, as a search trial is, so the same config starts from the same weights; built
    # before the output folder exists, so that bad model options leave nothing behind.
    torch.manual_seed(config.seed)
    model = trial.build_model(n_leads=train.n_leads, n_classes=train.n_classes, length=train.n_samples)
    out = args.out or Path("results") / f"train-{trial.family}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([trial.to_flat()]).to_csv(out / "config.csv", index=False)
    splits.save(out / "split.csv")
    if dataset.skipped:
        pd.DataFrame({"record": list(dataset.skipped), "reason": list(dataset.skipped.values())}).to_csv(
            out / "skipped_records.csv", index=False)
        print(f"skipped {len(dataset.skipped)} unreadable record(s), listed in {out / 'skipped_records.csv'}",
              file=sys.stderr)
    origin = f"run {choice.run_dir}: " if choice.run_dir else ""
    sizes = splits.sizes()
    print(f"{origin}records {choice.spec.describe()}, split {choice.split or f'new (seed {choice.split_seed})'}: "
          f"{sizes['train']} train / {sizes['val']} val / {sizes['test']} test, {dataset.n_classes} classes",
          file=sys.stderr)
    print(f"{trial.family} {trial.model}, {config}", file=sys.stderr)

    resume = load_checkpoint(args.resume) if args.resume else None
    start = int(resume["meta"]["epoch"]) if resume else 0
    history: list[dict[str, Any]] = list(resume["meta"]["history"]) if resume else []
    bar = tqdm(total=config.epochs, initial=start, desc=trial.family, unit="epoch")

    def on_epoch(report: EpochReport) -> None:
        history.append({"epoch": report.epoch, **report.metrics})
        pd.DataFrame(history).to_csv(out / "metrics.csv", index=False)
        save_checkpoint(report.state(), out / "checkpoint")
        bar.update(1)
        bar.set_postfix(loss=f"{report.metrics['train_loss']:.4f}", val_f1=f"{report.metrics['val_micro_f1']:.4f}",
                        best="*" if report.is_best else "")

    result = fit(model, train, val, config, on_epoch=on_epoch, device=device, resume=resume)
    bar.close()

    # The model now holds the best epoch's weights. Thresholds are tuned on validation only, never on test.
    bf16 = bf16_enabled(device, config.bf16)
    weights = torch.as_tensor(class_weights(train.labels, config.class_weights), device=device)
    criterion = make_loss(config.class_weights, weights)
    val_probs, _ = logits_and_loss(model, val, criterion, device, bf16)
    test_probs, test_loss = logits_and_loss(model, test, criterion, device, bf16)
    scored = evaluate_on_test(val, val_probs, test, test_probs, metric=config.metric, seed=config.seed,
                              at_least_one=args.at_least_one, test_loss=test_loss)
    thresholds = scored.chosen_thresholds
    pd.DataFrame(scored.rows).to_csv(out / "test_metrics.csv", index=False)
    scored.per_class.to_csv(out / "per_class.csv", index=False)
    pd.DataFrame({"class": val.class_names, "threshold": thresholds, "rule": scored.chosen}).to_csv(
        out / "thresholds.csv", index=False)
    save_checkpoint({"model": result.best_state, "meta": {
        "family": trial.family, "model": trial.model, "config": config.to_dict(), "best_epoch": result.best_epoch,
        "best_metrics": result.best_metrics, "thresholds": thresholds, "class_names": list(dataset.class_names),
        "lead_names": list(dataset.lead_names), "fs": train.fs, "length": train.n_samples}}, out / "best")

    if args.export is not None:
        export_trained(model, trial, scored, dataset, splits, train, choice, args.export, onnx=args.onnx)
        print(f"package written to {args.export} (python -m ecg.predict {args.export} --data ... applies it)")
    print(f"best epoch {result.best_epoch}: {config.metric} {result.best_metrics[config.metric]:.4f}", file=sys.stderr)
    columns = ["thresholds", "chosen", "test_micro_f1", "test_macro_f1", "test_macro_auc", "test_loss"]
    print(pd.DataFrame(scored.rows)[columns].set_index("thresholds").round(4).to_string())
    print(f"written to {out}")
    return out


def export_trained(model: torch.nn.Module, trial: TrialConfig, scored: Any, dataset: ECGDataset, splits: Any,
                   train: ECGDataset, choice: DataChoice, out: Path, *, onnx: bool = False) -> None:
    """The trained model (holding its best epoch's weights) as a package (`ecg.predict.package`): one member,
    its thresholds under every rule with the one chosen on validation, the records' leads, rate and length
    and the features' training statistics. With `onnx`, its graph is checked on the test split."""
    from ecg.predict import ChosenModel, Manifest, Member, MemberSpec, ModelSpec, export_package
    from ecg.predict.manifest import code_version

    member = MemberSpec(id=trial.family, config=trial.to_flat(), fs=int(train.fs), length=int(train.n_samples),
                        weights="")
    spec = ModelSpec(name="trained", members=[(member.id, 1.0)], rule=scored.chosen,
                     thresholds={rule: [float(t) for t in values] for rule, values in scored.thresholds.items()})
    scaling = getattr(splits, "feature_scaling", None)
    manifest = Manifest(classes=list(dataset.class_names), leads=list(dataset.lead_names), fs=int(dataset.fs),
                        length=int(dataset.n_samples), members={member.id: member}, models={spec.name: spec},
                        chosen=spec.name, metric=trial.optim.metric,
                        feature_scaling=scaling.to_dict() if scaling is not None else None,
                        fingerprint=splits.fingerprint, source=choice.spec.describe(), code=code_version())
    chosen = ChosenModel(manifest, spec, spec.rule, [Member(member, model.eval(), dataset.n_leads)])
    export_package(chosen, out, onnx_records=splits.test if onnx else None, onnx=onnx)


if __name__ == "__main__":
    sys.exit(main())
