"""Speculative decoding keeps Openlid's promise: every token is the model's own draw, so with a
seed the reply is the reply without a draft, and every StepRecord is the record without a draft
plus the draft's proposal for its position.

The draw is the model's; its logits are llama.cpp's, and llama.cpp computes a batch's logits a
little differently from one token's at a time. Two models, accordingly. A tiny F32 llama
(tests/ggufmaker.py), whose batched logits differ from single-token ones in the seventh digit:
its replies are compared token for token at any temperature, with penalties and Mirostat, and
its StepRecords field by field (probabilities to 1e-3) — with flash attention off, since
llama.cpp's CPU flash-attention kernel sums the values in F16, which moves those differences up
to the fourth digit (what a drafted reply on a real model meets either way). The ready Gemma 3
270M (Q4_K_M): the activations of a quantized model are rounded to 8 bits, which turns those
last-digit differences into ones in the second or third digit of a probability, so a near-tie
can fall the other way; its replies are compared at temperature 0 on prompts whose continuations
are not near-ties, and its bookkeeping exactly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, StepRecord
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from tests.engine.conftest import LOAD, load, run
from tests.ggufmaker import write_runnable_gguf


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_runnable_gguf(tmp_path_factory.mktemp("spec") / "tiny-runnable.gguf")


def _host(path: Path, settings: LoadSettings) -> EngineHost:
    host = EngineHost()
    event = load(host, path, settings)
    if not isinstance(event, P.Loaded):
        host.shutdown()
        raise AssertionError(event)
    return host


@pytest.fixture
def hosts() -> Iterator[list[EngineHost]]:
    started: list[EngineHost] = []
    yield started
    for host in started:
        host.shutdown()


def _runs(hosts: list[EngineHost], path: Path, prompt: str, settings: SamplerSettings,
          plain: LoadSettings = LOAD, **drafts: LoadSettings
          ) -> dict[str, tuple[list[StepRecord], GenerationDone]]:
    """The same request on the model loaded with `plain` (no draft) and with each draft."""
    out = {}
    for name, load_settings in {"plain": plain, **drafts}.items():
        host = _host(path, load_settings)
        hosts.append(host)
        out[name] = run(host, prompt, settings)
    return out


def _same_record(drafted: StepRecord, plain: StepRecord) -> None:
    """The drafted step is the plain one: the same token, text and stages (floats to 1e-3; the
    batch's logits differ in the last digits), plus the draft's proposal and its piece."""
    exact = ("step", "token_id", "text", "piece", "raw_rank", "n_vocab", "position", "replayed")
    for name in exact:
        assert getattr(drafted, name) == getattr(plain, name), (plain.step, name)
    for name in ("prob", "raw_prob", "entropy_raw", "entropy_final"):
        assert getattr(drafted, name) == pytest.approx(getattr(plain, name), rel=1e-3,
                                                       abs=1e-4), (plain.step, name)
    # Stage by stage: the same survivors, the same head; tokens of nearly equal probability in a
    # top-N list may swap places, so the rest is compared token by token.
    assert [(s.name, s.kept, s.ids[:5]) for s in drafted.stages] == [
        (s.name, s.kept, s.ids[:5]) for s in plain.stages]
    for mine, theirs in zip(drafted.stages, plain.stages, strict=True):
        assert mine.mass == pytest.approx(theirs.mass, rel=1e-3, abs=1e-4)
        shared = set(mine.ids) & set(theirs.ids)
        assert len(shared) >= len(theirs.ids) - 2
        assert [mine.prob_of(i) for i in sorted(shared)] == pytest.approx(
            [theirs.prob_of(i) for i in sorted(shared)], rel=1e-3, abs=1e-4)
    extra = {i: t for i, t in drafted.pieces.items() if i not in plain.pieces}
    assert extra == ({drafted.draft_token: drafted.pieces[drafted.draft_token]}
                     if drafted.draft_token >= 0 and extra else {})


def _check_books(steps: list[StepRecord], done: GenerationDone, kind: str) -> None:
    assert done.draft is not None
    assert done.draft.kind == kind
    accepted = [r for r in steps if r.accepted]
    rejected = [r for r in steps if r.draft_token >= 0 and not r.accepted]
    assert done.draft.accepted == len(accepted)
    # Each pass's proposal is checked until its first rejection; the rest is dropped unchecked.
    assert len(accepted) + len(rejected) <= done.draft.proposed
    assert len(rejected) <= done.draft.passes
    for r in accepted:
        assert r.pieces[r.draft_token] == r.piece
    assert [r.position for r in steps] == list(range(steps[0].position,
                                                      steps[0].position + len(steps)))


_TINY = SamplerSettings(max_tokens=48, ignore_eos=True)
TINY_LOAD = LOAD.replace(flash_attn="off")  # F32 all through (see the module's words)
TINY_SETTINGS = {
    "greedy": _TINY.replace(temperature=0.0, seed=1),
    "temperature_1": _TINY.replace(temperature=1.0, seed=7),
    "penalties": _TINY.replace(temperature=0.9, seed=3, repeat_penalty=1.3,
                               presence_penalty=0.4, top_k=20),
    "mirostat": _TINY.replace(temperature=1.0, seed=5, mirostat=2),
}


@pytest.mark.parametrize("name", list(TINY_SETTINGS))
def test_tiny_model_drafts_change_nothing_but_the_speed(tiny: Path, hosts: list[EngineHost],
                                                        name: str) -> None:
    settings = TINY_SETTINGS[name]
    own = TINY_LOAD.replace(draft="model", draft_model=str(tiny), n_draft=4, draft_p_min=0.0)
    ngram = TINY_LOAD.replace(draft="ngram", n_draft=4)
    runs = _runs(hosts, tiny, "the press and the history of the press and the history of the",
                 settings, TINY_LOAD, own=own, ngram=ngram)
    plain_steps, plain_done = runs["plain"]
    for kind, label in (("model", "own"), ("ngram", "ngram")):
        steps, done = runs[label]
        assert done.text == plain_done.text, label
        assert len(steps) == len(plain_steps)
        for drafted, plain in zip(steps, plain_steps, strict=True):
            _same_record(drafted, plain)
        _check_books(steps, done, kind)
    own_steps, own_done = runs["own"]
    assert own_done.draft is not None
    assert own_done.draft.proposed > 0
    if name == "greedy":  # a model drafting for itself is always right about its argmax
        assert own_done.draft.accepted == own_done.draft.proposed
        assert all(r.accepted for r in own_steps if r.draft_token >= 0)
        ngram_done = runs["ngram"][1]  # a greedy random model loops: the context repeats
        assert ngram_done.draft is not None
        assert ngram_done.draft.accepted > 0
    else:  # the draft drafts greedily; the model samples
        assert any(r.draft_token >= 0 and not r.accepted for r in own_steps)


def test_tiny_model_forced_tokens_are_not_drafted(tiny: Path, hosts: list[EngineHost]) -> None:
    host = _host(tiny, LOAD.replace(draft="ngram"))
    hosts.append(host)
    forced = (100, 101, 102, 100, 101)
    steps: list[StepRecord] = []
    request = host.generate((("the press and the press and the", False),),
                            SamplerSettings(temperature=0.0, max_tokens=12),
                            forced_tokens=forced)
    for event in host.wait(request, timeout=120):
        if isinstance(event, P.Step):
            steps.append(event.record)
    assert [r.token_id for r in steps[: len(forced)]] == list(forced)
    assert all(r.draft_token == -1 for r in steps[: len(forced)])


# --- the ready Gemma ------------------------------------------------------------------------

DAYS = ("The days of the week are Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, "
        "Sunday. The days of the week are")
CODE = "def fibonacci(n):\n"


def test_gemma_as_its_own_draft_is_always_accepted(gemma_path: Path,
                                                   hosts: list[EngineHost]) -> None:
    own = LOAD.replace(draft="model", draft_model=str(gemma_path), n_draft=6)
    settings = SamplerSettings(temperature=0.0, seed=11, max_tokens=24)
    runs = _runs(hosts, gemma_path, DAYS, settings, own=own)
    (plain, plain_done), (steps, done) = runs["plain"], runs["own"]
    assert done.text == plain_done.text
    assert [r.token_id for r in steps] == [r.token_id for r in plain]
    assert done.draft is not None
    assert done.draft.proposed > 0
    assert done.draft.proposed == done.draft.accepted == sum(r.accepted for r in steps)
    assert all(r.accepted for r in steps if r.draft_token >= 0)
    _check_books(steps, done, "model")


def test_gemma_own_draft_at_temperature_1_keeps_the_books(gemma_path: Path,
                                                          hosts: list[EngineHost]) -> None:
    own = LOAD.replace(draft="model", draft_model=str(gemma_path), n_draft=6)
    host = _host(gemma_path, own)
    hosts.append(host)
    steps, done = run(host, DAYS, SamplerSettings(temperature=1.0, seed=11, max_tokens=24))
    _check_books(steps, done, "model")
    assert done.text == "".join(r.text for r in steps)
    for r in steps:  # the token is the target's draw: it is in its final distribution
        assert r.prob > 0
        assert r.stages[-1].prob_of(r.token_id) is not None


def test_gemma_ngram_draft_rejects_some_and_keeps_the_text(gemma_path: Path,
                                                          hosts: list[EngineHost]) -> None:
    settings = SamplerSettings(temperature=0.0, seed=3, max_tokens=40)
    runs = _runs(hosts, gemma_path, DAYS, settings, ngram=LOAD.replace(draft="ngram"))
    (plain, plain_done), (steps, done) = runs["plain"], runs["ngram"]
    assert done.text == plain_done.text
    assert [r.token_id for r in steps] == [r.token_id for r in plain]
    _check_books(steps, done, "ngram")
    assert done.draft is not None
    assert 0 < done.draft.accepted < done.draft.proposed
    assert any(r.draft_token >= 0 and not r.accepted for r in steps)


@pytest.fixture(scope="module")
def perturbed(gemma_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ready Gemma with three layers' FFN norms scaled at random: the same vocabulary,
    other weights."""
    from desktop.core.gguf_file.reader import parse_file

    out = tmp_path_factory.mktemp("perturbed") / "gemma-perturbed.gguf"
    shutil.copyfile(gemma_path, out)
    parsed = parse_file(str(out))  # offsets only: no pass over the 262k-token vocabulary
    rng = np.random.default_rng(0)
    changed = 0
    data = np.memmap(out, dtype=np.uint8, mode="r+")
    for tensor in parsed.tensors:
        if tensor.name in ("blk.3.ffn_norm.weight", "blk.7.ffn_norm.weight",
                           "blk.11.ffn_norm.weight"):
            assert tensor.n_bytes == 4 * tensor.n_elements  # F32
            at = parsed.data_start + tensor.offset
            values = data[at : at + tensor.n_bytes].view(np.float32)
            values *= rng.uniform(0.3, 1.7, values.shape).astype(np.float32)
            changed += 1
    data.flush()
    del data
    assert changed == 3
    return out


def test_gemma_perturbed_draft_is_rejected_sometimes(gemma_path: Path, perturbed: Path,
                                                     hosts: list[EngineHost]) -> None:
    draft = LOAD.replace(draft="model", draft_model=str(perturbed), n_draft=8, draft_p_min=0.0)
    settings = SamplerSettings(temperature=0.0, seed=5, max_tokens=32)
    runs = _runs(hosts, gemma_path, CODE, settings, draft=draft)
    (plain, plain_done), (steps, done) = runs["plain"], runs["draft"]
    assert done.text == plain_done.text
    assert [r.token_id for r in steps] == [r.token_id for r in plain]
    _check_books(steps, done, "model")
    assert done.draft is not None
    assert done.draft.accepted > 0
    assert any(r.draft_token >= 0 and not r.accepted for r in steps)


def test_a_draft_with_another_vocabulary_is_refused(gemma_path: Path, tiny: Path) -> None:
    host = EngineHost()
    try:
        event = load(host, gemma_path, LOAD.replace(draft="model", draft_model=str(tiny)))
        assert isinstance(event, P.EngineError), event
        assert event.kind == "load_failed"
        assert "draft model" in event.message
        assert "tokens" in event.message
        assert "tokenizer" in event.message
        # The worker unloaded the model too: a load that failed leaves nothing half-loaded.
        event = next(iter(host.wait(host.generate((("x", False),)), timeout=60)))
        assert isinstance(event, P.EngineError)
        assert "no model" in event.message
    finally:
        host.shutdown()


def test_a_missing_draft_file_is_named(gemma_path: Path, tmp_path: Path) -> None:
    host = EngineHost()
    try:
        missing = tmp_path / "nowhere.gguf"
        event = load(host, gemma_path, LOAD.replace(draft="model", draft_model=str(missing)))
        assert isinstance(event, P.EngineError), event
        assert event.message.startswith("the draft model: ")
        assert str(missing) in event.message
    finally:
        host.shutdown()


def test_tiny_model_without_capture_drafts_the_same_text(tiny: Path,
                                                        hosts: list[EngineHost]) -> None:
    settings = _TINY.replace(temperature=0.7, seed=9, top_k=40)
    texts = {}
    for name, load_settings in {"plain": LOAD, "own": LOAD.replace(
            draft="model", draft_model=str(tiny), draft_p_min=0.0)}.items():
        host = _host(tiny, load_settings)
        hosts.append(host)
        steps, done = run(host, "the press and the history", settings, capture=False)
        texts[name] = (done.text, [r.token_id for r in steps])
        if name == "own":
            _check_books(steps, done, "model")
            assert any(r.draft_token >= 0 for r in steps)
    assert texts["own"] == texts["plain"]
