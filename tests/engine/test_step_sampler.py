"""The shortcuts in StepSampler change nothing: same stages, same token as the plain chain.

Runs llama.cpp's real samplers in this process on synthetic logits (no model needed).
"""

from __future__ import annotations

import numpy as np
import pytest

from desktop.core.sampling import SamplerSettings
from desktop.engine.step_sampler import StepSampler

N_VOCAB = 262_144


def _logits(seed: int, scale: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(N_VOCAB) * scale).astype(np.float32)


@pytest.mark.parametrize("scale", [0.5, 3.0, 12.0])
@pytest.mark.parametrize("settings", [
    SamplerSettings(seed=1),
    SamplerSettings(seed=2, top_k=5, top_p=0.5, min_p=0.2, temperature=1.5),
    SamplerSettings(seed=3, top_k=300, top_n=20),
    SamplerSettings(seed=4, temperature=0),
])
def test_head_fill_equals_full_fill(settings: SamplerSettings, scale: float) -> None:
    logits = _logits(int(scale * 10), scale)
    fast = StepSampler(settings, N_VOCAB, 4096)
    plain = StepSampler(settings, N_VOCAB, 4096)
    plain._top_k_first = False  # the whole vocabulary in the candidate array
    try:
        assert fast._top_k_first
        token_a, a = fast.sample_captured(logits)
        token_b, b = plain.sample_captured(logits)
        assert token_a == token_b
        for sa, sb in zip(a["stages"], b["stages"], strict=True):
            assert (sa.name, sa.kept, sa.ids) == (sb.name, sb.kept, sb.ids)
            assert sa.probs == pytest.approx(sb.probs, rel=1e-5)
            assert sa.mass == pytest.approx(sb.mass, rel=1e-5)
        assert a["raw_rank"] == b["raw_rank"]
        assert fast.sample_fast(logits) == plain.sample_fast(logits)
    finally:
        fast.close()
        plain.close()


def test_entropy_matches_a_direct_computation() -> None:
    logits = _logits(7, 4.0)
    sampler = StepSampler(SamplerSettings(seed=1), N_VOCAB, 4096)
    try:
        _, fields = sampler.sample_captured(logits)
    finally:
        sampler.close()
    l64 = logits.astype(np.float64)
    p = np.exp(l64 - l64.max())
    p /= p.sum()
    expected = float(-(p * np.log2(p)).sum())
    assert fields["entropy_raw"] == pytest.approx(expected, rel=1e-4)
    raw = fields["stages"][0]
    top = np.argsort(-l64)[:50]
    assert list(raw.ids) == top.tolist()
    assert raw.probs == pytest.approx(p[top].tolist(), rel=1e-4)


def test_huge_logits_fall_back_to_a_shifted_normaliser() -> None:
    logits = _logits(9, 1.0) + np.float32(500.0)  # exp() would overflow without the shift
    sampler = StepSampler(SamplerSettings(seed=1), N_VOCAB, 4096)
    try:
        _, fields = sampler.sample_captured(logits)
    finally:
        sampler.close()
    assert np.isfinite(fields["entropy_raw"])
    assert sum(fields["stages"][-1].probs) == pytest.approx(1.0)
