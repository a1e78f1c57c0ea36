"""StepSampler against llama.cpp itself: every stage it captures is what llama.cpp's sampler does
to the whole vocabulary, every token it draws is what llama.cpp's own chain draws, and the
shortcuts (window-only penalties and DRY, head-only top-k and min-p, threshold heads in
snapshots) change nothing, ties at the cut included.

Runs llama.cpp's real samplers in this process on synthetic logits; DRY's sequence breakers use
the shipped Gemma model's vocabulary (loaded vocabulary-only, no weights).
"""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp as L
import numpy as np
import pytest

from desktop.core.sampler_stages import removed_from_head
from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.engine import fused_scan
from desktop.engine.step_sampler import TOKEN_DATA, StepSampler, llama_chain
from desktop.engine.step_shortcuts import TokenWindow

N_VOCAB = 262_144
N_CTX = 4096


def _logits(seed: int, scale: float, ties: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(N_VOCAB) * scale
    if ties:  # scores on a 0.25 grid: many equal scores at every cut
        values = np.round(values * 4) / 4
    return values.astype(np.float32)


class FullArray:
    """The whole vocabulary in id order, as llama_sampler_sample hands it to a chain."""

    def __init__(self, logits: np.ndarray) -> None:
        self.buf = np.zeros(len(logits), dtype=TOKEN_DATA)
        self.buf["id"] = np.arange(len(logits), dtype=np.int32)
        self.buf["logit"] = logits
        self.arr = L.llama_token_data_array(
            data=self.buf.ctypes.data_as(L.llama_token_data_p), size=len(logits), selected=-1,
            sorted=False)
        self.ref = ctypes.byref(self.arr)

    def view(self) -> np.ndarray:  # XTC advances the start of the array
        start = ctypes.cast(self.arr.data, ctypes.c_void_p).value - self.buf.ctypes.data
        off = start // TOKEN_DATA.itemsize
        return self.buf[off : off + self.arr.size]

    def survivors(self) -> tuple[np.ndarray, np.ndarray]:
        v = self.view()
        alive = v["logit"] > -np.inf
        return v["id"][alive].copy(), v["logit"][alive].astype(np.float64)


def chain_draw(chain: Any, logits: np.ndarray) -> int:
    """llama.cpp's own draw: `chain` run on the whole vocabulary in id order (as
    llama_sampler_sample runs it), the token it selected accepted into the chain."""
    full = FullArray(logits)
    L.llama_sampler_apply(chain, full.ref)
    token = int(full.view()["id"][full.arr.selected])
    L.llama_sampler_accept(chain, token)
    return token


def _ranked(ids: np.ndarray, logits: np.ndarray, n: int) -> tuple[list[int], np.ndarray]:
    order = np.lexsort((ids, -logits))[:n]
    w = np.exp(logits - logits.max())
    return ids[order].tolist(), w[order] / w.sum()


HISTORY = [int(t) for t in np.random.default_rng(99).integers(0, 2000, 200)]


def _history(logits: np.ndarray) -> list[int]:
    """Past tokens that include the current favourites, so penalties and DRY really bite."""
    top = np.argsort(-logits)[:6].tolist()
    return [*HISTORY, *top, 7, 8, 9, *top[:3], 7, 8]


# One chain per stage, that stage on and cutting; the rest at llama.cpp's defaults.
BASE = SamplerSettings(seed=5, top_n=40, top_k=0, top_p=1.0, min_p=0.0, temperature=1.0)
STAGE_CASES = {
    "penalties": BASE.replace(repeat_penalty=1.5, presence_penalty=0.3, frequency_penalty=0.2),
    "dry": BASE.replace(dry_multiplier=2.0, dry_allowed_length=1),
    "top_n_sigma": BASE.replace(top_n_sigma=2.0),
    "top_k": BASE.replace(top_k=12),
    "typical": BASE.replace(typical_p=0.5, top_k=300),
    "top_p": BASE.replace(top_p=0.3),
    "min_p": BASE.replace(min_p=0.3),
    "xtc": BASE.replace(xtc_probability=1.0, xtc_threshold=0.01, min_p=0.05),
    "temperature": BASE.replace(temperature=0.7, dynatemp_range=0.5, dynatemp_exponent=1.5,
                                top_k=400),
}


def _stage_sampler(name: str, s: SamplerSettings, vocab: Any) -> Any:
    """The stage's llama.cpp sampler, built here independently of the engine's factory."""
    breakers = [b.encode() for b in s.dry_sequence_breakers]
    return {
        "penalties": lambda: L.llama_sampler_init_penalties(
            N_VOCAB, s.repeat_last_n, s.repeat_penalty, s.frequency_penalty, s.presence_penalty),
        "dry": lambda: L.llama_sampler_init_dry(
            vocab, s.dry_multiplier, s.dry_base, s.dry_allowed_length, s.dry_penalty_last_n,
            (ctypes.c_char_p * len(breakers))(*breakers), len(breakers)),
        "top_n_sigma": lambda: L.llama_sampler_init_top_n_sigma(s.top_n_sigma),
        "top_k": lambda: L.llama_sampler_init_top_k(s.top_k),
        "typical": lambda: L.llama_sampler_init_typical(s.typical_p, 0),
        "top_p": lambda: L.llama_sampler_init_top_p(s.top_p, 0),
        "min_p": lambda: L.llama_sampler_init_min_p(s.min_p, 0),
        "xtc": lambda: L.llama_sampler_init_xtc(s.xtc_probability, s.xtc_threshold, 0, s.seed),
        "temperature": lambda: L.llama_sampler_init_temp_ext(
            s.temperature, s.dynatemp_range, s.dynatemp_exponent),
    }[name]()


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("name", list(STAGE_CASES))
def test_each_stage_is_llama_cpps_own_on_the_whole_vocabulary(name: str, ties: bool,
                                                              vocab: Any) -> None:
    settings = STAGE_CASES[name]
    logits = _logits(3, 3.0, ties)
    history = _history(logits)
    sampler = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    sampler.accept(history)
    # llama.cpp's chain, stage by stage, on the whole vocabulary in id order.
    full = FullArray(logits)
    reference: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    built = []
    for stage in settings.order:
        if not settings.is_on(stage):
            continue
        smpl = _stage_sampler(stage, settings, vocab)
        built.append(smpl)
        for tok in history[-64:]:
            L.llama_sampler_accept(smpl, tok)
        L.llama_sampler_apply(smpl, full.ref)
        reference[stage] = full.survivors()
    try:
        _, fields = sampler.sample_captured(logits)
    finally:
        sampler.close()
        for smpl in built:
            L.llama_sampler_free(smpl)
    stages = {v.name: v for v in fields["stages"]}
    ids, lg = reference[name]
    view = stages[name]
    expected_ids, expected_p = _ranked(ids, lg, settings.top_n)
    assert view.kept == len(ids)
    assert list(view.ids) == expected_ids
    assert view.probs == pytest.approx(expected_p.tolist(), rel=1e-5, abs=1e-12)
    feed = fields["stages"][[v.name for v in fields["stages"]].index(name) - 1]
    # The stage really did something to the distribution it was fed.
    assert (feed.kept, feed.ids, feed.probs) != (view.kept, view.ids, view.probs)
    if name == "xtc":
        # XTC removes the head: the tokens it took are the first of its input's listing.
        gone = removed_from_head(feed.ids, feed.probs, view.ids)
        taken = set(reference["min_p"][0].tolist()) - set(ids.tolist())
        assert 0 < len(gone) == min(len(taken), len(feed.ids))
        assert set(gone) <= taken
        assert feed.ids[0] in gone


CHAINS = [
    SamplerSettings(seed=1),
    SamplerSettings(seed=2, top_k=5, top_p=0.5, min_p=0.2, temperature=1.5),
    SamplerSettings(seed=3, top_k=300, top_n=20),
    SamplerSettings(seed=4, temperature=0),
    SamplerSettings(seed=5, top_k=0, repeat_penalty=1.1),  # the full-vocabulary chain
    SamplerSettings(seed=6, top_k=0, top_p=1.0, repeat_penalty=1.3, min_p=0.02),
    SamplerSettings(seed=7, top_k=0, dry_multiplier=0.8, repeat_penalty=1.2,
                    presence_penalty=0.5),
    SamplerSettings(seed=8, top_n_sigma=1.5, top_k=0, xtc_probability=0.5, xtc_threshold=0.02),
    SamplerSettings(seed=9, top_k=0, typical_p=0.9, dynatemp_range=0.4),
    SamplerSettings(seed=10, repeat_penalty=1.2, order=(
        "temperature", "top_k", "penalties", "dry", "top_n_sigma", "typical", "top_p",
        "min_p", "xtc")),
    SamplerSettings(seed=11, mirostat=1, temperature=0.9),
    SamplerSettings(seed=12, mirostat=2),
]


@pytest.mark.parametrize("scan", ["fused", "numpy"])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("settings", CHAINS, ids=lambda s: f"seed{s.seed}")
def test_draws_are_llama_cpps_own_chain(settings: SamplerSettings, ties: bool, scan: str,
                                        vocab: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Six steps of changing logits: captured, fast and llama.cpp's whole chain draw alike, with
    the C pass over the scores (engine.fused_scan) and without it."""
    if scan == "numpy":
        monkeypatch.setattr(fused_scan, "available", lambda: False)
        monkeypatch.setattr(fused_scan, "built", lambda: False)
    elif not fused_scan.available():
        pytest.skip("the C pass did not compile here")
    captured = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    fast = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    plain = StepSampler(settings, N_VOCAB, N_CTX, vocab, shortcuts=False)
    chain = llama_chain(settings, N_VOCAB, N_CTX, vocab)
    history = _history(_logits(0, 3.0, ties))
    for s in (captured, fast, plain):
        s.accept(history)
    for tok in history:
        L.llama_sampler_accept(chain, tok)
    try:
        for step in range(6):
            logits = _logits(100 + step, (0.5, 3.0, 12.0)[step % 3], ties)
            expected = chain_draw(chain, logits)
            token_a, a = captured.sample_captured(logits)
            token_b, b = plain.sample_captured(logits)
            assert (token_a, fast.sample_fast(logits), token_b) == (expected,) * 3, step
            for sa, sb in zip(a["stages"], b["stages"], strict=True):
                assert (sa.name, sa.kept, sa.ids) == (sb.name, sb.kept, sb.ids)
                assert sa.probs == pytest.approx(sb.probs, rel=1e-5, abs=1e-12)
                assert sa.mass == pytest.approx(sb.mass, rel=1e-5)
            assert a["raw_rank"] == b["raw_rank"]
            assert a["prob"] == pytest.approx(b["prob"], rel=1e-5)
            l64 = logits.astype(np.float64)
            p = np.exp(l64 - l64.max())
            p /= p.sum()
            entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
            assert a["entropy_raw"] == pytest.approx(entropy, rel=1e-5, abs=2e-5)
            assert a["raw_prob"] == pytest.approx(float(p[token_a]), rel=1e-5)
    finally:
        for s in (captured, fast, plain):
            s.close()
        L.llama_sampler_free(chain)


def test_a_tie_at_the_top_k_cut_falls_back_to_the_whole_vocabulary() -> None:
    logits = _logits(1, 2.0)
    top = np.argsort(-logits)[:8]
    logits[top[5]] = logits[top[4]]  # the 5th and 6th best are equal: top-5 has a tie at its cut
    settings = SamplerSettings(seed=1, top_k=5)
    sampler = StepSampler(settings, N_VOCAB, N_CTX)
    try:
        sampler.sample_fast(logits)
        assert sampler.full_fallbacks == 1
        sampler.sample_fast(_logits(2, 2.0))
        assert sampler.full_fallbacks == 1  # distinct scores: the head was enough
    finally:
        sampler.close()


def test_entropy_matches_a_direct_computation() -> None:
    logits = _logits(7, 4.0)
    sampler = StepSampler(SamplerSettings(seed=1), N_VOCAB, N_CTX)
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
    sampler = StepSampler(SamplerSettings(seed=1), N_VOCAB, N_CTX)
    try:
        _, fields = sampler.sample_captured(logits)
    finally:
        sampler.close()
    assert np.isfinite(fields["entropy_raw"])
    assert sum(fields["stages"][-1].probs) == pytest.approx(1.0)


def test_dry_without_a_llama_vocabulary_says_what_to_do() -> None:
    with pytest.raises(SettingsError, match="sequence breakers"):
        StepSampler(SamplerSettings(dry_multiplier=0.8), N_VOCAB, N_CTX)
    # Without breakers DRY needs no tokenizer, so any backend can run it.
    sampler = StepSampler(SamplerSettings(dry_multiplier=0.8, dry_sequence_breakers=()),
                          N_VOCAB, N_CTX)
    sampler.accept([1, 2, 3, 1, 2, 3, 1, 2])
    try:
        token, fields = sampler.sample_captured(_logits(4, 2.0))
    finally:
        sampler.close()
    assert [v.name for v in fields["stages"]][:3] == ["raw", "penalties", "dry"]
    assert token >= 0


def test_the_worker_refuses_dry_breakers_without_a_llama_vocabulary_in_words() -> None:
    from types import SimpleNamespace

    from desktop.engine import protocol as P
    from desktop.engine.worker import _sampler

    sent: list[object] = []
    backend = SimpleNamespace(n_vocab=N_VOCAB, n_ctx=N_CTX)  # a transformers model: no vocab
    assert _sampler(7, SamplerSettings(dry_multiplier=0.8), backend, sent.append) is None
    (event,) = sent
    assert isinstance(event, P.EngineError)
    assert (event.request_id, event.kind) == (7, "bad_request")
    assert "sequence breakers" in event.message
    sampler = _sampler(8, SamplerSettings(), backend, sent.append)
    assert sampler is not None
    sampler.close()


SORTING = {
    "typical": SamplerSettings(seed=21, top_k=0, typical_p=0.9),
    "mirostat_v1": SamplerSettings(seed=22, mirostat=1, temperature=0.9),
    "mirostat_v2": SamplerSettings(seed=23, mirostat=2, temperature=1.5),
}


def _against_llama(settings: SamplerSettings, steps: list[np.ndarray], vocab: Any,
                   ) -> StepSampler:
    """Captured and fast draws, stage by stage, against the shortcut-free sampler and
    llama.cpp's whole chain; returns the captured sampler (closed) for its counters."""
    captured = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    fast = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    plain = StepSampler(settings, N_VOCAB, N_CTX, vocab, shortcuts=False)
    chain = llama_chain(settings, N_VOCAB, N_CTX, vocab)
    try:
        for step, logits in enumerate(steps):
            expected = chain_draw(chain, logits)
            token_a, a = captured.sample_captured(logits)
            token_b, b = plain.sample_captured(logits)
            assert (token_a, fast.sample_fast(logits), token_b) == (expected,) * 3, step
            for sa, sb in zip(a["stages"], b["stages"], strict=True):
                assert (sa.name, sa.kept, sa.ids) == (sb.name, sb.kept, sb.ids)
                # A snapshot's own normaliser sums a sorted array in another order.
                assert sa.probs == pytest.approx(sb.probs, rel=1e-5, abs=1e-12)
                assert sa.mass == pytest.approx(sb.mass, rel=1e-5)
            assert a["prob"] == b["prob"]  # the draw's distribution: llama.cpp's own sums
        assert fast.sorted_fills == captured.sorted_fills
        if captured.top_p_head is not None and fast.top_p_head is not None:
            assert fast.top_p_head.used == captured.top_p_head.used
        assert fast.full_fallbacks == captured.full_fallbacks
        captured.fast_whole_steps = fast.whole_steps  # type: ignore[attr-defined]
    finally:
        for s in (captured, fast, plain):
            s.close()
        L.llama_sampler_free(chain)
    return captured


@pytest.mark.parametrize("name", list(SORTING))
def test_typical_and_mirostat_get_a_sorted_array_with_llama_cpps_results(
        name: str, vocab: Any) -> None:
    """The sorting stages skip llama.cpp's full sort: same survivors, probabilities and
    draws as the whole vocabulary in id order. (Equal scores further down, which these
    logits have, change nothing: no stage keeps them.)"""
    steps = [_logits(300 + i, (6.0, 8.0, 10.0)[i % 3]) for i in range(6)]
    sampler = _against_llama(SORTING[name], steps, vocab)
    assert sampler.sorted_fills == 6
    assert sampler.full_fallbacks == 0


@pytest.mark.parametrize("name", list(SORTING))
def test_ties_in_the_head_keep_llama_cpps_own_sort(name: str, vocab: Any) -> None:
    """Equal scores among the survivors (where llama.cpp's sort order decides which of them
    sits where, so which one a draw lands on, and which one a cut keeps) send the stage to
    llama.cpp's own sort; the grid-rounded logits tie everywhere, the cut included."""
    steps = []
    for i in range(4):
        logits = _logits(400 + i, 3.0)
        top = np.argsort(-logits)[:6]
        logits[top[1 + i % 4]] = logits[top[0]]  # the best score, twice
        steps.append(logits)
    steps += [_logits(410 + i, 3.0, ties=True) for i in range(2)]
    sampler = _against_llama(SORTING[name], steps, vocab)
    assert sampler.sorted_fills == 6
    if name == "mirostat_v2":  # it always keeps the best token, so both tied ones
        assert sampler.full_fallbacks == 6


def test_a_temperature_that_makes_two_scores_equal_is_a_tie() -> None:
    """Mirostat's temperature runs before the sort: 1.5 can map two neighbouring float32
    scores onto one, which is a tie for llama.cpp's sort even though the raw scores differ."""
    logits = _logits(500, 3.0)
    top = np.argsort(-logits)[:3]
    a = logits[top[0]]
    b = np.nextafter(a, np.float32(-np.inf), dtype=np.float32)
    while b / np.float32(1.5) != a / np.float32(1.5):
        b = np.nextafter(b, np.float32(-np.inf), dtype=np.float32)
    assert b > logits[top[1]]
    logits[top[1]] = b  # distinct raw scores, equal once divided by 1.5
    sampler = StepSampler(SORTING["mirostat_v2"], N_VOCAB, N_CTX)
    try:
        sampler.sample_fast(logits)
        assert sampler.full_fallbacks == 1
        sampler.sample_fast(_logits(501, 3.0))
        assert (sampler.sorted_fills, sampler.full_fallbacks) == (2, 1)
    finally:
        sampler.close()


def test_survivors_past_the_sorted_head_rerun_on_the_whole_vocabulary(vocab: Any) -> None:
    """A plateau holding most of the mass: typical keeps tokens past the sorted head, whose
    ids are unknown, so it runs again on the whole vocabulary. (Mirostat's rerun from its state
    before, mu and RNG, is the tie test's: v2 falls back on every step there.)"""
    steps = []
    for i in range(4):
        logits = _logits(600 + i, 0.01)  # a plateau holding most of the mass …
        logits[np.random.default_rng(i).choice(N_VOCAB, 3000, replace=False)] += 3.0  # … a head
        steps.append(logits)
    sampler = _against_llama(SORTING["typical"], steps, vocab)
    assert sampler.sorted_fills == 4
    assert sampler.full_fallbacks >= 1


def test_top_n_sigma_survivors_go_on_alone_with_llama_cpps_results(vocab: Any) -> None:
    """Top-p and min-p after top-n-sigma see its survivors without the -inf rest: the same
    tokens, probabilities and draws as llama.cpp's whole chain; a tie among the survivors (grid
    logits) keeps the whole array."""
    settings = SamplerSettings(seed=31, top_k=0, top_n_sigma=1.0)
    steps = [_logits(700 + i, (1.0, 3.0, 6.0)[i % 3]) for i in range(6)]
    steps += [_logits(710, 3.0, ties=True)]
    sampler = _against_llama(settings, steps, vocab)
    assert sampler.compacted == 6


def test_dry_built_once_per_vocabulary_draws_what_a_fresh_one_draws(vocab: Any) -> None:
    """A session keeps the DRY sampler it built (matching the sequence breakers against every
    token costs ~50 ms on Gemma's vocabulary) and hands each chain a clone: the clones start
    empty however much an earlier chain accepted, and draw what a freshly built one draws."""
    settings = SamplerSettings(seed=51, top_k=0, dry_multiplier=1.5, dry_allowed_length=1)
    cache: dict[tuple[object, ...], Any] = {}
    first = StepSampler(settings, N_VOCAB, N_CTX, vocab, dry_cache=cache)
    history = _history(_logits(0, 3.0))
    first.accept(history)
    first.sample_fast(_logits(60, 3.0))  # the first chain's DRY has a history now
    second = StepSampler(settings, N_VOCAB, N_CTX, vocab, dry_cache=cache)
    fresh = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    assert len(cache) == 1
    try:
        for s in (second, fresh):
            s.accept(history)
        for step in range(6):
            logits = _logits(900 + step, (0.5, 3.0, 12.0)[step % 3])
            token_a, a = second.sample_captured(logits)
            token_b, b = fresh.sample_captured(logits)
            assert token_a == token_b, step
            dry_a = next(v for v in a["stages"] if v.name == "dry")
            dry_b = next(v for v in b["stages"] if v.name == "dry")
            assert (dry_a.ids, dry_a.probs) == (dry_b.ids, dry_b.probs)
    finally:
        for s in (first, second, fresh):
            s.close()
        for template in cache.values():
            L.llama_sampler_free(template)


WHOLE = [
    SamplerSettings(seed=31),  # llama.cpp's default chain
    SamplerSettings(seed=32, temperature=0),
    SamplerSettings(seed=33, top_k=5, top_p=0.5, min_p=0.2, temperature=1.5),
    SamplerSettings(seed=34, top_k=300, top_n=20, typical_p=0.9, xtc_probability=0.5,
                    xtc_threshold=0.02, dynatemp_range=0.5),
    SamplerSettings(seed=35, top_k=512, top_n=100, top_p=0.99, min_p=0.0),
    # Penalties and DRY before top-k: run on their window, whose scores the step takes.
    SamplerSettings(seed=36, repeat_penalty=1.15, repeat_last_n=64),
    SamplerSettings(seed=37, repeat_penalty=1.3, presence_penalty=-1.5, frequency_penalty=0.4,
                    dry_multiplier=0.8, dry_allowed_length=1, top_k=8),
]


def _drifting(seed: int, scale: float, ties: bool, n: int) -> list[np.ndarray]:
    """Logits that move a little from step to step, as a model's do along a reply (so the
    last step's head reaches far enough for this one's)."""
    base = _logits(seed, scale).astype(np.float64)
    rng = np.random.default_rng(seed + 1)
    steps = []
    for _ in range(n):
        base = base + rng.standard_normal(N_VOCAB) * 0.05
        values = np.round(base * 4) / 4 if ties else base
        steps.append(values.astype(np.float32))
    return steps


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("settings", WHOLE, ids=lambda s: f"seed{s.seed}")
def test_a_top_k_chain_captured_whole_in_c_is_the_python_path_and_llama_cpps_chain(
        settings: SamplerSettings, ties: bool, vocab: Any) -> None:
    """A chain that begins with top-k captures each step in one call into C
    (fused_scan.TopKStep): the same token as llama.cpp's whole chain and every figure of the
    StepRecord exactly as the path in Python computes it, a tie at top-k's cut included (there
    it hands the step to Python, which goes to the whole vocabulary)."""
    if not fused_scan.available():
        pytest.skip("the C pass did not compile here")
    steps = _drifting(settings.seed, 3.0, ties, 8)
    captured = _against_llama(settings, steps, vocab)
    in_c = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    in_python = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    in_python._whole = None
    fast = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    chain = llama_chain(settings, N_VOCAB, N_CTX, vocab)
    # A history holding the favourites, so that penalties and DRY move the top scores.
    history = _history(steps[0])
    for sampler in (in_c, in_python, fast):
        sampler.accept(history)
    for tok in history:
        L.llama_sampler_accept(chain, tok)
    try:
        assert in_c._whole is not None
        for step, logits in enumerate(steps):
            expected = chain_draw(chain, logits)
            token_c, c = in_c.sample_captured(logits)
            token_p, p = in_python.sample_captured(logits)
            assert (token_c, token_p, fast.sample_fast(logits)) == (expected,) * 3, step
            del c["sample_ms"], p["sample_ms"]
            c_stages, p_stages = c.pop("stages"), p.pop("stages")
            # The raw probabilities (and the stages turned off, which pass them on) come from
            # C's exp there, numpy's here: the last bit may differ. Every other figure comes
            # from the same code.
            assert (token_c, c) == (token_p, pytest.approx(p, rel=1e-12)), step
            for sc, sp in zip(c_stages, p_stages, strict=True):
                assert (sc.name, sc.kept, sc.mass, sc.ids) == (sp.name, sp.kept, sp.mass, sp.ids)
                assert sc.probs == pytest.approx(sp.probs, rel=1e-12)
        if ties:  # every step had a tie at the cut: the whole vocabulary, in Python
            assert (in_c.whole_steps, in_c.full_fallbacks) == (0, len(steps))
        else:  # the first step has no last step's head to start from; a later one may find
            # too few tokens above the last one's floor and go on in Python from its scan
            assert len(steps) - 3 <= in_c.whole_steps == captured.whole_steps < len(steps)
            # a step not captured takes the same call (keeping only the token)
            assert len(steps) - 3 <= captured.fast_whole_steps < len(steps)
            if settings.repeat_penalty != 1.0:  # with a window too
                assert len(steps) - 3 <= in_c.whole_steps < len(steps)
                assert len(steps) - 3 <= fast.whole_steps < len(steps)
    finally:
        for sampler in (in_c, in_python, fast):
            sampler.close()
        L.llama_sampler_free(chain)


def _in_c_and_in_python(settings: SamplerSettings, steps: list[np.ndarray],
                        history: list[int], vocab: Any,
                        ) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], int]:
    """Each step captured in C (fused_scan.TopKStep) and in Python, both tokens held to
    llama.cpp's whole chain: the (C, Python) StepRecord fields of each step, and how many steps
    C took whole."""
    in_c = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    in_python = StepSampler(settings, N_VOCAB, N_CTX, vocab)
    in_python._whole = None
    chain = llama_chain(settings, N_VOCAB, N_CTX, vocab)
    for sampler in (in_c, in_python):
        sampler.accept(history)
    for tok in history:
        L.llama_sampler_accept(chain, tok)
    fields = []
    try:
        for step, logits in enumerate(steps):
            expected = chain_draw(chain, logits)
            token_c, c = in_c.sample_captured(logits)
            token_p, p = in_python.sample_captured(logits)
            assert (token_c, token_p) == (expected, expected), step
            fields.append((c, p))
        return fields, in_c.whole_steps
    finally:
        for sampler in (in_c, in_python):
            sampler.close()
        L.llama_sampler_free(chain)


def test_a_window_holding_most_of_the_mass_is_viewed_afresh_in_a_step_taken_whole(
        vocab: Any) -> None:
    """Penalties on a favourite that holds nearly all the mass: the step is still taken whole
    in C, the penalties stage's view sums z afresh (the same pass over the scores with the
    window's written in, as the Python path's copy is summed), and every figure is the Python
    path's, the token llama.cpp's."""
    if not fused_scan.available():
        pytest.skip("the C pass did not compile here")
    settings = SamplerSettings(seed=38, repeat_penalty=1.5, repeat_last_n=64)
    steps = _drifting(38, 2.0, False, 6)
    favourite = int(np.argmax(steps[0]))
    for logits in steps:
        logits[favourite] = 25.0  # ~all of the raw mass; 25 / 1.5 leaves most of z behind
    fields, whole = _in_c_and_in_python(settings, steps, [favourite, 7, 8, 9], vocab)
    for c, p in fields:
        c_view, p_view = c["stages"][1], p["stages"][1]
        assert c_view.name == p_view.name == "penalties"
        assert c_view.ids == p_view.ids
        assert c_view.probs == pytest.approx(p_view.probs, rel=1e-12)
        assert c_view.probs[0] < 0.9  # the favourite lost most of its share
    assert whole >= len(steps) - 2


def test_a_view_c_cannot_sum_is_summed_by_numpy_from_the_window_c_patched(
        vocab: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A favourite ~100 nats above the rest, pushed down by a repeat penalty of 10: the changed
    scores' z lies under what C's pass sums (1e-30), so the step taken whole leaves that one
    view to numpy, from the window C patched (TopKStep.window) — the Python path's view."""
    if not fused_scan.available():
        pytest.skip("the C pass did not compile here")
    handed = []  # a window C patched, handed to numpy for its view
    real = fused_scan.TopKStep.window

    def counted(self: fused_scan.TopKStep) -> Any:
        handed.append(True)
        return real(self)

    monkeypatch.setattr(fused_scan.TopKStep, "window", counted)
    settings = SamplerSettings(seed=39, repeat_penalty=10.0, repeat_last_n=64)
    steps = [(logits - np.float32(120.0)).astype(np.float32)
             for logits in _drifting(39, 2.0, False, 5)]
    favourite = int(np.argmax(steps[0]))
    for logits in steps:
        logits[favourite] = 100.0  # 100 / 10 = 10: ~110 nats above the rest no more
    fields, whole = _in_c_and_in_python(settings, steps, [favourite, 7, 8], vocab)
    for c, p in fields:
        c_view, p_view = c["stages"][1], p["stages"][1]
        assert (c_view.name, c_view.ids) == ("penalties", p_view.ids)
        assert c_view.probs == pytest.approx(p_view.probs, rel=1e-12)
    assert whole >= len(steps) - 2
    assert len(handed) == whole  # each step C took whole left that view to numpy


def test_the_window_ring_holds_the_last_tokens() -> None:
    """TokenWindow: the last `size` tokens (their multiset: all the window's scores hang on);
    a size of 0 holds nothing."""
    window = TokenWindow(3)
    for tok in (5, 6, 7, 8, 5):
        window.append(tok)
    assert (window.count, sorted(window.tokens().tolist())) == (3, [5, 7, 8])
    empty = TokenWindow(0)
    empty.append(1)
    assert empty.count == 0
    assert len(empty.tokens()) == 0


@pytest.mark.parametrize("settings", [WHOLE[0], WHOLE[5]], ids=["default", "penalties"])
def test_a_step_whose_scores_all_fell_is_still_taken_whole(
        settings: SamplerSettings, vocab: Any) -> None:
    """Scores that drop as a whole from one step to the next leave too few tokens above the
    last step's floor: the C step finds its head again below this step's max (a second pass
    that only compares) instead of handing the step to Python — with the Python path's
    figures and llama.cpp's tokens."""
    if not fused_scan.available():
        pytest.skip("the C pass did not compile here")
    steps = [logits - np.float32(3.0 * i) for i, logits in
             enumerate(_drifting(settings.seed, 3.0, False, 6))]
    fields, whole = _in_c_and_in_python(settings, steps, _history(steps[0]), vocab)
    for c, p in fields:
        for sc, sp in zip(c["stages"], p["stages"], strict=True):
            assert (sc.name, sc.kept, sc.ids) == (sp.name, sp.kept, sp.ids)
            assert sc.probs == pytest.approx(sp.probs, rel=1e-12)
    assert whole == len(steps) - 1  # all but the first, which has no last step to start from
