"""Benchmark every named study variant: parameters, forward+backward samples/s, peak memory.

    python bench/bench_models.py                  # CPU, batch 32 on 8 x 5000, writes the table into docs/models.md
    python bench/bench_models.py --device cuda    # GPU with bf16 autocast (torch.cuda.max_memory_allocated)
    python bench/bench_models.py --smoke          # batch 2, one step: a quick check that every variant runs

Exit code 1 when a variant measured in this run crashed or timed out (its row says why): a step of a check that
runs this (bench/gpu_check.sh) must fail then, not pass with a row of the table saying "failed".

Each variant runs in its own subprocess so that its peak memory is its own: on CPU the figure is the rise of
the process's maximum resident set size (getrusage) from just before the model is built to the end of the
timed steps (parameters + gradients + activations); tracemalloc would miss torch's allocations.
Figures on a shared CPU are pessimistic; compare rows from one run only.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["variant", "family", "device", "batch", "params", "samples_per_s", "step_s", "peak_mem_mb", "status"]


def run_worker(name: str, device: str, batch: int, leads: int, length: int, n_classes: int, steps: int,
               warmup: int) -> dict:
    """Time `steps` forward+backward passes of variant `name` (in this process) and return one result row."""
    import resource

    import torch

    from ecg.data.dataset import AGE_SEX_DIM
    from ecg.models import VARIANTS, create_variant

    rss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = create_variant(name, leads, n_classes, length).to(device).train()
    params = sum(parameter.numel() for parameter in model.parameters())
    requested = batch
    if device == "cpu":
        batch = fit_batch(model, torch.randn(1, leads, length), torch.rand(1, AGE_SEX_DIM), batch)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, leads, length, generator=generator).to(device)
    age_sex = torch.rand(batch, AGE_SEX_DIM, generator=generator).to(device)
    cuda = device.startswith("cuda")

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(x, age_sex)
        logits.float().square().mean().backward()

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    elapsed = (time.perf_counter() - start) / steps
    if cuda:
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:  # ru_maxrss is in KiB on Linux
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kb) / 1024
    return {"variant": name, "family": VARIANTS[name][0], "device": device, "batch": batch, "params": params,
            "samples_per_s": round(batch / elapsed, 2), "step_s": round(elapsed, 3),
            "peak_mem_mb": round(peak_mb, 1),
            "status": "ok" if batch == requested else f"ok at batch {batch}: {requested} would not fit in RAM"}


def fit_batch(model: "torch.nn.Module", x_one: "torch.Tensor", age_sex_one: "torch.Tensor", batch: int,
              share: float = 0.5) -> int:
    """The largest batch <= `batch` (halving) whose activations fit in `share` of the available RAM.

    On a shared CPU machine a batch of 32 of the widest variants (ResNeXt-101-4x64d: about 13 GB of
    activations) could push other processes out of memory; the figure is then reported at a smaller batch.
    """
    import torch

    sizes: list[int] = []

    def record(_module, _inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * output.element_size())

    leaves = [module for module in model.modules() if not list(module.children())]
    hooks = [module.register_forward_hook(record) for module in leaves]
    with torch.no_grad():
        model(x_one, age_sex_one)
    for hook in hooks:
        hook.remove()
    with open("/proc/meminfo") as handle:
        available = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("MemAvailable"))
    per_sample = sum(sizes)  # every leaf output is kept for backward (ResNet-50: 3.7 GB estimated, 3.3 GB measured)
    while batch > 1 and per_sample * batch > share * available:
        batch //= 2
    return batch


def bench_variant(name: str, args: argparse.Namespace) -> dict:
    """Run one variant in a fresh subprocess; a crash or timeout becomes a row with that status."""
    command = [sys.executable, __file__, "--worker", name, "--device", args.device, "--batch", str(args.batch),
               "--leads", str(args.leads), "--length", str(args.length), "--classes", str(args.classes),
               "--steps", str(args.steps), "--warmup", str(args.warmup)]
    # The project first, then what PYTHONPATH already holds (the GPU check's device bundle, on a lent machine).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"variant": name, "device": args.device, "batch": args.batch, "status": f"timeout>{args.timeout}s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    error = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"variant": name, "device": args.device, "batch": args.batch, "status": f"failed: {error[:80]}"}


def markdown_table(rows: list[dict], args: argparse.Namespace, total: int) -> str:
    partial = f" Partial: {len(rows)} of {total} variants so far." if len(rows) < total else ""
    header = (f"Forward+backward, batch {args.batch} (unless the row says otherwise), {args.leads} x {args.length}, {args.classes} classes, "
              f"device `{args.device}`{' (bf16 autocast)' if args.device.startswith('cuda') else ''}, "
              f"mean of {args.steps} step(s) after {args.warmup} warm-up, {time.strftime('%Y-%m-%d')}.{partial}\n\n")
    lines = ["| variant | family | parameters | samples/s | s/step | peak memory (MiB) | status |",
             "|---|---|---:|---:|---:|---:|---|"]
    for row in rows:
        params = f"{row['params']:,}" if row.get("params") else ""
        lines.append(f"| {row['variant']} | {row.get('family', '')} | {params} | {row.get('samples_per_s', '')} | "
                     f"{row.get('step_s', '')} | {row.get('peak_mem_mb', '')} | {row['status']} |")
    return header + "\n".join(lines) + "\n"


def write_docs(table: str, device: str, docs: Path) -> None:
    """Replace the table between this device's markers in docs/models.md (appending the markers if absent)."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    start, end = f"<!-- bench:{kind} start -->", f"<!-- bench:{kind} end -->"
    text = docs.read_text() if docs.exists() else ""
    block = f"{start}\n{table}{end}"
    if start in text and end in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n{block}\n"
    docs.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--smoke", action="store_true", help="batch 2, one step, no warm-up; docs left alone")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--leads", type=int, default=8)
    parser.add_argument("--length", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=34)
    parser.add_argument("--steps", type=int, default=2, help="timed steps (2-3 on CPU: ResNet-101 is slow)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--variants", default="",
                        help="comma-separated names (default: all); re-measures those rows, keeping the others")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per variant")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "models.md")
    parser.add_argument("--csv", type=Path, help="where the rows go (default bench/out/models_<device>[_smoke].csv)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(run_worker(args.worker, args.device, args.batch, args.leads, args.length, args.classes,
                                    args.steps, args.warmup)))
        return
    if args.smoke:
        args.batch, args.steps, args.warmup = 2, 1, 0
    sys.path.insert(0, str(ROOT))
    from ecg.models import VARIANTS

    names = [name for name in args.variants.split(",") if name] or list(VARIANTS)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; valid: {', '.join(VARIANTS)}")
    default_csv = f"models_{args.device.split(':')[0]}{'_smoke' if args.smoke else ''}.csv"
    out = args.csv or ROOT / "bench" / "out" / default_csv
    out.parent.mkdir(parents=True, exist_ok=True)
    # --variants re-measures some rows: the others are kept from the previous run's CSV.
    results = {row["variant"]: row for row in read_csv(out)} if args.variants and out.exists() else {}
    print(" | ".join(COLUMNS), flush=True)
    for name in names:
        results[name] = bench_variant(name, args)
        print(" | ".join(str(results[name].get(column, "")) for column in COLUMNS), flush=True)
        # Written after every variant, so an interrupted run (slow CPU) still leaves its figures.
        rows = [results[variant] for variant in VARIANTS if variant in results]
        write_csv(rows, out)
        if not args.smoke:
            write_docs(markdown_table(rows, args, total=len(VARIANTS)), args.device, args.docs)
    print(f"wrote {out}" + ("" if args.smoke else f" and updated {args.docs}"))
    failed = [name for name in names if not str(results[name]["status"]).startswith("ok")]
    if failed:
        print(f"bench_models: {len(failed)} of {len(names)} variant(s) failed: "
              + "; ".join(f"{name} ({results[name]['status']})" for name in failed), file=sys.stderr)
        sys.exit(1)


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({column: row.get(column, "") for column in COLUMNS} for row in rows)


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return [{**row, "params": int(row["params"]) if row["params"] else ""} for row in csv.DictReader(handle)]

if __name__ == "__main__":
    main()
