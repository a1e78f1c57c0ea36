"""Messages from the host to the engine worker and events back, pickled over one duplex pipe.

Pure data, imported by both sides. Every event names the request it answers, so a listener can
drop events of a request it no longer cares about (a stale generation after Stop, say).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.sampling import SamplerSettings
from desktop.core.steps import GenerationDone, ReplyScores, StepRecord

# A prompt as the template renders it: (text, trusted). Trusted pieces are template markup and
# may contain special tokens (<start_of_turn>); untrusted pieces (what a person typed) are
# tokenized as plain text, so typing "<end_of_turn>" cannot forge a turn boundary.
PromptPieces = tuple[tuple[str, bool], ...]

# --- requests (host → worker) ---


@dataclass(frozen=True)
class LoadRequest:
    request_id: int
    path: str
    settings: LoadSettings


@dataclass(frozen=True)
class GenerateRequest:
    request_id: int
    prompt: PromptPieces = ()
    prompt_tokens: tuple[int, ...] = ()  # used instead of `prompt` when given
    settings: SamplerSettings = field(default_factory=SamplerSettings)
    capture: bool = True  # fill each StepRecord's stages; off = only the chosen token
    add_bos: bool = True  # prepend BOS when the model asks for it
    forced_tokens: tuple[int, ...] = ()  # take these first instead of sampling ("continue with")
    images: tuple[bytes, ...] = ()  # encoded images, one per core.vision.IMAGE_MARKER in `prompt`


@dataclass(frozen=True)
class ReplayRequest:
    """Recompute the distribution of one past step under other settings."""

    request_id: int
    context_tokens: tuple[int, ...]  # prompt tokens + the tokens generated before the step
    token_id: int  # the token that was chosen at that step (kept as the choice)
    step: int
    settings: SamplerSettings
    n_prompt: int  # how many of context_tokens are prompt; the rest count as generated


@dataclass(frozen=True)
class TokenizeRequest:
    request_id: int
    prompt: PromptPieces
    add_bos: bool = True
    images: tuple[bytes, ...] = ()  # as in GenerateRequest: counted as the image tokens they are


@dataclass(frozen=True)
class RescoreRequest:
    """Score a reply's tokens teacher-forced under the whole prompt and under `ablated` (the
    prompt without one part): "without this part" (engine.rescore)."""

    request_id: int
    prompt: PromptPieces
    ablated: PromptPieces
    reply_tokens: tuple[int, ...]
    add_bos: bool = True


@dataclass(frozen=True)
class EmbedRequest:
    """Unit-length vectors of `texts` from the embedding GGUF at `model_path`, opened beside the
    chat model (and kept open for the next request): semantic retrieval (engine.embedding)."""

    request_id: int
    model_path: str
    texts: tuple[str, ...]


@dataclass(frozen=True)
class CancelRequest:
    request_id: int = 0


@dataclass(frozen=True)
class UnloadRequest:
    request_id: int = 0


@dataclass(frozen=True)
class ShutdownRequest:
    request_id: int = 0


# --- events (worker → host) ---


@dataclass(frozen=True)
class Loaded:
    request_id: int
    info: ModelInfo


@dataclass(frozen=True)
class Step:
    request_id: int
    record: StepRecord


@dataclass(frozen=True)
class Steps:
    """Several consecutive Steps in one message (the wire form only: the host hands them on as
    single `Step` events). Each message wakes the host's threads, and on a machine whose cores
    all run llama.cpp every wake-up stalls a decode, so the worker sends the steps of ~40 ms at
    a time; the first step of a reply always goes at once."""

    request_id: int
    records: tuple[StepRecord, ...]


@dataclass(frozen=True)
class Done:
    request_id: int
    result: GenerationDone
    prompt_tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class Replayed:
    request_id: int
    record: StepRecord


@dataclass(frozen=True)
class Tokenized:
    request_id: int
    tokens: tuple[int, ...]
    pieces: tuple[str, ...]


@dataclass(frozen=True)
class Rescored:
    request_id: int
    full: ReplyScores  # the reply under the whole prompt
    ablated: ReplyScores  # the same tokens under the prompt without the part


@dataclass(frozen=True)
class Embedded:
    request_id: int
    model: str  # the embedding model's file name
    dim: int
    vectors: bytes  # float32, len(texts) rows of `dim`, each of unit length (zero: no text)


@dataclass(frozen=True)
class Unloaded:
    request_id: int


@dataclass(frozen=True)
class EngineError:
    """A request failed; the worker is still alive and usable."""

    request_id: int
    kind: str  # "invalid_model", "load_failed", "bad_request", "context_overflow", "internal",
    # or "engine_log" (from the host: no safe log file, so no worker started)
    message: str


@dataclass(frozen=True)
class Crashed:
    """The worker process is gone. Emitted by the host, never by the worker."""

    request_id: int
    exit_code: int | None
    reason: str  # exit status or signal, in words
    telling_line: str  # the most telling line of the worker's log
    log_path: str


EngineEvent = (Loaded | Step | Done | Replayed | Tokenized | Unloaded | EngineError | Crashed
               | Rescored | Embedded)
