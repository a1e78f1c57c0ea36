"""Vision models' pure parts: which files are projectors (mmproj GGUFs), which projector goes
with a model file — in a local folder or among a Hub repo's files —, the image marker a prompt
carries where an image goes, and the image types a chat accepts. Any thread or process.

A multimodal GGUF comes as two files: the text model and its projector (`mmproj-*.gguf`, GGUF
`general.type` "mmproj", `clip.*` keys). A model downloaded without its projector cannot see, so
the library pairs them by folder and the Hub download fetches the projector too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Protocol, TypeVar

from desktop.core.gguf_file.reader import GgufProblem, parse_file

# Where an image goes in a rendered prompt; the engine splits the prompt there (llama.cpp's
# mtmd default marker, so templates written for llama-server work unchanged).
IMAGE_MARKER = "<__media__>"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_IMAGE_BYTES = 20 << 20

# "mmproj" settings: "" = the projector beside the model, if any; "none" = text only.
MMPROJ_AUTO = ""
MMPROJ_NONE = "none"

# The projector precision preferred when a repo offers several (F16 is what most ship first).
_PRECISION_ORDER = ("f16", "bf16", "q8_0", "f32")
_WORD = re.compile(r"[a-z0-9]+")


def looks_like_projector(name: str) -> bool:
    """Whether a file name says projector (`mmproj-model-f16.gguf`, `model.mmproj.gguf`)."""
    lower = PurePosixPath(name).name.lower()
    return lower.endswith(".gguf") and "mmproj" in lower


def is_projector_file(path: str | Path) -> bool:
    """Whether a GGUF file is a projector, by its metadata (a file of any name) or its name
    when the metadata cannot be read."""
    try:
        parsed = parse_file(str(path))
    except GgufProblem:
        return looks_like_projector(str(path))
    kv = parsed.kvs
    gtype = kv.get("general.type")
    if gtype is not None and gtype.value == "mmproj":
        return True
    arch = kv.get("general.architecture")
    if arch is not None and arch.value == "clip":
        return True
    return any(key.startswith("clip.") for key in kv)


def _precision_rank(name: str) -> int:
    lower = name.lower()
    for rank, precision in enumerate(_PRECISION_ORDER):
        if re.search(rf"(?<![a-z0-9]){precision}(?![a-z0-9])", lower):
            return rank
    return len(_PRECISION_ORDER)


def _shared_words(a: str, b: str) -> int:
    return len(set(_WORD.findall(a.lower())) & set(_WORD.findall(b.lower())))


def pick_projector(model_name: str, projectors: Iterable[str]) -> str | None:
    """The projector for `model_name` among `projectors` (names or paths in the same folder):
    the one whose name shares most words with the model's, then the preferred precision."""
    found = sorted(projectors)
    if not found:
        return None
    model_stem = PurePosixPath(model_name).name

    def score(name: str) -> tuple[int, int, str]:
        stem = PurePosixPath(name).name.lower().replace("mmproj", "")
        return (-_shared_words(model_stem, stem), _precision_rank(stem), name)

    return min(found, key=score)


def projector_beside(model_path: str | Path) -> Path | None:
    """The projector in the model file's folder, or None (a projector has none itself)."""
    model = Path(model_path)
    if not model.is_file() or looks_like_projector(model.name):
        return None
    candidates = [
        p
        for p in sorted(model.parent.glob("*.gguf"))
        if p != model and p.is_file() and looks_like_projector(p.name)
    ]
    chosen = pick_projector(model.name, (str(p) for p in candidates))
    return Path(chosen) if chosen is not None else None


def repo_projector(model_file: str, repo_files: Iterable[str]) -> str | None:
    """The projector a Hub repo ships for `model_file` (both repo paths): one in the same
    folder first, then one at the repo's top."""
    folder = PurePosixPath(model_file).parent
    files = [f for f in repo_files if looks_like_projector(f) and f != model_file]
    same = [f for f in files if PurePosixPath(f).parent == folder]
    top = [f for f in files if PurePosixPath(f).parent == PurePosixPath(".")]
    return pick_projector(model_file, same) or pick_projector(model_file, top)


class _HasPath(Protocol):
    @property
    def path(self) -> str: ...


F = TypeVar("F", bound=_HasPath)


def with_projector(chosen: Sequence[F], repo_files: Sequence[F]) -> tuple[F, ...]:
    """The files of a Hub download with the projector its model needs added (a GGUF vision
    model is useless without it): nothing added when one is already chosen or none exists."""
    if not chosen or any(looks_like_projector(f.path) for f in chosen):
        return tuple(chosen)
    model = next((f.path for f in chosen if f.path.lower().endswith(".gguf")), None)
    projector = repo_projector(model, [f.path for f in repo_files]) if model else None
    extra = [f for f in repo_files if f.path == projector]
    return (*chosen, *extra[:1])


def check_image(name: str, data: bytes) -> str:
    """Why an attached file cannot go to a vision model, in words; "" when it can."""
    if not name.lower().endswith(IMAGE_SUFFIXES):
        return f"'{name}' is not a PNG, JPEG or WebP image"
    if not data:
        return f"'{name}' is empty"
    if len(data) > MAX_IMAGE_BYTES:
        return f"'{name}' is larger than {MAX_IMAGE_BYTES >> 20} MB"
    return ""
