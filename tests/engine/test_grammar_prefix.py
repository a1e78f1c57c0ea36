"""The grammar checked over the whole vocabulary by the tokens' prefixes (engine.grammar_prefix)
gives llama.cpp's own verdict for every token, state after state, and the sampler that uses it
draws llama.cpp's tokens.

llama.cpp's real grammar sampler over the shipped Gemma model's vocabulary (loaded
vocabulary-only): the prefix tree's verdicts against llama.cpp's pass over all 262,144 tokens.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator
from typing import Any

import llama_cpp as L
import numpy as np
import pytest

from desktop.core.sampling import SamplerSettings
from desktop.core.structured_output import SCHEMA_PRESETS
from desktop.engine.grammar import grammar_sampler, grammar_text
from desktop.engine.grammar_prefix import PrefixTree, PrefixTrees, prunable
from desktop.engine.llama_session import is_eog, token_piece
from desktop.engine.step_sampler import StepSampler, llama_chain
from desktop.engine.step_shortcuts import Candidates
from tests.engine.test_step_sampler import N_CTX, FullArray, chain_draw

N_VOCAB = 262_144
SCHEMA = SamplerSettings(structured_output="json_schema",
                         json_schema=SCHEMA_PRESETS["Person (name, age)"], top_n=30)


@pytest.fixture(scope="module")
def tree(vocab: Any) -> PrefixTree:
    return PrefixTree.build(functools.partial(_piece, vocab), functools.partial(is_eog, vocab),
                            N_VOCAB)


@pytest.fixture(scope="module")
def trees(vocab: Any, tree: PrefixTree) -> PrefixTrees:
    held = PrefixTrees(functools.partial(_piece, vocab), functools.partial(is_eog, vocab))
    held._tree, held._scratch = tree, Candidates(N_VOCAB)  # built once for the module
    return held


def _tokens(vocab: Any, text: bytes) -> list[int]:
    room = (L.llama_token * (len(text) + 8))()
    n = L.llama_tokenize(vocab, text, len(text), room, len(room), False, False)
    assert n > 0
    return list(room[:n])


def _llama_verdicts(grammar: Any) -> np.ndarray:
    full = FullArray(np.zeros(N_VOCAB, dtype=np.float32))
    L.llama_sampler_apply(grammar, full.ref)
    verdicts: np.ndarray = full.view()["logit"] > -np.inf
    return verdicts


@pytest.fixture
def grammar(vocab: Any) -> Iterator[Any]:
    sampler = grammar_sampler(vocab, grammar_text(SCHEMA))
    yield sampler
    L.llama_sampler_free(sampler)


def test_the_tree_links_tokens_to_their_longest_prefix_token(vocab: Any, tree: PrefixTree) -> None:
    hello = _tokens(vocab, b" hello")
    assert len(hello) == 1
    parent = int(tree.parent[hello[0]])
    assert parent >= 0
    text = _piece(vocab, parent)
    assert 0 < len(text) < len(b" hello")
    assert b" hello".startswith(text)
    depth = {int(t): d for d, ids in enumerate(tree.levels) for t in ids}
    assert depth[hello[0]] == depth[parent] + 1
    assert sum(len(ids) for ids in tree.levels) == N_VOCAB  # every token at one level
    eog = L.llama_vocab_eos(vocab)
    assert tree.parent[eog] == -1  # judged by llama.cpp directly
    assert depth[eog] == 0


def test_verdicts_are_llama_cpps_at_every_state_of_a_json_reply(
        vocab: Any, tree: PrefixTree, grammar: Any) -> None:
    scratch = Candidates(N_VOCAB)
    pruned = 0
    for token in _tokens(vocab, b'{ "name": "Ada \xc3\xa9", "age": 36 }'):
        expected = _llama_verdicts(grammar)
        found = tree.allowed(grammar, scratch)
        if found is not None:  # None: most tokens allowed (inside the string)
            pruned += 1
            assert np.array_equal(found, expected), token
        L.llama_sampler_accept(grammar, token)
    assert pruned >= 6  # the structure: braces, keys, colons, the number


def test_verdicts_hold_after_a_token_that_leaves_a_character_open(
        vocab: Any, tree: PrefixTree, grammar: Any) -> None:
    """A byte token leaves the grammar inside a UTF-8 sequence: every whole-UTF-8 token is then
    judged by its first byte alone, alike for a prefix and the tokens under it."""
    scratch = Candidates(N_VOCAB)
    for token in _tokens(vocab, b'{ "name": "'):
        L.llama_sampler_accept(grammar, token)
    lead = next(t for t in range(N_VOCAB) if _piece(vocab, t) == b"\xe2")  # a byte token
    L.llama_sampler_accept(grammar, lead)
    expected = _llama_verdicts(grammar)
    found = tree.allowed(grammar, scratch)
    assert found is None or np.array_equal(found, expected)
    assert 0 < int(expected.sum()) < N_VOCAB // 2  # only continuation bytes go on


def _piece(vocab: Any, token: int) -> bytes:
    return token_piece(vocab, token, ctypes.create_string_buffer(64), special=True)


def test_inside_a_string_the_tree_leaves_the_pass_to_llama_cpp(
        vocab: Any, tree: PrefixTree, grammar: Any) -> None:
    for token in _tokens(vocab, b'{ "name": "Ad'):
        L.llama_sampler_accept(grammar, token)
    assert tree.allowed(grammar, Candidates(N_VOCAB)) is None


def test_a_grammar_naming_tokens_is_checked_token_by_token() -> None:
    assert prunable(grammar_text(SCHEMA))
    assert not prunable('root ::= <[1234]> "x"')  # a token by id: its text says nothing
    assert not prunable('root ::= !<end_of_turn>+')
    assert not prunable('root ::= "a<" x\nx ::= <think> "\\"" [<]')
    # A '<' in a literal, a character class or a comment is text.
    assert prunable('root ::= "<tool_call>" [<>\\]] "\\"<" # a <comment>\n')


@pytest.mark.parametrize("settings", [
    SCHEMA.replace(seed=1),  # top-k first: few allowed -> the whole vocabulary, by prefixes
    SCHEMA.replace(seed=2, temperature=0),
    SCHEMA.replace(seed=3, top_k=0),  # top-p first: the whole vocabulary at every step
], ids=lambda s: f"seed{s.seed}")
def test_with_the_tree_the_draws_and_records_are_llama_cpps(
        settings: SamplerSettings, vocab: Any, trees: PrefixTrees) -> None:
    captured = StepSampler(settings, N_VOCAB, N_CTX, vocab, prefix_trees=trees)
    fast = StepSampler(settings, N_VOCAB, N_CTX, vocab, prefix_trees=trees)
    plain = StepSampler(settings, N_VOCAB, N_CTX, vocab, shortcuts=False)
    chain = llama_chain(settings, N_VOCAB, N_CTX, vocab)
    rng = np.random.default_rng(5)
    try:
        for step in range(10):
            logits = (rng.standard_normal(N_VOCAB) * (0.5, 3.0)[step % 2]).astype(np.float32)
            expected = chain_draw(chain, logits)
            token_a, a = captured.sample_captured(logits)
            token_b, b = plain.sample_captured(logits)
            assert (token_a, fast.sample_fast(logits), token_b) == (expected,) * 3, step
            for sa, sb in zip(a["stages"], b["stages"], strict=True):
                if sa.name == "grammar" and sa.kept != sb.kept:
                    continue  # a head's view: kept counts the forbidden tokens it found
                assert (sa.name, sa.ids) == (sb.name, sb.ids), step
                assert sa.probs == pytest.approx(sb.probs, rel=2e-3, abs=1e-12)
        assert captured.grammar_full_steps + fast.grammar_full_steps > 0  # the tree ran
    finally:
        for s in (captured, fast, plain):
            s.close()
        L.llama_sampler_free(chain)
