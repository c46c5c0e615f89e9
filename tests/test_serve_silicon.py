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


def test_validate_serving_cli_on_the_fixture(monkeypatch, tmp_path):
    """The command end to end on the synthetic rows: --json, --csv, --markdown; a missing CSV
    is one line and exit 2."""
    import csv as csv_module
    import json

    from typer.testing import CliRunner

    from perfmodel.cli import app

    runner = CliRunner()
    monkeypatch.setattr(silicon, "CSV", FIXTURE)
    out = tmp_path / "rows.csv"
    result = runner.invoke(app, ["validate-serving", "--json", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [r["id"] for r in doc["rows"]] == ["fixture_vllm_8b_bf16_c8",
                                              "fixture_trtllm_8b_bf16_c4"]
    assert {s["engine"] for s in doc["summary"]} == {"vllm", "trtllm", "all"}
    assert len(list(csv_module.DictReader(out.open()))) == 2
    md = runner.invoke(app, ["validate-serving", "--markdown"])
    assert md.exit_code == 0 and md.output.startswith("| engine | half |")
    monkeypatch.setattr(silicon, "CSV", tmp_path / "missing.csv")
    missing = runner.invoke(app, ["validate-serving"])
    assert missing.exit_code == 2 and "not found" in missing.output
