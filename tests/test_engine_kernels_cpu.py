"""calibrate/engine_kernels.py's tables on the CPU, with stand-ins for vLLM's kernels: the shape
of what a GPU run writes (the GPU profile's attention-table format), one point a case."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from perfmodel.calibrate import engine_kernels  # noqa: E402
from perfmodel.calibrate.timing import Timer  # noqa: E402


@pytest.fixture
def cpu(monkeypatch):
    monkeypatch.setattr(engine_kernels, "_flash", lambda: lambda q, *a, **k: q * 2)
    return Timer("cpu", 1 << 20, point_budget_s=0.001, min_samples=1, max_samples=2)


def test_attention_tables_have_one_point_a_case(cpu):
    notes: list[str] = []
    pre = engine_kernels.attention_prefill(cpu, notes, shapes=((1, 16), (2, 8)))
    dec = engine_kernels.attention_decode(cpu, notes, shapes=((1, 32), (2, 16)))
    assert notes == []
    assert (pre["phase"], dec["phase"]) == ("prefill", "decode")
    assert [p[:2] for p in pre["points"]] == [[1, 16], [2, 8]]
    assert [p[:2] for p in dec["points"]] == [[1, 32], [2, 16]]
    assert all(p[2] > 0 for p in pre["points"] + dec["points"])
    assert (dec["heads"], dec["kv_heads"], dec["head_dim"]) == (32, 8, 128)
