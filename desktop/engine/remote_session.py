"""RemoteSession: a "loaded model" that is an OpenAI-compatible endpoint (llama-server, vLLM,
Ollama, LM Studio, another Openlid) stored as a remote entry and loaded by its path "remote:<id>".

Runs in the engine worker process, on its main thread, beside LlamaSession and HfSession: the
worker hands it the requests it answers itself (`answer`). Loading checks the endpoint
(GET /v1/models: reachable, key accepted, model listed) and describes it in a `ModelInfo` whose
`available_stages`/`stages_note` say that only the raw distribution exists, except for another
Openlid (its entry says `"owned_by": "openlid"`), which sends every StepRecord whole: there
`available_stages` is () and the chart shows every stage. Generating sends the
prompt pieces, rendered by Openlid's own template, as one text completion, so what the person
sees in the template panel is exactly what is sent, and streams the endpoint's `top_logprobs` as
StepRecords through `desktop.remote.client`.

The HTTP stream runs on a helper thread ("openlid-remote-stream") feeding a queue, so the main
thread keeps polling the pipe while the endpoint is silent (a long prompt on a big model): Stop
takes effect within one token, or within ~50 ms before the first. Each generation uses its own
RemoteEngine, so an abandoned stream can never cancel or feed the next one. Replay, tokenize and
"continue with a token" need token ids that an OpenAI-compatible API does not give (and an Openlid
server does not replay either): they fail with a clear "needs a local model" message and the
session stays usable.

Keys: never in the ModelInfo, never in a message (`remote.entries.redact`), never logged.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.steps import GenerationDone, StepRecord, Timings, Usage
from desktop.engine import protocol as P
from desktop.engine.session import LoadFailed
from desktop.remote.client import (
    AVAILABLE_STAGES,
    STAGES_NOTE,
    RemoteEngine,
    RemoteError,
    RemoteModel,
    is_openlid_entry,
    model_entries,
)
from desktop.remote.entries import (
    RemoteModelError,
    explain,
    not_served,
    public_url,
    redact,
    resolve,
)

CHECK_TIMEOUT_S = 10.0  # the load check: an endpoint that cannot list its models in 10 s is down
STREAM_TIMEOUT_S = 600.0  # silence allowed mid-stream (a big model's long prompt on RPC workers)
POLL_S = 0.05  # how often the pipe is checked for Stop while the endpoint is silent
NEEDS_LOCAL = ("{what} needs a local model: an OpenAI-compatible endpoint reports token texts "
               "and probabilities, not token ids, so the step cannot be recomputed there")

Send = Callable[[Any], None]
CancelCheck = Callable[[], bool]
_END = object()


class RemoteSession:
    """One remote model entry, checked and ready to stream."""

    remote = True  # the worker hands this session's generate/replay/tokenize to `answer`

    def __init__(self, path: str, settings: LoadSettings, log_path: str | None = None) -> None:
        started = time.perf_counter()
        try:
            self.model = resolve(path)
        except RemoteModelError as exc:
            raise LoadFailed(str(exc)) from None
        self.url = public_url(self.model.base_url)
        try:
            entries = _model_entries(RemoteEngine(self.model, timeout=CHECK_TIMEOUT_S))
        except RemoteError as exc:
            raise LoadFailed(_load_message(exc, self.model)) from None
        ids = [str(e.get("id")) for e in entries]
        if self.model.model not in ids:
            raise LoadFailed(f"{not_served(self.model, ids)}; edit the remote model's name")
        entry = entries[ids.index(self.model.model)]
        n_ctx_train, n_ctx = _context_of(entry, self.model)
        self.n_ctx = n_ctx or settings.n_ctx or n_ctx_train
        # Another Openlid sends whole StepRecords (every stage); n_vocab arrives in each of
        # them, not in the model list, so ModelInfo says 0 (unknown) as for any endpoint.
        self.openlid = is_openlid_entry(entry)
        self.info = ModelInfo(
            # The endpoint's model id, not the display name: a model without a template of its
            # own gets the preset its id names ("…Llama-3.1-70B-Instruct" → Llama 3).
            path=path, architecture="remote", name=self.model.model, n_params=0,
            quant="", size_bytes=0, n_vocab=0, n_ctx_train=n_ctx_train or self.n_ctx,
            n_ctx=self.n_ctx, n_layer=0, add_bos=False, backend=f"remote: {self.url}",
            load_ms=(time.perf_counter() - started) * 1000,
            available_stages=() if self.openlid else AVAILABLE_STAGES,
            stages_note="" if self.openlid else STAGES_NOTE,
        )

    def close(self) -> None:
        pass  # nothing held between requests: each generation opens its own connection

    # --- requests the worker hands over ---

    def answer(self, msg: Any, send: Send, cancel_requested: CancelCheck) -> bool:
        """Answer a request meant for the loaded model; False when the worker should."""
        if isinstance(msg, P.GenerateRequest):
            self.generate(msg, send, cancel_requested)
        elif isinstance(msg, P.ReplayRequest):
            send(P.EngineError(msg.request_id, "unsupported",
                               NEEDS_LOCAL.format(what="Replaying a step")))
        elif isinstance(msg, P.TokenizeRequest):
            send(P.EngineError(msg.request_id, "unsupported",
                               NEEDS_LOCAL.format(what="Counting tokens")))
        else:
            return False
        return True

    def generate(self, msg: P.GenerateRequest, send: Send, cancel_requested: CancelCheck) -> None:
        if msg.prompt_tokens or msg.forced_tokens:
            send(P.EngineError(msg.request_id, "unsupported",
                               NEEDS_LOCAL.format(what="Continuing with a chosen token")))
            return
        prompt = "".join(text for text, _trusted in msg.prompt)
        if not prompt:
            send(P.EngineError(msg.request_id, "bad_request", "the prompt is empty"))
            return
        engine = RemoteEngine(self.model, timeout=STREAM_TIMEOUT_S, openlid=self.openlid)
        items: queue.Queue[object] = queue.Queue()
        stop = threading.Event()
        started = time.perf_counter()
        thread = threading.Thread(
            target=_pump, args=(engine.stream_completion(prompt, msg.settings), items, stop,
                                engine),
            name="openlid-remote-stream", daemon=True)
        thread.start()
        steps = 0
        give_up_at: float | None = None  # set at Stop: how long to wait for the stream to end
        while True:
            if give_up_at is None and cancel_requested():
                stop.set()
                engine.cancel()  # shuts the socket: the stream ends as "cancelled"
                give_up_at = time.monotonic() + 1.0
            try:
                item = items.get(timeout=POLL_S)
            except queue.Empty:
                if give_up_at is not None and time.monotonic() > give_up_at:
                    # Still connecting or waiting for the first byte: nothing to shut yet.
                    # Answer now; the helper ends on its own and its output goes nowhere.
                    send(P.Done(msg.request_id, _cancelled_done(steps, started)))
                    return
                continue
            if isinstance(item, StepRecord):
                steps += 1
                send(P.Step(msg.request_id, item))
            elif isinstance(item, GenerationDone):
                send(P.Done(msg.request_id, item))
                return
            elif isinstance(item, RemoteError):
                send(P.EngineError(msg.request_id, "remote", redact(str(item), self.model)))
                return
            else:  # the helper ended without a Done
                send(P.Done(msg.request_id, _cancelled_done(steps, started)))
                return


# --- helpers ---


def _pump(stream: Iterator[StepRecord | GenerationDone], items: queue.Queue[object],
          stop: threading.Event, engine: RemoteEngine) -> None:
    """The helper thread: the endpoint's records into the queue, then the end or the error."""
    try:
        for item in stream:
            if stop.is_set():
                engine.cancel()  # a cancel before the socket opened found nothing to shut
            items.put(item)
    except RemoteError as exc:
        items.put(exc)
    except Exception as exc:  # anything else must still end the generation, in words
        items.put(RemoteError(f"the remote stream failed: {type(exc).__name__}: {exc}"))
    finally:
        items.put(_END)


def _cancelled_done(steps: int, started: float) -> GenerationDone:
    ms = (time.perf_counter() - started) * 1000
    return GenerationDone(finish_reason="cancelled", text="", usage=Usage(0, steps),
                          timings=Timings(prompt_ms=ms, first_token_ms=ms, generate_ms=0.0,
                                          tokens_per_second=0.0))


def _model_entries(engine: RemoteEngine) -> list[dict[str, Any]]:
    """GET /v1/models as the endpoint sends it: ids plus whatever it says about each model."""
    return model_entries(engine.get_json("/models"))


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _context_of(entry: dict[str, Any], model: RemoteModel) -> tuple[int, int]:
    """(training context, serving context) when the endpoint says; 0 where it does not.

    vLLM: `max_model_len` per model. llama-server: `meta.n_ctx_train` per model, and the slot
    context in GET /props (at the server root, beside /v1). LM Studio: `max_context_length`."""
    found = entry.get("meta")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    train = _int(meta.get("n_ctx_train")) or _int(entry.get("max_context_length"))
    serving = _int(entry.get("max_model_len")) or _int(entry.get("loaded_context_length"))
    if not serving and meta:
        serving = _props_n_ctx(model)
    return train, serving


def _props_n_ctx(model: RemoteModel) -> int:
    parts = urlsplit(model.base_url)
    root = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/").removesuffix("/v1"),
                       parts.query, ""))
    probe = RemoteEngine(RemoteModel(root, model.model, model.api_key), timeout=CHECK_TIMEOUT_S)
    try:
        data = probe.get_json("/props")
    except RemoteError:
        return 0  # an older server or another engine: the LoadSettings context stands
    if not isinstance(data, dict):
        return 0
    settings = data.get("default_generation_settings")
    nested = settings.get("n_ctx") if isinstance(settings, dict) else None
    return _int(nested) or _int(data.get("n_ctx"))


def _load_message(exc: RemoteError, model: RemoteModel) -> str:
    """The load check's failure, in words that say what to change."""
    if exc.kind == "config":
        return redact(str(exc), model)
    return explain(exc, model, "edit the remote model's key")
