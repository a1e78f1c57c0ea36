"""What each sampler knob is, for the Sampling panel: label, ranges, and a plain tooltip saying
what it does to the next-token distribution. Pure data (no widgets); imported on the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from desktop.core import sampling as S


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


# Spin-box ranges are what SamplerSettings.validated() accepts (or a practical ceiling); slider
# ranges cover the values people actually use, so a small drag is a meaningful change.
FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("temperature", "Temperature", 0, 5, 2, 0.05, (0, 2), "0 (greedy)",
              "Divides the scores before softmax: below 1 sharpens the distribution toward the "
              "likeliest tokens, above 1 flattens it; 0 always takes the top token."),
    FieldSpec("top_k", "Top-k", 0, 262_144, 0, 1, (0, 200), "off",
              "Keeps only the k most probable tokens and renormalises them; 0 keeps all."),
    FieldSpec("top_p", "Top-p", 0, 1, 2, 0.01, None, "",
              "Keeps the smallest set of top tokens whose probabilities add up to p (nucleus "
              "sampling); 1 keeps all."),
    FieldSpec("min_p", "Min-p", 0, 1, 3, 0.005, (0, 0.5), "off",
              "Drops every token less probable than min-p × the top token's probability; "
              "0 keeps all."),
    FieldSpec("typical_p", "Typical-p", 0.01, 1, 2, 0.01, None, "",
              "Keeps the tokens whose surprise is closest to the distribution's average, up to "
              "mass p (locally typical sampling); 1 turns it off."),
    FieldSpec("repeat_penalty", "Repeat penalty", 0.05, 5, 2, 0.01, (0.5, 2), "",
              "Makes tokens seen in the recent window less likely by dividing their scores by "
              "this factor; 1 turns it off, below 1 encourages repeats."),
    FieldSpec("repeat_last_n", "Penalty window", -1, 131_072, 0, 16, (-1, 1024),
              "whole context",
              "How many recent tokens the three penalties look at; 0 turns penalties off, "
              "the minimum (-1) uses the whole context."),
    FieldSpec("presence_penalty", "Presence penalty", -2, 2, 2, 0.05, None, "",
              "Subtracts a fixed amount from the score of every token already in the window, "
              "however often it appeared; 0 turns it off."),
    FieldSpec("frequency_penalty", "Frequency penalty", -2, 2, 2, 0.05, None, "",
              "Subtracts an amount proportional to how often a token appeared in the window; "
              "0 turns it off."),
    FieldSpec("mirostat_tau", "Target surprise (τ)", 0, 10, 2, 0.1, None, "",
              "Mirostat's target surprise in bits per token: lower keeps text focused, higher "
              "lets it wander."),
    FieldSpec("mirostat_eta", "Learning rate (η)", 0, 1, 3, 0.01, (0, 0.5), "",
              "How strongly Mirostat corrects its threshold after each token; higher reacts "
              "faster and oscillates more."),
    FieldSpec("max_tokens", "Max tokens", 1, 1_000_000, 0, 16, (1, 4096), "",
              "Stops the reply after this many generated tokens."),
    FieldSpec("top_n", "Candidates shown", 1, S.MAX_TOP_N, 0, 1, (1, 200), "",
              "How many candidates of each stage the chart and inspector receive. Changes what "
              "you see, not what is sampled."),
)
FIELD_BY_NAME = {spec.name: spec for spec in FIELDS}

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Randomness", ("temperature",)),
    ("Truncation", ("top_k", "top_p", "min_p", "typical_p")),
    ("Repetition", ("repeat_penalty", "repeat_last_n", "presence_penalty", "frequency_penalty")),
    ("Mirostat", ("mirostat_tau", "mirostat_eta")),
    ("Output", ("max_tokens", "top_n")),
)

STAGE_LABELS = {
    S.STAGE_PENALTIES: "Penalties",
    S.STAGE_TOP_K: "Top-k",
    S.STAGE_TYPICAL: "Typical-p",
    S.STAGE_TOP_P: "Top-p",
    S.STAGE_MIN_P: "Min-p",
    S.STAGE_TEMPERATURE: "Temperature",
}

MIROSTAT_MODES = ("Off", "Mirostat v1", "Mirostat v2")

TIPS = {
    "mirostat": "Replaces top-k, typical-p, top-p and min-p with a feedback loop that keeps each "
                "token's surprise near the target τ.",
    "seed": "The random draw's starting point. Fixed: the same settings and prompt give the same "
            "reply. Not fixed: a new random seed every run.",
    "stop": "The reply ends when its text reaches one of these strings (the string itself is not "
            "kept). One per line; write \\n for a newline, \\t for a tab, \\\\ for a backslash.",
    "order": "The order in which stages reshape the distribution; drag or use the arrows. "
             "llama.cpp's default puts penalties first and temperature last, so truncation sees "
             "the model's own probabilities.",
    "ignore_eos": "Keeps generating past end-of-text tokens (for benchmarks); the model will "
                  "ramble.",
    "preset": "Presets set the distribution-shaping knobs (temperature, truncation, penalties, "
              "Mirostat, order); seed, stop strings and lengths stay as they are.",
}

# Settings a preset leaves alone: they belong to the session, not to the sampling "style".
SESSION_FIELDS = ("seed", "max_tokens", "stop", "top_n", "ignore_eos")


def decode_stop(text: str) -> tuple[str, ...]:
    """One stop string per line, with \\n, \\t and \\\\ escapes; blank lines are skipped."""
    out = []
    for line in text.split("\n"):
        if not line:
            continue
        chars, i = [], 0
        while i < len(line):
            c = line[i]
            if c == "\\" and i + 1 < len(line) and line[i + 1] in "nt\\":
                chars.append({"n": "\n", "t": "\t", "\\": "\\"}[line[i + 1]])
                i += 2
            else:
                chars.append(c)
                i += 1
        out.append("".join(chars))
    return tuple(out)


def encode_stop(stop: tuple[str, ...]) -> str:
    return "\n".join(
        s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t") for s in stop
    )


def shaping_equal(a: S.SamplerSettings, b: S.SamplerSettings) -> bool:
    """Whether two settings agree on everything a preset sets."""
    keep = {name: getattr(a, name) for name in SESSION_FIELDS}
    return b.replace(**keep) == a
