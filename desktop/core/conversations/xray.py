"""The X-ray of a conversation: what each turn's prompt was made of, as it was really sent.

A model keeps nothing between replies: every turn the app sends the whole text again — system
prompt, custom instructions, every earlier turn, laid into the template's markup. The X-ray
says, for the prompt behind each stored reply, where each stretch of it came from and how many
tokens the engine made of it, and what changed from the turn before (new, dropped by the
overflow policy, reused from the KV cache).

Three steps, all pure, each in its own module; this one gathers them under one name
(`from desktop.core.conversations import xray as X`):

* `xray_labels` — `label_pieces` (when the prompt is rendered): each (text, trusted) piece →
  `PieceLabel`s, by finding message text in the messages that were sent.
* `xray_record` — `make_record` (when the reply is stored): labels + the engine's tokens per
  piece (`Usage.piece_tokens`) + the reuse and prefill time → a JSON dict kept in the reply's
  meta under `"xray"`. Message text is stored as a reference into the message it came from, so
  a long conversation does not store its history again with every reply. `read_record` /
  `branch_xray` (when the X-ray is shown): the records of a branch read back into `TurnXray`s;
  `diff` compares two of them. Replies stored before the X-ray existed read "not recorded".
* `xray_words` — the same in words for people (`part_name`, `describe`, …).

The engine tokenizes piece by piece and joins the results, so per-piece counts add up to the
prompt's token count exactly; when one piece holds two sources (the system prompt and the
instructions share the system message) its tokens are shared out by characters and marked
inexact. Runs on the database thread (records, reading) and any thread (values).
"""

from __future__ import annotations

from desktop.core.conversations.xray_labels import (
    CATEGORIES,
    DOCUMENT,
    HISTORY,
    INSTRUCTIONS,
    NEW,
    SO_FAR,
    SYSTEM,
    TEMPLATE,
    DocRef,
    PieceLabel,
    Pieces,
    SentMessage,
    Source,
    label_pieces,
    message_sources,
    sent_messages,
    system_sources,
    turn_numbers,
)
from desktop.core.conversations.xray_record import (
    RECORD_VERSION,
    ConversationXray,
    NextPrompt,
    PromptPart,
    TurnDiff,
    TurnXray,
    branch_xray,
    diff,
    make_record,
    next_prompt,
    read_record,
)
from desktop.core.conversations.xray_words import (
    KIND_WORDS,
    NOT_RECORDED,
    describe,
    document_lines,
    document_name,
    part_name,
    part_rows,
    score_words,
)

__all__ = [
    "CATEGORIES", "DOCUMENT", "HISTORY", "INSTRUCTIONS", "KIND_WORDS", "NEW", "NOT_RECORDED",
    "RECORD_VERSION", "SO_FAR", "SYSTEM", "TEMPLATE", "ConversationXray", "DocRef",
    "NextPrompt", "PieceLabel", "Pieces", "PromptPart", "SentMessage", "Source", "TurnDiff",
    "TurnXray", "branch_xray", "describe", "diff", "document_lines", "document_name",
    "label_pieces", "make_record", "message_sources", "next_prompt", "part_name", "part_rows",
    "read_record", "score_words", "sent_messages", "system_sources", "turn_numbers",
]
