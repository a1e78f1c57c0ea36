"""`SharedEngine`: the server answering with the app's own engine (the model loaded in the window)
instead of a second copy of it; `EngineLender`, what the app must provide for that; `Turn`, the
hand-over between the two.

The app's engine already has an owner (in the GUI, `EngineService` on the GUI thread), so the
server never touches it: each request asks the lender for a turn, and the lender queues it with
the app's own generations, first come first served. The chat and the server take turns on one
engine: a long chat reply makes a request wait, and a request makes the chat wait, never more
than one generation each. The server's requests also queue among themselves here (`lock`), so at
most one of them waits in the app's queue at a time and the chat is never starved by a burst.

The model follows the app: a request is answered by whatever the window has loaded when it
arrives (`info`, and the server's model id, change with it). When the window's model is unloaded
or being replaced, requests get a 503 saying so; a request that waited while the model changed is
refused when its turn comes (it was prepared for the other model's template: send it again), and
one that was generating is stopped and answered with that 503 (or the message in its stream).

Threads: the lender's methods are thread-safe and never block; `Turn` is the handshake (a
`threading.Event` for the answer, a `queue.Queue` for the generation's events), so a handler
thread waits on it with the server's usual polls (stop flag, client gone, wait limit).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from desktop.core.model_info import ModelInfo
from desktop.core.openai.requests import ApiError
from desktop.core.sampling import SamplerSettings
from desktop.engine import protocol as P
from desktop.server.config import ServerConfigError
from desktop.server.server_engine import POLL_S, ServerEngine

__all__ = ["EngineLender", "SharedEngine", "Turn"]


class Turn:
    """One request's turn on a lent engine: asked for, answered (granted or refused), used for
    one generation, given back. Written by the lender, read by the request's handler thread."""

    def __init__(self, expect: ModelInfo | None) -> None:
        self.expect = expect  # the model the request was prepared for (None: any)
        self.answered = threading.Event()
        self.refusal = ""  # why the turn was refused, in words ("" when granted)
        self.events: queue.Queue[Any] = queue.Queue()  # the generation's engine events

    def grant(self) -> None:
        self.answered.set()

    def refuse(self, words: str) -> None:
        self.refusal = words or "The app's engine refused the request."
        self.answered.set()

    def put(self, event: Any) -> None:
        """An engine event of this turn's generation (Step…, then Done, EngineError or Crashed)."""
        self.events.put(event)


class EngineLender(Protocol):
    """The app's engine, lent to a server. Every method is thread-safe and returns at once."""

    def model(self) -> ModelInfo | None:
        """The model the app has loaded now; None while none is (or another one is loading)."""

    def unavailable(self) -> str:
        """Why `model()` is None, in words for an HTTP client."""

    def request_turn(self, turn: Turn) -> None:
        """Queue the turn behind the app's work; later `turn.grant()` or `turn.refuse(words)`
        (refused when the app's model is not `turn.expect` any more)."""

    def generate(self, turn: Turn, pieces: P.PromptPieces, prompt_tokens: tuple[int, ...],
                 settings: SamplerSettings) -> None:
        """Start a generation in a granted turn; its events go to `turn.put`."""

    def cancel(self, turn: Turn) -> None:
        """Stop the turn's generation if it runs (it still ends with its Done)."""

    def give_back(self, turn: Turn) -> None:
        """The turn is over (or no longer wanted): stop anything it still runs, go on."""


class SharedEngine(ServerEngine):
    """The app's engine as the server's: requests take turns with the app's own generations."""

    def __init__(self, lender: EngineLender) -> None:
        super().__init__()
        self.lender = lender
        self.lock = threading.Lock()  # the server's own requests, one at a time into the app
        self._seen = threading.local()  # per handler thread: the model its request was made for
        self._turn: Turn | None = None  # the lock holder's

    @property
    def info(self) -> ModelInfo | None:
        info = self.lender.model()
        # The HTTP side reads `info` to render the prompt, then takes a turn: remembering what
        # this thread saw lets the turn be refused if the model changed in between.
        self._seen.info = info
        return info

    def unavailable(self) -> str:
        return self.lender.unavailable()

    def load(self) -> ModelInfo:
        info = self.lender.model()
        if info is None:
            raise ServerConfigError(self.lender.unavailable())
        return info

    def take_turn(self, check: Callable[[], None]) -> None:
        while not self.lock.acquire(timeout=POLL_S):
            check()
        turn = Turn(getattr(self._seen, "info", None))
        asked = False
        try:
            check()
            asked = True
            self.lender.request_turn(turn)
            while not turn.answered.wait(POLL_S):
                check()
            if turn.refusal:
                raise ApiError(turn.refusal, status=503, type_="server_error",
                               code="model_unavailable")
        except BaseException:
            if asked:
                self.lender.give_back(turn)
            self.lock.release()
            raise
        self._turn = turn

    def end_turn(self) -> None:
        turn, self._turn = self._turn, None
        if turn is not None:
            self.lender.give_back(turn)
        self.lock.release()

    def _held(self) -> Turn:
        turn = self._turn
        if turn is None:
            raise ApiError("The request generated without its turn.", status=500,
                           type_="server_error")
        return turn

    def _start(self, pieces: P.PromptPieces, prompt_tokens: tuple[int, ...],
               settings: SamplerSettings) -> None:
        self.lender.generate(self._held(), pieces, prompt_tokens, settings)
        return None  # the turn's queue holds this generation's events only

    def _next_event(self, timeout: float) -> Any:
        try:
            return self._held().events.get(timeout=timeout)
        except queue.Empty:
            return None

    def _send_cancel(self) -> None:
        turn = self._turn
        if turn is not None:
            self.lender.cancel(turn)
