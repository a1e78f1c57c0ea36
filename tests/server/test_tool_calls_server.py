"""Tool calls through the server, driven by the official `openai` client, on the real engine.

The ready Gemma 3 270M is a base model without tool training, and its template has no place for
tools: the server describes them in the system message (Hermes convention), and with
`tool_choice` "required" or a named function holds the reply to a call by grammar, so the model
really writes a call that the server parses and returns as `message.tool_calls`."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.server.conftest import API_KEY, LoggedServer, settle

openai = pytest.importorskip("openai")

ADD = {"type": "function", "function": {
    "name": "add", "description": "Add two integers.",
    "parameters": {"type": "object",
                   "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                   "required": ["a", "b"]}}}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object",
                   "properties": {"city": {"type": "string", "maxLength": 20},
                                  "unit": {"enum": ["celsius", "fahrenheit"]}},
                   "required": ["city"]}}}
ASK = [{"role": "user", "content": "What is 2 + 3? Use the tool."}]


@pytest.fixture
def client(server: LoggedServer) -> Iterator[openai.OpenAI]:
    # Grammar-held steps are slow on a busy CPU: a forced call is ~60 tokens.
    c = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=600)
    yield c
    c.close()


def test_required_tool_choice_returns_a_parsed_call(client: openai.OpenAI,
                                                    server: LoggedServer) -> None:
    reply = client.chat.completions.create(
        model="gemma", messages=ASK, tools=[ADD, WEATHER], tool_choice="required",
        max_tokens=120, temperature=1.5, seed=3, parallel_tool_calls=False)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls, choice.message
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name in ("add", "get_weather")
    args = json.loads(call.function.arguments)
    if call.function.name == "add":
        assert set(args) == {"a", "b"}
        assert all(isinstance(v, int) for v in args.values())
    else:
        assert isinstance(args["city"], str)
        assert len(args["city"]) <= 20
    settle(server)
    prompt = server.entries[-1].prompt
    assert '"name": "add"' in prompt  # the tools were laid out in the exact prompt
    assert "<tool_call>" in prompt


def test_a_named_function_streams_as_tool_call_deltas_at_the_end(
        client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[ADD, WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=120, temperature=0, stream=True, parallel_tool_calls=False)
    chunks = [c for c in stream if c.choices]
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or ())]
    assert content == ""  # the call's text is never streamed as content
    assert len(deltas) == 1
    assert deltas[0].index == 0
    assert deltas[0].function.name == "get_weather"
    assert isinstance(json.loads(deltas[0].function.arguments)["city"], str)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_history_with_calls_and_tool_results_is_laid_out(client: openai.OpenAI,
                                                         server: LoggedServer) -> None:
    history = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
    ]
    reply = client.chat.completions.create(model="gemma", messages=history, tools=[ADD],
                                           max_tokens=1, temperature=0)
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")
    settle(server)
    entry = server.entries[-1]
    assert entry.status == 200
    assert '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>' in (
        entry.prompt)
    assert "<tool_response>\n5\n</tool_response>" in entry.prompt


def test_tool_choice_none_leaves_the_tools_out(client: openai.OpenAI,
                                               server: LoggedServer) -> None:
    reply = client.chat.completions.create(model="gemma", messages=ASK, tools=[ADD],
                                           tool_choice="none", max_tokens=1, temperature=0)
    assert reply.choices[0].message.tool_calls is None
    settle(server)
    assert '"name": "add"' not in server.entries[-1].prompt


def test_bad_tool_requests_are_400s_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gemma", messages=ASK, tools=[ADD],
                                       tool_choice={"type": "function",
                                                    "function": {"name": "mul"}})
    assert "'tool_choice' names 'mul', which is not among 'tools'" in str(info.value)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gemma", messages=ASK, tools=[ADD],
                                       tool_choice="required",
                                       response_format={"type": "json_object"})
    assert "not both" in str(info.value)
