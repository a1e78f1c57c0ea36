"""The transformers backend: a tiny random Llama in safetensors, run by the real worker process.

Its StepRecords must mean what the GGUF backend's mean, since the same StepSampler reads its
logits; these tests check the same definitions test_fidelity.py checks on Gemma.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the safetensors extra is not installed")
pytest.importorskip("transformers", reason="the safetensors extra is not installed")

from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from tests.engine.conftest import load, run
from tests.threads import TEST_THREADS

LOAD = LoadSettings(n_ctx=256, n_threads=TEST_THREADS)
PROMPT = "the cat sat on the"
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SENTENCES = [
    "the cat sat on the mat and the dog sat on the log",
    "a quick brown fox jumps over the lazy dog",
    "hello world, this is a tiny model for tests",
] * 4


def write_tiny_llama(folder: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=290,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(SENTENCES, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = CHATML
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        initializer_range=0.5,
    )
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-llama")
    write_tiny_llama(folder)
    return folder


@pytest.fixture(scope="module")
def hf_engine(tiny_llama: Path) -> Iterator[EngineHost]:
    host = EngineHost()
    event = load(host, tiny_llama, LOAD)
    assert isinstance(event, P.Loaded), event
    host.info = event.info  # type: ignore[attr-defined]
    yield host
    host.shutdown()


def test_load_reports_the_model(hf_engine: EngineHost) -> None:
    info = hf_engine.info  # type: ignore[attr-defined]
    assert info.architecture == "llama"
    assert info.backend == "CPU"
    assert (info.n_vocab, info.n_layer, info.n_ctx, info.n_ctx_train) == (300, 2, 256, 512)
    assert info.quant == "F32"
    assert info.n_params > 0
    assert info.size_bytes > 0
    assert "<|im_start|>" in info.chat_templates["default"]
    assert info.bos is not None
    assert info.bos.text == "<s>"
    assert info.eot is not None
    assert info.eot.text == "<|im_end|>"
    assert info.add_bos


def test_a_config_json_path_loads_its_folder(hf_engine: EngineHost, tiny_llama: Path) -> None:
    # The same worker (torch is imported once per worker: seconds): the same model again.
    event = load(hf_engine, tiny_llama / "config.json", LOAD)
    assert isinstance(event, P.Loaded), event
    assert event.info.architecture == "llama"
    assert event.info.n_vocab == 300


def test_temperature_zero_equals_argmax_of_raw_logits(hf_engine: EngineHost) -> None:
    steps, done = run(hf_engine, PROMPT, SamplerSettings(temperature=0, max_tokens=12))
    assert len(steps) == done.usage.completion_tokens
    assert done.text == "".join(s.text for s in steps)
    for s in steps:
        raw = s.stages[0]
        assert raw.name == "raw"
        assert s.token_id == raw.ids[0]
        assert s.raw_rank == 1
        assert s.prob == pytest.approx(1.0)
        assert s.stages[-1].kept == 1


def test_stage_names_match_the_gguf_chain(hf_engine: EngineHost) -> None:
    steps, _ = run(hf_engine, PROMPT, SamplerSettings(max_tokens=2, seed=1))
    names = [st.name for st in steps[0].stages]
    assert names == ["raw", "penalties", "dry", "top_n_sigma", "top_k", "typical", "top_p",
                     "min_p", "xtc", "temperature"]


def test_top_k_one_keeps_one(hf_engine: EngineHost) -> None:
    steps, _ = run(hf_engine, PROMPT, SamplerSettings(top_k=1, seed=2, max_tokens=6))
    for s in steps:
        top_k = next(st for st in s.stages if st.name == "top_k")
        assert top_k.kept == 1
        assert top_k.ids == (s.token_id,)
        assert s.raw_rank == 1


def test_kept_sets_match_the_definitions(hf_engine: EngineHost) -> None:
    settings = SamplerSettings(
        temperature=0.7, top_k=40, top_p=0.8, min_p=0.05, seed=3, max_tokens=25, top_n=50
    )
    steps, _ = run(hf_engine, PROMPT, settings)
    for s in steps:
        raw, top_k, top_p, min_p, temp = (s.stage(n) for n in (
            "raw", "top_k", "top_p", "min_p", "temperature"))
        assert top_k.kept == 40
        assert top_k.mass == pytest.approx(sum(raw.probs[:40]), rel=1e-4)
        by_id = dict(zip(raw.ids, raw.probs, strict=True))
        assert top_k.mass == pytest.approx(sum(by_id[i] for i in top_k.ids), rel=1e-4)
        cum = [sum(top_k.probs[: i + 1]) for i in range(len(top_k.probs))]
        n = top_p.kept
        assert cum[n - 1] >= 0.8 - 1e-5
        assert n == 1 or cum[n - 2] < 0.8 + 1e-5
        assert 1.0 == raw.mass >= top_k.mass >= top_p.mass >= min_p.mass == temp.mass
        assert s.token_id in temp.ids
        assert s.prob == pytest.approx(temp.prob_of(s.token_id))
        assert 0 <= s.entropy_final <= s.entropy_raw <= math.log2(s.n_vocab) + 1e-6


def test_seeded_run_repeats_exactly(hf_engine: EngineHost) -> None:
    settings = SamplerSettings(
        temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=1234, max_tokens=20
    )
    first, _ = run(hf_engine, PROMPT, settings)
    second, _ = run(hf_engine, PROMPT, settings)
    assert [s.token_id for s in first] == [s.token_id for s in second]
    assert [s.prob for s in first] == [s.prob for s in second]


def test_replay_recomputes_the_exact_step(hf_engine: EngineHost) -> None:
    settings = SamplerSettings(temperature=0.9, seed=11, max_tokens=6)
    events = list(hf_engine.wait(hf_engine.generate(((PROMPT, False),), settings), timeout=60))
    steps = [e.record for e in events if isinstance(e, P.Step)]
    prompt_tokens = next(e for e in events if isinstance(e, P.Done)).prompt_tokens
    k = 3
    context = prompt_tokens + tuple(s.token_id for s in steps[:k])
    replay = list(
        hf_engine.wait(
            hf_engine.replay(context, steps[k].token_id, k, settings, len(prompt_tokens)),
            timeout=60,
        )
    )
    record = replay[-1].record
    assert record.replayed
    assert record.token_id == steps[k].token_id
    for a, b in zip(record.stages, steps[k].stages, strict=True):
        assert (a.name, a.ids, a.kept) == (b.name, b.ids, b.kept)
        assert a.probs == pytest.approx(b.probs, rel=1e-4, abs=1e-6)


def tokenize(host: EngineHost, pieces: P.PromptPieces) -> tuple[tuple[int, ...], tuple[str, ...]]:
    event = list(host.wait(host.tokenize(pieces), timeout=60))[-1]
    assert isinstance(event, P.Tokenized), event
    return event.tokens, event.pieces


def test_typed_control_token_stays_plain_text(hf_engine: EngineHost) -> None:
    im_end = hf_engine.info.eot.id  # type: ignore[attr-defined]
    trusted, _ = tokenize(hf_engine, (("<|im_end|>", True),))
    assert trusted[-1] == im_end
    typed, pieces = tokenize(hf_engine, (("<|im_end|>", False),))
    assert im_end not in typed
    assert "".join(pieces[1:]) == "<|im_end|>"  # after BOS, the same characters as plain text


def test_pickle_weights_are_refused_and_the_worker_lives(
    hf_engine: EngineHost, tiny_llama: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_llama / "config.json").read_text())
    marker = tmp_path / "unpickled"
    (folder / "pytorch_model.bin").write_bytes(b"not read: " + str(marker).encode())
    event = load(hf_engine, folder, LOAD)
    assert isinstance(event, P.EngineError)
    assert event.kind == "load_failed"
    assert "pickle" in event.message
    assert hf_engine.alive
    loaded = load(hf_engine, tiny_llama, LOAD)  # the same worker goes on
    assert isinstance(loaded, P.Loaded)
    assert not marker.exists()


def test_kv_cache_reuse_gives_the_logits_of_a_fresh_decode(tiny_llama: Path) -> None:
    import numpy as np

    from desktop.engine.hf_session import HfSession

    session = HfSession(str(tiny_llama), LOAD)
    fresh = HfSession(str(tiny_llama), LOAD)
    try:
        first = session.tokenize_pieces((("the cat sat on the mat", False),), add_bos=True)
        second = session.tokenize_pieces((("the cat sat on the log", False),), add_bos=True)
        assert session.prepare(first) == 0
        reused = session.prepare(second)  # crops the cache back to the shared prefix
        assert 0 < reused < len(second)
        assert session.cached == second
        fresh.prepare(second)
        assert np.allclose(session.logits(), fresh.logits(), atol=1e-5)
        assert session.prepare(second) == len(second) - 1  # the last token is redone for logits
        assert np.allclose(session.logits(), fresh.logits(), atol=1e-5)
    finally:
        session.close()
        fresh.close()


def test_without_the_extra_loading_says_how_to_install(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from desktop.engine.worker import Worker

    class Pipe:
        def __init__(self) -> None:
            self.sent: list[object] = []

        def send(self, event: object) -> None:
            self.sent.append(event)

    monkeypatch.setitem(sys.modules, "desktop.engine.hf_session", None)  # import fails
    pipe = Pipe()
    worker = Worker(pipe, str(tmp_path / "log"))  # type: ignore[arg-type]
    worker.load(P.LoadRequest(1, str(tiny_llama), LOAD))
    [event] = pipe.sent
    assert isinstance(event, P.EngineError)
    assert "pip install 'openlid[safetensors]'" in event.message
