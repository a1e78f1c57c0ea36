"""Real Openlid databases for the damaged-database tests, and the ways they get damaged: garbage,
cut short, or one page of the `messages` table overwritten.

`populate` writes through the real stores (conversations with a branch and saved steps, library
records, a hidden model, a download job), so the file has today's schema and page layout.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
from pathlib import Path

from desktop.core.conversations.store import ConversationStore
from desktop.core.downloads.store import JobFile, JobStore
from desktop.core.library.store import LibraryStore, ModelRecord
from desktop.core.steps import StageView, StepRecord

CONVERSATIONS = 40
MESSAGES_EACH = 12  # two of them a branch: an edited question and its reply
MARK = "needle-{c}-{m}"


def step(i: int) -> StepRecord:
    stage = StageView("raw", 262_144, 1.0, (10 + i, 7), (0.75, 0.25))
    return StepRecord(step=i, token_id=10 + i, text="tok", piece="tok", prob=0.75,
                      raw_prob=0.75, raw_rank=1, entropy_raw=0.8, entropy_final=0.8,
                      stages=(stage,), pieces={10 + i: "tok", 7: "x"}, n_vocab=262_144,
                      position=i)


def populate(path: Path) -> Path:
    """A database at `path` as weeks of use leave it; returns `path`."""
    with ConversationStore(path) as store:
        for c in range(CONVERSATIONS):
            conv = store.create(f"Conversation {c}")
            for m in range(MESSAGES_EACH - 2):
                role = "user" if m % 2 == 0 else "assistant"
                msg = store.append(conv.id, role, f"{MARK.format(c=c, m=m)} " + "words " * 40)
                if m == 3:
                    store.save_steps(msg.id, [step(i) for i in range(4)])
            question = store.messages(conv.id)[-2]
            edited = store.edit_message(question.id, f"{MARK.format(c=c, m='edit')} again")
            store.add_message(conv.id, "assistant", "another reply", parent_id=edited.id)
    with LibraryStore(path) as library:
        for i in range(3):
            library.put(f"/models/m{i}.gguf", ModelRecord("imported", 1000 + i, 5, {"name": i}))
        library.forget("/models/hidden.gguf", hide=True)
    jobs = JobStore(path)
    jobs.insert("org/repo", "abc123", "/models", [JobFile("a.gguf", 10), JobFile("b.gguf", 20)])
    jobs.close()
    return path


def checkpoint(path: Path) -> None:
    """Everything into the main file (no -wal left), as after a clean exit."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def make_garbage(path: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(64 * 1024))


def truncate(path: Path, fraction: float = 0.5) -> None:
    checkpoint(path)
    os.truncate(path, int(path.stat().st_size * fraction))


def page_holding(path: Path, text: str) -> int:
    """The 1-based page number of the table leaf page that holds `text`."""
    data = path.read_bytes()
    size = int.from_bytes(data[16:18], "big")
    offset = data.find(text.encode())
    while offset >= 0:  # a stale copy may sit in a free page: take the first leaf page's
        page = offset // size + 1
        if data[(page - 1) * size] == 0x0D:
            return page
        offset = data.find(text.encode(), offset + 1)
    raise AssertionError(f"no table leaf page holds {text!r}")


def break_page(path: Path, text: str) -> int:
    """Overwrite the messages leaf page holding `text` with garbage; returns its number."""
    checkpoint(path)
    size = int.from_bytes(path.read_bytes()[16:18], "big")
    page = page_holding(path, text)
    with path.open("r+b") as f:
        f.seek((page - 1) * size)
        f.write(random.Random(page).randbytes(size))
    return page


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
