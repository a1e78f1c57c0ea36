"""The "without this part" re-score against the real Gemma: with nothing removed it is the same
log-probabilities a direct decode gives, and removing a system prompt that names a fact makes
that fact less likely."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from desktop.core.conversations import ablation as A
from desktop.core.conversations import xray as X
from desktop.core.sampling import SamplerSettings
from desktop.core.templates.prompt import build_messages, presets, render_prompt
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from tests.engine.conftest import LOAD, load

GREEDY = SamplerSettings(temperature=0.0, max_tokens=8, seed=1)


@pytest.fixture
def fresh_engine(gemma_path: Path) -> Iterator[EngineHost]:
    """An engine whose KV cache holds nothing yet: the reply's prompt is decoded in one batch,
    as `_direct`'s "tail batch" repeats it (the shared engine's cache may hold a prefix of it
    from another test, decoded in other batches: see `_direct`)."""
    host = EngineHost()
    event = load(host, gemma_path)
    assert isinstance(event, P.Loaded), event
    yield host
    host.shutdown()


def _turn(engine: EngineHost, system: str, history: list[dict[str, str]]
          ) -> tuple[X.TurnXray, list[int], list[P.Step]]:
    """The X-ray record of a real reply, as the chat stores it, and the reply's tokens."""
    messages = build_messages(system, "", history)
    rendered = render_prompt(presets()["gemma"], messages, bos_token="<bos>", eos_token="<eos>")
    pieces = tuple((s.text, s.trusted) for s in rendered.segments)
    kept = [(m, n, 100 + i) for i, (m, n) in enumerate(
        zip(history, X.turn_numbers([m["role"] for m in history]), strict=True))]
    sent = X.sent_messages(messages, kept, system_prompt=system, instructions="")
    steps, done = [], None
    for event in engine.wait(engine.generate(pieces, GREEDY), timeout=120):
        if isinstance(event, P.Step):
            steps.append(event)
        elif isinstance(event, P.Done):
            done = event
    assert done is not None
    usage = done.result.usage
    record = X.make_record(pieces, X.label_pieces(pieces, sent),
                           prompt_tokens=usage.prompt_tokens, piece_tokens=usage.piece_tokens,
                           cached_tokens=usage.cached_tokens, prompt_ms=1.0)
    contents = {100 + i: m["content"] for i, m in enumerate(history)}
    turn = X.read_record(1, 1, {"xray": record}, contents)
    assert turn.has_parts
    assert "".join(t for t, _ in A.prompt_pieces(turn)) == "".join(t for t, _ in pieces)
    return turn, list(done.prompt_tokens), steps


def _rescore(engine: EngineHost, prompt: P.PromptPieces, ablated: P.PromptPieces,
             reply: list[int]) -> P.Rescored:
    event = list(engine.wait(engine.rescore(prompt, ablated, tuple(reply)), timeout=120))[-1]
    assert isinstance(event, P.Rescored), event
    return event


def _log_softmax(row: np.ndarray, token: int) -> float:
    row = row.astype(np.float64)
    return float(row[token] - row.max() - np.log(np.exp(row - row.max()).sum()))


def _direct(path: Path, prompt: list[int], reply: list[int], how: str) -> list[float]:
    """The same tokens in a fresh context, log-softmax in numpy. `how`: "one batch" (prompt and
    reply together), "tail batch" (the prompt in one batch, as the generation decoded it, its last
    token taken back out of the cache, then that token and the reply in one batch) or "one by
    one" (the prompt but its last token, then one token at a time).

    A position's cache entries can hang on the batch it was decoded in: with some builds of
    llama.cpp's CPU kernels (seen on an AVX2-only x86-64 machine, not on the AVX-512 ones
    before), the prompt but its last token decoded alone gives figures up to 0.27 nats away from
    the same positions decoded within the whole prompt, while taking a token back out of the
    cache and decoding it again changes nothing. So "tail batch" repeats the generation's
    batches exactly."""
    from desktop.engine.llama_session import LlamaSession

    session = LlamaSession(str(path), LOAD)
    try:
        if how == "one batch":
            session.decode([*prompt, *reply[:-1]], all_logits=True)
            return [_log_softmax(session.logits_at(len(prompt) - 1 + i), t)
                    for i, t in enumerate(reply)]
        if how == "tail batch":
            session.decode(prompt)
            session.rollback(len(prompt) - 1)
            session.decode([prompt[-1], *reply[:-1]], all_logits=True)
            return [_log_softmax(session.logits_at(i), t) for i, t in enumerate(reply)]
        session.decode(prompt[:-1])
        out = []
        for token, before in zip(reply, [prompt[-1], *reply[:-1]], strict=True):
            session.decode([before])
            out.append(_log_softmax(session.logits(), token))
        return out
    finally:
        session.close()


def test_nothing_removed_matches_the_generation_and_a_direct_decode(
        fresh_engine: EngineHost, gemma_path: Path) -> None:
    engine = fresh_engine
    turn, prompt, steps = _turn(engine, "You are a terse geography tutor.",
                                [{"role": "user", "content": "What is the capital of France?"}])
    reply = [s.record.token_id for s in steps]
    assert len(reply) >= 4
    pieces = A.prompt_pieces(turn)
    result = _rescore(engine, pieces, pieces, reply)
    assert result.full.token_ids == result.ablated.token_ids == tuple(reply)
    assert result.full.prompt_tokens == len(prompt)  # the record re-tokenizes to the same ids
    assert result.full.reused_tokens == len(prompt) - 1  # the second pass reused the prompt
    np.testing.assert_allclose(result.full.logprobs, result.ablated.logprobs, atol=1e-4)
    # A fresh context decoding the same tokens in the same batches: the same figures, so the
    # reused cache held exactly the prompt.
    direct = _direct(gemma_path, prompt, reply, "tail batch")
    np.testing.assert_allclose(result.full.logprobs, direct, atol=1e-5)
    # Batches of other shapes (the whole in one; one token at a time, as the chart's raw
    # probabilities were made) sum their floats in another order: measured up to 0.07 and
    # 0.15 nats apart on this model (FACTS.md) — close, and never off by a position.
    whole = _direct(gemma_path, prompt, reply, "one batch")
    np.testing.assert_allclose(result.full.logprobs, whole, atol=0.25)
    raw = [math.log(s.record.raw_prob) for s in steps]
    np.testing.assert_allclose(result.full.logprobs, raw, atol=0.25)
    shifted = [math.log(s.record.raw_prob) for s in steps[1:]]
    assert max(abs(a - b) for a, b in zip(result.full.logprobs, shifted)) > 0.5
    ablation = A.Ablation(A.Target(X.SYSTEM), result.full, result.ablated)
    assert abs(ablation.total_drop) < 1e-2
    assert result.full.top_ids[0] == reply[0]  # greedy: the first token was the raw favourite


def test_without_the_system_prompt_the_fact_it_names_is_less_likely(
        engine: EngineHost) -> None:
    system = "The secret password is Tangerine. Tell it to anyone who asks."
    question = "What is the secret password?"
    turn, _, _ = _turn(engine, system, [{"role": "user", "content": question}])
    answer = list(engine.wait(engine.tokenize((("The secret password is Tangerine.", False),),
                                              add_bos=False), timeout=60))[-1]
    assert isinstance(answer, P.Tokenized)
    reply = list(answer.tokens)
    target = A.Target(X.SYSTEM)
    ablated = A.ablated_pieces(turn, target)
    assert system not in "".join(t for t, _ in ablated)
    assert question in "".join(t for t, _ in ablated)
    result = _rescore(engine, A.prompt_pieces(turn), ablated, reply)
    assert result.ablated.prompt_tokens < result.full.prompt_tokens
    ablation = A.Ablation(target, result.full, result.ablated)
    tokens = ablation.tokens()
    fact = [t for t in tokens if "Tang" in t.piece or "ger" in t.piece or "ine" in t.piece]
    assert fact, [t.piece for t in tokens]
    assert fact[0].drop > 2.0, [t.words() for t in tokens]  # > 7× less likely
    assert ablation.total_drop > 2.0
    assert fact[0] in ablation.most_affected(2)
    words = ablation.words()
    at = next(i for i, w in enumerate(words) if "Tangerine" in w.text)
    end = words[at + 1].first if at + 1 < len(words) else len(tokens)
    assert words[at].drop == pytest.approx(sum(t.drop for t in tokens[words[at].first:end]))
    assert words[at].drop > 2.0
    assert "less likely" in ablation.summary()


def test_the_cache_is_left_holding_the_whole_prompt(engine: EngineHost) -> None:
    """The ablated prompt goes first, so the chat's next turn still reuses the whole prompt."""
    turn, prompt, steps = _turn(engine, "You answer in French.",
                                [{"role": "user", "content": "Say hello."}])
    reply = [s.record.token_id for s in steps]
    ablated = A.ablated_pieces(turn, A.Target(X.SYSTEM))
    _rescore(engine, A.prompt_pieces(turn), ablated, reply)
    # Asking again for the same prompt reuses all of it but the last token.
    done = next(e for e in engine.wait(engine.generate(A.prompt_pieces(turn), GREEDY),
                                       timeout=120) if isinstance(e, P.Done))
    assert done.result.usage.cached_tokens == len(prompt) - 1


def test_bad_requests_are_answered_in_words(engine: EngineHost) -> None:
    pieces = (("Hello", False),)
    event = list(engine.wait(engine.rescore(pieces, pieces, (10**9,)), timeout=60))[-1]
    assert isinstance(event, P.EngineError)
    assert "vocabulary" in event.message
    event = list(engine.wait(engine.rescore(pieces, pieces, ()), timeout=60))[-1]
    assert isinstance(event, P.EngineError)
    assert "no tokens" in event.message
    long_reply = (236776,) * (LOAD.n_ctx + 1)
    event = list(engine.wait(engine.rescore(pieces, pieces, long_reply), timeout=60))[-1]
    assert isinstance(event, P.EngineError)
    assert event.kind == "context_overflow"


def test_one_token_at_a_time_gives_the_same_scores(gemma_path: Path) -> None:
    """Sessions without batched logits (transformers) take the one-token path: same figures."""
    from desktop.engine.llama_session import LlamaSession
    from desktop.engine.rescore import score

    class OneAtATime:  # a real LlamaSession with only its last-position logits in view
        def __init__(self, session: LlamaSession) -> None:
            self._s = session

        def __getattr__(self, name: str) -> object:
            if name in ("logits_at", "n_batch"):
                raise AttributeError(name)
            return getattr(self._s, name)

    session = LlamaSession(str(gemma_path), LOAD)
    try:
        prompt = session.tokenize_pieces((("The capital of France is", False),), True)
        reply = session.tokenize(" Paris, and the capital of Italy is Rome.",
                                 parse_special=False)
        batched = score(session, prompt, reply)
        single = score(OneAtATime(session), prompt, reply)  # type: ignore[arg-type]
    finally:
        session.close()
    assert single.token_ids == batched.token_ids
    assert single.reused_tokens == len(prompt) - 1  # the batched pass left the prompt cached
    np.testing.assert_allclose(
        single.logprobs, _direct(gemma_path, prompt, reply, "one by one"), atol=1e-5)
    np.testing.assert_allclose(
        batched.logprobs, _direct(gemma_path, prompt, reply, "tail batch"), atol=1e-5)
