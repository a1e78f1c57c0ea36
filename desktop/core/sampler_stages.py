"""The registry of sampler stages: every stage of llama.cpp's chain and every knob it takes, once.

Pure data and pure functions, importable from any thread or process. Each `Stage` says what a
StepRecord calls it (`name`), what people call it (`label`, "top-p"), whether it removes
candidates or reshapes their probabilities (`kind`, and for a removal which end it cuts), when it
does nothing, and its `Param`s: each a `SamplerSettings` field with its range, default, request
field names (OpenAI / llama-server, aliases after the first), and how the Sampling panel shows
it. `SamplerSettings` validates from these tables, the panel builds its controls from them, the
CLI its flags, the OpenAI server its field checks, the remote client its request body, and the
chart its cut markers and stage labels. Adding a stage means a `Stage` here and its llama.cpp
sampler in `engine.step_sampler`'s factory.

`STAGES` is in llama.cpp's default order (common/common.h): penalties, DRY, top-n-sigma, top-k,
typical, top-p, min-p, XTC, temperature. Mirostat is not part of that order: when it is on,
llama.cpp runs temperature and then Mirostat, which truncates and draws by itself. The grammar
(structured output, `core.structured_output`) is not part of the order either: it runs before
every stage that cuts (llama.cpp applies it first; it commutes with penalties and DRY, so a
StepRecord lists it after them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

STAGE_RAW = "raw"  # the softmax of the logits: always first, never part of the order
STAGE_PENALTIES = "penalties"
STAGE_DRY = "dry"
STAGE_TOP_N_SIGMA = "top_n_sigma"
STAGE_TOP_K = "top_k"
STAGE_TYPICAL = "typical"
STAGE_TOP_P = "top_p"
STAGE_MIN_P = "min_p"
STAGE_XTC = "xtc"
STAGE_TEMPERATURE = "temperature"
STAGE_MIROSTAT = "mirostat"
STAGE_GRAMMAR = "grammar"

Kind = Literal["truncation", "reshaping"]
# Which candidates a truncation removes: "tail" keeps a head of its input (one cut line after
# the last survivor), "head" removes the most probable ones (XTC), "any" may remove from both
# ends (typical-p). A truncation only removes: the survivors keep their probability ratios.
Cut = Literal["tail", "head", "any", ""]
Number = int | float
RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a fresh random seed each run
MAX_TOP_N = 500


def _num(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() and abs(value) >= 10_000 else f"{value:g}"


@dataclass(frozen=True)
class Param:
    """One knob: a `SamplerSettings` field, its valid range and how people meet it."""

    field: str
    label: str
    default: Any  # int, float, bool or tuple[str, ...]; its type is the field's type
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False  # valid values are > lo rather than ≥ lo
    api: tuple[str, ...] = ()  # request field names; the first is sent, the rest are aliases
    api_hi: float | None = None  # OpenAI's own ceiling where it is lower (temperature ≤ 2)
    always_sent: bool = False  # sent to any endpoint, even at its neutral value
    off: str = ""  # the value that turns it off, in words: "0 turns it off"
    help: str = ""  # what it does to the next-token distribution, in one or two sentences
    decimals: int = 0  # the panel: digits after the point (0: an integer field)
    step: float = 1
    slider: tuple[float, float] | None = None  # the useful range, when narrower than lo..hi
    special: str = ""  # what the panel's spin box shows at its minimum ("off")
    choices: tuple[str, ...] = ()  # an int field whose values 0, 1, … have these names

    @property
    def is_int(self) -> bool:
        return isinstance(self.default, int) and not isinstance(self.default, bool)

    @property
    def is_number(self) -> bool:
        return isinstance(self.default, int | float) and not isinstance(self.default, bool)

    @property
    def cli_flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def panel_minimum(self) -> float:
        """The smallest value a spin box can show: an open bound is one step inside."""
        return self.lo + self.step if self.lo_open else self.lo

    def range_words(self, hi: float | None = None) -> str:
        top = self.hi if hi is None else hi
        if self.lo_open:
            return f"> {_num(self.lo)} and ≤ {_num(top)}"
        return f"between {_num(self.lo)} and {_num(top)}"

    def problem(self, value: Any) -> str:
        """Why `value` is not valid for this knob, in words ("" when it is)."""
        if not self.is_number:
            return ""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{self.field} must be a number"
        if self.is_int and not isinstance(value, int):
            return f"{self.field} must be a whole number"
        too_low = value <= self.lo if self.lo_open else value < self.lo
        if not math.isfinite(value) or too_low or value > self.hi:
            words = f"{self.field} must be {self.range_words()}"
            return f"{words} ({self.off})" if self.off else words
        return ""


@dataclass(frozen=True)
class Stage:
    """One stage of llama.cpp's chain, as a StepRecord reports it."""

    name: str
    label: str  # in words, as people write it: "top-p", "DRY"
    kind: Kind
    cut: Cut
    params: tuple[Param, ...]
    noop: Callable[[Any], bool]  # True when these settings leave the candidates as they are
    server_name: str  # llama-server's name in its `samplers` list
    group: str  # the Sampling panel's box for its knobs
    help: str
    orderable: bool = True
    aliases: tuple[str, ...] = ()  # other names a request's `samplers` list may use


def _penalties_off(s: Any) -> bool:
    return bool(s.repeat_last_n == 0) or bool(
        s.repeat_penalty == 1.0 and s.presence_penalty == 0.0 and s.frequency_penalty == 0.0)


STAGES: tuple[Stage, ...] = (
    Stage(
        STAGE_PENALTIES, "penalties", "reshaping", "", (
            Param("repeat_penalty", "Repeat penalty", 1.0, 0, 10, lo_open=True,
                  api=("repeat_penalty", "repetition_penalty"), always_sent=True,
                  off="1 turns it off",
                  help="Makes tokens seen in the recent window less likely by dividing their "
                       "scores by this factor; 1 turns it off, below 1 encourages repeats.",
                  decimals=2, step=0.01, slider=(0.5, 2)),
            Param("repeat_last_n", "Penalty window", 64, -1, 1_000_000, api=("repeat_last_n",),
                  always_sent=True, off="0 turns penalties off, -1 = whole context",
                  help="How many recent tokens the three penalties look at; 0 turns penalties "
                       "off, the minimum (-1) uses the whole context.",
                  step=16, slider=(-1, 1024), special="whole context"),
            Param("presence_penalty", "Presence penalty", 0.0, -2, 2,
                  api=("presence_penalty",), always_sent=True, off="0 turns it off",
                  help="Subtracts a fixed amount from the score of every token already in the "
                       "window, however often it appeared; 0 turns it off.",
                  decimals=2, step=0.05),
            Param("frequency_penalty", "Frequency penalty", 0.0, -2, 2,
                  api=("frequency_penalty",), always_sent=True, off="0 turns it off",
                  help="Subtracts an amount proportional to how often a token appeared in the "
                       "window; 0 turns it off.",
                  decimals=2, step=0.05),
        ),
        _penalties_off, "penalties", "Repetition",
        "Repeat, presence and frequency penalties: lower the scores of tokens in the recent "
        "window."),
    Stage(
        STAGE_DRY, "DRY", "reshaping", "", (
            Param("dry_multiplier", "DRY multiplier", 0.0, 0, 100, api=("dry_multiplier",),
                  off="0 turns it off",
                  help="DRY (don't repeat yourself) lowers the score of a token that would "
                       "continue a sequence already in the text, by multiplier × base^(length - "
                       "allowed length); 0 turns it off.",
                  decimals=2, step=0.05, slider=(0, 3), special="off"),
            Param("dry_base", "DRY base", 1.75, 1, 100, api=("dry_base",),
                  help="How fast DRY's penalty grows with each further repeated token.",
                  decimals=2, step=0.05, slider=(1, 4)),
            Param("dry_allowed_length", "DRY allowed length", 2, 0, 1000,
                  api=("dry_allowed_length",),
                  help="Repeated sequences up to this many tokens go unpenalised by DRY.",
                  slider=(0, 20)),
            Param("dry_penalty_last_n", "DRY window", 64, -1, 1_000_000,
                  api=("dry_penalty_last_n",), off="0 turns DRY off, -1 = whole context",
                  help="How many recent tokens DRY searches for repeats; 0 turns DRY off, the "
                       "minimum (-1) searches the whole context.",
                  step=16, slider=(-1, 1024), special="whole context"),
            Param("dry_sequence_breakers", "DRY sequence breakers", ("\n", ":", '"', "*"),
                  api=("dry_sequence_breakers",),
                  help="Texts that end a repeated sequence for DRY (one per line; \\n is a "
                       "newline). A GGUF model's tokenizer turns them into tokens."),
        ),
        lambda s: s.dry_multiplier == 0.0 or s.dry_penalty_last_n == 0, "dry", "DRY",
        "DRY: lowers the scores of tokens that would repeat a sequence already in the text."),
    Stage(
        STAGE_TOP_N_SIGMA, "top-n-sigma", "truncation", "tail", (
            Param("top_n_sigma", "Top-n-sigma", -1.0, -1, 100, api=("top_n_sigma",),
                  off="0 or less turns it off",
                  help="Keeps the tokens whose score is within n standard deviations of the "
                       "top score (computed over all scores); 0 or less turns it off.",
                  decimals=2, step=0.1, slider=(-1, 5), special="off"),
        ),
        lambda s: s.top_n_sigma <= 0.0, "top_n_sigma", "Truncation",
        "Top-n-sigma: keeps tokens whose score is near the top one, measured in standard "
        "deviations of all the scores."),
    Stage(
        STAGE_TOP_K, "top-k", "truncation", "tail", (
            Param("top_k", "Top-k", 40, 0, 1_000_000, api=("top_k",), always_sent=True,
                  off="0 turns it off",
                  help="Keeps only the k most probable tokens and renormalises them; 0 keeps "
                       "all.",
                  slider=(0, 200), special="off"),
        ),
        lambda s: s.top_k <= 0, "top_k", "Truncation",
        "Top-k: keeps the k most probable tokens."),
    Stage(
        STAGE_TYPICAL, "typical-p", "truncation", "any", (
            Param("typical_p", "Typical-p", 1.0, 0, 1, lo_open=True, api=("typical_p",),
                  always_sent=True, off="1 turns it off",
                  help="Keeps the tokens whose surprise is closest to the distribution's "
                       "average, up to mass p (locally typical sampling); 1 turns it off.",
                  decimals=2, step=0.01),
        ),
        lambda s: s.typical_p >= 1.0, "typ_p", "Truncation",
        "Typical-p: keeps the tokens whose surprise is closest to the average surprise.",
        aliases=("typ_p", "typical_p", "typ")),
    Stage(
        STAGE_TOP_P, "top-p", "truncation", "tail", (
            Param("top_p", "Top-p", 0.95, 0, 1, api=("top_p",), always_sent=True,
                  off="1 turns it off",
                  help="Keeps the smallest set of top tokens whose probabilities add up to p "
                       "(nucleus sampling); 1 keeps all.",
                  decimals=2, step=0.01),
        ),
        lambda s: s.top_p >= 1.0, "top_p", "Truncation",
        "Top-p: keeps the smallest head of tokens whose probabilities add up to p.",
        aliases=("nucleus",)),
    Stage(
        STAGE_MIN_P, "min-p", "truncation", "tail", (
            Param("min_p", "Min-p", 0.05, 0, 1, api=("min_p",), always_sent=True,
                  off="0 turns it off",
                  help="Drops every token less probable than min-p × the top token's "
                       "probability; 0 keeps all.",
                  decimals=3, step=0.005, slider=(0, 0.5), special="off"),
        ),
        lambda s: s.min_p <= 0.0, "min_p", "Truncation",
        "Min-p: drops tokens less probable than min-p × the top token."),
    Stage(
        STAGE_XTC, "XTC", "truncation", "head", (
            Param("xtc_probability", "XTC chance", 0.0, 0, 1, api=("xtc_probability",),
                  off="0 turns it off",
                  help="XTC (exclude top choices): with this chance per token, removes every "
                       "top token at least as probable as the threshold except the least "
                       "probable of them, for more varied text; 0 turns it off.",
                  decimals=2, step=0.05, special="off"),
            Param("xtc_threshold", "XTC threshold", 0.1, 0, 1, api=("xtc_threshold",),
                  off="above 0.5 turns it off",
                  help="XTC removes top tokens only while at least two reach this probability; "
                       "above 0.5 turns XTC off.",
                  decimals=2, step=0.01),
        ),
        lambda s: s.xtc_probability <= 0.0 or s.xtc_threshold > 0.5, "xtc", "XTC",
        "XTC: now and then removes the most probable tokens, keeping the least probable of "
        "those above a threshold."),
    Stage(
        STAGE_TEMPERATURE, "temperature", "reshaping", "", (
            Param("temperature", "Temperature", 0.8, 0, 5, api=("temperature",), api_hi=2,
                  always_sent=True, off="0 means greedy",
                  help="Divides the scores before softmax: below 1 sharpens the distribution "
                       "toward the likeliest tokens, above 1 flattens it; 0 always takes the "
                       "top token.",
                  decimals=2, step=0.05, slider=(0, 2), special="0 (greedy)"),
            Param("dynatemp_range", "Dynamic range", 0.0, 0, 5, api=("dynatemp_range",),
                  off="0 turns it off",
                  help="Dynamic temperature: each token's temperature moves within "
                       "temperature ± range, higher when the distribution is flat (high "
                       "entropy); 0 keeps the temperature fixed.",
                  decimals=2, step=0.05, slider=(0, 2), special="off"),
            Param("dynatemp_exponent", "Dynamic exponent", 1.0, 0, 10,
                  api=("dynatemp_exponent",),
                  help="How entropy maps onto the dynamic temperature range: above 1 keeps "
                       "the temperature low until the distribution is quite flat.",
                  decimals=2, step=0.05, slider=(0, 4)),
        ),
        lambda s: s.temperature == 1.0 and s.dynatemp_range == 0.0, "temperature",
        "Randomness",
        "Temperature: divides the scores, sharpening or flattening the distribution.",
        aliases=("temp",)),
    Stage(
        STAGE_MIROSTAT, "Mirostat", "truncation", "tail", (
            Param("mirostat", "Mirostat", 0, 0, 2, api=("mirostat", "mirostat_mode"),
                  off="0 turns it off", choices=("Off", "Mirostat v1", "Mirostat v2"),
                  help="Replaces the chain with temperature then a feedback loop that keeps "
                       "each token's surprise near the target τ."),
            Param("mirostat_tau", "Target surprise (τ)", 5.0, 0, 100, api=("mirostat_tau",),
                  help="Mirostat's target surprise in bits per token: lower keeps text "
                       "focused, higher lets it wander.",
                  decimals=2, step=0.1, slider=(0, 10)),
            Param("mirostat_eta", "Learning rate (η)", 0.1, 0, 1, api=("mirostat_eta",),
                  help="How strongly Mirostat corrects its threshold after each token; higher "
                       "reacts faster and oscillates more.",
                  decimals=3, step=0.01, slider=(0, 0.5)),
        ),
        lambda s: s.mirostat == 0, "mirostat", "Mirostat",
        "Mirostat: truncates to keep the surprise near a target, then draws.",
        orderable=False),
    Stage(
        STAGE_GRAMMAR, "grammar", "truncation", "any", (
            Param("structured_output", "Structured output", "none",
                  help="Constrains the reply to any JSON object, a JSON schema or a GBNF "
                       "grammar: every token the grammar cannot continue with is removed "
                       "before the other stages run."),
        ),
        lambda s: s.structured_output == "none", "grammar", "Structured output",
        "Grammar: removes every token that cannot continue the required format (JSON, a JSON "
        "schema or a GBNF grammar).",
        orderable=False),
)

# Knobs that belong to no stage: how much to generate and what a StepRecord carries.
GENERAL_PARAMS: tuple[Param, ...] = (
    Param("max_tokens", "Max tokens", 256, 1, 1_000_000, api=("max_tokens",), always_sent=True,
          help="Stops the reply after this many generated tokens.",
          step=16, slider=(1, 4096)),
    Param("top_n", "Candidates shown", 50, 1, MAX_TOP_N,
          help="How many candidates of each stage the chart and inspector receive. Changes "
               "what you see, not what is sampled.",
          slider=(1, 200)),
    Param("seed", "Seed", RANDOM_SEED, 0, RANDOM_SEED, api=("seed",),
          help="The random draw's starting point; 4294967295 (-1 in a request) picks a new "
               "one each run."),
)

STAGE_BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
ORDERABLE_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if s.orderable)
DEFAULT_ORDER: tuple[str, ...] = ORDERABLE_STAGES  # llama.cpp's default order
STAGE_PARAMS: tuple[Param, ...] = tuple(p for s in STAGES for p in s.params)
ALL_PARAMS: tuple[Param, ...] = STAGE_PARAMS + GENERAL_PARAMS
PARAM_BY_FIELD: dict[str, Param] = {p.field: p for p in ALL_PARAMS}
STAGE_OF_FIELD: dict[str, Stage] = {p.field: s for s in STAGES for p in s.params}

# Every name a request's `samplers` list may use for a stage: ours, llama-server's, its aliases
# (kebab-case and no-dash spellings, as llama.cpp's common_sampler_types_from_names accepts).
SAMPLER_NAMES: dict[str, str] = {}
for _stage in STAGES:
    if _stage.orderable:
        for _name in (_stage.name, _stage.server_name, *_stage.aliases):
            for _spelling in (_name, _name.replace("_", "-"), _name.replace("_", "")):
                SAMPLER_NAMES.setdefault(_spelling.lower(), _stage.name)


def stage_label(name: str) -> str:
    """A stage's name in words ("top-p"); the raw softmax and unknown names as they are."""
    if name == STAGE_RAW:
        return "raw softmax"
    stage = STAGE_BY_NAME.get(name)
    return stage.label if stage is not None else name


def is_truncation(name: str) -> bool:
    """True for a stage that only removes candidates, so the survivors keep their ratios."""
    stage = STAGE_BY_NAME.get(name)
    return stage is not None and stage.kind == "truncation"


def stage_noop(name: str, settings: Any) -> bool:
    """True when `settings` turn the named stage off (it leaves the candidates as they are)."""
    return STAGE_BY_NAME[name].noop(settings)


def complete_order(order: Iterable[str]) -> tuple[str, ...]:
    """`order` with unknown names and repeats dropped and each missing stage put back at its
    place in llama.cpp's default order (after the stage that precedes it there)."""
    known = [s for s in dict.fromkeys(order) if s in ORDERABLE_STAGES]
    out = list(known)
    for i, stage in enumerate(DEFAULT_ORDER):
        if stage in out:
            continue
        before = [s for s in DEFAULT_ORDER[:i] if s in out]
        out.insert(out.index(before[-1]) + 1 if before else 0, stage)
    return tuple(out)


def order_problem(order: tuple[str, ...], settings: Any) -> str:
    """Why `order` cannot be the chain for `settings` ("" when it can).

    Each stage at most once, by a known name; a stage may be left out only when the settings
    turn it off, as llama-server runs just the stages its `samplers` list names."""
    every = ", ".join(ORDERABLE_STAGES)
    unknown = [s for s in order if s not in ORDERABLE_STAGES]
    if unknown:
        return f"order names an unknown stage '{unknown[0]}' (the stages are {every})"
    if len(set(order)) != len(order):
        return f"order must list each of {every} at most once"
    missing = [s for s in ORDERABLE_STAGES if s not in order and not stage_noop(s, settings)]
    if missing:
        return (f"order leaves out {', '.join(missing)}, which these settings turn on; list "
                f"each of {every} exactly once")
    return ""


def removed_from_head(feed_ids: tuple[int, ...], feed_probs: tuple[float, ...],
                      ids: tuple[int, ...]) -> tuple[int, ...]:
    """The tokens a head-cutting stage (XTC) removed, among its input's listed ones.

    XTC drops every token ranked above its most probable survivor (`ids[0]`), so a listed input
    token is gone when it is at least as probable as that survivor yet not among the stage's
    listed survivors; when the survivor is not listed in the input, every listed one is gone."""
    if not ids:
        return ()
    survivors = set(ids)
    listed = dict(zip(feed_ids, feed_probs, strict=False))
    floor = listed.get(ids[0], 0.0)
    return tuple(t for t, p in zip(feed_ids, feed_probs, strict=False)
                 if t not in survivors and p >= floor)


def decode_escapes(text: str) -> tuple[str, ...]:
    """One string per line, with \\n, \\t and \\\\ escapes; blank lines are skipped."""
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


def encode_escapes(strings: tuple[str, ...]) -> str:
    return "\n".join(
        s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t") for s in strings)


def request_fields(settings: Any, *, extras: bool, everything: bool) -> dict[str, Any]:
    """The sampler fields of a request body for `settings`, by llama-server's names.

    OpenAI's own fields always. With `extras`, llama.cpp's too: the `always_sent` ones even at
    their neutral value (llama-cpp-python's server defaults to a repeat penalty of 1.1, which
    would quietly change what "greedy" picks), the others with the rest of their stage's knobs
    once any of them differs from its default. `everything` sends every field (to another
    Openlid, which takes them all). Aliased fields go under every name: servers read theirs and
    ignore the others'."""
    out: dict[str, Any] = {}
    for stage in STAGES:
        touched = any(getattr(settings, p.field) != p.default
                      for p in stage.params if not p.always_sent)
        for p in stage.params:
            openai = bool(p.api) and p.api[0] in _OPENAI_FIELDS
            if not (everything or openai or (extras and (p.always_sent or touched))):
                continue
            value = getattr(settings, p.field)
            for name in p.api:
                out[name] = list(value) if isinstance(value, tuple) else value
    return out


def server_order(order: tuple[str, ...]) -> list[str]:
    """A chain order by llama-server's names, for its `samplers` field (typical is "typ_p"
    there; a name it does not know it drops from the chain without a word)."""
    return [STAGE_BY_NAME[name].server_name for name in order]


_OPENAI_FIELDS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})


def _check_tables() -> None:
    """The tables agree with themselves (run at import: a typo fails at once, not in use)."""
    for p in ALL_PARAMS:
        if p.is_number:
            assert not p.problem(p.default), p.field
    assert len(PARAM_BY_FIELD) == len(ALL_PARAMS)


_check_tables()
