"""Collective calibration and TP validation: pure reducers, profile parsing, the gloo launch on
the CPU, and the measured `validate --tp` records against the prediction (no GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfmodel.calibrate.collectives import (bus_bandwidth, copies_for, samples_for,
                                             slowest_median, to_tables)
from perfmodel.calibrate.links import parse_topology
from perfmodel.errors import GpuProfileError
from perfmodel.hardware.gpu import parse_gpu
from perfmodel.hardware.interconnect import parse_interconnect

DATA = Path(__file__).parent.parent / "docs" / "data" / "parallel"


def test_slowest_rank_then_median():
    assert slowest_median([[1.0, 2.0, 3.0], [2.0, 1.0, 5.0]]) == 2.0  # max: 2, 2, 5
    with pytest.raises(ValueError):
        slowest_median([[1.0], [1.0, 2.0]])


def test_tables_sorted_and_counts_depend_on_size_only():
    tables = to_tables([("all_gather", 4096, 2e-5), ("all_reduce", 4096, 3e-5),
                        ("all_reduce", 1024, 1e-5)])
    assert list(tables) == ["all_reduce", "all_gather"]
    assert tables["all_reduce"] == [[1024, 1e-5], [4096, 3e-5]]
    assert copies_for(1024) == 50 and copies_for(1 << 30) == 1 and samples_for(1 << 30) == 5


def test_bus_bandwidth_is_nccl_tests():
    assert bus_bandwidth("all_reduce", 1e9, 1e-2, 4) == pytest.approx(1.5e11)
    assert bus_bandwidth("all_gather", 1e9, 1e-2, 4) == pytest.approx(0.75e11)


def test_topology_matrix():
    text = "\tGPU0\tGPU1\nGPU0\t X \tNV18\nGPU1\tNV18\t X \n"
    assert parse_topology(text) == 18
    assert parse_topology("GPU0\t X \tSYS\n") == 0
    assert parse_topology("no matrix") is None


def test_interconnect_block_is_type_checked():
    good = {"interconnect": {"kind": "nvlink4", "bandwidth": 4.5e11, "source": "s"},
            "collectives": {"date": "d", "2": {"all_reduce": [[1024, 1e-5], [4096, 2e-5]]}}}
    link = parse_interconnect(good)
    assert link.bandwidth == 4.5e11 and link.tables[2]["all_reduce"][1] == (4096.0, 2e-5)
    for bad in ({"interconnect": {"kind": "nvlink4", "bandwidth": "4.5e11"}},
                {"interconnect": {"kind": "carrier-pigeon"}},
                {"collectives": {"2": {"broadcast": [[1, 1e-5]]}}},
                {"collectives": {"1": {"all_reduce": [[1, 1e-5]]}}}):
        with pytest.raises(GpuProfileError):
            parse_interconnect(bad)


def test_sidecar_merges_into_the_profile(tmp_path):
    (tmp_path / "collectives").mkdir()
    (tmp_path / "collectives" / "box.yaml").write_text(
        "interconnect: {kind: pcie5, bandwidth: 6.4e+10, source: test}\n"
        "collectives: {'4': {send_recv: [[1024, 9.0e-05]]}}\n")
    data = {"name": "box", "description": "d", "kind": "datasheet", "source": "s",
            "method": "m", "peak_flops": {"bf16": 1.0e15}, "mem_bandwidth": 3.0e12,
            "mem_bytes": 8.0e10}
    gpu = parse_gpu(data, str(tmp_path / "box.yaml"))
    assert gpu.interconnect.kind == "pcie5" and gpu.interconnect.gpu_counts == (4,)


def test_gloo_launch_on_two_cpu_processes():
    pytest.importorskip("torch")
    from perfmodel.calibrate.collectives import measure_collectives

    result = measure_collectives(2, quick=True, backend="gloo", ops=("all_reduce",))
    table = result["tables"]["all_reduce"]
    assert [b for b, _ in table] == [1024, 16384, 262144]
    assert all(s > 0 for _, s in table)


def _points(*names: str):
    from perfmodel.hardware.gpu import load_gpu
    from perfmodel.validate.compare import compare, read_records

    gpu = load_gpu("h200-measured")
    return [compare(r, gpu) for r in read_records([DATA / n for n in names]) if "seconds" in r]


TP2 = ("validate-tp2-h200x4-2026-11-27.jsonl", "validate-tp2-h200x2-2026-11-27.jsonl")


@pytest.mark.parametrize("names, models, median, p90", [
    (TP2, 5, 0.10, 0.20),
    (("validate-tp4-h200x4-2026-11-27.jsonl",), 3, 0.10, 0.20)])
def test_tp_estimate_against_the_measured_engine(names, models, median, p90):
    """validate --tp 2 (lent 4× H200 and 2× H200 boxes) and --tp 4 (the 4× H200 box),
    2026-11-27: the limit never beaten, the estimate within issue 9's 10% median and 20% p90;
    TP2 over at least 5 distinct models, dense and MoE, bf16 and fp8."""
    from perfmodel.validate.compare import summarize

    points = _points(*names)
    assert len({p.model for p in points}) >= models
    assert len(points) >= 9 and {p.model for p in points} >= {"Qwen/Qwen3-30B-A3B"}
    summary = summarize(points)
    assert summary.limit_beaten == 0
    assert summary.median_abs_error <= median and summary.p90_abs_error <= p90


def test_sidecar_writer_merges_gpu_counts(tmp_path):
    from perfmodel.calibrate.links import write_sidecar
    from perfmodel.hardware.interconnect import sidecar_path

    profile = tmp_path / "box.yaml"
    link = {"kind": "nvlink4", "bandwidth": 4.5e11, "source": "test"}
    for n, seconds in ((2, 1.5e-5), (4, 2.5e-5)):
        write_sidecar(profile, {"gpus": n, "method": "m",
                                "tables": {"all_reduce": [[1024, seconds]]}}, link,
                      {"date": "2026-11-27"})
    parsed = parse_interconnect({}, str(profile))
    assert sidecar_path(str(profile)).is_file()
    assert parsed.gpu_counts == (2, 4) and parsed.tables[4]["all_reduce"] == ((1024.0, 2.5e-5),)


def test_calibrate_gpus_without_cuda_is_one_line():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this box has CUDA")
    from typer.testing import CliRunner

    from perfmodel.cli import app

    result = CliRunner().invoke(app, ["calibrate-gpu", "--gpus", "2"])
    assert result.exit_code == 2 and "no CUDA GPU" in result.output
