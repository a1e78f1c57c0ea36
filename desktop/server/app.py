"""`ServerApp`: what the HTTP side (`http`, `generation`) needs from the server it answers for,
as a `typing.Protocol`. `OpenlidServer` is the one implementation; the HTTP side depends on this
protocol, not on it, so the modules import each other one way only.

Every member is used from the request handler threads, many at once: an implementation must
make the methods thread-safe and keep the plain values unchanged while it serves — except `info`
and `model_id`, which follow the app's model when the server shares the app's engine.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from desktop.core.model_info import ModelInfo
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord
from desktop.server.access import AccessPolicy
from desktop.server.log_entry import RequestLogEntry
from desktop.server.server_engine import ServerEngine

__all__ = ["ServerApp"]


class ServerApp(Protocol):
    """The server as its request handlers see it."""

    @property
    def max_body(self) -> int:
        """Largest request body accepted, in bytes (larger ones get a 413)."""

    @property
    def api_key(self) -> str | None:
        """The key clients must send as 'Authorization: Bearer KEY'; None: no key needed."""

    @property
    def access(self) -> AccessPolicy:
        """The Host names and browser Origins the server answers."""

    @property
    def max_request_seconds(self) -> float:
        """Longest a request may generate before it is stopped and answered with what it has."""

    @property
    def default_max_tokens(self) -> int:
        """max_tokens for a request that gives none (the context window may cut it shorter)."""

    @property
    def model_id(self) -> str:
        """The model's name in the API (/v1/models, the responses' "model")."""

    @property
    def created(self) -> int:
        """When the server was made (Unix time), for /v1/models."""

    @property
    def sampler_defaults(self) -> SamplerSettings:
        """Settings a request starts from before its own fields apply."""

    @property
    def info(self) -> ModelInfo | None:
        """The loaded model, None while none is."""

    @property
    def unavailable(self) -> str:
        """Why `info` is None, in words for the client (the 503's message)."""

    def next_request_id(self) -> int:
        """A new id for a request that just arrived."""

    def engine_turn(
        self, gone: Callable[[], bool] | None = None
    ) -> AbstractContextManager[ServerEngine]:
        """Wait for the engine, hold it for one generation. Refusals: `RetryLater` (429 when too
        many wait, 503 after waiting too long), ApiError 503 when stopping, and
        `ClientGone` when `gone()` says the client left while waiting."""

    def report(self, entry: RequestLogEntry) -> None:
        """One finished request, for the request log (called once per request)."""

    def report_step(self, request_id: int, record: StepRecord) -> None:
        """One generated token of a request, as it arrives."""
