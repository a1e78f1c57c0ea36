"""Prompt templates: choosing and rendering the exact prompt (`prompt`), the guarded jinja2 sandbox
(`sandbox`, `environment`, `limits`), taint tracking of user text (`taint`) and saved templates
(`store`)."""
