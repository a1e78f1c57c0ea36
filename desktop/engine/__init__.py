"""Inference. `host` runs in the app or CLI; `worker` runs in a child process and is the only code
that imports llama_cpp. They talk through the messages in `protocol`."""
