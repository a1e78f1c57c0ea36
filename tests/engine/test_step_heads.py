"""The raw head a captured step reads: the last step's reach as the first threshold tried
(`reach_of`), a guess that lets in too few tokens set aside for a threshold found afresh and one
that lets in far more narrowed among them, and the head ranked by a partition and a short sort
exactly as a full ranking ranks it, ties at the cut included. The raw softmax's sums shifted by
the last step's max. Also display pieces read from a session's cache."""

from __future__ import annotations

import numpy as np
import pytest

from desktop.core.steps import StageView
from desktop.engine import fused_scan
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
    ids, values = S.head_ids(logits, NO_IDS, None, top, count=50, guess=too_low)
    assert found == [1]  # narrowed among those it let in, no threshold found afresh
    assert ids is not None
    assert values is not None
    assert 50 <= len(ids) < 4096
    # still a head: every token scoring at least its lowest is inside, ids ascending
    assert np.count_nonzero(logits >= values.min()) == len(ids)
    assert np.all(np.diff(ids) > 0)
    assert values.tolist() == logits[ids].tolist()


def test_head_ids_finds_the_max_itself_when_not_given() -> None:
    logits = _logits(6, 3.0)
    with_max = S.head_ids(logits, NO_IDS, None, float(logits.max()), count=50)
    without = S.head_ids(logits, NO_IDS, None, None, count=50)
    assert with_max[0] is not None
    assert without[0] is not None
    assert without[0].tolist() == with_max[0].tolist()


def test_a_large_head_whose_sampled_threshold_falls_short_is_found_not_given_up() -> None:
    """The threshold comes from every 64th score; where those run a little high, it lets in
    fewer than asked. Reaching twice as far below the top then let in the whole vocabulary
    (past the head's limit: None, and the grammar checked all 262,144 tokens): a third more
    is asked of the sample instead."""
    logits = np.random.default_rng(4).standard_normal(262_144).astype(np.float32)
    logits[::64] += np.float32(0.15)  # the sample overestimates how many reach its threshold
    count = 32_768
    first = S._threshold_for(logits, count)
    assert count // 2 <= np.count_nonzero(logits >= np.float32(first)) < count  # falls short
    ids, values = S.head_ids(logits, NO_IDS, None, None, count=count)
    assert ids is not None
    assert values is not None
    assert count <= len(ids) <= 65_536
    assert float(values.min()) <= float(np.sort(logits)[-count])  # the top `count` are in


def test_the_next_guess_lets_in_about_four_times_the_count() -> None:
    logits = _logits(5, 3.0)
    _ids, values = S.head_ids(logits, NO_IDS, None, None, count=50)
    assert values is not None
    guess = S.reach_of(values, 50)
    let_in = np.count_nonzero(logits >= np.float32(guess))
    assert let_in == min(len(values), 4 * 50 + 800)
    _order, reached = S.head_order(values, 50)
    assert reached == guess


@pytest.mark.parametrize("off", [-12.0, 0.0, 15.0])
def test_raw_z_with_a_shift_off_the_max_match_float64(off: float) -> None:
    """A captured step shifts by the last step's max: any shift near this step's max gives the
    same probabilities and entropy."""
    if S._softmax_kernel() is None:
        pytest.skip("this llama.cpp build does not export the kernel")
    logits = (_logits(8, 4.0) + np.float32(20.0)).astype(np.float32)
    shift = float(logits.max()) + off
    found = S.raw_z(logits, shift)
    assert found is not None
    z, exps = found
    entropy = S.raw_entropy(logits, exps, z, shift, float(logits.max()))
    l64 = logits.astype(np.float64)
    p = np.exp(l64 - l64.max())
    p /= p.sum()
    assert entropy == pytest.approx(float(-(p * np.log2(p)).sum()), rel=1e-5)
    norm = S.Normaliser(shift, z, entropy, float(logits.max()))
    top = np.argsort(-l64)[:20]
    assert norm.probs(logits[top]) == pytest.approx(p[top], rel=1e-5)


def test_raw_z_refuses_a_shift_too_far_from_the_scores() -> None:
    if S._softmax_kernel() is None:
        pytest.skip("this llama.cpp build does not export the kernel")
    logits = _logits(9, 3.0)
    top = float(logits.max())
    assert S.raw_z(logits, top - 120.0) is None  # exp would overflow
    assert S.raw_z(logits, top + 120.0) is None  # z would underflow
    assert S.raw_z(logits, float("nan")) is None


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


@pytest.mark.parametrize("n", [0, 1, 5, 16, 40, 512, 513])
def test_a_handful_of_survivors_is_snapshot_as_numpy_snapshots_them(
        n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C snapshot (≤ 512 candidates) and the plain-Python one (≤ 16) list the same tokens in
    the same order (ties by id) with the same probabilities and mass as the numpy one."""
    logits = _logits(11, 3.0)
    ids = np.sort(np.argsort(-logits)[: max(n, 1)])[:n].astype(np.int32)
    view = np.zeros(n, dtype=S.TOKEN_DATA)
    view["id"] = ids
    view["logit"] = np.round(logits[ids] * 2) / 2  # ties among them
    if n > 2:
        view["logit"][1] = -np.inf  # a survivor a stage masked
    norm = S.raw_normaliser(logits)
    in_c = S.small_snapshot("min_p", view, 50, logits, norm)  # C where built
    monkeypatch.setattr(fused_scan, "built", lambda: False)
    tiny = S.small_snapshot("min_p", view, 50, logits, norm)
    monkeypatch.setattr(S, "TINY", -1)  # the numpy path for the same view
    full = S.small_snapshot("min_p", view, 50, logits, norm)
    for other in (tiny, in_c):
        assert (other.name, other.kept, other.ids) == (full.name, full.kept, full.ids)
        assert other.probs == pytest.approx(full.probs, rel=1e-12)
        assert other.mass == pytest.approx(full.mass, rel=1e-12)


@pytest.mark.parametrize("n", [0, 1, 4, 16, 40, 512])
@pytest.mark.parametrize("masked", ["one", "all"])
def test_the_final_distributions_figures_agree_on_every_path(
        n: int, masked: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from desktop.engine import step_sampler

    final = np.zeros(n, dtype=S.TOKEN_DATA)
    final["id"] = np.arange(100, 100 + n, dtype=np.int32)
    final["logit"] = np.linspace(3.0, -2.0, n, dtype=np.float32)
    if masked == "all":
        final["logit"] = -np.inf  # uniform, as the draw would see it
    elif n > 2:
        final["logit"][2] = -np.inf
    token = 100 + n // 2 if n else 7
    in_c = step_sampler._final_stats(final, token)  # C where built
    monkeypatch.setattr(fused_scan, "built", lambda: False)
    tiny = step_sampler._final_stats(final, token)
    monkeypatch.setattr(step_sampler, "TINY", -1)
    full = step_sampler._final_stats(final, token)
    assert tiny == pytest.approx(full, rel=1e-12, abs=1e-15)
    assert in_c == pytest.approx(full, rel=1e-12, abs=1e-15)
    assert step_sampler._final_stats(final, 99_999)[0] == 0.0  # not among them
