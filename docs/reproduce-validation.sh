#!/usr/bin/env bash
# The validation campaign behind docs/validation.md, on a CUDA box (the lent H100 / H200):
#   bash docs/reproduce-validation.sh PART OUT_DIR
# appends raw measurements to OUT_DIR/validation-<gpu>.jsonl; then, on any machine,
#   python -m perfmodel.validation_report
# rebuilds docs/validation.md from docs/data/validation-*.jsonl.
set -uo pipefail
part=${1:?part: h100-a, h100-b or h200}; out=${2:?output folder}
gpu=$(python3 -c "import torch; n=torch.cuda.get_device_name(); print('h200' if 'H200' in n else 'h100')")
log="$out/validation-$gpu.jsonl"
v() { PYTHONUNBUFFERED=1 python3 -m perfmodel.cli validate "$@" --out "$log" 2>&1 | tail -n 40; }
all_b=1,8,32,128; all_i=1024,8192,32768
case $part in
  h100-a)
    v meta-llama/Llama-3.2-1B --precision bf16 -b $all_b -i $all_i
    v meta-llama/Llama-3.2-1B --precision fp8 -b $all_b -i $all_i
    v meta-llama/Llama-3.1-8B --precision bf16 -b $all_b -i $all_i
    v meta-llama/Llama-3.1-8B --precision fp8 -b $all_b -i $all_i
    v meta-llama/Llama-3.1-8B --precision int8 -b 1,8,32 -i 1024,8192
    v Qwen/Qwen3-4B-Instruct-2507 --precision bf16 -b $all_b -i $all_i
    v Qwen/Qwen3-4B-Instruct-2507 --precision int8 -b 1,8,32 -i 1024,8192
    ;;
  h100-b)
    v Qwen/Qwen2.5-14B-Instruct --precision bf16 -b 1,8,32 -i 1024,8192,32768
    v Qwen/Qwen2.5-14B-Instruct --precision fp8 -b 1,8,32 -i 1024,8192
    v Qwen/Qwen3-30B-A3B --precision bf16 -b 1,8,32 -i 1024,8192
    v Qwen/Qwen3-30B-A3B --precision fp8 -b 1,8,32,128 -i 1024,8192
    v mistralai/Mistral-Small-24B-Instruct-2501 --precision bf16 -b 1,8 -i 1024,8192
    v google/gemma-3-27b-it --precision bf16 -b 1,8 -i 1024,8192
    v meta-llama/Llama-3.1-8B --precision int4 -b 1,8 -i 1024
    ;;
  h200)
    v meta-llama/Llama-3.1-8B --precision bf16 -b 1,8,32,128 -i 1024,8192
    v meta-llama/Llama-3.1-8B --precision fp8 -b 1,8,32 -i 1024,8192
    v Qwen/Qwen3-30B-A3B --precision bf16 -b 1,8,32 -i 1024,8192
    v Qwen/Qwen3-32B --precision fp8 -b 1,8 -i 1024,8192
    v mistralai/Mixtral-8x7B-v0.1 --precision bf16 -b 1,8 -i 1024
    ;;
esac
