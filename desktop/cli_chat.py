"""Chat prompts for `openlid generate --chat`: the same template code the GUI uses. No Qt."""

from __future__ import annotations

import argparse
from typing import Any


def render_chat_prompt(args: argparse.Namespace, info: Any) -> tuple[tuple[str, bool], ...]:
    from desktop.core.prompt import build_messages, choose_template, preset, render

    template = (
        preset(args.template)
        if args.template
        else choose_template(info.chat_templates, info.architecture, info.name)
    )
    messages = build_messages(args.system or "", "", [], args.user)
    bos = info.bos.text if info.bos else ""
    eos = info.eos.text if info.eos else ""
    rendered = render(template, messages, bos_token=bos, eos_token=eos, add_generation_prompt=True)
    return tuple((seg.text, seg.trusted) for seg in rendered.segments)
