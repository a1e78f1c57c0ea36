"""The main window's panels to and from `AppSettings`, and whether the last session's model is
still there to load. GUI thread, except `still_there`, which touches the disk and runs as a job.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from desktop import remote_models

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow


def restore_panels(w: MainWindow) -> None:
    """Fill the side panels and the chart from the saved settings (at start-up)."""
    s = w.settings
    w.sampling_panel.set_settings(s.sampler_settings)
    w.load_panel.set_settings(s.load_settings)
    w.prompt_panel.set_system_prompt(s.system_prompt)
    w.prompt_panel.set_instructions(s.custom_instructions)
    w.prompt_panel.set_placement(s.instructions_placement)
    w.chart_dock.set_bar_count(s.chart_top_n)
    w.chart_dock.set_sampler_settings(w.sampling_panel.settings())


def save_panels(w: MainWindow) -> None:
    s = w.settings
    s.sampler_settings = w.sampling_panel.settings()
    s.load_settings = w.load_panel.settings()
    s.system_prompt = w.prompt_panel.system_prompt()
    s.custom_instructions = w.prompt_panel.instructions()
    s.instructions_placement = w.prompt_panel.placement()


def still_there(path: str) -> bool:
    """Whether the last session's model can be loaded again: the file exists, or the remote
    entry is still stored (the endpoint itself is only contacted by the load)."""
    if remote_models.is_remote_path(path):
        try:
            remote_models.resolve(path)
        except remote_models.RemoteModelError:
            return False
        return True
    return os.path.isfile(path)
