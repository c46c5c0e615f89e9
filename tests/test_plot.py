"""Plots render to real files (PNG signature, SVG root); predict imports matplotlib only with
--plot."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from perfmodel.cli import app

pytest.importorskip("matplotlib")
runner = CliRunner()
MODEL = "meta-llama/Llama-3.1-8B"
PNG = b"\x89PNG\r\n\x1a\n"


def is_svg(path) -> bool:
    return ET.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg"


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_predict_plot_draws_the_roofline(tmp_path, suffix):
    path = tmp_path / f"roofline{suffix}"
    result = runner.invoke(app, ["predict", MODEL, "--gpu", "h100-sxm-measured", "--batch", "8",
                                 "--plot", str(path)])
    assert result.exit_code == 0, result.output
    assert path.read_bytes().startswith(PNG) if suffix == ".png" else is_svg(path)
    if suffix == ".svg":  # every op with FLOPs is a point, at its limit and its estimate
        assert path.read_text().count("<use ") > 20


def test_plan_and_sweep_plots(tmp_path):
    front, load = tmp_path / "front.png", tmp_path / "load.svg"
    result = runner.invoke(app, ["plan", MODEL, "--gpus", "h100-sxm-measured", "--method",
                                 "predict", "--concurrency", "1-64x2", "--tpot-slo", "20ms",
                                 "--plot", str(front)])
    assert result.exit_code == 0, result.output
    assert front.read_bytes().startswith(PNG)
    result = runner.invoke(app, ["sweep", MODEL, "--gpu", "h100-sxm-measured,b200", "--batch",
                                 "1-64x2", "--plot", str(load)])
    assert result.exit_code == 0, result.output
    assert is_svg(load)


def test_bad_plot_suffix_is_one_line(tmp_path):
    result = runner.invoke(app, ["predict", MODEL, "--plot", str(tmp_path / "x.jpg")],
                           env={"PERFMODEL_DEBUG": "0"})
    assert result.exit_code == 2 and ".png or .svg" in result.output


def test_predict_imports_neither_matplotlib_nor_torch_without_plot():
    code = ("import sys; from perfmodel.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['predict', 'meta-llama/Llama-3.1-8B']); "
            "assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
