"""The OpenAI-compatible API as pure values: request bodies checked field by field (`requests`,
`fields`) and responses built from the engine's StepRecords (`responses`)."""
