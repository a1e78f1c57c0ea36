"""The C pass over a step's scores (engine.fused_scan, desktop/engine/_scan.c) against float64
numpy, at every level this CPU runs: z, entropy, max and the ids at or above a threshold, the
vocabulary's length not a multiple of any vector width, ids past the buffer counted and never
written, shifts too far from the scores refused."""

from __future__ import annotations

import math
import platform
import sys
from pathlib import Path

import numpy as np
import pytest

from desktop.engine import fused_scan as F

LEVELS = list(range(F.level() + 1))


def _logits(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) * 3.0 + 12.0).astype(np.float32)


def _exact(logits: np.ndarray) -> tuple[float, float]:
    """z shifted by the max, and the entropy in bits, in float64."""
    l64 = logits.astype(np.float64)
    w = np.exp(l64 - l64.max())
    p = w / w.sum()
    return float(w.sum()), float(-(p * np.log2(p)).sum())


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("n", [262_144, 1_000, 5_003])
@pytest.mark.parametrize("off", [-12.0, 0.0, 15.0])
def test_each_level_matches_float64(level: int, n: int, off: float) -> None:
    logits = _logits(n, seed=n)
    top = float(logits.max())
    threshold = float(np.sort(logits)[-40])  # 40 ids, one of them the last score
    logits[-1] = np.float32(threshold) + np.float32(1.0)  # a hit in the scalar tail
    found = F.scan(logits, top + off, threshold, at_level=level)
    assert found is not None
    assert found.normalised
    z, entropy = _exact(logits)
    assert found.top == float(logits.max())
    assert found.z * math.exp(found.shift - found.top) == pytest.approx(z, rel=1e-6)
    assert found.entropy == pytest.approx(entropy, abs=2e-5)
    expected = np.flatnonzero(logits >= np.float32(threshold))
    assert found.count == len(expected)
    assert found.ids is not None
    assert found.ids.tolist() == expected.tolist()


@pytest.mark.parametrize("level", LEVELS)
def test_ids_past_the_buffer_are_counted_never_written(level: int) -> None:
    logits = _logits(262_144, seed=1)
    threshold = float(np.sort(logits)[-100])
    F.scan(logits, float(logits.max()))  # the buffer exists
    F._ids[0][:] = -7
    found = F.scan(logits, float(logits.max()), threshold, cap=20, at_level=level)
    assert found is not None
    assert found.count == 100
    assert found.ids is None
    assert F._ids[0][:20].tolist() == np.flatnonzero(logits >= threshold)[:20].tolist()
    assert (F._ids[0][20:] == -7).all()


@pytest.mark.parametrize("level", LEVELS)
def test_a_shift_too_far_from_the_scores_is_not_normalised(level: int) -> None:
    logits = _logits(262_144, seed=2)
    top = float(logits.max())
    above = F.scan(logits, top - 100.0, at_level=level)  # exp would overflow
    below = F.scan(logits, top + 120.0, at_level=level)  # z would underflow
    assert above is not None
    assert below is not None
    assert not above.normalised
    assert not below.normalised
    assert above.top == below.top == top  # the caller shifts by it next
    assert F.scan(logits, math.nan) is None


def test_scores_far_below_the_shift_add_nothing_visible() -> None:
    """Scores 87 nats or more below the shift count as e^-87: z and entropy stay exact."""
    logits = _logits(262_144, seed=3)
    logits[::7] -= np.float32(200.0)
    for level in LEVELS:
        found = F.scan(logits, float(logits.max()), at_level=level)
        assert found is not None
        z, entropy = _exact(logits)
        assert found.z == pytest.approx(z, rel=1e-6)
        assert found.entropy == pytest.approx(entropy, abs=2e-5)


def test_the_extension_is_built_where_it_can_be() -> None:
    """On x86-64 Linux with AVX2 (the project's machines, CI) the optional extension must have
    compiled: a capture without it is ~0.2 ms a token slower, and nothing else would say so."""
    cpuinfo = Path("/proc/cpuinfo")
    if not (sys.platform == "linux" and platform.machine() == "x86_64" and cpuinfo.exists()):
        pytest.skip("the vectorised pass exists for x86-64 only")
    flags = cpuinfo.read_text()
    if " avx2" not in flags or " fma" not in flags:
        pytest.skip("this CPU has no AVX2 with FMA")
    assert F.available(), ("desktop/engine/_scan.c did not compile, or the built module is from "
                           "other sources (its ABI): see `make install`'s output")
    assert F.level() == (2 if " avx512f" in flags and " avx512dq" in flags else 1)


def test_snapshots_run_in_c_up_to_their_limit() -> None:
    """`snapshot` and `final_stats` answer for ≤ SNAPSHOT_MAX candidates (step_shortcuts and
    step_sampler compare their figures with numpy's) and leave larger arrays to numpy."""
    if not F.built():
        pytest.skip("the extension did not compile here")
    from desktop.engine.step_shortcuts import TOKEN_DATA

    logits = _logits(1_000, seed=4)
    for n, answers in ((F.SNAPSHOT_MAX, True), (F.SNAPSHOT_MAX + 1, False)):
        view = np.zeros(n, dtype=TOKEN_DATA)
        view["id"] = np.arange(n, dtype=np.int32)
        view["logit"] = logits[:n]
        found = F.snapshot(view, 50, logits, float(logits.max()), 1.0)
        assert (found is not None) == answers
        assert (F.final_stats(view, 3) is not None) == answers
    found = F.snapshot(view[:10], 50, logits, float(logits.max()), 1.0)
    assert found is not None
    kept, _mass, ids, probs = found
    assert kept == 10
    assert len(ids) == len(probs) == 10
    assert sum(probs) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(6))
def test_a_head_ranked_in_c_is_ranked_as_numpy_ranks_it(seed: int) -> None:
    """`rank` keeps the count best and every one tied with the last, most probable first with
    ties by id, and finds the reach-th score: as a full lexsort does, ties included."""
    if not F.built():
        pytest.skip("the extension did not compile here")
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(20_000).astype(np.float32)
    if seed % 2:
        logits = (np.round(logits * 2) / 2).astype(np.float32)  # many ties at every cut
    for n in (1, 7, 64, 1_000, 4_999):
        ids = np.sort(rng.choice(len(logits), n, replace=False)).astype(np.int32)
        values = logits[ids]
        order = np.lexsort((ids, -values.astype(np.float64)))
        for count in {1, max(1, n // 3), n}:
            for reach in {count, n}:
                found = F.rank(logits, ids, count, reach)
                assert found is not None
                ranked_ids, ranked_values, floor = found
                cut = values[order[count - 1]]
                expected = order[values[order] >= cut]
                assert ranked_ids.tolist() == ids[expected].tolist()
                assert ranked_values.tolist() == values[expected].tolist()
                assert floor == float(np.sort(values)[::-1][reach - 1])
    assert F.rank(logits, ids, 0, 1) is None  # out of range: the caller ranks with numpy


def test_ids_that_are_no_tokens_are_refused_not_read() -> None:
    """An id outside the scores (a sorted fill's -1 past its head) or a NaN score makes the C
    calls decline, and the caller's numpy path answers; nothing is read out of bounds."""
    if not F.built():
        pytest.skip("the extension did not compile here")
    from desktop.engine.step_shortcuts import TOKEN_DATA

    logits = _logits(1_000, seed=5)
    view = np.zeros(3, dtype=TOKEN_DATA)
    view["id"] = [4, -1, 7]
    view["logit"] = [1.0, 2.0, 3.0]
    assert F.snapshot(view, 50, logits, 0.0, 1.0) is None
    view["id"][1] = 1_000
    assert F.snapshot(view, 50, logits, 0.0, 1.0) is None
    assert F.rank(logits, np.array([3, 1_000], dtype=np.int32), 1, 2) is None
    assert F.rank(logits, np.array([-1, 3], dtype=np.int32), 1, 2) is None
    nan = logits.copy()
    nan[3] = np.nan
    assert F.rank(nan, np.array([2, 3], dtype=np.int32), 1, 2) is None
    assert F.rank(logits, np.array([2, 3], dtype=np.int32), 1, 2) is not None


def test_a_build_from_other_sources_is_not_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module's ABI number must be the one fused_scan's signatures were written for: a stale
    in-place build (other arguments) is left alone and the capture keeps to numpy."""
    if not F.built():
        pytest.skip("the extension did not compile here")
    monkeypatch.setattr(F, "ABI", F.ABI + 1)
    F._library.cache_clear()
    try:
        assert F._library() is None
    finally:
        monkeypatch.undo()
        F._library.cache_clear()
    assert F._library() is not None


def test_fill_writes_ids_and_scores_in_id_order_and_leaves_p() -> None:
    """Candidates.fill's one pass in C writes what numpy's two write; the numpy path is kept
    where the extension is not built."""
    from desktop.engine.step_shortcuts import Candidates

    if not F.built():
        pytest.skip("the extension did not compile here")
    logits = _logits(5_003)
    cand = Candidates(5_003)
    cand.buf["p"] = 0.5
    cand.buf["id"] = -7
    cand.fill(logits)
    assert cand.buf["id"].tolist() == list(range(5_003))
    assert np.array_equal(cand.buf["logit"], logits)
    assert (cand.buf["p"] == 0.5).all()
    assert (cand.arr.size, cand.arr.selected, cand.arr.sorted) == (5_003, -1, False)
    assert not F.fill(cand.buf[:10], logits)  # lengths that differ: numpy's path


def test_window_view_ranks_the_changed_scores_as_numpy_does() -> None:
    """A penalties or DRY stage's view in C against the same figures in float64 numpy: the
    window's new scores ranked among the raw head (ties by id), z changed by the window's terms;
    a window that held most of the mass is left to numpy (None)."""
    if not F.built():
        pytest.skip("the extension did not compile here")
    logits = _logits(20_000, seed=3)
    logits[[5, 6]] = logits.max()  # a tie at the top, in and out of the window
    order = np.lexsort((np.arange(len(logits)), -logits.astype(np.float64)))
    raw_ids = order[:90].astype(np.int32)
    w_ids = np.sort(np.concatenate([order[:6], order[3000:3004]])).astype(np.int32)
    w_vals = (logits[w_ids] - np.float32(1.5)).astype(np.float32)
    w_vals[-1] = logits.max() + np.float32(0.5)  # one window token rises to the top
    shift = float(logits.max())
    z = float(np.exp(logits.astype(np.float64) - shift).sum())
    ids, probs = F.window_view(logits, raw_ids, w_ids, w_vals, shift, z, 50)
    current = logits.astype(np.float64).copy()
    current[w_ids] = w_vals
    z_new = float(np.exp(current - shift).sum())
    pool = np.union1d(raw_ids, w_ids)
    ranked = pool[np.lexsort((pool, -current[pool]))][:50]
    assert list(ids) == ranked.tolist()
    assert ids[0] == w_ids[-1]
    assert probs == pytest.approx((np.exp(current[ranked] - shift) / z_new).tolist(), rel=1e-9)
    # The window held nearly all of the mass and lost it: summed afresh by numpy instead.
    peaked = logits.copy()
    peaked[w_ids[0]] = shift + 40.0
    z_peaked = float(np.exp(peaked.astype(np.float64) - shift).sum())
    low = np.full(len(w_ids), -50.0, dtype=np.float32)
    assert F.window_view(peaked, raw_ids, w_ids, low, shift, z_peaked, 50) is None
