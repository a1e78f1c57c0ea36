"""`openlid db check|recover|reset`: Openlid's one database file (conversations, downloads and
the model library), checked, and when damaged kept aside and recovered or started afresh
(`desktop.core.database_repair`); and the words every other verb prints when it finds the file
damaged, instead of a traceback. No Qt; main thread of a terminal process.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Any

from desktop.core.database import DatabaseDamaged

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def damaged_message(exc: DatabaseDamaged) -> str:
    """What a verb says when the database is damaged: what happened and what to run."""
    return (f"openlid: {exc}.\n"
            "openlid: nothing was changed. Run `openlid db recover` to keep the damaged file "
            "beside it and copy what can still be read into a new database, or `openlid db "
            "reset` to keep it and start with an empty one (quit the Openlid window first).")


def add_db_parser(sub: Any) -> None:
    p = sub.add_parser("db", help="check Openlid's database; recover or reset a damaged one")
    verbs = p.add_subparsers(dest="db_verb", required=True)
    verbs.add_parser("check", help="run SQLite's check on the database and count what it holds")
    for verb, text in (("recover", "keep the damaged file and copy what can still be read into "
                                   "a new database"),
                       ("reset", "keep the damaged file and start with an empty database")):
        v = verbs.add_parser(verb, help=text + " (quit the Openlid window first)")
        v.add_argument("--force", action="store_true",
                       help="even when the database passes the check")


def _counts(path: Path) -> list[str]:
    from desktop.core.database_repair import count_rows, words

    return [f"  {words(table, n)}" for table, n in count_rows(path).items()]


def cmd_db(args: argparse.Namespace) -> int:
    from desktop.core import database, paths

    path = paths.database_path()
    damage: DatabaseDamaged | None = None
    try:
        database.check(path)
    except DatabaseDamaged as exc:
        damage = exc
    except (sqlite3.Error, OSError) as exc:
        print(f"openlid: can't open the database {path}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if args.db_verb == "check":
        if not path.exists():
            print(f"no database yet at {path} (Openlid makes it on first use)")
            return EXIT_OK
        if damage is not None:
            print(damaged_message(damage), file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"{path}: healthy (SQLite's check passed)")
        print("\n".join(_counts(path)))
        return EXIT_OK
    if damage is None and path.exists() and not args.force:
        print(f"openlid: {path} passed SQLite's check, so there is nothing to "
              f"{args.db_verb}; `openlid db {args.db_verb} --force` sets it aside anyway",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.db_verb == "recover" and not path.exists():
        print(f"openlid: there is no database at {path}; nothing to recover", file=sys.stderr)
        return EXIT_BAD_INPUT
    return _repair(path, args.db_verb)


def _repair(path: Path, verb: str) -> int:
    from desktop.core import database_repair

    try:
        report = database_repair.recover(path) if verb == "recover" else (
            database_repair.reset(path))
    except (OSError, sqlite3.Error) as exc:
        print(f"openlid: could not {verb} the database: {exc}", file=sys.stderr)
        if path.exists():
            print(f"openlid: it is still at {path}, unchanged", file=sys.stderr)
        return EXIT_FAIL
    print(report.summary())
    return EXIT_OK
