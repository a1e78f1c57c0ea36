"""Compare: one prompt under two or more setting sets, side by side (GUI thread only)."""
