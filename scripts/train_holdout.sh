#!/usr/bin/env bash
# The unseen-sequence runs of issue 22 (docs/TRAINING.md, "Generalization: the unseen-sequence
# split"), resumable across sessions and machines: `baseline` (today's recipe) or `recipe` (the
# candidate), config/train/camvid_holdout_<name>.yaml into runs/camvid_holdout_<name>. Each
# start resumes runs/camvid_holdout_<name>/last.pt (written every 250 iterations) when present,
# else starts from scratch; a trainer that stops early is started again
# (scripts/train_camvid_long.sh). Run one at a time on 2 cores, niced to idle CPU:
#   nohup nice -n 19 bash scripts/train_holdout.sh baseline >/dev/null 2>&1 &
# Log: runs/camvid_holdout_<name>/train.out. Stop for good: kill -TERM <this script's PID>.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: train_holdout.sh baseline|recipe}
export CONFIG=config/train/camvid_holdout_$name.yaml OUT=runs/camvid_holdout_$name MODEL=
[ -f "$CONFIG" ] || { echo "train_holdout.sh: no $CONFIG (expected baseline or recipe)" >&2; exit 2; }
if [ -z "${BISENET:-}" ]; then
  # a worktree without its own venv uses the main checkout's, with this tree's code first
  if [ -x .venv/bin/bisenet ]; then BISENET=.venv/bin/bisenet
  else BISENET=$(cd .. && pwd)/main/.venv/bin/bisenet; fi
fi
export BISENET PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# OpenMP threads that wait passively instead of spinning: on a shared, loaded machine the
# 2-thread step took half the CPU time and half the wall time (same losses; docs/TRAINING.md)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
exec bash scripts/train_camvid_long.sh
