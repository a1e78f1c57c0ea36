"""Images attached to the next chat message: picked from a file dialog, pasted, or dropped on the
input, shown as thumbnails with a remove button each until the message is sent. GUI thread.

Every image is read once with Qt and kept as PNG or JPEG bytes: llama.cpp's projector reads those
two, so a WebP (or any other format Qt reads) is re-encoded to PNG here. A file that is not an
image, too large, or unreadable is refused with a sentence in `sig_refused`; what was already
attached stays. `ImageStrip` also shows a sent message's images in the transcript.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QEvent, QIODevice, QMimeData, QObject, Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QWidget,
)

from desktop.core.conversations.images import StoredImage
from desktop.core.vision import check_image

THUMB = 56
_KEPT_FORMATS = (b"png", b"jpg", b"jpeg")


@dataclass(frozen=True)
class AttachedImage:
    name: str
    data: bytes  # PNG or JPEG


def read_image(name: str, data: bytes) -> AttachedImage:
    """The image as the engine takes it; raises ValueError with a sentence."""
    problem = check_image(name, data)
    if problem:
        raise ValueError(problem)
    image = QImage.fromData(QByteArray(data))
    if image.isNull():
        raise ValueError(
            f"'{name}' could not be read as an image (damaged, or a format this Qt cannot read)"
        )
    suffix = Path(name).suffix.lower().lstrip(".").encode()
    if suffix in _KEPT_FORMATS:
        return AttachedImage(name, data)
    return AttachedImage(str(Path(name).with_suffix(".png")), _png(image))


def _png(image: QImage) -> bytes:
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")  # type: ignore[call-overload]  # the stub says bytes; str runs
    return bytes(buffer.data().data())


def _thumbnail(data: bytes, size: int = THUMB) -> QPixmap:
    pixmap = QPixmap()
    if not pixmap.loadFromData(QByteArray(data)):
        return pixmap  # null: scaling it would only warn
    return pixmap.scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )


class ImageStrip(QWidget):
    """A row of thumbnails (a sent message's images in the transcript); an image Qt cannot
    decode shows its name instead, so a damaged one is still seen to be there."""

    def __init__(
        self, images: Sequence[AttachedImage | StoredImage], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.images = tuple(images)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.labels: list[QLabel] = []
        for image in self.images:
            label = QLabel(self)
            pixmap = _thumbnail(image.data, THUMB * 2)
            if pixmap.isNull():
                label.setText(f"[image {image.name}: cannot be shown]")
            else:
                label.setPixmap(pixmap)
            label.setToolTip(image.name)
            label.setAccessibleName(image.name)
            layout.addWidget(label)
            self.labels.append(label)
        layout.addStretch(1)


class ImageAttachments(QWidget):
    """The images waiting to go with the next message, above the chat input."""

    sig_changed = Signal()
    sig_refused = Signal(str)  # why a file was not attached, in words

    def __init__(self, chat_input: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._images: list[AttachedImage] = []
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(0, 0, 0, 0)
        self.attach_button = QToolButton(self)
        self.attach_button.setText("Attach image…")
        self.attach_button.setToolTip(
            "Attach PNG, JPEG or WebP images (or paste or drop them "
            "on the input) for a vision model"
        )
        self.attach_button.clicked.connect(self.pick)
        self._row.addWidget(self.attach_button)
        self._row.addStretch(1)
        self._thumbs: list[QWidget] = []
        chat_input.setAcceptDrops(True)
        chat_input.installEventFilter(self)
        viewport = getattr(chat_input, "viewport", None)  # a text edit gets drops there
        if viewport is not None:
            viewport().installEventFilter(self)

    # --- what is attached ---

    def images(self) -> tuple[AttachedImage, ...]:
        return tuple(self._images)

    def take(self) -> tuple[AttachedImage, ...]:
        """The attached images, leaving none (the message is being sent)."""
        taken = tuple(self._images)
        self.clear()
        return taken

    def clear(self) -> None:
        self._images.clear()
        self._rebuild()

    def add(self, name: str, data: bytes) -> bool:
        try:
            image = read_image(name, data)
        except ValueError as exc:
            self.sig_refused.emit(str(exc))
            return False
        self._images.append(image)
        self._rebuild()
        return True

    def add_files(self, paths: Iterable[str]) -> int:
        added = 0
        for path in paths:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                self.sig_refused.emit(f"'{Path(path).name}' could not be read: {exc.strerror}")
                continue
            added += self.add(Path(path).name, data)
        return added

    def remove(self, index: int) -> None:
        if 0 <= index < len(self._images):
            del self._images[index]
            self._rebuild()

    def pick(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Attach images", "", "Images (*.png *.jpg *.jpeg *.webp)"
        )
        self.add_files(paths)

    # --- paste and drop on the input ---

    def add_mime(self, mime: QMimeData) -> bool:
        """Attach what a paste or drop carries; False when it holds no image (text is left to
        the input)."""
        if mime.hasUrls() and any(u.isLocalFile() for u in mime.urls()):
            files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            images = [f for f in files if not check_image(Path(f).name, b"x")]
            if images:
                self.add_files(images)
                return True
        if mime.hasImage():
            image = QImage(mime.imageData())
            if not image.isNull():
                return self.add("pasted image.png", _png(image))
        return False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if (
            kind == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.matches(QKeySequence.StandardKey.Paste)
        ):
            mime = QApplication.clipboard().mimeData()
            return mime is not None and self.add_mime(mime)
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            mime = event.mimeData()  # type: ignore[attr-defined]
            if mime.hasImage() or (mime.hasUrls() and any(u.isLocalFile() for u in mime.urls())):
                event.acceptProposedAction()  # type: ignore[attr-defined]
                return True
        if kind == QEvent.Type.Drop and self.add_mime(event.mimeData()):  # type: ignore[attr-defined]
            event.acceptProposedAction()  # type: ignore[attr-defined]
            return True
        return super().eventFilter(watched, event)

    # --- thumbnails ---

    def _rebuild(self) -> None:
        for thumb in self._thumbs:
            self._row.removeWidget(thumb)
            thumb.deleteLater()
        self._thumbs = []
        for i, image in enumerate(self._images):
            thumb = QToolButton(self)
            thumb.setIcon(_thumbnail(image.data))
            thumb.setIconSize(_thumbnail(image.data).size())
            thumb.setToolTip(f"{image.name} — click to remove")
            thumb.setAccessibleName(f"remove {image.name}")
            thumb.clicked.connect(lambda _=False, i=i: self.remove(i))
            self._row.insertWidget(i, thumb)
            self._thumbs.append(thumb)
        self.sig_changed.emit()
