"""`ServedEngine`: the server's own engine worker (a dedicated `EngineHost` process with its own
copy of the model), for `openlid serve` and for a model the user picks for the server in the app.
It loads the model and runs one generation at a time (`ServerEngine`), turning the worker's events
into StepRecords, GenerationDone, or an `ApiError` with the right HTTP status.

Threads: `load()` runs on the thread that starts the server; `take_turn()` takes `lock` on a
request's handler thread, so only the lock holder generates and reads the worker's event queue.
`shutdown()` may come from any thread: it sets `stopping` and stops the worker.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from desktop.core import paths
from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.openai.requests import ApiError
from desktop.core.sampling import SamplerSettings
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from desktop.server.config import ServerConfigError
from desktop.server.server_engine import POLL_S, ServerEngine, failure_text

__all__ = ["POLL_S", "ServedEngine"]

log = logging.getLogger("openlid.server")


class ServedEngine(ServerEngine):
    """The server's own EngineHost: loads the model, runs one generation at a time."""

    def __init__(self, model_path: Path, load_settings: LoadSettings) -> None:
        super().__init__()
        self.model_path = model_path
        self.load_settings = load_settings.validated()
        self.host = EngineHost(log_dir=paths.log_dir())
        self._info: ModelInfo | None = None
        self.lock = threading.Lock()

    @property
    def info(self) -> ModelInfo | None:
        return self._info

    def load(self) -> ModelInfo:
        self._drop_stale_events()
        request_id = self.host.load(self.model_path, self.load_settings)
        for event in self._events(request_id):
            if isinstance(event, P.Loaded):
                self._info = event.info
                return event.info
            raise ServerConfigError(failure_text(event))
        raise ServerConfigError("the engine did not answer")

    def take_turn(self, check: Callable[[], None]) -> None:
        while not self.lock.acquire(timeout=POLL_S):
            check()

    def end_turn(self) -> None:
        self.lock.release()

    def _drop_stale_events(self) -> None:
        """Forget events nobody waited for (a crash while idle would otherwise end the next
        request); safe because only the lock holder reads the queue."""
        with contextlib.suppress(queue.Empty):
            while True:
                self.host.events.get_nowait()

    def _start(self, pieces: P.PromptPieces, prompt_tokens: tuple[int, ...],
               settings: SamplerSettings) -> int:
        self._drop_stale_events()
        if not self.host.alive or self._info is None:
            log.warning("engine not running; loading %s again", self.model_path)
            try:
                self.load()
            except ServerConfigError as exc:
                raise ApiError(str(exc), status=500, type_="server_error") from exc
        return self.host.generate(pieces, settings, prompt_tokens=prompt_tokens)

    def _next_event(self, timeout: float) -> Any:
        try:
            return self.host.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def _send_cancel(self) -> None:
        if self.host.alive:
            self.host.cancel()

    def _cancel(self, request_id: int | None) -> None:
        if self.host.alive:  # a dead worker has nothing to cancel nor to drain
            super()._cancel(request_id)

    def shutdown(self) -> None:
        super().shutdown()
        self.host.shutdown()
