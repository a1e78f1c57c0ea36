"""The engine-crash banner's one plain sentence: what happened and what to do, in words a person
who never saw a signal name can act on. The engine's own words ("was killed (SIGKILL) …, Last
engine message: 'sched_reserve …'") stay behind the banner's "Details" link. GUI thread (pure
string work; no Qt).
"""

from __future__ import annotations

import re

__all__ = ["plain_crash"]

_KEEP = "Your conversation is kept"
# Most specific first: the engine's words name the cause; the sentence says what to do about it.
_CAUSES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), sentence) for pattern, sentence in (
        (r"CUDA error|Metal.*error|Vulkan.*error|\bGPU\b",
         "The model stopped after a graphics-card error. {keep}: press Reload, or set GPU "
         "layers lower in the Load panel first."),
        (r"out of memory|failed to allocate|cannot allocate|SIGKILL|sched_reserve",
         "The model stopped because this computer ran out of memory. {keep}: press Reload, or "
         "lower the context length in the Load panel, or load a smaller model."),
        (r"SIGILL|illegal instruction",
         "The model could not run on this processor: this build of llama.cpp needs "
         "instructions it lacks. {keep}; a build for older processors is needed."),
        (r"SIGBUS|shrunk",
         "The model stopped because its file changed on disk while it was in use. {keep}: "
         "press Reload to read it again."),
        (r"log file",
         "The model could not start because its log file was replaced by something that is not "
         "Openlid's. {keep}: see Details, remove that file, then press Reload."),
    ))
_OTHER = "The model stopped unexpectedly. {keep}: press Reload to start it again."


def plain_crash(engine_words: str) -> str:
    """One sentence for the banner from the engine's description of a crash."""
    for pattern, sentence in _CAUSES:
        if pattern.search(engine_words):
            return sentence.format(keep=_KEEP)
    return _OTHER.format(keep=_KEEP)
