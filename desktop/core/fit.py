"""Will this model fit? A memory estimate made before loading, from the file and its metadata.

The estimate is what llama.cpp allocates on the CPU: the weights (the file size), the KV cache
(n_layer × n_ctx × (key + value width) × bytes per cache element) and the compute buffer
(dominated by the logits of one micro-batch, n_vocab × n_ubatch × 4 bytes). Checked against
llama.cpp's own log for Gemma 3 270M (KV 18 MiB at n_ctx 1024 with f16, compute 514.5 MiB).
It is compared with the memory the kernel says is available now. Layers offloaded to a GPU live
in VRAM, which this module cannot see, so the estimate counts everything in RAM (an upper bound).

Pure Python, no shared state: any thread. `available_memory()` reads /proc/meminfo (a few µs).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import gguf

from desktop.core.model_info import GPU_LAYERS_AUTO, KV_CACHE_TYPES, LoadSettings

__all__ = [
    "FIT_FITS",
    "FIT_TIGHT",
    "FIT_UNKNOWN",
    "FIT_WONT",
    "FitEstimate",
    "MemoryInfo",
    "ModelShape",
    "auto_gpu_layers",
    "available_memory",
    "estimate_fit",
    "format_bytes",
    "kv_bytes_per_element",
    "kv_cache_bytes",
    "offload_fraction",
    "shape_from_metadata",
]

FIT_FITS = "fits"
FIT_TIGHT = "tight"
FIT_WONT = "won't fit"
FIT_UNKNOWN = "unknown"

# Room left for the OS, the app and the page cache: using more than this share of what is
# available already makes the machine swap or the kernel kill something.
_COMFORT_SHARE = 0.75
# llama.cpp's default micro-batch (n_ubatch); the compute buffer is sized for one of them.
_N_UBATCH = 512
_MISC_BYTES = 64 << 20  # graph metadata, output buffer, tokenizer caches, the worker's Python
# Without metadata: about 128 KiB of f16 KV cache per token for a 4 GiB file (a 7-8B model with
# grouped-query attention), scaled with file size. Rough, and labelled as such.
_ROUGH_KV_PER_TOKEN_PER_GIB = 32 << 10
_ROUGH_N_VOCAB = 128_000


@dataclass(frozen=True)
class ModelShape:
    """The sizes that decide the KV cache and compute buffer. `exact` is False for a guess."""

    n_layer: int
    n_ctx_train: int
    n_embd_k: int  # key width per token per layer, over all KV heads (n_head_kv × key_length)
    n_embd_v: int
    n_vocab: int
    n_head: int
    exact: bool = True


@dataclass(frozen=True)
class MemoryInfo:
    total: int
    available: int
    source: str  # "/proc/meminfo", "sysconf"


@dataclass(frozen=True)
class FitEstimate:
    verdict: str  # FIT_FITS, FIT_TIGHT, FIT_WONT or FIT_UNKNOWN
    model_bytes: int
    kv_bytes: int
    compute_bytes: int
    total_bytes: int
    available_bytes: int | None
    n_ctx: int  # the context the estimate is for (the model's own when the setting is 0)
    rough: bool  # no usable metadata: KV and compute are guesses from the file size
    message: str  # one plain sentence with the numbers
    ram_bytes: int  # the part of total_bytes expected in RAM …
    vram_bytes: int  # … and on the GPU
    vram_available_bytes: int | None = None

    @property
    def share(self) -> float | None:
        """Estimated RAM use as a share of available RAM (None when that is unknown)."""
        if not self.available_bytes:
            return None
        return self.ram_bytes / self.available_bytes


def format_bytes(n: float) -> str:
    """1536 → '1.5 KiB'; binary units, as the OS memory tools show them."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def kv_bytes_per_element(kv_cache_type: str) -> float:
    """Bytes one cache element takes: 2 for f16, 34/32 for q8_0 (blocks of 32 plus a scale)."""
    if kv_cache_type not in KV_CACHE_TYPES:
        raise ValueError(f"unknown KV cache type {kv_cache_type!r}")
    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[kv_cache_type.upper()]]
    return size / block


def _int(meta: Mapping[str, object], key: str) -> int | None:
    value = meta.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    return None


def _per_layer(meta: Mapping[str, object], key: str, n_layer: int) -> list[int] | None:
    """A value that may be one number or one per layer (some models vary KV heads by layer)."""
    value = meta.get(key)
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        values = [int(v) for v in value][:n_layer]
        return values + [values[-1]] * (n_layer - len(values))
    single = _int(meta, key)
    return None if single is None else [single] * n_layer


def shape_from_metadata(
    metadata: Mapping[str, object], *, architecture: str = "", n_vocab: int = 0
) -> ModelShape | None:
    """The model's shape from GGUF metadata (`GgufReport.metadata`), or None if keys are missing."""
    arch = architecture or str(metadata.get("general.architecture", ""))
    if not arch:
        return None
    n_layer = _int(metadata, f"{arch}.block_count")
    n_embd = _int(metadata, f"{arch}.embedding_length")
    if n_layer is None or n_embd is None:
        return None
    heads = _per_layer(metadata, f"{arch}.attention.head_count", n_layer)
    n_head = max(heads) if heads else 1
    heads_kv = _per_layer(metadata, f"{arch}.attention.head_count_kv", n_layer) or heads
    if not heads_kv:
        return None
    head_dim = n_embd // n_head if n_head else n_embd
    key_len = _int(metadata, f"{arch}.attention.key_length") or head_dim
    value_len = _int(metadata, f"{arch}.attention.value_length") or head_dim
    # Average over layers so a per-layer head count is exact once multiplied back by n_layer.
    mean_kv_heads = sum(heads_kv) / n_layer
    tokens = metadata.get("tokenizer.ggml.tokens")
    vocab = n_vocab or (len(tokens) if isinstance(tokens, list) else 0)
    return ModelShape(
        n_layer=n_layer,
        n_ctx_train=_int(metadata, f"{arch}.context_length") or 4096,
        n_embd_k=math.ceil(mean_kv_heads * key_len),
        n_embd_v=math.ceil(mean_kv_heads * value_len),
        n_vocab=vocab or _int(metadata, f"{arch}.vocab_size") or _ROUGH_N_VOCAB,
        n_head=n_head,
    )


def kv_cache_bytes(shape: ModelShape, n_ctx: int, kv_cache_type: str = "f16") -> int:
    """Bytes of K and V cache for `n_ctx` tokens. llama-cpp-python keeps a full-size cache for
    sliding-window layers too (its default `swa_full`), so every layer counts the whole context."""
    per = kv_bytes_per_element(kv_cache_type)
    return math.ceil(shape.n_layer * n_ctx * (shape.n_embd_k + shape.n_embd_v) * per)


def _compute_bytes(shape: ModelShape, n_ctx: int, n_batch: int, flash_attn: str) -> int:
    ubatch = max(1, min(n_batch, _N_UBATCH))
    logits = shape.n_vocab * ubatch * 4
    # Without flash attention the attention scores (n_ctx × n_ubatch × n_head floats) are
    # materialised; the graph allocator reuses memory, so it is the larger of the two that counts.
    # "auto" counts as on: llama.cpp turns it on wherever the layers' devices have the kernel
    # (the CPU, CUDA, Metal and Vulkan backends all do).
    scores = 0 if flash_attn != "off" else n_ctx * ubatch * shape.n_head * 4
    return max(logits, scores) + _MISC_BYTES


def _rough_shape(file_size: int, n_ctx_train: int) -> ModelShape:
    gib = max(file_size / (1 << 30), 0.1)
    per_token = int(_ROUGH_KV_PER_TOKEN_PER_GIB * gib)  # bytes of f16 K+V for all layers
    n_layer = 32
    width = max(64, per_token // (n_layer * 2 * 2))
    return ModelShape(n_layer=n_layer, n_ctx_train=n_ctx_train or 4096, n_embd_k=width,
                      n_embd_v=width, n_vocab=_ROUGH_N_VOCAB, n_head=32, exact=False)


def available_memory() -> MemoryInfo | None:
    """Total and available RAM now: /proc/meminfo's MemAvailable on Linux (it counts reclaimable
    page cache, unlike MemFree), `os.sysconf` elsewhere; None when neither answers."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            fields = {}
            for line in f:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    fields[name] = int(parts[0]) * 1024  # the file says kB and means KiB
        if "MemTotal" in fields and "MemAvailable" in fields:
            return MemoryInfo(fields["MemTotal"], fields["MemAvailable"], "/proc/meminfo")
    except OSError:
        pass
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * page
        avail = os.sysconf("SC_AVPHYS_PAGES") * page
    except (AttributeError, OSError, ValueError):
        return None
    if total <= 0 or avail < 0:
        return None
    return MemoryInfo(total, avail, "sysconf")


def offload_fraction(n_gpu_layers: int, n_layer: int) -> float:
    """Share of the weights and KV cache llama.cpp puts on the GPU for `n_gpu_layers` (-1 = all).
    llama.cpp counts the output layer as one more layer, so n_layer + 1 offloads everything."""
    if n_gpu_layers < 0:
        return 1.0
    if n_layer <= 0:
        return 0.0
    return min(n_gpu_layers, n_layer + 1) / (n_layer + 1)


def auto_gpu_layers(file_size: int, settings: LoadSettings, shape: ModelShape | None,
                    vram_free: int | None, *, n_ctx_train: int = 0) -> int:
    """GPU layers "auto": as many as fit in `vram_free` bytes (within the same comfort share as
    RAM), counting the output layer as llama.cpp does (n_layer + 1 offloads everything); 0 with
    no free VRAM (no GPU, or a build that cannot offload)."""
    if not vram_free or vram_free <= 0:
        return 0
    use = shape if shape is not None else _rough_shape(file_size, n_ctx_train)
    n_ctx = settings.n_ctx or use.n_ctx_train
    total = (file_size + kv_cache_bytes(use, n_ctx, settings.kv_cache_type)
             + _compute_bytes(use, n_ctx, settings.n_batch, settings.flash_attn))
    layers = max(use.n_layer, 0) + 1
    # offload_fraction is linear in the layers, so the most that fit is one division.
    fitting = int(vram_free * _COMFORT_SHARE * layers // max(total, 1))
    return max(0, min(fitting, layers))


def _verdict(need: int, available: int) -> str:
    if need <= available * _COMFORT_SHARE:
        return FIT_FITS
    return FIT_TIGHT if need <= available else FIT_WONT


_WORST = {FIT_FITS: 0, FIT_TIGHT: 1, FIT_WONT: 2}


def estimate_fit(
    file_size: int,
    settings: LoadSettings,
    shape: ModelShape | None,
    available: int | None,
    *,
    n_ctx_train: int = 0,
    vram_available: int | None = None,
) -> FitEstimate:
    """Estimate memory for loading a `file_size`-byte model with `settings`, against `available`
    bytes of RAM (None = unknown). Without a `shape` the KV cache and compute buffer are rough
    guesses. With `vram_available` (free GPU memory; pass it only when the build can offload),
    the offloaded share of the memory is checked against VRAM instead of RAM."""
    rough = shape is None
    use = shape if shape is not None else _rough_shape(file_size, n_ctx_train)
    n_ctx = settings.n_ctx or use.n_ctx_train
    kv = kv_cache_bytes(use, n_ctx, settings.kv_cache_type)
    compute = _compute_bytes(use, n_ctx, settings.n_batch, settings.flash_attn)
    total = file_size + kv + compute
    parts = (f"model {format_bytes(file_size)} + KV cache {format_bytes(kv)} "
             f"({n_ctx:,} tokens, {settings.kv_cache_type}) + compute {format_bytes(compute)}"
             f" = {format_bytes(total)}")
    if rough:
        parts = "roughly " + parts + " (no layer sizes in the file, so KV is a guess)"
    layers = settings.n_gpu_layers
    if layers == GPU_LAYERS_AUTO:
        layers = auto_gpu_layers(file_size, settings, use, vram_available)
    share = offload_fraction(layers, use.n_layer) if vram_available else 0.0
    vram_need = int(total * share)
    ram_need = total - vram_need
    if available is None or available <= 0:
        return FitEstimate(FIT_UNKNOWN, file_size, kv, compute, total, None, n_ctx, rough,
                           f"Needs {parts}; free memory is unknown on this system.",
                           ram_need, vram_need, vram_available)
    verdict = _verdict(ram_need, available)
    where = f"{format_bytes(available)} RAM available"
    if vram_available and share > 0:
        verdict = max(verdict, _verdict(vram_need, vram_available), key=_WORST.__getitem__)
        where = (f"{format_bytes(vram_need)} of it on the GPU ({format_bytes(vram_available)} "
                 f"free), {format_bytes(ram_need)} in RAM ({format_bytes(available)} available)")
    lead = {FIT_FITS: "Fits", FIT_TIGHT: "Tight", FIT_WONT: "Won't fit"}[verdict]
    message = f"{lead}: needs {parts}; {where}."
    if verdict == FIT_WONT:
        message += " Lower the context length or use a smaller quantization."
    elif verdict == FIT_TIGHT:
        message += " Other programs may be pushed into swap."
    return FitEstimate(verdict, file_size, kv, compute, total, available, n_ctx, rough,
                       message, ram_need, vram_need, vram_available)
