"""Shared fixtures: small hand-written configs and profiles, so core tests need no bundled file."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"

LLAMA_8B = {  # the architecture fields of meta-llama/Llama-3.1-8B's config.json
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "vocab_size": 128256, "tie_word_embeddings": False, "max_position_embeddings": 131072,
}

H100_SHEET = {  # NVIDIA H100 SXM datasheet, dense
    "name": "h100-test", "description": "H100 SXM (test)", "kind": "datasheet",
    "source": "test", "method": "test", "mem_bytes": 8.0e10, "mem_bandwidth": 3.35e12,
    "peak_flops": {"bf16": 9.89e14, "fp16": 9.89e14, "fp8": 1.979e15, "int8": 1.979e15},
}


@pytest.fixture
def llama8b():
    from perfmodel.model.architectures import model_spec

    return model_spec(dict(LLAMA_8B))


@pytest.fixture
def h100():
    from perfmodel.hardware.gpu import parse_gpu

    return parse_gpu(dict(H100_SHEET))


def pytest_collection_modifyitems(config, items):
    """GPU tests run only where CUDA is present (the lent GPU machine)."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
