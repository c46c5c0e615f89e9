"""The engines' custom all-reduce: which all-reduces each engine takes off NCCL (hand-worked from
the sources in cost/custom_allreduce.py), the custom table read and borrowed like NCCL's, and
the estimate never below the link limit."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfmodel.calibrate.symm_allreduce import custom_tables
from perfmodel.cost import collective
from perfmodel.cost.collective import CUSTOM, collective_cost, estimate_seconds, tables_for
from perfmodel.cost.custom_allreduce import custom_allreduce_for
from perfmodel.cost.ops import Op
from perfmodel.errors import GpuProfileError
from perfmodel.hardware.gpu import load_gpu
from perfmodel.hardware.interconnect import Interconnect, parse_interconnect

KIB, MIB = 1024, 1 << 20
ROOT = Path(__file__).resolve().parent.parent


def all_reduce(nbytes: float, gpus: int, count: int = 1) -> Op:
    return Op(phase="decode", name="attn_all_reduce", kind="collective", count=count, flops=0.0,
              bytes=float(nbytes), dtype="bf16", shape=(gpus,), weight_dtype="all_reduce")


@pytest.mark.parametrize("engine, gpus, nbytes, link, tokens, custom", [
    # vLLM on Hopper: custom kernel < 8 MiB, then symmetric memory to 64 / 32 / 64 MiB
    ("vllm", 2, 16 * KIB, "nvlink4", None, True),
    ("vllm", 2, 64 * MIB, "nvlink4", None, True),
    ("vllm", 2, 128 * MIB, "nvlink4", None, False),
    ("vllm", 4, 32 * MIB, "nvlink4", None, True),
    ("vllm", 4, 48 * MIB, "nvlink4", None, False),
    ("vllm", 8, 64 * MIB, "nvlink4", None, True),
    ("vllm", 3, 16 * KIB, "nvlink4", None, False),  # no world size 3
    ("vllm", 2, 8 * MIB - 16, "nvlink3", None, True),  # A100: no symmetric path, < 8 MiB
    ("vllm", 2, 8 * MIB, "nvlink3", None, False),
    ("vllm", 2, 4 * MIB, "pcie5", None, True),  # two PCIe GPUs may
    ("vllm", 4, 16 * KIB, "pcie5", None, False),  # four may not
    # SGLang: < 8 MiB at 2, 4, 6, 8, symmetric memory off by default
    ("sglang", 2, 16 * KIB, "nvlink4", None, True),
    ("sglang", 2, 4 * MIB, "nvlink4", None, True),
    ("sglang", 2, 8 * MIB, "nvlink4", None, False),
    ("sglang", 8, 1 * MIB, "nvlink4", None, True),
    ("sglang", 4, 64 * MIB, "nvlink4", None, False),
    # TensorRT-LLM AUTO: workspace 16e6 B at 2 GPUs (any tokens), 8e6 B and ≤ 128 tokens above
    ("trtllm", 2, 15e6, "nvlink4", 2000, True),
    ("trtllm", 2, 16e6 + 2, "nvlink4", 2000, False),
    ("trtllm", 4, 64 * 8192 * 2, "nvlink4", 64, True),  # 64 tokens of Llama-70B: 1 MiB
    ("trtllm", 4, 256 * 4096 * 2, "nvlink4", 256, False),  # 256 tokens: NCCL
    ("trtllm", 8, 9e6, "nvlink4", 100, False),  # over the 8e6 B workspace
    ("trtllm", 2, 16 * KIB, "pcie5", 1, False),  # no NVLink: NCCL
])
def test_which_all_reduces_each_engine_takes_off_nccl(engine, gpus, nbytes, link, tokens, custom):
    assert custom_allreduce_for(engine).takes(gpus, nbytes, link, tokens) is custom


def test_no_engine_means_nccl():
    assert custom_allreduce_for(None) is None
    assert custom_allreduce_for("torch") is None and custom_allreduce_for("tuned") is None


def test_custom_table_read_where_the_engine_takes_it_nccl_elsewhere():
    gpu = load_gpu("h200-measured")
    tables = gpu.interconnect.tables[2]
    vllm = custom_allreduce_for("vllm")
    small = collective_cost(all_reduce(16 * KIB, 2, count=80), gpu, True, vllm)
    assert small.estimate_s == pytest.approx(80 * dict(tables[CUSTOM])[16 * KIB])
    nccl = collective_cost(all_reduce(16 * KIB, 2, count=80), gpu, True)
    assert nccl.estimate_s == pytest.approx(80 * dict(tables["all_reduce"])[16 * KIB])
    assert small.limit_s == nccl.limit_s  # the same bytes over the same link
    big = collective_cost(all_reduce(256 * MIB, 2), gpu, True, vllm)  # over 64 MiB: NCCL
    assert big.estimate_s == pytest.approx(dict(tables["all_reduce"])[256 * MIB])
    # TensorRT-LLM at 4 GPUs: 512 tokens of 8192 bf16 (8 MiB) go to NCCL, 64 tokens do not
    trt, row = custom_allreduce_for("trtllm"), 8192 * 2
    many = collective_cost(all_reduce(512 * row, 4), gpu, True, trt, row)
    assert many.estimate_s == pytest.approx(estimate_seconds(gpu.interconnect, "all_reduce", 4,
                                                             512 * row))
    few = collective_cost(all_reduce(64 * row, 4), gpu, True, trt, row)
    assert few.estimate_s == pytest.approx(estimate_seconds(gpu.interconnect, CUSTOM, 4, 64 * row))


def test_h100_borrows_the_custom_table_and_says_so():
    link, ratio, flag = tables_for(load_gpu("h100-sxm-measured"), CUSTOM)
    assert link is not None and ratio == 1.0  # both NVLink 4 at 450 GB/s
    assert flag.startswith("custom all-reduce estimates borrowed from h200-measured")


def test_no_custom_table_anywhere_falls_back_to_nccl(monkeypatch):
    table = ((1024.0, 2e-5), (1 << 20, 3e-5))
    nccl_only = Interconnect("nvlink4", 4.5e11, "test", {2: {"all_reduce": table}})
    monkeypatch.setattr(collective, "_measured_links", lambda: (("other", None, nccl_only),))
    gpu = replace(load_gpu("h100-sxm"), interconnect=nccl_only)
    cost = collective_cost(all_reduce(16 * KIB, 2), gpu, True, custom_allreduce_for("vllm"))
    assert cost.estimate_s == pytest.approx(estimate_seconds(nccl_only, "all_reduce", 2, 16 * KIB))


@settings(max_examples=200, deadline=None)
@given(nbytes=st.floats(16, 2e9), gpus=st.sampled_from([2, 4, 8]),
       engine=st.sampled_from([None, "vllm", "sglang", "trtllm"]),
       profile=st.sampled_from(["h200-measured", "h100-sxm-measured", "b200"]))
def test_estimate_never_below_the_limit(nbytes, gpus, engine, profile):
    cost = collective_cost(all_reduce(nbytes, gpus, count=3), load_gpu(profile), True,
                           custom_allreduce_for(engine), 8192 * 2)
    assert cost.estimate_s >= cost.limit_s


def test_custom_tables_keep_the_faster_algorithm_per_size():
    tables = custom_tables([("two_shot_all_reduce", 1024, 9e-6), ("one_shot_all_reduce", 1024, 6e-6),
                            ("one_shot_all_reduce", 1 << 24, 9.8e-5),
                            ("two_shot_all_reduce", 1 << 24, 6.6e-5)])
    assert tables[CUSTOM] == [[1024, 6e-6], [1 << 24, 6.6e-5]]
    assert tables["one_shot_all_reduce"] == [[1024, 6e-6], [1 << 24, 9.8e-5]]


def test_sidecar_custom_tables_parse_and_unknown_names_fail():
    link = parse_interconnect({"interconnect": {"kind": "nvlink4", "bandwidth": 4.5e+11},
                               "collectives": {"custom_method": "m", "2": {
                                   CUSTOM: [[1024, 6e-6]], "all_reduce": [[1024, 1.8e-5]]}}})
    assert link.tables[2][CUSTOM] == ((1024.0, 6e-6),) and link.custom_method == "m"
    with pytest.raises(GpuProfileError, match="not a collective"):
        parse_interconnect({"collectives": {"2": {"custom_allreduce": [[1024, 6e-6]]}}})


def test_measured_custom_below_nccl_at_small_sizes_and_the_rerun_check_within_10pct():
    """2026-11-27, 4x H200: the custom table is faster than NCCL up to 1 MiB; and the NCCL
    table in the profile is within 10% of the independent torchrun timing of the second box."""
    link = load_gpu("h200-measured").interconnect
    for gpus in (2, 4):
        for nbytes in (KIB, 4 * KIB, 64 * KIB, MIB):
            assert estimate_seconds(link, CUSTOM, gpus, nbytes) < 0.7 * estimate_seconds(
                link, "all_reduce", gpus, nbytes)
    path = ROOT / "docs/data/parallel/allreduce-check-2-h200x4-2026-11-27.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 6
    for row in rows:
        ours = estimate_seconds(link, "all_reduce", row["gpus"], row["bytes"])
        assert abs(ours / row["seconds"] - 1) < 0.10, row


def _step_costs(tp: int, engine: str | None):
    from perfmodel.cost.estimate import estimator_for
    from perfmodel.cost.parallel import Parallel
    from perfmodel.cost.precision import preset
    from perfmodel.model.architectures import model_spec
    from perfmodel.model.source import load_model_config
    from perfmodel.serve.ranks import layout
    from perfmodel.serve.step_cost import StepCost

    gpu, prec = load_gpu("h200-measured"), preset("bf16")
    cfg = load_model_config("meta-llama/Llama-3.1-8B")
    lay = layout(model_spec(cfg.config, cfg.where), prec, gpu, Parallel(tp=tp))
    est = estimator_for(gpu, prec, "vllm").estimator
    return StepCost(lay.local, prec, gpu, est, max_tokens=64, max_seqs=32, capture_sizes=(),
                    pad_mixed=False, host_overhead_s=0.0, forward=lay.forward, allreduce=engine)


def test_serve_step_with_the_engines_all_reduce():
    """TP2 decode of 8 sequences of Llama-3.1-8B: 2·32 + 1 all-reduces of 8·4096·2 = 64 KiB, each
    on vLLM's custom kernels: the step is faster by their count times (NCCL − custom) at 64 KiB,
    and its limit does not move. One GPU is the same with or without an engine rule."""
    link = load_gpu("h200-measured").interconnect
    nccl, custom = _step_costs(2, None), _step_costs(2, "vllm")
    saved = 65 * (estimate_seconds(link, "all_reduce", 2, 64 * KIB)
                  - estimate_seconds(link, CUSTOM, 2, 64 * KIB))
    (e0, l0, _), (e1, l1, _) = nccl.linear(8, False), custom.linear(8, False)
    assert e0 - e1 == pytest.approx(saved, rel=1e-6) and l0 == l1
    assert _step_costs(1, None).linear(8, False) == _step_costs(1, "vllm").linear(8, False)


def test_calibrate_says_in_one_line_when_symm_mem_is_missing_and_keeps_nccl(tmp_path):
    from perfmodel.calibrate.collectives_cli import custom_summary
    from perfmodel.calibrate.links import write_sidecar

    line = custom_summary({"unavailable": "ImportError: no _symmetric_memory"})
    assert "\n" not in line and "unavailable" in line and "NCCL tables written alone" in line
    nccl = {"gpus": 2, "method": "nccl", "tables": {"all_reduce": [[1024, 1.8e-5]]}}
    path = write_sidecar(tmp_path / "x.yaml", nccl, {"kind": "nvlink4", "bandwidth": 4.5e+11},
                         {"date": "2026-11-27"})
    link = parse_interconnect({}, str(tmp_path / "x.yaml"))
    assert path.is_file() and CUSTOM not in link.tables[2] and link.custom_method == ""
    both = {**nccl, "custom_method": "symm", "tables": {**nccl["tables"], CUSTOM: [[1024, 6e-6]]}}
    write_sidecar(tmp_path / "x.yaml", both, {"kind": "nvlink4", "bandwidth": 4.5e+11},
                  {"date": "2026-11-27"})
    link = parse_interconnect({}, str(tmp_path / "x.yaml"))
    assert link.tables[2][CUSTOM] == ((1024.0, 6e-6),) and link.custom_method == "symm"


def test_serve_says_where_the_custom_table_comes_from():
    from perfmodel.serve import run_serve

    kw = dict(concurrency=4, num_requests=8, isl=256, osl=16, tp=2)
    h100 = run_serve("meta-llama/Llama-3.1-8B", gpu="h100-sxm-measured", engine="vllm", **kw)
    assert any(w.startswith("custom all-reduce estimates borrowed from h200-measured")
               for w in h100.warnings)
    h200 = run_serve("meta-llama/Llama-3.1-8B", gpu="h200-measured", engine="vllm", **kw)
    assert not any("custom all-reduce" in w for w in h200.warnings)
