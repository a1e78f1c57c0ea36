"""llama.cpp's own samplers run one stage at a time, with a snapshot of the candidates after each.

Runs in the engine worker process. The candidate array is a numpy structured array laid out
exactly like `llama_token_data` {id, logit, p}, handed to `llama_sampler_apply` stage by stage, so
what a StepRecord shows is exactly what was sampled. numpy touches the full vocabulary once per
step (the raw normaliser and entropy); top-N lists come from llama.cpp's partial sorts, which are
far cheaper than numpy's argpartition on 262k logits (../shared/FACTS.md).
"""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import llama_cpp as L
import numpy as np
import numpy.typing as npt

from desktop.core.sampling import (
    STAGE_MIN_P,
    STAGE_MIROSTAT,
    STAGE_PENALTIES,
    STAGE_RAW,
    STAGE_TEMPERATURE,
    STAGE_TOP_K,
    STAGE_TOP_P,
    STAGE_TYPICAL,
    SamplerSettings,
)
from desktop.core.steps import StageView

TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)
assert TOKEN_DATA.itemsize == ctypes.sizeof(L.llama_token_data)

_SMALL = 4096  # at or below this many candidates numpy sorts them directly
# The raw normaliser walks the logits in cache-sized chunks: the decode that just ran evicted
# everything, and one pass per chunk beats three cold passes over 1 MB arrays.
_CHUNK = 32768
_LOG2E = 1.0 / math.log(2.0)


class _Candidates:
    """A llama_token_data_array over a numpy buffer (and a scratch twin for side sorts)."""

    def __init__(self, n_vocab: int) -> None:
        self.ids = np.arange(n_vocab, dtype=np.int32)
        self.buf = np.zeros(n_vocab, dtype=TOKEN_DATA)
        self.arr = L.llama_token_data_array(
            data=self.buf.ctypes.data_as(L.llama_token_data_p), size=n_vocab, selected=-1,
            sorted=False,
        )
        self.ref = ctypes.byref(self.arr)

    def fill(self, logits: npt.NDArray[np.float32]) -> None:
        self.buf["id"] = self.ids
        self.buf["logit"] = logits
        self.arr.size = len(self.ids)
        self.arr.selected = -1
        self.arr.sorted = False

    def fill_head(self, logits: npt.NDArray[np.float32], k: int, max_logit: float) -> None:
        """Fill with only the tokens that can be among the k most probable.

        Every token whose logit reaches a threshold goes in, and the threshold is low enough that
        at least k do, so the k largest logits are all present and a top-k run on this array
        keeps exactly the tokens (and order) it keeps on the whole vocabulary. Writing a few
        hundred entries instead of 262,144 is most of the cost of a step's sampling.
        """
        for gap in (8.0, 16.0, 32.0):
            idx = np.flatnonzero(logits >= np.float32(max_logit - gap))
            if len(idx) >= k:
                break
        else:
            self.fill(logits)
            return
        n = len(idx)
        head = self.buf[:n]
        head["id"] = idx
        head["logit"] = logits[idx]
        self.arr.size = n
        self.arr.selected = -1
        self.arr.sorted = False

    def view(self) -> npt.NDArray[Any]:
        return self.buf[: self.arr.size]


class StepSampler:
    """Builds the chain for one generation and samples (and optionally captures) each step."""

    def __init__(self, settings: SamplerSettings, n_vocab: int, n_ctx: int) -> None:
        self.settings = settings.validated()
        self.n_vocab = n_vocab
        self.top_n = settings.top_n
        self.cand = _Candidates(n_vocab)
        self.scratch = _Candidates(n_vocab)
        self._owned: list[Any] = []
        s = settings
        last_n = n_ctx if s.repeat_last_n < 0 else s.repeat_last_n
        self.penalties = self._own(
            L.llama_sampler_init_penalties(
                n_vocab, last_n, s.repeat_penalty, s.frequency_penalty, s.presence_penalty
            )
        )
        samplers: dict[str, Any] = {
            STAGE_PENALTIES: self.penalties,
            STAGE_TEMPERATURE: self._own(L.llama_sampler_init_temp(s.temperature)),
        }
        if s.mirostat == 0:
            samplers[STAGE_TOP_K] = self._own(L.llama_sampler_init_top_k(s.top_k))
            samplers[STAGE_TYPICAL] = self._own(L.llama_sampler_init_typical(s.typical_p, 1))
            samplers[STAGE_TOP_P] = self._own(L.llama_sampler_init_top_p(s.top_p, 1))
            samplers[STAGE_MIN_P] = self._own(L.llama_sampler_init_min_p(s.min_p, 1))
            self.order = list(s.order)
            self.draw = self._own(L.llama_sampler_init_dist(s.seed))
        else:
            # Mirostat replaces the truncation samplers and draws by itself (llama.cpp common).
            if s.mirostat == 1:
                mirostat = L.llama_sampler_init_mirostat(
                    n_vocab, s.seed, s.mirostat_tau, s.mirostat_eta, 100
                )
            else:
                mirostat = L.llama_sampler_init_mirostat_v2(s.seed, s.mirostat_tau, s.mirostat_eta)
            samplers[STAGE_MIROSTAT] = self._own(mirostat)
            self.order = [STAGE_PENALTIES, STAGE_TEMPERATURE, STAGE_MIROSTAT]
            self.draw = None
        self.samplers = samplers
        self._noop = {name for name in self.order if self._is_noop(name)}
        active = [name for name in self.order if name not in self._noop]
        # When top-k is the first stage that changes anything, only the head of the vocabulary
        # can survive it: the candidate array is filled with that head alone (see fill_head).
        self._top_k_first = bool(active) and active[0] == STAGE_TOP_K
        k = s.top_k if s.top_k > 0 else 0
        self._presort = self._own(L.llama_sampler_init_top_k(max(self.top_n, k)))
        self._top_n_sort = self._own(L.llama_sampler_init_top_k(self.top_n))
        # Reused every step: fresh 1 MB arrays per token cost page faults, not just arithmetic.
        self._chunk = np.empty(min(n_vocab, _CHUNK), dtype=np.float32)
        self._mask = np.empty(n_vocab, dtype=np.bool_)

    def _own(self, sampler: Any) -> Any:
        self._owned.append(sampler)
        return sampler

    def _is_noop(self, name: str) -> bool:
        s = self.settings
        return {
            STAGE_PENALTIES: not s.penalties_active,
            STAGE_TOP_K: s.top_k <= 0 or s.top_k >= self.n_vocab,
            STAGE_TYPICAL: s.typical_p >= 1.0,
            STAGE_TOP_P: s.top_p >= 1.0,
            STAGE_MIN_P: s.min_p <= 0.0,
            STAGE_TEMPERATURE: s.temperature == 1.0,
            STAGE_MIROSTAT: False,
        }[name]

    def accept(self, tokens: Iterable[int]) -> None:
        """Tell the penalty sampler what the context already holds."""
        for tok in tokens:
            L.llama_sampler_accept(self.penalties, tok)

    def close(self) -> None:
        for sampler in self._owned:
            L.llama_sampler_free(sampler)
        self._owned.clear()

    # --- sampling ---

    def sample_fast(self, logits: npt.NDArray[np.float32]) -> int:
        """Run the chain and draw, capturing nothing."""
        cand = self.cand
        if self._top_k_first:
            cand.fill_head(logits, self.settings.top_k, float(logits.max()))
        else:
            cand.fill(logits)
        for name in self.order:
            if name not in self._noop:
                L.llama_sampler_apply(self.samplers[name], cand.ref)
        if self.draw is not None:
            L.llama_sampler_apply(self.draw, cand.ref)
        token = int(cand.buf["id"][cand.arr.selected])
        L.llama_sampler_accept(self.penalties, token)
        return token

    def sample_captured(
        self, logits: npt.NDArray[np.float32], forced: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Run the chain stage by stage; returns the token and the StepRecord fields."""
        started = time.perf_counter()
        cand = self.cand
        raw_shift, raw_z, entropy_raw, raw_max = self._raw_normaliser(logits)
        if self._top_k_first:
            cand.fill_head(logits, max(self.top_n, self.settings.top_k), raw_max)
        else:
            cand.fill(logits)

        def raw_probs(ids: npt.NDArray[np.int32]) -> npt.NDArray[np.float64]:
            return np.exp(logits[ids].astype(np.float64) - raw_shift) / raw_z

        views: list[StageView] = []
        if self._top_k_first:
            # The top-k that runs first anyway sorts the head of the array: widen it to top-N
            # once, read the raw top-N from it, then the real top-k only shortens the array.
            L.llama_sampler_apply(self._presort, cand.ref)
            head = cand.view()[: self.top_n]
            ids = head["id"].copy()
            raw = StageView(STAGE_RAW, self.n_vocab, 1.0, _ints(ids), _floats(raw_probs(ids)))
            views.append(raw)
        else:
            views.append(self._snapshot(STAGE_RAW, raw_probs))
        for name in self.order:
            if name in self._noop:
                prev = views[-1]
                views.append(StageView(name, prev.kept, prev.mass, prev.ids, prev.probs))
                continue
            L.llama_sampler_apply(self.samplers[name], cand.ref)
            views.append(self._snapshot(name, raw_probs))

        if self.draw is not None:
            L.llama_sampler_apply(self.draw, cand.ref)
        final = cand.view()
        final_logits = final["logit"].astype(np.float64)
        finite = np.isfinite(final_logits)
        final_w = np.where(finite, np.exp(final_logits - final_logits[finite].max()), 0.0)
        final_p = final_w / final_w.sum()
        nz = final_p[final_p > 0]
        entropy_final = float(-(nz * np.log2(nz)).sum())
        if forced is None:
            token = int(final["id"][cand.arr.selected])
            prob = float(final_p[cand.arr.selected])
        else:
            token = forced
            where = np.flatnonzero(final["id"] == forced)
            prob = float(final_p[where[0]]) if len(where) else 0.0
        L.llama_sampler_accept(self.penalties, token)
        raw_ids = views[0].ids
        if token in raw_ids:
            raw_rank = raw_ids.index(token) + 1  # listed: no pass over the vocabulary needed
        else:
            raw_rank = 1 + int(np.count_nonzero(np.greater(logits, logits[token], out=self._mask)))
        fields = {
            "token_id": token,
            "prob": prob,
            "raw_prob": float(raw_probs(np.array([token]))[0]),
            "raw_rank": raw_rank,
            "entropy_raw": entropy_raw,
            "entropy_final": entropy_final,
            "stages": tuple(views),
            "sample_ms": (time.perf_counter() - started) * 1000,
        }
        return token, fields

    def _raw_normaliser(
        self, logits: npt.NDArray[np.float32]
    ) -> tuple[float, float, float, float]:
        """(shift, Z, entropy in bits, max logit) with p_i = exp(l_i - shift) / Z, over the whole
        vocabulary.

        Entropy is shift-invariant (H = ln Z - E_p[l - shift]): while exp cannot overflow
        (|max logit| < 60) the logits need no shifting at all, which saves a pass.
        """
        top = float(logits.max())
        shift = 0.0 if abs(top) < 60.0 else top
        z = dot = 0.0
        w = self._chunk
        for start in range(0, len(logits), _CHUNK):
            part = logits[start : start + _CHUNK]
            out = w[: len(part)]
            if shift:
                np.subtract(part, np.float32(shift), out=out)
                np.exp(out, out=out)
                dot += float(np.dot(out, part)) - shift * float(out.sum())
            else:
                np.exp(part, out=out)
                dot += float(np.dot(out, part))
            z += float(out.sum())
        entropy = (math.log(z) - dot / z) * _LOG2E
        return shift, z, entropy, top

    def _snapshot(
        self,
        name: str,
        raw_probs: Callable[[npt.NDArray[np.int32]], npt.NDArray[np.float64]],
    ) -> StageView:
        cand = self.cand
        view = cand.view()
        n = len(view)
        lg = view["logit"]
        if n > _SMALL:
            # Too many to sort in numpy: let llama.cpp's top-k pick the head of a copy.
            scratch = self.scratch
            scratch.buf[:n] = view
            scratch.arr.size = n
            scratch.arr.sorted = False
            L.llama_sampler_apply(self._top_n_sort, scratch.ref)
            head = scratch.view()
            mx = float(lg.max())
            z = float(np.exp(lg - np.float32(mx)).sum(dtype=np.float64))
            ids = head["id"].copy()
            probs = np.exp(head["logit"].astype(np.float64) - mx) / z
            kept = int(np.count_nonzero(lg > -np.inf))
            mass = 1.0 if kept == self.n_vocab else float(raw_probs(view["id"][lg > -np.inf]).sum())
        else:
            lg64 = lg.astype(np.float64)
            alive = lg64 > -np.inf
            w = np.where(alive, np.exp(lg64 - lg64[alive].max()), 0.0)
            w /= w.sum()
            order = np.argsort(-w, kind="stable")[: self.top_n]
            order = order[w[order] > 0]
            ids = view["id"][order].copy()
            probs = w[order]
            kept = int(np.count_nonzero(alive))
            mass = float(raw_probs(view["id"][alive]).sum())
        return StageView(name, kept, min(mass, 1.0), _ints(ids), _floats(probs))


def _ints(values: npt.NDArray[Any]) -> tuple[int, ...]:
    return tuple(values.tolist())  # tolist() already yields Python ints


def _floats(values: npt.NDArray[Any]) -> tuple[float, ...]:
    return tuple(values.tolist())
