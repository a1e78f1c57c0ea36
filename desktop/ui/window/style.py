"""The main window's style sheet. GUI thread (applied once by MainWindow).

Colours come from the palette (`palette(...)`), so the same sheet works for the light and the
dark theme that app.py picks from the system; only a few accents are fixed colours chosen to read
on both.
"""

from __future__ import annotations

STYLE_SHEET = """
QTabWidget#modeTabs::pane { border: none; }
#transcriptPage { background: palette(base); }
QScrollArea { background: palette(base); }
QFrame#userMessage {
    background: palette(alternate-base);
    border: 1px solid palette(mid);
    border-radius: 10px;
}
QFrame#assistantMessage { background: transparent; }
QLabel#messageRole { color: palette(window-text); }
QLabel#messageFooter, QLabel#completionInfo, QLabel#codeLanguage {
    color: palette(placeholder-text);
    font-size: 11px;
}
QFrame#codeBlock {
    background: palette(alternate-base);
    border: 1px solid palette(mid);
    border-radius: 6px;
}
QLabel#emptyTranscript { color: palette(placeholder-text); font-size: 15px; padding: 40px; }
QFrame#noticeBar { border-radius: 0; border: none; border-bottom: 1px solid palette(mid); }
QFrame#noticeBar[kind="error"] { background: rgba(220, 60, 60, 40); }
QFrame#noticeBar[kind="info"] { background: rgba(60, 120, 220, 35); }
QLabel#libraryMessage { color: palette(window-text); padding: 4px; }
QLabel#libraryMessage[error="true"] { background: rgba(220, 60, 60, 40); border-radius: 4px; }
"""
