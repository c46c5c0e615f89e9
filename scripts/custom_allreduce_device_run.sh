#!/usr/bin/env bash
# One device call (kind nvidia-h100-x2 or -x4; sizes 2, and 4 where 4 GPUs are visible) for the engines' custom all-reduce: calibrate-gpu --gpus 2
# and 4 (NCCL tables + the symmetric-memory one/two-shot all-reduce) into $OUT/collectives/,
# the independent NCCL all-reduce check, and the GPU tests. NVLink multicast stays off.
# Usage (device tool, repo root): bash scripts/custom_allreduce_device_run.sh
#   [--calibrate-only | --h100-only [--no-tests]]   (--h100-only stops at once on other GPUs)
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD" NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 \
  NVSHMEM_DISABLE_NVLS=1
OUT="${OUT:-/tmp/perfmodel-out}"; mkdir -p "$OUT"
{
  date -u; nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv; nvidia-smi topo -m
  python3 -c "import torch; print('torch', torch.__version__, 'nccl', torch.cuda.nccl.version())
import torch.distributed._symmetric_memory as s
print('symm_mem ops', sorted(o for o in dir(torch.ops.symm_mem) if 'all_reduce' in o))"
} 2>&1 | tee "$OUT/env.log"
NAME=$(python3 -c "import torch; n = torch.cuda.get_device_name(0)
print('h100-sxm-measured' if 'H100' in n else 'h200-measured' if 'H200' in n else 'unknown')")
echo "profile $NAME" | tee -a "$OUT/env.log"
if [ "${1:-}" = "--h100-only" ] && [ "$NAME" != "h100-sxm-measured" ]; then echo "not H100: stop"; exit 0; fi
NG=$(nvidia-smi -L | wc -l); SIZES=$( [ "$NG" -ge 4 ] && echo "2 4" || echo "2")
for n in $SIZES; do
  timeout 200 python3 -c "from perfmodel.cli import main; main()" calibrate-gpu --gpus "$n" \
    --name "$NAME" --out "$OUT/$NAME.yaml" 2>&1 | tee -a "$OUT/calibrate.log"
done
cat "$OUT/collectives/$NAME.yaml"
[ "${1:-}" = "--calibrate-only" ] && exit 0
[ "${2:-}" = "--no-tests" ] && NO_TESTS=1
for n in $SIZES; do
  timeout 90 torchrun --standalone --nproc_per_node="$n" scripts/allreduce_check.py \
    "$OUT/allreduce_check.jsonl" "$n" > "$OUT/check$n.log" 2>&1 || echo "check $n failed"
done
cat "$OUT/allreduce_check.jsonl"
[ -n "${NO_TESTS:-}" ] && exit 0
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider -rs tests/test_symm_allreduce_gpu.py \
  2>&1 | tee "$OUT/pytest-gpu.log"
