"""validate-serving against the real engines' serving rows (../shared/external/aiconfigurator-
silicon, read in place when it is beside the checkout) and a synthetic fixture in that schema
(tests/data/silicon-fixture.csv, made-up numbers) so the reader bites on a fresh clone too."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfmodel.validate import silicon

FIXTURE = Path(__file__).parent / "data" / "silicon-fixture.csv"


def test_fixture_rows_are_filtered_and_split():
    """Only single-GPU aggregated rows of bundled models are served; the split is sha1(id)."""
    rows = silicon.serving_rows(FIXTURE)
    assert [r["id"] for r in rows] == ["fixture_vllm_8b_bf16_c8", "fixture_trtllm_8b_bf16_c4"]
    assert [silicon.is_training(r) for r in rows] == \
        [int(__import__("hashlib").sha1(r["id"].encode()).hexdigest(), 16) % 2 == 0
         for r in rows]


def test_fixture_rows_simulate_with_their_engine():
    """The made-up measurements (1,000 s) sit far above any prediction: the limit is below."""
    for row in silicon.serving_rows(FIXTURE):
        got = silicon.simulate_row(row)
        assert got.engine == row["backend"] and got.concurrency == int(row["batch_size"])
        assert 0 < got.tpot_lim_s <= got.tpot_est_s < got.tpot_s
        assert 0 < got.ttft_lim_s <= got.ttft_est_s < got.ttft_s
        assert not got.prefix_cached


@pytest.mark.skipif(not silicon.CSV.exists(), reason="../shared/external not beside this checkout")
def test_shared_rows_limit_and_estimate():
    """A sample of the real rows (every 9th, so the suite stays fast): each row runs with its
    engine; the TPOT limit stays below the measurement wherever the row is not prefix-cached."""
    rows = silicon.serving_rows()
    assert len(rows) >= 150
    for row in rows[::9]:
        got = silicon.simulate_row(row)
        if not got.prefix_cached:
            assert got.tpot_lim_s <= got.tpot_s, row["id"]
        assert got.tpot_est_s > got.tpot_lim_s
