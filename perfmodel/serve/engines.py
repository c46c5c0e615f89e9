"""Scheduler defaults and facts of each serving engine, each with the file and release it is from.

These are facts read from the engines' code (vllm-project/vllm, sgl-project/sglang,
NVIDIA/TensorRT-LLM), not fits. Whatever a user passes on the command line overrides them.
The one fitted number, the host overhead per engine step (HOST_OVERHEAD_S), lives in
perfmodel/fitted.py with the rule that fitted it (docs/serving.md); serve/common.py reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from perfmodel.errors import WorkloadError

GIB = 1024 ** 3


def vllm_capture_sizes(largest: int = 512) -> tuple[int, ...]:
    """vLLM's default cudagraph_capture_sizes: [1, 2, 4] + range(8, 256, 8) + range(256,
    largest + 1, 16) (vllm/config/compilation.py, v0.10–v0.12; max_cudagraph_capture_size 512)."""
    sizes = [1, 2, 4] + list(range(8, 256, 8)) + list(range(256, largest + 1, 16))
    return tuple(s for s in sizes if s <= largest)


def sglang_capture_sizes(largest: int = 256) -> tuple[int, ...]:
    """SGLang's default cuda_graph_bs: [1, 2, 4, 8, 12] + range(16, 257, 8) + range(272, 512, 16)
    capped at cuda_graph_max_bs (python/sglang/srt/model_executor/cuda_graph_runner.py, v0.5)."""
    sizes = [1, 2, 4, 8, 12] + list(range(16, 257, 8)) + list(range(272, 513, 16))
    return tuple(s for s in sizes if s <= largest)


@dataclass(frozen=True)
class EngineFacts:
    """One engine's scheduler, as its defaults set it for one GPU.

    policy: "vllm" (V1: token budget, chunked prefill mixed into decode steps, decode first,
    preempt-and-recompute when blocks run out), "sglang" (prefill batches and decode batches
    alternate, new-token-ratio admission, retract on a full cache), "trtllm" (in-flight batching,
    GUARANTEED_NO_EVICT: a request is admitted only if its whole prompt + output fits).
    memory_rule: how the KV pool is sized (kv.py): "utilization" (vLLM: total × u − weights −
    activations), "static" (SGLang: total × mem_fraction_static − weights), "free" (TRT-LLM:
    free_gpu_memory_fraction of what weights and activations leave).
    """

    name: str
    policy: str
    max_num_seqs: int
    max_num_batched_tokens: int
    memory_fraction: float
    memory_rule: str
    block_size: int
    chunked_prefill: bool
    capture_sizes: tuple[int, ...]
    pad_mixed: bool  # CUDA graphs also cover mixed prefill+decode steps (vLLM piecewise/full)
    mixed: bool  # decoders ride in prefill steps (SGLang only with --enable-mixed-chunk)
    kernels: str  # the cost.serving_engines preset its kernels are timed with
    sources: tuple[str, ...]

    def with_knobs(self, **knobs: Any) -> "EngineFacts":
        """These facts with the user's overrides (None keeps the default)."""
        known = {k: v for k, v in knobs.items() if v is not None}
        bad = sorted(set(known) - set(self.__dataclass_fields__))
        if bad:
            raise WorkloadError(f"unknown engine knob {bad[0]!r}; use --max-num-seqs, "
                                "--max-num-batched-tokens, --gpu-memory-utilization, "
                                "--block-size or --chunked-prefill")
        for key in ("max_num_seqs", "max_num_batched_tokens", "block_size"):
            if key in known and (not isinstance(known[key], int) or known[key] < 1):
                raise WorkloadError(f"--{key.replace('_', '-')} must be a whole number ≥ 1")
        frac = known.get("memory_fraction")
        if frac is not None and not 0 < frac <= 1:
            raise WorkloadError("--gpu-memory-utilization must be in (0, 1]")
        return replace(self, **known)


def vllm(mem_bytes: float) -> EngineFacts:
    big = mem_bytes >= 70 * GIB
    return EngineFacts(
        "vllm", "vllm", 1024 if big else 256, 8192 if big else 2048, 0.9, "utilization", 16,
        True, vllm_capture_sizes(512), True, True, "vllm",
        ("max_num_seqs 1024 / max_num_batched_tokens 8192 for the API server on GPUs of ≥ 70 GiB "
         "(256 / 2048 below): vllm/engine/arg_utils.py EngineArgs.get_batch_defaults, v0.11",
         "gpu_memory_utilization 0.9, block_size 16: vllm/config/cache.py, v0.11",
         "V1 always chunks prefill: arg_utils.py _set_default_args_v1 (v0.9); scheduler: "
         "vllm/v1/core/sched/scheduler.py (running first, then waiting; preempt the last "
         "running request and recompute when blocks run out)",
         "cudagraph_capture_sizes [1,2,4]+8..248 step 8+256..512 step 16: "
         "vllm/config/compilation.py, v0.11 (piecewise graphs also cover mixed steps)"))


def sglang_memory(mem_bytes: float, tp: int = 1, pp: int = 1, dp: int = 1
                  ) -> tuple[int, int, float]:
    """SGLang's memory-dependent defaults: (chunked_prefill_size, cuda_graph_max_bs,
    mem_fraction_static). python/sglang/srt/server_args.py _handle_gpu_memory_settings (the
    2026 releases, with piecewise CUDA graphs): by GPU memory in MiB, chunk 2048 / 2048 / 4096 /
    8192 / 16384 and cuda_graph_max_bs 8 / 24 (80 at tp ≥ 4) / 32 (160) / 256 (512) / 512 below
    20 / 35 / 60 / 160 GiB / above; reserved MiB = 512 + 1.5·max(chunk, 2048) + 2·max_bs +
    1024·tp·pp/8 (+ 3·max_bs·dp with DP attention, + 1.5·max_bs·dp more when max_bs > 300), at
    least 10 GiB above 60 GiB; mem_fraction_static = (memory − reserved) / memory, 3 decimals.
    Not counted: the piecewise-CUDA-graph term (8 MiB a captured size, when enabled)."""
    mib = mem_bytes / 1024 ** 2
    big = tp >= 4
    chunk, max_bs = ((2048, 8) if mib < 20 * 1024 else (2048, 80 if big else 24)
                     if mib < 35 * 1024 else (4096, 160 if big else 32) if mib < 60 * 1024
                     else (8192, 512 if big else 256) if mib < 160 * 1024 else (16384, 512))
    reserved = 512 + 1.5 * max(chunk, 2048) + 2 * max_bs + 1024 * tp * pp / 8
    if dp > 1:
        reserved += 3 * max_bs * dp + (1.5 * max_bs * dp if max_bs > 300 else 0.0)
    if mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return chunk, max_bs, round((mib - reserved) / mib, 3)


def sglang(mem_bytes: float, tp: int = 1, pp: int = 1, dp: int = 1) -> EngineFacts:
    chunk, max_bs, fraction = sglang_memory(mem_bytes, tp, pp, dp)
    return EngineFacts(
        "sglang", "sglang", 4096, chunk, fraction, "static", 1, True,
        sglang_capture_sizes(max_bs), False, False, "sglang",
        ("mem_fraction_static = (gpu_mem − reserved) / gpu_mem, reserved = 512 MiB + 1.5 × "
         "chunked_prefill_size + 2 × cuda_graph_max_bs + tp·pp/8 GiB (+ DP-attention terms), "
         "at least 10 GiB above 60 GiB; chunked_prefill_size 8192 and cuda_graph_max_bs 256 "
         "(512 at tp ≥ 4) on 60-160 GiB GPUs: python/sglang/srt/server_args.py "
         "_handle_gpu_memory_settings, 2026 releases",
         "page_size 1 (token granularity): server_args.py, v0.5",
         "new-token ratio 0.7 decaying to 0.7 × 0.14 over 600 decode steps, remaining output "
         "clipped at 4096: python/sglang/srt/environ.py + managers/scheduler.py, v0.5",
         "prefill and decode batches alternate unless --enable-mixed-chunk: "
         "managers/scheduler.py get_next_batch_to_run, v0.5"))


def trtllm(mem_bytes: float) -> EngineFacts:
    return EngineFacts(
        "trtllm", "trtllm", 2048, 8192, 0.9, "free", 32, False,
        (1, 2, 4, 8, 16, 32, 64, 128), False, True, "trtllm",
        ("max_batch_size 2048, max_num_tokens 8192: tensorrt_llm/llmapi/llm_args.py, v1.0",
         "KvCacheConfig.free_gpu_memory_fraction 0.9 of the memory free after the weights: "
         "docs/source/1.0/examples/kvcacheconfig.md, v1.0; tokens_per_block 32: llm_args.py",
         "in-flight batching, capacity scheduler GUARANTEED_NO_EVICT (reserves prompt + output "
         "blocks at admission), enable_chunked_prefill False: llm_args.py, v1.0",
         "CUDA graphs for decode-only batches of 1..128 (CudaGraphConfig batch sizes), no "
         "padding by default: llm_args.py, v1.0"))


def trtllm_bench(facts: EngineFacts, *, mem_bytes: float, weights_bytes: float,
                 kv_bytes_per_token: float, pp: int, isl: float, osl: float, longest: int,
                 fraction: float = 0.9) -> EngineFacts:
    """The max_batch_size and max_num_tokens that `trtllm-bench throughput` applies when none
    are given (the engine's max-throughput tables are measured with it): requests that fit the
    KV cache at the dataset's mean isl + osl, R = fraction · (memory − weights) / (KV bytes a
    token · (isl + osl)), then raw_bs = min(R, 4096) / pp rounded up to 32 (at least 64) below
    256, to 128 below 1024, else to 256; raw_tokens = min(raw_bs · (1 + isl / osl), 32768)
    rounded up to 256 (at least 2048) below 4096, to 512 below 8192, else to 1024
    (tensorrt_llm/bench/build/tuning.py calc_engine_setting + finetune_setting, v0.20-v1.0;
    kv_cache_free_gpu_mem_fraction 0.90: bench/benchmark/throughput.py). Without chunked
    context max_num_tokens is raised to the longest prompt + max_batch_size
    (bench/benchmark/utils/general.py get_settings, v0.20-v1.0; chunking is off by default)."""
    requests = fraction * (mem_bytes - weights_bytes) / (kv_bytes_per_token * (isl + osl))
    raw_bs = min(requests, 4096) / pp
    bs = (max(64, 32 * math.ceil(raw_bs / 32)) if raw_bs < 256 else
          128 * math.ceil(raw_bs / 128) if raw_bs < 1024 else 256 * math.ceil(raw_bs / 256))
    raw = min(raw_bs * (1 + isl / osl), 32768)
    tokens = (max(2048, 256 * math.ceil(raw / 256)) if raw < 4096 else
              512 * math.ceil(raw / 512) if raw < 8192 else 1024 * math.ceil(raw / 1024))
    if not facts.chunked_prefill:
        tokens = max(tokens, longest + bs)
    return replace(facts, max_num_seqs=bs, max_num_batched_tokens=tokens, sources=(
        *facts.sources, f"trtllm-bench throughput settings for mean ISL {isl:g} / OSL {osl:g}: "
        f"max_batch_size {bs}, max_num_tokens {tokens} (tensorrt_llm/bench/build/tuning.py "
        "calc_engine_setting, bench/benchmark/utils/general.py get_settings, v0.20-v1.0)"))


ENGINES = {"vllm": vllm, "sglang": sglang, "trtllm": trtllm}


def engine_facts(name: str, mem_bytes: float, tp: int = 1, pp: int = 1,
                 dp: int = 1) -> EngineFacts:
    """The defaults of engine `name` on a GPU of mem_bytes in a deployment of tp·pp·dp GPUs
    (SGLang's memory rule depends on them), or a WorkloadError naming the choices."""
    if name not in ENGINES:
        raise WorkloadError(f"unknown serving engine {name!r}; use --engine "
                            f"{' | '.join(ENGINES)}")
    if name == "sglang":  # its tp_size counts the attention-DP ranks (--enable-dp-attention)
        return sglang(mem_bytes, tp * dp, pp, dp)
    return ENGINES[name](mem_bytes)
