"""The attachments of an imported conversation checked field by field (`import_check` runs this
beside the messages): each message's images (`"images": [{"name", "data"}]`, the bytes in
base64) and the conversation's documents (`"attachments": [{"name", "kind", "size", "added",
"pages": [{"page", "text"}]}]`, the text as it was extracted; chunks are made again on import).
Problems are collected as "path: what is wrong" like every other field. Pure.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from desktop.core.conversations.images import StoredImage
from desktop.core.conversations.import_fields import MAX_NAME, FieldChecker, is_int, shown
from desktop.core.documents.extract import MAX_TEXT_CHARS, Document, Page
from desktop.core.vision import MAX_IMAGE_BYTES, check_image

MAX_IMAGES = 32  # per message
MAX_DOCUMENTS = 200  # per conversation
MAX_PAGES = 100_000  # per document
DOCUMENT_KINDS = ("PDF", "DOCX", "TEXT")


def is_image(data: bytes) -> bool:
    """Whether the bytes begin as a PNG, a JPEG or a WebP (RIFF....WEBP) does."""
    return data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")) or (
        data.startswith(b"RIFF") and data[8:12] == b"WEBP"
    )


class AttachmentChecker(FieldChecker):
    def images(self, raw: Any, path: str) -> tuple[StoredImage, ...]:
        """A message's images, decoded; () and problems listed when anything is wrong."""
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.expected(path, "a list of images", raw)
            return ()
        if len(raw) > MAX_IMAGES:
            self.bad(path, f"{len(raw):,} images, more than {MAX_IMAGES} on one message")
            return ()
        before = self.total
        images = [self.image(item, f"{path}[{i}]") for i, item in enumerate(raw)]
        if self.total != before:
            return ()
        return tuple(im for im in images if im is not None)

    def image(self, item: Any, path: str) -> StoredImage | None:
        if not isinstance(item, dict):
            self.expected(path, "an object with a name and base64 data", item)
            return None
        name = self.text(item, "name", path, MAX_NAME, required=True)
        data = item.get("data")
        if type(data) is not str:
            self.expected(f"{path}.data", "the image's bytes in base64", data)
            return None
        if len(data) // 4 * 3 > MAX_IMAGE_BYTES + 3:  # before decoding anything that large
            self.bad(f"{path}.data", f"an image larger than {MAX_IMAGE_BYTES >> 20} MB")
            return None
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            self.bad(f"{path}.data", f"not base64 ({shown(data)})")
            return None
        if not name:
            return None
        why = check_image(name, raw)
        if why:
            self.bad(path, why)
            return None
        if not is_image(raw):
            self.bad(
                f"{path}.data",
                f"'{name}' is not a PNG, JPEG or WebP image (its first bytes say otherwise)",
            )
            return None
        return StoredImage(name, raw)

    def documents(self, raw: Any, path: str) -> tuple[tuple[Document, float | None], ...]:
        """The conversation's documents with the time each was attached (None: unknown)."""
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.expected(path, "a list of documents", raw)
            return ()
        if len(raw) > MAX_DOCUMENTS:
            self.bad(path, f"{len(raw):,} documents, more than {MAX_DOCUMENTS}")
            return ()
        found = [self.document(item, f"{path}[{i}]") for i, item in enumerate(raw)]
        return tuple(d for d in found if d is not None)

    def document(self, item: Any, path: str) -> tuple[Document, float | None] | None:
        if not isinstance(item, dict):
            self.expected(path, "an object", item)
            return None
        before = self.total
        name = self.text(item, "name", path, MAX_NAME, required=True)
        kind = item.get("kind", "TEXT")
        if kind not in DOCUMENT_KINDS:
            self.expected(f"{path}.kind", f"one of {', '.join(DOCUMENT_KINDS)}", kind)
        size = item.get("size", 0)
        if not (is_int(size) and size >= 0):
            self.expected(f"{path}.size", "a size in bytes (a whole number ≥ 0)", size)
        added = self.time(item, "added", path, 0.0) if item.get("added") is not None else None
        pages = self.pages(item.get("pages"), f"{path}.pages")
        if self.total != before:
            return None
        if not name.strip():
            self.bad(f"{path}.name", "empty")
            return None
        return Document(name, str(kind), int(size), pages), added

    def pages(self, raw: Any, path: str) -> tuple[Page, ...]:
        if not isinstance(raw, list):
            self.expected(path, "a list of pages", "nothing" if raw is None else raw)
            return ()
        if len(raw) > MAX_PAGES:
            self.bad(path, f"{len(raw):,} pages, more than {MAX_PAGES:,}")
            return ()
        pages: list[Page] = []
        chars = 0
        for i, p in enumerate(raw):
            where = f"{path}[{i}]"
            if not isinstance(p, dict):
                self.expected(where, "an object with a page number and its text", p)
                continue
            number = p.get("page", 0)
            if not (is_int(number) and 0 <= number < 2**31):
                self.expected(f"{where}.page", "a page number (a whole number ≥ 0)", number)
                continue
            text = self.text(p, "text", where, MAX_TEXT_CHARS, required=True)
            chars += len(text)
            pages.append(Page(int(number), text))
        if chars > MAX_TEXT_CHARS:
            self.bad(path, f"{chars:,} characters of text, more than {MAX_TEXT_CHARS:,}")
        return tuple(pages)
