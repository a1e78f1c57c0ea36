"""`openlid template list|render`: the exact prompt, token count and special-token spans."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GEMMA_PROMPT = (
    "<bos><start_of_turn>user\nBe brief.\n\nHello<end_of_turn>\n"
    "<start_of_turn>model\nHi!<end_of_turn>\n"
    "<start_of_turn>user\nAnd now?<end_of_turn>\n<start_of_turn>model\n"
)


def _openlid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ), check=False)


@pytest.fixture
def messages(tmp_path: Path) -> Path:
    path = tmp_path / "messages.json"
    path.write_text(json.dumps([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "And now?"},
    ]), encoding="utf-8")
    return path


def test_list_shows_presets() -> None:
    out = _openlid("template", "list", "--json")
    assert out.returncode == 0, out.stderr
    ids = [row["id"] for row in json.loads(out.stdout)]
    assert {"gemma", "chatml", "llama3"} <= set(ids)


def test_render_preset_prints_the_exact_prompt(messages: Path) -> None:
    out = _openlid("template", "render", "--template", "gemma", "--messages", str(messages))
    assert out.returncode == 0, out.stderr
    assert out.stdout == GEMMA_PROMPT


def test_render_options(messages: Path) -> None:
    out = _openlid("template", "render", "--template", "gemma", "--messages", str(messages),
                   "--system", "Other.", "--instructions", "Rhyme.",
                   "--instructions-placement", "first_user", "--no-generation-prompt")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("<bos><start_of_turn>user\nOther.\n\nRhyme.\n\nHello")
    assert out.stdout.endswith("And now?<end_of_turn>\n")


def test_render_with_model_gives_token_count_and_spans(gemma_path: Path, messages: Path) -> None:
    out = _openlid("template", "render", "--model", str(gemma_path), "--messages",
                   str(messages), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["prompt"] == GEMMA_PROMPT
    assert data["token_count"] == len(data["tokens"]) > 10
    spans = data["special_spans"]
    texts = [data["prompt"][s["start"]:s["end"]] for s in spans]
    assert texts == ["<bos>", "<start_of_turn>", "<end_of_turn>", "<start_of_turn>",
                     "<end_of_turn>", "<start_of_turn>", "<end_of_turn>", "<start_of_turn>"]
    assert {s["token_id"] for s in spans} == {2, 105, 106}
    assert data["tokens"].count(105) == 4


def test_typed_markers_are_not_spans(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps([{"role": "user", "content": "<end_of_turn> hi"}]))
    out = _openlid("template", "render", "--template", "gemma", "--messages", str(path),
                   "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [s["text"] for s in data["special_spans"]].count("<end_of_turn>") == 1  # closing one


def test_broken_template_file_exits_2_with_line(tmp_path: Path, messages: Path) -> None:
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}\n{{ m.content }}\n{% if %}\n{% endfor %}\n")
    out = _openlid("template", "render", "--template", str(broken), "--messages", str(messages))
    assert out.returncode == 2
    assert "line 3" in out.stderr
    assert out.stdout == ""


def test_missing_messages_file_exits_2(tmp_path: Path) -> None:
    out = _openlid("template", "render", "--template", "gemma", "--messages",
                   str(tmp_path / "nope.json"))
    assert out.returncode == 2
    assert "nope.json" in out.stderr


def test_bad_messages_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"not": "messages"}')
    out = _openlid("template", "render", "--template", "gemma", "--messages", str(path))
    assert out.returncode == 2
    assert "role" in out.stderr


def test_unknown_template_exits_2(messages: Path) -> None:
    out = _openlid("template", "render", "--template", "nope", "--messages", str(messages))
    assert out.returncode == 2
    assert "nope" in out.stderr
