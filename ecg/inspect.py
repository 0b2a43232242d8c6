"""`python -m ecg.inspect PATH [--labels FILE] [--json]`: what the study printed before training.

Records, the class table (index, name, count), labels per record, missing age and sex, the split sizes
and the class counts per split. It reads labels only (label file, WFDB headers, labels CSV, .npz labels),
never the signals, so it runs before a download has finished.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ecg.data import DataError, load_labels
from ecg.data.split import SPLITS, make_split, split_sizes, uncovered_classes


def summarize(path: str, labels: str | None = None, *, seed: int = 0) -> dict:
    """The inspection report as a dict with the stable keys of `--json` (plus `labels_per_record`)."""
    dataset, present = load_labels(path, labels=labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # uncovered classes are reported in the dict instead
        assignment = make_split(dataset.labels, seed=seed)
    counts = dataset.labels.sum(axis=0)
    per_record = Counter(int(k) for k in dataset.labels.sum(axis=1))
    return {
        "n_records": len(dataset),
        "classes": [{"index": i, "name": name, "count": int(c)}
                    for i, (name, c) in enumerate(zip(dataset.class_names, counts))],
        "labels_per_record": {str(k): per_record[k] for k in sorted(per_record)},
        "missing_age": int(np.isnan(dataset.age).sum()),
        "missing_sex": int(np.isnan(dataset.sex).sum()),
        "split": split_sizes(assignment),
        "split_class_counts": {s: dataset.labels[assignment == s].sum(axis=0).astype(int).tolist() for s in SPLITS},
        "uncovered_classes": uncovered_classes(dataset.labels, assignment),
        "empty_classes": [int(i) for i in np.flatnonzero(counts == 0)],
        "signals_present": int(present),
    }


def render(report: dict) -> str:
    """Human-readable tables of `report`."""
    n = report["n_records"]
    lines = [f"records: {n}  (signal files present: {report['signals_present']})", "",
             f"{'index':>5}  {'count':>6}  {'train':>6}  {'val':>5}  {'test':>5}  name"]
    per_split = report["split_class_counts"]
    for cls in report["classes"]:
        i = cls["index"]
        lines.append(f"{i:>5}  {cls['count']:>6}  {per_split['train'][i]:>6}  {per_split['val'][i]:>5}  "
                     f"{per_split['test'][i]:>5}  {cls['name']}")
    lines += ["", "labels per record: " + ", ".join(f"{k}: {v}" for k, v in report["labels_per_record"].items()),
              f"missing age: {report['missing_age']}  missing sex: {report['missing_sex']}",
              "split: " + ", ".join(f"{k} {v} ({v / max(n, 1):.1%})" for k, v in report["split"].items())]
    names = {c["index"]: c["name"] for c in report["classes"]}
    if report["empty_classes"]:
        lines.append("classes with no record (kept): " + ", ".join(names[i] for i in report["empty_classes"]))
    if report["uncovered_classes"]:
        lines.append("classes too rare to reach both train and test: "
                     + ", ".join(names[i] for i in report["uncovered_classes"]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecg.inspect", description=__doc__.split("\n")[0])
    parser.add_argument("path", help="Hefei folder or label file, WFDB folder, or .npz")
    parser.add_argument("--labels", help="label file (Hefei) or labels CSV (WFDB: record, labels[, age, sex])")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0, as the search uses)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON with stable keys")
    args = parser.parse_args(argv)
    try:
        report = summarize(args.path, args.labels, seed=args.seed)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
