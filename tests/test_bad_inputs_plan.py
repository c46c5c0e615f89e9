"""plan and sweep check every input as predict and serve do, before evaluating anything; the work
any command is asked for is bounded; Ctrl-C in a sweep or plan is one line and exit 130 (issue
19, §3)."""

from __future__ import annotations

import signal
import time

import pytest
from test_bad_inputs import LLAMA, QWEN_MOE, invoke, one_line_error

BIG = "9" * 400  # a 400-digit integer: click takes it, float() cannot


@pytest.fixture
def never_evaluate(monkeypatch):
    """A refused input must fail before any point is evaluated."""
    from perfmodel.plan import search, sweep

    def refuse(*args, **kwargs):
        raise AssertionError("started evaluating")
    monkeypatch.setattr(sweep, "run_points", refuse)
    monkeypatch.setattr(search, "run_points", refuse)


PLAN = ("plan", LLAMA, "--tpot-slo", "50ms")


@pytest.mark.usefixtures("never_evaluate")
@pytest.mark.parametrize("args, words", [
    (("--gpus", "b200,bogus"), ["unknown GPU 'bogus'"]),
    (("--engine", "bogus"), ["unknown serving engine 'bogus'", "vllm | sglang | trtllm"]),
    (("--engine", "torch-cudagraph"), ["unknown serving engine 'torch-cudagraph'",
                                        "--method predict"]),
    (("--precisions", "bf16,fp9"), ["unknown precision 'fp9'"]),
    (("--max-gpus", "0"), ["--max-gpus must be a whole number ≥ 1, not 0"]),
    (("--max-gpus", "-1"), ["--max-gpus must be a whole number ≥ 1, not -1"]),
    (("--max-gpus", "5000"), ["--max-gpus is 5000, above the bound of 4,096"]),
    (("--tp", "3"), ["--tp 3 does not divide the 32 query heads"]),
    (("--tp", "16"), ["--tp 16 is above --max-gpus 8"]),
    (("--isl", "0"), ["--isl must be a whole number ≥ 1, not 0"]),
    (("--isl", "-1"), ["--isl must be a whole number ≥ 1, not -1"]),
    (("--osl", "0"), ["--osl must be a whole number ≥ 1, not 0"]),
    (("--isl", BIG), ["--isl is a 400-digit number, above the bound of 100,000,000"]),
    (("--ttft-slo", ""), ["--ttft-slo: cannot read the duration ''"]),
    (("--tpot-slo", ""), ["--tpot-slo: cannot read the duration ''"]),
    (("--tpot-slo", "1e400s"), ["--tpot-slo is '1e400s', above the bound of 86400 s"]),
    (("--ttft-slo", "0s"), ["--ttft-slo must be above zero"]),
    (("--gpu-price", "b200=nan"), ["a finite price above 0", "'b200=nan'"]),
    (("--gpu-price", "b200=inf"), ["a finite price above 0", "'b200=inf'"]),
    (("--margin", "nan"), ["--margin is a share of headroom from 0 to 10", "not nan"]),
    (("--margin", "inf"), ["--margin", "not inf"]),
    (("--margin", "-0.1"), ["--margin", "not -0.1"]),
    (("--workers", "0"), ["--workers must be a whole number ≥ 1, not 0"]),
    (("--workers", "-1"), ["--workers must be a whole number ≥ 1, not -1"]),
    (("--waves", "1000000"), ["--waves is 1000000, above the bound of 100"]),
    (("--waves", "0"), ["--waves must be a whole number ≥ 1, not 0"]),
    (("--concurrency", "1-100000000"), ["--concurrency: '1-100000000' goes above the bound of "
                                        "1,000,000"]),
])
def test_plan_refuses_bad_input_up_front(args, words):
    """Each of these ran to 'no configuration meets the targets' (exit 0) or dropped a GPU."""
    one_line_error(invoke(*PLAN, *args), *words)


SWEEP = ("sweep", LLAMA)


@pytest.mark.usefixtures("never_evaluate")
@pytest.mark.parametrize("args, words", [
    (("--gpu", "b200,bogus"), ["unknown GPU 'bogus'"]),
    (("--gpu", ""), ["--gpu needs at least one GPU profile"]),
    (("--engine", "bogus"), ["unknown engine 'bogus'"]),
    (("--concurrency", "4", "--engine", "torch-cudagraph"),
     ["unknown serving engine 'torch-cudagraph'", "sweep it with --batch"]),
    (("--precision", "bf16,fp9"), ["unknown precision 'fp9'"]),
    (("--kv-dtype", "fp9"), ["unknown KV dtype 'fp9'"]),
    (("--tp", "3"), ["--tp 3 does not divide the 32 query heads"]),
    (("--ep", "2"), ["--ep 2 spreads the experts", "drop --ep"]),
    (("--dp", "2"), ["--dp 2", "drop --dp"]),
    (("--pp", "64"), ["--pp 64 exceeds the 32 layers"]),
    (("--tp", "5000"), ["--tp: '5000' goes above the bound of 4,096"]),
    (("--isl", "0"), ["--isl: '0' is not a range"]),
    (("--osl", "0"), ["--osl: '0' is not a range"]),
    (("--isl", BIG), ["--isl", "goes above the bound of 100,000,000"]),
    (("--workers", "0"), ["--workers must be a whole number ≥ 1, not 0"]),
    (("--workers", "-1"), ["--workers must be a whole number ≥ 1, not -1"]),
    (("--batch", "1-100000000"), ["--batch: '1-100000000' goes above the bound of 1,000,000"]),
    (("--batch", "1-1000000"), ["names more than 10,000 values"]),
    (("--batch", "1-5000", "--isl", "1-100"), ["the grid has 500,000 points, above the bound "
                                               "of 100,000"]),
    (("--concurrency", "1", "--num-requests", "100000000"),
     ["--num-requests is 100000000, above the bound of 10,000,000"]),
])
def test_sweep_refuses_bad_input_up_front(args, words):
    one_line_error(invoke(*SWEEP, *args), *words)


def test_sweep_ep_on_a_moe_model_is_still_a_grid():
    """A valid EP degree stays valid: the check refuses values, not combinations."""
    from perfmodel.plan.check import check_grid

    check_grid(QWEN_MOE, method="predict", gpus=["h100-sxm"], precisions=[None],
               kv_dtypes=[None], engines=[None], tps=[1, 2], eps=[1, 2])


@pytest.mark.parametrize("args, words", [
    (("predict", LLAMA, "-b", BIG), ["--batch is a 400-digit number, above the bound of "
                                     "1,000,000"]),
    (("predict", LLAMA, "-i", BIG), ["--input-len is a 400-digit number"]),
    (("predict", LLAMA, "-o", "100000001"), ["--output-len is 100000001, above the bound"]),
    (("predict", LLAMA, "--tp", BIG), ["--tp is a 400-digit number, above the bound of 4,096"]),
    (("serve", LLAMA, "--concurrency", BIG), ["--concurrency is a 400-digit number"]),
    (("serve", LLAMA, "--concurrency", "1", "--isl", BIG), ["--isl is a 400-digit number"]),
    (("serve", LLAMA, "--concurrency", "1", "--num-requests", BIG),
     ["--num-requests is a 400-digit number, above the bound of 10,000,000"]),
    (("serve", LLAMA, "--concurrency", "1", "--host-overhead", "1e400s"),
     ["--host-overhead is '1e400s', above the bound of 10 s"]),
    (("serve", LLAMA, "--concurrency", "1", "--host-overhead", "11s"),
     ["--host-overhead is '11s', above the bound of 10 s"]),
    (("serve", LLAMA, "--request-rate", "4", "--lock-step"),
     ["--lock-step keeps closed-loop clients in step", "use --concurrency"]),
    (("validate-serving", "--json", "--markdown"), ["give --json", "or --markdown", "not both"]),
])
def test_bounded_work_and_exclusive_flags(args, words):
    """--host-overhead 1e400s looped forever; 400-digit numbers raised OverflowError."""
    started = time.monotonic()
    one_line_error(invoke(*args), *words)
    assert time.monotonic() - started < 60  # refused at once, whatever the machine's load


@pytest.mark.parametrize("command", ["sweep", "plan"])
def test_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch, command):
    """Ctrl-C while the points are evaluated: one line, exit 130, an existing --out as it was."""
    from perfmodel.plan import sweep

    def interrupted(point):
        raise KeyboardInterrupt
    monkeypatch.setattr(sweep, "evaluate", interrupted)  # what run_points calls, in this process
    out = tmp_path / "rows.csv"
    out.write_text("kept\n")
    args = ("sweep", LLAMA, "--batch", "1,2", "--out", str(out)) if command == "sweep" else \
        ("plan", LLAMA, "--tpot-slo", "50ms", "--gpus", "h100-sxm", "--max-gpus", "1",
         "--concurrency", "1", "--method", "predict")
    result = invoke(*args)
    assert result.exit_code == 130, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert lines[-1] == "interrupted: nothing written (existing outputs are unchanged)"
    assert "Traceback" not in result.output and len(lines) == 1, result.output
    assert out.read_text() == "kept\n"


def test_workers_leave_ctrl_c_to_the_parent():
    """Each forked worker ignores SIGINT, so Ctrl-C prints no worker tracebacks; the parent's
    pool terminates them."""
    from perfmodel.plan.sweep import _ignore_interrupt

    before = signal.getsignal(signal.SIGINT)
    try:
        _ignore_interrupt()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("args, words", [
    (("--batch", BIG), ["--batch takes whole numbers from 1 to 1,000,000"]),
    (("--input-len", "4" + "0" * 5000), ["--input-len takes whole numbers from 1 to 100,000,000"]),
    (("--tp", BIG), ["--tp is a 400-digit number, above the bound of 4,096"]),
])
def test_validate_bounds_before_looking_for_cuda(args, words):
    line = one_line_error(invoke("validate", "meta-llama/Llama-3.2-1B", *args), *words)
    assert "CUDA" not in line
