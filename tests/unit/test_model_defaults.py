"""Per-model defaults, pure: the author's values read from a GGUF's `general.sampling.*` keys and
a `generation_config.json`, the base-model rule, the words, and the per-model settings file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import gguf
import numpy as np
import pytest

from desktop.core import model_defaults as md
from desktop.core.model_info import LoadSettings
from desktop.core.model_settings import ModelSettingsStore
from desktop.core.sampling import SamplerSettings
from tests.ggufmaker import write_tiny_gguf


def gguf_with_sampling(path: Path, **keys: object) -> Path:
    """A tiny valid GGUF holding `general.sampling.<key>` for each keyword, as llama.cpp's
    converter writes them (int32, float32, a string for the sequence)."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("Tiny sampler model")
    for key, value in keys.items():
        name = f"general.sampling.{key}"
        if isinstance(value, str):
            w.add_string(name, value)
        elif isinstance(value, int):
            w.add_int32(name, value)
        else:
            w.add_float32(name, float(value))  # type: ignore[arg-type]
    w.add_tensor("token_embd.weight", np.ones((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_sampling_keys_become_sampler_fields(tmp_path: Path) -> None:
    path = gguf_with_sampling(
        tmp_path / "m.gguf", temp=0.6, top_p=0.95, top_k=20, penalty_repeat=1.1,
        penalty_last_n=128, min_p=3.0, sequence="top_k;top_p;temperature")
    author = md.read_author_values(path)
    assert author is not None
    assert author.source == md.GGUF_SOURCE
    # float32 0.95 is 0.949999988…: read back as the value the author wrote.
    assert dict(author.values) == {
        "temperature": 0.6, "top_p": 0.95, "top_k": 20, "repeat_penalty": 1.1,
        "repeat_last_n": 128,
        # the stages the sequence leaves out go back to their places: they are off anyway
        "order": ("penalties", "dry", "top_n_sigma", "top_k", "typical", "top_p", "min_p",
                  "xtc", "temperature"),
    }
    [skipped] = author.skipped
    assert "general.sampling.min_p = 3.0" in skipped
    assert "between 0 and 1" in skipped
    settings = author.applied_to(SamplerSettings())
    assert settings.validated().temperature == 0.6
    assert settings.min_p == SamplerSettings().min_p  # out of range: not applied


def test_a_gguf_without_sampling_keys_has_no_author_values(tmp_path: Path) -> None:
    assert md.read_author_values(write_tiny_gguf(tmp_path / "plain.gguf")) is None


def test_an_unknown_sampler_in_the_sequence_is_named_not_applied(tmp_path: Path) -> None:
    path = gguf_with_sampling(tmp_path / "m.gguf", temp=0.7, sequence="top_k;wobble")
    author = md.read_author_values(path)
    assert author is not None
    assert dict(author.values) == {"temperature": 0.7}
    assert author.skipped == ("general.sampling.sequence names unknown samplers (wobble)",)


def test_a_damaged_gguf_is_an_error_in_words(tmp_path: Path) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(b"<html>not found</html>")
    with pytest.raises(md.ModelDefaultsError, match="HTML page"):
        md.read_author_values(path)


def safetensors_folder(tmp_path: Path, config: object | None) -> Path:
    folder = tmp_path / "Qwen2.5-0.5B-Instruct"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"")
    if config is not None:
        text = config if isinstance(config, str) else json.dumps(config)
        (folder / "generation_config.json").write_text(text, encoding="utf-8")
    return folder


QWEN = {"bos_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
        "pad_token_id": 151643, "repetition_penalty": 1.05, "temperature": 0.7, "top_p": 0.8,
        "top_k": 20, "transformers_version": "4.37.0", "no_repeat_ngram_size": 3}


def test_generation_config_beside_safetensors(tmp_path: Path) -> None:
    folder = safetensors_folder(tmp_path, QWEN)
    for path in (folder, folder / "config.json", folder / "model.safetensors"):
        author = md.read_author_values(path)
        assert author is not None
        assert author.source == "generation_config.json"
        assert dict(author.values) == {"repeat_penalty": 1.05, "temperature": 0.7,
                                       "top_p": 0.8, "top_k": 20, "repeat_last_n": -1}
        assert author.skipped == ("no_repeat_ngram_size (Openlid has no such setting)",)
        assert "whole context" in author.notes[0]
    assert md.describe(author.values) == ("repeat penalty 1.05 over the whole context, "
                                          "temperature 0.7, top-p 0.8, top-k 20")


def test_do_sample_false_means_greedy(tmp_path: Path) -> None:
    author = md.read_author_values(safetensors_folder(
        tmp_path, {"do_sample": False, "temperature": 0.6, "top_p": 0.9}))
    assert author is not None
    assert author.values["temperature"] == 0.0
    assert "greedily" in author.notes[0]


@pytest.mark.parametrize("config", [None, {"bos_token_id": 1, "eos_token_id": 2}])
def test_no_sampling_values_means_none(tmp_path: Path, config: object | None) -> None:
    assert md.read_author_values(safetensors_folder(tmp_path, config)) is None


@pytest.mark.parametrize(("text", "words"), [("{temperature: 0.7", "not valid JSON"),
                                             ("[1, 2]", "does not hold a JSON object")])
def test_a_broken_generation_config_is_an_error_in_words(tmp_path: Path, text: str,
                                                         words: str) -> None:
    with pytest.raises(md.ModelDefaultsError, match=words):
        md.read_author_values(safetensors_folder(tmp_path, text))


def test_out_of_range_generation_values_are_skipped(tmp_path: Path) -> None:
    author = md.read_author_values(safetensors_folder(
        tmp_path, {"temperature": -1, "top_p": "high", "top_k": 50.0}))
    assert author is not None
    assert dict(author.values) == {"top_k": 50}
    assert len(author.skipped) == 2


def test_remote_models_have_no_author_values() -> None:
    assert md.read_author_values("remote:abc") is None


def test_a_model_without_a_chat_template_is_a_base_model() -> None:
    assert md.is_base_model("gemma3", {})
    assert md.is_base_model("llama", {"default": "  "})
    assert not md.is_base_model("llama", {"default": "{{ messages }}"})
    assert not md.is_base_model("remote", {})  # an endpoint's chat API has its own template


def test_base_model_values_in_words() -> None:
    assert md.describe(md.BASE_MODEL_VALUES) == "repeat penalty 1.15 over the last 64 tokens"
    assert SamplerSettings().replace(**md.BASE_MODEL_VALUES).validated().penalties_active


def test_differences_name_each_changed_value() -> None:
    now = SamplerSettings(temperature=0.8, top_p=0.95, stop=("\n",))
    assert md.differences(now, {"temperature": 0.6, "top_p": 0.95}, "author") == [
        "temperature 0.8 (author 0.6)"]
    assert md.differences(now, {"stop": (), "seed": 5}, "saved") == [
        "stop strings '\\n' (saved none)", "seed random (saved 5)"]
    assert md.differences(LoadSettings(n_ctx=2048), {"n_ctx": 4096}, "saved") == [
        "context length 2048 (saved 4096)"]


# --- the per-model settings file ---


def test_settings_saved_per_model_come_back(tmp_path: Path) -> None:
    store = ModelSettingsStore(tmp_path / "model_settings.json")
    assert store.get("/m/a.gguf") is None
    sampler = SamplerSettings(temperature=0.3, stop=("###",))
    saved = store.save("/m/a.gguf", sampler, LoadSettings(n_ctx=768))
    store.save("/m/b.gguf", SamplerSettings(top_k=5), None)
    again = ModelSettingsStore(tmp_path / "model_settings.json").get("/m/a.gguf")
    assert again == saved
    assert again.sampler == sampler
    assert again.load == LoadSettings(n_ctx=768)
    assert again.saved_words.startswith("saved ")
    assert store.forget("/m/a.gguf")
    assert not store.forget("/m/a.gguf")
    assert store.get("/m/a.gguf") is None
    assert store.get("/m/b.gguf").load is None  # type: ignore[union-attr]
    assert (os.stat(tmp_path / "model_settings.json").st_mode & 0o077) == 0


def test_a_damaged_settings_file_is_kept_aside_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "model_settings.json"
    path.write_text("{ half a file", encoding="utf-8")
    store = ModelSettingsStore(path)
    assert store.get("/m/a.gguf") is None
    assert "cannot be read" in store.problem
    store.save("/m/a.gguf", SamplerSettings(), None)
    assert "was kept as model_settings.json.damaged-" in store.problem
    [kept] = tmp_path.glob("model_settings.json.damaged-*")
    assert kept.read_text(encoding="utf-8") == "{ half a file"
    assert store.get("/m/a.gguf") is not None
    assert store.problem == ""


def test_a_hand_edited_wrong_value_is_refused_in_words(tmp_path: Path) -> None:
    path = tmp_path / "model_settings.json"
    entry = {"sampler": {"temperature": 0.5, "from_a_newer_version": 1}, "load": {"n_ctx": 512}}
    path.write_text(json.dumps({"version": 1, "models": {"/m/a.gguf": entry}}), encoding="utf-8")
    store = ModelSettingsStore(path)
    remembered = store.get("/m/a.gguf")
    assert remembered is not None  # unknown keys are ignored, as in any settings
    assert remembered.sampler.temperature == 0.5
    assert remembered.load == LoadSettings(n_ctx=512)
    for bad in ({"sampler": {"temperature": 9}}, {"sampler": {}, "load": {"n_ctx": [1]}}):
        path.write_text(json.dumps({"version": 1, "models": {"/m/a.gguf": bad}}),
                        encoding="utf-8")
        assert store.get("/m/a.gguf") is None
        assert "saved settings for a.gguf" in store.problem
        assert "not applied" in store.problem
