"""The raw softmax a captured step computes over the whole vocabulary (raw probabilities and
entropy), with llama.cpp's vectorised kernel and with numpy, against float64 arithmetic; the
worker's heap settings; and no numpy set routine that drags numpy.ma into the first step."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from desktop.engine import step_shortcuts
from desktop.engine.step_shortcuts import all_distinct, raw_normaliser, sorted_unique

N_VOCAB = 262_144


def _exact(logits: np.ndarray) -> tuple[np.ndarray, float]:
    l64 = logits.astype(np.float64)
    p = np.exp(l64 - l64.max())
    p /= p.sum()
    nz = p[p > 0]
    return p, float(-(nz * np.log2(nz)).sum())


CASES = {
    "gemma-like": (0, 4.0, 0.0),
    "peaked": (1, 12.0, 0.0),
    "huge scores": (2, 1.0, 500.0),  # exp(l) overflows float32 without a shift
    "very negative": (3, 2.0, -400.0),
}


@pytest.mark.parametrize("with_kernel", [True, False], ids=["llama.cpp kernel", "numpy"])
@pytest.mark.parametrize("case", list(CASES))
def test_normaliser_matches_float64(case: str, with_kernel: bool,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    seed, scale, offset = CASES[case]
    logits = (np.random.default_rng(seed).standard_normal(N_VOCAB) * scale
              + offset).astype(np.float32)
    if not with_kernel:
        monkeypatch.setattr(step_shortcuts, "_softmax_kernel", lambda: None)
    norm = raw_normaliser(logits)
    p, entropy = _exact(logits)
    assert norm.max == float(logits.max())
    top = np.argsort(-logits)[:100]
    assert norm.probs(logits[top]) == pytest.approx(p[top], rel=1e-5)
    assert norm.entropy == pytest.approx(entropy, rel=1e-5, abs=1e-6)


def test_scores_of_another_type_go_to_numpy() -> None:
    """The kernel reads float32: float64 scores (a transformers model's, say) must not reach it."""
    logits = np.random.default_rng(4).standard_normal(N_VOCAB) * 3
    norm = raw_normaliser(logits)
    p, entropy = _exact(logits)
    assert norm.entropy == pytest.approx(entropy, rel=1e-6)
    assert norm.probs(logits[:5]) == pytest.approx(p[:5], rel=1e-6)


def test_this_build_exports_the_kernel() -> None:
    """The locked llama.cpp build (one CPU library, built for this machine) exports it; a build
    that does not would leave capture at numpy's speed, which `openlid bench` would show."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the locked build is checked on Linux")
    assert step_shortcuts._softmax_kernel() is not None


def test_set_helpers_agree_with_numpy() -> None:
    rng = np.random.default_rng(5)
    for values in (rng.integers(0, 50, 200).astype(np.int32), np.zeros(0, np.int32),
                   np.array([3], np.int32), np.round(rng.standard_normal(300), 1)):
        assert np.array_equal(sorted_unique(values), np.unique(values))
        assert all_distinct(values) is (len(np.unique(values)) == len(values))


def test_a_captured_step_never_imports_numpy_ma() -> None:
    """np.unique imports numpy.ma on first use (70–140 ms): inside the first captured step of a
    reply that was a hitch before its first token."""
    code = """
import sys
import numpy as np
from desktop.core.sampling import SamplerSettings
from desktop.engine.step_sampler import StepSampler
logits = (np.random.default_rng(0).standard_normal(262144) * 4).astype(np.float32)
for settings in (SamplerSettings(seed=1), SamplerSettings(seed=1, top_k=0, repeat_penalty=1.1),
                 SamplerSettings(seed=1, top_k=0, top_n_sigma=1.0)):
    sampler = StepSampler(settings, 262144, 4096)
    sampler.accept([1, 2, 3, 2])
    for _ in range(3):
        sampler.sample_captured(logits)
    sampler.close()
print("numpy.ma" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_the_worker_keeps_its_freed_memory() -> None:
    code = "from desktop.engine.heap import keep_heap; print(keep_heap())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    expected = "True" if sys.platform.startswith("linux") else "False"
    assert out.stdout.strip() == expected
