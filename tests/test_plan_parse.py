"""Parsing what plan and sweep take: durations, integer lists and ranges, GPU prices."""

from __future__ import annotations

import pytest

from perfmodel.errors import PerfmodelError
from perfmodel.plan.parse import parse_duration, parse_ints, parse_prices, parse_strs


@pytest.mark.parametrize("text, seconds", [
    ("500ms", 0.5), ("0.5s", 0.5), ("50 ms", 0.05), ("2", 2.0), ("250us", 250e-6),
    (" 1.5 s ", 1.5), ("1e-3s", 1e-3), ("1min", 60.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize("text", ["", "fast", "5 hours", "-3ms", "0ms", "ms"])
def test_bad_durations_name_the_form(text):
    with pytest.raises(PerfmodelError, match="500ms|above zero"):
        parse_duration(text)


def test_int_lists_and_ranges():
    assert parse_ints("1,2,4", "--batch") == [1, 2, 4]
    assert parse_ints("3-6", "--batch") == [3, 4, 5, 6]
    assert parse_ints("1-20:8", "--batch") == [1, 9, 17]
    assert parse_ints("1-512x2", "--batch") == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert parse_ints("1-100x10", "--batch") == [1, 10, 100]
    assert parse_ints("4, 1-2, 4", "--tp") == [4, 1, 2]  # order kept, duplicates dropped
    assert len(parse_ints("1-1000", "--batch")) == 1000


@pytest.mark.parametrize("text", ["0", "a", "4-2", "1-8x1", "1.5", "", "-3"])
def test_bad_ints(text):
    with pytest.raises(PerfmodelError, match="--batch"):
        parse_ints(text, "--batch")


def test_strs():
    assert parse_strs(" bf16, fp8,,bf16 ") == ["bf16", "fp8"]
    assert parse_strs(None) == []


def test_prices():
    gpus = ["h100-sxm-measured", "b200"]
    assert parse_prices("h100-sxm-measured=2.49, b200=5.5", gpus) == \
        {"h100-sxm-measured": 2.49, "b200": 5.5}
    assert parse_prices(None, gpus) == {}
    with pytest.raises(PerfmodelError, match="not among the GPUs"):
        parse_prices("h200=3", gpus)
    for bad in ("b200", "b200=", "b200=free", "b200=-1"):
        with pytest.raises(PerfmodelError, match="GPU=DOLLARS_PER_HOUR"):
            parse_prices(bad, gpus)
