"""calibrate-gpu on the CPU: the pure reductions and sizing rules, the YAML number round trip,
the atomic write, and the whole quick pipeline for real on this machine's CPU.

Ground truth: hand-worked medians and counts; PyYAML's own reading of what we write; a profile
that `perfmodel.hardware.gpu.load_gpu` accepts.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest
import yaml

from perfmodel.calibrate import stats
from perfmodel.calibrate.device import datasheet_for, slug
from perfmodel.calibrate.plan import (PREFILL_MAX_TOKENS, QUICK_GROUPED_MAX_ROWS, make_plan,
                                      strided_shape)
from perfmodel.calibrate.profile import atomic_write, dump_yaml, format_float, normalized
from perfmodel.hardware.gpu import PEAK_DTYPES, load_gpu, parse_gpu


def test_median_odd_even_and_unsorted():
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert stats.median([7.0]) == 7.0


def test_reductions_refuse_empty_and_non_finite():
    with pytest.raises(ValueError):
        stats.median([])
    with pytest.raises(ValueError):
        stats.Spread.of([1.0, math.nan])


def test_spread_min_median_max_and_relative():
    spread = stats.Spread.of([1.1, 0.9, 1.0, 1.3, 1.0])
    assert (spread.min, spread.median, spread.max) == (0.9, 1.0, 1.3)
    assert spread.relative == pytest.approx(0.4)


def test_per_call_divides_a_replay_by_its_copies():
    assert stats.per_call([1e-3, 2e-3], 100) == pytest.approx((1e-5, 2e-5))
    with pytest.raises(ValueError):
        stats.per_call([1.0], 0)


def test_counting_flops_and_bytes():
    assert stats.matmul_flop(8192, 8192, 8192) == 2 * 8192 ** 3  # FLOPs, not MACs
    assert stats.copy_bytes(1 << 30) == 2 << 30  # read once, written once
    assert stats.elementwise_bytes(4096) == 3 * 4096  # a + b -> c
    assert stats.rate(2e12, 2.0) == 1e12


def test_buffer_sets_rotate_past_the_cache():
    l2 = 50 << 20
    assert stats.buffer_sets(2 << 20, l2, 3.0, 256) == 75  # 75 x 2 MiB = 3 x 50 MiB
    assert stats.buffer_sets(1 << 30, l2, 3.0, 256) == 1  # one set already far larger
    assert stats.buffer_sets(1024, l2, 3.0, 256) == 256  # capped


def test_graph_copies_cover_the_rotation_for_short_kernels_only():
    # a 10 us kernel over 75 sets: every set once, and the replay lasts >= 1 ms
    assert stats.graph_copies(75, 10e-6, 1e-3, 256) == 100
    assert stats.graph_copies(150, 10e-6, 1e-3, 256) == 150
    # a 5 ms kernel: one copy; the cache cannot hide 5 ms of reads
    assert stats.graph_copies(3, 5e-3, 1e-3, 256) == 1
    assert stats.graph_copies(10, 1e-7, 1e-3, 256) == 256


def test_sample_count_fits_the_budget_within_bounds():
    assert stats.sample_count(1e-3, 25e-3, 5, 50) == 25
    assert stats.sample_count(1.0, 25e-3, 5, 50) == 5
    assert stats.sample_count(1e-6, 25e-3, 5, 50) == 50


@pytest.mark.parametrize("value", [3.0e12, 3.021e12, 7.5e14, 1.3e15, 1e16, 1e-5, 2.5e-07,
                                   1.0, 7.0, 12.5, 0.0123, 123456789.0, 8.5e10, 1e300])
def test_float_format_reads_back_as_a_float(value):
    text = format_float(value)
    back = yaml.safe_load(f"x: {text}")["x"]
    assert isinstance(back, float), text
    assert back == pytest.approx(value, rel=1e-3)
    assert "e" not in text or ("." in text and text.split("e")[1][0] in "+-"), text


def test_float_format_refuses_non_finite():
    with pytest.raises(ValueError):
        format_float(math.inf)


def test_dump_round_trips_nested_numbers_and_nulls():
    data = {"a": 3.0e12, "b": [1, 2.5e-06, None], "c": {"d": [[1e-05, None]]},
            "date": "2026-11-21", "e": (1, 2)}
    text = dump_yaml(data, header="a header")
    assert text.startswith("# a header\n")
    loaded = yaml.safe_load(text)
    assert loaded == normalized(data)
    assert loaded["date"] == "2026-11-21"  # quoted, not a datetime.date
    assert isinstance(loaded["a"], float) and isinstance(loaded["c"]["d"][0][0], float)


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "p.yaml"
    atomic_write(path, ["one\n", "two\n"])
    assert path.read_text() == "one\ntwo\n"
    atomic_write(path, ["three\n"])
    assert path.read_text() == "three\n"


def test_atomic_write_leaves_old_file_intact_when_writer_raises(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("old profile\n")

    def chunks():
        yield "half of a new prof"
        raise KeyboardInterrupt  # Ctrl-C mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, chunks())
    assert path.read_text() == "old profile\n"
    assert [p.name for p in tmp_path.iterdir()] == ["p.yaml"]  # no temp file left behind


def test_datasheet_match_by_torch_device_name():
    assert datasheet_for("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert datasheet_for("NVIDIA H100 PCIe") == "h100-pcie"
    assert datasheet_for("NVIDIA H200") == "h200"
    assert datasheet_for("NVIDIA A100-SXM4-80GB") == "a100-sxm-80gb"
    assert datasheet_for("NVIDIA L40S") == "l40s"
    assert datasheet_for("NVIDIA GeForce RTX 4090") == "rtx-4090"
    assert datasheet_for("NVIDIA A100-SXM4-40GB") is None
    assert slug("NVIDIA GeForce RTX 5090") == "nvidia-geforce-rtx-5090"


def test_plans_respect_the_grid_rules():
    full, quick = make_plan(False, cpu=False), make_plan(True, cpu=False)
    assert len(full.linear_kn) == 9 and len(full.linear_ms) == 15
    assert set(quick.linear_ms) <= set(full.linear_ms) and set(quick.linear_kn) <= set(full.linear_kn)
    assert all(b * t <= PREFILL_MAX_TOKENS for b, t in full.prefill)
    assert (16, 8192) in full.prefill_skipped and (1, 32768) in full.prefill
    assert full.elementwise_bytes[0] == 4096 and full.elementwise_bytes[-1] == 1 << 30
    assert quick.steps < full.steps


def test_kernel_table_grids():
    full, quick = make_plan(False, cpu=False), make_plan(True, cpu=False)
    assert len(full.grouped) == 8 + 8 + 7 + 6 and len(full.grouped_kn) == 4  # t·m <= 131072
    assert max(m for _, m in full.grouped) >= 16384 and max(m for _, m in quick.grouped) >= 16384
    assert (128, 1024) in full.grouped and (128, 4096) not in full.grouped
    assert (128, 256) not in quick.grouped
    assert all(t * m <= QUICK_GROUPED_MAX_ROWS for t, m in quick.grouped)
    assert set(quick.grouped) <= set(full.grouped) and set(quick.grouped_kn) <= set(full.grouped_kn)
    assert set(quick.rmsnorm_rows) <= set(full.rmsnorm_rows) and full.rmsnorm_rows[-1] == 16384
    assert full.strided_bytes == full.elementwise_bytes and full.route_tokens[-1] == 32768
    # the steps count every measurement: 24 rmsnorm, 19 strided, 19 silu-mul, 9 rope,
    # 6 + 6 routing and sort, 2 dtypes x 116 grouped points, 2 x 4 x 18 act_quant points,
    # every attention point and 3 x 9 MoE blocks on top of the tables before them, and
    # 2 dtypes x (1 table rate + 7 bursts) of the power-limit curve
    attention = sum(len(case.points) for case in full.attention)
    assert full.steps - len(full.elementwise_bytes) - 1 == (
        len(full.peak_dtypes) * 6 + 3 + 1 + 5 * 15 * 9 + len(full.prefill) + len(full.decode)
        + 24 + 19 + 19 + 9 + 12 + 2 * 116 + 144 + attention + 27 + 2 * 8)


@pytest.mark.parametrize("nbytes", [4096, 8192, 65536, 1 << 20, 1 << 30])
def test_strided_operand_is_a_non_contiguous_half(nbytes):
    torch = pytest.importorskip("torch")
    rows, width = strided_shape(nbytes)
    assert 2 * rows * width == nbytes and rows >= 8 and width <= 4096
    if nbytes <= 1 << 20:
        half = torch.empty(rows, 2 * width, dtype=torch.bfloat16).chunk(2, dim=-1)[0]
        assert not half.is_contiguous()


def test_sort_pairs_groups_the_pairs_by_expert():
    torch = pytest.importorskip("torch")
    from perfmodel.calibrate.moe import route, sort_pairs

    torch.manual_seed(0)
    weights, ids = route(torch.randn(64, 128, dtype=torch.bfloat16), 8)
    assert torch.allclose(weights.sum(-1), torch.ones(64)) and (weights > 0).all()
    assert all(len(set(row)) == 8 for row in ids.tolist())  # k distinct experts per token
    order, offs, rows = sort_pairs(ids, torch.arange(128), 8)
    flat = ids.reshape(-1)
    assert offs.dtype == torch.int32
    assert offs.tolist() == torch.bincount(flat, minlength=128).cumsum(0).tolist()
    assert (flat[order].diff() >= 0).all()  # grouped by expert
    for start, end in zip([0] + offs.tolist()[:-1], offs.tolist()):
        assert order[start:end].tolist() == sorted(order[start:end].tolist())  # stable
    assert (ids[rows, order % 8] == flat[order]).all()  # each sorted pair's token


def test_grouped_probe_checks_the_rows_it_gets(monkeypatch):
    """Per-expert loops (dequantizing for fp8) stand in for the grouped kernels, which a CPU
    may lack: the probe accepts them, and rejects them once their rows are wrong."""
    torch = pytest.importorskip("torch")
    from perfmodel.calibrate.kernels import probe_grouped

    def scaled(xq, w_t, scale_a, scale_b, offs=None, out_dtype=None):
        ends = offs.tolist()
        rows = [(xq[s:e].float() * scale_a[s:e, None]) @ w_t[i].float() * scale_b[i]
                for i, (s, e) in enumerate(zip([0] + ends[:-1], ends))]
        return torch.cat(rows).to(out_dtype)

    def plain(xs, w_t, offs=None):
        return scaled(xs, w_t, torch.ones(len(xs)), torch.ones(w_t.shape[::2]), offs, xs.dtype)

    for name, kernel, dtype in (("_scaled_grouped_mm", scaled, "fp8"),
                                ("_grouped_mm", plain, "bf16")):
        monkeypatch.setattr(torch, name, kernel, raising=False)
        assert probe_grouped(dtype, "cpu") is None
        monkeypatch.setattr(torch, name, lambda *a, k=kernel, **kw: k(*a, **kw).roll(1, 0))
        assert "wrong results" in probe_grouped(dtype, "cpu")
        monkeypatch.delattr(torch, name)
        assert probe_grouped(dtype, "cpu").startswith("AttributeError")


def test_importing_the_package_does_not_import_torch():
    code = ("import sys, perfmodel.calibrate, perfmodel.cli; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.fixture(scope="module")
def cpu_profile(tmp_path_factory):
    pytest.importorskip("torch")
    from perfmodel.calibrate import calibrate

    out = tmp_path_factory.mktemp("calib") / "cpu.yaml"
    steps = []
    started = time.perf_counter()
    path = calibrate(out=out, quick=True, device="cpu",
                     progress=lambda label, done, total: steps.append((label, done, total)))
    return path, time.perf_counter() - started, steps


def test_cpu_quick_run_writes_a_loadable_profile(cpu_profile):
    path, seconds, steps = cpu_profile
    spec = load_gpu(str(path))
    assert spec.kind == "measured" and spec.name.endswith("-measured")
    assert spec.peak("int4") is None
    assert spec.mem_bytes == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert spec.extra["environment"]["torch"]
    # The run's clock is this call's: positive, and no longer than the wall time around it.
    assert 0 < spec.extra["run_time_s"] <= seconds
    _check_peaks_against_their_time(spec)
    for dtype in make_plan(True, cpu=True).peak_dtypes:  # measured, or it says why not
        assert (spec.peak(dtype) is None) == (dtype in spec.extra["unsupported"]), dtype
    assert spec.peak("fp4") is None  # no fp4 matmul is timed (no FP4 tensor-core path here)
    assert steps[-1][1] == steps[-1][2]  # the bar ends full
    assert spec == parse_gpu(yaml.safe_load(path.read_text()), str(path))


def _check_peaks_against_their_time(spec):
    """Properties of the measured ceilings that hold on any machine at any load (no floor on
    speed): each is positive and finite; the profile's value is the best (max) of the repeats at
    the best shape, min <= median <= max; no size of the sweep beat it; and the work counted
    (2·m·n·k FLOP per matmul, bytes read plus written per copy) over each rate is a time, the
    median of at least one run, so their sum over every size timed fits in the run's time."""
    timed_s = 0.0
    peaks = {d: spec.peak(d) for d in PEAK_DTYPES if spec.peak(d) is not None}
    assert "bf16" in peaks
    for what, value in [*peaks.items(), ("mem_bandwidth", spec.mem_bandwidth)]:
        spread = spec.extra["spread"][what]
        assert math.isfinite(value) and value > 0, what
        assert 0 < spread["min"] <= spread["median"] <= spread["max"] == value, what
        assert all(0 < rate <= value for _, rate in spread["sweep"]), what
        if what == "mem_bandwidth":
            assert spread["best_bytes"] in [size for size, _ in spread["sweep"]]
            timed_s += sum(stats.copy_bytes(size) / rate for size, rate in spread["sweep"])
        else:
            m, n, k = spread["best_shape"]
            assert m == n == k and m in [size for size, _ in spread["sweep"]], what
            timed_s += sum(stats.matmul_flop(size, size, size) / rate
                           for size, rate in spread["sweep"])
    assert 0 < timed_s <= spec.extra["run_time_s"] * 1.001  # 4 significant digits in the YAML


def test_cpu_quick_run_fills_the_tables(cpu_profile):
    tables = load_gpu(str(cpu_profile[0])).tables
    assert tables is not None and "bf16" in tables.linear
    for table in tables.linear.values():
        cells = [s for row in table.seconds for s in row]
        assert cells and all(s is None or s > 0 for s in cells)
        assert sum(s is not None for s in cells) >= len(cells) // 2
    assert tables.attention_prefill.points and tables.attention_decode.points
    assert tables.attention_prefill.heads == 32 and tables.attention_prefill.kv_heads == 8
    assert tables.elementwise and all(b > 0 and s > 0 for b, s in tables.elementwise)
    assert tables.eager_launch_s > 0 and tables.graph_launch_s is None  # no graphs on a CPU


def test_cpu_quick_run_fills_the_kernel_tables(cpu_profile):
    spec = load_gpu(str(cpu_profile[0]))
    tables, plan = spec.tables, make_plan(True, cpu=True)
    assert [(r, d) for r, d, _ in tables.rmsnorm] == [(r, d) for d in plan.rmsnorm_dims
                                                      for r in plan.rmsnorm_rows]
    assert [b for b, _ in tables.strided] == [3 * b for b in plan.strided_bytes]
    assert [t for t, _ in tables.routing] == list(plan.route_tokens)
    assert [p for p, _ in tables.sort] == [8 * t for t in plan.route_tokens]
    assert tables.routing_shape == (128, 8)
    for points in (tables.rmsnorm, tables.strided, tables.routing, tables.sort):
        assert all(p[-1] > 0 for p in points)
    unsupported = spec.extra["unsupported"]
    assert "grouped_fp8" in unsupported  # no _scaled_grouped_mm on a CPU
    for dtype in ("bf16", "fp8"):  # each grouped dtype is measured or says why not
        assert (dtype in tables.grouped) != (f"grouped_{dtype}" in unsupported)
    if "bf16" in tables.grouped:
        want = {(m, k, n, t) for t, m in plan.grouped for k, n in plan.grouped_kn}
        assert {p[:4] for p in tables.grouped["bf16"]} == want
    assert "grouped" in yaml.safe_load(cpu_profile[0].read_text())["tables"]


def test_unknown_device_is_one_clear_error():
    pytest.importorskip("torch")
    from perfmodel.calibrate import CalibrationError, calibrate

    with pytest.raises(CalibrationError, match="cuda:N or cpu"):
        calibrate(device="tpu")


def test_peak_dtypes_are_the_loaders():
    assert set(make_plan(False, cpu=False).peak_dtypes) < set(PEAK_DTYPES)


def test_cpu_quick_run_fills_the_method_v2_tables(cpu_profile):
    spec = load_gpu(str(cpu_profile[0]))
    tables, plan = spec.tables, make_plan(True, cpu=True)
    assert spec.extra["method_version"] == 2 and tables.quant_in_linear is False
    # fused is one Triton kernel on CUDA: absent on a CPU; the PyTorch schemes are all there
    assert set(tables.act_quant) == {f"{d}/{s}" for d in ("fp8", "int8")
                                     for s in ("static", "dynamic-tensor", "dynamic-token")}
    for points in tables.act_quant.values():
        assert [p[:2] for p in points] == [(r, w) for w in plan.quant_widths
                                           for r in plan.quant_rows]
    measured = {(t.phase, t.kind, t.heads, t.kv_heads, t.head_dim, t.v_head_dim, t.window,
                 t.sinks) for t in tables.attention}
    for case in plan.attention:
        assert (case.phase, case.kind, case.heads, case.kv_heads, case.head_dim,
                case.v_head_dim or case.head_dim, case.window, case.sinks) in measured
    assert tables.attention[:2] == (tables.attention_prefill, tables.attention_decode)
    assert [p[:5] for p in tables.moe_block] == [(t, *shape) for shape in plan.moe_shapes
                                                 for t in plan.moe_tokens]
