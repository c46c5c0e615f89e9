"""validate-serving against the real engines' serving rows (../shared/external/aiconfigurator-
silicon, read in place when it is beside the checkout) and a synthetic fixture in that schema
(tests/data/silicon-fixture.csv, made-up numbers) so the reader bites on a fresh clone too."""

from __future__ import annotations

import dataclasses
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


def _rows(a: float, b: float, seqs: list[float]) -> list[silicon.Linearised]:
    """Rows whose measured TPOT is a bare 10 ms plus a + b·seqs (the step's sequences)."""
    return [silicon.Linearised(10e-3 + a + b * n, 10e-3, 1.0, n, 0.0, 0.0) for n in seqs]


def test_grid_fit_recovers_a_known_host_overhead_despite_outliers():
    """Rows made with a = 1.2 ms, b = 40 µs per sequence (grid points) give back exactly that
    pair at zero median loss, even with 3 of 9 rows measured 5× slower (anomalous rows the
    median ignores)."""
    clean = _rows(1.2e-3, 40e-6, [1, 8, 16, 32, 64, 128])
    bad = [silicon.Linearised(5 * r.measured_s, *dataclasses.astuple(r)[1:])
           for r in _rows(1.2e-3, 40e-6, [4, 24, 96])]
    a, b = silicon.grid_fit(clean + bad)
    assert a == pytest.approx(1.2e-3) and b == pytest.approx(40e-6)
    assert silicon.robust_loss(clean + bad, a, b)[1] == pytest.approx(0.0, abs=1e-12)


def test_grid_fit_is_constrained_to_non_negative_overheads():
    """Rows the bare model already overestimates would want a negative overhead: the fit
    stops at a = b = 0."""
    over = [silicon.Linearised(8e-3, 10e-3, 1.0, n, 0.0, 0.0) for n in (1, 16, 64)]
    assert silicon.grid_fit(over) == (0.0, 0.0)
