"""Tool definitions, calls and results laid out through the model's own chat template.

Pure, importable from any thread or process (the server's request threads, the GUI's chat).
`render_with_tools` renders a conversation whose messages may hold tool calls (an assistant
message's `tool_calls`) and tool results (`role: "tool"`), with the tools passed as `tools=[…]`
the way Hugging Face templates expect them, so the exact prompt shows what the model was told.
Call arguments reach the template as objects (templates write them with `tojson`), and a
template that wants Mistral's nine-character call ids gets each id mapped to one, consistently.

A template that has no place for tools (it never reads `tools`, e.g. Gemma's) still gets them:
they are described in the system message in the Hermes convention, earlier calls are written
back as `<tool_call>` blocks and results as `<tool_response>` user turns, and a note says so.
"""

from __future__ import annotations

import hashlib
import json
import string
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from desktop.core.templates.prompt import PromptTemplate, RenderedPrompt, render_prompt
from desktop.core.tools.calls import ToolCall, ToolSpec
from desktop.core.tools.formats import (
    HERMES,
    ToolFormat,
    format_for_template,
    template_takes_tools,
)

__all__ = ["TOOLS_IN_SYSTEM_NOTE", "ToolPrompt", "fallback_tools_text", "render_with_tools",
           "template_messages", "tool_format_of"]

TOOLS_IN_SYSTEM_NOTE = (
    "This template has no place for tools, so they were described in the system message and "
    "the model was asked to answer with <tool_call> blocks."
)
_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class ToolPrompt:
    rendered: RenderedPrompt
    format: ToolFormat  # how the model is expected to write its calls
    native: bool  # the template itself laid the tools out


def fallback_tools_text(tools: Sequence[ToolSpec]) -> str:
    """The Hermes convention's tool section (the words of Qwen 2.5's template)."""
    listed = "\n".join(json.dumps(t.to_json(), ensure_ascii=False) for t in tools)
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{listed}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


def _short_id(call_id: str) -> str:
    """A nine-character id for Mistral's templates, the same for the same id every turn."""
    if len(call_id) == 9 and call_id.isalnum():
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode("utf-8")).digest()[:8], "big")
    out = []
    for _ in range(9):
        number, digit = divmod(number, len(_ALNUM))
        out.append(_ALNUM[digit])
    return "".join(out)


def _calls_of(message: Mapping[str, Any]) -> list[ToolCall]:
    out: list[ToolCall] = []
    for item in message.get("tool_calls") or ():
        if isinstance(item, ToolCall):
            out.append(item)
            continue
        function = item.get("function", item)
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        out.append(ToolCall(str(item.get("id", "")), str(function.get("name", "")), arguments))
    return out


def _arguments_object(call: ToolCall) -> Any:
    try:
        return json.loads(call.arguments) if call.arguments.strip() else {}
    except json.JSONDecodeError:
        return call.arguments  # as written: the template shows what the model was sent


def _native(messages: Sequence[Mapping[str, Any]], fmt: ToolFormat) -> list[dict[str, Any]]:
    fix = _short_id if fmt.short_ids else str
    out: list[dict[str, Any]] = []
    for message in messages:
        item = {k: v for k, v in message.items() if k != "tool_calls"}
        calls = _calls_of(message)
        if calls:
            item["content"] = item.get("content") or ""
            item["tool_calls"] = [
                {"id": fix(c.id), "type": "function",
                 "function": {"name": c.name, "arguments": _arguments_object(c)}}
                for c in calls]
        if item.get("role") == "tool" and "tool_call_id" in item:
            item["tool_call_id"] = fix(str(item["tool_call_id"]))
        out.append(item)
    return out


def _written_out(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Calls as `<tool_call>` text, results as `<tool_response>` user turns, so a template that
    knows only user and assistant turns can lay them out."""
    out: list[dict[str, Any]] = []
    from_tools = False  # the last message in `out` is tool results written as a user turn
    for message in messages:
        role, content = str(message.get("role")), str(message.get("content") or "")
        if role == "assistant":
            blocks = [json.dumps({"name": c.name, "arguments": _arguments_object(c)},
                                 ensure_ascii=False) for c in _calls_of(message)]
            text = "\n".join([content] * bool(content) + [
                f"<tool_call>\n{b}\n</tool_call>" for b in blocks])
            out.append({"role": "assistant", "content": text})
        elif role == "tool":
            text = f"<tool_response>\n{content}\n</tool_response>"
            if from_tools:
                out[-1]["content"] += "\n" + text
            else:
                out.append({"role": "user", "content": text})
            from_tools = True
            continue
        elif role == "user" and from_tools:  # keeps the turns alternating, as Qwen's does
            out[-1]["content"] += "\n\n" + content
        else:
            out.append({"role": role, "content": content})
        from_tools = False
    return out


def template_messages(messages: Sequence[Mapping[str, Any]], fmt: ToolFormat,
                      native: bool) -> list[dict[str, Any]]:
    """The messages in the shape the template takes (see the module docstring)."""
    return _native(messages, fmt) if native else _written_out(messages)


def tool_format_of(template: PromptTemplate) -> ToolFormat:
    """How the template's model is asked to write calls: its own convention when the template
    lays tools out, else the Hermes one the fallback describes."""
    if template_takes_tools(template.text) and not template.raw:
        return format_for_template(template.text)
    return HERMES


def render_with_tools(
    template: PromptTemplate,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[ToolSpec] = (),
    *,
    bos_token: str | None = None,
    eos_token: str | None = None,
    extra: Mapping[str, Any] | None = None,
    cancel: threading.Event | None = None,
) -> ToolPrompt:
    """Render a conversation with tools (none: the tools are not shown; earlier calls and
    results still are). Raises TemplateError as `render_prompt` does."""
    native = template_takes_tools(template.text) and not template.raw
    fmt = tool_format_of(template)
    shaped = template_messages(messages, fmt, native)
    notes: tuple[str, ...] = ()
    if tools and not native:
        section = fallback_tools_text(tools)
        if shaped and shaped[0]["role"] == "system":
            shaped[0] = {**shaped[0], "content": f"{shaped[0]['content']}\n\n{section}"}
        else:
            shaped.insert(0, {"role": "system", "content": section})
        notes = (TOOLS_IN_SYSTEM_NOTE,)
    rendered = render_prompt(
        template, shaped, bos_token=bos_token, eos_token=eos_token, extra=extra, cancel=cancel,
        tools=[t.to_json() for t in tools] if tools and native else None)
    if notes:
        rendered = RenderedPrompt(rendered.text, rendered.segments, rendered.notes + notes)
    return ToolPrompt(rendered, fmt, native)
