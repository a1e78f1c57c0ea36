"""`reasoning_content` as llama-server returns it, through the official `openai` client: the
real engine and the ready Gemma model, its output forced by a grammar into a thinking block and
an answer (Gemma has no thinking training), whole and streamed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.conftest import API_KEY, LoggedServer

openai = pytest.importorskip("openai")

THINKING = 'root ::= "<think>" [a-z ]{3,30} "</think>" [a-z ]{3,30}'


@pytest.fixture
def client(server: LoggedServer) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=120)
    yield c
    c.close()


def ask(client: openai.OpenAI, **kw: object) -> object:
    return client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Think, then say hello."}],
        max_tokens=60, temperature=0.8, seed=3, extra_body={"grammar": THINKING}, **kw)


def test_a_thinking_block_comes_back_as_reasoning_content(client: openai.OpenAI) -> None:
    message = ask(client).choices[0].message  # type: ignore[attr-defined]
    thinking = message.model_extra["reasoning_content"]
    assert thinking
    assert "<think>" not in message.content
    assert "</think>" not in message.content
    assert set(thinking + message.content) <= set("abcdefghijklmnopqrstuvwxyz ")


def test_streamed_deltas_carry_reasoning_content_then_content(client: openai.OpenAI) -> None:
    thinking, content, order = "", "", []
    for chunk in ask(client, stream=True):  # type: ignore[attr-defined]
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        extra = (delta.model_extra or {}).get("reasoning_content")
        if extra:
            thinking += extra
            order.append("thinking")
        if delta.content:
            content += delta.content
            order.append("content")
    whole = ask(client).choices[0].message  # type: ignore[attr-defined]
    assert thinking.strip() == whole.model_extra["reasoning_content"]
    assert content == whole.content
    assert "think>" not in content
    assert order == sorted(order, key=lambda kind: kind == "content")  # thinking first
