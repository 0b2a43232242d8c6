"""Time of one TPE suggestion on the `all` space after N finished trials, Optuna's default against this system's
grouped TPE, in an in-memory study. From the repository root:
`python bench/results/peer/alone_all_group/suggest_cost.py 300 1000 3000`."""
import sys
import time
import warnings
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))  # the repository root
from spaces import build_space  # noqa: E402
from spaces.context import SpaceContext  # noqa: E402
from search.tuner import tpe_sampler  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.simplefilter("ignore")
CPU = SpaceContext(gpu=False, length=2500, max_epochs=6, fs=250)
space = build_space("all", CPU)
for n in map(int, sys.argv[1:]):
    base = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(n):
        t = base.ask(); space(t); base.tell(t, (i * 7919 % 1000) / 1000)
    trials = base.get_trials(deepcopy=False)
    for name, make in (("default", lambda: optuna.samplers.TPESampler(seed=0)), ("group", lambda: tpe_sampler(0))):
        study = optuna.create_study(direction="maximize", sampler=make())
        study.add_trials(trials)
        start = time.perf_counter()
        for _ in range(10):
            t = study.ask(); space(t); study.tell(t, 0.5)
        print(f"{n} trials, {name}: {(time.perf_counter() - start) / 10 * 1000:.1f} ms per suggestion", flush=True)
