"""Input files that silently changed the answer or crashed: config fields, config.json shapes,
GPU profile YAML (alias bombs, duplicate keys), the Hub timeouts, --lengths, and the wording of
GPU-count errors (issue 19, §3)."""

from __future__ import annotations

import json
import os
import time

import pytest
from conftest import ROOT
from test_bad_inputs import DEEPSEEK, GPT_OSS, LLAMA, MODELS, config_with, invoke, one_line_error

GLM = "zai-org/GLM-4.5-Air"


@pytest.mark.parametrize("model_id, fields, words", [
    (DEEPSEEK, {"first_k_dense_replace": 61}, ["'first_k_dense_replace' is 61", "61 layers"]),
    (DEEPSEEK, {"first_k_dense_replace": 100}, ["'first_k_dense_replace' is 100"]),
    (GLM, {"first_k_dense_replace": 46}, ["'first_k_dense_replace' is 46", "46 layers"]),
    (LLAMA, {"torch_dtype": "bfloat17"}, ["'torch_dtype' is \"bfloat17\"", "bfloat16"]),
    (LLAMA, {"torch_dtype": 16}, ["'torch_dtype' is 16"]),
    (GPT_OSS, {"layer_types": ["sliding_attention", "chunked_attention"] * 18},
     ["'layer_types' holds \"chunked_attention\"", "full_attention and sliding_attention"]),
    (LLAMA, {"vocab_size": 10**15}, ["'vocab_size' is 1000000000000000, above 4,194,304"]),
    (LLAMA, {"hidden_size": int("9" * 400)}, ["'hidden_size' is a 400-digit number"]),
    (DEEPSEEK, {"n_group": 0}, ["'n_group' is 0, not a whole number ≥ 1"]),
    (DEEPSEEK, {"n_group": 7}, ["'n_group' 7 does not divide the 256 routed experts"]),
    (DEEPSEEK, {"topk_group": 9}, ["'topk_group' is 9, more than the 8 groups"]),
    (DEEPSEEK, {"topk_group": 0}, ["'topk_group' is 0"]),
])
def test_config_fields_that_changed_the_answer(tmp_path, model_id, fields, words):
    """first_k_dense_replace ≥ L made DeepSeek-V3 a 37B dense model; an unknown dtype was read
    as bf16, an unknown layer type as global attention."""
    path = config_with(tmp_path, model_id, **fields)
    one_line_error(invoke("predict", str(path)), str(path), *words, "fix it in the config")


def test_first_k_dense_replace_below_the_layers_still_reads():
    """DeepSeek-V3 as bundled: 3 dense layers of 61, 671B parameters."""
    result = invoke("predict", DEEPSEEK, "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["model"]["params_total"] == pytest.approx(671e9, rel=0.01)


QUANT = {"quant_method": "gptq", "bits": 4, "sym": True}


@pytest.mark.parametrize("group", [0, -8, -1, 2.5, "128", True])
def test_int4_group_size_that_is_not_a_group(tmp_path, group):
    """A group_size of 0 or -8 was shown as 128."""
    path = config_with(tmp_path, LLAMA, quantization_config={**QUANT, "group_size": group})
    one_line_error(invoke("predict", str(path)), f"group_size is {group!r}", "whole number ≥ 1",
                   "--precision")


def test_int4_group_size_that_is_a_group(tmp_path):
    path = config_with(tmp_path, LLAMA, quantization_config={**QUANT, "group_size": 32})
    result = invoke("predict", str(path), "--json")
    assert result.exit_code == 0 and "group 32" in result.output


@pytest.mark.parametrize("text, words", [
    ('{"a":' * 100_000 + "1" + "}" * 100_000, ["nests objects or lists too deeply"]),
    ('{"hidden_size": 4' + "0" * 5000 + "}", ["holds a number too long to read"]),
])
def test_config_json_too_deep_or_too_long_a_number(tmp_path, text, words):
    """RecursionError and ValueError (Python's 4,300-digit limit) were tracebacks."""
    path = tmp_path / "config.json"
    path.write_text(text)
    one_line_error(invoke("predict", str(path)), str(path), *words)


BOMB = "a: &a [" + ",".join(['"lol"'] * 9) + "]\n" + "".join(
    f"{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, n in zip("abcdefgh", "bcdefghi"))


def test_yaml_alias_bomb_is_refused_fast_and_writes_no_cache(tmp_path, monkeypatch):
    """1.7 kB of nested aliases (9**9 = 387 million strings) took 67 s and wrote 580 MB into
    the cache; it is refused from the node graph before anything is built."""
    monkeypatch.setenv("PERFMODEL_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 2000
    started = time.monotonic()
    one_line_error(invoke("predict", LLAMA, "--gpu", str(path)), f"GPU profile {path}",
                   "more than 1,000,000 values through nested aliases")
    assert time.monotonic() - started < 30  # about 0.1 s; far from the 67 s it took
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("text, words", [
    ("a: &a [*a]\n", ["an alias refers to a node that holds it"]),
    (None, ["the key 'mem_bandwidth' appears twice"]),
])
def test_yaml_that_refers_to_itself_or_repeats_a_key(tmp_path, monkeypatch, text, words):
    """A duplicate key silently kept its last value."""
    monkeypatch.setenv("PERFMODEL_CACHE", str(tmp_path / "cache"))
    if text is None:
        text = (ROOT / "configs/gpus/h100-sxm.yaml").read_text() + "mem_bandwidth: 1.0e+12\n"
    path = tmp_path / "box.yaml"
    path.write_text(text)
    one_line_error(invoke("predict", LLAMA, "--gpu", str(path)), *words, "fix or regenerate")
    assert not (tmp_path / "cache").exists()


def test_every_bundled_profile_passes_the_yaml_checks():
    from perfmodel.hardware.yamlcache import _parse

    for path in sorted((ROOT / "configs" / "gpus").rglob("*.yaml")):
        assert _parse(path.read_text()) is not None, path


@pytest.mark.parametrize("name", ["HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT"])
@pytest.mark.parametrize("value", ["abc", "-1", "0", "1.5", ""])
def test_hub_timeouts_that_are_not_timeouts(monkeypatch, name, value):
    """huggingface_hub reads these with int() on import: 'abc' was a traceback."""
    monkeypatch.setenv(name, value)
    result = invoke("predict", "some-org/some-model")
    one_line_error(result, f"{name}={value!r} is not a timeout", "whole seconds", "or unset it")


@pytest.mark.parametrize("kind", ["folder", "device"])
def test_lengths_that_is_a_folder_or_device_is_named_so(tmp_path, kind):
    path = str(tmp_path) if kind == "folder" else "/dev/zero"
    what = "is a folder" if kind == "folder" else "is a device or other special file"
    line = one_line_error(invoke("serve", LLAMA, "--concurrency", "1", "--lengths", path),
                          f"--lengths {path}: {what}")
    assert "no such file" not in line


def test_lengths_line_nested_too_deeply(tmp_path):
    path = tmp_path / "lengths.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    one_line_error(invoke("serve", LLAMA, "--concurrency", "1", "--lengths", str(path)),
                   f"--lengths {path} line 1")


@pytest.mark.parametrize("visible, asked, words", [
    (0, 2, ["--tp 2 needs at least 2 CUDA GPUs and torch sees none here"]),
    (1, 2, ["--tp 2 needs 2 CUDA GPUs and torch sees one here"]),
    (4, 8, ["--tp 8 needs 8 CUDA GPUs and torch sees 4 here", "pass 2 to 4"]),
    (4, 1, ["--tp 1: collectives need at least 2 GPUs; pass 2 to 4"]),
])
def test_gpu_count_wording(visible, asked, words):
    """'needs 2 to 0 visible CUDA GPUs' when none was visible."""
    from perfmodel.calibrate.collectives import gpu_count_error

    line = gpu_count_error("--tp", asked, visible)
    assert all(word in line for word in words), line
    assert " to 0 " not in line and " to 1 " not in line


def test_validate_tp_without_gpus_says_none_are_visible(monkeypatch):
    from perfmodel.calibrate import collectives
    from perfmodel.errors import PerfmodelError
    from perfmodel.validate.distributed import measure_tp

    monkeypatch.setattr(collectives, "visible_gpus", lambda: 0)
    with pytest.raises(PerfmodelError, match="torch sees none here"):
        measure_tp([], 2)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_gpu_profile_that_is_a_device_is_named_so():
    one_line_error(invoke("predict", LLAMA, "--gpu", "/dev/zero"),
                   "/dev/zero is not a profile YAML file (a device")


def test_model_that_is_a_device_is_named_so():
    one_line_error(invoke("predict", "/dev/zero"), "/dev/zero is not a regular file")
    assert MODELS.is_dir()
