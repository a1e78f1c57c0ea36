"""The sampler chains `openlid bench` measures, one row each, and the prompts it feeds them.

Pure data, used in the CLI process (which sends each chain's settings to the engine) and in the
reference child (which builds the same chain out of llama.cpp's samplers). A chain is a
`SamplerSettings`; its target is the least capture-on ÷ reference ratio the issue asks for:
0.95 where the chain is cheap for llama.cpp too (greedy, top-k first), 1.0 for the chains where
llama.cpp itself goes over the whole vocabulary (sorts it, or looks every token up in a
penalty's window) and a capture that works on the head and the window should win.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from desktop.core.generation import sampled_with
from desktop.core.model_defaults import BASE_MODEL_VALUES
from desktop.core.sampling import SamplerSettings

SEED = 1234  # both sides draw with the same fixed seed
TOP_N = 50  # candidates per stage a capture-on step carries
PROMPT = "The history of the printing press begins"
PROMPT_TOKENS = 512  # prompt processing is measured over this many tokens
REPLAY_CONTEXT = 900  # a step is replayed at this position

CHEAP_TARGET = 0.95
FULL_VOCAB_TARGET = 1.0

# First words of the prompts, each starting with its own letter: consecutive prompts then differ
# in their first token after BOS, so no KV cache can reuse more than BOS (the report says how
# many tokens each side reused, and the smoke test holds it to that).
_WORDS = (
    "Apples", "Bridges", "Clouds", "Deserts", "Engines", "Forests", "Gardens", "Harbors",
    "Islands", "Jungles", "Kettles", "Lanterns", "Mountains", "Needles", "Oceans", "Pianos",
    "Quarries", "Rivers", "Saddles", "Towers", "Umbrellas", "Valleys", "Windmills", "Yachts",
    "Zebras",
)


@dataclass(frozen=True)
class Chain:
    name: str  # the report's key
    settings: SamplerSettings
    target: float  # capture on ÷ reference, at least

    @property
    def label(self) -> str:
        """What the chain is, in the chart header's words (one source: the stage registry)."""
        return sampled_with(self.settings)


class Prompts:
    """A prompt no run has seen yet, each time: a new first word and a serial number."""

    def __init__(self) -> None:
        self._serial = itertools.count(1)

    def next(self, body: str = PROMPT) -> str:
        n = next(self._serial)
        return f"{_WORDS[n % len(_WORDS)]} {n}: {body}"


def bench_chains() -> tuple[Chain, ...]:
    """Every chain the bench reports, in the order of its table."""
    base = SamplerSettings(seed=SEED, top_n=TOP_N, ignore_eos=True)
    full = base.replace(top_k=0)  # top-k off: the first stage faces the whole vocabulary
    chains = [
        Chain("greedy", base.replace(temperature=0.0), CHEAP_TARGET),
        Chain("default", base, CHEAP_TARGET),
        # What the app samples the ready model with (a base model): a repeat penalty before
        # top-k, which llama.cpp applies token by token over the whole vocabulary and the
        # engine on its window alone ("penalties on": a full-vocabulary chain for the issue).
        Chain("base_model", base.replace(**BASE_MODEL_VALUES), FULL_VOCAB_TARGET),
        Chain("full_vocab", full.replace(repeat_penalty=1.1, repeat_last_n=64), FULL_VOCAB_TARGET),
        Chain("typical", full.replace(typical_p=0.9), FULL_VOCAB_TARGET),
        Chain("dry", full.replace(dry_multiplier=0.8), FULL_VOCAB_TARGET),
        Chain("top_n_sigma", full.replace(top_n_sigma=1.0), FULL_VOCAB_TARGET),
        Chain("xtc", full.replace(xtc_probability=0.5, xtc_threshold=0.1), FULL_VOCAB_TARGET),
        Chain("dynatemp", base.replace(dynatemp_range=0.5), CHEAP_TARGET),
        Chain("mirostat_v1", base.replace(mirostat=1), FULL_VOCAB_TARGET),
        Chain("mirostat_v2", base.replace(mirostat=2), FULL_VOCAB_TARGET),
    ]
    return tuple(chains)
