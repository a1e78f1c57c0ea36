"""Images into a llama.cpp context through mtmd (llama.cpp's multimodal library), in the engine
worker process (its main thread only, like the LlamaSession that owns it).

An image becomes a span of *image positions* in the session's token list: negative pseudo ids,
one per position the image takes in the KV cache, derived from the image's hash. Equal images
give equal spans, so the KV-prefix reuse of `LlamaSession.prepare` keeps an image that is still
in the cache, and the sampler and the chart never see them (they only follow real tokens). The
image's tokens are counted with the prompt; the first token after an image is just another step.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import llama_cpp as L
from llama_cpp import mtmd_cpp as M

from desktop.core.model_info import LoadSettings
from desktop.core.vision import IMAGE_MARKER, MMPROJ_NONE, projector_beside
from desktop.engine.session import LoadFailed
from desktop.engine.vision_prompt import ImageError

__all__ = ["ImageError", "Vision", "image_key", "is_image_position", "open_vision"]

_KEY_SHIFT = 24  # positions per image key: an image takes fewer than 16 M positions
_MAX_KEPT = 32  # images whose preprocessed chunks stay in memory for reuse and replay


@dataclass
class _Image:
    chunks: Any  # the owning mtmd_input_chunks (freed with this entry)
    index: int  # which chunk of `chunks` is the image
    n_tokens: int  # embeddings the projector makes
    n_pos: int  # KV positions they take (differs from n_tokens for M-RoPE models)


def open_vision(model: Any, path: str, settings: LoadSettings, n_threads: int) -> Vision | None:
    """The projector `settings.mmproj` names — "" for the one beside the model file, if any,
    "none" for none — loaded for `model`; raises LoadFailed in words."""
    if settings.mmproj == MMPROJ_NONE:
        return None
    chosen = settings.mmproj or str(projector_beside(path) or "")
    if not chosen:
        return None
    if not os.path.isfile(chosen):
        raise LoadFailed(f"the vision projector '{chosen}' is not there (moved or deleted?)")
    return Vision(model, chosen, n_threads, use_gpu=settings.n_gpu_layers != 0)


def is_image_position(token: int) -> bool:
    return token < 0


def image_key(token: int) -> int:
    return (-token - 1) >> _KEY_SHIFT


class Vision:
    """The projector loaded beside one text model, and the images tokenized with it."""

    def __init__(self, model: Any, path: str, n_threads: int, use_gpu: bool) -> None:
        params = M.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.n_threads = n_threads
        params.print_timings = False
        params.warmup = False
        params.media_marker = IMAGE_MARKER.encode()
        self._marker = params.media_marker  # the struct keeps a pointer: keep the bytes alive
        ctx = M.mtmd_init_from_file(path.encode(), model, params)
        if not ctx:
            raise LoadFailed(
                "llama.cpp could not load the vision projector (mmproj) — is it the one made "
                "for this model? (see the engine log for its reason)"
            )
        if not M.mtmd_support_vision(ctx):
            M.mtmd_free(ctx)
            raise LoadFailed("this projector has no vision encoder (an audio-only mmproj?)")
        self.ctx = ctx
        self.name = os.path.basename(path)
        self._images: OrderedDict[int, _Image] = OrderedDict()

    # --- tokens ---

    def tokenize_image(self, data: bytes) -> list[int]:
        """The token list one image becomes: the projector's own text around it (e.g. a
        begin-of-image token) as real ids, the image itself as pseudo ids."""
        digest = hashlib.sha256(data).digest()
        key = int.from_bytes(digest[:5], "little")  # 40 bits
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        bitmap = M.mtmd_helper_bitmap_init_from_buf(self.ctx, buf, len(data), False)
        if not bitmap:
            raise ImageError(
                "the image could not be read (PNG, JPEG, BMP or GIF are understood here)"
            )
        chunks = M.mtmd_input_chunks_init()
        try:
            M.mtmd_bitmap_set_id(bitmap, digest.hex().encode())
            text = M.mtmd_input_text()
            marker = self._marker
            text.text, text.text_len = marker, len(marker)
            text.add_special, text.parse_special = False, True
            bitmaps = (M.mtmd_bitmap_p_ctypes * 1)(bitmap)
            rc = M.mtmd_tokenize(self.ctx, chunks, ctypes.byref(text), bitmaps, 1)
        finally:
            M.mtmd_bitmap_free(bitmap)
        if rc != 0:
            M.mtmd_input_chunks_free(chunks)
            raise ImageError(f"the projector could not tokenize the image (code {rc})")
        tokens: list[int] = []
        entry: _Image | None = None
        for i in range(M.mtmd_input_chunks_size(chunks)):
            chunk = M.mtmd_input_chunks_get(chunks, i)
            kind = M.mtmd_input_chunk_get_type(chunk)
            if kind == M.MTMD_INPUT_CHUNK_TYPE_TEXT:
                n = ctypes.c_size_t(0)
                ptr = M.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                tokens.extend(int(ptr[j]) for j in range(n.value))
            elif kind == M.MTMD_INPUT_CHUNK_TYPE_IMAGE and entry is None:
                n_pos = int(M.mtmd_input_chunk_get_n_pos(chunk))
                entry = _Image(chunks, i, int(M.mtmd_input_chunk_get_n_tokens(chunk)), n_pos)
                tokens.extend(-((key << _KEY_SHIFT) | j) - 1 for j in range(n_pos))
        if entry is None:
            M.mtmd_input_chunks_free(chunks)
            raise ImageError("the projector made no image tokens from the image")
        self._keep(key, entry)
        return tokens

    def _keep(self, key: int, entry: _Image) -> None:
        old = self._images.pop(key, None)
        if old is not None:
            M.mtmd_input_chunks_free(old.chunks)
        self._images[key] = entry
        while len(self._images) > _MAX_KEPT:
            _, dropped = self._images.popitem(last=False)
            M.mtmd_input_chunks_free(dropped.chunks)

    def tokenize_pieces(
        self,
        pieces: Sequence[tuple[str, bool]],
        images: Sequence[bytes],
    ) -> list[tuple[str, bool] | list[int]]:
        """Split `pieces` at each image marker into text pieces and the images' token lists,
        in order. A marker stands for the next image; the counts must agree."""
        out: list[tuple[str, bool] | list[int]] = []
        remaining = list(images)
        for text, trusted in pieces:
            parts = text.split(IMAGE_MARKER)
            for k, part in enumerate(parts):
                if k > 0:
                    if not remaining:
                        raise ImageError("the prompt has more image markers than images")
                    out.append(self.tokenize_image(remaining.pop(0)))
                if part:
                    out.append((part, trusted))
        if remaining:
            raise ImageError(
                f"{len(remaining)} image(s) have no place in the prompt: the template dropped "
                "their markers"
            )
        return out

    def describe(self, token: int) -> str:
        """A display piece for an image position: the first names the image and its size."""
        entry = self._images.get(image_key(token))
        first = ((-token - 1) & ((1 << _KEY_SHIFT) - 1)) == 0
        if not first:
            return ""
        n = entry.n_tokens if entry is not None else 0
        return f"[image: {n} tokens]"

    def image_tokens(self, tokens: Sequence[int]) -> int:
        """How many embeddings the images among `tokens` are (positions counted per image)."""
        total = 0
        for t in tokens:
            if t < 0 and ((-t - 1) & ((1 << _KEY_SHIFT) - 1)) == 0:
                entry = self._images.get(image_key(t))
                total += entry.n_tokens if entry is not None else 0
        return total

    # --- decoding ---

    def span_length(self, token: int) -> int:
        entry = self._images.get(image_key(token))
        if entry is None:
            raise ImageError(
                "an image of this conversation is no longer held by the engine: send it again"
            )
        return entry.n_pos

    def evaluate(self, lctx: Any, token: int, n_past: int, n_batch: int, last: bool) -> int:
        """Encode the image whose span starts with `token` and decode it into the KV cache at
        position `n_past`; returns the position after it."""
        entry = self._images.get(image_key(token))
        if entry is None:
            raise ImageError(
                "an image of this conversation is no longer held by the engine: send it again"
            )
        self._images.move_to_end(image_key(token))
        chunk = M.mtmd_input_chunks_get(entry.chunks, entry.index)
        new_past = L.llama_pos(0)
        rc = M.mtmd_helper_eval_chunk_single(
            self.ctx, lctx, chunk, n_past, 0, n_batch, last, ctypes.byref(new_past)
        )
        if rc != 0:
            raise RuntimeError(f"llama.cpp could not encode the image (code {rc})")
        return int(new_past.value)

    def close(self) -> None:
        for entry in self._images.values():
            M.mtmd_input_chunks_free(entry.chunks)
        self._images.clear()
        if getattr(self, "ctx", None):
            M.mtmd_free(self.ctx)
            self.ctx = None
