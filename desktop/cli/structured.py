"""The structured-output flags of `openlid generate` and `openlid chat`: `--json` (any JSON
object), `--json-schema FILE` and `--grammar FILE` (GBNF), read into `SamplerSettings` fields.

Runs in the CLI process. A file that cannot be read, or a schema that is not JSON, is a
`SettingsError` in words (with the line and column) before any model loads; a grammar's syntax is
judged by llama.cpp's parser when the reply starts, and its error names the line and column too.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from desktop.core.sampling import SettingsError
from desktop.core.structured_output import (
    ANY_JSON,
    GBNF,
    JSON_SCHEMA,
    MAX_TEXT,
    settings_problem,
)

__all__ = ["add_structured_args", "structured_from_args"]


def add_structured_args(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("structured output").add_mutually_exclusive_group()
    group.add_argument("--json", dest="structured_json", action="store_true",
                       help="the reply must be a JSON object")
    group.add_argument("--json-schema", metavar="FILE", default=None,
                       help="the reply must be JSON matching this JSON schema file")
    group.add_argument("--grammar", metavar="FILE", default=None,
                       help="the reply must match this GBNF grammar file (root ::= ...)")


def _read(path: str, what: str) -> str:
    try:
        with Path(path).open(encoding="utf-8") as f:
            text = f.read(MAX_TEXT + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read the {what} {path}: {exc}") from None
    if len(text) > MAX_TEXT:
        raise SettingsError(f"the {what} {path} is longer than {MAX_TEXT:,} characters")
    return text


def structured_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The SamplerSettings fields the flags ask for ({} for none); SettingsError in words."""
    if getattr(args, "json_schema", None):
        fields = {"structured_output": JSON_SCHEMA,
                  "json_schema": _read(args.json_schema, "JSON schema")}
        problem = settings_problem(JSON_SCHEMA, fields["json_schema"], "")
        if problem:
            raise SettingsError(f"{args.json_schema}: {problem}")
        return fields
    if getattr(args, "grammar", None):
        fields = {"structured_output": GBNF, "grammar": _read(args.grammar, "grammar")}
        problem = settings_problem(GBNF, "", fields["grammar"])
        if problem:
            raise SettingsError(f"{args.grammar}: {problem}")
        return fields
    if getattr(args, "structured_json", False):
        return {"structured_output": ANY_JSON}
    return {}
