"""Chat prompts for the CLI (`generate --chat`, `template`): the same template code the GUI uses.

No Qt. Runs on the CLI's main thread.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from desktop.core import paths
from desktop.core.loading import ModelInfo
from desktop.core.prompt import (
    PromptTemplate,
    RenderedPrompt,
    TemplateError,
    build_messages,
    choose_template,
    find_template,
    presets,
    render_prompt,
)
from desktop.core.template_store import TemplateStore

PromptPieces = tuple[tuple[str, bool], ...]


def pick_template(template_id: str | None, info: ModelInfo) -> PromptTemplate:
    if not template_id:
        return choose_template(info.chat_templates, info.architecture, info.name)
    custom = TemplateStore(paths.templates_dir()).templates()
    return find_template(template_id, model_templates=info.chat_templates, custom=custom)


def render_chat(args: argparse.Namespace, info: ModelInfo) -> tuple[PromptTemplate, RenderedPrompt]:
    template = pick_template(getattr(args, "template", None), info)
    messages = build_messages(args.system or "", "", [], args.user)
    rendered = render_prompt(
        template, messages, add_generation_prompt=True,
        bos_token=info.bos.text if info.bos else None,
        eos_token=info.eos.text if info.eos else None,
    )
    return template, rendered


def render_chat_prompt(args: argparse.Namespace, info: ModelInfo) -> PromptPieces:
    """The prompt pieces for `generate --chat`; raises TemplateError or KeyError."""
    _, rendered = render_chat(args, info)
    return pieces(rendered)


def pieces(rendered: RenderedPrompt) -> PromptPieces:
    return tuple((seg.text, seg.trusted) for seg in rendered.segments)


def add_template_parser(sub: Any) -> None:
    p = sub.add_parser(
        "template", help="show the template a model gets and the exact prompt it receives"
    )
    p.add_argument("--model", help="GGUF file (default: the ready Gemma model)")
    p.add_argument("--template", help="template id (a preset, 'model', or a saved one)")
    p.add_argument("--system", default="", help="system prompt")
    p.add_argument("--user", default="Hello!", help="the user's message")
    p.add_argument("--list", action="store_true", help="list the template ids and exit")
    p.add_argument("--json", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--ctx", type=int, default=4096)
    p.add_argument("--gpu-layers", type=int, default=0)


def cmd_template(args: argparse.Namespace, model_path: str, load_settings: Any) -> int:
    from desktop.engine import protocol as P
    from desktop.engine.host import EngineHost

    if args.list:
        for tid, t in presets().items():
            print(f"{tid:20} {t.name}")
        for t in TemplateStore(paths.templates_dir()).templates():
            print(f"{t.id:20} {t.name} (saved)")
        return 0
    host = EngineHost()
    try:
        events = list(host.wait(host.load(model_path, load_settings), timeout=600))
        loaded = events[-1]
        if not isinstance(loaded, P.Loaded):
            print(f"openlid: {getattr(loaded, 'message', None) or loaded}", file=sys.stderr)
            return 2
        info = loaded.info
        try:
            template, rendered = render_chat(args, info)
        except (TemplateError, KeyError) as exc:
            print(f"openlid: template: {exc}", file=sys.stderr)
            return 2
        answer = list(host.wait(host.tokenize(pieces(rendered)), timeout=60))[-1]
        assert isinstance(answer, P.Tokenized)
        if args.json:
            print(json.dumps({
                "template": {"id": template.id, "name": template.name,
                             "source": template.source},
                "prompt": rendered.text,
                "segments": [{"text": s.text, "trusted": s.trusted} for s in rendered.segments],
                "tokens": list(answer.tokens),
                "pieces": list(answer.pieces),
                "token_count": len(answer.tokens),
                "n_ctx": info.n_ctx,
                "notes": list(rendered.notes),
            }, ensure_ascii=False, indent=2))
            return 0
        print(f"template: {template.name} ({template.source}, id {template.id})")
        for note in rendered.notes:
            print(f"note: {note}")
        print(f"--- prompt: {len(answer.tokens)} tokens of {info.n_ctx} ---")
        print(rendered.text, end="" if rendered.text.endswith("\n") else "\n")
        print("--- tokens ---")
        print(" ".join(f"[{p}]" for p in answer.pieces))
        return 0
    finally:
        host.shutdown()
