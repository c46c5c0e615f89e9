"""Where a command may write its output: checked before any work, never replacing anything but
a regular file (calibrate-gpu --out, validate --out, sweep --out, --plot)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from perfmodel.errors import PerfmodelError


class OutputPathError(PerfmodelError):
    """An output path that is not a regular file in a writable folder."""


def check_out_path(out: Path | None, folder_ok: bool = True, flag: str = "--out") -> None:
    """Refuse, before measuring or computing, a path the output cannot go to: anything but a
    regular file (a device such as /dev/full, a link, a folder where the file itself must go) or
    a place where no file can be created (/proc, a read-only folder). With folder_ok, a folder
    (None: the current one) is accepted if writable.
    """
    target = Path.cwd() if out is None else Path(out)
    if folder_ok and target.is_dir():
        folder = target
    elif target.is_symlink() or (target.exists() and not target.is_file()):
        raise OutputPathError(f"{flag} {target} is not a regular file (a device, link, folder or "
                              "other special file) and is never replaced; pass a file path"
                              + (" or a folder" if folder_ok else ""))
    else:
        folder = next(p for p in target.absolute().parents if p.exists())
        if not folder.is_dir():
            raise OutputPathError(f"{flag} {target}: {folder} is not a folder; pass a path in a "
                                  "writable folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".perfmodel-probe-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise OutputPathError(f"{flag} {target}: cannot create a file in {folder} "
                              f"({error.strerror}); pass a path in a writable folder") from None
