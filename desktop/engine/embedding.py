"""Embeddings for semantic retrieval: a second llama.cpp model opened with `embedding=True`,
kept open in the worker beside the chat model (reopened only when another file is asked for),
turning texts into unit-length float32 vectors.

Pooling is the GGUF's own (`<arch>.pooling_type`: an embedding model such as nomic or bge says
mean or CLS); a model that names none (a chat model used as an embedder) is mean-pooled.
Runs in the engine worker process (its main thread); `answer` serves an `EmbedRequest`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import llama_cpp as L
import numpy as np
import numpy.typing as npt

from desktop.core.gguf_file.check import GgufProblem, check_gguf
from desktop.core.gguf_file.reader import parse_file
from desktop.core.hardware import default_threads
from desktop.engine import protocol as P
from desktop.engine.session import LoadFailed

N_CTX = 512  # tokens per text: a chunk is ~1,000 characters; longer texts are truncated
_POOLING_WORDS = {
    L.LLAMA_POOLING_TYPE_MEAN: "mean",
    L.LLAMA_POOLING_TYPE_CLS: "CLS",
    L.LLAMA_POOLING_TYPE_LAST: "last token",
}


def gguf_pooling(path: str) -> int:
    """The pooling the GGUF asks for; mean where it names none (or none at all)."""
    kvs = parse_file(path).kvs
    arch = kvs.get("general.architecture")
    kv = kvs.get(f"{arch.value}.pooling_type") if arch is not None else None
    value = int(kv.value) if kv is not None and isinstance(kv.value, int) else 0
    return value if value in _POOLING_WORDS else int(L.LLAMA_POOLING_TYPE_MEAN)


class Embedder:
    """One embedding model, open until `close()`."""

    def __init__(self, path: str, n_threads: int = 0) -> None:
        try:
            check_gguf(path)
            pooling = gguf_pooling(path)
        except GgufProblem as exc:
            raise LoadFailed(f"not a usable embedding model: {exc}") from exc
        threads = n_threads or default_threads()
        try:
            self.llama: Any = L.Llama(
                model_path=path,
                embedding=True,
                pooling_type=pooling,
                n_ctx=N_CTX,
                n_batch=N_CTX,
                n_ubatch=N_CTX,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise LoadFailed(
                f"llama.cpp could not open {os.path.basename(path)} for embeddings ({exc})"
            ) from exc
        self.path = path
        self.name = os.path.basename(path)
        self.dim = int(self.llama.n_embd())
        self.pooling = _POOLING_WORDS[pooling]
        if self.dim <= 0:
            self.close()
            raise LoadFailed(f"{self.name} gives no embeddings")

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One unit-length row per text (a text with no tokens: a zero row)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            if not text.strip():
                continue
            vector = np.asarray(self.llama.embed(text, truncate=True), dtype=np.float32)
            if vector.ndim != 1 or vector.shape[0] != self.dim:
                raise LoadFailed(f"{self.name} gave no pooled embedding (shape {vector.shape})")
            norm = float(np.linalg.norm(vector))
            if norm > 0 and np.isfinite(norm):
                out[i] = vector / norm
        return out

    def close(self) -> None:
        llama, self.llama = getattr(self, "llama", None), None
        if llama is not None:
            llama.close()


def answer(
    current: Embedder | None, msg: P.EmbedRequest, send: Callable[[P.EngineEvent], None]
) -> Embedder | None:
    """Serve `msg` with `current` (or the model it names, opened in its place); the embedder
    to keep open afterwards."""
    embedder = current
    if embedder is None or embedder.path != msg.model_path:
        if embedder is not None:
            embedder.close()
        try:
            embedder = Embedder(msg.model_path)
        except LoadFailed as exc:
            send(P.EngineError(msg.request_id, "load_failed", str(exc)))
            return None
    try:
        vectors = embedder.embed(msg.texts)
    except LoadFailed as exc:
        send(P.EngineError(msg.request_id, "bad_request", str(exc)))
        return embedder
    send(P.Embedded(msg.request_id, embedder.name, embedder.dim, vectors.tobytes()))
    return embedder
