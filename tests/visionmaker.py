"""A tiny vision projector (mmproj GGUF) that llama.cpp's mtmd really loads and runs, written
with `gguf.GGUFWriter`: a LLaVA-style CLIP ViT (projector type "mlp") with random F32 weights,
whose output width matches `write_runnable_gguf`'s n_embd so images go into that model's KV
cache. Also a tiny PNG encoder (no imaging library needed) for the images fed to it."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import gguf
import numpy as np

IMAGE_SIZE = 28
PATCH_SIZE = 14
N_PATCHES = (IMAGE_SIZE // PATCH_SIZE) ** 2  # image tokens each image becomes


def write_tiny_mmproj(
    path: str | os.PathLike[str],
    *,
    text_embd: int = 64,
    n_embd: int = 32,
    n_head: int = 2,
    n_ff: int = 64,
    n_blocks: int = 2,
    name: str = "Tiny CLIP",
) -> Path:
    """Write a projector GGUF (general.architecture "clip", clip.projector_type "mlp") whose
    images become `N_PATCHES` embeddings of width `text_embd`."""
    out = Path(path)
    w = gguf.GGUFWriter(out, "clip")
    w.add_type("mmproj")
    w.add_name(name)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_text_encoder", False)
    w.add_string("clip.projector_type", "mlp")
    w.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    w.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    w.add_uint32("clip.vision.embedding_length", n_embd)
    w.add_uint32("clip.vision.feed_forward_length", n_ff)
    w.add_uint32("clip.vision.projection_dim", text_embd)
    w.add_uint32("clip.vision.attention.head_count", n_head)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    w.add_uint32("clip.vision.block_count", n_blocks)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_bool("clip.use_gelu", True)
    rng = np.random.default_rng(1)

    def weights(*shape: int, scale: float = 0.1) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def zeros(n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    # numpy shapes are ggml's reversed: the conv kernel is ggml [p, p, 3, n_embd].
    w.add_tensor("v.patch_embd.weight", weights(n_embd, 3, PATCH_SIZE, PATCH_SIZE))
    w.add_tensor("v.class_embd", weights(n_embd))
    w.add_tensor("v.position_embd.weight", weights(N_PATCHES + 1, n_embd))
    w.add_tensor("v.pre_ln.weight", ones(n_embd))
    w.add_tensor("v.pre_ln.bias", zeros(n_embd))
    for i in range(n_blocks):
        for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
            w.add_tensor(f"v.blk.{i}.{part}.weight", weights(n_embd, n_embd))
            w.add_tensor(f"v.blk.{i}.{part}.bias", zeros(n_embd))
        for norm in ("ln1", "ln2"):
            w.add_tensor(f"v.blk.{i}.{norm}.weight", ones(n_embd))
            w.add_tensor(f"v.blk.{i}.{norm}.bias", zeros(n_embd))
        w.add_tensor(f"v.blk.{i}.ffn_up.weight", weights(n_ff, n_embd))
        w.add_tensor(f"v.blk.{i}.ffn_up.bias", zeros(n_ff))
        w.add_tensor(f"v.blk.{i}.ffn_down.weight", weights(n_embd, n_ff))
        w.add_tensor(f"v.blk.{i}.ffn_down.bias", zeros(n_embd))
    w.add_tensor("mm.0.weight", weights(text_embd, n_embd))
    w.add_tensor("mm.0.bias", zeros(text_embd))
    w.add_tensor("mm.2.weight", weights(text_embd, text_embd))
    w.add_tensor("mm.2.bias", zeros(text_embd))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def png_bytes(
    width: int = 16, height: int = 16, color: tuple[int, int, int] = (200, 40, 40)
) -> bytes:
    """A valid RGB PNG of one colour with a diagonal stripe, encoded by hand."""
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter: none
        for x in range(width):
            row += bytes((255, 255, 255) if x == y else color)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )
