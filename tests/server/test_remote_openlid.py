"""Another Openlid as the remote endpoint: every sampler stage crosses the wire.

The `server` fixture (an OpenlidServer over Gemma on loopback) is the endpoint. Asked for
`openlid_steps`, it sends every StepRecord as a row; RemoteEngine and the engine worker's
RemoteSession turn them back into records with all stages and real token ids. Without the field
the server answers exactly as before. No server is mocked.
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from desktop.core.conversations.records import step_rows
from desktop.core.model_info import LoadSettings
from desktop.core.sampling import STAGE_RAW, SamplerSettings
from desktop.core.steps import StepRecord, step_from_json
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from desktop.remote import entries as remote_models
from desktop.remote.client import AVAILABLE_STAGES, RemoteEngine, RemoteModel, request_body
from desktop.remote.steps import StepBuilder, choice_records
from tests.server.conftest import API_KEY, LoggedServer, collect, raw_request, settle
from tests.threads import TEST_THREADS

LOAD = LoadSettings(n_ctx=1024, n_threads=TEST_THREADS)
GREEDY = SamplerSettings(temperature=0.0, max_tokens=5)
PROMPT = "The capital of France is"


def _stages(record: StepRecord) -> list[tuple[str, int, tuple[int, ...], tuple[float, ...]]]:
    return [(s.name, s.kept, s.ids, s.probs) for s in record.stages]


def _engine(server: LoggedServer) -> RemoteEngine:
    return RemoteEngine(RemoteModel(server.base_url, server.model_id, API_KEY))


def _sse(server: LoggedServer, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON events of one streamed request, read over a plain connection."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Content-Type": "application/json",
                              "Authorization": f"Bearer {API_KEY}"})
        response = conn.getresponse()
        assert response.status == 200
        lines = response.read().decode("utf-8").splitlines()
    finally:
        conn.close()
    payloads = [line[6:] for line in lines if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


def test_remote_engine_gets_every_stage_the_server_computed(server: LoggedServer) -> None:
    engine = _engine(server)
    assert engine.available_stages == AVAILABLE_STAGES  # not known before the first look
    steps, done = collect(engine.stream_completion(PROMPT, GREEDY))
    assert engine.openlid is True
    assert engine.available_stages == ()
    assert engine.stages_note == ""
    settle(server)
    sent = server.entries[-1]
    assert json.loads(sent.body)["openlid_steps"] is True
    assert len(steps) == len(sent.steps) == 5
    for ours, theirs in zip(steps, sent.steps, strict=True):
        assert len(ours.stages) >= 3
        assert ours.stages[0].name == STAGE_RAW
        assert _stages(ours) == _stages(theirs)  # JSON floats round-trip exactly
        assert (ours.step, ours.token_id, ours.text, ours.piece) == (
            theirs.step, theirs.token_id, theirs.text, theirs.piece)
        assert (ours.prob, ours.raw_prob, ours.raw_rank) == (
            theirs.prob, theirs.raw_prob, theirs.raw_rank)
        assert ours.n_vocab == theirs.n_vocab == 262_144
        assert ours.pieces[ours.token_id] == ours.piece
    assert done.text == "".join(r.text for r in steps)
    assert done.finish_reason == "length"
    assert done.usage.completion_tokens == 5


def test_first_token_candidates_are_real_gemma_ids(server: LoggedServer,
                                                   gemma_path: Path) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    steps, _ = collect(_engine(server).stream_completion(PROMPT, GREEDY.replace(max_tokens=1)))
    raw = steps[0].stage(STAGE_RAW)
    assert raw is not None
    assert len(raw.ids) == GREEDY.top_n
    assert all(0 <= i < 262_144 for i in raw.ids)
    vocab = llama_cpp.Llama(str(gemma_path), vocab_only=True, verbose=False)
    try:
        for token_id in raw.ids[:5]:
            assert vocab.detokenize([token_id]).decode("utf-8") == steps[0].pieces[token_id]
        assert vocab.tokenize(steps[0].piece.encode(), add_bos=False) == [steps[0].token_id]
    finally:
        vocab.close()


def test_chat_and_stop_strings_keep_every_token(server: LoggedServer) -> None:
    """Rows are not cut like logprobs: the stop string's tokens and the end token are there, as
    in a local transcript; the text is cut as before."""
    engine = _engine(server)
    first, _ = collect(engine.stream_completion(PROMPT, GREEDY.replace(max_tokens=3)))
    stop = first[1].text.strip() or first[1].text
    steps, done = collect(engine.stream_completion(PROMPT, GREEDY.replace(stop=(stop,))))
    assert done.finish_reason == "stop"
    assert stop not in done.text
    assert len(steps) == 2
    assert [r.token_id for r in steps] == [r.token_id for r in first[:2]]
    chat, chat_done = collect(engine.stream_chat(
        [{"role": "user", "content": "Say hi."}], GREEDY.replace(max_tokens=4)))
    assert 1 <= len(chat) <= 4
    assert all(len(r.stages) >= 3 and r.token_id >= 0 for r in chat)
    assert [r.step for r in chat] == list(range(len(chat)))
    assert chat_done.usage.completion_tokens == len(chat)


def test_wire_format_of_openlid_steps(server: LoggedServer) -> None:
    body = {"model": server.model_id, "prompt": PROMPT, "max_tokens": 3, "temperature": 0}
    status, whole = raw_request(server, "POST", "/v1/completions",
                                json.dumps({**body, "openlid_steps": True}).encode())
    assert status == 200
    settle(server)
    rows = whole["choices"][0]["openlid_steps"]
    assert rows == step_rows(server.entries[-1].steps)
    assert [step_from_json(r).token_id for r in rows] == [
        r.token_id for r in server.entries[-1].steps]

    events = _sse(server, "/v1/chat/completions", {
        "model": server.model_id, "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 3, "temperature": 0, "stream": True, "openlid_steps": True})
    settle(server)
    streamed = [e["choices"][0]["openlid_step"] for e in events
                if "openlid_step" in e["choices"][0]]
    assert streamed == step_rows(server.entries[-1].steps)
    assert sum("openlid_step" in e["choices"][0] for e in events) == len(streamed)

    status, bad = raw_request(server, "POST", "/v1/completions",
                              json.dumps({**body, "openlid_steps": "yes"}).encode())
    assert status == 400
    assert bad["error"]["param"] == "openlid_steps"


def test_without_the_field_nothing_changes(server: LoggedServer) -> None:
    body = {"model": server.model_id, "prompt": PROMPT, "max_tokens": 2, "temperature": 0,
            "logprobs": 2}
    status, whole = raw_request(server, "POST", "/v1/completions", json.dumps(body).encode())
    assert status == 200
    assert set(whole["choices"][0]) == {"index", "text", "logprobs", "finish_reason"}
    events = _sse(server, "/v1/completions", {**body, "stream": True})
    assert all("openlid_step" not in c for e in events for c in e["choices"])
    settle(server)
    assert len(server.entries[-1].steps) == 2  # the log keeps every stage as before
    assert len(server.entries[-1].steps[0].stages) >= 3


def test_official_openai_client_passes_the_extension(server: LoggedServer) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0,
                           timeout=120)
    try:
        plain = client.completions.create(model=server.model_id, prompt=PROMPT, max_tokens=2,
                                          temperature=0)
        assert "openlid_steps" not in (plain.choices[0].model_extra or {})
        rich = client.completions.create(model=server.model_id, prompt=PROMPT, max_tokens=2,
                                         temperature=0, extra_body={"openlid_steps": True})
        rows = (rich.choices[0].model_extra or {})["openlid_steps"]
        assert all(len(step_from_json(r).stages) >= 3 for r in rows)
        assert "".join(r["text"] for r in rows) == rich.choices[0].text == plain.choices[0].text
        stream = client.chat.completions.create(
            model=server.model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=2,
            temperature=0, stream=True, extra_body={"openlid_steps": True})
        got = [(c.choices[0].model_extra or {}).get("openlid_step") for c in stream
               if c.choices]
        assert sum(row is not None for row in got) == 2
    finally:
        client.close()


def test_plain_logprobs_when_told_the_endpoint_is_not_openlid(server: LoggedServer) -> None:
    engine = RemoteEngine(RemoteModel(server.base_url, server.model_id, API_KEY), openlid=False)
    steps, _ = collect(engine.stream_completion(PROMPT, GREEDY.replace(max_tokens=2),
                                             top_logprobs=3))
    assert [[s.name for s in r.stages] for r in steps] == [["raw"], ["raw"]]
    assert all(r.token_id < 0 for r in steps)  # synthetic ids: the logprobs path
    assert "openlid_steps" not in request_body("completion", engine.model, GREEDY, 3)


def test_chunks_without_a_row_fall_back_only_in_a_stream_without_rows() -> None:
    row = step_rows([StepRecord(step=0, token_id=7, text="a", piece="a", prob=1.0, raw_prob=1.0,
                                raw_rank=1, entropy_raw=0.0, entropy_final=0.0, stages=())])[0]
    logprobs = {"tokens": ["b"], "token_logprobs": [-0.1], "top_logprobs": [{"b": -0.1}]}
    plain = StepBuilder()
    assert [r.token_id for r in choice_records(plain, {"text": "b", "logprobs": logprobs},
                                               False, 1.0)] == [-1]
    rows = StepBuilder()
    assert [r.token_id for r in choice_records(rows, {"text": "", "openlid_step": row},
                                               False, 1.0)] == [7]
    assert rows.step == 1
    # After rows, a row-less chunk (text held back for a stop string) adds no record.
    assert list(choice_records(rows, {"text": "b", "logprobs": logprobs}, False, 1.0)) == []


def test_engine_loads_an_openlid_entry_with_every_stage(host: EngineHost,
                                                        server: LoggedServer) -> None:
    entry = remote_models.add(RemoteModel(server.base_url, server.model_id, API_KEY))
    loaded = list(host.wait(host.load(entry.path, LOAD), timeout=60))[-1]
    assert isinstance(loaded, P.Loaded), loaded
    assert loaded.info.available_stages == ()
    assert loaded.info.stages_note == ""
    assert loaded.info.architecture == "remote"
    events = list(host.wait(host.generate(((PROMPT, False),), GREEDY), timeout=120))
    steps = [e.record for e in events if isinstance(e, P.Step)]
    done = events[-1]
    assert isinstance(done, P.Done), done
    assert len(steps) == 5
    for i, record in enumerate(steps):
        assert record.step == i
        assert len(record.stages) >= 3
        assert record.token_id >= 0
        assert record.n_vocab == 262_144
    assert done.result.text == "".join(r.text for r in steps)
    replay = list(host.wait(host.replay((1, 2, 3), -1, 0, GREEDY, 2), timeout=60))[-1]
    assert isinstance(replay, P.EngineError)  # replay still needs a local model
    assert "needs a local model" in replay.message


class _OlderOpenlid(http.server.BaseHTTPRequestHandler):
    """A peer that answers like an Openlid from before `openlid_steps`: it lists its model as
    Openlid's and refuses the unknown field, as that server's field check did."""

    bodies: ClassVar[list[dict[str, Any]]] = []

    def _send(self, status: int, data: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        models = {"object": "list", "data": [{"id": "old", "owned_by": "openlid"}]}
        self._send(200, json.dumps(models).encode(), "application/json")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.bodies.append(body)
        if "openlid_steps" in body:
            error = {"error": {"message": "Unrecognized request argument supplied: "
                               "openlid_steps", "param": "openlid_steps"}}
            return self._send(400, json.dumps(error).encode(), "application/json")
        chunk = {"choices": [{"index": 0, "text": " Paris", "finish_reason": "length",
                              "logprobs": {"tokens": [" Paris"], "token_logprobs": [-0.5],
                                           "top_logprobs": [{" Paris": -0.5}]}}]}
        self._send(200, f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode(),
                   "text/event-stream")

    def log_message(self, *_args: object) -> None:
        pass


def test_an_older_openlid_that_refuses_the_field_is_asked_plainly() -> None:
    peer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OlderOpenlid)
    thread = threading.Thread(target=peer.serve_forever, name="older-openlid", daemon=True)
    thread.start()
    try:
        engine = RemoteEngine(RemoteModel(f"http://127.0.0.1:{peer.server_address[1]}/v1",
                                          "old"))
        steps, done = collect(engine.stream_completion(PROMPT, GREEDY))
        assert [b.get("openlid_steps") for b in _OlderOpenlid.bodies] == [True, None]
        assert engine.openlid is False
        assert engine.available_stages == AVAILABLE_STAGES
        assert [[s.name for s in r.stages] for r in steps] == [["raw"]]
        assert done.text == " Paris"
    finally:
        peer.shutdown()
        peer.server_close()
        thread.join(5)
