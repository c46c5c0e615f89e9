#!/usr/bin/env bash
# The vLLM 0.26.0 runs behind configs/engines/vllm-0.26.0-h200.yaml, on a lent H200 with the
# bundle of ../shared/engines (README there): the parts part00..part02 copied to /tmp/p by
# earlier commands, part03 carried in .engine/ with this call.
# usage (on the GPU machine, from the repository root): bash tools/vllm_h200.sh STAGE
#   STAGE 1: unpack; time vLLM's kernels; Llama-3.1-8B bf16
#   STAGE 2: Qwen3-30B-A3B bf16; Llama-3.1-8B fp8 (--quantization fp8)
#   STAGE 3: Qwen3-32B bf16
#   STAGE 4: Llama-3.1-8B bf16 with prefix caching off (loaded points without cache hits)
#   STAGE 5: Llama-3.1-8B bf16: shared prefixes of 0, 50 and 90% of a 2048-token prompt; Gamma
#            arrivals (burstiness 0.5, 1, 4) with lengths drawn at range ratio 0.5; plain decode
#            at 1, 8 and 32 clients (the baseline of stage 6)
#   STAGE 6: Llama-3.1-8B bf16 with a Llama-3.2-1B-shaped draft model (k = 3, then 5) whose
#            acceptance vLLM's synthetic rejection sampler sets (mean acceptance length 2.5, 2)
#   STAGE 8: Llama-3.1-8B bf16 on the V1 model runner without async scheduling (what vLLM 0.26
#            falls back to with a draft model), plain decode; the draft model at k = 1
#   STAGE 7: two Llama-3.1-8B bf16 servers on the one GPU, each --gpu-memory-utilization 0.45,
#            each benchmarked by its own client at the same points at the same time
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
  [ -d $runs/.$1.partial ] && tail -n 20 $runs/.$1.partial/bench.log $runs/.$1.partial/server.log
  pkill -f vllm.entrypoints.cli.main; sleep 2  # a server a timeout orphaned holds the GPU
  tar czf "$OUT/runs$stage.tgz" -C /tmp runs$stage
}
spec() { echo "--speculative-config '{\"method\": \"draft_model\", \"model\": \"/tmp/draft\", \"num_speculative_tokens\": $1, \"rejection_sample_method\": \"synthetic\", \"synthetic_acceptance_length\": $2}'"; }
draft() { python3 -c "import json,pathlib; from perfmodel.calibrate.engine_run import weightless_model as w; \
w(json.load(open('configs/models/meta-llama/Llama-3.2-1B.json')), pathlib.Path('/tmp/draft'))"; }
SMALL="128:128:1:4 1024:256:1:4 8192:128:1:3 1024:256:16:48 1024:256:64:128 4096:256:32:64 2048:128:128:256 1024:256:256:60:2"
case $stage in
  1k) timeout 120 python3 -m perfmodel.calibrate.engine_kernels "$OUT/engine-kernels.json" --quick 2>&1 | tail -4 ;;
  1)
     cal llama8b-bf16 meta-llama/Llama-3.1-8B "" "$(python3 -c 'from perfmodel.calibrate.engine_bench import DEFAULT_POINTS as p; print(p)')" 430 ;;
  2) cal qwen30b-a3b-bf16 Qwen/Qwen3-30B-A3B "" "128:128:1:8 1024:256:1:6 8192:256:1:4 1024:256:16:64 1024:256:64:192 1024:256:256:512 4096:512:32:96 2048:128:128:384 1024:256:256:80:4" 300
     cal llama8b-fp8 meta-llama/Llama-3.1-8B "--quantization fp8" "$SMALL" 265 ;;
  4) cal llama8b-bf16-nocache meta-llama/Llama-3.1-8B "--no-enable-prefix-caching" "1024:256:64:192 2048:128:128:384 4096:512:32:96 1024:256:16:64 1024:256:256:512" 215 ;;
  3) cal qwen32b-bf16 Qwen/Qwen3-32B "" "$SMALL" 540 ;;
  5) cal llama8b-bf16-features meta-llama/Llama-3.1-8B "" "2048:128:1:6 1024:128:1:6+p1024 205:128:1:6+p1843 \
       2048:128:32:128 1024:128:32:128+p1024 205:128:32:128+p1843 2048:128:256:160:8 1024:128:256:160:8+p1024 \
       205:128:256:160:8+p1843 1024:256:256:240:12+b0.5+r0.5 1024:256:256:240:12+r0.5 1024:256:256:240:12+b4+r0.5 \
       1024:256:1:6 1024:256:8:32 1024:256:32:96" 560 ;;
  6) draft || exit 1
     cal llama8b-bf16-draft-k3-a2.5 meta-llama/Llama-3.1-8B "$(spec 3 2.5)" "1024:256:1:6 1024:256:8:32 1024:256:32:96" 270
     cal llama8b-bf16-draft-k5-a2 meta-llama/Llama-3.1-8B "$(spec 5 2)" "1024:256:1:6 1024:256:8:32 1024:256:32:96" 270 ;;
  8) VLLM_USE_V2_MODEL_RUNNER=0 cal llama8b-bf16-sync-v1runner meta-llama/Llama-3.1-8B "--no-async-scheduling" \
       "1024:256:1:6 1024:256:8:32 1024:256:32:96" 200
     draft || exit 1
     cal llama8b-bf16-draft-k1-a1.5 meta-llama/Llama-3.1-8B "$(spec 1 1.5)" "1024:256:8:32 1024:256:32:96" 240 ;;
  7) python3 -c "import json,pathlib; from perfmodel.calibrate.engine_run import weightless_model as w; \
w(json.load(open('configs/models/meta-llama/Llama-3.1-8B.json')), pathlib.Path('/tmp/m8b'))" || exit 1
     pts="1024:256:32:128 1024:256:64:256 1024:256:256:512 2048:128:128:384"
     for port in 8101 8102; do
       d=$runs/llama8b-bf16-replica$port; mkdir -p $d/results
       printf '{"engine": "vllm", "model": "meta-llama/Llama-3.1-8B", "label": "replica%s", "serve_args": ["--gpu-memory-utilization", "0.45"], "points": "%s", "gpu": "%s", "date": "%s", "client": "one of two vllm bench serve clients run at the same time against two servers on one GPU"}' \
         $port "$pts" "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)" "$(date -u +%F)" > $d/run.json
       python3 -m vllm.entrypoints.cli.main serve /tmp/m8b --load-format dummy --port $port --served-model-name m \
         --gpu-memory-utilization 0.45 > $d/server.log 2>&1 &
       for _ in $(seq 1 120); do curl -sf http://127.0.0.1:$port/health > /dev/null && break; sleep 2; done
       curl -sf http://127.0.0.1:$port/health > /dev/null || { tail -20 $d/server.log; exit 1; }
     done
     pids=""
     for port in 8101 8102; do
       d=$runs/llama8b-bf16-replica$port
       timeout 400 python3 -m perfmodel.calibrate.engine_bench http://127.0.0.1:$port /tmp/m8b $d/results replica$port $port $pts > $d/bench.log 2>&1 &
       pids="$pids $!"
     done
     wait $pids
     sleep 1; tail -n 3 $runs/*/bench.log; ls $runs/*/results | head -20
     pkill -f vllm.entrypoints.cli.main; sleep 2
     tar czf "$OUT/runs$stage.tgz" -C /tmp runs$stage ;;
esac
