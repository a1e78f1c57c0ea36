"""Documents in the prompt against the real engine: each retrieved chunk is a piece of its own,
so the X-ray counts its tokens exactly, and the parts add up to the prompt's token count;
`openlid chat --attach` retrieves per turn and says so with --xray."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from desktop.core.conversations import xray as X
from desktop.core.conversations.store import ConversationStore
from desktop.core.documents import prompt as D
from desktop.core.documents.extract import read_document
from desktop.core.documents.retrieval import retrieve
from desktop.core.documents.store import DocumentStore
from desktop.core.sampling import SamplerSettings
from desktop.core.templates.prompt import build_messages, presets, render_prompt
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from tests.unit.test_documents import TOPICS, long_text

GREEDY = SamplerSettings(temperature=0.0, max_tokens=4, seed=1)
QUESTION = "How long does the second stage engine burn?"


def _tokens(host: EngineHost, pieces: P.PromptPieces, add_bos: bool = False) -> int:
    answer = list(host.wait(host.tokenize(pieces, add_bos), timeout=60))[-1]
    assert isinstance(answer, P.Tokenized), answer
    return len(answer.tokens)


def test_retrieved_chunks_are_counted_exactly(engine: EngineHost, tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    (tmp_path / "corpus.md").write_text(long_text(), encoding="utf-8")
    (tmp_path / "note.txt").write_text("The door code is 4417.", encoding="utf-8")
    with ConversationStore(db) as conversations, DocumentStore(db) as docs:
        cid = conversations.create("c").id
        for name in ("corpus.md", "note.txt"):
            docs.attach(cid, read_document(tmp_path / name))
        excerpts = retrieve(docs, cid, QUESTION)
    assert TOPICS["rocket"] in excerpts[1].text
    assert excerpts[0].whole
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    block = D.compose(excerpts, QUESTION)
    messages = build_messages(
        "Be brief.", "", [*history, {"role": "user", "content": block.content}]
    )
    rendered = render_prompt(presets()["gemma"], messages, bos_token="<bos>", eos_token="<eos>")
    pieces = D.split_pieces(tuple((s.text, s.trusted) for s in rendered.segments), block.segments())
    assert "".join(t for t, _ in pieces) == rendered.text  # cut, nothing changed
    kept = [(history[0], 1, 11), (history[1], 1, 12), (messages[-1], 2, 13)]
    sent = X.sent_messages(
        messages, kept, system_prompt="Be brief.", instructions="", documents=block.spans
    )
    labels = X.label_pieces(pieces, sent)
    done = None
    for event in engine.wait(engine.generate(pieces, GREEDY), timeout=120):
        if isinstance(event, P.Done):
            done = event.result
    assert done is not None
    usage = done.usage
    assert usage.prompt_tokens == _tokens(engine, pieces, add_bos=True)
    record = X.make_record(
        pieces,
        labels,
        prompt_tokens=usage.prompt_tokens,
        piece_tokens=usage.piece_tokens,
        cached_tokens=usage.cached_tokens,
        prompt_ms=done.timings.prompt_ms,
    )
    turn = X.read_record(1, 2, {"xray": record}, {11: "Hi", 12: "Hello.", 13: QUESTION})
    assert sum(p.tokens for p in turn.parts) == usage.prompt_tokens
    docs_parts = [p for p in turn.parts if p.kind == X.DOCUMENT]
    assert [p.doc[0] if p.doc else None for p in docs_parts] == [
        None,
        "note.txt",
        *(e.file for e in excerpts[1:]),
        None,
    ]
    for part, excerpt in zip(docs_parts[1:-1], excerpts, strict=True):
        assert part.exact
        assert part.text == D.excerpt_text(excerpt)
        assert part.tokens == _tokens(engine, ((part.text, False),))  # the engine's own count
        assert part.doc == (excerpt.file, excerpt.page, excerpt.score)
    new = [p for p in turn.parts if p.kind == X.NEW]
    assert "".join(p.text for p in new) == QUESTION  # the stored message, not the block
    assert turn.by_category()[X.DOCUMENT] == sum(p.tokens for p in docs_parts)
    assert any("corpus.md (BM25" in line for line in X.describe(turn))


def test_cli_chat_attach_prints_the_chunks_retrieved(gemma_path: Path, tmp_path: Path) -> None:
    (tmp_path / "corpus.md").write_text(long_text(), encoding="utf-8")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")
    base = [
        sys.executable,
        "-m",
        "desktop",
        "chat",
        "--model",
        str(gemma_path),
        "--temperature",
        "0",
        "--max-tokens",
        "4",
        "--xray",
    ]
    out = subprocess.run(
        [*base, "--attach", str(tmp_path / "corpus.md")],
        input=f"{QUESTION}\nWhat is fed to the sourdough starter?\n",
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"[attached corpus.md: {len(TOPICS)} chunks" in out.stdout
    turns = out.stdout.split(" generated, ")
    assert len(turns) == 3
    first = [ln for ln in turns[1].splitlines() if "x-ray: document corpus.md" in ln]
    second = [ln for ln in turns[2].splitlines() if "x-ray: document corpus.md" in ln]
    assert first
    assert second
    assert "BM25" in first[0]
    refused = subprocess.run(
        [*base, "--attach", str(tmp_path / "broken.pdf")],
        input="",
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    assert refused.returncode == 2
    assert "cannot attach broken.pdf" in refused.stderr
    assert "PDF" in refused.stderr
