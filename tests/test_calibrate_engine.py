"""calibrate-engine's runner on the CPU, against a stand-in vLLM (tests/data/fake_vllm: the same
entry points, a /health server and a benchmark main that writes the result JSON): the run
folder's contents, nothing replaced, nothing left under the final name on failure, the points'
grammar, and the weightless model's tokenizer."""

from __future__ import annotations

import json
import os
import socket

import pytest
from conftest import ROOT
from typer.testing import CliRunner

from perfmodel.calibrate.engine_bench import (DEFAULT_POINTS, bench_args, parse_point,
                                              parse_points, prefix_counters)
from perfmodel.calibrate.engine_run import weightless_model
from perfmodel.cli import app
from perfmodel.errors import WorkloadError

FAKE = ROOT / "tests" / "data" / "fake_vllm"
runner = CliRunner()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_vllm(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE), str(ROOT)]))
    monkeypatch.delenv("FAKE_VLLM_FAIL", raising=False)
    return monkeypatch


def _run(tmp_path, *extra):
    return runner.invoke(app, ["calibrate-engine", "meta-llama/Llama-3.2-1B", "--runs",
                               str(tmp_path), "--label", "one", "--port", str(_port()),
                               "--points", "128:16:1:2 256:8:2:4:3", *extra],
                         env={"PERFMODEL_DEBUG": "0"})


def test_a_run_writes_one_folder_with_every_point(tmp_path, fake_vllm):
    result = _run(tmp_path)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "one"
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["version"] == "0.0.0+fake" and manifest["model"] == "meta-llama/Llama-3.2-1B"
    assert manifest["points"] == ["128:16:1:2", "256:8:2:4:3"]
    names = sorted(p.name for p in (folder / "results").glob("*.json"))
    assert names == ["one.128.16.c1.rinf.json", "one.256.8.c2.r3.json"]
    doc = json.loads((folder / "results" / "one.256.8.c2.r3.json").read_text())
    assert doc["num_prompts"] == 4 and doc["max_concurrency"] == 2
    # the server's prefix-cache counters around the point (the stand-in adds 1000 queried and
    # 100 hit tokens between two scrapes)
    assert (doc["prefix_cache_queries"], doc["prefix_cache_hits"]) == (1000.0, 100.0)
    from perfmodel.validate.engine_runs import read_runs
    assert {r.prefix_hits for r in read_runs(tmp_path)} == {(0.1, "counters")}
    assert "GPU KV cache size" in (folder / "server.log").read_text()
    assert not (folder / "model").exists()  # the weightless model is not kept
    again = _run(tmp_path)  # never replaces a run
    assert again.exit_code == 2 and "exists" in again.output
    assert json.loads((folder / "run.json").read_text()) == manifest


def test_a_failed_engine_leaves_no_run(tmp_path, fake_vllm):
    fake_vllm.setenv("FAKE_VLLM_FAIL", "1")
    result = _run(tmp_path)
    assert result.exit_code == 2 and "did not start" in result.output
    assert not (tmp_path / "one").exists()


def test_no_engine_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = _run(tmp_path)
    assert result.exit_code == 2 and "vLLM does not import here" in result.output
    assert not any(tmp_path.iterdir())


def test_points_grammar():
    assert parse_point("1024:256:32:128").concurrency == 32
    assert parse_point("1024:256:64:200:4").rate == 4.0
    assert len(parse_points(DEFAULT_POINTS)) == 10
    for bad in ("1024:256", "a:b:c:d", "0:1:1:1", "1:1:1:1:0", "1:1:1:1:nan", "1:1:1:999999"):
        with pytest.raises(WorkloadError, match="ISL:OSL:C:N"):
            parse_point(bad)
    with pytest.raises(WorkloadError, match="no benchmark points"):
        parse_points(" ")


def test_point_options_prefix_burstiness_range():
    point = parse_point("1024:256:64:200:4+p512+b0.5+r0.25")
    assert (point.prefix_len, point.burstiness, point.range_ratio) == (512, 0.5, 0.25)
    assert parse_point(point.text) == point  # the text form round-trips
    assert point.tag == "1024.256.c64.r4.p512.b0.5.r0.25"
    plain = parse_point("1024:256:64:200")
    assert (plain.prefix_len, plain.burstiness, plain.range_ratio) == (0, 1.0, 0.0)
    assert plain.text == "1024:256:64:200" and plain.tag == "1024.256.c64.rinf"
    for bad in ("1:1:1:1+p-1", "1:1:1:1+p1.5", "1:1:1:1+b0", "1:1:1:1+r1", "1:1:1:1+x3",
                "1:1:1:1+p2+p3", "1:1:1:1+"):
        with pytest.raises(WorkloadError, match="ISL:OSL:C:N"):
            parse_point(bad)


def test_bench_args_are_vllm_bench_serve_flags():
    args = bench_args(parse_point("1024:256:64:200:4"), "http://127.0.0.1:1", "/m", "/o", "x", 7)
    flags = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")
             and not args[i + 1].startswith("--")}
    assert flags["--random-input-len"] == "1024" and flags["--random-output-len"] == "256"
    assert flags["--max-concurrency"] == "64" and flags["--request-rate"] == "4"
    assert flags["--seed"] == "7" and flags["--random-range-ratio"] == "0"
    assert "--ignore-eos" in args and "--save-result" in args
    assert flags["--random-prefix-len"] == "0" and flags["--burstiness"] == "1"
    bursty = bench_args(parse_point("1024:256:64:200:4+p512+b0.5+r0.25"), "u", "/m", "/o", "x", 7)
    assert bursty[bursty.index("--random-prefix-len") + 1] == "512"
    assert bursty[bursty.index("--burstiness") + 1] == "0.5"
    assert bursty[bursty.index("--random-range-ratio") + 1] == "0.25"


def test_weightless_model_round_trips_token_ids(tmp_path):
    cfg = json.loads((ROOT / "configs/models/meta-llama/Llama-3.2-1B.json").read_text())
    folder = weightless_model({**cfg, "quantization_config": {"quant_method": "fp8"}}, tmp_path)
    written = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in written and written["vocab_size"] == cfg["vocab_size"]
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    assert len(vocab) == cfg["vocab_size"] and vocab["t12345"] == 12345
    assert sorted(vocab.values()) == list(range(cfg["vocab_size"]))
    special = json.loads((folder / "tokenizer_config.json").read_text())
    names = [special[k] for k in ("unk_token", "bos_token", "eos_token")]
    assert [vocab[n] for n in names] == [0, 1, 2]
    # no word starts with a special token, which a tokenizer would match inside it (t1 in
    # t1000) and so turn the benchmark's prompts into runs of the same few ids
    assert not any(w != n and w.startswith(n) for w in vocab for n in names)


def test_prefix_counters_from_vllm_metrics_text():
    text = ('# HELP vllm:prefix_cache_queries Prefix cache queries\n'
            'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 2048.0\n'
            'vllm:prefix_cache_queries_total{engine="1",model_name="m"} 1024.0\n'
            'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 512.0\n'
            'vllm:prefix_cache_hits_created 1.7e9\n')
    assert prefix_counters(text) == (3072.0, 512.0)
    assert prefix_counters("vllm:num_requests_running 3\n") is None


@pytest.mark.parametrize("args, words", [
    (["--label", "../evil"], "--label"), (["--label", "a/b"], "--label"),
    (["--port", "0"], "--port"), (["--points", "1:2"], "ISL:OSL:C:N"),
    (["--runs", "/proc/perfmodel-x"], "cannot create"),
])
def test_bad_calibrate_engine_input_is_one_line(tmp_path, fake_vllm, args, words):
    result = runner.invoke(app, ["calibrate-engine", "meta-llama/Llama-3.2-1B", "--runs",
                                 str(tmp_path), *args], env={"PERFMODEL_DEBUG": "0"})
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and words in lines[-1], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path.parent / "evil").exists() and not any(tmp_path.iterdir())


def test_nothing_to_do_is_one_line(tmp_path):
    result = runner.invoke(app, ["calibrate-engine", "--runs", str(tmp_path)])
    assert result.exit_code == 2 and "give a MODEL" in result.output
