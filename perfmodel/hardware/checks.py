"""Type checks of a GPU profile's fields, each failure one GpuProfileError naming the profile and
the field (PyYAML reads 3.0e12 as text: such a number is refused with the fix)."""

from __future__ import annotations

import math
from typing import Any, Mapping

from perfmodel.errors import GpuProfileError


class Checker:
    """Type checks that name the profile and the field in their message."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, what: str) -> GpuProfileError:
        return GpuProfileError(f"GPU profile {self.path}: {what}; fix or regenerate the profile")

    def text(self, data: Mapping, key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(f"'{key}' must be a non-empty string")
        return value

    def mapping(self, data: Mapping, key: str) -> Mapping:
        value = data.get(key)
        if not isinstance(value, dict):
            raise self.fail(f"'{key}' must be a mapping")
        return value

    def number(self, data: Mapping, key: str, *, optional: bool = False, where: str = "") -> Any:
        value = data.get(key)
        name = f"{where}.{key}" if where else key
        if value is None and optional:
            return None
        if isinstance(value, str):
            raise self.fail(f"'{name}' is the string {value!r}; write numbers like 3.0e+12 "
                            "(PyYAML reads 3.0e12 as text)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise self.fail(f"'{name}' must be a positive number, not {value!r}")
        return float(value)

    def seconds(self, value: Any, name: str) -> float | None:
        if value is None:
            return None
        return self.number({name: value}, name)

    def count(self, value: Any, name: str, *, optional: bool = False) -> int | None:
        """A positive integer (not a bool); None allowed where optional."""
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(f"{name} must be a positive integer, not {value!r}")
        return value
