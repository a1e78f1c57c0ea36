"""The fields of OpenAI-compatible request bodies, and how each one is checked.

`openai.requests` parses /v1/chat/completions and /v1/completions bodies with these tables: a
`Checker` per accepted field name takes (name, value) and returns the typed, range-checked value
or raises `ApiError`, which serialises to OpenAI's error object `{"error": {"message", "type",
"param", "code"}}`, so a client library reports it the way it reports OpenAI's own. Fields the
server cannot honour are accepted only at their neutral value (`only`, `empty_or_none`), never
silently ignored. Besides OpenAI's fields, llama.cpp's sampler extras are accepted under
llama-server's names, with vLLM's and llama-cpp-python's aliases: they and their ranges come from
the stage registry (`core.sampler_stages`), as does `SAMPLER_FIELDS`, which maps each to its
`SamplerSettings` field. One field is Openlid's own: `openlid_steps` (true: the response carries
every StepRecord as a JSON row).

Pure (no I/O, no state); runs on the server's request threads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from desktop.core.sampler_stages import (
    ORDERABLE_STAGES,
    PARAM_BY_FIELD,
    SAMPLER_NAMES,
    STAGE_PARAMS,
    Param,
)
from desktop.core.sampling import SamplerSettings

MAX_TOP_LOGPROBS = 20
MAX_STOP_STRINGS = 16
MAX_STOP_CHARS = 1024
MAX_BREAKERS = 16
MAX_BREAKER_CHARS = 40  # llama.cpp cuts a longer DRY sequence breaker to this many characters
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
    """The chain order, by Openlid's stage names or llama-server's (and its spellings). A stage
    left out must be one the request turns off; openai.requests checks that against the rest."""
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise type_error(name, "an array of stage names")
    stages = []
    for given in value:
        stage = SAMPLER_NAMES.get(given.lower())
        if stage is None:
            raise range_error(name, f"stage names from {', '.join(ORDERABLE_STAGES)} "
                                    f"('{given}' is none of them)")
        stages.append(stage)
    if len(set(stages)) != len(stages):
        raise range_error(name, f"each of {', '.join(ORDERABLE_STAGES)} at most once")
    return tuple(stages)


def breakers(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise type_error(name, "an array of strings")
    if not value or len(value) > MAX_BREAKERS:
        raise range_error(name, f"an array of 1 to {MAX_BREAKERS} strings")
    if any(not s or len(s) > MAX_BREAKER_CHARS for s in value):
        raise range_error(name, f"non-empty strings of at most {MAX_BREAKER_CHARS} characters")
    return tuple(value)


def checker_for(param: Param) -> Checker:
    """The request check of a registry knob: its range (OpenAI's where that is narrower)."""
    if not param.is_number:
        return breakers
    hi = param.hi if param.api_hi is None else param.api_hi
    if param.is_int:
        return integer(int(param.lo), int(hi))
    return number(param.lo, hi, lo_open=param.lo_open)


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


# Every sampler knob of the registry, under each of its request names.
_STAGE_FIELDS: dict[str, Checker] = {
    name: checker_for(p) for p in STAGE_PARAMS for name in p.api
}

# Fields shared by both endpoints: OpenAI's, then llama.cpp's sampler extras.
COMMON_FIELDS: dict[str, Checker] = {
    "model": string,
    "stream": boolean,
    "stream_options": ignored,  # checked in openai.requests: an object with include_usage
    **_STAGE_FIELDS,
    "max_tokens": checker_for(PARAM_BY_FIELD["max_tokens"]),
    "stop": stop_strings,
    "seed": seed,
    "n": only(1, "one choice per request (n=1)"),
    "logit_bias": empty_or_none("logit_bias is not implemented"),
    "user": string,
    "ignore_eos": boolean,
    "samplers": sampler_order,
    # Structured output, checked in openai.requests (core.structured_output): OpenAI's
    # response_format, llama-server's json_schema (an object) and grammar (GBNF text).
    "response_format": ignored,
    "json_schema": ignored,
    "grammar": ignored,
    # Openlid's own extension: every chunk also carries the engine's StepRecord row, all stages
    # included, so a remote Openlid shows what a local model shows (see openai.responses).
    "openlid_steps": boolean,
}

CHAT_FIELDS: dict[str, Checker] = {
    **COMMON_FIELDS,
    "messages": ignored,  # checked in openai.requests, message by message
    "logprobs": boolean,
    "top_logprobs": integer(0, MAX_TOP_LOGPROBS),
    "max_completion_tokens": checker_for(PARAM_BY_FIELD["max_tokens"]),
    # Tool calling, checked in openai.requests (core.tools.calls).
    "tools": ignored,
    "tool_choice": ignored,
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

# Request field name → SamplerSettings field.
SAMPLER_FIELDS = {
    **{name: p.field for p in STAGE_PARAMS for name in p.api},
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "stop": "stop",
    "seed": "seed",
    "ignore_eos": "ignore_eos",
    "samplers": "order",
}
