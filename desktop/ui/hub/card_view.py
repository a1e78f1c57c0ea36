"""CardView: a repo's model card (Markdown) as rich text, with links that open in the browser.
GUI thread only.

A card is written for the Hub's web page: images (badges, charts) by URL, links relative to the
repo. This view fetches nothing (no network on the GUI thread): images become links with their
alt text, and `loadResource` answers nothing for any other resource. Links are resolved against
the repo's page and handed to the system browser; `#anchors` scroll within the card.
"""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QTextDocument
from PySide6.QtWidgets import QTextBrowser, QWidget

__all__ = ["MAX_CARD_CHARS", "CardView", "card_for_display"]

MAX_CARD_CHARS = 200_000  # Qt lays out Markdown on the GUI thread; longer cards are cut
_MD_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<url>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HTML_IMAGE = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_HTML_ALT = re.compile(r"\balt\s*=\s*([\"'])(?P<alt>.*?)\1", re.IGNORECASE | re.DOTALL)
_MARKDOWN = (QTextDocument.MarkdownFeature.MarkdownDialectGitHub)


def _alt_link(alt: str, url: str) -> str:
    label = alt.strip() or "image"
    return f"[🖼 {label}]({url})"


def card_for_display(markdown: str) -> str:
    """The card with images turned into links (alt text kept) and cut to MAX_CARD_CHARS."""
    text = markdown
    if len(text) > MAX_CARD_CHARS:
        text = text[:MAX_CARD_CHARS] + "\n\n*(The rest of this card is on the Hub.)*\n"
    text = _MD_IMAGE.sub(lambda m: _alt_link(m["alt"], m["url"]), text)

    def html_image(m: re.Match[str]) -> str:
        alt = _HTML_ALT.search(m.group(0))
        return f"[{alt['alt']}]" if alt and alt["alt"].strip() else ""

    return _HTML_IMAGE.sub(html_image, text)


class CardView(QTextBrowser):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelCard")
        self.setOpenLinks(False)  # relative links must be resolved against the repo first
        self.anchorClicked.connect(self._open)
        self._base = QUrl()

    def show_card(self, markdown: str, base_url: str) -> None:
        """Show `markdown`; relative links resolve against `base_url` (the repo's page)."""
        self._base = QUrl(base_url.rstrip("/") + "/")
        self.document().setMarkdown(card_for_display(markdown), _MARKDOWN)
        self.verticalScrollBar().setValue(0)

    def show_text(self, text: str) -> None:
        self.setPlainText(text)

    def loadResource(self, type: int, name: QUrl | str) -> Any:
        return None  # nothing is fetched: see the module docstring

    def resolve(self, url: QUrl) -> QUrl:
        return self._base.resolved(url) if url.isRelative() else url

    def _open(self, url: QUrl) -> None:
        if url.isRelative() and not url.path() and url.hasFragment():
            self.scrollToAnchor(url.fragment())
            return
        target = self.resolve(url)
        if target.scheme() in ("http", "https", "mailto"):
            QDesktopServices.openUrl(target)
