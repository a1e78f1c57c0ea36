"""Sampler settings: the knobs that reshape the next-token distribution.

Pure data, used in every process: the GUI edits it, the CLI parses it, the engine worker turns it
into llama.cpp's own samplers. Stage names here are the names a `StepRecord` reports.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Chain stages a user can order. "raw" (the softmax of the logits) always comes first and the
# draw always comes last, so neither is part of the order.
STAGE_PENALTIES = "penalties"
STAGE_TOP_K = "top_k"
STAGE_TYPICAL = "typical"
STAGE_TOP_P = "top_p"
STAGE_MIN_P = "min_p"
STAGE_TEMPERATURE = "temperature"
STAGE_MIROSTAT = "mirostat"
STAGE_RAW = "raw"

ORDERABLE_STAGES: tuple[str, ...] = (
    STAGE_PENALTIES,
    STAGE_TOP_K,
    STAGE_TYPICAL,
    STAGE_TOP_P,
    STAGE_MIN_P,
    STAGE_TEMPERATURE,
)
# llama.cpp's default order (common/sampling): penalties first, temperature last, so the
# truncation samplers see the model's own probabilities.
DEFAULT_ORDER: tuple[str, ...] = ORDERABLE_STAGES

MAX_TOP_N = 500


class SettingsError(ValueError):
    """A sampler or load setting is out of range; the message says which and why."""


@dataclass(frozen=True)
class SamplerSettings:
    """Every sampling parameter. Defaults follow llama.cpp's (neutral penalties)."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat: int = 0  # 0 off, 1 = Mirostat v1, 2 = Mirostat v2 (replace top-k/typical/top-p/min-p)
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    seed: int = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a fresh random seed each run
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    order: tuple[str, ...] = DEFAULT_ORDER
    top_n: int = 50  # how many candidates of each stage a StepRecord carries
    ignore_eos: bool = False  # keep going past end-of-generation tokens (benchmarks)

    def validated(self) -> SamplerSettings:
        """Return self, or raise SettingsError naming the first bad field."""
        checks: list[tuple[bool, str]] = [
            (self.temperature >= 0, "temperature must be ≥ 0 (0 means greedy)"),
            (self.top_k >= 0, "top_k must be ≥ 0 (0 turns it off)"),
            (0 <= self.top_p <= 1, "top_p must be between 0 and 1"),
            (0 <= self.min_p <= 1, "min_p must be between 0 and 1"),
            (0 < self.typical_p <= 1, "typical_p must be in (0, 1] (1 turns it off)"),
            (self.repeat_penalty > 0, "repeat_penalty must be > 0 (1 turns it off)"),
            (self.repeat_last_n >= -1, "repeat_last_n must be ≥ -1 (-1 = whole context)"),
            (self.mirostat in (0, 1, 2), "mirostat must be 0, 1 or 2"),
            (self.max_tokens >= 1, "max_tokens must be ≥ 1"),
            (1 <= self.top_n <= MAX_TOP_N, f"top_n must be between 1 and {MAX_TOP_N}"),
            (0 <= self.seed <= 0xFFFFFFFF, "seed must fit in 32 bits"),
            (all(s for s in self.stop), "stop strings must not be empty"),
            (
                sorted(self.order) == sorted(ORDERABLE_STAGES),
                f"order must list each of {', '.join(ORDERABLE_STAGES)} exactly once",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0 and self.mirostat == 0

    @property
    def penalties_active(self) -> bool:
        return (
            self.repeat_penalty != 1.0
            or self.presence_penalty != 0.0
            or self.frequency_penalty != 0.0
        ) and self.repeat_last_n != 0

    def replace(self, **changes: Any) -> SamplerSettings:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["stop"] = list(self.stop)
        data["order"] = list(self.order)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SamplerSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("stop", "order"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


PRESETS: dict[str, SamplerSettings] = {
    "Precise": SamplerSettings(temperature=0.2, top_k=20, top_p=0.9, min_p=0.1),
    "Balanced": SamplerSettings(),
    "Creative": SamplerSettings(temperature=1.1, top_k=100, top_p=0.98, min_p=0.02),
    "Greedy": SamplerSettings(temperature=0.0),
}

