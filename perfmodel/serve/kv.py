"""The paged KV cache: how many blocks an engine gets, from GPU memory, weights and activations.

capacity = (memory × fraction − weights − activation workspace) / KV bytes per token, in blocks
of block_size tokens, by each engine's own rule (EngineFacts.memory_rule):
- vLLM: total × gpu_memory_utilization − weights − the peak activations of a profiling forward
  at max_num_batched_tokens (vllm/v1/worker/gpu_worker.py determine_available_memory).
- SGLang: total × mem_fraction_static − weights (model_runner.py profile_max_num_token).
- TensorRT-LLM: free_gpu_memory_fraction × (total − weights − activations).
Layers with a sliding window keep at most W tokens a sequence; they are left out of the per-token
bytes (their W-token share is small beside a full layer's). Ignored: non-torch memory (cuBLAS
and NCCL workspaces, CUDA-graph pools), which shrink the real pool by a few hundred MB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfmodel.cost.precision import Precision
from perfmodel.cost.phases import memory
from perfmodel.cost.workload import Workload
from perfmodel.errors import WorkloadError
from perfmodel.hardware.gpu import GpuSpec
from perfmodel.model.spec import ModelSpec
from perfmodel.serve.engines import EngineFacts


@dataclass(frozen=True)
class KvPlan:
    """The KV pool of one engine instance: blocks of block_size tokens."""

    blocks: int
    block_size: int
    bytes_per_token: float
    weights_bytes: float
    workspace_bytes: float
    pool_bytes: float
    memory_bytes: float = 0.0  # the GPU's whole memory

    @property
    def tokens(self) -> int:
        return self.blocks * self.block_size


def activation_bytes(spec: ModelSpec, precision: Precision, tokens: int, seqs: int) -> float:
    """Peak activations of one forward over `tokens` tokens: the widest per-token tensor pair
    (gate/up output and its activation, or QKV) in the base dtype, plus fp32 logits and
    probabilities for `seqs` sampled rows (vLLM's dummy sampler run)."""
    widest = 0
    for layer, _ in spec.layers:
        mlp, attn = layer.mlp, layer.attention
        width = mlp.intermediate_size * (3 if not mlp.num_experts else
                                         3 * max(1, mlp.top_k))
        widest = max(widest, width, attn.q_dim + 2 * attn.num_kv_heads * attn.head_dim
                     + spec.hidden_size)
    return tokens * widest * precision.base_bytes + seqs * spec.vocab_size * 4 * 2


def kv_bytes_per_token(spec: ModelSpec, precision: Precision) -> float:
    """KV bytes a token takes across the full-attention layers (windowed layers left out)."""
    full = [(layer, count) for layer, count in spec.layers if not layer.attention.window]
    return sum(count * layer.attention.kv_cache_elems_per_token
               for layer, count in (full or spec.layers)) * precision.kv_bytes


def kv_plan(spec: ModelSpec, precision: Precision, gpu: GpuSpec, facts: EngineFacts,
            weights: float | None = None) -> KvPlan:
    """The engine's KV pool on one GPU, or a WorkloadError when the weights leave no room.
    On many GPUs spec is the model whose KV one GPU holds (its shard, or the fullest pipeline
    stage's) and weights the fullest GPU's (serve/ranks.py)."""
    if weights is None:
        weights = memory(spec, precision, gpu, Workload(1, 1, 1)).weights_bytes
    per_token = kv_bytes_per_token(spec, precision)
    work = activation_bytes(spec, precision, facts.max_num_batched_tokens, facts.max_num_seqs)
    total = gpu.mem_bytes
    if facts.memory_rule == "static":
        pool, work = total * facts.memory_fraction - weights, 0.0
    elif facts.memory_rule == "free":
        pool = facts.memory_fraction * (total - weights - work)
    else:
        pool = total * facts.memory_fraction - weights - work
    blocks = int(pool // (per_token * facts.block_size)) if pool > 0 else 0
    if blocks < 1:
        raise WorkloadError(
            f"no room for a KV cache: weights {weights / 1e9:.1f} GB + activations "
            f"{work / 1e9:.1f} GB leave nothing of {total * facts.memory_fraction / 1e9:.1f} GB "
            f"on one {gpu.name} ({facts.name}'s memory fraction {facts.memory_fraction:g} of "
            f"{total / 1e9:.1f} GB); quantize (--precision), raise --gpu-memory-utilization or "
            "shard (--tp)")
    return KvPlan(blocks, facts.block_size, per_token, weights, work, pool, total)


def blocks_for(tokens: int, block_size: int) -> int:
    return math.ceil(tokens / block_size)
