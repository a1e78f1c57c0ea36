"""Conversations that persist: the SQLite store (`store`), its schema and records, JSON/Markdown
files, and the overflow policy that decides what still fits the context window."""
