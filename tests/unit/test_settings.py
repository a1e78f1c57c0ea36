"""Sampler and load settings: validation names the bad field; JSON round-trips."""

from __future__ import annotations

import pytest

from desktop.core.model_info import LoadSettings
from desktop.core.sampling import PRESETS, SamplerSettings, SettingsError


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"temperature": -1}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_n": 501}, "top_n"),
        ({"order": ("top_k",)}, "order"),
        ({"mirostat": 3}, "mirostat"),
        ({"stop": ("",)}, "stop"),
    ],
)
def test_bad_sampler_fields_are_named(change: dict, word: str) -> None:
    with pytest.raises(SettingsError, match=word):
        SamplerSettings(**change).validated()


def test_sampler_json_round_trip() -> None:
    s = SamplerSettings(stop=("a", "b"), seed=5, order=tuple(reversed(SamplerSettings().order)))
    assert SamplerSettings.from_json(s.to_json()) == s


def test_presets_are_valid() -> None:
    for preset in PRESETS.values():
        preset.validated()


def test_load_settings_validation() -> None:
    with pytest.raises(SettingsError, match="KV cache"):
        LoadSettings(kv_cache_type="q9").validated()
    assert LoadSettings.from_json(LoadSettings(n_ctx=8).to_json()).n_ctx == 8
