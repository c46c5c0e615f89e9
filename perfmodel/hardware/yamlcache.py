"""Profile YAML read once: the parsed mapping kept as JSON in the user's cache, keyed by content.

A measured profile's kernel tables take ~25 ms to build as Python objects from YAML (even with
libyaml's C parser) and under 1 ms from JSON; `predict` reads two of them. The cache key is the
SHA-1 of the file's bytes, so an edited or regenerated profile is parsed afresh; a mapping that
JSON would not give back exactly (dates, integer keys, tuples) is never cached. The cache lives
in $PERFMODEL_CACHE, else $XDG_CACHE_HOME/perfmodel, else ~/.cache/perfmodel; a cache that
cannot be written is skipped silently (a read-only home changes nothing but speed).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


class YamlError(ValueError):
    """The text is not valid YAML; problem_mark (line, column) where the parser saw it."""

    def __init__(self, message: str, problem_mark: Any = None) -> None:
        super().__init__(message)
        self.problem_mark = problem_mark


def cache_dir() -> Path:
    root = os.environ.get("PERFMODEL_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "perfmodel"


def load_yaml(text: str) -> Any:
    """The YAML document of text (raises YamlError), through the JSON cache. PyYAML is imported
    only on a miss: a warm `predict` never pays its import."""
    key = hashlib.sha1(text.encode()).hexdigest()
    path = cache_dir() / "yaml" / f"{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    import yaml

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise YamlError(str(exc), getattr(exc, "problem_mark", None)) from exc
    try:
        encoded = json.dumps(data)
        if json.loads(encoded) == data:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(encoded)
            tmp.replace(path)  # atomic: a reader never sees half a file
    except (OSError, TypeError, ValueError):
        pass
    return data
