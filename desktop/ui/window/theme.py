"""The colour theme: system, light or dark, chosen at start (`--theme`, OPENLID_THEME or the one
remembered in AppSettings) and switched live from View → Theme. GUI thread only.

One `ThemeSwitcher` per QApplication (`ThemeSwitcher.of(app)`). It sets Qt's colour-scheme hint
and the application palette: Fusion's standard palette for light, `dark_palette()` for dark, and
for "system" whichever the system reports, followed live. Windows with a style sheet call
`restyle` on `sig_dark_changed`, so the widgets under them take the new palette; the chart's
plots then re-colour themselves on the PaletteChange event (`chart.paced_plot`).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QApplication, QStyleFactory, QWidget

from desktop.ui.palette import dark_palette, indicator_palette

__all__ = ["THEMES", "ThemeSwitcher", "dark_palette", "indicator_palette", "restyle"]

THEMES = ("system", "light", "dark")


def restyle(widget: QWidget) -> None:
    """Re-apply `widget`'s style sheet after a palette change. Widgets under a style sheet keep
    the palette it resolved when they were polished (the chart stayed white in the dark
    theme); setting the sheet again polishes them with the new palette."""
    sheet = widget.styleSheet()
    if sheet:
        widget.setStyleSheet("")
        widget.setStyleSheet(sheet)


class ThemeSwitcher(QObject):
    sig_theme_changed = Signal(str)  # "system", "light" or "dark": the choice
    sig_dark_changed = Signal(bool)  # whether the colours are dark now

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self.setObjectName("openlidThemeSwitcher")
        self._app = app
        self.theme = ""
        self.dark = False
        self._painted = False  # no palette set yet: the first apply always sets one
        if any(k.lower() == "fusion" for k in QStyleFactory.keys()):  # noqa: SIM118 (a Qt list)
            app.setStyle("Fusion")  # the same look on every OS
        app.styleHints().colorSchemeChanged.connect(self._on_system_scheme)

    @classmethod
    def of(cls, app: QApplication | None = None) -> ThemeSwitcher:
        """The application's switcher, made on first use."""
        found = app or QApplication.instance()
        assert isinstance(found, QApplication), "a QApplication is needed for a theme"
        existing = found.findChild(ThemeSwitcher, "openlidThemeSwitcher")
        return existing if isinstance(existing, ThemeSwitcher) else cls(found)

    def apply(self, theme: str) -> None:
        """Switch to `theme` ("system", "light" or "dark"; anything else means "system")."""
        theme = theme if theme in THEMES else "system"
        changed = theme != self.theme
        self.theme = theme
        hints = self._app.styleHints()
        if theme == "dark":
            hints.setColorScheme(Qt.ColorScheme.Dark)
        elif theme == "light":
            hints.setColorScheme(Qt.ColorScheme.Light)
        else:
            hints.unsetColorScheme()
        self._set_dark(theme == "dark" or (
            theme == "system" and hints.colorScheme() == Qt.ColorScheme.Dark))
        if changed:
            self.sig_theme_changed.emit(theme)

    def _on_system_scheme(self, scheme: Qt.ColorScheme) -> None:
        if self.theme == "system":
            self._set_dark(scheme == Qt.ColorScheme.Dark)

    def _set_dark(self, dark: bool) -> None:
        if dark == self.dark and self._painted:
            return
        self.dark, self._painted = dark, True
        palette = dark_palette() if dark else self._app.style().standardPalette()
        self._app.setPalette(palette)
        for name in ("QCheckBox", "QRadioButton"):
            # PySide6's stub says bytes; the binding takes only a str
            self._app.setPalette(indicator_palette(palette), name)  # type: ignore[arg-type]
        self.sig_dark_changed.emit(dark)
