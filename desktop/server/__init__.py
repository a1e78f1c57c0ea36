"""The OpenAI-compatible server: `OpenlidServer` (the loaded model behind an HTTP API with real
logprobs), its HTTP side and one request's generation. No Qt; the GUI drives it from ui/server.

Modules, each importing only those below it: `openlid_server` (OpenlidServer; creates the HTTP
server) > `http` (routing, limits, keys, JSON) > `generation` (one generation request answered,
whole or streamed) > `app` (the `ServerApp` protocol: what the HTTP side needs from the server)
> `served_engine` (the server's own engine worker) and `shared_engine` (the app's engine, lent)
> `server_engine` (what both are to the server: turns, one generation's events) and `access`
(the Host and Origin checks) > `config` (ServerConfigError, is_loopback, the request limits,
RetryLater, ClientGone) and `log_entry` (RequestLogEntry)."""
