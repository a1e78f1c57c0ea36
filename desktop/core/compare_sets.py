"""Setting sets for Compare: `"temperature=0.2,top_p=0.9"` read into `SamplerSettings`, and a
set written back as such a spec or described in words.

Pure; runs on whichever thread calls it (the CLI's main thread, the GUI thread). The names a spec
may use come from the stage registry (`sampler_stages`): each numeric knob's field name, its
kebab-case and no-dash spellings, its request names (OpenAI / llama-server, e.g.
`repetition_penalty`) and its stage's aliases (`temp`). Values are checked by
`SamplerSettings.validated`, so a spec accepts exactly what the panel and the server accept; a
bad key or value is a `SettingsError` that names it.
"""

from __future__ import annotations

import difflib
from typing import Any

from desktop.core.sampler_stages import ALL_PARAMS, RANDOM_SEED, STAGES, Param
from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.core.structured_output import KIND_LABELS, NONE

# The knobs a spec can set: every number (stop strings, the order and DRY's breakers are texts,
# set for all sets at once). Order: the registry's, so specs and descriptions read alike.
SPEC_PARAMS: tuple[Param, ...] = tuple(p for p in ALL_PARAMS if p.is_number)
_NOT_NUMBERS = ("stop", "order", "dry_sequence_breakers", "ignore_eos")
# Always named in a description: the knobs people compare most.
MAIN_FIELDS = ("temperature", "top_k", "top_p", "min_p")
_SHORT = {"temperature": "T", "top_k": "top-k", "top_p": "top-p", "min_p": "min-p"}


def _spellings(name: str) -> tuple[str, ...]:
    low = name.lower()
    return (low, low.replace("_", "-"), low.replace("_", "").replace("-", ""))


def _build_keys() -> dict[str, str]:
    keys: dict[str, str] = {}
    for p in SPEC_PARAMS:
        for name in (p.field, *p.api):
            for spelling in _spellings(name):
                keys.setdefault(spelling, p.field)
    for stage in STAGES:
        primary = stage.params[0]
        if primary.is_number:  # "temp=0.5" as llama.cpp's --temp; "nucleus=0.9"
            for alias in stage.aliases:
                for spelling in _spellings(alias):
                    keys.setdefault(spelling, primary.field)
    return keys


KEYS: dict[str, str] = _build_keys()
_PARAM = {p.field: p for p in SPEC_PARAMS}


def field_for(key: str) -> str | None:
    """The SamplerSettings field a spec key names ("top-p" → "top_p"), or None."""
    return KEYS.get(key.strip().lower())


def _number(param: Param, text: str) -> int | float:
    words = text.strip()
    if param.field == "seed" and words.lower() in ("random", "-1"):
        return RANDOM_SEED
    try:
        value = float(words)
    except ValueError:
        kind = "a whole number" if param.is_int else "a number"
        raise SettingsError(f"{param.field} must be {kind}, not {words!r}") from None
    if not param.is_int:
        return value
    if not value.is_integer():
        raise SettingsError(f"{param.field} must be a whole number, not {words!r}")
    return int(value)


def _unknown(key: str) -> SettingsError:
    low = key.strip().lower()
    if low.replace("-", "_") in _NOT_NUMBERS:
        return SettingsError(f"{low} cannot be set per set: a set takes number knobs only "
                             f"(temperature, top_k, top_p, …); stop strings and the order "
                             f"apply to every set")
    near = difflib.get_close_matches(low, list(KEYS), n=1, cutoff=0.75)
    if near:
        return SettingsError(f"unknown setting {key.strip()!r} (did you mean {KEYS[near[0]]}?)")
    return SettingsError(f"unknown setting {key.strip()!r}; the settings are "
                         + ", ".join(p.field for p in SPEC_PARAMS))


def parse_set(spec: str, base: SamplerSettings | None = None) -> SamplerSettings:
    """`base` with the knobs `spec` names changed, validated.

    `spec` is `name=value` pairs separated by commas (or semicolons): `"temperature=0.2,top_p=0.9"`.
    An empty spec is `base` itself. Raises SettingsError naming the spec and what is wrong in it.
    """
    base = base if base is not None else SamplerSettings()
    values: dict[str, Any] = {}
    try:
        for part in spec.replace(";", ",").split(","):
            if not part.strip():
                continue
            key, eq, text = part.partition("=")
            if not eq or not key.strip():
                raise SettingsError(f"{part.strip()!r} is not name=value")
            name = field_for(key)
            if name is None:
                raise _unknown(key)
            if name in values:
                raise SettingsError(f"{name} is given twice")
            if not text.strip():
                raise SettingsError(f"{name} has no value")
            values[name] = _number(_PARAM[name], text)
        return base.replace(**values).validated()
    except SettingsError as exc:
        raise SettingsError(f"set {spec.strip()!r}: {exc}") from None


def _format(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def spec_of(settings: SamplerSettings, base: SamplerSettings | None = None) -> str:
    """The spec that turns `base` into `settings` (number knobs only; "" when none differ)."""
    base = base if base is not None else SamplerSettings()
    return ",".join(f"{p.field}={_format(getattr(settings, p.field))}" for p in SPEC_PARAMS
                    if getattr(settings, p.field) != getattr(base, p.field))


def describe(settings: SamplerSettings) -> str:
    """A set in words: "T 0.2 · top-k 40 · top-p 0.95 · min-p 0.05", then every other stage knob
    that differs from its default ("repeat penalty 1.1"), and the grammar a structured output
    holds it to ("grammar: Any JSON"). The seed is not part of it."""
    parts = [f"{_SHORT[f]} {_format(getattr(settings, f))}" for f in MAIN_FIELDS]
    for p in SPEC_PARAMS:
        if p.field in MAIN_FIELDS or p.field in ("seed", "max_tokens", "top_n"):
            continue
        value = getattr(settings, p.field)
        if value != p.default:
            parts.append(f"{p.label.lower()} {_format(value)}")
    if settings.structured_output != NONE:  # it shapes every set's text: never left unsaid
        parts.append(f"grammar: {KIND_LABELS[settings.structured_output]}")
    return " · ".join(parts)


def set_label(index: int) -> str:
    """A set's name in a comparison: A, B, … Z, then S27, S28…"""
    return chr(ord("A") + index) if index < 26 else f"S{index + 1}"
