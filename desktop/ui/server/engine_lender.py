"""WindowEngineLender: the window's `EngineService` lent to the local server — the
`EngineLender` that `desktop.server.shared_engine.SharedEngine` asks for turns.

Thread rules: the server calls the lender's methods on its HTTP handler threads, and
`EngineService` lives on the GUI thread. So each method only emits a private signal connected
with a *queued* connection (the GUI thread then talks to the engine), or reads the model snapshot
under a lock; none waits. Answers go back through the server's `Turn`: a `threading.Event` for
granted/refused and a `queue.Queue` for the generation's events, both safe from any thread.
Created on the GUI thread; `close()` (GUI thread) gives every turn back and ends the forwarding.
A request's tokens reach its handler thread by way of the GUI thread (EngineService routes them),
so they flow as fast as the window's event loop turns: a stall there delays them, never loses
them — and code on the GUI thread must never block waiting for a shared server's answer.

What the server is told about the window's model: the model itself while one is loaded (and no
load or unload is on its way); otherwise why not, in words for an HTTP client. A turn prepared for
one model and granted after the window moved on is refused ("send it again"); the engine stops a
request that is generating when the model changes (see `EngineService`).
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from desktop.core.model_info import ModelInfo
from desktop.core.sampling import SamplerSettings
from desktop.engine import protocol as P
from desktop.server.shared_engine import Turn
from desktop.ui.engine_service import EngineLoan, EngineService

__all__ = ["WindowEngineLender"]

NO_MODEL = ("No model is loaded in the Openlid window. Load one there (the server answers with "
            "the window's model), or give the server a model of its own.")
UNLOADED = ("The app's model was unloaded. Load a model in the Openlid window (the server answers "
            "with it), then send the request again.")
LOADING = "The app is loading another model; send the request again in a moment."
CRASHED = ("The app's engine stopped (it crashed). Press Reload in the Openlid window, then send "
           "the request again.")
SWITCHED = "The app switched to another model while this request waited; send it again."
CLOSED = "The server is shutting down."


class WindowEngineLender(QObject):
    """The window's engine, lent to the server: thread-safe on the server's side."""

    # handler threads → GUI thread; always queued (see the module docstring)
    _sig_turn_requested = Signal(object)
    _sig_generate_requested = Signal(object, object, object, object)
    _sig_cancel_requested = Signal(object)
    _sig_given_back = Signal(object)

    def __init__(self, engine: EngineService, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        queued = Qt.ConnectionType.QueuedConnection
        self._sig_turn_requested.connect(self._on_turn_requested, queued)
        self._sig_generate_requested.connect(self._on_generate, queued)
        self._sig_cancel_requested.connect(self._on_cancel, queued)
        self._sig_given_back.connect(self._on_given_back, queued)
        self._lock = threading.Lock()  # guards the snapshot and `_closed`
        self._model: ModelInfo | None = None
        self._why = NO_MODEL
        self._closed = False
        self._loans: dict[Turn, EngineLoan] = {}  # GUI thread only
        engine.sig_model_loaded.connect(self._refresh)
        engine.sig_model_unloaded.connect(self._refresh)
        engine.sig_model_changing.connect(self._refresh)
        engine.sig_request_failed.connect(self._refresh)
        engine.sig_engine_crashed.connect(self._on_crashed)
        self._refresh()

    # --- EngineLender (any thread) ---

    def model(self) -> ModelInfo | None:
        with self._lock:
            return self._model

    def unavailable(self) -> str:
        with self._lock:
            return self._why

    def request_turn(self, turn: Turn) -> None:
        if not self._post(self._sig_turn_requested, turn):
            turn.refuse(CLOSED)

    def generate(self, turn: Turn, pieces: P.PromptPieces, prompt_tokens: tuple[int, ...],
                 settings: SamplerSettings) -> None:
        if not self._post(self._sig_generate_requested, turn, pieces, prompt_tokens, settings):
            turn.put(P.EngineError(0, "internal", CLOSED))

    def cancel(self, turn: Turn) -> None:
        self._post(self._sig_cancel_requested, turn)

    def give_back(self, turn: Turn) -> None:
        self._post(self._sig_given_back, turn)

    def _post(self, signal: Any, *args: Any) -> bool:
        """Emit to the GUI thread unless closed; the lock keeps the emit from racing `close()`
        and the object's deletion after it."""
        with self._lock:
            if self._closed:
                return False
            signal.emit(*args)
            return True

    # --- GUI thread ---

    def close(self) -> None:
        """Give every turn back and forward nothing more (the server is gone for good)."""
        with self._lock:
            self._closed = True
        self.give_back_all()

    def give_back_all(self) -> None:
        """The server stopped: whatever it still holds or waits for goes back to the window."""
        for turn, loan in list(self._loans.items()):
            self.engine.give_back(loan)
            turn.refuse(CLOSED)
        self._loans.clear()

    def _refresh(self, *_: object) -> None:
        engine = self.engine
        if engine.loading_id is not None:
            model, why = None, LOADING
        elif engine.model is not None:
            model, why = engine.model, ""
        else:
            with self._lock:
                had = self._model is not None or self._why in (UNLOADED, LOADING)
            model, why = None, UNLOADED if had else NO_MODEL
        with self._lock:
            if self._why != CRASHED or model is not None or why == LOADING:
                self._model, self._why = model, why

    def _on_crashed(self, _event: object) -> None:
        with self._lock:
            self._model, self._why = None, CRASHED

    def _stale(self, turn: Turn) -> str:
        """Why the turn may not generate now ("" when it may)."""
        current, why = self.model(), self.unavailable()
        moved_on = current is not None or why == LOADING  # to another model (or loading one)
        if turn.expect is not None and turn.expect is not current and moved_on:
            return SWITCHED
        return why if current is None else ""

    def _on_turn_requested(self, turn: Turn) -> None:
        loan = self.engine.lend(lambda lent: self._on_granted(turn, lent), turn.put)
        if not turn.refusal:  # refused at once (inside `lend`): already given back
            self._loans[turn] = loan

    def _on_granted(self, turn: Turn, loan: EngineLoan) -> None:
        problem = self._stale(turn)
        if not problem:
            turn.grant()
            return
        turn.refuse(problem)
        self._loans.pop(turn, None)
        self.engine.give_back(loan)

    def _on_generate(self, turn: Turn, pieces: P.PromptPieces, prompt_tokens: tuple[int, ...],
                     settings: SamplerSettings) -> None:
        loan = self._loans.get(turn)
        problem = self._stale(turn) if loan is not None else CLOSED
        kind = "model_changed" if problem == SWITCHED else "model_unloaded"
        if not problem and loan is not None and not self.engine.loan_generate(
                loan, pieces, settings, prompt_tokens):
            problem, kind = "The app's engine was busy with another generation.", "internal"
        if problem:
            turn.put(P.EngineError(0, kind, problem))

    def _on_cancel(self, turn: Turn) -> None:
        loan = self._loans.get(turn)
        if loan is not None:
            self.engine.loan_cancel(loan)

    def _on_given_back(self, turn: Turn) -> None:
        loan = self._loans.pop(turn, None)
        if loan is not None:
            self.engine.give_back(loan)
