"""Parity with llama.cpp's own tools: the engine's context is llama.cpp's default one, and where
llama-server is built (packaging/llama_tools.sh llama-server: the engine's own llama.cpp, ~4
minutes; not in CI), a seeded reply is llama-server's, byte for byte, on every chain the bench
measures — the stages the chart shows are what llama.cpp's samplers did, and the token is
llama.cpp's own draw from those logits.

Measured when flash attention was still off by default here (llama.cpp's default had become
"auto"): at temperature 1.3 the texts parted from llama-server's on 3 seeds of 3; with auto,
none did.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.bench.chains import Chain, bench_chains
from desktop.core.model_info import LoadSettings
from desktop.core.sampler_stages import request_fields, server_order
from desktop.core.sampling import SamplerSettings
from desktop.engine.host import EngineHost
from tests.engine.conftest import LOAD, load, run
from tests.threads import TEST_THREADS

LLAMA_SERVER = Path(__file__).resolve().parents[2] / "build/llama.cpp/build/bin/llama-server"
PROMPT = "Once upon a time"
TOKENS = 40


def test_the_engines_context_is_llama_cpps_default_one() -> None:
    """Flash attention and the KV cache's type are what llama.cpp's own tools run with unless
    told otherwise (llama-server, llama-cli, llama-bench): their logits, so their draws."""
    import llama_cpp as L

    from desktop.engine.llama_session import _FLASH_ATTN, _KV_TYPES

    default = L.llama_context_default_params()
    ours = LoadSettings()
    assert _FLASH_ATTN[ours.flash_attn] == default.flash_attn_type
    assert _KV_TYPES[ours.kv_cache_type] == default.type_k == default.type_v


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(gemma_path: Path) -> Iterator[str]:
    if not LLAMA_SERVER.is_file():
        pytest.skip("llama-server is not built here: packaging/llama_tools.sh llama-server")
    port = _free_port()
    proc = subprocess.Popen(
        [str(LLAMA_SERVER), "-m", str(gemma_path), "-t", str(TEST_THREADS), "-c",
         str(LOAD.n_ctx), "--host", "127.0.0.1", "--port", str(port), "--no-webui"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert proc.poll() is None, f"llama-server exited with {proc.returncode}"
            assert time.monotonic() < deadline, "llama-server did not come up in 120 s"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _theirs(url: str, settings: SamplerSettings) -> str:
    body = {
        "prompt": PROMPT, "n_predict": settings.max_tokens, "seed": settings.seed,
        "cache_prompt": False,
        "samplers": server_order(settings.order),  # by llama-server's own names
        **request_fields(settings, extras=True, everything=True),
    }
    request = urllib.request.Request(f"{url}/completion", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        return str(json.load(answer)["content"])


@pytest.mark.parametrize("chain", bench_chains(), ids=lambda c: c.name)
def test_a_seeded_reply_is_llama_servers_on_every_chain(llama_server: str, engine: EngineHost,
                                                       chain: Chain) -> None:
    settings = chain.settings
    for seed in (5, 11):
        s = settings.replace(seed=seed, max_tokens=TOKENS, ignore_eos=False)
        theirs = _theirs(llama_server, s)
        for capture in (True, False):  # the chart's path and the plain one
            steps, done = run(engine, PROMPT, s, capture=capture)
            assert done.text == theirs, (seed, capture)
            assert len(steps) >= 1


def test_temperature_1_3_parts_from_llama_server_with_flash_attention_off(
        llama_server: str, gemma_path: Path) -> None:
    """The check above has teeth: the same engine with flash attention off (the old default)
    computes other logits than llama-server's default context, and its draws part ways."""
    host = EngineHost()
    try:
        load(host, gemma_path, LOAD.replace(flash_attn="off"))
        parted = 0
        for seed in (7, 42, 3):
            s = SamplerSettings(temperature=1.3, seed=seed, max_tokens=TOKENS,
                                repeat_penalty=1.0)
            _, done = run(host, PROMPT, s, capture=False)
            parted += done.text != _theirs(llama_server, s)
        assert parted >= 1
    finally:
        host.shutdown()


def test_a_remote_llama_server_streams_the_engines_tokens_and_raw_probabilities(
        llama_server: str, engine: EngineHost) -> None:
    """Openlid's remote engine against llama-server (the endpoint LM Studio users point at most):
    every token a step, its raw top candidates the local engine's raw stage, and a seeded reply
    the local engine's text (llama-server sends the chat form of logprobs for a text completion:
    read as the legacy form it gave no steps)."""
    from desktop.remote.client import RemoteEngine, RemoteModel
    from tests.server.conftest import collect

    remote = RemoteEngine(RemoteModel(f"{llama_server}/v1", "gemma"))
    greedy = SamplerSettings(temperature=0.0, max_tokens=12, repeat_penalty=1.0)
    far, far_done = collect(remote.stream_completion(PROMPT, greedy, top_logprobs=5))
    near, near_done = run(engine, PROMPT, greedy)
    assert far_done.text == near_done.text
    assert [r.text for r in far] == [r.text for r in near]
    for theirs, ours in zip(far, near, strict=True):
        raw = ours.stages[0]
        listed = {ours.pieces[i]: p for i, p in zip(raw.ids, raw.probs, strict=True)}
        (far_raw,) = theirs.stages
        for token_id, p in zip(far_raw.ids, far_raw.probs, strict=True):
            # llama-server sums the 262,144 exponentials in float, in order: terms under half
            # an ulp of the running sum are lost, so its probabilities run ~0.02% high (0.60623
            # against 0.60612 here); the engine's normaliser sums them exactly enough (2e-6).
            assert p == pytest.approx(listed[theirs.pieces[token_id]], rel=1e-3)
    seeded = SamplerSettings(temperature=1.3, seed=7, max_tokens=TOKENS, repeat_penalty=1.0)
    _, done = collect(remote.stream_completion(PROMPT, seeded, top_logprobs=0))
    assert done.text == run(engine, PROMPT, seeded)[1].text
    # A chain order of one's own (temperature first, typical on) reaches llama-server too.
    order = ("temperature", *(n for n in seeded.order if n != "temperature"))
    reordered = seeded.replace(order=order, typical_p=0.8)
    _, done = collect(remote.stream_completion(PROMPT, reordered, top_logprobs=0))
    assert done.text == run(engine, PROMPT, reordered)[1].text
    assert done.text != run(engine, PROMPT, seeded.replace(typical_p=0.8))[1].text


def test_a_quantized_kv_cache_runs_with_auto_and_is_refused_in_words_with_off(
        gemma_path: Path) -> None:
    """A quantized V half needs the fused kernel: "auto" turns it on (llama.cpp says so in its
    log, the engine reports it), "off" is refused before llama.cpp is asked."""
    from desktop.engine import protocol as P

    host = EngineHost()
    try:
        loaded = load(host, gemma_path, LOAD.replace(kv_cache_type="q8_0"))
        assert isinstance(loaded, P.Loaded), loaded
        assert loaded.info.flash_attn is True
        _, done = run(host, PROMPT, SamplerSettings(temperature=0.0, max_tokens=4))
        assert done.usage.completion_tokens == 4
        refused = load(host, gemma_path, LOAD.replace(kv_cache_type="q8_0", flash_attn="off"))
        assert isinstance(refused, P.EngineError), refused
        assert refused.kind == "load_failed"
        assert "a quantized KV cache needs flash attention (auto or on)" in refused.message
    finally:
        host.shutdown()
