"""Apply a search's chosen model to records, or export it: `python -m ecg.predict RUN_OR_PACKAGE --data DIR`.

    python -m ecg.predict results/<run> --data ~/new_ecgs --out predictions.csv   # the run's chosen model
    python -m ecg.predict results/<run> --split test          # its own test split: prints the test micro-F1
    python -m ecg.predict results/<run> --model rank2 --thresholds 0.5 --data records.npz
    python -m ecg.predict results/<run> --export model/ [--onnx]    # a self-contained package
    python -m ecg.predict model/ --data ~/new_ecgs             # the package, exactly as the run folder

predictions.csv has `record_id`, one probability column per class (named by the class), `labels` (the
predicted classes joined by ';') and, with --split, `true_labels`. Bad input is refused in one line, exit 2,
with nothing written. See docs/predict.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ecg.predict.model import ChosenModel, PredictError

SPLITS = ("test", "val", "train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ecg.predict",
        description="Apply a run's chosen model (or another it evaluated) to ECG records, or export it as a package.")
    parser.add_argument("model_dir", type=Path, metavar="RUN_OR_PACKAGE",
                        help="a run folder (results/<run>) or a package written by --export")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--data", type=Path, help="records to diagnose: a Hefei folder, a WFDB folder, a PTB-XL folder "
                                                "or an .npz (labels not needed)")
    what.add_argument("--split", choices=SPLITS, help="the run's own records of this split, with their true labels "
                                                      "(test: prints the micro-F1 reached, as test_results.csv)")
    parser.add_argument("--out", type=Path, default=Path("predictions.csv"),
                        help="the predictions CSV (default: predictions.csv)")
    parser.add_argument("--model", help="another evaluated model of the run: rank1, rank2, ..., ensemble_topk, "
                                        "ensemble_greedy (default: the run's chosen model)")
    parser.add_argument("--thresholds", help="threshold rule: 0.5, global or per_class (default: the rule chosen "
                                             "for the model on validation)")
    parser.add_argument("--skip-bad-records", action="store_true",
                        help="predict the readable records when some cannot be read; the others are listed on "
                             "stderr (default: refuse, one line counting them)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--export", type=Path, metavar="DIR",
                        help="write the model as a self-contained package in DIR (a new folder)")
    parser.add_argument("--onnx", action="store_true",
                        help="with --export: also an ONNX graph per member, checked against PyTorch on the run's "
                             "test records (needs pip install -e \".[export]\")")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run(args)
    except (PredictError, ValueError, OSError) as err:  # bad input: one line, exit 2, nothing written
        parser.exit(2, f"{parser.prog}: error: {' '.join(str(err).split())}\n")
    return 0


def run(args: argparse.Namespace) -> pd.DataFrame | None:
    """What the command does (see the module docstring); returns the predictions written, if any."""
    from ecg.predict.load import is_package, load_model, read_any_manifest
    from ecg.predict.package import check_target, export_package
    from ecg.predict.records import read_records, run_split
    from ecg.run_folder import RunFolder
    from ecg.train.device import resolve_device

    if args.data is None and args.split is None and args.export is None:
        raise PredictError("give --data DIR_OR_FILE (records to diagnose), --split test|val|train or --export DIR")
    if args.onnx and args.export is None:
        raise PredictError("--onnx goes with --export DIR")
    if args.export is not None:
        check_target(args.export)
    if args.data is not None or args.split is not None:
        _check_out(args.out)
    device = resolve_device(args.device)
    manifest = read_any_manifest(args.model_dir)
    model = load_model(args.model_dir, model=args.model, rule=args.thresholds, manifest=manifest)
    run_folder = None if is_package(args.model_dir) else RunFolder.open(args.model_dir)
    if (args.split is not None or args.onnx) and run_folder is None:
        raise PredictError(f"{args.model_dir} is a package: --split and --onnx need the run folder (its records)")
    # Every refusal before anything is written: the records are read before the package is.
    records = None
    if args.split is not None:
        records = run_split(run_folder, manifest, args.split)
    elif args.data is not None:
        records = read_records(args.data, manifest, skip_bad_records=args.skip_bad_records)
    if args.export is not None:
        test = run_split(run_folder, manifest, "test") if args.onnx else None
        export_package(model, args.export, onnx_records=test, onnx=args.onnx)
    print(f"{args.model_dir}: {model.describe()}", file=sys.stderr)
    if args.export is not None:
        print(f"package written to {args.export} (python -m ecg.predict {args.export} --data ... applies it)")
    if records is None:
        return None
    if records.skipped:
        first = "; ".join(list(records.skipped.values())[:3])
        print(f"skipped {len(records.skipped)} unreadable record(s) (first: {first})", file=sys.stderr)
    started = time.perf_counter()
    probs = model.probabilities(records, device=device)
    seconds = time.perf_counter() - started
    frame = predictions_frame(model, records, probs, with_truth=args.split is not None)
    from ecg.run_folder import write_csv

    write_csv(frame, args.out)
    print(f"{len(records)} records in {seconds:.1f} s ({len(records) / max(seconds, 1e-9):.0f} records/s on "
          f"{device}): predictions written to {args.out}")
    if args.split is not None:
        _print_score(model, records, probs, args.split, run_folder)
    return frame


def predictions_frame(model: ChosenModel, records, probs: np.ndarray, *, with_truth: bool) -> pd.DataFrame:
    """`record_id`, one probability column per class, `labels` (and `true_labels`) as predictions.csv holds."""
    classes = model.classes
    decided = model.decide(probs)
    frame = pd.DataFrame({"record_id": list(records.record_ids)})
    for index, name in enumerate(classes):
        frame[name] = probs[:, index].astype(np.float64)
    frame["labels"] = [";".join(classes[c] for c in np.flatnonzero(row)) for row in decided]
    if with_truth:
        frame["true_labels"] = [";".join(classes[c] for c in np.flatnonzero(row)) for row in records.labels]
    return frame


def _print_score(model: ChosenModel, records, probs: np.ndarray, split: str, run_folder) -> None:
    """The micro-F1 reached on the split; on test, beside the figure test_results.csv holds for this model."""
    from ecg.metrics import evaluate
    from ecg.run_folder import TEST_RESULTS

    score = evaluate(records.labels, probs, model.thresholds)["micro_f1"]
    line = f"{split} micro-F1 {score:.6f} ({model.name}, thresholds {model.rule})"
    if split == "test":
        results = run_folder.read_csv(TEST_RESULTS)
        if len(results):
            row = results[(results["model"] == model.name) & (results["thresholds"].astype(str) == model.rule)]
            if len(row):
                line += f"; test_results.csv: {float(row['test_micro_f1'].iloc[0]):.6f}"
    print(line)


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise PredictError(f"--out {out} is a folder; give a file name (predictions.csv)")
    if not out.parent.exists() and str(out.parent) not in ("", "."):
        raise PredictError(f"--out {out}: no such folder {out.parent}")


if __name__ == "__main__":
    sys.exit(main())
