"""The main window's panels to and from `AppSettings`, and whether the last session's model is
still there to load. GUI thread, except `still_there`, which touches the disk and runs as a job.

`restore_panels` and `save_panels` take the window's `WindowParts` (its settings, the side panels
and the chart), never the window itself.
"""

from __future__ import annotations

import os

from desktop.remote import entries as remote_models
from desktop.ui.window.parts import WindowParts


def restore_panels(parts: WindowParts) -> None:
    """Fill the side panels and the chart from the saved settings (at start-up)."""
    s = parts.settings
    parts.sampling_panel.set_settings(s.sampler_settings)
    parts.load_panel.set_settings(s.load_settings)
    parts.prompt_panel.set_system_prompt(s.system_prompt)
    parts.prompt_panel.set_instructions(s.custom_instructions)
    parts.prompt_panel.set_placement(s.instructions_placement)
    parts.chart_dock.set_bar_count(s.chart_top_n)
    parts.chart_dock.set_view_options(s.chart_view)
    parts.chart_dock.set_sampler_settings(parts.sampling_panel.settings())


def save_panels(parts: WindowParts) -> None:
    s = parts.settings
    s.sampler_settings = parts.sampling_panel.settings()
    s.load_settings = parts.load_panel.settings()
    s.system_prompt = parts.prompt_panel.system_prompt()
    s.custom_instructions = parts.prompt_panel.instructions()
    s.instructions_placement = parts.prompt_panel.placement()


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
