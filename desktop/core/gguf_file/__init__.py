"""GGUF model files read with a bound on every count (`reader`) and checked in plain words
before llama.cpp sees them (`check`)."""
