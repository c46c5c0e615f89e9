"""Every output flag of every command goes through perfmodel/outpath.py before any work: links,
devices, /proc, missing folders, the filesystem root, the command's own inputs and perfmodel's
bundled files are refused with one line, and nothing is written or created (issue 19, §3)."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import pytest
from conftest import ROOT
from test_bad_inputs import LLAMA, MODELS, invoke, one_line_error

# (command line before the output path, the flag, a suffix the command accepts)
OUTPUTS = [
    (("predict", LLAMA, "--plot"), ".png"),
    (("serve", LLAMA, "--concurrency", "1", "--num-requests", "2", "--trace"), ".csv"),
    (("sweep", LLAMA, "--out"), ".csv"),
    (("sweep", LLAMA, "--plot"), ".png"),
    (("plan", LLAMA, "--tpot-slo", "50ms", "--plot"), ".png"),
    (("validate-serving", "--csv"), ".csv"),
    (("validate", "meta-llama/Llama-3.2-1B", "--out"), ".jsonl"),
    (("calibrate-gpu", "--device", "cpu", "--out"), ".yaml"),
]
IDS = [" ".join(a[i] for i in (0, -1)) for a, _ in OUTPUTS]


@pytest.fixture(autouse=True)
def never_work(monkeypatch):
    """Any output that gets past the check would start measuring or simulating: fail loudly."""
    from perfmodel.calibrate import run
    from perfmodel import serve

    def refuse(*args, **kwargs):
        raise AssertionError("started the work")
    monkeypatch.setattr(run, "measure", refuse)
    monkeypatch.setattr(serve, "run_serve", refuse)


def snapshot(path: Path) -> tuple:
    """What must not change: the link itself, its target's bytes, or the file's bytes."""
    return (path.is_symlink(), os.readlink(path) if path.is_symlink() else None,
            path.read_bytes() if path.exists() else None)


@pytest.mark.parametrize("args, suffix", OUTPUTS, ids=IDS)
def test_a_link_is_never_written_through(tmp_path, args, suffix):
    target = tmp_path / f"target{suffix}"
    target.write_text("kept\n")
    link = tmp_path / f"link{suffix}"
    link.symlink_to(target)
    one_line_error(invoke(*args, str(link)), f"{link} is not a regular file (a link)")
    assert link.is_symlink() and target.read_text() == "kept\n"


@pytest.mark.parametrize("args, suffix", OUTPUTS, ids=IDS)
def test_a_missing_folder_is_said_up_front_and_not_created(tmp_path, args, suffix):
    out = tmp_path / "nope" / f"x{suffix}"
    one_line_error(invoke(*args, str(out)), f"the folder {out.parent} does not exist",
                   "create it first")
    assert not out.parent.exists()


@pytest.mark.parametrize("args, suffix", OUTPUTS, ids=IDS)
def test_proc_and_devices_are_refused(args, suffix):
    one_line_error(invoke(*args, f"/proc/x{suffix}"), "cannot create a file in /proc")
    line = one_line_error(invoke(*args, "/dev/null"), args[-1])  # a plot's suffix may come first
    assert "/dev/null is not a regular file" in line or "must end in" in line
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not os.path.exists(f"/dev/x{suffix}")
    one_line_error(invoke(*args, f"/dev/x{suffix}"), "cannot create a file in /dev")
    assert not os.path.exists(f"/dev/x{suffix}")


@pytest.mark.parametrize("args, suffix", [o for o in OUTPUTS if o[0][0] != "calibrate-gpu"],
                         ids=[i for i in IDS if not i.startswith("calibrate-gpu")])
def test_a_folder_or_empty_path_is_refused_where_a_file_is_needed(tmp_path, monkeypatch,
                                                                   args, suffix):
    folder = tmp_path / f"fig{suffix}"
    folder.mkdir()
    one_line_error(invoke(*args, str(folder)), f"{folder} is not a regular file (a folder")
    assert folder.is_dir() and not any(folder.iterdir())
    monkeypatch.chdir(tmp_path)
    line = one_line_error(invoke(*args, ""), args[-1])
    assert "an empty path means the current folder" in line or "must end in" in line


@pytest.mark.parametrize("args, suffix", OUTPUTS, ids=IDS)
def test_nothing_is_written_in_the_filesystem_root(args, suffix):
    out = Path("/") / f"perfmodel-test-{uuid.uuid4().hex}{suffix}"
    try:
        one_line_error(invoke(*args, str(out)), "nothing is written in the filesystem root")
        assert not out.exists()
    finally:
        if out.exists():
            out.unlink()


@pytest.mark.parametrize("args, suffix", OUTPUTS, ids=IDS)
def test_bundled_files_are_never_replaced(args, suffix):
    out = ROOT / "configs" / "models" / f"new{suffix}"
    one_line_error(invoke(*args, str(out)), "inside perfmodel's own configs/")
    assert not out.exists()


def test_calibrate_never_replaces_a_bundled_profile():
    """The destructive case: every later default predict ran on the CPU profile."""
    profile = ROOT / "configs" / "gpus" / "h100-sxm.yaml"
    before = profile.read_bytes()
    one_line_error(invoke("calibrate-gpu", "--device", "cpu", "--quick", "--out", str(profile)),
                   "inside perfmodel's own configs/", "pass a path outside it")
    assert profile.read_bytes() == before
    one_line_error(invoke("calibrate-gpu", "--device", "cpu", "--out", str(profile.parent)),
                   "inside perfmodel's own configs/")


def test_trace_never_overwrites_the_models_own_config(tmp_path):
    config = tmp_path / "config.json"
    config.write_bytes((MODELS / f"{LLAMA}.json").read_bytes())
    before = snapshot(config)
    for model in (str(config), str(tmp_path)):  # the file, or the folder holding it
        one_line_error(invoke("serve", model, "--concurrency", "1", "--trace", str(config)),
                       f"--trace {config} is an input of this command", "pass another file")
    assert snapshot(config) == before
    bundled = MODELS / f"{LLAMA}.json"
    before = snapshot(bundled)
    one_line_error(invoke("serve", LLAMA, "--concurrency", "1", "--trace", str(bundled)),
                   "inside perfmodel's own configs/")
    assert snapshot(bundled) == before


def test_trace_never_overwrites_the_lengths_or_gpu_file(tmp_path):
    lengths = tmp_path / "lengths.jsonl"
    lengths.write_text('{"input_len": 8, "output_len": 8}\n')
    profile = tmp_path / "box.yaml"
    profile.write_bytes((ROOT / "configs" / "gpus" / "h100-sxm.yaml").read_bytes())
    for out in (lengths, profile):
        before = out.read_bytes()
        one_line_error(invoke("serve", LLAMA, "--gpu", str(profile), "--concurrency", "1",
                              "--lengths", str(lengths), "--trace", str(out)),
                       "is an input of this command")
        assert out.read_bytes() == before


def test_other_outputs_never_overwrite_their_inputs(tmp_path):
    config = tmp_path / "config.json"
    config.write_bytes((MODELS / "meta-llama/Llama-3.2-1B.json").read_bytes())
    before = config.read_bytes()
    one_line_error(invoke("validate", str(config), "--out", str(config)),
                   "is an input of this command")
    assert config.read_bytes() == before


def test_validate_serving_csv_is_not_its_own_data():
    from perfmodel.validate import silicon

    if not silicon.CSV.exists():
        pytest.skip("../shared/external/aiconfigurator-silicon is not beside this checkout")
    before = silicon.CSV.stat().st_mtime_ns
    one_line_error(invoke("validate-serving", "--csv", str(silicon.CSV)),
                   "is an input of this command")
    assert silicon.CSV.stat().st_mtime_ns == before


def test_a_new_file_in_an_existing_folder_still_works(tmp_path):
    out = tmp_path / "rows.csv"
    result = invoke("sweep", LLAMA, "--batch", "1,2", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("model,")
