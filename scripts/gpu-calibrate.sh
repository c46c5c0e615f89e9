#!/usr/bin/env bash
# Device calls (b) and (c): the full calibrate-gpu run for one bundled measured profile, then the
# GPU tests. The profile and the logs go to $OUT.
# Usage (device tool, repo root): bash scripts/gpu-calibrate.sh h100-sxm-measured
set -uo pipefail
NAME="$1"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
OUT="${OUT:-/tmp/perfmodel-out}"; mkdir -p "$OUT"
{
  date -u; nvidia-smi --query-gpu=name,driver_version,temperature.gpu,clocks.sm,power.draw \
    --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} 2>&1 | tee "$OUT/env.log"
timeout 400 python3 scripts/calibrate_logged.py "$NAME" "$OUT/$NAME.yaml" \
  2>&1 | tee "$OUT/calibrate.log" | tail -4
nvidia-smi --query-gpu=temperature.gpu,clocks.sm,power.draw --format=csv | tee -a "$OUT/env.log"
timeout 170 python3 -m pytest -q -m gpu -p no:cacheprovider --basetemp=/tmp/pt -rs \
  tests/test_calibrate_gpu.py tests/test_validate_gpu.py 2>&1 | tee "$OUT/pytest-gpu.log"
cp /tmp/pt/gpu0/quick.yaml "$OUT/quick.yaml" 2>/dev/null || echo "no quick profile"
