"""The X-ray's figures against the real engine: parts that add up to the prompt's token count,
and a reuse figure that is what the engine really skipped."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from desktop.core.conversations import xray as X
from desktop.core.conversations.overflow import TokenCounts
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone
from desktop.core.templates.prompt import build_messages, presets, render_prompt
from desktop.engine import protocol as P
from desktop.engine.host import EngineHost

GREEDY = SamplerSettings(temperature=0.0, max_tokens=6, seed=1)
SYSTEM = "You are a terse geography tutor."
INSTRUCTIONS = "Answer in one short sentence."
HISTORY = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris is the capital of France."},
    {"role": "user", "content": "And of Italy?"},
]


def _render(history: list[dict[str, str]], placement: str = "system"
            ) -> tuple[P.PromptPieces, tuple[X.PieceLabel, ...]]:
    messages = build_messages(SYSTEM, INSTRUCTIONS, history,
                              instructions_placement="first_user" if placement == "first_user"
                              else "system")
    rendered = render_prompt(presets()["gemma"], messages, bos_token="<bos>",
                             eos_token="<eos>")
    pieces = tuple((s.text, s.trusted) for s in rendered.segments)
    kept = [(m, n, 100 + i) for i, (m, n) in enumerate(
        zip(history, X.turn_numbers([m["role"] for m in history]), strict=True))]
    sent = X.sent_messages(messages, kept, system_prompt=SYSTEM, instructions=INSTRUCTIONS,
                           placement=placement)
    return pieces, X.label_pieces(pieces, sent)


def _generate(host: EngineHost, pieces: P.PromptPieces
              ) -> tuple[GenerationDone, tuple[int, ...], list[int]]:
    done, prompt, generated = None, (), []
    for event in host.wait(host.generate(pieces, GREEDY), timeout=120):
        if isinstance(event, P.Step):
            generated.append(event.record.token_id)
        elif isinstance(event, P.Done):
            done, prompt = event.result, event.prompt_tokens
        else:
            raise AssertionError(f"unexpected event {event}")
    assert done is not None
    return done, prompt, generated


def _count(host: EngineHost, pieces: P.PromptPieces, add_bos: bool = False) -> int:
    answer = list(host.wait(host.tokenize(pieces, add_bos), timeout=60))[-1]
    assert isinstance(answer, P.Tokenized), answer
    return len(answer.tokens)


def test_parts_add_up_to_the_prompt_exactly(engine: EngineHost) -> None:
    for placement in ("system", "first_user"):
        pieces, labels = _render(HISTORY, placement)
        done, prompt, _ = _generate(engine, pieces)
        usage = done.usage
        assert usage.prompt_tokens == len(prompt) == _count(engine, pieces, add_bos=True)
        assert len(usage.piece_tokens) == len(pieces) + 1
        assert sum(usage.piece_tokens) == usage.prompt_tokens
        record = X.make_record(pieces, labels, prompt_tokens=usage.prompt_tokens,
                               piece_tokens=usage.piece_tokens,
                               cached_tokens=usage.cached_tokens,
                               prompt_ms=done.timings.prompt_ms)
        contents = {100 + i: m["content"] for i, m in enumerate(HISTORY)}
        turn = X.read_record(1, 2, {"xray": record}, contents)
        assert turn.has_parts
        assert sum(p.tokens for p in turn.parts) == usage.prompt_tokens
        # The parts, joined, are the prompt text exactly as sent.
        assert "".join(p.text for p in turn.parts) == "".join(t for t, _ in pieces)
        kinds = {p.kind for p in turn.parts}
        assert {X.SYSTEM, X.INSTRUCTIONS, X.HISTORY, X.NEW, X.TEMPLATE} <= kinds
        # A message's part is exactly what the tokenizer makes of its text alone.
        reply = next(p for p in turn.parts if p.message_id == 101)
        assert reply.exact
        assert reply.turn == 1
        assert reply.tokens == _count(engine, ((reply.text, False),))
        new = next(p for p in turn.parts if p.kind == X.NEW)
        assert new.text == "And of Italy?"
        assert new.turn == 2
        assert new.tokens == _count(engine, ((new.text, False),))


def test_reuse_is_what_the_engine_skipped(engine: EngineHost) -> None:
    first_history = HISTORY[:1]
    pieces_1, _ = _render(first_history)
    done_1, prompt_1, generated = _generate(engine, pieces_1)
    # The cache now holds the first prompt and every generated token that was decoded (the
    # last one is not when the reply ended on end-of-turn).
    decoded = generated if done_1.finish_reason == "length" else generated[:-1]
    cache = [*prompt_1, *decoded]
    pieces_2, _ = _render([*first_history, {"role": "assistant", "content": done_1.text},
                           {"role": "user", "content": "And of Italy?"}])
    done_2, prompt_2, _ = _generate(engine, pieces_2)
    common = 0
    for a, b in zip(cache, prompt_2, strict=False):
        if a != b:
            break
        common += 1
    assert done_2.usage.cached_tokens == min(common, len(prompt_2) - 1)
    assert done_2.usage.cached_tokens >= len(prompt_1) - 1  # the whole first prompt at least
    assert done_2.timings.prompt_ms > 0


def test_counts_learnt_from_a_reply_are_the_engines(engine: EngineHost) -> None:
    pieces, _ = _render(HISTORY)
    done, _, _ = _generate(engine, pieces)
    counts = TokenCounts().learned(pieces, done.usage.piece_tokens, n_messages=4)
    for message in HISTORY:
        assert counts.exact(message["content"]) == _count(
            engine, ((message["content"], False),))
    assert not counts.is_exact("a message the engine never saw")


def test_cli_chat_xray_prints_parts_and_reuse(gemma_path: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OPENLID_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "desktop", "chat", "--model", str(gemma_path), "--xray",
         "--system", SYSTEM, "--temperature", "0", "--max-tokens", "6"],
        input="What is the capital of France?\nAnd of Italy?\n/quit\n", capture_output=True,
        text=True, timeout=300, env=env, check=False)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("[x-ray: ")]
    assert len(lines) == 4, out.stdout  # parts and reuse, for each of the two turns
    first, second = lines[1], lines[3]
    parts = lines[2]
    total = int(re.search(r"prompt (\d+) tokens = ", parts).group(1))
    counts = [int(n.replace(",", "")) for n in re.findall(r" ≈?([\d,]+)(?:,|\]$)", parts)]
    assert sum(counts) == total
    for name in ("template markup", "system prompt", "turn 1", "new message (turn 2)"):
        assert name in parts
    assert first.startswith("[x-ray: reused ")
    reused = int(re.search(r"reused (\d+) from the KV cache", second).group(1))
    assert reused > 0
    assert "new since turn 1" in second


def test_template_render_prints_the_parts(gemma_path: Path, tmp_path: Path) -> None:
    messages = tmp_path / "messages.json"
    messages.write_text(json.dumps(HISTORY), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "desktop", "template", "render", "--model", str(gemma_path),
         "--messages", str(messages), "--system", SYSTEM, "--instructions", INSTRUCTIONS,
         "--json"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ), check=False)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    parts = {(p["part"], p["turn"]): p["tokens"] for p in data["parts"]}
    assert sum(parts.values()) == data["token_count"]
    assert {("system", 0), ("instructions", 0), ("history", 1), ("new message", 2),
            ("template", 0)} <= set(parts)
