"""This system with grouped TPE (grouped/, one run per seed) against every run kept of `all` at 7 minutes alone:
optuna_hyperband's and the ungrouped this system's first runs (../alone_all_more) and second runs
(../alone_all_rerun, ../topk rank 1), the three other peers' one run (seeds 0-4). Run from the repository root:
`python bench/results/peer/alone_all_group/compare.py`."""
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
R = str(HERE.parent) + "/"
sys.path.insert(0, str(HERE.parents[2]))  # bench/, for peer_stats
from peer_stats import bootstrap_mean_interval  # noqa: E402

new = pd.read_csv(HERE / "grouped" / "seeds.csv").query("method == 'this_system'").set_index("seed")["test_micro_f1"]
more = pd.read_csv(R + "alone_all_more/seeds.csv")
rerun = pd.read_csv(R + "alone_all_rerun/seeds.csv")
topk = pd.read_csv(R + "topk/topk.csv")
topk = topk[(topk["model"] == "rank1") & (topk["thresholds"].astype(str) == "0.5")].set_index("seed")["test_micro_f1"]

def runs(method):
    a = more.query("method == @method").set_index("seed")["test_micro_f1"]
    b = rerun.query("method == @method").set_index("seed")["test_micro_f1"] if method != "this_system" else topk
    return a, b

def show(name, ref):
    seeds = sorted(set(new.index) & set(ref.index))
    d = new.loc[seeds] - ref.loc[seeds]
    _, lo, hi = bootstrap_mean_interval(d.to_numpy())
    print(f"{name:45s} seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}): grouped {new.loc[seeds].mean():.4f} vs {ref.loc[seeds].mean():.4f}"
          f"  diff {d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]  wins {int((d > 1e-6).sum())} / losses {int((d < -1e-6).sum())}")

print("grouped per seed:", new.round(4).to_dict())
for method in ("optuna_hyperband", "this_system"):
    a, b = runs(method)
    label = "before (ungrouped this system)" if method == "this_system" else method
    show(label + ": first run", a)
    show(label + ": mean of its runs", pd.concat([a, b], axis=1).mean(axis=1))
for method in ("one_epoch_topk", "dehb", "random"):
    show(method + " (alone_all, one run)", more.query("method == @method").set_index("seed")["test_micro_f1"])
every = {m: pd.concat(runs(m)) for m in ("optuna_hyperband", "this_system")}
print(f"runs: grouped {len(new)} mean {new.mean():.4f} sd {new.std():.4f}; " + "; ".join(
    f"{m} {len(v)} mean {v.mean():.4f} sd {v.std():.4f}" for m, v in every.items()))
