"""The request log view and the Server panel's snippets, with made-up requests (no model)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, StageView, StepRecord, Timings, Usage
from desktop.server.openlid_server import RequestLogEntry
from desktop.ui.server import RequestLogView, request_models
from desktop.ui.server.snippets import (
    connect_url,
    curl_snippet,
    python_snippet,
    reachable_from_network,
)


def test_snippets() -> None:
    url = connect_url("0.0.0.0", 8080)
    assert url == "http://127.0.0.1:8080/v1"
    assert connect_url("::1", 9) == "http://[::1]:9/v1"
    assert not reachable_from_network("127.0.0.1")
    assert not reachable_from_network("localhost")
    assert not reachable_from_network("[::1]")
    assert reachable_from_network("0.0.0.0")
    assert reachable_from_network("192.168.1.5")
    assert reachable_from_network("example.org")
    for with_key in (False, True):
        code = python_snippet(url, "gemma's", with_key)
        compile(code, "snippet.py", "exec")
        assert url in code
        assert ("os.environ" in code) == with_key
        curl = curl_snippet(url, "gemma's", with_key)
        assert f"curl {url}/chat/completions" in curl
        assert ("Authorization" in curl) == with_key
        assert "gemma'\\''s" in curl  # the body's quote survives the shell's single quotes


def _step(i: int) -> StepRecord:
    stage = StageView("raw", 2, 1.0, (10 + i, 7), (0.6, 0.4))
    return StepRecord(step=i, token_id=10 + i, text=f" w{i}", piece=f" w{i}", prob=0.6,
                      raw_prob=0.6, raw_rank=1, entropy_raw=0.97, entropy_final=0.97,
                      stages=(stage,), pieces={10 + i: f" w{i}", 7: "x"}, n_vocab=100)


def _entry(rid: int, steps: tuple[StepRecord, ...] = (), **kw: Any) -> RequestLogEntry:
    done = GenerationDone("stop", "".join(s.text for s in steps), Usage(5, len(steps)),
                          Timings(1, 2, 3, 40.0)) if steps else None
    values: dict[str, Any] = dict(
        request_id=rid, started=time.time(), method="POST", path="/v1/chat/completions",
        client="127.0.0.1:5000", status=200, duration_ms=12.0,
        body='{"messages": [{"role": "user", "content": "hi"}]}',
        prompt="<start_of_turn>user\nhi<end_of_turn>\n",
        prompt_pieces=(("<start_of_turn>user\n", True), ("hi", False), ("<end_of_turn>\n", True)),
        steps=steps, done=done)
    values.update(kw)
    return RequestLogEntry(**values)


def test_request_log_live_rows_errors_and_bound(qtbot: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    view = RequestLogView()
    qtbot.addWidget(view)
    model = view.model
    view.add_step(1, _step(0))
    view.add_step(1, _step(1))
    assert model.rowCount() == 1
    assert model.index(0, 5).data() == "2"
    assert model.index(0, 2).data() == "generating…"
    with qtbot.waitSignal(view.sig_request_selected) as selected:
        view.select_request(1)
    assert len(selected.args[0].steps) == 2
    assert selected.args[0].settings is None  # a live row: the settings come with its entry
    view.add_step(1, _step(2))
    assert view.steps_model.rowCount() == 3  # the selected live request grows in place
    steps = (_step(0), _step(1), _step(2))
    with qtbot.waitSignal(view.sig_request_selected) as final:
        view.add_entry(_entry(1, steps, settings=SamplerSettings(temperature=0.2, seed=1234),
                              model="gemma"))
    assert list(final.args[0].steps) == list(steps)
    assert final.args[0].kind == "served"
    assert final.args[0].settings_at(2) == SamplerSettings(temperature=0.2, seed=1234)
    assert model.rowCount() == 1
    assert model.index(0, 3).data() == "200"
    assert view.prompt_view.toPlainText() == "<start_of_turn>user\nhi<end_of_turn>\n"
    assert view.prompt_view.untrusted_spans() == [(20, 22)]
    assert '"content": "hi"' in view.body_view.toPlainText()
    assert "w0 w1 w2" in view.reply_view.toPlainText()

    view.add_entry(_entry(2, status=400, body="{not json", prompt="", prompt_pieces=(),
                          error="We could not parse the JSON body of your request."))
    view.select_request(2)
    assert view.body_view.toPlainText() == "{not json"
    assert "could not parse" in view.summary.text()
    assert view.prompt_view.toPlainText() == ""

    monkeypatch.setattr(request_models, "MAX_REQUESTS", 3)
    for rid in range(3, 7):
        view.add_entry(_entry(rid, method="GET", path="/v1/models", body="", prompt="",
                              prompt_pieces=()))
    assert [e.request_id for e in view.entries()] == [4, 5, 6]
    view.clear()
    assert model.rowCount() == 0
    assert view.count_label.text() == "0 requests"
