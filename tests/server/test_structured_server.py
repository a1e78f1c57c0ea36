"""Structured output through the server, driven by the official `openai` client: OpenAI's
`response_format` (json_object, json_schema) on both endpoints, llama-server's `grammar` and
`json_schema` fields, and a bad grammar answered with 400 and its position."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.server.conftest import API_KEY, LoggedServer

openai = pytest.importorskip("openai")

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 16},
                   "population": {"type": "integer"}},
    "required": ["city", "population"], "additionalProperties": False,
}


@pytest.fixture
def client(server: LoggedServer) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=120)
    yield c
    c.close()


@pytest.mark.parametrize("temperature", [0.0, 1.5])
def test_chat_response_format_json_schema_round_trip(client: openai.OpenAI,
                                                     temperature: float) -> None:
    reply = client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Name a big city."}],
        max_tokens=64, temperature=temperature, seed=4,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}},
    )
    assert reply.choices[0].finish_reason == "stop"
    value = json.loads(reply.choices[0].message.content)
    assert set(value) == {"city", "population"}
    assert isinstance(value["city"], str)
    assert len(value["city"]) <= 16
    assert isinstance(value["population"], int)


def test_chat_response_format_json_object_streams_json(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Describe a cat in JSON."}],
        max_tokens=40, temperature=0, stream=True, response_format={"type": "json_object"},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.lstrip().startswith("{")


def test_completion_takes_response_format_and_llama_server_fields(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="gemma", prompt="The answer is", max_tokens=40, temperature=0,
        extra_body={"response_format": {"type": "json_schema",
                                        "json_schema": {"name": "c", "schema": SCHEMA}}})
    assert set(json.loads(reply.choices[0].text)) == {"city", "population"}
    reply = client.completions.create(
        model="gemma", prompt="Is water wet?", max_tokens=40, temperature=1.5, seed=2,
        extra_body={"grammar": 'root ::= ("yes" | "no")'})
    assert reply.choices[0].text in ("yes", "no")
    reply = client.completions.create(
        model="gemma", prompt="A city:", max_tokens=40, temperature=0,
        extra_body={"json_schema": SCHEMA})
    assert set(json.loads(reply.choices[0].text)) == {"city", "population"}


def test_a_bad_grammar_is_a_400_with_its_position(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="gemma", prompt="x", max_tokens=5,
                                  extra_body={"grammar": 'root ::= "a" | item'})
    assert "rule 'item' is used at line 1, column 16 but never defined" in str(info.value)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gemma", messages=[{"role": "user", "content": "x"}], max_tokens=5,
            response_format={"type": "xml"})  # type: ignore[arg-type,typeddict-item]
    assert "response_format" in str(info.value)
