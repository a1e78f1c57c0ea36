"""The ways models write tool calls, told apart by their chat template, and parsed from replies.

Pure, importable from any thread or process. Each `ToolFormat` is one family's convention, as its
published template and documentation show it:

* **hermes** — Hermes 2 Pro, Qwen 2.5/3 and many fine-tunes: one block per call, anywhere in
  the reply: `<tool_call>\\n{"name": …, "arguments": {…}}\\n</tool_call>`.
* **llama3** — Llama 3.1/3.2/3.3 with custom tools: the whole reply is one JSON object
  `{"name": …, "parameters": {…}}` (or several, separated by `;`), after an optional
  `<|python_tag|>`; the built-in tools' `<|python_tag|>brave_search.call(query="…")` too.
* **mistral** — Mistral 7B v0.3, Nemo and later: `[TOOL_CALLS] [{"name": …, "arguments": {…}}]`.

`<|python_tag|>` and `[TOOL_CALLS]` are control tokens, whose text the engine leaves out of a
reply, so a reply that *begins* with such JSON counts as calls without them. A template with no
place for tools gets the hermes convention described in its system message
(`tools.prompt`), so any model can be asked. `parse_tool_calls` returns the calls and the
text left around them; with no calls found the text is returned exactly as written.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

from desktop.core.tools.calls import ToolCall, new_call_id

__all__ = ["FORMATS", "HERMES", "LLAMA3", "MISTRAL", "ParsedReply", "ToolFormat",
           "format_for_template", "parse_tool_calls", "template_takes_tools"]


@dataclass(frozen=True)
class ToolFormat:
    name: str
    label: str
    markers: tuple[str, ...]  # text that starts a call anywhere in a reply
    leading_json: bool  # a reply that begins with JSON may be calls
    arguments_key: str  # the key the arguments travel under in the model's JSON
    short_ids: bool = False  # the template wants nine-character call ids


HERMES = ToolFormat("hermes", "Hermes / Qwen <tool_call>", ("<tool_call>",), False, "arguments")
LLAMA3 = ToolFormat("llama3", "Llama 3.x JSON", ("<|python_tag|>",), True, "parameters")
MISTRAL = ToolFormat("mistral", "Mistral [TOOL_CALLS]", ("[TOOL_CALLS]",), True, "arguments",
                     short_ids=True)
FORMATS: dict[str, ToolFormat] = {f.name: f for f in (HERMES, LLAMA3, MISTRAL)}

_TOOLS_WORD = re.compile(r"\btools\b")


def template_takes_tools(template_text: str) -> bool:
    """Whether a chat template lays out tool definitions (it reads the `tools` variable)."""
    return bool(_TOOLS_WORD.search(template_text))


def format_for_template(template_text: str) -> ToolFormat:
    """The convention a template's model writes calls in; hermes when the template names none
    (it is what `tools.prompt` then describes to the model)."""
    if "[TOOL_CALLS]" in template_text:
        return MISTRAL
    if "<tool_call>" in template_text:
        return HERMES
    if "<|python_tag|>" in template_text or (
            "<|start_header_id|>" in template_text and '"parameters"' in template_text):
        return LLAMA3
    return HERMES


@dataclass(frozen=True)
class ParsedReply:
    content: str  # the reply's text outside its calls
    calls: tuple[ToolCall, ...]


_DECODER = json.JSONDecoder()
_HERMES_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.S)
_BUILTIN_CALL = re.compile(r"^\s*([A-Za-z_][\w]*)\.call\((.*)\)\s*$", re.S)


def _call(obj: Any, key: str, fmt: ToolFormat) -> ToolCall | None:
    """A call from one decoded object, or None when it is not shaped like one."""
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        return None
    if isinstance(obj.get("function"), dict):  # {"type": "function", "function": {...}}
        return _call(obj["function"], key, fmt)
    args = obj.get(key, obj.get("arguments", obj.get("parameters", {})))
    if isinstance(args, str):  # some fine-tunes send the arguments as JSON text already
        text = args
    elif isinstance(args, dict):
        text = json.dumps(args, ensure_ascii=False)
    else:
        return None
    given = obj.get("id")
    call_id = given if isinstance(given, str) and given else new_call_id(fmt.short_ids)
    return ToolCall(call_id, str(obj["name"]), text)


def _decode(text: str) -> tuple[Any, int] | None:
    """The JSON value at the start of `text` (after spaces) and where it ends, or None."""
    start = len(text) - len(text.lstrip())
    try:
        return _DECODER.raw_decode(text, start)
    except (json.JSONDecodeError, RecursionError):
        return None


def _parse_hermes(text: str, fmt: ToolFormat) -> ParsedReply | None:
    calls: list[ToolCall] = []
    outside: list[str] = []
    pos = 0
    for match in _HERMES_BLOCK.finditer(text):
        decoded = _decode(match.group(1))
        call = _call(decoded[0], fmt.arguments_key, fmt) if decoded else None
        if call is None:
            continue  # not a call after all: it stays in the text
        calls.append(call)
        outside.append(text[pos:match.start()])
        pos = match.end()
    if not calls:
        return None
    outside.append(text[pos:])
    return ParsedReply(_join_outside(outside), tuple(calls))


def _join_outside(parts: list[str]) -> str:
    """The text around calls: each part trimmed where a call was cut out."""
    trimmed = [p.rstrip() if i == 0 else p.strip() if i < len(parts) - 1 else p.lstrip()
               for i, p in enumerate(parts)]
    return "\n".join(p for p in trimmed if p).rstrip() if len(parts) > 1 else parts[0]


def _builtin(text: str, fmt: ToolFormat) -> ToolCall | None:
    """Llama 3.1's built-in tool call, `brave_search.call(query="…")`, or None."""
    match = _BUILTIN_CALL.match(text)
    if not match:
        return None
    try:
        node = ast.parse(f"f({match.group(2)})", mode="eval").body
        if not isinstance(node, ast.Call) or node.args:
            return None
        args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
    except (SyntaxError, ValueError, RecursionError):
        return None
    return ToolCall(new_call_id(fmt.short_ids), match.group(1), json.dumps(args))


def _parse_leading(text: str, fmt: ToolFormat) -> ParsedReply | None:
    """Calls at the start of the reply: after a marker, or bare JSON in the formats that allow
    it; what follows the last call is the content."""
    body = text.lstrip()
    for marker in fmt.markers:
        if body.startswith(marker):
            body = body[len(marker):]
            break
    calls: list[ToolCall] = []
    while True:
        decoded = _decode(body)
        if decoded is None:
            break
        value, end = decoded
        items = value if isinstance(value, list) else [value]
        found = [_call(item, fmt.arguments_key, fmt) for item in items]
        if not items or any(c is None for c in found):
            break
        calls += [c for c in found if c is not None]
        body = body[end:].lstrip()
        if not body.startswith(";"):
            break
        body = body[1:]
    if not calls and fmt is LLAMA3:
        builtin = _builtin(text.lstrip().removeprefix("<|python_tag|>"), fmt)
        return ParsedReply("", (builtin,)) if builtin else None
    return ParsedReply(body.strip(), tuple(calls)) if calls else None


def parse_tool_calls(text: str, fmt: ToolFormat) -> ParsedReply:
    """The calls in a reply written in `fmt`, and the text left around them."""
    parsed = _parse_leading(text, fmt) if fmt.leading_json else None
    if parsed is None and fmt.markers:
        # A marker later in the reply ("Let me look that up. [TOOL_CALLS] [...]").
        if fmt is HERMES:
            parsed = _parse_hermes(text, fmt)
        else:
            for marker in fmt.markers:
                at = text.find(marker)
                if at > 0:
                    tail = _parse_leading(text[at:], fmt)
                    if tail is not None:
                        head = text[:at].rstrip()
                        rest = "\n".join(p for p in (head, tail.content) if p)
                        parsed = ParsedReply(rest, tail.calls)
                    break
    if parsed is None:
        return ParsedReply(text, ())
    return ParsedReply(_cut_partial_marker(parsed.content, fmt), parsed.calls)


def _cut_partial_marker(content: str, fmt: ToolFormat) -> str:
    """Content after calls without a marker the reply was cut off in ("…</tool_call>\n<tool_"
    when max_tokens ran out before the next call)."""
    for marker in fmt.markers:
        for n in range(len(marker) - 1, 0, -1):
            if content.endswith(marker[:n]):
                return content[:-n].rstrip()
    return content
