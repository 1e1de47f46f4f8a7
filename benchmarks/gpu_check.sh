#!/usr/bin/env bash
# GPU readiness in one prepared run: the CUDA tests, then torch fp32/fp16/bf16 and TensorRT
# (where it imports) at 512x1024 and 360x480 with latency, FPS and agreement with fp32.
# Without CUDA every GPU part prints "no CUDA" and the script exits 0 (checked on CPU by
# test/test_gpu_check.py). Usage: benchmarks/gpu_check.sh [gpu_check.py options]
# Environment: PYTHON (default python3), OUT (result folder, default .).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-.}
status=0
echo "== CUDA tests"
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    "$PY" -m pytest -q -k 'cuda or gpu or tensorrt' test/ || status=1
else
    echo "no CUDA: CUDA tests skipped"
fi
echo "== GPU benchmarks"
"$PY" benchmarks/gpu_check.py --json "$OUT/gpu_check.json" "$@" || status=1
echo "== gpu_check exit $status"
exit $status
