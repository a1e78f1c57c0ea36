"""Remote model entries loaded by the real engine worker: EngineHost loads "remote:<id>", and the
worker's RemoteSession streams from a real llama-cpp-python server (and, where a key is needed,
from Openlid's own server) on loopback. No server is mocked.

Generations stay a few tokens long: llama-cpp-python computes logprobs slowly on Gemma's 262k
vocabulary (FACTS.md).
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from desktop.core.model_info import LoadSettings
from desktop.core.sampling import SamplerSettings
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from desktop.remote import entries as remote_models
from desktop.remote.client import STAGES_NOTE, RemoteEngine, RemoteModel
from tests.server.conftest import API_KEY, LoggedServer
from tests.server.test_remote_engine import llama_server
from tests.threads import TEST_THREADS

__all__ = ["llama_server"]  # the module fixture, shared with test_remote_engine.py

LOAD = LoadSettings(n_ctx=1024, n_threads=TEST_THREADS)
GREEDY = SamplerSettings(temperature=0.0, max_tokens=4)
PROMPT: P.PromptPieces = (("The capital of France is", False),)
SECRET = "sk-never-shown-0123456789"


@pytest.fixture(scope="module")
def llama_model_id(llama_server: str) -> str:
    return RemoteEngine(RemoteModel(llama_server, "?")).list_models()[0]


def answer(host: EngineHost, request_id: int, timeout: float = 120) -> list[P.EngineEvent]:
    events = list(host.wait(request_id, timeout=timeout))
    assert not any(isinstance(e, P.Crashed) for e in events), events
    return events


def load(host: EngineHost, model: RemoteModel) -> P.EngineEvent:
    entry = remote_models.add(model)
    return answer(host, host.load(entry.path, LOAD))[-1]


def test_load_and_generate_streams_raw_only_steps(
    host: EngineHost, llama_server: str, llama_model_id: str
) -> None:
    loaded = load(host, RemoteModel(llama_server, llama_model_id, name="Gemma far away"))
    assert isinstance(loaded, P.Loaded), loaded
    info = loaded.info
    assert info.architecture == "remote"
    assert info.name == llama_model_id  # the id picks a template preset; the library shows the name
    assert info.backend == f"remote: {llama_server}"
    assert info.available_stages == ("raw",)
    assert info.stages_note == STAGES_NOTE
    assert info.n_ctx == 1024  # llama-cpp-python does not say: the LoadSettings context stands

    events = answer(host, host.generate(PROMPT, GREEDY))
    steps = [e.record for e in events if isinstance(e, P.Step)]
    done = events[-1]
    assert isinstance(done, P.Done), done
    assert len(steps) == 4
    for i, record in enumerate(steps):
        assert record.step == i
        assert [s.name for s in record.stages] == ["raw"]
        assert record.raw_rank == 1  # greedy
        assert record.pieces[record.token_id] == record.piece
    assert done.result.finish_reason == "length"
    assert done.result.text == "".join(r.text for r in steps)
    assert done.result.usage.completion_tokens == 4
    assert done.prompt_tokens == ()  # token ids are not part of the API


def test_what_needs_token_ids_fails_clearly_and_the_model_stays_usable(
    host: EngineHost, llama_server: str, llama_model_id: str
) -> None:
    assert isinstance(load(host, RemoteModel(llama_server, llama_model_id)), P.Loaded)
    for request_id in (
        host.replay((1, 2, 3), -1, 0, GREEDY, 2),
        host.tokenize(PROMPT),
        host.generate(PROMPT, GREEDY, forced_tokens=(-1,)),
    ):
        failed = answer(host, request_id)[-1]
        assert isinstance(failed, P.EngineError)
        assert failed.kind == "unsupported"
        assert "needs a local model" in failed.message
    events = answer(host, host.generate(PROMPT, GREEDY.replace(max_tokens=1)))
    assert isinstance(events[-1], P.Done)
    assert sum(isinstance(e, P.Step) for e in events) == 1


def test_wrong_key_unknown_model_and_unreachable_url_fail_in_words(
    host: EngineHost, server: LoggedServer, llama_server: str
) -> None:
    wrong = load(host, RemoteModel(server.base_url, server.model_id, SECRET))
    assert isinstance(wrong, P.EngineError)
    assert wrong.kind == "load_failed"
    assert "401" in wrong.message
    assert "key was refused" in wrong.message
    assert SECRET not in wrong.message

    missing = load(host, RemoteModel(server.base_url, server.model_id))
    assert isinstance(missing, P.EngineError)
    assert "needs an API key" in missing.message

    unknown = load(host, RemoteModel(llama_server, "no-such-model"))
    assert isinstance(unknown, P.EngineError)
    assert "serves no model named 'no-such-model'" in unknown.message

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = load(host, RemoteModel(f"http://127.0.0.1:{port}/v1", "x", SECRET))
    assert isinstance(down, P.EngineError)
    assert f"cannot reach http://127.0.0.1:{port}/v1" in down.message

    gone = answer(host, host.load("remote:0123456789ab", LOAD))[-1]
    assert isinstance(gone, P.EngineError)
    assert "no remote model" in gone.message

    # After all that the engine loads and runs the right entry.
    loaded = load(host, RemoteModel(server.base_url, server.model_id, API_KEY))
    assert isinstance(loaded, P.Loaded)
    assert API_KEY not in json.dumps(loaded.info.to_json())
    assert API_KEY not in repr(loaded.info)
    events = answer(host, host.generate(PROMPT, GREEDY.replace(max_tokens=2)))
    assert isinstance(events[-1], P.Done)


def test_cancel_ends_a_remote_generation_within_a_token(
    host: EngineHost, server: LoggedServer
) -> None:
    assert isinstance(load(host, RemoteModel(server.base_url, server.model_id, API_KEY)),
                      P.Loaded)
    request_id = host.generate(PROMPT, SamplerSettings(max_tokens=400, ignore_eos=True))
    steps = 0
    done = None
    for event in host.wait(request_id, timeout=120):
        if isinstance(event, P.Step):
            steps += 1
            if steps == 2:
                host.cancel()
        else:
            done = event
    assert isinstance(done, P.Done), done
    assert done.result.finish_reason == "cancelled"
    assert steps < 50


class _SilentHandler(http.server.BaseHTTPRequestHandler):
    """A peer that lists its model, then says nothing about a completion until released (a big
    model still reading a long prompt)."""

    release = threading.Event()

    def do_GET(self) -> None:
        body = json.dumps({"object": "list", "data": [{"id": "slow", "max_model_len": 4096}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def do_POST(self) -> None:
        self.release.wait(30)

    def log_message(self, *_args: object) -> None:
        pass


def test_stop_before_the_first_token_answers_at_once(host: EngineHost) -> None:
    peer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SilentHandler)
    thread = threading.Thread(target=peer.serve_forever, name="silent-peer", daemon=True)
    thread.start()
    try:
        loaded = load(host, RemoteModel(f"http://127.0.0.1:{peer.server_address[1]}/v1", "slow"))
        assert isinstance(loaded, P.Loaded), loaded
        assert loaded.info.n_ctx == 4096  # vLLM's way of saying its context
        request_id = host.generate(PROMPT, GREEDY)
        time.sleep(0.3)
        host.cancel()
        started = time.monotonic()
        done = answer(host, request_id, timeout=10)[-1]
        assert isinstance(done, P.Done), done
        assert done.result.finish_reason == "cancelled"
        assert time.monotonic() - started < 3
    finally:
        _SilentHandler.release.set()
        peer.shutdown()
        peer.server_close()
        thread.join(5)


def test_keys_never_reach_the_engine_log(host: EngineHost) -> None:
    """Runs last in this module: every load above, failed or not, wrote to this log."""
    log = Path(host.log_path).read_text(encoding="utf-8", errors="replace")
    assert SECRET not in log
    assert API_KEY not in log


def test_a_remote_model_gets_the_template_its_id_names() -> None:
    from desktop.core.templates.prompt import choose_template

    for model_id, preset in (("meta-llama/Llama-3.1-70B-Instruct", "llama"),
                             ("Qwen/Qwen2.5-72B-Instruct", "qwen"),
                             ("google/gemma-3-27b-it", "gemma")):
        chosen = choose_template({}, "remote", model_id)
        assert preset in chosen.id.lower(), (model_id, chosen.id)
