"""Chat prompts for the CLI: `openlid template list|render` and `generate --chat`.

The same template code the GUI uses (`desktop.core.templates.prompt`), so what this prints is
exactly what the app would send. No Qt. Runs on the CLI's main thread; the engine (for token
counts) is a child process behind EngineHost.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from desktop.core import paths
from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.templates.prompt import (
    PromptTemplate,
    RenderedPrompt,
    TemplateError,
    build_messages,
    choose_template,
    find_template,
    model_templates_of,
    presets,
    render_prompt,
)
from desktop.core.templates.store import TemplateStore
from desktop.remote.entries import is_remote_path

PromptPieces = tuple[tuple[str, bool], ...]
EXIT_BAD_INPUT = 2

# Control-token texts of the built-in presets and common published templates. A model's own
# special tokens (bos/eos/eot and the pieces its tokenizer reports) are added to these.
KNOWN_MARKERS = (
    "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<|im_start|>", "<|im_end|>",
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eot_id|>", "<s>", "</s>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<|user|>",
    "<|assistant|>", "<|system|>", "<|end|>", "<|endoftext|>",
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
)
# Token pieces shaped like a control token: "<name>" or "<|name|>", no spaces.
_MARKER_PIECE = re.compile(r"^(<\|[^\s<>|]{1,48}\|>|<[^\s<>]{1,48}>)$")


def custom_templates() -> list[PromptTemplate]:
    return TemplateStore(paths.templates_dir()).templates()


def template_from_arg(value: str, model_templates: Mapping[str, str] | None = None
                      ) -> PromptTemplate:
    """A preset id, a model template id, a saved template id, or a path to a .jinja file.
    KeyError if none; OSError if the file cannot be read."""
    path = Path(value).expanduser()
    if value.endswith(".jinja") or (path.suffix and path.is_file()):
        return PromptTemplate(id=str(path), name=path.stem, source="custom",
                              text=path.read_text(encoding="utf-8"))
    return find_template(value, model_templates=model_templates, custom=custom_templates())


def pick_template(template_id: str | None, info: ModelInfo) -> PromptTemplate:
    if not template_id:
        return choose_template(info.chat_templates, info.architecture, info.name)
    return template_from_arg(template_id, info.chat_templates)


def render_chat(args: argparse.Namespace, info: ModelInfo) -> tuple[PromptTemplate, RenderedPrompt]:
    template = pick_template(getattr(args, "template", None), info)
    messages = build_messages(args.system or "", "", [], args.user)
    return template, render_for(template, messages, info)


def render_for(template: PromptTemplate, messages: list[dict[str, str]],
               info: ModelInfo | None, *, add_generation_prompt: bool = True) -> RenderedPrompt:
    """Render with the loaded model's own bos/eos texts (the template's guesses without one)."""
    return render_prompt(
        template, messages, add_generation_prompt=add_generation_prompt,
        bos_token=info.bos.text if info and info.bos else None,
        eos_token=info.eos.text if info and info.eos else None,
    )


def render_chat_prompt(args: argparse.Namespace, info: ModelInfo) -> PromptPieces:
    """The prompt pieces for `generate --chat`; raises TemplateError or KeyError."""
    _, rendered = render_chat(args, info)
    return pieces(rendered)


def pieces(rendered: RenderedPrompt) -> PromptPieces:
    return tuple((seg.text, seg.trusted) for seg in rendered.segments)


def special_spans(rendered: RenderedPrompt, markers: Iterable[str]) -> list[dict[str, Any]]:
    """Where control-token texts occur inside trusted (template) segments, as character offsets
    into `rendered.text`. Untrusted text is never searched: typed markers stay plain text."""
    ordered = sorted({m for m in markers if m}, key=len, reverse=True)  # longest match wins
    spans: list[dict[str, Any]] = []
    offset = 0
    for seg in rendered.segments:
        if seg.trusted:
            i = 0
            while i < len(seg.text):
                hit = next((m for m in ordered if seg.text.startswith(m, i)), None)
                if hit is None:
                    i += 1
                    continue
                spans.append({"start": offset + i, "end": offset + i + len(hit), "text": hit})
                i += len(hit)
        offset += len(seg.text)
    return spans


def model_markers(info: ModelInfo | None, token_pieces: Iterable[str] = ()) -> set[str]:
    found = set(KNOWN_MARKERS)
    if info is not None:
        found.update(t.text for t in (info.bos, info.eos, info.eot) if t is not None)
    found.update(p for p in token_pieces if _MARKER_PIECE.match(p))
    return found


# ---- argparse ------------------------------------------------------------------------------------


def add_template_parser(sub: Any) -> None:
    p = sub.add_parser("template", help="list templates, or show the exact prompt a model gets")
    tsub = p.add_subparsers(dest="template_verb", required=True)
    lp = tsub.add_parser("list", help="presets, the model's own templates, saved ones")
    lp.add_argument("--model", help="GGUF file whose own templates to list too")
    lp.add_argument("--json", action="store_true")

    rp = tsub.add_parser("render", help="print the exact prompt for a messages file")
    rp.add_argument("--model", help="GGUF file: its template, its tokens, the real token count")
    rp.add_argument("--template", help="preset id, saved template id, or a .jinja file")
    rp.add_argument("--messages", required=True,
                    help='JSON file: [{"role": ..., "content": ...}, ...]')
    rp.add_argument("--system", default=None, help="system prompt (replaces the file's)")
    rp.add_argument("--instructions", default="", help="custom instructions")
    rp.add_argument("--instructions-placement", choices=("system", "first_user"),
                    default="system")
    rp.add_argument("--no-generation-prompt", action="store_true",
                    help="do not open the assistant's turn at the end")
    rp.add_argument("--json", action="store_true")
    rp.add_argument("--threads", type=int, default=0)
    rp.add_argument("--ctx", type=int, default=4096)
    rp.add_argument("--gpu-layers", type=int, default=0)


def _fail(message: str) -> int:
    print(f"openlid: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def cmd_template(args: argparse.Namespace, load_settings: Callable[[], LoadSettings]) -> int:
    if args.template_verb == "list":
        return _cmd_list(args)
    return _cmd_render(args, load_settings)


def _cmd_list(args: argparse.Namespace) -> int:
    rows: list[PromptTemplate] = []
    if args.model and is_remote_path(args.model):
        return _fail(f"{args.model} is a remote endpoint: it carries no template of its own "
                     "(Openlid renders with a preset; `template list` without --model lists them)")
    if args.model:
        from desktop.core.gguf_file.check import GgufProblem, check_gguf

        try:
            rows += model_templates_of(check_gguf(args.model).chat_templates)
        except (GgufProblem, OSError) as exc:
            return _fail(f"{args.model}: {exc}")
    rows += [*presets().values(), *custom_templates()]
    if args.json:
        print(json.dumps([{"id": t.id, "name": t.name, "source": t.source} for t in rows],
                         ensure_ascii=False, indent=2))
        return 0
    for t in rows:
        print(f"{t.id:24} {t.name} ({t.source})")
    return 0


def read_messages(path: str) -> list[dict[str, str]]:
    """The messages file: a list of {role, content}, or {"messages": [...]}. ValueError/OSError."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = data.get("messages")
    if not isinstance(data, list):
        raise ValueError("expected a JSON list of {\"role\", \"content\"} objects")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "role" not in item or "content" not in item:
            raise ValueError(f"message {i}: needs \"role\" and \"content\"")
        if item["role"] not in ("system", "user", "assistant"):
            raise ValueError(f"message {i}: unknown role {item['role']!r}")
        out.append({"role": str(item["role"]), "content": str(item["content"])})
    return out


def _cmd_render(args: argparse.Namespace, load_settings: Callable[[], LoadSettings]) -> int:
    if not args.model and not args.template:
        return _fail("template render needs --model PATH or --template NAME|FILE")
    if args.model and is_remote_path(args.model):
        # The token count needs token ids, which an OpenAI-compatible endpoint never gives.
        return _fail(f"{args.model} is a remote endpoint: token counts need a local model file; "
                     "`--template NAME` without --model shows the exact prompt text")
    try:
        history = read_messages(args.messages)
    except (OSError, ValueError) as exc:
        return _fail(f"messages file {args.messages}: {exc}")
    system = args.system
    if system is None:
        system = next((m["content"] for m in history if m["role"] == "system"), "")
    messages = build_messages(system, args.instructions, history,
                              instructions_placement=args.instructions_placement)
    if not args.model:
        try:
            template = template_from_arg(args.template)
            rendered = render_for(template, messages, None,
                                  add_generation_prompt=not args.no_generation_prompt)
        except (TemplateError, KeyError, OSError) as exc:
            return _fail(f"template: {exc}")
        return _print_render(args, template, rendered, None, None)

    from desktop.engine import protocol as P
    from desktop.engine.host import EngineHost

    host = EngineHost()
    try:
        loaded = list(host.wait(host.load(args.model, load_settings()), timeout=600))[-1]
        if not isinstance(loaded, P.Loaded):
            return _fail(str(getattr(loaded, "message", None) or getattr(loaded, "reason", loaded)))
        info = loaded.info
        try:
            template = pick_template(args.template, info)
            rendered = render_for(template, messages, info,
                                  add_generation_prompt=not args.no_generation_prompt)
        except (TemplateError, KeyError, OSError) as exc:
            return _fail(f"template: {exc}")
        answer = list(host.wait(host.tokenize(pieces(rendered)), timeout=60))[-1]
        if not isinstance(answer, P.Tokenized):
            return _fail(str(getattr(answer, "message", answer)))
        args.parts = _parts(host, rendered, messages, len(answer.tokens), system,
                            args.instructions, args.instructions_placement)
        return _print_render(args, template, rendered, info, answer)
    finally:
        host.shutdown()


def _parts(host: Any, rendered: RenderedPrompt, messages: list[dict[str, str]], n_tokens: int,
           system: str, instructions: str, placement: str) -> list[tuple[str, int, int, bool]]:
    """The prompt's tokens per part (system prompt, instructions, each turn, template markup),
    each piece counted by the engine's tokenizer on its own: they add up to `n_tokens`."""
    from desktop.core.conversations import xray as X
    from desktop.engine import protocol as P

    sent_pieces = pieces(rendered)
    counts = []
    for piece in sent_pieces:
        answer = list(host.wait(host.tokenize((piece,), False), timeout=60))[-1]
        if not isinstance(answer, P.Tokenized):
            return []
        counts.append(len(answer.tokens))
    chats = [m for m in messages if m["role"] != "system"]
    numbers = X.turn_numbers([m["role"] for m in chats])
    sent = X.sent_messages(messages, [(m, n, None) for m, n in zip(chats, numbers, strict=True)],
                           system_prompt=system, instructions=instructions, placement=placement)
    record = X.make_record(sent_pieces, X.label_pieces(sent_pieces, sent),
                           prompt_tokens=n_tokens, piece_tokens=(n_tokens - sum(counts), *counts),
                           cached_tokens=0, prompt_ms=0.0)
    return X.part_rows(X.read_record(0, 0, {"xray": record}, {}).parts)


def _with_token_ids(spans: list[dict[str, Any]], answer: Any) -> list[dict[str, Any]]:
    """Add the engine's token id to each span whose text is one token piece (model loaded)."""
    if answer is None:
        return spans
    ids = dict(zip(answer.pieces, answer.tokens, strict=False))
    return [{**s, "token_id": ids[s["text"]]} if s["text"] in ids else s for s in spans]


def _print_render(args: argparse.Namespace, template: PromptTemplate, rendered: RenderedPrompt,
                  info: ModelInfo | None, answer: Any) -> int:
    token_pieces = tuple(answer.pieces) if answer is not None else ()
    if args.json:
        data: dict[str, Any] = {
            "template": {"id": template.id, "name": template.name, "source": template.source},
            "prompt": rendered.text,
            "segments": [{"text": s.text, "trusted": s.trusted} for s in rendered.segments],
            "special_spans": _with_token_ids(
                special_spans(rendered, model_markers(info, token_pieces)), answer),
            "notes": list(rendered.notes),
        }
        if answer is not None and info is not None:
            data.update(tokens=list(answer.tokens), pieces=list(token_pieces),
                        token_count=len(answer.tokens), n_ctx=info.n_ctx,
                        parts=[{"part": k, "turn": t, "tokens": n, "exact": e}
                               for k, t, n, e in getattr(args, "parts", [])])
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    if answer is not None and info is not None:
        print(f"template: {template.name} ({template.source}, id {template.id})",
              file=sys.stderr)
        print(f"prompt: {len(answer.tokens)} tokens of {info.n_ctx}", file=sys.stderr)
        from desktop.core.conversations.xray import part_name

        for kind, turn, n, exact in getattr(args, "parts", []):
            print(f"  {part_name(kind, turn)}: {'' if exact else '≈ '}{n} tokens",
                  file=sys.stderr)
    for note in rendered.notes:
        print(f"note: {note}", file=sys.stderr)
    # stdout holds the prompt and nothing else, byte for byte.
    sys.stdout.write(rendered.text)
    sys.stdout.flush()
    return 0
