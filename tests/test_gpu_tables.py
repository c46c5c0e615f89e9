"""Reading the kernel tables of a GPU profile: RMSNorm, strided elementwise, MoE routing, sort and
grouped GEMM. A good table reads back as written; a profile from before these tables loads with
empty ones; a malformed one is one GpuProfileError that names the field.

Ground truth: the YAML schema of docs/calibration.md, the bundled measured H100 profile (written
before these tables existed), and the writer `perfmodel.calibrate.profile.tables_data`.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from perfmodel.calibrate.profile import dump_yaml, tables_data
from perfmodel.errors import GpuProfileError
from perfmodel.hardware.gpu import Tables, parse_gpu

KERNEL_TABLES = {
    "rmsnorm": {"points": [[1, 4096, 6.1e-06], [16384, 8192, 0.000215]]},
    "strided": {"bytes": [12288, 3221225472], "seconds": [2.3e-06, 0.00131]},
    "routing": {"experts": 128, "top_k": 8, "points": [[1, 2.1e-05], [32768, 0.000301]]},
    "sort": {"experts": 128, "top_k": 8, "points": [[8, 1.5e-05], [262144, 0.000112]]},
    "grouped": {"bf16": {"points": [[1, 1024, 4096, 1, 8.2e-06], [256, 768, 2048, 128, 9.6e-05]]},
                "fp8": {"points": [[4, 4096, 1024, 8, 1.9e-05]]}},
}


def profile(**tables) -> dict:
    return {"name": "g", "description": "d", "kind": "measured", "source": "measured",
            "date": "2026-11-21", "method": "m", "peak_flops": {"bf16": 7.6e14},
            "mem_bandwidth": 3.0e12, "mem_bytes": 8.0e10, "tables": tables}


def good() -> dict:
    return profile(**copy.deepcopy(KERNEL_TABLES))


def test_kernel_tables_read_back_as_written():
    tables = parse_gpu(good()).tables
    assert tables.rmsnorm == ((1, 4096, 6.1e-06), (16384, 8192, 0.000215))
    assert tables.strided == ((12288.0, 2.3e-06), (3221225472.0, 0.00131))
    assert tables.routing == ((1, 2.1e-05), (32768, 0.000301))
    assert tables.routing_shape == (128, 8)
    assert tables.sort == ((8, 1.5e-05), (262144, 0.000112))
    assert tables.grouped["bf16"][1] == (256, 768, 2048, 128, 9.6e-05)
    assert tables.grouped["fp8"] == ((4, 4096, 1024, 8, 1.9e-05),)
    assert all(isinstance(v, int) for v in tables.grouped["bf16"][0][:4])


def test_writer_and_reader_agree():
    tables = parse_gpu(good()).tables
    text = dump_yaml(profile(**tables_data(tables)))
    assert parse_gpu(yaml.safe_load(text)).tables == tables


def test_writer_keeps_an_empty_grouped_table():
    written = tables_data(Tables(routing_shape=(128, 8)))
    assert written["grouped"] == {} and written["routing"] == {"experts": 128, "top_k": 8,
                                                               "points": []}
    tables = parse_gpu(profile(**written)).tables
    assert tables.grouped == {} and tables.routing == () and tables.routing_shape == (128, 8)


def test_profiles_without_the_kernel_tables_still_load():
    import yaml

    from perfmodel.hardware.gpu import GPU_DIR

    data = yaml.safe_load((GPU_DIR / "h100-sxm-measured.yaml").read_text())
    for key in ("rmsnorm", "strided", "rope", "silu_mul", "routing", "sort", "grouped"):
        data["tables"].pop(key, None)  # as written before these tables existed
    old = parse_gpu(data).tables
    assert old is not None and old.linear and old.elementwise
    assert (old.rmsnorm, old.strided, old.routing, old.sort) == ((), (), (), ())
    assert old.routing_shape is None and old.grouped == {}
    assert parse_gpu(profile()).tables == Tables()
    assert parse_gpu(profile(grouped={}, rmsnorm={})).tables == Tables()


def test_sort_alone_gives_the_routing_shape():
    data = profile(sort={"experts": 64, "top_k": 4, "points": [[4, 1e-05]]})
    assert parse_gpu(data).tables.routing_shape == (64, 4)


@pytest.mark.parametrize("path, value, field", [
    (("rmsnorm", "points"), [[1, 4096]], "tables.rmsnorm"),
    (("rmsnorm", "points"), [[1, 4096, "6.1e-6"]], "tables.rmsnorm"),
    (("rmsnorm", "points"), [[1.5, 4096, 6.1e-06]], "tables.rmsnorm"),
    (("rmsnorm", "points"), [[True, 4096, 6.1e-06]], "tables.rmsnorm"),
    (("rmsnorm", "points"), [[1, 4096, -6.1e-06]], "tables.rmsnorm"),
    (("rmsnorm", "points"), [[1, 4096, None]], "tables.rmsnorm"),
    (("rmsnorm", "points"), {"1": 2}, "tables.rmsnorm"),
    (("rmsnorm",), [[1, 4096, 6.1e-06]], "tables.rmsnorm"),
    (("strided", "seconds"), [2.3e-06], "tables.strided"),
    (("strided", "bytes"), ["12288", 3221225472], "tables.strided.bytes"),
    (("routing", "experts"), None, "tables.routing"),
    (("routing", "top_k"), 0, "tables.routing"),
    (("routing", "points"), [[0, 2.1e-05]], "tables.routing"),
    (("sort", "top_k"), 4, "tables.sort"),
    (("sort", "points"), [[8, 1.5e-05, 3]], "tables.sort"),
    (("grouped",), [["bf16"]], "tables.grouped"),
    (("grouped", "bf16"), [[1, 1024, 4096, 1, 8.2e-06]], "tables.grouped.bf16"),
    (("grouped", "bf16", "points"), [[1, 1024, 4096, 8.2e-06]], "tables.grouped.bf16"),
    (("grouped", "fp8", "points"), [[4, 4096, 1024, "8", 1.9e-05]], "tables.grouped.fp8"),
])
def test_a_malformed_table_is_one_error_naming_its_field(path, value, field):
    data = good()
    where = data["tables"]
    for key in path[:-1]:
        where = where[key]
    where[path[-1]] = value
    with pytest.raises(GpuProfileError, match=field.replace(".", r"\.")) as caught:
        parse_gpu(data, "p.yaml")
    assert "p.yaml" in str(caught.value) and "\n" not in str(caught.value)


V2_TABLES = {
    "quant_in_linear": False,
    "act_quant": {"fp8/static": {"points": [[1, 4096, 2.1e-06], [16384, 4096, 9.9e-05]]},
                  "int8/fused": {"points": [[64, 1024, 2.4e-06]]}},
    "attention": [
        {"phase": "prefill", "kind": "gqa", "heads": 32, "kv_heads": 8, "head_dim": 128,
         "v_head_dim": 128, "window": None, "sinks": False, "points": [[1, 512, 2.6e-05]]},
        {"phase": "decode", "kind": "mla", "heads": 128, "kv_heads": 1, "head_dim": 576,
         "v_head_dim": 512, "window": None, "sinks": False, "points": [[8, 4096, 6.1e-05]]},
        {"phase": "decode", "kind": "gqa", "heads": 64, "kv_heads": 8, "head_dim": 64,
         "v_head_dim": 64, "window": 128, "sinks": True, "points": [[1, 4096, 7.0e-06]]}],
    "moe_block": {"points": [[1, 128, 8, 2048, 768, 0.000112]]},
}


def v2_profile(**changes) -> dict:
    data = profile(**copy.deepcopy(V2_TABLES))
    data["method_version"] = 2
    data["tables"].update(changes)
    return data


def test_method_v2_tables_read_back_as_written():
    tables = parse_gpu(v2_profile()).tables
    assert tables.quant_in_linear is False
    assert tables.act_quant == {"fp8/static": ((1, 4096, 2.1e-06), (16384, 4096, 9.9e-05)),
                                "int8/fused": ((64, 1024, 2.4e-06),)}
    mla = tables.attention[1]
    assert (mla.phase, mla.kind, mla.heads, mla.kv_heads, mla.head_dim, mla.v_head_dim,
            mla.group) == ("decode", "mla", 128, 1, 576, 512, 128)
    sliding = tables.attention[2]
    assert (sliding.window, sliding.sinks, sliding.points) == (128, True, ((1, 4096, 7.0e-06),))
    assert tables.moe_block == ((1, 128, 8, 2048, 768, 0.000112),)
    # the reference prefill table comes from the list; there is no reference decode table
    assert tables.attention_prefill is tables.attention[0] and tables.attention_decode is None
    text = dump_yaml(v2_profile(**tables_data(tables)))
    assert parse_gpu(yaml.safe_load(text)).tables == tables


def test_quant_in_linear_follows_the_method_version_where_not_written():
    v1 = profile(linear={})
    assert parse_gpu(v1).tables.quant_in_linear is True  # no method_version: v1
    v2 = v2_profile()
    del v2["tables"]["quant_in_linear"]
    assert parse_gpu(v2).tables.quant_in_linear is False


def test_a_v1_profile_lists_its_two_attention_tables():
    from perfmodel.hardware.gpu import GPU_DIR

    data = yaml.safe_load((GPU_DIR / "h100-sxm-measured.yaml").read_text())
    for key in ("quant_in_linear", "act_quant", "attention", "moe_block"):
        data["tables"].pop(key, None)  # as written by method v1
    data["method_version"] = 1
    data["tables"]["attention_prefill"] = {"heads": 32, "kv_heads": 8, "head_dim": 128,
                                           "points": [[1, 128, 1.0e-05]]}
    data["tables"]["attention_decode"] = {"heads": 32, "kv_heads": 8, "head_dim": 128,
                                          "points": [[1, 256, 6.0e-06]]}
    tables = parse_gpu(data).tables
    assert tables.quant_in_linear is True and tables.act_quant == {} and tables.moe_block == ()
    assert tables.attention == (tables.attention_prefill, tables.attention_decode)
    assert [t.phase for t in tables.attention] == ["prefill", "decode"]
    assert tables.attention_decode.v_head_dim == 128 and tables.attention_decode.window is None


@pytest.mark.parametrize("key, value, field", [
    ("quant_in_linear", "no", "tables.quant_in_linear"),
    ("act_quant", {"fp8/blockwise": {"points": []}}, "tables.act_quant"),
    ("act_quant", {"fp4/static": {"points": []}}, "tables.act_quant"),
    ("act_quant", {"fp8/static": {"points": [[1, 4096]]}}, "tables.act_quant.fp8/static"),
    ("act_quant", [["fp8/static"]], "tables.act_quant"),
    ("moe_block", {"points": [[1, 128, 8, 2048, 1.1e-04]]}, "tables.moe_block"),
    ("moe_block", {"points": [[1, 128, 8.0, 2048, 768, 1.1e-04]]}, "tables.moe_block"),
    ("attention", {"phase": "decode"}, "tables.attention"),
])
def test_a_malformed_v2_table_is_one_error_naming_its_field(key, value, field):
    with pytest.raises(GpuProfileError, match=field.replace(".", r"\.")) as caught:
        parse_gpu(v2_profile(**{key: value}), "p.yaml")
    assert "p.yaml" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name, value", [
    ("phase", "train"), ("kind", "mha"), ("heads", 0), ("kv_heads", 3), ("head_dim", 64.0),
    ("v_head_dim", None), ("window", 0), ("window", "128"), ("sinks", 1), ("points", [[1, 2]]),
])
def test_a_malformed_attention_entry_names_its_index(name, value):
    data = v2_profile()
    data["tables"]["attention"][2][name] = value
    with pytest.raises(GpuProfileError, match=r"tables\.attention\[2\]") as caught:
        parse_gpu(data, "p.yaml")
    assert "\n" not in str(caught.value)
