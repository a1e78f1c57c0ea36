"""The grammar stage against llama.cpp itself: with structured output on, every token StepSampler
draws (captured, fast, and without shortcuts) is the token llama.cpp's own chain with the grammar
sampler first draws, the grammar stage reports what it forbade, and a grammar that does not parse
is refused with its line and column.

llama.cpp's real samplers in this process on synthetic logits, over the shipped Gemma model's
vocabulary (loaded vocabulary-only).
"""

from __future__ import annotations

from typing import Any

import llama_cpp as L
import numpy as np
import pytest

from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.core.steps import StepRecord
from desktop.core.structured_output import SCHEMA_PRESETS, grammar_effect
from desktop.engine.grammar import allowed, grammar_sampler
from desktop.engine.step_sampler import StepSampler, llama_chain
from tests.engine.test_step_sampler import N_CTX, chain_draw

N_VOCAB = 262_144
JSON = SamplerSettings(structured_output="json", top_n=30)
SCHEMA = SamplerSettings(structured_output="json_schema",
                         json_schema=SCHEMA_PRESETS["Person (name, age)"], top_n=30)


def _logits(seed: int, scale: float) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(N_VOCAB) * scale).astype(np.float32)


CHAINS = [
    JSON.replace(seed=1),  # top-k first: a head
    JSON.replace(seed=2, temperature=0),
    SCHEMA.replace(seed=3, top_k=5, temperature=1.5),
    SCHEMA.replace(seed=4, top_k=0, min_p=0.1),  # min-p first: a head
    JSON.replace(seed=5, top_k=0),  # top-p first: the whole vocabulary
    SCHEMA.replace(seed=6, mirostat=2),
]


@pytest.mark.parametrize("settings", CHAINS, ids=lambda s: f"seed{s.seed}")
def test_draws_are_llama_cpps_own_chain_with_the_grammar_first(settings: SamplerSettings,
                                                               vocab: Any) -> None:
    captured = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    fast = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    plain = StepSampler(settings, N_VOCAB, N_CTX, vocab, shortcuts=False)
    chain = llama_chain(settings, N_VOCAB, N_CTX, vocab)
    history = [int(t) for t in np.random.default_rng(9).integers(0, 2000, 80)]
    for s in (captured, fast, plain):
        s.accept(history)
    for tok in history:  # the chain's grammar must not see the prompt: penalties only
        for i in range(1, L.llama_sampler_chain_n(chain)):
            L.llama_sampler_accept(L.llama_sampler_chain_get(chain, i), tok)
    try:
        for step in range(8):
            logits = _logits(200 + step, (0.5, 3.0, 8.0)[step % 3])
            expected = chain_draw(chain, logits)
            token_a, a = captured.sample_captured(logits)
            token_b, b = plain.sample_captured(logits)
            assert (token_a, fast.sample_fast(logits), token_b) == (expected,) * 3, step
            names = [v.name for v in a["stages"]]
            assert names == [v.name for v in b["stages"]]
            assert names[1] == "grammar"  # before every other stage
            ga, gb = (next(v for v in r["stages"] if v.name == "grammar") for r in (a, b))
            for sa, sb in zip(a["stages"], b["stages"], strict=True):
                # The grammar's view on a head (and an off stage's copy of it): the mass within
                # 0.1%, the same listing; its kept counts only the forbidden tokens found.
                if (sa.kept, sb.kept) == (ga.kept, gb.kept) and sa.ids == ga.ids:
                    assert sa.mass == pytest.approx(sb.mass, abs=1.1e-3)
                    assert sa.ids == sb.ids
                    assert sa.probs == pytest.approx(sb.probs, rel=2e-3, abs=1e-12)
                    continue
                assert (sa.name, sa.kept, sa.ids) == (sb.name, sb.kept, sb.ids)
                assert sa.probs == pytest.approx(sb.probs, rel=1e-5, abs=1e-12)
    finally:
        for s in (captured, fast, plain):
            s.close()
        L.llama_sampler_free(chain)


def test_with_penalties_the_grammar_runs_after_them_and_draws_the_same(vocab: Any) -> None:
    """Masking commutes with penalties and DRY: the record lists the grammar after them, and
    the tokens are still those of llama.cpp's chain with the grammar first."""
    settings = JSON.replace(seed=7, repeat_penalty=1.3, dry_multiplier=0.8)
    captured = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    fast = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    chain = llama_chain(settings, N_VOCAB, N_CTX, vocab)
    history = [int(t) for t in np.random.default_rng(3).integers(0, 2000, 80)]
    for s in (captured, fast):
        s.accept(history)
    for tok in history:
        for i in range(1, L.llama_sampler_chain_n(chain)):
            L.llama_sampler_accept(L.llama_sampler_chain_get(chain, i), tok)
    try:
        for step in range(6):
            logits = _logits(300 + step, 3.0)
            expected = chain_draw(chain, logits)
            token, fields = captured.sample_captured(logits)
            assert (token, fast.sample_fast(logits)) == (expected, expected), step
            names = [v.name for v in fields["stages"]]
            assert names[:4] == ["raw", "penalties", "dry", "grammar"]
    finally:
        for s in (captured, fast):
            s.close()
        L.llama_sampler_free(chain)


def _record(fields: dict[str, Any]) -> StepRecord:
    return StepRecord(step=0, text="", piece="", **fields)


def test_the_grammar_stage_says_what_it_forbade(vocab: Any) -> None:
    settings = SamplerSettings(structured_output="gbnf", grammar='root ::= ("yes" | "no")',
                               seed=1, top_n=10)
    sampler = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    try:
        _, fields = sampler.sample_captured(_logits(7, 3.0))
    finally:
        sampler.close()
    view = {v.name: v for v in fields["stages"]}["grammar"]
    # Random scores: the few tokens that start "yes" or "no" hold next to none of the mass.
    assert 0 < view.kept < 100
    assert view.mass < 0.01
    effect = grammar_effect(_record(fields))
    assert effect is not None
    assert effect.overrode
    assert effect.removed_mass > 0.99
    assert effect.words("' Sure'").startswith("grammar removed 100% of the mass; the model "
                                              "wanted \"' Sure'\"")


def test_a_forced_token_the_grammar_forbids_drops_the_grammar_instead_of_aborting(
        vocab: Any) -> None:
    settings = SamplerSettings(structured_output="gbnf", grammar='root ::= "yes"', seed=1)
    sampler = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    try:
        token, _ = sampler.sample_captured(_logits(1, 1.0), forced=5000)
        assert token == 5000
        _, fields = sampler.sample_captured(_logits(2, 1.0))  # goes on without the grammar
        assert [v.name for v in fields["stages"]].count("grammar") == 1
    finally:
        sampler.close()


@pytest.mark.parametrize(("grammar", "words"), [
    ('root ::= ("yes" | no")', "unexpected end of the grammar at line 1, column 23"),
    ('root ::= "a" | item\n', "rule 'item' is used at line 1, column 16 but never defined"),
    ('root ::= "a"\nx ::= ::= "b"', "expecting newline or end at line 2, column 7"),
    ('item ::= "a"', "no 'root' rule"),
])
def test_a_bad_grammar_is_refused_with_its_position(grammar: str, words: str,
                                                    vocab: Any) -> None:
    settings = SamplerSettings(structured_output="gbnf", grammar=grammar)
    with pytest.raises(SettingsError, match="the grammar does not parse") as info:
        StepSampler(settings, N_VOCAB, N_CTX, vocab)
    assert words in str(info.value)


def test_a_schema_that_is_not_json_is_refused_with_its_line_and_column() -> None:
    settings = SamplerSettings(structured_output="json_schema",
                               json_schema='{"type": "object",\n "properties": {,}}')
    with pytest.raises(SettingsError, match=r"not valid JSON: .* at line 2, column 17"):
        settings.validated()


def test_allowed_reads_the_grammar_state(vocab: Any) -> None:
    sampler = grammar_sampler(vocab, 'root ::= "{"')
    try:
        brace = L.llama_tokenize(vocab, b"{", 1, (L.llama_token * 4)(), 4, False, True)
        assert brace == 1
        tokens = (L.llama_token * 4)()
        L.llama_tokenize(vocab, b"{", 1, tokens, 4, False, True)
        assert allowed(sampler, tokens[0])
        assert not allowed(sampler, tokens[0] + 1)
    finally:
        L.llama_sampler_free(sampler)
