"""The fields of OpenAI-compatible request bodies, and how each one is checked.

`openai.requests` parses /v1/chat/completions and /v1/completions bodies with these tables: a
`Checker` per accepted field name takes (name, value) and returns the typed, range-checked value
or raises `ApiError`, which serialises to OpenAI's error object `{"error": {"message", "type",
"param", "code"}}`, so a client library reports it the way it reports OpenAI's own. Fields the
server cannot honour are accepted only at their neutral value (`only`, `empty_or_none`), never
silently ignored. Besides OpenAI's fields, llama.cpp's sampler extras are listed, with vLLM's and
llama-cpp-python's aliases; `SAMPLER_FIELDS` maps each to its `SamplerSettings` field. One field
is Openlid's own: `openlid_steps` (true: the response carries every StepRecord as a JSON row).

Pure (no I/O, no state); runs on the server's request threads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from desktop.core.sampling import ORDERABLE_STAGES, SamplerSettings

MAX_TOP_LOGPROBS = 20
MAX_STOP_STRINGS = 16
MAX_STOP_CHARS = 1024
_RANDOM_SEED = SamplerSettings().seed


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


# --- field checkers: each takes (name, value) and returns the checked value or raises ---

Checker = Callable[[str, Any], Any]


def type_error(name: str, expected: str) -> ApiError:
    """`name` holds a value of the wrong JSON type."""
    return ApiError(f"'{name}' must be {expected}.", param=name, code="invalid_type")


def range_error(name: str, what: str) -> ApiError:
    """`name` has the right type but a value outside what the server takes."""
    return ApiError(f"'{name}' must be {what}.", param=name, code="invalid_value")


def number(lo: float, hi: float, *, lo_open: bool = False) -> Checker:
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise type_error(name, "a number")
        result = float(value)
        too_low = result <= lo if lo_open else result < lo
        if not math.isfinite(result) or too_low or result > hi:
            low = f"> {lo:g}" if lo_open else f"≥ {lo:g}"
            raise range_error(name, f"{low} and ≤ {hi:g}")
        return result

    return check


def integer(lo: int, hi: int) -> Checker:
    def check(name: str, value: Any) -> int:
        # 3.0 is an integer to JavaScript clients; 3.5 is not.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise type_error(name, "an integer")
        if not lo <= value <= hi:
            raise range_error(name, f"between {lo} and {hi}")
        return value

    return check


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise type_error(name, "a boolean")
    return value


def string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise type_error(name, "a string")
    return value


def stop_strings(name: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise type_error(name, "a string or an array of strings")
    if len(items) > MAX_STOP_STRINGS:
        raise range_error(name, f"at most {MAX_STOP_STRINGS} strings")
    if any(not s or len(s) > MAX_STOP_CHARS for s in items):
        raise range_error(name, f"non-empty strings of at most {MAX_STOP_CHARS} characters")
    return tuple(items)


def seed(name: str, value: Any) -> int:
    checked: int = integer(-1, _RANDOM_SEED - 1)(name, value)
    return _RANDOM_SEED if checked == -1 else checked  # -1: llama.cpp's "random"


def sampler_order(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise type_error(name, "an array of stage names")
    if sorted(value) != sorted(ORDERABLE_STAGES):
        raise range_error(name, f"each of {', '.join(ORDERABLE_STAGES)} exactly once")
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
COMMON_FIELDS: dict[str, Checker] = {
    "model": string,
    "stream": boolean,
    "stream_options": ignored,  # checked in openai.requests: an object with include_usage
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
    # Openlid's own extension: every chunk also carries the engine's StepRecord row, all stages
    # included, so a remote Openlid shows what a local model shows (see openai.responses).
    "openlid_steps": boolean,
}

CHAT_FIELDS: dict[str, Checker] = {
    **COMMON_FIELDS,
    "messages": ignored,  # checked in openai.requests, message by message
    "logprobs": boolean,
    "top_logprobs": integer(0, MAX_TOP_LOGPROBS),
    "max_completion_tokens": integer(1, 1_000_000),
    "response_format": ignored,  # checked in openai.requests: only {"type": "text"}
    "tools": empty_or_none("tool calling is not implemented"),
    "tool_choice": only("none", "tool calling is not implemented"),
    "parallel_tool_calls": boolean,
    "store": only(False, "completions are not stored"),
    "metadata": ignored,
}

COMPLETION_FIELDS: dict[str, Checker] = {
    **COMMON_FIELDS,
    "prompt": ignored,  # checked in openai.requests: text or token ids
    "logprobs": integer(0, MAX_TOP_LOGPROBS),
    "echo": only(False, "echo=true is not implemented"),
    "suffix": empty_or_none("suffix (fill-in-the-middle) is not implemented"),
    "best_of": only(1, "best_of must be 1"),
}

# OpenAI name → SamplerSettings field.
SAMPLER_FIELDS = {
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
