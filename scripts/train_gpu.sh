#!/usr/bin/env bash
# Lend a GPU's minutes to the unseen-sequence runs of issue 22 (docs/TRAINING.md, "On a GPU").
#   scripts/train_gpu.sh [--cpu-check] resume NAME [MINUTES]     NAME: baseline or recipe
#   scripts/train_gpu.sh [--cpu-check] finetune NAME [MINUTES]
#   scripts/train_gpu.sh adopt NAME
# resume: the same run (config/train/camvid_holdout_NAME.yaml: schedule, seed, data order) goes
#   on on CUDA from the further of runs/camvid_holdout_NAME/last.pt (the CPU run's, only read)
#   and runs/camvid_holdout_NAME_gpu/last.pt, in runs/camvid_holdout_NAME_gpu. After MINUTES
#   (default 8) of training it leaves like an interrupted run (`bisenet train
#   --pause-after-min`): last.pt only, no validation off the schedule, no final.pt.
# adopt (where the CPU run lives, its trainer stopped): the GPU folder's last.pt and logs, and
#   its best.pt when better, replace the CPU run's (which go to before_gpu_<iteration>/); then
#   `scripts/train_holdout.sh NAME` goes on from where the GPU stopped.
# finetune: full resolution (360x480 crops, batch 4, scales 1.0-1.5, as in "Full-resolution
#   fine-tune") for FT_ITERATIONS (default 1000) more iterations from the further of the two
#   states above, into runs/camvid_holdout_NAME_full (its own last.pt resumed when present);
#   never the folders of the comparison.
# Without CUDA it says so and exits 3. --cpu-check (or GPU_TRAIN_CPU_CHECK=1) runs the same path
# on the CPU for CHECK_ITERATIONS (default 2) iterations from a copy of the state in WORK
# (default a new temp folder, printed), then resumes 1 iteration from what it wrote, as the CPU
# run will; the run folders are only read.
# Environment: PYTHON (default .venv/bin/python, else ../main/.venv's), CONFIG (default
# config/train/camvid_holdout_NAME.yaml), SRC (the CPU run's folder), GPU_DIR, FT_DIR (the
# output folders above), DATA_ROOT (CamVid root, default the config's), WORKERS (loader processes,
# default 8 on CUDA, 0 for the check).
set -euo pipefail
cd "$(dirname "$0")/.."
check=${GPU_TRAIN_CPU_CHECK:-0}
if [ "${1:-}" = --cpu-check ]; then check=1; shift; fi
usage='usage: train_gpu.sh [--cpu-check] resume|finetune NAME [MINUTES] | adopt NAME'
mode=${1:?$usage}
name=${2:?$usage}
minutes=${3:-8}
die() { echo "train_gpu.sh: $*" >&2; exit "${code:-2}"; }
case $mode in resume|finetune|adopt) ;; *) die "unknown mode '$mode'; $usage" ;; esac
[[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]] && [ "$minutes" != 0 ] \
    || die "MINUTES must be a positive number, got '$minutes'"
CONFIG=${CONFIG:-config/train/camvid_holdout_$name.yaml}
[ -f "$CONFIG" ] || die "no $CONFIG (NAME: baseline or recipe)"
SRC=${SRC:-runs/camvid_holdout_$name}
GPU_DIR=${GPU_DIR:-runs/camvid_holdout_${name}_gpu}
FT_DIR=${FT_DIR:-runs/camvid_holdout_${name}_full}
if [ -z "${PYTHON:-}" ]; then
  # a worktree without its own venv uses the main checkout's, with this tree's code first
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python
  else PYTHON=$(cd .. && pwd)/main/.venv/bin/python; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# state_info FILE...: "PATH ITERATION TOTAL BEST_MIOU" of the existing state with the highest
# iteration (the first on a tie), or nothing; TOTAL is the train.iterations it records
state_info() {
  "$PYTHON" -c 'import os, sys
from bisenet_ros.training.state import load_train_state
found = []
for path in sys.argv[1:]:
    if os.path.isfile(path):
        s = load_train_state(path)
        found.append((-s["iteration"], len(found), path, s["iteration"],
                      s["config"]["train"]["iterations"], s["best_miou"]))
if found:
    print(*min(found)[2:])' "$@"
}
# field N FILE...: field N (2 iteration, 3 total, 4 best mIoU) of state_info
field() { local n=$1; shift; state_info "$@" | cut -d' ' -f"$n"; }
# copy_lines SRC DEST: a CSV log without a last line the CPU run may be writing right now
copy_lines() {
  [ -f "$1" ] || return 0
  "$PYTHON" -c 'import sys
t = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(t[:t.rfind(b"\n") + 1])' "$1" "$2"
}
# seed DIR STATE: DIR gets a copy of STATE as last.pt and the logs of STATE's folder
seed() {
  mkdir -p "$1"
  [ "$(cd "$(dirname "$2")" && pwd)" = "$(cd "$1" && pwd)" ] && return 0
  cp "$2" "$1/last.pt.tmp" && mv "$1/last.pt.tmp" "$1/last.pt"
  copy_lines "$(dirname "$2")/train_log.csv" "$1/train_log.csv"
  copy_lines "$(dirname "$2")/val_log.csv" "$1/val_log.csv"
}

if [ "$mode" = adopt ]; then
  code=1
  [ -f "$GPU_DIR/last.pt" ] || die "no $GPU_DIR/last.pt to adopt"
  # the CPU run's trainer (started by train_holdout.sh) must not be writing SRC
  if pgrep -f -- "--output-dir $SRC( |\$)" >/dev/null; then
    die "a trainer writes $SRC (pids $(pgrep -d ' ' -f -- "--output-dir $SRC( |\$)")); stop" \
        "it first: kill -TERM <PID of train_holdout.sh>"
  fi
  read -r _ gi gtotal _ < <(state_info "$GPU_DIR/last.pt")
  si=$(field 2 "$SRC/last.pt"); si=${si:-0}
  if [ "$gi" -le "$si" ]; then
    echo "train_gpu.sh: $SRC is at iteration $si, $GPU_DIR at $gi: nothing to adopt"; exit 0
  fi
  keep=$SRC/before_gpu_$si
  mkdir -p "$keep"
  files=(last.pt train_log.csv val_log.csv)
  if [ -f "$GPU_DIR/best.pt" ]; then
    gb=$(field 4 "$GPU_DIR/best.pt")
    sb=$(field 4 "$SRC/best.pt"); sb=${sb:--1}
    if "$PYTHON" -c 'import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)' \
        "$gb" "$sb"; then files+=(best.pt); fi
  fi
  # a run the GPU finished: its final.pt too (the CPU run then stops at once)
  [ -f "$GPU_DIR/final.pt" ] && [ "$gi" -ge "$gtotal" ] && files+=(final.pt)
  for f in "${files[@]}"; do
    [ -f "$SRC/$f" ] && mv "$SRC/$f" "$keep/$f"
    if [ -f "$GPU_DIR/$f" ]; then cp "$GPU_DIR/$f" "$SRC/$f.tmp" && mv "$SRC/$f.tmp" "$SRC/$f"; fi
  done
  echo "train_gpu: adopted $GPU_DIR at iteration $gi (${files[*]}) at $(date -Is); replaced" \
       "files in $keep" | tee -a "$SRC/train.out"
  echo "train_gpu.sh: now start the CPU run again: nohup nice -n 19 bash" \
       "scripts/train_holdout.sh $name >/dev/null 2>&1 &"
  exit 0
fi

if [ "$mode" = finetune ] && [ -f "$FT_DIR/last.pt" ]; then candidates=("$FT_DIR/last.pt")
else candidates=("$SRC/last.pt" "$GPU_DIR/last.pt"); fi
read -r start at total _ < <(state_info "${candidates[@]}") || true
[ -n "${start:-}" ] || die "no training state in $SRC or $GPU_DIR (the CPU run writes last.pt" \
                       "every log.checkpoint_every iterations)"
if [ "$check" = 1 ]; then
  device=cpu workers=${WORKERS:-0}
  out=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/train_gpu_check.XXXXXX")}
  pause=(--pause-after-iterations "${CHECK_ITERATIONS:-2}")
  echo "train_gpu.sh: --cpu-check: the $mode path on the CPU for ${CHECK_ITERATIONS:-2}" \
       "iterations in $out (a copy; the run folders are only read)"
else
  if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    code=3 die "no CUDA GPU here (torch.cuda.is_available() is False); nothing trained." \
               "--cpu-check runs the same path on the CPU for a few iterations"
  fi
  device=cuda workers=${WORKERS:-8}
  "$PYTHON" -c 'import torch; print("train_gpu.sh: CUDA", torch.cuda.get_device_name(0),
                                    "torch", torch.__version__)'
  pause=(--pause-after-min "$minutes")
  if [ "$mode" = resume ]; then out=$GPU_DIR; else out=$FT_DIR; fi
fi
seed "$out" "$start"

same=(--config "$CONFIG" --output-dir "$out" --resume "$out/last.pt")
[ -n "${DATA_ROOT:-}" ] && same+=(--data-root "$DATA_ROOT")
if [ "$mode" = finetune ]; then
  # a fine-tune started here sets its length; a resumed one keeps the one its state records
  [ "$start" = "$FT_DIR/last.pt" ] || total=$((at + ${FT_ITERATIONS:-1000}))
  same+=(--iterations "$total" --set "train.crop=[360, 480]" --set train.batch_size=4
         --set "train.scale_range=[1.0, 1.5]" --set val.every=500)
fi
if [ "$at" -ge "$total" ]; then
  echo "train_gpu.sh: $start is at iteration $at of $total: the run is done, nothing to train"
  exit 0
fi
echo "train_gpu: $mode $name on $device from $start (iteration $at of $total) into $out at" \
     "$(date -Is)" | tee -a "$out/train.out"
set +e
"$PYTHON" -m bisenet_ros.tools.train "${same[@]}" --device "$device" \
    --set "train.num_workers=$workers" --set train.channels_last=true "${pause[@]}" 2>&1 \
    | tee -a "$out/train.out"
status=${PIPESTATUS[0]}
set -e
[ "$status" = 0 ] || code=$status die "the trainer exited with $status (log: $out/train.out)"
now=$(field 2 "$out/last.pt")
echo "train_gpu: $mode $name paused at iteration $now of $total (was $at) at $(date -Is)" \
    | tee -a "$out/train.out"
if [ "$check" = 1 ]; then
  # what the CPU run does next: resume on the CPU, with its own settings, from that state
  "$PYTHON" -m bisenet_ros.tools.train "${same[@]}" --device cpu --set train.num_workers=0 \
      --pause-after-iterations 1 2>&1 | tee -a "$out/train.out"
  [ "$(field 2 "$out/last.pt")" -eq $((now + 1)) ] \
      || die "the CPU resume did not advance $out/last.pt"
  echo "train_gpu.sh: --cpu-check passed: $at -> $now on the check's path, $now ->" \
       "$((now + 1)) resumed on the CPU ($out)"
elif [ "$mode" = resume ]; then
  echo "train_gpu.sh: bring $out back beside $SRC, then: scripts/train_gpu.sh adopt $name"
fi
