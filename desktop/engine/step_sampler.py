"""llama.cpp's own samplers run one stage at a time, with a snapshot of the candidates after each.

Runs in the engine worker process. The candidate array is a numpy structured array laid out
exactly like `llama_token_data` {id, logit, p}, handed to `llama_sampler_apply` stage by stage, so
what a StepRecord shows is what was sampled and the token is llama.cpp's own draw. The samplers
come from `engine.step_chain`, built the way llama.cpp's common/sampling.cpp builds them, so a
chain and seed give llama-server's tokens.

Capture is kept near llama.cpp's own cost, and shortcuts make some chains cheaper than llama.cpp's
(each proven equal to the full-vocabulary chain by tests/engine/test_step_sampler.py): penalties
and DRY change only the tokens of their window, so they run on those alone and their scores are
patched in; when the first stage that cuts is top-k or min-p, only the head that can survive it
enters the array (top-k falls back to the whole vocabulary when scores tie at its cut, where
sorts may differ); typical and Mirostat, which begin with a full sort, get the array already
sorted by numpy (~1 ms where llama.cpp's sort takes ~40 ms on 262k scores), and run again on the
whole vocabulary when a survivor lies past the sorted head or shares its score (see
`Candidates.fill_sorted`); top-p or min-p after top-n-sigma sees its survivors without the -inf
rest; top-p facing the whole vocabulary takes its probabilities from llama.cpp's own softmax and
finds its cut on a head summed in float32 as llama.cpp sums it (`engine.step_top_p`), instead of
llama.cpp's sort of the whole vocabulary; a snapshot of a large array reads its head from a
threshold instead of sorting it. Stages whose result hangs on sums over the whole vocabulary in
float32 (typical's entropy, top-n-sigma's deviation, XTC's and dynamic temperature's softmax)
still compute them in llama.cpp, over the same numbers: computing those sums any other way could
move a cut by one token. A chain whose first cutting stage is top-k (llama.cpp's default order;
penalties and DRY, when on, before it; no grammar) takes each step in one call into C
(`fused_scan.TopKStep`, the window's penalties and DRY included), which does what the Python
path does with the same samplers and hands the step back before any stage with a state runs
wherever that path would go otherwise.

Structured output adds llama.cpp's grammar sampler (`engine.grammar`) before every stage that
cuts, as llama.cpp applies it first (it only masks tokens, so it commutes with penalties and DRY
and a StepRecord lists it after them); `engine.step_grammar` runs it on a head where that is
exact. Its `kept` counts the vocabulary less the tokens found forbidden.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Iterable
from typing import Any

import llama_cpp as L
import numpy as np
import numpy.typing as npt
from llama_cpp import llama_cpp as LL

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
)
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import StageView
from desktop.engine import fused_scan
from desktop.engine.grammar import allowed, grammar_sampler, grammar_text
from desktop.engine.grammar_prefix import PrefixTrees, prunable
from desktop.engine.step_chain import WINDOWED, Build, chain_plan, is_active, llama_chain
from desktop.engine.step_grammar import GrammarStart
from desktop.engine.step_shortcuts import (
    SMALL,
    TINY,
    TOKEN_DATA,
    Candidates,
    Normaliser,
    TokenWindow,
    all_distinct,
    floats,
    head_ids,
    ints,
    large_snapshot,
    ranked,
    ranked_head,
    raw_entropy,
    raw_normaliser,
    raw_z,
    reach_of,
    small_snapshot,
    sorted_unique,
)
from desktop.engine.step_top_p import TopPHead

__all__ = ["TOKEN_DATA", "StepSampler", "llama_chain"]


_NO_IDS = np.zeros(0, dtype=np.int32)
_NO_SCORES = np.zeros(0, dtype=np.float32)
_NO_IDS.flags.writeable = _NO_SCORES.flags.writeable = False  # shared by every step
# llama_sampler_apply's address, which fused_scan.TopKStep calls from C.
_APPLY: int = ctypes.cast(LL._lib.llama_sampler_apply, ctypes.c_void_p).value or 0
# llama.cpp's partial sort puts a score in bucket int(6.4 * score + 64), clamped to 0…127: -inf
# and every score below this share bucket 0.
_BUCKET_FLOOR = -9.84


class StepSampler(GrammarStart):
    """Builds the chain for one generation and samples (and optionally captures) each step."""

    def __init__(self, settings: SamplerSettings, n_vocab: int, n_ctx: int,
                 vocab: Any = None, *, shortcuts: bool = True,
                 dry_cache: dict[tuple[object, ...], Any] | None = None,
                 prefix_trees: PrefixTrees | None = None) -> None:
        """`vocab`: llama.cpp's vocabulary (DRY's sequence breakers need it); `shortcuts`
        False runs every stage on the whole vocabulary, as llama.cpp does (the tests' yardstick);
        `dry_cache`: DRY samplers already built for `vocab` (see step_chain.Build);
        `prefix_trees`: `vocab`'s prefix tree, with which a grammar checks the whole vocabulary
        (engine.grammar_prefix; None: token by token).
        """
        s = self.settings = settings.validated()
        self.n_vocab = n_vocab
        self.top_n = s.top_n
        self.cand = Candidates(n_vocab)
        self._owned: list[Any] = []
        order, factory = chain_plan(s)
        self.order = list(order)
        build = Build(s, n_vocab, n_ctx, vocab, dry_cache)
        self.samplers = {name: self._own(factory[name](build))
                         for name in self.order if is_active(s, name)}
        self.draw = None if s.mirostat else self._own(L.llama_sampler_init_dist(s.seed))
        active = [name for name in self.order if name in self.samplers]
        # Penalties and DRY at the head of the chain touch only their window: they run on a
        # small array of those tokens, and their new scores are patched into the big one.
        n_prefix = 0
        while shortcuts and n_prefix < len(active) and active[n_prefix] in WINDOWED:
            n_prefix += 1
        self._prefix = active[:n_prefix]
        self._rest = active[n_prefix:]
        windows = [build.window(getattr(s, WINDOWED[n])) for n in active if n in WINDOWED]
        self._history = TokenWindow(max(windows, default=0))
        self._wcand = Candidates(max(1, self._history.size))
        # When the first stage that cuts is top-k or min-p, only the tokens that can survive
        # it enter the candidate array (see step_shortcuts.head_ids).
        first = self._rest[0] if self._rest and shortcuts else None
        self._head_stage = first if first in (STAGE_TOP_K, STAGE_MIN_P) else None
        self.full_fallbacks = 0  # steps where a tie at the cut sent top-k to the whole array
        # Typical and Mirostat sort the whole vocabulary first: when only temperatures come
        # before them, the array is handed over already sorted (Candidates.fill_sorted).
        self._sort_at: int | None = None
        self._presorted: npt.NDArray[np.float32] | None = None  # the head's tied scores
        if shortcuts and self._head_stage is None and not s.is_on(STAGE_GRAMMAR):
            for i, name in enumerate(self._rest):
                if name in (STAGE_TYPICAL, STAGE_MIROSTAT):
                    self._sort_at = i
                    break
                if (name != STAGE_TEMPERATURE or s.temperature <= 0
                        or (s.dynatemp_range > 0 and not s.mirostat)):
                    break
        self._divisors = (s.temperature,) * (self._sort_at or 0)
        # Top-n-sigma masks the vocabulary with -inf and keeps its size: when top-p or min-p
        # comes next, its few survivors go on alone (see `_compact`).
        at = self._rest.index(STAGE_TOP_N_SIGMA) if STAGE_TOP_N_SIGMA in self._rest else -1
        self._compact_at = (at if shortcuts and 0 <= at < len(self._rest) - 1
                            and self._rest[at + 1] in (STAGE_TOP_P, STAGE_MIN_P) else None)
        self.compacted = 0  # steps whose top-n-sigma survivors went on alone
        # Top-p facing a large array finds its cut on a head (engine.step_top_p).
        self.top_p_head = (TopPHead(s.top_p) if shortcuts and STAGE_TOP_P in self._rest
                           else None)
        self.sorted_fills = 0  # steps whose sorting stage got a sorted array
        # The grammar: after the penalty/DRY prefix, before every stage that cuts.
        gbnf = grammar_text(s) if s.is_on(STAGE_GRAMMAR) else ""
        self.grammar = (self._own(grammar_sampler(vocab, gbnf)) if s.is_on(STAGE_GRAMMAR)
                        else None)
        self._grammar_live = self.grammar is not None  # False once a forced token broke it
        self._prefix_trees = (prefix_trees if shortcuts and self.grammar is not None
                              and prunable(gbnf) else None)
        if self._prefix_trees is not None:
            self._prefix_trees.prepare(n_vocab)
        if self.grammar is not None:
            at = self.order.index(self._prefix[-1]) + 1 if self._prefix else 0
            self.order.insert(at, STAGE_GRAMMAR)
        self._checked: tuple[npt.NDArray[np.int32], npt.NDArray[np.float32],
                             npt.NDArray[np.bool_]] | None = None
        self.grammar_full_steps = 0  # steps where the grammar checked the whole vocabulary
        # Where the last step's heads reached (raw scores): the next step's first thresholds,
        # for a captured step's raw head and for top-k's (see step_shortcuts.head_ids).
        self._head_floor: float | None = None
        self._k_floor: float | None = None
        self._last_max: float | None = None  # the last captured step's top raw score
        # A chain whose first cutting stage is top-k (llama.cpp's default order; penalties and
        # DRY before it run on their window there too; no grammar) captures a step in one call
        # into C (fused_scan.TopKStep), running these very samplers; a step it cannot take whole
        # goes on in Python from its pass over the scores.
        self._whole: fused_scan.TopKStep | None = None
        self.whole_steps = 0  # steps captured whole in C
        if (self._head_stage == STAGE_TOP_K and self.grammar is None
                and s.top_k < n_vocab and max(s.top_k, s.top_n) <= fused_scan.SNAPSHOT_MAX
                and fused_scan.available()):
            self._whole = fused_scan.TopKStep(
                n_vocab, s.top_n, s.top_k, [_address(self.samplers[n]) for n in self._rest],
                _address(self.draw) if self.draw is not None else None, _APPLY,
                ctypes.addressof(self.cand.arr), self.cand.buf.ctypes.data,
                [_address(self.samplers[n]) for n in self._prefix], self._history.ring)

    def _own(self, sampler: Any) -> Any:
        self._owned.append(sampler)
        return sampler

    def accept(self, tokens: Iterable[int]) -> None:
        """Tell the penalty and DRY samplers what the context already holds (its last tokens
        count; older ones fall out of every window anyway)."""
        keep = self._history.size
        if keep <= 0:
            return
        for tok in list(tokens)[-keep:]:
            self._accept(tok)

    def _accept(self, token: int) -> None:
        if self._history.size:
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
        if self.top_p_head is not None:
            self.top_p_head.close()

    # --- the chain ---

    def _window_patch(
        self, logits: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.int32], list[npt.NDArray[np.float32]]]:
        """The window's token ids and their scores after each prefix stage (penalties, DRY),
        computed by those very samplers on an array of the window's tokens alone."""
        if not self._prefix:
            return _NO_IDS, []
        if not self._history.count:
            return _NO_IDS, [_NO_SCORES for _ in self._prefix]
        ids = sorted_unique(self._history.tokens())
        w = self._wcand
        w.fill_ids(ids, logits[ids])
        after = []
        for name in self._prefix:
            L.llama_sampler_apply(self.samplers[name], w.ref)
            after.append(w.view()["logit"].copy())
        return ids, after

    def _start(self, logits: npt.NDArray[np.float32], w_ids: npt.NDArray[np.int32],
               w_final: npt.NDArray[np.float32] | None, raw_max: float | None,
               raw_head: npt.NDArray[np.int32] | None = None) -> bool:
        """Fill the candidate array; True when the first cutting stage already ran on a head
        of the vocabulary (top-k), so the chain goes on from the stage after it. `raw_head`:
        every token at or above some raw score, at least top-k of them (a capture's raw
        head), which top-k can use when no window changed a score."""
        if self._grammar_live:
            return self._grammar_start(logits, w_ids, w_final, raw_max, None)
        cand, s = self.cand, self.settings
        stage = self._head_stage
        if stage == STAGE_TOP_K and s.top_k < self.n_vocab:
            ids: npt.NDArray[np.int32] | None
            values: npt.NDArray[np.float32] | None
            if raw_head is not None and not len(w_ids) and len(raw_head) >= s.top_k:
                ids, values = raw_head, logits[raw_head]  # one threshold pass, not two
            else:
                ids, values = head_ids(logits, w_ids, w_final, raw_max, count=s.top_k,
                                       guess=self._k_floor)
                if values is not None:
                    self._k_floor = reach_of(values, s.top_k)
            if ids is not None and values is not None:
                cand.fill_ids(ids, values)
                L.llama_sampler_apply(self.samplers[STAGE_TOP_K], cand.ref)
                kept = cand.view()["logit"]
                # With no two equal scores at or above the cut, every sort keeps the same tokens
                # in the same order; a tie could come out otherwise on the whole vocabulary.
                # (Top-k leaves its survivors sorted, best first: ties would be neighbours.)
                distinct = (not bool((kept[1:] == kept[:-1]).any()) if cand.arr.sorted
                            else all_distinct(kept))
                if distinct and int(np.count_nonzero(values >= kept.min())) == len(kept):
                    return True
                self.full_fallbacks += 1
        elif stage == STAGE_MIN_P:
            ids, values = head_ids(logits, w_ids, w_final, raw_max, min_p=s.min_p)
            if ids is not None and values is not None:
                # min-p keeps every score ≥ max + log(p) in array order; the head holds them all,
                # in the same (id) order, so the survivors are the same tokens in the same order.
                cand.fill_ids(ids, values)
                return False
        elif self._sort_at is not None:
            current = logits
            if len(w_ids) and w_final is not None:
                current = logits.copy()
                current[w_ids] = w_final
            self._presorted = cand.fill_sorted(current, self._divisors)
            if self._presorted is not None:
                self.sorted_fills += 1
                return False
        self._fill_full(logits, w_ids, w_final)
        return False

    def _fill_full(self, logits: npt.NDArray[np.float32], w_ids: npt.NDArray[np.int32],
                   w_final: npt.NDArray[np.float32] | None) -> None:
        self.cand.fill(logits)
        if len(w_ids) and w_final is not None:
            self.cand.buf["logit"][w_ids] = w_final  # filled in id order: position = id

    def _compact(self) -> None:
        """Top-n-sigma's survivors alone, in the array's (id) order, for top-p or min-p: the
        -inf scores it left add exactly 0 to their softmax sums and never survive, so the same
        tokens survive with the same probabilities. Kept only where every sort orders them
        alike (no two equal scores) and llama.cpp's bucket sort puts no survivor in the
        lowest bucket with the -inf ones (scores ≥ -9.84)."""
        view = self.cand.view()
        if len(view) <= SMALL:
            return
        lg = view["logit"]
        alive = np.flatnonzero(lg > -np.inf)
        if not 0 < len(alive) <= SMALL:
            return
        values = lg[alive]
        if float(values.min()) < _BUCKET_FLOOR or not all_distinct(values):
            return
        self.cand.fill_ids(view["id"][alive], values)
        self.compacted += 1

    def _apply(self, index: int, logits: npt.NDArray[np.float32], w_ids: npt.NDArray[np.int32],
               w_final: npt.NDArray[np.float32] | None) -> None:
        """Run stage `self._rest[index]` on the candidates. On a sorted fill, a survivor past
        the head (id -1) or one whose score another token shares (where llama.cpp's sort may
        order them otherwise) sends the sorting stage to the whole vocabulary in id order, from
        the state it had before (Mirostat's mu and RNG: a clone taken first)."""
        name = self._rest[index]
        sampler = self.samplers[name]
        ties = self._presorted
        cand = self.cand
        if (name == STAGE_TOP_P and self.top_p_head is not None and cand.arr.size > SMALL
                and not cand.arr.sorted and cand.at_start()):
            self.top_p_head.apply(cand, sampler)
            return
        if index != self._sort_at or ties is None:
            L.llama_sampler_apply(sampler, self.cand.ref)
            if index == self._compact_at:
                self._compact()
            return
        self._presorted = None
        spare = L.llama_sampler_clone(sampler) if name == STAGE_MIROSTAT else None
        L.llama_sampler_apply(sampler, self.cand.ref)
        kept = self.cand.view()
        if int(kept["id"].min()) >= 0 and not (len(ties) and np.isin(kept["logit"], ties).any()):
            if spare is not None:
                L.llama_sampler_free(spare)
            return
        self.full_fallbacks += 1
        if spare is not None:
            self._owned[self._owned.index(sampler)] = spare
            self.samplers[name] = spare
            L.llama_sampler_free(sampler)
        self._fill_full(logits, w_ids, w_final)
        for prior in self._rest[: index + 1]:
            L.llama_sampler_apply(self.samplers[prior], self.cand.ref)

    def sample_fast(self, logits: npt.NDArray[np.float32]) -> int:
        """Run the chain and draw, capturing nothing."""
        shift, guess = self._last_max, self._head_floor
        if self._whole is not None and shift is not None and guess is not None:
            drawn = self._whole.draw(logits, shift, guess, self._history.count)
            if drawn is not None:
                token, self._last_max, self._head_floor = drawn
                self.whole_steps += 1
                self._accept(token)
                return token
        w_ids, after = self._window_patch(logits)
        w_final = after[-1] if after else None
        done = self._start(logits, w_ids, w_final, None)  # top-k's head seldom needs the max
        if self._whole is not None:  # where this step's scores lay: the next one's start
            self._last_max, self._head_floor = float(logits.max()), self._k_floor
        for i in range(1 if done else 0, len(self._rest)):
            self._apply(i, logits, w_ids, w_final)
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
        # One pass over the vocabulary, shifted by the last step's max and cut at the last
        # step's head floor, gives the raw softmax's z and entropy and this step's raw head
        # (fused_scan). Without the extension: the raw softmax's z first (its one cold pass),
        # then the raw head (warm now), whose top is this step's max (step_shortcuts.raw_z).
        shift, guess = self._last_max, self._head_floor
        scanned = found = None
        if shift is not None and guess is not None and fused_scan.available():
            whole = None
            if self._whole is not None and forced is None:
                whole = self._whole.run(logits, shift, guess, self._history.count)
            if isinstance(whole, fused_scan.Stepped):
                return whole.token, self._stepped(whole, logits, shift, started)
            scanned = whole if whole is not None else fused_scan.scan(logits, shift, guess)
        elif shift is not None:
            found = raw_z(logits, shift)
        w_ids, after = self._window_patch(logits)
        w_final = after[-1] if after else None
        top_n = self.top_n
        # The raw head, long enough to hold every prefix stage's top-N too (a window token can
        # leave the top, never more of them than the window holds), and top-k's survivors.
        want = top_n + len(w_ids)
        k_head = self._head_stage == STAGE_TOP_K and not self._grammar_live
        count = max(want, self.settings.top_k) if k_head else want
        head = values = None
        if scanned is not None and scanned.ids is not None and scanned.count >= count:
            head = scanned.ids.copy()  # the scan's buffer is reused by the next scan
        elif scanned is not None:  # the guess let in too few: the max is known now
            head, values = head_ids(logits, _NO_IDS, None, scanned.top, count=count)
        else:
            head, values = head_ids(logits, _NO_IDS, None, None, count=count, guess=guess)
        threshold_head = head is not None
        if head is None:  # a flat distribution: no short head holds that many
            want = min(want, len(logits) - 1)
            head = np.sort(np.argpartition(-logits, want)[: want + 1]).astype(np.int32)
        ranked_ids, ranked_values, self._head_floor = ranked_head(logits, head, count, values)
        # The head holds every token at or above a threshold, so its top is the vocabulary's.
        top = self._last_max = float(ranked_values[0])
        if scanned is not None and scanned.normalised:
            norm = Normaliser(scanned.shift, scanned.z, scanned.entropy, top)
        elif found is not None and shift is not None:
            z, exps = found
            norm = Normaliser(shift, z, raw_entropy(logits, exps, z, shift, top), top)
        else:
            norm = raw_normaliser(logits, top)
        shared = None
        if k_head and threshold_head:
            # Top-k's input: every token scoring at least the k-th highest (ids ascending; all
            # ranked, ties with the last included), not the whole head: llama.cpp's top-k then
            # sorts ~k tokens instead of ~1,000.
            k = n_keep = self.settings.top_k
            while n_keep < len(ranked_values) and ranked_values[n_keep] == ranked_values[k - 1]:
                n_keep += 1  # ranked best first: those tied with the k-th follow it
            shared = np.sort(ranked_ids[:n_keep])
        raw_ids = ranked_ids[: top_n + len(w_ids)]
        raw_top = raw_ids[:top_n]
        views = [StageView(STAGE_RAW, self.n_vocab, 1.0, ints(raw_top),
                           floats(norm.probs(ranked_values[:top_n])))]
        by_name: dict[str, StageView] = {}
        for name, values in zip(self._prefix, after, strict=True):
            by_name[name] = self._window_view(name, logits, norm, raw_ids, w_ids, values)
        if self._grammar_live:
            done = self._grammar_start(logits, w_ids, w_final, norm.max, norm)
            by_name[STAGE_GRAMMAR] = (
                self._grammar_view(logits, norm, w_ids, w_final) if self._checked is not None
                else self._snapshot(STAGE_GRAMMAR, logits, norm))
        else:
            done = self._start(logits, w_ids, w_final, norm.max, shared)
        if done:
            by_name[self._rest[0]] = self._snapshot(self._rest[0], logits, norm)
        for i in range(1 if done else 0, len(self._rest)):
            self._apply(i, logits, w_ids, w_final)
            by_name[self._rest[i]] = self._snapshot(self._rest[i], logits, norm)
        self._in_order(views, by_name)
        drawn = self._draw()
        token = drawn if forced is None else forced
        prob, entropy_final = _final_stats(self.cand.view(), token)
        self._accept(token)
        self._accept_grammar(token, check=forced is not None)
        listed = views[0].ids
        if token in listed:  # listed: no pass over the vocabulary needed
            raw_rank = listed.index(token) + 1
            raw_prob = views[0].probs[raw_rank - 1]  # norm.probs of the same score
        else:
            raw_rank = 1 + int(np.count_nonzero(logits > logits[token]))
            raw_prob = float(norm.probs(logits[[token]])[0])
        fields = {
            "token_id": token,
            "prob": prob,
            "raw_prob": raw_prob,
            "raw_rank": raw_rank,
            "entropy_raw": norm.entropy,
            "entropy_final": entropy_final,
            "stages": tuple(views),
            "sample_ms": (time.perf_counter() - started) * 1000,
        }
        return token, fields

    def _in_order(self, views: list[StageView], by_name: dict[str, StageView]) -> None:
        """Append each stage's view to `views` (the raw one) in chain order; a stage turned off
        passes its input on unchanged."""
        for name in self.order:
            view = by_name.get(name)
            if view is None:
                prev = views[-1]
                view = StageView(name, prev.kept, prev.mass, prev.ids, prev.probs)
            views.append(view)

    def _stepped(self, whole: fused_scan.Stepped, logits: npt.NDArray[np.float32],
                 shift: float, started: float) -> dict[str, Any]:
        """The StepRecord fields of a step captured whole in C (see `_whole`): the figures
        the path in Python computes, by the same calls (the raw probabilities in C's double
        exp, where numpy's may differ in the last bit)."""
        self.whole_steps += 1
        norm = Normaliser(shift, whole.z, whole.entropy, whole.top)
        self._last_max, self._head_floor = whole.top, whole.floor
        views = [StageView(STAGE_RAW, self.n_vocab, 1.0, whole.raw_ids, whole.raw_probs)]
        by_name = {name: StageView(name, kept, min(mass, 1.0), ids, probs)
                   for name, (kept, mass, ids, probs) in zip(self._rest, whole.stages,
                                                             strict=True)}
        for i, (name, found) in enumerate(zip(self._prefix, whole.windows, strict=True)):
            if found is not None:  # penalties and DRY, viewed in C as the Python path views them
                by_name[name] = StageView(name, self.n_vocab, 1.0, *found)
            else:  # C could not sum z afresh: numpy does, from the window C patched
                assert self._whole is not None
                w_ids, after = self._whole.window()
                raw_ids = self._whole.ranked(len(whole.raw_ids) + len(w_ids))
                by_name[name] = self._window_view(name, logits, norm, raw_ids, w_ids, after[i])
        self._in_order(views, by_name)
        token = whole.token
        self._accept(token)
        if token in whole.raw_ids:
            raw_prob = whole.raw_probs[whole.raw_ids.index(token)]
        else:
            raw_prob = float(norm.probs(logits[[token]])[0])
        return {
            "token_id": token,
            "prob": whole.prob,
            "raw_prob": raw_prob,
            "raw_rank": whole.raw_rank,
            "entropy_raw": norm.entropy,
            "entropy_final": whole.entropy_final,
            "stages": tuple(views),
            "sample_ms": (time.perf_counter() - started) * 1000,
        }

    def _window_view(self, name: str, logits: npt.NDArray[np.float32], norm: Normaliser,
                     raw_ids: npt.NDArray[np.int32], w_ids: npt.NDArray[np.int32],
                     values: npt.NDArray[np.float32]) -> StageView:
        """A prefix stage's snapshot: the raw distribution with the window's scores replaced
        (in one call into C where built)."""
        found = fused_scan.window_view(logits, raw_ids, w_ids, values, norm.shift, norm.z,
                                       self.top_n)
        if found is not None:
            return StageView(name, self.n_vocab, 1.0, *found)
        ids = sorted_unique(np.concatenate([raw_ids, w_ids])).astype(np.int32)
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


def _address(sampler: Any) -> int:
    """A llama_sampler pointer's address, as C takes it."""
    address = ctypes.cast(sampler, ctypes.c_void_p).value
    assert address, "a sampler that llama.cpp did not build"
    return address


def _final_stats(final: npt.NDArray[Any], token: int) -> tuple[float, float]:
    """`token`'s probability in the distribution the draw used, and that distribution's
    entropy in bits (see `_final_probs`); a few candidates in C where built, a handful in
    plain Python otherwise."""
    if fused_scan.built():
        found = fused_scan.final_stats(final, token)
        if found is not None:
            return found
    if len(final) > TINY:
        final_p = _final_probs(final)
        nz = final_p[final_p > 0]
        where = np.flatnonzero(final["id"] == token)
        return (float(final_p[where[0]]) if len(where) else 0.0,
                float(-(nz * np.log2(nz)).sum()))
    scores, ids = final["logit"].tolist(), final["id"].tolist()
    finite = [x for x in scores if math.isfinite(x)]
    top = max(finite) if finite else 0.0
    weights = ([math.exp(x - top) if math.isfinite(x) else 0.0 for x in scores] if finite
               else [1.0] * len(scores))
    total = sum(weights) or 1.0
    probs = [w / total for w in weights]
    entropy = -sum(p * math.log2(p) for p in probs if p > 0)
    return (probs[ids.index(token)] if token in ids else 0.0), entropy


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
