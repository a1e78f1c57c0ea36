"""What a model file's name says: its quant label, whether it is one shard of a split model, and
which files of a repo belong together as one downloadable model.

The Hub has no field for any of this; the community convention lives in file names
(`Llama-3-8B-Instruct-Q4_K_M.gguf`, `model-00001-of-00003.safetensors`, `mmproj-F16.gguf`), so
the parsing is by name only and never opens a file. Pure functions, no I/O: any thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "KIND_GGUF",
    "KIND_OTHER",
    "KIND_PROJECTOR",
    "KIND_SAFETENSORS",
    "FileGroup",
    "ShardName",
    "group_files",
    "is_projector",
    "is_weights",
    "quant_label",
    "shard_name",
]

KIND_GGUF = "gguf"
KIND_SAFETENSORS = "safetensors"
KIND_PROJECTOR = "mmproj"  # a vision projector: GGUF, but not a model on its own
KIND_OTHER = "other"

# A quant label is a whole "word" of the name: bounded by start/end or a separator, so that
# "Q4_K_M" matches in "x.Q4_K_M.gguf" and "x-q4_k_m.gguf" but not inside "AQ4_0B".
# The suffix parts are a closed list so that trailing words ("_imatrix") stay out of the label.
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])"
    r"(?P<label>(?:UD-)?(?:I?Q[1-8](?:_(?:\d+|K|S|M|L|XL|XS|XXS|NL))*"
    r"|TQ[12]_0|MXFP4(?:_MOE)?|BF16|FP?16|FP?32))"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_ALIASES = {"FP16": "F16", "FP32": "F32"}
# llama.cpp's gguf-split names and transformers' sharded checkpoints share this pattern.
_SHARD = re.compile(
    r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.(?P<ext>gguf|safetensors)$",
    re.IGNORECASE,
)
# Files that make a safetensors repo loadable besides the weights.
_SAFETENSORS_COMPANIONS = re.compile(
    r"^(?:config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json"
    r"|special_tokens_map\.json|tokenizer\.model|vocab\.json|merges\.txt|added_tokens\.json"
    r"|chat_template\.jinja|chat_template\.json|preprocessor_config\.json"
    r"|model\.safetensors\.index\.json)$"
)


@dataclass(frozen=True)
class ShardName:
    """One file of a split model: `<stem>-<index>-of-<count>.<ext>` (1-based index)."""

    stem: str
    index: int
    count: int
    ext: str


@dataclass(frozen=True)
class FileGroup:
    """Files that download and load as one model.

    `kind` is KIND_GGUF (one file or all shards of a split), KIND_SAFETENSORS (the weights of
    the whole repo plus config and tokenizer), KIND_PROJECTOR or KIND_OTHER. `complete` is False
    when a split model lacks shards (a repo mid-upload), which makes it unloadable.
    """

    name: str
    kind: str
    quant: str | None
    paths: tuple[str, ...]
    complete: bool = True

    @property
    def is_split(self) -> bool:
        return len(self.paths) > 1 and self.kind == KIND_GGUF


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def shard_name(path: str) -> ShardName | None:
    """The shard pattern of a file name, or None for a file that is not one of several."""
    m = _SHARD.match(_basename(path))
    if m is None:
        return None
    index, count = int(m["index"]), int(m["count"])
    if not 1 <= index <= count:
        return None
    return ShardName(m["stem"], index, count, m["ext"].lower())


def quant_label(path: str) -> str | None:
    """The quantisation written in a file name, normalised to upper case (Q4_K_M, IQ4_XS,
    F16, BF16 …), or None when the name carries none. The last match wins: names put the quant
    after the model name, and model names may contain Q-like words ("Qwen2-Q8_0")."""
    name = _basename(path)
    shard = _SHARD.match(name)
    if shard is not None:
        name = shard["stem"]
    found = [m["label"].upper() for m in _QUANT.finditer(name)]
    if not found:
        return None
    return _ALIASES.get(found[-1], found[-1])


def is_weights(path: str) -> bool:
    """A file that holds model weights, by its extension."""
    return path.lower().endswith((".gguf", ".safetensors", ".bin", ".pt", ".pth"))


def is_projector(path: str) -> bool:
    """A multimodal projector (`mmproj-*.gguf`): loaded beside a model, never alone."""
    return "mmproj" in _basename(path).lower()


def _gguf_groups(paths: list[str]) -> list[FileGroup]:
    singles: list[FileGroup] = []
    splits: dict[tuple[str, int], dict[int, str]] = {}
    for path in paths:
        shard = shard_name(path)
        if shard is not None:
            folder = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
            splits.setdefault((folder + shard.stem, shard.count), {})[shard.index] = path
            continue
        kind = KIND_PROJECTOR if is_projector(path) else KIND_GGUF
        singles.append(FileGroup(_basename(path), kind, quant_label(path), (path,)))
    for (stem, count), members in splits.items():
        ordered = tuple(members[i] for i in sorted(members))
        name = f"{_basename(stem)}.gguf"
        kind = KIND_PROJECTOR if is_projector(stem) else KIND_GGUF
        complete = sorted(members) == list(range(1, count + 1))
        singles.append(FileGroup(name, kind, quant_label(ordered[0]), ordered, complete))
    return singles


def _safetensors_group(paths: list[str], all_paths: list[str]) -> FileGroup:
    top_level = [p for p in all_paths if "/" not in p]
    companions = [p for p in top_level if _SAFETENSORS_COMPANIONS.match(p)]
    weights = sorted(paths)
    complete = True
    shards = [s for s in (shard_name(p) for p in weights) if s is not None]
    if shards:
        counts = {s.count for s in shards}
        complete = len(counts) == 1 and len(shards) == shards[0].count
    quant = None
    for p in weights:
        quant = quant or quant_label(p)
    return FileGroup(
        "safetensors", KIND_SAFETENSORS, quant, tuple(sorted(companions) + weights), complete
    )


def group_files(paths: Iterable[str]) -> list[FileGroup]:
    """Group a repo's files into downloadable models: each GGUF (a split one as one group),
    each projector, and all top-level safetensors weights with their config and tokenizer as
    one group. Other files (README, images, .gitattributes) are left out. Sorted by name."""
    all_paths = list(paths)
    ggufs = [p for p in all_paths if p.lower().endswith(".gguf")]
    weights = [
        p for p in all_paths if p.lower().endswith(".safetensors") and "/" not in p
    ]
    groups = _gguf_groups(ggufs)
    if weights:
        groups.append(_safetensors_group(weights, all_paths))
    return sorted(groups, key=lambda g: (g.kind != KIND_GGUF, g.name.lower()))
