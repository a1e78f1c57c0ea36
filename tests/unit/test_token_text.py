"""Readable token labels, probability words, step comparison and step exports."""

from __future__ import annotations

import csv
import io
import json

import pytest

from desktop.core.steps import StageView, StepRecord
from desktop.core.token_text import (
    compare_steps,
    describe_comparison,
    feeding_stage,
    format_bits,
    format_prob,
    stage_changed,
    stage_is_complete,
    step_csv,
    step_json,
    step_rows,
    token_label,
)


@pytest.mark.parametrize(
    ("piece", "label"),
    [
        (" the", "␣the"),
        ("\n", "↵"),
        ("\n\n", "↵↵"),
        ("\tx", "→x"),
        ("  ", "␣␣"),
        ("\\xe2", "⟨E2⟩"),
        ("<0xE2>", "⟨E2⟩"),
        ("<0x0a>", "⟨0A⟩"),
        ("a\\x80\\xBFb", "a⟨80⟩⟨BF⟩b"),
        ("", "∅"),
        ("\x01", "⟨01⟩"),
        ("<end_of_turn>", "<end_of_turn>"),
        ("naïve", "naïve"),
        ("\r\n", "␍↵"),
    ],
)
def test_token_label_makes_invisible_text_visible(piece: str, label: str) -> None:
    assert token_label(piece) == label


def test_token_label_shortens_long_pieces() -> None:
    label = token_label("x" * 100, max_chars=10)
    assert label == "x" * 9 + "…"
    assert len(label) == 10


@pytest.mark.parametrize(
    ("p", "text"),
    [(0.0, "0%"), (1.0, "100%"), (0.4321, "43%"), (0.0432, "4.3%"), (0.00432, "0.43%"),
     (0.00001234, "1.2e-05"), (0.999, "99.90%")],
)
def test_format_prob(p: float, text: str) -> None:
    assert format_prob(p) == text


RAW = StageView("raw", 1000, 1.0, (5, 7, 9, 11), (0.5, 0.3, 0.15, 0.05))
TOP_K = StageView("top_k", 3, 0.95, (5, 7, 9), (0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95))
TOP_P = StageView("top_p", 3, 0.95, TOP_K.ids, TOP_K.probs)  # cut nothing at this step
GREEDY = StageView("temperature", 1, 0.5, (5,), (1.0,))


def record(stages: tuple[StageView, ...], token: int = 7, prob: float = 0.3,
           replayed: bool = False) -> StepRecord:
    pieces = {5: " the", 7: "\n", 9: "\\xe2", 11: ""}
    return StepRecord(step=2, token_id=token, text=pieces[token], piece=pieces[token], prob=prob,
                      raw_prob=0.3, raw_rank=2, entropy_raw=1.6, entropy_final=1.4,
                      stages=stages, pieces=pieces, n_vocab=1000, replayed=replayed)


def test_stage_helpers() -> None:
    rec = record((RAW, TOP_K, TOP_P))
    assert not stage_is_complete(RAW)
    assert stage_is_complete(TOP_K)
    assert stage_changed(RAW, TOP_K)
    assert not stage_changed(TOP_K, TOP_P)
    assert feeding_stage(rec, "top_p") is TOP_K
    assert feeding_stage(rec, "raw") is None
    assert feeding_stage(rec, "min_p") is None


def test_compare_steps_names_tokens_that_became_impossible() -> None:
    original = record((RAW, TOP_K))
    replay = record((RAW, GREEDY), prob=0.0, replayed=True)
    cmp = compare_steps(original, replay)
    assert cmp.became_impossible == (7, 9)
    assert cmp.became_possible == ()
    assert (cmp.kept_before, cmp.kept_after) == (3, 1)
    assert cmp.exact
    text = describe_comparison(cmp, original.pieces)
    assert "‘↵’ was 30%, now 0% (no longer possible)." in text
    assert "Became impossible: ‘↵’, ‘⟨E2⟩’." in text
    assert "3 → 1" in text


def test_compare_steps_when_more_become_possible() -> None:
    original = record((RAW, GREEDY), token=5, prob=1.0)
    replay = record((RAW, TOP_K), token=5, prob=0.5 / 0.95, replayed=True)
    cmp = compare_steps(original, replay)
    assert cmp.became_possible == (7, 9)
    text = describe_comparison(cmp, original.pieces, limit=1)
    assert "Became possible: ‘↵’ and 1 more." in text


def test_step_rows_csv_and_json() -> None:
    rec = record((RAW, TOP_K))
    rows = step_rows(rec)
    assert len(rows) == 4 + 3
    assert rows[0] == {"stage": "raw", "rank": 1, "token_id": 5, "piece": " the",
                       "label": "␣the", "prob": 0.5, "raw_prob": 0.5, "chosen": 0}
    assert [r["chosen"] for r in rows if r["stage"] == "top_k"] == [0, 1, 0]
    parsed = list(csv.DictReader(io.StringIO(step_csv(rec))))
    assert len(parsed) == 7
    assert parsed[5]["piece"] == "\n"  # the real text survives CSV quoting
    assert float(parsed[5]["prob"]) == pytest.approx(0.3 / 0.95)
    data = json.loads(step_json(rec))
    assert data["token_id"] == 7
    assert data["stages"][1]["top"][0] == {"id": 5, "text": " the", "p": 0.5 / 0.95}
    assert data["replayed"] is False


@pytest.mark.parametrize("bits", [-0.0, -1e-9, 0.0])
def test_entropy_of_a_one_token_distribution_reads_zero_never_minus_zero(bits: float) -> None:
    assert format_bits(bits) == "0.00 bits"
