"""Where the read-only measurement data lives that perfmodel validates against but does not ship
(`external/aiconfigurator-silicon/`, `validation/`): the folder $PERFMODEL_SHARED names, else
`shared/` beside the checkout (../shared). Only the validation commands read it; their errors
name this setting when a file is missing."""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
SETTING = "PERFMODEL_SHARED"


def shared_dir() -> Path:
    """$PERFMODEL_SHARED if set, else ../shared beside the checkout."""
    value = os.environ.get(SETTING)
    return Path(value) if value else CHECKOUT.parent / "shared"


def missing(path: Path) -> str:
    """The one-line fix for a shared file that is not there."""
    return (f"{path} not found; set {SETTING} to the shared data folder (it holds external/ "
            "and validation/), or put it beside this checkout as ../shared")
