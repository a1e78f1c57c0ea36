"""`openlid chat`: a terminal chat that sends the whole history every turn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from desktop.core.sampler_stages import RANDOM_SEED


def test_chat_sends_history_every_turn(gemma_path: Path, tmp_path: Path) -> None:
    export = tmp_path / "chat.json"
    script = f"Hello there\n/system Be brief.\nAnd again\n/save {export}\n/quit\nnever sent\n"
    out = subprocess.run(
        [sys.executable, "-m", "desktop", "chat", "--model", str(gemma_path),
         "--temperature", "0", "--max-tokens", "8", "--show-prompt"],
        input=script, capture_output=True, text=True, timeout=300, env=dict(os.environ),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    prompts = [chunk.split("--- end of prompt ---")[0]
               for chunk in out.stdout.split("--- prompt ---\n")[1:]]
    assert len(prompts) == 2  # two answers; "/quit" ended it before "never sent"
    assert out.stdout.count(" generated, ") == 2
    first, second = prompts
    assert first.startswith("<bos><start_of_turn>user\nHello there<end_of_turn>")
    assert "Be brief." not in first
    # The second prompt repeats the first exchange, with the new system prompt in front.
    assert second.startswith("<bos><start_of_turn>user\nBe brief.\n\nHello there<end_of_turn>\n"
                             "<start_of_turn>model\n")
    assert second.rstrip("\n").endswith("And again<end_of_turn>\n<start_of_turn>model")
    assert "[system prompt set]" in out.stdout
    data = json.loads(export.read_text(encoding="utf-8"))
    roles = [m["role"] for m in data["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert data["conversation"]["system_prompt"] == "Be brief."
    reply = data["messages"][1]["content"]
    assert reply.strip()  # the Gemma template trims message text
    assert f"<start_of_turn>model\n{reply.strip()}<end_of_turn>" in second
    # No --seed: each reply stores the seed it was really sampled with, not the "random" marker.
    seeds = [m["meta"]["sampler"]["seed"] for m in data["messages"] if m["role"] == "assistant"]
    assert all(0 < seed < RANDOM_SEED for seed in seeds), seeds


def test_chat_ends_on_end_of_input(gemma_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "desktop", "chat", "--model", str(gemma_path),
         "--max-tokens", "4", "--template", "nope"],
        input="", capture_output=True, text=True, timeout=300, env=dict(os.environ),
        check=False,
    )
    assert out.returncode == 2
    assert "nope" in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "desktop", "chat", "--model", str(gemma_path),
         "--max-tokens", "4"],
        input="", capture_output=True, text=True, timeout=300, env=dict(os.environ),
        check=False,
    )
    assert out.returncode == 0, out.stderr
