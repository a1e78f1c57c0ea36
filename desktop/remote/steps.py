"""StepRecords from what an OpenAI-compatible endpoint streams: one per reported token.

An endpoint reports the model's log-probabilities (llama-server, llama-cpp-python and vLLM in
its default `raw_logprobs` mode all report the distribution before sampling), never what its
sampler chain did, so every record's only stage is "raw". Token ids are unknown over this API:
each distinct token text gets a negative synthetic id (stable within one generation) and its
text goes into `pieces`. A chunk without logprobs still becomes a record, without stages.

Another Openlid (`openlid serve`, asked for `openlid_steps`) sends each token's whole StepRecord
as a row in the chunk (`openlid_step`): that record is used as sent, with every stage, real
token ids and pieces. Once a stream has carried rows, its chunks without one add only text (the
finish chunk, text held back for a stop string); a stream without rows takes the logprobs path.

Pure (no I/O); runs on the thread that streams, one `StepBuilder` per generation.
"""

from __future__ import annotations

import codecs
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from desktop.core.sampling import STAGE_RAW
from desktop.core.steps import (
    GenerationDone,
    StageView,
    StepRecord,
    Timings,
    Usage,
    step_from_json,
)
from desktop.remote.http import RemoteError

__all__ = ["StepBuilder", "choice_records", "choice_text", "generation_done", "row_record",
           "step_records"]


def _entropy_bits_lower_bound(probs: Sequence[float]) -> float:
    """Entropy of the listed candidates plus the unlisted mass taken as one outcome: merging
    outcomes never raises entropy, so this is a lower bound of the true raw entropy."""
    rest = max(0.0, 1.0 - sum(probs))
    return -sum(p * math.log2(p) for p in (*probs, rest) if p > 0)


class StepBuilder:
    """Turns reported tokens into StepRecords: synthetic ids, text decoding, raw stage."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.step = 0
        self.rows = False  # this stream carries Openlid's StepRecord rows

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


def row_record(row: Any) -> StepRecord:
    """The StepRecord of one `openlid_step` row; RemoteError when the row is damaged."""
    try:
        if not isinstance(row, dict):
            raise TypeError("not an object")
        record = step_from_json(row)
    except (KeyError, TypeError, ValueError) as exc:
        raise RemoteError(f"the endpoint sent a step Openlid cannot read ({exc})",
                          kind="protocol") from exc
    if record.token_id not in record.pieces:  # the chosen token need not be listed in a stage
        record.pieces[record.token_id] = record.piece
    return record


def choice_records(tokens: StepBuilder, choice: Mapping[str, Any], chat: bool,
                   elapsed_ms: float) -> Iterator[StepRecord]:
    """The records of one streamed choice: its Openlid row when it has one, else (in a stream
    without rows) what its logprobs say."""
    row = choice.get("openlid_step")
    if row is not None:
        record = row_record(row)
        tokens.rows = True
        tokens.step = record.step + 1
        yield record
    elif not tokens.rows:
        yield from step_records(tokens, choice, chat, elapsed_ms)


def step_records(tokens: StepBuilder, choice: Mapping[str, Any], chat: bool,
                 elapsed_ms: float) -> Iterator[StepRecord]:
    """The records of one streamed choice: a chat `logprobs.content` list (which llama-server
    sends for a text completion too) or a completion's parallel `tokens`/`token_logprobs`/
    `top_logprobs` lists (OpenAI's legacy form, llama-cpp-python's)."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    if chat or content is not None:
        for entry in content or ():
            top = [(t["token"], float(t["logprob"])) for t in entry.get("top_logprobs") or ()]
            yield tokens.record(str(entry["token"]), float(entry["logprob"]), top,
                                entry.get("bytes"), elapsed_ms)
        if not content and choice_text(choice, chat):
            # No logprobs for this chunk: one record for its text, without stages.
            yield tokens.record(choice_text(choice, chat), None, (), None, elapsed_ms)
        return
    if not logprobs:
        if choice_text(choice, chat):
            yield tokens.record(choice_text(choice, chat), None, (), None, elapsed_ms)
        return
    tops = logprobs.get("top_logprobs") or []
    for i, token in enumerate(logprobs.get("tokens") or ()):
        lp = (logprobs.get("token_logprobs") or [])[i]
        top = tops[i] if i < len(tops) and tops[i] else {}
        yield tokens.record(str(token), None if lp is None else float(lp),
                            [(t, float(v)) for t, v in top.items()], None, elapsed_ms)


def choice_text(choice: Mapping[str, Any], chat: bool) -> str:
    """The text a streamed choice adds (a chat delta's content or a completion's text)."""
    if chat:
        return str((choice.get("delta") or {}).get("content") or "")
    return str(choice.get("text") or "")


def generation_done(texts: list[str], finish: str, usage: Mapping[str, Any] | None,
                    n_tokens: int, started: float, first_at: float,
                    last_at: float) -> GenerationDone:
    """The stream's end: its text, usage (the endpoint's, else counted) and timings taken from
    `perf_counter` readings (start, first token, last token)."""
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
