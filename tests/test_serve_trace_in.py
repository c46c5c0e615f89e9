"""Trace replay and goodput: the public traces' columns read as their sources define them, every
bad file refused with one line (exit 2, nothing written), and goodput on hand-built requests."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from perfmodel.cli import app
from perfmodel.errors import WorkloadError
from perfmodel.serve import trace_in
from perfmodel.serve.simulate import Done
from perfmodel.serve.slo import SloTarget, goodput, parse_slo, targets
from perfmodel.serve.trace_in import read_trace

runner = CliRunner()
LLAMA = "meta-llama/Llama-3.1-8B"


def _write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_azure_trace(tmp_path):
    """Azure LLM inference traces: TIMESTAMP date-times (7 fraction digits), ContextTokens,
    GeneratedTokens; times from the first request."""
    path = _write(tmp_path, "azure.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                  "2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n"
                  "2023-11-16 18:16:01.0000000,879,2\n")
    reqs = read_trace(path)
    assert [(r.isl, r.osl) for r in reqs] == [(374, 44), (396, 109), (879, 2)]
    assert [r.arrival for r in reqs] == pytest.approx([0.0, 4.314579, 14.31941])


def test_burstgpt_trace(tmp_path):
    path = _write(tmp_path, "burst.csv", "Timestamp,Model,Request tokens,Response tokens,"
                  "Total tokens,Log Type\n5,ChatGPT,472,18,490,Conversation log\n"
                  "45,GPT-4,1087,230,1317,API log\n")
    reqs = read_trace(path)
    assert [(r.arrival, r.isl, r.osl) for r in reqs] == [(0.0, 472, 18), (40.0, 1087, 230)]


def test_mooncake_trace_prefixes(tmp_path):
    """Mooncake: timestamp in ms, 512-token hash blocks. Rows 1-3 share block 0 (and rows 1-2
    blocks 0-2); row 4 shares nothing. prefix_len = 512 × shared leading blocks, at most the
    prompt; the prefix id is the first block's."""
    rows = [{"timestamp": 0, "input_length": 2000, "output_length": 50, "hash_ids": [0, 1, 2, 3]},
            {"timestamp": 0, "input_length": 1300, "output_length": 10, "hash_ids": [0, 1, 2]},
            {"timestamp": 3052, "input_length": 700, "output_length": 5, "hash_ids": [0, 9]},
            {"timestamp": 4000, "input_length": 600, "output_length": 5, "hash_ids": [7, 8]}]
    path = _write(tmp_path, "moon.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    reqs = read_trace(path)
    assert [r.arrival for r in reqs] == [0.0, 0.0, 3.052, 4.0]
    assert [(r.prefix_id, r.prefix_len) for r in reqs] == [(0, 1536), (0, 1300), (0, 512),
                                                          (None, 0)]
    assert read_trace(path, time_unit="s")[2].arrival == 3052.0  # vLLM's timed_trace: seconds


def test_plain_columns_with_prefix_and_class(tmp_path):
    path = _write(tmp_path, "plain.jsonl",
                  '{"arrival_s": 1.5, "input_len": 900, "output_len": 20, "prefix_id": "sys-a",'
                  ' "prefix_len": 512, "slo_class": "interactive"}\n'
                  '{"arrival_s": 2.0, "input_len": 100, "output_len": 9}\n'
                  '{"arrival_s": 2.5, "input_len": 800, "output_len": 9, "prefix_id": "sys-b",'
                  ' "prefix_len": 0, "slo_class": "batch"}\n')
    reqs = read_trace(path, speedup=2.0)
    assert [(r.arrival, r.prefix_id, r.prefix_len, r.slo_class) for r in reqs] == [
        (0.0, 0, 512, "interactive"), (0.25, None, 0, None), (0.5, 1, 0, "batch")]


@pytest.mark.parametrize("name, text, words", [
    ("unsorted.csv", "arrival_s,input_len,output_len\n0,10,5\n2,10,5\n1,10,5\n",
     ["line 4", "sort the file"]),
    ("negative.csv", "arrival_s,input_len,output_len\n0,-3,5\n", ["line 2", "input_len"]),
    ("zero.csv", "Timestamp,Request tokens,Response tokens\n0,10,0\n",
     ["Response tokens", "failed requests"]),
    ("missing.csv", "arrival_s,input_len\n0,10\n", ["no output length column"]),
    ("notime.csv", "when,input_len,output_len\n0,10,5\n", ["no arrival column"]),
    ("nan.csv", "arrival_s,input_len,output_len\nsoon,10,5\n", ["arrival_s", "not a number"]),
    ("frac.csv", "arrival_s,input_len,output_len\n0,10.5,5\n", ["whole number"]),
    ("short.csv", "arrival_s,input_len,output_len\n0,10\n", ["output_len", "not a number"]),
    ("empty.csv", "", ["holds no requests"]),
    ("header.csv", "arrival_s,input_len,output_len\n", ["holds no requests"]),
    ("prefix.csv", "arrival_s,input_len,output_len,prefix_id,prefix_len\n0,10,5,1,11\n",
     ["prefix_len 11", "longer than"]),
    ("bad.jsonl", '{"arrival_s": 0, "input_len": 1, "output_len": 1}\n{"arrival_s": 1,\n',
     ["line 2", "not JSON"]),
    ("list.jsonl", '{"arrival_s": 0, "input_len": 1, "output_len": 1}\n[1, 2]\n',
     ["line 2", "not an object"]),
    ("nocol.jsonl", "{}\n", ["line 1", "no arrival column"]),
    ("neg-time.csv", "arrival_s,input_len,output_len\n-1,10,5\n", ["negative"]),
    ("azure-bad.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-13-45 99:00:00,1,1\n",
     ["date-time"]),
])
def test_bad_trace_is_one_line_and_writes_nothing(tmp_path, name, text, words):
    path = _write(tmp_path, name, text)
    out = tmp_path / "steps.csv"
    result = runner.invoke(app, ["serve", LLAMA, "--gpu", "h100-sxm-measured", "--trace-in",
                                 path, "--trace", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --trace-in"), result.output
    for word in words:
        assert word in lines[0], lines[0]
    assert not out.exists()


def test_huge_trace_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(trace_in, "MAX_TRACE_BYTES", 100)
    path = _write(tmp_path, "big.csv", "arrival_s,input_len,output_len\n" + "0,1,1\n" * 30)
    with pytest.raises(WorkloadError, match="is over 0 MB"):
        read_trace(path)
    with pytest.raises(WorkloadError, match="no such file"):
        read_trace(str(tmp_path / "absent.csv"))


@pytest.mark.parametrize("args, words", [
    (["--request-rate", "2"], ["drop --request-rate"]),
    (["--range-ratio", "0.5"], ["drop --range-ratio"]),
    (["--speedup", "0"], ["--speedup"]),
    (["--trace-time-unit", "h"], ["s or ms"]),
])
def test_trace_refuses_options_it_replaces(tmp_path, args, words):
    path = _write(tmp_path, "t.csv", "arrival_s,input_len,output_len\n0,10,5\n")
    result = runner.invoke(app, ["serve", LLAMA, "--trace-in", path, *args])
    assert result.exit_code == 2 and result.output.startswith("error: "), result.output
    for word in words:
        assert word in result.output


def _done(index: int, ttft: float, e2e: float, osl: int = 11) -> Done:
    return Done(100, osl, ttft, e2e, ttft, e2e, 0, 0, index)


def test_goodput_by_hand():
    """Five requests: 0, 1 interactive (TTFT ≤ 1 s, TPOT ≤ 40 ms), 2, 3 batch (TTFT ≤ 60 s), 4
    classless (the unnamed targets: TTFT ≤ 2 s). TPOT = (E2E − TTFT)/10.
    0: TTFT 0.5, TPOT 0.03 → met; 1: TTFT 0.5, TPOT 0.05 → missed; 2: TTFT 30 → met;
    3: TTFT 90 → missed; 4: TTFT 1.5 → met. 3 of 5 met; at 2 requests/s, 1.2 good per s."""
    slo = {"interactive": SloTarget(ttft_s=1.0, tpot_s=0.04), "batch": SloTarget(ttft_s=60.0),
           None: SloTarget(ttft_s=2.0)}
    classes = ["interactive", "interactive", "batch", "batch", None]
    done = [_done(0, 0.5, 0.8), _done(1, 0.5, 1.0), _done(2, 30.0, 40.0), _done(3, 90.0, 91.0),
            _done(4, 1.5, 9.0)]
    doc = goodput(done, classes, slo, requests_s=2.0)
    assert (doc["requests"], doc["met"], doc["fraction"]) == (5, 3, 0.6)
    assert doc["requests_s"] == pytest.approx(1.2)
    assert {k: (v["requests"], v["met"]) for k, v in doc["classes"].items()} == {
        "interactive": (2, 1), "batch": (2, 1), "default": (1, 1)}
    assert doc["classes"]["batch"]["requests_s"] == pytest.approx(0.4)
    # a one-token request has no TPOT and meets a TPOT target, as vLLM counts it
    one = goodput([_done(0, 0.1, 0.1, osl=1)], ["interactive"], slo, 1.0)
    assert one["met"] == 1
    # classes without targets (and no unnamed ones) are left out
    assert goodput(done, classes, {"batch": SloTarget(ttft_s=60.0)}, 2.0)["requests"] == 2


def test_parse_slo():
    def seconds(text: str, flag: str) -> float:
        return float(text.rstrip("ms")) / 1000 if text.endswith("ms") else float(
            text.rstrip("s"))

    parsed = parse_slo(["ttft=2s,tpot=50ms", "interactive:ttft=1s,tpot=40ms", "batch:e2e=60s"],
                       seconds)
    assert parsed == {None: SloTarget(2.0, 0.05), "interactive": SloTarget(1.0, 0.04),
                      "batch": SloTarget(e2e_s=60.0)}
    for bad in (["ttft"], ["itl=1s"], ["ttft=1s,ttft=2s"], ["a:ttft=1s", "a:tpot=1s"], ["a:"]):
        with pytest.raises(WorkloadError):
            parse_slo(bad, seconds)
    assert targets({"x": {"ttft_s": 1.0}}) == {"x": SloTarget(ttft_s=1.0)}
    with pytest.raises(WorkloadError):
        targets({"x": {"ttft_s": -1.0}})


def test_serve_goodput_json_and_default_document(tmp_path):
    """--slo adds a goodput block (per class of the trace); a run without the new options has
    today's keys only."""
    path = _write(tmp_path, "t.csv", "arrival_s,input_len,output_len,slo_class\n"
                  "0,512,16,interactive\n0.5,512,16,batch\n1,512,16,interactive\n")
    result = runner.invoke(app, ["serve", LLAMA, "--gpu", "h100-sxm-measured", "--trace-in",
                                 path, "--slo", "interactive:ttft=10s,tpot=1s",
                                 "--slo", "batch:ttft=1ms", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["workload"]["trace_in"]["span_s"] == 1.0
    assert doc["workload"]["isl"] is None
    good = doc["goodput"]
    assert good["classes"]["interactive"]["met"] == 2 and good["classes"]["batch"]["met"] == 0
    plain = runner.invoke(app, ["serve", LLAMA, "--gpu", "h100-sxm-measured", "--request-rate",
                                "2", "--num-requests", "4", "--json"])
    doc = json.loads(plain.output)
    assert "goodput" not in doc
    assert set(doc["workload"]) == {"concurrency", "request_rate", "num_requests", "warmup",
                                    "lock_step", "isl", "osl"}


def test_diurnal_day_trace_by_hand(tmp_path):
    """tools/diurnal_trace.py: rate λ̄·(1 − a·cos 2πt/day). Expected count λ̄·day (Poisson: 5,000
    ± 71, tolerance 4σ); share of arrivals between 06:00 and 18:00 = ∫ of the rate there / all
    = 0.5 + a/π = 0.691 at a = 0.6 (standard error 0.007, tolerance 0.03). Its CSV replays."""
    import importlib.util
    import pathlib

    spec = importlib.util.spec_from_file_location(
        "diurnal_trace", pathlib.Path(__file__).parent.parent / "tools" / "diurnal_trace.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    rows = tool.day_trace(5000, 0.6, 0.2, seed=0)
    assert abs(len(rows) - 5000) < 4 * 5000 ** 0.5
    middle = sum(1 for r in rows if 0.25 * 86400 <= r[0] < 0.75 * 86400) / len(rows)
    assert middle == pytest.approx(0.5 + 0.6 / 3.141592653589793, abs=0.03)
    path = tmp_path / "day.csv"
    path.write_text("arrival_s,input_len,output_len,slo_class\n" +
                    "".join(",".join(map(str, r)) + "\n" for r in rows))
    reqs = read_trace(str(path), speedup=1440)
    assert len(reqs) == len(rows) and reqs[-1].arrival < 60
    assert {r.slo_class for r in reqs} == {"interactive", "batch"}
