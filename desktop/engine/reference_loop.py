"""`openlid bench`'s reference: the barest llama-cpp-python decode loop with llama.cpp's own chain.

Runs in its own spawned child process (started by `desktop.bench.engine`, which never imports
llama_cpp itself) and waits for commands, so the benchmark can interleave
its runs with the engine's (drift on a shared machine then hits both alike). Low-level API only
(no `Llama` object, no logprobs, no capture): one `llama_decode` per token, then
`llama_sampler_sample` on a `llama_sampler_chain` built from the same settings the engine gets
(see build_chain), which builds the candidate array over the whole vocabulary and runs each
stage on it, as llama.cpp's own tools do. This is the ceiling the engine is measured against.

Commands arrive as (name, payload) tuples; every answer is a dict, {"error": words} when a
command failed (the child stays usable).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from desktop.core.model_info import LoadSettings
from desktop.core.sampling import STAGE_DRY, STAGE_PENALTIES, SamplerSettings

if TYPE_CHECKING:
    from desktop.engine.llama_session import LlamaSession


def main(conn: Connection, path: str, settings: LoadSettings) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # llama.cpp's load chatter is not the benchmark's output
    from desktop.engine.heap import keep_heap
    from desktop.engine.llama_session import LlamaSession
    from desktop.engine.session import LoadFailed

    keep_heap()  # the engine worker's heap settings, so only the capture tells them apart

    try:
        session = LlamaSession(path, settings)
    except LoadFailed as exc:
        conn.send({"error": str(exc)})
        return
    conn.send({"load_ms": session.info.load_ms})
    commands: dict[str, Callable[..., dict[str, Any]]] = {
        "generate": _generate, "prefill": _prefill,
    }
    with contextlib.suppress(EOFError, BrokenPipeError, KeyboardInterrupt):
        while True:
            name, payload = conn.recv()
            if name not in commands:
                break
            try:
                conn.send(commands[name](session, **payload))
            except Exception as exc:  # the bench reports it; this process stays usable
                conn.send({"error": f"{type(exc).__name__}: {exc}"})
    session.close()


def build_chain(s: LlamaSession, settings: SamplerSettings) -> Any:
    """llama.cpp's chain for `settings`, in one `llama_sampler_chain` (the caller frees it).

    Greedy with nothing before it is llama.cpp's greedy sampler alone, the cheapest greedy
    loop there is. Every other chain comes from the engine's own factory
    (`step_sampler.llama_chain`: each stage built as llama.cpp's common/sampling.cpp builds it,
    the stages the settings turn off left out), so both sides run the same samplers with the
    same parameters and seed, and a stage added to the engine reaches the reference too."""
    import llama_cpp as L

    from desktop.engine.step_sampler import llama_chain

    settings = settings.validated()
    if settings.greedy and not any(settings.is_on(st) for st in (STAGE_PENALTIES, STAGE_DRY)):
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())  # the chain frees it
        return chain
    return llama_chain(settings, s.n_vocab, s.n_ctx, s.vocab)


def _accept_prompt(chain: Any, prompt: list[int], st: SamplerSettings, n_ctx: int) -> None:
    """The samplers with a memory (penalties) see the prompt's last tokens, as the engine's do."""
    import llama_cpp as L

    from desktop.engine.worker import last_n

    for token in last_n(prompt, st, n_ctx):
        L.llama_sampler_accept(chain, token)


def _generate(s: LlamaSession, text: str, tokens: int, settings: SamplerSettings
              ) -> dict[str, Any]:
    import llama_cpp as L

    started = time.perf_counter()
    prompt = s.tokenize(text, parse_special=False, add_bos=True)
    reused = s.prepare(prompt)
    chain = build_chain(s, settings)
    try:
        _accept_prompt(chain, prompt, settings, s.n_ctx)
        token = L.llama_sampler_sample(chain, s.ctx, -1)  # accepts the token into the chain too
        first = time.perf_counter()
        sampled = [0] * tokens
        sampled[0] = token
        sampling = 0.0  # in llama_sampler_sample, after the first token
        for i in range(1, tokens):
            s.decode([token])
            t0 = time.perf_counter()
            token = L.llama_sampler_sample(chain, s.ctx, -1)
            sampling += time.perf_counter() - t0
            sampled[i] = token
        ended = time.perf_counter()
    finally:
        L.llama_sampler_free(chain)
    return {
        "tokens_per_second": (tokens - 1) / max(ended - first, 1e-9),
        "sample_ms": sampling * 1000 / (tokens - 1),
        "first_token_ms": (first - started) * 1000,
        "prompt_tokens": len(prompt),
        "reused_tokens": reused,
        "tokens": sampled,
    }


def _prefill(s: LlamaSession, text: str, n_tokens: int) -> dict[str, Any]:
    """A prompt of `n_tokens` tokens into a cache that shares nothing with it but BOS."""
    long = s.tokenize(text, parse_special=False, add_bos=True)[:n_tokens]
    t0 = time.perf_counter()
    reused = s.prepare(long)
    elapsed = time.perf_counter() - t0
    return {"prompt_tokens_per_second": (len(long) - reused) / elapsed, "reused_tokens": reused}
