"""Remote engines: OpenAI-compatible endpoints a person added as models (entries on disk, the HTTP
client, and the StepRecords built from what they stream). Pure Python over core: no Qt, no
inference library. The engine's `RemoteSession` runs them like a loaded model."""
