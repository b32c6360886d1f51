#!/usr/bin/env bash
# Run the speed benchmark (scripts/benchmark.py) on a CUDA machine in a few minutes.
#
# Usage: scripts/gpu_benchmark.sh [OUT_DIR]     (default OUT_DIR: ./benchmark_gpu)
# Needs the project's venv (scripts/setup.sh) with a CUDA build of torch, and ../shared/data/shapes.
# Writes OUT_DIR/benchmark.txt (the table) and OUT_DIR/benchmark.json; exits non-zero without CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmark_gpu}"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p "$OUT"
"$PY" - <<'PYEOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu_benchmark.sh: CUDA is not available (torch %s)" % torch.__version__)
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PYEOF
# The fused step and the autograd reference side by side on the GPU, extraction at 256 and 512
# (dense run fully: a GPU evaluates 134 M points in seconds), peak host memory of a 1 M point input.
timeout 900 "$PY" scripts/benchmark.py --device cuda --dense-full --reps 10 --fit-steps 500 \
    --json "$OUT/benchmark.json" 2> "$OUT/progress.log" | tee "$OUT/benchmark.txt"
