"""The shared measurement data's location is a setting: $PERFMODEL_SHARED, else ../shared."""

from __future__ import annotations

from perfmodel.shared_data import CHECKOUT, SETTING, missing, shared_dir


def test_default_is_beside_the_checkout(monkeypatch):
    monkeypatch.delenv(SETTING, raising=False)
    assert shared_dir() == CHECKOUT.parent / "shared"


def test_the_setting_wins(monkeypatch, tmp_path):
    monkeypatch.setenv(SETTING, str(tmp_path))
    assert shared_dir() == tmp_path
    line = missing(tmp_path / "external" / "x.csv")
    assert SETTING in line and "\n" not in line
