"""The bundled configs against published parameter counts.

Every configs/models/<org>/<name>.json must parse, be listed in tests/data/published_params.yaml,
and build a ModelSpec whose parameter counts match what the publisher states there: to 1% where
the figure is published to three or more significant digits, to 2% where it has fewer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from perfmodel.model.architectures import model_spec
from perfmodel.model.spec import ModelSpec

MODELS_DIR = Path(__file__).resolve().parent.parent / "configs" / "models"
PUBLISHED_FILE = Path(__file__).resolve().parent / "data" / "published_params.yaml"
PUBLISHED: dict[str, dict] = yaml.safe_load(PUBLISHED_FILE.read_text())["models"]
KINDS = ("total", "active", "non_embedding")


def tolerance(figure: dict) -> float:
    """1% for a figure published to 3+ significant digits, 2% for a rounder one."""
    return 0.01 if figure["digits"] >= 3 else 0.02


def spec_of(model_id: str) -> ModelSpec:
    return model_spec(json.loads((MODELS_DIR / f"{model_id}.json").read_text()))


def figures(kind: str) -> list:
    return [pytest.param(model_id, entry[kind], id=model_id)
            for model_id, entry in PUBLISHED.items() if kind in entry]


def assert_matches(computed: int, figure: dict, what: str) -> None:
    published = figure["value"]
    error = (computed - published) / published
    assert abs(error) <= tolerance(figure), (
        f"{what}: computed {computed:.4e}, published {published:.4e} ({error:+.2%}, "
        f"tolerance {tolerance(figure):.0%}); source: {figure['source']}")


def bundled_ids() -> list[str]:
    return sorted(path.relative_to(MODELS_DIR).with_suffix("").as_posix()
                  for path in MODELS_DIR.glob("*/*.json"))


def test_every_bundled_config_parses_and_is_listed():
    assert bundled_ids(), f"no configs under {MODELS_DIR}"
    stray = sorted(p.relative_to(MODELS_DIR).as_posix() for p in MODELS_DIR.rglob("*.json")
                   if p.parent.parent != MODELS_DIR)
    assert not stray, f"configs must sit at configs/models/<org>/<name>.json: {stray}"
    for model_id in bundled_ids():
        config = json.loads((MODELS_DIR / f"{model_id}.json").read_text())
        assert isinstance(config, dict), f"{model_id}.json does not hold a JSON object"
        assert model_id in PUBLISHED, f"{model_id} is bundled but not in {PUBLISHED_FILE.name}"


def test_every_listed_model_is_bundled():
    missing = sorted(set(PUBLISHED) - set(bundled_ids()))
    assert not missing, f"listed in {PUBLISHED_FILE.name} but not bundled: {missing}"


@pytest.mark.parametrize("model_id", sorted(PUBLISHED))
def test_published_entry_is_well_typed(model_id):
    entry = PUBLISHED[model_id]
    assert "total" in entry, f"{model_id}: no published total"
    assert set(entry) <= set(KINDS), f"{model_id}: unknown keys {set(entry) - set(KINDS)}"
    for kind, figure in entry.items():
        # PyYAML reads 8.03e9 (no "+") as a string; a float here proves it was written right.
        assert isinstance(figure["value"], float), f"{model_id} {kind}: value must be a float"
        assert isinstance(figure["digits"], int) and figure["digits"] >= 1
        assert figure["source"].strip() and figure["convention"].strip()
    if spec_of(model_id).is_moe:
        assert "active" in entry, f"{model_id} is a mixture of experts: give its active count"


@pytest.mark.parametrize("model_id, figure", figures("total"))
def test_total_matches_published(model_id, figure):
    assert_matches(spec_of(model_id).params.total, figure, f"{model_id} total")


@pytest.mark.parametrize("model_id, figure", figures("active"))
def test_active_matches_published(model_id, figure):
    params = spec_of(model_id).params
    computed = params.active
    if figure.get("excludes_input_embedding", False):
        # Some publishers (OpenAI for gpt-oss) leave the input embedding out of the active
        # count: a token reads one row of it, a lookup, not a matmul over the whole table.
        computed -= params.embedding
    if figure.get("excludes_embeddings", False):  # both the embedding and the LM head
        computed -= params.embedding + params.lm_head
    assert_matches(computed, figure, f"{model_id} active")


@pytest.mark.parametrize("model_id, figure", figures("non_embedding"))
def test_non_embedding_matches_published(model_id, figure):
    params = spec_of(model_id).params
    assert_matches(params.total - params.embedding - params.lm_head, figure,
                   f"{model_id} non-embedding")
