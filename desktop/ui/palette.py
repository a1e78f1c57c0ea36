"""The dark theme's colours and the check-indicator palette, for `window.theme` (which applies
them to the application) and for the few views that draw check boxes in their items. GUI thread
only."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette

__all__ = ["dark_palette", "indicator_palette"]


def dark_palette() -> QPalette:
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#202124", QPalette.ColorRole.WindowText: "#e8eaed",
        QPalette.ColorRole.Base: "#17181a", QPalette.ColorRole.AlternateBase: "#2a2c30",
        QPalette.ColorRole.Text: "#e8eaed", QPalette.ColorRole.Button: "#2d2f33",
        QPalette.ColorRole.ButtonText: "#e8eaed", QPalette.ColorRole.Highlight: "#3d6fb4",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2d2f33",
        QPalette.ColorRole.ToolTipText: "#e8eaed", QPalette.ColorRole.Link: "#8ab4f8",
        QPalette.ColorRole.PlaceholderText: "#8a8d91", QPalette.ColorRole.Mid: "#3c3f44",
        QPalette.ColorRole.Dark: "#111214", QPalette.ColorRole.Light: "#4a4d52",
        QPalette.ColorRole.Midlight: "#36393d", QPalette.ColorRole.Shadow: "#000000",
        QPalette.ColorRole.BrightText: "#ff6b6b",
    }
    for role, color in roles.items():
        pal.setColor(role, QColor(color))
    disabled = QColor("#6f7277")
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return pal


def indicator_palette(palette: QPalette) -> QPalette:
    """`palette` for check boxes and radio buttons: Fusion outlines them in the window colour
    darkened, which on `dark_palette` is the base colour that fills them (an unchecked box was a
    dark square on a dark panel). A lighter window colour for them alone gives them an outline
    they show; they never fill their background with it."""
    boxes = QPalette(palette)
    if palette.color(QPalette.ColorRole.Window).lightness() < 128:
        boxes.setColor(QPalette.ColorRole.Window, QColor("#9aa0a6"))
    return boxes
