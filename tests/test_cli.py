"""The real CLI through typer's CliRunner: outputs, the JSON schema, errors, start-up cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from perfmodel.cli import app
from conftest import ROOT

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "140", "PERFMODEL_DEBUG": "0"})


def predict_json(*args):
    result = invoke("predict", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_predict_table_names_every_source():
    result = invoke("predict", "meta-llama/Llama-3.1-8B", "--gpu", "h100-sxm")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "bundled configs/models/meta-llama/Llama-3.1-8B.json" in out
    assert "datasheet" in out and "TTFT" in out and "ITL" in out
    for op in ("qkv", "attention", "o_proj", "gate_up", "down", "lm_head", "rope"):
        assert op in out


def test_json_schema():
    doc = predict_json("Qwen/Qwen3-30B-A3B", "--gpu", "h100-sxm", "--batch", "4")
    assert set(doc) >= {"model", "gpu", "workload", "limit", "estimate", "memory", "ops"}
    assert doc["model"]["params_active"] < doc["model"]["params_total"]
    assert set(doc["gpu"]["peak_flops"]) >= {"bf16", "fp16", "fp8", "int8"}
    assert doc["workload"] == {"batch": 4, "input_len": 1024, "output_len": 256}
    assert set(doc["limit"]) == {"ttft_s", "itl_s", "throughput_tok_s", "decode_tok_s"}
    assert set(doc["memory"]) >= {"weights_bytes", "kv_bytes_per_token", "kv_bytes", "fits",
                                  "max_batch"}
    for op in doc["ops"]:
        assert op["phase"] in ("prefill", "decode") and op["bound"] in ("compute", "memory")
        assert op["count"] >= 1 and op["flops"] >= 0 and op["bytes"] > 0 and op["limit_s"] > 0
        assert "estimate_s" in op
    prefill = sum(op["limit_s"] for op in doc["ops"]  # the limit leaves fusable ops out
                  if op["phase"] == "prefill" and op["kind"] != "elementwise")
    assert prefill == pytest.approx(doc["limit"]["ttft_s"])


def test_matmul_only_lists_matmuls_and_attention():
    doc = predict_json("meta-llama/Llama-3.2-1B", "--matmul-only")
    assert {op["name"] for op in doc["ops"]} == {"qkv", "attention", "o_proj", "gate_up", "down",
                                                 "lm_head"}


def test_napkin_qwen3_4b_on_rtx4090():
    """The seed's napkin: bandwidth / model bytes ≈ 1.0e12 / 8.0e9 ≈ 125 tokens/s at batch 1."""
    doc = predict_json("Qwen/Qwen3-4B-Instruct-2507", "--gpu", "rtx-4090", "--input-len", "16",
                       "--output-len", "2")
    assert doc["limit"]["decode_tok_s"] == pytest.approx(125, rel=0.10)


def test_quantization_config_sets_default_precision():
    doc = predict_json("deepseek-ai/DeepSeek-V3", "--gpu", "h200")
    assert doc["precision"]["name"] == "fp8"
    assert "quantization_config" in doc["precision"]["source"]
    assert doc["memory"]["fits"] is False and doc["warnings"]
    doc = predict_json("deepseek-ai/DeepSeek-V3", "--gpu", "h200", "--precision", "bf16")
    assert doc["precision"]["name"] == "bf16"


@pytest.mark.parametrize("args, words", [
    (("predict", "meta-llama/Llama-3.1-8B", "--batch", "0"), "--batch"),
    (("predict", "meta-llama/Llama-3.1-8B", "--input-len", "-3"), "--input-len"),
    (("predict", "meta-llama/Llama-3.1-8B", "--precision", "int3"), "bf16, fp16, fp8"),
    (("predict", "meta-llama/Llama-3.1-8B", "--kv-dtype", "fp4"), "KV dtype"),
    (("predict", "meta-llama/Llama-3.1-8B", "--gpu", "tpu-v9"), "h100-sxm"),
    (("predict", "meta-llama/Llama-3.1-8B", "--gpu", "a100-sxm-80gb", "--precision", "fp8"),
     "--precision"),
    (("predict", "meta-llama/Llama-3.1-8B", "--engine", "nope"), "torch-cudagraph"),
    (("predict", "./no/such/config.json"), "config"),
])
def test_bad_input_is_one_line_and_exit_2(args, words):
    result = invoke(*args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # exited on purpose, no exception escaped


def test_bad_config_and_profile_files(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "llama", "hidden_size": 64,\n "oops"}')
    assert "line 2" in invoke("predict", str(cfg)).output
    cfg.write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    result = invoke("predict", str(cfg))
    assert result.exit_code == 2 and "num_hidden_layers" in result.output
    cfg.write_text(json.dumps({"model_type": "rwkv"}))
    assert "llama" in invoke("predict", str(cfg)).output  # lists what is supported
    profile = tmp_path / "gpu.yaml"
    profile.write_text("name: [unclosed\n")
    result = invoke("predict", "meta-llama/Llama-3.2-1B", "--gpu", str(profile))
    assert result.exit_code == 2 and "not valid YAML" in result.output


def test_debug_env_shows_the_traceback():
    """A user error: one line and exit 2 by default; the traceback only with PERFMODEL_DEBUG=1."""
    command = [sys.executable, "-c", "from perfmodel.cli import main; main()", "predict",
               "meta-llama/Llama-3.1-8B", "--batch", "0"]
    for debug in ("0", "1"):
        env = {**os.environ, "PERFMODEL_DEBUG": debug}
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        output = run.stdout + run.stderr
        assert ("Traceback (most recent call last)" in output) == (debug == "1"), output
        assert "--batch must be a whole number" in output
        if debug == "0":
            assert run.returncode == 2 and len(output.strip().splitlines()) == 1, output
        else:
            assert run.returncode != 0


def test_models_and_gpus_list_what_is_bundled():
    out = invoke("models").output
    assert "deepseek-ai/DeepSeek-V3" in out and "Qwen/Qwen3-30B-A3B" in out
    out = invoke("gpus").output
    for name in ("h100-sxm", "h200", "rtx-4090", "mi300x", "b200"):
        assert name in out


def test_cli_import_does_not_import_torch():
    code = ("import sys, perfmodel.cli, perfmodel.api, perfmodel.cost.estimate;"
            "bad = [m for m in ('torch', 'triton', 'huggingface_hub') if m in sys.modules];"
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_predict_path_never_imports_torch():
    code = ("import sys; from typer.testing import CliRunner; from perfmodel.cli import app;"
            "r = CliRunner().invoke(app, ['predict', 'meta-llama/Llama-3.1-8B', '--json']);"
            "assert r.exit_code == 0, r.output;"
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_cli_docs_are_current():
    from perfmodel.cli_docs import DOC, render

    assert DOC.read_text() == render(), "docs/cli.md is stale: run python -m perfmodel.cli_docs"


def test_measured_profile_peaks_in_json():
    from perfmodel.hardware.gpu import load_gpu

    doc = predict_json("meta-llama/Llama-3.1-8B", "--gpu", "h100-sxm-measured")
    gpu = load_gpu("h100-sxm-measured")
    assert doc["gpu"]["kind"] == "measured" and doc["gpu"]["source"].startswith("measured")
    assert doc["gpu"]["peak_flops"]["bf16"] == gpu.peak("bf16")
    assert doc["gpu"]["mem_bandwidth"] == gpu.mem_bandwidth
    assert doc["estimate"]["itl_s"] > doc["limit"]["itl_s"]
    assert all(op["estimate_s"] is not None for op in doc["ops"])


def test_datasheet_gpu_gets_a_flagged_estimate():
    """A borrowed estimate keeps the source's efficiencies on the target's own rates: a
    memory-bound op takes the source's time × source bandwidth / target bandwidth, and no
    op of the limit comes out below its limit."""
    from perfmodel.cost.estimate import _source_for, _target_rates
    from perfmodel.hardware.gpu import load_gpu

    doc = predict_json("meta-llama/Llama-3.1-8B", "--gpu", "rtx-4090", "-b", "8")
    assert doc["estimate"] is not None
    assert any("derived from" in w for w in doc["warnings"])
    gpu = load_gpu("rtx-4090")
    source, _ = _source_for(gpu)
    there = {(op["phase"], op["name"]): op for op in doc["ops"]}
    here = {(op["phase"], op["name"]): op for op in predict_json(
        "meta-llama/Llama-3.1-8B", "--gpu", source.name, "-b", "8")["ops"]}
    ratio = source.mem_bandwidth / _target_rates(gpu, source).bandwidth
    residual = ("prefill", "attn_residual")  # 8 × 1024 rows: far above any latency floor
    assert there[residual]["estimate_s"] == pytest.approx(here[residual]["estimate_s"] * ratio,
                                                          rel=1e-9)
    for op in doc["ops"]:
        if op["kind"] != "elementwise":
            assert op["estimate_s"] >= op["limit_s"] * (1 - 1e-9), op["name"]
    assert doc["estimate"]["itl_s"] >= doc["limit"]["itl_s"]
