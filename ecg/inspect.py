"""`python -m ecg.inspect PATH [--labels FILE] [--json] [--skip-bad-records]`: what the study printed before training.

Records, the class table (index, name, count), labels per record, missing age and sex, the split sizes
and the class counts per split; and what would load wrongly: records with no label, ages outside 0-120
(the readers refuse ages beyond 125), labels-CSV rows naming no record, record lengths (WFDB, from the
headers) and the records skipped as unreadable. It reads labels only (label file, WFDB headers, labels CSV, .npz labels), never the signals,
so it runs before a download has finished.
"""
from __future__ import annotations

import json
import sys
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecg import values
from ecg.cli import Parser, refuse
from ecg.data import FS, N_SAMPLES, DataError, ECGDataset, detect_format, load_labels
from ecg.data.split import SPLITS, make_split, split_sizes, uncovered_classes


# Ages the readers accept (ecg.values.AGE_YEARS) but outside this range are reported as likely coding errors.
AGE_RANGE = values.PLAUSIBLE_AGE_YEARS
SHOWN = 5  # record ids quoted per finding


def _lengths(path: Path) -> dict | None:
    """Length distribution of WFDB records from their record lines (None for other formats)."""
    if detect_format(path).name != "wfdb":
        return None
    from ecg.data.physionet import read_wfdb_lengths

    pairs, short = read_wfdb_lengths(path)
    seconds = np.array([n / fs for fs, n in pairs if fs and n is not None], dtype=float)
    target = N_SAMPLES / FS
    rates = Counter(f"{fs:g}" for fs, _ in pairs if fs)
    return {"target_seconds": target, "known": int(len(seconds)), "unknown": len(pairs) - int(len(seconds)),
            "seconds": ({"min": float(seconds.min()), "median": float(np.median(seconds)),
                         "max": float(seconds.max())} if len(seconds) else None),
            "longer": int((seconds > target).sum()), "shorter": int((seconds < target).sum()),
            "rates": dict(sorted(rates.items(), key=lambda kv: -kv[1])),
            "short_signal_files": {"count": len(short), "first": list(short.values())[:SHOWN]}}


def _unknown_label_rows(path: Path, labels: str | None) -> list[str]:
    """Labels-CSV rows that name no record under a WFDB folder."""
    if labels is None or detect_format(path).name != "wfdb":
        return []
    from ecg.data.labels import LabelsCSV
    from ecg.data.physionet import find_headers, record_ids, unknown_label_rows

    return unknown_label_rows(LabelsCSV(Path(labels).expanduser()), record_ids(path, find_headers(path)))


def checks(path: str, labels: str | None, dataset: ECGDataset) -> dict:
    """What the readers accept but a user should see: records with no label, implausible ages, labels-CSV
    rows without a record, the WFDB length distribution, and the records skipped as unreadable."""
    folder = Path(path).expanduser()
    age = dataset.age
    odd_age = np.flatnonzero(~np.isnan(age) & ((age < AGE_RANGE[0]) | (age > AGE_RANGE[1])))
    unlabelled = np.flatnonzero(dataset.labels.sum(axis=1) == 0)
    unknown = _unknown_label_rows(folder, labels)
    return {
        "records_without_label": {"count": int(len(unlabelled)),
                                  "first": [dataset.record_ids[i] for i in unlabelled[:SHOWN]]},
        "age_out_of_range": {"count": int(len(odd_age)),
                             "first": [{"record": dataset.record_ids[i], "age": float(age[i])} for i in odd_age[:SHOWN]]},
        "unknown_label_rows": {"count": len(unknown), "first": unknown[:SHOWN]},
        "lengths": _lengths(folder),
        "skipped": [{"record": rid, "reason": reason} for rid, reason in dataset.skipped.items()],
    }


def _render_checks(report: dict) -> list[str]:
    lines = []
    found = report["records_without_label"]
    if found["count"]:
        lines.append(f"records with no label: {found['count']} (first: {', '.join(found['first'])})")
    found = report["age_out_of_range"]
    if found["count"]:
        shown = ", ".join(f"{a['record']} ({a['age']:g})" for a in found["first"])
        lines.append(f"ages outside {AGE_RANGE[0]:g}-{AGE_RANGE[1]:g}: {found['count']} (first: {shown})")
    found = report["unknown_label_rows"]
    if found["count"]:
        lines.append(f"labels-CSV rows naming no record: {found['count']} (first: {', '.join(found['first'])})")
    lengths = report["lengths"]
    if lengths and lengths["seconds"]:
        sec, target = lengths["seconds"], lengths["target_seconds"]
        rates = ", ".join(f"{fs} Hz: {count}" for fs, count in lengths["rates"].items())
        lines.append(f"lengths (from the headers): median {sec['median']:g} s, min {sec['min']:g} s, max "
                     f"{sec['max']:g} s; {lengths['longer']} longer than {target:g} s (their first {target:g} s "
                     f"are read), {lengths['shorter']} shorter (zero-padded at the end); rates: {rates}")
    short = (lengths or {}).get("short_signal_files") or {"count": 0}
    if short["count"]:
        lines.append(f"signal files shorter than their header says (will not load): {short['count']} "
                     f"(first: {'; '.join(short['first'])})")
    if report["skipped"]:
        lines.append(f"skipped as unreadable: {len(report['skipped'])}")
        lines += [f"  {item['record']}: {item['reason']}" for item in report["skipped"]]
    return lines


def _left_out(path: str, task: str | None) -> int:
    """PTB-XL: the records with no label in `task`, which every reader leaves out (0 for other data)."""
    from ecg.data import ptbxl

    folder = Path(path).expanduser()
    return ptbxl.read_table(folder, task).left_out if detect_format(folder).name == "ptbxl" else 0


def summarize(path: str, labels: str | None = None, *, seed: int = 0, skip_bad_records: bool = False,
              task: str | None = None, split: str | None = None) -> dict:
    """The inspection report as a dict with the stable keys of `--json` (plus `labels_per_record`).
    `task` picks a benchmark's classes and `split` official/stratified, as `launch.py` does (None: the data's
    convention, reported under `convention`)."""
    from ecg.data.loader import data_convention, official_split, resolve_split

    dataset, present = load_labels(path, labels=labels, skip_bad_records=skip_bad_records, task=task)
    convention = data_convention(path, task).to_dict()
    convention["split"] = resolve_split(path, split)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # uncovered classes are reported in the dict instead
        assignment = (official_split(path, dataset.record_ids) if convention["split"] == "official"
                      else make_split(dataset.labels, seed=seed))
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
        "convention": convention,
        "left_out_by_task": _left_out(path, task),
        **checks(path, labels, dataset),
    }


def render(report: dict) -> str:
    """Human-readable tables of `report`."""
    n = report["n_records"]
    convention = report["convention"]
    lines = [f"records: {n}  (signal files present: {report['signals_present']})",
             f"task: {convention['task'] or 'the labels as given'}  split: {convention['split']}  "
             f"search metric by default: {convention['metric']}"
             + (f"  (left out, no label in the task: {report['left_out_by_task']})" if report["left_out_by_task"]
                else ""), "",
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
    lines += _render_checks(report)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="python -m ecg.inspect", description=__doc__.split("\n")[0])
    parser.add_argument("path", help="Hefei folder or label file, WFDB folder, or .npz")
    parser.add_argument("--labels", help="label file (Hefei) or labels CSV (WFDB: record, labels[, age, sex])")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0, as the search uses)")
    from ecg.data.tasks import SPLITS, TASKS

    parser.add_argument("--task", choices=TASKS, help="a benchmark's classes: PTB-XL's all, diagnostic, "
                        "subdiagnostic, superdiagnostic, form, rhythm; cinc2021[+unscored] (default: the data's own)")
    parser.add_argument("--split", choices=SPLITS, help="official (PTB-XL's strat_fold) or stratified "
                        "(default: official for PTB-XL, else stratified, as launch.py)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON with stable keys")
    parser.add_argument("--skip-bad-records", action="store_true",
                        help="report records whose header cannot be read and inspect the rest "
                             "(default: one error counting them)")
    args = parser.parse_args(argv)
    try:
        report = summarize(args.path, args.labels, seed=args.seed, skip_bad_records=args.skip_bad_records,
                           task=args.task, split=args.split)
    except DataError as error:
        return refuse(parser.prog, error)
    text = json.dumps(report, ensure_ascii=False, indent=1) if args.json else render(report)
    print("\n".join(values.printable(line) for line in text.split("\n")))  # record ids as they are, made safe
    return 0


if __name__ == "__main__":
    sys.exit(main())
