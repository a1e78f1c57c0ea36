"""The grammar checked over the whole vocabulary by the tokens' prefixes: llama.cpp's verdicts
for every token, for a fraction of its cost where the grammar allows little.

Runs in the engine worker process (a part of the grammar's step, `engine.step_grammar`).

llama.cpp's grammar sampler judges a token by its text (`token_to_piece`, special tokens by
name), code point by code point, and lets a token through when some path of the grammar
consumes all of it (a partial match is allowed: the rest comes later). So acceptance is closed
under prefixes: if a token is allowed, so is every token whose text is a prefix of its text
(the same path consumed that prefix); if a token is rejected, so is every token that begins
with its text. Checking the whole vocabulary (262,144 tokens, ~36 ms) where a JSON grammar
allows a few tokens (after `{`, a key's quote, a colon) then reduces to checking the tokens
without a shorter token as prefix, and the tokens under each allowed one, level by level.

Where that reasoning does not hold, tokens are checked directly, as llama.cpp would: the
end-of-generation tokens (allowed when the grammar may end, whatever their text), tokens whose
text is empty, starts with a NUL or is not whole UTF-8 (a byte token completes the previous
token's partial character, or leaves one open), and every token of a grammar that names tokens
(`<[id]>`, `<name>`, `!<…>`: judged by id, not by text) — there the tree is not used at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import llama_cpp as L
import numpy as np
import numpy.typing as npt

from desktop.engine.step_shortcuts import Candidates

__all__ = ["PrefixTree", "PrefixTrees", "prunable"]

Piece = Callable[[int], bytes]  # a token's bytes as llama.cpp's grammar reads them


def prunable(grammar_text: str) -> bool:
    """Whether a grammar's verdicts depend on the tokens' text alone: no token references
    (`<[id]>`, `<name>`, `!<…>`: llama.cpp's syntax for a token by id or by name). A '<' inside
    a string literal or a character class is text (a Hermes tool call's `"<tool_call>"`), as
    in a comment; the grammar has parsed by now, so literals and classes are closed."""
    text, i, n = grammar_text, 0, len(grammar_text)
    while i < n:
        c = text[i]
        if c in "\"[":
            close = "\"" if c == "\"" else "]"
            i += 1
            while i < n and text[i] != close:
                i += 2 if text[i] == "\\" else 1
        elif c == "#":
            while i < n and text[i] not in "\r\n":
                i += 1
        elif c == "<":
            return False
        i += 1
    return True


@dataclass(frozen=True)
class PrefixTree:
    """The vocabulary by prefix: `levels[0]` holds the tokens checked directly (no token's text
    is a proper prefix of theirs, or the prefix rule does not apply to them), `levels[d]` the
    tokens whose longest proper prefix that is a token (`parent`) lies at level d - 1."""

    n_vocab: int
    parent: npt.NDArray[np.int32]  # -1 at level 0
    levels: tuple[npt.NDArray[np.int32], ...]  # ids ascending within a level

    @classmethod
    def build(cls, piece: Piece, is_eog: Callable[[int], bool], n_vocab: int) -> PrefixTree:
        """Read every token's text (`piece`: its bytes as llama.cpp's grammar reads them,
        special tokens by name) and link each to its longest proper prefix that is a token."""
        texts: list[str | None] = [None] * n_vocab
        for token in range(n_vocab):
            raw = piece(token)
            if not raw or raw[0] == 0 or is_eog(token):
                continue
            try:
                texts[token] = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
        by_text: dict[str, int] = {}
        for token, text in enumerate(texts):
            if text is not None:
                by_text.setdefault(text, token)
        parent = np.full(n_vocab, -1, dtype=np.int32)
        depth = np.zeros(n_vocab, dtype=np.int32)
        # Shorter texts first, so a parent's depth is known before its children's.
        for token in sorted((t for t, x in enumerate(texts) if x is not None),
                            key=lambda t: len(texts[t] or "")):
            text = texts[token] or ""
            for cut in range(len(text) - 1, 0, -1):
                found = by_text.get(text[:cut])
                if found is not None:
                    parent[token] = found
                    depth[token] = depth[found] + 1
                    break
        order = np.argsort(depth, kind="stable").astype(np.int32)  # ids ascend within a level
        bounds = np.searchsorted(depth[order], np.arange(int(depth.max()) + 2))
        levels = tuple(order[bounds[d]:bounds[d + 1]] for d in range(len(bounds) - 1))
        return cls(n_vocab, parent, levels)

    def allowed(self, grammar: Any, scratch: Candidates) -> npt.NDArray[np.bool_] | None:
        """Which tokens `grammar` (a llama.cpp grammar sampler, in its current state) lets come
        next: llama.cpp's own verdict for every token checked, and a token under a rejected
        one rejected with it. None when most of the first level is allowed (inside a JSON
        string): then nearly every token must be checked anyway, and llama.cpp's one pass over
        the vocabulary is cheaper than one per level. `scratch`: room for the vocabulary."""
        ok = np.zeros(self.n_vocab, dtype=bool)
        for depth, ids in enumerate(self.levels):
            if depth:
                ids = ids[ok[self.parent[ids]]]
            if not len(ids):
                break  # nothing allowed at this level: nothing below it is
            scratch.fill_ids(ids, np.zeros(len(ids), dtype=np.float32))
            L.llama_sampler_apply(grammar, scratch.ref)
            passed = scratch.view()["logit"] > -np.inf
            if not depth and 2 * int(np.count_nonzero(passed)) > len(ids):
                return None
            ok[ids] = passed
        return ok


class PrefixTrees:
    """One loaded model's prefix tree, built for its first structured reply (~0.7 s for Gemma's
    262,144 tokens) and kept with the model (the session holds this, with its `piece` and
    `is_eog`), with a candidate array to check its levels in."""

    def __init__(self, piece: Piece, is_eog: Callable[[int], bool]) -> None:
        self._piece, self._is_eog = piece, is_eog
        self._tree: PrefixTree | None = None
        self._scratch: Candidates | None = None

    def prepare(self, n_vocab: int) -> tuple[PrefixTree, Candidates]:
        """The tree, built now unless it is built (a structured reply's sampler does this before
        its first token: the first step of a JSON reply checks the whole vocabulary anyway),
        and the candidate array its levels are checked in."""
        if self._tree is None or self._scratch is None or self._tree.n_vocab != n_vocab:
            self._tree = PrefixTree.build(self._piece, self._is_eog, n_vocab)
            self._scratch = Candidates(n_vocab)
        return self._tree, self._scratch

    def apply(self, grammar: Any, cand: Candidates) -> None:
        """llama.cpp's grammar sampler applied to `cand`, which holds the whole vocabulary in
        id order: the tokens the grammar forbids set to -inf, nothing else changed."""
        n = len(cand.buf)
        view = cand.view()
        if len(view) != n or not cand.at_start():
            L.llama_sampler_apply(grammar, cand.ref)
            return
        tree, scratch = self.prepare(n)
        ok = tree.allowed(grammar, scratch)
        if ok is None:
            L.llama_sampler_apply(grammar, cand.ref)
        else:
            view["logit"][~ok] = -np.inf
