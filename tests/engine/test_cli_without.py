"""`openlid chat --without PART`: each reply re-scored teacher-forced without one part of its
prompt, on the real Gemma, and the summary words printed."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.cli.chat import TerminalChat, parse_without, run_chat
from desktop.cli.prompts import pick_template
from desktop.core.conversations import ablation as A
from desktop.core.conversations import xray as X
from desktop.core.conversations.store import ConversationStore
from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.sampling import SamplerSettings
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost
from tests.engine.conftest import load

SYSTEM = "The secret password is Tangerine. Tell it to anyone who asks."
GREEDY = SamplerSettings(temperature=0.0, max_tokens=10, seed=1)


@pytest.fixture(scope="module")
def loaded(gemma_path: Path) -> Iterator[tuple[EngineHost, ModelInfo]]:
    host = EngineHost()
    event = load(host, gemma_path)
    assert isinstance(event, P.Loaded), event
    yield host, event.info
    host.shutdown()


def chat(
    loaded: tuple[EngineHost, ModelInfo], tmp_path: Path, without: str, system: str = SYSTEM
) -> tuple[TerminalChat, io.StringIO]:
    host, info = loaded
    out = io.StringIO()
    store = ConversationStore(tmp_path / "openlid.sqlite3")
    return TerminalChat(
        host, info, store, pick_template(None, info), GREEDY, system, out, without=without
    ), out


def test_without_the_system_prompt_prints_how_much_less_likely(
    loaded: tuple[EngineHost, ModelInfo], tmp_path: Path
) -> None:
    terminal, out = chat(loaded, tmp_path, "system")
    terminal.turn("What is the secret password?")
    ablation = terminal.last_ablation
    assert ablation is not None
    assert ablation.target == A.Target(X.SYSTEM)
    n = len(ablation.full.token_ids)
    reply = terminal.store.active_path(terminal.conversation.id)[-1].content
    assert n > 0
    assert "".join(ablation.full.pieces).strip().startswith(reply.strip()[:10])
    line = next(x for x in out.getvalue().splitlines() if x.startswith("[without: "))
    assert f"Without the system prompt the same {n}-token reply is " in line
    assert ablation.summary() in line
    assert A.BASIS in line
    if "Tangerine" in reply:  # the fact the system prompt names came from it
        assert ablation.total_drop > 2.0
        assert "less likely" in line
    terminal.store.close()


def test_without_an_earlier_turn_and_parts_that_are_not_there(
    loaded: tuple[EngineHost, ModelInfo], tmp_path: Path
) -> None:
    terminal, out = chat(loaded, tmp_path, "turn:1", system="")
    terminal.turn("My dog is called Biscuit.")
    assert (
        "[without: cannot remove it: turn 1 is not an earlier turn of this reply's prompt "
        "(the reply is turn 1)]"
    ) in out.getvalue()
    terminal.turn("What is my dog called?")
    ablation = terminal.last_ablation
    assert ablation is not None
    assert ablation.target == A.Target(X.HISTORY, 1)
    assert "Without the turn 1 the same" in out.getvalue()
    terminal.without = "documents"
    terminal.turn("Thanks")
    assert "[without: cannot remove it: the prompt of turn 3 has no " in out.getvalue()
    terminal.without = "system"
    terminal.turn("Bye")
    assert "has no system prompt]" in out.getvalue()
    terminal.store.close()


def test_a_part_that_cannot_be_named_is_refused_before_loading(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for good, value in (
        ("System", "system"),
        ("turn:02", "turn:2"),
        (" documents", "documents"),
        ("instructions", "instructions"),
    ):
        assert parse_without(good) == value
    for bad in ("turn:0", "turn:x", "turn", "reply", ""):
        with pytest.raises(ValueError, match="name a part of the prompt"):
            parse_without(bad)
    args = argparse.Namespace(
        without="prompt", attach=[], template=None, system="", show_prompt=False, xray=False
    )
    code = run_chat(
        args, tmp_path / "missing.gguf", LoadSettings(), GREEDY, io.StringIO(""), io.StringIO()
    )
    assert code == 2
    assert (
        "--without 'prompt': name a part of the prompt: system, instructions, documents "
        "or turn:N" in capsys.readouterr().err
    )
