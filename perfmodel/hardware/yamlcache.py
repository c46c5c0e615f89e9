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


MAX_NODES = 1_000_000  # values, aliases expanded; the largest bundled profile has 4,853


class YamlError(ValueError):
    """The text is not valid YAML; problem_mark (line, column) where the parser saw it."""

    def __init__(self, message: str, problem_mark: Any = None, reason: str = "") -> None:
        super().__init__(message)
        self.problem_mark = problem_mark
        self.reason = reason  # one line, for the checks here (PyYAML's messages span several)


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
    data = _parse(text)
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


def _parse(text: str) -> Any:
    """Compose the node graph, check it (size with every alias expanded, duplicate keys), and
    only then build Python objects: a few kB of nested aliases (a "billion laughs") would
    otherwise build gigabytes before anything could look at them, and a duplicate key would
    silently keep its last value."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check(node, yaml)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise YamlError(str(exc), getattr(exc, "problem_mark", None)) from exc
    finally:
        loader.dispose()


def _check(root: Any, yaml: Any) -> None:
    """Raise YamlError if the document, aliases expanded, has more than MAX_NODES nodes, refers
    to itself, or a mapping repeats a key. Iterative post-order, each node sized once."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [c for pair in node.value for c in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] > MAX_NODES:
                why = f"it expands to more than {MAX_NODES:,} values through nested aliases"
                raise YamlError(why, node.start_mark, why)
            continue
        if id(node) in open_nodes:
            why = "an alias refers to a node that holds it"
            raise YamlError(why, node.start_mark, why)
        open_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
            if len(keys) != len(set(keys)):
                key = next(k for k in keys if keys.count(k) > 1)
                why = f"the key {key!r} appears twice in one mapping"
                raise YamlError(why, node.start_mark, why)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
