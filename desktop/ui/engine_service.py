"""EngineService: the Qt face of EngineHost. Lives on the GUI thread.

EngineHost calls `on_event` on its reader thread; this service re-emits each event through one
internal signal whose connection is queued, so every public `sig_*` fires on the GUI thread with
immutable data (frozen dataclasses). Never connect the reader-thread callback to a lambda or a
widget directly.

Lending (the local server answering with this engine, see `desktop.server.shared_engine`): a
borrower asks for a turn with `lend()`, and the engine's generations then take turns, first come
first served — one generation runs in the worker at a time, so a Stop or a cancelled request
never ends someone else's. While nobody borrows, the window's own generations go straight to the
worker as always. A window generation asked for while a borrower holds (or waits for) the engine
is held here and sent when its turn comes; `generate` still returns its id at once (a negative
one until then: the events carry it all the same). A borrower's events go to its own `on_event`,
never to the public signals, so the chat, chart and status bar never draw them;
`sig_lent_changed` says when a borrower's generation runs. Loading or unloading a model stops
a borrower's generation and tells it so (`EngineError` kind "model_changed"/"model_unloaded").
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal

from desktop.core import paths
from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, Timings, Usage
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


class EngineLoan:
    """A borrower's turn on the engine (GUI thread): waiting, then holding, then given back.
    `on_granted(loan)` runs when the turn comes; `on_event(event)` gets its generations' events."""

    def __init__(self, on_granted: Callable[[EngineLoan], None],
                 on_event: Callable[[P.EngineEvent], None]) -> None:
        self.on_granted = on_granted
        self.on_event = on_event


@dataclasses.dataclass
class _Held:
    """A window generation, kept here while a borrower has the engine."""

    public_id: int
    prompt: P.PromptPieces
    settings: SamplerSettings
    prompt_tokens: tuple[int, ...]
    capture: bool
    add_bos: bool
    forced_tokens: tuple[int, ...]
    images: tuple[bytes, ...] = ()  # one per image marker in `prompt` (vision models)


_DROPPED = EngineLoan(lambda _loan: None, lambda _event: None)  # owns a stopped loan's late events
_MODEL_CHANGED = ("The app switched to another model while this request was generating; send it "
                  "again.")
_MODEL_UNLOADED = "The app's model was unloaded while this request was generating."


class EngineService(QObject):
    sig_model_loaded = Signal(int, object)  # request id, ModelInfo
    sig_step_generated = Signal(int, object)  # request id, StepRecord
    sig_generation_finished = Signal(int, object, object)  # request id, GenerationDone, tokens
    sig_step_replayed = Signal(int, object)  # request id, StepRecord
    sig_tokenized = Signal(int, object, object)  # request id, token ids, display pieces
    sig_rescored = Signal(int, object, object)  # request id, ReplyScores whole, without the part
    sig_model_unloaded = Signal(int)
    sig_request_failed = Signal(int, str, str)  # request id, kind, message in plain words
    sig_engine_crashed = Signal(object)  # protocol.Crashed
    sig_busy_changed = Signal(bool)  # a generation started (True) or ended (False)
    sig_lent_changed = Signal(bool)  # a borrower's (the server's) generation started / ended
    sig_model_changing = Signal()  # a load or unload was sent: the model is about to go

    _sig_event_received = Signal(object)  # reader thread → GUI thread (queued)
    _sig_embed_asked = Signal(object)  # another thread → GUI thread (queued): `embed_for`

    def __init__(self, parent: QObject | None = None, log_dir: Path | None = None) -> None:
        super().__init__(parent)
        self._sig_event_received.connect(self._on_event, Qt.ConnectionType.QueuedConnection)
        self.host = EngineHost(on_event=self._sig_event_received.emit,
                               log_dir=log_dir or paths.log_dir(), nice=ENGINE_NICE)
        self.model: ModelInfo | None = None
        self.generating_id: int | None = None
        self.loading_id: int | None = None
        # Lending (see the module docstring). `_running`: generations in the worker by host
        # id, with their borrower (None: the window's); never a window's and a borrower's at once.
        self._running: dict[int, EngineLoan | None] = {}
        self._queue: deque[_Held | EngineLoan] = deque()
        self._holder: EngineLoan | None = None
        self._public: dict[int, int] = {}  # host id → the id a held generation was given
        self._held_ids = itertools.count(-1, -1)
        self._advancing = False
        self._embeds: dict[int, Future[P.EngineEvent]] = {}  # host id → who waits for vectors
        self._sig_embed_asked.connect(self._ask_embed, Qt.ConnectionType.QueuedConnection)

    # --- commands (GUI thread) ---

    def load(self, path: str | Path, settings: LoadSettings) -> int:
        self._stop_loans("model_changed", _MODEL_CHANGED)
        self.loading_id = self.host.load(path, settings)
        self.sig_model_changing.emit()
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
        images: tuple[bytes, ...] = (),
    ) -> int:
        held = _Held(0, prompt, settings, prompt_tokens, capture, add_bos, forced_tokens,
                     images)
        if self._lending():
            rid = held.public_id = next(self._held_ids)
            self._queue.append(held)
        else:
            rid = self._send(held)
        self.generating_id = rid
        self.sig_busy_changed.emit(True)
        return rid

    def replay(self, context_tokens: tuple[int, ...], token_id: int, step: int,
               settings: SamplerSettings, n_prompt: int) -> int:
        return self.host.replay(context_tokens, token_id, step, settings, n_prompt)

    def tokenize(self, prompt: P.PromptPieces, add_bos: bool = True) -> int:
        return self.host.tokenize(prompt, add_bos)

    def rescore(self, prompt: P.PromptPieces, ablated: P.PromptPieces,
                reply_tokens: tuple[int, ...]) -> int:
        """A reply re-scored without one part of its prompt (answered by `sig_rescored`)."""
        return self.host.rescore(prompt, ablated, reply_tokens)

    def embed_for(self, model_path: str, texts: Sequence[str]) -> Future[P.EngineEvent]:
        """Any thread (the database thread's document search): embeddings of `texts`, asked
        for on the GUI thread; the future gets the final event (`Embedded`, `EngineError` or
        `Crashed`). Never wait on it on the GUI thread: the answer arrives there."""
        future: Future[P.EngineEvent] = Future()
        self._sig_embed_asked.emit((model_path, tuple(texts), future))
        return future

    def _ask_embed(self, ask: tuple[str, tuple[str, ...], Future[P.EngineEvent]]) -> None:
        path, texts, future = ask
        if future.set_running_or_notify_cancel():  # False: the asker stopped waiting
            self._embeds[self.host.embed(path, texts)] = future

    def cancel(self) -> None:
        """Stop the window's generation (a held one ends at once, "cancelled", with no text)."""
        for item in [i for i in self._queue if isinstance(i, _Held)]:
            self._queue.remove(item)
            done = GenerationDone("cancelled", "", Usage(0, 0), Timings(0.0, 0.0, 0.0, 0.0))
            self._sig_event_received.emit(P.Done(item.public_id, done, ()))  # queued: later
        if not self._lent_running():
            self.host.cancel()

    def unload(self) -> int:
        self._stop_loans("model_unloaded", _MODEL_UNLOADED)
        rid = self.host.unload()
        self.sig_model_changing.emit()
        return rid

    def shutdown(self) -> None:
        self.host.shutdown()

    @property
    def busy(self) -> bool:
        return self.generating_id is not None

    # --- lending (GUI thread) ---

    def lend(self, on_granted: Callable[[EngineLoan], None],
             on_event: Callable[[P.EngineEvent], None]) -> EngineLoan:
        """Queue a borrower for a turn; `on_granted(loan)` runs (GUI thread) when it has the
        engine — at once, inside this call, when the engine is free."""
        loan = EngineLoan(on_granted, on_event)
        self._queue.append(loan)
        self._advance()
        return loan

    def loan_generate(self, loan: EngineLoan, prompt: P.PromptPieces, settings: SamplerSettings,
                      prompt_tokens: tuple[int, ...] = ()) -> bool:
        """Run one generation in the turn `loan` holds; False (nothing sent) when it holds none
        or still runs one."""
        if loan is not self._holder or self._running:
            return False
        rid = self.host.generate(prompt, settings, prompt_tokens=prompt_tokens)
        self._running[rid] = loan
        self.sig_lent_changed.emit(True)
        return True

    def loan_cancel(self, loan: EngineLoan) -> None:
        """Stop the loan's generation if it runs (it still ends with its Done)."""
        if any(owner is loan for owner in self._running.values()):
            self.host.cancel()

    def give_back(self, loan: EngineLoan) -> None:
        """End a turn, or withdraw from the queue; a generation it still runs is stopped."""
        if loan in self._queue:
            self._queue.remove(loan)
        for rid, owner in self._running.items():
            if owner is loan:
                self.host.cancel()
                self._running[rid] = _DROPPED
        if self._holder is loan:
            self._holder = None
        self._advance()

    def _lending(self) -> bool:
        """Whether a borrower holds, waits for, or still runs on the engine."""
        return self._holder is not None or bool(self._queue) or self._lent_running()

    def _lent_running(self) -> bool:
        return any(owner is not None for owner in self._running.values())

    def _advance(self) -> None:
        """Give the engine to whoever is next, once nothing runs and no borrower holds it."""
        if self._advancing:  # a grant's callback gave its turn back at once: the loop goes on
            return
        self._advancing = True
        try:
            while self._holder is None and not self._running and self._queue:
                item = self._queue.popleft()
                if isinstance(item, EngineLoan):
                    self._holder = item
                    item.on_granted(item)
                    continue
                self._public[self._send(item)] = item.public_id
        finally:
            self._advancing = False

    def _send(self, item: _Held) -> int:
        rid = self.host.generate(item.prompt, item.settings, prompt_tokens=item.prompt_tokens,
                                 capture=item.capture, add_bos=item.add_bos,
                                 forced_tokens=item.forced_tokens, images=item.images)
        self._running[rid] = None
        return rid

    def _stop_loans(self, kind: str, words: str) -> None:
        """The model is about to change: a borrower's generation stops and hears why."""
        for rid, owner in self._running.items():
            if owner is not None and owner is not _DROPPED:
                self.host.cancel()
                owner.on_event(P.EngineError(rid, kind, words))
                self._running[rid] = _DROPPED

    def _route(self, event: P.EngineEvent) -> P.EngineEvent | None:
        """A generation's event: to its borrower (None returned), or with the window's id."""
        rid = event.request_id
        if rid not in self._running or not isinstance(event, (P.Step, P.Done, P.EngineError)):
            return event
        owner = self._running[rid]
        final = not isinstance(event, P.Step)
        if final:
            del self._running[rid]
        if owner is not None:
            owner.on_event(event)
            if final:
                self.sig_lent_changed.emit(False)
                self._advance()
            return None
        public = self._public.pop(rid, rid) if final else self._public.get(rid, rid)
        return event if public == rid else dataclasses.replace(event, request_id=public)

    # --- events (GUI thread, via the queued connection) ---

    def _on_event(self, event: P.EngineEvent) -> None:
        if isinstance(event, (P.Embedded, P.EngineError)) and event.request_id in self._embeds:
            self._embeds.pop(event.request_id).set_result(event)
            return
        routed = self._route(event)
        if routed is None:
            return
        self._handle(routed)
        if isinstance(routed, (P.Done, P.EngineError, P.Crashed)):
            self._advance()  # a window generation ended (or the worker did): who is next

    def _handle(self, event: P.EngineEvent) -> None:
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
        elif isinstance(event, P.Rescored):
            self.sig_rescored.emit(event.request_id, event.full, event.ablated)
        elif isinstance(event, P.Unloaded):
            self.model = None
            self.sig_model_unloaded.emit(event.request_id)
        elif isinstance(event, P.EngineError):
            if event.request_id == self.loading_id:
                self.loading_id = None
                self.model = None  # the worker let the old model go before it tried
            self._end_generation(event.request_id)
            self.sig_request_failed.emit(event.request_id, event.kind, event.message)
        elif isinstance(event, P.Crashed):
            self.model = None
            self.loading_id = None
            self._end_generation(self.generating_id)
            self._crashed(event)
            self.sig_engine_crashed.emit(event)

    def _crashed(self, event: P.Crashed) -> None:
        """Everything in the dead worker ended: borrowers hear it, held window work is dropped
        (the window was told through `generating_id`; a held generation would start a new
        worker with no model)."""
        for owner in self._running.values():
            if owner is not None:
                owner.on_event(event)
        for future in self._embeds.values():
            future.set_result(event)
        self._embeds.clear()
        if self._lent_running():
            self.sig_lent_changed.emit(False)
        self._running.clear()
        self._public.clear()
        for item in [i for i in self._queue if isinstance(i, _Held)]:
            self._queue.remove(item)

    def _end_generation(self, request_id: int | None) -> None:
        if request_id is not None and request_id == self.generating_id:
            self.generating_id = None
            self.sig_busy_changed.emit(False)

