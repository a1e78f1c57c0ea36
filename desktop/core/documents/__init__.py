"""Documents attached to a chat: read, split into chunks, retrieved into the prompt."""
