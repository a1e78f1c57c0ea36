"""`openlid chat`: an interactive chat in the terminal over the same conversation core as the app.

The model remembers nothing between replies: every turn the system prompt, the whole history
and the new message are rendered through the template (`desktop.core.templates.prompt`) and
sent again.
History is kept in a `ConversationStore` (the app's database), so a terminal chat shows up in the
app too. Commands: `/system TEXT`, `/template ID|FILE`, `/save [PATH]`, `/quit` (or end of input).

`--without PART` (system, instructions, documents, turn:N) re-scores each reply teacher-forced
without that part of its prompt (`core.conversations.ablation`, the engine's rescore request)
and prints how much less likely the same reply became and the tokens most affected.

No Qt. Runs on the CLI's main thread, reading stdin line by line; inference runs in the engine's
child process behind EngineHost.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from desktop.cli.prompts import pick_template, pieces, render_for
from desktop.core import paths
from desktop.core.conversations import ablation as A
from desktop.core.conversations import xray as X
from desktop.core.conversations.files import export_json, export_markdown
from desktop.core.conversations.store import ConversationStore
from desktop.core.documents import prompt as D
from desktop.core.documents.extract import Document, DocumentError, read_document
from desktop.core.documents.retrieval import retrieve
from desktop.core.documents.store import DocumentStore
from desktop.core.documents.vectors import Embed, EmbeddingError, EmbeddingModel
from desktop.core.generation import resolve_seed
from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.sampling import SamplerSettings
from desktop.core.stop_matcher import StopMatcher
from desktop.core.templates.prompt import PromptTemplate, TemplateError, build_messages
from desktop.remote import entries

HELP = "commands: /system TEXT, /template ID|FILE, /save [PATH.md|PATH.json], /quit"
WITHOUT_PARTS = "system, instructions, documents or turn:N"


def parse_without(spec: str) -> str:
    """A `--without` value checked: "system", "instructions", "documents" or "turn:N" (N ≥ 1);
    ValueError in words otherwise."""
    value = spec.strip().lower()
    if value in ("system", "instructions", "documents"):
        return value
    name, _, number = value.partition(":")
    if name == "turn" and number.isdigit() and int(number) >= 1:
        return f"turn:{int(number)}"
    raise ValueError(f"--without {spec!r}: name a part of the prompt: {WITHOUT_PARTS}")


def without_target(spec: str, turn: X.TurnXray) -> A.Target:
    """The part `spec` (checked by parse_without) names in this reply's prompt; AblationError
    when the prompt has none."""
    if spec.startswith("turn:"):
        number = int(spec[5:])
        if number >= turn.turn:
            raise A.AblationError(f"turn {number} is not an earlier turn of this reply's prompt "
                                  f"(the reply is turn {turn.turn})")
        return A.Target(X.HISTORY, number)
    kind = {"system": X.SYSTEM, "instructions": X.INSTRUCTIONS, "documents": X.DOCUMENT}[spec]
    found = [t for t in A.targets(turn) if t.kind == kind]
    if not found:
        raise A.AblationError(f"the prompt of turn {turn.turn} has no {A.Target(kind).name}")
    return found[-1]  # documents: the excerpts sent with this message


class TerminalChat:
    """One conversation: its store row, template and the engine that answers."""

    def __init__(self, host: Any, info: ModelInfo, store: ConversationStore,
                 template: PromptTemplate, settings: SamplerSettings, system: str,
                 out: TextIO, show_prompt: bool = False, xray: bool = False,
                 attachments: tuple[Document, ...] = (), without: str | None = None,
                 embed: Embed | None = None) -> None:
        self.host = host
        self.embed = embed  # --embedding-model: chunks chosen by meaning, not keywords
        self.info = info
        self.store = store
        self.template = template
        self.settings = settings
        self.out = out
        self.show_prompt = show_prompt
        self.xray = xray  # print each turn's parts and KV-cache reuse (--xray)
        self.last_xray: X.TurnXray | None = None
        self.without = without  # re-score each reply without this part (--without)
        self.last_ablation: A.Ablation | None = None
        self.conversation = store.create(
            "Terminal chat", model_path=info.path, system_prompt=system,
            template_id=template.id, sampler=settings)
        with DocumentStore(store.path) as docs:
            for document in attachments:
                d = docs.attach(self.conversation.id, document)
                self.say(f"[attached {d.name}: " + ("sent whole with every message]" if d.whole
                         else f"{d.chunks} chunks, the most relevant sent with each message]"))

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def command(self, line: str) -> bool:
        """Run a /command; False when the chat should end."""
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        cid = self.conversation.id
        if name == "/quit":
            return False
        if name == "/system":
            self.conversation = self.store.update(cid, system_prompt=rest)
            self.say("[system prompt set]" if rest else "[system prompt cleared]")
        elif name == "/template":
            try:
                self.template = pick_template(rest or None, self.info)
            except (KeyError, OSError) as exc:
                self.say(f"[template: {exc}]")
                return True
            self.conversation = self.store.update(cid, template_id=self.template.id)
            self.say(f"[template: {self.template.name} ({self.template.id})]")
        elif name == "/save":
            self.save(rest)
        else:
            self.say(f"[unknown command {name}; {HELP}]")
        return True

    def save(self, target: str) -> None:
        cid = self.conversation.id
        if not target:
            self.say(f"[conversation {cid} is saved in {self.store.path}]")
            return
        path = Path(target).expanduser()
        try:
            if path.suffix.lower() in (".md", ".markdown"):
                path.write_text(export_markdown(self.store, cid), encoding="utf-8")
            else:
                data = export_json(self.store, cid)
                path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n",
                                encoding="utf-8")
        except OSError as exc:
            self.say(f"[save failed: {exc}]")
            return
        self.say(f"[conversation {cid} exported to {path}]")

    def turn(self, user_text: str) -> None:
        """Render everything so far plus `user_text`, stream the reply, store both."""
        from desktop.engine import protocol as P

        cid = self.conversation.id
        history = self.store.active_path(cid)
        with DocumentStore(self.store.path) as docs:
            try:
                excerpts = retrieve(docs, cid, user_text, embed=self.embed)
            except EmbeddingError as exc:  # said, then searched by keywords as before
                self.say(f"[{exc}; searching by keywords (BM25) instead]")
                self.embed = None
                excerpts = retrieve(docs, cid, user_text)
            block = D.compose(excerpts, user_text)
        messages = build_messages(self.conversation.system_prompt,
                                  self.conversation.custom_instructions, history, block.content)
        try:
            rendered = render_for(self.template, messages, self.info)
        except TemplateError as exc:
            self.say(f"[template error: {exc}]")
            return
        for note in rendered.notes:
            self.say(f"[note: {note}]")
        if self.show_prompt:
            self.say("--- prompt ---")
            self.say(rendered.text)
            self.say("--- end of prompt ---")
        user = self.store.append(cid, "user", user_text)
        sent = D.split_pieces(pieces(rendered), block.segments())
        labels = _labels(self.conversation, history, messages, sent, user.id, block)
        # A random seed is drawn here, so the stored reply names the seed it was sampled with.
        settings = resolve_seed(
            self.settings.replace(stop=(*self.settings.stop, *self.template.stop)))
        stops = StopMatcher(settings.stop)
        done = None
        tokens: list[int] = []  # the reply's own tokens, re-scored by --without
        request = self.host.generate(sent, settings)
        try:
            for event in self.host.wait(request):
                if isinstance(event, P.Step):
                    tokens.append(event.record.token_id)
                    stops.feed(event.record.text)
                    self.out.write(stops.releasable())
                    self.out.flush()
                elif isinstance(event, P.Done):
                    done = event.result
                else:
                    self.say(f"\n[engine: {getattr(event, 'message', None) or event}]")
                    return
        except KeyboardInterrupt:  # Ctrl-C stops this reply, not the chat
            self.host.cancel()
            for event in self.host.wait(request, timeout=30):
                if isinstance(event, P.Done):
                    done = event.result
        reply = done.text if done is not None else stops.text()
        self.say(stops.releasable())
        meta: dict[str, Any] = {"model": self.info.path, "template": self.template.id,
                                "sampler": settings.to_json()}
        if done is not None:
            usage = done.usage
            meta.update(finish_reason=done.finish_reason,
                        usage={"prompt_tokens": usage.prompt_tokens,
                               "completion_tokens": usage.completion_tokens},
                        prompt_tokens=usage.prompt_tokens, cached_tokens=usage.cached_tokens,
                        prompt_ms=round(done.timings.prompt_ms, 3),
                        xray=X.make_record(sent, labels,
                                           prompt_tokens=usage.prompt_tokens,
                                           piece_tokens=usage.piece_tokens,
                                           cached_tokens=usage.cached_tokens,
                                           prompt_ms=done.timings.prompt_ms,
                                           n_ctx=self.info.n_ctx))
            self.say(f"[{usage.prompt_tokens} prompt tokens, "
                     f"{usage.completion_tokens} generated, {done.finish_reason}]")
        reply_message = self.store.append(cid, "assistant", reply, meta=meta)
        if not (self.xray or self.without):
            return
        turn = X.read_record(reply_message.id, max((lb.turn for lb in labels), default=0),
                             meta, {m.id: m.content for m in self.store.active_path(cid)})
        if self.xray:
            for line in X.describe(turn, self.last_xray):
                self.say(f"[x-ray: {line}]")
            self.last_xray = turn
        if self.without and done is not None:
            self.rescore(turn, tuple(tokens))

    def rescore(self, turn: X.TurnXray, tokens: tuple[int, ...]) -> None:
        """The reply's tokens scored teacher-forced with and without the --without part."""
        from desktop.engine import protocol as P

        assert self.without is not None
        try:
            target = without_target(self.without, turn)
            whole, ablated = A.prompt_pieces(turn), A.ablated_pieces(turn, target)
        except A.AblationError as exc:
            self.say(f"[without: cannot remove it: {exc}]")
            return
        if not tokens:
            self.say("[without: the reply has no tokens to score]")
            return
        request = self.host.rescore(whole, ablated, tokens)
        for event in self.host.wait(request, timeout=600):
            if isinstance(event, P.Rescored):
                self.last_ablation = A.Ablation(target, event.full, event.ablated)
                self.say(f"[without: {self.last_ablation.summary()} ({A.BASIS})]")
                return
            if not isinstance(event, P.Step):
                self.say(f"[without: the engine could not re-score the reply: "
                         f"{getattr(event, 'message', None) or event}]")
                return


def _labels(conversation: Any, history: list[Any], messages: list[dict[str, str]],
            sent_pieces: Any, user_id: int, block: D.Block) -> tuple[X.PieceLabel, ...]:
    """Where each piece of this turn's prompt came from (the history and the new message)."""
    chats = [m for m in history if m.role != "system"]
    numbers = X.turn_numbers([*(m.role for m in chats), "user"])
    kept = [*((m.to_chat(), n, m.id) for m, n in zip(chats, numbers, strict=False)),
            (messages[-1], numbers[-1], user_id)]
    sent = X.sent_messages(messages, kept, system_prompt=conversation.system_prompt,
                           instructions=conversation.custom_instructions,
                           documents=block.spans)
    return X.label_pieces(sent_pieces, sent)


def run_chat(args: argparse.Namespace, model_path: Path, load: LoadSettings,
             settings: SamplerSettings, stdin: TextIO | None = None,
             out: TextIO | None = None) -> int:
    from desktop.engine import protocol as P
    from desktop.engine.host import EngineHost

    stdin = stdin or sys.stdin
    out = out or sys.stdout
    without = args.without
    try:  # a part that cannot be named is said before the model loads
        without = parse_without(without) if without else None
    except ValueError as exc:
        print(f"openlid: {exc}", file=sys.stderr)
        return 2
    attachments = []
    for name in getattr(args, "attach", None) or ():
        try:  # read before the model loads: a file that cannot be used is said at once
            attachments.append(read_document(Path(name).expanduser()))
        except DocumentError as exc:
            print(f"openlid: cannot attach {exc}", file=sys.stderr)
            return 2
    embedding_model = getattr(args, "embedding_model", None)
    try:  # a missing embedding model is said before the model loads
        if embedding_model:
            EmbeddingModel.of(Path(embedding_model).expanduser())
    except EmbeddingError as exc:
        print(f"openlid: {exc}", file=sys.stderr)
        return 2
    # Opened before the model loads, so a damaged database (DatabaseDamaged, put into words by
    # `openlid`'s main) is said at once, not after a long load.
    store = ConversationStore(paths.database_path())
    host = EngineHost()
    try:
        loaded = list(host.wait(host.load(model_path, load), timeout=600))[-1]
        if not isinstance(loaded, P.Loaded):
            reason = getattr(loaded, "message", None) or getattr(loaded, "reason", loaded)
            print(f"openlid: {reason}", file=sys.stderr)
            return 2
        info = loaded.info
        try:
            template = pick_template(args.template, info)
        except (KeyError, OSError) as exc:
            print(f"openlid: template: {exc}", file=sys.stderr)
            return 2
        chat = TerminalChat(host, info, store, template, settings, args.system or "", out,
                            show_prompt=args.show_prompt, xray=getattr(args, "xray", False),
                            attachments=tuple(attachments), without=without,
                            embed=_engine_embed(host, embedding_model) if embedding_model else None)
        chat.say(f"[{_model_label(info, str(model_path))}, template {template.name}; {HELP}]")
        return _loop(chat, stdin)
    finally:
        host.shutdown()
        store.close()


def _engine_embed(host: Any, path: str) -> Embed:
    from desktop.engine.embed_client import EngineEmbed

    return EngineEmbed(host, Path(path).expanduser())


def _loop(chat: TerminalChat, stdin: TextIO) -> int:
    interactive = stdin.isatty()
    while True:
        if interactive:
            chat.out.write("> ")
            chat.out.flush()
        try:
            line = stdin.readline()
        except KeyboardInterrupt:
            chat.say("")
            return 0
        if not line:  # end of input (Ctrl-D)
            return 0
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if line.startswith("/"):
            if not chat.command(line):
                return 0
        else:
            chat.turn(line)


def _model_label(info: ModelInfo, path: str) -> str:
    """What the chat's first line calls the model: a remote entry by the name it was given."""
    if entries.is_remote_path(path):
        try:
            return entries.resolve(path).display_name
        except entries.RemoteModelError:
            pass  # removed meanwhile: its id will do
    return info.name or Path(path).name
