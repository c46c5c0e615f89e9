"""Many-GPU collectives that bite: the EP all-to-all's bytes worked by hand for a small case
(docs/validation.md, "Tests that bite"; tools/plant_bugs.py)."""

from __future__ import annotations

import pytest

from perfmodel.cost.parallel import Parallel, comm_ops
from perfmodel.cost.precision import preset
from perfmodel.model.architectures import model_spec
from perfmodel.model.source import load_model_config


@pytest.mark.parametrize("precision, act_bytes", [("bf16", 2), ("fp8", 1)])
@pytest.mark.parametrize("batch, tokens", [(4, 1), (2, 512)])
def test_ep_dispatch_and_combine_bytes_by_hand(precision, act_bytes, batch, tokens):
    """Qwen3-30B-A3B (D 2048, k 8, 48 MoE layers) on attention DP2 × TP2 with EP4: an
    attention-DP rank runs M = B·T tokens; after its TP all-reduce each of its tp GPUs holds
    all M and dispatches its own M/tp of them, k copies each (docs/parallel.md, the
    collectives table; SGLang scatters the DP rank's tokens over its attention-TP ranks before
    the DeepEP all-to-all). Per GPU and layer: dispatch (M/2)·8·2048·act bytes (fp8 under
    W8A8, as DeepEP sends), combine (M/2)·8·2048·2 bytes (bf16), over the 4 GPUs."""
    spec = model_spec(load_model_config("Qwen/Qwen3-30B-A3B").config)
    ops = {op.name: op for op in comm_ops(spec, Parallel(tp=2, dp=2, ep=4), preset(precision),
                                          "decode", batch, tokens)}
    per_gpu_tokens = batch * tokens // 2
    assert ops["moe_dispatch"].bytes == per_gpu_tokens * 8 * 2048 * act_bytes
    assert ops["moe_combine"].bytes == per_gpu_tokens * 8 * 2048 * 2
    for name in ("moe_dispatch", "moe_combine"):
        assert ops[name].count == 48 and ops[name].shape == (4,)
    assert ops["attn_all_reduce"].bytes == batch * tokens * 2048 * 2  # all M on each TP GPU
