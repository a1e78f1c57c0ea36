"""The fake repos the local Hub serves, and their JSON in the Hub's own shapes.

Files are real: GGUFs from `tests.ggufmaker` (and one ~1 MiB GGUF for throttled transfers), a
split GGUF, safetensors shards with their index, config and tokenizer, and model cards.
Weights are LFS files (sha256 and a pointer blob), text files plain git blobs, as on the Hub.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from safetensors.numpy import save_file

from tests.ggufmaker import write_split_gguf, write_tiny_gguf

LFS_SUFFIXES = (".gguf", ".safetensors", ".bin")
_EPOCH = "2025-{:02d}-{:02d}T10:00:00.000Z"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class RepoFileData:
    path: str
    data: bytes
    lfs: bool

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def pointer(self) -> bytes:
        return (
            "version https://git-lfs.github.com/spec/v1\n"
            f"oid sha256:{self.sha256}\nsize {len(self.data)}\n"
        ).encode()

    @cached_property
    def blob_sha1(self) -> str:
        return git_blob_sha1(self.pointer if self.lfs else self.data)


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, RepoFileData]
    tags: list[str]
    downloads: int = 0
    likes: int = 0
    trending: int = 0
    month: int = 1  # lastModified 2025-<month>-01
    gated: str | bool = False
    private: bool = False
    library_name: str | None = "gguf"
    license: str = "mit"
    gguf: dict[str, Any] | None = None
    safetensors: dict[str, Any] | None = None  # {"parameters": {dtype: n}, "total": n}
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def author(self) -> str:
        return self.repo_id.split("/", 1)[0]

    @cached_property
    def sha(self) -> str:
        return hashlib.sha1(self.repo_id.encode()).hexdigest()

    def summary(self) -> dict[str, Any]:
        """An item of GET /api/models (the properties the `expand` list asks for)."""
        return {
            "_id": self.sha[:24], "id": self.repo_id, "modelId": self.repo_id,
            "author": self.author, "downloads": self.downloads, "likes": self.likes,
            "trendingScore": self.trending, "lastModified": _EPOCH.format(self.month, 1),
            "createdAt": _EPOCH.format(1, 1), "private": self.private, "gated": self.gated,
            "tags": [*self.tags, f"license:{self.license}"], "pipeline_tag": "text-generation",
            "library_name": self.library_name,
        }

    @property
    def params(self) -> int | None:
        """The count the Hub shows and filters on: safetensors metadata, else GGUF's."""
        for meta in (self.safetensors, self.gguf):
            if meta and meta.get("total"):
                return int(meta["total"])
        return None

    def expanded(self, props: list[str]) -> dict[str, Any]:
        """An item of GET /api/models with `expand=<props>` beyond the summary: the Hub adds
        gguf / safetensors only for repos that have them, siblings with names only."""
        out = self.summary()
        if "gguf" in props and self.gguf is not None:
            out["gguf"] = self.gguf
        if "safetensors" in props and self.safetensors is not None:
            out["safetensors"] = self.safetensors
        if "siblings" in props:
            out["siblings"] = [{"rfilename": f.path} for f in self.files.values()]
        if "usedStorage" in props:
            out["usedStorage"] = self.used_storage
        return out

    @property
    def used_storage(self) -> int:
        return sum(len(f.data) for f in self.files.values())

    def sibling(self, f: RepoFileData, blobs: bool) -> dict[str, Any]:
        if not blobs:
            return {"rfilename": f.path}
        out: dict[str, Any] = {"rfilename": f.path, "blobId": f.blob_sha1, "size": len(f.data)}
        if f.lfs:
            out["lfs"] = {"sha256": f.sha256, "size": len(f.data), "pointerSize": len(f.pointer)}
        return out

    def info(self, blobs: bool) -> dict[str, Any]:
        """GET /api/models/{repo}[/revision/{rev}][?blobs=true]."""
        data = {
            **self.summary(), "sha": self.sha, "disabled": False,
            "cardData": {"license": self.license, "tags": self.tags},
            "siblings": [self.sibling(f, blobs) for f in self.files.values()],
            "spaces": [], "usedStorage": self.used_storage,
            **self.extra,
        }
        if self.gguf is not None:
            data["gguf"] = self.gguf
        if self.safetensors is not None:
            data["safetensors"] = self.safetensors
        return data

    def entry(self, path: str) -> dict[str, Any]:
        """One item of the tree and paths-info endpoints."""
        f = self.files[path]
        out: dict[str, Any] = {"type": "file", "oid": f.blob_sha1, "size": len(f.data),
                               "path": path}
        if f.lfs:
            out["lfs"] = {"oid": f.sha256, "size": len(f.data), "pointerSize": len(f.pointer)}
        return out

    def tree(self, folder: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        out: list[dict[str, Any]] = []
        dirs: set[str] = set()
        for path in self.files:
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            if "/" in rest and not recursive:
                dirs.add(prefix + rest.split("/", 1)[0])
                continue
            if recursive:
                parts = path.split("/")[:-1]
                dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
            out.append(self.entry(path))
        folders = [{"type": "directory", "oid": git_blob_sha1(d.encode()), "size": 0, "path": d}
                   for d in sorted(dirs) if d.startswith(prefix)]
        return folders + out


def _card(title: str, license_: str, tags: list[str]) -> bytes:
    tag_lines = "".join(f"- {t}\n" for t in tags)
    return (f"---\nlicense: {license_}\ntags:\n{tag_lines}---\n\n# {title}\n\n"
            "A tiny model for Openlid's tests. It knows fifteen tokens.\n").encode()


def _read(folder: Path, names: list[str]) -> dict[str, RepoFileData]:
    return {
        n: RepoFileData(n, (folder / n).read_bytes(), n.endswith(LFS_SUFFIXES)) for n in names
    }


def _big_gguf(path: Path, rows: int) -> None:
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("Big Tiny")
    w.add_uint32("llama.block_count", 0)
    w.add_tensor("token_embd.weight",
                 np.random.default_rng(1).standard_normal((rows, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _safetensors(folder: Path) -> list[str]:
    rng = np.random.default_rng(2)
    shards = {
        "model-00001-of-00002.safetensors": {
            "model.embed_tokens.weight": rng.standard_normal((16, 8), dtype=np.float32)},
        "model-00002-of-00002.safetensors": {
            "lm_head.weight": rng.standard_normal((16, 8), dtype=np.float32)},
    }
    weight_map = {}
    for name, tensors in shards.items():
        save_file(tensors, str(folder / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, name))
    texts = {
        "config.json": {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                        "hidden_size": 8, "vocab_size": 16, "num_hidden_layers": 0},
        "generation_config.json": {"bos_token_id": 1, "eos_token_id": 2},
        "tokenizer_config.json": {"bos_token": "<s>", "eos_token": "</s>"},
        "tokenizer.json": {"version": "1.0", "model": {"type": "BPE", "vocab": {}}},
        "model.safetensors.index.json": {"metadata": {"total_size": 1024},
                                         "weight_map": weight_map},
    }
    for name, data in texts.items():
        (folder / name).write_text(json.dumps(data, indent=2))
    return [*texts, *shards]


def build_repos(root: Path) -> list[FakeRepo]:
    """Write every fixture repo's files under `root` and describe them."""
    repos: list[FakeRepo] = []

    def repo(repo_id: str, names: list[str], tags: list[str], **kw: Any) -> FakeRepo:
        folder = root / repo_id
        if "README.md" not in names:
            (folder / "README.md").write_bytes(_card(repo_id, kw.get("license", "mit"), tags))
            names = ["README.md", *names]
        (folder / ".gitattributes").write_text("*.gguf filter=lfs diff=lfs merge=lfs -text\n")
        made = FakeRepo(repo_id, _read(folder, [".gitattributes", *names]), tags, **kw)
        repos.append(made)
        return made

    def folder(repo_id: str) -> Path:
        path = root / repo_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    d = folder("openlid-test/tiny-gguf")
    for n_blocks, q in enumerate(("Q4_K_M", "Q8_0", "F16"), start=1):
        write_tiny_gguf(d / f"tiny-{q}.gguf", n_blocks=n_blocks)
    write_tiny_gguf(d / "mmproj-tiny-F16.gguf", name="Tiny Projector")
    def gguf_meta(total: int) -> dict[str, Any]:
        # "total" is the parameter count the Hub reads from the GGUF; these differ per repo
        # (as real repos do) so that the num_parameters filter has something to choose.
        return {"total": total, "architecture": "llama", "context_length": 256}

    repo("openlid-test/tiny-gguf",
         ["tiny-Q4_K_M.gguf", "tiny-Q8_0.gguf", "tiny-F16.gguf", "mmproj-tiny-F16.gguf"],
         ["gguf", "llama", "text-generation"], downloads=900, likes=40, trending=7, month=3,
         gguf=gguf_meta(270_000_000))

    d = folder("openlid-test/big-gguf")
    _big_gguf(d / "big-Q4_K_M.gguf", rows=32768)  # 1 MiB of tensor data
    repo("openlid-test/big-gguf", ["big-Q4_K_M.gguf"], ["gguf", "llama"],
         downloads=500, likes=90, trending=3, month=5, gguf=gguf_meta(1_100_000_000))

    d = folder("openlid-test/split-gguf")
    shards = write_split_gguf(d, 3, stem="tiny-Q8_0")
    write_tiny_gguf(d / "tiny-Q4_K_M.gguf")
    repo("openlid-test/split-gguf", [p.name for p in shards] + ["tiny-Q4_K_M.gguf"],
         ["gguf", "llama"], downloads=300, likes=5, trending=20, month=2,
         gguf=gguf_meta(7_000_000_000))

    d = folder("openlid-test/tiny-safetensors")
    repo("openlid-test/tiny-safetensors", _safetensors(d),
         ["transformers", "safetensors", "llama", "text-generation"], downloads=700, likes=10,
         trending=1, month=4, library_name="transformers",
         safetensors={"parameters": {"F32": 256}, "total": 256})

    d = folder("other-org/tiny-llama-gguf")
    write_tiny_gguf(d / "tiny-llama.Q4_0.gguf")
    repo("other-org/tiny-llama-gguf", ["tiny-llama.Q4_0.gguf"], ["gguf", "llama"],
         downloads=100, likes=2, trending=0, month=6, license="apache-2.0",
         gguf=gguf_meta(1_100_000_000))

    d = folder("openlid-gated/tiny-gated")
    write_tiny_gguf(d / "gated-Q4_K_M.gguf")
    repo("openlid-gated/tiny-gated", ["gated-Q4_K_M.gguf"], ["gguf", "llama"],
         downloads=50, likes=1, gated="manual", license="llama3",
         gguf=gguf_meta(8_000_000_000))

    d = folder("openlid-private/secret")
    write_tiny_gguf(d / "secret-Q4_K_M.gguf")
    repo("openlid-private/secret", ["secret-Q4_K_M.gguf"], ["gguf"], private=True)
    return repos
