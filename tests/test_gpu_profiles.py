"""The bundled datasheet GPU profiles: they load, carry provenance, and obey physical facts.

Ground truth here is the vendors' own dense figures and what the hardware can and cannot do
(A100 has no FP8; Hopper, Blackwell and CDNA3 have no INT4 tensor mode; the H200 is an H100 SXM
with more memory). No network, no GPU.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from perfmodel.errors import GpuProfileError
from perfmodel.hardware.gpu import PEAK_DTYPES, GpuSpec, bundled_names, load_gpu

BUNDLED = ("h100-sxm", "h100-pcie", "h200", "a100-sxm-80gb", "l40s", "rtx-4090",
           "rtx-pro-6000", "b200", "mi300x")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "gpus.md"


@pytest.fixture(scope="module")
def specs() -> dict[str, GpuSpec]:
    return {name: load_gpu(name) for name in BUNDLED}


def test_every_expected_profile_is_bundled():
    assert set(BUNDLED) <= set(bundled_names())


@pytest.mark.parametrize("name", BUNDLED)
def test_profile_loads_with_provenance(name):
    spec = load_gpu(name)
    assert spec.name == name
    assert spec.kind == "datasheet"
    assert spec.source.startswith("https://")
    assert spec.date and spec.method and spec.description
    assert isinstance(spec.extra.get("notes"), str) and spec.extra["notes"].strip()
    assert set(spec.peak_flops) == set(PEAK_DTYPES)


@pytest.mark.parametrize("name", BUNDLED)
def test_profile_values_are_positive_and_in_base_units(name):
    """Positive, and in FLOP/s, byte/s, bytes: a TB/s or GB slip is off by 1e9 or more."""
    spec = load_gpu(name)
    assert 1e13 < spec.peak("bf16") < 1e16
    assert 1e11 < spec.mem_bandwidth < 1e14
    assert 1e10 < spec.mem_bytes < 1e12


@pytest.mark.parametrize("name", BUNDLED)
def test_narrower_types_are_never_slower(name):
    spec = load_gpu(name)
    bf16 = spec.peak("bf16")
    for dtype in ("fp8", "int8"):
        if spec.peak(dtype) is not None:
            assert spec.peak(dtype) >= bf16, dtype
    if spec.peak("int4") is not None:
        assert spec.peak("int4") >= spec.peak("int8")


@pytest.mark.parametrize("name", BUNDLED)
def test_fp16_and_bf16_tensor_rates_are_equal(name):
    spec = load_gpu(name)
    assert spec.peak("fp16") == spec.peak("bf16")


@pytest.mark.parametrize(("name", "dtype"), [
    ("a100-sxm-80gb", "fp8"),  # Ampere: no FP8 tensor cores
    ("h100-sxm", "int4"), ("h100-pcie", "int4"), ("h200", "int4"),  # Hopper dropped INT4
    ("b200", "int4"), ("mi300x", "int4"),
])
def test_missing_tensor_modes_are_null(name, dtype):
    assert load_gpu(name).peak(dtype) is None


def test_h200_is_an_h100_sxm_with_more_memory(specs):
    h100, h200 = specs["h100-sxm"], specs["h200"]
    assert dict(h200.peak_flops) == dict(h100.peak_flops)
    assert h200.mem_bandwidth > h100.mem_bandwidth
    assert h200.mem_bytes > h100.mem_bytes


def test_h100_pcie_is_slower_than_sxm(specs):
    """Same die, 114 SMs against 132, HBM2e against HBM3."""
    sxm, pcie = specs["h100-sxm"], specs["h100-pcie"]
    for dtype in ("bf16", "fp8", "int8"):
        assert pcie.peak(dtype) < sxm.peak(dtype)
    assert pcie.mem_bandwidth < sxm.mem_bandwidth


@pytest.mark.parametrize(("name", "tflops"), [
    ("h100-sxm", 989.5),   # datasheet 1,979* sparse, halved
    ("a100-sxm-80gb", 312),
    ("rtx-4090", 165.2),   # FP32 accumulate, not the 330.3 FP16-accumulate figure
    ("l40s", 362.05),
    ("b200", 2250),        # datasheet 4.5 PFLOPS* sparse, halved
    ("mi300x", 1307.4),    # AMD footnote MI300-17, dense
])
def test_dense_bf16_matches_the_published_figure(name, tflops):
    """Guards against pasting the sparse (asterisked) figure or the FP16-accumulate one."""
    assert math.isclose(load_gpu(name).peak("bf16"), tflops * 1e12, rel_tol=1e-3)


def _write_profile(tmp_path: Path, bandwidth: str, bf16: str = "9.89e+14") -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\n"
        "description: test profile\n"
        "kind: datasheet\n"
        "source: https://example.com/datasheet.pdf\n"
        'date: "2024"\n'
        "method: test\n"
        "mem_bytes: 8.0e+10\n"
        f"mem_bandwidth: {bandwidth}\n"
        "peak_flops:\n"
        f"  bf16: {bf16}\n")
    return path


def test_well_formed_tmp_profile_loads(tmp_path):
    spec = load_gpu(str(_write_profile(tmp_path, "3.0e+12")))
    assert spec.mem_bandwidth == 3.0e12
    assert spec.peak("fp8") is None


def test_exponent_without_sign_is_rejected_naming_the_field(tmp_path):
    """PyYAML reads 3.0e12 as the string '3.0e12'; the loader must say which field and why."""
    with pytest.raises(GpuProfileError) as info:
        load_gpu(str(_write_profile(tmp_path, "3.0e12")))
    message = str(info.value)
    assert "mem_bandwidth" in message
    assert "3.0e+12" in message  # names the fix
    assert "\n" not in message


def test_nested_peak_without_sign_is_rejected_naming_the_field(tmp_path):
    with pytest.raises(GpuProfileError, match=r"peak_flops\.bf16"):
        load_gpu(str(_write_profile(tmp_path, "3.0e+12", bf16="9.89e14")))


def _number(value: float | None, scale: float, digits: int) -> str:
    if value is None:
        return "—"
    text = f"{value / scale:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _docs_row(spec: GpuSpec) -> str:
    cells = [f"`{spec.name}`", spec.description,
             _number(spec.peak("bf16"), 1e12, 2), _number(spec.peak("fp8"), 1e12, 2),
             _number(spec.peak("int8"), 1e12, 2), _number(spec.mem_bandwidth, 1e12, 3),
             _number(spec.mem_bytes, 1e9, 1), f"[source]({spec.source})"]
    return "| " + " | ".join(cells) + " |"


@pytest.mark.parametrize("name", BUNDLED)
def test_docs_table_matches_profile(name):
    """docs/gpus.md must not drift from the YAML: each profile's row appears verbatim."""
    assert _docs_row(load_gpu(name)) in DOCS.read_text()


@pytest.mark.parametrize("name", [n for n in bundled_names() if n.endswith("-measured")])
def test_docs_measured_section_matches_each_measured_profile(name):
    """docs/gpus.md's measured rows quote each measured profile's bf16 peak (and its share of
    the datasheet) and its bandwidth, as the profile holds them."""
    section = DOCS.read_text().split("## Measured against datasheet", 1)[1]
    row = next((line for line in section.splitlines() if line.startswith(f"| `{name}`")), None)
    assert row is not None, f"docs/gpus.md has no measured row for {name}"
    measured = load_gpu(name)
    sheet = load_gpu(measured.datasheet)
    bf16 = measured.peak("bf16")
    assert f"{bf16 / 1e12:.0f} TFLOP/s ({100 * bf16 / sheet.peak('bf16'):.0f}% of" in row, row
    assert f"{measured.mem_bandwidth / 1e12:.2f} TB/s" in row, row


def test_bundled_names_are_found_whatever_their_case():
    assert load_gpu("H100-SXM").name == load_gpu("h100-sxm").name == "h100-sxm"
