"""An engine's fused-MoE timings price the MoE block of exactly their shape (serve/fused_moe.py):
interpolation by hand, the block on one op, other shapes untouched."""

from __future__ import annotations

import math

import pytest

from perfmodel.api import resolve_precision
from perfmodel.cost.ops import forward_ops
from perfmodel.model.architectures import model_spec
from perfmodel.model.source import load_model_config
from perfmodel.serve.fused_moe import block_seconds, matching_table, with_fused_moe

POINTS = [(1.0, 30e-6), (64.0, 300e-6), (8192.0, 1400e-6)]
TABLE = [{"experts": 128, "top_k": 8, "hidden": 2048, "width": 768, "dtype": "bf16",
          "points": [list(p) for p in POINTS]}]


def test_block_seconds_by_hand():
    assert block_seconds(POINTS, 1) == 30e-6 and block_seconds(POINTS, 0.5) == 30e-6
    assert block_seconds(POINTS, 64) == pytest.approx(300e-6)
    mid = math.sqrt(64 * 8192)  # halfway in log T: the geometric mean of the two times
    assert block_seconds(POINTS, mid) == pytest.approx(math.sqrt(300e-6 * 1400e-6))
    assert block_seconds(POINTS, 16384) == pytest.approx(2800e-6)  # proportional past the end


def _ops(model: str, batch: int):
    cfg = load_model_config(model).config
    spec = model_spec(cfg, model)
    prec = resolve_precision(cfg, None, None)
    return spec, prec, forward_ops(spec, prec, "decode", batch, 1, 1024)


def test_the_block_of_its_shape_is_priced_on_one_op():
    spec, prec, ops = _ops("Qwen/Qwen3-30B-A3B", 4)
    est = with_fused_moe(lambda op: 1.0, TABLE, spec, prec.weight_dtype)
    by_name = {op.name: op for op in ops}
    gate_up = by_name["experts_gate_up"]
    assert est(gate_up) == pytest.approx(gate_up.count * block_seconds(POINTS, 4))
    for name in ("experts_act", "experts_down", "experts_combine"):
        assert est(by_name[name]) == 0.0
    assert est(by_name["qkv"]) == 1.0 and est(by_name["router"]) == 1.0


def test_other_shapes_keep_the_op_estimate():
    base = lambda op: 1.0  # noqa: E731
    spec, prec, _ = _ops("meta-llama/Llama-3.1-8B", 1)  # dense
    assert with_fused_moe(base, TABLE, spec, prec.weight_dtype) is base
    spec, prec, _ = _ops("Qwen/Qwen3-30B-A3B", 1)
    assert with_fused_moe(base, TABLE, spec, "fp8") is base  # no fp8 timing in this table
    assert with_fused_moe(base, None, spec, "bf16") is base
    assert matching_table(TABLE, 128, 8, 2048, 384, "bf16") is None  # a TP2 shard's width
