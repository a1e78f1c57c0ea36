"""Grammar-held tool calls on the real engine: for each format the grammar built in
`core.tools.grammar` parses in llama.cpp, and a forced reply of the ready Gemma 3 270M (a base
model that never learned tool calls) is a call its format's parser reads, to a tool offered,
with arguments that match the tool's schema — at any temperature."""

from __future__ import annotations

import json

import pytest

from desktop.core.sampling import SamplerSettings
from desktop.core.tools.calls import ToolChoice, tools_from_json
from desktop.core.tools.formats import HERMES, LLAMA3, MISTRAL, ToolFormat, parse_tool_calls
from desktop.core.tools.grammar import schema_rules, tool_call_grammar
from desktop.engine.host import EngineHost
from tests.engine.conftest import run

TOOLS = tools_from_json([
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {
            "city": {"type": "string", "maxLength": 12},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"}},
        "required": ["city"]}}},
    {"type": "function", "function": {"name": "now"}},
])
PROMPT = "User: What is the weather in Oslo?\nAssistant:"


def check(fmt: ToolFormat, text: str, names: set[str]) -> None:
    parsed = parse_tool_calls(text, fmt)
    assert parsed.calls, text
    assert parsed.content == ""
    for call in parsed.calls:
        assert call.name in names
        args = json.loads(call.arguments)
        if call.name == "get_weather":
            assert isinstance(args["city"], str)
            assert len(args["city"]) <= 12
            assert set(args) <= {"city", "unit", "days"}
            assert args.get("unit", "celsius") in ("celsius", "fahrenheit")
            assert isinstance(args.get("days", 0), int)
        else:
            assert args == {}


@pytest.mark.parametrize(("fmt", "temperature", "choice"), [
    (HERMES, 1.5, ToolChoice("required")),
    (LLAMA3, 0.0, ToolChoice("required")),
    (MISTRAL, 1.0, ToolChoice("required", "get_weather")),
], ids=["hermes", "llama3", "mistral-named"])
def test_forced_call_parses_in_its_format(engine: EngineHost, fmt: ToolFormat,
                                          temperature: float, choice: ToolChoice) -> None:
    grammar = tool_call_grammar(fmt, TOOLS, choice, parallel=False)
    settings = SamplerSettings(structured_output="gbnf", grammar=grammar, max_tokens=120,
                               temperature=temperature, seed=7)
    steps, done = run(engine, PROMPT, settings)
    assert done.finish_reason == "stop", done.text
    names = {choice.function} if choice.function else {t.name for t in TOOLS}
    check(fmt, done.text, names)
    # The grammar is a stage the chart shows, as for any structured output.
    assert all("grammar" in [s.name for s in step.stages] for step in steps)


def test_schema_rules_hold_a_reply_to_the_schema(engine: EngineHost) -> None:
    schema = {"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}},
        "ok": {"type": "boolean"}, "n": {"type": ["integer", "null"]}}}
    settings = SamplerSettings(structured_output="gbnf", grammar=schema_rules(schema),
                               max_tokens=60, temperature=1.2, seed=5)
    _, done = run(engine, "JSON:", settings)
    value = json.loads(done.text)
    assert set(value) <= {"tags", "ok", "n"}
    assert all(isinstance(t, str) and len(t) <= 6 for t in value.get("tags", []))
