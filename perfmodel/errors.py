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


# Upper bounds on what one command is asked to compute (docs/cli.md, "Bounds"): far above any
# real deployment, low enough that a typo fails at once instead of running out of memory or time.
MAX_TOKENS = 100_000_000  # prompt or output tokens of one request (I, O)
MAX_BATCH = 1_000_000  # sequences in flight: --batch, --concurrency
MAX_REQUESTS = 10_000_000  # requests one serving simulation runs
MAX_DEGREE = 4096  # --tp, --pp, --ep, --dp, --max-gpus
MAX_POINTS = 100_000  # points one sweep or plan evaluates


def shown(value: object) -> str:
    """A value for an error line: repr, with a number of more than 20 digits summarized."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return f"a {len(str(abs(value)))}-digit number"
    return repr(value)


def whole(value: object, flag: str, maximum: int, minimum: int = 1) -> int:
    """value as a whole number in [minimum, maximum], else a WorkloadError naming flag."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise WorkloadError(f"{flag} must be a whole number ≥ {minimum}, not {shown(value)}")
    if value > maximum:
        raise WorkloadError(f"{flag} is {shown(value)}, above the bound of {maximum:,}; pass a "
                            "smaller number")
    return value
