"""`python -m perfmodel.bench`: a usage line, not a traceback, on a bad argument (CPU only)."""

from __future__ import annotations

from perfmodel.bench import main


def test_bench_says_how_to_call_it(capsys):
    assert main(["--help"]) == 0
    assert main(["many"]) == 2 and main(["0"]) == 2 and main(["10", "20"]) == 2
    assert capsys.readouterr().err.count("usage: python -m perfmodel.bench") == 4


def test_bench_runs_a_few_predictions(capsys):
    assert main(["20"]) == 0
    assert "20 predictions in" in capsys.readouterr().out
