"""What measuring a trial's costs costs (ecg.train.costs.model_costs, paid once per trial before it trains):
the old way (batch-64 latency timed 3 times after a warm-up pass) against the current one (timed once, the
batch-1 passes having warmed the model up), side by side in one process, one CPU thread.

    python bench/bench_costs.py      # prints a Markdown table (kept in bench/results/costs/README.md)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import time, torch
torch.set_num_threads(1)
from ecg.models import create_model
from ecg.train.costs import model_costs, macs_per_record, latency_ms
cpu = torch.device("cpu")
print("| model (2,500 samples, 8 leads) | before: b64 timed 3x after a warm-up (s) | after: model_costs, b64 timed once (s) |")
print("|---|---|---|")
for fam, opts in [("ecgnet", {"width": 16}), ("ecgnet", {}), ("gru", {"segmentation": "25x100"}), ("resnet", {"depth": 14, "width": 16})]:
    m = create_model(fam, n_leads=8, n_classes=34, length=2500, **opts)
    model_costs(m, n_leads=8, length=2500, device=cpu)  # once untimed: the first call pays one-time set-up
    t = time.perf_counter()
    macs_per_record(m, n_leads=8, length=2500, device=cpu)
    for b in (1, 64):
        latency_ms(m, n_leads=8, length=2500, batch=b, device=cpu)
    before = time.perf_counter() - t
    t = time.perf_counter(); model_costs(m, n_leads=8, length=2500, device=cpu); after = time.perf_counter() - t
    print(f"| {fam} {opts or 'defaults'} | {before:.2f} | {after:.2f} |")
