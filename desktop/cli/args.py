"""The flags verbs share — which model and how it loads, every sampler knob — and the settings
they become (`LoadSettings`, `SamplerSettings`). The sampler flags come from the stage registry
(core.sampler_stages), so a stage added there is a flag here. No Qt, no inference library.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from desktop.core.model_info import FLASH_ATTN_MODES, LoadSettings
from desktop.core.sampling import SamplerSettings


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="GGUF file or remote:<id> (default: the ready Gemma model)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads (0 = automatic: $OPENLID_THREADS, else all cores)")
    p.add_argument("--ctx", type=int, default=4096, help="context length in tokens")
    p.add_argument("--gpu-layers", type=int, default=-2,
                   help="layers to offload (-2 = auto: as many as fit in free VRAM, -1 = all)")
    add_flash_attn_arg(p)
    from desktop.cli.draft import add_draft_args

    add_draft_args(p)


def add_flash_attn_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--flash-attn", choices=FLASH_ATTN_MODES, default="auto",
                   help="flash attention (default auto, llama.cpp's own: on where every "
                        "layer's device has the kernel)")


def add_sampler_args(p: argparse.ArgumentParser) -> None:
    """Every sampler knob as a flag, from the stage registry (`--top-k`, `--dry-multiplier`…)."""
    from desktop.core.sampler_stages import STAGE_PARAMS

    d = SamplerSettings()
    for param in STAGE_PARAMS:
        if not param.is_number:
            continue
        words = f"{param.label}: {param.range_words()}" + (f", {param.off}" if param.off else "")
        extra: dict[str, Any] = {"choices": range(len(param.choices))} if param.choices else {}
        p.add_argument(param.cli_flag, type=int if param.is_int else float,
                       default=getattr(d, param.field), help=words, **extra)
    p.add_argument("--dry-sequence-breaker", action="append", default=None,
                   dest="dry_sequence_breakers", metavar="TEXT",
                   help="DRY sequence breaker (repeatable; replaces the defaults "
                        "\\n : \" *; '' for none)")
    p.add_argument("--seed", type=int, default=None, help="fixed seed (default: random)")
    p.add_argument("--max-tokens", type=int, default=d.max_tokens)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--order", default=",".join(d.order),
                   help="sampler stage order (llama-server's names work too)")
    p.add_argument("--top-n", type=int, default=d.top_n, help="candidates kept per stage")
    from desktop.cli.structured import add_structured_args

    add_structured_args(p)


def model_path(args: argparse.Namespace) -> Path:
    if args.model:
        return Path(args.model)
    from desktop.core.ready_model import ready_model_path

    return ready_model_path()


def load_settings(args: argparse.Namespace) -> LoadSettings:
    from desktop.cli.draft import draft_fields

    return LoadSettings(
        n_gpu_layers=args.gpu_layers, n_ctx=args.ctx, n_threads=args.threads,
        flash_attn=getattr(args, "flash_attn", "auto"),  # verbs that only tokenize lack it
        **draft_fields(args),
    ).validated()


def sampler_settings_from_args(args: argparse.Namespace) -> SamplerSettings:
    from desktop.cli.structured import structured_from_args
    from desktop.core.sampler_stages import SAMPLER_NAMES, STAGE_PARAMS, complete_order

    values = {p.field: getattr(args, p.field) for p in STAGE_PARAMS if p.is_number}
    if args.dry_sequence_breakers is not None:
        values["dry_sequence_breakers"] = tuple(b for b in args.dry_sequence_breakers if b)
    names = [s.strip() for s in args.order.split(",") if s.strip()]
    order = tuple(SAMPLER_NAMES.get(n.lower(), n) for n in names)
    settings = SamplerSettings(
        **values, seed=SamplerSettings().seed if args.seed is None else args.seed,
        max_tokens=args.max_tokens, stop=tuple(args.stop), order=order, top_n=args.top_n,
        **structured_from_args(args),
    ).validated()
    # Stages the order leaves out are off (validated says so otherwise): put them in their place.
    return settings.replace(order=complete_order(settings.order))
