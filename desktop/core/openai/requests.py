"""OpenAI-compatible request validation: JSON bodies of /v1/chat/completions and /v1/completions.

Pure (no I/O); runs on the server's request threads. Every field is typed and range-checked (the
checkers and the table of fields per endpoint are in `openai.fields`), and anything wrong (unknown
fields included) becomes an `ApiError` that serialises to OpenAI's error object, so a client
library reports it the way it reports OpenAI's own. Valid requests become an `ApiRequest` holding
`SamplerSettings`.

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

__all__ = ["ApiError", "ApiRequest", "parse_chat_request", "parse_completion_request"]

MAX_MESSAGES = 4096
# Chat content parts a text model can take; images and audio are refused with a clear message.
_TEXT_PART_TYPES = ("text", "input_text")
_ROLES = ("system", "developer", "user", "assistant")


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


def _messages(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise ApiError(
            "'messages' must be a non-empty array.", param="messages", code="invalid_value"
        )
    if len(value) > MAX_MESSAGES:
        raise range_error("messages", f"at most {MAX_MESSAGES} messages")
    out: list[tuple[str, str]] = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise type_error(f"messages[{i}]", "an object")
        unknown = set(message) - {"role", "content", "name"}
        if unknown:
            name = sorted(unknown)[0]
            detail = " (tool calls are not implemented)" if "tool" in name else ""
            raise ApiError(
                f"Unrecognized argument supplied in messages[{i}]: {name}{detail}",
                param=f"messages[{i}].{name}", code="unknown_parameter",
            )
        role = message.get("role")
        if role not in _ROLES:
            raise ApiError(
                f"'messages[{i}].role' must be one of {', '.join(_ROLES)}.",
                param=f"messages[{i}].role", code="invalid_value",
            )
        if message.get("name") is not None:
            string(f"messages[{i}].name", message["name"])
        content = message.get("content")
        if content is None:
            raise ApiError(
                f"'messages[{i}].content' is missing.",
                param=f"messages[{i}].content", code="missing",
            )
        out.append(("system" if role == "developer" else role, _content_text(i, content)))
    return tuple(out)


def parse_chat_request(
    body: Any, *, max_tokens: int, base: SamplerSettings | None = None
) -> ApiRequest:
    """Check a /v1/chat/completions body; `max_tokens` is the default when none is given."""
    values = _check_fields(body, CHAT_FIELDS)
    messages = _messages(values.get("messages"))
    response_format = values.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        raise ApiError(
            "'response_format' is not supported by this server: only {\"type\": \"text\"}.",
            param="response_format", code="unsupported_value",
        )
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
