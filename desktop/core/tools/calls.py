"""Tool calling's values: a tool the model may call, a call it made, and which calls it may make.

Pure, importable from any thread or process. `ToolSpec` is one OpenAI-style function tool
(`{"type": "function", "function": {"name", "description", "parameters"}}`), `ToolCall` one call
the model made (arguments kept as the JSON text OpenAI sends), `ToolChoice` what a request's
`tool_choice` asks ("auto", "none", "required", or one named function). `tools_from_json` and
`choice_from_json` check a request's fields and raise `ToolError` (ValueError) in words naming
the field at fault; the server turns it into OpenAI's error object.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AUTO", "NONE", "REQUIRED", "ToolCall", "ToolChoice", "ToolError", "ToolSpec",
    "choice_from_json", "new_call_id", "tools_from_json",
]

AUTO, NONE, REQUIRED = "auto", "none", "required"
MAX_TOOLS = 128
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")  # OpenAI's rule for function names
_ALNUM = string.ascii_letters + string.digits


class ToolError(ValueError):
    """A tool definition, choice or call that cannot be used; `param` names the field."""

    def __init__(self, message: str, param: str = "tools") -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ToolSpec:
    """One function tool, as a request or an MCP server describes it."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None  # a JSON schema; None: takes no arguments

    def to_json(self) -> dict[str, Any]:
        """The OpenAI shape that chat templates expect under `tools`."""
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = dict(self.parameters) if self.parameters is not None else {
            "type": "object", "properties": {}}
        return {"type": "function", "function": function}


@dataclass(frozen=True)
class ToolCall:
    """One call the model made: `arguments` is JSON text (OpenAI sends it as a string)."""

    id: str
    name: str
    arguments: str = "{}"

    def argument_values(self) -> dict[str, Any]:
        """The arguments as an object; ToolError when they are not a JSON object."""
        try:
            value = json.loads(self.arguments) if self.arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ToolError(f"the arguments of {self.name!r} are not JSON: {exc.msg}",
                            "tool_calls") from None
        if not isinstance(value, dict):
            raise ToolError(f"the arguments of {self.name!r} must be a JSON object",
                            "tool_calls")
        return value

    def to_json(self) -> dict[str, Any]:
        """OpenAI's `message.tool_calls[i]`."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class ToolChoice:
    """What the model may do with its tools: "auto", "none", "required", or `function`."""

    mode: str = AUTO
    function: str = ""  # the one tool it must call (mode "required")

    @property
    def forced(self) -> bool:
        """A call must come: the reply can be constrained by a grammar."""
        return self.mode == REQUIRED


def new_call_id(short: bool = False) -> str:
    """A fresh call id: OpenAI's shape, or Mistral's nine letters and digits."""
    if short:
        return "".join(secrets.choice(_ALNUM) for _ in range(9))
    return "call_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


def _spec(index: int, item: Any) -> ToolSpec:
    where = f"tools[{index}]"
    if not isinstance(item, Mapping) or item.get("type", "function") != "function":
        raise ToolError(f"'{where}' must be an object of type 'function'", where)
    function = item.get("function")
    if not isinstance(function, Mapping):
        raise ToolError(f"'{where}.function' is missing: a tool needs a function object "
                        f"with a name", "tools")
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ToolError(f"'{where}.function.name' must be 1 to 64 letters, digits, '_', '.' "
                        f"or '-'", f"{where}.function.name")
    description = function.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise ToolError(f"'{where}.function.description' must be a string",
                        f"{where}.function.description")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise ToolError(f"'{where}.function.parameters' must be a JSON schema object",
                        f"{where}.function.parameters")
    return ToolSpec(name, description, parameters)


def tools_from_json(value: Any) -> tuple[ToolSpec, ...]:
    """A request's `tools`, checked; ToolError naming the first defect."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ToolError("'tools' must be an array of function tools")
    if len(value) > MAX_TOOLS:
        raise ToolError(f"'tools' may hold at most {MAX_TOOLS} tools")
    specs = tuple(_spec(i, item) for i, item in enumerate(value))
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ToolError(f"'tools' names {twice[0]!r} more than once")
    return specs


def choice_from_json(value: Any, tools: Sequence[ToolSpec]) -> ToolChoice:
    """A request's `tool_choice` (absent: "auto" with tools, "none" without), checked."""
    if value is None:
        return ToolChoice(AUTO if tools else NONE)
    if value in (AUTO, NONE, REQUIRED):
        if value != NONE and not tools:
            raise ToolError(f"'tool_choice' is {value!r} but no 'tools' were given",
                            "tool_choice")
        return ToolChoice(value)
    if isinstance(value, Mapping) and value.get("type") == "function":
        function = value.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str):
            raise ToolError("'tool_choice.function.name' is missing", "tool_choice")
        if name not in {t.name for t in tools}:
            raise ToolError(f"'tool_choice' names {name!r}, which is not among 'tools'",
                            "tool_choice")
        return ToolChoice(REQUIRED, name)
    raise ToolError("'tool_choice' must be \"auto\", \"none\", \"required\" or "
                    "{\"type\": \"function\", \"function\": {\"name\": ...}}", "tool_choice")
