"""`core.generation`: the settings a reply was sampled with — resolved seed, words for the chart
header, per-part spans — and the Generation rebuilt from what the store saved."""

from __future__ import annotations

import json
from pathlib import Path

from desktop.core.generation import (
    Generation,
    ModelRef,
    SettingsSpan,
    resolve_seed,
    sampled_with,
    spans_from_meta,
)
from desktop.core.sampler_stages import RANDOM_SEED
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, StageView, StepRecord, Timings, Usage


def record(step: int, text: str = "x") -> StepRecord:
    raw = StageView("raw", 2, 1.0, (10 + step, 7), (0.75, 0.25))
    return StepRecord(step=step, token_id=10 + step, text=text, piece=text, prob=0.75,
                      raw_prob=0.75, raw_rank=1, entropy_raw=0.8, entropy_final=0.8,
                      stages=(raw,), pieces={10 + step: text, 7: "y"})


def done(n: int) -> GenerationDone:
    return GenerationDone("stop", "x" * n, Usage(5, n), Timings(1.0, 2.0, 3.0, 40.0))


def test_a_random_seed_becomes_a_concrete_one_and_a_fixed_one_stays() -> None:
    resolved = resolve_seed(SamplerSettings(), draw=lambda _n: 1233)
    assert resolved.seed == 1234
    assert resolve_seed(SamplerSettings()).seed != RANDOM_SEED
    assert 0 < resolve_seed(SamplerSettings()).seed < RANDOM_SEED
    fixed = SamplerSettings(seed=7)
    assert resolve_seed(fixed) is fixed


def test_the_header_words_come_from_the_settings_and_the_stage_registry() -> None:
    s = SamplerSettings(temperature=0.2, top_k=40, top_p=0.95, min_p=0.05, seed=1234)
    assert sampled_with(s) == "T 0.20 · top-k 40 · top-p 0.95 · min-p 0.05 · seed 1234"
    # Stages the settings turn off are left out; the others follow the chain's order.
    s2 = s.replace(top_k=0, min_p=0.0, top_p=0.5, repeat_penalty=1.1, order=(
        "top_p", "penalties", "dry", "top_n_sigma", "top_k", "typical", "min_p", "xtc",
        "temperature"))
    assert sampled_with(s2) == ("T 0.20 · top-p 0.50 · penalties repeat 1.10 (last 64) · "
                                "seed 1234")
    assert sampled_with(s.replace(temperature=0.0)).startswith("greedy (T 0)")
    assert sampled_with(s.replace(min_p=0.005)).split(" · ")[3] == "min-p 0.005"
    assert sampled_with(s.replace(mirostat=2)).startswith("T 0.20 · Mirostat v2 τ 5.00")
    assert sampled_with(SamplerSettings()).endswith("seed random (not recorded)")
    assert sampled_with(None) == "settings not recorded"
    # Structured output is part of what a step was sampled with.
    assert sampled_with(s.replace(structured_output="json")).startswith(
        "T 0.20 · grammar: Any JSON · top-k 40")


def test_a_live_generation_keeps_what_was_sent_and_a_saved_one_reads_it_back() -> None:
    sent = SamplerSettings(temperature=0.2, top_p=0.95, seed=99)
    gen = Generation.live(3, sent, model=ModelRef("Gemma", "/m/gemma.gguf"),
                          template_id="gemma")
    added = gen.extend([record(0, "Hel"), record(1, "lo")])
    assert [r.step for r in added] == [0, 1]
    gen.finish(done(2), (1, 2, 3))
    assert gen.finished
    assert gen.prompt_tokens == (1, 2, 3)
    meta = json.loads(json.dumps(gen.meta()))  # what the store writes, through JSON
    assert meta["seed"] == 99
    assert meta["sampler"]["temperature"] == 0.2
    back = Generation.saved(meta, gen.steps, message_id=12)
    assert back.settings == sent
    assert back.settings_at(1) == sent
    assert back.model == ModelRef("Gemma", "/m/gemma.gguf")
    assert back.message_id == 12
    assert back.kind == "stored"
    assert back.finished
    assert back.sampled_with(0) == gen.sampled_with(0)


def test_a_saved_reply_without_settings_or_with_the_random_marker_says_so() -> None:
    assert Generation.saved(None, ()).settings is None
    assert Generation.saved({"sampler": "damaged"}, ()).settings is None
    old = {"sampler": SamplerSettings(temperature=0.7).to_json(), "seed": RANDOM_SEED}
    gen = Generation.saved(old, ())
    assert gen.settings is not None
    assert gen.settings.temperature == 0.7
    assert gen.sampled_with(0).endswith("seed random (not recorded)")


def test_continue_with_a_token_keeps_the_prefix_records_and_their_settings() -> None:
    first = SamplerSettings(temperature=0.2, seed=1)
    later = SamplerSettings(temperature=1.5, top_p=0.5, seed=2)
    prefix = (record(0, "A"), record(1, "B"))
    gen = Generation.live(5, later, prefix=prefix, prefix_spans=(SettingsSpan(0, first),),
                          prompt_tokens=(1, 2, 10, 11))
    assert gen.prompt_tokens == (1, 2)  # the reply's own prompt: the prefix is its steps
    added = gen.extend([record(0, "Z"), record(1, "!")])  # the engine numbers from 0
    assert [r.step for r in added] == [2, 3]
    assert gen.steps[0] is prefix[0]
    assert gen.settings_at(1) == first
    assert gen.settings_at(2) == later
    gen.finish(done(2), (1, 2, 10, 11))
    assert gen.prompt_tokens == (1, 2)
    spans = spans_from_meta(json.loads(json.dumps(gen.meta())))
    assert spans == (SettingsSpan(0, first), SettingsSpan(2, later))


def test_an_exported_and_imported_reply_rebuilds_the_same_generation(tmp_path: Path) -> None:
    from desktop.core.conversations.files import export_json, import_json
    from desktop.core.conversations.store import ConversationStore

    first = SamplerSettings(temperature=0.2, top_p=0.95, seed=1234)
    later = SamplerSettings(temperature=1.5, top_p=0.5, seed=99)
    gen = Generation.live(1, later, model=ModelRef("Gemma", "/m/g.gguf"),
                          prefix=(record(0, "A"),), prefix_spans=(SettingsSpan(0, first),))
    gen.extend([record(0, "B")])
    gen.finish(done(1))
    with ConversationStore(tmp_path / "a.sqlite3") as store:
        c = store.create("Sea")
        user = store.append(c.id, "user", "Hi")
        reply = store.add_message(c.id, "assistant", gen.text(), parent_id=user.id,
                                  meta={**gen.meta(), "finish_reason": "stop"})
        store.save_steps(reply.id, gen.steps)
        data = json.loads(json.dumps(export_json(store, c.id)))
    with ConversationStore(tmp_path / "b.sqlite3") as store:
        imported = import_json(store, data)
        [_, message] = store.active_path(imported.id)
        back = Generation.saved(message.meta, store.load_steps(message.id),
                                message_id=message.id)
    assert back.spans == gen.spans
    assert [back.sampled_with(i) for i in range(2)] == [gen.sampled_with(i) for i in range(2)]
    assert back.sampled_with(0).endswith("seed 1234")
    assert back.model == gen.model
