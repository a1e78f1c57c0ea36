"""The chain's samplers built the way llama.cpp's common/sampling.cpp builds them: the factory
of each stage's llama.cpp sampler (min_keep 0), the stage order (llama.cpp's default, or
temperature then Mirostat), and the same chain as one `llama_sampler_chain` for a bare loop.

Runs in the engine worker process (and the bench's reference child). `StepSampler`
(engine.step_sampler) runs these samplers one stage at a time.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import llama_cpp as L

from desktop.core.sampler_stages import (
    STAGE_DRY,
    STAGE_GRAMMAR,
    STAGE_MIN_P,
    STAGE_MIROSTAT,
    STAGE_PENALTIES,
    STAGE_TEMPERATURE,
    STAGE_TOP_K,
    STAGE_TOP_N_SIGMA,
    STAGE_TOP_P,
    STAGE_TYPICAL,
    STAGE_XTC,
)
from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.engine.grammar import grammar_sampler, grammar_text

__all__ = ["WINDOWED", "Build", "chain_plan", "is_active", "llama_chain"]


@dataclass(frozen=True)
class Build:
    """What a stage's sampler is built from."""

    s: SamplerSettings
    n_vocab: int
    n_ctx: int
    vocab: Any  # llama.cpp's vocabulary (DRY turns its sequence breakers into tokens), or None
    # DRY samplers already built for `vocab` (LlamaSession.dry_templates, freed with it): a
    # chain gets a clone, which copies the processed breakers instead of matching them against
    # the whole vocabulary again.
    dry_cache: dict[tuple[object, ...], Any] | None = None

    def window(self, last_n: int) -> int:
        return self.n_ctx if last_n < 0 else last_n


def _dry(b: Build) -> Any:
    s = b.s
    breakers = [t.encode("utf-8") for t in s.dry_sequence_breakers]
    if breakers and b.vocab is None:
        raise SettingsError(
            "DRY's sequence breakers need llama.cpp's tokenizer (a GGUF model); for this model "
            "clear the sequence breakers or turn DRY off")
    key = (s.dry_multiplier, s.dry_base, s.dry_allowed_length, b.window(s.dry_penalty_last_n),
           tuple(breakers))
    template = b.dry_cache.get(key) if b.dry_cache is not None else None
    if template is None:
        array = (ctypes.c_char_p * max(1, len(breakers)))(*breakers)
        template = L.llama_sampler_init_dry(b.vocab, *key[:4], array, len(breakers))
        if b.dry_cache is None:
            return template
        b.dry_cache[key] = template  # never applied or fed: its clones start empty
    return L.llama_sampler_clone(template)


# The factory: each stage's llama.cpp sampler, as common/sampling.cpp builds it (min_keep 0).
_FACTORY: dict[str, Callable[[Build], Any]] = {
    STAGE_PENALTIES: lambda b: L.llama_sampler_init_penalties(
        b.n_vocab, b.window(b.s.repeat_last_n), b.s.repeat_penalty, b.s.frequency_penalty,
        b.s.presence_penalty),
    STAGE_DRY: _dry,
    STAGE_TOP_N_SIGMA: lambda b: L.llama_sampler_init_top_n_sigma(b.s.top_n_sigma),
    STAGE_TOP_K: lambda b: L.llama_sampler_init_top_k(b.s.top_k),
    STAGE_TYPICAL: lambda b: L.llama_sampler_init_typical(b.s.typical_p, 0),
    STAGE_TOP_P: lambda b: L.llama_sampler_init_top_p(b.s.top_p, 0),
    STAGE_MIN_P: lambda b: L.llama_sampler_init_min_p(b.s.min_p, 0),
    STAGE_XTC: lambda b: L.llama_sampler_init_xtc(b.s.xtc_probability, b.s.xtc_threshold, 0,
                                                  b.s.seed),
    STAGE_TEMPERATURE: lambda b: L.llama_sampler_init_temp_ext(
        b.s.temperature, b.s.dynatemp_range, b.s.dynatemp_exponent),
}
# With Mirostat on, llama.cpp's chain is plain temperature, then Mirostat, which draws itself.
_MIROSTAT_FACTORY: dict[str, Callable[[Build], Any]] = {
    STAGE_TEMPERATURE: lambda b: L.llama_sampler_init_temp(b.s.temperature),
    STAGE_MIROSTAT: lambda b: (
        L.llama_sampler_init_mirostat(b.n_vocab, b.s.seed, b.s.mirostat_tau, b.s.mirostat_eta,
                                      100)
        if b.s.mirostat == 1
        else L.llama_sampler_init_mirostat_v2(b.s.seed, b.s.mirostat_tau, b.s.mirostat_eta)),
}
# Stages whose apply changes only the tokens of their history window (the field holding its
# length): on a full array they run on those tokens alone.
WINDOWED = {STAGE_PENALTIES: "repeat_last_n", STAGE_DRY: "dry_penalty_last_n"}


def chain_plan(s: SamplerSettings) -> tuple[tuple[str, ...], dict[str, Callable[[Build], Any]]]:
    if s.mirostat:
        return (STAGE_TEMPERATURE, STAGE_MIROSTAT), _MIROSTAT_FACTORY
    return tuple(s.order), _FACTORY


def is_active(s: SamplerSettings, name: str) -> bool:
    return name == STAGE_MIROSTAT or s.is_on(name)


def llama_chain(settings: SamplerSettings, n_vocab: int, n_ctx: int, vocab: Any = None) -> Any:
    """The same chain as one `llama_sampler_chain` (its draw included), for a bare loop that runs
    llama.cpp's `llama_sampler_sample` without any capture. The caller frees it."""
    s = settings.validated()
    order, factory = chain_plan(s)
    build = Build(s, n_vocab, n_ctx, vocab)
    chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    if s.is_on(STAGE_GRAMMAR):  # first, as llama.cpp's common sampler applies it
        L.llama_sampler_chain_add(chain, grammar_sampler(vocab, grammar_text(s)))
    for name in order:
        if is_active(s, name):
            L.llama_sampler_chain_add(chain, factory[name](build))  # the chain frees it
    if not s.mirostat:
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(s.seed))
    return chain
