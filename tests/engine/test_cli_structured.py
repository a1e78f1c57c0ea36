"""`openlid generate` and `openlid chat` with --json-schema, --grammar and --json: the reply in
the format asked for, the settings stored with a chat reply, and bad files refused in words."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
          "additionalProperties": False}


def _openlid(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "desktop", *args], input=stdin,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ),
                          check=False)


def test_generate_with_a_json_schema_and_a_grammar(gemma_path: Path, tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA), encoding="utf-8")
    out = _openlid("generate", "--model", str(gemma_path), "--ctx", "512",
                   "--prompt", "Count:", "--temperature", "1.5", "--seed", "3",
                   "--max-tokens", "32", "--json-schema", str(schema), "--jsonl")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    value = json.loads(rows[-1]["done"]["text"])
    assert set(value) == {"n"}
    assert isinstance(value["n"], int)
    assert all("grammar" in [s["name"] for s in r["stages"]] for r in rows[:-1])
    grammar = tmp_path / "yes.gbnf"
    grammar.write_text('root ::= ("yes" | "no")\n', encoding="utf-8")
    out = _openlid("generate", "--model", str(gemma_path), "--ctx", "512",
                   "--prompt", "Is it?", "--temperature", "0", "--max-tokens", "16",
                   "--grammar", str(grammar), "--jsonl")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["done"]["text"] in ("yes", "no")


def test_bad_files_are_refused_with_their_position(gemma_path: Path, tmp_path: Path) -> None:
    schema = tmp_path / "bad.json"
    schema.write_text('{"type": "object",\n "properties": }', encoding="utf-8")
    out = _openlid("generate", "--model", str(gemma_path), "--prompt", "x",
                   "--json-schema", str(schema))
    assert out.returncode == 2
    assert "not valid JSON: Expecting value at line 2, column 16" in out.stderr
    grammar = tmp_path / "bad.gbnf"
    grammar.write_text('root ::= "a" |\n  item\n', encoding="utf-8")
    out = _openlid("generate", "--model", str(gemma_path), "--ctx", "512",
                   "--prompt", "x", "--grammar", str(grammar))
    assert out.returncode == 2
    assert "rule 'item' is used at line 2, column 3 but never defined" in out.stderr
    out = _openlid("generate", "--prompt", "x", "--grammar", str(tmp_path / "missing.gbnf"))
    assert out.returncode == 2
    assert "cannot read the grammar" in out.stderr


def test_chat_with_json_stores_the_setting_with_the_reply(gemma_path: Path,
                                                          tmp_path: Path) -> None:
    export = tmp_path / "chat.json"
    out = _openlid("chat", "--model", str(gemma_path), "--ctx", "512",
                   "--temperature", "0", "--max-tokens", "24", "--json",
                   stdin=f"Describe a dog.\n/save {export}\n/quit\n")
    assert out.returncode == 0, out.stderr
    data = json.loads(export.read_text(encoding="utf-8"))
    reply = next(m for m in data["messages"] if m["role"] == "assistant")
    assert reply["content"].lstrip().startswith("{")
    assert reply["meta"]["sampler"]["structured_output"] == "json"
