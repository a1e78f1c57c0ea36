"""Structured output in the engine: the GBNF text a setting asks for, and llama.cpp's grammar
sampler built from it, with a parse error in words and at its line and column.

Runs in the engine worker process (and in tests, in-process). "Any JSON" is llama.cpp's own JSON
object grammar (grammars/json.gbnf, as llama-cpp-python ships it), a JSON schema becomes GBNF
through llama-cpp-python's port of llama.cpp's json_schema_to_grammar, and a GBNF grammar is
taken as written. llama.cpp reports a grammar that does not parse by printing to stderr (C's
fprintf) or through its log callback and returning NULL, so both are captured for the one call
that builds the sampler, and the message's "at <rest of the text>" is turned into a position.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import llama_cpp as L
from llama_cpp import _logger
from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.core.structured_output import ANY_JSON, GBNF, JSON_SCHEMA, line_col, schema_problem

__all__ = ["grammar_sampler", "grammar_text"]


def grammar_text(s: SamplerSettings) -> str:
    """The GBNF grammar the settings ask for ("" for none); SettingsError in words when a JSON
    schema cannot become one."""
    if s.structured_output == ANY_JSON:
        return JSON_GBNF
    if s.structured_output == GBNF:
        return s.grammar
    if s.structured_output == JSON_SCHEMA:
        problem = schema_problem(s.json_schema)
        if problem:
            raise SettingsError(problem)
        try:
            return str(json_schema_to_gbnf(s.json_schema))
        except RecursionError:
            raise SettingsError("the JSON schema nests too deeply to become a grammar") from None
        except Exception as exc:  # the converter raises whatever its keywords hit
            raise SettingsError(
                f"the JSON schema cannot become a grammar: {type(exc).__name__}: {exc}"
            ) from None
    return ""


@contextlib.contextmanager
def _captured() -> Iterator[list[str]]:
    """What llama.cpp prints to fd 2 or logs, while the block runs (one thread: the worker's)."""
    lines: list[str] = []

    @L.llama_log_callback  # type: ignore[untyped-decorator]
    def log(level: int, text: bytes, user_data: Any) -> None:
        lines.append(text.decode("utf-8", "replace"))

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        L.llama_log_set(log, ctypes.c_void_p(0))
        try:
            yield lines
        finally:
            L.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.insert(0, tmp.read(1 << 20).decode("utf-8", "replace"))


_AT = re.compile(r"^(?P<what>.*?) at (?P<rest>.*)$", re.S)
_UNDEFINED = re.compile(r"Undefined rule identifier '([^']*)'")


def _where(text: str, offset: int) -> str:
    line, col = line_col(text, offset)
    return f"line {line}, column {col}"


def parse_error(printed: str, text: str) -> str:
    """llama.cpp's complaint about `text`, in words, with the line and column it names."""
    prefix = "error parsing grammar: "
    if prefix in printed:
        what = printed.split(prefix, 1)[1]
        tail = "\n\n" + text + "\n"
        what = what[: -len(tail)] if what.endswith(tail) else what.split("\n\n", 1)[0]
        m = _AT.match(what)
        if m and text.endswith(m["rest"]):
            return f"{m['what']} at {_where(text, len(text) - len(m['rest']))}"
        if what.startswith("unexpected end of input"):
            return (f"unexpected end of the grammar at {_where(text, len(text))}: a quote, "
                    "bracket or parenthesis is not closed")
        m = _UNDEFINED.search(what)
        if m:  # the first use of the name that is no rule's left-hand side
            use = re.search(rf"(?<![\w-]){re.escape(m[1])}(?![\w-])(?!\s*::=)", text)
            where = f" at {_where(text, use.start())}" if use else ""
            return f"rule '{m[1]}' is used{where} but never defined"
        return what.strip()
    for line in printed.splitlines():
        if "root" in line and "symbol" in line:
            return "the grammar has no 'root' rule (the reply starts at root ::= ...)"
        if "left recursion" in line:
            return ("the grammar is left-recursive (a rule starts with itself); llama.cpp "
                    "cannot run such a grammar")
    return "llama.cpp could not parse the grammar"


def grammar_sampler(vocab: Any, text: str) -> Any:
    """llama.cpp's grammar sampler for `text` (root rule "root"); SettingsError in words, with the
    error's position, when llama.cpp cannot parse it. The caller frees it."""
    if vocab is None:
        raise SettingsError("structured output needs llama.cpp's tokenizer (a GGUF model)")
    with _captured() as printed:
        sampler = L.llama_sampler_init_grammar(vocab, text.encode("utf-8"), b"root")
    if not sampler:
        raise SettingsError(f"the grammar does not parse: {parse_error(''.join(printed), text)}")
    return sampler


def allowed(sampler: Any, token: int) -> bool:
    """Whether the grammar, in its current state, lets `token` come next."""
    data = L.llama_token_data(id=token, logit=0.0, p=0.0)
    arr = L.llama_token_data_array(data=ctypes.pointer(data), size=1, selected=-1, sorted=False)
    L.llama_sampler_apply(sampler, ctypes.byref(arr))
    return bool(data.logit > -float("inf"))
