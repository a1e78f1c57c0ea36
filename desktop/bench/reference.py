"""The benchmark's reference: the barest llama-cpp-python greedy decode loop.

Runs in its own spawned child process and waits for commands, so the benchmark can interleave
its runs with the engine's (drift on a shared machine then hits both alike). Low-level API only
(no `Llama` object, no logprobs): one `llama_decode` per token, then argmax over a zero-copy numpy
view of the last logits. This is the ceiling the engine is measured against.
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

import numpy as np

from desktop.core.model_info import LoadSettings

if TYPE_CHECKING:
    from desktop.engine.llama_session import LlamaSession


def main(conn: Connection, path: str, settings: LoadSettings) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # llama.cpp's load chatter is not the benchmark's output
    from desktop.engine.llama_session import LlamaSession

    session = LlamaSession(path, settings)
    conn.send({"load_ms": session.info.load_ms})
    while True:
        command, text, n = conn.recv()
        if command == "generate":
            conn.send(_generate(session, text, n))
        elif command == "prefill":
            conn.send(_prefill(session, text, n))
        else:
            break
    session.close()


def _generate(s: LlamaSession, text: str, tokens: int) -> dict[str, float]:
    started = time.perf_counter()
    toks = s.tokenize(text, parse_special=False, add_bos=True)
    s.prepare(toks)
    token = int(np.argmax(s.logits()))
    first = time.perf_counter()
    for _ in range(tokens - 1):
        s.decode([token])
        token = int(np.argmax(s.logits()))
    ended = time.perf_counter()
    return {
        "tokens_per_second": (tokens - 1) / (ended - first),
        "first_token_ms": (first - started) * 1000,
    }


def _prefill(s: LlamaSession, text: str, n_tokens: int) -> dict[str, float]:
    """One batch of `n_tokens` prompt tokens into an empty cache."""
    long = s.tokenize((text + " ") * 400, parse_special=False, add_bos=True)[:n_tokens]
    s.cached = [-1]  # nothing in common: prepare() clears the cache and decodes all of it
    t0 = time.perf_counter()
    s.prepare(long)
    return {"prompt_tokens_per_second": len(long) / (time.perf_counter() - t0)}
