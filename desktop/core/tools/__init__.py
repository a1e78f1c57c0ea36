"""Tool calling: tool definitions and calls, the formats models write them in, the prompt and
grammar for them, and the user's MCP servers (see docs/architecture.md)."""
