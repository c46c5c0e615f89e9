"""Bad input a new user tries in the first hour, through the real CLI: one line that names the
fix, exit 2, no traceback, nothing overwritten (issue 7's list, one test per case)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import ROOT
from typer.testing import CliRunner

from perfmodel.cli import app

runner = CliRunner()
MODELS = ROOT / "configs" / "models"


def invoke(*args: str, columns: int = 120):
    return runner.invoke(app, list(args), env={"COLUMNS": str(columns), "PERFMODEL_DEBUG": "0"})


def one_line_error(result, *words: str) -> str:
    """The output is exactly one 'error: ' line holding every word; exit 2; no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def config_with(tmp_path: Path, model_id: str, **fields) -> Path:
    """A bundled model's config.json with some fields replaced, written to tmp_path."""
    cfg = json.loads((MODELS / f"{model_id}.json").read_text())
    inner = cfg.get("text_config", cfg)
    inner.update(fields)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))  # json writes NaN and Infinity as the literals HF files hold
    return path


NAN, INF = float("nan"), float("inf")
LLAMA, QWEN_MOE, MIXTRAL = "meta-llama/Llama-3.1-8B", "Qwen/Qwen3-30B-A3B", "mistralai/Mixtral-8x7B-v0.1"
DEEPSEEK, GPT_OSS, QWEN = "deepseek-ai/DeepSeek-V3", "openai/gpt-oss-120b", "Qwen/Qwen3-4B-Instruct-2507"


@pytest.mark.parametrize("model_id, field, value", [
    *[(LLAMA, f, v) for f in ("num_attention_heads", "hidden_size", "num_hidden_layers",
                              "num_key_value_heads", "vocab_size", "intermediate_size")
      for v in (0, -8, NAN, INF, 2.5, "32")],
    (QWEN, "head_dim", 0), (QWEN, "head_dim", -128), (QWEN, "head_dim", NAN),
    *[(QWEN_MOE, f, v) for f in ("num_experts", "num_experts_per_tok", "moe_intermediate_size")
      for v in (0, NAN, INF, 1.5)],
    (MIXTRAL, "num_local_experts", 0), (MIXTRAL, "num_local_experts", INF),
    (MIXTRAL, "num_experts_per_tok", 0),
    (DEEPSEEK, "n_routed_experts", 0), (DEEPSEEK, "n_routed_experts", NAN),
    (DEEPSEEK, "kv_lora_rank", 0), (GPT_OSS, "num_local_experts", -1),
    (LLAMA, "num_hidden_layers", 1e12),
])
def test_bad_number_in_config_names_field_and_file(tmp_path, model_id, field, value):
    path = config_with(tmp_path, model_id, **{field: value})
    line = one_line_error(invoke("predict", str(path)), f"'{field}'", str(path), "fix it")
    shown = json.dumps(value)
    assert f"is {shown}" in line


@pytest.mark.parametrize("model_id, fields, words", [
    (QWEN_MOE, {"num_experts_per_tok": 129}, ["'num_experts_per_tok' is 129", "128 experts"]),
    (MIXTRAL, {"num_experts_per_tok": 9}, ["'num_experts_per_tok' is 9", "8 experts"]),
    (DEEPSEEK, {"num_experts_per_tok": 257}, ["257", "'n_routed_experts'"]),
    (LLAMA, {"num_key_value_heads": 3}, ["'num_attention_heads' 32 is not a multiple",
                                         "'num_key_value_heads' 3"]),
    (LLAMA, {"num_key_value_heads": 64}, ["'num_key_value_heads' 64 exceeds",
                                          "'num_attention_heads' 32"]),
    (LLAMA, {"hidden_size": 4100}, ["'hidden_size' 4100 is not a multiple", "head_dim"]),
    (LLAMA, {"tie_word_embeddings": "yes"}, ["'tie_word_embeddings' is \"yes\"", "true or false"]),
    (LLAMA, {"attention_bias": 1}, ["'attention_bias' is 1", "true or false"]),
    ("mistralai/Mistral-Small-24B-Instruct-2501", {"sliding_window": -5},
     ["'sliding_window' is -5"]),
    (QWEN, {"sliding_window": -5}, ["'sliding_window' is -5"]),  # even with the window off
    (QWEN, {"use_sliding_window": "no"}, ["'use_sliding_window' is \"no\""]),
    (GPT_OSS, {"layer_types": "sliding_attention"}, ["'layer_types'", "list"]),
    (GPT_OSS, {"layer_types": ["sliding_attention"] * 3}, ["'layer_types' names 3 layers"]),
    (LLAMA, {"model_type": ["llama"]}, ["model_type [\"llama\"] is not supported"]),
    ("MiniMaxAI/MiniMax-M2.5", {"attn_type_list": [0] + [1] * 61},
     ["'attn_type_list'", "lightning attention"]),
])
def test_inconsistent_config_names_field_and_file(tmp_path, model_id, fields, words):
    path = config_with(tmp_path, model_id, **fields)
    one_line_error(invoke("predict", str(path)), str(path), *words)


def test_one_sequence_kv_cache_too_big_is_said_so():
    """-i 10000000: the weights fit (16 GB), one sequence's KV cache does not: 2 (K, V) · 32
    layers · 8 KV heads · 128 · 2 bytes = 131,072 B/token, × 10,000,256 tokens = 1310.8 GB."""
    result = invoke("predict", LLAMA, "--gpu", "h100-sxm", "-i", "10000000", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["memory"]["max_batch"] == 0
    assert doc["memory"]["weights_bytes"] < doc["memory"]["gpu_bytes"]
    warning = next(w for w in doc["warnings"] if w.startswith("does not fit"))
    assert "one sequence's KV cache (1310.8 GB)" in warning and "weights alone" not in warning
    result = invoke("predict", DEEPSEEK, "--gpu", "h100-sxm", "--json")
    assert any("the weights alone exceed it" in w for w in json.loads(result.output)["warnings"])


# ---------------------------------------------------------------- MODEL and --gpu paths


def test_model_folder_without_config_is_not_sent_to_the_hub(tmp_path, monkeypatch):
    (tmp_path / "fx" / "nodir").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    one_line_error(invoke("predict", "fx/nodir"), "holds no config.json", "another folder")


@pytest.mark.parametrize("kind", ["folder", "device"])
def test_gpu_that_is_not_a_yaml_file(tmp_path, kind):
    path = str(tmp_path) if kind == "folder" else os.devnull
    what = "a folder" if kind == "folder" else "a device"
    one_line_error(invoke("predict", LLAMA, "--gpu", path), f"{path} is not a profile YAML file",
                   what, "perfmodel gpus")


def test_gpu_profile_that_is_not_utf8(tmp_path):
    path = tmp_path / "box.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    one_line_error(invoke("predict", LLAMA, "--gpu", str(path)), "cannot read GPU profile")


# ---------------------------------------------------------------- validate: arguments before CUDA


@pytest.mark.parametrize("args, words", [
    (("--precision", "fp4"), ["not 'fp4'", "bf16, fp16, fp8, int8 or int4"]),
    (("--precision", "fp5"), ["unknown precision 'fp5'"]),
    (("--gpu", "tpu-v9"), ["unknown GPU 'tpu-v9'"]),
    (("--out", "/dev/full"), ["/dev/full is not a regular file"]),
])
def test_validate_checks_arguments_before_looking_for_cuda(args, words):
    line = one_line_error(invoke("validate", "meta-llama/Llama-3.2-1B", *args), *words)
    assert "CUDA" not in line


def test_validate_checks_the_model_before_looking_for_cuda(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nobody" / "nothing").mkdir(parents=True)  # stays offline: a local folder
    line = one_line_error(invoke("validate", "nobody/nothing"), "holds no config.json")
    assert "CUDA" not in line


# ---------------------------------------------------------------- calibrate-gpu --out


@pytest.fixture
def never_measure(monkeypatch):
    """Any --out that gets past the check would start measuring: make that fail loudly."""
    from perfmodel.calibrate import run

    def refuse(*args, **kwargs):
        raise AssertionError("started measuring")
    monkeypatch.setattr(run, "measure", refuse)


@pytest.mark.parametrize("out, words", [
    ("/dev/full", ["/dev/full is not a regular file", "never replaced"]),
    ("/dev/null", ["/dev/null is not a regular file"]),
    ("/proc/version", ["cannot create a file in /proc"]),
    ("/proc", ["cannot create a file in /proc"]),  # a folder nothing can be written in
    ("/dev/full/box.yaml", ["/dev/full is not a folder"]),
])
def test_calibrate_out_checked_before_measuring(never_measure, out, words):
    existing = out if os.path.exists(out) else os.path.dirname(out)
    before = os.stat(existing)
    one_line_error(invoke("calibrate-gpu", "--device", "cpu", "--quick", "--out", out), *words)
    after = os.stat(existing)
    assert (after.st_mode, after.st_ino, after.st_rdev) == \
        (before.st_mode, before.st_ino, before.st_rdev)
    if out.startswith("/dev/"):
        assert stat.S_ISCHR(after.st_mode)


def test_calibrate_out_folder_whose_profile_path_is_a_folder(never_measure, tmp_path):
    """--out FOLDER writes FOLDER/<name>.yaml: a folder of that name is refused, not replaced."""
    pytest.importorskip("torch")
    (tmp_path / "box.yaml").mkdir()
    one_line_error(invoke("calibrate-gpu", "--device", "cpu", "--name", "box", "--out",
                          str(tmp_path)), f"{tmp_path / 'box.yaml'} is not a regular file")
    assert (tmp_path / "box.yaml").is_dir()


def test_calibrate_out_link_is_not_replaced(never_measure, tmp_path):
    target = tmp_path / "real.yaml"
    target.write_text("kept\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    one_line_error(invoke("calibrate-gpu", "--device", "cpu", "--out", str(link)),
                   "is not a regular file")
    assert link.is_symlink() and target.read_text() == "kept\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only folder")
def test_calibrate_out_in_read_only_folder(never_measure, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        one_line_error(invoke("calibrate-gpu", "--device", "cpu", "--out", str(folder / "x.yaml")),
                       f"cannot create a file in {folder}")
    finally:
        folder.chmod(0o755)


# ---------------------------------------------------------------- numbers and widths a reader sees


@pytest.mark.parametrize("value, unit, text", [
    (1990.4, "s", "1,990 s"), (14.44, "s", "14.4 s"), (0.02814, "s", "28.1 ms"),
    (7.754e-6, "s", "7.75 µs"), (3.49e-7, "s", "349 ns"), (0.99996, "s", "1 s"),
    (0.000999, "s", "999 µs"), (0, "s", "0 s"),
    (0.2543, "tok/s", "0.254 tok/s"), (912.3, "tok/s", "912 tok/s"),
    (2280.4, "tok/s", "2,280 tok/s"), (16.7e6, "tok/s", "16,700,000 tok/s"),
    (8.59e9, "B", "8.59 GB"), (9.89e14, "FLOP/s", "989 TFLOP/s"), (0.5, "B", "0.5 B"),
    (999.7e9, "B", "1 TB"), (None, "s", "—"),
])
def test_numbers_read_as_people_expect(value, unit, text):
    from perfmodel.report.render import si

    assert si(value, unit) == text


def test_parameter_counts():
    from perfmodel.report.render import params

    assert [params(n) for n in (8_030_261_248, 671_026_419_200, 135_000_000)] == \
        ["8.03B", "671B", "135M"]


@pytest.mark.parametrize("args", [
    ("predict", LLAMA, "--gpu", "h100-sxm-measured", "-i", "10000000"),  # TTFT in the ks
    ("predict", "deepseek-ai/DeepSeek-V3", "--gpu", "h100-sxm", "-b", "512", "-i", "131072"),
    ("predict", "meta-llama/Llama-3.2-1B", "--gpu", "b200", "-b", "512", "-i", "128", "-o", "2"),
])
def test_no_misread_prefixes_in_the_table(args):
    out = invoke(*args).output
    for bad in (" ks", "mtok/s", "ktok/s", "Mtok/s", " Ms", " ms/s", "e+0"):
        assert bad not in out, (bad, out)


def lines_within(text: str, columns: int) -> None:
    long = [line for line in text.splitlines() if len(line) > columns]
    assert not long, "\n".join(long)


@pytest.mark.parametrize("columns", [80, 120])
def test_gpus_never_cuts_a_profile_name(columns):
    from perfmodel.hardware.gpu import bundled_names

    result = invoke("gpus", columns=columns)
    assert result.exit_code == 0
    lines_within(result.output, columns)
    names = {line.split()[0] for line in result.output.splitlines() if line.strip()}
    assert set(bundled_names()) <= names
    assert "…" not in result.output


@pytest.mark.parametrize("gpu", ["h100-sxm", "h100-sxm-measured"])  # a datasheet URL; tables
@pytest.mark.parametrize("model_id", [LLAMA, DEEPSEEK, GPT_OSS, "google/gemma-3-27b-it"])
def test_predict_and_models_fit_80_columns(model_id, gpu):
    result = invoke("predict", model_id, "--gpu", gpu, "-b", "64", columns=80)
    assert result.exit_code == 0, result.output
    lines_within(result.output, 80)
    assert "…" not in result.output  # no op name or number cut
    models = invoke("models", columns=80).output
    lines_within(models, 80)
    assert model_id in models


def test_repeated_ops_carry_their_layer_group():
    """gemma-3-27b: 62 layers, every 6th global (10), the other 52 sliding over 1024 tokens."""
    result = invoke("predict", "google/gemma-3-27b-it", "--json")
    ops = [op for op in json.loads(result.output)["ops"]
           if op["phase"] == "decode" and op["name"] == "attn_norm"]
    assert {(op["group"], op["count"]) for op in ops} == {("sliding 1024", 52), ("global", 10)}
    assert all(op["fusable"] for op in ops)  # a norm: elementwise, outside the limit
    table = invoke("predict", "google/gemma-3-27b-it", columns=80).output
    assert table.count("sliding 1024:") == 2 and table.count("global:") == 2  # both phases
    deepseek = json.loads(invoke("predict", DEEPSEEK, "--json").output)["ops"]
    assert {op["group"] for op in deepseek if op["name"] == "attention"} == {"dense", "moe"}


def test_wrapper_model_type_that_is_not_a_name(tmp_path):
    """gemma-3's config wraps text_config, whose own model_type decides; a list as the wrapper's
    model_type was a TypeError (unhashable) before it was looked up."""
    cfg = json.loads((MODELS / "google/gemma-3-27b-it.json").read_text())
    cfg["model_type"] = []
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    result = invoke("predict", str(path))
    assert result.exit_code == 0 and "gemma3_text, 62 layers" in result.output, result.output


def _fields(cfg: dict, prefix: tuple = ()):
    """Paths of every scalar or list field of a config, text_config's included."""
    for key, value in cfg.items():
        if isinstance(value, dict):
            if key == "text_config":
                yield from _fields(value, prefix + (key,))
        else:
            yield prefix + (key,)


@pytest.mark.parametrize("model_id", sorted(
    str(p.relative_to(MODELS).with_suffix("")) for p in MODELS.glob("*/*.json")))
def test_no_bad_field_value_crashes(model_id):
    """Every field of every bundled config set to 0, -1, NaN, Infinity, 2.5, "x", [] or null:
    either a ConfigError that names the field, or a model that predicts (fields it ignores)."""
    from perfmodel.cost.precision import preset
    from perfmodel.cost.predict import predict
    from perfmodel.cost.workload import Workload
    from perfmodel.errors import ConfigError
    from perfmodel.hardware.gpu import parse_gpu
    from perfmodel.model.architectures import model_spec
    from conftest import H100_SHEET

    gpu, base = parse_gpu(dict(H100_SHEET)), json.loads((MODELS / f"{model_id}.json").read_text())
    for path in _fields(base):
        for bad in (0, -1, NAN, INF, 2.5, "x", [], None):
            cfg = json.loads(json.dumps(base))
            node = cfg
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = bad
            try:
                spec = model_spec(cfg, "config.json")
            except ConfigError as error:
                assert "\n" not in str(error) and str(error).startswith("config.json")
                continue
            predict(spec, preset("bf16"), gpu, Workload(2, 64, 4))


def test_plot_onto_a_folder_is_refused_before_predicting(tmp_path):
    (tmp_path / "fig.png").mkdir()
    one_line_error(invoke("predict", "meta-llama/Llama-3.1-8B", "--plot", str(tmp_path / "fig.png")),
                   "is not a regular file")
    assert (tmp_path / "fig.png").is_dir()


@pytest.mark.parametrize("args, words", [
    (("predict", "meta-llama/Llama-3.1-8B", "--plot", "/proc/x.png"),
     ["--plot /proc/x.png", "cannot create a file in /proc"]),
    (("sweep", "meta-llama/Llama-3.1-8B", "--batch", "1", "--out", "/proc/x.csv"),
     ["--out /proc/x.csv", "cannot create a file in /proc"]),
])
def test_plot_and_sweep_outputs_checked_before_any_work(args, words):
    one_line_error(invoke(*args), *words)
