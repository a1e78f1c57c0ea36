"""`ServedEngine`: the server's own engine worker (a dedicated `EngineHost` process), which loads
the model and runs one generation at a time, turning the worker's events into StepRecords,
GenerationDone, or an `ApiError` with the right HTTP status.

Threads: `load()` runs on the thread that starts the server; `generate()` runs on a request's
handler thread, which must hold `lock` (`OpenlidServer.engine_turn()` takes it), so only the lock
holder reads the worker's event queue. `shutdown()` may come from any thread: it sets `stopping`,
which every waiting loop looks at every `POLL_S` seconds. A generation's `watch` callback runs on
the lock holder's thread at every event and every `POLL_S` of silence (so a client that left is
noticed even while the engine is still reading the prompt); `stop_early()` is for that callback.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from desktop.core import paths
from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.openai.requests import ApiError
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, StepRecord
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from desktop.server.config import ServerConfigError

__all__ = ["POLL_S", "ServedEngine"]

log = logging.getLogger("openlid.server")

POLL_S = 0.25  # how often waiting threads look at the stop flag
_EVENT_TIMEOUT_S = 300.0  # longest silence from the engine before a request gives up
_DRAIN_TIMEOUT_S = 30.0


class ServedEngine:
    """The server's own EngineHost: loads the model, runs one generation at a time."""

    def __init__(self, model_path: Path, load_settings: LoadSettings) -> None:
        self.model_path = model_path
        self.load_settings = load_settings.validated()
        self.host = EngineHost(log_dir=paths.log_dir())
        self.info: ModelInfo | None = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def load(self) -> ModelInfo:
        self._drop_stale_events()
        request_id = self.host.load(self.model_path, self.load_settings)
        for event in self._events(request_id):
            if isinstance(event, P.Loaded):
                self.info = event.info
                return event.info
            raise ServerConfigError(_failure_text(event))
        raise ServerConfigError("the engine did not answer")

    def _drop_stale_events(self) -> None:
        """Forget events nobody waited for (a crash while idle would otherwise end the next
        request); safe because only the lock holder reads the queue."""
        with contextlib.suppress(queue.Empty):
            while True:
                self.host.events.get_nowait()

    def _events(self, request_id: int, timeout: float = _EVENT_TIMEOUT_S,
                watch: Callable[[], None] | None = None) -> Iterator[Any]:
        """This request's events until its final one (like EngineHost.wait, but stoppable);
        `watch` runs before every wait and may raise to abandon the request."""
        idle_since = time.monotonic()
        while True:
            if self.stopping.is_set():
                raise ApiError("The server is shutting down.", status=503, type_="server_error")
            if watch is not None:
                watch()
            try:
                event = self.host.events.get(timeout=POLL_S)
            except queue.Empty:
                if time.monotonic() - idle_since > timeout:
                    raise ApiError(
                        "The engine stopped answering.", status=500, type_="server_error"
                    ) from None
                continue
            idle_since = time.monotonic()
            if event.request_id != request_id:
                # A stale event of a request that was given up on, or the Crashed of a worker
                # that died idle after an earlier request: its reader may report it only while
                # the next request restarts the engine, and that request must not end with it.
                continue
            yield event
            if not isinstance(event, P.Step):
                return

    def generate(
        self,
        pieces: P.PromptPieces,
        prompt_tokens: tuple[int, ...],
        settings: SamplerSettings,
        watch: Callable[[], None] | None = None,
    ) -> Generator[StepRecord | GenerationDone, None, None]:
        """Yield StepRecords, then GenerationDone; raise ApiError for engine failures.

        Call with the lock held. If the consumer stops early (client gone), or `watch` raises
        (it runs at every event and every POLL_S of silence), the generation is cancelled and
        its remaining events drained, so the next request starts clean; the exception goes on.
        """
        self._drop_stale_events()
        if not self.host.alive or self.info is None:
            log.warning("engine not running; loading %s again", self.model_path)
            try:
                self.load()
            except ServerConfigError as exc:
                raise ApiError(str(exc), status=500, type_="server_error") from exc
        request_id = self.host.generate(pieces, settings, prompt_tokens=prompt_tokens)
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
                    raise _engine_error(event)
        finally:
            if not finished:
                self._cancel(request_id)

    def stop_early(self) -> None:
        """Ask the running generation to end now; it still ends with GenerationDone (finish
        reason "cancelled"), which `generate` yields as usual. For the lock holder's `watch`."""
        if self.host.alive:
            self.host.cancel()

    def _cancel(self, request_id: int) -> None:
        if not self.host.alive:
            return
        self.host.cancel()
        with contextlib.suppress(ApiError):
            for _event in self._events(request_id, timeout=_DRAIN_TIMEOUT_S):
                pass

    def shutdown(self) -> None:
        self.stopping.set()
        self.host.shutdown()


def _failure_text(event: Any) -> str:
    if isinstance(event, P.EngineError):
        return event.message
    if isinstance(event, P.Crashed):
        line = f" ({event.telling_line})" if event.telling_line else ""
        return f"{event.reason}{line}"
    return f"unexpected engine event {type(event).__name__}"


def _engine_error(event: Any) -> ApiError:
    if isinstance(event, P.EngineError) and event.kind == "context_overflow":
        return ApiError(event.message, param="messages", code="context_length_exceeded")
    if isinstance(event, P.EngineError) and event.kind == "bad_request":
        return ApiError(event.message)
    return ApiError(_failure_text(event), status=500, type_="server_error")
