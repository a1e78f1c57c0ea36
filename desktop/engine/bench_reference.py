"""The benchmark's reference: the barest llama-cpp-python greedy decode loop.

Runs in its own spawned child process. Low-level API only (no `Llama` object, no logprobs): one
`llama_decode` per token, then argmax over a zero-copy numpy view of the last logits. This is the
ceiling the engine is measured against.
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection

import numpy as np

from desktop.core.loading import LoadSettings


def main(
    conn: Connection,
    path: str,
    settings: LoadSettings,
    prompt: str,
    openers: tuple[str, ...],
    tokens: int,
    repeat: int,
    prompt_tokens: int,
) -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # llama.cpp's load chatter is not the benchmark's output
    from desktop.engine.llama_session import LlamaSession

    session = LlamaSession(path, settings)
    best_tps, best_ttft = 0.0, float("inf")
    for run in range(repeat + 1):
        text = f"{openers[run % len(openers)]} {prompt}"
        started = time.perf_counter()
        toks = session.tokenize(text, parse_special=False, add_bos=True)
        session.prepare(toks)
        token = int(np.argmax(session.logits()))
        first = time.perf_counter()
        for _ in range(tokens - 1):
            session.decode([token])
            token = int(np.argmax(session.logits()))
        ended = time.perf_counter()
        if run == 0:
            continue  # warm-up
        best_tps = max(best_tps, (tokens - 1) / (ended - first))
        best_ttft = min(best_ttft, (first - started) * 1000)
    # Prompt processing: one batch of `prompt_tokens` tokens into an empty cache.
    long = session.tokenize((prompt + " ") * 200, parse_special=False, add_bos=True)
    long = long[:prompt_tokens]
    best_pp = 0.0
    for _ in range(repeat):
        session.cached = [-1]  # nothing in common: prepare() clears and decodes all of it
        t0 = time.perf_counter()
        session.prepare(long)
        best_pp = max(best_pp, len(long) / (time.perf_counter() - t0))
    conn.send({
        "tokens_per_second": best_tps,
        "first_token_ms": best_ttft,
        "prompt_tokens_per_second": best_pp,
        "load_ms": session.info.load_ms,
    })
    session.close()
