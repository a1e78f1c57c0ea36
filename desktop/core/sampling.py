"""Sampler settings: the knobs that reshape the next-token distribution.

Pure data, used in every process: the GUI edits it, the CLI parses it, the engine worker turns it
into llama.cpp's own samplers. What each field means, its range and default, and which stage it
belongs to are in `sampler_stages` (the registry); this class holds the values, checks them
against the registry, and reads settings saved by older versions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from desktop.core.sampler_stages import (
    DEFAULT_ORDER,
    MAX_TOP_N,
    ORDERABLE_STAGES,
    PARAM_BY_FIELD,
    RANDOM_SEED,
    STAGE_DRY,
    STAGE_GRAMMAR,
    STAGE_MIN_P,
    STAGE_MIROSTAT,
    STAGE_PENALTIES,
    STAGE_RAW,
    STAGE_TEMPERATURE,
    STAGE_TOP_K,
    STAGE_TOP_N_SIGMA,
    STAGE_TOP_P,
    STAGE_TYPICAL,
    STAGE_XTC,
    complete_order,
    order_problem,
    stage_noop,
)
from desktop.core.structured_output import settings_problem

# Stage names, the default order and the ranges live in `sampler_stages`; they are re-exported
# here for the modules that only need the settings.
__all__ = [
    "DEFAULT_ORDER", "MAX_TOP_N", "ORDERABLE_STAGES", "PRESETS", "STAGE_DRY", "STAGE_GRAMMAR",
    "STAGE_MIN_P", "STAGE_MIROSTAT", "STAGE_PENALTIES", "STAGE_RAW", "STAGE_TEMPERATURE",
    "STAGE_TOP_K",
    "STAGE_TOP_N_SIGMA", "STAGE_TOP_P", "STAGE_TYPICAL", "STAGE_XTC", "SamplerSettings",
    "SettingsError",
]


class SettingsError(ValueError):
    """A sampler or load setting is out of range; the message says which and why."""


def _default(field: str) -> Any:
    return PARAM_BY_FIELD[field].default


@dataclass(frozen=True)
class SamplerSettings:
    """Every sampling parameter. Defaults follow llama.cpp's (neutral penalties, DRY, XTC,
    top-n-sigma and dynamic temperature); each range is in `sampler_stages`."""

    temperature: float = _default("temperature")
    top_k: int = _default("top_k")
    top_p: float = _default("top_p")
    min_p: float = _default("min_p")
    typical_p: float = _default("typical_p")
    repeat_penalty: float = _default("repeat_penalty")
    repeat_last_n: int = _default("repeat_last_n")
    presence_penalty: float = _default("presence_penalty")
    frequency_penalty: float = _default("frequency_penalty")
    mirostat: int = 0  # 0 off, 1 = Mirostat v1, 2 = Mirostat v2 (after temperature, alone)
    mirostat_tau: float = _default("mirostat_tau")
    mirostat_eta: float = _default("mirostat_eta")
    seed: int = RANDOM_SEED  # a fresh random seed each run
    max_tokens: int = _default("max_tokens")
    stop: tuple[str, ...] = ()
    order: tuple[str, ...] = DEFAULT_ORDER
    top_n: int = _default("top_n")  # how many candidates of each stage a StepRecord carries
    ignore_eos: bool = False  # keep going past end-of-generation tokens (benchmarks)
    dry_multiplier: float = _default("dry_multiplier")
    dry_base: float = _default("dry_base")
    dry_allowed_length: int = _default("dry_allowed_length")
    dry_penalty_last_n: int = _default("dry_penalty_last_n")
    dry_sequence_breakers: tuple[str, ...] = _default("dry_sequence_breakers")
    top_n_sigma: float = _default("top_n_sigma")
    xtc_probability: float = _default("xtc_probability")
    xtc_threshold: float = _default("xtc_threshold")
    dynatemp_range: float = _default("dynatemp_range")
    dynatemp_exponent: float = _default("dynatemp_exponent")
    # Structured output (core.structured_output): "none", "json" (any JSON object),
    # "json_schema" (the schema text below) or "gbnf" (the grammar text below). Both texts are
    # kept whichever kind is chosen, so switching kinds loses nothing the person wrote.
    structured_output: str = "none"
    json_schema: str = ""
    grammar: str = ""

    def validated(self) -> SamplerSettings:
        """Return self, or raise SettingsError naming the first bad field."""
        for f in dataclasses.fields(self):
            param = PARAM_BY_FIELD.get(f.name)
            problem = param.problem(getattr(self, f.name)) if param is not None else ""
            if problem:
                raise SettingsError(problem)
        if not all(isinstance(s, str) and s for s in self.stop):
            raise SettingsError("stop strings must not be empty")
        if not all(isinstance(s, str) and s for s in self.dry_sequence_breakers):
            raise SettingsError("dry_sequence_breakers must be non-empty texts")
        problem = (settings_problem(self.structured_output, self.json_schema, self.grammar)
                   or order_problem(tuple(self.order), self))
        if problem:
            raise SettingsError(problem)
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0 and self.dynatemp_range == 0 and self.mirostat == 0

    @property
    def penalties_active(self) -> bool:
        return not stage_noop(STAGE_PENALTIES, self)

    def is_on(self, stage: str) -> bool:
        """Whether a stage changes anything with these settings (Mirostat replaces the chain:
        with it on, only temperature runs before it, as in llama.cpp)."""
        if stage == STAGE_MIROSTAT:
            return self.mirostat != 0
        if stage == STAGE_GRAMMAR:  # runs before Mirostat's chain too
            return self.structured_output != "none"
        if self.mirostat and stage != STAGE_TEMPERATURE:
            return False
        return not stage_noop(stage, self)

    def replace(self, **changes: Any) -> SamplerSettings:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SamplerSettings:
        """Settings saved by any version: unknown keys are ignored, missing ones take their
        defaults, and an order saved before a stage existed gets it at its default place."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key, value in list(values.items()):
            if isinstance(value, list):
                values[key] = tuple(value)
        if isinstance(values.get("order"), tuple):
            values["order"] = complete_order(values["order"])
        return cls(**values)


PRESETS: dict[str, SamplerSettings] = {
    "Precise": SamplerSettings(temperature=0.2, top_k=20, top_p=0.9, min_p=0.1),
    "Balanced": SamplerSettings(),
    "Creative": SamplerSettings(temperature=1.1, top_k=100, top_p=0.98, min_p=0.02),
    "Greedy": SamplerSettings(temperature=0.0),
}

