"""The raw head a captured step reads: the last step's reach as the first threshold tried
(`next_guess`), a guess that lets in too few or too many tokens set aside for a threshold found
afresh, and the head ranked by a partition and a short sort exactly as a full ranking ranks it,
ties at the cut included. Also display pieces read from a session's cache."""

from __future__ import annotations

import numpy as np
import pytest

from desktop.core.steps import StageView
from desktop.engine import step_shortcuts as S
from desktop.engine.session import display_pieces

NO_IDS = np.zeros(0, dtype=np.int32)


def _logits(seed: int, scale: float, ties: bool = False) -> np.ndarray:
    values = np.random.default_rng(seed).standard_normal(262_144) * scale
    if ties:
        values = np.round(values * 4) / 4
    return values.astype(np.float32)


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("scale", [0.5, 3.0, 12.0])
@pytest.mark.parametrize("count", [1, 40, 90])
def test_head_order_ranks_the_top_as_a_full_ranking_does(scale: float, ties: bool,
                                                         count: int) -> None:
    logits = _logits(int(scale * 10) + count, scale, ties)
    top = float(logits.max())
    ids, values = S.head_ids(logits, NO_IDS, None, top, count=count)
    assert ids is not None
    assert values is not None
    order, reached = S.head_order(values, count)
    full = S.ranked(ids, values)
    assert len(order) >= count
    assert ids[order].tolist() == ids[full[: len(order)]].tolist()
    # tie-complete: nothing outside the ranked part scores as high as its last
    assert np.count_nonzero(values >= values[order[count - 1]]) == len(order)
    assert reached <= float(values[order[count - 1]])


def test_a_good_guess_is_the_head_and_a_bad_one_is_set_aside(
        monkeypatch: pytest.MonkeyPatch) -> None:
    logits = _logits(3, 3.0)
    top = float(logits.max())
    fresh = S.head_ids(logits, NO_IDS, None, top, count=50)
    found: list[int] = []  # each time a threshold is found afresh
    real = S._threshold_for

    def counted(*args: object) -> float:
        found.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(S, "_threshold_for", counted)
    ranked_values = np.sort(logits)[::-1]
    good = float(ranked_values[200])  # lets in ~200 tokens: enough, not too many
    ids, _ = S.head_ids(logits, NO_IDS, None, top, count=50, guess=good)
    assert found == []
    assert ids is not None
    assert len(ids) == 201
    too_high = float(ranked_values[10])  # lets in 11 of the 50 asked for
    ids, _values = S.head_ids(logits, NO_IDS, None, top, count=50, guess=too_high)
    assert found == [1]
    assert ids is not None
    assert fresh[0] is not None
    assert ids.tolist() == fresh[0].tolist()
    too_low = float(ranked_values[20_000])  # lets in 20,001: far more than a head needs
    ids, _ = S.head_ids(logits, NO_IDS, None, top, count=50, guess=too_low)
    assert found == [1, 1]
    assert ids is not None
    assert len(ids) < 20_000


def test_next_guess_reaches_about_twice_the_count() -> None:
    logits = _logits(5, 3.0)
    top = float(logits.max())
    _ids, values = S.head_ids(logits, NO_IDS, None, top, count=50)
    assert values is not None
    gap = S.next_guess(top, S.reach_of(values, 50))
    let_in = np.count_nonzero(logits >= np.float32(top - gap))
    assert 2 * 50 + 64 <= let_in <= 16 * 50


def test_display_pieces_with_a_cache_ask_only_for_ids_not_seen() -> None:
    cache: dict[int, str] = {}
    asked: list[int] = []

    def piece(token: int) -> str:
        asked.append(token)
        if token >= 0:
            cache[token] = f"<{token}>"
        return f"<{token}>"

    stages = (StageView("raw", 10, 1.0, (1, 2, 3), (0.5, 0.3, 0.2)),
              StageView("top_k", 3, 1.0, (2, 3), (0.6, 0.4)))
    assert display_pieces(stages, 4, piece, cache) == {1: "<1>", 2: "<2>", 3: "<3>", 4: "<4>"}
    assert sorted(asked) == [1, 2, 3, 4]
    assert display_pieces(stages, 5, piece, cache)[5] == "<5>"
    assert sorted(asked) == [1, 2, 3, 4, 5]  # 1–4 came from the cache
