"""The arithmetic under `StepSampler`: the candidate array, the raw normaliser, the head of the
vocabulary a cut can keep, and stage snapshots. Runs in the engine worker process.

Where the C extension is built (`fused_scan`), a captured step reads the whole vocabulary once:
z, entropy, max and the raw head in one pass, shifted by the last step's max and cut where the
last step's head reached (~0.08 ms cold for 262,144 scores, where the numpy passes below take
~0.33). Without it, a step reads the whole vocabulary in a few vectorised passes (the raw
normaliser's kernel pass and
its entropy's dot, one threshold pass per head; a captured step takes its max from its raw head
and shifts the kernel by the last step's max) and never sorts it: numpy over 262,144
scores, a threshold (`>=`) pass is ~0.05 ms where `argpartition` is 2.5 ms (../shared/FACTS.md),
so heads are found by threshold and only the few hundred tokens inside are sorted. Ranks break
ties by token id, so a listing does not depend on the order a sampler left its array in.

The raw softmax over the whole vocabulary (for the raw probabilities and the entropy) is the one
pass every captured step pays. numpy's float32 `exp` runs at ~3.6 ns a score on this project's
x86-64 machines (0.7–0.9 ms for Gemma's 262,144); llama.cpp's CPU backend has a vectorised
softmax kernel, `ggml_vec_soft_max_f32` (the one its soft_max operator runs; exported from
libggml-cpu), that does the same in ~0.17 ms with every exp within ~1e-6 of the exact value and
the sum in double. The normaliser uses it when this llama.cpp build exports it, numpy otherwise.
numpy's set routines (`unique`, `union1d`) import numpy.ma on first use (70–140 ms, inside the
first captured step): the helpers below sort instead.
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp as L
import numpy as np
import numpy.typing as npt

from desktop.core.steps import StageView
from desktop.engine import fused_scan

TOKEN_DATA = fused_scan.TOKEN_DATA
assert TOKEN_DATA.itemsize == ctypes.sizeof(L.llama_token_data)

SMALL = 4096  # at or below this many candidates a snapshot sorts them all
# The raw normaliser walks the logits in cache-sized chunks: the decode that just ran evicted
# everything, and one pass per chunk beats three cold passes over 1 MB arrays.
_CHUNK = 32768
_LOG2E = 1.0 / math.log(2.0)
_GAPS = (8.0, 16.0, 32.0, 64.0)  # how far below the top a snapshot's head reaches, in turn
SORT_HEAD = 2048  # tokens whose ids a sorted fill writes (typical's and Mirostat's survivors)
_NO_IDS = np.zeros(0, dtype=np.int32)


class TokenWindow:
    """The last `size` tokens a generation saw (the penalties' and DRY's window) in a ring of
    int32: which tokens, and how often, not their order, which is all their scores depend on
    here (the samplers keep their own order through accept). fused_scan.TopKStep reads the
    ring in place."""

    def __init__(self, size: int) -> None:
        self.size = max(0, size)
        self.ring = np.zeros(max(1, self.size), dtype=np.int32)
        self.count = 0  # ring[:count] hold tokens
        self._at = 0

    def append(self, token: int) -> None:
        if not self.size:
            return
        self.ring[self._at] = token
        self._at = (self._at + 1) % self.size
        self.count = min(self.count + 1, self.size)

    def tokens(self) -> npt.NDArray[np.int32]:
        return self.ring[: self.count]


class Candidates:
    """A llama_token_data_array over a numpy buffer.

    A sampler may move the array's start (XTC drops the head by advancing `data`), so `view()`
    reads the start from the array itself."""

    def __init__(self, capacity: int) -> None:
        # One spare slot before the array: `step_top_p` puts a -inf entry there for a moment.
        self.store = np.zeros(capacity + 1, dtype=TOKEN_DATA)
        self.buf = self.store[1:]
        self.front = self.store.ctypes.data_as(L.llama_token_data_p)
        self._data = self.buf.ctypes.data_as(L.llama_token_data_p)
        self._base = self.buf.ctypes.data
        self.arr = L.llama_token_data_array(data=self._data, size=capacity, selected=-1,
                                            sorted=False)
        self.ref = ctypes.byref(self.arr)
        self._ids = np.arange(capacity, dtype=np.int32)

    def at_start(self) -> bool:
        """Whether the array begins at the buffer's first slot (no sampler moved its start)."""
        return ctypes.cast(self.arr.data, ctypes.c_void_p).value == self._base

    def _reset(self, n: int) -> None:
        self.arr.data = self._data  # type: ignore[assignment]  # ctypes accepts the pointer
        self.arr.size = n
        self.arr.selected = -1
        self.arr.sorted = False

    def restart(self, n: int) -> None:
        """The first `n` slots again, unsorted (after `step_top_p` borrowed the array)."""
        self._reset(n)

    def keep_sorted(self, entries: npt.NDArray[Any]) -> None:
        """`entries` (TOKEN_DATA, best first) as the whole array, marked sorted: what
        llama.cpp's top-p leaves behind."""
        n = len(entries)
        self.buf[:n] = entries
        self._reset(n)
        self.arr.sorted = True

    def fill(self, logits: npt.NDArray[np.float32]) -> None:
        """The whole vocabulary, in id order (as llama.cpp fills it from the logits): in one
        pass in C where built (~0.15 ms a step less than numpy's two strided ones)."""
        n = len(logits)
        if not fused_scan.fill(self.buf[:n], logits):
            self.buf["id"][:n] = self._ids[:n]
            self.buf["logit"][:n] = logits
        self._reset(n)

    def fill_ids(self, ids: npt.NDArray[np.int32], values: npt.NDArray[np.float32]) -> None:
        """Some tokens (ids ascending, so in the order the whole array holds them)."""
        n = len(ids)
        head = self.buf[:n]
        head["id"] = ids
        head["logit"] = values
        self._reset(n)

    def fill_sorted(self, values: npt.NDArray[np.float32], divisors: tuple[float, ...]
                    ) -> npt.NDArray[np.float32] | None:
        """Every score, highest first, as llama.cpp's full sort leaves them (`sorted` set, so
        typical's and Mirostat's softmax skip their own sort: ~40 ms of bucket sort here, where
        numpy sorts the scores in ~1 ms). Only the head's ids are written; past it an id is -1.

        Every position holds the same score as after llama.cpp's sort (a sort of the same
        numbers), so a stage computes the same sums and picks the same positions; a position
        holds the same token wherever its score is unique. Returns the head's scores that are
        not unique, as they will be after dividing by `divisors` (the temperatures llama.cpp
        applies first, in float32 as it does: a division can make two scores equal): a stage
        that keeps one of them, or keeps an id -1, must run on the whole vocabulary instead.
        None, with nothing filled, when no short head exists."""
        ids, vals = head_ids(values, _NO_IDS, None, float(values.max()), count=SORT_HEAD)
        if ids is None or vals is None:
            return None
        order = ranked(ids, vals)
        ids, vals = ids[order], vals[order]
        seen = vals
        for d in divisors:
            seen = seen / np.float32(d)
        same = seen[1:] == seen[:-1]
        n = len(values)
        self.buf["logit"][:n] = np.sort(values)[::-1]
        self.buf["id"][: len(ids)] = ids
        self.buf["id"][len(ids) : n] = -1
        self._reset(n)
        self.arr.sorted = True
        tied: npt.NDArray[np.float32] = seen[1:][same]
        return tied

    def view(self) -> npt.NDArray[Any]:
        start = (ctypes.cast(self.arr.data, ctypes.c_void_p).value or 0) - self._base
        off = start // TOKEN_DATA.itemsize
        return self.buf[off : off + self.arr.size]


@dataclass(frozen=True)
class Normaliser:
    """The raw softmax over the whole vocabulary: p_i = exp(l_i - shift) / z."""

    shift: float
    z: float
    entropy: float  # bits
    max: float  # the top score

    def probs(self, values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        result: npt.NDArray[np.float64] = np.exp(values.astype(np.float64) - self.shift) / self.z
        return result

    def z_with(self, logits: npt.NDArray[np.float32], ids: npt.NDArray[np.int32],
               values: npt.NDArray[np.float32]) -> float:
        """z for the scores with `ids` changed to `values` (a penalised window)."""
        if not len(ids):
            return self.z
        old = float(np.exp(logits[ids].astype(np.float64) - self.shift).sum())
        new = float(np.exp(values.astype(np.float64) - self.shift).sum())
        z = self.z - old + new
        if z >= 0.1 * self.z:
            return z
        # The window held most of the mass and lost it: the difference would keep little more
        # than the rounding of z, so sum the changed scores afresh (in C's pass where built,
        # as a step taken whole in C sums them).
        changed = logits.copy()
        changed[ids] = values
        found = fused_scan.scan(changed, self.shift)
        if found is not None and found.normalised:
            return found.z
        return _exp_sum(changed, self.shift)[0]


def _exp_sum(logits: npt.NDArray[np.float32], shift: float) -> tuple[float, float, float]:
    """(sum of exp(l - shift), sum of exp(l - shift) * l, max l) over `logits`, chunk by
    chunk (each chunk read while it is in the cache). Unshifted, it stops at a score of 60 or
    more (exp would overflow) and returns the max for a shifted pass."""
    z = dot = 0.0
    top = -math.inf
    w = np.empty(min(len(logits), _CHUNK), dtype=np.float32)
    for start in range(0, len(logits), _CHUNK):
        part = logits[start : start + _CHUNK]
        out = w[: len(part)]
        top = max(top, float(part.max()))
        if not shift and top >= 60.0:  # exp would overflow: the caller shifts
            return math.inf, 0.0, float(logits.max())
        if shift:
            np.subtract(part, np.float32(shift), out=out)
            np.exp(out, out=out)
            dot += float(np.dot(out, part)) - shift * float(out.sum())
        else:
            np.exp(part, out=out)
            dot += float(np.dot(out, part))
        z += float(out.sum())
    return z, dot, top


def raw_normaliser(logits: npt.NDArray[np.float32], top: float | None = None) -> Normaliser:
    """Shift, z, entropy and max over the whole vocabulary, in one pass. `top`: the max, when
    the caller knows it (a captured step reads it from its raw head).

    Entropy is shift-invariant (H = ln Z - E_p[l - shift]). With llama.cpp's softmax kernel: the
    max, then exp(l - max) and its sum in one vectorised pass (`raw_z`), then E[l] as a dot
    product (`raw_entropy`). With
    numpy: while exp cannot overflow (|max logit| < 60) the logits need no shifting at all, so
    the pass goes unshifted and finds the max as it goes; only scores beyond that need a second,
    shifted pass."""
    scanned = _scanned_normaliser(logits, top)
    if scanned is not None:
        return scanned
    if _softmax_kernel() is not None and _kernel_takes(logits):
        top = float(logits.max()) if top is None else top
        found = raw_z(logits, top)
        if found is not None:
            z, exps = found
            return Normaliser(top, z, raw_entropy(logits, exps, z, top, top), top)
    z, dot, top = _exp_sum(logits, 0.0)
    shift = 0.0
    if abs(top) >= 60.0:
        shift = top
        z, dot, _ = _exp_sum(logits, shift)
    entropy = (math.log(z) - dot / z) * _LOG2E
    return Normaliser(shift, z, entropy, top)


def _scanned_normaliser(logits: npt.NDArray[np.float32], top: float | None) -> Normaliser | None:
    """The normaliser from `fused_scan`'s one pass, shifted by `top`, or (not known) by 0 while
    the scores stay within ±60 of it as numpy's path does; None without the extension."""
    if not fused_scan.available():
        return None
    found = fused_scan.scan(logits, 0.0 if top is None else top)
    if found is not None and (not found.normalised or (top is None and abs(found.top) >= 60.0)):
        found = fused_scan.scan(logits, found.top)
    if found is None or not found.normalised:
        return None
    return Normaliser(found.shift, found.z, found.entropy, found.top)


def raw_z(logits: npt.NDArray[np.float32], shift: float
          ) -> tuple[float, npt.NDArray[np.float32]] | None:
    """z = sum of exp(l - shift) over the whole vocabulary, and those exp values, in one
    vectorised pass of llama.cpp's kernel. `shift` need not be this step's max (a captured step
    gives the last step's: a probability is exp(l - shift) / z whatever the shift, and a step's
    max moves a few nats from the last, at most 15 in 400 steps of Gemma 3): None when it lay
    too far from it (exp overflowed, or z underflowed), or without the kernel. The values are
    a scratch buffer, valid until the next call."""
    kernel = _softmax_kernel()
    if kernel is None or not _kernel_takes(logits) or not math.isfinite(shift):
        return None
    w, _ = _scratch(len(logits))
    z = float(kernel(len(logits), w.ctypes.data, logits.ctypes.data, shift))
    if not 1e-30 < z < 1e30:  # NaN fails too
        return None
    return z, w


def raw_entropy(logits: npt.NDArray[np.float32], exps: npt.NDArray[np.float32], z: float,
                shift: float, top: float) -> float:
    """The raw entropy in bits from `raw_z`'s values, given the max `top`: H = ln z - E[l -
    shift], with E[l - top] from a dot of exp(l - shift) with l - top, whose terms are all ≤ 0,
    so float32 sums lose nothing to cancellation (a dot with l, less shift * z, would lose
    ~1e-4 bits)."""
    _, d = _scratch(len(logits))
    np.subtract(logits, np.float32(top), out=d)
    mean = float(np.dot(exps, d)) / z + (top - shift)
    return (math.log(z) - mean) * _LOG2E


def _kernel_takes(logits: npt.NDArray[Any]) -> bool:
    return (logits.dtype == np.float32 and logits.flags.c_contiguous
            and 0 < len(logits) < 2**31)


_SCRATCH: list[npt.NDArray[np.float32]] = []


def _scratch(n: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Two float32 buffers of `n` for the kernel's output and the shifted scores, kept between
    steps (one pair per process: the worker samples on one thread)."""
    if len(_SCRATCH) != 2 or len(_SCRATCH[0]) != n:
        _SCRATCH[:] = [np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)]
    return _SCRATCH[0], _SCRATCH[1]


@functools.cache
def _softmax_kernel() -> Any:
    """llama.cpp's `ggml_vec_soft_max_f32(n, y, x, max)`: y = exp(x - max), returns the sum (a
    double). None when this build does not export it (a build with one CPU library per
    instruction set, or another platform's naming): then numpy computes the normaliser."""
    names = {"darwin": "libggml-cpu.dylib", "win32": "ggml-cpu.dll"}
    path = Path(L.__file__).parent / "lib" / names.get(sys.platform, "libggml-cpu.so")
    try:
        kernel = ctypes.CDLL(str(path)).ggml_vec_soft_max_f32
    except (OSError, AttributeError):
        return None
    kernel.restype = ctypes.c_double
    kernel.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_float)
    return kernel


def sorted_unique(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """np.unique(values), without importing numpy.ma."""
    s = np.sort(values, axis=None)
    if len(s) < 2:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def all_distinct(values: npt.NDArray[Any]) -> bool:
    """Whether no two of `values` are equal."""
    s = np.sort(values, axis=None)
    return not bool((s[1:] == s[:-1]).any())


def ranked(ids: npt.NDArray[Any], values: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
    """Indices that put (ids, values) most probable first, ties by token id."""
    order: npt.NDArray[np.intp] = np.lexsort((ids, -values.astype(np.float64)))
    return order


def _above(logits: npt.NDArray[np.float32], w_ids: npt.NDArray[np.int32],
           w_values: npt.NDArray[np.float32] | None, t: float,
           ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], int]:
    """Ids (ascending) and current scores of every token at or above `t`, and how many of them
    lie outside the window."""
    idx = np.flatnonzero(logits >= np.float32(t)).astype(np.int32)
    vals = logits[idx]
    if not len(w_ids) or w_values is None:
        return idx, vals, len(idx)
    keep = ~np.isin(idx, w_ids, assume_unique=True)
    idx, vals = idx[keep], vals[keep]
    outside = len(idx)
    inside = w_values >= np.float32(t)
    idx = np.concatenate([idx, w_ids[inside]])
    vals = np.concatenate([vals, w_values[inside]])
    order = np.argsort(idx, kind="stable")
    return idx[order], vals[order], outside


def _threshold_for(logits: npt.NDArray[np.float32], count: int) -> float:
    """A score that about `count` + 1,000 tokens (+ 6% for a large count, where the sample's
    error grows) reach, read from every 64th score."""
    sample = logits[::64]
    k = count // 64 + 16 + count // 1024
    if k >= len(sample):
        return -math.inf
    return float(np.partition(sample, len(sample) - k)[len(sample) - k])


def head_ids(
    logits: npt.NDArray[np.float32], w_ids: npt.NDArray[np.int32],
    w_values: npt.NDArray[np.float32] | None, raw_max: float | None, *,
    count: int | None = None, min_p: float | None = None, guess: float | None = None,
    limit: int | None = None,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]] | tuple[None, None]:
    """The ids (ascending) and current scores of every token whose score reaches a threshold;
    current means raw except for the window `w_ids`, whose scores are now `w_values`.

    With `count`, the threshold lets at least `count` tokens in, so the `count` highest, and any
    token tied with the last of them, are all inside. With `min_p`, it sits 1 below min-p's own
    cut, max + log(min_p) (far beyond float32 rounding), so every survivor of min-p is inside;
    the max is exact, since the highest token outside the window is always inside the head.
    (None, None) when the head would be a large part of the vocabulary: then the whole one.
    `raw_max`: the top raw score, found here when None and needed.
    `guess`: a threshold to try first with `count` (where the last step's head reached, see
    `head_order`): it saves finding one, and the max with it, when it lets in enough tokens; a
    guess that lets in far more is narrowed among those it let in (`narrowed`).
    `limit`: the most tokens a head may hold (a quarter of the vocabulary by default)."""
    limit = max(65536, len(logits) // 4) if limit is None else limit
    if guess is not None and count is not None and min_p is None:
        idx, vals, _ = _above(logits, w_ids, w_values, guess)
        if count <= len(idx) <= limit:
            return narrowed(idx, vals, count)
    if raw_max is None:
        raw_max = float(logits.max())
    t = raw_max + math.log(min_p) - 1.0 if min_p is not None else _threshold_for(logits,
                                                                                  count or 1)
    for _ in range(6):
        idx, vals, outside = _above(logits, w_ids, w_values, t)
        if len(idx) > limit:
            break
        if min_p is not None:
            if outside == 0:  # the highest score outside the window may lie lower
                t -= 8.0
                continue
            cut = float(vals.max()) + math.log(min_p) - 1.0
            if cut < t:  # penalties lowered the top: min-p's cut lies lower than assumed
                t = cut
                continue
            sel = vals >= np.float32(cut)
            return idx[sel], vals[sel]
        if count is not None and len(idx) >= count:
            return idx, vals
        if count is not None and 2 * len(idx) >= count:
            # The sample's estimate fell a little short: ask it for a third more, not for the
            # twice as far below the top that would let in far more than a large head's limit.
            lower = _threshold_for(logits, count + count // 3)
            if lower < t:
                t = lower
                continue
        t -= max(8.0, raw_max - t)  # reach twice as far below the top
    return None, None


def narrowed(idx: npt.NDArray[np.int32], vals: npt.NDArray[np.float32], count: int
              ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """A head of far more than `count` tokens cut at a higher threshold, read from every 16th
    of its scores (a head is still every token at or above a threshold), when that keeps at
    least `count`: ranking it then partitions ~2 × `_reach` scores, not tens of thousands."""
    keep = 2 * _reach(len(idx), count)
    if len(idx) <= max(4096, 2 * keep):
        return idx, vals
    sample = vals[::16]
    k = keep // 16 + 1
    t = np.partition(sample, len(sample) - k)[len(sample) - k]
    sel = vals >= t
    if int(np.count_nonzero(sel)) < count:
        return idx, vals
    return idx[sel], vals[sel]


def head_order(values: npt.NDArray[np.float32], count: int
               ) -> tuple[npt.NDArray[np.intp], float]:
    """The `count` highest of a head's `values` and every one tied with the last of them,
    ranked as `ranked` ranks them (a head's ids ascend, so a stable sort of the scores breaks
    ties by id); and `reach_of` the head. A partition, then a sort of those few."""
    order: npt.NDArray[np.intp]
    n = len(values)
    count = min(count, n)
    reach = _reach(n, count)
    if n <= 64:
        order = np.argsort(-values, kind="stable")
        return order, float(values[order[reach - 1]])
    part = np.partition(values, (n - reach, n - count))
    sel = np.flatnonzero(values >= part[n - count])
    order = sel[np.argsort(-values[sel], kind="stable")]
    return order, float(part[n - reach])


def ranked_head(logits: npt.NDArray[np.float32], head: npt.NDArray[np.int32], count: int,
                values: npt.NDArray[np.float32] | None = None,
                ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], float]:
    """A head's `count` highest tokens and every one tied with the last of them, most probable
    first with ties by id (ids, scores), and the score `_reach` places down the head (the next
    step's guess): in C where built (a selection, then a sort of those few), else a head far
    longer than needed `narrowed` and `head_order`. `values`: logits[head] when known."""
    count = min(count, len(head))
    reach = _reach(len(head), count)
    if fused_scan.built():
        found = fused_scan.rank(logits, head, count, reach)
        if found is not None:
            return found
    if values is None:
        values = logits[head]
    head, values = narrowed(head, values, count)
    order, floor = head_order(values, count)
    return head[order], values[order], floor


def reach_of(values: npt.NDArray[np.float32], count: int) -> float:
    """The score `_reach` places down a head's `values`: the threshold the next step's head
    tries first (`head_ids`'s guess)."""
    n = len(values)
    reach = _reach(n, count)
    return float(np.partition(values, n - reach)[n - reach])


def _reach(n: int, count: int) -> int:
    """How many of a head's `n` tokens the next step's guess should let in: 4 × `count` + 800.
    A step's scores move little in absolute terms (the max and the bulk move together): on
    Gemma 3's replies the score at rank ~1,000 let in fewer than 50 tokens at the next step 4%
    of the time, and more than 4,096 (then `narrowed`) 17%."""
    return min(n, 4 * count + 800)


TINY = 16  # at or below this many candidates a snapshot is plain Python (numpy's calls cost more)


def small_snapshot(name: str, view: npt.NDArray[Any], top_n: int,
                   logits: npt.NDArray[np.float32], norm: Normaliser) -> StageView:
    """A stage's survivors when there are few: all of them sorted (in C where built)."""
    if fused_scan.built():
        found = fused_scan.snapshot(view, top_n, logits, norm.shift, norm.z)
        if found is not None:
            kept, mass, top_ids, top_probs = found
            return StageView(name, kept, min(mass, 1.0), top_ids, top_probs)
    if len(view) <= TINY:
        return _tiny_snapshot(name, view, top_n, logits, norm)
    lg = view["logit"].astype(np.float64)
    alive = lg > -np.inf
    ids = view["id"][alive]
    lg = lg[alive]
    if not len(lg):
        return StageView(name, 0, 0.0)
    w = np.exp(lg - lg.max())
    order = ranked(ids, lg)[:top_n]
    probs = w[order] / w.sum()
    mass = float(norm.probs(logits[ids]).sum())
    return StageView(name, len(ids), min(mass, 1.0), ints(ids[order]), floats(probs))


def _tiny_snapshot(name: str, view: npt.NDArray[Any], top_n: int,
                   logits: npt.NDArray[np.float32], norm: Normaliser) -> StageView:
    """`small_snapshot` for a handful of survivors (min-p's, the final stage's), in plain
    Python: the same order (most probable first, ties by id, as `ranked`) and the same float64
    arithmetic, in ~7 µs where numpy's dozen calls take ~20."""
    ranks = sorted((-score, token) for score, token
                   in zip(view["logit"].tolist(), view["id"].tolist()) if score > -math.inf)
    if not ranks:
        return StageView(name, 0, 0.0)
    top = -ranks[0][0]
    weights = [math.exp(-neg - top) for neg, _ in ranks]
    total = sum(weights)
    kept = [token for _, token in ranks]
    shift, z = norm.shift, norm.z
    mass = sum(math.exp(raw - shift) for raw in logits[kept].tolist()) / z
    n = min(top_n, len(kept))
    return StageView(name, len(kept), min(mass, 1.0), tuple(kept[:n]),
                     tuple(w / total for w in weights[:n]))


def large_snapshot(name: str, view: npt.NDArray[Any], top_n: int,
                   logits: npt.NDArray[np.float32], norm: Normaliser, n_vocab: int, *,
                   sorted_: bool) -> StageView:
    """A stage's survivors when the array is large: a stage that only masks scores (top-n-sigma
    sets them to -inf) leaves few alive, which are snapshot like a small array; otherwise one
    pass for their normaliser and count, and the top-N from the front of a sorted array or from
    a threshold head."""
    lg = np.ascontiguousarray(view["logit"])  # strided field reads defeat numpy's SIMD loops
    finite = lg > -np.inf
    kept = int(np.count_nonzero(finite))
    if kept <= SMALL:
        return small_snapshot(name, view[np.flatnonzero(finite)], top_n, logits, norm)
    if kept < len(lg):  # many masked (a grammar): their -inf would poison the sums below
        alive = np.flatnonzero(finite)
        view, lg, finite = view[alive], lg[alive], np.ones(kept, dtype=bool)
    mx = float(lg[0]) if sorted_ else float(lg.max())
    scanned = fused_scan.scan(lg, mx) if fused_scan.available() else None
    z = scanned.z if scanned is not None and scanned.normalised else _exp_sum(lg, mx)[0]
    if sorted_:
        idx = np.arange(min(len(view), top_n + 16))  # ties at the N-th come in, then ranked
    else:
        idx = np.flatnonzero(lg >= np.float32(mx - _GAPS[0]))
        for gap in _GAPS[1:]:
            if len(idx) >= top_n:
                break
            idx = np.flatnonzero(lg >= np.float32(mx - gap))
        if len(idx) < top_n:
            idx = np.flatnonzero(finite)
    idx = idx[lg[idx] > -np.inf]
    ids, vals = view["id"][idx], lg[idx].astype(np.float64)
    order = ranked(ids, vals)[:top_n]
    probs = np.exp(vals[order] - mx) / z
    mass = 1.0 if kept == n_vocab else float(norm.probs(logits[view["id"][finite]]).sum())
    return StageView(name, kept, min(mass, 1.0), ints(ids[order]), floats(probs))


def ints(values: npt.NDArray[Any]) -> tuple[int, ...]:
    return tuple(values.tolist())  # tolist() already yields Python ints


def floats(values: npt.NDArray[Any]) -> tuple[float, ...]:
    return tuple(values.tolist())
