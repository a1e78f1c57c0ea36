"""OpenAI-compatible request validation: JSON bodies of /v1/chat/completions and /v1/completions.

Pure (no I/O); runs on the server's request threads. Every field is typed and range-checked (the
checkers and the table of fields per endpoint are in `openai.fields`), and anything wrong (unknown
fields included) becomes an `ApiError` that serialises to OpenAI's error object, so a client
library reports it the way it reports OpenAI's own. Valid requests become an `ApiRequest` holding
`SamplerSettings`. Structured output (`core.structured_output`): OpenAI's `response_format`
(json_object, json_schema) on both endpoints, and llama-server's `json_schema` and `grammar`.
Tool calling (`core.tools`): `tools`, `tool_choice` and `parallel_tool_calls` on chat, and in
the history assistant messages with `tool_calls` and `role: "tool"` results.

Defaults follow llama.cpp's server, not OpenAI's: a field the client leaves out keeps
`SamplerSettings`' default (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05), and `max_tokens`
defaults to the rest of the context window. Besides OpenAI's fields, llama-server's sampler
extras are accepted, every stage's knobs by its names (top_k, min_p, typical_p, repeat_penalty,
dry_*, top_n_sigma, xtc_*, dynatemp_*, mirostat*, ...; vLLM's repetition_penalty and
llama-cpp-python's mirostat_mode as aliases), with ignore_eos and `samplers` (the chain order, in
llama-server's or Openlid's stage names; a stage may be left out only when the request turns it
off, and it then takes its default place), and Openlid's own `openlid_steps` (another Openlid asks
for every sampler stage).
Responses are built in `openai.responses`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from desktop.core.openai.fields import (
    CHAT_FIELDS,
    COMPLETION_FIELDS,
    SAMPLER_FIELDS,
    ApiError,
    Checker,
    boolean,
    range_error,
    string,
    type_error,
)
from desktop.core.sampler_stages import complete_order, order_problem
from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.core.structured_output import structured_from_request
from desktop.core.tools.calls import (
    NONE,
    ToolCall,
    ToolChoice,
    ToolError,
    ToolSpec,
    choice_from_json,
    tools_from_json,
)

__all__ = ["ApiError", "ApiRequest", "parse_chat_request", "parse_completion_request"]

MAX_MESSAGES = 4096
# Chat content parts a text model can take; images and audio are refused with a clear message.
_TEXT_PART_TYPES = ("text", "input_text")
_ROLES = ("system", "developer", "user", "assistant", "tool")
NO_TOOLS = ToolChoice(NONE)
_MESSAGE_KEYS = {"role", "content", "name"}
_ROLE_KEYS = {"assistant": {"tool_calls", "refusal"}, "tool": {"tool_call_id"}}


@dataclass(frozen=True)
class ApiRequest:
    """A validated generation request, ready for the engine."""

    kind: str  # "chat" or "completion"
    model: str
    settings: SamplerSettings
    messages: tuple[tuple[str, str], ...] = ()  # chat: (role, text); "developer" → "system"
    prompt: str = ""  # completion: the text to continue
    prompt_tokens: tuple[int, ...] = ()  # completion given as token ids
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage
    logprobs: bool = False
    top_logprobs: int = 0
    openlid_steps: bool = False  # Openlid's extension: carry each StepRecord as a JSON row
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = NO_TOOLS
    parallel_tool_calls: bool = True
    # Per message, in step with `messages`: an assistant message's calls, a tool result's id.
    tool_calls: tuple[tuple[ToolCall, ...], ...] = ()
    tool_call_ids: tuple[str, ...] = ()

    def chat_messages(self) -> list[dict[str, Any]]:
        """The messages in the shape chat templates take (`core.tools.prompt` shapes calls)."""
        out: list[dict[str, Any]] = []
        for i, (role, text) in enumerate(self.messages):
            message: dict[str, Any] = {"role": role, "content": text}
            if i < len(self.tool_calls) and self.tool_calls[i]:
                message["tool_calls"] = list(self.tool_calls[i])
            if i < len(self.tool_call_ids) and role == "tool":
                message["tool_call_id"] = self.tool_call_ids[i]
            out.append(message)
        return out

    @property
    def wants_tools(self) -> bool:
        """Tools are offered and the model may call them."""
        return bool(self.tools) and self.tool_choice.mode != NONE


def _check_fields(body: Any, spec: dict[str, Checker]) -> dict[str, Any]:
    """The body's fields, each checked; null counts as absent (as OpenAI treats it)."""
    if not isinstance(body, dict):
        raise ApiError("The request body must be a JSON object.", code="invalid_json")
    for name in body:
        if name not in spec:
            raise ApiError(
                f"Unrecognized request argument supplied: {name}",
                param=name, code="unknown_parameter",
            )
    values = {name: spec[name](name, value) for name, value in body.items() if value is not None}
    if "model" not in values:
        raise ApiError("You must provide a model parameter.", param="model", code="missing")
    return values


def _settings(
    values: dict[str, Any], base: SamplerSettings, max_tokens: int, top_logprobs: int
) -> SamplerSettings:
    # Every StepRecord must list at least as many raw candidates as top_logprobs asks for.
    changes: dict[str, Any] = {"max_tokens": max_tokens, "top_n": max(base.top_n, top_logprobs)}
    for name, field_name in SAMPLER_FIELDS.items():
        if name in values:
            changes[field_name] = values[name]
    changes.update(_structured(values))
    settings = base.replace(**changes)
    if "samplers" in values:
        problem = order_problem(settings.order, settings)
        if problem:
            raise ApiError(f"'samplers': {problem}.", param="samplers", code="invalid_value")
        settings = settings.replace(order=complete_order(settings.order))
    try:
        return settings.validated()
    except SettingsError as exc:
        raise ApiError(str(exc), code="invalid_value") from exc


def _structured(values: dict[str, Any]) -> dict[str, str]:
    """The structured-output settings a request asks for; a malformed one is an ApiError."""
    try:
        fields = structured_from_request(values.get("response_format"),
                                         values.get("json_schema"), values.get("grammar"))
    except ValueError as exc:
        param = next((n for n in ("response_format", "json_schema", "grammar") if n in str(exc)),
                     "response_format")
        raise ApiError(f"{exc}.", param=param, code="invalid_value") from exc
    return fields


def _stream_options(values: dict[str, Any]) -> bool:
    options = values.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict) or not set(options) <= {"include_usage"}:
        raise ApiError(
            "'stream_options' must be an object with only 'include_usage'.",
            param="stream_options", code="invalid_value",
        )
    if not values.get("stream"):
        raise ApiError(
            "'stream_options' is only allowed when 'stream' is true.",
            param="stream_options", code="invalid_value",
        )
    return boolean("stream_options.include_usage", options.get("include_usage", False))


def _content_text(index: int, content: Any) -> str:
    name = f"messages[{index}].content"
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise type_error(name, "a string or an array of content parts")
    texts: list[str] = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise type_error(f"{name}[{j}]", "an object with a 'type'")
        if part["type"] not in _TEXT_PART_TYPES:
            raise ApiError(
                f"'{name}[{j}]' is of type '{part['type']}'; this model takes text only.",
                param=f"{name}[{j}]", code="unsupported_value",
            )
        texts.append(string(f"{name}[{j}].text", part.get("text")))
    return "".join(texts)


def _tool_calls(index: int, value: Any) -> tuple[ToolCall, ...]:
    name = f"messages[{index}].tool_calls"
    if not isinstance(value, list):
        raise type_error(name, "an array of tool calls")
    calls: list[ToolCall] = []
    for j, item in enumerate(value):
        where = f"{name}[{j}]"
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise type_error(where, "an object with a 'function' that has a 'name'")
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):
            raise type_error(f"{where}.function.arguments", "a string of JSON")
        call_id = item.get("id", "")
        if not isinstance(call_id, str):
            raise type_error(f"{where}.id", "a string")
        calls.append(ToolCall(call_id, function["name"], arguments))
    return tuple(calls)


def _message(i: int, message: Any) -> tuple[str, str, tuple[ToolCall, ...], str]:
    if not isinstance(message, dict):
        raise type_error(f"messages[{i}]", "an object")
    role = message.get("role")
    if role not in _ROLES:
        raise ApiError(
            f"'messages[{i}].role' must be one of {', '.join(_ROLES)}.",
            param=f"messages[{i}].role", code="invalid_value",
        )
    unknown = set(message) - _MESSAGE_KEYS - _ROLE_KEYS.get(role, set())
    if unknown:
        name = sorted(unknown)[0]
        raise ApiError(
            f"Unrecognized argument supplied in messages[{i}]: {name}",
            param=f"messages[{i}].{name}", code="unknown_parameter",
        )
    if message.get("name") is not None:
        string(f"messages[{i}].name", message["name"])
    calls = (_tool_calls(i, message["tool_calls"])
             if message.get("tool_calls") is not None else ())
    content = message.get("content")
    if content is None and not calls:
        raise ApiError(
            f"'messages[{i}].content' is missing.",
            param=f"messages[{i}].content", code="missing",
        )
    call_id = ""
    if role == "tool":
        call_id = message.get("tool_call_id") or ""
        string(f"messages[{i}].tool_call_id", call_id)
    text = "" if content is None else _content_text(i, content)
    return ("system" if role == "developer" else role), text, calls, call_id


def _messages(value: Any) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[ToolCall, ...], ...],
                                   tuple[str, ...]]:
    """The messages as (role, text), with each one's tool calls and tool-call id."""
    if not isinstance(value, list) or not value:
        raise ApiError(
            "'messages' must be a non-empty array.", param="messages", code="invalid_value"
        )
    if len(value) > MAX_MESSAGES:
        raise range_error("messages", f"at most {MAX_MESSAGES} messages")
    parsed = [_message(i, message) for i, message in enumerate(value)]
    return (tuple((role, text) for role, text, _, _ in parsed),
            tuple(calls for _, _, calls, _ in parsed),
            tuple(call_id for _, _, _, call_id in parsed))


def _tools(values: dict[str, Any]) -> tuple[tuple[ToolSpec, ...], ToolChoice]:
    try:
        tools = tools_from_json(values["tools"]) if "tools" in values else ()
        return tools, choice_from_json(values.get("tool_choice"), tools)
    except ToolError as exc:
        raise ApiError(f"{exc}.", param=exc.param, code="invalid_value") from exc


def parse_chat_request(
    body: Any, *, max_tokens: int, base: SamplerSettings | None = None
) -> ApiRequest:
    """Check a /v1/chat/completions body; `max_tokens` is the default when none is given."""
    values = _check_fields(body, CHAT_FIELDS)
    messages, calls, call_ids = _messages(values.get("messages"))
    tools, choice = _tools(values)
    logprobs = bool(values.get("logprobs", False))
    top = int(values.get("top_logprobs", 0))
    if "top_logprobs" in values and not logprobs:
        raise ApiError(
            "'top_logprobs' needs 'logprobs' to be true.", param="top_logprobs",
            code="invalid_value",
        )
    limit = values.get("max_completion_tokens", values.get("max_tokens", max_tokens))
    return ApiRequest(
        kind="chat",
        model=values["model"],
        settings=_settings(values, base or SamplerSettings(), limit, top),
        messages=messages,
        stream=bool(values.get("stream", False)),
        include_usage=_stream_options(values),
        logprobs=logprobs,
        top_logprobs=top,
        openlid_steps=bool(values.get("openlid_steps", False)),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=bool(values.get("parallel_tool_calls", True)),
        tool_calls=calls,
        tool_call_ids=call_ids,
    )


def _prompt(value: Any) -> tuple[str, tuple[int, ...]]:
    """A completion prompt: a string, an array of one string, or an array of token ids."""
    if isinstance(value, str):
        return value, ()
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0], ()
    if isinstance(value, list) and value and all(
        isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value
    ):
        return "", tuple(value)
    if isinstance(value, list) and len(value) > 1 and all(isinstance(s, str) for s in value):
        raise ApiError(
            "'prompt' with several prompts is not supported: send one request per prompt.",
            param="prompt", code="unsupported_value",
        )
    raise type_error("prompt", "a string or an array of token ids")


def parse_completion_request(
    body: Any, *, max_tokens: int, base: SamplerSettings | None = None
) -> ApiRequest:
    """Check a /v1/completions body; `max_tokens` is the default when none is given."""
    values = _check_fields(body, COMPLETION_FIELDS)
    if "prompt" not in values:
        raise ApiError("You must provide a prompt parameter.", param="prompt", code="missing")
    prompt, tokens = _prompt(values["prompt"])
    if not prompt and not tokens:
        raise ApiError("'prompt' must not be empty.", param="prompt", code="invalid_value")
    top = values.get("logprobs")
    return ApiRequest(
        kind="completion",
        model=values["model"],
        settings=_settings(
            values, base or SamplerSettings(), values.get("max_tokens", max_tokens), int(top or 0)
        ),
        prompt=prompt,
        prompt_tokens=tokens,
        stream=bool(values.get("stream", False)),
        include_usage=_stream_options(values),
        logprobs=top is not None,
        top_logprobs=int(top or 0),
        openlid_steps=bool(values.get("openlid_steps", False)),
    )
