"""EngineService: the Qt face of EngineHost. Lives on the GUI thread.

EngineHost calls `on_event` on its reader thread; this service re-emits each event through one
internal signal whose connection is queued, so every public `sig_*` fires on the GUI thread with
immutable data (frozen dataclasses). Never connect the reader-thread callback to a lambda or a
widget directly.
"""

from __future__ import annotations

import gc
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal

from desktop.core import paths
from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.sampling import SamplerSettings
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost

# The window's engine runs at a lower CPU priority than the window (see engine.worker.main):
# measured on 2 cores with 2 llama.cpp threads, the longest GUI stall while a reply streams went
# from 44-70 ms to 36-44 ms, and tokens/s seen by the window from 38.4-39.7 to 37.8-38.3 (the
# GUI's own work now comes first). With cores to spare, nothing changes.
ENGINE_NICE = 5


def settle_heap() -> None:
    """Move everything alive now out of the cyclic collector's way (gc.freeze).

    A finished reply's StepRecords live as long as the conversation is shown; left in the
    collector's generations, each full collection walks all of them on the GUI thread — measured:
    a 50 ms stall in the middle of streaming. Frozen objects are still freed by reference counting.
    """
    gc.freeze()


class EngineService(QObject):
    sig_model_loaded = Signal(int, object)  # request id, ModelInfo
    sig_step_generated = Signal(int, object)  # request id, StepRecord
    sig_generation_finished = Signal(int, object, object)  # request id, GenerationDone, tokens
    sig_step_replayed = Signal(int, object)  # request id, StepRecord
    sig_tokenized = Signal(int, object, object)  # request id, token ids, display pieces
    sig_model_unloaded = Signal(int)
    sig_request_failed = Signal(int, str, str)  # request id, kind, message in plain words
    sig_engine_crashed = Signal(object)  # protocol.Crashed
    sig_busy_changed = Signal(bool)  # a generation started (True) or ended (False)

    _sig_event_received = Signal(object)  # reader thread → GUI thread (queued)

    def __init__(self, parent: QObject | None = None, log_dir: Path | None = None) -> None:
        super().__init__(parent)
        self._sig_event_received.connect(self._on_event, Qt.ConnectionType.QueuedConnection)
        self.host = EngineHost(on_event=self._sig_event_received.emit,
                               log_dir=log_dir or paths.log_dir(), nice=ENGINE_NICE)
        self.model: ModelInfo | None = None
        self.generating_id: int | None = None
        self.loading_id: int | None = None

    # --- commands (GUI thread) ---

    def load(self, path: str | Path, settings: LoadSettings) -> int:
        self.loading_id = self.host.load(path, settings)
        return self.loading_id

    def generate(
        self,
        prompt: P.PromptPieces,
        settings: SamplerSettings,
        *,
        prompt_tokens: tuple[int, ...] = (),
        capture: bool = True,
        add_bos: bool = True,
        forced_tokens: tuple[int, ...] = (),
    ) -> int:
        rid = self.host.generate(prompt, settings, prompt_tokens=prompt_tokens, capture=capture,
                                 add_bos=add_bos, forced_tokens=forced_tokens)
        self.generating_id = rid
        self.sig_busy_changed.emit(True)
        return rid

    def replay(self, context_tokens: tuple[int, ...], token_id: int, step: int,
               settings: SamplerSettings, n_prompt: int) -> int:
        return self.host.replay(context_tokens, token_id, step, settings, n_prompt)

    def tokenize(self, prompt: P.PromptPieces, add_bos: bool = True) -> int:
        return self.host.tokenize(prompt, add_bos)

    def cancel(self) -> None:
        self.host.cancel()

    def unload(self) -> int:
        return self.host.unload()

    def shutdown(self) -> None:
        self.host.shutdown()

    @property
    def busy(self) -> bool:
        return self.generating_id is not None

    # --- events (GUI thread, via the queued connection) ---

    def _on_event(self, event: P.EngineEvent) -> None:
        if isinstance(event, P.Step):
            self.sig_step_generated.emit(event.request_id, event.record)
        elif isinstance(event, P.Done):
            self._end_generation(event.request_id)
            self.sig_generation_finished.emit(event.request_id, event.result, event.prompt_tokens)
            settle_heap()
        elif isinstance(event, P.Loaded):
            self.model = event.info
            self.loading_id = None
            self.sig_model_loaded.emit(event.request_id, event.info)
        elif isinstance(event, P.Replayed):
            self.sig_step_replayed.emit(event.request_id, event.record)
        elif isinstance(event, P.Tokenized):
            self.sig_tokenized.emit(event.request_id, event.tokens, event.pieces)
        elif isinstance(event, P.Unloaded):
            self.model = None
            self.sig_model_unloaded.emit(event.request_id)
        elif isinstance(event, P.EngineError):
            if event.request_id == self.loading_id:
                self.loading_id = None
            self._end_generation(event.request_id)
            self.sig_request_failed.emit(event.request_id, event.kind, event.message)
        elif isinstance(event, P.Crashed):
            self.model = None
            self.loading_id = None
            self._end_generation(self.generating_id)
            self.sig_engine_crashed.emit(event)

    def _end_generation(self, request_id: int | None) -> None:
        if request_id is not None and request_id == self.generating_id:
            self.generating_id = None
            self.sig_busy_changed.emit(False)

