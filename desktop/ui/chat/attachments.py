"""AttachmentsBar: the files attached to a chat, above the message box. GUI thread; files are
read on a job thread, the stored list on the database thread.

Files come from the Attach… button or are dropped on the bar. Each is read on the bar's own job
thread ("openlid-attachments": `core.documents.extract` — txt, md, code, pdf, docx — so a big PDF
does not freeze the window; the hint says "reading…" meanwhile) and then listed with a Remove
button; a file that cannot be read is not listed, and why is said inline under the list (nothing
else changes). `pending()` is read when the message is sent (the window puts it in the
`PromptContext`); the chat stores the files with the conversation, and the view `clear()`s the
bar once the message is taken.

Once `bind(db)` is called, the bar also lists the documents stored with the conversation shown
(`show_conversation`, `refresh`: read from `DocumentStore` on the database thread), each with a
Remove button that deletes it from the conversation (later messages no longer see it).

"Search by:" chooses how long documents are searched: keywords (BM25, the default) or
meaning, with an embedding GGUF picked from disk (`search_model()`; the window remembers it in
the app settings and hands it to the chat as an embedder, ui.chat.embedder).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.conversations.store import ConversationStore
from desktop.core.documents.chunks import is_short
from desktop.core.documents.extract import Document, DocumentError, read_document
from desktop.core.documents.store import DocumentStore, StoredDocument
from desktop.ui.chat.store_service import StoreService
from desktop.ui.job_service import JobService

FILE_FILTER = (
    "Documents (*.txt *.md *.markdown *.pdf *.docx *.py *.js *.ts *.json *.csv "
    "*.html *.css *.c *.h *.cpp *.rs *.go *.java *.rb *.sh *.toml *.yaml *.yml);;"
    "All files (*)"
)


def _size(n: int) -> str:
    return f"{n / 1024**2:.1f} MB" if n >= 1024**2 else f"{max(1, n // 1024)} KB"


ReadResult = tuple[tuple[Document | None, str], ...]  # per file: the document, or why not


def read_files(paths: tuple[Path, ...]) -> ReadResult:
    """Job thread: each file read, or the sentence saying why it cannot be."""
    out: list[tuple[Document | None, str]] = []
    for path in paths:
        try:
            out.append((read_document(path), ""))
        except DocumentError as exc:
            out.append((None, str(exc)))
    return tuple(out)


KEYWORDS = "keywords (BM25)"
CHOOSE_MODEL = "meaning: choose an embedding model…"
MODEL_FILTER = "GGUF models (*.gguf);;All files (*)"


def stored_documents(store: ConversationStore, conversation_id: int) -> tuple[StoredDocument, ...]:
    """Database thread: the documents stored with a conversation, in the order attached."""
    with DocumentStore(store.path) as docs:
        return tuple(docs.documents(conversation_id))


def remove_stored(store: ConversationStore, document_id: int) -> None:
    """Database thread: delete a stored document (its chunks go with it)."""
    with DocumentStore(store.path) as docs:
        docs.remove(document_id)


class AttachmentsBar(QWidget):
    """The next message's attached files: a list with Remove, errors inline, Attach…."""

    sig_changed = Signal()  # a file added or removed, a stored list read
    sig_read_finished = Signal(object)  # the files of one add_paths read: tuple of problems
    sig_search_model_changed = Signal(str)  # the embedding GGUF chosen ("": keywords, BM25)

    def __init__(self, parent: QWidget | None = None, jobs: JobService | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setAccessibleName("Attached files")
        self._documents: list[Document] = []
        self._rows: list[QWidget] = []
        self._owns_jobs = jobs is None
        self._jobs = jobs or JobService("openlid-attachments", max_threads=1, parent=self)
        self._reading = 0  # files being read on the job thread
        self._db: StoreService | None = None
        self.conversation_id: int | None = None
        self._stored: tuple[StoredDocument, ...] = ()
        self._stored_rows: list[QWidget] = []
        self._serial = 0
        self.attach_button = QPushButton("Attach…")
        self.attach_button.setAccessibleName("Attach files")
        self.attach_button.setToolTip(
            "Attach text, Markdown, code, PDF or Word (.docx) files: "
            "short ones are sent whole, long ones searched for each "
            "message (or drop files here)"
        )
        self.attach_button.clicked.connect(self.choose_files)
        self.hint = QLabel("")
        self.hint.setObjectName("attachmentsHint")
        self.errors = QLabel()
        self.errors.setObjectName("attachmentErrors")
        self.errors.setWordWrap(True)
        self.errors.setStyleSheet("color: #d04040;")
        self.errors.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.errors.setAccessibleName("Attachment errors")
        self.errors.hide()
        self._list = QVBoxLayout()
        self._list.setContentsMargins(0, 0, 0, 0)
        self._list.setSpacing(2)
        self._stored_list = QVBoxLayout()
        self._stored_list.setContentsMargins(0, 0, 0, 0)
        self._stored_list.setSpacing(2)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.attach_button)
        top.addWidget(self.hint, 1)
        self._search_model = ""
        self.search_by = QComboBox()
        self.search_by.setAccessibleName("Search documents by")
        self.search_by.setToolTip(
            "How long documents are searched for each message: by shared words (BM25), or by "
            "meaning with an embedding model (a GGUF run by the engine beside the chat model)"
        )
        self.search_by.activated.connect(self._on_search_chosen)
        # Sized to ~18 characters, not to its longest entry (a model's file name): the chat
        # column must fit beside the docks on a 1280-pixel screen; the list opens full width.
        self.search_by.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.search_by.setMinimumContentsLength(18)
        self.search_by.view().setMinimumWidth(320)
        self._fill_search_by()
        search_label = QLabel("Search by:")
        search_label.setBuddy(self.search_by)
        top.addWidget(search_label)
        top.addWidget(self.search_by)
        self._top = top
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 4, 12, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addLayout(self._stored_list)
        layout.addLayout(self._list)
        layout.addWidget(self.errors)

    # --- how documents are searched ---

    def search_model(self) -> str:
        """The embedding GGUF chosen ("": search by keywords, BM25)."""
        return self._search_model

    def set_search_model(self, path: str) -> None:
        if path == self._search_model:
            return
        self._search_model = path
        self._fill_search_by()
        self.sig_search_model_changed.emit(path)

    def _fill_search_by(self) -> None:
        box = self.search_by
        box.blockSignals(True)
        box.clear()
        box.addItem(KEYWORDS, "")
        if self._search_model:
            box.addItem(f"meaning ({Path(self._search_model).name})", self._search_model)
            box.setItemData(1, self._search_model, Qt.ItemDataRole.ToolTipRole)
        box.addItem(CHOOSE_MODEL, None)
        box.setCurrentIndex(1 if self._search_model else 0)
        box.blockSignals(False)

    def _on_search_chosen(self, index: int) -> None:
        data = self.search_by.itemData(index)
        if data is not None:
            self.set_search_model(str(data))
            return
        path, _ = QFileDialog.getOpenFileName(self, "Choose an embedding model", "", MODEL_FILTER)
        if path and not Path(path).is_file():
            self.errors.setText(
                f"{Path(path).name} is not a file: documents are still searched as before"
            )
            self.errors.show()
            path = ""
        if path:
            self.set_search_model(path)
        self._fill_search_by()  # a cancelled dialog leaves the choice as it was

    # --- files in ---

    def add_button(self, button: QWidget) -> None:
        """Another attach action (the image strip's "Attach image…") beside "Attach…"."""
        self._top.insertWidget(1, button)

    def choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Attach files", "", FILE_FILTER)
        if paths:
            self.add_paths(paths)

    def add_paths(self, paths: Iterable[str | Path]) -> int:
        """Read the files on the job thread, then list each (`sig_read_finished` carries the
        problems, also shown under the list). Returns the job id (0: nothing to read)."""
        files = tuple(Path(p) for p in paths)
        if not files:
            return 0
        self._reading += len(files)
        self._update_hint()
        return self._jobs.submit(
            read_files,
            files,
            on_done=lambda result: self._on_read(len(files), result),
            on_error=lambda exc: self._on_read_failed(files, exc),
        )

    def reading(self) -> bool:
        """Files are still being read: sending now would leave them behind."""
        return self._reading > 0

    def _on_read(self, n: int, result: ReadResult) -> None:
        self._reading = max(0, self._reading - n)
        problems = []
        for document, problem in result:
            if document is None:
                problems.append(problem)
            elif not any(
                d.name == document.name and d.text == document.text for d in self._documents
            ):  # the same file twice: listed once
                self._documents.append(document)
                self._add_row(document)
        self._finish_read(tuple(problems))

    def _on_read_failed(self, files: tuple[Path, ...], exc: Exception) -> None:
        self._reading = max(0, self._reading - len(files))
        names = ", ".join(f.name for f in files)
        self._finish_read((f"{names} could not be read: {exc}",))

    def _finish_read(self, problems: tuple[str, ...]) -> None:
        self.errors.setText("\n".join(problems))
        self.errors.setVisible(bool(problems))
        self._update_hint()
        self.sig_changed.emit()
        self.sig_read_finished.emit(problems)

    def shutdown(self) -> None:
        """cancel → wait for a file being read (the window's closeEvent, or a test)."""
        if self._owns_jobs:
            self._jobs.stop()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)

    # --- the list ---

    def _add_row(self, document: Document) -> None:
        row = QWidget(self)
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        pages = sum(1 for p in document.pages if p.number)
        how = "sent whole" if is_short(document) else "searched per message"
        label = QLabel(
            f"📄 {document.name} · {_size(document.size)}"
            + (f" · {pages} pages" if pages else "")
            + f" · {how}"
        )
        label.setAccessibleName(f"Attached {document.name}")
        remove = QPushButton("Remove")
        remove.setAccessibleName(f"Remove {document.name}")
        remove.clicked.connect(lambda: self.remove(document))
        line.addWidget(label, 1)
        line.addWidget(remove)
        self._list.addWidget(row)
        self._rows.append(row)

    def remove(self, document: Document) -> None:
        index = next((i for i, d in enumerate(self._documents) if d is document), None)
        if index is None:
            return
        del self._documents[index]
        row = self._rows.pop(index)
        self._list.removeWidget(row)
        row.deleteLater()
        self._update_hint()
        self.sig_changed.emit()

    def _update_hint(self) -> None:
        n = len(self._documents)
        words = [f"{n} file{'s' if n != 1 else ''} go with the next message"] if n else []
        if self._reading:
            words.append(f"reading {self._reading} file{'s' if self._reading != 1 else ''}…")
        self.hint.setText(" · ".join(words))

    def pending(self) -> tuple[Document, ...]:
        """The files to send with the next message."""
        return tuple(self._documents)

    def names(self) -> list[str]:
        return [d.name for d in self._documents]

    def clear(self) -> None:
        """The message was taken: its files go with it (stored with the conversation)."""
        for row in self._rows:
            self._list.removeWidget(row)
            row.deleteLater()
        self._rows, self._documents = [], []
        self.errors.hide()
        self._update_hint()
        self.sig_changed.emit()

    # --- the documents stored with the conversation ---

    def bind(self, db: StoreService) -> None:
        """List the shown conversation's stored documents, read on the database thread."""
        self._db = db

    def show_conversation(self, conversation_id: Any) -> None:
        self.conversation_id = conversation_id if isinstance(conversation_id, int) else None
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """Read the stored list again (a message sent may have stored files)."""
        self._serial += 1
        serial, cid = self._serial, self.conversation_id
        if self._db is None or cid is None:
            self._show_stored(())
            return

        def loaded(documents: tuple[StoredDocument, ...]) -> None:
            if serial == self._serial:
                self._show_stored(documents)

        self._db.call(
            lambda s: stored_documents(s, cid),
            on_done=loaded,
            on_error=lambda exc: self._say(f"The attached files cannot be read: {exc}"),
        )

    def stored(self) -> tuple[StoredDocument, ...]:
        return self._stored

    def remove_stored(self, document: StoredDocument) -> None:
        """Delete a stored document from the conversation (the file on disk stays)."""
        if self._db is None:
            return
        doc_id = document.id
        self._db.call(
            lambda s: remove_stored(s, doc_id),
            on_done=lambda _: self.refresh(),
            on_error=lambda exc: self._say(f"{document.name} could not be removed: {exc}"),
        )

    def _say(self, text: str) -> None:
        self.errors.setText(text)
        self.errors.show()

    def _show_stored(self, documents: tuple[StoredDocument, ...]) -> None:
        for row in self._stored_rows:
            self._stored_list.removeWidget(row)
            row.deleteLater()
        self._stored, self._stored_rows = documents, []
        for document in documents:
            row = QWidget(self)
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            how = (
                "sent whole with every message"
                if document.whole
                else f"{document.chunks} chunks, searched per message"
            )
            label = QLabel(f"{document.name} · {_size(document.size)} · {how}")
            label.setToolTip("Stored with this conversation")
            label.setAccessibleName(f"Stored {document.name}")
            remove = QPushButton("Remove")
            remove.setAccessibleName(f"Remove stored {document.name}")
            remove.setToolTip(
                "Take this file out of the conversation: later messages no "
                "longer see it (the file on disk stays)"
            )
            remove.clicked.connect(lambda _=False, d=document: self.remove_stored(d))
            line.addWidget(label, 1)
            line.addWidget(remove)
            self._stored_list.addWidget(row)
            self._stored_rows.append(row)
        self.sig_changed.emit()
