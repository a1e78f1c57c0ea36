"""Drafters for speculative decoding: a second GGUF model with the model's vocabulary, or n-gram
lookup in the context (core.drafting). Each proposes the next few tokens; engine.speculative has
the model check them.

Runs in the engine worker process (its main thread), next to the LlamaSession it drafts for.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import llama_cpp as L
import numpy as np
import numpy.typing as npt

from desktop.core.drafting import DRAFT_MODEL, DRAFT_NGRAM, ngram_draft, vocab_mismatch
from desktop.core.model_info import LoadSettings
from desktop.engine.llama_session import LlamaSession
from desktop.engine.session import ContextOverflow, LoadFailed, Session


class Drafter(Protocol):
    kind: str
    n_draft: int  # tokens proposed per pass, at most
    words: str  # what drafts, for ModelInfo.draft

    def propose(self, context: list[int], n: int) -> list[int]:
        """Up to `n` tokens likely to follow `context` (all the tokens so far)."""
        ...

    def close(self) -> None: ...


class NgramDrafter:
    """Proposes what followed the last earlier occurrence of the context's last few tokens."""

    kind = DRAFT_NGRAM

    def __init__(self, n_draft: int) -> None:
        self.n_draft = n_draft
        self.words = f"n-gram drafting from the context, up to {n_draft} tokens a pass"

    def propose(self, context: list[int], n: int) -> list[int]:
        return ngram_draft(context, n)

    def close(self) -> None:
        pass


class ModelDrafter:
    """A smaller model of the same vocabulary, drawing greedily; its own KV cache follows the
    context with the same prefix reuse as the model's."""

    kind = DRAFT_MODEL

    def __init__(self, session: LlamaSession, n_draft: int, n_vocab_model: int,
                 p_min: float) -> None:
        self.session = session
        self.p_min = p_min
        self.n_draft = n_draft
        self.n_vocab_model = n_vocab_model  # a padded draft vocabulary may hold ids beyond it
        info = session.info
        self.words = f"draft model {info.name} ({info.quant}), up to {n_draft} tokens a pass"

    def propose(self, context: list[int], n: int) -> list[int]:
        s = self.session
        n = min(n, s.n_ctx - len(context) - 1)
        if n <= 0:
            return []
        try:
            s.prepare(context)
        except ContextOverflow:
            return []
        out: list[int] = []
        for i in range(n):
            logits = s.logits()
            token = int(np.argmax(logits))
            if token >= self.n_vocab_model or (self.p_min > 0 and _top_p(logits, token)
                                                < self.p_min):
                break
            out.append(token)
            if i == n - 1 or s.is_end_of_generation(token):
                break
            s.decode([token])
        return out

    def close(self) -> None:
        self.session.close()


def _top_p(logits: npt.NDArray[np.float32], token: int) -> float:
    """The softmax probability of the best token (`token`)."""
    return 1.0 / float(np.exp((logits - logits[token]).astype(np.float64)).sum())


def load_drafter(settings: LoadSettings, model: Session, log_path: str) -> Drafter:
    """The drafter `settings` ask for, for `model` (its ModelInfo then names the drafting);
    LoadFailed says in words why not."""
    if not isinstance(model, LlamaSession):
        raise LoadFailed("speculative decoding (a draft) needs a GGUF model that llama.cpp "
                         "runs; turn the draft off for this model")
    drafter = _drafter(settings, model, log_path)
    model.info = dataclasses.replace(model.info, draft=drafter.words)
    return drafter


def _drafter(settings: LoadSettings, model: LlamaSession, log_path: str) -> Drafter:
    if bool(L.llama_model_is_recurrent(model.model)) or bool(
            L.llama_model_is_hybrid(model.model)):
        raise LoadFailed("speculative decoding needs a model whose cache can drop rejected "
                         "tokens; this model's recurrent state cannot: turn the draft off")
    if settings.draft == DRAFT_NGRAM:
        return NgramDrafter(settings.n_draft)
    from desktop.core.gguf_file.check import GgufProblem, check_gguf

    path = settings.draft_model
    try:
        check_gguf(path)
    except GgufProblem as exc:
        raise LoadFailed(f"the draft model: {exc}") from None
    own = settings.replace(draft="none", draft_model="", n_ctx=model.n_ctx)
    try:
        draft = LlamaSession(path, own, log_path)
    except LoadFailed as exc:
        raise LoadFailed(f"the draft model: {exc}") from None
    why = vocab_mismatch(model.n_vocab, draft.n_vocab,
                         lambda t: model.piece_bytes(t, special=True),
                         lambda t: draft.piece_bytes(t, special=True))
    if why is not None:
        draft.close()
        raise LoadFailed(f"the draft model cannot draft for this model: {why}")
    return ModelDrafter(draft, settings.n_draft, model.n_vocab, settings.draft_p_min)
