"""One pass over a step's raw scores in C (`_scan.c`): the raw softmax's z, its entropy and the
ids at or above a threshold, where numpy needs three passes; and a stage's few survivors
snapshot (`snapshot`, `final_stats`) in one call where numpy makes a dozen; and a whole captured
step of a chain that begins with top-k (`TopKStep`), llama.cpp's samplers included, in one call
where Python makes ~25 (each paying the caches the decode just emptied).

Runs in the engine worker process. `_scan` is an optional extension that setuptools compiles at
install (pyproject.toml); without it, or on a CPU without AVX2 and FMA, `available()` is False
and step_shortcuts keeps to numpy and llama.cpp's softmax kernel. The extension is loaded with
ctypes (its functions take raw pointers; a call costs ~2 µs).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

_LOG2E = 1.0 / math.log(2.0)
ABI = 4  # _scan.c's openlid_scan_abi(): the signatures below


def entropy_bits(z: float, dot: float) -> float:
    """The softmax's entropy in bits from z = Σ exp(x) and dot = Σ exp(x) x (x = l - shift);
    NaN where z is out of the range the sums are usable in (see `Scanned.normalised`)."""
    return (math.log(z) - dot / z) * _LOG2E if 1e-30 < z < 1e30 else math.nan


@dataclass(frozen=True)
class Scanned:
    """What one pass found: z = Σ exp(l - shift), the entropy in bits, the max score, how many
    scores reach the threshold and, when they fit the buffer, their ids (ascending; a view of a
    buffer reused by the next scan)."""

    shift: float
    z: float
    entropy: float
    top: float
    count: int
    ids: npt.NDArray[np.int32] | None

    @property
    def normalised(self) -> bool:
        """Whether z (and the entropy) can be used: False when `shift` lay too far from the
        scores (a score 80 nats above it, or z below 1e-30); shift by `top` then."""
        return 1e-30 < self.z < 1e30  # NaN fails too


@functools.cache
def _origin() -> str | None:
    """The extension's file, where it was built."""
    spec = importlib.util.find_spec("desktop.engine._scan")
    return spec.origin if spec is not None and spec.origin else None


@functools.cache
def _library() -> Any:
    origin = _origin()
    if origin is None:
        return None
    try:
        lib = ctypes.CDLL(origin)
        abi = lib.openlid_scan_abi
    except (OSError, AttributeError):
        return None
    abi.restype = ctypes.c_int
    abi.argtypes = ()
    if abi() != ABI:  # built from other sources than these: not called
        return None
    lib.openlid_scan_level.restype = ctypes.c_int
    lib.openlid_scan_level.argtypes = ()
    lib.openlid_snapshot.restype = ctypes.c_int64
    lib.openlid_snapshot.argtypes = (
        ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
        ctypes.c_double, ctypes.c_double, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
    lib.openlid_rank.restype = ctypes.c_int64
    lib.openlid_rank.argtypes = (
        ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
        ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
    lib.openlid_final.restype = ctypes.c_int64
    lib.openlid_final.argtypes = (
        ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p)
    lib.openlid_top_p.restype = ctypes.c_int64
    lib.openlid_top_p.argtypes = (ctypes.c_void_p, ctypes.c_int64, ctypes.c_float,
                                  ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                  ctypes.c_void_p)
    lib.openlid_fill.restype = None
    lib.openlid_fill.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
    lib.openlid_step.restype = ctypes.c_int64
    lib.openlid_step.argtypes = (ctypes.c_void_p,)
    lib.openlid_scan.restype = ctypes.c_int64
    lib.openlid_scan.argtypes = (
        ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_float,
        ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p)
    return lib


@functools.cache
def level() -> int:
    """2: AVX-512, 1: AVX2 with FMA, 0: no vectorised pass here (or no extension)."""
    lib = _library()
    return int(lib.openlid_scan_level()) if lib is not None else 0


def available() -> bool:
    """Whether the vectorised pass runs here."""
    return level() > 0


def built() -> bool:
    """Whether the extension is here (its snapshots need no vector unit)."""
    return _library() is not None


def capture_pass() -> str:
    """Which pass over a step's scores the capture runs here, in words (doctor, self-test)."""
    return {2: "C, AVX-512", 1: "C, AVX2"}.get(
        level(), "numpy (the C extension is not built, or this CPU has no AVX2)")


_ids: list[npt.NDArray[np.int32]] = []
_out = np.zeros(2, dtype=np.float64)
_max = np.zeros(1, dtype=np.float32)
# The fixed output buffers' addresses, read once (`.ctypes.data` costs ~0.8 µs a read).
_OUT, _MAX = _out.ctypes.data, _max.ctypes.data


def scan(logits: npt.NDArray[np.float32], shift: float, threshold: float = math.inf, *,
         cap: int | None = None, at_level: int | None = None) -> Scanned | None:
    """One pass over `logits` (float32, contiguous). None without the extension (the caller
    keeps to numpy). `cap`: the most ids kept (a quarter of
    the vocabulary by default); `at_level`: a slower level than the CPU's (the tests)."""
    lib = _library()
    run_at = level() if at_level is None else at_level
    if lib is None or not math.isfinite(shift) or not (
            logits.dtype == np.float32 and logits.flags.c_contiguous and 0 < len(logits) < 2**31):
        return None
    n = len(logits)
    cap = max(65536, n // 4) if cap is None else cap
    if not _ids or len(_ids[0]) < cap:
        _ids[:] = [np.empty(cap, dtype=np.int32)]
    ids = _ids[0]
    count = int(lib.openlid_scan(run_at, logits.ctypes.data, n, shift, threshold,
                                 ids.ctypes.data, cap, _OUT, _MAX))
    z, dot, top = float(_out[0]), float(_out[1]), float(_max[0])
    return Scanned(shift, z, entropy_bits(z, dot), top, count,
                   ids[:count] if count <= cap else None)


SNAPSHOT_MAX = 512  # as in _scan.c: larger arrays are snapshot by numpy
_snap_ids = np.zeros(SNAPSHOT_MAX, dtype=np.int32)
_snap_probs = np.zeros(SNAPSHOT_MAX, dtype=np.float64)
_figures = np.zeros(2, dtype=np.float64)
_SNAP_IDS, _SNAP_PROBS = _snap_ids.ctypes.data, _snap_probs.ctypes.data
_FIGURES, _FIGURE_1 = _figures.ctypes.data, _figures.ctypes.data + _figures.itemsize


def snapshot(view: npt.NDArray[Any], top_n: int, raw: npt.NDArray[np.float32], shift: float,
             z: float) -> tuple[int, float, tuple[int, ...], tuple[float, ...]] | None:
    """A stage's survivors (`view`: a contiguous llama_token_data array, scores > -inf
    survive): how many, their raw mass (Σ exp(raw[id] - shift) / z), and the `top_n` most
    probable (ties by id) with their probabilities renormalised over the survivors, float64
    throughout. None without the extension, beyond SNAPSHOT_MAX candidates, or when an id is
    not a token of `raw`."""
    lib = _library()
    if (lib is None or len(view) > SNAPSHOT_MAX or not view.flags.c_contiguous
            or raw.dtype != np.float32 or not raw.flags.c_contiguous):
        return None
    top_n = min(top_n, SNAPSHOT_MAX)
    kept = int(lib.openlid_snapshot(view.ctypes.data, len(view), top_n, raw.ctypes.data,
                                    len(raw), shift, z, _SNAP_IDS, _SNAP_PROBS, _FIGURES))
    if kept < 0:  # an id that is not a token of `raw`: numpy's path says what it makes of it
        return None
    n = min(top_n, kept)
    return (kept, float(_figures[0]), tuple(_snap_ids[:n].tolist()),
            tuple(_snap_probs[:n].tolist()))


def final_stats(final: npt.NDArray[Any], token: int) -> tuple[float, float] | None:
    """`token`'s probability in the distribution renormalised from `final`'s scores (float64;
    -inf weighs nothing; all -inf: uniform) and its entropy in bits. None without the extension
    or beyond SNAPSHOT_MAX candidates."""
    lib = _library()
    if lib is None or len(final) > SNAPSHOT_MAX or not final.flags.c_contiguous:
        return None
    lib.openlid_final(final.ctypes.data, len(final), token, _FIGURES, _FIGURE_1)
    return float(_figures[0]), float(_figures[1])


def fill(buf: npt.NDArray[Any], logits: npt.NDArray[np.float32]) -> bool:
    """Write ids 0… and `logits` into the llama_token_data array `buf` (as long as `logits`) in
    one pass; False without the extension, or for arrays it does not take (numpy does it)."""
    lib = _library()
    if (lib is None or len(buf) != len(logits) or buf.dtype.itemsize != 12
            or not buf.flags.c_contiguous
            or logits.dtype != np.float32 or not logits.flags.c_contiguous):
        return False
    lib.openlid_fill(buf.ctypes.data, logits.ctypes.data, len(logits))
    return True


class TopPCut:
    """`openlid_top_p`: top-p's cut on a head of `buf` (a llama_token_data array), with the
    probabilities llama.cpp's top-p computes, bit for bit (see _scan.c). `gaps`: how far below
    the max a head reaches, in turn; `limit`: the most tokens a head may hold."""

    def __init__(self, p: float, gaps: tuple[float, ...], limit: int) -> None:
        self.p = p
        self._gaps = np.asarray(gaps, dtype=np.float64)
        self._scratch = np.empty(limit * 3, dtype=np.float32)  # (logit, id, p) entries
        self._limit = limit

    def apply(self, buf: npt.NDArray[Any], n: int) -> int | None:
        """How many tokens top-p keeps, written best first to `buf`'s first slots; 0 where
        llama.cpp's own top-p must run (nothing written); None without the extension."""
        lib = _library()
        if lib is None or buf.dtype.itemsize != 12 or not buf.flags.c_contiguous or n > len(buf):
            return None
        return int(lib.openlid_top_p(buf.ctypes.data, n, self.p, self._gaps.ctypes.data,
                                     len(self._gaps), self._limit, self._scratch.ctypes.data))


_rank_room: list[Any] = []  # scratch, ids out, scores out: grown to the longest head seen
_floor = np.zeros(1, dtype=np.float32)
_FLOOR = _floor.ctypes.data


def rank(logits: npt.NDArray[np.float32], ids: npt.NDArray[np.int32], count: int, reach: int
         ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], float] | None:
    """Of a head `ids` (scores `logits[ids]`): the `count` highest and every one tied with the
    last of them, most probable first with ties by id (new arrays), and the `reach`-th highest
    score. None without the extension, or for ids outside `logits`, a NaN score, or not
    1 <= count <= reach <= len(ids)."""
    lib = _library()
    n = len(ids)
    if (lib is None or not 1 <= count <= reach <= n or ids.dtype != np.int32
            or not ids.flags.c_contiguous or logits.dtype != np.float32
            or not logits.flags.c_contiguous):
        return None
    if not _rank_room or len(_rank_room[1]) < n:
        _rank_room[:] = [np.empty(3 * n, dtype=np.float32), np.empty(n, dtype=np.int32),
                         np.empty(n, dtype=np.float32)]
    scratch, out_ids, out_vals = _rank_room
    m = int(lib.openlid_rank(logits.ctypes.data, len(logits), ids.ctypes.data, n, count, reach,
                             scratch.ctypes.data, out_ids.ctypes.data, out_vals.ctypes.data,
                             _FLOOR))
    if m < 0:  # an id outside the logits, or a NaN score
        return None
    return out_ids[:m].copy(), out_vals[:m].copy(), float(_floor[0])


# llama.cpp's llama_token_data {id, logit, p} as a numpy record (step_shortcuts checks the size).
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)


class _StepArgs(ctypes.Structure):
    """_scan.c's step_args (every field 8 bytes wide: no padding to agree on)."""

    _fields_ = [
        ("level", ctypes.c_int64), ("logits", ctypes.c_void_p), ("n_vocab", ctypes.c_int64),
        ("shift", ctypes.c_double), ("guess", ctypes.c_double), ("top_n", ctypes.c_int64),
        ("top_k", ctypes.c_int64), ("head", ctypes.c_void_p), ("head_cap", ctypes.c_int64),
        ("scratch", ctypes.c_void_p), ("rank_ids", ctypes.c_void_p),
        ("rank_vals", ctypes.c_void_p), ("arr", ctypes.c_void_p), ("buf", ctypes.c_void_p),
        ("apply", ctypes.c_void_p), ("stages", ctypes.c_void_p), ("n_stages", ctypes.c_int64),
        ("draw", ctypes.c_void_p), ("history", ctypes.c_void_p),
        ("n_history", ctypes.c_int64), ("prefix", ctypes.c_void_p), ("n_prefix", ctypes.c_int64),
        ("wbuf", ctypes.c_void_p), ("w_ids", ctypes.c_void_p), ("w_vals", ctypes.c_void_p),
        ("w_cap", ctypes.c_int64), ("window_ids", ctypes.c_void_p),
        ("window_vals", ctypes.c_void_p), ("n_window", ctypes.c_int64),
        ("kept", ctypes.c_void_p), ("mass", ctypes.c_void_p),
        ("ids", ctypes.c_void_p), ("probs", ctypes.c_void_p), ("z", ctypes.c_double),
        ("dot", ctypes.c_double), ("top", ctypes.c_double), ("floor", ctypes.c_double),
        ("count", ctypes.c_int64), ("ranked", ctypes.c_int64), ("token", ctypes.c_int64),
        ("raw_rank", ctypes.c_int64), ("prob", ctypes.c_double), ("entropy", ctypes.c_double),
    ]


class Stepped(NamedTuple):
    """A whole captured step (`TopKStep.run`), as _scan.c's openlid_step_py builds it: the
    token llama.cpp drew, its probability and the entropy (bits) of the distribution it was
    drawn from, its raw rank; the raw softmax's z and Σ exp(l - shift) (l - shift), the top
    score and the next step's head floor; the raw top-N (ids, probabilities exp(l - shift) / z,
    most probable first); and each stage's snapshot (kept, raw mass, top-N ids, their
    probabilities renormalised over the survivors), in chain order from top-k on; and each
    penalties or DRY stage's view (ids, probabilities: the raw softmax with the window's scores
    after that stage; z summed afresh by the same pass where the window held most of the mass),
    or None where C could not sum it (numpy does, from `TopKStep.window`)."""

    token: int
    prob: float
    entropy_final: float
    raw_rank: int
    z: float
    dot: float
    top: float
    floor: float
    raw_ids: tuple[int, ...]
    raw_probs: tuple[float, ...]
    stages: tuple[tuple[int, float, tuple[int, ...], tuple[float, ...]], ...]
    windows: tuple[tuple[tuple[int, ...], tuple[float, ...]] | None, ...]

    @property
    def entropy(self) -> float:
        """The raw softmax's entropy in bits."""
        return entropy_bits(self.z, self.dot)


class TopKStep:
    """`openlid_step`: a captured step of a chain whose first cutting stage is top-k (no
    grammar) in one call, with llama.cpp's own samplers (all as llama_sampler pointers:
    `prefix`: penalties and DRY before top-k, run on the window's tokens alone; `stages`:
    top-k's, then each later one's; `draw`: the dist sampler or None) applied through `apply`
    (llama_sampler_apply's address) to the candidate array at `arr` (a
    llama_token_data_array) over the buffer at `buf`. `history`: the window's ring of the last
    tokens (StepSampler's TokenWindow; its first `n_history` entries count, in any order).
    Built per generation (StepSampler)."""

    def __init__(self, n_vocab: int, top_n: int, top_k: int, stages: list[int], draw: int | None,
                 apply: int, arr: int, buf: int, prefix: list[int] | None = None,
                 history: npt.NDArray[np.int32] | None = None) -> None:
        self.n_vocab, self.top_n, self.n_stages = n_vocab, top_n, len(stages)
        cap = max(65536, n_vocab // 4)
        self._head = np.empty(cap, dtype=np.int32)
        self._scratch = np.empty(3 * cap, dtype=np.float32)
        self._rank_ids = np.empty(cap, dtype=np.int32)
        self._rank_vals = np.empty(cap, dtype=np.float32)
        self._stages = (ctypes.c_void_p * len(stages))(*stages)
        self._kept = np.zeros(len(stages), dtype=np.int64)
        self._mass = np.zeros(len(stages), dtype=np.float64)
        self._ids = np.zeros((len(stages), top_n), dtype=np.int32)
        self._probs = np.zeros((len(stages), top_n), dtype=np.float64)
        prefix = prefix or []
        self._history = history if history is not None else np.zeros(1, dtype=np.int32)
        if self._history.dtype != np.int32 or not self._history.flags.c_contiguous:
            raise ValueError("the window's ring must be contiguous int32")
        w_cap = len(self._history)
        self._prefix = (ctypes.c_void_p * max(1, len(prefix)))(*prefix)
        self._wbuf = np.zeros(w_cap, dtype=TOKEN_DATA)
        self._w_ids = np.zeros(w_cap, dtype=np.int32)
        self._w_vals = np.zeros((max(1, len(prefix)), w_cap), dtype=np.float32)
        self.args = a = _StepArgs(
            level=level(), n_vocab=n_vocab, top_n=top_n, top_k=top_k,
            head=self._head.ctypes.data, head_cap=cap, scratch=self._scratch.ctypes.data,
            rank_ids=self._rank_ids.ctypes.data, rank_vals=self._rank_vals.ctypes.data,
            arr=arr, buf=buf, apply=apply,
            stages=ctypes.cast(self._stages, ctypes.c_void_p).value, n_stages=len(stages),
            draw=draw, history=self._history.ctypes.data, n_history=0,
            prefix=ctypes.cast(self._prefix, ctypes.c_void_p).value, n_prefix=len(prefix),
            wbuf=self._wbuf.ctypes.data, w_ids=self._w_ids.ctypes.data,
            w_vals=self._w_vals.ctypes.data, w_cap=w_cap,
            kept=self._kept.ctypes.data, mass=self._mass.ctypes.data,
            ids=self._ids.ctypes.data, probs=self._probs.ctypes.data)
        self._address = ctypes.addressof(a)
        self._logits: npt.NDArray[np.float32] | None = None  # the view `args` points into

    def _set(self, logits: npt.NDArray[np.float32], shift: float, guess: float,
             n_history: int) -> bool:
        """Point the arguments at this step's scores; False where C cannot take them."""
        a = self.args
        if logits is not self._logits:  # the engine hands the same view every step
            # (writable: a penalties view whose z is summed afresh writes the window's scores
            # over the array for that pass, and puts them back)
            if (logits.dtype != np.float32 or not logits.flags.c_contiguous
                    or not logits.flags.writeable or len(logits) != self.n_vocab):
                return False
            self._logits, a.logits = logits, logits.ctypes.data
        if not math.isfinite(shift) or not 0 <= n_history <= len(self._history):
            return False
        a.shift, a.guess, a.n_history = shift, guess, n_history
        return True

    def ranked(self, count: int) -> npt.NDArray[np.int32]:
        """The last step's raw head, its `count` best ids ranked (a copy)."""
        return self._rank_ids[:count].copy()

    def window(self) -> tuple[npt.NDArray[np.int32], list[npt.NDArray[np.float32]]]:
        """The last step's window: its ids (ascending) and their scores after each prefix
        stage (copies), as StepSampler._window_patch returns them."""
        n_w = int(self.args.n_window)
        rows = [self._w_vals[s, :n_w].copy() for s in range(int(self.args.n_prefix))]
        return self._w_ids[:n_w].copy(), rows

    def run(self, logits: npt.NDArray[np.float32], shift: float, guess: float,
            n_history: int = 0) -> Stepped | Scanned | None:
        """The step (Stepped); or, where the Python path must go on (nothing with a state has
        run yet), what the pass over the scores found (Scanned), or None when it found nothing
        usable. `logits`: float32, contiguous, n_vocab of them; `n_history`: how many of the
        window's ring hold tokens. RuntimeError when a stage broke what the step relies on
        (the array grew or the draw selected nothing)."""
        step = _py_step()
        if step is None or not self._set(logits, shift, guess, n_history):
            return None
        a = self.args
        found = step(self._address)
        if type(found) is tuple:
            return Stepped._make(found)
        if found == 2:
            return None
        z, count = a.z, int(a.count)
        return Scanned(shift, z, entropy_bits(z, a.dot), float(a.top), count,
                       self._head[:count] if count <= len(self._head) else None)

    def draw(self, logits: npt.NDArray[np.float32], shift: float, guess: float,
             n_history: int = 0) -> tuple[int, float, float] | None:
        """The same step with nothing kept but the token (a step not captured): (token, top
        score, next head floor), or None where the Python path must take the step (nothing
        with a state has run)."""
        lib = _library()
        if lib is None or not self._set(logits, shift, guess, n_history):
            return None
        a = self.args
        code = lib.openlid_step(self._address)
        if code > 0:
            return None
        if code < 0:
            raise RuntimeError("a sampler stage broke the step (openlid_step)")
        return a.token, a.top, a.floor


@functools.cache
def _py_lib() -> Any:
    """The extension loaded so that its calls hold the GIL (they build Python objects)."""
    origin = _origin()
    if _library() is None or origin is None:
        return None
    lib = ctypes.PyDLL(origin)
    lib.openlid_step_py.restype = ctypes.py_object
    lib.openlid_step_py.argtypes = (ctypes.c_void_p,)
    lib.openlid_window_view.restype = ctypes.py_object
    lib.openlid_window_view.argtypes = (
        ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
        ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_double, ctypes.c_int64)
    return lib


def _py_step() -> Any:
    """openlid_step_py (with the GIL held), or None without the extension."""
    lib = _py_lib()
    return lib.openlid_step_py if lib is not None else None


def window_view(logits: npt.NDArray[np.float32], raw_ids: npt.NDArray[np.int32],
                w_ids: npt.NDArray[np.int32], w_vals: npt.NDArray[np.float32], shift: float,
                z: float, top_n: int) -> tuple[tuple[int, ...], tuple[float, ...]] | None:
    """A penalties or DRY stage's top-N (ids, probabilities) over the raw softmax with the
    window `w_ids` (ascending) scored `w_vals`, ranked among `raw_ids` and the window (see
    _scan.c openlid_window_view); None without the extension, for arrays it does not take, or
    where z must be summed afresh (numpy does it)."""
    lib = _py_lib()
    if (lib is None or len(w_ids) != len(w_vals) or raw_ids.dtype != np.int32
            or w_ids.dtype != np.int32 or w_vals.dtype != np.float32
            or logits.dtype != np.float32 or not raw_ids.flags.c_contiguous
            or not w_ids.flags.c_contiguous or not w_vals.flags.c_contiguous
            or not logits.flags.c_contiguous):
        return None
    found: tuple[tuple[int, ...], tuple[float, ...]] | None = lib.openlid_window_view(
        logits.ctypes.data, len(logits), raw_ids.ctypes.data, len(raw_ids), w_ids.ctypes.data,
        w_vals.ctypes.data, len(w_ids), shift, z, top_n)
    return found
