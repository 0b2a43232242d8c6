"""Write a synthetic set in the Hefei layout (record files + label file + class list).

    python -m ecg.synthetic --out DIR [--n 2000] [--seed 0] [--leads 12] [--balanced] [--noise 1.0]
                            [--fs 500] [--length 5000]

The folder then reads like the competition data: `python -m ecg.inspect DIR`, `load_dataset(DIR)`.
"""
from __future__ import annotations

import argparse
import sys
import time

from ecg.data.dataset import ALL_12_LEADS, FS, HEFEI_LEADS, N_SAMPLES
from ecg.data.hefei import write_hefei
from ecg.synthetic.cache import DEFAULT_RECORDS
from ecg.synthetic.generate import generate

LEAD_SETS = {"8": HEFEI_LEADS, "12": ALL_12_LEADS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecg.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write (created if missing)")
    parser.add_argument("--n", type=int, default=DEFAULT_RECORDS, help=f"records (default {DEFAULT_RECORDS}; "
                        "20000 for GPU runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--leads", choices=sorted(LEAD_SETS), default="8", help="8 (I, II, V1-V6) or 12")
    parser.add_argument("--balanced", action="store_true", help="every class about equally often")
    parser.add_argument("--noise", type=float, default=1.0, help="nuisance strength: 0 clean, 1 typical")
    parser.add_argument("--fs", type=int, default=FS, help="sampling rate, Hz")
    parser.add_argument("--length", type=int, default=N_SAMPLES, help="samples per record")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        dataset = generate(args.n, args.seed, leads=LEAD_SETS[args.leads], balanced=args.balanced,
                           noise=args.noise, fs=args.fs, length=args.length)
    except ValueError as error:
        parser.error(str(error))
    out = write_hefei(dataset, args.out)
    print(f"wrote {len(dataset)} records ({dataset.n_leads} leads, {dataset.n_classes} classes) to {out} "
          f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
