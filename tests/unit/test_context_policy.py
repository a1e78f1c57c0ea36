"""The context overflow policies: stop, rolling window, truncate middle (pure functions)."""

from __future__ import annotations

import pytest

from desktop.core.conversations.overflow import (
    ContextOverflow,
    estimate_tokens,
    fit_messages,
    reply_reserve,
)


def conversation(turns: int, system: bool = True) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "sys"}] if system else []
    for t in range(turns):
        messages.append({"role": "user", "content": f"q{t}"})
        messages.append({"role": "assistant", "content": f"a{t}"})
    messages.append({"role": "user", "content": "last"})
    return messages


def contents(fitted_messages: tuple[dict[str, str], ...]) -> list[str]:
    return [m["content"] for m in fitted_messages]


def tens(messages: list[dict[str, str]]) -> list[int]:
    return [10] * len(messages)  # every message 10 tokens


def test_everything_fits_and_nothing_is_noted() -> None:
    messages = conversation(3)
    for policy in ("stop", "rolling_window", "truncate_middle"):
        fitted = fit_messages(messages, 1000, 100, policy, tens(messages))
        assert contents(fitted.messages) == [m["content"] for m in messages]
        assert (fitted.dropped_turns, fitted.note, fitted.tokens) == (0, "", 80)


def test_stop_says_how_many_tokens_over() -> None:
    messages = conversation(3)  # 8 messages, 80 tokens; budget 100 - 30 = 70
    with pytest.raises(ContextOverflow, match=r"10 tokens over") as info:
        fit_messages(messages, 100, 30, "stop", tens(messages))
    assert info.value.over == 10


def test_rolling_window_drops_the_oldest_turns_after_the_system_message() -> None:
    messages = conversation(4)  # 10 messages = 100 tokens; budget 60 → drop 2 turns (40)
    fitted = fit_messages(messages, 80, 20, "rolling_window", tens(messages))
    assert contents(fitted.messages) == ["sys", "q2", "a2", "q3", "a3", "last"]
    assert (fitted.dropped_turns, fitted.tokens) == (2, 60)
    assert fitted.note == "2 oldest turns left out to fit 80 tokens."
    assert fitted.kept == (0, 5, 6, 7, 8, 9)


def test_truncate_middle_keeps_the_first_turn_and_the_latest() -> None:
    messages = conversation(4)
    fitted = fit_messages(messages, 80, 20, "truncate_middle", tens(messages))
    assert contents(fitted.messages) == ["sys", "q0", "a0", "q3", "a3", "last"]
    assert fitted.note == "2 turns from the middle left out to fit 80 tokens."


def test_without_a_system_message() -> None:
    messages = conversation(3, system=False)  # 7 messages, 70 tokens; budget 40
    fitted = fit_messages(messages, 50, 10, "rolling_window", tens(messages))
    assert contents(fitted.messages) == ["q2", "a2", "last"]
    assert fitted.note == "2 oldest turns left out to fit 50 tokens."


def test_the_last_turn_is_never_dropped() -> None:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "x" * 700}]
    for policy in ("rolling_window", "truncate_middle"):
        with pytest.raises(ContextOverflow, match="Even after leaving out"):
            fit_messages(messages, 100, 10, policy)


def test_count_as_a_function_and_validation() -> None:
    messages = conversation(2)
    fitted = fit_messages(messages, 1000, 10, "stop", lambda m: len(m["content"]))
    assert fitted.tokens == sum(len(m["content"]) for m in messages)
    with pytest.raises(ValueError, match="unknown overflow policy"):
        fit_messages(messages, 1000, 10, "shrug")
    with pytest.raises(ValueError, match="one number per message"):
        fit_messages(messages, 1000, 10, "stop", [1, 2])


def test_estimate_and_reply_reserve() -> None:
    assert estimate_tokens("") == 4
    assert estimate_tokens("x" * 35) == 14
    assert estimate_tokens("x" * 35, scale=2.0) == 28
    assert reply_reserve(4096, 256) == 256
    assert reply_reserve(1024, 4000) == 512  # at most half the context
    # An unknown context size (0) applies no policy.
    assert fit_messages(conversation(50), 0, 256, "stop").dropped_turns == 0
