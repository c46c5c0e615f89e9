"""The limit is never beaten by real serving engines (vLLM, SGLang, TensorRT-LLM on H100/H200).

Reads ../shared/external/aiconfigurator-silicon (Apache-2.0 data, not copied here): every
single-GPU, aggregated-serving row of a model we bundle (perfmodel/validate/silicon.py). The ITL limit at
min(concurrency, what fits) must not exceed the measured time per output token, and one
sequence's prefill limit must not exceed the measured TTFT.
"""

from __future__ import annotations

import pytest

from perfmodel.validate.silicon import CSV, rows, served

DATASHEETS = {"h100_sxm": "h100-sxm", "h200_sxm": "h200"}


@pytest.mark.skipif(not CSV.exists(), reason="../shared/external not beside this checkout")
def test_limits_never_beaten_by_serving_engines():
    checked = rows()
    assert len(checked) >= 150
    for row in checked:
        s = served(row, DATASHEETS)
        where = f"{s.engine} {s.model} {s.quant} {s.system} c={row['batch_size']} " \
                f"{row['isl']}/{row['osl']}"
        assert s.itl_limit_s <= s.tpot_s, where
        assert s.ttft_limit_s <= s.ttft_s, where
