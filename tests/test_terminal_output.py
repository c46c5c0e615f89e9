"""What predict, serve, plan and gpus print for people: every table fits 80 columns (op tables
with tensor parallelism included), serve's latencies carry their unit (ms below 10 s, s from
there), byte counts are in GB (10^9 B) everywhere, and predict's warnings come before its op
tables."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from perfmodel.cli import app
from perfmodel.report.display import WIDTH, _fit_widths
from perfmodel.report.serve_view import duration, durations

runner = CliRunner()


def run(*args: str, columns: int = 80) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.stdout


def _over(text: str, width: int = 80) -> list[str]:
    return [line for line in text.splitlines() if len(line.rstrip()) > width]


@pytest.mark.parametrize("args", [
    ("meta-llama/Llama-3.1-70B", "--gpu", "h100-sxm-measured", "--tp", "2"),
    ("Qwen/Qwen3-30B-A3B", "--gpu", "h100-sxm-measured", "--tp", "2", "--ep", "2"),
    ("openai/gpt-oss-120b", "--gpu", "h200-measured", "--tp", "2"),
    ("deepseek-ai/DeepSeek-V3", "--gpu", "b200", "--tp", "8", "--ep", "8"),
    ("meta-llama/Llama-3.1-70B", "--gpu", "h100-sxm-measured", "--tp", "4", "--pp", "2"),
])
def test_predict_fits_80_columns_with_tensor_parallelism(args):
    """Every line at an 80-column terminal; and the op tables stay at 80 on a wide one."""
    assert _over(run("predict", *args)) == []
    wide = run("predict", *args, columns=200)
    table = wide[wide.index("prefill (TTFT)"):wide.index("share: of the limit")]
    assert "all_reduce" in table or "all_to_all" in table or "send" in table
    assert _over(table) == []


def test_op_table_widths_shrink_gaps_then_the_op_column():
    fits = [18, 5, 5, 5, 6, 7, 8, 8, 5]  # 67 + 16 gaps: 83, as Llama-3.1-70B at TP2 was
    widths, gaps = _fit_widths(fits)
    assert widths == fits and sum(widths) + sum(gaps) == WIDTH and gaps[-1] == 0
    assert sorted(gaps[:-1]) == [1, 1, 1, 2, 2, 2, 2, 2]
    widths, gaps = _fit_widths([40] + fits[1:])  # a long op name: all gaps 1, op column cut
    assert set(gaps[:-1]) == {1} and sum(widths) + sum(gaps) == WIDTH and widths[0] == 23  # 80 - 49 - 8
    assert _fit_widths([10, 5, 5]) == ([10, 5, 5], [2, 2, 0])  # narrow tables keep two spaces


def test_serve_latencies_carry_units_and_no_raw_ms_over_10_s():
    assert [duration(x) for x in (None, 0.0854, 9.8765, 10.0, 120.1888)] == [
        "—", "85.4 ms", "9876.5 ms", "10.0 s", "120.2 s"]
    assert durations([11.1, 8.5549, None]) == ["11.1 s", "8.6 s", "—"]  # one unit a row
    assert durations([0.257, 1.0356]) == ["257.0 ms", "1035.6 ms"]
    out = run("serve", "meta-llama/Llama-3.1-8B", "--gpu", "h100-sxm-measured",
              "--request-rate", "inf", "--num-requests", "100", "--isl", "8000", "--osl", "500")
    ttft = next(line for line in out.splitlines() if "TTFT" in line)
    assert re.search(r"\d+\.\d s\b", ttft), ttft  # a queue of 100 long prompts: TTFT in s
    assert not re.search(r"\d{5,}\.\d(?! s)", out), out  # no raw ms of 10 s and over
    assert _over(out) == []


def test_plan_tables_fit_80_columns():
    out = run("plan", "meta-llama/Llama-3.1-8B", "--gpus", "h100-sxm-measured,h200-measured",
              "--max-gpus", "2", "--concurrency", "1-16x4", "--tpot-slo", "30ms",
              "--waves", "1", "--workers", "1")
    # the copy-paste `perfmodel serve ...` line is a command, not a table: it is never wrapped
    assert [line for line in _over(out) if "perfmodel serve" not in line] == []


def test_gpus_shows_memory_in_gb_as_predict_does():
    """An "80GB" H100 holds 80 GiB = 85.9 GB (docs/gpus.md); predict prints bytes in GB."""
    out = run("gpus")
    assert "GiB" not in out and "GB" in out
    assert re.search(r"^h100-sxm\s.*\s85\.9\s", out, re.M), out
    assert "fits in 85.9 GB" in run("predict", "meta-llama/Llama-3.1-8B", "--gpu", "h100-sxm")


def test_predict_warnings_come_before_the_op_tables():
    out = run("predict", "deepseek-ai/DeepSeek-V3", "--gpu", "h200")  # does not fit: a warning
    assert "warning:" in out
    assert out.index("warning:") < out.index("Prediction") < out.index("prefill (TTFT)")
