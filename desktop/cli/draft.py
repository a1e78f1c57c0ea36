"""Speculative decoding on the command line: `--draft-model FILE`, `--draft ngram|model|none` and
`--draft-max N` for every verb that loads a model (generate, chat, compare, template, bench),
read into LoadSettings' draft fields. `openlid bench --draft` measures them (bench/draft.py).

Runs in the CLI process; imports no inference library.
"""

from __future__ import annotations

import argparse
from typing import Any

from desktop.core.drafting import DRAFT_KINDS, DRAFT_MODEL, DRAFT_NGRAM, DRAFT_NONE
from desktop.core.model_info import LoadSettings

AUTO = "auto"  # `--draft` alone: a draft model when one is named, else n-gram


def add_draft_args(p: argparse.ArgumentParser) -> None:
    d = LoadSettings()
    p.add_argument("--draft", nargs="?", const=AUTO, default=None,
                   choices=(*DRAFT_KINDS, AUTO),
                   help="speculative decoding: 'ngram' proposes the context's own continuations, "
                   "'model' a draft model's (--draft-model); the text is the model's either way. "
                   "With bench: measure tokens/s with and without it")
    p.add_argument("--draft-model", default=None, metavar="FILE",
                   help="a smaller GGUF with the same vocabulary that drafts for the model "
                   "(implies --draft model)")
    p.add_argument("--draft-max", type=int, default=d.n_draft, metavar="N",
                   help=f"tokens proposed per pass, at most (default {d.n_draft})")
    p.add_argument("--draft-p-min", type=float, default=d.draft_p_min, metavar="P",
                   help="a draft model stops at a token it gives less than P "
                   f"(default {d.draft_p_min})")


def draft_kind(args: argparse.Namespace) -> str:
    """The drafting the arguments ask for."""
    kind = getattr(args, "draft", None)
    model = getattr(args, "draft_model", None)
    if kind in (None, AUTO):
        if model:
            return DRAFT_MODEL
        return DRAFT_NGRAM if kind == AUTO else DRAFT_NONE
    return str(kind)


def draft_fields(args: argparse.Namespace) -> dict[str, Any]:
    """LoadSettings' draft fields from the arguments (none when the verb has no draft flags)."""
    if not hasattr(args, "draft_max"):
        return {}
    return {"draft": draft_kind(args), "draft_model": getattr(args, "draft_model", None) or "",
            "n_draft": args.draft_max, "draft_p_min": args.draft_p_min}
