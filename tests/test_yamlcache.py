"""Profile YAML through the JSON cache (hardware/yamlcache.py): same data, keyed by content,
never caching what JSON would change, harmless when the cache cannot be written (CPU only)."""

from __future__ import annotations

import datetime

import pytest
import yaml

from perfmodel.hardware import yamlcache
from perfmodel.hardware.gpu import GPU_DIR, load_gpu


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PERFMODEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "yaml"


def test_cached_profile_is_the_yaml_one_and_is_read_from_the_cache(cache, monkeypatch):
    text = (GPU_DIR / "h100-sxm-measured.yaml").read_text()
    first = yamlcache.load_yaml(text)
    assert first == yaml.safe_load(text) and len(list(cache.glob("*.json"))) == 1
    monkeypatch.setattr(yaml, "load", lambda *a, **k: pytest.fail("parsed again"))
    assert yamlcache.load_yaml(text) == first
    assert load_gpu("h100-sxm-measured").tables is not None


def test_an_edited_file_is_parsed_afresh(cache):
    assert yamlcache.load_yaml("a: 1\n") == {"a": 1}
    assert yamlcache.load_yaml("a: 2\n") == {"a": 2}
    assert len(list(cache.glob("*.json"))) == 2


def test_what_json_would_change_is_not_cached(cache):
    assert yamlcache.load_yaml("when: 2026-11-27\n") == {"when": datetime.date(2026, 11, 27)}
    assert yamlcache.load_yaml("2: x\n") == {2: "x"}  # JSON keys are strings
    assert not cache.exists() or not list(cache.glob("*.json"))


def test_an_unwritable_cache_changes_nothing(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PERFMODEL_CACHE", str(blocker))
    assert yamlcache.load_yaml("a: [1, 2.5]\n") == {"a": [1, 2.5]}
    with pytest.raises(yamlcache.YamlError):
        yamlcache.load_yaml("a: [1,\n")
