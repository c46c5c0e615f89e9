"""What the engine is asked to do: B sequences, I prompt tokens each, O output tokens each."""

from __future__ import annotations

from dataclasses import dataclass

from perfmodel.errors import MAX_BATCH, MAX_TOKENS, whole


@dataclass(frozen=True)
class Workload:
    """B = batch, I = input_len (prompt tokens), O = output_len (generated tokens, ≥ 1).

    TTFT is one prefill over B·I tokens; the O−1 decode steps after it attend to I+1 … I+O−1
    tokens (each step's new token included).
    """

    batch: int
    input_len: int
    output_len: int

    def __post_init__(self) -> None:
        for name, bound in (("batch", MAX_BATCH), ("input_len", MAX_TOKENS),
                            ("output_len", MAX_TOKENS)):
            whole(getattr(self, name), "--" + name.replace("_", "-"), bound)

    @property
    def decode_steps(self) -> int:
        return self.output_len - 1

    @property
    def final_context(self) -> int:
        """Tokens each sequence holds in its KV cache at the end: I + O."""
        return self.input_len + self.output_len
