"""Precision: bytes per weight worked by hand, activation schemes and KV dtypes as checkpoints
declare them, NVFP4/MXFP4, and datasheet memory in the bytes the cards have. No network, no GPU.

The quantization_config fixtures are modelled on real checkpoints (named beside each); only the
keys perfmodel reads are kept.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from perfmodel.api import resolve_precision
from perfmodel.cli import app
from perfmodel.cost.precision import int4_bytes, on_gpu, preset, with_act_scheme
from perfmodel.cost.predict import predict
from perfmodel.cost.quant_config import from_quantization_config, resolve
from perfmodel.cost.workload import Workload
from perfmodel.errors import ConfigError, WorkloadError
from perfmodel.hardware.gpu import bundled_names, load_gpu
from perfmodel.model.architectures import model_spec
from perfmodel.model.source import load_model_config

GIB = 2 ** 30
LLAMA8B = load_model_config("meta-llama/Llama-3.1-8B").config
# Llama-3.1-8B by hand: L=32, D=4096, K·H=1024, F=14336, V=128256, untied LM head.
LINEAR = 32 * (4096 * (4096 + 2 * 1024) + 4096 * 4096 + 3 * 4096 * 14336)  # 6,979,321,856
OTHER = 2 * 128256 * 4096 + (2 * 32 + 1) * 4096  # embedding + LM head + norms: 1,050,939,392

# Qwen/Qwen2.5-7B-Instruct-AWQ (AutoAWQ GEMM): zero_point true.
AWQ = {"bits": 4, "group_size": 128, "quant_method": "awq", "version": "gemm", "zero_point": True}
# Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4: sym true, no zero-points.
GPTQ = {"bits": 4, "group_size": 128, "desc_act": False, "quant_method": "gptq", "sym": True}
# deepseek-ai/DeepSeek-V3 (bundled): 128x128 weight blocks, dynamic activations.
FP8_BLOCK = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
             "weight_block_size": [128, 128]}
# An fp8 checkpoint written by llm-compressor's FP8 export (quant_method fp8), no blocks.
FP8_STATIC = {"activation_scheme": "static", "quant_method": "fp8"}
# RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8 (compressed-tensors, static per-tensor) with the
# kv_cache_scheme of RedHatAI/...-FP8-KV checkpoints.
CT_FP8_STATIC = {
    "quant_method": "compressed-tensors", "format": "float-quantized",
    "config_groups": {"group_0": {
        "targets": ["Linear"],
        "weights": {"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": False,
                    "symmetric": True},
        "input_activations": {"num_bits": 8, "type": "float", "strategy": "tensor",
                              "dynamic": False, "symmetric": True}}},
    "kv_cache_scheme": {"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": False,
                        "symmetric": True}}
# RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8-dynamic: per-channel weights, per-token activations.
CT_FP8_DYNAMIC = {
    "quant_method": "compressed-tensors", "format": "float-quantized",
    "config_groups": {"group_0": {
        "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "dynamic": False},
        "input_activations": {"num_bits": 8, "type": "float", "strategy": "token",
                              "dynamic": True}}}}
# RedHatAI/Llama-3.1-8B-Instruct-NVFP4 (llm-compressor NVFP4): W4A4, "local" dynamic scales.
CT_NVFP4 = {
    "quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized",
    "config_groups": {"group_0": {
        "format": "nvfp4-pack-quantized", "targets": ["Linear"],
        "weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16,
                    "symmetric": True, "dynamic": False},
        "input_activations": {"num_bits": 4, "type": "float", "strategy": "tensor_group",
                              "group_size": 16, "symmetric": True, "dynamic": "local"}}},
    "kv_cache_scheme": None}
# RedHatAI/...-NVFP4A16: the same weights, activations left in bf16.
CT_NVFP4A16 = {**CT_NVFP4, "config_groups": {"group_0": {
    **CT_NVFP4["config_groups"]["group_0"], "input_activations": None}}}
# ModelOpt hf_quant_config.json layout (nvidia/Llama-3.3-70B-Instruct-FP4,
# nvidia/Llama-3.1-8B-Instruct-NVFP4, served by `vllm serve ... --quantization modelopt`).
MODELOPT_NVFP4 = {"quant_method": "modelopt", "producer": {"name": "modelopt"},
                  "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8",
                                   "group_size": 16, "exclude_modules": ["lm_head"]}}
# ModelOpt >= 0.39 config.json layout, as vLLM's modelopt.py reads it: flat, kv_cache_scheme.
MODELOPT_FP8_FLAT = {"quant_method": "modelopt", "quant_algo": "FP8", "ignore": ["lm_head"],
                     "kv_cache_scheme": {"num_bits": 8, "type": "float", "dynamic": False}}


def with_quant(quant, **extra):
    return {**LLAMA8B, "quantization_config": quant, **extra}


def test_int4_zero_points_add_four_bits_per_group():
    assert int4_bytes(128, zero_points=True) == 0.5 + 2.5 / 128 == 0.51953125
    assert int4_bytes(128, zero_points=False) == 0.5 + 2 / 128 == 0.515625
    awq = from_quantization_config(with_quant(AWQ))
    gptq = from_quantization_config(with_quant(GPTQ))
    assert awq.weight_bytes == 0.51953125 and "zero-points" in awq.label
    assert gptq.weight_bytes == 0.515625 and "symmetric" in gptq.label
    asym = from_quantization_config(with_quant({**GPTQ, "sym": False, "group_size": 32}))
    assert asym.weight_bytes == 0.5 + 2.5 / 32
    no_zero = from_quantization_config(with_quant({**AWQ, "zero_point": False}))
    assert no_zero.weight_bytes == 0.515625


def test_fp8_scales_come_from_the_config():
    block = from_quantization_config(with_quant(FP8_BLOCK))
    assert block.weight_bytes == 1 + 4 / (128 * 128)
    assert "block 128x128" in block.label and block.act_scheme == "dynamic-token"
    static = from_quantization_config(with_quant(FP8_STATIC))
    assert static.weight_bytes == 1 and "block" not in static.label
    assert "per-tensor" in static.label and static.act_scheme == "static"
    assert "activation_scheme: static" in static.act_source


def test_compressed_tensors_activation_schemes():
    static = from_quantization_config(with_quant(CT_FP8_STATIC))
    dynamic = from_quantization_config(with_quant(CT_FP8_DYNAMIC))
    assert (static.act_scheme, static.weight_scales) == ("static", "per-tensor")
    assert (dynamic.act_scheme, dynamic.weight_scales) == ("dynamic-token", "per-channel")
    int8 = {**CT_FP8_DYNAMIC, "config_groups": {"g": {
        "weights": {"num_bits": 8, "type": "int", "strategy": "channel"},
        "input_activations": {"num_bits": 8, "type": "int", "strategy": "tensor",
                              "dynamic": True}}}}
    got = from_quantization_config(with_quant(int8))
    assert (got.name, got.act_scheme) == ("int8", "dynamic-tensor")


def test_act_quant_default_and_override():
    fp8 = resolve(LLAMA8B, "fp8", None, None)
    assert (fp8.act_scheme, fp8.act_source) == ("dynamic-token", "default")
    assert resolve(LLAMA8B, "fp8", None, "static").act_scheme == "static"
    over = resolve(with_quant(FP8_STATIC), None, None, "dynamic-tensor")
    assert (over.act_scheme, over.act_source) == ("dynamic-tensor", "--act-quant")
    assert "A fp8 dynamic-tensor (--act-quant)" in over.label


@pytest.mark.parametrize("name", ["bf16", "fp16", "int4", "mxfp4"])
def test_act_quant_with_weight_only_is_rejected(name):
    with pytest.raises(WorkloadError, match="--act-quant applies only"):
        resolve(LLAMA8B, name, None, "static")


def test_act_quant_bad_values():
    with pytest.raises(WorkloadError, match="static, dynamic-tensor, dynamic-token"):
        resolve(LLAMA8B, "fp8", None, "per-token")
    with pytest.raises(WorkloadError, match="not per token"):
        with_act_scheme(preset("fp4"), "dynamic-token")


def test_kv_cache_defaults_to_the_model_dtype():
    fp8 = resolve(LLAMA8B, "fp8", None, None)
    assert (fp8.kv_dtype, fp8.kv_source) == ("bf16", "model dtype")
    fp16_model = resolve({**LLAMA8B, "torch_dtype": "float16"}, "fp8", None, None)
    assert (fp16_model.base_dtype, fp16_model.kv_dtype) == ("fp16", "fp16")
    # Llama-3.1-8B fp8 at 128k: KV per token 32 layers x 2 x 8 heads x 128 x 2 bytes.
    spec = model_spec(LLAMA8B)
    mem = predict(spec, fp8, load_gpu("h100-sxm"), Workload(1, 131072, 2)).memory
    assert mem.kv_bytes_per_token == 32 * 2 * 8 * 128 * 2 == 131072


def test_kv_cache_from_the_checkpoint_or_the_flag():
    ct = resolve(with_quant(CT_FP8_STATIC), None, None, None)
    assert ct.kv_dtype == "fp8" and "kv_cache_scheme: 8-bit float" in ct.kv_source
    assert "KV fp8 (quantization_config kv_cache_scheme" in ct.label
    flag = resolve(with_quant(CT_FP8_STATIC), None, "bf16", None)
    assert (flag.kv_dtype, flag.kv_source) == ("bf16", "--kv-dtype")
    modelopt = resolve(with_quant(MODELOPT_NVFP4), None, None, None)
    assert modelopt.kv_dtype == "fp8" and "kv_cache_quant_algo: FP8" in modelopt.kv_source
    flat = resolve(with_quant(MODELOPT_FP8_FLAT), None, None, None)
    assert (flat.name, flat.act_scheme, flat.kv_dtype) == ("fp8", "static", "fp8")
    # --precision names another checkpoint: the KV scheme of this one does not follow it.
    assert resolve(with_quant(CT_FP8_STATIC), "fp8", None, None).kv_dtype == "bf16"
    with pytest.raises(ConfigError, match="--kv-dtype"):
        resolve(with_quant({**CT_FP8_STATIC, "kv_cache_scheme": {"num_bits": 4,
                                                                 "type": "float"}}),
                None, None, None)


def test_nvfp4_and_mxfp4_bytes():
    fp4, mx = preset("fp4"), preset("mxfp4")
    assert fp4.weight_bytes == fp4.act_bytes == 0.5 + 1 / 16 == 0.5625
    assert mx.weight_bytes == 0.5 + 1 / 32 == 0.53125 and mx.act_bytes == 2
    gpt_oss = from_quantization_config(load_model_config("openai/gpt-oss-120b").config)
    assert (gpt_oss.scope, gpt_oss.weight_bytes) == ("experts", 0.53125)


def test_fp4_weights_of_llama8b_by_hand():
    spec = model_spec(LLAMA8B)
    assert spec.params.total == LINEAR + OTHER == 8_030_261_248
    b200 = load_gpu("b200")
    prec = resolve_precision(LLAMA8B, "fp4", None, None, b200)
    mem = predict(spec, prec, b200, Workload(1, 128, 2)).memory
    assert mem.weights_bytes == LINEAR * 0.5625 + OTHER * 2 == 6_027_747_328


def test_fp4_runs_at_the_fp4_rate_where_the_gpu_has_one():
    b200 = load_gpu("b200")
    prec = resolve_precision(LLAMA8B, "fp4", None, None, b200)
    assert (prec.compute_dtype, prec.act_dtype, prec.note) == ("fp4", "fp4", "")
    spec = model_spec(LLAMA8B)
    pred = predict(spec, prec, b200, Workload(1, 8192, 2))
    down = next(c for c in pred.prefill.costs if c.op.name == "down")
    m, n, k = 8192, 4096, 14336
    assert down.compute_s == pytest.approx(32 * 2 * m * n * k / 9.0e15, rel=1e-12)
    assert down.memory_s == pytest.approx(
        32 * (n * k * 0.5625 + m * k * 0.5625 + m * n * 2) / 7.7e12, rel=1e-12)


@pytest.mark.parametrize("gpu", ["h100-sxm", "rtx-4090", "h200-measured"])
def test_fp4_without_an_fp4_rate_is_weight_only_at_bf16(gpu):
    spec = load_gpu(gpu)
    prec = resolve_precision(LLAMA8B, "fp4", None, None, spec)
    assert (prec.compute_dtype, prec.act_dtype, prec.act_scheme) == ("bf16", "bf16", None)
    assert prec.weight_bytes == 0.5625
    assert f"weight-only at bf16: {spec.name} has no FP4" in prec.label


def test_nvfp4_checkpoints_are_recognised():
    ct = from_quantization_config(with_quant(CT_NVFP4))
    assert (ct.name, ct.act_dtype, ct.act_scheme, ct.weight_bytes) == \
        ("fp4", "fp4", "static", 0.5625)
    assert "dynamic: local" in ct.act_source
    a16 = from_quantization_config(with_quant(CT_NVFP4A16))
    b200 = load_gpu("b200")
    assert on_gpu(a16, b200.peak_flops, "b200").compute_dtype == "bf16"  # W4A16 everywhere
    assert "(weight-only)" in a16.label
    mo = from_quantization_config(with_quant(MODELOPT_NVFP4))
    assert (mo.name, mo.compute_dtype, mo.act_scheme) == ("fp4", "fp4", "static")
    w4a16 = from_quantization_config(with_quant({"quant_method": "modelopt",
                                                 "quant_algo": "W4A16_NVFP4"}))
    assert (w4a16.weight_bytes, w4a16.compute_dtype) == (0.5625, "bf16")


@pytest.mark.parametrize("quant", ["fp8", ["fp8"], 8])
def test_quantization_config_must_be_an_object(quant):
    with pytest.raises(ConfigError, match="quantization_config must be an object"):
        from_quantization_config(with_quant(quant))


def test_quantization_config_string_through_the_cli(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(with_quant("fp8")))
    result = CliRunner().invoke(app, ["predict", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert "quantization_config must be an object" in result.output


def test_cli_json_names_act_scheme_and_kv_source():
    result = CliRunner().invoke(app, ["predict", "meta-llama/Llama-3.1-8B", "--precision", "fp8",
                                      "--act-quant", "static", "--json"])
    assert result.exit_code == 0, result.output
    prec = json.loads(result.output)["precision"]
    assert (prec["act_scheme"], prec["act_scheme_source"]) == ("static", "--act-quant")
    assert (prec["kv_cache"], prec["kv_cache_source"]) == ("bf16", "model dtype")
    assert prec["weight_scales"] == "per-tensor" and prec["label"].startswith("fp8 (W fp8")
    bad = CliRunner().invoke(app, ["predict", "meta-llama/Llama-3.1-8B", "--act-quant", "static"])
    assert bad.exit_code == 2 and "--act-quant applies only" in bad.output


DATASHEETS = [n for n in bundled_names() if load_gpu(n).kind == "datasheet"]
MEASURED = [n for n in bundled_names() if load_gpu(n).kind == "measured"]


@pytest.mark.parametrize("name", DATASHEETS)
def test_datasheet_memory_is_whole_gib(name):
    """"80 GB" on a card is 80 GiB: 80e9 bytes would be 74.5 GiB and fail here."""
    gib = load_gpu(name).mem_bytes / GIB
    assert gib == int(gib) and f"{int(gib)} GiB" in load_gpu(name).extra["notes"]


@pytest.mark.parametrize("name", MEASURED)
def test_datasheet_memory_covers_what_the_card_showed(name):
    measured = load_gpu(name)
    sheet = load_gpu(measured.datasheet)
    assert sheet.mem_bytes >= measured.mem_bytes
    assert measured.mem_bytes >= 0.985 * sheet.mem_bytes  # the driver keeps back < 1.5%


def test_fp4_peaks_are_blackwells_alone():
    """Blackwell's dense FP4 rate is twice its FP8 rate (datasheet 18 vs 9 PFLOPS sparse)."""
    for name in DATASHEETS:
        spec = load_gpu(name)
        if name in ("b200", "rtx-pro-6000"):
            assert spec.peak("fp4") == pytest.approx(2 * spec.peak("fp8"), rel=1e-12)
        else:
            assert spec.peak("fp4") is None, name


@pytest.mark.parametrize(("quant", "message"), [
    ({"quant_method": "fp8", "weight_block_size": [128]}, "weight_block_size"),
    ({"quant_method": "fp8", "activation_scheme": "sometimes"}, "activation_scheme"),
    ({"quant_method": "awq", "bits": 3}, "3 bits"),
    ({"quant_method": "compressed-tensors", "config_groups": {}}, "config_groups"),
    ({"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 32}, "group_size 32"),
    ({"quant_method": "modelopt", "quant_algo": "INT4_AWQ"}, "INT4_AWQ"),
    ({"quant_method": "bitsandbytes"}, "bitsandbytes"),
])
def test_unsupported_quantization_configs_name_the_fix(quant, message):
    with pytest.raises(ConfigError, match=message) as err:
        from_quantization_config(with_quant(quant))
    assert "--precision" in str(err.value)
