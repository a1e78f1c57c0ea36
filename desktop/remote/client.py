"""Remote engines: any OpenAI-compatible endpoint (llama-server, vLLM, Ollama, LM Studio, Openlid's
own server) streamed through the same `StepRecord` path as the local engine.

A `RemoteModel` is a model entry (URL, model name, key). `RemoteEngine` streams a chat or a text
completion with `logprobs`/`top_logprobs` (the request plumbing and the server-sent events are in
`remote.http`) and turns every reported token into a StepRecord whose only stage is "raw" (see
`remote.steps`): an endpoint reports the model's log-probabilities, never what its sampler chain
did, so `available_stages` says so and the chart shows just that stage.

Another Openlid is the exception: its `/v1/models` entries say `"owned_by": "openlid"`, and asked
for `openlid_steps` it sends every StepRecord whole (all stages, real token ids and pieces), so
`available_stages` is () (all) for it. The engine finds out from `/v1/models` on its first stream
(or is told, `openlid=`, by a caller that already read the list), and falls back to plain logprobs
if an older Openlid refuses the field.

Blocking: run it on a worker thread; `cancel()` may be called from any thread and ends the stream
within one token.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from desktop.core.sampler_stages import DEFAULT_ORDER, request_fields, server_order
from desktop.core.sampling import STAGE_RAW, SamplerSettings
from desktop.core.steps import GenerationDone, StepRecord
from desktop.remote.http import RemoteError, error_message, open_request, public_url, sse_events
from desktop.remote.steps import StepBuilder, choice_records, choice_text, generation_done

__all__ = ["AVAILABLE_STAGES", "DEFAULT_TOP_LOGPROBS", "STAGES_NOTE", "RemoteEngine",
           "RemoteError", "RemoteModel", "is_openlid_entry", "model_entries", "request_body"]

AVAILABLE_STAGES: tuple[str, ...] = (STAGE_RAW,)
STAGES_NOTE = (
    "A remote engine reports only the model's own probabilities (the raw stage, top "
    "candidates only); what its sampler did after that is not available."
)
DEFAULT_TOP_LOGPROBS = 20  # OpenAI's maximum; llama-server and vLLM accept it too
_RANDOM_SEED = SamplerSettings().seed


@dataclass(frozen=True)
class RemoteModel:
    """A model entry served by an OpenAI-compatible endpoint."""

    base_url: str  # e.g. http://gpu-box:8080/v1
    model: str  # the name the endpoint knows it by
    api_key: str = ""
    name: str = ""  # display name; the model name when empty
    llama_extras: bool = True  # send top_k/min_p/typical_p/repeat_penalty/mirostat too

    def __repr__(self) -> str:  # never show the key in logs or tracebacks
        return f"RemoteModel(base_url={public_url(self.base_url)!r}, model={self.model!r})"

    @property
    def display_name(self) -> str:
        return self.name or self.model

    def validated(self) -> RemoteModel:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(
                f"'{public_url(self.base_url)}' is not an http(s) URL such as "
                "http://host:8080/v1",
                kind="config",
            )
        if not self.model.strip():
            raise RemoteError("the remote model needs a model name", kind="config")
        return self

    def to_json(self, include_key: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "base_url": self.base_url, "model": self.model, "name": self.name,
            "llama_extras": self.llama_extras,
        }
        if include_key:
            data["api_key"] = self.api_key
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RemoteModel:
        return cls(
            base_url=str(data["base_url"]), model=str(data["model"]),
            api_key=str(data.get("api_key", "")), name=str(data.get("name", "")),
            llama_extras=bool(data.get("llama_extras", True)),
        )


def model_entries(data: Any) -> list[dict[str, Any]]:
    """The model entries of a GET /v1/models answer: ids plus whatever it says about each."""
    listed = data.get("data") if isinstance(data, dict) else None
    if not isinstance(listed, list):
        # Ollama's /api/tags has "models"; a bare list also occurs in the wild.
        listed = data.get("models") if isinstance(data, dict) else data
    return [m for m in listed or () if isinstance(m, dict)]


def is_openlid_entry(entry: Mapping[str, Any]) -> bool:
    """True when a /v1/models entry is served by Openlid (which can send every stage)."""
    return entry.get("owned_by") == "openlid"


def request_body(
    kind: str, model: RemoteModel, settings: SamplerSettings, top_logprobs: int,
    *, openlid: bool = False,
) -> dict[str, Any]:
    """The JSON body for a streamed chat ("chat") or text completion ("completion"); `openlid`
    asks another Openlid for every StepRecord and sends the settings only Openlid takes."""
    s = settings
    # First, so that an Openlid from before the extension names it as the field it does not know
    # (it refuses the first unknown field), and the engine asks it again plainly.
    body: dict[str, Any] = {"openlid_steps": True} if openlid else {}
    body |= {
        "model": model.model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": s.max_tokens,
        # OpenAI's sampler fields; with llama_extras llama.cpp's too, by the stage registry.
        **request_fields(s, extras=model.llama_extras or openlid, everything=openlid),
    }
    if s.stop:
        body["stop"] = list(s.stop)
    if s.seed != _RANDOM_SEED:
        body["seed"] = s.seed
    if kind == "chat":
        body["logprobs"] = top_logprobs > 0
        if top_logprobs > 0:
            body["top_logprobs"] = top_logprobs
    elif top_logprobs > 0:
        body["logprobs"] = top_logprobs
    if openlid:
        # Openlid takes every field above, and its chain order and ignore_eos too, so the far
        # chain is the one the person set up.
        body.update(samplers=list(s.order), ignore_eos=s.ignore_eos)
    elif model.llama_extras and s.order != DEFAULT_ORDER:
        # llama-server runs its chain in the order `samplers` names, by its own names; sent only
        # when the person changed the order, as other servers may not know the field.
        body["samplers"] = server_order(s.order)
    return body


class RemoteEngine:
    """Streams generations from one remote model. One generation at a time per instance.

    `openlid`: whether the endpoint is another Openlid; None finds out on the first stream."""

    def __init__(self, model: RemoteModel, timeout: float = 120.0, *,
                 openlid: bool | None = None) -> None:
        self.model = model.validated()
        self.timeout = timeout
        self.openlid = openlid
        self._cancel = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._conn_lock = threading.Lock()

    def _open(self, method: str, endpoint: str, body: dict[str, Any] | None,
              stream: bool) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        return open_request(self.model.base_url, self.model.api_key, self.timeout, method,
                            endpoint, body, stream=stream)

    def cancel(self) -> None:
        """End the running stream (any thread); the generation finishes as "cancelled"."""
        self._cancel.set()
        with self._conn_lock:
            if self._conn is not None and self._conn.sock is not None:
                with contextlib.suppress(OSError):
                    self._conn.sock.shutdown(2)  # wakes a read blocked on the socket

    @property
    def available_stages(self) -> tuple[str, ...]:
        """The stages its StepRecords carry: () (all) from another Openlid, else raw only.
        Known once `detect_openlid()` (or the first stream) has run."""
        return () if self.openlid else AVAILABLE_STAGES

    @property
    def stages_note(self) -> str:
        return "" if self.openlid else STAGES_NOTE

    def detect_openlid(self) -> bool:
        """Whether the endpoint serves this model from an Openlid (GET /models, once)."""
        if self.openlid is None:
            try:
                entries = model_entries(self.get_json("/models"))
            except RemoteError:
                entries = []  # the stream itself will say what is wrong with the endpoint
            self.openlid = any(e.get("id") == self.model.model and is_openlid_entry(e)
                               for e in entries)
        return self.openlid

    # --- requests ---

    def get_json(self, endpoint: str) -> Any:
        """GET `endpoint` (relative to the base URL) and parse the JSON it answers."""
        conn, response = self._open("GET", endpoint, None, stream=False)
        try:
            return json.loads(response.read())
        except ValueError as exc:
            raise RemoteError(f"{endpoint} did not answer JSON", kind="protocol") from exc
        finally:
            conn.close()

    def list_models(self) -> list[str]:
        data = self.get_json("/models")
        listed = data.get("data", []) if isinstance(data, dict) else []
        return [str(m.get("id")) for m in listed if isinstance(m, dict)]

    def stream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        settings: SamplerSettings,
        *,
        top_logprobs: int = DEFAULT_TOP_LOGPROBS,
    ) -> Iterator[StepRecord | GenerationDone]:
        """Yield a StepRecord per token, then GenerationDone. Raises RemoteError."""
        extra = {"messages": [dict(m) for m in messages]}
        return self._stream("/chat/completions", settings, top_logprobs, extra, chat=True)

    def stream_completion(
        self, prompt: str, settings: SamplerSettings, *, top_logprobs: int = DEFAULT_TOP_LOGPROBS
    ) -> Iterator[StepRecord | GenerationDone]:
        extra = {"prompt": prompt}
        return self._stream("/completions", settings, top_logprobs, extra, chat=False)

    def _open_stream(self, endpoint: str, settings: SamplerSettings, top_logprobs: int,
                     extra: dict[str, Any], chat: bool,
                     ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        kind = "chat" if chat else "completion"
        openlid = self.detect_openlid()
        body = {**request_body(kind, self.model, settings, top_logprobs, openlid=openlid),
                **extra}
        try:
            return self._open("POST", endpoint, body, stream=True)
        except RemoteError as exc:
            # An Openlid from before the extension refuses the unknown field: ask it plainly.
            if not (openlid and exc.status == 400 and "openlid_steps" in str(exc)):
                raise
        self.openlid = False
        body = {**request_body(kind, self.model, settings, top_logprobs), **extra}
        return self._open("POST", endpoint, body, stream=True)

    def _stream(self, endpoint: str, settings: SamplerSettings, top_logprobs: int,
                extra: dict[str, Any], chat: bool) -> Iterator[StepRecord | GenerationDone]:
        self._cancel.clear()
        started = time.perf_counter()
        conn, response = self._open_stream(endpoint, settings, top_logprobs, extra, chat)
        with self._conn_lock:
            self._conn = conn
        tokens = StepBuilder()
        texts: list[str] = []
        finish, usage = "stop", None
        first_at = last_at = 0.0
        try:
            for event in sse_events(response):
                if self._cancel.is_set():
                    finish = "cancelled"
                    break
                if "error" in event:
                    raise RemoteError(f"the endpoint failed mid-stream: "
                                      f"{error_message(json.dumps(event).encode())}")
                usage = event.get("usage") or usage
                for choice in event.get("choices") or ():
                    now = time.perf_counter()
                    elapsed = (now - (last_at or started)) * 1000
                    for record in choice_records(tokens, choice, chat, elapsed):
                        first_at = first_at or now
                        last_at = now
                        yield record
                    texts.append(choice_text(choice, chat))
                    finish = choice.get("finish_reason") or finish
        except (OSError, http.client.HTTPException) as exc:
            if not self._cancel.is_set():
                raise RemoteError(f"the stream from {public_url(self.model.base_url)} broke: {exc}",
                                  kind="connect") from exc
        finally:
            with self._conn_lock:
                self._conn = None
            conn.close()
        if self._cancel.is_set():  # a shut-down socket may also read as a clean end
            finish = "cancelled"
        yield generation_done(texts, finish, usage, tokens.step, started, first_at, last_at)
