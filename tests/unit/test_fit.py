"""The pre-load memory estimate (desktop/core/fit.py): KV-cache arithmetic, verdicts, meminfo."""

from __future__ import annotations

import pytest

from desktop.core import fit
from desktop.core.model_info import KV_CACHE_TYPES, LoadSettings

# The shipped Gemma 3 270M's metadata, as GgufReport.metadata shows it.
GEMMA_META: dict[str, object] = {
    "general.architecture": "gemma3",
    "gemma3.context_length": 32768,
    "gemma3.embedding_length": 640,
    "gemma3.block_count": 18,
    "gemma3.attention.head_count": 4,
    "gemma3.attention.head_count_kv": 1,
    "gemma3.attention.key_length": 256,
    "gemma3.attention.value_length": 256,
    "tokenizer.ggml.tokens": "<262,144 string values>",
}
GEMMA_SIZE = 253_113_024
MiB = 1 << 20
GiB = 1 << 30


def gemma_shape() -> fit.ModelShape:
    shape = fit.shape_from_metadata(GEMMA_META, n_vocab=262_144)
    assert shape is not None
    return shape


def test_gemma_shape_from_metadata() -> None:
    shape = gemma_shape()
    assert (shape.n_layer, shape.n_embd_k, shape.n_embd_v) == (18, 256, 256)
    assert (shape.n_ctx_train, shape.n_vocab, shape.n_head) == (32768, 262_144, 4)
    assert shape.exact


def test_kv_cache_matches_llama_cpp_log() -> None:
    # llama.cpp logs 3.00 + 15.00 MiB (full-size SWA cache) at 1024 cells, 96 + 480 at 32768.
    assert fit.kv_cache_bytes(gemma_shape(), 1024, "f16") == 18 * MiB
    assert fit.kv_cache_bytes(gemma_shape(), 32768, "f16") == 576 * MiB
    assert fit.kv_cache_bytes(gemma_shape(), 1024, "f32") == 36 * MiB
    assert fit.kv_cache_bytes(gemma_shape(), 1024, "q8_0") == pytest.approx(18 * MiB * 34 / 64)


def test_bytes_per_element_for_every_cache_type() -> None:
    sizes = {t: fit.kv_bytes_per_element(t) for t in KV_CACHE_TYPES}
    assert sizes["f32"] == 4
    assert sizes["f16"] == sizes["bf16"] == 2
    assert sizes["q4_0"] < sizes["q8_0"] < sizes["f16"]
    with pytest.raises(ValueError, match="unknown KV cache type"):
        fit.kv_bytes_per_element("f8")


def test_missing_keys_give_no_shape() -> None:
    assert fit.shape_from_metadata({}) is None
    assert fit.shape_from_metadata({"general.architecture": "llama"}) is None


def test_head_dim_defaults_and_per_layer_heads() -> None:
    meta = {"general.architecture": "llama", "llama.block_count": 4,
            "llama.embedding_length": 4096, "llama.attention.head_count": 32,
            "llama.attention.head_count_kv": [8, 8, 4, 4]}
    shape = fit.shape_from_metadata(meta)
    assert shape is not None
    assert shape.n_embd_k == shape.n_embd_v == 6 * 128  # mean of 8, 8, 4, 4 heads × 128
    assert fit.kv_cache_bytes(shape, 100) == 4 * 100 * 2 * 768 * 2


def test_verdicts() -> None:
    shape = gemma_shape()
    settings = LoadSettings(n_ctx=1024)
    need = fit.estimate_fit(GEMMA_SIZE, settings, shape, None).total_bytes
    assert fit.estimate_fit(GEMMA_SIZE, settings, shape, 4 * need).verdict == fit.FIT_FITS
    assert fit.estimate_fit(GEMMA_SIZE, settings, shape, int(need * 1.1)).verdict == fit.FIT_TIGHT
    wont = fit.estimate_fit(GEMMA_SIZE, settings, shape, need // 2)
    assert wont.verdict == fit.FIT_WONT
    assert "Won't fit" in wont.message
    assert "context length" in wont.message
    unknown = fit.estimate_fit(GEMMA_SIZE, settings, shape, None)
    assert unknown.verdict == fit.FIT_UNKNOWN
    assert unknown.share is None


def test_estimate_numbers_and_model_context() -> None:
    est = fit.estimate_fit(GEMMA_SIZE, LoadSettings(n_ctx=0), gemma_shape(), 8 * GiB)
    assert est.n_ctx == 32768  # 0 means the model's training context
    assert est.kv_bytes == 576 * MiB
    assert est.total_bytes == GEMMA_SIZE + est.kv_bytes + est.compute_bytes
    # The compute buffer is about the logits of one 512-token micro-batch (llama.cpp: 514.5 MiB).
    assert 512 * MiB <= est.compute_bytes <= 600 * MiB
    assert "576.0 MiB" in est.message
    assert "8.0 GiB RAM available" in est.message
    assert not est.rough
    assert est.share == pytest.approx(est.total_bytes / (8 * GiB))


def test_offload_moves_memory_to_the_gpu() -> None:
    shape = gemma_shape()
    assert fit.offload_fraction(-1, 18) == 1.0
    assert fit.offload_fraction(0, 18) == 0.0
    assert fit.offload_fraction(19, 18) == 1.0  # the output layer counts as one more
    assert fit.offload_fraction(9, 18) == pytest.approx(9 / 19)
    half = fit.estimate_fit(GEMMA_SIZE, LoadSettings(n_ctx=4096, n_gpu_layers=9), shape, 8 * GiB,
                            vram_available=4 * GiB)
    assert half.ram_bytes + half.vram_bytes == half.total_bytes
    assert 0 < half.vram_bytes < half.total_bytes
    assert "on the GPU" in half.message
    # Enough RAM but too little VRAM: the GPU side decides.
    small_gpu = fit.estimate_fit(GEMMA_SIZE, LoadSettings(n_gpu_layers=-1), shape, 64 * GiB,
                                 vram_available=256 * MiB)
    assert small_gpu.verdict == fit.FIT_WONT
    assert small_gpu.ram_bytes == 0
    # No VRAM figure (no GPU, or a CPU-only build): everything counts against RAM.
    cpu = fit.estimate_fit(GEMMA_SIZE, LoadSettings(n_gpu_layers=-1), shape, 8 * GiB)
    assert cpu.ram_bytes == cpu.total_bytes


def test_longer_context_and_smaller_cache_type_change_the_estimate() -> None:
    shape = gemma_shape()
    short = fit.estimate_fit(GEMMA_SIZE, LoadSettings(n_ctx=2048), shape, GiB)
    long = fit.estimate_fit(GEMMA_SIZE, LoadSettings(n_ctx=16384), shape, GiB)
    quant = fit.estimate_fit(GEMMA_SIZE, LoadSettings(n_ctx=16384, kv_cache_type="q4_0",
                                                      flash_attn="on"), shape, GiB)
    assert short.kv_bytes < quant.kv_bytes < long.kv_bytes


def test_rough_estimate_without_metadata() -> None:
    est = fit.estimate_fit(4 * GiB, LoadSettings(n_ctx=4096), None, 16 * GiB)
    assert est.rough
    assert "roughly" in est.message
    # A 4 GiB file (a 7-8B model) needs on the order of 128 KiB of f16 KV per token.
    assert 256 * MiB <= est.kv_bytes <= 1024 * MiB


def test_available_memory_reads_the_system() -> None:
    mem = fit.available_memory()
    assert mem is not None
    assert 0 <= mem.available <= mem.total


def test_format_bytes() -> None:
    assert fit.format_bytes(512) == "512 B"
    assert fit.format_bytes(1536) == "1.5 KiB"
    assert fit.format_bytes(3 * GiB) == "3.0 GiB"
