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
    with pytest.raises(SettingsError, match="flash attention must be one of auto, on, off"):
        LoadSettings(flash_attn="yes").validated()


def test_flash_attention_is_llama_cpps_auto_and_old_saved_ticks_still_read() -> None:
    assert LoadSettings().flash_attn == "auto"
    for mode in ("auto", "on", "off"):
        assert LoadSettings.from_json(LoadSettings(flash_attn=mode).to_json()).flash_attn == mode
    # Saved when it was a tick box: ticked was a choice; unticked was only the old default.
    assert LoadSettings.from_json({"flash_attn": True}).validated().flash_attn == "on"
    assert LoadSettings.from_json({"flash_attn": False}).validated().flash_attn == "auto"
