#!/usr/bin/env bash
# The GPU check (issues 15 and 29), ready for the first machine with a GPU: one command of at most 9.5 minutes
# (the steps' time limits add up to 540 s; unpacking the device bundle takes seconds more), its figures into
# bench/results/gpu/. How to run it on the lent machine: bench/results/gpu/README.md.
#
#   bash bench/gpu_check.sh                    # on a GPU machine
#   bash bench/gpu_check.sh --dry-run          # the same steps on the CPU at toy sizes (CI runs this)
#   bash bench/gpu_check.sh --out DIR          # somewhere else than bench/results/gpu (bench/out/gpu-dry-run dry)
#   bash bench/gpu_check.sh --steps a,b        # only these steps (names below; they run in the order below)
#
# Python: $PYTHON, else python3, else python. No network; nothing is installed outside a temporary folder:
# where ray, optuna, wfdb or iterative-stratification cannot be imported (the lent machine), the device bundle
# for this Python (bench/device_bundle/site-cpXY.tar.xz, or $ECG_DEVICE_BUNDLE: a `pip install --target` folder
# that bench/device_bundle.sh makes where pip works) is unpacked into a temporary site folder put on PYTHONPATH.
# Where $OUT is set (the folder the lent machine sends back, at most 8 files), summary.md, steps.csv,
# cuda_tests.txt, the CSVs and gpu_check.tar.gz (the whole output folder) are copied there after every step.
# Steps (time limit; each one's output in <out>/<step>.txt, its status and seconds in <out>/steps.csv;
# summary.md collects the figures and is rewritten after every step):
#   cuda_tests   120 s  the CUDA test set, tests/gpu/ (bf16 fit and predict, recurrent layers in fp32, costs and
#                       a real out-of-memory error on the device, two trials on one GPU through launch.py with the
#                       winners evaluated on it), and the augmentation's device tests
#   bench_train   60 s  bench/bench_train.py --device cuda: fit against a bare loop, fp32 and bf16
#   bench_models  90 s  bench/bench_models.py --device cuda for ResNet-50, SE-ResNet-50, ECGNet v3, GRU v3 (bf16):
#                       params, samples/s, peak memory (models.csv, models.md); fails if a variant crashed
#   epochs       120 s  one real `ecg.train.fit` epoch over 14,000 records (8 x 5,000, int16, on the GPU) for the
#                       same four, bf16: epoch seconds (epochs.csv); target ResNet-50 <= 3 s on an H100-class GPU
#   search       150 s  launch.py, 4 trials at --gpus-per-trial 0.25 (all four on one GPU at once), with
#                       nvidia-smi sampled every second (utilisation.csv); target mean >= 85% while trials train
# A failed step is recorded and the next one runs; the exit code is 1 if any step failed, 2 if the check cannot
# start. --dry-run samples the CPU's busy share from /proc/stat instead of nvidia-smi.
set -uo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
ALL_STEPS="cuda_tests,bench_train,bench_models,epochs,search"
DRY=0
RESULTS=""
STEPS="$ALL_STEPS"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) RESULTS="${2:?--out needs a folder}"; shift ;;
    --steps) STEPS="${2:?--steps needs step names}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for name in ${STEPS//,/ }; do
  if [[ ",$ALL_STEPS," != *",$name,"* ]]; then
    echo "gpu_check.sh: unknown step '$name' in --steps (steps: $ALL_STEPS)" >&2
    exit 2
  fi
done
wanted() { [[ ",$STEPS," == *",$1,"* ]]; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
PY="${PYTHON:-$(command -v python3 || command -v python)}"
if [[ -z $PY ]]; then
  echo "gpu_check.sh: no python3 or python on PATH (or set PYTHON)" >&2
  exit 2
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
EXPORT="${OUT:-}"  # the lent machine's folder of files sent back (its tool sets OUT)
SAMPLER=""
SITE=""
cleanup() {
  [[ -n $SAMPLER ]] && kill "$SAMPLER" 2> /dev/null
  [[ -n $SITE ]] && rm -rf "$SITE"
}
trap cleanup EXIT

# The packages the lent machine lacks, from the device bundle, unless they can be imported already.
# (launch.py starts Ray's dashboard, which needs its web client's folder)
NEEDED="import os, ray.tune, ray.dashboard.optional_deps, optuna, wfdb, iterstrat
assert os.path.isdir(os.path.join(os.path.dirname(ray.__file__), 'dashboard', 'client', 'build')), 'no dashboard'"
BUNDLE_NOTE="not needed (ray, optuna, wfdb and iterative-stratification import without it)"
if ! "$PY" -c "$NEEDED" 2> /dev/null; then
  TAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
  BUNDLE="${ECG_DEVICE_BUNDLE:-$ROOT/bench/device_bundle/site-$TAG.tar.xz}"
  if [[ ! -f $BUNDLE ]]; then
    echo "gpu_check.sh: $PY cannot import what the check needs (ray, optuna, wfdb, iterstrat) and there is" \
         "no device bundle at $BUNDLE: make it where pip works" \
         "(bash bench/device_bundle.sh --python ${TAG:2:1}.${TAG:3}) and send it along" \
         "(bench/results/gpu/README.md)" >&2
    exit 2
  fi
  started=$(date +%s)
  SITE="$(mktemp -d "${TMPDIR:-/tmp}/ecg-site.XXXXXX")"
  tar -xJf "$BUNDLE" -C "$SITE" || { echo "gpu_check.sh: could not unpack $BUNDLE" >&2; exit 2; }
  export PYTHONPATH="$ROOT:$SITE${PYTHONPATH#"$ROOT"}"
  if ! "$PY" -c "$NEEDED"; then
    echo "gpu_check.sh: the packages still do not import with $BUNDLE unpacked (error above)" >&2
    exit 2
  fi
  BUNDLE_NOTE="$(basename "$BUNDLE") ($(( $(stat -c %s "$BUNDLE") / 2**20 )) MiB) unpacked into $SITE"
  BUNDLE_NOTE+=" in $(( $(date +%s) - started )) s"
fi
echo "== python: $PY ($("$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)'))"
echo "== device bundle: $BUNDLE_NOTE"
# The versions the check runs with (the machine's own and the bundle's), for the summary.
PACKAGES="$("$PY" -c '
from importlib import metadata
names = ("torch numpy pandas scipy scikit-learn pyarrow protobuf grpcio aiohttp pydantic ray optuna wfdb "
         "iterative-stratification pytest").split()
def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"
print(", ".join(f"{name} {version(name)}" for name in names))')"
echo "== packages: $PACKAGES"

VARIANTS="resnet50,seresnet50,ecgnet_v3,gru_v3_50x100"
if [[ $DRY == 1 ]]; then
  RESULTS="${RESULTS:-$ROOT/bench/out/gpu-dry-run}"
  DEVICE=cpu
  TRAIN_ARGS=(--smoke --device cpu)
  # The records' real length (5,000 samples: the GRU v3 variants' segmentations are factorisations of it),
  # two of them (and two for validation): the study-size models train slowly on a shared CPU, and the dry run
  # checks that the step runs, as bench_models --smoke (batch 2, one step) does.
  MODELS_ARGS=(--smoke --device cpu)
  EPOCH_RECORDS=2 EPOCH_LENGTH=5000
  SLOWER=4  # the CPU (shared, in CI) is far slower than a GPU: the same steps get longer limits
  SEARCH_ARGS=(--gpus-per-trial 0 --n-records 120 --fs 100 --max-epochs 1 --grace-period 1)
  TEST_ENV=()
else
  RESULTS="${RESULTS:-$ROOT/bench/results/gpu}"
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
  TEST_ENV=(ECG_REQUIRE_CUDA=1)  # a CUDA test that finds no GPU fails instead of skipping
fi
mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"
rm -f "$RESULTS"/{steps.csv,summary.md,cuda_tests.txt,bench_train.txt,bench_models.txt,models.csv,models.md} \
      "$RESULTS"/{epochs.txt,epochs.csv,search.txt,search_trials.csv,search_run.json,utilisation.csv}
echo "step,status,seconds" > "$RESULTS/steps.csv"
FAILED=0
UTIL="$RESULTS/utilisation.csv"
UTIL_ALL=nan UTIL_TRAIN=nan UTIL_N=0

# The figures so far, against their targets (rewritten after every step: a check stopped part-way keeps them).
write_summary() {
  local out="$RESULTS"
  {
    echo "# GPU check ($([[ $DRY == 1 ]] && echo "DRY RUN on the CPU at toy sizes: the figures are not GPU figures" || echo "device: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"))"
    echo
    echo "Command: \`bash bench/gpu_check.sh$([[ $DRY == 1 ]] && echo " --dry-run")$([[ $STEPS != "$ALL_STEPS" ]] && echo " --steps $STEPS")\`; $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Python $("$PY" -c 'import sys; print(sys.version.split()[0])'); device bundle: $BUNDLE_NOTE; packages: $PACKAGES."
    echo
    echo "| step | status | seconds |"
    echo "|---|---|---|"
    tail -n +2 "$out/steps.csv" | awk -F, '{ printf "| %s | %s | %s |\n", $1, $2, $3 }'
    if [[ -f $out/cuda_tests.txt ]]; then
      echo
      echo "CUDA test set: $(tail -n 1 "$out/cuda_tests.txt")"
    fi
    if [[ -f $out/bench_train.txt ]]; then
      echo
      echo "bench_train (fit/bare, fp32 and bf16):"
      echo '```'
      grep -E "^(model|ecgnet|gru| )" "$out/bench_train.txt" | head -n 12
      echo '```'
    fi
    if [[ -f $out/models.csv ]]; then
      echo
      echo "bench_models (models.csv):"
      echo
      awk -F, 'NR == 1 { print "| variant | params | samples/s | peak MiB | status |"; print "|---|---|---|---|---|"; next }
               { printf "| %s | %s | %s | %s | %s |\n", $1, $5, $6, $8, $9 }' "$out/models.csv"
    fi
    if [[ -f $out/epochs.csv ]]; then
      echo
      echo "Epoch over $EPOCH_RECORDS records ($EPOCH_LENGTH samples, 8 leads; epochs.csv; target ResNet-50 <= 3 s on an H100-class GPU, bf16):"
      echo
      awk -F, 'NR == 1 { print "| variant | epoch 1 s | epoch 2 s |"; print "|---|---|---|"; next }
               { printf "| %s | %s | %s |\n", $1, $7, $8 }' "$out/epochs.csv"
    fi
    if [[ -f $out/search.txt ]]; then
      echo
      echo "Search, 4 trials at ${SEARCH_ARGS[1]} GPU each: $(grep -E '^search finished' "$out/search.txt" | tail -n 1)"
      echo "Utilisation ($([[ $DRY == 1 ]] && echo "CPU busy share, /proc/stat" || echo "nvidia-smi")), $UTIL_N one-second samples: mean $UTIL_ALL% over the whole launch.py, $UTIL_TRAIN% from the first to the last sample above 0% (target >= 85%)."
    fi
  } > "$out/summary.md.part"
  mv "$out/summary.md.part" "$out/summary.md"
}

# Copy the figures to $OUT, where set, as at most 8 files: the small ones read first, and the whole folder
# (every step's output) as one archive.
export_results() {
  [[ -n $EXPORT ]] || return 0
  mkdir -p "$EXPORT"
  local file
  for file in summary.md steps.csv cuda_tests.txt models.csv epochs.csv search_trials.csv utilisation.csv; do
    [[ -f $RESULTS/$file ]] && cp "$RESULTS/$file" "$EXPORT/$file"
  done
  tar -czf "$EXPORT/gpu_check.tar.gz" --exclude=runs -C "$(dirname "$RESULTS")" "$(basename "$RESULTS")"
}

# step NAME LIMIT_S COMMAND...: run it with a time limit, its output in NAME.txt, one line in steps.csv, then
# $AFTER_STEP (a function, when set), then the summary (and $OUT) brought up to date.
step() {
  local name="$1" limit="$2" started status
  shift 2
  started=$(date +%s)
  limit=$(( limit * SLOWER ))
  echo "== $name (limit ${limit} s): $*"
  if timeout --kill-after=10 "$limit" "$@" > "$RESULTS/$name.txt" 2>&1; then
    status=ok
  else
    status="failed (exit $?)"
    FAILED=1
  fi
  echo "$name,$status,$(( $(date +%s) - started ))" >> "$RESULTS/steps.csv"
  echo "   $status; last lines:"
  tail -n 3 "$RESULTS/$name.txt" | sed 's/^/   | /'
  [[ -n ${AFTER_STEP:-} ]] && "$AFTER_STEP"  # what the step leaves to collect (the search: its files)
  write_summary
  export_results
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

write_summary
export_results

# The CUDA test set by path (every test in tests/gpu/ is named by pytest -v in cuda_tests.txt), serially.
wanted cuda_tests && step cuda_tests 120 env "${TEST_ENV[@]}" "$PY" -m pytest -p no:cacheprovider -n 0 -v -rs \
  tests/gpu tests/ecg/data/test_augment.py

wanted bench_train && step bench_train 60 "$PY" bench/bench_train.py "${TRAIN_ARGS[@]}"

wanted bench_models && step bench_models 90 "$PY" bench/bench_models.py "${MODELS_ARGS[@]}" --variants "$VARIANTS" \
  --csv "$RESULTS/models.csv" --docs "$RESULTS/models.md"

# One real fit epoch (the second: the first pays cuDNN autotuning and allocator warm-up) per model.
wanted epochs && step epochs 120 "$PY" - "$DEVICE" "$EPOCH_RECORDS" "$EPOCH_LENGTH" "$VARIANTS" "$RESULTS/epochs.csv" <<'PYTHON'
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
    # Written after every model, so a step stopped at its limit keeps the models it finished.
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
resnet = next((r for r in rows if r["variant"] == "resnet50"), None)
if resnet:
    print(f"ResNet-50: {resnet['epoch2_s']} s per epoch over {n:,} records (target <= 3 s on an H100-class GPU)")
PYTHON

# The search, with utilisation sampled every second for as long as launch.py runs.
finish_search() {
  kill "$SAMPLER" 2> /dev/null
  wait "$SAMPLER" 2> /dev/null
  SAMPLER=""
  local run_dir
  run_dir="$(ls -d "$RESULTS"/runs/ecgnet-* 2> /dev/null | head -n 1)"
  if [[ -n $run_dir ]]; then
    cp "$run_dir/trials.csv" "$RESULTS/search_trials.csv" 2> /dev/null
    cp "$run_dir/run.json" "$RESULTS/search_run.json" 2> /dev/null
  fi
  rm -rf "$RESULTS/runs"  # checkpoints: large and not figures
  # Mean utilisation over the whole launch.py, and over the training window (first to last sample above 0%).
  read -r UTIL_ALL UTIL_TRAIN UTIL_N < <(awk -F', *' 'NR > 1 && $3 ~ /^[0-9.]+$/ {
      n++; v[n] = $3; s += $3; if ($3 > 0) { if (!first) first = n; last = n } }
    END { if (!n) { print "nan nan 0"; exit } for (i = first; i <= last && first; i++) { w += v[i]; k++ }
          printf "%.1f %s %d\n", s / n, k ? sprintf("%.1f", w / k) : "nan", n }' "$UTIL")
}
if wanted search; then
  echo "timestamp, index, utilization_pct, memory_mib" > "$UTIL"
  if [[ $DRY == 1 ]]; then
    sample_cpu >> "$UTIL" &
  else
    nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 >> "$UTIL" &
  fi
  SAMPLER=$!
  rm -rf "$RESULTS/runs"
  AFTER_STEP=finish_search step search 150 "$PY" launch.py --space ecgnet --num-samples 4 --max-concurrent 4 \
    --scheduler fifo --top-k 1 --seed 0 --results-dir "$RESULTS/runs" "${SEARCH_ARGS[@]}"
fi
echo "== figures in $RESULTS (summary.md)${EXPORT:+; copied to $EXPORT}"
exit $FAILED
