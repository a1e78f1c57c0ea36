"""The token StepSampler picks is llama.cpp's own draw: a bare loop calling llama.cpp's
`llama_sampler_sample` on the same chain (built by `llama_chain`, as common/sampling.cpp builds
it) and seed writes the same tokens, with every stage in use, on the shipped Gemma model.

Runs the model in this process (LlamaSession); the KV cache is cleared before each run, so both
sides decode the same batches and see bit-identical logits.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import llama_cpp as L
import pytest

from desktop.core.sampling import SamplerSettings
from desktop.engine.llama_session import LlamaSession
from desktop.engine.step_sampler import StepSampler, llama_chain
from desktop.engine.worker import last_n
from tests.engine.conftest import LOAD

PROMPT = "Once upon a time, a fox and a crow met. The fox said to the crow: the crow said"
TOKENS = 12


@pytest.fixture(scope="module")
def session(gemma_path: Path) -> Iterator[LlamaSession]:
    s = LlamaSession(str(gemma_path), LOAD)
    yield s
    s.close()


def _fresh(session: LlamaSession, prompt: list[int]) -> None:
    L.llama_memory_clear(session.memory, True)
    session.cached = []
    session.prepare(prompt)


def _openlid(session: LlamaSession, prompt: list[int], settings: SamplerSettings,
             capture: bool) -> list[int]:
    _fresh(session, prompt)
    sampler = StepSampler(settings, session.n_vocab, session.n_ctx, session.vocab)
    out = []
    try:
        sampler.accept(last_n(prompt, settings, session.n_ctx))
        for _ in range(TOKENS):
            logits = session.logits()
            token = sampler.sample_captured(logits)[0] if capture else sampler.sample_fast(logits)
            out.append(token)
            session.decode([token])
    finally:
        sampler.close()
    return out


def _llama(session: LlamaSession, prompt: list[int], settings: SamplerSettings) -> list[int]:
    _fresh(session, prompt)
    chain = llama_chain(settings, session.n_vocab, session.n_ctx, session.vocab)
    out = []
    try:
        for token in last_n(prompt, settings, session.n_ctx):
            L.llama_sampler_accept(chain, token)
        for _ in range(TOKENS):
            token = L.llama_sampler_sample(chain, session.ctx, -1)  # accepts it into the chain
            out.append(token)
            session.decode([token])
    finally:
        L.llama_sampler_free(chain)
    return out


CHAINS = {
    "default": SamplerSettings(seed=3),
    "temperature_1.3": SamplerSettings(seed=42, temperature=1.3),
    "full_vocabulary": SamplerSettings(seed=7, top_k=0, repeat_penalty=1.1, repeat_last_n=64),
    "dry_xtc_sigma_dynatemp": SamplerSettings(
        seed=11, top_k=0, repeat_penalty=1.15, presence_penalty=0.2, dry_multiplier=0.8,
        dry_allowed_length=1, top_n_sigma=2.0, xtc_probability=0.5, xtc_threshold=0.05,
        dynatemp_range=0.4, temperature=1.1, min_p=0.0),
    "typical_reordered": SamplerSettings(seed=13, top_k=0, typical_p=0.9, order=(
        "temperature", "penalties", "dry", "top_n_sigma", "top_k", "typical", "top_p",
        "min_p", "xtc")),
    "typical": SamplerSettings(seed=23, top_k=0, typical_p=0.9),  # the bench's typical row
    "mirostat_v1": SamplerSettings(seed=17, mirostat=1, temperature=0.9),
    "mirostat_v2": SamplerSettings(seed=19, mirostat=2, mirostat_tau=3.0),
}


@pytest.mark.parametrize("name", list(CHAINS))
def test_tokens_are_llama_cpps_own_draws(session: LlamaSession, name: str) -> None:
    settings = CHAINS[name]
    prompt = session.tokenize_pieces(((PROMPT, False),), add_bos=True)
    expected = _llama(session, prompt, settings)
    assert _openlid(session, prompt, settings, capture=True) == expected
    assert _openlid(session, prompt, settings, capture=False) == expected
