#!/usr/bin/env bash
# Device call (a): on the lent GPU, check the software, then run the GPU tests, whose fixture runs
# calibrate-gpu --quick with every method v2 series; the quick profile and the logs go to $OUT.
# Usage (device tool, repo root): bash scripts/gpu-smoke.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
OUT="${OUT:-/tmp/perfmodel-out}"; mkdir -p "$OUT"
{
  date -u; nvidia-smi --query-gpu=name,driver_version,temperature.gpu,clocks.sm,power.draw \
    --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  python3 -c "import typer, rich, yaml, huggingface_hub, hypothesis; print('deps ok')"
} 2>&1 | tee "$OUT/env.log"
pip install -q -e . --no-deps 2>&1 | tail -2
timeout 280 python3 -m pytest -q -m gpu -p no:cacheprovider --basetemp=/tmp/pt -rs \
  tests/test_calibrate_gpu.py tests/test_validate_gpu.py 2>&1 | tee "$OUT/pytest-gpu.log"
cp /tmp/pt/gpu0/quick.yaml "$OUT/quick.yaml" 2>/dev/null || echo "no quick profile"
