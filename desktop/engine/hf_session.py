"""A Hugging Face transformers-format model (safetensors only), owned by the engine worker process.

Runs on the worker's main thread, like `LlamaSession`, and offers the same small interface the
worker drives (tokenize, pieces, prepare/decode with KV-cache reuse, the last position's logits),
so the same `StepSampler` samples its logits and its StepRecords mean exactly what the GGUF
backend's do. The only module that imports torch and transformers. Weights load with
`use_safetensors=True`: pickle files (.bin, .pt, .pth, .ckpt) can run code when read, so they are
refused, never unpickled.
"""

from __future__ import annotations

import inspect
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, DynamicCache

from desktop.core.hardware import env_threads
from desktop.core.model_info import GPU_LAYERS_AUTO, LoadSettings, ModelInfo, SpecialToken
from desktop.engine.session import (
    LoadFailed,
    display_pieces,
    reusable_prefix,
)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
# Special tokens that end a turn in common chat formats; llama.cpp counts them as end-of-generation.
_EOT_NAMES = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>", "<|eot|>")
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_DTYPE_NAMES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


def model_folder(path: str | Path) -> Path:
    """The folder of a transformers model given the folder, its config.json or a weight shard."""
    p = Path(path)
    return p if p.is_dir() else p.parent


def check_weights(folder: Path) -> None:
    """Refuse a folder without safetensors weights, saying why pickle weights are not read."""
    if not (folder / "config.json").is_file():
        raise LoadFailed(f"{folder} has no config.json, so it is not a transformers model folder")
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise LoadFailed(
            f"{folder.name} only has pickle weights ({', '.join(pickles[:3])}). Openlid does not "
            "load pickle files: unpickling can run any code the file contains. Download the "
            "safetensors version of this model, or a GGUF conversion of it."
        )
    raise LoadFailed(f"{folder.name} has no *.safetensors weight files")


def _device() -> tuple[torch.device, str]:
    if torch.cuda.is_available():
        return torch.device("cuda"), "CUDA"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps"), "Metal"
    return torch.device("cpu"), "CPU"


def _dtype(kind: str) -> torch.dtype:
    if kind == "CUDA":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if kind == "Metal":
        return torch.float16
    return torch.float32  # CPU half-precision matmuls are slow or missing


def _bytes_to_unicode() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: printable stand-in character → byte."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


class HfSession:
    """The transformers model, its tokenizer, and what the KV cache holds."""

    def __init__(self, path: str, settings: LoadSettings, log_path: str | None = None) -> None:
        started = time.perf_counter()
        settings = settings.validated()
        folder = model_folder(path)
        check_weights(folder)
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        threads = settings.n_threads or env_threads()  # else torch's own choice
        if threads > 0:
            torch.set_num_threads(threads)
        self.device, backend = _device()
        dtype = _dtype(backend)
        model: Any  # transformers' from_pretrained is only partly typed
        try:
            config = AutoConfig.from_pretrained(folder, local_files_only=True)
            self.tokenizer: Any = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                folder, use_safetensors=True, dtype=dtype, local_files_only=True
            )
        except (OSError, ValueError, KeyError, ImportError) as exc:
            raise LoadFailed(f"transformers could not load {folder.name}: {exc}") from exc
        self.model: Any = model
        self.model.to(self.device).eval()
        self.config = config
        out = self.model.get_output_embeddings()
        self.n_vocab = int(out.weight.shape[0]) if out is not None else int(config.vocab_size)
        n_ctx_train = int(getattr(config, "max_position_embeddings", 0) or 0)
        self.n_ctx = settings.n_ctx or n_ctx_train or 4096
        self.n_batch = settings.n_batch
        self.cached: list[int] = []  # tokens whose keys/values the cache holds, in order
        self.cache: Any = None
        # transformers 5.2x renamed forward's `past_key_values` to `cache` (the old name warns and
        # goes in 5.40); older 5.x releases only know `past_key_values`. The output field follows.
        self._cache_arg = (
            "cache" if "cache" in inspect.signature(self.model.forward).parameters
            else "past_key_values"
        )
        self._logits: npt.NDArray[np.float32] = np.zeros(self.n_vocab, dtype=np.float32)
        self._display: dict[int, str] = {}
        self._bytes: dict[int, bytes] = {}
        self._specials = self._special_ids()
        self._byte_level, self._metaspace = self._decoder_kind()
        self._unicode_bytes = _bytes_to_unicode()
        self._eog = self._end_ids()
        self.info = self._describe(folder, settings, n_ctx_train, backend, dtype, started)

    # --- description ---

    def _special_ids(self) -> set[int]:
        ids = {int(i) for i in self.tokenizer.all_special_ids}
        for token_id, added in getattr(self.tokenizer, "added_tokens_decoder", {}).items():
            if getattr(added, "special", False):
                ids.add(int(token_id))
        return ids

    def _decoder_kind(self) -> tuple[bool, bool]:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return False, False
        decoder = json.dumps(json.loads(backend.to_str()).get("decoder"))
        return "ByteLevel" in decoder, ("Metaspace" in decoder or "▁" in decoder)

    def _token_id(self, text: str) -> int | None:
        token_id = self.tokenizer.convert_tokens_to_ids(text)
        unk = self.tokenizer.unk_token_id
        if not isinstance(token_id, int) or token_id < 0 or (unk is not None and token_id == unk):
            return None
        return token_id

    def _eot_id(self) -> int | None:
        for name in _EOT_NAMES[:-1]:
            token_id = self._token_id(name)
            if token_id is not None and token_id in self._specials:
                return token_id
        return None

    def _end_ids(self) -> set[int]:
        ends: set[int] = set()
        if self.tokenizer.eos_token_id is not None:
            ends.add(int(self.tokenizer.eos_token_id))
        generation = getattr(self.model, "generation_config", None)
        eos = getattr(generation, "eos_token_id", None)
        if isinstance(eos, int):
            ends.add(eos)
        elif isinstance(eos, list | tuple):
            ends.update(int(e) for e in eos)
        for name in _EOT_NAMES:
            token_id = self._token_id(name)
            if token_id is not None and token_id in self._specials:
                ends.add(token_id)
        return ends

    def _probe_add_bos(self) -> bool:
        bos = self.tokenizer.bos_token_id
        if bos is None:
            return False
        ids = self.tokenizer("a", add_special_tokens=True)["input_ids"]
        return bool(ids) and int(ids[0]) == int(bos)

    def _describe(
        self,
        folder: Path,
        settings: LoadSettings,
        n_ctx_train: int,
        backend: str,
        dtype: torch.dtype,
        started: float,
    ) -> ModelInfo:
        template = getattr(self.tokenizer, "chat_template", None)
        templates: dict[str, str] = {}
        if isinstance(template, str):
            templates["default"] = template
        elif isinstance(template, dict):
            templates = {str(k): str(v) for k, v in template.items()}
        elif isinstance(template, list):  # [{"name": ..., "template": ...}, ...]
            templates = {str(t["name"]): str(t["template"]) for t in template}

        def special(token_id: int | None) -> SpecialToken | None:
            if token_id is None:
                return None
            return SpecialToken(int(token_id), self.display_piece(int(token_id)))

        self._add_bos = self._probe_add_bos()
        n_layer = int(getattr(self.config, "num_hidden_layers", 0) or 0)
        on_gpu = backend != "CPU"
        note = ""
        # Asked for GPU layers outright (auto, the default, means: only where there is a GPU).
        if settings.n_gpu_layers not in (0, GPU_LAYERS_AUTO) and not on_gpu:
            note = "torch finds no GPU (CUDA or Metal), so every layer runs on the CPU"
        size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        device_name = torch.cuda.get_device_name(0) if backend == "CUDA" else backend
        return ModelInfo(
            path=str(folder),
            architecture=str(getattr(self.config, "model_type", "") or ""),
            name=folder.name,
            n_params=sum(int(p.numel()) for p in self.model.parameters()),
            quant=_DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch.").upper()),
            size_bytes=size,
            n_vocab=self.n_vocab,
            n_ctx_train=n_ctx_train,
            n_ctx=self.n_ctx,
            n_layer=n_layer,
            chat_templates=templates,
            bos=special(self.tokenizer.bos_token_id),
            eos=special(self.tokenizer.eos_token_id),
            eot=special(self._eot_id()),
            add_bos=self._add_bos,
            backend=backend,
            gpu_offload_supported=on_gpu,
            n_gpu_layers_requested=settings.n_gpu_layers,
            n_layers_offloaded=n_layer if on_gpu else 0,
            offload_note=note,
            load_ms=(time.perf_counter() - started) * 1000,
            system_info=(
                f"transformers {transformers.__version__}, torch {torch.__version__}, "
                f"device {device_name}, dtype {str(dtype).removeprefix('torch.')}"
            ),
        )

    # --- tokens ---

    def tokenize(self, text: str, *, parse_special: bool, add_bos: bool = False) -> list[int]:
        # split_special_tokens=True makes a typed "<|im_end|>" plain text, not the control token.
        ids = self.tokenizer(
            text, add_special_tokens=False, split_special_tokens=not parse_special
        )["input_ids"]
        tokens = [int(t) for t in ids]
        bos = self.tokenizer.bos_token_id
        if add_bos and bos is not None:
            tokens.insert(0, int(bos))
        return tokens

    def tokenize_pieces(self, pieces: tuple[tuple[str, bool], ...], add_bos: bool) -> list[int]:
        tokens: list[int] = []
        bos = self.tokenizer.bos_token_id
        if add_bos and self._add_bos and bos is not None:
            tokens.append(int(bos))
        for text, trusted in pieces:
            if text:
                tokens.extend(self.tokenize(text, parse_special=trusted))
        # A template that writes BOS itself must not get a second one.
        if len(tokens) >= 2 and tokens[0] == bos and tokens[1] == bos:
            tokens.pop(0)
        return tokens

    def _raw_bytes(self, token: int) -> bytes:
        cached = self._bytes.get(token)
        if cached is not None:
            return cached
        text = self.tokenizer.convert_ids_to_tokens(token)
        if not isinstance(text, str):  # an id past the tokenizer's vocabulary (padded matrix)
            data = b""
        elif token in self._specials:
            data = text.encode("utf-8")
        elif (m := _BYTE_TOKEN.fullmatch(text)) is not None:
            data = bytes([int(m.group(1), 16)])
        elif self._byte_level and all(c in self._unicode_bytes for c in text):
            data = bytes(self._unicode_bytes[c] for c in text)
        elif self._metaspace:
            data = text.replace("▁", " ").encode("utf-8")
        else:
            data = self.tokenizer.decode([token]).encode("utf-8")
        self._bytes[token] = data
        return data

    def piece_bytes(self, token: int, special: bool = False) -> bytes:
        if token in self._specials and not special:
            return b""  # as llama.cpp: control tokens print nothing unless asked
        return self._raw_bytes(token)

    def display_piece(self, token: int) -> str:
        """A token's text for display: special tokens by name, stray bytes as \\xNN."""
        text = self._display.get(token)
        if text is None:
            data = self.piece_bytes(token, special=True)
            text = data.decode("utf-8", errors="backslashreplace") if data else f"<id {token}>"
            self._display[token] = text
        return text

    def display_pieces(self, stages: Any, token: int) -> dict[int, str]:
        return display_pieces(stages, token, self.display_piece)

    def is_end_of_generation(self, token: int) -> bool:
        return token in self._eog

    # --- decoding ---

    def prepare(self, tokens: list[int]) -> int:
        """Make the cache hold `tokens` with logits for the last one; returns tokens reused."""
        common = reusable_prefix(self.cached, tokens, self.n_ctx)
        if common < len(self.cached):
            try:
                if common == 0:
                    raise ValueError("nothing to keep")
                # A negative count removes that many positions from the end of every layer.
                self.cache.crop(-(len(self.cached) - common))
            except (ValueError, AttributeError, NotImplementedError):
                self.cache, common = None, 0  # e.g. sliding-window layers cannot be cropped back
        self.cached = tokens[:common]
        for start in range(common, len(tokens), self.n_batch):
            self.decode(tokens[start : start + self.n_batch])
        return common

    def decode(self, tokens: list[int]) -> None:
        if self.cache is None:
            self.cache = DynamicCache(config=self.config)
        ids = torch.tensor([tokens], dtype=torch.long, device=self.device)
        try:
            with torch.inference_mode():
                out = self.model(
                    input_ids=ids, **{self._cache_arg: self.cache}, use_cache=True, logits_to_keep=1
                )
        except Exception:
            # The cache may hold part of the batch now; forget it so the next prepare redoes it.
            self.cache, self.cached = None, []
            raise
        self.cache = getattr(out, self._cache_arg)
        self._logits = out.logits[0, -1].float().cpu().numpy()
        self.cached.extend(tokens)

    def logits(self) -> npt.NDArray[np.float32]:
        """The last decoded position's logits (a float32 copy on the CPU)."""
        return self._logits

    def close(self) -> None:
        self.cache = None
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
