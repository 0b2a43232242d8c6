#!/usr/bin/env bash
# The GPU check of issue 15, ready for the first machine with a GPU: about 6 minutes on one GPU (each step
# has a time limit; all of them together stay under 8 minutes), figures into bench/results/gpu/.
#
#   bash bench/gpu_check.sh                 # on a GPU machine, the project installed (pip install -e .)
#   bash bench/gpu_check.sh --dry-run       # the same steps on the CPU at toy sizes (CI runs this)
#   bash bench/gpu_check.sh --out DIR       # somewhere else than bench/results/gpu (bench/out/gpu-dry-run dry)
#
# It installs nothing and needs no network: it runs the installed project with `python` (or $PYTHON).
# Steps (each one's output in <out>/<step>.txt, its status and seconds in <out>/steps.csv):
#   1. cuda_tests   the test cases that run on CUDA when it is there (augmentation, the loop, winners' device)
#   2. bench_train  bench/bench_train.py --device cuda: fit against a bare loop, fp32 and bf16
#   3. bench_models bench/bench_models.py --device cuda for ResNet-50, SE-ResNet-50, ECGNet v3, GRU v3 (bf16):
#                   params, samples/s, peak memory (models.csv, models.md)
#   4. epochs       one real `ecg.train.fit` epoch over 14,000 records (8 x 5,000, int16, on the GPU) for the same
#                   four, bf16: epoch seconds (epochs.csv); target ResNet-50 <= 3 s on an H100-class GPU
#   5. search       launch.py, 4 trials at --gpus-per-trial 0.25 (all four on one GPU at once), with
#                   nvidia-smi sampled every second (utilisation.csv); target mean >= 85% while trials train
# summary.md collects the figures. A failed step is recorded and the next one runs; the exit code is 1 if any
# step failed. --dry-run samples the CPU's busy share from /proc/stat instead of nvidia-smi.
set -uo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
DRY=0
OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
PY="${PYTHON:-python}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
VARIANTS="resnet50,seresnet50,ecgnet_v3,gru_v3_50x100"

if [[ $DRY == 1 ]]; then
  OUT="${OUT:-$ROOT/bench/out/gpu-dry-run}"
  DEVICE=cpu
  TRAIN_ARGS=(--smoke --device cpu)
  # The records' real length (5,000 samples: the GRU v3 variants' segmentations are factorisations of it),
  # two of them (and two for validation): the study-size models train slowly on a shared CPU, and the dry run
  # checks that the step runs, as bench_models --smoke (batch 2, one step) does.
  MODELS_ARGS=(--smoke --device cpu)
  EPOCH_RECORDS=2 EPOCH_LENGTH=5000
  SLOWER=4  # the CPU (shared, in CI) is far slower than a GPU: the same steps get longer limits
  SEARCH_ARGS=(--gpus-per-trial 0 --n-records 120 --fs 100 --max-epochs 1 --grace-period 1)
else
  OUT="${OUT:-$ROOT/bench/results/gpu}"
  DEVICE=cuda
  if ! command -v nvidia-smi > /dev/null || ! "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "gpu_check.sh: no CUDA GPU here (nvidia-smi missing or torch.cuda.is_available() is False);" \
         "install the CUDA build of torch (README, GPU machines) or use --dry-run" >&2
    exit 2
  fi
  TRAIN_ARGS=(--device cuda)
  MODELS_ARGS=(--device cuda --batch 64 --steps 5 --warmup 2)
  EPOCH_RECORDS=14000 EPOCH_LENGTH=5000
  SLOWER=1
  # 4 trials of ECGNet (the study's sizes) over 5,000 records x 3 epochs: long enough to read utilisation.
  SEARCH_ARGS=(--gpus-per-trial 0.25 --n-records 5000 --max-epochs 3 --grace-period 3)
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
echo "step,status,seconds" > "$OUT/steps.csv"
FAILED=0

# step NAME LIMIT_S COMMAND...: run it with a time limit, its output in NAME.txt, one line in steps.csv.
step() {
  local name="$1" limit="$2" started status
  shift 2
  started=$(date +%s)
  limit=$(( limit * SLOWER ))
  echo "== $name (limit ${limit} s): $*"
  if timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.txt" 2>&1; then
    status=ok
  else
    status="failed (exit $?)"
    FAILED=1
  fi
  echo "$name,$status,$(( $(date +%s) - started ))" >> "$OUT/steps.csv"
  echo "   $status; last lines:"
  tail -n 3 "$OUT/$name.txt" | sed 's/^/   | /'
}

# sample_cpu: one line a second like nvidia-smi's (time, index, utilisation %, memory MiB) from /proc/stat.
sample_cpu() {
  local prev_total=0 prev_idle=0
  while true; do
    read -r _ user nice system idle iowait irq softirq steal _ < /proc/stat
    local total=$(( user + nice + system + idle + iowait + irq + softirq + steal )) busy_idle=$(( idle + iowait ))
    if (( prev_total > 0 )); then
      local used
      used=$(awk -v t=$(( total - prev_total )) -v i=$(( busy_idle - prev_idle )) 'BEGIN { printf "%.0f", t ? 100 * (t - i) / t : 0 }')
      echo "$(date +%Y/%m/%d\ %H:%M:%S), cpu, $used, $(awk '/MemTotal/ {t=$2} /MemAvailable/ {a=$2} END {printf "%.0f", (t-a)/1024}' /proc/meminfo)"
    fi
    prev_total=$total prev_idle=$busy_idle
    sleep 1
  done
}

step cuda_tests 120 "$PY" -m pytest -q -p no:cacheprovider -n 0 -k "cuda" -m "not slow" \
  tests/ecg/data/test_augment.py tests/ecg/train/test_loop.py tests/search/test_winners.py

step bench_train 90 "$PY" bench/bench_train.py "${TRAIN_ARGS[@]}"

step bench_models 120 "$PY" bench/bench_models.py "${MODELS_ARGS[@]}" --variants "$VARIANTS" --docs "$OUT/models.md"
if [[ $DRY == 1 ]]; then cp bench/out/models_cpu_smoke.csv "$OUT/models.csv" 2> /dev/null; else cp bench/out/models_cuda.csv "$OUT/models.csv" 2> /dev/null; fi

# One real fit epoch (the second: the first pays cuDNN autotuning and allocator warm-up) per model.
step epochs 150 "$PY" - "$DEVICE" "$EPOCH_RECORDS" "$EPOCH_LENGTH" "$VARIANTS" "$OUT/epochs.csv" <<'PYTHON'
"""Seconds of the second `fit` epoch over N random int16 records held on the device, per named variant."""
import csv
import sys
import time

sys.path.insert(0, "bench")
import torch  # noqa: E402

from bench_train import random_dataset  # noqa: E402  (records of the real shape, scale and label density)
from ecg.models import VARIANTS, create_variant  # noqa: E402
from ecg.train import TrainConfig, fit  # noqa: E402

device, n, length, names, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(","), sys.argv[5]
train, val = random_dataset(n, length, 1), random_dataset(max(2, n // 7), length, 2)
rows = []
for name in names:
    torch.manual_seed(0)
    model = create_variant(name, train.n_leads, train.n_classes, length)
    epochs = []
    started = time.perf_counter()
    fit(model, train, val, TrainConfig(lr=1e-4, epochs=2, batch_size=64, schedule="none"), device=device,
        on_epoch=lambda report: epochs.append(report.metrics["epoch_time_s"]))
    rows.append({"variant": name, "family": VARIANTS[name][0], "device": device, "records": n, "length": length,
                 "bf16": device == "cuda", "epoch1_s": round(epochs[0], 2), "epoch2_s": round(epochs[1], 2),
                 "total_s": round(time.perf_counter() - started, 1)})
    print(rows[-1], flush=True)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
with open(out, "w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
resnet = next((r for r in rows if r["variant"] == "resnet50"), None)
if resnet:
    print(f"ResNet-50: {resnet['epoch2_s']} s per epoch over {n:,} records (target <= 3 s on an H100-class GPU)")
PYTHON

# The search, with utilisation sampled every second for as long as launch.py runs.
UTIL="$OUT/utilisation.csv"
echo "timestamp, index, utilization_pct, memory_mib" > "$UTIL"
if [[ $DRY == 1 ]]; then
  sample_cpu >> "$UTIL" &
else
  nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 >> "$UTIL" &
fi
SAMPLER=$!
rm -rf "$OUT/runs"
step search 200 "$PY" launch.py --space ecgnet --num-samples 4 --max-concurrent 4 --scheduler fifo --top-k 1 \
  --seed 0 --results-dir "$OUT/runs" "${SEARCH_ARGS[@]}"
kill "$SAMPLER" 2> /dev/null
wait "$SAMPLER" 2> /dev/null
RUN_DIR="$(ls -d "$OUT"/runs/ecgnet-* 2> /dev/null | head -n 1)"
if [[ -n "$RUN_DIR" ]]; then
  cp "$RUN_DIR/trials.csv" "$OUT/search_trials.csv" 2> /dev/null
  cp "$RUN_DIR/run.json" "$OUT/search_run.json" 2> /dev/null
fi
rm -rf "$OUT/runs"  # checkpoints: large and not figures

# Mean utilisation over the whole launch.py, and over the training window (first to last sample above 0%).
read -r UTIL_ALL UTIL_TRAIN UTIL_N < <(awk -F', *' 'NR > 1 && $3 ~ /^[0-9.]+$/ {
    n++; v[n] = $3; s += $3; if ($3 > 0) { if (!first) first = n; last = n } }
  END { if (!n) { print "nan nan 0"; exit } for (i = first; i <= last && first; i++) { w += v[i]; k++ }
        printf "%.1f %s %d\n", s / n, k ? sprintf("%.1f", w / k) : "nan", n }' "$UTIL")

{
  echo "# GPU check ($([[ $DRY == 1 ]] && echo "DRY RUN on the CPU at toy sizes: the figures are not GPU figures" || echo "device: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"))"
  echo
  echo "Command: \`bash bench/gpu_check.sh$([[ $DRY == 1 ]] && echo " --dry-run")\`; $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| step | status | seconds |"
  echo "|---|---|---|"
  tail -n +2 "$OUT/steps.csv" | awk -F, '{ printf "| %s | %s | %s |\n", $1, $2, $3 }'
  echo
  echo "CUDA test cases: $(tail -n 1 "$OUT/cuda_tests.txt")"
  echo
  echo "bench_train (fit/bare, fp32 and bf16):"
  echo '```'
  grep -E "^(model|ecgnet|gru| )" "$OUT/bench_train.txt" | head -n 12
  echo '```'
  echo
  echo "Epoch over $EPOCH_RECORDS records ($EPOCH_LENGTH samples, 8 leads; epochs.csv; target ResNet-50 <= 3 s on an H100-class GPU, bf16):"
  echo
  [[ -f "$OUT/epochs.csv" ]] && awk -F, 'NR == 1 { print "| variant | epoch 1 s | epoch 2 s |"; print "|---|---|---|"; next }
                                       { printf "| %s | %s | %s |\n", $1, $7, $8 }' "$OUT/epochs.csv"
  echo
  echo "Search, 4 trials at ${SEARCH_ARGS[1]} GPU each: $(grep -E '^search finished' "$OUT/search.txt" | tail -n 1)"
  echo "Utilisation ($([[ $DRY == 1 ]] && echo "CPU busy share, /proc/stat" || echo "nvidia-smi")), $UTIL_N one-second samples: mean $UTIL_ALL% over the whole launch.py, $UTIL_TRAIN% from the first to the last sample above 0% (target >= 85%)."
} > "$OUT/summary.md"
echo "== figures in $OUT (summary.md)"
exit $FAILED
