"""The grammar's part of `StepSampler` (engine.step_sampler): the candidate array started
with llama.cpp's grammar sampler applied, on a head of the vocabulary where that is exact, and
the grammar stage's snapshot. Runs in the engine worker process.

Checking a token against a grammar costs ~0.14 µs, the whole 262k vocabulary ~36 ms, so when the
first cut is top-k or min-p the grammar checks a head of the vocabulary, widened until it holds
that cut's survivors (k allowed tokens; every allowed token within min-p of the best allowed
one), and the whole vocabulary only when no head does or the chain's first cut needs
whole-vocabulary sums. A captured step also widens the head until the unchecked tokens hold
under 0.1% of the raw mass, so the grammar stage's mass is that exact. The whole vocabulary is
checked by the tokens' prefixes where the grammar allows that (`engine.grammar_prefix`: the same
verdicts, ~2 ms where a JSON grammar allows a handful of tokens), so a head that holds fewer
than k allowed tokens goes there at once.
"""

from __future__ import annotations

import math
from typing import Any

import llama_cpp as L
import numpy as np
import numpy.typing as npt

from desktop.core.sampler_stages import STAGE_GRAMMAR, STAGE_MIN_P, STAGE_TOP_K
from desktop.core.sampling import SamplerSettings, SettingsError
from desktop.core.steps import StageView
from desktop.engine.grammar_prefix import PrefixTrees
from desktop.engine.step_shortcuts import (
    Candidates,
    Normaliser,
    all_distinct,
    floats,
    head_ids,
    ints,
    ranked,
)

__all__ = ["GrammarStart"]

_GRAMMAR_HEADS = (512, 4096, 32768)  # head sizes the grammar checks before the whole vocabulary
# A captured step whose unchecked tail still holds too much mass tries a larger head first
# (~14 ms where the whole vocabulary takes ~36), up to half the vocabulary.
_CAPTURE_HEAD = 98304
_GRAMMAR_TAIL = 1e-3  # a captured step's grammar leaves at most this raw mass unchecked


class GrammarStart:
    """The grammar's methods of StepSampler, over the attributes StepSampler sets."""

    cand: Candidates
    settings: SamplerSettings
    grammar: Any
    samplers: dict[str, Any]
    n_vocab: int
    top_n: int
    full_fallbacks: int
    grammar_full_steps: int
    _head_stage: str | None
    _checked: tuple[npt.NDArray[np.int32], npt.NDArray[np.float32],
                    npt.NDArray[np.bool_]] | None
    _prefix_trees: PrefixTrees | None

    def _grammar_start(self, logits: npt.NDArray[np.float32], w_ids: npt.NDArray[np.int32],
                       w_final: npt.NDArray[np.float32] | None, raw_max: float | None,
                       norm: Normaliser | None) -> bool:
        """`_start` with the grammar: the first cut's survivors found among the allowed tokens
        of a head (see the module docstring), or the grammar applied to the whole vocabulary.
        `norm` (a captured step): widen the head until the unchecked raw mass is under 0.1%."""
        cand, s, grammar = self.cand, self.settings, self.grammar
        stage = self._head_stage
        self._checked = None
        if stage == STAGE_TOP_K and s.top_k >= self.n_vocab:
            stage = None
        if stage is not None and raw_max is None:
            raw_max = float(logits.max())  # once, not once per head tried
        heads = (*_GRAMMAR_HEADS, _CAPTURE_HEAD) if norm is not None else _GRAMMAR_HEADS
        for count in heads if stage is not None else ():
            ids, values = head_ids(logits, w_ids, w_final, raw_max,
                                   count=max(count, 2 * s.top_k if stage == STAGE_TOP_K else 0),
                                   limit=max(count + count // 4, self.n_vocab // 4))
            if ids is None or values is None:
                break
            tail_ok = norm is None or 1.0 - float(norm.probs(logits[ids]).sum()) <= _GRAMMAR_TAIL
            if not tail_ok and count != heads[0]:
                continue  # too short for the capture's tail: no need to check it (the first
                # head is, cheaply: where the grammar allows little, the prefixes answer)
            cand.fill_ids(ids, values)
            L.llama_sampler_apply(grammar, cand.ref)
            ok = cand.view()["logit"] > -np.inf
            n_ok = int(np.count_nonzero(ok))
            floor = float(values.min())  # every token scoring at least this was checked
            if stage == STAGE_TOP_K:
                enough = n_ok >= s.top_k
                if not enough and self._prefix_trees is not None:
                    break  # the grammar allows little here: checked by prefixes, that is cheap
            else:
                enough = n_ok > 0 and float(values[ok].max()) + math.log(s.min_p) - 1.0 >= floor
            if not enough or not tail_ok:
                continue
            self._checked = (ids, values, ok)
            kept_ids, kept_values = ids[ok], values[ok]
            cand.fill_ids(kept_ids, kept_values)
            if stage == STAGE_MIN_P:
                return False  # min-p keeps the allowed scores near the best, in id order
            L.llama_sampler_apply(self.samplers[STAGE_TOP_K], cand.ref)
            kept = cand.view()["logit"]
            if (all_distinct(kept)
                    and int(np.count_nonzero(kept_values >= kept.min())) == len(kept)):
                return True
            self.full_fallbacks += 1  # a tie at the cut: as without the grammar
            self._checked = None
            break
        self.grammar_full_steps += 1
        cand.fill(logits)
        if len(w_ids) and w_final is not None:
            cand.buf["logit"][w_ids] = w_final
        if self._prefix_trees is not None:  # the same verdicts, by the tokens' prefixes
            self._prefix_trees.apply(grammar, cand)
        else:
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
        kept_ids, kept_values = ids[ok], values[ok]
        n = len(kept_values)
        if n > 4 * self.top_n > 0:  # the top-N (and every tie with its last) before ranking
            at_least = np.partition(kept_values, n - self.top_n)[n - self.top_n]
            top = kept_values >= at_least
            kept_ids, kept_values = kept_ids[top], kept_values[top]
        order = ranked(kept_ids, kept_values)[: self.top_n]
        probs = np.exp(kept_values[order].astype(np.float64) - shift) / max(z, 1e-300)
        mass = 1.0 - float(norm.probs(logits[gone]).sum())
        return StageView(STAGE_GRAMMAR, self.n_vocab - len(gone), max(0.0, mass),
                         ints(kept_ids[order]), floats(probs))

    # --- sampling ---
