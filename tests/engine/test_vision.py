"""Vision end to end through the real worker: a tiny runnable llama model and a tiny CLIP
projector (tests/visionmaker.py) loaded by llama.cpp's mtmd; an image in the prompt is encoded
into the KV cache, counted with the prompt tokens, and the reply is generated after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.core.vision import IMAGE_MARKER
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from tests.ggufmaker import write_runnable_gguf
from tests.threads import TEST_THREADS
from tests.visionmaker import N_PATCHES, png_bytes, write_tiny_mmproj

GREEDY = SamplerSettings(temperature=0.0, max_tokens=6, seed=1)
LOAD = LoadSettings(n_ctx=512, n_threads=TEST_THREADS, n_gpu_layers=0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vision")
    write_runnable_gguf(folder / "tiny-vision-F32.gguf")
    write_tiny_mmproj(folder / "mmproj-tiny-vision-F32.gguf")
    return folder


@pytest.fixture(scope="module")
def host(folder: Path) -> Iterator[EngineHost]:
    host = EngineHost()
    events = list(host.wait(host.load(folder / "tiny-vision-F32.gguf", LOAD), timeout=120))
    assert isinstance(events[-1], P.Loaded), events[-1]
    assert events[-1].info.vision == "mmproj-tiny-vision-F32.gguf"  # paired from the folder
    yield host
    host.shutdown()


def _generate(
    host: EngineHost, pieces: P.PromptPieces, images: tuple[bytes, ...] = ()
) -> tuple[list[P.Step], P.Done | P.EngineError]:
    steps: list[P.Step] = []
    for event in host.wait(host.generate(pieces, GREEDY, images=images), timeout=120):
        if isinstance(event, P.Step):
            steps.append(event)
        elif isinstance(event, P.Done | P.EngineError):
            return steps, event
    raise AssertionError("no end event")


def test_an_image_is_counted_and_the_reply_follows_it(host: EngineHost) -> None:
    prompt = (("Look: ", False), (IMAGE_MARKER, True), (" the press", False))
    steps, done = _generate(host, prompt, (png_bytes(),))
    assert isinstance(done, P.Done), done
    text_only = list(host.wait(host.tokenize((("Look: ", False), (" the press", False)))))
    n_text = len(text_only[-1].tokens)
    assert done.result.usage.prompt_tokens == n_text + N_PATCHES
    assert sum(1 for t in done.prompt_tokens if t < 0) == N_PATCHES
    assert done.result.usage.completion_tokens == len(steps) == GREEDY.max_tokens
    assert steps[0].record.position == n_text + N_PATCHES  # the first step after the image


def test_the_image_changes_the_reply_and_is_reused_from_the_cache(host: EngineHost) -> None:
    prompt = ((IMAGE_MARKER, True), (" the", False))
    red = (png_bytes(color=(220, 10, 10)),)
    blue = (png_bytes(color=(10, 10, 220)),)
    _, first = _generate(host, prompt, red)
    _, again = _generate(host, prompt, red)
    _, other = _generate(host, prompt, blue)
    assert isinstance(first, P.Done)
    assert isinstance(again, P.Done)
    assert isinstance(other, P.Done)
    assert again.result.text == first.result.text
    assert again.result.usage.cached_tokens >= N_PATCHES  # the image stayed in the KV cache
    assert other.prompt_tokens != first.prompt_tokens


def test_the_exact_prompt_shows_the_image_with_its_token_count(host: EngineHost) -> None:
    events = list(host.wait(host.tokenize(((IMAGE_MARKER, True),), images=(png_bytes(),))))
    tokenized = events[-1]
    assert isinstance(tokenized, P.Tokenized)
    assert f"[image: {N_PATCHES} tokens]" in tokenized.pieces


def test_bad_images_are_refused_in_words(host: EngineHost) -> None:
    _, error = _generate(host, ((IMAGE_MARKER, True),), (b"not an image",))
    assert isinstance(error, P.EngineError)
    assert "could not be read" in error.message
    _, error = _generate(host, (("no marker", False),), (png_bytes(),))
    assert isinstance(error, P.EngineError)
    assert "no place in the prompt" in error.message
    _, done = _generate(host, (("still fine", False),))
    assert isinstance(done, P.Done)


def test_a_text_model_without_projector_says_it_cannot_see(folder: Path, tmp_path: Path) -> None:
    write_runnable_gguf(tmp_path / "plain.gguf")
    host = EngineHost()
    try:
        loaded = list(host.wait(host.load(tmp_path / "plain.gguf", LOAD), timeout=120))[-1]
        assert isinstance(loaded, P.Loaded)
        assert loaded.info.vision == ""
        _, error = _generate(host, ((IMAGE_MARKER, True),), (png_bytes(),))
        assert isinstance(error, P.EngineError)
        assert "without a vision projector" in error.message
        wrong = write_tiny_mmproj(tmp_path / "mmproj-wrong.gguf", text_embd=32)
        failed = list(
            host.wait(
                host.load(tmp_path / "plain.gguf", LOAD.replace(mmproj=str(wrong))), timeout=120
            )
        )[-1]
        assert isinstance(failed, P.EngineError)
        assert "projector" in failed.message
    finally:
        host.shutdown()
