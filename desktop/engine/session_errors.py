"""Errors a model session raises, shared by every backend (llama.cpp, transformers).

Runs in the engine worker process. Kept apart from the sessions so the worker can catch one class
whichever backend loaded the model, and so importing it pulls in neither llama_cpp nor torch.
"""

from __future__ import annotations


class LoadFailed(Exception):
    """The model could not be loaded; the message says why in plain words."""


class ContextOverflow(Exception):
    """The tokens do not fit in the context the model was loaded with."""
