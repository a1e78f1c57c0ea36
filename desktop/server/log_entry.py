"""`RequestLogEntry`: one request the server answered, as the app's request log shows it, and the
callback types through which the server reports requests and tokens (`RequestCallback`,
`StepCallback`).

Plain frozen data. Entries are made on a request's handler thread and handed to the callbacks
there; a GUI listener must re-emit them as queued signals (see `openlid_server`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, StepRecord

__all__ = ["RequestCallback", "RequestLogEntry", "StepCallback"]


@dataclass(frozen=True)
class RequestLogEntry:
    """One request the server answered, for the app's request log."""

    request_id: int
    started: float  # time.time() when the request arrived
    method: str
    path: str
    client: str  # "address:port" of the caller
    status: int
    duration_ms: float
    body: str = ""  # the request body as received (cut at 64 KiB), "" for GET
    prompt: str = ""  # the exact prompt text sent to the engine ("" when none was)
    prompt_pieces: tuple[tuple[str, bool], ...] = ()  # (text, trusted) as the engine got them
    steps: tuple[StepRecord, ...] = ()  # one per generated token, every stage included
    done: GenerationDone | None = None
    stream: bool = False
    error: str = ""  # the error message sent back, if any
    settings: SamplerSettings | None = None  # what it was sampled with, the seed drawn included
    model: str = ""  # the model id that answered ("" when none did)


RequestCallback = Callable[[RequestLogEntry], None]
StepCallback = Callable[[int, StepRecord], None]
