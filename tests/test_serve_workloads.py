"""Issue 22's workloads against hand-worked truth: vLLM's Gamma arrivals (mean, coefficient of
variation 1/√B, the last request at N/R), its --random-range-ratio intervals, log-normal and
normal lengths, and a trace's requests on an idle engine (TTFT = that prompt's prefill step)."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from perfmodel.errors import WorkloadError
from perfmodel.serve import run_serve
from perfmodel.serve.requests import make_arrivals
from perfmodel.serve.workload import draw_lengths, gamma_times, length_bounds

LLAMA = "meta-llama/Llama-3.1-8B"


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip([0.0] + times, times)]


@pytest.mark.parametrize("burstiness", [0.5, 1.0, 4.0])
def test_gamma_gaps_mean_and_cv(burstiness):
    """Gaps of Gamma(B, 1/(R·B)): mean 1/R and CV 1/√B. Over 5 seeds × 20,000 gaps the sample
    CV's standard error is under 1% of it (B = 0.5: about 0.8%); tolerance 4%. The mean is
    taken over the first half of each run, which vLLM's rescaling (the last at N/R) does not
    pin; its standard error is 0.5-1.4%, tolerance 4%."""
    rate, n = 5.0, 20_000
    cvs, means = [], []
    for seed in range(5):
        times = gamma_times(n, rate, burstiness, random.Random(seed))
        assert times[-1] == pytest.approx(n / rate, rel=1e-12)  # vLLM's normalize_factor
        assert times[0] > 0  # a gap is drawn before the first request too
        gaps = _gaps(times)
        cvs.append(statistics.pstdev(gaps) / statistics.fmean(gaps))
        means.append(statistics.fmean(gaps[: n // 2]))
    assert statistics.fmean(cvs) == pytest.approx(1 / math.sqrt(burstiness), rel=0.04)
    assert statistics.fmean(means) == pytest.approx(1 / rate, rel=0.04)


def test_gamma_limits():
    """B = inf: one request every 1/R (vLLM's constant delay); R = inf: every request at 0."""
    even = gamma_times(4, 2.0, math.inf, random.Random(0))
    assert even == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert gamma_times(3, math.inf, 0.5, random.Random(0)) == [0.0, 0.0, 0.0]
    with pytest.raises(WorkloadError, match="burstiness"):
        gamma_times(3, 1.0, 0.0, random.Random(0))


def test_poisson_default_is_kept():
    """Without --burstiness the Poisson stream is today's: first request at 0, no rescaling."""
    plain = make_arrivals(concurrency=None, request_rate=4.0, isl=8, osl=8, num_requests=50,
                          lengths=None, seed=3)
    assert plain.requests[0].arrival == 0.0
    rng = random.Random(3)
    t = 0.0
    for spec in plain.requests:
        assert spec.arrival == t
        t += rng.expovariate(4.0)


@pytest.mark.parametrize("isl, osl, ratio, inp, out", [
    (1024, 128, 0.5, (512, 1536), (64, 192)),
    (1000, 3, 1 / 3, (666, 1334), (2, 4)),  # floor(666.67), ceil(1333.3); floor(2), ceil(4)
    (100, 1, 0.5, (50, 150), (1, 2)),  # output low floor(0.5) = 0 raised to 1
    (64, 64, 0.0, (64, 64), (64, 64)),
])
def test_range_ratio_bounds_by_hand(isl, osl, ratio, inp, out):
    """vLLM's intervals: [floor(I(1−r)), ceil(I(1+r))] and the output's, at least 1; every
    draw inside, both ends reached, inputs and outputs drawn independently."""
    assert length_bounds(isl, osl, ratio) == (inp, out)
    pairs = draw_lengths(20_000, isl, osl, "uniform", ratio, None, random.Random(1))
    ins, outs = [p[0] for p in pairs], [p[1] for p in pairs]
    assert (min(ins), max(ins)) == inp and (min(outs), max(outs)) == out
    assert statistics.fmean(ins) == pytest.approx(sum(inp) / 2, rel=0.01)
    if inp[0] < inp[1] and out[0] < out[1]:
        assert abs(statistics.correlation(ins, outs)) < 0.03


def test_range_ratio_refused_outside_vllms_interval():
    for bad in (1.0, -0.1):
        with pytest.raises(WorkloadError, match="range-ratio"):
            length_bounds(1024, 128, bad)
    with pytest.raises(WorkloadError, match="empty prompt"):
        length_bounds(1, 128, 0.5)


@pytest.mark.parametrize("dist", ["normal", "lognormal"])
def test_normal_and_lognormal_mean_and_cv(dist):
    """Mean I and CV as asked (40,000 draws: standard errors well under 1%; tolerance 3%); a
    normal of CV 0.2 almost never reaches the clip at 1."""
    cv = 0.2 if dist == "normal" else 1.0
    pairs = draw_lengths(40_000, 2000, 300, dist, None, cv, random.Random(2))
    for values, mean in (([p[0] for p in pairs], 2000), ([p[1] for p in pairs], 300)):
        assert min(values) >= 1
        assert statistics.fmean(values) == pytest.approx(mean, rel=0.03)
        assert statistics.pstdev(values) / statistics.fmean(values) == pytest.approx(cv, rel=0.05)


def test_length_options_refused_together_wrongly():
    base = dict(concurrency=None, request_rate=1.0, isl=64, osl=8, num_requests=4, lengths=None,
                seed=0)
    for extra in ({"length_dist": "normal"}, {"length_dist": "uniform"},
                  {"range_ratio": 0.5, "length_dist": "normal", "length_cv": 0.3},
                  {"length_dist": "zipf"}, {"length_dist": "normal", "length_cv": -1.0}):
        with pytest.raises(WorkloadError):
            make_arrivals(**base, **extra)
    with pytest.raises(WorkloadError, match="burstiness"):
        make_arrivals(**{**base, "concurrency": 4, "request_rate": None}, burstiness=0.5)


def test_idle_engine_trace_ttft_is_the_prompts_prefill(tmp_path):
    """Requests 30 s apart find the engine idle: each TTFT is its own prompt prefilled alone,
    one step of the step-cost model (vLLM's budget of 8192 holds each prompt whole), plus
    nothing (the published-row preset has no request latency)."""
    trace = tmp_path / "idle.csv"
    lengths = [(100, 2), (1000, 3), (4000, 2), (7000, 2)]
    trace.write_text("arrival_s,input_len,output_len\n" + "".join(
        f"{30 * i},{isl},{osl}\n" for i, (isl, osl) in enumerate(lengths)))
    report = run_serve(LLAMA, gpu="h100-sxm-measured", engine="vllm@published",
                       trace_in=str(trace))
    assert report.metrics["request_latency_s"] == 0
    done = sorted(report.outcome.done, key=lambda d: d.index)
    assert [d.isl for d in done] == [isl for isl, _ in lengths]
    for d in done:
        alone = report.step_cost.step(0, 0, [(0, d.isl)], 1)[0]
        assert d.ttft == pytest.approx(alone, rel=1e-12)
    prefills = [report.step_cost.step(0, 0, [(0, isl)], 1)[0] for isl, _ in lengths]
    assert prefills == sorted(prefills)  # a longer prompt takes longer: the check has teeth


def test_speedup_divides_the_traces_times(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,input_len,output_len\n100,64,4\n400,64,4\n1540,64,4\n")
    from perfmodel.serve.trace_in import read_trace

    assert [r.arrival for r in read_trace(str(trace), speedup=60)] == pytest.approx(
        [0.0, 5.0, 24.0])
