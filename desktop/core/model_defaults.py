"""A model's recommended sampler values: its author's, and Openlid's rule for base models.

- `read_author_values(path)`: what the model's author recommends, read from the files that come
  with it: `generation_config.json` beside a transformers (safetensors) model, or a GGUF file's
  `general.sampling.*` keys (llama.cpp writes them from the same source). Each value is mapped
  onto its `SamplerSettings` field and checked against the registry's range; what cannot be
  used is named in `AuthorValues.skipped`, never silently dropped.
- `is_base_model(architecture, chat_templates)`: a model without a chat template is a base
  model: it continues text. `BASE_MODEL_VALUES` is what Openlid gives one (a repeat penalty
  that stops the ready Gemma from looping; `tests/engine/test_model_defaults.py` checks it).
- `describe` and `differences` put values and their difference from the panel in words.

Pure; the files are read with bounded sizes. Call `read_author_values` off the GUI thread (a
GGUF's metadata is read through its vocabulary).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.gguf_file.reader import GgufProblem, parse_file
from desktop.core.sampler_stages import (
    PARAM_BY_FIELD,
    RANDOM_SEED,
    SAMPLER_NAMES,
    complete_order,
    stage_label,
)
from desktop.core.sampling import SamplerSettings

__all__ = [
    "BASE_MODEL_NOTE", "BASE_MODEL_VALUES", "GENERATION_CONFIG", "GGUF_SOURCE", "AuthorValues",
    "ModelDefaultsError", "author_values_from_gguf", "describe", "differences", "is_base_model",
    "read_author_values", "value_words",
]

GENERATION_CONFIG = "generation_config.json"
GGUF_SOURCE = "GGUF general.sampling.* keys"
# Greedy Gemma 3 270M (base) falls into a loop within ~40 tokens of a plain prompt; a penalty of
# 1.15 over the last 64 tokens breaks it (measured by tests/engine/test_model_defaults.py).
BASE_MODEL_VALUES: Mapping[str, Any] = {"repeat_penalty": 1.15, "repeat_last_n": 64}
BASE_MODEL_NOTE = "Openlid's default for base models"
_MAX_CONFIG_BYTES = 1 << 20  # real generation_config.json files are a few hundred bytes

# generation_config.json (transformers' GenerationConfig) → SamplerSettings.
_HF_KEYS = {
    "temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
    "typical_p": "typical_p", "repetition_penalty": "repeat_penalty",
}
# Keys of a generation_config.json that say nothing about sampling: not worth a word.
_HF_QUIET = {
    "bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id",
    "transformers_version", "_from_model_config", "cache_implementation", "do_sample",
    "max_length", "max_new_tokens", "use_cache", "num_beams", "num_return_sequences",
    "output_attentions", "output_hidden_states", "return_dict_in_generate", "trust_remote_code",
}
# general.sampling.* (llama.cpp's model-embedded defaults) → SamplerSettings.
_GGUF_KEYS = {
    "temp": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
    "xtc_probability": "xtc_probability", "xtc_threshold": "xtc_threshold",
    "penalty_last_n": "repeat_last_n", "penalty_repeat": "repeat_penalty",
    "mirostat": "mirostat", "mirostat_tau": "mirostat_tau", "mirostat_eta": "mirostat_eta",
}
_GGUF_PREFIX = "general.sampling."


class ModelDefaultsError(Exception):
    """The model's own settings file exists but cannot be read; the text says why."""


@dataclass(frozen=True)
class AuthorValues:
    """The author's recommended sampler values for one model, as read from `source`."""

    source: str  # "generation_config.json" or GGUF_SOURCE
    values: Mapping[str, Any]  # SamplerSettings field → value, each within its range
    skipped: tuple[str, ...] = ()  # what was read but not applied, in words
    notes: tuple[str, ...] = field(default=())  # how a value was read, in words

    def applied_to(self, settings: SamplerSettings) -> SamplerSettings:
        return settings.replace(**self.values)


def is_base_model(architecture: str, chat_templates: Mapping[str, str]) -> bool:
    """A local model with no chat template continues text rather than answers turns. A remote
    endpoint has a chat API whatever it reports, so it is never a base model here."""
    return architecture != "remote" and not any(t.strip() for t in chat_templates.values())


def read_author_values(path: str | os.PathLike[str]) -> AuthorValues | None:
    """The author's recommended values for the model at `path` (a .gguf file, a transformers
    folder, or its config.json or a .safetensors shard); None when the model has none.

    Raises `ModelDefaultsError` when a file that should hold them cannot be read."""
    p = Path(path)
    if str(path).startswith("remote:"):
        return None
    if p.suffix.lower() == ".gguf":
        return _from_gguf(p)
    folder = p if p.is_dir() else p.parent
    config = folder / GENERATION_CONFIG
    if p.is_dir() or p.name == "config.json" or p.suffix == ".safetensors":
        return _from_generation_config(config) if config.is_file() else None
    return None


def _from_gguf(path: Path) -> AuthorValues | None:
    try:
        kvs = parse_file(str(path)).kvs
    except GgufProblem as exc:
        raise ModelDefaultsError(str(exc)) from exc
    except OSError as exc:
        raise ModelDefaultsError(f"'{path}' could not be read: {exc.strerror or exc}.") from exc
    return author_values_from_gguf({k: kv.value for k, kv in kvs.items()
                                    if k.startswith(_GGUF_PREFIX)})


def author_values_from_gguf(metadata: Mapping[str, object]) -> AuthorValues | None:
    """The author's values among a GGUF file's metadata (key → value, as `GgufReport.metadata`
    holds it); None when it has no `general.sampling.*` key."""
    raw = {k.removeprefix(_GGUF_PREFIX): v for k, v in metadata.items()
           if k.startswith(_GGUF_PREFIX)}
    if not raw:
        return None
    values: dict[str, Any] = {}
    skipped: list[str] = []
    for key, value in raw.items():
        if key == "sequence":
            order, problem = _order(value)
            if problem:
                skipped.append(problem)
            else:
                values["order"] = order
            continue
        name = _GGUF_KEYS.get(key)
        if name is None:
            skipped.append(f"{_GGUF_PREFIX}{key} (Openlid has no such setting)")
            continue
        _take(values, skipped, name, value, f"{_GGUF_PREFIX}{key}")
    return AuthorValues(GGUF_SOURCE, values, tuple(skipped))


def _order(value: Any) -> tuple[tuple[str, ...], str]:
    """llama.cpp's sampler sequence ("penalties;top_k;…") as a stage order, or why not."""
    if not isinstance(value, str) or not value.strip():
        return (), f"{_GGUF_PREFIX}sequence is not a list of sampler names"
    names = [n.strip().lower() for n in value.replace(",", ";").split(";") if n.strip()]
    unknown = [n for n in names if n not in SAMPLER_NAMES]
    if unknown:
        return (), f"{_GGUF_PREFIX}sequence names unknown samplers ({', '.join(unknown)})"
    return complete_order(SAMPLER_NAMES[n] for n in names), ""


def _from_generation_config(config: Path) -> AuthorValues | None:
    try:
        with config.open("rb") as f:
            data = f.read(_MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ModelDefaultsError(f"{config} could not be read: {exc.strerror or exc}.") from exc
    if len(data) > _MAX_CONFIG_BYTES:
        raise ModelDefaultsError(f"{config} is larger than 1 MB, which no generation config is; "
                                 "it was not read.")
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelDefaultsError(f"{config} is not valid JSON ({exc}); the author's values "
                                 "were not read.") from exc
    if not isinstance(parsed, dict):
        raise ModelDefaultsError(f"{config} does not hold a JSON object; the author's values "
                                 "were not read.")
    values: dict[str, Any] = {}
    skipped: list[str] = []
    notes: list[str] = []
    for key, value in parsed.items():
        name = _HF_KEYS.get(key)
        if name is not None:
            _take(values, skipped, name, value, key)
        elif key not in _HF_QUIET and not key.startswith("_") and value not in (None, False):
            skipped.append(f"{key} (Openlid has no such setting)")
    if "repeat_penalty" in values:
        # transformers applies its repetition penalty to every earlier token.
        values["repeat_last_n"] = -1
        notes.append("repetition_penalty covers the whole context, as in transformers")
    if parsed.get("do_sample") is False and values:
        # transformers then decodes greedily and ignores the sampling values.
        values["temperature"] = 0.0
        notes.append("do_sample is false: transformers decodes greedily (temperature 0)")
    if not values and not skipped:
        return None
    return AuthorValues(GENERATION_CONFIG, values, tuple(skipped), tuple(notes))


def _take(values: dict[str, Any], skipped: list[str], name: str, value: Any, key: str) -> None:
    """Check one value against its knob's range; keep it, or say why it was left out."""
    param = PARAM_BY_FIELD[name]
    if param.is_int and isinstance(value, float) and value.is_integer():
        value = int(value)
    elif not param.is_int and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, float) and math.isfinite(value):
        value = round(value, 6)  # float32 in GGUF: 0.95 is stored as 0.949999988079071
    problem = param.problem(value)
    if problem:
        skipped.append(f"{key} = {value!r} ({problem})")
    else:
        values[name] = value


# --- in words ---


_OTHER_LABELS = {
    "order": "order", "stop": "stop strings", "seed": "seed", "ignore_eos": "ignore end-of-text",
    "n_gpu_layers": "GPU layers", "n_ctx": "context length", "n_threads": "threads",
    "n_batch": "batch size", "flash_attn": "flash attention", "use_mmap": "mmap",
    "use_mlock": "mlock", "kv_cache_type": "KV cache type",
}


def _label(name: str) -> str:
    param = PARAM_BY_FIELD.get(name)
    if param is None:
        return _OTHER_LABELS.get(name, name.replace("_", " "))
    label = param.label
    return label if label[:2].isupper() else label[0].lower() + label[1:]


def value_words(name: str, value: Any) -> str:
    """One value as the panel would show it: 0.6, 1.15, "whole context", "top-k → top-p"."""
    if name == "order":
        return " → ".join(stage_label(s) for s in value)
    if name == "repeat_last_n" and value == -1:
        return "whole context"
    if name == "mirostat":
        return {0: "off", 1: "v1", 2: "v2"}.get(value, str(value))
    if name == "seed" and value == RANDOM_SEED:
        return "random"
    if isinstance(value, tuple | list):
        return ", ".join(repr(v) for v in value) if value else "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def describe(values: Mapping[str, Any]) -> str:
    """"temperature 0.6, top-p 0.95"; the penalty window said with the penalty it is for."""
    parts = []
    for name, value in values.items():
        if name == "repeat_last_n" and "repeat_penalty" in values:
            continue
        text = f"{_label(name)} {value_words(name, value)}"
        if name == "repeat_penalty" and "repeat_last_n" in values:
            window = values["repeat_last_n"]
            text += (" over the whole context" if window == -1
                     else f" over the last {window} tokens")
        parts.append(text)
    return ", ".join(parts)


def differences(current: Any, reference: Mapping[str, Any], what: str) -> list[str]:
    """Each field where `current` (settings of any dataclass) differs from `reference`, as
    "temperature 0.8 (author 0.6)"; `what` names the reference ("author", "saved")."""
    out = []
    for name, wanted in reference.items():
        have = getattr(current, name, None)
        if have is None or have == wanted:
            continue
        out.append(f"{_label(name)} {value_words(name, have)} ({what} "
                   f"{value_words(name, wanted)})")
    return out
