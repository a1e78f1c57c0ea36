"""Tool calls in core: the format read from real published chat templates, the calls parsed from
replies as the models' documentation shows them, tools and calls laid out through the templates,
the streamed reply held back while it may be a call, and the request fields checked.

Templates: tests/unit/chat_templates (see SOURCES.md). Replies:
- Qwen 2.5: qwen.readthedocs.io/en/v2.5/framework/function_call (the two-call example);
- Llama 3.1: the model card's prompt format (JSON tool calling; the built-in brave_search call);
- Mistral 7B v0.3: the model card's function-calling example (mistral-inference).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop.core.templates.prompt import PromptTemplate
from desktop.core.tools.calls import (
    ToolCall,
    ToolChoice,
    ToolError,
    choice_from_json,
    tools_from_json,
)
from desktop.core.tools.formats import (
    HERMES,
    LLAMA3,
    MISTRAL,
    format_for_template,
    parse_tool_calls,
    template_takes_tools,
)
from desktop.core.tools.prompt import TOOLS_IN_SYSTEM_NOTE, render_with_tools, tool_format_of
from desktop.core.tools.stream import CallHold

TEMPLATES = Path(__file__).parent / "chat_templates"
WEATHER = {"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string"}, "format": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["location", "format"]}}}


def template(name: str) -> PromptTemplate:
    return PromptTemplate(id=name, name=name, source="custom",
                          text=(TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("name", "fmt"), [
    ("qwen2_5", HERMES), ("qwen3", HERMES), ("llama3_1", LLAMA3), ("llama3_2", LLAMA3),
    ("mistral_v0_3", MISTRAL)])
def test_the_format_is_read_from_real_templates(name: str, fmt: object) -> None:
    text = template(name).text
    assert template_takes_tools(text)
    assert format_for_template(text) is fmt


def test_a_template_without_tools_gets_the_hermes_convention() -> None:
    gemma = template("gemma2")
    assert not template_takes_tools(gemma.text)
    assert tool_format_of(gemma) is HERMES


QWEN_REPLY = (
    '<tool_call>\n{"name": "get_current_temperature", "arguments": {"location": "San Francisco,'
    ' CA, USA"}}\n</tool_call>\n<tool_call>\n{"name": "get_temperature_date", "arguments": '
    '{"location": "San Francisco, CA, USA", "date": "2024-10-01"}}\n</tool_call>')


def test_qwen_documented_reply_parses_to_two_calls() -> None:
    parsed = parse_tool_calls(QWEN_REPLY, HERMES)
    assert parsed.content == ""
    assert [(c.name, json.loads(c.arguments)) for c in parsed.calls] == [
        ("get_current_temperature", {"location": "San Francisco, CA, USA"}),
        ("get_temperature_date", {"location": "San Francisco, CA, USA", "date": "2024-10-01"})]
    assert all(c.id.startswith("call_") for c in parsed.calls)
    assert len({c.id for c in parsed.calls}) == 2


def test_text_around_hermes_calls_is_the_content() -> None:
    parsed = parse_tool_calls("Let me check.\n" + QWEN_REPLY.split("\n<tool_call>")[0], HERMES)
    assert parsed.content == "Let me check."
    assert len(parsed.calls) == 1
    cut = parse_tool_calls(QWEN_REPLY + "\n<tool_", HERMES)  # max_tokens ran out
    assert cut.content == ""
    assert len(cut.calls) == 2


@pytest.mark.parametrize("reply", [
    '{"name": "get_current_conditions", "parameters": {"location": "San Francisco, CA", '
    '"unit": "Fahrenheit"}}',
    '<|python_tag|>{"name": "get_current_conditions", "parameters": {"location": '
    '"San Francisco, CA", "unit": "Fahrenheit"}}'])
def test_llama_3_1_json_call_with_or_without_its_python_tag(reply: str) -> None:
    parsed = parse_tool_calls(reply, LLAMA3)
    assert parsed.content == ""
    assert [(c.name, json.loads(c.arguments)) for c in parsed.calls] == [
        ("get_current_conditions", {"location": "San Francisco, CA", "unit": "Fahrenheit"})]


def test_llama_3_1_built_in_tool_call() -> None:
    parsed = parse_tool_calls(
        '<|python_tag|>brave_search.call(query="current weather in Menlo Park, California")',
        LLAMA3)
    assert [(c.name, json.loads(c.arguments)) for c in parsed.calls] == [
        ("brave_search", {"query": "current weather in Menlo Park, California"})]


@pytest.mark.parametrize("reply", [
    '[TOOL_CALLS] [{"name": "get_current_weather", "arguments": {"location": "Paris, France", '
    '"format": "celsius"}}]',
    # [TOOL_CALLS] is a control token: the engine leaves its text out of the reply.
    '[{"name": "get_current_weather", "arguments": {"location": "Paris, France", '
    '"format": "celsius"}}]'])
def test_mistral_documented_call(reply: str) -> None:
    parsed = parse_tool_calls(reply, MISTRAL)
    assert parsed.content == ""
    (call,) = parsed.calls
    assert call.name == "get_current_weather"
    assert json.loads(call.arguments) == {"location": "Paris, France", "format": "celsius"}
    assert len(call.id) == 9  # Mistral's templates refuse any other length
    assert call.id.isalnum()


@pytest.mark.parametrize(("text", "fmt"), [
    ("The answer is {x}.", LLAMA3), ('{"city": "Paris"}', LLAMA3), ("[1, 2, 3]", MISTRAL),
    ("I would use <tool_call> here", HERMES), ("<tool_call>not json</tool_call>", HERMES)])
def test_replies_without_calls_are_left_exactly_as_written(text: str, fmt: object) -> None:
    parsed = parse_tool_calls(text, fmt)  # type: ignore[arg-type]
    assert parsed.calls == ()
    assert parsed.content == text


def conversation(call_id: str) -> list[dict[str, object]]:
    return [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [ToolCall(
            call_id, "get_current_weather", '{"location": "Paris, France", "format": "celsius"}')]},
        {"role": "tool", "tool_call_id": call_id, "content": "22"},
    ]


def test_qwen_template_lays_out_tools_calls_and_results() -> None:
    shown = render_with_tools(template("qwen2_5"), conversation("call_abc"),
                              tools_from_json([WEATHER]))
    text = shown.rendered.text
    assert shown.native
    assert shown.format is HERMES
    assert "<tools>\n" + json.dumps(WEATHER) + "\n</tools>" in text
    assert ('<|im_start|>assistant\n<tool_call>\n{"name": "get_current_weather", "arguments": '
            '{"location": "Paris, France", "format": "celsius"}}\n</tool_call><|im_end|>') in text
    assert "<|im_start|>user\n<tool_response>\n22\n</tool_response><|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_mistral_template_gets_nine_character_ids_consistently() -> None:
    shown = render_with_tools(template("mistral_v0_3"), conversation("call_0123456789abcdef"),
                              tools_from_json([WEATHER]), bos_token="<s>", eos_token="</s>")
    text = shown.rendered.text
    assert text.startswith('<s>[AVAILABLE_TOOLS] [{"type": "function", "function": {"name": '
                           '"get_current_weather"')
    call_id = text.split('"id": "')[1][:9]
    assert call_id.isalnum()
    assert f'[TOOL_RESULTS] {{"content": 22, "call_id": "{call_id}"}}[/TOOL_RESULTS]' in text


def test_llama_3_1_template_takes_the_call_and_the_ipython_result() -> None:
    shown = render_with_tools(template("llama3_1"), conversation("call_x"),
                              tools_from_json([WEATHER]), bos_token="<|begin_of_text|>")
    text = shown.rendered.text
    assert ('<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_current_weather", '
            '"parameters": {"location": "Paris, France", "format": "celsius"}}<|eot_id|>') in text
    # The template writes a result with tojson (a string is iterable to jinja), as transformers.
    assert '<|start_header_id|>ipython<|end_header_id|>\n\n"22"<|eot_id|>' in text


def test_a_template_without_tools_has_them_described_in_the_system_message() -> None:
    shown = render_with_tools(template("gemma2"), conversation("call_1"),
                              tools_from_json([WEATHER]), bos_token="<bos>")
    text = shown.rendered.text
    assert not shown.native
    assert TOOLS_IN_SYSTEM_NOTE in shown.rendered.notes
    assert "<tools>\n" + json.dumps(WEATHER) + "\n</tools>" in text
    assert '<start_of_turn>model\n<tool_call>\n{"name": "get_current_weather"' in text
    assert "<start_of_turn>user\n<tool_response>\n22\n</tool_response><end_of_turn>" in text
    # The tools are the caller's text: never parsed for special tokens.
    trusted = "".join(s.text for s in shown.rendered.segments if s.trusted)
    assert "get_current_weather" not in trusted


def feed_all(fmt: object, text: str, step: int = 2) -> tuple[str, str, tuple[ToolCall, ...]]:
    hold = CallHold(fmt)  # type: ignore[arg-type]
    shown = "".join(hold.feed(text[i:i + step]) for i in range(0, len(text), step))
    rest, calls = hold.finish(text)
    return shown, rest, calls


def test_streamed_text_stops_where_a_call_begins() -> None:
    shown, rest, calls = feed_all(HERMES, "Let me check.\n" + QWEN_REPLY)
    assert (shown, rest, len(calls)) == ("Let me check.", "", 2)
    shown, rest, calls = feed_all(HERMES, "a < b, and <tool is not a call")
    assert (shown + rest, calls) == ("a < b, and <tool is not a call", ())
    shown, rest, calls = feed_all(MISTRAL, '[TOOL_CALLS] [{"name": "f", "arguments": {}}]')
    assert (shown, rest, [c.name for c in calls]) == ("", "", ["f"])
    shown, rest, calls = feed_all(LLAMA3, "  Plain words [1].")
    assert (shown + rest, calls) == ("  Plain words [1].", ())


def test_request_fields_are_checked_in_words() -> None:
    tools = tools_from_json([WEATHER])
    assert tools[0].to_json() == WEATHER
    assert choice_from_json(None, tools) == ToolChoice("auto")
    assert choice_from_json(None, ()) == ToolChoice("none")
    assert choice_from_json({"type": "function", "function": {"name": "get_current_weather"}},
                            tools) == ToolChoice("required", "get_current_weather")
    with pytest.raises(ToolError, match="'tools' names 'get_current_weather' more than once"):
        tools_from_json([WEATHER, WEATHER])
    with pytest.raises(ToolError, match=r"'tools\[0\].function.name' must be"):
        tools_from_json([{"type": "function", "function": {"name": "has space"}}])
    with pytest.raises(ToolError, match="no 'tools' were given"):
        choice_from_json("required", ())
    with pytest.raises(ToolError, match="not JSON"):
        ToolCall("c", "f", "{oops").argument_values()
