"""The main window's right-side panels: sampling, load, system prompt and prompt template.

Each panel is a self-contained QWidget (GUI thread only) with its API in its module docstring;
the main window docks them and wires them to `EngineService` and `AppSettings`.
"""
