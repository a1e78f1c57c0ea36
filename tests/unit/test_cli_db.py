"""A damaged database from the command line, as real `openlid` processes: `models` and `chat`
say what happened and what to run (exit 2, no traceback, nothing changed); `openlid db check`,
`recover` and `reset` do what they say and keep the damaged file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import dbfaults
from tests.dbfaults import CONVERSATIONS, MARK, MESSAGES_EACH


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    return tmp_path


def _db(home: Path) -> Path:
    return home / "data" / "openlid.sqlite3"


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENLID_HOME": str(home)}
    env.pop("OPENLID_MODELS_DIR", None)
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True,
                          text=True, env=env, check=False, timeout=120, stdin=subprocess.DEVNULL)


def _kept(home: Path) -> list[Path]:
    return sorted((home / "data").glob("openlid-damaged-*.sqlite3"))


def _assert_told(out: subprocess.CompletedProcess[str], home: Path, words: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert f"Openlid's database {_db(home)} is damaged: " in out.stderr
    assert words in out.stderr
    assert "`openlid db recover`" in out.stderr
    assert "`openlid db reset`" in out.stderr


@pytest.mark.parametrize("verb", [("models",), ("models", "--json"),
                                  ("chat", "--model", "/nowhere/model.gguf")])
def test_a_verb_on_garbage_says_what_to_run(home: Path, verb: tuple[str, ...]) -> None:
    dbfaults.make_garbage(_db(home))
    before = dbfaults.digest(_db(home))
    out = _run(home, *verb)
    _assert_told(out, home, "it is not an SQLite database")
    assert dbfaults.digest(_db(home)) == before
    assert _kept(home) == []


def test_check_then_recover_a_broken_page_then_use_it(home: Path) -> None:
    db = dbfaults.populate(_db(home))
    out = _run(home, "db", "check")
    assert out.returncode == 0, out.stderr
    assert "healthy" in out.stdout
    assert f"{CONVERSATIONS * MESSAGES_EACH:,} messages" in out.stdout

    dbfaults.break_page(db, MARK.format(c=7, m=1) + " ")
    before = dbfaults.digest(db)
    _assert_told(_run(home, "db", "check"), home, "broken pages")
    _assert_told(_run(home, "models"), home, "broken pages")

    out = _run(home, "db", "recover")
    assert out.returncode == 0, out.stderr
    (kept,) = _kept(home)
    assert dbfaults.digest(kept) == before
    assert f"The damaged file is kept as {kept}." in out.stdout
    assert f"{CONVERSATIONS} conversations" in out.stdout
    assert f"of {CONVERSATIONS * MESSAGES_EACH:,} messages" in out.stdout
    assert "3 models in the library" in out.stdout
    assert "1 download," in out.stdout

    assert _run(home, "db", "check").returncode == 0
    out = _run(home, "models", "--json")
    assert out.returncode == 0, out.stderr


def test_recover_and_reset_refuse_a_healthy_file_without_force(home: Path) -> None:
    db = dbfaults.populate(_db(home))
    dbfaults.checkpoint(db)
    before = dbfaults.digest(db)
    for verb in ("recover", "reset"):
        out = _run(home, "db", verb)
        assert out.returncode == 2
        assert "passed SQLite's check" in out.stderr
        assert f"db {verb} --force" in out.stderr
    assert dbfaults.digest(db) == before
    assert _kept(home) == []
    out = _run(home, "db", "reset", "--force")
    assert out.returncode == 0, out.stderr
    (kept,) = _kept(home)
    assert dbfaults.digest(kept) == before
    assert "A new, empty database" in out.stdout


def test_reset_a_truncated_file(home: Path) -> None:
    db = dbfaults.populate(_db(home))
    dbfaults.truncate(db)
    before = dbfaults.digest(db)
    out = _run(home, "db", "reset")
    assert out.returncode == 0, out.stderr
    (kept,) = _kept(home)
    assert dbfaults.digest(kept) == before
    out = _run(home, "db", "check")
    assert out.returncode == 0
    assert "0 messages" in out.stdout


def test_recover_with_no_database(home: Path) -> None:
    out = _run(home, "db", "recover")
    assert out.returncode == 2
    assert "no database" in out.stderr
    out = _run(home, "db", "check")
    assert out.returncode == 0
    assert "no database yet" in out.stdout
