"""OpenAI-compatible request validation: JSON bodies of /v1/chat/completions and /v1/completions.

Pure (no I/O); runs on the server's request threads. Every field is typed and range-checked, and
anything wrong (unknown fields included) becomes an `ApiError` that serialises to OpenAI's error
object `{"error": {"message", "type", "param", "code"}}`, so a client library reports it the way it
reports OpenAI's own. Valid requests become an `ApiRequest` holding `SamplerSettings`.

Defaults follow llama.cpp's server, not OpenAI's: a field the client leaves out keeps
`SamplerSettings`' default (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05), and `max_tokens`
defaults to the rest of the context window. Besides OpenAI's fields, llama.cpp's sampler extras
are accepted (top_k, min_p, typical_p, repeat_penalty, repeat_last_n, mirostat, mirostat_tau,
mirostat_eta, ignore_eos, samplers; vLLM's repetition_penalty and llama-cpp-python's mirostat_mode
as aliases). Responses are built in `openai_stream`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from desktop.core.sampling import ORDERABLE_STAGES, SamplerSettings, SettingsError

MAX_TOP_LOGPROBS = 20
MAX_STOP_STRINGS = 16
MAX_STOP_CHARS = 1024
MAX_MESSAGES = 4096
_RANDOM_SEED = SamplerSettings().seed
# Chat content parts a text model can take; images and audio are refused with a clear message.
_TEXT_PART_TYPES = ("text", "input_text")
_ROLES = ("system", "developer", "user", "assistant")


class ApiError(Exception):
    """A request the server refuses; `to_json()` is OpenAI's error object."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int = 400,
        type_: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status
        self.type = type_

    def to_json(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


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


# --- field checkers: each takes (name, value) and returns the checked value or raises ---

Checker = Callable[[str, Any], Any]


def _type_error(name: str, expected: str) -> ApiError:
    return ApiError(f"'{name}' must be {expected}.", param=name, code="invalid_type")


def _range_error(name: str, what: str) -> ApiError:
    return ApiError(f"'{name}' must be {what}.", param=name, code="invalid_value")


def number(lo: float, hi: float, *, lo_open: bool = False) -> Checker:
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(name, "a number")
        result = float(value)
        too_low = result <= lo if lo_open else result < lo
        if not math.isfinite(result) or too_low or result > hi:
            low = f"> {lo:g}" if lo_open else f"≥ {lo:g}"
            raise _range_error(name, f"{low} and ≤ {hi:g}")
        return result

    return check


def integer(lo: int, hi: int) -> Checker:
    def check(name: str, value: Any) -> int:
        # 3.0 is an integer to JavaScript clients; 3.5 is not.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(name, "an integer")
        if not lo <= value <= hi:
            raise _range_error(name, f"between {lo} and {hi}")
        return value

    return check


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _type_error(name, "a boolean")
    return value


def string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _type_error(name, "a string")
    return value


def stop_strings(name: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise _type_error(name, "a string or an array of strings")
    if len(items) > MAX_STOP_STRINGS:
        raise _range_error(name, f"at most {MAX_STOP_STRINGS} strings")
    if any(not s or len(s) > MAX_STOP_CHARS for s in items):
        raise _range_error(name, f"non-empty strings of at most {MAX_STOP_CHARS} characters")
    return tuple(items)


def seed(name: str, value: Any) -> int:
    checked: int = integer(-1, _RANDOM_SEED - 1)(name, value)
    return _RANDOM_SEED if checked == -1 else checked  # -1: llama.cpp's "random"


def sampler_order(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _type_error(name, "an array of stage names")
    if sorted(value) != sorted(ORDERABLE_STAGES):
        raise _range_error(name, f"each of {', '.join(ORDERABLE_STAGES)} exactly once")
    return tuple(value)


def only(allowed: Any, what: str) -> Checker:
    """A field accepted only at its neutral value (n=1, echo=false…): anything else is refused."""

    def check(name: str, value: Any) -> Any:
        if value != allowed or type(value) is not type(allowed):
            raise ApiError(
                f"'{name}' is not supported by this server: {what}.",
                param=name, code="unsupported_value",
            )
        return value

    return check


def ignored(name: str, value: Any) -> Any:
    return value


def empty_or_none(what: str) -> Checker:
    def check(name: str, value: Any) -> Any:
        if value:
            raise ApiError(
                f"'{name}' is not supported by this server: {what}.",
                param=name, code="unsupported_value",
            )
        return value

    return check


# Fields shared by both endpoints: OpenAI's, then llama.cpp's sampler extras.
_COMMON: dict[str, Checker] = {
    "model": string,
    "stream": boolean,
    "stream_options": ignored,  # checked below: an object with include_usage
    "temperature": number(0, 2),
    "top_p": number(0, 1),
    "max_tokens": integer(1, 1_000_000),
    "stop": stop_strings,
    "seed": seed,
    "presence_penalty": number(-2, 2),
    "frequency_penalty": number(-2, 2),
    "n": only(1, "one choice per request (n=1)"),
    "logit_bias": empty_or_none("logit_bias is not implemented"),
    "user": string,
    "top_k": integer(0, 1_000_000),
    "min_p": number(0, 1),
    "typical_p": number(0, 1, lo_open=True),
    "repeat_penalty": number(0, 10, lo_open=True),
    "repetition_penalty": number(0, 10, lo_open=True),  # vLLM's name for the same field
    "repeat_last_n": integer(-1, 1_000_000),
    "mirostat": integer(0, 2),
    "mirostat_mode": integer(0, 2),  # llama-cpp-python's name for the same field
    "mirostat_tau": number(0, 100, lo_open=True),
    "mirostat_eta": number(0, 1, lo_open=True),
    "ignore_eos": boolean,
    "samplers": sampler_order,
}

_CHAT: dict[str, Checker] = {
    **_COMMON,
    "messages": ignored,  # checked by _messages
    "logprobs": boolean,
    "top_logprobs": integer(0, MAX_TOP_LOGPROBS),
    "max_completion_tokens": integer(1, 1_000_000),
    "response_format": ignored,  # checked below: only {"type": "text"}
    "tools": empty_or_none("tool calling is not implemented"),
    "tool_choice": only("none", "tool calling is not implemented"),
    "parallel_tool_calls": boolean,
    "store": only(False, "completions are not stored"),
    "metadata": ignored,
}

_COMPLETION: dict[str, Checker] = {
    **_COMMON,
    "prompt": ignored,  # checked by _prompt
    "logprobs": integer(0, MAX_TOP_LOGPROBS),
    "echo": only(False, "echo=true is not implemented"),
    "suffix": empty_or_none("suffix (fill-in-the-middle) is not implemented"),
    "best_of": only(1, "best_of must be 1"),
}

# OpenAI name → SamplerSettings field.
_SAMPLER_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "stop": "stop",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "top_k": "top_k",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repetition_penalty": "repeat_penalty",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "mirostat_mode": "mirostat",
    "mirostat": "mirostat",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
    "ignore_eos": "ignore_eos",
    "samplers": "order",
}


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
    for name, field_name in _SAMPLER_FIELDS.items():
        if name in values:
            changes[field_name] = values[name]
    try:
        return base.replace(**changes).validated()
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
        raise _type_error(name, "a string or an array of content parts")
    texts: list[str] = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _type_error(f"{name}[{j}]", "an object with a 'type'")
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
        raise _range_error("messages", f"at most {MAX_MESSAGES} messages")
    out: list[tuple[str, str]] = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise _type_error(f"messages[{i}]", "an object")
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
    values = _check_fields(body, _CHAT)
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
    raise _type_error("prompt", "a string or an array of token ids")


def parse_completion_request(
    body: Any, *, max_tokens: int, base: SamplerSettings | None = None
) -> ApiRequest:
    """Check a /v1/completions body; `max_tokens` is the default when none is given."""
    values = _check_fields(body, _COMPLETION)
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
    )
