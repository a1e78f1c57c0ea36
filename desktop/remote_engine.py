"""Remote engines: any OpenAI-compatible endpoint (llama-server, vLLM, Ollama, LM Studio, Openlid's
own server) streamed through the same `StepRecord` path as the local engine.

A `RemoteModel` is a model entry (URL, model name, key). `RemoteEngine` streams a chat or a text
completion with `logprobs`/`top_logprobs` and turns every reported token into a StepRecord whose
only stage is "raw": an endpoint reports the model's log-probabilities (llama-server,
llama-cpp-python and vLLM in its default `raw_logprobs` mode all report the distribution before
sampling), never what its sampler chain did, so `available_stages` says so and the chart shows
just that stage. Token ids are unknown over this API: each distinct token text gets a negative
synthetic id (stable within one generation) and its text goes into `pieces`.

Standard library HTTP (`http.client`), so no extra dependency. Blocking: run it on a worker
thread; `cancel()` may be called from any thread and ends the stream within one token.
"""

from __future__ import annotations

import codecs
import contextlib
import http.client
import json
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from desktop.core.sampling import STAGE_RAW, SamplerSettings
from desktop.core.steps import GenerationDone, StageView, StepRecord, Timings, Usage

AVAILABLE_STAGES: tuple[str, ...] = (STAGE_RAW,)
STAGES_NOTE = (
    "A remote engine reports only the model's own probabilities (the raw stage, top "
    "candidates only); what its sampler did after that is not available."
)
DEFAULT_TOP_LOGPROBS = 20  # OpenAI's maximum; llama-server and vLLM accept it too
_ERROR_BODY_LIMIT = 64 * 1024
_RANDOM_SEED = SamplerSettings().seed


def public_url(url: str) -> str:
    """The URL without user:password, query or fragment: safe to show and to log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class RemoteError(Exception):
    """The endpoint could not be reached or refused the request; `str()` says why in words."""

    def __init__(self, message: str, *, kind: str = "http", status: int = 0) -> None:
        super().__init__(message)
        self.kind = kind  # "config", "connect", "http", "protocol"
        self.status = status


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


def request_body(
    kind: str, model: RemoteModel, settings: SamplerSettings, top_logprobs: int
) -> dict[str, Any]:
    """The JSON body for a streamed chat ("chat") or text completion ("completion")."""
    s = settings
    body: dict[str, Any] = {
        "model": model.model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": s.temperature,
        "top_p": s.top_p,
        "max_tokens": s.max_tokens,
        "presence_penalty": s.presence_penalty,
        "frequency_penalty": s.frequency_penalty,
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
    if model.llama_extras:
        # Always sent, neutral values too: llama-cpp-python's server defaults to a repeat
        # penalty of 1.1, which would quietly change what "greedy" picks.
        body.update(top_k=s.top_k, min_p=s.min_p, typical_p=s.typical_p,
                    repeat_last_n=s.repeat_last_n)
        # llama.cpp's name and vLLM's; each server ignores the other's.
        body.update(repeat_penalty=s.repeat_penalty, repetition_penalty=s.repeat_penalty)
        if s.mirostat:
            body.update(mirostat=s.mirostat, mirostat_mode=s.mirostat,
                        mirostat_tau=s.mirostat_tau, mirostat_eta=s.mirostat_eta)
    return body


def _entropy_bits_lower_bound(probs: Sequence[float]) -> float:
    """Entropy of the listed candidates plus the unlisted mass taken as one outcome: merging
    outcomes never raises entropy, so this is a lower bound of the true raw entropy."""
    rest = max(0.0, 1.0 - sum(probs))
    return -sum(p * math.log2(p) for p in (*probs, rest) if p > 0)


class _Tokens:
    """Turns reported tokens into StepRecords: synthetic ids, text decoding, raw stage."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.step = 0

    def id_of(self, text: str) -> int:
        return self.ids.setdefault(text, -1 - len(self.ids))

    def record(
        self,
        token: str,
        logprob: float | None,
        top: Sequence[tuple[str, float]],
        raw_bytes: Sequence[int] | None,
        elapsed_ms: float,
    ) -> StepRecord:
        text = self.utf8.decode(bytes(raw_bytes)) if raw_bytes is not None else token
        ranked: dict[str, float] = {}
        for candidate, lp in sorted(top, key=lambda t: -t[1]):
            ranked.setdefault(candidate, lp)
        ids = tuple(self.id_of(t) for t in ranked)
        probs = tuple(math.exp(lp) for lp in ranked.values())
        token_id = self.id_of(token)
        prob = math.exp(logprob) if logprob is not None else 0.0
        entropy = _entropy_bits_lower_bound(probs)
        stages = (
            (StageView(STAGE_RAW, kept=len(ids), mass=sum(probs), ids=ids, probs=probs),)
            if ids or logprob is not None
            else ()
        )
        rank = ids.index(token_id) + 1 if token_id in ids else 0  # 0: not among those listed
        pieces = {self.ids[t]: t for t in ranked}
        pieces[token_id] = token
        record = StepRecord(
            step=self.step, token_id=token_id, text=text, piece=token, prob=prob,
            raw_prob=prob, raw_rank=rank, entropy_raw=entropy, entropy_final=entropy,
            stages=stages, pieces=pieces, sample_ms=0.0, decode_ms=elapsed_ms,
        )
        self.step += 1
        return record


class RemoteEngine:
    """Streams generations from one remote model. One generation at a time per instance."""

    available_stages = AVAILABLE_STAGES
    stages_note = STAGES_NOTE

    def __init__(self, model: RemoteModel, timeout: float = 120.0) -> None:
        self.model = model.validated()
        self.timeout = timeout
        self._cancel = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._conn_lock = threading.Lock()

    # --- plumbing ---

    def _connect(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.model.base_url)
        host = parts.hostname or ""
        if parts.scheme == "https":
            return http.client.HTTPSConnection(host, parts.port, timeout=self.timeout)
        return http.client.HTTPConnection(host, parts.port, timeout=self.timeout)

    def _url_path(self, endpoint: str) -> str:
        return urlsplit(self.model.base_url).path.rstrip("/") + endpoint

    def _headers(self, stream: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if stream else "application/json"}
        if self.model.api_key:
            headers["Authorization"] = f"Bearer {self.model.api_key}"
        return headers

    def _open(self, method: str, endpoint: str, body: dict[str, Any] | None,
              stream: bool) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = self._connect()
        data = json.dumps(body).encode("utf-8") if body is not None else None
        try:
            conn.request(method, self._url_path(endpoint), body=data,
                         headers=self._headers(stream))
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise RemoteError(f"cannot reach {public_url(self.model.base_url)}: {exc}",
                              kind="connect") from exc
        if response.status != 200:
            detail = _error_message(response.read(_ERROR_BODY_LIMIT))
            conn.close()
            where = public_url(self.model.base_url)
            raise RemoteError(f"{where} answered {response.status}: {detail}",
                              status=response.status)
        return conn, response

    def cancel(self) -> None:
        """End the running stream (any thread); the generation finishes as "cancelled"."""
        self._cancel.set()
        with self._conn_lock:
            if self._conn is not None and self._conn.sock is not None:
                with contextlib.suppress(OSError):
                    self._conn.sock.shutdown(2)  # wakes a read blocked on the socket

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
        body = request_body("chat", self.model, settings, top_logprobs)
        body["messages"] = [dict(m) for m in messages]
        return self._stream("/chat/completions", body, chat=True)

    def stream_completion(
        self, prompt: str, settings: SamplerSettings, *, top_logprobs: int = DEFAULT_TOP_LOGPROBS
    ) -> Iterator[StepRecord | GenerationDone]:
        body = request_body("completion", self.model, settings, top_logprobs)
        body["prompt"] = prompt
        return self._stream("/completions", body, chat=False)

    def _stream(self, endpoint: str, body: dict[str, Any],
                chat: bool) -> Iterator[StepRecord | GenerationDone]:
        self._cancel.clear()
        started = time.perf_counter()
        conn, response = self._open("POST", endpoint, body, stream=True)
        with self._conn_lock:
            self._conn = conn
        tokens = _Tokens()
        texts: list[str] = []
        finish, usage = "stop", None
        first_at = last_at = 0.0
        try:
            for event in _sse_events(response):
                if self._cancel.is_set():
                    finish = "cancelled"
                    break
                if "error" in event:
                    raise RemoteError(f"the endpoint failed mid-stream: "
                                      f"{_error_message(json.dumps(event).encode())}")
                usage = event.get("usage") or usage
                for choice in event.get("choices") or ():
                    now = time.perf_counter()
                    elapsed = (now - (last_at or started)) * 1000
                    for record in _records(tokens, choice, chat, elapsed):
                        first_at = first_at or now
                        last_at = now
                        yield record
                    texts.append(_choice_text(choice, chat))
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
        yield _done(texts, finish, usage, tokens.step, started, first_at, last_at)


def _records(tokens: _Tokens, choice: Mapping[str, Any], chat: bool,
             elapsed_ms: float) -> Iterator[StepRecord]:
    logprobs = choice.get("logprobs")
    if chat:
        for entry in (logprobs or {}).get("content") or ():
            top = [(t["token"], float(t["logprob"])) for t in entry.get("top_logprobs") or ()]
            yield tokens.record(str(entry["token"]), float(entry["logprob"]), top,
                                entry.get("bytes"), elapsed_ms)
        if not logprobs and _choice_text(choice, chat):
            # No logprobs from this endpoint: one record per chunk, without stages.
            yield tokens.record(_choice_text(choice, chat), None, (), None, elapsed_ms)
        return
    if not logprobs:
        if _choice_text(choice, chat):
            yield tokens.record(_choice_text(choice, chat), None, (), None, elapsed_ms)
        return
    tops = logprobs.get("top_logprobs") or []
    for i, token in enumerate(logprobs.get("tokens") or ()):
        lp = (logprobs.get("token_logprobs") or [])[i]
        top = tops[i] if i < len(tops) and tops[i] else {}
        yield tokens.record(str(token), None if lp is None else float(lp),
                            [(t, float(v)) for t, v in top.items()], None, elapsed_ms)


def _choice_text(choice: Mapping[str, Any], chat: bool) -> str:
    if chat:
        return str((choice.get("delta") or {}).get("content") or "")
    return str(choice.get("text") or "")


def _done(texts: list[str], finish: str, usage: Mapping[str, Any] | None, n_tokens: int,
          started: float, first_at: float, last_at: float) -> GenerationDone:
    ended = time.perf_counter()
    gen_s = max(last_at - first_at, 1e-9) if first_at else 0.0
    prompt = int((usage or {}).get("prompt_tokens") or 0)
    completion = int((usage or {}).get("completion_tokens") or n_tokens)
    return GenerationDone(
        finish_reason=finish if finish in ("stop", "length", "cancelled") else "stop",
        text="".join(texts),
        usage=Usage(prompt, completion),
        timings=Timings(
            prompt_ms=((first_at or ended) - started) * 1000,
            first_token_ms=((first_at or ended) - started) * 1000,
            generate_ms=gen_s * 1000,
            tokens_per_second=(n_tokens - 1) / gen_s if n_tokens > 1 and gen_s > 0 else 0.0,
        ),
    )


def _sse_events(response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """JSON objects of a server-sent event stream, until `data: [DONE]` or the end."""
    data: list[str] = []
    while True:
        raw = response.readline()
        if not raw:
            break
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            continue
        if line or not data:
            continue  # comments (":"), "event:"/"id:" fields, stray blank lines
        payload, data = "\n".join(data), []
        if payload.strip() == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except ValueError as exc:
            raise RemoteError(f"the endpoint sent a chunk that is not JSON: {payload[:200]!r}",
                              kind="protocol") from exc
        if isinstance(event, dict):
            yield event


def _error_message(body: bytes) -> str:
    """The message of an error body in OpenAI's shape (or FastAPI's "detail"), else the text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or "(no details)"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if data.get("detail"):
            return str(data["detail"])[:500]
    return text[:500]
