"""Errors a user can fix: one line that names the fix, never a traceback unless PERFMODEL_DEBUG=1."""

from __future__ import annotations


class PerfmodelError(Exception):
    """A known failure. Its message is one line and says what to do about it."""


class ConfigError(PerfmodelError):
    """A model config that cannot be read or lacks a field the architecture needs."""


class ModelNotFoundError(PerfmodelError):
    """A model id that is neither bundled, a path, nor reachable on the Hub."""


class GpuProfileError(PerfmodelError):
    """A GPU name that is not bundled, or a profile file that is malformed."""


class WorkloadError(PerfmodelError):
    """A workload or precision the model cannot run."""
