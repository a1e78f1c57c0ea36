"""What the engine reports about each generated token, and about a finished generation.

These frozen dataclasses cross the process boundary (pickled over the engine pipe), feed the chat
text, the chart and the timeline alike, and print as JSON lines from `openlid generate --jsonl`.
Probabilities are computed once, in the engine worker; nothing downstream recomputes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from desktop.core.drafting import DraftCounts


@dataclass(frozen=True)
class StageView:
    """One stage of the sampler chain at one step."""

    name: str
    kept: int  # candidates that survive this stage
    mass: float  # their total probability under the raw softmax
    ids: tuple[int, ...] = ()  # top-N survivors, most probable first
    probs: tuple[float, ...] = ()  # their probability after this stage (renormalised)

    def prob_of(self, token_id: int) -> float | None:
        """Probability of a token in this stage's top-N, or None when it is not listed."""
        try:
            return self.probs[self.ids.index(token_id)]
        except ValueError:
            return None


@dataclass(frozen=True)
class StepRecord:
    """One generated token and the distribution it was drawn from, stage by stage."""

    step: int  # 0-based index of the generated token
    token_id: int
    text: str  # this token's text as it joins the output (may be "" mid UTF-8 sequence)
    piece: str  # the token's own piece, bytes shown as \\xNN when not valid UTF-8
    prob: float  # chosen token's probability in the final distribution it was drawn from
    raw_prob: float  # chosen token's probability in the raw softmax
    raw_rank: int  # 1 = the most probable token of the raw softmax
    entropy_raw: float  # bits
    entropy_final: float  # bits
    stages: tuple[StageView, ...]  # chain order; the first is "raw"
    pieces: dict[int, str] = field(default_factory=dict)  # text of every id listed in stages
    n_vocab: int = 0
    position: int = 0  # position of this token in the context window
    sample_ms: float = 0.0  # time spent in sampling and capture
    decode_ms: float = 0.0  # time of the decode that produced these logits
    replayed: bool = False  # produced by replay(): the token is the original one, forced
    # The draft's proposal for this position (its text is in `pieces`), -1 when none was made.
    # The token is always the model's own draw; a proposal equal to it was accepted.
    draft_token: int = -1

    @property
    def accepted(self) -> bool:
        """The draft proposed this very token, so it came out of the draft's batch."""
        return self.draft_token >= 0 and self.draft_token == self.token_id

    def stage(self, name: str) -> StageView | None:
        for s in self.stages:
            if s.name == name:
                return s
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "token_id": self.token_id,
            "text": self.text,
            "piece": self.piece,
            "prob": self.prob,
            "raw_prob": self.raw_prob,
            "raw_rank": self.raw_rank,
            "entropy_raw": self.entropy_raw,
            "entropy_final": self.entropy_final,
            "position": self.position,
            "sample_ms": round(self.sample_ms, 4),
            "decode_ms": round(self.decode_ms, 4),
            **({"draft_token": self.draft_token,
                "draft_piece": self.pieces.get(self.draft_token, "")}
               if self.draft_token >= 0 else {}),
            "stages": [
                {
                    "name": s.name,
                    "kept": s.kept,
                    "mass": s.mass,
                    "top": [
                        {"id": i, "text": self.pieces.get(i, ""), "p": p}
                        for i, p in zip(s.ids, s.probs)
                    ],
                }
                for s in self.stages
            ],
        }


def step_from_json(data: dict[str, Any]) -> StepRecord:
    """The StepRecord that `StepRecord.to_json` wrote (conversations store steps this way).

    `pieces` is rebuilt from the stages' top lists (and the draft's piece); `n_vocab` and
    `replayed` are read when the writer added them (to_json leaves them out), the draft's
    proposal when there was one (records older than drafting have none).
    """
    stages: list[StageView] = []
    pieces: dict[int, str] = {}
    for s in data.get("stages", ()):
        top = s.get("top", ())
        for t in top:
            pieces.setdefault(int(t["id"]), str(t.get("text", "")))
        stages.append(StageView(name=str(s["name"]), kept=int(s["kept"]), mass=float(s["mass"]),
                                ids=tuple(int(t["id"]) for t in top),
                                probs=tuple(float(t["p"]) for t in top)))
    draft = int(data.get("draft_token", -1))
    if draft >= 0:
        pieces.setdefault(draft, str(data.get("draft_piece", "")))
    return StepRecord(
        step=int(data["step"]), token_id=int(data["token_id"]), text=str(data["text"]),
        piece=str(data["piece"]), prob=float(data["prob"]), raw_prob=float(data["raw_prob"]),
        raw_rank=int(data["raw_rank"]), entropy_raw=float(data["entropy_raw"]),
        entropy_final=float(data["entropy_final"]), stages=tuple(stages), pieces=pieces,
        n_vocab=int(data.get("n_vocab", 0)), position=int(data.get("position", 0)),
        sample_ms=float(data.get("sample_ms", 0.0)), decode_ms=float(data.get("decode_ms", 0.0)),
        replayed=bool(data.get("replayed", False)), draft_token=max(-1, draft))


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # prompt tokens whose KV cache was reused
    # Tokens per prompt piece as the engine counted them: the tokens it added itself (BOS)
    # first, then one count per (text, trusted) piece sent; () when not counted (token ids sent).
    piece_tokens: tuple[int, ...] = ()

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Timings:
    prompt_ms: float  # prompt processing (time to first token minus the first sampling)
    first_token_ms: float  # from request to the first token chosen
    generate_ms: float  # from the first to the last token
    tokens_per_second: float


@dataclass(frozen=True)
class GenerationDone:
    finish_reason: str  # "stop" (EOS/EOT or stop string), "length", "cancelled", "context"
    text: str  # the whole completion, with a matched stop string removed
    usage: Usage
    timings: Timings
    stop_string: str | None = None
    draft: DraftCounts | None = None  # what speculative decoding did, when it was on

    def to_json(self) -> dict[str, Any]:
        return {
            "finish_reason": self.finish_reason,
            "text": self.text,
            "stop_string": self.stop_string,
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
                "cached_tokens": self.usage.cached_tokens,
                "total_tokens": self.usage.total_tokens,
            },
            "timings": {
                "prompt_ms": round(self.timings.prompt_ms, 3),
                "first_token_ms": round(self.timings.first_token_ms, 3),
                "generate_ms": round(self.timings.generate_ms, 3),
                "tokens_per_second": round(self.timings.tokens_per_second, 3),
            },
            **({"draft": self.draft.to_json()} if self.draft is not None else {}),
        }


@dataclass(frozen=True)
class ReplyScores:
    """A reply's tokens scored teacher-forced under one prompt: what the engine answers a
    re-score (`core.conversations.ablation` compares two of them)."""

    token_ids: tuple[int, ...]
    pieces: tuple[str, ...]  # each token's text as shown
    logprobs: tuple[float, ...]  # natural log of each token's raw probability
    top_ids: tuple[int, ...] = ()  # the raw distribution's most likely token at each position
    top_pieces: tuple[str, ...] = ()
    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens the KV cache already held
    ms: float = 0.0
