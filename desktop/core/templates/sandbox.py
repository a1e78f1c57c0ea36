"""Render an untrusted chat template (jinja, Hugging Face conventions) safely and within limits.

A chat template comes with every GGUF downloaded from the Hub, and the prompt preview renders it
on every keystroke, so a hostile or broken template must neither run code nor freeze the app.
This module compiles (bounded source size, cached) and renders in jinja2's
`ImmutableSandboxedEnvironment` (which blocks `__class__`-style attribute walks), subclassed in
`templates.environment` to add what the sandbox lacks, all counted inside the render itself:

* time: every loop iteration, call, attribute access and intercepted operator ticks a counter
  that checks a deadline, so nested 99 999-step loops stop with "template took too long";
* size: the rendered output, everything emitted into buffers (macros, `{% set %}` blocks), and
  every value a template builds are bounded, and operations that could allocate huge strings in
  one step (`*`, `replace`, padding widths, `%`/`format` widths, big integers) are checked before
  they run, so no single C-level call can take long;
* provenance: message text arrives as `TaintedStr`; operations keep or widen its spans (see
  `templates.taint`), so the caller can tokenize message text without special-token parsing.

Rendering a normal template costs well under a millisecond more than plain jinja. It runs on the
calling thread (GUI thread or a worker); state is per thread, so threads may render concurrently.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Mapping
from typing import Any

import jinja2

from desktop.core.templates.environment import make_environment
from desktop.core.templates.limits import (
    MIB,
    STATE,
    Budget,
    RaisedByTemplate,
    RenderLimits,
    TemplateError,
    active_budget,
    too_large,
)
from desktop.core.templates.taint import taint_join

__all__ = ["MAX_SOURCE_CHARS", "MAX_SOURCE_TOKENS", "RenderLimits", "TemplateError",
           "compile_template", "render_template"]

MAX_SOURCE_CHARS = 128 * 1024  # the largest published chat templates are ~20 KiB
# Compiling cannot be interrupted and costs ~25 µs per token: 20 000 tokens (about 20 times a
# Llama 3.1 or Qwen3 template) keep it well under a second on a slow machine.
MAX_SOURCE_TOKENS = 20_000

_ENV = make_environment()
_CACHE: dict[str, jinja2.Template] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 32


def compile_template(source: str) -> jinja2.Template:
    """Compile (cached) or raise TemplateError with the line of the first syntax error."""
    with _CACHE_LOCK:
        cached = _CACHE.get(source)
    if cached is not None:
        return cached
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateError(f"template is too long (over {MAX_SOURCE_CHARS // 1024} KiB)",
                            kind="too_large")
    try:
        for count, _token in enumerate(_ENV.lex(source)):
            if count >= MAX_SOURCE_TOKENS:
                raise TemplateError(f"template is too complex (over {MAX_SOURCE_TOKENS} tokens)",
                                    kind="too_large")
        template = _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(exc.message or "syntax error", kind="syntax", line=exc.lineno) from None
    except (RecursionError, MemoryError):
        raise TemplateError("template is nested too deeply to compile", kind="syntax") from None
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[source] = template
    return template


def _template_line(exc: BaseException) -> int | None:
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == "<template>":
            line = frame.lineno
    return line


def render_template(source: str, variables: Mapping[str, Any],
                    limits: RenderLimits | None = None,
                    cancel: threading.Event | None = None) -> str:
    """Render `source` with `variables`; a TaintedStr when any output came from tainted input.

    Raises TemplateError for every failure: syntax, raise_exception, sandbox violations, time,
    size, cancellation, and any other runtime error (with the template line when known).
    """
    limits = limits or RenderLimits()
    template = compile_template(source)
    budget = Budget(limits, cancel)
    previous = active_budget()
    STATE.budget = budget
    chunks: list[str] = []
    size = 0
    try:
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > limits.output_chars:
                raise too_large(f"over {limits.output_chars // MIB} MiB")
            chunks.append(chunk)
            budget.tick()
    except TemplateError as exc:
        exc.line = exc.line or _template_line(exc)
        raise exc.with_traceback(None) from None
    except RaisedByTemplate as exc:
        raise TemplateError(exc.message or "the template refused these messages",
                            kind="raised", line=_template_line(exc)) from None
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(f"template blocked by the sandbox: {exc}", kind="security",
                            line=_template_line(exc)) from None
    except RecursionError:
        raise TemplateError("template recursion too deep", kind="too_large") from None
    except MemoryError:
        raise TemplateError("template used too much memory", kind="too_large") from None
    except Exception as exc:  # any error inside untrusted template code is the template's fault
        message = str(exc) if isinstance(exc, jinja2.TemplateError) else (
            f"{type(exc).__name__}: {exc}")
        raise TemplateError(message, line=_template_line(exc)) from None
    finally:
        STATE.budget = previous
    return taint_join("", chunks)
