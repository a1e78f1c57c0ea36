"""Top-p's cut found on a head of the vocabulary (engine.step_top_p) leaves exactly what
llama.cpp's own top-p leaves on the whole vocabulary: the same tokens in the same order, with
the same float32 scores and probabilities, bit for bit — and hands the step back to llama.cpp
where its sort could order tokens otherwise (ties) or the head would be most of the vocabulary.
"""

from __future__ import annotations

from typing import Any

import llama_cpp as L
import numpy as np
import pytest

from desktop.core.sampling import SamplerSettings
from desktop.engine import fused_scan
from desktop.engine.step_shortcuts import Candidates
from desktop.engine.step_top_p import TopPHead
from tests.engine.test_step_sampler import N_VOCAB, FullArray, _against_llama, _logits


@pytest.fixture(autouse=True, params=["c", "probe"])
def _path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test twice: with the numbers computed in C (fused_scan.TopPCut) and with
    llama.cpp's own softmax as the probe (where the extension is not built)."""
    if request.param == "probe":
        monkeypatch.setattr(fused_scan.TopPCut, "apply", lambda self, buf, n: None)
    elif not fused_scan.built():
        pytest.skip("the extension did not compile here")


def _both(logits: np.ndarray, p: float) -> tuple[Any, Any, TopPHead]:
    """(llama.cpp's top-p on the whole array, the head's result, the head) for `logits`."""
    full = FullArray(logits)
    real = L.llama_sampler_init_top_p(p, 0)
    cand = Candidates(len(logits))
    cand.fill(logits)
    head = TopPHead(p)
    try:
        L.llama_sampler_apply(real, full.ref)
        head.apply(cand, real)
    finally:
        head.close()
        L.llama_sampler_free(real)
    return full, cand, head


def _peaked(seed: int, slope: float, top: float = 16.0) -> np.ndarray:
    """Gemma-like logits: 800 tokens falling off as a power law (p ∝ rank^-slope) over a
    long, flat tail."""
    logits = _logits(seed, 1.0)
    rng = np.random.default_rng(seed)
    head = top - slope * np.log1p(np.arange(800)) + rng.uniform(0, 0.01, 800)
    logits[rng.choice(N_VOCAB, 800, replace=False)] = head.astype(np.float32)
    return logits


@pytest.mark.parametrize(("seed", "slope", "p"), [
    (1, 1.5, 0.95), (2, 1.5, 0.9), (3, 3.0, 0.9), (4, 2.0, 0.5), (5, 1.2, 0.8),
])
def test_the_head_leaves_what_llama_cpps_top_p_leaves_bit_for_bit(seed: int, slope: float,
                                                                  p: float) -> None:
    logits = _peaked(seed, slope)
    full, cand, head = _both(logits, p)
    assert head.used == 1, "these logits have a short head: no fallback"
    mine, theirs = cand.view(), full.view()
    assert (cand.arr.size, bool(cand.arr.sorted)) == (full.arr.size, bool(full.arr.sorted))
    assert mine.tobytes() == theirs.tobytes()  # ids, float32 scores and probabilities


def test_a_cut_past_llama_cpps_first_256_is_found_too() -> None:
    """llama.cpp sorts its whole array when the best 256 hold less than p: the head still
    finds the same cut."""
    logits = _peaked(6, 1.0)
    full, cand, head = _both(logits, 0.95)
    assert full.arr.size > 256
    assert head.used == 1
    assert cand.view().tobytes() == full.view().tobytes()


def test_a_tie_at_the_cut_or_among_the_kept_goes_to_llama_cpp() -> None:
    logits = _peaked(7, 1.5)
    full, _, _ = _both(logits, 0.9)
    kept = full.view()
    last, before = int(kept["id"][-1]), int(kept["id"][-2])
    at_cut = logits.copy()
    outside = np.setdiff1d(np.arange(N_VOCAB), kept["id"])[0]
    at_cut[outside] = logits[last]  # a token outside with the last kept token's score
    among = logits.copy()
    among[last] = logits[before]
    for tied in (at_cut, among):
        full, cand, head = _both(tied, 0.9)
        assert (head.used, head.fallbacks) == (0, 1)
        assert cand.view().tobytes() == full.view().tobytes()


def test_a_flat_distribution_goes_to_llama_cpp() -> None:
    full, cand, head = _both(_logits(8, 0.1), 0.95)  # 0.95 of the mass: most of the vocabulary
    assert (head.used, head.fallbacks) == (0, 1)
    assert cand.view().tobytes() == full.view().tobytes()


@pytest.mark.parametrize("settings", [
    SamplerSettings(seed=41, top_k=0, dry_multiplier=0.8, top_p=0.95),
    SamplerSettings(seed=42, top_k=0, xtc_probability=0.5, xtc_threshold=0.05, top_p=0.9),
    SamplerSettings(seed=43, top_k=0, repeat_penalty=1.1, top_p=0.95, min_p=0.0),
], ids=["dry", "xtc", "penalties"])
def test_whole_chains_with_top_p_first_draw_llama_cpps_tokens(settings: SamplerSettings,
                                                              vocab: Any) -> None:
    """Captured and fast draws against llama.cpp's whole chain, with the head doing the cut on
    most steps and a flat step handed to llama.cpp."""
    steps = [_peaked(800 + i, (1.0, 1.5, 3.0)[i % 3]) for i in range(6)]
    steps.append(_logits(810, 0.1))
    sampler = _against_llama(settings, steps, vocab)
    assert sampler.top_p_head is not None
    assert sampler.top_p_head.used >= 5


def test_the_cut_follows_llama_cpps_float32_running_sum_not_the_exact_one() -> None:
    """p set exactly where llama.cpp's float32 running sum reaches it but the exact sum of the
    same probabilities does not: the cut must land where llama.cpp's lands."""
    logits = _peaked(9, 1.0)
    full, _, _ = _both(logits, 0.95)
    probs = full.view()["p"]
    running = np.cumsum(probs, dtype=np.float32)
    exact = np.cumsum(probs.astype(np.float64))
    over = np.flatnonzero(running.astype(np.float64) > exact)
    k = int(over[len(over) // 2])
    full, cand, head = _both(logits, float(running[k]))
    assert full.arr.size == k + 1
    assert head.used == 1
    assert cand.view().tobytes() == full.view().tobytes()
