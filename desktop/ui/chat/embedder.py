"""Searching a chat's documents by meaning: an `Embed` (core.documents.vectors) that asks the
app's engine for vectors from the embedding GGUF chosen in the attach bar.

`AppEmbed` is called on the database thread ("openlid-db", inside `retrieve`): it posts the
request to the GUI thread (`EngineService.embed_for`, a queued signal) and waits for the answer
on a future, with a timeout, so the GUI thread never blocks. Anything but vectors raises
`EmbeddingError`; the chat then searches by keywords (BM25) and says so (ui.chat.turns).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QThread

from desktop.core.documents.vectors import EmbeddingError, EmbeddingModel
from desktop.engine import protocol as P
from desktop.ui.chat.attachments import AttachmentsBar
from desktop.ui.engine_service import EngineService
from desktop.ui.settings import AppSettings

# A long document's chunks are embedded once (then kept); 2 cores embed ~10 chunks a second
# with a 270M model, so a few hundred chunks fit.
TIMEOUT_S = 120.0


class AppEmbed:
    """Texts → unit vectors from the embedding GGUF at `path`, through the app's engine."""

    def __init__(self, service: EngineService, path: str, timeout_s: float = TIMEOUT_S) -> None:
        self.service = service
        self.path = path
        self.timeout_s = timeout_s
        self.problem = ""
        try:
            self.model = EmbeddingModel.of(path)
        except EmbeddingError as exc:  # said when it is used (the chat falls back to BM25)
            self.model = EmbeddingModel(os.path.basename(path), 0)
            self.problem = str(exc)

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if self.problem:
            raise EmbeddingError(self.problem)
        if QThread.currentThread() is self.service.thread():
            raise EmbeddingError("embeddings cannot be waited for on the window's thread")
        future = self.service.embed_for(self.path, texts)
        try:
            event = future.result(timeout=self.timeout_s)
        except FutureTimeout as exc:
            future.cancel()
            raise EmbeddingError(
                f"{self.model.name} gave no answer in {self.timeout_s:.0f} s"
            ) from exc
        if not isinstance(event, P.Embedded):
            reason = getattr(event, "message", None) or getattr(event, "reason", event)
            raise EmbeddingError(f"the embedding model failed: {reason}")
        vectors = np.frombuffer(event.vectors, dtype=np.float32)
        return vectors.reshape(len(texts), event.dim) if len(texts) else vectors.reshape(0, 0)


def app_embed(service: EngineService, path: str) -> AppEmbed | None:
    """The embedder for the attach bar's choice; None: search by keywords (BM25)."""
    return AppEmbed(service, path) if path else None


def remember_choice(bar: AttachmentsBar, settings: AppSettings) -> None:
    """The bar starts with the remembered embedding model and remembers each new choice."""
    bar.set_search_model(settings.embedding_model)
    bar.sig_search_model_changed.connect(lambda path: setattr(settings, "embedding_model", path))
