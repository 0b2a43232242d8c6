"""A figure with one synthetic record per diagnosis on ECG paper, so a person can look at what the labels mean.

    python -m ecg.synthetic.plot --out docs/synthetic_diagnoses.png [--seed 0] [--noise 0.5] [--seconds 4]

Each panel shows the eight leads (I, II, V1-V6) of one record carrying that diagnosis, on the usual grid
(1 mm = 40 ms and 0.1 mV, a bold line every 5 mm), with the record's full label list as its title.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ecg.data.dataset import ECGDataset
from ecg.synthetic.diagnoses import SYNTHETIC_CLASSES
from ecg.synthetic.generate import generate

LEAD_SPACING_MV = 2.0
MM_PER_S, MM_PER_MV = 25.0, 10.0  # standard paper speed and gain


def pick_examples(dataset: ECGDataset) -> list[int]:
    """Index of one record per class: the one with the fewest other labels, so the diagnosis stands out."""
    n_labels = dataset.labels.sum(axis=1)
    chosen = []
    for k in range(dataset.n_classes):
        having = np.flatnonzero(dataset.labels[:, k])
        if not len(having):
            raise ValueError(f"no record carries {dataset.class_names[k]!r}; generate more records")
        chosen.append(int(having[np.argmin(n_labels[having])]))
    return chosen


def _paper(ax, seconds: float, top: float, bottom: float) -> None:
    for x in np.arange(0, seconds + 1e-9, 0.04):
        ax.axvline(x, color="#f4b6b6", lw=0.8 if round(x / 0.04) % 5 == 0 else 0.25, zorder=0)
    for y in np.arange(np.floor(bottom), top + 1e-9, 0.1):
        ax.axhline(y, color="#f4b6b6", lw=0.8 if round(y / 0.1) % 5 == 0 else 0.25, zorder=0)


def plot(dataset: ECGDataset, out: str | Path, *, seconds: float = 3.0, columns: int = 4) -> Path:
    """Write the one-record-per-diagnosis figure of `dataset` to `out` (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = pick_examples(dataset)
    rows = -(-len(chosen) // columns)
    n_leads = dataset.n_leads
    height = n_leads * LEAD_SPACING_MV
    # True paper proportions: 25 mm per second across, 10 mm per mV up.
    width_in = seconds * MM_PER_S / 25.4 * 1.08
    height_in = (height + LEAD_SPACING_MV / 2) * MM_PER_MV / 25.4 * 1.08 + 0.3
    fig, axes = plt.subplots(rows, columns, figsize=(width_in * columns, height_in * rows), squeeze=False)
    samples = int(seconds * dataset.fs)
    t = np.arange(samples) / dataset.fs
    for ax, k, record in zip(axes.flat, range(len(chosen)), chosen):
        mv = dataset.signals[record, :, :samples] / dataset.units_per_mv
        _paper(ax, seconds, LEAD_SPACING_MV, -height)
        for lead in range(n_leads):
            offset = -lead * LEAD_SPACING_MV
            ax.plot(t, mv[lead] - np.median(mv[lead]) + offset, color="black", lw=0.6)
            ax.text(0.02, offset + 0.5, dataset.lead_names[lead], fontsize=7, color="#333")
        labels = [dataset.class_names[c] for c in np.flatnonzero(dataset.labels[record])]
        others = [name for name in labels if name != SYNTHETIC_CLASSES[k]]
        ax.set_title(SYNTHETIC_CLASSES[k] + (f"\n+ {', '.join(others)}" if others else "\n"), fontsize=7)
        ax.set_xlim(0, seconds)
        ax.set_ylim(-height + LEAD_SPACING_MV / 2, LEAD_SPACING_MV)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect(MM_PER_MV / MM_PER_S)
    for ax in list(axes.flat)[len(chosen):]:
        ax.axis("off")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ecg.synthetic.plot", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.5, help="nuisance strength (default 0.5: readable)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of each record shown")
    parser.add_argument("--n", type=int, default=600, help="records generated to pick from (balanced draw)")
    args = parser.parse_args(argv)
    dataset = generate(args.n, args.seed, balanced=True, noise=args.noise)
    print(plot(dataset, args.out, seconds=args.seconds))


if __name__ == "__main__":
    main()
