"""llama.cpp's own samplers run one stage at a time, with a snapshot of the candidates after each.

Runs in the engine worker process. The candidate array is a numpy structured array laid out
exactly like `llama_token_data` {id, logit, p}, handed to `llama_sampler_apply` stage by stage, so
what a StepRecord shows is what was sampled and the token is llama.cpp's own draw. The factory
below builds each stage's sampler the way llama.cpp's common/sampling.cpp does (penalties, DRY,
top-n-sigma, top-k, typical, top-p, min-p, XTC, temperature with its dynamic range; or
temperature then Mirostat), so a chain and seed give llama-server's tokens.

Capture is kept near llama.cpp's own cost, and shortcuts make some chains cheaper than llama.cpp's
(each proven equal to the full-vocabulary chain by tests/engine/test_step_sampler.py): penalties
and DRY change only the tokens of their window, so they run on those alone and their scores are
patched in; when the first stage that cuts is top-k or min-p, only the head that can survive it
enters the array (top-k falls back to the whole vocabulary when scores tie at its cut, where
sorts may differ); a snapshot of a large array reads its head from a threshold instead of
sorting it. Stages whose result hangs on statistics of the whole vocabulary summed in float32
(top-p's normaliser, typical's entropy, top-n-sigma's deviation, XTC's, Mirostat's and dynamic
temperature's softmax) run on the whole array exactly as llama.cpp runs them: computing those
sums any other way could move a cut by one token.

Structured output adds llama.cpp's grammar sampler (`engine.grammar`) before every stage that
cuts, as llama.cpp applies it first (it only masks tokens, so it commutes with penalties and DRY
and a StepRecord lists it after them). Checking a token against a grammar costs ~0.14 µs, the
whole 262k vocabulary ~36 ms, so when the first cut is top-k or min-p the grammar checks a head
of the vocabulary, widened until it holds that cut's survivors (k allowed tokens; every allowed
token within min-p of the best allowed one), and the whole vocabulary only when no head does or
the chain's first cut needs whole-vocabulary sums. A captured step also widens the head until
the unchecked tokens hold under 0.1% of the raw mass, so the grammar stage's mass is that exact;
its `kept` then counts the vocabulary less the tokens found forbidden.
"""

from __future__ import annotations

import collections
import ctypes
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import llama_cpp as L
import numpy as np
import numpy.typing as npt

from desktop.core.sampler_stages import (
    STAGE_DRY,
    STAGE_GRAMMAR,
    STAGE_MIN_P,
    STAGE_MIROSTAT,
    STAGE_PENALTIES,
    STAGE_RAW,
    STAGE_TEMPERATURE,
    STAGE_TOP_K,
    STAGE_TOP_N_SIGMA,
    STAGE_TOP_P,
    STAGE_TYPICAL,
    STAGE_XTC,
)
from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.core.steps import StageView
from desktop.engine.grammar import allowed, grammar_sampler, grammar_text
from desktop.engine.step_shortcuts import (
    SMALL,
    TOKEN_DATA,
    Candidates,
    Normaliser,
    floats,
    head_ids,
    ints,
    large_snapshot,
    ranked,
    raw_normaliser,
    small_snapshot,
)

__all__ = ["TOKEN_DATA", "StepSampler", "llama_chain"]


@dataclass(frozen=True)
class _Build:
    """What a stage's sampler is built from."""

    s: SamplerSettings
    n_vocab: int
    n_ctx: int
    vocab: Any  # llama.cpp's vocabulary (DRY turns its sequence breakers into tokens), or None

    def window(self, last_n: int) -> int:
        return self.n_ctx if last_n < 0 else last_n


def _dry(b: _Build) -> Any:
    s = b.s
    breakers = [t.encode("utf-8") for t in s.dry_sequence_breakers]
    if breakers and b.vocab is None:
        raise SettingsError(
            "DRY's sequence breakers need llama.cpp's tokenizer (a GGUF model); for this model "
            "clear the sequence breakers or turn DRY off")
    array = (ctypes.c_char_p * max(1, len(breakers)))(*breakers)
    return L.llama_sampler_init_dry(b.vocab, s.dry_multiplier, s.dry_base, s.dry_allowed_length,
                                    b.window(s.dry_penalty_last_n), array, len(breakers))


# The factory: each stage's llama.cpp sampler, as common/sampling.cpp builds it (min_keep 0).
_FACTORY: dict[str, Callable[[_Build], Any]] = {
    STAGE_PENALTIES: lambda b: L.llama_sampler_init_penalties(
        b.n_vocab, b.window(b.s.repeat_last_n), b.s.repeat_penalty, b.s.frequency_penalty,
        b.s.presence_penalty),
    STAGE_DRY: _dry,
    STAGE_TOP_N_SIGMA: lambda b: L.llama_sampler_init_top_n_sigma(b.s.top_n_sigma),
    STAGE_TOP_K: lambda b: L.llama_sampler_init_top_k(b.s.top_k),
    STAGE_TYPICAL: lambda b: L.llama_sampler_init_typical(b.s.typical_p, 0),
    STAGE_TOP_P: lambda b: L.llama_sampler_init_top_p(b.s.top_p, 0),
    STAGE_MIN_P: lambda b: L.llama_sampler_init_min_p(b.s.min_p, 0),
    STAGE_XTC: lambda b: L.llama_sampler_init_xtc(b.s.xtc_probability, b.s.xtc_threshold, 0,
                                                  b.s.seed),
    STAGE_TEMPERATURE: lambda b: L.llama_sampler_init_temp_ext(
        b.s.temperature, b.s.dynatemp_range, b.s.dynatemp_exponent),
}
# With Mirostat on, llama.cpp's chain is plain temperature, then Mirostat, which draws itself.
_MIROSTAT_FACTORY: dict[str, Callable[[_Build], Any]] = {
    STAGE_TEMPERATURE: lambda b: L.llama_sampler_init_temp(b.s.temperature),
    STAGE_MIROSTAT: lambda b: (
        L.llama_sampler_init_mirostat(b.n_vocab, b.s.seed, b.s.mirostat_tau, b.s.mirostat_eta,
                                      100)
        if b.s.mirostat == 1
        else L.llama_sampler_init_mirostat_v2(b.s.seed, b.s.mirostat_tau, b.s.mirostat_eta)),
}
_GRAMMAR_HEADS = (512, 4096, 32768)  # head sizes the grammar checks before the whole vocabulary
_GRAMMAR_TAIL = 1e-3  # a captured step's grammar leaves at most this raw mass unchecked
# Stages whose apply changes only the tokens of their history window (the field holding its
# length): on a full array they run on those tokens alone.
_WINDOWED = {STAGE_PENALTIES: "repeat_last_n", STAGE_DRY: "dry_penalty_last_n"}


def _chain_plan(s: SamplerSettings) -> tuple[tuple[str, ...], dict[str, Callable[[_Build], Any]]]:
    if s.mirostat:
        return (STAGE_TEMPERATURE, STAGE_MIROSTAT), _MIROSTAT_FACTORY
    return tuple(s.order), _FACTORY


def _active(s: SamplerSettings, name: str) -> bool:
    return name == STAGE_MIROSTAT or s.is_on(name)


def llama_chain(settings: SamplerSettings, n_vocab: int, n_ctx: int, vocab: Any = None) -> Any:
    """The same chain as one `llama_sampler_chain` (its draw included), for a bare loop that runs
    llama.cpp's `llama_sampler_sample` without any capture. The caller frees it."""
    s = settings.validated()
    order, factory = _chain_plan(s)
    build = _Build(s, n_vocab, n_ctx, vocab)
    chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    if s.is_on(STAGE_GRAMMAR):  # first, as llama.cpp's common sampler applies it
        L.llama_sampler_chain_add(chain, grammar_sampler(vocab, grammar_text(s)))
    for name in order:
        if _active(s, name):
            L.llama_sampler_chain_add(chain, factory[name](build))  # the chain frees it
    if not s.mirostat:
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(s.seed))
    return chain


class StepSampler:
    """Builds the chain for one generation and samples (and optionally captures) each step."""

    def __init__(self, settings: SamplerSettings, n_vocab: int, n_ctx: int,
                 vocab: Any = None, *, shortcuts: bool = True) -> None:
        """`vocab`: llama.cpp's vocabulary (DRY's sequence breakers need it); `shortcuts`
        False runs every stage on the whole vocabulary, as llama.cpp does (the tests' yardstick).
        """
        s = self.settings = settings.validated()
        self.n_vocab = n_vocab
        self.top_n = s.top_n
        self.cand = Candidates(n_vocab)
        self._owned: list[Any] = []
        order, factory = _chain_plan(s)
        self.order = list(order)
        build = _Build(s, n_vocab, n_ctx, vocab)
        self.samplers = {name: self._own(factory[name](build))
                         for name in self.order if _active(s, name)}
        self.draw = None if s.mirostat else self._own(L.llama_sampler_init_dist(s.seed))
        active = [name for name in self.order if name in self.samplers]
        # Penalties and DRY at the head of the chain touch only their window: they run on a
        # small array of those tokens, and their new scores are patched into the big one.
        n_prefix = 0
        while shortcuts and n_prefix < len(active) and active[n_prefix] in _WINDOWED:
            n_prefix += 1
        self._prefix = active[:n_prefix]
        self._rest = active[n_prefix:]
        windows = [build.window(getattr(s, _WINDOWED[n])) for n in active if n in _WINDOWED]
        self._history: collections.deque[int] = collections.deque(maxlen=max(windows, default=0))
        self._wcand = Candidates(max(1, self._history.maxlen or 1))
        # When the first stage that cuts is top-k or min-p, only the tokens that can survive
        # it enter the candidate array (see step_shortcuts.head_ids).
        first = self._rest[0] if self._rest and shortcuts else None
        self._head_stage = first if first in (STAGE_TOP_K, STAGE_MIN_P) else None
        self.full_fallbacks = 0  # steps where a tie at the cut sent top-k to the whole array
        # The grammar: after the penalty/DRY prefix, before every stage that cuts.
        self.grammar = (self._own(grammar_sampler(vocab, grammar_text(s)))
                        if s.is_on(STAGE_GRAMMAR) else None)
        self._grammar_live = self.grammar is not None  # False once a forced token broke it
        if self.grammar is not None:
            at = self.order.index(self._prefix[-1]) + 1 if self._prefix else 0
            self.order.insert(at, STAGE_GRAMMAR)
        self._checked: tuple[npt.NDArray[np.int32], npt.NDArray[np.float32],
                             npt.NDArray[np.bool_]] | None = None
        self.grammar_full_steps = 0  # steps where the grammar checked the whole vocabulary

    def _own(self, sampler: Any) -> Any:
        self._owned.append(sampler)
        return sampler

    def accept(self, tokens: Iterable[int]) -> None:
        """Tell the penalty and DRY samplers what the context already holds (its last tokens
        count; older ones fall out of every window anyway)."""
        keep = self._history.maxlen or 0
        if keep <= 0:
            return
        for tok in list(tokens)[-keep:]:
            self._accept(tok)

    def _accept(self, token: int) -> None:
        if self._history.maxlen:
            self._history.append(token)
            for name in (STAGE_PENALTIES, STAGE_DRY):
                sampler = self.samplers.get(name)
                if sampler is not None:
                    L.llama_sampler_accept(sampler, token)

    def accept_output(self, tokens: Iterable[int]) -> None:
        """Tell the grammar what the reply already holds (a replayed step's earlier tokens)."""
        for tok in tokens:
            self._accept_grammar(tok, check=True)

    def _accept_grammar(self, token: int, *, check: bool) -> None:
        """Move the grammar past `token`. A token it forbids (one forced by "continue with")
        would abort llama.cpp: the grammar is dropped for the rest of the reply instead."""
        if self.grammar is None or not self._grammar_live:
            return
        if check and not allowed(self.grammar, token):
            self._grammar_live = False
            return
        L.llama_sampler_accept(self.grammar, token)

    def close(self) -> None:
        for sampler in self._owned:
            L.llama_sampler_free(sampler)
        self._owned.clear()

    # --- the chain ---

    def _window_patch(
        self, logits: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.int32], list[npt.NDArray[np.float32]]]:
        """The window's token ids and their scores after each prefix stage (penalties, DRY),
        computed by those very samplers on an array of the window's tokens alone."""
        if not self._prefix or not self._history:
            empty = np.zeros(0, dtype=np.int32)
            return empty, [np.zeros(0, dtype=np.float32) for _ in self._prefix]
        ids = np.unique(np.fromiter(self._history, dtype=np.int32, count=len(self._history)))
        w = self._wcand
        w.fill_ids(ids, logits[ids])
        after = []
        for name in self._prefix:
            L.llama_sampler_apply(self.samplers[name], w.ref)
            after.append(w.view()["logit"].copy())
        return ids, after

    def _start(self, logits: npt.NDArray[np.float32], w_ids: npt.NDArray[np.int32],
               w_final: npt.NDArray[np.float32] | None, raw_max: float) -> bool:
        """Fill the candidate array; True when the first cutting stage already ran on a head
        of the vocabulary (top-k), so the chain goes on from the stage after it."""
        if self._grammar_live:
            return self._grammar_start(logits, w_ids, w_final, raw_max, None)
        cand, s = self.cand, self.settings
        stage = self._head_stage
        if stage == STAGE_TOP_K and s.top_k < self.n_vocab:
            ids, values = head_ids(logits, w_ids, w_final, raw_max, count=s.top_k)
            if ids is not None and values is not None:
                cand.fill_ids(ids, values)
                L.llama_sampler_apply(self.samplers[STAGE_TOP_K], cand.ref)
                kept = cand.view()["logit"]
                # With no two equal scores at or above the cut, every sort keeps the same tokens
                # in the same order; a tie could come out otherwise on the whole vocabulary.
                if (len(np.unique(kept)) == len(kept)
                        and int(np.count_nonzero(values >= kept.min())) == len(kept)):
                    return True
                self.full_fallbacks += 1
        elif stage == STAGE_MIN_P:
            ids, values = head_ids(logits, w_ids, w_final, raw_max, min_p=s.min_p)
            if ids is not None and values is not None:
                # min-p keeps every score ≥ max + log(p) in array order; the head holds them all,
                # in the same (id) order, so the survivors are the same tokens in the same order.
                cand.fill_ids(ids, values)
                return False
        cand.fill(logits)
        if len(w_ids) and w_final is not None:
            cand.buf["logit"][w_ids] = w_final  # filled in id order: position = id
        return False

    def _grammar_start(self, logits: npt.NDArray[np.float32], w_ids: npt.NDArray[np.int32],
                       w_final: npt.NDArray[np.float32] | None, raw_max: float,
                       norm: Normaliser | None) -> bool:
        """`_start` with the grammar: the first cut's survivors found among the allowed tokens
        of a head (see the module docstring), or the grammar applied to the whole vocabulary.
        `norm` (a captured step): widen the head until the unchecked raw mass is under 0.1%."""
        cand, s, grammar = self.cand, self.settings, self.grammar
        stage = self._head_stage
        self._checked = None
        if stage == STAGE_TOP_K and s.top_k >= self.n_vocab:
            stage = None
        for count in _GRAMMAR_HEADS if stage is not None else ():
            ids, values = head_ids(logits, w_ids, w_final, raw_max,
                                   count=max(count, 2 * s.top_k if stage == STAGE_TOP_K else 0))
            if ids is None or values is None:
                break
            cand.fill_ids(ids, values)
            L.llama_sampler_apply(grammar, cand.ref)
            ok = cand.view()["logit"] > -np.inf
            n_ok = int(np.count_nonzero(ok))
            floor = float(values.min())  # every token scoring at least this was checked
            if stage == STAGE_TOP_K:
                enough = n_ok >= s.top_k
            else:
                enough = n_ok > 0 and float(values[ok].max()) + math.log(s.min_p) - 1.0 >= floor
            if enough and norm is not None:
                enough = 1.0 - float(norm.probs(logits[ids]).sum()) <= _GRAMMAR_TAIL
            if not enough:
                continue
            self._checked = (ids, values, ok)
            kept_ids, kept_values = ids[ok], values[ok]
            cand.fill_ids(kept_ids, kept_values)
            if stage == STAGE_MIN_P:
                return False  # min-p keeps the allowed scores near the best, in id order
            L.llama_sampler_apply(self.samplers[STAGE_TOP_K], cand.ref)
            kept = cand.view()["logit"]
            if (len(np.unique(kept)) == len(kept)
                    and int(np.count_nonzero(kept_values >= kept.min())) == len(kept)):
                return True
            self.full_fallbacks += 1  # a tie at the cut: as without the grammar
            self._checked = None
            break
        self.grammar_full_steps += 1
        cand.fill(logits)
        if len(w_ids) and w_final is not None:
            cand.buf["logit"][w_ids] = w_final
        L.llama_sampler_apply(grammar, cand.ref)
        if not np.any(cand.view()["logit"] > -np.inf):
            raise SettingsError("the grammar allows no token of this model's vocabulary here")
        return False

    def _grammar_view(self, logits: npt.NDArray[np.float32], norm: Normaliser,
                      w_ids: npt.NDArray[np.int32],
                      w_final: npt.NDArray[np.float32] | None) -> StageView:
        """The grammar stage of a captured step whose grammar checked a head."""
        assert self._checked is not None
        ids, values, ok = self._checked
        gone = ids[~ok]
        shift = norm.shift
        z = norm.z_with(logits, w_ids, w_final) if w_final is not None else norm.z
        z -= float(np.exp(values[~ok].astype(np.float64) - shift).sum())
        order = ranked(ids[ok], values[ok])[: self.top_n]
        probs = np.exp(values[ok][order].astype(np.float64) - shift) / max(z, 1e-300)
        mass = 1.0 - float(norm.probs(logits[gone]).sum())
        return StageView(STAGE_GRAMMAR, self.n_vocab - len(gone), max(0.0, mass),
                         ints(ids[ok][order]), floats(probs))

    # --- sampling ---

    def sample_fast(self, logits: npt.NDArray[np.float32]) -> int:
        """Run the chain and draw, capturing nothing."""
        w_ids, after = self._window_patch(logits)
        w_final = after[-1] if after else None
        raw_max = float(logits.max()) if self._head_stage else 0.0
        done = self._start(logits, w_ids, w_final, raw_max)
        for name in self._rest[1:] if done else self._rest:
            L.llama_sampler_apply(self.samplers[name], self.cand.ref)
        token = self._draw()
        self._accept(token)
        self._accept_grammar(token, check=False)
        return token

    def _draw(self) -> int:
        cand = self.cand
        if self.draw is not None:
            L.llama_sampler_apply(self.draw, cand.ref)
        return int(cand.view()["id"][cand.arr.selected])

    def sample_captured(
        self, logits: npt.NDArray[np.float32], forced: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Run the chain stage by stage; returns the token and the StepRecord fields."""
        started = time.perf_counter()
        norm = raw_normaliser(logits)
        w_ids, after = self._window_patch(logits)
        w_final = after[-1] if after else None
        top_n = self.top_n
        # The raw head, long enough to hold every prefix stage's top-N too: a window token can
        # leave the top, never more of them than the window holds.
        head = head_ids(logits, np.zeros(0, np.int32), None, norm.max, count=top_n + len(w_ids))[0]
        if head is None:  # a flat distribution: no short head holds that many
            want = min(top_n + len(w_ids), len(logits) - 1)
            head = np.sort(np.argpartition(-logits, want)[: want + 1]).astype(np.int32)
        raw_ids = head[ranked(head, logits[head])[: top_n + len(w_ids)]]
        raw_top = raw_ids[:top_n]
        views = [StageView(STAGE_RAW, self.n_vocab, 1.0, ints(raw_top),
                           floats(norm.probs(logits[raw_top])))]
        by_name: dict[str, StageView] = {}
        for name, values in zip(self._prefix, after, strict=True):
            by_name[name] = self._window_view(name, logits, norm, raw_ids, w_ids, values)
        if self._grammar_live:
            done = self._grammar_start(logits, w_ids, w_final, norm.max, norm)
            by_name[STAGE_GRAMMAR] = (
                self._grammar_view(logits, norm, w_ids, w_final) if self._checked is not None
                else self._snapshot(STAGE_GRAMMAR, logits, norm))
        else:
            done = self._start(logits, w_ids, w_final, norm.max)
        if done:
            by_name[self._rest[0]] = self._snapshot(self._rest[0], logits, norm)
        for name in self._rest[1:] if done else self._rest:
            L.llama_sampler_apply(self.samplers[name], self.cand.ref)
            by_name[name] = self._snapshot(name, logits, norm)
        for name in self.order:
            view = by_name.get(name)
            if view is None:  # turned off: it passes its input on unchanged
                prev = views[-1]
                view = StageView(name, prev.kept, prev.mass, prev.ids, prev.probs)
            views.append(view)

        drawn = self._draw()
        final = self.cand.view()
        final_p = _final_probs(final)
        nz = final_p[final_p > 0]
        entropy_final = float(-(nz * np.log2(nz)).sum())
        token = drawn if forced is None else forced
        where = np.flatnonzero(final["id"] == token)
        prob = float(final_p[where[0]]) if len(where) else 0.0
        self._accept(token)
        self._accept_grammar(token, check=forced is not None)
        listed = views[0].ids
        if token in listed:
            raw_rank = listed.index(token) + 1  # listed: no pass over the vocabulary needed
        else:
            raw_rank = 1 + int(np.count_nonzero(logits > logits[token]))
        fields = {
            "token_id": token,
            "prob": prob,
            "raw_prob": float(norm.probs(logits[[token]])[0]),
            "raw_rank": raw_rank,
            "entropy_raw": norm.entropy,
            "entropy_final": entropy_final,
            "stages": tuple(views),
            "sample_ms": (time.perf_counter() - started) * 1000,
        }
        return token, fields

    def _window_view(self, name: str, logits: npt.NDArray[np.float32], norm: Normaliser,
                     raw_ids: npt.NDArray[np.int32], w_ids: npt.NDArray[np.int32],
                     values: npt.NDArray[np.float32]) -> StageView:
        """A prefix stage's snapshot: the raw distribution with the window's scores replaced."""
        ids = np.union1d(raw_ids, w_ids).astype(np.int32)
        current = logits[ids].copy()
        current[np.searchsorted(ids, w_ids)] = values
        z = norm.z_with(logits, w_ids, values)
        order = ranked(ids, current)[: self.top_n]
        probs = np.exp(current[order].astype(np.float64) - norm.shift) / z
        return StageView(name, self.n_vocab, 1.0, ints(ids[order]), floats(probs))

    def _snapshot(self, name: str, logits: npt.NDArray[np.float32],
                  norm: Normaliser) -> StageView:
        view = self.cand.view()
        if len(view) <= SMALL:
            return small_snapshot(name, view, self.top_n, logits, norm)
        return large_snapshot(name, view, self.top_n, logits, norm, self.n_vocab,
                              sorted_=bool(self.cand.arr.sorted))


def _final_probs(final: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """The distribution the draw used: renormalised from the scores (in float64) for a small
    array, the draw's own probabilities for a large one (no second pass over 262k scores)."""
    if len(final) > SMALL:
        return final["p"].astype(np.float64)
    lg = final["logit"].astype(np.float64)
    finite = np.isfinite(lg)
    w = np.where(finite, np.exp(lg - lg[finite].max()), 0.0) if finite.any() else np.ones(len(lg))
    result: npt.NDArray[np.float64] = w / w.sum()
    return result
