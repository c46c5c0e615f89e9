"""Where a command may write its output: one check for every output flag of every command
(serve --trace, validate-serving --csv, sweep --out/--plot, plan --plot, predict --plot,
calibrate-gpu --out, validate --out), run before any work.

The rule (docs/cli.md, "Output files"): an output goes to a regular file, new or existing, in an
existing writable folder. Refused, with one line naming the fix: an empty path (the CLI
refuses `--out ""` before parsing, perfmodel/cli/options.py, since typer reads it as "."), a link (never followed: writing
through it would replace its target), a device, folder or other special file, anything under
/proc, /sys or /dev, a file directly in the filesystem root, a path whose folder does not exist
(nothing is created for it), a file the command reads as input (the model's config.json, a
--lengths file, a --gpu profile) and anything bundled with perfmodel (configs/, the package).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from perfmodel.errors import PerfmodelError

_PACKAGE = Path(__file__).resolve().parent
BUNDLED = (_PACKAGE.parent / "configs", _PACKAGE)  # bundled profiles and models, the code
SYSTEM = (Path("/proc"), Path("/sys"), Path("/dev"))


class OutputPathError(PerfmodelError):
    """An output path that is not a regular file in a writable folder."""


def input_files(*names: str | Path | None) -> tuple[Path, ...]:
    """The files among `names` (a model argument, a --gpu profile, a --lengths file) that exist
    here: a folder stands for its config.json. Names that are not local paths are left out."""
    files = []
    for name in names:
        if not name:
            continue
        path = Path(name).expanduser()
        if path.is_dir():
            path = path / "config.json"
        if path.is_file():
            files.append(path)
    return tuple(files)


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _refuse_reserved(target: Path, flag: str, inputs: Iterable[Path]) -> None:
    """An input of this command, a bundled file, or a system folder."""
    real = target.resolve()
    for system in SYSTEM:
        if _within(real, system):
            raise OutputPathError(f"{flag} {target}: cannot create a file in {system} (devices and "
                                  "kernel state); pass a path in a writable folder")
    for folder in BUNDLED:
        if _within(real, folder.resolve()):
            raise OutputPathError(f"{flag} {target} is inside perfmodel's own {folder.name}/ "
                                  "(bundled profiles, models and code are never replaced); pass "
                                  "a path outside it")
    if target.exists():
        for path in inputs:
            try:
                same = os.path.samefile(target, path)
            except OSError:
                continue
            if same:
                raise OutputPathError(f"{flag} {target} is an input of this command ({path}) and "
                                      "is never overwritten; pass another file")


def check_out_path(out: Path | None, folder_ok: bool = True, flag: str = "--out",
                   inputs: Iterable[Path] = ()) -> None:
    """Refuse, before measuring or computing, a path the output cannot go to (the module's rule).
    With folder_ok, a folder (None: the current one) is accepted if writable; `inputs` are the
    files the command reads (input_files)."""
    if isinstance(out, str) and not out.strip():
        raise OutputPathError(f'{flag} "" names no file: an empty path means the current '
                              "folder; pass a file path")
    target = Path.cwd() if out is None else Path(out)
    inputs = tuple(inputs)
    if folder_ok and target.is_dir() and not target.is_symlink():
        folder = target
    elif target.is_symlink() or (target.exists() and not target.is_file()):
        what = ("a link" if target.is_symlink() else "a folder" if target.is_dir() else
                "a device or other special file")
        empty = "; an empty path means the current folder" if str(target) == "." else ""
        raise OutputPathError(f"{flag} {target} is not a regular file ({what}{empty}) and is "
                              "never replaced; pass a file path"
                              + (" or a folder" if folder_ok else ""))
    else:
        folder = target.absolute().parent
        missing = next((p for p in (folder, *folder.parents) if not p.exists()), None)
        if missing is not None:
            present = next(p for p in folder.parents if p.exists())
            if not present.is_dir():
                raise OutputPathError(f"{flag} {target}: {present} is not a folder; pass a path "
                                      "in a writable folder")
            raise OutputPathError(f"{flag} {target}: the folder {folder} does not exist; create "
                                  "it first or pass a path in an existing folder")
        if not folder.is_dir():
            raise OutputPathError(f"{flag} {target}: {folder} is not a folder; pass a path in a "
                                  "writable folder")
    _refuse_reserved(target, flag, inputs)
    if folder.resolve() == Path(folder.anchor or "/"):
        raise OutputPathError(f"{flag} {target}: nothing is written in the filesystem root; "
                              "pass a path in a folder of your own")
    try:
        handle, probe = tempfile.mkstemp(prefix=".perfmodel-probe-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise OutputPathError(f"{flag} {target}: cannot create a file in {folder} "
                              f"({error.strerror}); pass a path in a writable folder") from None
