"""The pure side of "without this part": the prompt rebuilt from a reply's X-ray record, one
part taken out, and the per-token drops summed into words."""

from __future__ import annotations

import math

import pytest

from desktop.core.conversations import ablation as A
from desktop.core.conversations import xray as X

T = X.TEMPLATE


def _turn(*parts: tuple[str, str, int]) -> X.TurnXray:
    return X.TurnXray(7, 3, recorded=True, has_parts=True,
                      parts=tuple(X.PromptPart(kind, text, 1, turn) for kind, text, turn in parts))


TURN = _turn(
    (T, "", 0), (T, "<bos><start_of_turn>user\n", 0), (X.SYSTEM, "Be brief.", 0),
    (T, "\n\n", 0), (X.HISTORY, "Hi", 1), (T, "<end_of_turn>\n<start_of_turn>model\n", 0),
    (X.HISTORY, "Hello!", 1), (T, "<end_of_turn>\n<start_of_turn>user\n", 0),
    (X.HISTORY, "Capital of France?", 2), (T, "<end_of_turn>\n<start_of_turn>model\n", 0),
    (X.HISTORY, "Paris.", 2), (T, "<end_of_turn>\n<start_of_turn>user\n", 0),
    (X.NEW, "And Italy?", 3), (T, "<end_of_turn>\n<start_of_turn>model\n", 0))


def _text(pieces: A.Pieces) -> str:
    return "".join(t for t, _ in pieces)


def test_prompt_pieces_are_the_record_with_markup_trusted() -> None:
    pieces = A.prompt_pieces(TURN)
    assert _text(pieces) == "".join(p.text for p in TURN.parts)
    assert ("Be brief.", False) in pieces
    assert ("<bos><start_of_turn>user\n", True) in pieces
    assert all(text for text, _ in pieces)  # the engine's BOS (no text) is the engine's


def test_targets_name_every_part_but_markup() -> None:
    names = [t.name for t in A.targets(TURN)]
    assert names == ["system prompt", "turn 1", "turn 2", "new message (turn 3)"]


def test_without_the_system_prompt_only_its_text_goes() -> None:
    text = _text(A.ablated_pieces(TURN, A.Target(X.SYSTEM)))
    assert "Be brief." not in text
    assert text == _text(A.prompt_pieces(TURN)).replace("Be brief.", "")


def test_without_an_earlier_turn_the_next_turn_opens_where_it_did() -> None:
    text = _text(A.ablated_pieces(TURN, A.Target(X.HISTORY, 2)))
    assert text == ("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model"
                    "\nHello!<end_of_turn>\n<start_of_turn>user\nAnd Italy?<end_of_turn>\n"
                    "<start_of_turn>model\n")
    first = _text(A.ablated_pieces(TURN, A.Target(X.HISTORY, 1)))
    assert first.startswith("<bos><start_of_turn>user\nBe brief.\n\nCapital of France?"
                            "<end_of_turn>\n<start_of_turn>model\nParis.")


def test_parts_that_cannot_be_removed_say_why() -> None:
    with pytest.raises(A.AblationError, match="markup"):
        A.ablated_pieces(TURN, A.Target(T))
    with pytest.raises(A.AblationError, match="no custom instructions"):
        A.ablated_pieces(TURN, A.Target(X.INSTRUCTIONS))
    only = _turn((T, "<start_of_turn>user\n", 0), (X.NEW, "Hi", 1),
                 (T, "<end_of_turn>\n<start_of_turn>model\n", 0))
    with pytest.raises(A.AblationError, match="nothing of the conversation"):
        A.ablated_pieces(only, A.Target(X.NEW, 1))
    bare = X.TurnXray(1, 1, recorded=True, prompt_tokens=12)
    with pytest.raises(A.AblationError, match="not recorded"):
        A.prompt_pieces(bare)


def _scores(logprobs: list[float], pieces: list[str]) -> A.ReplyScores:
    return A.ReplyScores(tuple(range(len(pieces))), tuple(pieces), tuple(logprobs),
                         top_pieces=tuple(f"alt{i}" for i in range(len(pieces))))


def test_drops_total_most_affected_and_words() -> None:
    pieces = ["The", " pass", "word", " is", " Tang", "erine", "."]
    full = _scores([-1.0, -0.5, -0.1, -0.2, -0.3, -0.05, -0.4], pieces)
    without = _scores([-1.0, -0.7, -0.1, -0.1, -5.0, -1.05, -0.4], pieces)
    ab = A.Ablation(A.Target(X.SYSTEM), full, without)
    tokens = ab.tokens()
    assert tokens[4].drop == pytest.approx(4.7)
    assert tokens[4].ratio == pytest.approx(math.exp(4.7))
    assert tokens[3].drop == pytest.approx(-0.1)  # more likely without
    assert tokens[4].top_without == "alt4"
    assert ab.total_drop == pytest.approx(0.2 + 4.7 + 1.0 - 0.1)
    assert [t.piece for t in ab.most_affected(2)] == [" Tang", "erine"]
    assert all(t.drop > 0 for t in ab.most_affected(10))
    words = ab.words()
    assert [w.text for w in words] == ["The", " password", " is", " Tangerine."]
    assert words[3].drop == pytest.approx(5.7)
    assert words[1].first == 1
    summary = ab.summary()
    assert summary.startswith("Without the system prompt the same 7-token reply is")
    assert "less likely" in summary
    assert "' Tang'" in summary
    assert "less likely" in tokens[4].words()
    assert "more likely" in tokens[3].words()


def test_scores_of_different_tokens_are_refused() -> None:
    a = _scores([-1.0], ["a"])
    b = A.ReplyScores((5,), ("b",), (-1.0,))
    with pytest.raises(A.AblationError):
        A.Ablation(A.Target(X.SYSTEM), a, b)
    assert A.Ablation(A.Target(X.SYSTEM), a, a).summary().count("unchanged") == 1


def test_ratios_in_words() -> None:
    assert A.ratio_words(1.0) == "unchanged"
    assert A.ratio_words(2.5) == "2.50× less likely"
    assert A.ratio_words(1 / 4) == "4.00× more likely"
    assert A.ratio_words(1234.4) == "1,234× less likely"
    assert A.ratio_words(math.exp(30)) == "over a million times less likely"
