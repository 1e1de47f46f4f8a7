#!/usr/bin/env bash
# The long CamVid run behind the packaged model (config/train/camvid_cpu.yaml), made to be
# stopped at any moment and started again, also on another machine (`--continue-from`):
# - runs/camvid_long/last.pt present: resume exactly (optimizer, RNG, iteration);
# - else, when the packaged model was written by this run: warm-start from it at the iteration
#   it records (fresh optimizer and booster heads; the schedule and data order follow the
#   iteration);
# - else start from scratch.
# The trainer is started again when it stops before the end (crash, kill -9); SIGINT/SIGTERM
# to this script stop it for good. Log: runs/camvid_long/train.out.
#   nohup nice -n 10 bash scripts/train_camvid_long.sh >/dev/null 2>&1 &
# Other runs: CONFIG and OUT (its output_dir) name them; MODEL= (empty) turns the warm start off,
# so such a run resumes $OUT/last.pt when present, else starts from scratch
# (scripts/train_holdout.sh does that for the unseen-sequence runs).
set -uo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-config/train/camvid_cpu.yaml}
OUT=${OUT:-runs/camvid_long}
MODEL=${MODEL-bisenet_ros/data/camvid_bisenetv2.pt}
BISENET=${BISENET:-.venv/bin/bisenet}
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' INT TERM
mkdir -p "$OUT"
for attempt in $(seq 1 100); do
  [ -f "$OUT/final.pt" ] && { echo "train_camvid_long: done ($OUT/final.pt)"; exit 0; }
  if [ -n "$MODEL" ]; then way=(--continue-from "$MODEL")
  elif [ -f "$OUT/last.pt" ]; then way=(--resume "$OUT/last.pt")
  else way=(); fi
  echo "train_camvid_long: start $attempt at $(date -Is): ${way[*]:-from scratch}" \
      >>"$OUT/train.out"
  "$BISENET" train --config "$CONFIG" --output-dir "$OUT" "${way[@]}" >>"$OUT/train.out" 2>&1 &
  child=$!
  wait "$child"
  echo "train_camvid_long: trainer exited with $? at $(date -Is)" >>"$OUT/train.out"
  sleep 10
done
