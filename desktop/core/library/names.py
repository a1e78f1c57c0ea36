"""One name per local model, used wherever Openlid names it (the library's rows, the status bar,
the chat's "Chatting with …", messages): the file, its quant and the repo it came from.

A GGUF's own `general.name` is not used: two quants of one model, or a base and an instruct
variant, often carry the same one ("Gemma 3 270m"), so the library could not tell them apart.
The file name says the variant and usually the quant; the folder says the repo, since the Hub
downloads into `<models folder>/<owner>/<name>/`, the Hugging Face cache keeps
`models--<owner>--<name>/snapshots/<sha>/` and LM Studio `<owner>/<name>/`.

Pure; no disk access (the path is only read as text), so any thread may call it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

__all__ = ["ModelName", "model_name"]

_SHARD = re.compile(r"-\d{5}-of-\d{5}$")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


@dataclass(frozen=True)
class ModelName:
    """`file`: the file name without `.gguf` (and a split file's `-00001-of-00003`), or a
    safetensors folder's name; `quant`: Q4_K_M, BF16 … ("" when unknown); `origin`: the repo
    ("owner/name") or, for a file outside any repo layout, the folder it sits in."""

    file: str
    quant: str = ""
    origin: str = ""

    @property
    def title(self) -> str:
        """The file, with the quant added when the file name does not already say it."""
        if not self.quant or _squash(self.quant) in _squash(self.file):
            return self.file
        return f"{self.file} {self.quant}"

    @property
    def display(self) -> str:
        """The one-line name: 'gemma-3-270m-it-Q4_K_M · unsloth/gemma-3-270m-it-GGUF'."""
        return f"{self.title} · {self.origin}" if self.origin else self.title


def _squash(text: str) -> str:
    return _NOT_ALNUM.sub("", text.lower())


def model_name(path: str, quant: str = "", *, models_dir: str = "",
               source: str = "") -> ModelName:
    """The name of the model at `path` (a .gguf file or a safetensors folder). `models_dir`: the
    models folder, whose `<owner>/<name>/` sub-folders are repos; `source`: the library's word
    for where it was found ("lm studio" folders are `<owner>/<name>/` too)."""
    p = PurePath(path)
    stem = p.name[:-5] if p.name.lower().endswith(".gguf") else p.name
    stem = _SHARD.sub("", stem) or p.name
    return ModelName(stem, quant.strip(), _origin(p, models_dir, source))


def _origin(p: PurePath, models_dir: str, source: str) -> str:
    for part in p.parts[:-1]:
        if part.startswith("models--") and part.count("--") >= 2:
            return "/".join(part.split("--")[1:3])  # the Hugging Face cache's repo folder
    if models_dir:
        try:
            rel = p.relative_to(models_dir).parts
        except ValueError:
            rel = ()
        if len(rel) >= 3:
            return f"{rel[0]}/{rel[1]}"
        if len(rel) == 2:
            return rel[0]
        if len(rel) == 1:
            return ""
    parents = p.parts[:-1]
    if source == "lm studio" and len(parents) >= 2:
        return f"{parents[-2]}/{parents[-1]}"
    return parents[-1] if parents and parents[-1] != p.anchor else ""
