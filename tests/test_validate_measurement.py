"""Pure parts of perfmodel.validate: replay counts, kernel attribution, records, points, run."""

from __future__ import annotations

import json

import pytest

from perfmodel.model.architectures import model_spec
from perfmodel.validate.measurement import (Measurement, attribute_kernels, kernel_rows, median,
                                            op_names, replay_count)


def test_replay_count_keeps_at_least_ten_then_at_least_three():
    assert replay_count(0.008) == 100
    assert replay_count(0.03) == 33
    assert replay_count(0.2) == 10
    assert replay_count(0.5) == 10
    assert replay_count(0.9) == 6
    assert replay_count(3.0) == 3
    assert all(replay_count(s / 100) >= 10 for s in range(1, 51))


def test_median_of_samples():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    with pytest.raises(ValueError):
        median([])


def trace_event(cat, name, ts, dur, tid=1, correlation=None):
    args = {} if correlation is None else {"correlation": correlation}
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "tid": tid, "args": args}


def test_kernels_go_to_the_innermost_region_that_launched_them():
    events = [
        trace_event("user_annotation", "qkv", 0.0, 100.0),
        trace_event("cpu_op", "aten::mm", 10.0, 20.0),
        trace_event("cuda_runtime", "cudaLaunchKernel", 12.0, 5.0, correlation=7),
        trace_event("user_annotation", "rope", 200.0, 50.0),
        trace_event("cuda_driver", "cuLaunchKernel", 210.0, 2.0, correlation=8),
        trace_event("cuda_runtime", "cudaMemcpyAsync", 220.0, 2.0, correlation=9),
        trace_event("cuda_runtime", "cudaLaunchKernel", 400.0, 2.0, correlation=10),
        # device activities, on another timeline and thread
        trace_event("kernel", "gemm", 5000.0, 30.0, tid=7, correlation=7),
        trace_event("kernel", "mul", 5040.0, 2.0, tid=7, correlation=8),
        trace_event("gpu_memcpy", "Memcpy DtoD", 5050.0, 4.0, tid=7, correlation=9),
        trace_event("kernel", "stray", 5060.0, 1.0, tid=7, correlation=10),
        trace_event("gpu_user_annotation", "qkv", 5000.0, 30.0, tid=7),
        # a region of another name nested inside qkv, on the same thread
        trace_event("user_annotation", "not_an_op", 11.0, 3.0),
    ]
    seconds, counts = attribute_kernels(events, ["qkv", "rope"])
    assert counts == {"qkv": 1, "rope": 2, "other": 1}
    assert seconds == pytest.approx({"qkv": 30e-6, "rope": 6e-6, "other": 1e-6})
    assert kernel_rows(events, ["qkv", "rope"])[0] == ("qkv", "gemm", pytest.approx(30e-6))


def test_nested_named_regions_take_the_innermost():
    events = [trace_event("user_annotation", "attention", 0.0, 100.0),
              trace_event("user_annotation", "kv_write", 10.0, 10.0),
              trace_event("cuda_runtime", "launch", 15.0, 1.0, correlation=1),
              trace_event("kernel", "copy", 900.0, 3.0, tid=9, correlation=1)]
    seconds, _ = attribute_kernels(events, ["attention", "kv_write"])
    assert seconds == pytest.approx({"kv_write": 3e-6})


def test_measurement_is_json_safe():
    m = Measurement("decode", 8, 2048, 0.0093, (0.0093, 0.0094), {"qkv": 0.001}, 700,
                    {"qkv": 700})
    line = json.loads(json.dumps(m.to_dict()))
    assert line["op_kernels"] == {"qkv": 700} and line["kernels"] == 700
    assert line["seconds"] == 0.0093 and line["samples"] == [0.0093, 0.0094]
    assert m.kernel_seconds == 0.001 and m.seconds_str == "9.300 ms"


def test_op_names_follow_the_model():
    llama = model_spec({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
                        "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 256})
    names = op_names(llama)
    assert names[0] == "embed" and names[-2:] == ("final_norm", "lm_head")
    assert "gate_up" in names and "router" not in names and "qk_norm" not in names


def test_a_record_names_its_activation_scheme_or_the_method_1_engines():
    from perfmodel.validate.measurement import record_scheme

    method_1 = "torch-cudagraph 1: graph replay median, L2 flushed, eager profile for per-op " \
               "kernels"  # as the 2026-11-21 records say
    method_2 = method_1.replace(" 1:", " 2:")
    for precision in ("fp8", "int8"):
        assert record_scheme({"precision": precision, "act_scheme": "static",
                              "method": method_2}) == "static"
        assert record_scheme({"precision": precision, "method": method_2}) == "dynamic-token"
    # method 1 (the 2026-11-21 data): fp8 one amax per tensor, int8 one per token row
    assert record_scheme({"precision": "fp8", "method": method_1}) == "dynamic-tensor"
    assert record_scheme({"precision": "int8", "method": method_1}) == "dynamic-token"
    assert record_scheme({"precision": "fp8"}) == "dynamic-tensor"  # no method: the oldest
    for precision in ("bf16", "fp16", "int4"):
        assert record_scheme({"precision": precision, "method": method_1}) is None
        assert record_scheme({"precision": precision, "act_scheme": None,
                              "method": method_2}) is None


def test_the_engine_method_is_version_2_since_schemes_are_recorded():
    pytest.importorskip("torch")
    from perfmodel.validate.measurement import METHOD_1, record_scheme
    from perfmodel.validate.timing import METHOD

    assert not METHOD.startswith(METHOD_1)
    assert record_scheme({"precision": "fp8", "method": METHOD}) == "dynamic-token"
