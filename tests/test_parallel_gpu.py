"""On a box of 2+ CUDA GPUs: collectives and `validate --tp 2` run, and the limit holds."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")]


def test_all_reduce_table_on_two_gpus():
    from perfmodel.calibrate.collectives import measure_collectives

    result = measure_collectives(2, quick=True, ops=("all_reduce",))
    table = result["tables"]["all_reduce"]
    assert table[0][1] < table[-1][1]  # 1 KiB is faster than 1 GiB
    assert result["best_bus_bandwidth"]["all_reduce"] > 1e9


def test_validate_tp2_limit_holds():
    from perfmodel.hardware.gpu import load_gpu
    from perfmodel.validate.compare import compare, default_gpu_profile
    from perfmodel.validate.distributed import measure_tp

    records = measure_tp([{"model": "meta-llama/Llama-3.2-1B", "precision": "bf16",
                           "points": [["prefill", 1, 512], ["decode", 8, 512]]}], 2, ops=False)
    gpu = load_gpu(default_gpu_profile(records[0]["device_name"]))
    for record in records:
        assert compare(record, gpu).limit_ratio <= 1.0
