"""Find models on the Hugging Face Hub and list what a repo offers, as plain values.

`HubClient.search` pages through the model list with filters (free text, GGUF/safetensors,
author and parameter count on the Hub; quant offered and file size on each page here, see
hub.filters) and a sort; `HubClient.repo` lists a repo's files with size, LFS sha256 and the quant
label from the name, grouped into downloadable models (a split GGUF is one model; a safetensors
repo is one unit of config, tokenizer and all weight shards); `HubClient.model_card` fetches the
README. Failures arrive as `HubError` with a message in plain words (gated, private, offline …).

huggingface_hub does the Hub-specific parts: `HfApi.model_info(files_metadata=True)` for files,
its `ModelInfo` parser for search results, `build_hf_headers` for auth. The search request itself
is sent here, not through `HfApi.list_models`, for two reasons: list_models hides the Hub's
pagination cursor (the browser needs "next page" without refetching the first ones), and it
retries a refused connection for about 23 s before failing, where the browser should say
"offline" at once. The request is the same one list_models sends.

Every method blocks on the network: call from a worker thread, never the GUI thread. One client
may serve several threads (httpx2 clients and HfApi are thread-safe).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from huggingface_hub import HfApi, ModelInfo, hf_raise_for_status
from huggingface_hub.errors import RemoteEntryNotFoundError

from desktop.core.hub import quant
from desktop.core.hub.filters import PageFilter, num_parameters_param, param_count, quants_of
from desktop.core.hub.http import (
    HUB_FAILURES,
    HubError,
    ensure_online,
    explain,
    hub_headers,
    resolve_endpoint,
    resolve_url,
    stream_resolved,
)

__all__ = [
    "FORMATS",
    "SORTS",
    "HubClient",
    "HubError",
    "ModelFile",
    "ModelSummary",
    "ModelUnit",
    "RepoDetails",
    "SearchPage",
    "SearchQuery",
    "card_body",
]

FORMATS = ("gguf", "safetensors")  # Hub library tags
# Openlid's sort names → the Hub's `sort` parameter (always descending).
SORTS = {
    "downloads": "downloads",
    "likes": "likes",
    "trending": "trendingScore",
    "updated": "lastModified",
}
# The properties a search result shows; asked for explicitly because the Hub's default list
# leaves out lastModified and gated.
_EXPAND = (
    "author", "downloads", "likes", "trendingScore", "lastModified", "gated", "private", "tags",
    "pipeline_tag", "library_name", "gguf", "safetensors",
)
# Asked for only when a page filter needs them: file names (quants) and the repo's storage.
_EXPAND_FILES = ("siblings", "usedStorage")
_SIZE_WORKERS = 4  # repos whose file sizes are fetched at once for a size filter
_MAX_CARD_BYTES = 1 << 20  # a model card is text; anything larger is not shown in full
_Params = list[tuple[str, str | int | float | bool | None]]


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""
    fmt: str | None = None  # one of FORMATS, or None for any
    author: str | None = None
    sort: str = "downloads"  # one of SORTS
    limit: int = 30  # results per page (asked of the Hub; page filters may leave fewer)
    min_params: int | None = None  # the Hub filters these (num_parameters)
    max_params: int | None = None
    quant: str | None = None  # these are applied to each page here (hub.filters)
    min_size: int | None = None  # bytes, of one model (unit) in the repo
    max_size: int | None = None

    def page_filter(self) -> PageFilter:
        return PageFilter(self.quant or None, self.min_size, self.max_size)

    def params(self, cursor: str | None = None) -> _Params:
        if self.fmt is not None and self.fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}")
        for low, high, what in ((self.min_params, self.max_params, "parameter count"),
                                (self.min_size, self.max_size, "size")):
            if low is not None and high is not None and low > high:
                raise ValueError(f"the smallest {what} is above the largest")
        params: _Params = []
        if self.text.strip():
            params.append(("search", self.text.strip()))
        if self.author:
            params.append(("author", self.author))
        if self.fmt:
            params.append(("filter", self.fmt))
        if (num := num_parameters_param(self.min_params, self.max_params)) is not None:
            params.append(("num_parameters", num))
        params += [("sort", SORTS[self.sort]), ("limit", max(1, min(self.limit, 1000)))]
        expand = _EXPAND + (_EXPAND_FILES if self.page_filter().active else ())
        params += [("expand", prop) for prop in expand]
        if cursor:
            params.append(("cursor", cursor))
        return params


@dataclass(frozen=True)
class ModelSummary:
    """One search result (or the head of a repo page)."""

    repo_id: str
    author: str | None = None
    downloads: int | None = None
    likes: int | None = None
    trending: int | None = None
    updated: str | None = None  # ISO 8601, UTC
    gated: str = ""  # "" (open), "auto" or "manual"
    private: bool = False
    license: str | None = None
    pipeline_tag: str | None = None
    library: str | None = None
    tags: tuple[str, ...] = ()
    params: int | None = None  # parameter count the Hub gives (safetensors or GGUF metadata)
    quants: tuple[str, ...] = ()  # quant labels of its model files (when the list named them)
    used_storage: int | None = None  # bytes the repo takes on the Hub, all files
    size: int | None = None  # bytes of its smallest model matching a size filter

    @classmethod
    def from_info(cls, info: ModelInfo) -> ModelSummary:
        tags = tuple(info.tags or ())
        license_ = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
        card = info.card_data
        if license_ is None and card is not None:
            license_ = getattr(card, "license", None)
        return cls(
            repo_id=info.id,
            author=info.author or (info.id.split("/", 1)[0] if "/" in info.id else None),
            downloads=info.downloads,
            likes=info.likes,
            trending=info.trending_score,
            updated=info.last_modified.isoformat() if info.last_modified else None,
            gated=str(info.gated) if info.gated else "",
            private=bool(info.private),
            license=license_,
            pipeline_tag=info.pipeline_tag,
            library=info.library_name,
            tags=tags,
            params=param_count(info),
            quants=quants_of(info),
            used_storage=info.used_storage,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchPage:
    models: tuple[ModelSummary, ...]
    next_url: str | None  # give to HubClient.next_page; None on the last page
    scanned: int = 0  # models the Hub sent for this page, before the page filters
    filtered: tuple[str, ...] = ()  # page filters applied here ("quant", "size")

    @property
    def cursor(self) -> str | None:
        """The Hub's cursor for the next page (for `HubClient.search(query, cursor)`)."""
        if self.next_url is None:
            return None
        return parse_qs(urlsplit(self.next_url).query).get("cursor", [None])[0]


@dataclass(frozen=True)
class ModelFile:
    """One file of a repo at one commit. `sha256` is the LFS content hash (None for small files
    kept in git, which `blob_id`, their git blob sha1, identifies instead)."""

    repo_id: str
    path: str
    size: int | None
    sha256: str | None = None
    blob_id: str | None = None
    quant: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelFile:
        return cls(
            repo_id=str(data["repo_id"]), path=str(data["path"]), size=data.get("size"),
            sha256=data.get("sha256"), blob_id=data.get("blob_id"), quant=data.get("quant"),
        )


@dataclass(frozen=True)
class ModelUnit:
    """Files that download and load together (see quant.FileGroup)."""

    name: str
    kind: str  # quant.KIND_*
    quant: str | None
    files: tuple[ModelFile, ...]
    complete: bool = True

    @property
    def size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["size"] = self.size
        return data


@dataclass(frozen=True)
class RepoDetails:
    summary: ModelSummary
    commit: str | None  # the revision's commit sha: downloads pin it so the bytes match sha256
    files: tuple[ModelFile, ...]
    units: tuple[ModelUnit, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary.to_json(),
            "commit": self.commit,
            "files": [f.to_json() for f in self.files],
            "units": [u.to_json() for u in self.units],
        }


def card_body(text: str) -> str:
    """A model card without its YAML front matter (the metadata block between `---` lines)."""
    if not text.startswith("---"):
        return text
    end = text.find("\n---", 3)
    if end < 0:
        return text
    rest = text[end + 4 :]
    return rest.split("\n", 1)[1] if "\n" in rest else ""


def _units(files: tuple[ModelFile, ...]) -> tuple[ModelUnit, ...]:
    by_path = {f.path: f for f in files}
    return tuple(
        ModelUnit(g.name, g.kind, g.quant, tuple(by_path[p] for p in g.paths), g.complete)
        for g in quant.group_files(by_path)
    )


class HubClient:
    """Blocking Hub calls (see the module docstring). `token` is passed to huggingface_hub:
    None uses its stored login, False sends none, a string is used as is (never logged)."""

    def __init__(
        self, endpoint: str | None = None, token: str | bool | None = None, timeout: float = 15.0
    ) -> None:
        self.endpoint = resolve_endpoint(endpoint)
        self._token = token
        self._timeout = timeout
        self._api = HfApi(endpoint=self.endpoint, token=token, library_name="openlid")
        self._http = httpx2.Client(
            timeout=httpx2.Timeout(timeout, connect=min(timeout, 10.0)), follow_redirects=False
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def search(self, query: SearchQuery, cursor: str | None = None) -> SearchPage:
        """The first page of models matching `query` (or the page at the Hub's `cursor`)."""
        params = query.params(cursor)
        return self._search_page(f"{self.endpoint}/api/models", params, query.page_filter())

    def next_page(self, next_url: str, query: SearchQuery | None = None) -> SearchPage:
        """The page after one already fetched (its `next_url`), with `query`'s page filters."""
        return self._search_page(next_url, None, query.page_filter() if query else PageFilter())

    def _search_page(self, url: str, params: _Params | None, flt: PageFilter) -> SearchPage:
        ensure_online()
        try:
            response = self._http.get(url, params=params, headers=hub_headers(self._token))
            hf_raise_for_status(response)
            items = response.json()
            infos = [ModelInfo(**item) for item in items]  # type: ignore[no-untyped-call]
            models = tuple(ModelSummary.from_info(info) for info in infos)
            next_url = response.links.get("next", {}).get("url")
        except HUB_FAILURES as exc:
            raise explain(exc, what="the model search", endpoint=self.endpoint) from exc
        if not flt.active:
            return SearchPage(models, next_url, len(models))
        return SearchPage(self._filter_page(models, flt), next_url, len(models), flt.names())

    def _filter_page(self, models: Sequence[ModelSummary],
                     flt: PageFilter) -> tuple[ModelSummary, ...]:
        keep = [m for m in models
                if flt.quant_ok(m.quants) and not flt.storage_rules_out(m.used_storage)]
        if not flt.needs_sizes or not keep:
            return tuple(keep)
        # One model-info request per candidate: the list has no file sizes.
        with ThreadPoolExecutor(min(_SIZE_WORKERS, len(keep)),
                                thread_name_prefix="openlid-hub-size") as pool:
            sizes = list(pool.map(lambda m: self._matching_size(m.repo_id, flt), keep))
        return tuple(replace(m, size=size) for m, size in zip(keep, sizes, strict=True)
                     if size is not None)

    def _matching_size(self, repo_id: str, flt: PageFilter) -> int | None:
        """The smallest complete model in the repo (of the filter's quant) within the size
        range, or None. A repo the Hub will not describe is left out, not an error."""
        try:
            details = self.repo(repo_id)
        except HubError as exc:
            if exc.permanent:
                return None
            raise
        sizes = [
            u.size for u in details.units
            if u.kind in (quant.KIND_GGUF, quant.KIND_SAFETENSORS) and u.complete
            and u.size is not None and flt.quant_ok((u.quant,) if u.quant else ())
            and flt.size_ok(u.size)
        ]
        return min(sizes) if sizes else None

    def repo(self, repo_id: str, revision: str | None = None) -> RepoDetails:
        """A repo's files with sizes and hashes, grouped into downloadable models."""
        try:
            info = self._api.model_info(
                repo_id, revision=revision, files_metadata=True, timeout=self._timeout
            )
        except HUB_FAILURES as exc:
            raise explain(exc, what=repo_id, endpoint=self.endpoint, repo_id=repo_id) from exc
        files = tuple(
            ModelFile(
                repo_id=info.id,
                path=s.rfilename,
                size=s.lfs.size if s.lfs is not None else s.size,
                sha256=s.lfs.sha256 if s.lfs is not None else None,
                blob_id=s.blob_id,
                quant=quant.quant_label(s.rfilename) if quant.is_weights(s.rfilename) else None,
            )
            for s in info.siblings or ()
        )
        return RepoDetails(ModelSummary.from_info(info), info.sha, files, _units(files))

    def model_card(self, repo_id: str, revision: str | None = None) -> str:
        """The repo's README.md as text ("" when it has none), front matter included."""
        url = resolve_url(self.endpoint, repo_id, "README.md", revision)
        what = f"{repo_id}/README.md"
        body = bytearray()
        try:
            with stream_resolved(
                self._http, url, hub_headers(self._token), endpoint=self.endpoint, what=what,
                repo_id=repo_id,
            ) as response:
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) >= _MAX_CARD_BYTES:
                        break
        except HubError as exc:
            if isinstance(exc.__cause__, RemoteEntryNotFoundError):
                return ""  # a repo without a card
            raise
        except httpx2.HTTPError as exc:
            raise explain(exc, what=what, endpoint=self.endpoint) from exc
        return bytes(body[:_MAX_CARD_BYTES]).decode("utf-8", errors="replace")

    def file_url(self, repo_id: str, path: str, revision: str | None = None) -> str:
        return resolve_url(self.endpoint, repo_id, path, revision)


