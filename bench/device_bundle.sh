#!/usr/bin/env bash
# The device bundle (issue 29): the Python packages the GPU check needs and the lent GPU machine lacks (Ray,
# Optuna, wfdb, iterative-stratification and what they need), for that machine's Python, as one xz-compressed
# site folder that travels with the working tree (everything that travels is <= 64 MiB; the bundle <= 60 MiB).
#
#   bash bench/device_bundle.sh                # Python 3.12's (the lent machine's): bench/device_bundle/site-cp312.tar.xz
#   bash bench/device_bundle.sh --python 3.11  # this machine's Python (the clean-environment proof, device_check.sh)
#   bash bench/device_bundle.sh --relock         # rewrite bench/device_bundle.txt from this venv, then build
#
# What travels is pinned in bench/device_bundle.txt (name==version, the versions this project's venv tests).
# --relock derives it from the active venv: the installed dependency closure of pyproject.toml's dependencies
# and test extra (torch left out: the machine has its CUDA build), with the markers evaluated for the target
# Python, less every package bench/device_machine.txt lists (the machine has them; protobuf travels all the same).
# Steps: `pip download` the exact cp3XX manylinux x86-64 wheels (cached in bench/out/device_bundle/), `pip install
# --no-deps --target` them into a staging folder as pip would install them for that Python, trim what the check
# never imports (Ray's Java jars, RLlib, Serve, LLM, console scripts, tests; not the dashboard's web client,
# without which Ray's dashboard does not start), and pack the folder with `xz -9`. bench/gpu_check.sh unpacks it
# into a temporary site folder and puts that on PYTHONPATH before anything else runs. Exit 1 when the bundle is
# over 60 MiB, or the bundle and the working tree over the 64 MiB a call to the lent machine may carry.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
PYV=3.12
RELOCK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) PYV="$2"; shift ;;
    --relock) RELOCK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "device_bundle.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if ! [[ $PYV =~ ^3\.[0-9]+$ ]]; then
  echo "device_bundle.sh: --python takes a version such as 3.12, not '$PYV'" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$(command -v python3 || command -v python)}"
TAG="cp${PYV/./}"
LOCK="bench/device_bundle.txt"
LIMIT_MIB=60
BUNDLE_DIR="bench/device_bundle"          # git-ignored: the packed bundles
WORK="bench/out/device_bundle"            # git-ignored: downloaded wheels and the staging folder
WHEELS="$WORK/wheels-$TAG"
STAGE="$WORK/site-$TAG"
BUNDLE="$BUNDLE_DIR/site-$TAG.tar.xz"
# Wheels for manylinux x86-64 (pip matches each manylinux tag exactly, so the common ones are named).
PLATFORMS=()
for platform in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
                manylinux2014_x86_64 manylinux1_x86_64 manylinux_2_5_x86_64; do
  PLATFORMS+=(--platform "$platform")
done
TARGET_ARGS=(--only-binary=:all: --python-version "$PYV" --implementation cp --abi "$TAG" --abi abi3 --abi none
             "${PLATFORMS[@]}")

if [[ $RELOCK == 1 ]]; then
  "$PY" - "$PYV" "$LOCK" bench/device_machine.txt pyproject.toml <<'PYTHON'
"""Write the lock: the installed closure of the project's needs for the target Python, less the machine's."""
import importlib.metadata as metadata
import re
import sys
import tomllib

from packaging.markers import default_environment
from packaging.requirements import Requirement

version, lock, machine_file, pyproject = sys.argv[1:5]
environment = {**default_environment(), "python_version": version, "python_full_version": f"{version}.0"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# Carried although the machine has it: Ray's generated protobuf code needs a runtime at least as new as the one it
# was generated with, and the machine's version is not known here; the bundle's own is the one tested with it.
CARRIED_ANYWAY = {"protobuf"}
machine = {canonical(line.strip()) for line in open(machine_file) if line.strip() and not line.startswith("#")}
machine -= CARRIED_ANYWAY
project = tomllib.load(open(pyproject, "rb"))["project"]
wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
closure: dict[str, str] = {}
seen: set[tuple[str, str]] = set()  # (package, extra) pairs whose requirements are queued
queue = [(requirement, "") for requirement in wanted]
while queue:
    requirement, extra = queue.pop()
    name = canonical(requirement.name)
    if name == "torch" or requirement.marker and not requirement.marker.evaluate({**environment, "extra": extra}):
        continue
    distribution = metadata.distribution(requirement.name)  # raises when the venv lacks it: install the project
    closure[name] = distribution.version
    for wanted_extra in {"", *requirement.extras} - {e for n, e in seen if n == name}:
        seen.add((name, wanted_extra))
        queue += [(Requirement(r), wanted_extra) for r in distribution.requires or []]
travels = sorted(name for name in closure if name not in machine)
on_machine = sorted(name for name in closure if name in machine)
with open(lock, "w") as handle:
    handle.write("# The packages bench/device_bundle.sh packs for the lent GPU machine: the installed closure of the\n"
                 "# project's dependencies and test extra (torch aside), less those bench/device_machine.txt lists.\n"
                 f"# Written by `bash bench/device_bundle.sh --relock` (markers for Python {version}).\n")
    handle.writelines(f"{name}=={closure[name]}\n" for name in travels)
    handle.write("# The rest of the closure is on the machine (in its own versions); bench/device_check.sh's clean\n"
                 "# environment installs these versions (pip reads these lines as comments):\n")
    handle.writelines(f"# machine: {name}=={closure[name]}\n" for name in on_machine)
print(f"{lock}: {len(travels)} packages travel; {len(closure) - len(travels)} of the closure are on the machine")
PYTHON
fi

mkdir -p "$WHEELS" "$BUNDLE_DIR"
echo "== wheels for $TAG into $WHEELS"
quiet() { grep -v "is ignored: it is neither" || true; }  # pip's notes on this machine's extra local indexes
"$PY" -m pip download --quiet --no-deps "${TARGET_ARGS[@]}" -d "$WHEELS" -r "$LOCK" 2>&1 | quiet
echo "== pip install --target $STAGE"
rm -rf "$STAGE"
"$PY" -m pip install --quiet --no-deps --no-index --no-compile --find-links "$WHEELS" --target "$STAGE" \
  "${TARGET_ARGS[@]}" -r "$LOCK"
unpacked_before=$(du -sm "$STAGE" | cut -f1)

# Trim what the check never imports. Console scripts: their first line names this machine's interpreter.
rm -rf "$STAGE/bin"
rm -rf "$STAGE"/ray/{jars,rllib,serve,llm}
find "$STAGE" -depth -type d \( -name __pycache__ -o -name tests -path '*/ray/*' \) -exec rm -rf {} +
unpacked=$(du -sm "$STAGE" | cut -f1)

echo "== xz -9 into $BUNDLE (unpacked ${unpacked_before} MiB, ${unpacked} MiB after trimming)"
tar -C "$STAGE" --sort=name --owner=0 --group=0 --numeric-owner -cf - . | xz -9 -T0 > "$BUNDLE.part"
mv "$BUNDLE.part" "$BUNDLE"
bytes=$(stat -c %s "$BUNDLE")
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 2^20 }')
echo "$BUNDLE: $mib MiB ($bytes bytes), $(grep -c '^[^#].*==' "$LOCK") packages from $LOCK; limit $LIMIT_MIB MiB"
if (( bytes > LIMIT_MIB * 2**20 )); then
  echo "device_bundle.sh: the bundle is over $LIMIT_MIB MiB: trim more (above) or carry less" >&2
  exit 1
fi

# What travels to the lent machine with a call that carries this bundle: the working tree (tracked files and
# untracked files git does not ignore) and the bundle; at most 64 MiB.
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s -- 2> /dev/null \
       | awk '{ s += $1 } END { print s + 0 }')
total=$(( tree + bytes ))
echo "working tree that travels: $(awk -v b="$tree" 'BEGIN { printf "%.1f", b / 2^20 }') MiB;" \
     "with $BUNDLE: $(awk -v b="$total" 'BEGIN { printf "%.1f", b / 2^20 }') MiB of the 64 MiB a call may carry"
if (( total > 64 * 2**20 )); then
  echo "device_bundle.sh: the working tree and the bundle are over 64 MiB together" >&2
  exit 1
fi
