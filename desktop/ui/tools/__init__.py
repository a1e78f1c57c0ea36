"""Tools in the GUI: the MCP servers panel, its service, and the permission asked before a
tool runs."""
