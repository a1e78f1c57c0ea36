"""The Template panel's background job: render the current conversation through a template and
measure what each part contributes. No Qt: `render_preview` runs on a `JobService` pool thread
and returns an immutable `PreviewResult` that the panel shows on the GUI thread.

Rendering goes through `core.templates.prompt.render_prompt`, which bounds time (1 s: "template
took too long") and output size, and stops early when the `cancel` event is set (a newer edit
arrived).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from desktop.core.templates.prompt import (
    PromptTemplate,
    RenderedPrompt,
    TemplateError,
    build_messages,
    render_prompt,
)

PART_NAMES = ("system", "instructions", "history", "new message", "template")
CHARS_PER_TOKEN = 4.0  # a common rule of thumb, used only until the engine has counted


@dataclass(frozen=True)
class PreviewRequest:
    serial: int
    template: PromptTemplate
    history: tuple[tuple[str, str], ...]  # (role, content)
    system: str
    instructions: str
    draft: str  # the message being typed ("" when none)
    placement: str  # "system" or "first_user"
    bos_token: str | None  # the loaded model's, or None for the template's own guess
    eos_token: str | None


@dataclass(frozen=True)
class PreviewResult:
    serial: int
    rendered: RenderedPrompt | None
    error: str  # the message for the user ("" when rendered)
    error_kind: str
    error_line: int | None
    part_chars: tuple[tuple[str, int], ...]  # characters each part contributes
    elapsed_ms: float


def render_preview(request: PreviewRequest, cancel: threading.Event) -> PreviewResult:
    """Render `request` (any thread). Never raises for template faults: they come back as
    `error`, with the template line when known."""
    start = time.perf_counter()
    messages = build_messages(
        request.system, request.instructions,
        [{"role": r, "content": c} for r, c in request.history],
        request.draft or None,
        instructions_placement="first_user" if request.placement == "first_user" else "system",
    )
    try:
        if not messages and not request.template.raw:
            raise TemplateError("there is nothing to render yet: write a message or a system "
                                "prompt", kind="nothing")
        rendered = render_prompt(request.template, messages, bos_token=request.bos_token,
                                 eos_token=request.eos_token, cancel=cancel)
    except TemplateError as exc:
        return PreviewResult(request.serial, None, exc.message, exc.kind, exc.line, (),
                             (time.perf_counter() - start) * 1000)
    return PreviewResult(request.serial, rendered, "", "", None, _part_chars(request, rendered),
                         (time.perf_counter() - start) * 1000)


def _part_chars(request: PreviewRequest, rendered: RenderedPrompt) -> tuple[tuple[str, int], ...]:
    """Characters per part. Message text is counted from the inputs (a template may trim it a
    little); everything else in the rendered text is the template's markup."""
    parts = {
        "system": len(request.system.strip()),
        "instructions": len(request.instructions.strip()),
        "history": sum(len(c) for r, c in request.history if r != "system"),
        "new message": len(request.draft),
    }
    message_chars = sum(parts.values())
    parts["template"] = max(0, len(rendered.text) - min(message_chars,
                                                        len(rendered.untrusted_text)))
    return tuple((name, parts[name]) for name in PART_NAMES)


def split_tokens(part_chars: tuple[tuple[str, int], ...], n_tokens: int) -> tuple[
        tuple[str, int], ...]:
    """Share `n_tokens` among the parts in proportion to their characters (largest remainder,
    so the shares add up to exactly `n_tokens`)."""
    total = sum(c for _, c in part_chars)
    if total <= 0 or n_tokens <= 0:
        return tuple((name, 0) for name, _ in part_chars)
    exact = [(name, n_tokens * c / total) for name, c in part_chars]
    shares = {name: int(x) for name, x in exact}
    left = n_tokens - sum(shares.values())
    for name, _ in sorted(exact, key=lambda item: item[1] - int(item[1]), reverse=True)[:left]:
        shares[name] += 1
    return tuple((name, shares[name]) for name, _ in part_chars)


def estimate_tokens(chars: int) -> int:
    return round(chars / CHARS_PER_TOKEN)
