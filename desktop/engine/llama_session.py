"""One loaded model and its context, owned by the engine worker process (its main thread only).

Wraps llama.cpp's C API through llama_cpp's ctypes layer: load, tokenize, pieces, decode with
KV-cache reuse, and a zero-copy view of the last position's logits. Never `logits_all`: only the
last token of each batch asks for logits, except a speculative batch (engine.speculative), which
asks for every position's and may be rolled back past its first rejected token.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
import time
from pathlib import Path
from typing import Any

import llama_cpp as L
import numpy as np
import numpy.typing as npt

from desktop.core.gpu_layers import (
    offload_note,
    read_flash_attention,
    read_offload,
    resolve_gpu_layers,
)
from desktop.core.hardware import default_threads
from desktop.core.model_info import LoadSettings, ModelInfo, SpecialToken
from desktop.engine.grammar_prefix import PrefixTrees
from desktop.engine.session import (
    ContextOverflow,
    LoadFailed,
    display_pieces,
    reusable_prefix,
)
from desktop.engine.vision import ImageError, Vision, is_image_position, open_vision

__all__ = ["ContextOverflow", "LlamaSession", "LoadFailed"]

_FLASH_ATTN = {
    "auto": L.LLAMA_FLASH_ATTN_TYPE_AUTO,
    "on": L.LLAMA_FLASH_ATTN_TYPE_ENABLED,
    "off": L.LLAMA_FLASH_ATTN_TYPE_DISABLED,
}
_KV_TYPES = {
    "f32": L.GGML_TYPE_F32,
    "f16": L.GGML_TYPE_F16,
    "bf16": 30,  # GGML_TYPE_BF16
    "q8_0": L.GGML_TYPE_Q8_0,
    "q4_0": L.GGML_TYPE_Q4_0,
    "q4_1": L.GGML_TYPE_Q4_1,
    "q5_0": L.GGML_TYPE_Q5_0,
    "q5_1": L.GGML_TYPE_Q5_1,
    "iq4_nl": L.GGML_TYPE_IQ4_NL,
}



def _meta(model: Any, key: str, size: int = 1 << 20) -> str | None:
    buf = ctypes.create_string_buffer(size)
    n = L.llama_model_meta_val_str(model, key.encode(), buf, size)
    if n < 0:
        return None
    return buf.value.decode("utf-8", errors="replace")


def _meta_keys(model: Any) -> list[str]:
    keys = []
    buf = ctypes.create_string_buffer(512)
    for i in range(L.llama_model_meta_count(model)):
        if L.llama_model_meta_key_by_index(model, i, buf, 512) >= 0:
            keys.append(buf.value.decode("utf-8", errors="replace"))
    return keys


def _quant_name(ftype: int) -> str:
    try:
        import gguf

        return gguf.LlamaFileType(ftype).name.removeprefix("MOSTLY_")
    except (ValueError, ImportError):
        return f"ftype {ftype}"


def _backend(system_info: str) -> str:
    for name in ("CUDA", "Metal", "Vulkan", "SYCL", "HIP", "OpenCL"):
        if name.upper() in system_info.upper():
            return name
    return "CPU"



def token_piece(vocab: Any, token: int, buf: Any, special: bool = False) -> bytes:
    """A token's bytes as llama.cpp's token_to_piece gives them (`special`: control tokens by
    name, as its grammar reads them); `buf` a ctypes buffer, a larger one made when too short."""
    n = L.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    if n < 0:
        buf = ctypes.create_string_buffer(-n)
        n = L.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    return buf.raw[:n]  # type: ignore[no-any-return]


def is_eog(vocab: Any, token: int) -> bool:
    """Whether `token` ends a generation (end of text, end of turn...)."""
    return bool(L.llama_vocab_is_eog(vocab, token))

class LlamaSession:
    """The model, its context, and what the KV cache holds."""

    def __init__(self, path: str, settings: LoadSettings, log_path: str | None = None) -> None:
        started = time.perf_counter()
        settings = settings.validated()
        L.llama_backend_init()
        mparams = L.llama_model_default_params()
        self.gpu_layers = resolve_gpu_layers(  # "auto" becomes as many as fit in free VRAM
            path, settings, supports_gpu=bool(L.llama_supports_gpu_offload()))
        mparams.n_gpu_layers = 999 if self.gpu_layers < 0 else self.gpu_layers
        mparams.use_mmap = settings.use_mmap
        mparams.use_mlock = settings.use_mlock
        log_offset = _log_size(log_path)
        model = L.llama_model_load_from_file(path.encode(), mparams)
        if not model:
            raise LoadFailed(
                "llama.cpp could not load the model (see the engine log for its reason)"
            )
        self.model = model
        self.vocab = L.llama_model_get_vocab(model)
        self.n_vocab = int(L.llama_vocab_n_tokens(self.vocab))
        n_ctx_train = int(L.llama_model_n_ctx_train(model))
        cparams = L.llama_context_default_params()
        cparams.n_ctx = settings.n_ctx or n_ctx_train
        cparams.n_batch = settings.n_batch
        cparams.n_ubatch = min(settings.n_batch, 512)
        threads = settings.n_threads or default_threads()
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.flash_attn_type = _FLASH_ATTN[settings.flash_attn]
        if settings.quantized_kv_without_flash_attn:
            L.llama_model_free(model)
            raise LoadFailed("a quantized KV cache needs flash attention (auto or on)")
        cparams.type_k = _KV_TYPES[settings.kv_cache_type]
        cparams.type_v = _KV_TYPES[settings.kv_cache_type]
        cparams.no_perf = True
        ctx = L.llama_init_from_model(model, cparams)
        if not ctx:
            L.llama_model_free(model)
            raise LoadFailed(
                f"llama.cpp could not create a context of {cparams.n_ctx} tokens "
                "(not enough memory? try a smaller context)"
            )
        self.ctx = ctx
        self.memory = L.llama_get_memory(ctx)
        self.n_ctx = int(L.llama_n_ctx(ctx))
        self.n_batch = settings.n_batch
        self.batch = L.llama_batch_init(self.n_batch, 0, 1)
        self.cached: list[int] = []  # tokens whose keys/values the context holds, in order
        # DRY samplers built for this vocabulary, cloned per generation (engine.step_chain):
        # building one matches its sequence breakers against every token (~50 ms on Gemma).
        self.dry_templates: dict[tuple[object, ...], Any] = {}
        # The vocabulary by prefix, for a grammar checking every token (engine.grammar_prefix).
        # (Reading the vocabulary, not the session: the session is not kept alive by it.)
        self.prefix_trees = PrefixTrees(
            functools.partial(token_piece, self.vocab, buf=ctypes.create_string_buffer(256),
                              special=True),
            functools.partial(is_eog, self.vocab))
        self._piece_buf = ctypes.create_string_buffer(256)
        self._display: dict[int, str] = {}
        self._pieces: dict[int, bytes] = {}  # piece_bytes's plain pieces
        self._logits_view: tuple[int | None, npt.NDArray[np.float32]] | None = None
        self.vision: Vision | None = None
        try:
            self.vision = open_vision(model, path, settings, threads)
        except LoadFailed:
            self.close()
            raise
        self.info = self._describe(path, settings, n_ctx_train, log_path, log_offset, started)
        if self.vision is not None:
            self.info = dataclasses.replace(self.info, vision=self.vision.name)

    # --- description ---

    def _describe(
        self,
        path: str,
        settings: LoadSettings,
        n_ctx_train: int,
        log_path: str | None,
        log_offset: int,
        started: float,
    ) -> ModelInfo:
        model, vocab = self.model, self.vocab
        templates: dict[str, str] = {}
        for key in _meta_keys(model):
            if key == "tokenizer.chat_template":
                templates["default"] = _meta(model, key) or ""
            elif key.startswith("tokenizer.chat_template."):
                templates[key.removeprefix("tokenizer.chat_template.")] = _meta(model, key) or ""

        def special(token: int) -> SpecialToken | None:
            return None if token < 0 else SpecialToken(token, self.display_piece(token))

        system_info = L.llama_print_system_info().decode("utf-8", errors="replace")
        supports_gpu = bool(L.llama_supports_gpu_offload())
        n_layer = int(L.llama_model_n_layer(model))
        # The layers llama.cpp really assigned to a GPU (its per-layer log lines), not its
        # "offloaded N/M" line, which echoes the request.
        log_text = _read_from(log_path, log_offset)
        seen = read_offload(log_text)
        offloaded = seen.on_gpu if seen is not None else 0
        note = offload_note(settings.n_gpu_layers, self.gpu_layers, supports_gpu, n_layer, seen)
        return ModelInfo(
            path=path,
            architecture=_meta(model, "general.architecture") or "",
            name=_meta(model, "general.name") or Path(path).stem,
            n_params=int(L.llama_model_n_params(model)),
            quant=_quant_name(int(L.llama_model_ftype(model))),
            size_bytes=int(L.llama_model_size(model)),
            n_vocab=self.n_vocab,
            n_ctx_train=n_ctx_train,
            n_ctx=self.n_ctx,
            n_layer=n_layer,
            chat_templates=templates,
            bos=special(int(L.llama_vocab_bos(vocab))),
            eos=special(int(L.llama_vocab_eos(vocab))),
            eot=special(int(L.llama_vocab_eot(vocab))),
            add_bos=bool(L.llama_vocab_get_add_bos(vocab)),
            backend=_backend(system_info) if offloaded > 0 else "CPU",
            gpu_offload_supported=supports_gpu,
            n_gpu_layers_requested=settings.n_gpu_layers,
            n_layers_offloaded=offloaded,
            offload_note=note,
            flash_attn=read_flash_attention(log_text, settings.flash_attn),
            load_ms=(time.perf_counter() - started) * 1000,
            system_info=system_info.strip(),
        )

    # --- tokens ---

    def tokenize(self, text: str, *, parse_special: bool, add_bos: bool = False) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (L.llama_token * cap)()
        n = L.llama_tokenize(self.vocab, data, len(data), buf, cap, add_bos, parse_special)
        if n < 0:
            cap = -n
            buf = (L.llama_token * cap)()
            n = L.llama_tokenize(self.vocab, data, len(data), buf, cap, add_bos, parse_special)
        return list(buf[:n])

    def tokenize_pieces(self, pieces: tuple[tuple[str, bool], ...], add_bos: bool) -> list[int]:
        tokens: list[int] = []
        bos = int(L.llama_vocab_bos(self.vocab))
        if add_bos and L.llama_vocab_get_add_bos(self.vocab) and bos >= 0:
            tokens.append(bos)
        for text, trusted in pieces:
            if text:
                tokens.extend(self.tokenize(text, parse_special=trusted))
        # A template that writes BOS itself must not get a second one.
        if len(tokens) >= 2 and tokens[0] == bos and tokens[1] == bos:
            tokens.pop(0)
        return tokens

    def tokenize_with_images(self, pieces: tuple[tuple[str, bool], ...], add_bos: bool,
                             images: tuple[bytes, ...]) -> list[int]:
        """`tokenize_pieces` for a prompt whose image markers stand for `images`: each image
        a span of image positions (engine.vision); raises ImageError in words."""
        if self.vision is None:
            raise ImageError("this model was loaded without a vision projector (mmproj), so "
                             "it cannot see images")
        tokens = self.tokenize_pieces((), add_bos)
        for part in self.vision.tokenize_pieces(pieces, images):
            tokens.extend(part if isinstance(part, list) else self.tokenize_pieces((part,), False))
        return tokens

    def piece_bytes(self, token: int, special: bool = False) -> bytes:
        """A token's bytes (`special`: control tokens by name); the plain ones are kept, as
        every generated token asks for its own (a call into llama.cpp after each decode)."""
        if special:
            return token_piece(self.vocab, token, self._piece_buf, True)
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = token_piece(self.vocab, token, self._piece_buf)
        return piece

    def display_piece(self, token: int) -> str:
        """A token's text for display: special tokens by name, stray bytes as \\xNN."""
        text = self._display.get(token)
        if token < 0:
            return self.vision.describe(token) if self.vision is not None else ""
        if text is None:
            text = self.piece_bytes(token, special=True).decode("utf-8", errors="backslashreplace")
            self._display[token] = text
        return text

    def display_pieces(self, stages: Any, token: int) -> dict[int, str]:
        return display_pieces(stages, token, self.display_piece, self._display)

    def is_end_of_generation(self, token: int) -> bool:
        return is_eog(self.vocab, token)

    # --- decoding ---

    def prepare(self, tokens: list[int]) -> int:
        """Make the context hold `tokens` with logits for the last one; returns tokens reused."""
        common = reusable_prefix(self.cached, tokens, self.n_ctx)
        if common < len(self.cached) and not L.llama_memory_seq_rm(self.memory, 0, common, -1):
            L.llama_memory_clear(self.memory, True)
            common = 0
        self.cached = tokens[:common]
        if any(is_image_position(t) for t in tokens[common:]) or (
                common and is_image_position(tokens[common - 1])):
            return self._prepare_images(tokens, common)
        for start in range(common, len(tokens), self.n_batch):
            self.decode(tokens[start : start + self.n_batch])
        return common

    def _prepare_images(self, tokens: list[int], common: int) -> int:
        """`prepare` for a prompt with images: text runs decoded in batches, each image span
        encoded and decoded whole by mtmd (a span cut by the reused prefix is redone)."""
        if self.vision is None:
            raise ImageError("this model was loaded without a vision projector (mmproj)")
        vision = self.vision
        i = 0
        while i < common:  # back up to the start of an image the reused prefix cuts
            if is_image_position(tokens[i]):
                end = i + vision.span_length(tokens[i])
                if end > common:
                    common = i
                    break
                i = end
            else:
                i += 1
        self.rollback(common)
        i = common
        while i < len(tokens):
            if is_image_position(tokens[i]):
                end = i + vision.span_length(tokens[i])
                try:
                    vision.evaluate(self.ctx, tokens[i], i, self.n_batch, end == len(tokens))
                except (ImageError, RuntimeError):
                    L.llama_memory_clear(self.memory, True)
                    self.cached = []
                    raise
                self.cached.extend(tokens[i:end])
            else:
                end = i
                while end < len(tokens) and not is_image_position(tokens[end]):
                    end += 1
                end = min(end, i + self.n_batch)
                self.decode(tokens[i:end])
            i = end
        return common

    def decode(self, tokens: list[int], all_logits: bool = False) -> None:
        """Append `tokens` to the cache; logits for the last one, or for each (`all_logits`:
        read them with `logits_at`)."""
        batch = self.batch
        n = len(tokens)
        pos0 = len(self.cached)
        batch.n_tokens = n
        for i, tok in enumerate(tokens):
            batch.token[i] = tok
            batch.pos[i] = pos0 + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = all_logits
        batch.logits[n - 1] = 1
        rc = L.llama_decode(self.ctx, batch)
        if rc != 0:
            # The context may hold part of the batch now; forget it so the next prepare redoes it.
            L.llama_memory_clear(self.memory, True)
            self.cached = []
            raise RuntimeError(f"llama_decode failed with code {rc}")
        self.cached.extend(tokens)

    def logits(self) -> npt.NDArray[np.float32]:
        """Zero-copy view of the last decoded position's logits; valid until the next decode.
        One token at a time, llama.cpp writes them to the same place each step: the view made
        for that address is kept (numpy's ctypes view costs ~70 µs a token to make anew)."""
        ptr = L.llama_get_logits_ith(self.ctx, -1)
        address = ctypes.cast(ptr, ctypes.c_void_p).value
        view = self._logits_view
        if view is None or view[0] != address:
            view = self._logits_view = (address, np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)))
        return view[1]

    def logits_at(self, index: int) -> npt.NDArray[np.float32]:
        """Zero-copy view of the logits after token `index` of the last batch (decoded with
        `all_logits`); valid until the next decode."""
        ptr = L.llama_get_logits_ith(self.ctx, index)
        if not ptr:
            raise RuntimeError(f"llama.cpp has no logits for batch position {index}")
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def rollback(self, keep: int) -> None:
        """Forget every cached token from position `keep` on (a draft's rejected tail)."""
        if keep >= len(self.cached):
            return
        if L.llama_memory_seq_rm(self.memory, 0, keep, -1):
            del self.cached[keep:]
            return
        # A cache that cannot drop a tail (a recurrent model's state) is rebuilt up to `keep`.
        kept = self.cached[:keep]
        L.llama_memory_clear(self.memory, True)
        self.cached = []
        for start in range(0, len(kept), self.n_batch):
            self.decode(kept[start: start + self.n_batch])

    def close(self) -> None:
        for template in getattr(self, "dry_templates", {}).values():
            L.llama_sampler_free(template)  # before the vocabulary they were built from
        self.dry_templates = {}
        vision = getattr(self, "vision", None)
        if vision is not None:
            vision.close()
            self.vision = None
        if getattr(self, "batch", None) is not None:
            L.llama_batch_free(self.batch)
            self.batch = None
        if getattr(self, "ctx", None):
            L.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            L.llama_model_free(self.model)
            self.model = None


def _log_size(path: str | None) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def _read_from(path: str | None, offset: int) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
