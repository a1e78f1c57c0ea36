"""The host's side of embeddings: an `Embed` (core.documents.vectors) that asks the engine
worker's embedding model (engine.embedding) for vectors and waits for them.

For a host built without `on_event` (the CLI, tests); runs on the thread that calls it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from desktop.core.documents.vectors import EmbeddingError, EmbeddingModel
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost

TIMEOUT_S = 600.0


class EngineEmbed:
    """Texts → unit vectors from the embedding GGUF at `path`, through `host`'s worker."""

    def __init__(
        self, host: EngineHost, path: str | os.PathLike[str], timeout_s: float = TIMEOUT_S
    ) -> None:
        self.host = host
        self.path = os.fspath(path)
        self.model = EmbeddingModel.of(self.path)
        self.timeout_s = timeout_s

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        request = self.host.embed(self.path, tuple(texts))
        try:
            events = list(self.host.wait(request, timeout=self.timeout_s))
        except TimeoutError as exc:
            raise EmbeddingError(str(exc)) from exc
        event = events[-1] if events else None
        if not isinstance(event, P.Embedded):
            reason = getattr(event, "message", None) or getattr(event, "reason", event)
            raise EmbeddingError(f"the embedding model failed: {reason}")
        vectors = np.frombuffer(event.vectors, dtype=np.float32)
        return vectors.reshape(len(texts), event.dim) if len(texts) else vectors.reshape(0, 0)
