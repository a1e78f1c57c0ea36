"""A file attached to a chat read into text: plain text, Markdown and code as they are, PDF
through pypdf (page by page), Word documents (.docx) through python-docx.

`read_document(path)` returns a `Document` (its pages' text) or raises `DocumentError`, whose
`str()` says in plain words why the file cannot be used: missing, too large, binary, not UTF-8,
a damaged or password-protected PDF, a scanned PDF without a text layer, a legacy .doc, empty.
Nothing here changes the file. Pure; any thread (a big PDF takes a while: not the GUI thread).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

MAX_FILE_BYTES = 32 * 1024**2  # a bigger attachment is almost certainly not prose to read
MAX_TEXT_CHARS = 4_000_000  # ~1M tokens: far past any context window, still searchable
PDF, DOCX, TEXT = "pdf", "docx", "text"
# Formats that look like documents but cannot be read as text here: said by name.
UNSUPPORTED = {
    ".doc": "a legacy Word .doc file (save it as .docx or PDF)",
    ".rtf": "an RTF file (save it as .docx, PDF or plain text)",
    ".odt": "an OpenDocument file (save it as .docx or PDF)",
    ".pages": "a Pages file (export it as PDF or .docx)",
    ".xlsx": "a spreadsheet",
    ".xls": "a spreadsheet",
    ".pptx": "a presentation",
    ".zip": "an archive",
    ".png": "an image",
    ".jpg": "an image",
    ".jpeg": "an image",
    ".gif": "an image",
    ".gguf": "a model file",
}


class DocumentError(Exception):
    """A file that cannot be attached; `str()` names the file and says why."""


@dataclass(frozen=True)
class Page:
    """One page's text; `number` is 1-based for paged formats (PDF) and 0 for the rest."""

    number: int
    text: str


@dataclass(frozen=True)
class Document:
    """An attached file's text: its name (no folders), its kind and its pages."""

    name: str
    kind: str  # PDF, DOCX or TEXT
    size: int  # bytes on disk
    pages: tuple[Page, ...]

    @property
    def text(self) -> str:
        return "\n\n".join(p.text for p in self.pages if p.text)

    @property
    def chars(self) -> int:
        return sum(len(p.text) for p in self.pages)


def _clean(text: str) -> str:
    """Line ends made \\n, NULs and trailing spaces dropped, runs of blank lines cut to one."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    lines = [line.rstrip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out).strip()


def _text(name: str, raw: bytes) -> tuple[Page, ...]:
    if b"\x00" in raw[:8192]:
        raise DocumentError(f"{name} is a binary file, not text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        except UnicodeDecodeError:
            text = ""
        if not text:
            raise DocumentError(
                f"{name} is not UTF-8 text (save it as UTF-8, or attach a PDF or .docx)"
            ) from None
    return (Page(0, _clean(text)),)


def _pdf(name: str, raw: bytes) -> tuple[Page, ...]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            try:  # many PDFs are encrypted with an empty user password (owner rights only)
                opened = reader.decrypt("")
            except (PyPdfError, NotImplementedError, ValueError) as exc:
                raise DocumentError(
                    f"{name} is encrypted in a way that cannot be opened ({exc})"
                ) from None
            if not opened:
                raise DocumentError(
                    f"{name} is password-protected: remove the password (or "
                    "print it to a new PDF) and attach it again"
                )
        pages = tuple(
            Page(i + 1, _clean(page.extract_text() or "")) for i, page in enumerate(reader.pages)
        )
    except DocumentError:
        raise
    except (
        PyPdfError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        AssertionError,
        RecursionError,
        OSError,
        zipfile.BadZipFile,
    ) as exc:
        raise DocumentError(
            f"{name} cannot be read as a PDF (it is damaged or not a PDF: "
            f"{exc or type(exc).__name__})"
        ) from None
    if not pages:
        raise DocumentError(f"{name} is a PDF with no pages")
    if not any(p.text for p in pages):
        raise DocumentError(
            f"{name} has no text layer (scanned pages are images: run OCR on it first)"
        )
    return pages


def _docx(name: str, raw: bytes) -> tuple[Page, ...]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(raw))
        lines = [p.text for p in document.paragraphs]
        for table in document.tables:
            for row in table.rows:
                lines.append(" | ".join(cell.text.strip() for cell in row.cells))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise DocumentError(
            f"{name} cannot be read as a Word document (it is damaged or not "
            f"a .docx: {exc or type(exc).__name__})"
        ) from None
    return (Page(0, _clean("\n".join(lines))),)


def read_document(path: Path | str) -> Document:
    """The text of the file at `path`; DocumentError saying why when it cannot be used."""
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix in UNSUPPORTED:
        raise DocumentError(
            f"{name} is {UNSUPPORTED[suffix]}; Openlid reads text, Markdown, "
            "code, PDF and .docx files"
        )
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise DocumentError(f"{name} is a folder, not a file")
        if size > MAX_FILE_BYTES:
            raise DocumentError(
                f"{name} is too large ({size / 1024**2:,.1f} MiB; at most "
                f"{MAX_FILE_BYTES // 1024**2} MiB)"
            )
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise DocumentError(f"{name} does not exist (moved or deleted?)") from None
    except OSError as exc:
        raise DocumentError(f"{name} cannot be read ({exc.strerror or exc})") from None
    if suffix == ".pdf" or raw.startswith(b"%PDF-"):
        kind, pages = PDF, _pdf(name, raw)
    elif suffix == ".docx":
        kind, pages = DOCX, _docx(name, raw)
    else:
        kind, pages = TEXT, _text(name, raw)
    document = Document(name, kind, size, pages)
    if not document.text.strip():
        raise DocumentError(f"{name} is empty (no text in it)")
    if document.chars > MAX_TEXT_CHARS:
        raise DocumentError(
            f"{name} holds too much text ({document.chars:,} characters; at "
            f"most {MAX_TEXT_CHARS:,})"
        )
    return document
