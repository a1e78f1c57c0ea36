"""The main window: layout (`main_window`), the parts it hands its helpers (`parts`), the wiring
between those parts, the service-backed areas, panels to and from settings, the status bar and the
window's dialogs. GUI thread only."""
