"""When a serving engine all-reduces with its own kernels instead of NCCL: facts of each engine.

vLLM, SGLang and TensorRT-LLM run a TP all-reduce of small and mid-sized messages with custom
kernels over peer (NVLink) memory: one-shot (every rank reads all n buffers and reduces them
itself) or two-shot (reduce-scatter then all-gather through the peers' buffers), a few µs where
NCCL needs ~18-21 µs (configs/gpus/collectives/h200-measured.yaml). Larger messages, other
world sizes and boxes without NVLink go to NCCL. Bytes below are one rank's buffer (M·D·2 for
a bf16 activation); "NVLink" means every pair of the group is linked (NVSwitch boxes).

vLLM, v0.11 – v0.18 (vllm/distributed/device_communicators/; order in cuda_communicator.py
CudaCommunicator.all_reduce: custom all-reduce, then torch symmetric memory, then NCCL):
- custom_all_reduce.py CustomAllreduce: world sizes 2, 4, 6, 8 on one node; more than 2 GPUs
  need full NVLink (2 may be PCIe); should_custom_ar: bytes < max_size, max_size 8 MiB, capped
  when symmetric memory is on by all_reduce_utils.py CUSTOM_ALL_REDUCE_MAX_SIZES: sm90 (Hopper)
  2: 64 MiB, 4: 32 MiB, 6: 512 KiB, 8: 256 KiB; sm100 2 and 4: 2 MiB, 6 and 8: 1 MiB.
  csrc/custom_all_reduce.cuh: 2 GPUs always one-shot; with NVLink one-shot below 512 KiB at
  ≤ 4 GPUs and below 256 KiB at ≤ 8, two-shot above.
- symm_mem.py SymmMemCommunicator: on by default (envs.py VLLM_ALLREDUCE_USE_SYMM_MEM "1" in
  the late-2025/2026 files read; "0" in the v0.10-era ones, the switch came about v0.11); the
  custom AR gets symm_mem_enabled from cuda_communicator.py; bf16 only; bytes ≤ SYMM_MEM_ALL_REDUCE_MAX_SIZES: sm90 2: 64 MiB, 4: 32 MiB, 6 and 8:
  64 MiB; sm100 2: 8 MiB, 4: 32 MiB, 6 and 8: 128 MiB; disabled where the buffer has no
  multicast address (needs NVSwitch multicast); two_shot_all_reduce_ at 2 GPUs,
  multimem_all_reduce_ (NVLink SHARP) at 4, 6, 8 on sm90.
  So on Hopper the custom family covers up to 64 MiB at 2 GPUs, 32 MiB at 4, 64 MiB at 8.
SGLang, v0.5 (python/sglang/srt/distributed/device_communicators/custom_all_reduce.py, forked
  from vLLM v0.6.4): world sizes 2, 4, 6, 8, > 2 GPUs need full NVLink, bytes < _MAX_CAR_SIZE
  = 8 MiB on CUDA (sgl-kernel's copy of vLLM's one-/two-shot kernels); server_args.py
  enable_torch_symm_mem False and disable_custom_all_reduce False by default: NCCL above 8 MiB.
TensorRT-LLM, v1.0 (PyTorch backend: tensorrt_llm/_torch/distributed/ops.py AllReduce; strategy
  AUTO, llmapi/llm_args.py allreduce_strategy default 'AUTO'; cpp/tensorrt_llm/thop/
  allreduceOp.cpp AllreduceOp::selectImplementation, 1.0-era copy): NCCL when the
  message exceeds the workspace (common/customAllReduceUtils.h getMaxRequiredWorkspaceSize:
  16·10⁶ B at ≤ 2 GPUs, 8·10⁶ B above) or P2P/NVLink is missing; else MIN_LATENCY (its
  one-shot/two-shot kernels, fused with the residual add + RMSNorm) at 2 GPUs, and above 2 GPUs
  only for ≤ 128 tokens (ALLREDUCE_AUTO_HEURISTIC_MIN_LATENCY_THRESHOLD_TOKEN_NUM), NCCL beyond.
  Later releases (1.1+) choose from a tuned lookup table with a 64 MiB workspace: not modelled.

The time of the custom path comes from the profile's custom_all_reduce table (calibrate/
symm_allreduce.py: PyTorch's symmetric-memory one-shot/two-shot, the faster per size; a stand-in
of the same algorithm family, not the engines' code). vLLM's multimem path (4-8 GPUs, 256 KiB -
64 MiB on Hopper) is costed from the same table: multicast stays off on the lent boxes, so it
is not measured. TensorRT-LLM's decoder layers fuse the residual add + RMSNorm that follows each
TP all-reduce into it (tensorrt_llm/_torch/models/modeling_llama.py: AllReduceParams(fusion_op=
AllReduceFusionOp.RESIDUAL_RMS_NORM) after attention and before the next layer's input norm;
NCCL runs it as a separate kernel, allreduceOp.cpp): where its custom kernels take the
all-reduce, the layer's attn_norm and mlp_norm cost nothing of their own (fused_norms, applied
by collective.EngineComm in serve's step and in predict --engine trtllm), the fused kernel timed
as the plain custom all-reduce. Not modelled: fp16
activations (vLLM's symmetric path is bf16 only),
ROCm's quick all-reduce.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = float(1 << 20)


@dataclass(frozen=True)
class CustomAllReduce:
    """Where one engine's all-reduce takes its custom kernels: by link family and world size,
    the largest message (bytes, inclusive) it takes; above 2 GPUs, optionally at most
    max_tokens rows (TensorRT-LLM's AUTO heuristic)."""

    engine: str
    limits: tuple[tuple[str, tuple[tuple[int, float], ...]], ...]
    max_tokens_above_two: int | None = None
    # the residual add + RMSNorm after the all-reduce runs inside the custom kernel
    fused_norms: tuple[str, ...] = ()

    def max_bytes(self, link_kind: str, gpus: int) -> float | None:
        """The largest message taken over `gpus` GPUs on a link of this kind, or None."""
        family = "pcie" if link_kind.startswith("pcie") else link_kind
        for kind, sizes in self.limits:
            if kind == family:
                return dict(sizes).get(gpus)
        return None

    def takes(self, gpus: int, nbytes: float, link_kind: str,
              tokens: float | None = None) -> bool:
        """Whether an all-reduce of nbytes (tokens rows) over gpus GPUs runs the custom kernels."""
        top = self.max_bytes(link_kind, gpus)
        if top is None or nbytes > top:
            return False
        cap = self.max_tokens_above_two
        return not (cap is not None and gpus > 2 and tokens is not None and tokens > cap)


def _sizes(**by_gpus: float) -> tuple[tuple[int, float], ...]:
    return tuple((int(k[1:]), v) for k, v in by_gpus.items())


VLLM = CustomAllReduce("vllm", (
    ("nvlink4", _sizes(g2=64 * MIB, g4=32 * MIB, g6=64 * MIB, g8=64 * MIB)),
    ("nvlink5", _sizes(g2=8 * MIB, g4=32 * MIB, g6=128 * MIB, g8=128 * MIB)),
    ("nvlink3", _sizes(g2=8 * MIB - 1, g4=8 * MIB - 1, g6=8 * MIB - 1, g8=8 * MIB - 1)),
    ("pcie", _sizes(g2=8 * MIB - 1))))
_CAR_8MIB = _sizes(g2=8 * MIB - 1, g4=8 * MIB - 1, g6=8 * MIB - 1, g8=8 * MIB - 1)
SGLANG = CustomAllReduce("sglang", (("nvlink3", _CAR_8MIB), ("nvlink4", _CAR_8MIB),
                                    ("nvlink5", _CAR_8MIB), ("pcie", _sizes(g2=8 * MIB - 1))))
_TRT_WORKSPACE = _sizes(g2=16e6, g4=8e6, g8=8e6)
TRTLLM = CustomAllReduce("trtllm", (("nvlink3", _TRT_WORKSPACE), ("nvlink4", _TRT_WORKSPACE),
                                    ("nvlink5", _TRT_WORKSPACE)), max_tokens_above_two=128,
                         fused_norms=("attn_norm", "mlp_norm"))

CUSTOM_ALLREDUCE = {p.engine: p for p in (VLLM, SGLANG, TRTLLM)}


def custom_allreduce_for(engine: str | None) -> CustomAllReduce | None:
    """The engine's custom all-reduce rule, or None (torch, tuned and no engine: NCCL only)."""
    return CUSTOM_ALLREDUCE.get(engine) if engine else None
