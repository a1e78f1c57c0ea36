"""Openlid: a local-LLM desktop app that shows what the model receives and computes."""

__version__ = "0.1.0"
