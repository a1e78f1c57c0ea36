"""`ServerEngine`: the engine a server generates with, as its request handlers see it — held in
turns, one generation at a time — and the event loop both kinds share. The kinds are
`ServedEngine` (`served_engine`: the server's own worker process with its own copy of the model,
for `openlid serve` and for a model the user picks for the server) and `SharedEngine`
(`shared_engine`: the app's engine, borrowed, so the server's requests take turns with the chat).

Threads: `take_turn`, `generate` and `end_turn` run on a request's handler thread; only the
holder of the turn generates and reads events. `load()` runs on the thread that starts the
server; `shutdown()` may come from any thread: it sets `stopping`, which every waiting loop looks
at every `POLL_S` seconds. A generation's `watch` callback runs on the turn holder's thread at
every event and every `POLL_S` of silence (so a client that left is noticed even while the engine
is still reading the prompt); `stop_early()` is for that callback.
"""

from __future__ import annotations

import abc
import contextlib
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from desktop.core.model_info import ModelInfo
from desktop.core.openai.requests import ApiError
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, StepRecord
from desktop.engine import protocol as P

__all__ = ["MODEL_GONE_KINDS", "POLL_S", "ServerEngine", "failure_text"]

POLL_S = 0.25  # how often waiting threads look at the stop flag
_EVENT_TIMEOUT_S = 300.0  # longest silence from the engine before a request gives up
_DRAIN_TIMEOUT_S = 30.0
# EngineError kinds a shared engine reports when the app's model went away under a request:
# the request is refused with 503 (send it again), not blamed on the engine (500).
MODEL_GONE_KINDS = frozenset({"model_changed", "model_unloaded"})


class ServerEngine(abc.ABC):
    """One model, one generation at a time, for the server's request handlers."""

    def __init__(self) -> None:
        self.stopping = threading.Event()

    # --- the model ---

    @property
    @abc.abstractmethod
    def info(self) -> ModelInfo | None:
        """The model requests are answered with; None while there is none."""

    def unavailable(self) -> str:
        """Why there is no model now, in words for an HTTP client (a 503's message)."""
        return "No model is loaded."

    @abc.abstractmethod
    def load(self) -> ModelInfo:
        """Make the model ready before the server listens (ServerConfigError in words)."""

    # --- turns (handler threads) ---

    @abc.abstractmethod
    def take_turn(self, check: Callable[[], None]) -> None:
        """Block until the calling thread may generate. `check` runs every POLL_S while it
        waits and may raise to give up; then nothing is held. Other refusals: ApiError."""

    @abc.abstractmethod
    def end_turn(self) -> None:
        """The turn holder is done: the next request (or the app) goes on."""

    # --- one generation (the turn holder's thread) ---

    @abc.abstractmethod
    def _start(self, pieces: P.PromptPieces, prompt_tokens: tuple[int, ...],
               settings: SamplerSettings) -> int | None:
        """Send the generation; its request id, or None when every event read is this one's."""

    @abc.abstractmethod
    def _next_event(self, timeout: float) -> Any:
        """The next engine event for the turn holder, or None after `timeout` seconds."""

    @abc.abstractmethod
    def _send_cancel(self) -> None:
        """Ask the running generation (the turn holder's) to end."""

    def shutdown(self) -> None:
        self.stopping.set()

    def generate(
        self,
        pieces: P.PromptPieces,
        prompt_tokens: tuple[int, ...],
        settings: SamplerSettings,
        watch: Callable[[], None] | None = None,
    ) -> Generator[StepRecord | GenerationDone, None, None]:
        """Yield StepRecords, then GenerationDone; raise ApiError for engine failures.

        Call while holding the turn. If the consumer stops early (client gone), or `watch`
        raises (it runs at every event and every POLL_S of silence), the generation is cancelled
        and its remaining events drained, so the next request starts clean; the exception goes on.
        """
        request_id = self._start(pieces, prompt_tokens, settings)
        finished = False
        try:
            for event in self._events(request_id, watch=watch):
                if isinstance(event, P.Step):
                    yield event.record
                elif isinstance(event, P.Done):
                    finished = True
                    yield event.result
                else:
                    finished = True
                    raise engine_error(event)
        finally:
            if not finished:
                self._cancel(request_id)

    def stop_early(self) -> None:
        """Ask the running generation to end now; it still ends with GenerationDone (finish
        reason "cancelled"), which `generate` yields as usual. For the turn holder's `watch`."""
        self._send_cancel()

    def _cancel(self, request_id: int | None) -> None:
        self._send_cancel()
        with contextlib.suppress(ApiError):
            for _event in self._events(request_id, timeout=_DRAIN_TIMEOUT_S):
                pass

    def _events(self, request_id: int | None, timeout: float = _EVENT_TIMEOUT_S,
                watch: Callable[[], None] | None = None) -> Iterator[Any]:
        """This request's events until its final one (like EngineHost.wait, but stoppable);
        `watch` runs before every wait and may raise to abandon the request."""
        idle_since = time.monotonic()
        while True:
            if self.stopping.is_set():
                raise ApiError("The server is shutting down.", status=503, type_="server_error")
            if watch is not None:
                watch()
            event = self._next_event(POLL_S)
            if event is None:
                if time.monotonic() - idle_since > timeout:
                    raise ApiError("The engine stopped answering.", status=500,
                                   type_="server_error")
                continue
            idle_since = time.monotonic()
            if request_id is not None and event.request_id != request_id:
                # A stale event of a request that was given up on, or the Crashed of a worker
                # that died idle after an earlier request: its reader may report it only while
                # the next request restarts the engine, and that request must not end with it.
                continue
            yield event
            if not isinstance(event, P.Step):
                return


def failure_text(event: Any) -> str:
    """A failed engine event in words."""
    if isinstance(event, P.EngineError):
        return event.message
    if isinstance(event, P.Crashed):
        line = f" ({event.telling_line})" if event.telling_line else ""
        return f"{event.reason}{line}"
    return f"unexpected engine event {type(event).__name__}"


def engine_error(event: Any) -> ApiError:
    """The HTTP error for an engine event that ended a generation without a Done."""
    if isinstance(event, P.EngineError) and event.kind == "context_overflow":
        return ApiError(event.message, param="messages", code="context_length_exceeded")
    if isinstance(event, P.EngineError) and event.kind == "bad_request":
        return ApiError(event.message)
    if isinstance(event, P.EngineError) and event.kind in MODEL_GONE_KINDS:
        return ApiError(event.message, status=503, type_="server_error",
                        code="model_unavailable")
    return ApiError(failure_text(event), status=500, type_="server_error")
