"""The Hub window's style sheet: fit badges, notices, job states. GUI thread (applied once by
HubWindow). Colours beyond the palette are the few accents the load panel also uses, chosen to
read on light and dark themes."""

from __future__ import annotations

__all__ = ["HUB_STYLE"]

HUB_STYLE = """
QLabel#modelTitle { font-size: 16px; font-weight: 600; }
QLabel#modelPlaceholder { color: palette(placeholder-text); font-size: 14px; padding: 40px; }
QLabel#modelMeta, QLabel#filesNote, QLabel#jobDetail, QLabel#downloadsEmpty {
    color: palette(placeholder-text);
}
QLabel#fitBadge {
    border-radius: 8px; padding: 1px 8px; margin: 2px 4px; color: white; font-weight: 600;
    background: #808080;
}
QLabel#fitBadge[verdict="fits"] { background: #2e9d4f; }
QLabel#fitBadge[verdict="tight"] { background: #d08a00; }
QLabel#fitBadge[verdict="wont_fit"] { background: #d04040; }
QLabel#fitBadge[verdict=""] { background: transparent; color: palette(placeholder-text); }
QFrame#hubNotice { border-radius: 4px; }
QFrame#hubNotice[kind="error"] { background: rgba(220, 60, 60, 40); }
QFrame#hubNotice[kind="info"] { background: rgba(60, 120, 220, 35); }
QLabel#hubStatus[error="true"], QLabel#downloadsMessage, QLabel#jobMessage { color: #d04040; }
QFrame#downloadJob {
    border: 1px solid palette(mid); border-radius: 6px; background: palette(base);
}
QLabel#jobTitle { font-weight: 600; }
QLabel#jobState { font-weight: 600; }
QLabel#jobState[state="done"] { color: #2e9d4f; }
QLabel#jobState[state="failed"] { color: #d04040; }
QLabel#jobState[state="paused"], QLabel#jobState[state="cancelled"] { color: #d08a00; }
QProgressBar#jobBar {
    border: 1px solid palette(mid); border-radius: 4px; background: palette(window);
    text-align: center; min-height: 14px;
}
QProgressBar#jobBar::chunk { background: #3d7fd9; border-radius: 3px; }
QProgressBar#jobBar[state="paused"]::chunk { background: #d08a00; }
QProgressBar#jobBar[state="done"]::chunk { background: #2e9d4f; }
QProgressBar#jobBar[state="failed"]::chunk { background: #d04040; }
QProgressBar#jobBar[state="cancelled"]::chunk { background: #8a8d91; }
QFrame#hubAccount { border-bottom: 1px solid palette(mid); }
QLabel#accountMessage { color: #d04040; }
QLabel#downloadedMark { color: #2e9d4f; font-weight: 600; padding: 0 4px; }
"""
