"""How a model is loaded (`LoadSettings`) and what the engine reports once it is (`ModelInfo`).

Pure data shared by the GUI, the CLI and the engine worker process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from desktop.core.drafting import DRAFT_KINDS, DRAFT_MODEL, DRAFT_P_MIN, MAX_DRAFT
from desktop.core.sampling import SettingsError

KV_CACHE_TYPES = ("f16", "f32", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl")
# GPU layers "auto": as many as fit in free VRAM by the fit estimate, 0 without a GPU
# (resolved by the engine at load: core.gpu_layers.resolve_gpu_layers).
GPU_LAYERS_AUTO = -2
GPU_LAYERS_ALL = -1
# Flash attention as llama.cpp's context parameter takes it: "auto" (llama.cpp's own default, and
# llama-bench's and llama-server's) turns it on where every layer's device runs the fused kernel.
FLASH_ATTN_MODES = ("auto", "on", "off")
_UNQUANTIZED_KV = ("f16", "f32", "bf16")


@dataclass(frozen=True)
class LoadSettings:
    n_gpu_layers: int = GPU_LAYERS_AUTO  # -1 = all layers, -2 = auto
    n_ctx: int = 4096  # 0 = the model's training context
    n_threads: int = 0  # 0 = one per physical core (llama.cpp picks)
    n_batch: int = 512
    flash_attn: str = "auto"  # one of FLASH_ATTN_MODES
    use_mmap: bool = True
    use_mlock: bool = False
    kv_cache_type: str = "f16"
    seed: int = 0xFFFFFFFF
    # Speculative decoding (core.drafting): "none", "model" (a second GGUF with the same
    # vocabulary, `draft_model`) or "ngram" (the context's own continuations); at most `n_draft`
    # tokens proposed per pass of the model; a draft model stops at a token it gives less than
    # `draft_p_min` (llama.cpp's --draft-p-min).
    draft: str = "none"
    draft_model: str = ""
    n_draft: int = 8
    draft_p_min: float = DRAFT_P_MIN
    # A vision model's projector (mmproj GGUF, paired by core.vision); "" = text only.
    mmproj: str = ""

    def validated(self) -> LoadSettings:
        checks: list[tuple[bool, str]] = [
            (self.n_gpu_layers >= GPU_LAYERS_AUTO,
             "GPU layers must be ≥ -2 (-2 = auto: as many as fit in free VRAM, -1 = all)"),
            (self.n_ctx >= 0, "context length must be ≥ 0 (0 = the model's own)"),
            (self.n_threads >= 0, "threads must be ≥ 0 (0 = automatic)"),
            (self.n_batch >= 1, "batch size must be ≥ 1"),
            (self.flash_attn in FLASH_ATTN_MODES,
             f"flash attention must be one of {', '.join(FLASH_ATTN_MODES)}"),
            (
                self.kv_cache_type in KV_CACHE_TYPES,
                f"KV cache type must be one of {', '.join(KV_CACHE_TYPES)}",
            ),
            (self.draft in DRAFT_KINDS, f"draft must be one of {', '.join(DRAFT_KINDS)}"),
            (self.draft != DRAFT_MODEL or bool(self.draft_model.strip()),
             "a draft model needs its GGUF file: choose one, or pick n-gram drafting"),
            (1 <= self.n_draft <= MAX_DRAFT, f"draft tokens must be between 1 and {MAX_DRAFT}"),
            (0.0 <= self.draft_p_min <= 1.0, "the draft's minimum probability must be between "
             "0 and 1"),
            (self.draft == "none" or self.n_draft < self.n_batch,
             "the batch size must be larger than the draft tokens (the model checks them all "
             "in one batch)"),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)
        return self

    @property
    def quantized_kv_without_flash_attn(self) -> bool:
        """A quantized V half needs the fused kernel: with flash attention off llama.cpp would
        refuse the context."""
        return self.kv_cache_type not in _UNQUANTIZED_KV and self.flash_attn == "off"

    def replace(self, **changes: Any) -> LoadSettings:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if isinstance(values.get("flash_attn"), bool):
            # Saved before it had three values: unticked was the old default, not a choice.
            values["flash_attn"] = "on" if values["flash_attn"] else "auto"
        return cls(**values)


@dataclass(frozen=True)
class SpecialToken:
    id: int
    text: str


@dataclass(frozen=True)
class ModelInfo:
    path: str
    architecture: str
    name: str
    n_params: int
    quant: str
    size_bytes: int
    n_vocab: int
    n_ctx_train: int
    n_ctx: int  # the context actually allocated
    n_layer: int
    chat_templates: dict[str, str] = field(default_factory=dict)  # "default" and named variants
    bos: SpecialToken | None = None
    eos: SpecialToken | None = None
    eot: SpecialToken | None = None
    add_bos: bool = True
    backend: str = "CPU"  # CPU, CUDA, Metal, Vulkan, …
    gpu_offload_supported: bool = False
    n_gpu_layers_requested: int = 0
    n_layers_offloaded: int = 0
    offload_note: str = ""  # why fewer layers than asked went to the GPU, in plain words
    flash_attn: bool | None = None  # whether llama.cpp runs flash attention (None: not known)
    load_ms: float = 0.0
    system_info: str = ""
    # Which sampler stages this engine can report (empty: all of them) and, when not all, why in
    # plain words: a remote endpoint reports only the raw distribution.
    available_stages: tuple[str, ...] = ()
    stages_note: str = ""
    draft: str = ""  # the speculative drafting in use, in words ("" = none)
    vision: str = ""  # the loaded projector's file name ("" = no image input)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
