"""Thinking blocks recognised on real published templates (tests/fixtures/reasoning, sources in
its README) with model outputs as the models' documentation shows them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from desktop.core.reasoning import (
    GPT_OSS,
    THINK,
    ReasoningFormat,
    ReasoningSplitter,
    format_of_template,
    history_without_thinking,
    opened_by_prompt,
    split_reasoning,
    strips_thinking_itself,
    takes_enable_thinking,
)
from desktop.core.templates.prompt import PromptTemplate, render_prompt

FIXTURES = Path(__file__).parent.parent / "fixtures" / "reasoning"
QWEN3 = (FIXTURES / "qwen3.jinja").read_text(encoding="utf-8")
R1 = (FIXTURES / "deepseek_r1.jinja").read_text(encoding="utf-8")

# Qwen3's model card: the reply opens the block itself.
QWEN3_REPLY = ("<think>\nOkay, the user wants a short introduction to large language models. "
               "Let me start by defining what an LLM is.\n</think>\n\n"
               "Large language models (LLMs) are AI systems trained on vast text.")
# DeepSeek-R1's: the prompt ends with "<think>\n", so the reply starts inside the block.
R1_REPLY = ("Okay, so I need to figure out what 1 plus 1 is. Hmm, that's basic addition.\n"
            "</think>\n\nThe sum of 1 and 1 is **2**.")
# gpt-oss (OpenAI's harmony format): analysis channel, then the final channel.
GPT_OSS_REPLY = ("<|channel|>analysis<|message|>User asks: \"What is 2 + 2?\" Simple arithmetic. "
                 "Provide answer.<|end|><|start|>assistant<|channel|>final<|message|>"
                 "2 + 2 = 4.")


def template(text: str) -> PromptTemplate:
    return PromptTemplate("model", "Model's template", "model", text)


def test_qwen3_template_is_read_as_such() -> None:
    fmt = format_of_template(QWEN3)
    assert fmt == THINK
    assert not fmt.starts_inside
    assert takes_enable_thinking(QWEN3)
    assert strips_thinking_itself(QWEN3)


def test_deepseek_r1_template_opens_the_block_in_its_generation_prompt() -> None:
    fmt = format_of_template(R1)
    assert fmt.open == "<think>"
    assert fmt.starts_inside
    assert not takes_enable_thinking(R1)
    assert not strips_thinking_itself(R1)


def test_enable_thinking_reaches_the_qwen3_template() -> None:
    messages = [{"role": "user", "content": "Hi"}]
    off = render_prompt(template(QWEN3), messages, extra={"enable_thinking": False}).text
    on = render_prompt(template(QWEN3), messages, extra={"enable_thinking": True}).text
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert on.endswith("<|im_start|>assistant\n")
    assert not opened_by_prompt(THINK, off).starts_inside
    r1 = render_prompt(template(R1), messages, bos_token="<｜begin▁of▁sentence｜>").text
    assert opened_by_prompt(THINK, r1).starts_inside


def test_documented_outputs_split() -> None:
    qwen = split_reasoning(QWEN3_REPLY, format_of_template(QWEN3))
    assert qwen.thinking.strip().startswith("Okay, the user wants")
    assert qwen.answer == "Large language models (LLMs) are AI systems trained on vast text."
    assert qwen.has_thinking
    assert qwen.closed
    assert QWEN3_REPLY[qwen.answer_start:] == qwen.answer
    r1 = split_reasoning(R1_REPLY, format_of_template(R1))
    assert r1.thinking.startswith("Okay, so I need")
    assert "</think>" not in r1.thinking
    assert r1.answer == "The sum of 1 and 1 is **2**."
    # A stored R1 reply read without knowing its template: the lone </think> says it all.
    assert split_reasoning(R1_REPLY, THINK) == r1
    oss = split_reasoning(GPT_OSS_REPLY, format_of_template("{{ '<|channel|>final' }}"))
    assert oss.thinking.startswith("User asks")
    assert oss.answer == "2 + 2 = 4."


def test_replies_without_thinking_are_all_answer() -> None:
    for text in ("Hello there", "  spaced", "Use <think> tags like </think> this", ""):
        split = split_reasoning(text)
        assert (split.thinking, split.answer, split.has_thinking) == ("", text, False)
    cut = split_reasoning("<think>still going")
    assert (cut.thinking, cut.answer, cut.has_thinking, cut.closed) == (
        "still going", "", True, False)


CASES = [
    QWEN3_REPLY, R1_REPLY, "<think></think>answer", "  <think>\na</think>  \n\nb <think> c",
    "<thin", "<think", "plain </thi", "a </think> b", "", "   ", "<think>x</thi", "x <think> y",
    "<think>x</think>", "<think>x</think>\n\n", "prefix <thinking> </think> rest",
]


@pytest.mark.parametrize("fmt", [THINK, THINK.inside(), GPT_OSS])
@pytest.mark.parametrize("text", [*CASES, GPT_OSS_REPLY, "<|channel|>final<|message|>hi",
                                  "<|channel|>analysis<|message|>a<|end|>  <|chan"])
def test_the_splitter_fed_char_by_char_equals_the_whole_split(text: str,
                                                               fmt: ReasoningFormat) -> None:
    whole = split_reasoning(text, fmt)
    for pieces in (list(text), _random_pieces(text)):
        splitter = ReasoningSplitter(fmt)
        shown_thinking, shown_answer = "", ""
        for piece in pieces:
            delta = splitter.feed(piece)
            if delta.restart:
                shown_thinking, shown_answer = delta.thinking, delta.answer
            else:
                shown_thinking += delta.thinking
                shown_answer += delta.answer
        end = splitter.finish()
        shown_thinking += end.thinking
        shown_answer += end.answer
        got = splitter.split()
        assert (got.thinking, got.answer, got.has_thinking, got.closed) == (
            whole.thinking, whole.answer, whole.has_thinking, whole.closed)
        assert (shown_thinking, shown_answer) == (whole.thinking, whole.answer)


def _random_pieces(text: str) -> list[str]:
    rng = random.Random(len(text))
    pieces, at = [], 0
    while at < len(text):
        n = rng.randint(1, 6)
        pieces.append(text[at:at + n])
        at += n
    return pieces


def test_the_splitter_streams_thinking_before_the_block_ends() -> None:
    splitter = ReasoningSplitter(THINK)
    assert splitter.feed("<think>\nOkay, ").thinking == "\nOkay, "
    assert splitter.feed("so</th").thinking == "so"  # "</th" held: it may be the close
    delta = splitter.feed("ink>\n\nHi")
    assert delta.closed
    assert delta.answer == "Hi"


def history(reply: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": "What is 1+1?"},
            {"role": "assistant", "content": reply},
            {"role": "user", "content": "And 2+2?"}]


def test_earlier_thinking_is_left_out_of_later_turns() -> None:
    r1_reply = "<think>\n" + R1_REPLY  # as stored when the prompt's <think> is kept with it
    for text, reply in ((R1, R1_REPLY), (R1, r1_reply), (QWEN3, QWEN3_REPLY)):
        prompt = render_prompt(template(text), history(reply),
                               bos_token="<｜begin▁of▁sentence｜>").text
        assert "figure out what 1 plus 1" not in prompt
        assert "Okay, the user wants" not in prompt
        assert "**2**" in prompt or "Large language models" in prompt
    # Qwen3's template strips it itself: the messages go as they are.
    assert history_without_thinking(QWEN3, history(QWEN3_REPLY)) == history(QWEN3_REPLY)


def test_the_reply_being_continued_keeps_its_thinking() -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": R1_REPLY}]
    assert history_without_thinking(R1, messages) == messages


def test_the_chat_turn_passes_the_thinking_switch_to_the_template() -> None:
    """The window's Thinking box reaches the template through the turn's PromptContext."""
    from desktop.core.sampling import SamplerSettings
    from desktop.ui.chat.turns import PromptContext, render_pieces

    def prompt(thinking: bool | None) -> str:
        ctx = PromptContext(system_prompt="", instructions="", placement="system",
                            template=template(QWEN3), sampler=SamplerSettings(),
                            thinking=thinking)
        turn = render_pieces(ctx, [{"role": "user", "content": "Hi"}])
        return "".join(text for text, _trusted in turn.pieces)

    assert prompt(False).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert prompt(True).endswith("<|im_start|>assistant\n")
    assert prompt(None).endswith("<|im_start|>assistant\n")  # no switch: the template's default
