"""`reasoning_content` shapes: a whole message and streamed deltas split as llama-server does."""

from __future__ import annotations

from desktop.core.openai.reasoning import ReasoningRelease, with_reasoning
from desktop.core.reasoning import THINK

REPLY = "<think>\nLet me think.\n</think>\n\nHello!"


def test_a_message_with_thinking_gets_reasoning_content() -> None:
    message = with_reasoning({"role": "assistant", "content": REPLY}, THINK)
    assert message == {"role": "assistant", "content": "Hello!",
                       "reasoning_content": "Let me think."}
    plain = {"role": "assistant", "content": "Hello!"}
    assert with_reasoning(plain, THINK) == plain  # no block: no reasoning_content at all
    assert with_reasoning({"role": "assistant", "content": REPLY}, None)["content"] == REPLY


def test_streamed_deltas_join_to_the_whole_message() -> None:
    release = ReasoningRelease(THINK)
    deltas = [release.delta(ch) for ch in REPLY]
    deltas.append(release.finish())
    thinking = "".join(d.get("reasoning_content", "") for d in deltas)
    content = "".join(d.get("content", "") for d in deltas)
    assert (thinking.strip(), content) == ("Let me think.", "Hello!")
    assert all("think>" not in d.get("content", "") for d in deltas)
    r1 = ReasoningRelease(THINK.inside())  # DeepSeek-R1: the prompt opened the block
    deltas = [r1.delta(p) for p in ("Hmm", ".</th", "ink>", "\n\nHi")]
    assert deltas[0] == {"reasoning_content": "Hmm", "content": ""}
    assert "".join(d["content"] for d in deltas) == "Hi"
