"""`Generation`: one reply as it was really made — the settings sent, the steps, the finish.

Pure (no Qt, no engine): the GUI builds one when it sends a request and owns it on its thread;
a stored reply, an imported conversation or a served request rebuild the same value from what
was saved (`Generation.saved`). The chart header, its cut lines, the inspector, the transcript,
the timeline, the status bar and the store all read the settings from here, never from the
Sampling panel, which may have changed since.

What is fixed when the request is sent: the request id, the exact `SamplerSettings` (a random
seed resolved to the number actually used, so it can be stored and replayed), the model, and the
steps taken over from an earlier reply ("continue with this token" keeps the forced prefix's own
records). Steps are appended in batches as they arrive; each is a frozen `StepRecord`, so a step
once added never changes. Which settings a step was sampled with is `settings_at(step)`: a reply
continued under other settings has one `SettingsSpan` per part.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from desktop.core.sampler_stages import (
    PARAM_BY_FIELD,
    RANDOM_SEED,
    STAGE_BY_NAME,
    STAGE_MIROSTAT,
    STAGE_TEMPERATURE,
)
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, StepRecord
from desktop.core.structured_output import KIND_LABELS, NONE

__all__ = ["Generation", "ModelRef", "SettingsSpan", "resolve_seed", "sampled_with",
           "spans_from_meta", "spans_to_meta"]

MAX_SEED = 0x7FFFFFFF  # a drawn seed stays a positive 32-bit number, below the random marker


def resolve_seed(settings: SamplerSettings,
                 draw: Callable[[int], int] = secrets.randbelow) -> SamplerSettings:
    """`settings` with a "random" seed replaced by a concrete one, drawn now: the engine then
    samples with a seed that can be stored, shown and used again to reproduce the reply."""
    if settings.seed != RANDOM_SEED:
        return settings
    return settings.replace(seed=draw(MAX_SEED) + 1)


def _number(value: float, decimals: int) -> str:
    # At least two decimals ("0.20", "0.95"), more only where the knob has them and they matter
    # (min-p 0.005 stays, 0.050 reads 0.05).
    text = f"{value:.{max(decimals, 2)}f}"
    while text.endswith("0") and len(text.split(".")[1]) > 2:
        text = text[:-1]
    return text


def _value(field: str, settings: SamplerSettings) -> str:
    param = PARAM_BY_FIELD[field]
    value = getattr(settings, field)
    return str(value) if param.is_int else _number(float(value), param.decimals)


def _stage_words(name: str, s: SamplerSettings) -> str:
    """One stage of the chain with its values, as the chart header names it."""
    label = STAGE_BY_NAME[name].label
    if name == "penalties":
        parts = [f"repeat {_value('repeat_penalty', s)}"]
        if s.presence_penalty:
            parts.append(f"presence {_value('presence_penalty', s)}")
        if s.frequency_penalty:
            parts.append(f"frequency {_value('frequency_penalty', s)}")
        window = "whole context" if s.repeat_last_n < 0 else f"last {s.repeat_last_n}"
        return f"{label} {', '.join(parts)} ({window})"
    if name == "dry":
        return (f"{label} ×{_value('dry_multiplier', s)} base {_value('dry_base', s)} "
                f"after {s.dry_allowed_length}")
    if name == "xtc":
        return f"{label} {_value('xtc_probability', s)} ≥ {_value('xtc_threshold', s)}"
    if name == STAGE_MIROSTAT:
        version = "v2" if s.mirostat == 2 else "v1"
        return (f"{label} {version} τ {_value('mirostat_tau', s)} "
                f"η {_value('mirostat_eta', s)}")
    params = STAGE_BY_NAME[name].params
    return f"{label} {_value(params[0].field, s)}"


def sampled_with(settings: SamplerSettings | None) -> str:
    """What a step was sampled with, in words from the stage registry:
    "T 0.20 · top-k 40 · top-p 0.95 · min-p 0.05 · seed 1234".

    Temperature comes first (it is what people tune), then every other stage the settings turn
    on, in chain order, then the seed. None: the settings were not recorded."""
    if settings is None:
        return "settings not recorded"
    if settings.greedy:
        words = ["greedy (T 0)"]
    else:
        temp = f"T {_value('temperature', settings)}"
        if settings.dynatemp_range > 0:
            temp += f" ± {_value('dynatemp_range', settings)}"
        words = [temp]
    chain = (STAGE_MIROSTAT,) if settings.mirostat else settings.order
    words += [_stage_words(name, settings) for name in chain
              if name != STAGE_TEMPERATURE and name in STAGE_BY_NAME and settings.is_on(name)]
    if settings.structured_output != NONE:  # the grammar masks tokens before every cut
        words.insert(1, f"grammar: {KIND_LABELS[settings.structured_output]}")
    words.append("seed random (not recorded)" if settings.seed == RANDOM_SEED
                 else f"seed {settings.seed}")
    return " · ".join(words)


@dataclass(frozen=True)
class ModelRef:
    """The model a reply was generated with: its name as shown, and its file (or entry)."""

    name: str = ""
    path: str = ""


@dataclass(frozen=True)
class SettingsSpan:
    """Steps from `start` on were sampled with `settings` (None: not recorded)."""

    start: int
    settings: SamplerSettings | None


def _settings_of(data: Any, seed: Any = None) -> SamplerSettings | None:
    """Saved settings (a `to_json` dict), with the stored seed when it is a concrete one;
    None when they are missing or damaged (an old or hand-edited file)."""
    if not isinstance(data, dict):
        return None
    try:
        settings = SamplerSettings.from_json(data)
    except (TypeError, ValueError):
        return None
    if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < RANDOM_SEED:
        settings = settings.replace(seed=seed)
    return settings


def spans_from_meta(meta: Mapping[str, Any] | None) -> tuple[SettingsSpan, ...]:
    """The settings spans a stored reply's meta records: `sampler_spans` when a reply was made
    in parts, else its one `sampler` (and `seed`) from step 0."""
    meta = meta or {}
    spans: list[SettingsSpan] = []
    raw = meta.get("sampler_spans")
    if isinstance(raw, list):
        for item in raw:
            if not isinstance(item, dict):
                continue
            start = item.get("start")
            if isinstance(start, int) and not isinstance(start, bool) and start >= 0:
                spans.append(SettingsSpan(start, _settings_of(item.get("sampler"),
                                                              item.get("seed"))))
    if not spans:
        spans.append(SettingsSpan(0, _settings_of(meta.get("sampler"), meta.get("seed"))))
    spans.sort(key=lambda span: span.start)
    return tuple(spans)


def spans_to_meta(spans: Sequence[SettingsSpan]) -> list[dict[str, Any]]:
    """`sampler_spans` as stored: each part's first step, settings and seed."""
    return [{"start": span.start,
             "sampler": span.settings.to_json() if span.settings is not None else None,
             "seed": span.settings.seed if span.settings is not None else None}
            for span in spans]


class Generation:
    """One reply: what was asked for, each step as it came, and how it ended.

    Built when a request is sent (`live`) or from what was stored (`saved`). Owned by one
    object on one thread (the GUI's `GenerationTracker`, or the store's caller); not shared
    across threads while steps are still being added.
    """

    def __init__(self, request_id: int, settings: SamplerSettings | None, *,
                 kind: str = "chat", model: ModelRef | None = None,
                 prompt_tokens: tuple[int, ...] = (),
                 steps: Iterable[StepRecord] = (),
                 spans: Sequence[SettingsSpan] = (),
                 done: GenerationDone | None = None,
                 message_id: int | None = None,
                 template_id: str = "") -> None:
        self.request_id = request_id
        self.settings = settings  # what this request was sent with (its last span)
        self.kind = kind  # "chat", "completion", "stored" or "served"
        self.model = model or ModelRef()
        self.prompt_tokens = prompt_tokens  # the tokens before step 0 (replay needs them)
        self.template_id = template_id
        self.message_id = message_id  # the stored reply, once saved (or when read back)
        self.done = done
        self.failure = ""  # why it ended without a GenerationDone (engine error, crash)
        self.finish_reason = ""  # a stored reply's, when rebuilt (a live one has `done`)
        self._steps: list[StepRecord] = list(steps)
        self._offset = len(self._steps)  # steps taken over: the engine numbers from 0 after
        self.spans: tuple[SettingsSpan, ...] = (tuple(spans) if spans
                                                else (SettingsSpan(0, settings),))

    # --- building ---

    @classmethod
    def live(cls, request_id: int, settings: SamplerSettings, *, kind: str = "chat",
             model: ModelRef | None = None, prompt_tokens: tuple[int, ...] = (),
             prefix: Sequence[StepRecord] = (), prefix_spans: Sequence[SettingsSpan] = (),
             template_id: str = "") -> Generation:
        """A request just sent with `settings` (its seed already resolved). `prefix`: steps
        taken over from an earlier reply, sampled under `prefix_spans`; they went to the
        engine at the end of `prompt_tokens`, and its steps follow them, renumbered."""
        before = [span for span in prefix_spans if span.start < len(prefix)] if prefix else []
        if prefix and not before:
            before = [SettingsSpan(0, None)]
        spans = (*before, SettingsSpan(len(prefix), settings))
        gen = cls(request_id, settings, kind=kind, model=model, steps=prefix, spans=spans,
                  template_id=template_id)
        gen.prompt_tokens = gen._reply_prompt(prompt_tokens)
        return gen

    def _reply_prompt(self, engine_prompt: tuple[int, ...]) -> tuple[int, ...]:
        # The engine's prompt holds the taken-over prefix at its end; the reply's prompt is
        # what comes before its step 0.
        if not self._offset:
            return engine_prompt
        return engine_prompt[:max(len(engine_prompt) - self._offset, 0)] if engine_prompt else ()

    @classmethod
    def saved(cls, meta: Mapping[str, Any] | None, steps: Iterable[StepRecord], *,
              message_id: int | None = None, kind: str = "stored") -> Generation:
        """A stored (or imported) reply rebuilt from its meta and steps: the settings it was
        sampled with, its model and its finish reason."""
        meta = meta or {}
        spans = spans_from_meta(meta)
        model = ModelRef(str(meta.get("model_name") or ""), str(meta.get("model_path") or ""))
        gen = cls(0, spans[-1].settings, kind=kind, model=model, steps=steps, spans=spans,
                  message_id=message_id, template_id=str(meta.get("template_id") or ""))
        gen.finish_reason = str(meta.get("finish_reason") or "stored")
        return gen

    def extend(self, records: Iterable[StepRecord]) -> tuple[StepRecord, ...]:
        """Append a batch of the engine's steps (numbered after any taken-over prefix);
        returns them as stored."""
        offset = self._offset
        added = tuple(dataclasses.replace(r, step=r.step + offset) if offset else r
                      for r in records)
        self._steps.extend(added)
        return added

    def finish(self, done: GenerationDone, prompt_tokens: tuple[int, ...] = ()) -> None:
        """The engine's answer: how it ended, and the prompt tokens it took (prefix included)."""
        self.done = done
        if prompt_tokens:
            self.prompt_tokens = self._reply_prompt(prompt_tokens)

    def fail(self, reason: str) -> None:
        self.failure = reason or "failed"

    # --- reading ---

    @property
    def steps(self) -> Sequence[StepRecord]:
        """Every step so far, in order (a read-only view: do not keep it across appends)."""
        return tuple(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    def step(self, index: int) -> StepRecord | None:
        return self._steps[index] if 0 <= index < len(self._steps) else None

    def steps_since(self, count: int) -> tuple[StepRecord, ...]:
        return tuple(self._steps[count:])

    @property
    def prefix_length(self) -> int:
        """Steps taken over from an earlier reply (their records are the originals)."""
        return self._offset

    @property
    def finished(self) -> bool:
        return self.done is not None or bool(self.failure or self.finish_reason)

    def settings_at(self, step: int) -> SamplerSettings | None:
        """The settings step `step` was sampled with (None: not recorded)."""
        chosen = self.spans[0].settings
        for span in self.spans:
            if span.start <= step:
                chosen = span.settings
        return chosen

    def sampled_with(self, step: int) -> str:
        return sampled_with(self.settings_at(step))

    def text(self) -> str:
        return "".join(r.text for r in self._steps)

    def meta(self) -> dict[str, Any]:
        """What the store keeps with the reply: the settings actually sent (seed included),
        the model, and each part's settings when the reply was made in parts."""
        meta: dict[str, Any] = {"model_name": self.model.name, "model_path": self.model.path}
        if self.template_id:
            meta["template_id"] = self.template_id
        if self.settings is not None:
            meta["sampler"] = self.settings.to_json()
            meta["seed"] = self.settings.seed
        if len(self.spans) > 1:
            meta["sampler_spans"] = spans_to_meta(self.spans)
        return meta
