"""Prompt templates: choosing one for a model, building the messages, rendering the exact prompt.

A model remembers nothing between replies: every turn the whole conversation is laid out again
through the model's chat template. This module owns that step:

* `PromptTemplate` — a template from the model file, a built-in preset (`resources/templates`),
  or one the user saved (`templates.store`); `choose_template` picks one for a loaded model.
* `build_messages` — system prompt + custom instructions + history + the new message.
* `render_prompt` — renders with Hugging Face conventions in a bounded sandbox
  (`templates.sandbox`) and returns the text as segments: template markup (trusted, may hold
  special tokens) and message text (untrusted: the engine tokenizes it without special-token
  parsing, so typing `<end_of_turn>` cannot forge a turn). Joining the segments gives the text.

Pure Python, no Qt; called from the GUI thread (preview on every keystroke), worker threads and
the CLI alike.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from desktop.core.reasoning import history_without_thinking
from desktop.core.resources import resource_path
from desktop.core.templates.sandbox import RenderLimits, TemplateError, render_template
from desktop.core.templates.taint import TaintedStr, spans_of, taint_join

__all__ = [
    "PromptSegment",
    "PromptTemplate",
    "RenderLimits",
    "RenderedPrompt",
    "TemplateError",
    "build_messages",
    "choose_template",
    "find_template",
    "model_templates_of",
    "presets",
    "render_completion",
    "render_prompt",
]

TemplateSource = Literal["model", "preset", "custom"]
InstructionsPlacement = Literal["system", "first_user"]
MODEL_ID = "model"  # the GGUF's default template; named variants are "model:<name>"
RAW_ID = "raw"
SYSTEM_FOLDED_NOTE = (
    "This template has no place for a system message, so the system prompt was put at the "
    "start of the first user message."
)


@dataclass(frozen=True)
class PromptTemplate:
    id: str  # "model", "model:<variant>", a preset id, or "custom:<slug>"
    name: str
    source: TemplateSource
    text: str  # jinja source; "" for raw completion
    stop: tuple[str, ...] = ()  # strings that end a reply (besides the model's EOS tokens)
    default_system_prompt: str = ""  # proposed when the user has set none
    bos_token: str = ""  # used only when no loaded model supplies its own
    eos_token: str = ""
    raw: bool = False  # raw completion: no template, the text is sent as typed
    based_on: str | None = None  # for a custom template: the id it was saved from

    def replace(self, **changes: Any) -> PromptTemplate:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PromptTemplate:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["stop"] = tuple(values.get("stop", ()))
        return cls(**values)


@dataclass(frozen=True)
class PromptSegment:
    text: str
    trusted: bool  # True: template markup, special tokens allowed; False: message text


@dataclass(frozen=True)
class RenderedPrompt:
    """The exact prompt: `text` == the segments' texts joined. Trusted segments are template
    markup (tokenize with special-token parsing); untrusted ones came from messages, the system
    prompt or the instructions (tokenize as plain text)."""

    text: str
    segments: tuple[PromptSegment, ...]
    notes: tuple[str, ...] = ()  # what rendering changed or assumed, for the preview

    @property
    def untrusted_text(self) -> str:
        return "".join(s.text for s in self.segments if not s.trusted)


# ---- presets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PresetIndex:
    templates: dict[str, PromptTemplate]  # in display order
    names: dict[str, tuple[str, ...]]  # id -> normalised name hints
    architectures: dict[str, tuple[str, ...]]
    match_order: tuple[str, ...]
    fallback: str


def _normalise(name: str) -> str:
    return re.sub(r"[\s._]+", "-", name.strip().lower())


@functools.cache
def _index() -> _PresetIndex:
    folder = resource_path("templates")
    data = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    templates: dict[str, PromptTemplate] = {}
    names: dict[str, tuple[str, ...]] = {}
    archs: dict[str, tuple[str, ...]] = {}
    for entry in data["presets"]:
        file = entry.get("file")
        templates[entry["id"]] = PromptTemplate(
            id=entry["id"],
            name=entry["name"],
            source="preset",
            text=(folder / file).read_text(encoding="utf-8") if file else "",
            stop=tuple(entry.get("stop", ())),
            default_system_prompt=entry.get("system_prompt", ""),
            bos_token=entry.get("bos_token", ""),
            eos_token=entry.get("eos_token", ""),
            raw=not file,
        )
        match = entry.get("match", {})
        names[entry["id"]] = tuple(_normalise(n) for n in match.get("names", ()))
        archs[entry["id"]] = tuple(a.lower() for a in match.get("architectures", ()))
    order = tuple(data.get("match_order", templates))
    return _PresetIndex(templates, names, archs, order, data.get("fallback", "chatml"))


def presets() -> dict[str, PromptTemplate]:
    """Built-in templates by id, in display order (ChatML first, raw completion last)."""
    return dict(_index().templates)


def _known_stops() -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for template in _index().templates.values():
        seen.update(dict.fromkeys(template.stop))
    return tuple(seen)


def model_templates_of(model_templates: Mapping[str, str]) -> list[PromptTemplate]:
    """The GGUF's templates (`tokenizer.chat_template` and named variants), default first.

    Stop strings are guessed from the end-of-turn markers the template text contains."""
    out: list[PromptTemplate] = []
    for key in sorted(model_templates, key=lambda k: (k != "default", k)):
        text = model_templates[key]
        if not text.strip():
            continue
        out.append(PromptTemplate(
            id=MODEL_ID if key == "default" else f"{MODEL_ID}:{key}",
            name="Model's template" if key == "default" else f"Model's template ({key})",
            source="model",
            text=text,
            stop=tuple(s for s in _known_stops() if s in text),
        ))
    return out


def match_preset(architecture: str, model_name: str) -> PromptTemplate | None:
    """The preset a model without a template most likely expects, or None."""
    index = _index()
    name = _normalise(model_name)
    for preset_id in index.match_order:
        if name and any(hint in name for hint in index.names.get(preset_id, ())):
            return index.templates[preset_id]
    arch = architecture.strip().lower()
    for preset_id in index.match_order:
        if arch and arch in index.architectures.get(preset_id, ()):
            return index.templates[preset_id]
    return None


def choose_template(model_templates: Mapping[str, str], architecture: str,
                    model_name: str) -> PromptTemplate:
    """The template to use for a model: its own (the default one first), else a preset matched
    by name or architecture (Gemma 3 files often carry none: "gemma3" -> Gemma), else ChatML."""
    own = model_templates_of(model_templates)
    if own:
        return own[0]
    return match_preset(architecture, model_name) or _index().templates[_index().fallback]


def find_template(template_id: str, *, model_templates: Mapping[str, str] | None = None,
                  custom: Iterable[PromptTemplate] = ()) -> PromptTemplate:
    """Look a template up by id among the model's, the presets and `custom`; KeyError if none."""
    for template in (*model_templates_of(model_templates or {}), *presets().values(), *custom):
        if template.id == template_id:
            return template
    raise KeyError(f"no template with id {template_id!r}")


def reset_to_source(template: PromptTemplate, *, model_templates: Mapping[str, str] | None = None,
                    custom: Iterable[PromptTemplate] = ()) -> PromptTemplate:
    """The pristine template an edited or saved one came from (KeyError when it is gone)."""
    target = template.based_on if template.source == "custom" else template.id
    if not target:
        raise KeyError(f"template {template.name!r} was not made from another template")
    return find_template(target, model_templates=model_templates, custom=custom)


# ---- messages ------------------------------------------------------------------------------------


def _role_content(item: Any) -> tuple[str, str]:
    if isinstance(item, Mapping):
        return str(item["role"]), str(item["content"])
    return str(item.role), str(item.content)


def build_messages(system_prompt: str, custom_instructions: str, history: Iterable[Any],
                   new_user_message: str | None = None, *,
                   instructions_placement: InstructionsPlacement = "system",
                   ) -> list[dict[str, str]]:
    """The messages sent this turn, in the `[{"role", "content"}]` shape templates expect.

    The system message is the system prompt, then a blank line ("\\n\\n"), then the custom
    instructions; a part that is empty or only whitespace is left out, and no system message is
    sent when both are. With `instructions_placement="first_user"` the instructions go instead
    in front of the first user message, separated from it by a blank line. `history` items are
    mappings or objects with `role` and `content` (e.g. stored messages); stored system messages
    are skipped, since the current system prompt replaces them. An empty `new_user_message` adds
    nothing (regenerating a reply to the last user message).
    """
    system_parts = [system_prompt]
    instructions = custom_instructions if custom_instructions.strip() else ""
    if instructions_placement == "system":
        system_parts.append(instructions)
        instructions = ""
    system = "\n\n".join(p for p in system_parts if p.strip())
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    for item in history:
        role, content = _role_content(item)
        if role != "system":
            messages.append({"role": role, "content": content})
    if new_user_message:
        messages.append({"role": "user", "content": new_user_message})
    if instructions:
        for message in messages:
            if message["role"] == "user":
                message["content"] = f"{instructions}\n\n{message['content']}"
                break
        else:
            messages.append({"role": "user", "content": instructions})
    return messages


def fold_system_message(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages with a leading system message merged into the first user message."""
    if not messages or messages[0].get("role") != "system":
        return [dict(m) for m in messages]
    system = str(messages[0].get("content", ""))
    rest = [dict(m) for m in messages[1:]]
    for message in rest:
        if message.get("role") == "user":
            message["content"] = f"{system}\n\n{message.get('content', '')}"
            return rest
    return [{"role": "user", "content": system}, *rest]


# ---- rendering -----------------------------------------------------------------------------------


def _mark_untrusted(value: Any, *, top_level_message: bool = False) -> Any:
    """A copy of the messages/tools in which every string a user could have typed is a
    TaintedStr. Roles are the app's own words and stay plain, as do mapping keys."""
    if isinstance(value, str):
        return TaintedStr(value) if value else value
    if isinstance(value, Mapping):
        return {k: (v if top_level_message and k == "role" else _mark_untrusted(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mark_untrusted(v) for v in value]
    return value


def _segments(text: str) -> tuple[PromptSegment, ...]:
    segments: list[PromptSegment] = []
    pos = 0
    for start, end in spans_of(text):
        if start > pos:
            segments.append(PromptSegment(str.__str__(text[pos:start]), True))
        segments.append(PromptSegment(str.__str__(text[start:end]), False))
        pos = end
    if pos < len(text):
        segments.append(PromptSegment(str.__str__(text[pos:]), True))
    return tuple(segments)


def _finish(text: str, notes: Sequence[str] = ()) -> RenderedPrompt:
    if not text.strip():
        raise TemplateError("template rendered an empty prompt; nothing would be sent",
                            kind="empty")
    segments = _segments(text)
    plain = "".join(s.text for s in segments)
    return RenderedPrompt(plain, segments, tuple(notes))


def render_completion(text: str) -> RenderedPrompt:
    """Raw completion: the text exactly as typed, all of it untrusted (typing a special token's
    text gives that text, not the token)."""
    return _finish(TaintedStr(text))


def render_prompt(
    template: PromptTemplate,
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = True,
    bos_token: str | None = None,
    eos_token: str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
    limits: RenderLimits | None = None,
    cancel: threading.Event | None = None,
) -> RenderedPrompt:
    """Render `messages` through `template` as transformers' `apply_chat_template` would.

    bos_token/eos_token: the loaded model's token texts (default: the template's own guess).
    extra: more template variables (e.g. `enable_thinking`, `date_string`).
    Earlier replies' thinking blocks are left out (`reasoning.history_without_thinking`).
    If the template refuses a system message (raise_exception) or silently drops it, the system
    text is folded into the first user message and a note says so. Raises TemplateError.
    """
    if template.raw:
        # The blank lines between messages are the app's; the messages are the user's.
        contents = (str(m.get("content", "")) for m in messages)
        return _finish(taint_join("\n\n", [TaintedStr(c) for c in contents if c]))
    # Earlier replies' thinking stays out of later turns (Qwen3's template drops it itself).
    messages = history_without_thinking(template.text, messages)
    variables: dict[str, Any] = dict(extra or {})
    variables.update(
        add_generation_prompt=add_generation_prompt,
        bos_token=template.bos_token if bos_token is None else bos_token,
        eos_token=template.eos_token if eos_token is None else eos_token,
        tools=_mark_untrusted(list(tools)) if tools is not None else None,
        documents=None,
    )

    def run(msgs: Sequence[Mapping[str, Any]]) -> str:
        marked = [_mark_untrusted(m, top_level_message=True) for m in msgs]
        return render_template(template.text, {**variables, "messages": marked},
                               limits=limits, cancel=cancel)

    system = str(messages[0].get("content", "")) if messages and messages[0].get(
        "role") == "system" else ""
    try:
        text = run(messages)
    except TemplateError as exc:
        if exc.kind != "raised" or not system:
            raise
        try:  # a refusal, perhaps of the system role: try it folded into the first user turn
            text = run(fold_system_message(messages))
        except TemplateError:
            raise exc from None  # refused for another reason: report the original refusal
        return _finish(text, [SYSTEM_FOLDED_NOTE])
    if system.strip() and system.strip() not in text:
        # Some templates skip roles they do not know (older Phi-3 ones drop "system").
        try:
            folded = run(fold_system_message(messages))
        except TemplateError:
            return _finish(text)
        if system.strip() in folded:
            return _finish(folded, [SYSTEM_FOLDED_NOTE])
    return _finish(text)

