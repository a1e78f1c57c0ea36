"""Openlid's one SQLite file damaged for real (garbage, cut short, a broken page): every store
says so in words (DatabaseDamaged), the damaged file is kept byte for byte, and recovery copies
what can still be read into a new file with today's schema. The file is private (0600)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from desktop.core import database, database_repair
from desktop.core.conversations.store import ConversationStore
from desktop.core.database import DatabaseDamaged
from desktop.core.downloads.store import JobStore
from desktop.core.library.store import LibraryStore
from tests import dbfaults
from tests.dbfaults import CONVERSATIONS, MARK, MESSAGES_EACH

ALL_MESSAGES = CONVERSATIONS * MESSAGES_EACH


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = dbfaults.populate(tmp_path_factory.mktemp("healthy") / "openlid.sqlite3")
    dbfaults.checkpoint(path)
    return path


@pytest.fixture
def db(healthy: Path, tmp_path: Path) -> Path:
    """A fresh copy of the populated database (a new inode: never checked in this process)."""
    path = tmp_path / "data" / "openlid.sqlite3"
    path.parent.mkdir()
    shutil.copyfile(healthy, path)
    return path


def _broken_page(path: Path) -> None:
    dbfaults.break_page(path, MARK.format(c=20, m=5) + " ")


DAMAGE: dict[str, Callable[[Path], None]] = {
    "garbage": dbfaults.make_garbage,
    "truncated": dbfaults.truncate,
    "broken page": _broken_page,
}
OPENERS: dict[str, Callable[[Path], object]] = {
    "conversations": ConversationStore,
    "library": LibraryStore,
    "downloads": JobStore,
}


# --- detection ---


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("opener", OPENERS)
def test_every_store_says_the_file_is_damaged_and_changes_nothing(
        db: Path, damage: str, opener: str) -> None:
    DAMAGE[damage](db)
    before = dbfaults.digest(db)
    with pytest.raises(DatabaseDamaged) as caught:
        OPENERS[opener](db)
    assert caught.value.path == db
    text = str(caught.value)
    assert text.startswith(f"Openlid's database {db} is damaged: ")
    assert ("not an SQLite database" if damage == "garbage" else "broken pages") in text
    assert dbfaults.digest(db) == before
    assert sorted(p.name for p in db.parent.iterdir() if "damaged" in p.name) == []


def test_damage_detail_tells_damage_from_other_errors() -> None:
    assert database.damage_detail(sqlite3.DatabaseError("file is not a database"))
    assert database.damage_detail(sqlite3.DatabaseError("database disk image is malformed"))
    assert database.damage_detail(sqlite3.OperationalError("database is locked")) is None
    assert database.damage_detail(sqlite3.OperationalError("no such table: x")) is None
    assert database.damage_detail(ValueError("malformed")) is None


def test_a_healthy_file_passes_and_an_empty_one_is_a_new_database(db: Path,
                                                                  tmp_path: Path) -> None:
    database.check(db)
    assert database_repair.count_rows(db)["messages"] == ALL_MESSAGES
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    database.check(empty)
    database.check(tmp_path / "missing.sqlite3")
    assert not (tmp_path / "missing.sqlite3").exists()


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_the_database_and_its_wal_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "openlid.sqlite3"
        store = ConversationStore(path)
        store.create("private")
        for name in ("openlid.sqlite3", "openlid.sqlite3-wal", "openlid.sqlite3-shm"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
        store.close()
        # A file an older Openlid left readable by others is made private at the next open.
        older = tmp_path / "older.sqlite3"
        shutil.copyfile(path, older)
        older.chmod(0o644)
        LibraryStore(older).close()
        assert stat.S_IMODE(older.stat().st_mode) == 0o600
    finally:
        os.umask(old)


# --- keeping the damaged file ---


def test_set_aside_never_overwrites_a_kept_file(db: Path) -> None:
    dbfaults.make_garbage(db)
    first = dbfaults.digest(db)
    kept = database_repair.set_aside(db, now=1_800_000_000)
    assert kept.name.startswith("openlid-damaged-")
    assert kept.suffix == ".sqlite3"
    assert dbfaults.digest(kept) == first
    assert not db.exists()
    db.write_bytes(b"second damaged file")
    again = database_repair.set_aside(db, now=1_800_000_000)  # the same second: a new name
    assert again != kept
    assert again.name.endswith("-2.sqlite3")
    assert dbfaults.digest(kept) == first
    assert again.read_bytes() == b"second damaged file"


def test_reset_keeps_the_file_and_starts_empty(db: Path) -> None:
    _broken_page(db)
    before = dbfaults.digest(db)
    report = database_repair.reset(db)
    assert report.kept is not None
    assert dbfaults.digest(report.kept) == before
    assert "A new, empty database" in report.summary()
    assert set(database_repair.count_rows(db).values()) == {0}
    with ConversationStore(db) as store:
        assert store.list_conversations() == []
        store.create("after the reset")


# --- recovering ---


def _check_usable(path: Path) -> None:
    """Every store opens the new file; every conversation's shown branch can be walked."""
    database.check(path)
    with ConversationStore(path) as store:
        for conversation in store.list_conversations():
            store.active_path(conversation.id)
        store.create("after recovery")
    LibraryStore(path).close()
    JobStore(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


def test_recover_a_broken_page_keeps_everything_else(db: Path) -> None:
    _broken_page(db)
    before = dbfaults.digest(db)
    report = database_repair.recover(db)
    assert report.kept is not None
    assert dbfaults.digest(report.kept) == before
    counts = report.counts()
    # One 4 KiB page of ~330-byte messages: a dozen lost, every other row back.
    assert ALL_MESSAGES - 20 < counts["messages"] < ALL_MESSAGES
    assert counts["conversations"] == CONVERSATIONS
    assert (counts["library_models"], counts["library_hidden"]) == (3, 1)
    assert (counts["download_jobs"], counts["download_files"]) == (1, 2)
    assert counts["message_steps"] >= CONVERSATIONS - 2
    summary = report.summary()
    assert f"of {ALL_MESSAGES:,} messages" in summary
    assert f"Could not be read: {ALL_MESSAGES - counts['messages']} messages" in summary
    assert str(report.kept) in summary
    _check_usable(db)
    with ConversationStore(db) as store:
        texts = {m.content.split(" ")[0] for c in store.list_conversations()
                 for m in store.messages(c.id)}
    assert MARK.format(c=0, m=0) in texts
    assert MARK.format(c=39, m="edit") in texts
    assert MARK.format(c=20, m=5) not in texts


def test_recover_a_truncated_file(db: Path) -> None:
    dbfaults.truncate(db, 0.6)
    report = database_repair.recover(db)
    counts = report.counts()
    assert 0 < counts["messages"] < ALL_MESSAGES
    assert counts["conversations"] > 0
    _check_usable(db)


def test_recover_garbage_gives_an_empty_usable_file(db: Path) -> None:
    dbfaults.make_garbage(db)
    before = dbfaults.digest(db)
    report = database_repair.recover(db)
    assert report.kept is not None
    assert dbfaults.digest(report.kept) == before
    assert set(report.counts().values()) == {0}
    assert "Nothing could be read" in report.summary()
    _check_usable(db)


def test_recover_reads_the_wal_and_keeps_it_beside_the_damaged_file(db: Path,
                                                                    tmp_path: Path) -> None:
    # A crash leaves recent rows only in the -wal: snapshot the files while a writer holds them.
    store = ConversationStore(db)
    store._conn.execute("PRAGMA wal_autocheckpoint=0")
    late = store.create("written just before the crash")
    store.append(late.id, "user", "only in the wal")
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for suffix in ("", "-wal"):
        shutil.copyfile(f"{db}{suffix}", crashed / f"openlid.sqlite3{suffix}")
    store.close()
    path = crashed / "openlid.sqlite3"
    wal = dbfaults.digest(crashed / "openlid.sqlite3-wal")
    report = database_repair.recover(path)
    assert report.kept is not None
    assert dbfaults.digest(Path(f"{report.kept}-wal")) == wal
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    with ConversationStore(path) as recovered:
        titles = [c.title for c in recovered.list_conversations()]
        assert "written just before the crash" in titles
        (row,) = [c for c in recovered.list_conversations()
                  if c.title == "written just before the crash"]
        assert [m.content for m in recovered.active_path(row.id)] == ["only in the wal"]


def test_lost_references_are_repaired(tmp_path: Path) -> None:
    # Rows whose conversation or parent did not survive: built directly, then recovered.
    path = tmp_path / "openlid.sqlite3"
    with ConversationStore(path) as store:
        c = store.create("kept")
        first = store.append(c.id, "user", "first")
        second = store.append(c.id, "assistant", "second")
        store.save_steps(second.id, [dbfaults.step(0)])
        other = store.create("lost")
        store.append(other.id, "user", "orphan")
        store._conn.execute("PRAGMA foreign_keys=OFF")
        store._conn.execute("DELETE FROM conversations WHERE id = ?", (other.id,))
        store._conn.execute("DELETE FROM messages WHERE id = ?", (first.id,))
    report = database_repair.recover(path)
    summary = report.summary()
    assert "1 message whose conversation was lost is in 1 conversation titled" in summary
    assert "1 message lost the message before it and now starts a branch" in summary
    with ConversationStore(path) as store:
        by_title = {x.title: x for x in store.list_conversations()}
        assert [m.content for m in store.active_path(by_title["kept"].id)] == ["second"]
        recovered = by_title[database_repair.RECOVERED_TITLE]
        assert [m.content for m in store.active_path(recovered.id)] == ["orphan"]
        assert len(store.load_steps(second.id)) == 1
