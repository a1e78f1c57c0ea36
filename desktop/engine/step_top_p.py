"""Top-p on the whole vocabulary at a fraction of llama.cpp's cost, with llama.cpp's own numbers.

Runs in the engine worker process. llama.cpp's top-p (src/llama-sampler.cpp) first computes the
softmax over the whole array in float32 — `expf` of every score, summed one after another in the
array's (id) order — then sorts: a bucket sort for the best 256, and when those hold less than p
(a flat distribution: often, with top-k off) a sort of the whole vocabulary, ~2–3 ms of a 5 ms
step on Gemma's 262,144 scores. Its cut is the first position, best first, where the float32
running sum of those probabilities reaches p.

The probabilities hang on `expf` and on the order of the float32 sum, which numpy cannot
reproduce bit for bit. So llama.cpp computes them itself: its own top-p with p = 0 runs on the
array with one -inf entry put before it (exp(-inf) adds exactly 0 to the sum and never becomes
the max, so every probability is the one the real top-p computes). That call sorts only the best
256 and keeps one token, written over the -inf slot; every other slot still holds its token's
probability in id order. The cut is then found on a head of the vocabulary taken by threshold:
its tokens sorted by score, and their probabilities summed in float32 one after another, as
llama.cpp sums them — the same numbers added in the same order give the same sums.

Where the C extension is built (`fused_scan.TopPCut`), it computes those numbers itself, as
llama.cpp does: the same libm `expf` of the same differences, summed in float32 in the same
order and divided the same way, so every probability is bit for bit llama.cpp's; it takes one
pass of `expf` where llama.cpp takes three passes and a bucket sort (~0.9 ms against ~2.4 ms a
step here), and finds the cut on the head likewise. Without it, llama.cpp computes them: the
probe below.

What the real top-p leaves (the kept tokens best first, with those probabilities, the array
marked sorted) is written back. Where llama.cpp's sort could order tokens otherwise — two kept
tokens with equal scores, or a tie at the cut — or the head would be a large part of the
vocabulary, the real top-p runs on the whole array instead.
"""

from __future__ import annotations

from typing import Any

import llama_cpp as L
import numpy as np

from desktop.engine import fused_scan
from desktop.engine.step_shortcuts import Candidates, all_distinct

_GAPS = (6.0, 10.0, 16.0, 24.0, 40.0)  # how far below the top score a head reaches, in turn
_LIMIT = 16384  # a head with more tokens than this is no cheaper than llama.cpp's sort
_NEG_INF = np.float32(-np.inf)


class TopPHead:
    """Top-p with the cut found on the head; one per StepSampler (it owns a llama.cpp
    sampler: close() frees it)."""

    def __init__(self, p: float) -> None:
        self.p = np.float32(p)  # llama.cpp keeps p as a float and compares float32 sums to it
        self._probe = L.llama_sampler_init_top_p(0.0, 0)  # the softmax, and one token kept
        self._in_c = fused_scan.TopPCut(float(self.p), _GAPS, _LIMIT)
        self.used = 0  # steps whose cut was found on the head
        self.fallbacks = 0  # steps that went to llama.cpp's top-p on the whole array

    def close(self) -> None:
        if self._probe is not None:
            L.llama_sampler_free(self._probe)
            self._probe = None

    def apply(self, cand: Candidates, top_p: Any) -> None:
        """Top-p on `cand` (the whole vocabulary or a large part of it, unsorted, from the
        buffer's start); `top_p` is the chain's own top-p sampler, for the fallback."""
        n = int(cand.arr.size)
        if self._cut_on_head(cand, n):
            self.used += 1
            return
        self.fallbacks += 1
        cand.restart(n)
        L.llama_sampler_apply(top_p, cand.ref)

    def _cut_on_head(self, cand: Candidates, n: int) -> bool:
        keep = self._in_c.apply(cand.buf, n)
        if keep is not None:  # the same numbers computed in C (fused_scan.TopPCut)
            if not keep:
                return False
            cand.restart(keep)
            cand.arr.sorted = True
            return True
        cand.store[0] = (-1, _NEG_INF, 0.0)
        cand.arr.data = cand.front  # type: ignore[assignment]  # the -inf entry, then the array
        cand.arr.size = n + 1
        L.llama_sampler_apply(self._probe, cand.ref)
        # store[0] now holds the best token; buf[:n] every token's probability, in place.
        top = float(cand.store[0]["logit"])
        if not np.isfinite(top):
            return False
        logits = cand.buf["logit"][:n]
        for gap in _GAPS:
            head = np.flatnonzero(logits >= np.float32(top - gap))
            if len(head) > _LIMIT:
                return False
            entries = cand.buf[head]
            # Best first; equal scores by id (any such order among kept tokens falls back).
            entries = entries[np.lexsort((entries["id"], -entries["logit"].astype(np.float64)))]
            running = np.cumsum(entries["p"], dtype=np.float32)  # sequential, as in llama.cpp
            reached = np.flatnonzero(running >= self.p)
            if not len(reached):
                if len(head) == n:
                    return False  # never reaches p: llama.cpp keeps everything (rare)
                continue
            keep = int(reached[0]) + 1
            kept = entries["logit"][: keep + 1]
            if not all_distinct(kept):  # ties among the kept or at the cut
                return False
            cand.keep_sorted(entries[:keep].copy())
            return True
        return False
