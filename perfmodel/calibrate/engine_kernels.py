"""Time a serving engine's own kernels into profile tables (on a box where the engine imports).

`perfmodel calibrate-gpu` times this project's torch engine (cuBLAS through torch, torch's
SDPA, torch._scaled_mm). A serving engine launches its own: vLLM 0.26 runs fp8 GEMMs through
CUTLASS (`vllm._custom_ops.cutlass_scaled_mm`), attention through its FlashAttention-3 build
(`vllm.vllm_flash_attn.flash_attn_varlen_func`, paged KV cache of 16-token blocks) and routed
experts through its Triton fused MoE (`vllm.model_executor.layers.fused_moe.fused_experts`).
This module times those kernels on the shapes of calibrate-gpu's full plan and writes them in
the GPU profile's table format, so an engine profile's `tables:` replace the GPU profile's
tables of the same name for that engine (perfmodel/serve/engine_profile.py):

- `linear.fp8`: cutlass_scaled_mm of a per-tensor-quantized fp8 activation (M, K) against an
  fp8 weight (K, N) column-major, per-tensor scales, bf16 out: the GEMM alone, as the fp8 table
  of calibrate-gpu (the quantization kernel is priced on its own).
- `attention`: FA3 prefill (varlen, causal, T tokens of b sequences) and decode (one query
  token of b sequences over C cached tokens in a paged cache, block table shuffled), N=32 query
  heads, K=8 KV heads, H=128, bf16: calibrate-gpu's reference shapes.
- `fused_moe` (whole blocks: align, both grouped GEMMs, SiLU·mul and the weighted sum) at the
  MoE shapes of the models measured, per token count, bf16 and fp8; kept as evidence beside the
  op sum the estimate prices (docs/serving.md), not yet priced from.

Every timing uses calibrate's Timer.rotated (copies in one CUDA graph over rotating buffer
sets, median), the method of the GPU profile's tables. Each point that fails is a note.
Run: python -m perfmodel.calibrate.engine_kernels OUT.json [--quick]
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from typing import Any, Callable

from perfmodel.calibrate.plan import FULL_KN, FULL_MS
from perfmodel.calibrate.tables import attempt, release, series
from perfmodel.calibrate.timing import Timer

HEADS, KV_HEADS, HEAD_DIM, BLOCK = 32, 8, 128, 16
PREFILL = ((1, 512), (1, 2048), (1, 8192), (1, 32768), (4, 2048), (8, 512), (8, 2048),
           (16, 512), (4, 8192))
DECODE = tuple((b, c) for b in (1, 8, 32, 128, 256) for c in (256, 1024, 4096, 16384, 65536)
               if b * c <= 4 * 1024 * 1024)
MOE_SHAPES = ((128, 8, 2048, 768),)  # (E, top-k, hidden D, expert width F): Qwen3-30B-A3B
MOE_TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


def linear_fp8(timer: Timer, notes: list[str], ms=FULL_MS, kns=FULL_KN) -> dict[str, Any]:
    """The fp8 linear table {m, k_n, seconds} of vLLM's cutlass_scaled_mm."""
    import torch
    from vllm import _custom_ops as ops

    one = torch.ones(1, dtype=torch.float32, device=timer.device)
    rows = []
    for k, n in kns:
        weights: list[Any] = []

        def weight(i: int, k: int = k, n: int = n) -> Any:
            while len(weights) <= i:
                w = torch.randn(n, k, device=timer.device).to(torch.float8_e4m3fn)
                weights.append(w.t())  # (K, N) column-major, as vLLM stores it
            return weights[i]

        row = []
        for m in ms:
            def make(i: int, m: int = m, k: int = k) -> Callable[[], Any]:
                x = torch.randn(m, k, device=timer.device).to(torch.float8_e4m3fn)
                w = weight(i)
                return lambda: ops.cutlass_scaled_mm(x, w, one, one, torch.bfloat16)

            row.append(attempt(lambda: timer.rotated(make, n * k + m * k).median,
                               f"cutlass fp8 m={m} k={k} n={n}", notes, timer))
        rows.append(row)
        weights.clear()
        release(timer)
    return {"m": list(ms), "k_n": [list(kn) for kn in kns], "seconds": rows}


def _flash():
    from vllm.vllm_flash_attn import flash_attn_varlen_func
    return flash_attn_varlen_func


def attention_prefill(timer: Timer, notes: list[str], shapes=PREFILL) -> dict[str, Any]:
    """FA3 causal varlen prefill of b sequences of T tokens: points (b, T, seconds)."""
    import torch

    flash = _flash()
    cases = []
    for b, t in shapes:
        def make(i: int, b: int = b, t: int = t) -> Callable[[], Any]:
            q = torch.randn(b * t, HEADS, HEAD_DIM, dtype=torch.bfloat16, device=timer.device)
            k, v = (torch.randn(b * t, KV_HEADS, HEAD_DIM, dtype=torch.bfloat16,
                                device=timer.device) for _ in range(2))
            cu = torch.arange(0, b + 1, dtype=torch.int32, device=timer.device) * t
            return lambda: flash(q, k, v, max_seqlen_q=t, cu_seqlens_q=cu, max_seqlen_k=t,
                                 cu_seqlens_k=cu, causal=True, fa_version=3)

        nbytes = 2 * b * t * HEAD_DIM * (2 * HEADS + 2 * KV_HEADS)
        cases.append((f"FA3 prefill b={b} T={t}", (b, t), make, nbytes))
    return _attention("prefill", series(cases, timer, _quiet, notes))


def attention_decode(timer: Timer, notes: list[str], shapes=DECODE) -> dict[str, Any]:
    """FA3 decode, one query token of b sequences over C cached tokens in 16-token pages whose
    order is shuffled: points (b, C, seconds)."""
    import torch

    flash = _flash()
    cases = []
    for b, c in shapes:
        def make(i: int, b: int = b, c: int = c) -> Callable[[], Any]:
            pages = -(-c // BLOCK)
            kc, vc = (torch.randn(b * pages, BLOCK, KV_HEADS, HEAD_DIM, dtype=torch.bfloat16,
                                  device=timer.device) for _ in range(2))
            table = torch.randperm(b * pages, device=timer.device).to(torch.int32).view(b, pages)
            q = torch.randn(b, HEADS, HEAD_DIM, dtype=torch.bfloat16, device=timer.device)
            cu = torch.arange(0, b + 1, dtype=torch.int32, device=timer.device)
            used = torch.full((b,), c, dtype=torch.int32, device=timer.device)
            return lambda: flash(q, kc, vc, max_seqlen_q=1, cu_seqlens_q=cu, max_seqlen_k=c,
                                 seqused_k=used, causal=True, block_table=table, fa_version=3)

        nbytes = 2 * 2 * b * c * KV_HEADS * HEAD_DIM
        cases.append((f"FA3 decode b={b} C={c}", (b, c), make, nbytes))
    return _attention("decode", series(cases, timer, _quiet, notes))


def _quiet(label: str) -> None:
    """series' per-case step callback: this module prints per table, not per case."""


def _attention(phase: str, points) -> dict[str, Any]:
    return {"phase": phase, "kind": "gqa", "heads": HEADS, "kv_heads": KV_HEADS,
            "head_dim": HEAD_DIM, "v_head_dim": HEAD_DIM, "window": None, "sinks": False,
            "points": [list(p) for p in points]}


def fused_moe(timer: Timer, notes: list[str], shapes=MOE_SHAPES,
              tokens=MOE_TOKENS) -> list[dict[str, Any]]:
    """Whole Triton fused-MoE blocks (bf16, and fp8 W8A8 per-tensor) on random routing."""
    from vllm.model_executor.layers.fused_moe import fused_experts

    out = []
    for (experts, top_k, hidden, width), dtype in itertools.product(shapes, ("bf16", "fp8")):
        wbytes = experts * 3 * hidden * width * (1 if dtype == "fp8" else 2)

        def make_for(t: int) -> Callable[[int], Callable[[], Any]]:
            return lambda i: _moe_call(fused_experts, dtype, experts, top_k, hidden, width, t,
                                       timer.device)

        cases = [(f"fused_moe {dtype} E={experts} T={t}", (t,), make_for(t), wbytes)
                 for t in tokens]
        out.append({"experts": experts, "top_k": top_k, "hidden": hidden, "width": width,
                    "dtype": dtype,
                    "points": [list(p) for p in series(cases, timer, _quiet, notes)]})
    return out


def _moe_call(fused_experts, dtype, experts, top_k, hidden, width, tokens, device):
    import torch

    x = torch.randn(tokens, hidden, dtype=torch.bfloat16, device=device)
    w1 = torch.randn(experts, 2 * width, hidden, device=device) / hidden ** 0.5
    w2 = torch.randn(experts, hidden, width, device=device) / width ** 0.5
    logits = torch.randn(tokens, experts, device=device)
    weights, ids = torch.topk(torch.softmax(logits, -1), top_k, dim=-1)
    ids = ids.to(torch.int32)
    if dtype == "bf16":
        w1, w2 = w1.to(torch.bfloat16), w2.to(torch.bfloat16)
        return lambda: fused_experts(x, w1, w2, weights, ids)
    from vllm.model_executor.layers.fused_moe.config import fp8_w8a8_moe_quant_config

    one = torch.ones(experts, dtype=torch.float32, device=device)
    config = fp8_w8a8_moe_quant_config(w1_scale=one, w2_scale=one, a1_scale=one[:1],
                                       a2_scale=one[:1])
    w1, w2 = w1.to(torch.float8_e4m3fn), w2.to(torch.float8_e4m3fn)
    return lambda: fused_experts(x, w1, w2, weights, ids, quant_config=config)


def measure(quick: bool = False) -> dict[str, Any]:
    """Every table above on cuda:0, with the environment and the notes."""
    import torch
    import vllm

    props = torch.cuda.get_device_properties(0)
    timer = Timer("cuda:0", props.L2_cache_size)
    notes: list[str] = []
    started = time.time()
    ms = FULL_MS[::2] if quick else FULL_MS
    tables: dict[str, Any] = {}
    for name, run in (("linear", lambda: {"fp8": linear_fp8(timer, notes, ms)}),
                      ("attention", lambda: [attention_prefill(timer, notes),
                                             attention_decode(timer, notes)]),
                      ("fused_moe", lambda: fused_moe(timer, notes))):
        try:
            tables[name] = run()
        except Exception as exc:  # an engine API that moved: the other tables still count
            notes.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
        print(f"engine kernels: {name} done at {time.time() - started:.0f} s", flush=True)
    return {"engine": "vllm", "version": vllm.__version__, "device_name": props.name,
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "method": "perfmodel.calibrate.engine_kernels: Timer.rotated (copies in one CUDA "
                      "graph over rotating buffer sets), median",
            "run_time_s": round(time.time() - started, 1), "tables": tables, "notes": notes}


if __name__ == "__main__":
    result = measure(quick="--quick" in sys.argv[2:])
    with open(sys.argv[1], "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    print(f"engine kernels: {len(result['notes'])} notes; wrote {sys.argv[1]}")
