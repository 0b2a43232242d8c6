#!/usr/bin/env bash
# The GPU check's dry run as the lent GPU machine would run it (issue 29), proven with this machine's Python:
#   1. a clean virtual environment holding only packages the lent machine lists (bench/device_machine.txt):
#      the "# machine:" lines of bench/device_bundle.txt at those versions, and torch from this machine's CPU wheel;
#      checked: every package in it is on the machine's list, and ray, optuna, wfdb, iterstrat do not import;
#   2. python3 and no python on PATH, PYTHONPATH unset, OUT set (as the lent machine's tool sets it);
#   3. `bash bench/gpu_check.sh --dry-run`, which finds the packages missing and unpacks the device bundle for this
#      Python (bench/device_bundle/site-cpXY.tar.xz; built first by bench/device_bundle.sh if missing);
#   4. checked: exit 0, every step ok, the bundle used, python3 used, at most 8 files in OUT.
#
#   bash bench/device_check.sh             # about 6 minutes on 2 cores; needs pip's registry for step 1
#   bash bench/device_check.sh --keep      # keep the environment and the outputs (printed) for a look
#   PYTHON=python3.12 bash bench/device_check.sh --imports-only
#       for a Python with no CPU torch wheel at hand (3.12, the lent machine's): the environment without torch,
#       the bundle for that Python unpacked as gpu_check.sh does, then what the check needs of it: the imports,
#       Ray started with its dashboard, one task, a two-trial Ray Tune run (no dry run: it needs torch)
#
# A script rather than a test: building the environment needs the network and minutes, and the dry run itself
# takes most of the test suite's budget; the suite runs the same dry run in the project's own environment
# (tests/bench/test_gpu_check.py). Exit 0 when everything above holds, 1 otherwise.
set -euo pipefail

KEEP=0
IMPORTS_ONLY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keep) KEEP=1 ;;
    --imports-only) IMPORTS_ONLY=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "device_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BASE="${PYTHON:-python3}"
PYV="$("$BASE" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
TAG="cp${PYV/./}"
BUNDLE="bench/device_bundle/site-$TAG.tar.xz"
[[ -f $BUNDLE ]] || bash bench/device_bundle.sh --python "$PYV"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ecg-device-check.XXXXXX")"
finish() {
  local status=$?
  if [[ $KEEP == 1 || $status != 0 ]]; then echo "== kept: $WORK"; else rm -rf "$WORK"; fi
}
trap finish EXIT
fail() { echo "device_check.sh: $*" >&2; exit 1; }

echo "== 1. clean environment ($("$BASE" --version)) in $WORK/venv"
"$BASE" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python3"
mapfile -t MACHINE < <(sed -n 's/^# machine: //p' bench/device_bundle.txt)
quiet() { grep -v "is ignored: it is neither" || true; }  # pip's notes on this machine's extra local indexes
if [[ $IMPORTS_ONLY == 0 ]]; then
  "$VPY" -m pip install --quiet torch==2.13.0 2>&1 | quiet  # this machine's CPU wheel; the lent machine: a CUDA build
fi
"$VPY" -m pip install --quiet --no-deps "${MACHINE[@]}" 2>&1 | quiet
# -I: not the project's folder (its egg-info would count as an installed package)
"$VPY" -I - bench/device_machine.txt <<'PYTHON' || fail "the clean environment holds a package the lent machine lacks"
"""Every distribution in this environment is on the lent machine's list (pip itself aside)."""
import importlib.metadata as metadata
import re
import sys

canonical = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
machine = {canonical(line.strip()) for line in open(sys.argv[1]) if line.strip() and not line.startswith("#")}
names = sorted({canonical(d.metadata["Name"]) for d in metadata.distributions()} - {"pip"})
extra = [name for name in names if name not in machine]
print(f"   {len(names)} packages, all on the machine's list" if not extra else f"   not on the machine's list: {extra}")
sys.exit(1 if extra else 0)
PYTHON
for module in ray optuna wfdb iterstrat; do
  if "$VPY" -I -c "import $module" 2> /dev/null; then fail "$module imports in the clean environment"; fi
done
echo "   ray, optuna, wfdb, iterstrat: not importable (the bundle must bring them)"

if [[ $IMPORTS_ONLY == 1 ]]; then
  echo "== 2. $BUNDLE unpacked into a site folder on PYTHONPATH, as gpu_check.sh does"
  mkdir -p "$WORK/site"
  tar -xJf "$BUNDLE" -C "$WORK/site"
  env -u VIRTUAL_ENV PYTHONPATH="$ROOT:$WORK/site" "$VPY" - "$WORK/tune" <<'PYTHON' || fail "the bundle does not work"
"""What the GPU check needs of the bundle, without torch: the imports, Ray with its dashboard, Ray Tune."""
import sys
import time
from importlib import metadata

import iterstrat  # noqa: F401
import optuna
import ray
import ray.dashboard.optional_deps  # noqa: F401
import ray.tune
import wfdb  # noqa: F401

print(f"   Python {sys.version.split()[0]}: ray {ray.__version__} from {ray.__file__}, optuna {optuna.__version__},"
      f" wfdb {metadata.version('wfdb')}, protobuf {metadata.version('protobuf')}")
started = time.time()
context = ray.init(address="local", include_dashboard=True, dashboard_host="127.0.0.1", num_cpus=1,
                   log_to_driver=False)
print(f"   Ray started with its dashboard ({context.dashboard_url}) in {time.time() - started:.1f} s")


@ray.remote
def add_one(x: int) -> int:
    return x + 1


assert ray.get(add_one.remote(1)) == 2


def trainable(config: dict) -> None:
    ray.tune.report({"score": config["x"] * 2})


results = ray.tune.Tuner(trainable, param_space={"x": ray.tune.grid_search([1, 2])},
                         run_config=ray.tune.RunConfig(storage_path=sys.argv[1], verbose=0)).fit()
scores = sorted(result.metrics["score"] for result in results)
assert scores == [2, 4], scores
print(f"   one task and a two-trial Ray Tune run: scores {scores}")
ray.shutdown()
PYTHON
  echo "== device_check.sh --imports-only: the $TAG bundle works in a clean $TAG environment of the machine's packages"
  exit 0
fi

echo "== 2. python3 alone on PATH, OUT set"
mkdir -p "$WORK/bin"
printf '#!/bin/sh\nexec %q "$@"\n' "$VPY" > "$WORK/bin/python3"
chmod +x "$WORK/bin/python3"
CLEAN_PATH="$WORK/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
if found="$(PATH="$CLEAN_PATH" command -v python)"; then fail "a python is on the clean PATH: $found"; fi

echo "== 3. bash bench/gpu_check.sh --dry-run (log: $WORK/gpu_check.log)"
set +e
env -u PYTHON -u PYTHONPATH -u VIRTUAL_ENV PATH="$CLEAN_PATH" OUT="$WORK/sent" \
  bash bench/gpu_check.sh --dry-run --out "$WORK/gpu" > "$WORK/gpu_check.log" 2>&1
rc=$?
set -e
cat "$WORK/gpu_check.log"

echo "== 4. checks"
[[ $rc == 0 ]] || fail "gpu_check.sh --dry-run exited $rc"
grep -q "^== python: $WORK/bin/python3 " "$WORK/gpu_check.log" || fail "gpu_check.sh did not run python3"
grep -q "^== device bundle: site-$TAG.tar.xz" "$WORK/gpu_check.log" || fail "gpu_check.sh did not use the bundle"
failed="$(tail -n +2 "$WORK/gpu/steps.csv" | grep -vc ',ok,' || true)"
steps=$(tail -n +2 "$WORK/gpu/steps.csv" | wc -l)
[[ $failed == 0 && $steps == 5 ]] || fail "not every step ok: $(cat "$WORK/gpu/steps.csv")"
sent=$(find "$WORK/sent" -type f | wc -l)
(( sent <= 8 )) || fail "$sent files in OUT (at most 8 come back)"
echo "   exit 0, 5 steps ok, python3 and the bundle used, $sent files in OUT: $(cd "$WORK/sent" && echo *)"
echo "== device_check.sh: the dry run passed in a clean $TAG environment with only the machine's packages + $BUNDLE"
