#!/usr/bin/env bash
# The vLLM 0.26.0 runs behind configs/engines/vllm-0.26.0-h200.yaml, on a lent H200 with the
# bundle of ../shared/engines (README there): the parts part00..part02 copied to /tmp/p by
# earlier commands, part03 carried in .engine/ with this call.
# usage (on the GPU machine, from the repository root): bash tools/vllm_h200.sh STAGE
#   STAGE 1: unpack; time vLLM's kernels; Llama-3.1-8B bf16
#   STAGE 2: Qwen3-30B-A3B bf16; Llama-3.1-8B fp8 (--quantization fp8)
#   STAGE 3: Qwen3-32B bf16
#   STAGE 4: Llama-3.1-8B bf16 with prefix caching off (loaded points without cache hits)
# Results: $OUT/runsN.tgz (every run folder: server.log, bench.log, run.json, one JSON a point).
set -u
stage=$1
if [ ! -d /tmp/site/vllm ]; then
  cp .engine/part03 /tmp/p/ 2>/dev/null
  mkdir -p /tmp/site && cat /tmp/p/part* | /tmp/p/zstd -dc | tar -C /tmp/site -xf - || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1 \
       VLLM_NO_USAGE_STATS=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv > "$OUT/gpu$stage.csv"
runs=/tmp/runs$stage; mkdir -p $runs
cal() {  # LABEL MODEL SERVE_ARGS POINTS SECONDS
  timeout "$5" python3 -c "from perfmodel.cli import main; main()" calibrate-engine "$2" --label "$1" --runs $runs --serve-args "$3" \
    --points "$4" 2>&1 | tr '\r' '\n' | grep -v "━" | tail -5
  ls $runs/$1/results 2>/dev/null | wc -l
  [ -d $runs/.$1.partial ] && tail -20 $runs/.$1.partial/bench.log $runs/.$1.partial/server.log
  pkill -f vllm.entrypoints.cli.main; sleep 2  # a server a timeout orphaned holds the GPU
  tar czf "$OUT/runs$stage.tgz" -C /tmp runs$stage
}
SMALL="128:128:1:4 1024:256:1:4 8192:128:1:3 1024:256:16:48 1024:256:64:128 4096:256:32:64 2048:128:128:256 1024:256:256:60:2"
case $stage in
  1k) timeout 120 python3 -m perfmodel.calibrate.engine_kernels "$OUT/engine-kernels.json" --quick 2>&1 | tail -4 ;;
  1)
     cal llama8b-bf16 meta-llama/Llama-3.1-8B "" "$(python3 -c 'from perfmodel.calibrate.engine_bench import DEFAULT_POINTS as p; print(p)')" 430 ;;
  2) cal qwen30b-a3b-bf16 Qwen/Qwen3-30B-A3B "" "128:128:1:8 1024:256:1:6 8192:256:1:4 1024:256:16:64 1024:256:64:192 1024:256:256:512 4096:512:32:96 2048:128:128:384 1024:256:256:80:4" 300
     cal llama8b-fp8 meta-llama/Llama-3.1-8B "--quantization fp8" "$SMALL" 265 ;;
  4) cal llama8b-bf16-nocache meta-llama/Llama-3.1-8B "--no-enable-prefix-caching" "1024:256:64:192 2048:128:128:384 4096:512:32:96 1024:256:16:64 1024:256:256:512" 215 ;;
  3) cal qwen32b-bf16 Qwen/Qwen3-32B "" "$SMALL" 540 ;;
esac
