"""Remote engines: Openlid's OpenAI-compatible client against a real llama-cpp-python server.

The peer runs as `python -m llama_cpp.server` on loopback, one per module, always killed in
teardown. llama-cpp-python computes logprobs slowly on Gemma's 262k vocabulary (FACTS.md), so
generations here are a few tokens long.
"""

from __future__ import annotations

import io
import json
import math
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StepRecord
from desktop.remote.client import (
    AVAILABLE_STAGES,
    RemoteEngine,
    RemoteError,
    RemoteModel,
    request_body,
)
from desktop.remote.http import sse_events
from desktop.remote.steps import StepBuilder, choice_records
from tests.server.conftest import API_KEY, LoggedServer, collect
from tests.threads import TEST_THREADS

GREEDY = SamplerSettings(temperature=0.0, max_tokens=4)
PROMPT = "The capital of France is"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(gemma_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log_path, "wb") as log:
        # Output to a file, not a pipe: an unread pipe fills up and stalls the server.
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gemma_path),
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024",
             "--n_threads", str(TEST_THREADS),
             "--chat_format", "gemma"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}/v1"
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"{base}/models", timeout=2) as response:
                        response.read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail("llama_cpp.server did not answer within 120 s")
                    time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _check_raw_only(steps: list[StepRecord], top: int) -> None:
    for i, record in enumerate(steps):
        assert record.step == i
        assert [s.name for s in record.stages] == list(AVAILABLE_STAGES) == ["raw"]
        raw = record.stages[0]
        assert 0 < len(raw.ids) <= top + 1
        assert all(token_id < 0 for token_id in raw.ids)  # synthetic: ids are unknown remotely
        assert all(token_id in record.pieces for token_id in raw.ids)
        assert list(raw.probs) == sorted(raw.probs, reverse=True)
        assert 0 < record.raw_prob <= 1
        assert record.prob == record.raw_prob
        assert record.pieces[record.token_id] == record.piece
        assert record.entropy_raw >= 0


# --- against llama-cpp-python's server ---


def test_completion_streams_step_records(llama_server: str) -> None:
    engine = RemoteEngine(RemoteModel(llama_server, "gemma"))
    assert engine.list_models()
    steps, done = collect(engine.stream_completion(PROMPT, GREEDY, top_logprobs=5))
    assert len(steps) == 4
    _check_raw_only(steps, 5)
    assert all(r.raw_rank == 1 for r in steps)  # greedy picks the most probable token
    assert done.text == "".join(r.text for r in steps)
    assert done.finish_reason == "length"
    assert done.usage.completion_tokens == 4


def test_chat_streams_step_records(llama_server: str) -> None:
    engine = RemoteEngine(RemoteModel(llama_server, "gemma"))
    steps, done = collect(engine.stream_chat(
        [{"role": "user", "content": "Say hi."}], GREEDY.replace(max_tokens=3), top_logprobs=3))
    assert 1 <= len(steps) <= 3
    _check_raw_only(steps, 3)
    assert done.text == "".join(r.text for r in steps)


def test_both_servers_report_the_same_raw_distribution(
    llama_server: str, server: LoggedServer
) -> None:
    """llama-cpp-python and Openlid both report the model's own softmax: they must agree."""
    settings = GREEDY.replace(max_tokens=1)
    theirs, _ = collect(RemoteEngine(RemoteModel(llama_server, "gemma")).stream_completion(
        PROMPT, settings, top_logprobs=5))
    ours, _ = collect(RemoteEngine(RemoteModel(server.base_url, "x", API_KEY)).stream_completion(
        PROMPT, settings, top_logprobs=5))
    a, b = theirs[0], ours[0]
    assert a.piece == b.piece
    top_a = {a.pieces[i]: p for i, p in zip(a.stages[0].ids, a.stages[0].probs)}
    top_b = {b.pieces[i]: p for i, p in zip(b.stages[0].ids, b.stages[0].probs)}
    shared = set(top_a) & set(top_b)
    assert len(shared) >= 3
    for text in shared:
        assert top_a[text] == pytest.approx(top_b[text], abs=0.03)


# --- against Openlid's own server ---


def test_cancel_ends_the_stream(server: LoggedServer) -> None:
    engine = RemoteEngine(RemoteModel(server.base_url, "x", API_KEY))
    stream = engine.stream_completion(
        PROMPT, SamplerSettings(max_tokens=300, ignore_eos=True), top_logprobs=2)
    steps: list[StepRecord] = []
    done = None
    for item in stream:
        if isinstance(item, StepRecord):
            steps.append(item)
            if len(steps) == 2:
                threading.Thread(target=engine.cancel).start()
        else:
            done = item
    assert done is not None
    assert done.finish_reason == "cancelled"
    assert len(steps) < 300


def test_errors_are_reported_in_words(server: LoggedServer) -> None:
    wrong_key = RemoteEngine(RemoteModel(server.base_url, "x", "not-the-key"))
    with pytest.raises(RemoteError) as info:
        collect(wrong_key.stream_completion(PROMPT, GREEDY))
    assert info.value.status == 401
    assert "API key" in str(info.value)
    unknown = RemoteEngine(RemoteModel(server.base_url, "x", API_KEY))
    with pytest.raises(RemoteError) as info:
        collect(unknown.stream_completion("", GREEDY))
    assert info.value.status == 400
    assert "prompt" in str(info.value)
    nobody = RemoteEngine(RemoteModel(f"http://127.0.0.1:{_free_port()}/v1", "x"), timeout=5)
    with pytest.raises(RemoteError) as info:
        nobody.list_models()
    assert info.value.kind == "connect"
    with pytest.raises(RemoteError):
        RemoteModel("ftp://example/v1", "x").validated()
    with pytest.raises(RemoteError):
        RemoteModel("http://127.0.0.1:1/v1", " ").validated()


# --- pure parts ---


def test_request_body_maps_sampler_settings() -> None:
    model = RemoteModel("http://h/v1", "llama", "secret")
    s = SamplerSettings(temperature=0.3, top_k=7, repeat_penalty=1.2, seed=5, stop=("x",),
                        mirostat=2, max_tokens=9)
    chat = request_body("chat", model, s, 4)
    assert chat["model"] == "llama"
    assert chat["stream"] is True
    assert (chat["logprobs"], chat["top_logprobs"]) == (True, 4)
    assert (chat["temperature"], chat["max_tokens"], chat["seed"], chat["stop"]) == (
        0.3, 9, 5, ["x"])
    assert chat["top_k"] == 7
    assert chat["repeat_penalty"] == chat["repetition_penalty"] == 1.2
    assert chat["mirostat"] == chat["mirostat_mode"] == 2
    text = request_body("completion", model.__class__(model.base_url, "llama", llama_extras=False),
                        SamplerSettings(), 3)
    assert text["logprobs"] == 3
    assert "top_logprobs" not in text
    assert "seed" not in text
    assert "top_k" not in text
    assert "stop" not in text
    neutral = request_body("chat", model, SamplerSettings(), 0)
    assert neutral["repeat_penalty"] == 1.0
    assert neutral["logprobs"] is False
    assert "mirostat" not in neutral
    assert "samplers" not in neutral  # llama.cpp's default order: nothing to say
    # A chain order of the person's own reaches llama-server by llama-server's names.
    reordered = SamplerSettings().replace(order=("temperature", *SamplerSettings().order[:-1]))
    assert reordered.order != SamplerSettings().order
    body = request_body("completion", model, reordered, 0)
    assert body["samplers"][:1] == ["temperature"]
    assert "typ_p" in body["samplers"]
    assert "typical" not in body["samplers"]
    plain = RemoteModel("http://h/v1", "gpt", llama_extras=False)
    assert "samplers" not in request_body("completion", plain, reordered, 0)  # OpenAI's own


def test_key_stays_out_of_repr_and_json() -> None:
    model = RemoteModel("http://h/v1", "m", "sk-secret")
    assert "sk-secret" not in repr(model)
    assert "api_key" not in model.to_json()
    assert RemoteModel.from_json(model.to_json(include_key=True)) == model


class _Lines(io.BytesIO):
    """Stands in for an HTTPResponse: readline() is all sse_events uses."""


def test_sse_parsing_handles_comments_multiline_data_and_done() -> None:
    stream = _Lines(
        b": keep-alive\n\n"
        b"event: message\ndata: {\"a\":\ndata: 1}\n\n"
        b"data: {\"b\": 2}\r\n\r\n"
        b"data: [DONE]\n\n"
        b"data: {\"c\": 3}\n\n"
    )
    assert list(sse_events(stream)) == [{"a": 1}, {"b": 2}]  # type: ignore[arg-type]
    with pytest.raises(RemoteError):
        list(sse_events(_Lines(b"data: {oops\n\n")))  # type: ignore[arg-type]


def test_tokens_get_stable_synthetic_ids_and_split_characters_join() -> None:
    tokens = StepBuilder()
    first = tokens.record("\\xe2", math.log(0.5), [("\\xe2", math.log(0.5)), ("a", -2.0)],
                          [0xE2], 1.0)
    second = tokens.record("\\x82\\xac", math.log(0.9), [("\\x82\\xac", math.log(0.9))],
                           [0x82, 0xAC], 1.0)
    again = tokens.record("a", -2.0, [("\\xe2", -0.1), ("a", -2.0)], None, 1.0)
    assert first.text == ""
    assert second.text == "€"
    assert first.token_id == -1
    assert again.token_id == -2
    assert again.stages[0].ids == (-1, -2)
    assert again.raw_rank == 2
    assert first.entropy_raw == pytest.approx(
        -(0.5 * math.log2(0.5) + math.exp(-2) * math.log2(math.exp(-2))
          + (0.5 - math.exp(-2)) * math.log2(0.5 - math.exp(-2))))
    bare = tokens.record("zz", None, [], None, 1.0)
    assert bare.stages == ()
    assert bare.raw_rank == 0
    assert json.dumps(first.to_json())


# One chunk of llama-server's streamed text completion (`/v1/completions`, "logprobs": 3),
# recorded from the llama-server built from the engine's llama.cpp (packaging/llama_tools.sh):
# it sends the chat form, `logprobs.content`, for a text completion too.
LLAMA_SERVER_CHUNK = {
    "text": " in", "index": 0, "finish_reason": None,
    "logprobs": {"content": [{
        "id": 528, "token": " in", "bytes": [32, 105, 110], "logprob": -2.192399024963379,
        "top_logprobs": [
            {"id": 236764, "token": ",", "bytes": [44], "logprob": -0.5004968643188477},
            {"id": 528, "token": " in", "bytes": [32, 105, 110], "logprob": -2.192399024963379},
            {"id": 993, "token": " there", "bytes": [32, 116, 104, 101, 114, 101],
             "logprob": -2.7002477645874023},
        ]}]},
}


def test_a_llama_server_completion_chunk_gives_its_step() -> None:
    """Read as the legacy form only, llama-server's completions gave no steps at all: no chart,
    and the CLI printed nothing (it prints the steps' text)."""
    records = list(choice_records(StepBuilder(), LLAMA_SERVER_CHUNK, False, 1.0))
    assert [r.text for r in records] == [" in"]
    (record,) = records
    assert record.raw_prob == pytest.approx(math.exp(-2.192399024963379))
    assert record.raw_rank == 2
    (raw,) = record.stages
    assert [record.pieces[i] for i in raw.ids] == [",", " in", " there"]
    assert raw.probs[0] == pytest.approx(math.exp(-0.5004968643188477))
    # A chunk with text and no entries (logprobs not asked for) still gives its text.
    bare = {"text": " the", "logprobs": {"content": []}}
    assert [r.text for r in choice_records(StepBuilder(), bare, False, 1.0)] == [" the"]
