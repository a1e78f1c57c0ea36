"""What each sampler knob is, for the Sampling panel: label, ranges, and a plain tooltip saying
what it does to the next-token distribution — all read from the stage registry
(`core.sampler_stages`), so a new stage's knobs appear here without an edit. Pure data (no
widgets); imported on the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from desktop.core import sampling as S
from desktop.core.sampler_stages import (
    GENERAL_PARAMS,
    PARAM_BY_FIELD,
    STAGE_BY_NAME,
    STAGE_MIROSTAT,
    STAGE_OF_FIELD,
    STAGES,
    Param,
    decode_escapes,
    encode_escapes,
    stage_label,
)


@dataclass(frozen=True)
class FieldSpec:
    name: str  # the SamplerSettings field
    label: str
    minimum: float
    maximum: float
    decimals: int = 0
    step: float = 1
    slider_range: tuple[float, float] | None = None
    special_text: str = ""  # shown instead of the minimum ("off", "whole context")
    tooltip: str = ""

    @classmethod
    def of(cls, p: Param) -> FieldSpec:
        # Spin boxes take what SamplerSettings.validated() accepts (an open bound one step in);
        # sliders cover the values people use, so a small drag is a meaningful change.
        return cls(p.field, p.label, p.panel_minimum, p.hi, p.decimals, p.step, p.slider,
                   p.special, p.help)


_OUTPUT = ("max_tokens", "top_n")
FIELDS: tuple[FieldSpec, ...] = tuple(
    FieldSpec.of(p) for p in (*(q for st in STAGES for q in st.params), *GENERAL_PARAMS)
    if p.is_number and not p.choices and (p.field in _OUTPUT or p.field in STAGE_OF_FIELD))
FIELD_BY_NAME = {spec.name: spec for spec in FIELDS}

# The panel's boxes: each stage's knobs under its group, in chain order; then the output knobs.
_GROUP_ORDER = ("Randomness", "Truncation", "XTC", "Repetition", "DRY", "Mirostat")
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    *((group, tuple(p.field for st in STAGES if st.group == group for p in st.params
                    if p.field in FIELD_BY_NAME)) for group in _GROUP_ORDER),
    ("Output", _OUTPUT),
)

STAGE_LABELS = {st.name: stage_label(st.name).capitalize() if st.label.islower() else st.label
                for st in STAGES}

# With Mirostat on, llama.cpp runs plain temperature and then Mirostat: nothing else applies.
MIROSTAT_KEEPS = frozenset({
    "temperature", *(p.field for p in PARAM_BY_FIELD.values()
                     if STAGE_OF_FIELD.get(p.field) in (None, STAGE_BY_NAME[STAGE_MIROSTAT]))})
MIROSTAT_ONLY = frozenset(p.field for p in STAGE_BY_NAME[STAGE_MIROSTAT].params)

MIROSTAT_MODES = PARAM_BY_FIELD["mirostat"].choices

TIPS = {
    "mirostat": PARAM_BY_FIELD["mirostat"].help + " As in llama.cpp, nothing else in the chain "
                "applies while it is on.",
    "dry_sequence_breakers": PARAM_BY_FIELD["dry_sequence_breakers"].help,
    "seed": "The random draw's starting point. Fixed: the same settings and prompt give the same "
            "reply. Not fixed: a new random seed every run.",
    "stop": "The reply ends when its text reaches one of these strings (the string itself is not "
            "kept). One per line; write \\n for a newline, \\t for a tab, \\\\ for a backslash.",
    "order": "The order in which stages reshape the distribution; drag or use the arrows. "
             "llama.cpp's default puts penalties and DRY first and temperature last, so "
             "truncation sees the model's own probabilities.",
    "ignore_eos": "Keeps generating past end-of-text tokens (for benchmarks); the model will "
                  "ramble.",
    "preset": "Presets set the distribution-shaping knobs (temperature, truncation, penalties, "
              "Mirostat, order); seed, stop strings and lengths stay as they are.",
}

# Settings a preset leaves alone: they belong to the session, not to the sampling "style".
SESSION_FIELDS = ("seed", "max_tokens", "stop", "top_n", "ignore_eos", "structured_output",
                  "json_schema", "grammar")


def decode_stop(text: str) -> tuple[str, ...]:
    """One stop string per line, with \\n, \\t and \\\\ escapes; blank lines are skipped."""
    return decode_escapes(text)


def encode_stop(stop: tuple[str, ...]) -> str:
    return encode_escapes(stop)


def shaping_equal(a: S.SamplerSettings, b: S.SamplerSettings) -> bool:
    """Whether two settings agree on everything a preset sets."""
    keep = {name: getattr(a, name) for name in SESSION_FIELDS}
    return b.replace(**keep) == a
