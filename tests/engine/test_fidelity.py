"""What the engine reports is what it sampled: real llama.cpp, the shipped Gemma model."""

from __future__ import annotations

import math

import pytest

from desktop.core.sampling import SamplerSettings
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from tests.engine.conftest import run

PROMPT = "The capital of France is"


def test_greedy_continues_the_sentence(engine: EngineHost) -> None:
    steps, done = run(engine, "Elon Musk is", SamplerSettings(temperature=0, max_tokens=32))
    assert done.finish_reason in ("length", "stop")
    assert len(steps) == done.usage.completion_tokens
    assert len(done.text.split()) >= 5
    assert done.text == "".join(s.text for s in steps)


def test_temperature_zero_equals_argmax_of_raw_logits(engine: EngineHost) -> None:
    steps, _ = run(engine, PROMPT, SamplerSettings(temperature=0, max_tokens=12))
    for s in steps:
        raw = s.stages[0]
        assert raw.name == "raw"
        assert s.token_id == raw.ids[0]
        assert s.raw_rank == 1
        assert s.prob == pytest.approx(1.0)
        assert s.stages[-1].kept == 1


def test_stage_names_follow_the_chain_order(engine: EngineHost) -> None:
    order = ("penalties", "temperature", "top_k", "typical", "top_p", "min_p")
    steps, _ = run(engine, PROMPT, SamplerSettings(max_tokens=2, seed=1, order=order))
    assert [st.name for st in steps[0].stages] == ["raw", *order]


def test_chosen_token_is_inside_the_last_stage(engine: EngineHost) -> None:
    settings = SamplerSettings(temperature=1.3, top_k=30, top_p=0.9, min_p=0.02, seed=7,
                               max_tokens=40, top_n=50)
    steps, _ = run(engine, PROMPT, settings)
    for s in steps:
        last = s.stages[-1]
        assert s.token_id in last.ids  # kept ≤ top_k ≤ top_n, so the whole kept set is listed
        assert s.prob == pytest.approx(last.prob_of(s.token_id))
        assert s.prob > 0
        assert sum(last.probs) == pytest.approx(1.0, abs=1e-6)


def test_kept_sets_match_the_definitions(engine: EngineHost) -> None:
    settings = SamplerSettings(temperature=0.7, top_k=40, top_p=0.8, min_p=0.05, seed=3,
                               max_tokens=25, top_n=50)
    steps, _ = run(engine, PROMPT, settings)
    for s in steps:
        raw, top_k, top_p, min_p, temp = (s.stage(n) for n in (
            "raw", "top_k", "top_p", "min_p", "temperature"))
        # top-k keeps the k most probable raw tokens; its mass is theirs under the raw softmax.
        assert top_k.kept == min(40, s.n_vocab)
        assert top_k.ids[:10] == raw.ids[:10]
        assert top_k.mass == pytest.approx(sum(raw.probs[:40]), rel=1e-4)
        # top-p: the smallest head of top-k's distribution whose mass reaches p.
        cum = [sum(top_k.probs[: i + 1]) for i in range(len(top_k.probs))]
        n = top_p.kept
        assert cum[n - 1] >= 0.8 - 1e-5
        assert n == 1 or cum[n - 2] < 0.8 + 1e-5
        # min-p: every survivor has at least min_p × the top probability of top-p's output.
        floor = 0.05 * top_p.probs[0]
        kept_probs = [top_p.prob_of(i) for i in min_p.ids]
        assert all(p is not None and p >= floor * (1 - 1e-4) for p in kept_probs)
        excluded = [p for i, p in zip(top_p.ids, top_p.probs) if i not in min_p.ids]
        assert all(p < floor * (1 + 1e-4) for p in excluded)
        # masses only shrink along a truncating chain; temperature keeps the set.
        assert 1.0 == raw.mass >= top_k.mass >= top_p.mass >= min_p.mass == temp.mass
        assert temp.kept == min_p.kept
        # entropy in bits is finite and the final distribution is the sharper one here.
        assert 0 <= s.entropy_final <= s.entropy_raw < math.log2(s.n_vocab)


def test_seeded_run_repeats_exactly(engine: EngineHost) -> None:
    settings = SamplerSettings(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=1234,
                               max_tokens=20)
    first, _ = run(engine, PROMPT, settings)
    second, _ = run(engine, PROMPT, settings)
    assert [s.token_id for s in first] == [s.token_id for s in second]
    assert [s.prob for s in first] == [s.prob for s in second]


def test_penalties_push_down_tokens_already_seen(engine: EngineHost) -> None:
    text = "cat cat cat cat cat cat cat cat"
    settings = SamplerSettings(temperature=0, repeat_penalty=3.0, max_tokens=1)
    steps, _ = run(engine, text, settings)
    raw, pen = steps[0].stages[0], steps[0].stages[1]
    assert pen.name == "penalties"
    assert raw.ids != pen.ids or raw.probs != pen.probs


def test_capture_off_gives_the_same_tokens(engine: EngineHost) -> None:
    settings = SamplerSettings(temperature=0, max_tokens=16)
    on, _ = run(engine, PROMPT, settings)
    off, _ = run(engine, PROMPT, settings, capture=False)
    assert [s.token_id for s in on] == [s.token_id for s in off]
    assert off[0].stages == ()


def test_mirostat_reports_its_own_stage(engine: EngineHost) -> None:
    # As in llama.cpp, Mirostat replaces the chain: temperature, then Mirostat, which draws.
    settings = SamplerSettings(mirostat=2, seed=5, max_tokens=8, repeat_penalty=1.3)
    steps, _ = run(engine, PROMPT, settings)
    for s in steps:
        assert [st.name for st in s.stages] == ["raw", "temperature", "mirostat"]
        last = s.stages[-1]
        assert s.token_id in last.ids or last.kept > len(last.ids)


def test_every_stage_is_reported_in_llamas_default_order(engine: EngineHost) -> None:
    settings = SamplerSettings(seed=21, max_tokens=6, top_k=0, repeat_penalty=1.2,
                               dry_multiplier=0.8, top_n_sigma=2.5, typical_p=0.95,
                               xtc_probability=0.5, xtc_threshold=0.05, dynatemp_range=0.3)
    steps, done = run(engine, "Once upon a time, once upon a time, once upon a", settings)
    assert done.usage.completion_tokens == len(steps) >= 1
    for s in steps:
        assert [st.name for st in s.stages] == [
            "raw", "penalties", "dry", "top_n_sigma", "top_k", "typical", "top_p", "min_p",
            "xtc", "temperature"]
        assert s.token_id in s.stages[-1].ids or s.stages[-1].kept > len(s.stages[-1].ids)
        assert 0 < s.prob <= 1


def test_stop_string_ends_and_is_removed(engine: EngineHost) -> None:
    _, done = run(engine, "1, 2, 3, 4,", SamplerSettings(temperature=0, max_tokens=40,
                                                              stop=("8",)))
    assert done.finish_reason == "stop"
    assert done.stop_string == "8"
    assert "8" not in done.text
    assert "7" in done.text


def test_replay_recomputes_the_exact_step(engine: EngineHost) -> None:
    settings = SamplerSettings(temperature=0.9, seed=11, max_tokens=6)
    steps, _ = run(engine, PROMPT, settings)
    events = list(engine.wait(engine.generate(((PROMPT, False),), settings)))
    prompt_tokens = next(e for e in events if isinstance(e, P.Done)).prompt_tokens
    k = 3
    context = prompt_tokens + tuple(s.token_id for s in steps[:k])
    replay = list(engine.wait(engine.replay(context, steps[k].token_id, k, settings,
                                            len(prompt_tokens))))
    record = replay[-1].record
    assert record.replayed
    assert record.token_id == steps[k].token_id
    for a, b in zip(record.stages, steps[k].stages):
        assert (a.name, a.ids, a.kept) == (b.name, b.ids, b.kept)
        assert a.probs == pytest.approx(b.probs, rel=1e-5)
    # Under greedy settings the replayed token keeps probability 1 only if it was the argmax.
    greedy = list(engine.wait(engine.replay(context, steps[k].token_id, k,
                                            settings.replace(temperature=0), len(prompt_tokens))))
    g = greedy[-1].record
    assert g.prob == (1.0 if steps[k].raw_rank == 1 else 0.0)


def test_cancel_stops_within_one_token(engine: EngineHost) -> None:
    rid = engine.generate(((PROMPT, False),), SamplerSettings(max_tokens=400, ignore_eos=True))
    seen = 0
    for event in engine.wait(rid, timeout=120):
        if isinstance(event, P.Step):
            seen += 1
            if seen == 3:
                engine.cancel()
        elif isinstance(event, P.Done):
            assert event.result.finish_reason == "cancelled"
            # Steps already in flight when cancel was sent may still arrive, but only a few.
            assert event.result.usage.completion_tokens <= 6
            break
